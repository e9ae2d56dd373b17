import AgadirCore

/// A byte range of an object: `length` bytes from `offset`; `length == nil` reads to the end.
public struct ByteRange: Sendable, Hashable {
    public var offset: UInt64
    public var length: UInt64?

    public init(offset: UInt64, length: UInt64?) {
        self.offset = offset
        self.length = length
    }

    /// On the wire the length `UInt64.max` means "to the end".
    public static let toEnd = UInt64.max

    /// Clamps the range to an object of `size` bytes; throws `.rangeNotSatisfiable` when
    /// it starts past the end (a range starting exactly at the end is allowed and empty).
    public func resolve(size: UInt64) throws(AgadirError) -> (offset: UInt64, length: UInt64) {
        guard offset <= size else {
            throw AgadirError(.rangeNotSatisfiable, "range starts at byte \(offset) but the object has \(size) bytes")
        }
        let available = size - offset
        return (offset, min(length ?? available, available))
    }
}

public struct PutRequest: Sendable, Hashable {
    public var bucket: String
    @Bytewise public var key: String
    /// Exact body length; the server rejects a body of any other length.
    public var size: UInt64
    public var contentType: String
    public var metadata: [MetadataEntry]
    /// When present, the server refuses to store a body whose SHA-256 differs.
    public var contentSHA256: ChunkID?

    public init(
        bucket: String, key: String, size: UInt64, contentType: String = "application/octet-stream",
        metadata: [MetadataEntry] = [], contentSHA256: ChunkID? = nil
    ) {
        self.bucket = bucket
        self.key = key
        self.size = size
        self.contentType = contentType
        self.metadata = metadata
        self.contentSHA256 = contentSHA256
    }
}

public struct ListRequest: Sendable, Hashable {
    public var bucket: String
    @Bytewise public var prefix: String
    public var delimiter: String?
    public var startAfter: String?
    public var limit: Int

    public init(
        bucket: String, prefix: String = "", delimiter: String? = nil, startAfter: String? = nil, limit: Int = 1000
    ) {
        self.bucket = bucket
        self.prefix = prefix
        self.delimiter = delimiter
        self.startAfter = startAfter
        self.limit = limit
    }
}

/// Every request of protocol v1, decoded and validated.
public enum Request: Sendable, Hashable {
    case ping
    case createBucket(name: String, policy: String?)
    case deleteBucket(name: String)
    case listBuckets
    case put(PutRequest)
    case get(bucket: String, key: String, range: ByteRange?)
    case head(bucket: String, key: String)
    case delete(bucket: String, key: String)
    case list(ListRequest)
    case stat
    case members
    /// An administrative command (`agadir admin ...`): COMMAND names it, the body is a JSON
    /// object (at most `AdminLimits.maxBodyBytes`); the answer's body is JSON.
    case admin(command: String)
    /// Where to send the requests of a bucket (docs/protocol.md, "ROUTE").
    case route(bucket: String)

    public var opcode: Opcode {
        switch self {
        case .ping: .ping
        case .createBucket: .createBucket
        case .deleteBucket: .deleteBucket
        case .listBuckets: .listBuckets
        case .put: .put
        case .get: .get
        case .head: .head
        case .delete: .delete
        case .list: .list
        case .stat: .stat
        case .members: .members
        case .admin: .admin
        case .route: .route
        }
    }

    /// True when a body follows the REQUEST frame (PUT and ADMIN).
    public var hasBody: Bool {
        switch self {
        case .put, .admin: true
        default: false
        }
    }

    /// The bucket the request is about, when it has one.
    public var bucket: String? {
        switch self {
        case .createBucket(let name, _), .deleteBucket(let name): name
        case .put(let p): p.bucket
        case .get(let b, _, _), .head(let b, _), .delete(let b, _), .route(let b): b
        case .list(let l): l.bucket
        case .ping, .listBuckets, .stat, .members, .admin: nil
        }
    }

