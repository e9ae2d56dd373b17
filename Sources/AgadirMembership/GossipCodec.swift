import AgadirCore

/// Bounds of the gossip codec: what a decoder accepts, and what an encoder emits.
///
/// Strings are counted in UTF-8 bytes. A decoder refuses anything beyond these limits
/// with `MALFORMED_FRAME`; an encoder never emits it (see `GossipCodec`, "Values beyond
/// the limits"). `validate(_:)` checks a local record against them.
public enum GossipLimits {
    /// Longest node id, bytes.
    public static let maxNodeIDBytes = 128
    /// Longest site name, bytes.
    public static let maxSiteBytes = 64
    /// Longest address (`HOST:PORT`), bytes.
    public static let maxAddressBytes = 255
    /// Longest label key, bytes.
    public static let maxLabelKeyBytes = 64
    /// Longest label value, bytes.
    public static let maxLabelValueBytes = 255
    /// Most labels on one member.
    public static let maxLabels = 32
    /// Most gossip updates in one datagram.
    public static let maxUpdatesPerPacket = 64
    /// Largest push-pull message (plaintext, before authentication), bytes: 16 MiB.
    public static let maxPushPullBytes = 16 << 20
    /// Largest push-pull stream frame body (the sealed message), bytes: 16 MiB + 26.
    public static let maxStreamFrameBytes = maxPushPullBytes + Keyring.overhead

    /// Checks a member record against the limits (for records built from configuration,
    /// which the encoder would otherwise clip). The message names the field and the limit.
    public static func validate(_ member: Member) throws(AgadirError) {
        func check(_ value: String, _ field: String, _ limit: Int) throws(AgadirError) {
            let n = value.utf8.count
            guard n <= limit else {
                throw AgadirError(
                    .invalidArgument, "\(field) '\(value.prefix(40))…' is \(n) bytes; gossip allows at most \(limit)")
            }
        }
        guard !member.nodeID.isEmpty else { throw AgadirError(.invalidArgument, "node id is empty") }
        try check(member.nodeID, "node id", maxNodeIDBytes)
        try check(member.site, "site", maxSiteBytes)
        try check(member.clientAddress, "client address", maxAddressBytes)
        try check(member.peerAddress, "peer address", maxAddressBytes)
        guard member.labels.count <= maxLabels else {
            throw AgadirError(
                .invalidArgument, "node has \(member.labels.count) labels; gossip allows at most \(maxLabels)")
        }
        for (key, value) in member.labels {
            try check(key, "label key", maxLabelKeyBytes)
            try check(value, "value of label '\(key)'", maxLabelValueBytes)
        }
    }
}

