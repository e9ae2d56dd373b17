import AgadirCore

// MARK: - Values of the cluster additions to the store (docs/storage.md, docs/cluster.md)

// `ChunkReference`, `ReplicaListEntry` and `BucketRecord` live in AgadirCore
// (ClusterRecords.swift): the peer protocol carries them too. In a cluster a chunk is
// placed by its id and the manifest that lists it by bucket and key, usually on other
// nodes, so the chunk's node cannot count references from manifests: it records instead,
// in `chunk_refs`, every object version the chunk was stored or claimed for; the residency
// audit checks those buckets, and the garbage collector will check those versions against
// the manifests' replicas. Buckets created by the standalone `NodeStore.createBucket` are
// catalog records at version `ObjectVersion.zero`, so any record the cluster writes for
// the same name wins over them.

extension ChunkReference {
    /// Bucket name and key rules (`Names`): a reference is stored only if it can name a real
    /// object, and always fits the reference encoding of a hint.
    func validate() throws(AgadirError) {
        try Names.validateBucket(bucket)
        try Names.validateKey(key)
    }
}

extension BucketRecord {
    /// Longest policy name stored, in UTF-8 bytes.
    static let maxPolicyBytes = 255

    func validate() throws(AgadirError) {
        try Names.validateBucket(name)
        let n = policy.utf8.count
        guard n >= 1, n <= Self.maxPolicyBytes, policy.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7f }) else {
            throw AgadirError(
                .invalidArgument,
                "bucket record '\(name)' has a policy name of \(n) bytes or with control characters; "
                    + "policy names take 1 to \(Self.maxPolicyBytes) bytes of printable UTF-8")
        }
    }
}

/// What a hint carries: a write parked for a replica that was down (hinted handoff,
/// docs/cluster.md).
public enum HintPayload: Sendable, Hashable {
    /// A chunk to store on the target with this reference. The bytes are in this node's chunk
    /// store: the caller stores them first with `putChunk(_:reference:)` (`putHint` checks).
    case chunk(ChunkID, ChunkReference)
    /// A manifest (or tombstone) to store on the target as a replica.
    case manifest(ObjectManifest)

    /// The bucket the payload belongs to.
    var bucket: String {
        switch self {
        case .chunk(_, let reference): reference.bucket
        case .manifest(let manifest): manifest.bucket
        }
    }
}

/// A pending hint, as `NodeStore.hints(for:limit:)` returns it.
public struct StoredHint: Sendable, Hashable {
    /// Assigned by `putHint`, increasing: the order hints were parked in.
    public var id: Int64
    /// The node the write is for.
    public var target: String
    public var bucket: String
    public var payload: HintPayload
    /// When the hint was parked, milliseconds since the Unix epoch (as given to `putHint`).
    public var createdMillis: UInt64

    public init(id: Int64, target: String, bucket: String, payload: HintPayload, createdMillis: UInt64) {
        self.id = id
        self.target = target
        self.bucket = bucket
        self.payload = payload
        self.createdMillis = createdMillis
    }
}

// MARK: - Encodings in `hints`

/// The `reference` column of a chunk hint (big-endian, as every Agadir encoding):
/// `u8 format(=1) | string16 bucket | string16 key | u64 hlc | u64 node`.
enum ChunkReferenceCodec {
    static let formatVersion: UInt8 = 1

    static func encode(_ reference: ChunkReference) -> [UInt8] {
        var w = ByteWriter(capacity: 24 + reference.bucket.utf8.count + reference.key.utf8.count)
        w.u8(formatVersion)
        w.string16(reference.bucket)
        w.string16(reference.key)
        w.u64(reference.version.timestamp.rawValue)
        w.u64(reference.version.node)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(AgadirError) -> ChunkReference {
        var r = ByteReader(bytes, errorCode: .corruptData, context: "chunk reference")
        let format = try r.u8("format")
        guard format == formatVersion else {
            throw AgadirError(.corruptData, "chunk reference format \(format) is unknown (expects \(formatVersion))")
        }
        let bucket = try r.string16("bucket")
        let key = try r.string16("key")
        let hlc = try r.u64("version")
        let node = try r.u64("version node")
        guard r.isAtEnd else { throw AgadirError(.corruptData, "chunk reference has \(r.remaining) trailing bytes") }
        return ChunkReference(
            bucket: bucket, key: key, version: ObjectVersion(timestamp: HLCTimestamp(rawValue: hlc), node: node))
    }
}

/// `hints.kind`.
enum HintKind: Int64 {
    case chunk = 1
    case manifest = 2
}

/// A hint encoded for its row, done by the caller off the writer thread.
struct EncodedHint: Sendable {
    var target: String
    var bucket: String
    var kind: HintKind
    var chunk: ChunkID?
    var manifest: [UInt8]?
    var reference: [UInt8]?
    var createdMillis: UInt64
}
