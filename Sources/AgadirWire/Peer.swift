import AgadirCore

/// Node-to-node operations (docs/protocol.md, "Peer requests"). They share the frame
/// format and the client port, but a node serves them only on a connection that passed
/// the cluster-secret handshake (PEER_HELLO, PEER_AUTH).
public enum PeerOpcode: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case hello = 64
    case auth = 65
    case chunksClaim = 66
    case chunkPut = 67
    case chunkGet = 68
    case manifestPut = 69
    case manifestGet = 70
    case replicaList = 71
    case hintPut = 72
    case layoutGet = 73
    case catalogGet = 74
    case catalogPut = 75
    case residencyAudit = 76
    case partitionManifests = 77
    case partitionChunks = 78
    case nodeStatus = 79
    case rebalanceSet = 80
    case partitionDigest = 81
    case repairStart = 82
    case maintenance = 83
    case accessKeysGet = 84
    case accessKeysPut = 85
    case bucketUsage = 86

    /// Opcodes from this value up are peer operations.
    public static let first: UInt16 = 64

    public var description: String {
        switch self {
        case .hello: "PEER_HELLO"
        case .auth: "PEER_AUTH"
        case .chunksClaim: "CHUNKS_CLAIM"
        case .chunkPut: "CHUNK_PUT"
        case .chunkGet: "CHUNK_GET"
        case .manifestPut: "MANIFEST_PUT"
        case .manifestGet: "MANIFEST_GET"
        case .replicaList: "REPLICA_LIST"
        case .hintPut: "HINT_PUT"
        case .layoutGet: "LAYOUT_GET"
        case .catalogGet: "CATALOG_GET"
        case .catalogPut: "CATALOG_PUT"
        case .residencyAudit: "RESIDENCY_AUDIT"
        case .partitionManifests: "PARTITION_MANIFESTS"
        case .partitionChunks: "PARTITION_CHUNKS"
        case .nodeStatus: "NODE_STATUS"
        case .rebalanceSet: "REBALANCE_SET"
        case .partitionDigest: "PARTITION_DIGEST"
        case .repairStart: "REPAIR_START"
        case .maintenance: "MAINTENANCE"
        case .accessKeysGet: "ACCESS_KEYS_GET"
        case .accessKeysPut: "ACCESS_KEYS_PUT"
        case .bucketUsage: "BUCKET_USAGE"
        }
    }
}

/// Bounds of the peer protocol.
public enum PeerLimits {
    /// Chunk ids in one CHUNKS_CLAIM.
    public static let maxClaimIDs = 4096
    /// Entries in one REPLICA_LIST answer.
    public static let maxReplicaListEntries = 10_000
    /// Bytes of a nonce and of a proof.
    public static let nonceBytes = 32
    public static let proofBytes = 32
    /// Largest body of a peer request or answer other than a chunk or a manifest (catalog,
    /// layout, listing, audit): 64 MiB.
    public static let maxStructuredBodyBytes = 64 << 20
    /// Entries in one PARTITION_MANIFESTS or PARTITION_CHUNKS answer.
    public static let maxPartitionPageEntries = 1000
    /// Manifest bytes a node puts in one PARTITION_MANIFESTS answer before it ends the page
    /// early (the cursor says where to go on).
    public static let partitionPageBytes = 16 << 20
    /// References of one chunk in a PARTITION_CHUNKS answer.
    public static let maxReferencesPerChunk = 64
    /// Partition numbers are below this (the layout allows at most 65536 partitions).
    public static let maxPartitions: UInt32 = 1 << 16
    /// Largest REBALANCE_SET body.
    public static let maxSettingsBodyBytes = 64 << 10
    /// Longest policy name in a request.
    public static let maxPolicyNameBytes = 255
}

/// Kinds of HINT_PUT.
public enum HintKind: UInt8, Sendable, Hashable {
    case chunk = 1
    case manifest = 2
}