    public func fields() -> Fields {
        var f = Fields()
        switch self {
        case .ping, .listBuckets, .stat, .members:
            break
        case .createBucket(let name, let policy):
            f.set(.bucket, name)
            if let policy { f.set(.policy, policy) }
        case .deleteBucket(let name), .route(let name):
            f.set(.bucket, name)
        case .admin(let command):
            f.set(.command, command)
        case .put(let p):
            f.set(.bucket, p.bucket)
            f.set(.key, p.key)
            f.set(.size, u64: p.size)
            f.set(.contentType, p.contentType)
            f.setMetadata(p.metadata)
            if let sha = p.contentSHA256 { f.set(.contentSHA256, id: sha) }
        case .get(let bucket, let key, let range):
            f.set(.bucket, bucket)
            f.set(.key, key)
            if let range {
                var w = ByteWriter(capacity: 16)
                w.u64(range.offset)
                w.u64(range.length ?? ByteRange.toEnd)
                f.set(.range, bytes: w.bytes)
            }
        case .head(let bucket, let key), .delete(let bucket, let key):
            f.set(.bucket, bucket)
            f.set(.key, key)
        case .list(let l):
            f.set(.bucket, l.bucket)
            if !l.prefix.isEmpty { f.set(.prefix, l.prefix) }
            if let d = l.delimiter { f.set(.delimiter, d) }
            if let s = l.startAfter { f.set(.startAfter, s) }
            f.set(.limit, u32: UInt32(clamping: l.limit))
        }
        return f
    }

    /// Decodes and validates a request: names, keys, limits. Errors are 2xx (the request
    /// fails, the connection stays) except an unknown opcode.
    public static func decode(opcode raw: UInt16, fields f: Fields, limits: WireLimits) throws(AgadirError) -> Request {
        guard let opcode = Opcode(rawValue: raw) else {
            throw AgadirError(.unknownOpcode, "opcode \(raw) is not part of protocol v1")
        }
        let op = opcode.description
        func bucket() throws(AgadirError) -> String { try f.requireBucket(op) }
        func key() throws(AgadirError) -> String { try f.requireKey(op) }
        switch opcode {
        case .ping: return .ping
        case .listBuckets: return .listBuckets
        case .stat: return .stat
        case .members: return .members
        case .route: return .route(bucket: try bucket())
        case .admin:
            let command = try f.requireString(.command, op)
            guard (1...64).contains(command.utf8.count),
                command.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x2E })
            else {
                throw AgadirError(.invalidArgument, "COMMAND must be 1 to 64 characters of a-z, '-' and '.'")
            }
            return .admin(command: command)
        case .createBucket:
            return .createBucket(name: try bucket(), policy: try f.string(.policy))
        case .deleteBucket:
            return .deleteBucket(name: try bucket())
        case .put:
            let b = try bucket()
            let k = try key()
            guard let size = try f.u64(.size) else { throw AgadirError(.invalidArgument, "PUT needs the field SIZE") }
            let meta = try MetadataEntry.normalize(try f.metadata())
            let ct = try f.string(.contentType) ?? "application/octet-stream"
            guard ct.utf8.count <= 256 else {
                throw AgadirError(.invalidArgument, "content type has \(ct.utf8.count) bytes; at most 256 are allowed")
            }
            return .put(
                PutRequest(
                    bucket: b, key: k, size: size, contentType: ct, metadata: meta,
                    contentSHA256: try f.id(.contentSHA256)))
        case .get:
            let b = try bucket()
            let k = try key()
            var range: ByteRange? = nil
            if let raw = f.first(.range) {
                guard raw.count == 16 else {
                    throw AgadirError(.invalidArgument, "RANGE must be 16 bytes, is \(raw.count)")
                }
                var r = ByteReader(raw, errorCode: .invalidArgument, context: "RANGE")
                let offset = try r.u64()
                let length = try r.u64()
                range = ByteRange(offset: offset, length: length == ByteRange.toEnd ? nil : length)
            }
            return .get(bucket: b, key: k, range: range)
        case .head:
            return .head(bucket: try bucket(), key: try key())
        case .delete:
            return .delete(bucket: try bucket(), key: try key())
        case .list:
            let b = try bucket()
            let prefix = try f.string(.prefix) ?? ""
            guard prefix.utf8.count <= Names.maxKeyBytes else {
                throw AgadirError(
                    .invalidArgument, "prefix has \(prefix.utf8.count) bytes; at most \(Names.maxKeyBytes)")
            }
            let delimiter = try f.string(.delimiter)
            if let d = delimiter, d.isEmpty || d.utf8.count > 16 {
                throw AgadirError(.invalidArgument, "delimiter must have 1 to 16 bytes")
            }
            let startAfter = try f.string(.startAfter)
            let limit = Int(try f.u32(.limit) ?? UInt32(limits.maxListLimit))
            guard (1...limits.maxListLimit).contains(limit) else {
                throw AgadirError(.invalidArgument, "LIMIT \(limit) is outside 1...\(limits.maxListLimit)")
            }
            return .list(
                ListRequest(bucket: b, prefix: prefix, delimiter: delimiter, startAfter: startAfter, limit: limit))
        }
    }
}

