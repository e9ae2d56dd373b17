import AgadirCore
import AgadirMembership
import AgadirTestSupport
import Testing

/// Random gossip messages from a seeded generator: every message and update kind, strings
/// mixing one- to four-byte UTF-8 up to their limits, labels, incarnations up to the ceiling.
struct RandomGossip {
    var rng: SplitMix64

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    private static let alphabet: [Unicode.Scalar] = [
        "a", "z", "0", "-", ".", ":", "é", "ß", "ⵣ", "日", "🦊", "\u{301}",
    ]

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func chance(_ oneIn: Int) -> Bool { int(1...oneIn) == 1 }

    /// A string of at most `limit` UTF-8 bytes; usually short, sometimes filling the limit.
    mutating func string(_ limit: Int) -> String {
        let budget = chance(8) ? limit : int(0...min(limit, 16))
        var s = String.UnicodeScalarView()
        var used = 0
        while used < budget {
            let scalar = Self.alphabet[int(0...Self.alphabet.count - 1)]
            let width = UTF8.width(scalar)
            if used + width > budget { break }
            s.append(scalar)
            used += width
        }
        return String(s)
    }

    mutating func incarnation() -> Incarnation {
        switch int(0...3) {
        case 0: .zero
        case 1: .ceiling
        default: Incarnation(UInt64.random(in: 0...Incarnation.ceiling.value, using: &rng)) ?? .zero
        }
    }

    mutating func member() -> Member {
        var labels: [String: String] = [:]
        let count = chance(10) ? GossipLimits.maxLabels : int(0...3)
        while labels.count < count {
            labels[string(GossipLimits.maxLabelKeyBytes)] = string(GossipLimits.maxLabelValueBytes)
        }
        return Member(
            nodeID: string(GossipLimits.maxNodeIDBytes), site: string(GossipLimits.maxSiteBytes), labels: labels,
            clientAddress: string(GossipLimits.maxAddressBytes), peerAddress: string(GossipLimits.maxAddressBytes),
            incarnation: incarnation(), status: MemberStatus.allCases[int(0...3)], layoutVersion: rng.next())
    }

    mutating func update() -> GossipUpdate {
        switch int(0...3) {
        case 0: .alive(member())
        case 1: .suspect(nodeID: string(128), incarnation: incarnation(), from: string(128))
        case 2: .dead(nodeID: string(128), incarnation: incarnation(), from: string(128))
        default: .left(nodeID: string(128), incarnation: incarnation())
        }
    }

    mutating func probe() -> ProbeMessage? {
        let sequence = UInt32.random(in: 0...UInt32.max, using: &rng)
        switch int(0...4) {
        case 0: return nil
        case 1: return .ping(sequence: sequence, target: string(128))
        case 2: return .pingRequest(sequence: sequence, target: string(128), targetAddress: string(255))
        case 3: return .ack(sequence: sequence)
        default: return .nack(sequence: sequence)
        }
    }

    mutating func packet() -> Packet {
        let count = chance(20) ? GossipLimits.maxUpdatesPerPacket : int(0...6)
        return Packet(
            sender: string(128), senderAddress: string(255), probe: probe(), gossip: (0..<count).map { _ in update() })
    }

    mutating func pushPull(maxMembers: Int = 20) -> PushPullState {
        PushPullState(sender: string(128), isJoin: chance(2), members: (0..<int(0...maxMembers)).map { _ in member() })
    }
}

func decodeError(_ bytes: [UInt8]) -> AgadirError? {
    do {
        _ = try GossipCodec.decode(bytes)
        return nil
    } catch {
        return error
    }
}

func decodePushPullError(_ bytes: [UInt8], maxMembers: Int = 10_000) -> AgadirError? {
    do {
        _ = try GossipCodec.decodePushPull(bytes, maxMembers: maxMembers)
        return nil
    } catch {
        return error
    }
}