/// Every peer request, decoded and validated.
public enum PeerRequest: Sendable, Hashable {
    /// The dialer's id and nonce; nothing about the cluster (a wrong name or secret shows as
    /// a proof that fails, never as an answer that names the right one).
    case hello(nodeID: String, nonce: [UInt8])
    case auth(proof: [UInt8])
    /// Body: chunk ids (32 bytes each). Answer body: one byte per id, 1 held (reference recorded), 0 missing.
    case chunksClaim(ChunkReference)
    /// Body: the encoded chunk (`EncodedChunkCodec`). Answer once durable.
    case chunkPut(ChunkReference, chunk: ChunkID)
    /// Answer body: the encoded chunk. BUCKET names the bucket the caller reads it for.
    case chunkGet(chunk: ChunkID, bucket: String)
    /// Body: the manifest (`ManifestCodec`). Answer: APPLIED, VERSION (the stored one).
    case manifestPut(bucket: String, key: String)
    /// Answer body: the stored manifest, tombstones included; NO_SUCH_KEY when none.
    case manifestGet(bucket: String, key: String)
    case replicaList(bucket: String, prefix: String, startAfter: String?, limit: Int)
    /// Body: an encoded chunk (kind chunk, with the reference) or a manifest (kind manifest).
    case hintPut(target: String, bucket: String, kind: HintKind, reference: ChunkReference?, chunk: ChunkID?)
    case layoutGet
    case catalogGet
    /// Body: bucket records (`BucketRecordCodec`).
    case catalogPut
    case residencyAudit
    /// One page of a partition's manifests of one policy (tombstones included), after the
    /// cursor (KEY_HASH, BUCKET, KEY; none from the start). Answer body: `ManifestPageCodec`.
    case partitionManifests(policy: String, partition: Int, after: ManifestCursor?, limit: Int)
    /// One page of a chunk partition's chunks referenced by buckets of one policy, after the
    /// cursor (CHUNK_ID; none from the start). Answer body: `ChunkPageCodec`.
    case partitionChunks(policy: String, partition: Int, after: ChunkID?, limit: Int)
    /// The node's rebalance, repair and store state. Answer body: JSON (docs/protocol.md).
    case nodeStatus
    /// Body: rebalance settings as JSON; the node adopts them when newer than its own.
    case rebalanceSet
    /// The digests of a partition's data of one policy; delete markers older than
    /// `tombstonesBefore` (ms since the epoch, TIME_MS) are left out. Answer body: `PartitionSummaryCodec`.
    case partitionDigest(policy: String, partition: Int, tombstonesBefore: UInt64)
    /// Body: the repair scope as JSON; the node starts an anti-entropy pass.
    case repairStart
    /// Body: `{"task": "scrub" | "gc", "action": "start" | "pause"}` (JSON).
    case maintenance
    /// Answer body: every access key record, deleted ones included (JSON array, secrets sealed).
    case accessKeysGet
    /// Body: access key records (JSON array); each is merged, last writer wins per id.
    case accessKeysPut
    /// What the node holds of a bucket. Answer body: JSON `{"objects": n, "bytes": n}` (`BucketUsage`).
    case bucketUsage(bucket: String)

    public var opcode: PeerOpcode {
        switch self {
        case .hello: .hello
        case .auth: .auth
        case .chunksClaim: .chunksClaim
        case .chunkPut: .chunkPut
        case .chunkGet: .chunkGet
        case .manifestPut: .manifestPut
        case .manifestGet: .manifestGet
        case .replicaList: .replicaList
        case .hintPut: .hintPut
        case .layoutGet: .layoutGet
        case .catalogGet: .catalogGet
        case .catalogPut: .catalogPut
        case .residencyAudit: .residencyAudit
        case .partitionManifests: .partitionManifests
        case .partitionChunks: .partitionChunks
        case .nodeStatus: .nodeStatus
        case .rebalanceSet: .rebalanceSet
        case .partitionDigest: .partitionDigest
        case .repairStart: .repairStart
        case .maintenance: .maintenance
        case .accessKeysGet: .accessKeysGet
        case .accessKeysPut: .accessKeysPut
        case .bucketUsage: .bucketUsage
        }
    }

    /// True when a body follows the REQUEST frame.
    public var hasBody: Bool {
        switch self {
        case .chunksClaim, .chunkPut, .manifestPut, .hintPut, .catalogPut, .rebalanceSet, .repairStart, .maintenance,
            .accessKeysPut:
            true
        default: false
        }
    }