/// Binary encoding of the gossip messages: one UDP datagram (`Packet`) and one push-pull
/// message (`PushPullState`). Pure: no I/O, no authentication (see `Keyring`).
///
/// All integers are big-endian. `str8` is a u8 byte count then that many bytes of UTF-8.
/// docs/protocol.md, "Gossip (peer) protocol", is the normative description.
///
/// Datagram (`Packet`):
///
///     u8   version = 1
///     u8   kind = 1 (PACKET)
///     str8 sender node id            (≤ 128 bytes)
///     str8 sender peer address       (≤ 255 bytes)
///     u8   probe tag                 0 none, 1 PING, 2 PING_REQ, 3 ACK, 4 NACK
///          PING:     u32 sequence, str8 target node id
///          PING_REQ: u32 sequence, str8 target node id, str8 target address
///          ACK/NACK: u32 sequence
///     u8   update count n            (≤ 64)
///     n ×  update
///
/// Update:
///
///     u8   tag                       1 ALIVE, 2 SUSPECT, 3 DEAD, 4 LEFT
///          ALIVE:   member
///          SUSPECT: str8 node id, u64 incarnation, str8 accuser node id
///          DEAD:    str8 node id, u64 incarnation, str8 accuser node id
///          LEFT:    str8 node id, u64 incarnation
///
/// Member:
///
///     str8 node id (≤ 128), str8 site (≤ 64), str8 client address (≤ 255),
///     str8 peer address (≤ 255), u64 incarnation (≤ 2^62), u8 status (0 alive,
///     1 suspect, 2 dead, 3 left), u64 layout version, u8 label count (≤ 32), then per
///     label str8 key (≤ 64), str8 value (≤ 255), keys in strictly ascending byte order.
///
/// Push-pull message (`PushPullState`):
///
///     u8   version = 1
///     u8   kind = 2 (PUSH_PULL)
///     str8 sender node id
///     u8   flags                     bit 0 = JOIN, other bits 0
///     u32  member count m            (≤ the receiver's maxMembers)
///     m ×  member
///
/// Nothing may follow the last field. Every violation (unknown version, kind or tag,
/// truncation, trailing bytes, invalid UTF-8, a count or length over its limit, an
/// incarnation above `Incarnation.ceiling`, unsorted or duplicate label keys) is an
/// `AgadirError(.malformedFrame, "gossip ...")`.
///
/// Values beyond the limits: the encoders never crash and never emit what a decoder
/// refuses. A string longer than its limit is cut at the last whole Unicode scalar that
/// fits, labels with an oversized key or value are left out and only the first 32 (by
/// key) are kept, updates after the 64th are left out, and members that would take a
/// push-pull message over 16 MiB are left out. The size functions account for that.
/// Local records should be checked with `GossipLimits.validate(_:)` so it never happens.
public enum GossipCodec {
    /// Format version, first byte of every message.
    public static let version: UInt8 = 1

    enum Kind: UInt8 {
        case packet = 1
        case pushPull = 2
    }

    enum ProbeTag: UInt8 {
        case absent = 0
        case ping = 1
        case pingRequest = 2
        case ack = 3
        case nack = 4
    }

    enum UpdateTag: UInt8 {
        case alive = 1
        case suspect = 2
        case dead = 3
        case left = 4
    }

    /// Bytes of the smallest member: four empty strings, incarnation, status, layout
    /// version and an empty label list.
    static let minimumMemberBytes = 4 + 8 + 1 + 8 + 1
    /// Bytes of the smallest update: LEFT with an empty node id.
    static let minimumUpdateBytes = 1 + 1 + 8
    /// version, kind, sender length, flags, member count.
    static let pushPullFixedBytes = 1 + 1 + 1 + 1 + 4

    // MARK: - Datagram

    /// The plaintext of one datagram.
    public static func encode(_ packet: Packet) -> [UInt8] {
        let updates = packet.gossip.prefix(GossipLimits.maxUpdatesPerPacket)
        var size = headerSize(sender: packet.sender, senderAddress: packet.senderAddress, probe: packet.probe)
        for update in updates { size += encodedSize(update) }
        var w = ByteWriter(capacity: size)
        w.u8(version)
        w.u8(Kind.packet.rawValue)
        w.str8(packet.sender, limit: GossipLimits.maxNodeIDBytes)
        w.str8(packet.senderAddress, limit: GossipLimits.maxAddressBytes)
        switch packet.probe {
        case nil:
            w.u8(ProbeTag.absent.rawValue)
        case .ping(let sequence, let target):
            w.u8(ProbeTag.ping.rawValue)
            w.u32(sequence)
            w.str8(target, limit: GossipLimits.maxNodeIDBytes)
        case .pingRequest(let sequence, let target, let targetAddress):
            w.u8(ProbeTag.pingRequest.rawValue)
            w.u32(sequence)
            w.str8(target, limit: GossipLimits.maxNodeIDBytes)
            w.str8(targetAddress, limit: GossipLimits.maxAddressBytes)
        case .ack(let sequence):
            w.u8(ProbeTag.ack.rawValue)
            w.u32(sequence)
        case .nack(let sequence):
            w.u8(ProbeTag.nack.rawValue)
            w.u32(sequence)
        }
        w.u8(UInt8(updates.count))
        for update in updates { w.update(update) }
        return w.bytes
    }

