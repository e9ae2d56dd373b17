import AgadirCore
import AgadirPlacement
import AgadirStore

/// Data a node holds but no live layout version names it for (docs/rebalance.md,
/// "Acknowledgement and retirement").
public struct MisplacedTally: Sendable, Hashable, Codable {
    public var manifests = 0
    public var chunks = 0
    public var chunksDropped = 0
    /// False when some misplaced chunk was kept (a recent reference, or hints pending here).
    public var complete = true
}

extension ClusterNode {
    /// Walks every partition of this node's store and counts the manifests and chunks no
    /// live replica set of their policy names this node for. With `drop` (only when one
    /// version is live) they are deleted: manifests at the version seen, chunks only when
    /// no reference is newer than `chunkReferencesBefore` (ms) and no hint parked here names it.
    /// Data of a bucket or policy this node does not know is never counted or dropped.
    func misplaced(drop: Bool, chunkReferencesBefore: UInt64) async throws(AgadirError) -> MisplacedTally {
        try await Ownership.misplaced(
            store: store, layout: layout, nodeID: nodeID, drop: drop, chunkReferencesBefore: chunkReferencesBefore)
    }
}

/// What a node owns under the live layout versions, apart from the node (the tests drive it
/// on real stores).
enum Ownership {
    /// `ClusterNode.misplaced(drop:chunkReferencesBefore:)` on `store`, for node `nodeID` under
    /// `cluster`: while more than one version is live nothing is dropped, and a partition
    /// any live version names the node for is its own.
    static func misplaced(
        store: NodeStore, layout cluster: ClusterLayout, nodeID: String, drop: Bool, chunkReferencesBefore: UInt64
    ) async throws(AgadirError) -> MisplacedTally {
        var tally = MisplacedTally()
        guard cluster.current.version >= 1 else { return tally }
        let dropping = drop && cluster.live.count == 1
        if drop, !dropping { tally.complete = false }
        var policyOf: [String: String] = [:]
        for record in try await store.bucketCatalog()
        where cluster.live.contains(where: { $0.maps[record.policy] != nil }) {
            policyOf[record.name] = record.policy
        }
        func owned(_ policy: String, _ partition: Int) -> Bool {
            cluster.allReplicas(policy: policy, partition: partition).contains(nodeID)
        }
        let count = cluster.current.partitionCount
        let page = 1000
        for partition in 0..<count {
            let (lo, hi) = KeyHash.range(partition: partition, count: count)
            var after: (keyHash: UInt32, bucket: String, key: String)? = nil
            for _ in 0..<1_000_000 {
                let rows = try await store.manifests(keyHashes: lo, below: hi, after: after, limit: page)
                var drops: [(bucket: String, key: String, version: ObjectVersion)] = []
                for (_, m) in rows {
                    guard let policy = policyOf[m.bucket], !owned(policy, partition) else { continue }
                    tally.manifests += 1
                    drops.append((m.bucket, m.key, m.version))
                }
                if dropping, !drops.isEmpty { _ = try await store.dropManifests(drops) }
                guard rows.count == page, let last = rows.last else { break }
                after = (last.keyHash, last.manifest.bucket, last.manifest.key)
            }
            let (clo, chi) = Partitioner.chunkRange(partition: partition, count: count)
            var afterChunk: ChunkID? = nil
            for _ in 0..<1_000_000 {
                let rows = try await store.partitionChunks(w0From: clo, below: chi, after: afterChunk, limit: page)
                var drops: [ChunkID] = []
                for chunk in rows where !chunk.references.isEmpty {
                    let policies = chunk.references.map { policyOf[$0.bucket] }
                    guard policies.allSatisfy({ $0 != nil }), !policies.contains(where: { owned($0 ?? "", partition) })
                    else { continue }
                    tally.chunks += 1
                    drops.append(chunk.id)
                }
                if dropping, !drops.isEmpty {
                    // The store keeps any chunk referenced or stored since the cutoff, or
                    // named by a hint parked here; those are tried again next pass.
                    let gone = try await store.dropChunks(drops, referencedBefore: chunkReferencesBefore)
                    tally.chunksDropped += gone.count
                    if gone.count < drops.count { tally.complete = false }
                }
                guard rows.count == page, let last = rows.last else { break }
                afterChunk = last.id
            }
        }
        return tally
    }
}
