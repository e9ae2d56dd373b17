import AgadirCore
import AgadirTestSupport
import Foundation
import Testing

@testable import AgadirMembership

private func keyring(_ secrets: [String], cluster: String = "prod") throws -> Keyring {
    try Keyring(clusterName: cluster, secrets: secrets)
}

/// Why `ring` refuses `sealed` on `channel`; nil when it opens.
private func rejection(_ ring: Keyring, _ sealed: [UInt8], _ channel: GossipChannel) -> GossipRejection? {
    do {
        _ = try ring.open(sealed, channel: channel)
        return nil
    } catch {
        return error
    }
}

extension Keyring {
    /// Seals at a fixed time with a random nonce (the shell's way, with the clock fixed).
    fileprivate func seal(_ plaintext: [UInt8], channel: GossipChannel) -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        let nonce = (0..<Keyring.nonceBytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return seal(plaintext, channel: channel, sentAtMillis: 1_700_000_000_000, nonce: nonce)
    }
}

private let oldSecret = "4f1d0c8a2b9e7d6f5a4c3b2a19087766"
private let newSecret = "9a8b7c6d5e4f30211203f4e5d6c7b8a9"

@Suite struct KeyringTests {
    @Test func sealThenOpen_returnsThePlaintext_onBothChannels_withExactOverhead() throws {
        let ring = try keyring([oldSecret])
        var rng = SplitMix64(seed: 20)
        for length in 0..<600 {
            let plaintext = rng.bytes(length)
            for channel in GossipChannel.allCases {
                let sealed = ring.seal(plaintext, channel: channel)
                #expect(sealed.count == plaintext.count + Keyring.overhead)
                #expect(try ring.open(sealed, channel: channel).plaintext == plaintext)
            }
        }
    }

    @Test func sealedDatagram_ofARandomPacket_opensAndDecodes() throws {
        let ring = try keyring([oldSecret])
        var random = RandomGossip(seed: 21)
        for _ in 0..<200 {
            let packet = random.packet()
            let sealed = ring.seal(GossipCodec.encode(packet), channel: .datagram)
            #expect(try GossipCodec.decode(ring.open(sealed, channel: .datagram).plaintext) == packet)
        }
    }

    @Test func open_withAnotherSecretOrClusterName_isUnknownKey() throws {
        let sealed = try keyring([oldSecret]).seal([1, 2, 3], channel: .datagram)
        #expect(rejection(try keyring([newSecret]), sealed, .datagram) == .unknownKey)
        #expect(rejection(try keyring([oldSecret], cluster: "staging"), sealed, .datagram) == .unknownKey)
    }

    @Test func open_afterFlippingAnySingleBit_isRejected() throws {
        let ring = try keyring([oldSecret])
        let packet = Packet(sender: "node-a", senderAddress: "10.0.0.1:7946", probe: .ping(sequence: 9, target: "b"))
        let sealed = ring.seal(GossipCodec.encode(packet), channel: .datagram)
        var reasons = Set<GossipRejection>()
        for index in sealed.indices {
            for bit in 0..<8 {
                var damaged = sealed
                damaged[index] ^= UInt8(1 << bit)
                let reason = rejection(ring, damaged, .datagram)
                #expect(reason != nil, "bit \(bit) of byte \(index)")
                if let reason { reasons.insert(reason) }
            }
        }
        // Magic, version, channel byte (1 -> 3 is unknown, 1 -> 0 too), key id, plaintext and tag.
        #expect(reasons == [.badMagic, .unsupportedVersion, .wrongChannel, .unknownKey, .badTag])
    }

    @Test func open_ofEveryTruncation_isRejected() throws {
        let ring = try keyring([oldSecret])
        let sealed = ring.seal(Array("hello gossip".utf8), channel: .stream)
        for length in 0..<sealed.count {
            let reason = rejection(ring, Array(sealed.prefix(length)), .stream)
            #expect(reason == (length < Keyring.overhead ? .tooShort : .badTag), "length \(length)")
        }
    }

    @Test func open_onTheOtherChannel_isWrongChannel_andRewritingTheChannelByteBreaksTheTag() throws {
        let ring = try keyring([oldSecret])
        let datagram = ring.seal([7, 7, 7], channel: .datagram)
        #expect(rejection(ring, datagram, .stream) == .wrongChannel)
        let stream = ring.seal([7, 7, 7], channel: .stream)
        #expect(rejection(ring, stream, .datagram) == .wrongChannel)
        var replayed = datagram
        replayed[5] = GossipChannel.stream.rawValue
        #expect(rejection(ring, replayed, .stream) == .badTag)
    }

    @Test func open_ofOtherTraffic_isBadMagicOrTooShort() throws {
        let ring = try keyring([oldSecret])
        #expect(rejection(ring, [], .datagram) == .tooShort)
        #expect(rejection(ring, Array(repeating: 0, count: Keyring.overhead - 1), .datagram) == .tooShort)
        #expect(rejection(ring, Array(repeating: 0, count: Keyring.overhead), .datagram) == .badMagic)
        var future = ring.seal([], channel: .datagram)
        future[4] = 3
        #expect(rejection(ring, future, .datagram) == .unsupportedVersion)
    }

