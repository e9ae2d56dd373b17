import AgadirCore

/// Field tags of the header section. Documented in docs/protocol.md, "Fields".
public enum FieldTag: UInt16, Sendable, CaseIterable {
    case bucket = 1  // UTF-8
    case key = 2  // UTF-8
    case contentType = 3  // UTF-8
    case metadata = 4  // repeated: u16 name length, name, value (UTF-8)
    case size = 5  // u64
    case etag = 6  // 32 bytes (SHA-256)
    case version = 7  // 16 bytes: u64 HLC, u64 node
    case range = 8  // 16 bytes: u64 offset, u64 length
    case prefix = 9  // UTF-8
    case delimiter = 10  // UTF-8
    case startAfter = 11  // UTF-8
    case limit = 12  // u32
    case policy = 13  // UTF-8
    case message = 14  // UTF-8, error text
    case contentSHA256 = 15  // 32 bytes: the client's SHA-256 of the body, checked by the server
    case nodeID = 16  // UTF-8
    case serverVersion = 17  // UTF-8
    case createdMillis = 18  // u64
    case timeMillis = 19  // u64
    case consistency = 20  // u8: ConsistencyLevel raw value (1 ONE ... 5 ALL)
    case address = 21  // UTF-8 HOST:PORT, repeated (REDIRECT, ROUTE)
    case cluster = 22  // UTF-8 cluster name (PEER_HELLO)
    case nonce = 23  // 32 bytes (PEER_HELLO)
    case proof = 24  // 32 bytes: HMAC-SHA256 (PEER_HELLO answer, PEER_AUTH)
    case chunkID = 25  // 32 bytes
    case applied = 26  // u8: 1 when a replica applied a write, 0 when it had a newer one
    case targetNode = 27  // UTF-8 node id (HINT_PUT)
    case command = 28  // UTF-8 admin command name (ADMIN)
    case answered = 29  // u32: replicas that answered (NOT_ENOUGH_REPLICAS)
    case needed = 30  // u32: replicas the level needed (NOT_ENOUGH_REPLICAS)
    case mayCoordinate = 31  // u8: 1 when the answering node may coordinate the bucket (ROUTE)
    case hintKind = 32  // u8: 1 chunk, 2 manifest (HINT_PUT)
    case partition = 33  // u32: a partition number (PARTITION_MANIFESTS, PARTITION_CHUNKS)
    case keyHash = 34  // u32: a manifest's key hash (the PARTITION_MANIFESTS cursor)
    case accessKey = 35  // UTF-8 access key id (signed requests)
    case signedAt = 36  // u64: ms since the Unix epoch when the client signed the request
    case requestNonce = 37  // 16 random bytes, fresh per signed request
    case signature = 38  // 32 bytes: HMAC-SHA256 over the canonical request
    case bodySigning = 39  // u8: 1 = the body's DATA frames carry chained FRAME_SIGNATUREs (PUT)
    case frameSignature = 40  // 32 bytes: a DATA frame's chained signature (docs/protocol.md)
    case hlc = 41  // u64: the sender's hybrid logical clock (every peer request and answer)
}

/// One field: a tag and its value bytes.
public struct Field: Sendable, Hashable {
    public var tag: UInt16
    public var value: [UInt8]

    public init(tag: UInt16, value: [UInt8]) {
        self.tag = tag
        self.value = value
    }
}

/// The header section of a frame: a u16 count, then `count` fields of
/// `u16 tag | u16 length | value`. Unknown tags are kept and ignored by readers, so
/// newer peers can add fields.
public struct Fields: Sendable, Hashable {
    public var items: [Field] = []

    public init() {}

    public init(items: [Field]) { self.items = items }

    // MARK: Writing

    public mutating func set(_ tag: FieldTag, bytes: [UInt8]) { items.append(Field(tag: tag.rawValue, value: bytes)) }
    public mutating func set(_ tag: FieldTag, _ s: String) { set(tag, bytes: Array(s.utf8)) }

    public mutating func set(_ tag: FieldTag, u64 v: UInt64) {
        var w = ByteWriter(capacity: 8)
        w.u64(v)
        set(tag, bytes: w.bytes)
    }