// MARK: - Responses

/// What HEAD and GET answer about an object (fields of the RESPONSE frame).
public struct ObjectInfo: Sendable, Hashable {
    public var bucket: String
    @Bytewise public var key: String
    public var size: UInt64
    public var etag: ChunkID
    public var version: ObjectVersion
    public var contentType: String
    public var metadata: [MetadataEntry]
    /// For GET: the bytes the body holds (the whole object unless a range was asked).
    public var range: ByteRange?

    public init(
        bucket: String, key: String, size: UInt64, etag: ChunkID, version: ObjectVersion, contentType: String,
        metadata: [MetadataEntry], range: ByteRange? = nil
    ) {
        self.bucket = bucket
        self.key = key
        self.size = size
        self.etag = etag
        self.version = version
        self.contentType = contentType
        self.metadata = metadata
        self.range = range
    }

    public init(manifest m: ObjectManifest) {
        self.init(
            bucket: m.bucket, key: m.key, size: m.size, etag: m.etag, version: m.version, contentType: m.contentType,
            metadata: m.userMetadata)
    }

    public func fields() -> Fields {
        var f = Fields()
        f.set(.bucket, bucket)
        f.set(.key, key)
        f.set(.size, u64: size)
        f.set(.etag, id: etag)
        f.set(.version, version: version)
        f.set(.contentType, contentType)
        f.setMetadata(metadata)
        if let range {
            var w = ByteWriter(capacity: 16)
            w.u64(range.offset)
            w.u64(range.length ?? ByteRange.toEnd)
            f.set(.range, bytes: w.bytes)
        }
        return f
    }

    public init(fields f: Fields) throws(AgadirError) {
        guard let size = try f.u64(.size), let etag = try f.id(.etag), let version = try f.version(.version) else {
            throw AgadirError(.malformedFrame, "object response lacks SIZE, ETAG or VERSION")
        }
        var range: ByteRange? = nil
        if let raw = f.first(.range), raw.count == 16 {
            var r = ByteReader(raw, errorCode: .malformedFrame, context: "RANGE")
            let o = try r.u64()
            let l = try r.u64()
            range = ByteRange(offset: o, length: l == ByteRange.toEnd ? nil : l)
        }
        self.init(
            bucket: try f.string(.bucket) ?? "", key: try f.string(.key) ?? "", size: size, etag: etag,
            version: version, contentType: try f.string(.contentType) ?? "", metadata: try f.metadata(), range: range)
    }
}