/// One packet for every probe kind and one update of every kind.
func everyKindPacket(_ random: inout RandomGossip) -> [Packet] {
    let probes: [ProbeMessage?] = [
        nil, .ping(sequence: 1, target: "b"), .pingRequest(sequence: 2, target: "c", targetAddress: "10.0.0.3:7946"),
        .ack(sequence: 3), .nack(sequence: UInt32.max),
    ]
    let updates: [GossipUpdate] = [
        .alive(random.member()), .suspect(nodeID: "c", incarnation: .ceiling, from: "a"),
        .dead(nodeID: "d", incarnation: .zero, from: "é"), .left(nodeID: "🦊", incarnation: Incarnation(7) ?? .zero),
    ]
    return probes.map { Packet(sender: "a", senderAddress: "10.0.0.1:7946", probe: $0, gossip: updates) }
}

@Suite struct GossipCodecTests {
    // MARK: - Round trips and sizes

    @Test func roundTrip_everyProbeAndUpdateKind_decodesToTheSamePacket() throws {
        var random = RandomGossip(seed: 1)
        for packet in everyKindPacket(&random) {
            #expect(try GossipCodec.decode(GossipCodec.encode(packet)) == packet)
        }
    }

    @Test func roundTrip_thousandsOfRandomPackets_decodeToTheSamePacket() throws {
        var random = RandomGossip(seed: 2)
        for _ in 0..<1000 {
            let packet = random.packet()
            #expect(try GossipCodec.decode(GossipCodec.encode(packet)) == packet)
        }
    }

    @Test func roundTrip_randomPushPull_decodesToTheSameState() throws {
        var random = RandomGossip(seed: 3)
        for _ in 0..<200 {
            let state = random.pushPull()
            #expect(try GossipCodec.decodePushPull(GossipCodec.encode(state), maxMembers: 20) == state)
        }
    }

    @Test func sizes_headerPlusUpdates_equalTheEncodedBytes_forThousandsOfRandomPackets() {
        var random = RandomGossip(seed: 4)
        for _ in 0..<1000 {
            let packet = random.packet()
            let header = GossipCodec.headerSize(
                sender: packet.sender, senderAddress: packet.senderAddress, probe: packet.probe)
            let updates = packet.gossip.reduce(0) { $0 + GossipCodec.encodedSize($1) }
            #expect(GossipCodec.encode(packet).count == header + updates)
            // The header alone is a packet without updates.
            let bare = Packet(sender: packet.sender, senderAddress: packet.senderAddress, probe: packet.probe)
            #expect(GossipCodec.encode(bare).count == header)
            // Each update's size is the growth it causes.
            for update in packet.gossip.prefix(3) {
                var one = bare
                one.gossip = [update]
                #expect(GossipCodec.encode(one).count == header + GossipCodec.encodedSize(update))
            }
        }
    }

    @Test func sizes_memberSize_isWhatEachMemberAddsToAPushPullMessage() {
        var random = RandomGossip(seed: 5)
        for _ in 0..<500 {
            let member = random.member()
            let empty = PushPullState(sender: "a", isJoin: false, members: [])
            let one = PushPullState(sender: "a", isJoin: false, members: [member])
            #expect(GossipCodec.encode(one).count == GossipCodec.encode(empty).count + GossipCodec.encodedSize(member))
            #expect(GossipCodec.encodedSize(.alive(member)) == 1 + GossipCodec.encodedSize(member))
        }
    }

    /// Any bytes the decoder accepts are the encoding of what it returns: the format has
    /// exactly one encoding per value.
    @Test func canonical_reencodingADecodedPacket_givesTheSameBytes() throws {
        var random = RandomGossip(seed: 6)
        for _ in 0..<300 {
            let bytes = GossipCodec.encode(random.packet())
            #expect(GossipCodec.encode(try GossipCodec.decode(bytes)) == bytes)
        }
    }

    // MARK: - Hostile input

    @Test func truncation_everyPrefixOfValidPackets_throwsMalformedFrame() {
        var random = RandomGossip(seed: 7)
        // Datagrams that fit the default 1400-byte packet limit: every prefix of each.
        var packets = everyKindPacket(&random)
        while packets.count < 50 {
            let packet = random.packet()
            if GossipCodec.encode(packet).count <= 1400 { packets.append(packet) }
        }
        for packet in packets {
            let bytes = GossipCodec.encode(packet)
            for length in 0..<bytes.count {
                let error = decodeError(Array(bytes.prefix(length)))
                #expect(error?.code == .malformedFrame, "prefix \(length) of \(bytes.count)")
                #expect(error?.message.hasPrefix("gossip packet: ") == true)
            }
        }
    }

