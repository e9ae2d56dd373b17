/// Records shared by the store, the peer protocol and the coordinator of a cluster.

/// The object version a chunk was written for: recorded with the chunk on each of its
/// replicas, so a node can tell which buckets (and so which policies) its chunks serve.
public struct ChunkReference: Sendable, Hashable {
    public var bucket: String
    public var key: String
    public var version: ObjectVersion

    public init(bucket: String, key: String, version: ObjectVersion) {
        self.bucket = bucket
        self.key = key
        self.version = version
    }
}

/// One key of a replica's listing, tombstones included: what a coordinator merges.
public struct ReplicaListEntry: Sendable, Hashable {
    public var key: String
    public var version: ObjectVersion
    public var isTombstone: Bool
    public var size: UInt64
    public var etag: ChunkID
    public var contentType: String

    public init(key: String, version: ObjectVersion, isTombstone: Bool, size: UInt64, etag: ChunkID, contentType: String) {
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

    public init(name: String, policy: String, createdMillis: UInt64, version: ObjectVersion, deleted: Bool) {
        self.name = name
        self.policy = policy
        self.createdMillis = createdMillis
        self.version = version
        self.deleted = deleted
    }

    /// True when `self` replaces `other` (last writer wins).
    public func supersedes(_ other: BucketRecord) -> Bool { version > other.version }
}