    /// Decodes the plaintext of one datagram; throws MALFORMED_FRAME for anything that is
    /// not exactly one valid packet.
    public static func decode(_ bytes: [UInt8]) throws(AgadirError) -> Packet {
        var r = GossipReader(bytes, context: "gossip packet")
        try r.preamble(.packet)
        let sender = try r.str8("sender node id", limit: GossipLimits.maxNodeIDBytes)
        let senderAddress = try r.str8("sender address", limit: GossipLimits.maxAddressBytes)
        let probe: ProbeMessage?
        let tag = try r.u8("probe tag")
        switch ProbeTag(rawValue: tag) {
        case .absent?:
            probe = nil
        case .ping?:
            probe = .ping(
                sequence: try r.u32("ping sequence"),
                target: try r.str8("ping target", limit: GossipLimits.maxNodeIDBytes))
        case .pingRequest?:
            probe = .pingRequest(
                sequence: try r.u32("ping-request sequence"),
                target: try r.str8("ping-request target", limit: GossipLimits.maxNodeIDBytes),
                targetAddress: try r.str8("ping-request target address", limit: GossipLimits.maxAddressBytes))
        case .ack?:
            probe = .ack(sequence: try r.u32("ack sequence"))
        case .nack?:
            probe = .nack(sequence: try r.u32("nack sequence"))
        case nil:
            throw r.fail("unknown probe tag \(tag)")
        }
        let count = Int(try r.u8("update count"))
        try r.checkCount(count, "updates", limit: GossipLimits.maxUpdatesPerPacket, minimumBytes: minimumUpdateBytes)
        var gossip: [GossipUpdate] = []
        gossip.reserveCapacity(count)
        for index in 0..<count { gossip.append(try r.update(index)) }
        try r.end()
        return Packet(sender: sender, senderAddress: senderAddress, probe: probe, gossip: gossip)
    }

    // MARK: - Push-pull

    /// The plaintext of one push-pull message. Members that would take it over
    /// `GossipLimits.maxPushPullBytes` are left out (the receiver would refuse it whole).
    public static func encode(_ state: PushPullState) -> [UInt8] {
        var included: [Member] = []
        var size = pushPullFixedBytes + clippedCount(state.sender, GossipLimits.maxNodeIDBytes)
        for member in state.members {
            let n = encodedSize(member)
            guard size + n <= GossipLimits.maxPushPullBytes else { continue }
            size += n
            included.append(member)
        }
        var w = ByteWriter(capacity: size)
        w.u8(version)
        w.u8(Kind.pushPull.rawValue)
        w.str8(state.sender, limit: GossipLimits.maxNodeIDBytes)
        w.u8(state.isJoin ? 1 : 0)
        w.u32(UInt32(included.count))
        for member in included { w.member(member) }
        return w.bytes
    }

    /// Decodes one push-pull message holding at most `maxMembers` members.
    public static func decodePushPull(_ bytes: [UInt8], maxMembers: Int) throws(AgadirError) -> PushPullState {
        var r = GossipReader(bytes, context: "gossip push-pull")
        guard bytes.count <= GossipLimits.maxPushPullBytes else {
            throw r.fail("message is \(bytes.count) bytes, limit \(GossipLimits.maxPushPullBytes)")
        }
        try r.preamble(.pushPull)
        let sender = try r.str8("sender node id", limit: GossipLimits.maxNodeIDBytes)
        let flags = try r.u8("flags")
        guard flags & ~1 == 0 else { throw r.fail("unknown flags \(flags)") }
        let count = Int(try r.u32("member count"))
        try r.checkCount(count, "members", limit: max(0, maxMembers), minimumBytes: minimumMemberBytes)
        var members: [Member] = []
        members.reserveCapacity(count)
        for index in 0..<count { members.append(try r.member("member \(index)")) }
        try r.end()
        return PushPullState(sender: sender, isJoin: flags & 1 == 1, members: members)
    }

    // MARK: - Stream framing

    /// One push-pull stream frame: the sealed message's length as a u32, then the message.
    public static func streamFrame(_ sealed: [UInt8]) -> [UInt8] {
        var w = ByteWriter(capacity: 4 + sealed.count)
        w.u32(UInt32(clamping: sealed.count))
        w.raw(sealed)
        return w.bytes
    }