/// The answer to PUT and DELETE.
public struct WriteResult: Sendable, Hashable {
    public var etag: ChunkID?
    public var version: ObjectVersion
    public var size: UInt64

    public init(etag: ChunkID?, version: ObjectVersion, size: UInt64) {
        self.etag = etag
        self.version = version
        self.size = size
    }

    public func fields() -> Fields {
        var f = Fields()
        if let etag { f.set(.etag, id: etag) }
        f.set(.version, version: version)
        f.set(.size, u64: size)
        return f
    }

    public init(fields f: Fields) throws(AgadirError) {
        guard let version = try f.version(.version) else {
            throw AgadirError(.malformedFrame, "write response lacks VERSION")
        }
        self.init(etag: try f.id(.etag), version: version, size: try f.u64(.size) ?? 0)
    }
}

/// The answer to PING.
public struct PingResult: Sendable, Hashable {
    public var nodeID: String
    public var serverVersion: String
    public var timeMillis: UInt64

    public init(nodeID: String, serverVersion: String, timeMillis: UInt64) {
        self.nodeID = nodeID
        self.serverVersion = serverVersion
        self.timeMillis = timeMillis
    }

    public func fields() -> Fields {
        var f = Fields()
        f.set(.nodeID, nodeID)
        f.set(.serverVersion, serverVersion)
        f.set(.timeMillis, u64: timeMillis)
        return f
    }

    public init(fields f: Fields) throws(AgadirError) {
        self.init(
            nodeID: try f.string(.nodeID) ?? "", serverVersion: try f.string(.serverVersion) ?? "",
            timeMillis: try f.u64(.timeMillis) ?? 0)
    }
}

// MARK: - Listing bodies

/// One page of LIST, carried in the response body:
///
///     u32 n { string16 key | u64 size | 32 etag | u64 hlc | u64 node | string16 contentType }
///     u32 m { string16 commonPrefix }
///     u8 truncated (0/1) | string16 nextStartAfter (empty when none)
extension ListPage {
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + entries.count * 96)
        w.u32(UInt32(entries.count))
        for o in entries {
            w.string16(o.key)
            w.u64(o.size)
            w.chunkID(o.etag)
            w.u64(o.version.timestamp.rawValue)
            w.u64(o.version.node)
            w.string16(o.contentType)
        }
        w.u32(UInt32(commonPrefixes.count))
        for p in commonPrefixes { w.string16(p) }
        w.u8(isTruncated ? 1 : 0)
        w.string16(nextStartAfter ?? "")
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8], limits: WireLimits = .default) throws(AgadirError) -> ListPage {
        var r = ByteReader(bytes, errorCode: .malformedFrame, context: "LIST body")
        let n = Int(try r.u32("object count"))
        guard n <= limits.maxListLimit else { throw AgadirError(.malformedFrame, "LIST body claims \(n) objects") }
        var objects: [ListEntry] = []
        objects.reserveCapacity(n)
        for _ in 0..<n {
            let key = try r.string16("key")
            let size = try r.u64("size")
            let etag = try r.chunkID("etag")
            let hlc = try r.u64("version")
            let node = try r.u64("version node")
            let ct = try r.string16("content type")
            objects.append(
                ListEntry(
                    key: key, size: size, etag: etag,
                    version: ObjectVersion(timestamp: HLCTimestamp(rawValue: hlc), node: node), contentType: ct))
        }
        let m = Int(try r.u32("prefix count"))
        guard m <= limits.maxListLimit else { throw AgadirError(.malformedFrame, "LIST body claims \(m) prefixes") }
        var prefixes: [String] = []
        for _ in 0..<m { prefixes.append(try r.string16("common prefix")) }
        let truncated = try r.u8("truncated") != 0
        let next = try r.string16("next start-after")
        return ListPage(
            entries: objects, commonPrefixes: prefixes, isTruncated: truncated,
            nextStartAfter: next.isEmpty ? nil : next)
    }
}