    /// The bucket whose bytes or names the request carries, for the sovereignty checks.
    public var bucket: String? {
        switch self {
        case .chunksClaim(let r), .chunkPut(let r, _): r.bucket
        case .chunkGet(_, let b), .manifestPut(let b, _), .manifestGet(let b, _), .replicaList(let b, _, _, _): b
        case .hintPut(_, let b, _, _, _): b
        case .hello, .auth, .layoutGet, .catalogGet, .catalogPut, .residencyAudit, .partitionManifests,
            .partitionChunks,
            .nodeStatus, .rebalanceSet, .partitionDigest, .repairStart, .maintenance, .accessKeysGet, .accessKeysPut,
            .bucketUsage:
            nil  // BUCKET_USAGE names a bucket but carries only counts
        }
    }

    public func fields() -> Fields {
        var f = Fields()
        func reference(_ r: ChunkReference) {
            f.set(.bucket, r.bucket)
            f.set(.key, r.key)
            f.set(.version, version: r.version)
        }
        switch self {
        case .hello(let nodeID, let nonce):
            f.set(.nodeID, nodeID)
            f.set(.nonce, bytes: nonce)
        case .auth(let proof):
            f.set(.proof, bytes: proof)
        case .chunksClaim(let r):
            reference(r)
        case .chunkPut(let r, let chunk):
            reference(r)
            f.set(.chunkID, id: chunk)
        case .chunkGet(let chunk, let bucket):
            f.set(.chunkID, id: chunk)
            f.set(.bucket, bucket)
        case .manifestPut(let b, let k), .manifestGet(let b, let k):
            f.set(.bucket, b)
            f.set(.key, k)
        case .replicaList(let b, let prefix, let startAfter, let limit):
            f.set(.bucket, b)
            if !prefix.isEmpty { f.set(.prefix, prefix) }
            if let startAfter { f.set(.startAfter, startAfter) }
            f.set(.limit, u32: UInt32(clamping: limit))
        case .hintPut(let target, let bucket, let kind, let r, let chunk):
            f.set(.targetNode, target)
            f.set(.hintKind, u8: kind.rawValue)
            if let r { reference(r) } else { f.set(.bucket, bucket) }
            if let chunk { f.set(.chunkID, id: chunk) }
        case .partitionManifests(let policy, let partition, let after, let limit):
            f.set(.policy, policy)
            f.set(.partition, u32: UInt32(clamping: partition))
            if let after {
                f.set(.keyHash, u32: after.keyHash)
                f.set(.bucket, after.bucket)
                f.set(.key, after.key)
            }
            f.set(.limit, u32: UInt32(clamping: limit))
        case .partitionChunks(let policy, let partition, let after, let limit):
            f.set(.policy, policy)
            f.set(.partition, u32: UInt32(clamping: partition))
            if let after { f.set(.chunkID, id: after) }
            f.set(.limit, u32: UInt32(clamping: limit))
        case .partitionDigest(let policy, let partition, let before):
            f.set(.policy, policy)
            f.set(.partition, u32: UInt32(clamping: partition))
            f.set(.timeMillis, u64: before)
        case .bucketUsage(let bucket):
            f.set(.bucket, bucket)
        case .layoutGet, .catalogGet, .catalogPut, .residencyAudit, .nodeStatus, .rebalanceSet, .repairStart,
            .maintenance, .accessKeysGet, .accessKeysPut:
            break
        }
        return f
    }