    @Test func truncation_everyPrefixOfValidPushPull_throwsMalformedFrame() {
        var random = RandomGossip(seed: 8)
        for _ in 0..<15 {
            let bytes = GossipCodec.encode(random.pushPull(maxMembers: 4))
            for length in 0..<bytes.count {
                #expect(decodePushPullError(Array(bytes.prefix(length)))?.code == .malformedFrame)
            }
        }
    }

    @Test func mutations_thousandsOfRandomByteChanges_decodeOrThrowButNeverCrash() throws {
        var random = RandomGossip(seed: 9)
        var decoded = 0
        for round in 0..<3000 {
            var bytes =
                round % 2 == 0
                ? GossipCodec.encode(random.packet()) : GossipCodec.encode(random.pushPull(maxMembers: 4))
            for _ in 0..<random.int(1...4) {
                let position = random.int(0...max(0, bytes.count - 1))
                switch random.int(0...3) {
                case 0 where !bytes.isEmpty: bytes[position] ^= UInt8(1 << random.int(0...7))
                case 1 where !bytes.isEmpty: bytes[position] = UInt8(truncatingIfNeeded: random.rng.next())
                case 2 where !bytes.isEmpty: bytes.remove(at: position)
                default: bytes.insert(UInt8(truncatingIfNeeded: random.rng.next()), at: position)
                }
            }
            if round % 2 == 0 {
                do {
                    let packet = try GossipCodec.decode(bytes)
                    #expect(GossipCodec.encode(packet) == bytes)
                    decoded += 1
                } catch {
                    #expect(error.code == .malformedFrame)
                }
            } else {
                do {
                    let state = try GossipCodec.decodePushPull(bytes, maxMembers: 10_000)
                    #expect(GossipCodec.encode(state) == bytes)
                    decoded += 1
                } catch {
                    #expect(error.code == .malformedFrame)
                }
            }
        }
        // Some mutations land in strings or integers and still decode; most do not.
        #expect(decoded > 0 && decoded < 3000)
    }

