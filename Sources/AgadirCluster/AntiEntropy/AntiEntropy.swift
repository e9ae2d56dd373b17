import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirWire
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// What an anti-entropy pass covers: every partition of this node, or one policy, or one partition.
public struct RepairScope: Codable, Sendable, Hashable, CustomStringConvertible {
    public var policy: String?
    public var partition: Int?

    public init(policy: String? = nil, partition: Int? = nil) {
        self.policy = policy
        self.partition = partition
    }

    public var description: String {
        switch (policy, partition) {
        case (nil, nil): "all partitions"
        case (let p?, nil): "policy \(p)"
        case (nil, let n?): "partition \(n)"
        case (let p?, let n?): "policy \(p), partition \(n)"
        }
    }
}

/// A node's anti-entropy, as NODE_STATUS and `agadir admin repair status` show it.
public struct RepairProgress: Codable, Sendable, Hashable {
    /// idle, running, waiting (a rebalance is in progress: it runs once one version is live).
    public var state = "idle"
    public var scope = RepairScope()
    public var passes = 0
    public var startedMillis: UInt64?
    public var finishedMillis: UInt64?
    public var partitionsTotal = 0
    public var partitionsChecked = 0
    /// Partitions where a replica differed and data was copied.
    public var partitionsRepaired = 0
    /// Partitions skipped because a replica could not be asked (their purge waits too).
    public var partitionsIncomplete = 0
    public var manifestsCopied = 0
    public var chunksCopied = 0
    public var bytesCopied: UInt64 = 0
    public var tombstonesPurged = 0
    public var unreachable: [String] = []
    public var lastError: String?

    public init() {}
}

/// Anti-entropy between the replicas of each partition (docs/rebalance.md, "Anti-entropy"):
/// on a schedule and on demand, this node compares the digests of every partition it holds
/// with each other replica's and pulls what differs (manifests last-writer-wins, missing
/// chunks verified); delete markers older than the grace period are purged once every
/// replica agrees on everything else in the partition.
public final class AntiEntropy: Service, Sendable {
    let node: ClusterNode
    let rebalancer: Rebalancer
    let logger: Logger
    let interval: Duration
    let tombstoneGrace: Duration

    private struct State {
        var progress = RepairProgress()
        var requested: RepairScope?
        var lastPass: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    public init(node: ClusterNode, rebalancer: Rebalancer, interval: Duration, tombstoneGrace: Duration, logger: Logger) {
        self.node = node
        self.rebalancer = rebalancer
        self.interval = interval
        self.tombstoneGrace = tombstoneGrace
        self.logger = logger
    }

    public var progress: RepairProgress { state.withLock { $0.progress } }

    /// Asks for a pass over `scope` (replacing a pending request); it starts within a second.
    public func request(_ scope: RepairScope) {
        state.withLock { $0.requested = scope }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.loop() }
    }