    public static func decode(opcode raw: UInt16, fields f: Fields) throws(AgadirError) -> PeerRequest {
        guard let opcode = PeerOpcode(rawValue: raw) else {
            throw AgadirError(.unknownOpcode, "opcode \(raw) is not a peer operation")
        }
        let op = opcode.description
        func bucket() throws(AgadirError) -> String { try f.requireBucket(op) }
        func key() throws(AgadirError) -> String { try f.requireKey(op) }
        func reference() throws(AgadirError) -> ChunkReference {
            guard let v = try f.version(.version) else {
                throw AgadirError(.invalidArgument, "\(op) needs the field VERSION")
            }
            return ChunkReference(bucket: try bucket(), key: try key(), version: v)
        }
        func chunk() throws(AgadirError) -> ChunkID {
            guard let id = try f.id(.chunkID) else {
                throw AgadirError(.invalidArgument, "\(op) needs the field CHUNK_ID")
            }
            return id
        }
        func fixed(_ tag: FieldTag, _ n: Int) throws(AgadirError) -> [UInt8] {
            guard let b = f.first(tag), b.count == n else {
                throw AgadirError(.invalidArgument, "\(op) needs the field \(tag) of \(n) bytes")
            }
            return b
        }
        switch opcode {
        case .hello:
            let nodeID = try f.requireString(.nodeID, op)
            try PeerNames.validateNodeID(nodeID)
            return .hello(nodeID: nodeID, nonce: try fixed(.nonce, PeerLimits.nonceBytes))
        case .auth:
            return .auth(proof: try fixed(.proof, PeerLimits.proofBytes))
        case .chunksClaim:
            return .chunksClaim(try reference())
        case .chunkPut:
            return .chunkPut(try reference(), chunk: try chunk())
        case .chunkGet:
            return .chunkGet(chunk: try chunk(), bucket: try bucket())
        case .manifestPut:
            return .manifestPut(bucket: try bucket(), key: try key())
        case .manifestGet:
            return .manifestGet(bucket: try bucket(), key: try key())
        case .replicaList:
            let b = try bucket()
            let prefix = try f.string(.prefix) ?? ""
            guard prefix.utf8.count <= Names.maxKeyBytes else {
                throw AgadirError(.invalidArgument, "PREFIX has more than \(Names.maxKeyBytes) bytes")
            }
            let limit = Int(try f.u32(.limit) ?? 1000)
            guard (1...PeerLimits.maxReplicaListEntries).contains(limit) else {
                throw AgadirError(.invalidArgument, "LIMIT \(limit) is outside 1...\(PeerLimits.maxReplicaListEntries)")
            }
            return .replicaList(bucket: b, prefix: prefix, startAfter: try f.string(.startAfter), limit: limit)
        case .hintPut:
            let target = try f.requireString(.targetNode, op)
            try PeerNames.validateNodeID(target)
            guard let rawKind = try f.u8(.hintKind), let kind = HintKind(rawValue: rawKind) else {
                throw AgadirError(.invalidArgument, "HINT_PUT needs HINT_KIND 1 (chunk) or 2 (manifest)")
            }
            switch kind {
            case .chunk:
                let r = try reference()
                return .hintPut(target: target, bucket: r.bucket, kind: kind, reference: r, chunk: try chunk())
            case .manifest:
                return .hintPut(target: target, bucket: try bucket(), kind: kind, reference: nil, chunk: nil)
            }
        case .layoutGet: return .layoutGet
        case .catalogGet: return .catalogGet
        case .catalogPut: return .catalogPut
        case .accessKeysGet: return .accessKeysGet
        case .accessKeysPut: return .accessKeysPut
        case .residencyAudit: return .residencyAudit
        case .partitionManifests:
            let (policy, partition, limit) = try partitionPage(f, op)
            var after: ManifestCursor? = nil
            if let hash = try f.u32(.keyHash) {
                after = ManifestCursor(keyHash: hash, bucket: try bucket(), key: try f.string(.key) ?? "")
            }
            return .partitionManifests(policy: policy, partition: partition, after: after, limit: limit)
        case .partitionChunks:
            let (policy, partition, limit) = try partitionPage(f, op)
            return .partitionChunks(policy: policy, partition: partition, after: try f.id(.chunkID), limit: limit)
        case .nodeStatus: return .nodeStatus
        case .rebalanceSet: return .rebalanceSet
        case .partitionDigest:
            let (policy, partition, _) = try partitionPage(f, op)
            guard let before = try f.u64(.timeMillis) else {
                throw AgadirError(.invalidArgument, "\(op) needs the field TIME_MS")
            }
            return .partitionDigest(policy: policy, partition: partition, tombstonesBefore: before)
        case .repairStart: return .repairStart
        case .maintenance: return .maintenance
        case .bucketUsage: return .bucketUsage(bucket: try bucket())
        }
    }

