/// xoshiro256** (Blackman and Vigna, 2018) seeded through SplitMix64: the simulator's
/// only source of randomness. Every stream (the network, the scenario, each member's
/// instance) is derived from the run's seed and a stream number, so a run replays
/// exactly from its configuration.
public struct SimulationRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// A generator for `stream` of the run seeded with `seed`; distinct streams give
    /// unrelated sequences.
    public init(seed: UInt64, stream: UInt64 = 0) {
        // SplitMix64 (Steele, Lea and Flood, OOPSLA 2014) spreads the seed over the state,
        // as the xoshiro authors recommend; the stream is mixed in first.
        var state = seed ^ Self.mix(stream &+ 0x632B_E59B_D9B4_E019)
        func splitMix() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            return Self.mix(state)
        }
        s0 = splitMix()
        s1 = splitMix()
        s2 = splitMix()
        s3 = splitMix()
        if s0 | s1 | s2 | s3 == 0 { s0 = 1 }  // the all-zero state is a fixed point
    }

    private static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    /// Uniform in [0, 1), 53 bits.
    public mutating func unit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}
