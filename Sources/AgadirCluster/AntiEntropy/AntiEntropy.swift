import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirWire
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Anti-entropy between the replicas of each partition (docs/rebalance.md, "Anti-entropy"):
/// on a schedule and on demand, this node compares the digests of every partition it holds
/// with each other replica's and pulls what differs (manifests last-writer-wins, missing
/// chunks verified); delete markers older than the grace period are purged once every
/// replica agrees on everything else in the partition.
public final class AntiEntropy: Worker, Sendable {
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

    public init(node: ClusterNode, rebalancer: Rebalancer, interval: Duration, tombstoneGrace: Duration, logger: Logger)
    {
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

    // MARK: Worker

    public var name: String { "anti-entropy" }

    /// How often the worker looks whether a pass is due or asked for.
    var tick: Duration { min(Duration.seconds(1), interval) }

    /// A pass over the scope asked for (`repair start`), or over everything once `interval`
    /// has passed since the last (the first scheduled pass comes one interval after start).
    public func step() async -> WorkerStep {
        let now = ContinuousClock.now
        let due: RepairScope? = state.withLock { s in
            let d = AntiEntropyDecisions.due(
                requested: s.requested, sinceLastPass: s.lastPass.map { now - $0 }, interval: interval)
            if d.startClock { s.lastPass = now }
            return d.scope
        }
        guard let scope = due, node.isClusterMode else { return .idle(tick) }
        await pass(scope)
        return .idle(tick)
    }

    public func report() -> (phase: String?, progress: String?) {
        let p = progress
        return (
            p.state,
            "\(p.partitionsChecked)/\(p.partitionsTotal) partition(s) checked, \(p.partitionsRepaired) repaired, \(p.passes) pass(es)"
        )
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
        let work = AntiEntropyDecisions.partitions(of: scope, in: layout, node: me)
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
                    "anti-entropy of a partition failed",
                    metadata: ["policy": "\(policy)", "partition": "\(partition)", "error": "\(error)"])
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
                "scope": "\(scope)", "repaired": "\(done.partitionsRepaired)",
                "incomplete": "\(done.partitionsIncomplete)",
                "purged": "\(done.tombstonesPurged)",
            ])
    }

    /// Compares one partition with each other replica, pulls what differs, purges old
    /// delete markers when every replica agreed on the rest (`PartitionRepair`).
    private func repair(policy: String, partition: Int, layout: Layout, unreachable: inout Set<String>)
        async throws(AgadirError)
    {
        let horizon = WallMillis.now() &- UInt64(max(0, tombstoneGrace.components.seconds)) * 1000
        let repair = PartitionRepair(
            local: node.local, me: node.nodeID, site: node.site, snapshot: node.snapshot(),
            replica: { [node] in node.replica($0) }, horizon: horizon,
            pace: { [rebalancer] bytes, sameSite in await rebalancer.pace(bytes, sameSite: sameSite) })
        // Counted as soon as data came, also when the purge fails afterwards.
        var repaired = false
        defer { if repaired { state.withLock { $0.progress.partitionsRepaired += 1 } } }
        let outcome = try await repair.run(
            policy: policy, partition: partition, layout: layout, unreachable: &unreachable
        ) { tally in
            if tally.manifests > 0 || tally.chunks > 0 { repaired = true }
            state.withLock { s in
                s.progress.manifestsCopied += tally.manifests
                s.progress.chunksCopied += tally.chunks
                s.progress.bytesCopied += tally.bytes
            }
        }
        if outcome.incomplete { state.withLock { $0.progress.partitionsIncomplete += 1 } }
        if outcome.purged > 0 {
            state.withLock { $0.progress.tombstonesPurged += outcome.purged }
            logger.info(
                "old delete markers purged",
                metadata: ["policy": "\(policy)", "partition": "\(partition)", "count": "\(outcome.purged)"])
        }
    }
}
