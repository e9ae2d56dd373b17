import AgadirCore
import AgadirTestSupport
import Testing

@testable import AgadirWire

@Suite("Request signatures and the replay window")
struct RequestSigningTests {
    let credentials = Credentials(accessKey: "AKAAAAAAAAAAAAAAAAAA", secretKey: "secret")

    func signed(_ fields: Fields = Fields(), at: UInt64 = 1_000_000, nonce: UInt8 = 1) -> Fields {
        var f = fields
        RequestSigning.sign(
            opcode: Opcode.get.rawValue, fields: &f, credentials: credentials, signedAtMillis: at,
            nonce: Array(repeating: nonce, count: 16))
        return f
    }

    func bucketKey(_ b: String, _ k: String) -> Fields {
        var f = Fields()
        f.set(.bucket, b)
        f.set(.key, k)
        return f
    }

    @Test func aSignedRequestVerifies_andAnyChangeBreaksIt() throws {
        let f = signed(bucketKey("photos", "a.txt"))
        let claim = try #require(try RequestSigning.claim(f))
        #expect(claim.accessKey == credentials.accessKey && claim.signedAtMillis == 1_000_000)
        #expect(RequestSigning.verify(claim, opcode: Opcode.get.rawValue, fields: f, secret: "secret"))
        #expect(!RequestSigning.verify(claim, opcode: Opcode.get.rawValue, fields: f, secret: "secreT"))
        #expect(!RequestSigning.verify(claim, opcode: Opcode.head.rawValue, fields: f, secret: "secret"))
        // Another key, bucket, time or nonce: each changes what is signed.
        for tag in [FieldTag.key, .bucket, .signedAt, .requestNonce, .accessKey] {
            var altered = f
            let i = try #require(altered.items.firstIndex { $0.tag == tag.rawValue })
            altered.items[i].value[0] ^= 1
            let claimed = try #require(try RequestSigning.claim(altered))
            #expect(
                !RequestSigning.verify(claimed, opcode: Opcode.get.rawValue, fields: altered, secret: "secret"),
                "changing \(tag) kept the signature valid")
        }
        // A field added after signing breaks it too.
        var added = f
        added.set(.range, bytes: Array(repeating: 0, count: 16))
        #expect(!RequestSigning.verify(claim, opcode: Opcode.get.rawValue, fields: added, secret: "secret"))
    }

    @Test func theCanonicalFormSortsByTag_soTheOrderOfFieldsDoesNotMatter() throws {
        let f = signed(bucketKey("photos", "a.txt"))
        var reordered = f
        reordered.items.reverse()
        let claim = try #require(try RequestSigning.claim(reordered))
        #expect(RequestSigning.verify(claim, opcode: Opcode.get.rawValue, fields: reordered, secret: "secret"))
        // Fields with the same tag keep their sending order.
        var meta = Fields()
        meta.set(.metadata, "a")
        meta.set(.metadata, "b")
        let m = signed(meta)
        var swapped = m
        swapped.items.swapAt(0, 1)
        let c = try #require(try RequestSigning.claim(swapped))
        #expect(!RequestSigning.verify(c, opcode: Opcode.get.rawValue, fields: swapped, secret: "secret"))
    }

    @Test func theCanonicalBytesAreAsDocumented() {
        var f = Fields()
        f.set(.bucket, "b")
        let bytes = RequestSigning.canonical(opcode: 6, fields: f)
        let expected: [UInt8] =
            Array("AGADIR1-HMAC-SHA256".utf8) + [0x0A, 0x00, 0x06, 0, 0, 0, 1, 0x00, 0x01, 0, 0, 0, 1, 0x62]
        #expect(bytes == expected)
    }

    @Test func claimsWithoutTheirFieldsAreRefused() throws {
        #expect(try RequestSigning.claim(bucketKey("photos", "a")) == nil)
        var f = signed()
        f.items.removeAll { $0.tag == FieldTag.signature.rawValue }
        #expect(throws: AgadirError.self) { try RequestSigning.claim(f) }
        var g = signed()
        g.items.removeAll { $0.tag == FieldTag.requestNonce.rawValue }
        #expect(throws: AgadirError.self) { try RequestSigning.claim(g) }
    }

    @Test func credentialsFilesParse() throws {
        let c = try Credentials.parse(
            "# comment\n[default]\naccess_key = AKX\n  secret_key=s3cr=t \n", source: "test")
        #expect(c == Credentials(accessKey: "AKX", secretKey: "s3cr=t"))
        let aws = try Credentials.parse("[default]\naws_access_key_id = A\naws_secret_access_key = B\n", source: "t")
        #expect(aws == Credentials(accessKey: "A", secretKey: "B"))
        #expect(throws: AgadirError.self) { try Credentials.parse("access_key = A\n", source: "t") }
        #expect(throws: AgadirError.self) { try Credentials.parse("garbage\n", source: "t") }
        let round = try Credentials.parse(c.fileText(comment: "x"), source: "t")
        #expect(round == c)
    }

    @Test func theRootKeyIsDerivedFromTheSecret() {
        let a = Credentials.root(clusterName: "agadir", secret: "s1")
        #expect(a == Credentials.root(clusterName: "agadir", secret: "s1"))
        #expect(a != Credentials.root(clusterName: "agadir", secret: "s2"))
        #expect(a != Credentials.root(clusterName: "other", secret: "s1"))
        #expect(a.accessKey.hasPrefix("AKROOT") && AccessKeyRecord.isValidID(a.accessKey))
        #expect(a.secretKey.count == 64)
    }

    // MARK: Replay window

    func nonce(_ i: Int) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: i >> (8 * (7 - $0))) } + Array(repeating: 0, count: 8)
    }

    @Test func theWindowRefusesStaleFutureAndReplayed() {
        var w = ReplayWindow(skewMillis: 1000, capacity: 100)
        #expect((try? w.admit(accessKey: "k", nonce: nonce(1), signedAtMillis: 10_000, nowMillis: 10_000).get()) != nil)
        let replay = w.admit(accessKey: "k", nonce: nonce(1), signedAtMillis: 10_000, nowMillis: 10_001)
        #expect(replay.errorCode == .replayedRequest)
        // Another key may use the same nonce.
        #expect(w.admit(accessKey: "j", nonce: nonce(1), signedAtMillis: 10_000, nowMillis: 10_001).errorCode == nil)
        #expect(
            w.admit(accessKey: "k", nonce: nonce(2), signedAtMillis: 8_999, nowMillis: 10_000).errorCode
                == .requestTimeSkewed)
        #expect(
            w.admit(accessKey: "k", nonce: nonce(3), signedAtMillis: 11_001, nowMillis: 10_000).errorCode
                == .requestTimeSkewed)
        #expect(w.admit(accessKey: "k", nonce: nonce(4), signedAtMillis: 11_000, nowMillis: 10_000).errorCode == nil)
    }

    /// Property: whatever the interleaving, capacity and clock, a signed request (key,
    /// nonce and signing time, as a replay carries them) is accepted at most once, and
    /// memory never exceeds the capacity.
    @Test func noReplayIsEverAccepted_andMemoryStaysBounded() {
        var rng = SplitMix64(seed: 42)
        for capacity in [1, 7, 64] {
            var w = ReplayWindow(skewMillis: 500, capacity: capacity)
            var signedAt: [UInt64] = []
            var accepted = Set<Int>()
            var acceptedTwice: [Int] = []
            var overCapacity = 0
            var now: UInt64 = 100_000
            for _ in 0..<5_000 {
                now += rng.next() % 20
                // A third of the time, send again a request sent before (a replay).
                let n: Int
                if !signedAt.isEmpty, rng.next() % 3 == 0 {
                    n = Int(rng.next() % UInt64(signedAt.count))
                } else {
                    n = signedAt.count
                }
                if n == signedAt.count { signedAt.append(now - 400 + rng.next() % 800) }
                if case .success = w.admit(accessKey: "k", nonce: nonce(n), signedAtMillis: signedAt[n], nowMillis: now)
                {
                    if accepted.contains(n) { acceptedTwice.append(n) }
                    accepted.insert(n)
                }
                if w.count > capacity { overCapacity += 1 }
            }
            #expect(acceptedTwice.isEmpty, "capacity \(capacity): requests accepted twice: \(acceptedTwice.prefix(5))")
            #expect(overCapacity == 0, "capacity \(capacity): over capacity \(overCapacity) times")
            #expect(accepted.count > 100, "capacity \(capacity): only \(accepted.count) accepted")
        }
    }
}

extension Result where Failure == AgadirError {
    var errorCode: AgadirError.Code? {
        if case .failure(let e) = self { return e.code }
        return nil
    }
}