    public mutating func set(_ tag: FieldTag, u32 v: UInt32) {
        var w = ByteWriter(capacity: 4)
        w.u32(v)
        set(tag, bytes: w.bytes)
    }

    public mutating func set(_ tag: FieldTag, id: ChunkID) { set(tag, bytes: id.bytes) }

    public mutating func set(_ tag: FieldTag, u8 v: UInt8) { set(tag, bytes: [v]) }

    public mutating func set(_ tag: FieldTag, version: ObjectVersion) {
        var w = ByteWriter(capacity: 16)
        w.u64(version.timestamp.rawValue)
        w.u64(version.node)
        set(tag, bytes: w.bytes)
    }

    public func encode(into w: inout ByteWriter) {
        w.u16(UInt16(clamping: items.count))
        for f in items {
            w.u16(f.tag)
            w.bytes16(f.value)
        }
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 2 + items.reduce(0) { $0 + 4 + $1.value.count })
        encode(into: &w)
        return w.bytes
    }

    // MARK: Reading

    public static func decode(_ bytes: [UInt8], limits: WireLimits) throws(AgadirError) -> Fields {
        if bytes.isEmpty { return Fields() }
        var r = ByteReader(bytes, errorCode: .malformedFrame, context: "frame fields")
        let count = Int(try r.u16("field count"))
        guard count <= limits.maxFieldCount else {
            throw AgadirError(.headerTooLarge, "frame has \(count) fields; the limit is \(limits.maxFieldCount)")
        }
        var items: [Field] = []
        items.reserveCapacity(count)
        for _ in 0..<count {
            let tag = try r.u16("field tag")
            let value = try r.bytes16("value of field \(tag)")
            items.append(Field(tag: tag, value: value))
        }
        guard r.isAtEnd else {
            throw AgadirError(
                .malformedFrame, "frame fields have \(r.remaining) bytes after the last of \(count) fields")
        }
        return Fields(items: items)
    }

    public func first(_ tag: FieldTag) -> [UInt8]? { items.first { $0.tag == tag.rawValue }?.value }

    public func all(_ tag: FieldTag) -> [[UInt8]] { items.filter { $0.tag == tag.rawValue }.map(\.value) }

    public func string(_ tag: FieldTag) throws(AgadirError) -> String? {
        guard let b = first(tag) else { return nil }
        guard let s = String(validating: b, as: UTF8.self) else {
            throw AgadirError(.invalidArgument, "field \(tag) is not valid UTF-8")
        }
        return s
    }

    public func requireString(_ tag: FieldTag, _ op: String) throws(AgadirError) -> String {
        guard let s = try string(tag) else { throw AgadirError(.invalidArgument, "\(op) needs the field \(tag)") }
        return s
    }

    /// The BUCKET field, checked against the bucket name rules; `op` names the request in errors.
    public func requireBucket(_ op: String) throws(AgadirError) -> String {
        let b = try requireString(.bucket, op)
        try Names.validateBucket(b)
        return b
    }

    /// The KEY field, checked against the key rules; `op` names the request in errors.
    public func requireKey(_ op: String) throws(AgadirError) -> String {
        let k = try requireString(.key, op)
        try Names.validateKey(k)
        return k
    }

    public func u64(_ tag: FieldTag) throws(AgadirError) -> UInt64? {
        guard let b = first(tag) else { return nil }
        guard b.count == 8 else { throw AgadirError(.invalidArgument, "field \(tag) must be 8 bytes, is \(b.count)") }
        var r = ByteReader(b, errorCode: .invalidArgument, context: "field \(tag)")
        return try r.u64()
    }

    public func u32(_ tag: FieldTag) throws(AgadirError) -> UInt32? {
        guard let b = first(tag) else { return nil }
        guard b.count == 4 else { throw AgadirError(.invalidArgument, "field \(tag) must be 4 bytes, is \(b.count)") }
        var r = ByteReader(b, errorCode: .invalidArgument, context: "field \(tag)")
        return try r.u32()
    }

    public func u8(_ tag: FieldTag) throws(AgadirError) -> UInt8? {
        guard let b = first(tag) else { return nil }
        guard b.count == 1 else { throw AgadirError(.invalidArgument, "field \(tag) must be 1 byte, is \(b.count)") }
        return b[0]
    }

    /// Every value of a repeated UTF-8 field, in order.
    public func strings(_ tag: FieldTag) throws(AgadirError) -> [String] {
        var out: [String] = []
        for b in all(tag) {
            guard let s = String(validating: b, as: UTF8.self) else {
                throw AgadirError(.invalidArgument, "field \(tag) is not valid UTF-8")
            }
            out.append(s)
        }
        return out
    }

    public func id(_ tag: FieldTag) throws(AgadirError) -> ChunkID? {
        guard let b = first(tag) else { return nil }
        guard let id = ChunkID(bytes: b) else {
            throw AgadirError(.invalidArgument, "field \(tag) must be 32 bytes, is \(b.count)")
        }
        return id
    }

    public func version(_ tag: FieldTag) throws(AgadirError) -> ObjectVersion? {
        guard let b = first(tag) else { return nil }
        guard b.count == 16 else { throw AgadirError(.invalidArgument, "field \(tag) must be 16 bytes, is \(b.count)") }
        var r = ByteReader(b, errorCode: .invalidArgument, context: "field \(tag)")
        return ObjectVersion(timestamp: HLCTimestamp(rawValue: try r.u64()), node: try r.u64())
    }

    // MARK: Metadata entries

    public mutating func setMetadata(_ entries: [MetadataEntry]) {
        for e in entries {
            var w = ByteWriter(capacity: 2 + e.name.utf8.count + e.value.utf8.count)
            w.string16(e.name)
            w.raw(Array(e.value.utf8))
            set(.metadata, bytes: w.bytes)
        }
    }

    public func metadata() throws(AgadirError) -> [MetadataEntry] {
        var out: [MetadataEntry] = []
        for b in all(.metadata) {
            var r = ByteReader(b, errorCode: .invalidArgument, context: "metadata field")
            let name = try r.string16("metadata name")
            guard let value = String(validating: try r.raw(r.remaining), as: UTF8.self) else {
                throw AgadirError(.invalidArgument, "metadata value of '\(name)' is not valid UTF-8")
            }
            out.append(MetadataEntry(name: name, value: value))
        }
        return out
    }
}