    /// Rotation (docs/protocol.md): add the new secret as secondary everywhere, make it
    /// primary everywhere, then remove the old one. Every step talks to the next.
    @Test func rotation_eachStepReadsItsNeighbours_andANewOnlyNodeRejectsOldSenders() throws {
        let before = try keyring([oldSecret])
        let added = try keyring([oldSecret, newSecret])
        let promoted = try keyring([newSecret, oldSecret])
        let after = try keyring([newSecret])
        let steps = [before, added, promoted, after]
        for (i, sender) in steps.enumerated() {
            let sealed = sender.seal([UInt8(i)], channel: .datagram)
            for (j, receiver) in steps.enumerated() where abs(i - j) <= 1 {
                #expect(try receiver.open(sealed, channel: .datagram).plaintext == [UInt8(i)], "step \(i) -> step \(j)")
            }
        }
        // A node with [new, old] reads old-primary senders, and one with [old, new] reads new-primary senders.
        #expect(try promoted.open(before.seal([9], channel: .datagram), channel: .datagram).plaintext == [9])
        #expect(try added.open(after.seal([9], channel: .datagram), channel: .datagram).plaintext == [9])
        // Skipping a step breaks: a node holding only the new secret rejects old-primary senders.
        for oldPrimary in [before, added] {
            let sealed = oldPrimary.seal([1], channel: .datagram)
            #expect(rejection(after, sealed, .datagram) == .unknownKey)
        }
        let fromAfter = after.seal([1], channel: .datagram)
        #expect(rejection(before, fromAfter, .datagram) == .unknownKey)
        #expect(promoted.primaryKeyID == after.primaryKeyID)
        #expect(promoted.keyIDs == [after.primaryKeyID, before.primaryKeyID])
    }

    @Test func messagesAreEncrypted_andTheirTimeAndNonceAreAuthenticated() throws {
        let ring = try keyring([oldSecret])
        let packet = Packet(
            sender: "node-with-a-long-recognisable-name", senderAddress: "10.0.0.1:7946",
            probe: .ping(sequence: 9, target: "b"))
        let plaintext = GossipCodec.encode(packet)
        let sealed = ring.seal(plaintext, channel: .datagram, sentAtMillis: 42, nonce: Array(repeating: 7, count: 12))
        #expect(Data(sealed).range(of: Data("node-with-a-long-recognisable-name".utf8)) == nil, "sent in clear")
        let opened = try ring.open(sealed, channel: .datagram)
        #expect(
            opened.plaintext == plaintext && opened.sentAtMillis == 42 && opened.nonce == Array(repeating: 7, count: 12)
        )
        // Rewriting the time (to pass a replay window) breaks the tag.
        var retimed = sealed
        retimed[17] ^= 1
        #expect(rejection(ring, retimed, .datagram) == .badTag)
        // Two seals of one plaintext differ (fresh nonces).
        #expect(ring.seal(plaintext, channel: .datagram) != ring.seal(plaintext, channel: .datagram))
    }

    @Test func theReplayGuard_refusesReplayedAndStaleMessages_perSource() throws {
        let ring = try keyring([oldSecret])
        var guardian = GossipReplayGuard(skewMillis: 1000, capacity: 100)
        let now: UInt64 = 1_000_000
        let sealed = ring.seal([1], channel: .datagram, sentAtMillis: now, nonce: Array(repeating: 1, count: 12))
        let opened = try ring.open(sealed, channel: .datagram)
        try guardian.admit(opened, source: "10.0.0.1:7946", nowMillis: now + 10)
        #expect(throws: GossipRejection.replayed) {
            try guardian.admit(opened, source: "10.0.0.1:7946", nowMillis: now + 20)
        }
        let old = try ring.open(
            ring.seal([1], channel: .datagram, sentAtMillis: now - 5000, nonce: Array(repeating: 2, count: 12)),
            channel: .datagram)
        #expect(throws: GossipRejection.stale) { try guardian.admit(old, source: "10.0.0.1:7946", nowMillis: now) }
        // Another message of the same source, or the same nonce from elsewhere, passes.
        let next = try ring.open(
            ring.seal([2], channel: .datagram, sentAtMillis: now, nonce: Array(repeating: 3, count: 12)),
            channel: .datagram)
        try guardian.admit(next, source: "10.0.0.1:7946", nowMillis: now + 30)
        try guardian.admit(opened, source: "10.0.0.9:7946", nowMillis: now + 30)
    }

    @Test func secrets_shorterThan16Bytes_areRefused_withHowToGenerateOne() throws {
        let error = #expect(throws: AgadirError.self) { try keyring(["fifteen-bytes!!"]) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.hasPrefix("the primary gossip secret is 15 bytes; at least 16 are required") == true)
        #expect(error?.message.hasSuffix("generate one with `openssl rand -hex 32`") == true)
        let second = #expect(throws: AgadirError.self) { try keyring([oldSecret, "short"]) }
        #expect(second?.message.hasPrefix("gossip secret 2 is 5 bytes") == true)
        _ = try keyring(["exactly16bytes!!"])
        #expect(throws: AgadirError.self) { try keyring([]) }
        #expect(throws: AgadirError.self) { try keyring([oldSecret], cluster: "") }
        _ = try Keyring(clusterName: "prod", secretBytes: [randomBytes(16, seed: 1)])
    }

    @Test func secrets_givenTwice_countOnce() throws {
        let ring = try keyring([oldSecret, newSecret, oldSecret])
        #expect(ring.keyIDs.count == 2)
    }

    @Test func rejections_haveDistinctMetricNames_andSayWhatToDo() {
        let names = Set(GossipRejection.allCases.map(\.name))
        #expect(names.count == GossipRejection.allCases.count)
        #expect(GossipRejection.unknownKey.description.contains("gossip secrets"))
    }
}