    private func loop() async {
        let tick = min(Duration.seconds(1), interval)
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: tick)
            } catch {
                break
            }
            let due: RepairScope? = state.withLock { s in
                if let r = s.requested { return r }
                if let last = s.lastPass, ContinuousClock.now - last < interval { return nil }
                if s.lastPass == nil {
                    // The first scheduled pass comes one interval after start.
                    s.lastPass = .now
                    return nil
                }
                return RepairScope()
            }
            guard let scope = due, node.isClusterMode else { continue }
            await pass(scope)
        }
    }

    /// One pass over `scope`; public for tests that drive it.
    public func pass(_ scope: RepairScope) async {
        let cluster = node.layout
        guard cluster.live.count == 1 else {
            // During a rebalance the partitions are being copied; the pass runs after it.
            state.withLock { s in
                s.progress.state = "waiting"
                if s.requested == nil { s.requested = scope }
            }
            return
        }
        // Digests and listings keep only the buckets of a policy, by this node's catalog: bring
        // it up to date first (a node whose disk was replaced starts with none).
        await node.syncCatalog()
        let layout = cluster.current
        let me = node.nodeID
        let count = layout.partitionCount
        var work: [(policy: String, partition: Int)] = []
        for policy in layout.maps.keys.sorted() where scope.policy == nil || scope.policy == policy {
            for p in 0..<count where scope.partition == nil || scope.partition == p {
                if layout.replicas(policy: policy, partition: p).contains(me) { work.append((policy, p)) }
            }
        }
        state.withLock { s in
            s.requested = nil
            s.lastPass = .now
            var p = RepairProgress()
            p.state = "running"
            p.scope = scope
            p.passes = s.progress.passes
            p.startedMillis = WallMillis.now()
            p.partitionsTotal = work.count
            s.progress = p
        }
        logger.info("anti-entropy pass started", metadata: ["scope": "\(scope)", "partitions": "\(work.count)"])
        var unreachable: Set<String> = []
        for (policy, partition) in work {
            guard !Task.isCancelled, node.layout.current.version == layout.version else { break }
            do throws(AgadirError) {
                try await repair(policy: policy, partition: partition, layout: layout, unreachable: &unreachable)
            } catch {
                logger.warning(
                    "anti-entropy of a partition failed", metadata: ["policy": "\(policy)", "partition": "\(partition)", "error": "\(error)"])
                state.withLock { s in
                    s.progress.partitionsIncomplete += 1
                    s.progress.lastError = "\(policy)/\(partition): \(error.message)"
                }
            }
            state.withLock { $0.progress.partitionsChecked += 1 }
        }
        let done = state.withLock { s in
            s.progress.state = "idle"
            s.progress.passes += 1
            s.progress.finishedMillis = WallMillis.now()
            s.progress.unreachable = unreachable.sorted()
            return s.progress
        }
        logger.info(
            "anti-entropy pass finished",
            metadata: [
                "scope": "\(scope)", "repaired": "\(done.partitionsRepaired)", "incomplete": "\(done.partitionsIncomplete)",
                "purged": "\(done.tombstonesPurged)",
            ])
    }

    /// Compares one partition with each other replica, pulls what differs, purges old
    /// delete markers when every replica agreed on the rest.
    private func repair(policy: String, partition: Int, layout: Layout, unreachable: inout Set<String>) async throws(AgadirError) {
        let me = node.nodeID
        let count = layout.partitionCount
        let horizon = WallMillis.now() &- UInt64(max(0, tombstoneGrace.components.seconds)) * 1000
        let local = node.local
        let mine = try await local.partitionDigest(policy: policy, partition: partition, partitionCount: count, tombstonesBefore: horizon)
        let snapshot = node.snapshot()
        var copier = PartitionCopier(local: local, partitionCount: count)
        copier.pageSize = 256
        var allAgree = true
        var repaired = false
        for peer in layout.replicas(policy: policy, partition: partition) where peer != me {
            guard snapshot.alive.contains(peer) else {
                unreachable.insert(peer)
                allAgree = false
                continue
            }
            let replica = node.replica(peer)
            let theirs: PartitionSummary
            do throws(AgadirError) {
                theirs = try await replica.partitionDigest(policy: policy, partition: partition, partitionCount: count, tombstonesBefore: horizon)
            } catch {
                unreachable.insert(peer)
                allAgree = false
                continue
            }
            let sameSite = snapshot.site(of: peer) == node.site
            let pace: @Sendable (UInt64) async -> Void = { [rebalancer] bytes in await rebalancer.pace(bytes, sameSite: sameSite) }
            var tally = CopyTally()
            if theirs.manifests != mine.manifests {
                allAgree = false
                var after: ManifestCursor? = nil
                for _ in 0..<1_000_000 {
                    let (next, moved) = try await copier.copyManifests(
                        policy: policy, partition: partition, from: replica, after: after, tombstonesBefore: horizon, throttle: pace)
                    tally.add(moved)
                    guard let next else { break }
                    after = next
                }
            }
            if theirs.chunks != mine.chunks {
                var after: ChunkID? = nil
                for _ in 0..<1_000_000 {
                    let (next, moved) = try await copier.copyChunks(policy: policy, partition: partition, from: replica, after: after, throttle: pace)
                    tally.add(moved)
                    guard let next else { break }
                    after = next
                }
            }
            if tally.manifests > 0 || tally.chunks > 0 { repaired = true }
            state.withLock { s in
                s.progress.manifestsCopied += tally.manifests
                s.progress.chunksCopied += tally.chunks
                s.progress.bytesCopied += tally.bytes
            }
        }
        if repaired { state.withLock { $0.progress.partitionsRepaired += 1 } }
        if !allAgree {
            if layout.replicas(policy: policy, partition: partition).contains(where: { $0 != me && !snapshot.alive.contains($0) }) {
                state.withLock { $0.progress.partitionsIncomplete += 1 }
            }
            return
        }
        // Every replica holds the same manifests apart from old delete markers: none holds an
        // older live version of a key whose marker is old, so purging the markers cannot
        // bring anything back.
        var purge: [(bucket: String, key: String, version: ObjectVersion)] = []
        var after: ManifestCursor? = nil
        for _ in 0..<1_000_000 {
            let page = try await local.partitionManifests(policy: policy, partition: partition, partitionCount: count, after: after, limit: 1000)
            for m in page.manifests where m.isTombstone && m.version.timestamp.physicalMillis < horizon {
                purge.append((m.bucket, m.key, m.version))
            }
            guard let next = page.next else { break }
            after = next
        }
        var purged = 0
        for start in stride(from: 0, to: purge.count, by: 1000) {
            purged += try await local.store.dropManifests(Array(purge[start..<min(start + 1000, purge.count)]))
        }
        if purged > 0 {
            state.withLock { $0.progress.tombstonesPurged += purged }
            logger.info("old delete markers purged", metadata: ["policy": "\(policy)", "partition": "\(partition)", "count": "\(purged)"])
        }
    }
}