extension FieldTag: CustomStringConvertible {
    public var description: String {
        switch self {
        case .bucket: "BUCKET"
        case .key: "KEY"
        case .contentType: "CONTENT_TYPE"
        case .metadata: "METADATA"
        case .size: "SIZE"
        case .etag: "ETAG"
        case .version: "VERSION"
        case .range: "RANGE"
        case .prefix: "PREFIX"
        case .delimiter: "DELIMITER"
        case .startAfter: "START_AFTER"
        case .limit: "LIMIT"
        case .policy: "POLICY"
        case .message: "MESSAGE"
        case .contentSHA256: "CONTENT_SHA256"
        case .nodeID: "NODE_ID"
        case .serverVersion: "SERVER_VERSION"
        case .createdMillis: "CREATED_MS"
        case .timeMillis: "TIME_MS"
        case .consistency: "CONSISTENCY"
        case .address: "ADDRESS"
        case .cluster: "CLUSTER"
        case .nonce: "NONCE"
        case .proof: "PROOF"
        case .chunkID: "CHUNK_ID"
        case .applied: "APPLIED"
        case .targetNode: "TARGET_NODE"
        case .command: "COMMAND"
        case .answered: "ANSWERED"
        case .needed: "NEEDED"
        case .mayCoordinate: "MAY_COORDINATE"
        case .hintKind: "HINT_KIND"
        case .partition: "PARTITION"
        case .keyHash: "KEY_HASH"
        case .accessKey: "ACCESS_KEY"
        case .signedAt: "SIGNED_AT"
        case .requestNonce: "REQUEST_NONCE"
        case .signature: "SIGNATURE"
        case .bodySigning: "BODY_SIGNING"
        case .frameSignature: "FRAME_SIGNATURE"
        case .hlc: "HLC"
        }
    }
}