/// The example in docs/protocol.md, "Gossip (peer) protocol", is these bytes; if this
/// fails, the gossip format changed and the document (and every implementation) must follow.
@Suite struct GossipProtocolDocumentTests {
    static let cluster = "example"
    static let secret = "0123456789abcdef0123456789abcdef"

    static let ping = Packet(
        sender: "node-a", senderAddress: "10.0.0.1:7946", probe: .ping(sequence: 1, target: "node-b"))

    static let ackWithGossip = Packet(
        sender: "node-b", senderAddress: "10.0.0.2:7946", probe: .ack(sequence: 1),
        gossip: [
            .alive(
                Member(
                    nodeID: "node-b", site: "rabat", labels: ["rack": "r1"], clientAddress: "10.0.0.2:7480",
                    peerAddress: "10.0.0.2:7946", incarnation: Incarnation(3) ?? .zero, status: .alive,
                    layoutVersion: 2)),
            .suspect(nodeID: "node-c", incarnation: Incarnation(5) ?? .zero, from: "node-b"),
        ])

    static let derivedKey = "2d20783fbedf65392d8bb6185de6f6f3fe715b09cde61f44658d0b6d8fc3f727"
    static let keyID: UInt32 = 0xee6f_7dc1
    /// Sealed at 1,700,000,000,000 ms with the nonce 00 01 ... 0b (what the document says).
    static let sealedPing =
        "414753570201ee6f7dc10000018bcfe56800000102030405060708090a0b4cb724d7afda7a5de725d9aec68712f110"
        + "881635792b95656a8f01144ac14450d5e84ee5b619af50b6cc4338860c9d0185d24efa"
    static let ackPlaintext =
        "0101066e6f64652d620d31302e302e302e323a3739343603000000010201066e6f64652d620572616261740d31302e302e"
        + "302e323a373438300d31302e302e302e323a37393436000000000000000300000000000000000201047261636b02723102"
        + "066e6f64652d630000000000000005066e6f64652d62"

    @Test func documentedKeyDerivation_isWhatTheKeyringDerives() throws {
        let key = Keyring.derivedKeyBytes(clusterName: Self.cluster, secret: Array(Self.secret.utf8))
        #expect(Hex.encode(key) == Self.derivedKey)
        #expect(try Keyring(clusterName: Self.cluster, secrets: [Self.secret]).primaryKeyID == Self.keyID)
    }

    @Test func documentedSealedPing_isWhatTheCodecAndKeyringWrite() throws {
        let ring = try Keyring(clusterName: Self.cluster, secrets: [Self.secret])
        let sealed = ring.seal(
            GossipCodec.encode(Self.ping), channel: .datagram, sentAtMillis: 1_700_000_000_000, nonce: Array(0..<12))
        #expect(Hex.encode(sealed) == Self.sealedPing)
        #expect(try GossipCodec.decode(ring.open(sealed, channel: .datagram).plaintext) == Self.ping)
        try #require(try Self.document().contains(Self.dump(sealed)))
        try #require(try Self.document().contains(Self.dump(GossipCodec.encode(Self.ping))))
    }

    @Test func documentedAckWithGossip_isWhatTheCodecWrites() throws {
        let plaintext = GossipCodec.encode(Self.ackWithGossip)
        #expect(Hex.encode(plaintext) == Self.ackPlaintext)
        #expect(try GossipCodec.decode(plaintext) == Self.ackWithGossip)
        try #require(try Self.document().contains(Self.dump(plaintext)))
    }

    static func document() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent("docs/protocol.md"), encoding: .utf8)
    }

    /// The hex dump layout of docs/protocol.md: offset, 16 bytes, printable ASCII.
    static func dump(_ bytes: [UInt8]) -> String {
        stride(from: 0, to: bytes.count, by: 16).map { start in
            let row = bytes[start..<min(start + 16, bytes.count)]
            let offset = String(start, radix: 16)
            let hex = row.map { Hex.encode([$0]) }.joined(separator: " ")
            let ascii = String(row.map { (0x20...0x7e).contains($0) ? Character(Unicode.Scalar($0)) : "." })
            return String(repeating: "0", count: 4 - offset.count) + offset + "  "
                + hex.padding(toLength: 47, withPad: " ", startingAt: 0) + "  " + ascii
        }.joined(separator: "\n")
    }
}
