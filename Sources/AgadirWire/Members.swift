import AgadirCore

/// One member of the cluster as a node sees it: the answer to MEMBERS, one record per
/// member (docs/protocol.md, "MEMBERS"). `Codable` with the property names as keys, which
/// is what `agadir admin members --json` prints.
public struct MemberInfo: Sendable, Equatable, Codable {
    /// The member's node id.
    public var nodeID: String
    /// The site (data centre) the member belongs to.
    public var site: String
    /// The site's labels, such as `country=MA`.
    public var labels: [String: String]
    /// Client endpoint, `HOST:PORT`.
    public var clientAddress: String
    /// Peer (gossip) endpoint, `HOST:PORT`; empty when the node has no peer endpoint.
    public var peerAddress: String
    /// SWIM incarnation number the answering node knows for this member.
    public var incarnation: UInt64
    /// `alive`, `suspect`, `dead` or `left` (see `MemberInfo.State`). Newer nodes may add
    /// states; show an unknown one as it is.
    public var state: String
    /// The newest layout version the member announced.
    public var layoutVersion: UInt64
    /// Milliseconds since the answering node last heard from this member; -1 when it never
    /// did, and for the answering node itself.
    public var lastContactMillisAgo: Int64

    /// The states protocol v1 defines, as they are spelled on the wire.
    public enum State {
        public static let alive = "alive"
        public static let suspect = "suspect"
        public static let dead = "dead"
        public static let left = "left"
    }

    public init(
        nodeID: String, site: String, labels: [String: String] = [:], clientAddress: String, peerAddress: String,
        incarnation: UInt64, state: String, layoutVersion: UInt64, lastContactMillisAgo: Int64
    ) {
        self.nodeID = nodeID
        self.site = site
        self.labels = labels
        self.clientAddress = clientAddress
        self.peerAddress = peerAddress
        self.incarnation = incarnation
        self.state = state
        self.layoutVersion = layoutVersion
        self.lastContactMillisAgo = lastContactMillisAgo
    }
}

/// MEMBERS body:
///
///     u32 n, then n times:
///       string16 nodeID | string16 site
///       u16 l, then l times: string16 labelName | string16 labelValue   (sorted by name, names unique)
///       string16 clientAddress | string16 peerAddress
///       u64 incarnation | string16 state | u64 layoutVersion
///       u64 lastContactMillisAgo (a two's-complement i64; -1 = never / the answering node)
///
/// Nothing may follow the last record.
public enum MemberListCodec {
    /// Most members in one MEMBERS body.
    public static let maxMembers = 100_000
    /// Most labels of one member.
    public static let maxLabels = 64
    /// Bytes of the smallest record: every string empty and no labels.
    static let minRecordBytes = 2 + 2 + 2 + 2 + 2 + 8 + 2 + 8 + 8

    /// Encodes `members`; refuses (INTERNAL_ERROR, naming the member) what a reader would
    /// refuse: more than `maxMembers` members, more than `maxLabels` labels, strings over
    /// 65535 bytes, a last contact below -1.
    public static func encode(_ members: [MemberInfo]) throws(AgadirError) -> [UInt8] {
        guard members.count <= maxMembers else {
            throw AgadirError(.internalError, "MEMBERS: \(members.count) members exceed the protocol's \(maxMembers)")
        }
        var w = ByteWriter(capacity: 4 + members.count * 96)
        w.u32(UInt32(members.count))
        for m in members {
            func string(_ s: String, _ what: String) throws(AgadirError) {
                guard s.utf8.count <= Int(UInt16.max) else {
                    throw AgadirError(
                        .internalError,
                        "MEMBERS: \(what) of member '\(m.nodeID.prefix(64))' has \(s.utf8.count) bytes; at most 65535")
                }
                w.string16(s)
            }
            guard m.labels.count <= maxLabels else {
                throw AgadirError(
                    .internalError,
                    "MEMBERS: member '\(m.nodeID.prefix(64))' has \(m.labels.count) labels; at most \(maxLabels)")
            }
            guard m.lastContactMillisAgo >= -1 else {
                throw AgadirError(
                    .internalError,
                    "MEMBERS: member '\(m.nodeID.prefix(64))' has last contact \(m.lastContactMillisAgo) ms ago")
            }
            try string(m.nodeID, "node id")
            try string(m.site, "site")
            w.u16(UInt16(m.labels.count))
            for name in m.labels.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
                try string(name, "label name")
                try string(m.labels[name] ?? "", "label value")
            }
            try string(m.clientAddress, "client address")
            try string(m.peerAddress, "peer address")
            w.u64(m.incarnation)
            try string(m.state, "state")
            w.u64(m.layoutVersion)
            w.u64(UInt64(bitPattern: m.lastContactMillisAgo))
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8], limits: WireLimits = .default) throws(AgadirError) -> [MemberInfo] {
        guard bytes.count <= limits.maxListingBodyBytes else {
            throw AgadirError(
                .malformedFrame, "MEMBERS body has \(bytes.count) bytes; the limit is \(limits.maxListingBodyBytes)")
        }
        var r = ByteReader(bytes, errorCode: .malformedFrame, context: "MEMBERS body")
        let n = Int(try r.u32("member count"))
        guard n <= maxMembers, n <= r.remaining / minRecordBytes else {
            throw AgadirError(
                .malformedFrame, "MEMBERS body claims \(n) members in \(bytes.count) bytes (at most \(maxMembers))")
        }
        var out: [MemberInfo] = []
        out.reserveCapacity(n)
        for i in 0..<n {
            let nodeID = try r.string16("node id of member \(i)")
            let site = try r.string16("site of member \(i)")
            let labelCount = Int(try r.u16("label count of member \(i)"))
            guard labelCount <= maxLabels else {
                throw AgadirError(
                    .malformedFrame,
                    "MEMBERS body: member '\(nodeID)' claims \(labelCount) labels; at most \(maxLabels)")
            }
            var labels: [String: String] = [:]
            for _ in 0..<labelCount {
                let name = try r.string16("label name of member \(i)")
                let value = try r.string16("label value of member \(i)")
                guard labels.updateValue(value, forKey: name) == nil else {
                    throw AgadirError(.malformedFrame, "MEMBERS body: member '\(nodeID)' repeats the label '\(name)'")
                }
            }
            let client = try r.string16("client address of member \(i)")
            let peer = try r.string16("peer address of member \(i)")
            let incarnation = try r.u64("incarnation of member \(i)")
            let state = try r.string16("state of member \(i)")
            guard !state.isEmpty else {
                throw AgadirError(.malformedFrame, "MEMBERS body: member '\(nodeID)' has an empty state")
            }
            let layoutVersion = try r.u64("layout version of member \(i)")
            let lastContact = Int64(bitPattern: try r.u64("last contact of member \(i)"))
            guard lastContact >= -1 else {
                throw AgadirError(
                    .malformedFrame, "MEMBERS body: member '\(nodeID)' last heard from \(lastContact) ms ago")
            }
            out.append(
                MemberInfo(
                    nodeID: nodeID, site: site, labels: labels, clientAddress: client, peerAddress: peer,
                    incarnation: incarnation, state: state, layoutVersion: layoutVersion,
                    lastContactMillisAgo: lastContact))
        }
        guard r.isAtEnd else {
            throw AgadirError(.malformedFrame, "MEMBERS body: \(r.remaining) bytes follow the last of \(n) members")
        }
        return out
    }
}
