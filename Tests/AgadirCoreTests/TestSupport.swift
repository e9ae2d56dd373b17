import AgadirCore
import Testing

/// SplitMix64 (Steele, Lea and Flood, OOPSLA 2014): a tiny, fast, seeded generator, so
/// every randomized test replays exactly.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` pseudo-random bytes: the generator's words, little-endian.
    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { buf in
            var i = 0
            while i + 8 <= count {
                buf.storeBytes(of: next().littleEndian, toByteOffset: i, as: UInt64.self)
                i += 8
            }
            if i < count {
                var last = next()
                while i < count {
                    buf[i] = UInt8(truncatingIfNeeded: last)
                    last >>= 8
                    i += 1
                }
            }
        }
        return out
    }
}

/// `count` pseudo-random bytes from a SplitMix64 seeded with `seed`.
func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    return rng.bytes(count)
}

/// Compressible, text-like bytes: words from a small vocabulary, chosen pseudo-randomly.
func textBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    let words = [
        "agadir", "granary", "cell", "family", "store", "wall", "rule", "village", "barley", "key", "door",
        "chunk", "replica", "site", "the", "of", "and", "a", "in", "is",
    ].map { Array(($0 + " ").utf8) }
    var rng = SplitMix64(seed: seed)
    var out: [UInt8] = []
    out.reserveCapacity(count + 16)
    while out.count < count {
        out.append(contentsOf: words[Int(rng.next() % UInt64(words.count))])
        if rng.next() % 12 == 0 { out.append(UInt8(ascii: "\n")) }
    }
    return Array(out.prefix(count))
}

/// Runs `body` and checks that it throws an `AgadirError` with `code`; returns the error.
@discardableResult
func expectError<T>(
    _ code: AgadirError.Code, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws(AgadirError) -> T
) -> AgadirError? {
    do {
        _ = try body()
        Issue.record("expected \(code), but nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    }
}