    /// Checks the u32 length prefix of a stream frame before its body is read.
    public static func streamFrameLength(_ prefix: UInt32) throws(AgadirError) -> Int {
        let n = Int(prefix)
        guard n <= GossipLimits.maxStreamFrameBytes else {
            throw AgadirError(
                .malformedFrame,
                "gossip stream: frame announces \(n) bytes, limit \(GossipLimits.maxStreamFrameBytes); closing")
        }
        return n
    }

    // MARK: - Sizes

    /// Bytes `update` takes in a datagram.
    public static func encodedSize(_ update: GossipUpdate) -> Int {
        switch update {
        case .alive(let member):
            1 + encodedSize(member)
        case .suspect(let id, _, let from), .dead(let id, _, let from):
            1 + str8Size(id, GossipLimits.maxNodeIDBytes) + 8 + str8Size(from, GossipLimits.maxNodeIDBytes)
        case .left(let id, _):
            1 + str8Size(id, GossipLimits.maxNodeIDBytes) + 8
        }
    }

    /// Bytes of a datagram without its updates: `encode(packet).count` is this plus the
    /// `encodedSize` of each update (at most `GossipLimits.maxUpdatesPerPacket` of them).
    public static func headerSize(sender: String, senderAddress: String, probe: ProbeMessage?) -> Int {
        let probeSize: Int
        switch probe {
        case nil: probeSize = 0
        case .ping(_, let target): probeSize = 4 + str8Size(target, GossipLimits.maxNodeIDBytes)
        case .pingRequest(_, let target, let address):
            probeSize =
                4 + str8Size(target, GossipLimits.maxNodeIDBytes)
                + str8Size(address, GossipLimits.maxAddressBytes)
        case .ack, .nack: probeSize = 4
        }
        return 2 + str8Size(sender, GossipLimits.maxNodeIDBytes) + str8Size(senderAddress, GossipLimits.maxAddressBytes)
            + 1 + probeSize + 1
    }

    /// Bytes `member` takes in a datagram or a push-pull message.
    public static func encodedSize(_ member: Member) -> Int {
        let size =
            str8Size(member.nodeID, GossipLimits.maxNodeIDBytes)
            + str8Size(member.site, GossipLimits.maxSiteBytes)
            + str8Size(member.clientAddress, GossipLimits.maxAddressBytes)
            + str8Size(member.peerAddress, GossipLimits.maxAddressBytes) + 8 + 1 + 8 + 1
        // The common case, every label within the limits, needs no sorting.
        var labelBytes = 0
        var allFit = member.labels.count <= GossipLimits.maxLabels
        for (key, value) in member.labels where allFit {
            let k = key.utf8.count
            let v = value.utf8.count
            allFit = k <= GossipLimits.maxLabelKeyBytes && v <= GossipLimits.maxLabelValueBytes
            labelBytes += 2 + k + v
        }
        if !allFit {
            labelBytes = encodableLabels(member.labels).reduce(0) { $0 + 2 + $1.key.utf8.count + $1.value.utf8.count }
        }
        return size + labelBytes
    }

    // MARK: - Clipping (values beyond the limits)

    static func str8Size(_ s: String, _ limit: Int) -> Int { 1 + clippedCount(s, limit) }

    /// How many bytes of `s` are written: all of them when within `limit`, else the
    /// longest prefix of whole Unicode scalars that fits.
    static func clippedCount(_ s: String, _ limit: Int) -> Int {
        let n = s.utf8.count
        if n <= limit { return n }
        var kept = 0
        for scalar in s.unicodeScalars {
            let width = UTF8.width(scalar)
            if kept + width > limit { break }
            kept += width
        }
        return kept
    }