    /// POLICY, PARTITION and LIMIT of a partition page request, checked.
    private static func partitionPage(_ f: Fields, _ op: String) throws(AgadirError) -> (String, Int, Int) {
        let policy = try f.requireString(.policy, op)
        guard (1...PeerLimits.maxPolicyNameBytes).contains(policy.utf8.count) else {
            throw AgadirError(.invalidArgument, "\(op): POLICY must have 1 to \(PeerLimits.maxPolicyNameBytes) bytes")
        }
        guard let partition = try f.u32(.partition), partition < PeerLimits.maxPartitions else {
            throw AgadirError(.invalidArgument, "\(op) needs the field PARTITION, below \(PeerLimits.maxPartitions)")
        }
        let limit = Int(try f.u32(.limit) ?? UInt32(PeerLimits.maxPartitionPageEntries))
        guard (1...PeerLimits.maxPartitionPageEntries).contains(limit) else {
            throw AgadirError(
                .invalidArgument, "\(op): LIMIT \(limit) is outside 1...\(PeerLimits.maxPartitionPageEntries)")
        }
        return (policy, Int(partition), limit)
    }
}

/// Node ids: 1 to 128 bytes of ASCII letters, digits, '-', '_' and '.'.
public enum PeerNames {
    public static let maxNodeIDBytes = 128

    public static func validateNodeID(_ id: String) throws(AgadirError) {
        let bytes = id.utf8
        guard (1...maxNodeIDBytes).contains(bytes.count),
            bytes.allSatisfy({
                ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A)
                    || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E
            })
        else {
            throw AgadirError(
                .invalidArgument, "node id '\(id)' must be 1 to 128 characters of A-Z, a-z, 0-9, '-', '_', '.'")
        }
    }
}

// MARK: - Body codecs

/// A list of chunk ids: 32 bytes each, back to back.
public enum ChunkIDListCodec {
    public static func encode(_ ids: [ChunkID]) -> [UInt8] {
        var w = ByteWriter(capacity: ids.count * ChunkID.byteCount)
        for id in ids { w.chunkID(id) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8], max: Int = PeerLimits.maxClaimIDs) throws(AgadirError) -> [ChunkID] {
        guard bytes.count % ChunkID.byteCount == 0 else {
            throw AgadirError(.invalidArgument, "a chunk id list of \(bytes.count) bytes is not a multiple of 32")
        }
        let n = bytes.count / ChunkID.byteCount
        guard n <= max else { throw AgadirError(.invalidArgument, "\(n) chunk ids; at most \(max) per request") }
        var r = ByteReader(bytes, errorCode: .invalidArgument, context: "chunk id list")
        var out: [ChunkID] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try r.chunkID()) }
        return out
    }
}

/// An encoded chunk as it travels between nodes:
/// `u8 codec | u32 raw length | u32 CRC-32 of the stored bytes | stored bytes`.
/// The id travels in the CHUNK_ID field; the receiver verifies the bytes against it.
public enum EncodedChunkCodec {
    public static let headerBytes = 9

    public static func encode(_ c: EncodedChunk) -> [UInt8] {
        var w = ByteWriter(capacity: headerBytes + c.stored.count)
        w.u8(c.codec.rawValue)
        w.u32(c.rawLength)
        w.u32(c.checksum)
        w.raw(c.stored)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8], id: ChunkID) throws(AgadirError) -> EncodedChunk {
        var r = ByteReader(bytes, errorCode: .corruptChunk, context: "chunk \(id.hex) in transit")
        guard let codec = Codec(rawValue: try r.u8("codec")) else {
            throw AgadirError(.corruptChunk, "chunk \(id.hex) in transit names an unknown codec")
        }
        let rawLength = try r.u32("raw length")
        let checksum = try r.u32("checksum")
        guard Int(rawLength) <= ChunkCodec.maxRawLength else {
            throw AgadirError(.corruptChunk, "chunk \(id.hex) in transit claims \(rawLength) raw bytes, over the limit")
        }
        let stored = Array(try r.raw(r.remaining))
        return EncodedChunk(id: id, codec: codec, rawLength: rawLength, stored: stored, checksum: checksum)
    }
}

