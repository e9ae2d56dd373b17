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
                #expect(try ring.open(sealed, channel: channel) == plaintext)
            }
        }
    }

    @Test func sealedDatagram_ofARandomPacket_opensAndDecodes() throws {
        let ring = try keyring([oldSecret])
        var random = RandomGossip(seed: 21)
        for _ in 0..<200 {
            let packet = random.packet()
            let sealed = ring.seal(GossipCodec.encode(packet), channel: .datagram)
            #expect(try GossipCodec.decode(ring.open(sealed, channel: .datagram)) == packet)
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
        #expect(rejection(ring, Array(repeating: 0, count: 25), .datagram) == .tooShort)
        #expect(rejection(ring, Array(repeating: 0, count: 26), .datagram) == .badMagic)
        var future = ring.seal([], channel: .datagram)
        future[4] = 2
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
                #expect(try receiver.open(sealed, channel: .datagram) == [UInt8(i)], "step \(i) -> step \(j)")
            }
        }
        // A node with [new, old] reads old-primary senders, and one with [old, new] reads new-primary senders.
        #expect(try promoted.open(before.seal([9], channel: .datagram), channel: .datagram) == [9])
        #expect(try added.open(after.seal([9], channel: .datagram), channel: .datagram) == [9])
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
    static let sealedPing =
        "414753570101ee6f7dc10101066e6f64652d610d31302e302e302e313a373934360100000001066e6f64652d6200"
        + "c8b5ecdc1d8181b2356a752c3ef180ea"
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
        let sealed = ring.seal(GossipCodec.encode(Self.ping), channel: .datagram)
        #expect(Hex.encode(sealed) == Self.sealedPing)
        #expect(try GossipCodec.decode(ring.open(sealed, channel: .datagram)) == Self.ping)
        try #require(try Self.document().contains(Self.dump(sealed)))
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