    /// The labels written, in order: those within the size limits, ascending by the
    /// bytes of their key, at most `maxLabels` of them.
    static func encodableLabels(_ labels: [String: String]) -> [(key: String, value: String)] {
        let fitting = labels.filter { key, value in
            key.utf8.count <= GossipLimits.maxLabelKeyBytes && value.utf8.count <= GossipLimits.maxLabelValueBytes
        }
        let sorted = fitting.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        return Array(sorted.prefix(GossipLimits.maxLabels))
    }
}

// MARK: - Writing

extension ByteWriter {
    /// u8 length, then the UTF-8 bytes of `s` clipped to `limit` (see `GossipCodec.clippedCount`).
    fileprivate mutating func str8(_ s: String, limit: Int) {
        let n = GossipCodec.clippedCount(s, limit)
        u8(UInt8(truncatingIfNeeded: n))
        raw(s.utf8.prefix(n))
    }

    fileprivate mutating func member(_ m: Member) {
        str8(m.nodeID, limit: GossipLimits.maxNodeIDBytes)
        str8(m.site, limit: GossipLimits.maxSiteBytes)
        str8(m.clientAddress, limit: GossipLimits.maxAddressBytes)
        str8(m.peerAddress, limit: GossipLimits.maxAddressBytes)
        u64(m.incarnation.value)
        u8(m.status.rawValue)
        u64(m.layoutVersion)
        let labels = GossipCodec.encodableLabels(m.labels)
        u8(UInt8(labels.count))
        for (key, value) in labels {
            str8(key, limit: GossipLimits.maxLabelKeyBytes)
            str8(value, limit: GossipLimits.maxLabelValueBytes)
        }
    }

    fileprivate mutating func update(_ update: GossipUpdate) {
        switch update {
        case .alive(let m):
            u8(GossipCodec.UpdateTag.alive.rawValue)
            member(m)
        case .suspect(let id, let incarnation, let from):
            u8(GossipCodec.UpdateTag.suspect.rawValue)
            accusation(id, incarnation, from)
        case .dead(let id, let incarnation, let from):
            u8(GossipCodec.UpdateTag.dead.rawValue)
            accusation(id, incarnation, from)
        case .left(let id, let incarnation):
            u8(GossipCodec.UpdateTag.left.rawValue)
            str8(id, limit: GossipLimits.maxNodeIDBytes)
            u64(incarnation.value)
        }
    }

    private mutating func accusation(_ id: String, _ incarnation: Incarnation, _ from: String) {
        str8(id, limit: GossipLimits.maxNodeIDBytes)
        u64(incarnation.value)
        str8(from, limit: GossipLimits.maxNodeIDBytes)
    }
}

// MARK: - Reading

/// `ByteReader` plus the gossip fields; every error is MALFORMED_FRAME prefixed by the
/// message kind ("gossip packet: ...").
private struct GossipReader {
    var reader: ByteReader
    let context: String

    init(_ bytes: [UInt8], context: String) {
        reader = ByteReader(bytes, errorCode: .malformedFrame, context: context)
        self.context = context
    }

    func fail(_ what: String) -> AgadirError { AgadirError(.malformedFrame, "\(context): \(what)") }

    mutating func u8(_ what: String) throws(AgadirError) -> UInt8 { try reader.u8(what) }
    mutating func u32(_ what: String) throws(AgadirError) -> UInt32 { try reader.u32(what) }
    mutating func u64(_ what: String) throws(AgadirError) -> UInt64 { try reader.u64(what) }

    mutating func preamble(_ kind: GossipCodec.Kind) throws(AgadirError) {
        let v = try u8("version")
        guard v == GossipCodec.version else {
            throw fail(
                "unsupported version \(v) (this node speaks \(GossipCodec.version)); "
                    + "run a release that speaks the same gossip version on every node")
        }
        let k = try u8("message kind")
        guard k == kind.rawValue else { throw fail("message kind \(k), expected \(kind.rawValue)") }
    }

    mutating func end() throws(AgadirError) {
        guard reader.isAtEnd else { throw fail("\(reader.remaining) trailing bytes after the message") }
    }

