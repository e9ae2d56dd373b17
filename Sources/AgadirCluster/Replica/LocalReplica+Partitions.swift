import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirWire

// The source side of a partition move (docs/rebalance.md, "Moving partitions"): pages of
// this node's manifests and chunks of one partition, restricted to the buckets of one
// policy. The receiving node's eligibility is checked by the caller (`ReplicaService`)
// before any of this is read.

extension LocalReplica {
    /// Store pages read to fill one answer when most rows belong to other policies.
    static let maxScannedPages = 8

    public func partitionManifests(
        policy: String, partition: Int, partitionCount: Int, after: ManifestCursor?, limit: Int
    ) async throws(AgadirError) -> ManifestPage {
        try Self.checkPartition(partition, partitionCount)
        let (lo, hi) = KeyHash.range(partition: partition, count: partitionCount)
        var cursor = after.map { (keyHash: $0.keyHash, bucket: $0.bucket, key: $0.key) }
        var policies = PolicyLookup(store: store)
        var out: [ObjectManifest] = []
        var bytes = 0
        for _ in 0..<Self.maxScannedPages {
            let rows = try await store.manifests(keyHashes: lo, below: hi, after: cursor, limit: limit)
            for (hash, m) in rows {
                cursor = (hash, m.bucket, m.key)
                guard try await policies.holds(m.bucket, m.version, of: policy) else { continue }
                out.append(m)
                bytes += ManifestCodec.encode(m).count
                if out.count == limit || bytes >= PeerLimits.partitionPageBytes {
                    return ManifestPage(
                        manifests: out, next: ManifestCursor(keyHash: hash, bucket: m.bucket, key: m.key))
                }
            }
            if rows.count < limit { return ManifestPage(manifests: out, next: nil) }
        }
        return ManifestPage(
            manifests: out, next: cursor.map { ManifestCursor(keyHash: $0.keyHash, bucket: $0.bucket, key: $0.key) })
    }

    public func partitionChunks(
        policy: String, partition: Int, partitionCount: Int, after: ChunkID?, limit: Int
    ) async throws(AgadirError) -> ChunkPage {
        try Self.checkPartition(partition, partitionCount)
        let (lo, hi) = Partitioner.chunkRange(partition: partition, count: partitionCount)
        var cursor = after
        var policies = PolicyLookup(store: store)
        var out: [PartitionChunkEntry] = []
        for _ in 0..<Self.maxScannedPages {
            let rows = try await store.partitionChunks(w0From: lo, below: hi, after: cursor, limit: limit)
            for chunk in rows {
                cursor = chunk.id
                var refs: [ChunkReference] = []
                for ref in chunk.references where try await policies.holds(ref.bucket, ref.version, of: policy) {
                    refs.append(ref)
                    if refs.count == PeerLimits.maxReferencesPerChunk { break }
                }
                guard !refs.isEmpty else { continue }
                out.append(PartitionChunkEntry(id: chunk.id, storedBytes: chunk.storedBytes, references: refs))
                if out.count == limit { return ChunkPage(chunks: out, next: chunk.id) }
            }
            if rows.count < limit { return ChunkPage(chunks: out, next: nil) }
        }
        return ChunkPage(chunks: out, next: cursor)
    }

    /// Digests of this node's data of `policy` in the partition (`PartitionSummary`): every
    /// page of it is read, so the cost is one partition scan.
    public func partitionDigest(
        policy: String, partition: Int, partitionCount: Int, tombstonesBefore: UInt64
    ) async throws(AgadirError) -> PartitionSummary {
        var summaries: [ManifestSummary] = []
        var after: ManifestCursor? = nil
        for _ in 0..<Self.maxDigestPages {
            let page = try await partitionManifests(
                policy: policy, partition: partition, partitionCount: partitionCount, after: after, limit: 1000)
            for m in page.manifests where !(m.isTombstone && m.version.timestamp.physicalMillis < tombstonesBefore) {
                summaries.append(
                    ManifestSummary(bucket: m.bucket, key: m.key, version: m.version, isTombstone: m.isTombstone))
            }
            guard let next = page.next else { break }
            after = next
        }
        var ids = ByteWriter()
        var chunkCount = 0
        var afterChunk: ChunkID? = nil
        for _ in 0..<Self.maxDigestPages {
            let page = try await partitionChunks(
                policy: policy, partition: partition, partitionCount: partitionCount, after: afterChunk, limit: 1000)
            for c in page.chunks { ids.chunkID(c.id) }
            chunkCount += page.chunks.count
            guard let next = page.next else { break }
            afterChunk = next
        }
        let digest = PartitionDigest(summaries)
        return PartitionSummary(
            manifests: digest.root, manifestCount: digest.count, chunks: ChunkID.of(ids.bytes), chunkCount: chunkCount)
    }

    /// Pages read for one digest at most (a million entries of each kind).
    static let maxDigestPages = 1000

    static func checkPartition(_ partition: Int, _ count: Int) throws(AgadirError) {
        guard count >= 1, (0..<count).contains(partition) else {
            throw AgadirError(
                .invalidArgument, "partition \(partition) does not exist: the layout has \(count) partitions")
        }
    }
}

/// Bucket name → catalog record from this node's catalog, remembered for one page (a
/// deleted bucket keeps its policy: its data stays where that policy allows).
struct PolicyLookup {
    let store: NodeStore
    private var known: [String: BucketRecord?] = [:]

    init(store: NodeStore) { self.store = store }

    mutating func record(of bucket: String) async throws(AgadirError) -> BucketRecord? {
        if let r = known[bucket] { return r }
        let r = try await store.bucketCatalog(named: bucket)
        if known.count < 10_000 { known[bucket] = r }
        return r
    }

    /// True when something of `bucket` stamped `version` is data of `policy`: the bucket
    /// has that policy and the version is not older than its generation (an earlier bucket
    /// of the name may have had another policy; its leftovers never travel under this one).
    mutating func holds(_ bucket: String, _ version: ObjectVersion, of policy: String) async throws(AgadirError)
        -> Bool
    {
        guard let record = try await record(of: bucket) else { return false }
        return record.policy == policy && !record.predates(version)
    }
}
