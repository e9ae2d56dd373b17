import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirWire

/// Copies pages of a partition from a replica that holds it into this node's store
/// (docs/rebalance.md, "Moving partitions"): manifests are applied last-writer-wins, so a
/// newer write that reached this node meanwhile is never replaced by an older copy; a chunk
/// is fetched only when missing, verified (CRC, decoding, SHA-256 = id) before it is
/// stored, and stored with the references the source lists for it.
public struct PartitionCopier: Sendable {
    public let local: LocalReplica
    public let partitionCount: Int
    /// Manifests and chunks asked per page.
    public var pageSize = 256
    /// Manifests applied and chunks fetched at once.
    public var parallelism = 8

    public init(local: LocalReplica, partitionCount: Int) {
        self.local = local
        self.partitionCount = partitionCount
    }

    /// Copies one page of the partition's manifests of `policy` after `after`. `throttle` is
    /// told the bytes of each page once received and waits as long as the rate needs.
    ///
    /// With `tombstonesBefore`, a delete marker older than it is applied only when this
    /// node holds an older version of its key: otherwise this node has purged it, and
    /// copying it back would undo the purge (anti-entropy).
    public func copyManifests(
        policy: String, partition: Int, from source: any ReplicaClient, after: ManifestCursor?,
        tombstonesBefore: UInt64? = nil, throttle: @Sendable (UInt64) async -> Void
    ) async throws(AgadirError) -> (next: ManifestCursor?, tally: CopyTally) {
        let page = try await source.partitionManifests(
            policy: policy, partition: partition, partitionCount: partitionCount, after: after, limit: pageSize)
        var tally = CopyTally()
        var manifests: [ObjectManifest] = []
        for m in page.manifests {
            if let horizon = tombstonesBefore, m.isTombstone, m.version.timestamp.physicalMillis < horizon,
                try await local.getManifest(bucket: m.bucket, key: m.key) == nil
            {
                continue
            }
            manifests.append(m)
        }
        for m in manifests {
            guard Partitioner.partition(bucket: m.bucket, key: m.key, count: partitionCount) == partition else {
                throw AgadirError(
                    .corruptData,
                    "\(source.nodeID) sent \(m.bucket)/\(m.key) as part of partition \(partition), where it does not belong"
                )
            }
            tally.manifests += 1
            tally.manifestBytes += UInt64(ManifestCodec.encode(m).count)
        }
        await throttle(tally.manifestBytes)
        let store = local.store
        try await Self.forEach(manifests, width: parallelism) { m throws(AgadirError) in
            _ = try await store.putReplicaManifest(m)
        }
        return (page.next, tally)
    }

    /// Copies one page of the chunk partition's chunks of `policy` after `after`. `throttle`
    /// is told each chunk's bytes before it is fetched.
    public func copyChunks(
        policy: String, partition: Int, from source: any ReplicaClient, after: ChunkID?,
        throttle: @escaping @Sendable (UInt64) async -> Void
    ) async throws(AgadirError) -> (next: ChunkID?, tally: CopyTally) {
        let page = try await source.partitionChunks(
            policy: policy, partition: partition, partitionCount: partitionCount, after: after, limit: pageSize)
        for entry in page.chunks where Partitioner.partition(of: entry.id, count: partitionCount) != partition {
            throw AgadirError(
                .corruptData,
                "\(source.nodeID) sent chunk \(entry.id.hex) as part of partition \(partition), where it does not belong"
            )
        }
        let store = local.store
        let held = try await store.containsChunks(page.chunks.map(\.id))
        var tally = CopyTally()
        var missing: [PartitionChunkEntry] = []
        // References to record on chunks held here, grouped by reference (one claim each).
        var claims: [ChunkReference: [ChunkID]] = [:]
        for (entry, isHeld) in zip(page.chunks, held) {
            if isHeld {
                tally.chunksAlreadyHeld += 1
                for ref in entry.references { claims[ref, default: []].append(entry.id) }
            } else {
                missing.append(entry)
                tally.chunks += 1
                tally.chunkBytes += entry.storedBytes
                for ref in entry.references.dropFirst() { claims[ref, default: []].append(entry.id) }
            }
        }
        let sourceID = source.nodeID
        try await Self.forEach(missing, width: parallelism) { entry throws(AgadirError) in
            guard let first = entry.references.first else { return }
            await throttle(entry.storedBytes)
            let chunk = try await source.getChunk(entry.id, bucket: first.bucket)
            guard chunk.id == entry.id else {
                throw AgadirError(.corruptData, "\(sourceID) answered chunk \(entry.id.hex) with chunk \(chunk.id.hex)")
            }
            try ReplicaService.verify(chunk, from: sourceID)
            try await store.putChunk(chunk, reference: first)
        }
        for (ref, ids) in claims.sorted(by: {
            ($0.key.bucket, Bytewise($0.key.key)) < ($1.key.bucket, Bytewise($1.key.key))
        }) {
            _ = try await store.claimChunks(ids, reference: ref)
        }
        return (page.next, tally)
    }

    /// Runs `body` on every item, at most `width` at once; the first error is thrown once
    /// the running ones have finished.
    static func forEach<T: Sendable>(
        _ items: [T], width: Int, _ body: @escaping @Sendable (T) async throws(AgadirError) -> Void
    ) async throws(AgadirError) {
        let failure: AgadirError? = await withTaskGroup(of: AgadirError?.self) { group in
            var next = 0
            var first: AgadirError? = nil
            func start() {
                let item = items[next]
                next += 1
                group.addTask {
                    do throws(AgadirError) {
                        try await body(item)
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            while next < items.count, next < max(1, width) { start() }
            while let result = await group.next() {
                if let result, first == nil { first = result }
                if first == nil, next < items.count { start() }
            }
            return first
        }
        if let failure { throw failure }
    }
}