/// LIST_BUCKETS body: `u32 n { string16 name | string16 policy | u64 createdMillis }`.
public enum BucketListCodec {
    public static func encode(_ buckets: [BucketInfo]) -> [UInt8] {
        var w = ByteWriter(capacity: 4 + buckets.count * 40)
        w.u32(UInt32(buckets.count))
        for b in buckets {
            w.string16(b.name)
            w.string16(b.policy)
            w.u64(b.createdMillis)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(AgadirError) -> [BucketInfo] {
        var r = ByteReader(bytes, errorCode: .malformedFrame, context: "LIST_BUCKETS body")
        let n = Int(try r.u32("bucket count"))
        guard n <= bytes.count / 12 else { throw AgadirError(.malformedFrame, "LIST_BUCKETS body claims \(n) buckets") }
        var out: [BucketInfo] = []
        for _ in 0..<n {
            let name = try r.string16("name")
            let policy = try r.string16("policy")
            out.append(BucketInfo(name: name, policy: policy, createdMillis: try r.u64("created")))
        }
        return out
    }
}

// MARK: - Request options

/// Fields that qualify a request without changing what it is: today the consistency
/// level (field CONSISTENCY) of PUT, GET, HEAD, DELETE and LIST. Absent = the policy's default.
public struct RequestOptions: Sendable, Hashable {
    public var consistency: ConsistencyLevel?
    /// CONTENT_SHA256 of an ADMIN request's body (PUT carries it in `PutRequest`).
    public var contentSHA256: ChunkID?

    public init(consistency: ConsistencyLevel? = nil, contentSHA256: ChunkID? = nil) {
        self.consistency = consistency
        self.contentSHA256 = contentSHA256
    }

    public static let none = RequestOptions()

    public func apply(to fields: inout Fields) {
        if let consistency { fields.set(.consistency, u8: consistency.rawValue) }
        if let contentSHA256 { fields.set(.contentSHA256, id: contentSHA256) }
    }

    public static func decode(_ f: Fields) throws(AgadirError) -> RequestOptions {
        let sha = try f.id(.contentSHA256)
        guard let raw = try f.u8(.consistency) else { return RequestOptions(contentSHA256: sha) }
        guard let level = ConsistencyLevel(rawValue: raw) else {
            throw AgadirError(
                .invalidArgument,
                "CONSISTENCY \(raw) is not a level; use 1 ONE, 2 QUORUM, 3 LOCAL_QUORUM, 4 EACH_QUORUM or 5 ALL")
        }
        return RequestOptions(consistency: level, contentSHA256: sha)
    }
}

/// Bounds of ADMIN requests.
public enum AdminLimits {
    /// Largest JSON body of an ADMIN request, in bytes (1 MiB).
    public static let maxBodyBytes = 1 << 20
}

// MARK: - ROUTE

/// The answer to ROUTE: the bucket's policy, whether the answering node may coordinate
/// the bucket's requests, and client endpoints of alive nodes that may (best first).
public struct RouteResult: Sendable, Hashable {
    public var policy: String
    public var mayCoordinate: Bool
    public var endpoints: [String]

    public init(policy: String, mayCoordinate: Bool, endpoints: [String]) {
        self.policy = policy
        self.mayCoordinate = mayCoordinate
        self.endpoints = endpoints
    }

    public func fields() -> Fields {
        var f = Fields()
        f.set(.policy, policy)
        f.set(.mayCoordinate, u8: mayCoordinate ? 1 : 0)
        for e in endpoints.prefix(64) { f.set(.address, e) }
        return f
    }

    public init(fields f: Fields) throws(AgadirError) {
        self.policy = try f.requireString(.policy, "ROUTE answer")
        self.mayCoordinate = (try f.u8(.mayCoordinate) ?? 0) == 1
        self.endpoints = Array(try f.strings(.address).prefix(64))
    }
}