    @Test func randomBytes_neverCrashTheDecoders() {
        var rng = SplitMix64(seed: 10)
        for length in 0..<3000 {
            var bytes = rng.bytes(length % 300)
            if bytes.count >= 2 {
                bytes[0] = GossipCodec.version
                bytes[1] = UInt8(1 + length % 2)
            }
            if let error = decodeError(bytes) { #expect(error.code == .malformedFrame) }
            if let error = decodePushPullError(bytes) { #expect(error.code == .malformedFrame) }
        }
    }

    @Test func counts_oversizedMemberCount_isRefusedBeforeAnythingIsAllocated() {
        var w = pushPullPrefix()
        w.u32(UInt32.max)
        // A lying count with an unlimited maxMembers: refused because the bytes cannot hold it.
        let unlimited = decodePushPullError(w.bytes, maxMembers: Int.max)
        #expect(unlimited?.code == .malformedFrame)
        #expect(unlimited?.message == "gossip push-pull: 4294967295 members cannot fit in the 0 bytes left")
        // Over the receiver's limit, whatever follows.
        let limited = decodePushPullError(w.bytes + [UInt8](repeating: 0, count: 1000), maxMembers: 10)
        #expect(limited?.message == "gossip push-pull: 4294967295 members, limit 10")
    }

    @Test func counts_moreMembersThanMaxMembers_isRefused() throws {
        var random = RandomGossip(seed: 11)
        let state = PushPullState(sender: "a", isJoin: true, members: (0..<5).map { _ in random.member() })
        let bytes = GossipCodec.encode(state)
        #expect(try GossipCodec.decodePushPull(bytes, maxMembers: 5) == state)
        #expect(decodePushPullError(bytes, maxMembers: 4)?.message == "gossip push-pull: 5 members, limit 4")
    }

    @Test func counts_moreThan64Updates_isRefused() {
        var w = packetPrefix(probe: 0)
        w.u8(65)
        for _ in 0..<65 {
            w.u8(4)  // LEFT
            w.u8(1)
            w.u8(UInt8(ascii: "x"))
            w.u64(1)
        }
        #expect(decodeError(w.bytes)?.message == "gossip packet: 65 updates, limit 64")
    }

    @Test func counts_moreThan32Labels_isRefused() {
        var w = packetPrefix(probe: 0)
        w.u8(1)
        w.u8(1)  // ALIVE
        memberFields(&w, incarnation: 0)
        w.u8(33)
        for i in 0..<33 {
            w.u8(2)
            w.raw(Array(String(format2(i)).utf8))
            w.u8(0)
        }
        #expect(decodeError(w.bytes)?.message == "gossip packet: 33 labels of update 0, limit 32")
    }

    @Test func incarnation_aboveTheCeiling_isRefused_andTheCeilingAccepted() throws {
        for raw in [Incarnation.ceiling.value + 1, UInt64.max] {
            var suspect = packetPrefix(probe: 0)
            suspect.u8(1)
            suspect.u8(2)  // SUSPECT
            suspect.u8(1)
            suspect.u8(UInt8(ascii: "x"))
            suspect.u64(raw)
            suspect.u8(0)
            let error = decodeError(suspect.bytes)
            #expect(error?.code == .malformedFrame)
            let expected = "gossip packet: incarnation \(raw) of update 0 is above the ceiling \(Incarnation.ceiling)"
            #expect(error?.message == expected)

            var alive = packetPrefix(probe: 0)
            alive.u8(1)
            alive.u8(1)  // ALIVE
            memberFields(&alive, incarnation: raw)
            alive.u8(0)
            #expect(decodeError(alive.bytes)?.message.contains("above the ceiling") == true)
        }
        let atCeiling = Packet(sender: "a", senderAddress: "b", gossip: [.left(nodeID: "x", incarnation: .ceiling)])
        #expect(try GossipCodec.decode(GossipCodec.encode(atCeiling)) == atCeiling)
    }

    @Test func malformed_unknownVersionKindTagsStatusAndFlags_areRefusedByName() {
        let valid = GossipCodec.encode(Packet(sender: "a", senderAddress: "b", probe: .ack(sequence: 1)))
        var version = valid
        version[0] = 2
        #expect(decodeError(version)?.message.hasPrefix("gossip packet: unsupported version 2") == true)
        var kind = valid
        kind[1] = 2
        #expect(decodeError(kind)?.message == "gossip packet: message kind 2, expected 1")
        #expect(decodePushPullError(valid)?.message == "gossip push-pull: message kind 1, expected 2")

        var probe = packetPrefix(probe: 5)
        probe.u8(0)
        #expect(decodeError(probe.bytes)?.message == "gossip packet: unknown probe tag 5")

        var update = packetPrefix(probe: 0)
        update.u8(1)
        update.u8(9)
        update.raw([UInt8](repeating: 0, count: 9))  // as long as the shortest update
        #expect(decodeError(update.bytes)?.message == "gossip packet: unknown tag 9 of update 0")

        var status = packetPrefix(probe: 0)
        status.u8(1)
        status.u8(1)
        status.u8(0)
        status.u8(0)
        status.u8(0)
        status.u8(0)
        status.u64(0)
        status.u8(4)
        #expect(decodeError(status.bytes)?.message == "gossip packet: unknown status 4 of update 0")

        var flags = pushPullPrefix(flags: 2)
        flags.u32(0)
        #expect(decodePushPullError(flags.bytes)?.message == "gossip push-pull: unknown flags 2")
    }

    @Test func malformed_trailingBytes_areRefused() {
        let valid = GossipCodec.encode(Packet(sender: "a", senderAddress: "b"))
        #expect(decodeError(valid + [0])?.message == "gossip packet: 1 trailing bytes after the message")
        let state = GossipCodec.encode(PushPullState(sender: "a", isJoin: false, members: []))
        #expect(
            decodePushPullError(state + [0, 0])?.message == "gossip push-pull: 2 trailing bytes after the message")
    }

    @Test func malformed_invalidUTF8_andOverlongStrings_areRefused() {
        var utf8 = ByteWriter()
        utf8.u8(GossipCodec.version)
        utf8.u8(1)
        utf8.u8(2)
        utf8.raw([0xC3, 0x28])  // a lead byte followed by ASCII
        #expect(decodeError(utf8.bytes)?.message == "gossip packet: sender node id is not valid UTF-8")

        var long = ByteWriter()
        long.u8(GossipCodec.version)
        long.u8(1)
        long.u8(129)
        long.raw([UInt8](repeating: UInt8(ascii: "a"), count: 129))
        #expect(decodeError(long.bytes)?.message == "gossip packet: sender node id is 129 bytes, limit 128")
    }

    @Test func malformed_pushPullOver16MiB_isRefusedBeforeDecoding() {
        let bytes = [UInt8](repeating: 0, count: GossipLimits.maxPushPullBytes + 1)
        #expect(decodePushPullError(bytes)?.message == "gossip push-pull: message is 16777217 bytes, limit 16777216")
    }

    // MARK: - Labels

    @Test func labels_anyInsertionOrder_encodesToTheSameBytes_keysAscendingByBytes() throws {
        let keys = ["zone", "rack", "a", "é", "Z", "row", "ⵣ", "aa"]
        var rng = SplitMix64(seed: 12)
        var encodings = Set<[UInt8]>()
        for _ in 0..<50 {
            var labels: [String: String] = [:]
            for key in keys.shuffled(using: &rng) { labels[key] = "v-\(key)" }
            let member = Member(nodeID: "n", site: "s", labels: labels, clientAddress: "c", peerAddress: "p")
            encodings.insert(GossipCodec.encode(Packet(sender: "n", senderAddress: "p", gossip: [.alive(member)])))
        }
        #expect(encodings.count == 1)
        // Byte order: uppercase before lowercase, a prefix before its extensions, ASCII
        // before multi-byte UTF-8.
        var expected = ByteWriter()
        for key in ["Z", "a", "aa", "rack", "row", "zone", "é", "ⵣ"] {
            expected.u8(UInt8(key.utf8.count))
            expected.raw(Array(key.utf8))
            expected.u8(UInt8(key.utf8.count + 2))
            expected.raw(Array("v-\(key)".utf8))
        }
        let bytes = try #require(encodings.first)
        #expect(Array(bytes.suffix(expected.bytes.count)) == expected.bytes)
        #expect(bytes[bytes.count - expected.bytes.count - 1] == UInt8(keys.count))
    }

    @Test func labels_outOfOrderOrDuplicateKeys_areRefused() {
        func packet(_ labels: [(String, String)]) -> [UInt8] {
            var w = packetPrefix(probe: 0)
            w.u8(1)
            w.u8(1)
            memberFields(&w, incarnation: 0)
            w.u8(UInt8(labels.count))
            for (key, value) in labels {
                w.u8(UInt8(key.utf8.count))
                w.raw(Array(key.utf8))
                w.u8(UInt8(value.utf8.count))
                w.raw(Array(value.utf8))
            }
            return w.bytes
        }
        #expect(decodeError(packet([("a", "1"), ("b", "2")])) == nil)
        #expect(
            decodeError(packet([("b", "1"), ("a", "2")]))?.message
                == "gossip packet: label keys of update 0 are not in strictly ascending byte order")
        #expect(decodeError(packet([("a", "1"), ("a", "2")]))?.message.contains("strictly ascending") == true)
        // Different bytes, equal Swift strings (canonically equivalent): a duplicate.
        #expect(
            decodeError(packet([("e\u{301}", "1"), ("\u{e9}", "2")]))?.message
                == "gossip packet: label key 'é' of update 0 appears twice")
    }

    // MARK: - Values beyond the limits

    @Test func clipping_oversizedValues_encodeToDecodableBytes_withExactSizes() throws {
        let long = String(repeating: "🦊", count: 100)  // 400 bytes
        var labels = [
            "k": "v", String(repeating: "k", count: 65): "dropped", "big": String(repeating: "v", count: 256),
        ]
        for i in 0..<40 { labels["l\(format2(i))"] = "x" }
        let member = Member(
            nodeID: long, site: long, labels: labels, clientAddress: long, peerAddress: long, incarnation: .ceiling)
        let packet = Packet(
            sender: long, senderAddress: long, probe: .pingRequest(sequence: 1, target: long, targetAddress: long),
            gossip: Array(repeating: .alive(member), count: 70))
        let bytes = GossipCodec.encode(packet)
        let header = GossipCodec.headerSize(sender: long, senderAddress: long, probe: packet.probe)
        #expect(bytes.count == header + 64 * GossipCodec.encodedSize(.alive(member)))
        let decoded = try GossipCodec.decode(bytes)
        #expect(decoded.sender == String(repeating: "🦊", count: 32))
        #expect(decoded.senderAddress == String(repeating: "🦊", count: 63))
        #expect(decoded.gossip.count == 64)
        guard case .alive(let clipped) = decoded.gossip[0] else {
            Issue.record("expected an alive update")
            return
        }
        #expect(clipped.site == String(repeating: "🦊", count: 16))
        #expect(clipped.labels.count == 32)
        // Oversized labels are left out, then the first 32 by key are kept: "k", "l00" ... "l30".
        #expect(clipped.labels["big"] == nil)
        #expect(clipped.labels["k"] == "v")
        #expect(clipped.labels["l30"] == "x" && clipped.labels["l31"] == nil)
        #expect(throws: AgadirError.self) { try GossipLimits.validate(member) }

        // Few labels, one of them oversized: left out, and the size still exact.
        let few = Member(
            nodeID: "n", site: "s", labels: ["ok": "1", "big": String(repeating: "v", count: 256)], clientAddress: "c",
            peerAddress: "p")
        let one = GossipCodec.encode(Packet(sender: "n", senderAddress: "p", gossip: [.alive(few)]))
        let oneHeader = GossipCodec.headerSize(sender: "n", senderAddress: "p", probe: nil)
        #expect(one.count == oneHeader + 1 + GossipCodec.encodedSize(few))
        var kept = few
        kept.labels = ["ok": "1"]
        #expect(try GossipCodec.decode(one).gossip == [.alive(kept)])
    }

    @Test func validate_acceptsRecordsWithinTheLimits_andNamesTheFieldOtherwise() throws {
        let ok = Member(nodeID: "n1", site: "rabat", labels: ["rack": "r1"], clientAddress: "a:1", peerAddress: "a:2")
        try GossipLimits.validate(ok)
        var bad = ok
        bad.site = String(repeating: "s", count: 65)
        #expect(throws: AgadirError.self) { try GossipLimits.validate(bad) }
        bad = ok
        bad.nodeID = ""
        #expect(throws: AgadirError.self) { try GossipLimits.validate(bad) }
    }

    // MARK: - Stream framing

    @Test func streamFrame_prefixesTheLength_andLimitsIt() throws {
        let frame = GossipCodec.streamFrame([1, 2, 3])
        #expect(frame == [0, 0, 0, 3, 1, 2, 3])
        #expect(try GossipCodec.streamFrameLength(UInt32(GossipLimits.maxStreamFrameBytes)) == 16_777_262)
        #expect(throws: AgadirError.self) {
            try GossipCodec.streamFrameLength(UInt32(GossipLimits.maxStreamFrameBytes + 1))
        }
    }
}

// MARK: - Hand-built bytes

/// Version, PACKET, sender "a", address "b", then the probe tag (no body: use 0 for none).
private func packetPrefix(probe: UInt8) -> ByteWriter {
    var w = ByteWriter()
    w.u8(GossipCodec.version)
    w.u8(1)
    w.u8(1)
    w.u8(UInt8(ascii: "a"))
    w.u8(1)
    w.u8(UInt8(ascii: "b"))
    w.u8(probe)
    return w
}

private func pushPullPrefix(flags: UInt8 = 0) -> ByteWriter {
    var w = ByteWriter()
    w.u8(GossipCodec.version)
    w.u8(2)
    w.u8(1)
    w.u8(UInt8(ascii: "a"))
    w.u8(flags)
    return w
}

/// A member's fields up to (not including) its label count: four empty strings, the
/// incarnation, status alive, layout version 0.
private func memberFields(_ w: inout ByteWriter, incarnation: UInt64) {
    for _ in 0..<4 { w.u8(0) }
    w.u64(incarnation)
    w.u8(0)
    w.u64(0)
}

private func format2(_ i: Int) -> String { i < 10 ? "0\(i)" : "\(i)" }