/// REPLICA_LIST answer: `u32 count`, then per entry `string16 key | u64 hlc | u64 node |
/// u8 tombstone | u64 size | 32 etag | string16 content type`.
public enum ReplicaListCodec {
    public static func encode(_ entries: [ReplicaListEntry]) -> [UInt8] {
        var w = ByteWriter(capacity: 4 + entries.count * 96)
        w.u32(UInt32(clamping: entries.count))
        for e in entries {
            w.string16(e.key)
            w.u64(e.version.timestamp.rawValue)
            w.u64(e.version.node)
            w.u8(e.isTombstone ? 1 : 0)
            w.u64(e.size)
            w.chunkID(e.etag)
            w.string16(e.contentType)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(AgadirError) -> [ReplicaListEntry] {
        var r = ByteReader(bytes, errorCode: .corruptData, context: "REPLICA_LIST answer")
        let n = Int(try r.u32("count"))
        guard n <= PeerLimits.maxReplicaListEntries else {
            throw AgadirError(
                .corruptData, "REPLICA_LIST answer claims \(n) entries, over \(PeerLimits.maxReplicaListEntries)")
        }
        var out: [ReplicaListEntry] = []
        out.reserveCapacity(n)
        for _ in 0..<n {
            let key = try r.string16("key")
            let version = ObjectVersion(timestamp: HLCTimestamp(rawValue: try r.u64("hlc")), node: try r.u64("node"))
            let tomb = try r.u8("tombstone")
            guard tomb <= 1 else { throw AgadirError(.corruptData, "REPLICA_LIST tombstone flag \(tomb)") }
            let size = try r.u64("size")
            let etag = try r.chunkID("etag")
            let ct = try r.string16("content type")
            out.append(
                ReplicaListEntry(
                    key: key, version: version, isTombstone: tomb == 1, size: size, etag: etag, contentType: ct))
        }
        guard r.isAtEnd else {
            throw AgadirError(.corruptData, "REPLICA_LIST answer has \(r.remaining) trailing bytes")
        }
        return out
    }
}

/// Bucket catalog records: `u32 count`, then per record `string16 name | string16 policy |
/// u64 created ms | u64 hlc | u64 node | u8 flags`, where flag bit 0 is *deleted* and bit 1
/// says `u64 max bytes | u64 max objects` (the quota) follow. A record without a quota
/// encodes as before quotas existed, so older nodes read it.
public enum BucketRecordCodec {
    public static let maxRecords = 100_000

    public static func encode(_ records: [BucketRecord]) -> [UInt8] {
        var w = ByteWriter(capacity: 4 + records.count * 64)
        w.u32(UInt32(clamping: records.count))
        for b in records {
            w.string16(b.name)
            w.string16(b.policy)
            w.u64(b.createdMillis)
            w.u64(b.version.timestamp.rawValue)
            w.u64(b.version.node)
            let generation = b.generation != .zero
            w.u8((b.deleted ? 1 : 0) | (b.hasQuota ? 2 : 0) | (generation ? 4 : 0))
            if b.hasQuota {
                w.u64(b.maxBytes)
                w.u64(b.maxObjects)
            }
            if generation {
                w.u64(b.generation.timestamp.rawValue)
                w.u64(b.generation.node)
            }
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(AgadirError) -> [BucketRecord] {
        var r = ByteReader(bytes, errorCode: .corruptData, context: "bucket records")
        let n = Int(try r.u32("count"))
        guard n <= maxRecords else { throw AgadirError(.corruptData, "\(n) bucket records, over \(maxRecords)") }
        var out: [BucketRecord] = []
        out.reserveCapacity(n)
        for _ in 0..<n {
            let name = try r.string16("name")
            try Names.validateBucket(name)
            let policy = try r.string16("policy")
            let created = try r.u64("created")
            let version = ObjectVersion(timestamp: HLCTimestamp(rawValue: try r.u64("hlc")), node: try r.u64("node"))
            let flags = try r.u8("flags")
            guard flags <= 7 else {
                throw AgadirError(.corruptData, "bucket record flags 0x\(String(flags, radix: 16))")
            }
            var record = BucketRecord(
                name: name, policy: policy, createdMillis: created, version: version, deleted: flags & 1 == 1)
            if flags & 2 == 2 {
                record.maxBytes = try r.u64("max bytes")
                record.maxObjects = try r.u64("max objects")
            }
            if flags & 4 == 4 {
                record.generation = ObjectVersion(
                    timestamp: HLCTimestamp(rawValue: try r.u64("generation hlc")), node: try r.u64("generation node"))
            }
            out.append(record)
        }
        guard r.isAtEnd else { throw AgadirError(.corruptData, "bucket records have \(r.remaining) trailing bytes") }
        return out
    }
}
