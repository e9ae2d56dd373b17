import AgadirCore
import AgadirTestSupport
import Testing

@testable import AgadirWire

@Suite("Chained signatures of a streamed body")
struct FrameSignaturesTests {
    let seed = [UInt8](repeating: 0x11, count: 32)

    func sign(_ payloads: [[UInt8]]) -> [[UInt8]] {
        var chain = FrameSignatures(secret: "secret", requestSignature: seed)
        return payloads.enumerated().map { i, p in
            p.withUnsafeBytes { chain.sign(payload: $0, end: i == payloads.count - 1) }
        }
    }

    /// Verifies `frames` (payload, signature, END_STREAM) in order; the index of the first
    /// refused frame, or nil when all pass and the last ended the stream.
    func firstRefused(_ frames: [(payload: [UInt8], signature: [UInt8]?, end: Bool)]) -> Int? {
        var chain = FrameSignatures(secret: "secret", requestSignature: seed)
        for (i, f) in frames.enumerated() {
            guard f.payload.withUnsafeBytes({ chain.verify(f.signature, payload: $0, end: f.end) }) else { return i }
        }
        return chain.ended ? nil : frames.count
    }

    @Test func matchesThePythonClientWrittenFromTheDocument() {
        // agadir_client.frame_signature('secret', b'\x11' * 32, 1, False, b'hello'), then frame 2.
        let s = sign([Array("hello".utf8), []])
        #expect(Hex.encode(s[0]) == "31ec207708c310f034709a261bb9a4964e80cfab4f6b516a0ad773929be5aaa9")
        #expect(Hex.encode(s[1]) == "e62f720d31106a1e600a1501270de84f33b2ad22ed02be8b70f89d533d6ef899")
    }

    @Test func anyAlterationOfAStreamIsRefused() {
        var rng = SplitMix64(seed: 7)
        for round in 0..<200 {
            let count = Int.random(in: 2...6, using: &rng)
            let payloads = (0..<count).map { _ in
                (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            let sigs = sign(payloads)
            let honest = (0..<count).map { (payloads[$0], Optional(sigs[$0]), $0 == count - 1) }
            #expect(firstRefused(honest) == nil, "round \(round): the honest stream was refused")

            var altered = honest
            let i = Int.random(in: 0..<count, using: &rng)
            switch round % 5 {
            case 0:  // a byte changed, or one added to an empty payload
                if altered[i].0.isEmpty { altered[i].0 = [0] } else { altered[i].0[0] ^= 0x80 }
            case 1:  // two frames swapped
                let j = (i + 1) % count
                altered.swapAt(i, j)
                if altered[i].0 == altered[j].0 { altered[i].0.append(1) }
            case 2:  // a signature stripped
                altered[i].1 = nil
            case 3:  // cut short: a frame before the last claims the end
                altered = Array(altered.prefix(count - 1))
                altered[altered.count - 1].2 = true
            default:  // the end dropped: the stream never ends
                altered = Array(altered.prefix(count - 1))
            }
            #expect(firstRefused(altered) != nil, "round \(round): an altered stream passed")
        }
    }

    @Test func nothingVerifiesAfterTheEnd() {
        let sigs = sign([[1], [2]])
        var chain = FrameSignatures(secret: "secret", requestSignature: seed)
        #expect([UInt8]([1]).withUnsafeBytes { chain.verify(sigs[0], payload: $0, end: false) })
        #expect([UInt8]([2]).withUnsafeBytes { chain.verify(sigs[1], payload: $0, end: true) })
        #expect(chain.ended && chain.frames == 2)
        #expect(![UInt8]([2]).withUnsafeBytes { chain.verify(sigs[1], payload: $0, end: true) })
    }
}
