import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirWire

/// The anti-entropy of one partition (docs/rebalance.md, "Anti-entropy"), apart from the
/// worker: compares this node's digest with each other replica's, pulls what differs, and
/// purges the old delete markers only when `AntiEntropyDecisions.mayPurge` says every other
/// replica was compared and held the same manifests (a replica that is not alive, or does
/// not answer, may hold an older live version a purge would bring back). `AntiEntropy` runs
/// it with the node's view; the tests with real stores and replicas switched off.
struct PartitionRepair: Sendable {
    let local: LocalReplica
    let me: String
    let site: String
    let snapshot: ClusterSnapshot
    let replica: @Sendable (String) -> any ReplicaClient
    /// Delete markers older than this (ms since the epoch) are left out of the digests and
    /// may be purged.
    let horizon: UInt64
    /// Throttles the bytes pulled from a replica (of this node's site or not).
    let pace: @Sendable (_ bytes: UInt64, _ sameSite: Bool) async -> Void

    struct Outcome: Sendable, Equatable {
        /// Data was copied from some replica.
        var repaired = false
        /// A replica of the partition is not alive: compared with fewer than all of them.
        var incomplete = false
        /// Old delete markers purged here.
        var purged = 0
    }

    /// Repairs `policy`/`partition` of `layout`; the replicas that could not be asked go to
    /// `unreachable`, and `copied` gets what was pulled from each replica as it is done.
    func run(
        policy: String, partition: Int, layout: Layout, unreachable: inout Set<String>,
        copied: (CopyTally) -> Void
    ) async throws(AgadirError) -> Outcome {
        var outcome = Outcome()
        let count = layout.partitionCount
        let mine = try await local.partitionDigest(
            policy: policy, partition: partition, partitionCount: count, tombstonesBefore: horizon)
        var copier = PartitionCopier(local: local, partitionCount: count)
        copier.pageSize = 256
        var comparedAll = true
        var manifestsDiffered = false
        for peer in layout.replicas(policy: policy, partition: partition) where peer != me {
            guard snapshot.alive.contains(peer) else {
                unreachable.insert(peer)
                comparedAll = false
                continue
            }
            let replica = self.replica(peer)
            let theirs: PartitionSummary
            do throws(AgadirError) {
                theirs = try await replica.partitionDigest(
                    policy: policy, partition: partition, partitionCount: count, tombstonesBefore: horizon)
            } catch {
                unreachable.insert(peer)
                comparedAll = false
                continue
            }
            let sameSite = snapshot.site(of: peer) == site
            let pace = self.pace
            let throttle: @Sendable (UInt64) async -> Void = { bytes in await pace(bytes, sameSite) }
            var tally = CopyTally()
            if theirs.manifests != mine.manifests {
                manifestsDiffered = true
                var after: ManifestCursor? = nil
                for _ in 0..<1_000_000 {
                    let (next, moved) = try await copier.copyManifests(
                        policy: policy, partition: partition, from: replica, after: after, tombstonesBefore: horizon,
                        throttle: throttle)
                    tally.add(moved)
                    guard let next else { break }
                    after = next
                }
            }
            if theirs.chunks != mine.chunks {
                var after: ChunkID? = nil
                for _ in 0..<1_000_000 {
                    let (next, moved) = try await copier.copyChunks(
                        policy: policy, partition: partition, from: replica, after: after, throttle: throttle)
                    tally.add(moved)
                    guard let next else { break }
                    after = next
                }
            }
            if tally.manifests > 0 || tally.chunks > 0 { outcome.repaired = true }
            copied(tally)
        }
        guard AntiEntropyDecisions.mayPurge(comparedAll: comparedAll, manifestsDiffered: manifestsDiffered) else {
            if layout.replicas(policy: policy, partition: partition).contains(where: {
                $0 != me && !snapshot.alive.contains($0)
            }) {
                outcome.incomplete = true
            }
            return outcome
        }
        // Every replica holds the same manifests apart from old delete markers: none holds an
        // older live version of a key whose marker is old, so purging the markers cannot
        // bring anything back.
        var purge: [(bucket: String, key: String, version: ObjectVersion)] = []
        var after: ManifestCursor? = nil
        for _ in 0..<1_000_000 {
            let page = try await local.partitionManifests(
                policy: policy, partition: partition, partitionCount: count, after: after, limit: 1000)
            for m in page.manifests where m.isTombstone && m.version.timestamp.physicalMillis < horizon {
                purge.append((m.bucket, m.key, m.version))
            }
            guard let next = page.next else { break }
            after = next
        }
        for start in stride(from: 0, to: purge.count, by: 1000) {
            outcome.purged += try await local.store.dropManifests(Array(purge[start..<min(start + 1000, purge.count)]))
        }
        return outcome
    }
}
