import AgadirCore

/// A manifest as anti-entropy compares it: which object, which version, deleted or not.
public struct ManifestSummary: Sendable, Hashable {
    public var bucket: String
    @Bytewise public var key: String
    public var version: ObjectVersion
    public var isTombstone: Bool

    public init(bucket: String, key: String, version: ObjectVersion, isTombstone: Bool) {
        self.bucket = bucket
        self.key = key
        self.version = version
        self.isTombstone = isTombstone
    }
}

/// A two-level hash summary of a partition's manifests (docs/rebalance.md,
/// "Anti-entropy"): 256 buckets chosen by byte 8 of SHA-256(bucket, 0x00, key) (the
/// partition uses the first bytes, so buckets spread within any partition), each the
/// SHA-256 of its records in (bucket, key) UTF-8 byte order, and a root over the 256
/// bucket hashes. Two replicas with the same manifests have the same digest whatever
/// order they were read in; the buckets that differ say which keys to exchange. Pure.
///
/// Record encoding: `string16 bucket | string16 key | u64 hlc | u64 node tag | u8 tombstone`.
/// An empty bucket hashes to SHA-256 of no bytes.
public struct PartitionDigest: Sendable, Hashable {
    public static let bucketCount = 256

    public private(set) var buckets: [ChunkID]
    public private(set) var root: ChunkID
    public private(set) var count: Int

    public init(_ entries: [ManifestSummary]) {
        var grouped = Array(repeating: [ManifestSummary](), count: Self.bucketCount)
        for e in entries { grouped[Self.bucket(bucket: e.bucket, key: e.key)].append(e) }
        var hashes: [ChunkID] = []
        hashes.reserveCapacity(Self.bucketCount)
        for var group in grouped {
            group.sort { a, b in
                a.bucket == b.bucket
                    ? a.key.utf8.lexicographicallyPrecedes(b.key.utf8)
                    : a.bucket.utf8.lexicographicallyPrecedes(b.bucket.utf8)
            }
            var w = ByteWriter(capacity: group.count * 48)
            for e in group {
                w.string16(e.bucket)
                w.string16(e.key)
                w.u64(e.version.timestamp.rawValue)
                w.u64(e.version.node)
                w.u8(e.isTombstone ? 1 : 0)
            }
            hashes.append(ChunkID.of(w.bytes))
        }
        var all = ByteWriter(capacity: Self.bucketCount * ChunkID.byteCount)
        for h in hashes { all.chunkID(h) }
        self.buckets = hashes
        self.root = ChunkID.of(all.bytes)
        self.count = entries.count
    }

    /// The bucket of a key: byte 8 of SHA-256(bucket, 0x00, key).
    public static func bucket(bucket: String, key: String) -> Int {
        var bytes = Array(bucket.utf8)
        bytes.append(0)
        bytes.append(contentsOf: key.utf8)
        return Int(ChunkID.of(bytes).w1 >> 56)
    }

    /// The buckets whose hashes differ (empty when the roots are equal).
    public func differingBuckets(from other: PartitionDigest) -> [Int] {
        guard root != other.root else { return [] }
        return (0..<Self.bucketCount).filter { buckets[$0] != other.buckets[$0] }
    }
}
