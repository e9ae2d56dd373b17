/// Records shared by the store, the peer protocol and the coordinator of a cluster.

/// The object version a chunk was written for: recorded with the chunk on each of its
/// replicas, so a node can tell which buckets (and so which policies) its chunks serve.
public struct ChunkReference: Sendable, Hashable {
    public var bucket: String
    @Bytewise public var key: String
    public var version: ObjectVersion

    public init(bucket: String, key: String, version: ObjectVersion) {
        self.bucket = bucket
        self.key = key
        self.version = version
    }
}

/// One key of a replica's listing, tombstones included: what a coordinator merges.
public struct ReplicaListEntry: Sendable, Hashable {
    @Bytewise public var key: String
    public var version: ObjectVersion
    public var isTombstone: Bool
    public var size: UInt64
    public var etag: ChunkID
    public var contentType: String

    public init(
        key: String, version: ObjectVersion, isTombstone: Bool, size: UInt64, etag: ChunkID, contentType: String
    ) {
        self.key = key
        self.version = version
        self.isTombstone = isTombstone
        self.size = size
        self.etag = etag
        self.contentType = contentType
    }
}

/// A bucket's cluster-wide definition; last writer wins per name on `version`; a deletion
/// is a record with `deleted`.
public struct BucketRecord: Sendable, Hashable {
    public var name: String
    public var policy: String
    public var createdMillis: UInt64
    public var version: ObjectVersion
    public var deleted: Bool
    /// The bucket's quota: at most this many bytes of live objects (their logical sizes); 0 = none.
    public var maxBytes: UInt64
    /// At most this many live objects; 0 = none.
    public var maxObjects: UInt64
    /// The version of the creation that made this bucket (kept by quota changes and by the
    /// deletion). An object, chunk reference or hint of the name with an older version belongs
    /// to an earlier bucket of that name, deleted: it is refused, ignored and purged
    /// (docs/consistency.md, "Deleted buckets"). `.zero` for records from before it existed.
    public var generation: ObjectVersion

    public init(
        name: String, policy: String, createdMillis: UInt64, version: ObjectVersion, deleted: Bool,
        maxBytes: UInt64 = 0, maxObjects: UInt64 = 0, generation: ObjectVersion = .zero
    ) {
        self.name = name
        self.policy = policy
        self.createdMillis = createdMillis
        self.version = version
        self.deleted = deleted
        self.maxBytes = maxBytes
        self.maxObjects = maxObjects
        self.generation = generation
    }

    /// True when something of this name stamped `version` belongs to an earlier bucket.
    public func predates(_ version: ObjectVersion) -> Bool { version < generation }

    /// True when the record limits its bucket's bytes or objects.
    public var hasQuota: Bool { maxBytes > 0 || maxObjects > 0 }

    /// True when `self` replaces `other` (last writer wins).
    public func supersedes(_ other: BucketRecord) -> Bool { version > other.version }
}

/// What a bucket holds: its live objects (delete markers not counted) and their logical bytes.
public struct BucketUsage: Sendable, Hashable, Codable {
    public var objects: UInt64
    public var bytes: UInt64

    public init(objects: UInt64, bytes: UInt64) {
        self.objects = objects
        self.bytes = bytes
    }

    public static let zero = BucketUsage(objects: 0, bytes: 0)

    public static func + (a: BucketUsage, b: BucketUsage) -> BucketUsage {
        BucketUsage(objects: a.objects &+ b.objects, bytes: a.bytes &+ b.bytes)
    }
}

/// The 32-bit key hash of an object: the first 4 bytes (big-endian) of
/// SHA-256(bucket, 0x00, key). A manifest's partition is its top log2(count) bits
/// (`Partitioner.partition(bucket:key:count:)`), so the manifests of a partition are a range
/// of key hashes, which the store indexes.
public enum KeyHash {
    public static func of(bucket: String, key: String) -> UInt32 {
        var bytes = Array(bucket.utf8)
        bytes.append(0)
        bytes.append(contentsOf: key.utf8)
        return UInt32(truncatingIfNeeded: ChunkID.of(bytes).w0 >> 32)
    }

    /// The key hashes of partition `partition` of `count` (a power of two): `lo ..< hi`.
    public static func range(partition: Int, count: Int) -> (lo: UInt32, hi: UInt64) {
        let width = (UInt64(1) << 32) / UInt64(max(1, count))
        let lo = UInt64(partition) * width
        return (UInt32(truncatingIfNeeded: lo), lo + width)
    }
}

/// One policy's partitions of a layout version that have a replica not alive.
public struct UnderReplication: Sendable, Hashable, Codable {
    public var policy: String
    public var replicationFactor: Int
    /// Partitions with at least one replica not alive.
    public var partitions: Int
    /// Partitions with fewer alive replicas than a majority of the replication factor.
    public var belowQuorum: Int
    /// Partitions with no alive replica: their objects cannot be read now.
    public var unavailable: Int
    /// The replicas not alive, sorted.
    public var nodesDown: [String]

    public init(
        policy: String, replicationFactor: Int, partitions: Int, belowQuorum: Int, unavailable: Int, nodesDown: [String]
    ) {
        self.policy = policy
        self.replicationFactor = replicationFactor
        self.partitions = partitions
        self.belowQuorum = belowQuorum
        self.unavailable = unavailable
        self.nodesDown = nodesDown
    }
}