    /// Refuses a count over its limit, or one the remaining bytes cannot hold, before
    /// anything is allocated for it.
    func checkCount(_ count: Int, _ what: String, limit: Int, minimumBytes: Int) throws(AgadirError) {
        guard count <= limit else { throw fail("\(count) \(what), limit \(limit)") }
        guard count <= reader.remaining / minimumBytes else {
            throw fail("\(count) \(what) cannot fit in the \(reader.remaining) bytes left")
        }
    }

    mutating func str8(_ what: String, limit: Int) throws(AgadirError) -> String {
        let n = Int(try u8("length of \(what)"))
        guard n <= limit else { throw fail("\(what) is \(n) bytes, limit \(limit)") }
        let bytes = try reader.raw(n, what)
        guard let s = String(validating: bytes, as: UTF8.self) else { throw fail("\(what) is not valid UTF-8") }
        return s
    }

    mutating func incarnation(_ what: String) throws(AgadirError) -> Incarnation {
        let raw = try u64("incarnation of \(what)")
        guard let incarnation = Incarnation(raw) else {
            throw fail("incarnation \(raw) of \(what) is above the ceiling \(Incarnation.ceiling)")
        }
        return incarnation
    }

    mutating func member(_ what: String) throws(AgadirError) -> Member {
        let nodeID = try str8("node id of \(what)", limit: GossipLimits.maxNodeIDBytes)
        let site = try str8("site of \(what)", limit: GossipLimits.maxSiteBytes)
        let clientAddress = try str8("client address of \(what)", limit: GossipLimits.maxAddressBytes)
        let peerAddress = try str8("peer address of \(what)", limit: GossipLimits.maxAddressBytes)
        let incarnation = try incarnation(what)
        let rawStatus = try u8("status of \(what)")
        guard let status = MemberStatus(rawValue: rawStatus) else {
            throw fail("unknown status \(rawStatus) of \(what)")
        }
        let layoutVersion = try u64("layout version of \(what)")
        let count = Int(try u8("label count of \(what)"))
        try checkCount(count, "labels of \(what)", limit: GossipLimits.maxLabels, minimumBytes: 2)
        var labels: [String: String] = [:]
        labels.reserveCapacity(count)
        var previous: String?
        for _ in 0..<count {
            let key = try str8("label key of \(what)", limit: GossipLimits.maxLabelKeyBytes)
            let value = try str8("label value of \(what)", limit: GossipLimits.maxLabelValueBytes)
            if let previous, !previous.utf8.lexicographicallyPrecedes(key.utf8) {
                throw fail("label keys of \(what) are not in strictly ascending byte order")
            }
            // Distinct bytes may still be equal Strings (canonically equivalent Unicode).
            guard labels.updateValue(value, forKey: key) == nil else {
                throw fail("label key '\(key)' of \(what) appears twice")
            }
            previous = key
        }
        return Member(
            nodeID: nodeID, site: site, labels: labels, clientAddress: clientAddress, peerAddress: peerAddress,
            incarnation: incarnation, status: status, layoutVersion: layoutVersion)
    }

    mutating func update(_ index: Int) throws(AgadirError) -> GossipUpdate {
        let what = "update \(index)"
        let tag = try u8("tag of \(what)")
        switch GossipCodec.UpdateTag(rawValue: tag) {
        case .alive?:
            return .alive(try member(what))
        case .suspect?:
            return .suspect(
                nodeID: try str8("node id of \(what)", limit: GossipLimits.maxNodeIDBytes),
                incarnation: try incarnation(what),
                from: try str8("accuser of \(what)", limit: GossipLimits.maxNodeIDBytes))
        case .dead?:
            return .dead(
                nodeID: try str8("node id of \(what)", limit: GossipLimits.maxNodeIDBytes),
                incarnation: try incarnation(what),
                from: try str8("accuser of \(what)", limit: GossipLimits.maxNodeIDBytes))
        case .left?:
            return .left(
                nodeID: try str8("node id of \(what)", limit: GossipLimits.maxNodeIDBytes),
                incarnation: try incarnation(what))
        case nil:
            throw fail("unknown tag \(tag) of \(what)")
        }
    }
}
