import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirWire
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Moves partitions after a layout change (docs/rebalance.md): this node pulls every
/// partition it gains from the nodes of the older live versions, throttled and resumable
/// (progress in `DATA/rebalance.json`), announces when it has all of them, retires the old
/// versions once every storage node of the new one has, and then drops what it no longer owns.
public final class Rebalancer: Worker, Sendable {
    let node: ClusterNode
    let file: StateFile<Record>
    let logger: Logger
    let timing: Timing

    public struct Timing: Sendable {
        /// Between rounds.
        public var interval: Duration = .seconds(1)
        /// How long after every alive member announces the new version copying starts (so
        /// writes coordinated under the old version have landed).
        public var settle: Duration = .seconds(2)
        /// How often a node asks one peer for its settings (to learn a change it missed).
        public var settingsPull: Duration = .seconds(10)
        /// Partitions copied at once.
        public var parallelPartitions = 4
        /// A chunk with a reference newer than this is never dropped (a PUT may be using it).
        public var dropGrace: Duration = .seconds(10)

        public init() {}

        public func scaled(by percent: Int) -> Timing {
            var t = self
            t.interval = interval * percent / 100
            t.settle = settle * percent / 100
            t.settingsPull = settingsPull * percent / 100
            t.dropGrace = dropGrace * percent / 100
            return t
        }
    }

    /// What survives a restart.
    struct Record: Codable {
        var settings = RebalanceSettings()
        var syncedVersion: UInt64 = 0
        var droppedVersion: UInt64 = 0
        /// The version `done`, the cursors and `moved` are for.
        var target: UInt64 = 0
        var done: Set<String> = []
        var manifestCursors: [String: ManifestCursor] = [:]
        var chunkCursors: [String: String] = [:]
        var moved = CopyTally()
        var manifestsDropped = 0
        var chunksDropped = 0
    }

    private struct Live {
        var record: Record
        var state = "idle"
        var partitionsTotal = 0
        var partitionsDone = 0
        var lastError: String?
        var waitingFor: [String] = []
        /// Removed sources not waited for in the current target version (see `receive`).
        var skipped: Set<String> = []
        /// When every alive member was first seen at the target version.
        var adoptedAt: ContinuousClock.Instant?
        /// (time, bytes moved) samples of the last seconds, for the rate.
        var samples: [(ContinuousClock.Instant, UInt64)] = []
        var intra: TokenBucket
        var inter: TokenBucket
        /// When a peer's settings were last pulled (see `step`).
        var settingsPulled: ContinuousClock.Instant?
    }
    private let live: Mutex<Live>
    private let origin = ContinuousClock.now

    public init(node: ClusterNode, dataDir: String, timing: Timing = Timing(), logger: Logger) throws(AgadirError) {
        self.node = node
        self.file = StateFile(
            dataDir: dataDir, name: "rebalance.json",
            ifMovedAway: "the node then copies its partitions again from the start")
        self.logger = logger
        self.timing = timing
        let record = try file.load(or: Record())
        let s = record.settings
        self.live = Mutex(
            Live(
                record: record, intra: TokenBucket(rate: s.intraSiteBytesPerSecond, now: 0),
                inter: TokenBucket(rate: s.interSiteBytesPerSecond, now: 0)))
    }

    // MARK: Status and settings

    public var settings: RebalanceSettings { live.withLock { $0.record.settings } }

    public func status() -> NodeRebalanceStatus {
        let cluster = node.layout
        let now = ContinuousClock.now
        return live.withLock { l in
            let rate = Self.rate(l.samples, now: now)
            var left: UInt64? = nil
            var eta: UInt64? = nil
            if l.partitionsDone > 0, l.partitionsTotal >= l.partitionsDone {
                left = l.record.moved.bytes / UInt64(l.partitionsDone) * UInt64(l.partitionsTotal - l.partitionsDone)
                if let left, rate > 0 { eta = left / rate }
            }
            return NodeRebalanceStatus(
                node: node.nodeID, site: node.site, layoutVersion: cluster.current.version,
                liveVersions: cluster.live.map(\.version),
                syncedVersion: l.record.syncedVersion, droppedVersion: l.record.droppedVersion, state: l.state,
                partitionsTotal: l.partitionsTotal, partitionsDone: l.partitionsDone, moved: l.record.moved,
                bytesLeftEstimate: left, rateBytesPerSecond: rate, etaSeconds: eta,
                manifestsDropped: l.record.manifestsDropped,
                chunksDropped: l.record.chunksDropped, settings: l.record.settings, lastError: l.lastError,
                waitingFor: l.waitingFor,
                skippedSources: l.skipped.isEmpty ? nil : l.skipped.sorted())
        }
    }

    static func rate(_ samples: [(ContinuousClock.Instant, UInt64)], now: ContinuousClock.Instant) -> UInt64 {
        guard let first = samples.first, let last = samples.last, now - first.0 > .milliseconds(500) else { return 0 }
        let seconds = Double((now - first.0).components.seconds) + Double((now - first.0).components.attoseconds) / 1e18
        return UInt64(Double(last.1 - first.1) / max(seconds, 0.5))
    }

    /// Adopts `settings` when newer than this node's; returns whether it did.
    @discardableResult
    public func adopt(_ settings: RebalanceSettings) throws(AgadirError) -> Bool {
        let record: Record? = live.withLock { l in
            guard settings.isNewer(than: l.record.settings) else { return nil }
            l.record.settings = settings
            let now = nanos()
            l.intra.setRate(settings.intraSiteBytesPerSecond, now: now)
            l.inter.setRate(settings.interSiteBytesPerSecond, now: now)
            return l.record
        }
        guard record != nil else { return false }
        try persist()
        logger.notice(
            "rebalance settings changed",
            metadata: [
                "intra": "\(settings.intraSiteBytesPerSecond)", "inter": "\(settings.interSiteBytesPerSecond)",
                "paused": "\(settings.paused)", "by": "\(settings.changedBy)",
            ])
        return true
    }

    private func save(_ record: Record) throws(AgadirError) { try file.save(record) }

    private func update(_ body: (inout Live) -> Void) { live.withLock { body(&$0) } }

    /// Changes the persisted record and saves it.
    private func commit(_ body: (inout Record) -> Void) throws(AgadirError) {
        live.withLock { body(&$0.record) }
        try persist()
    }

    /// Saves the newest record; one save at a time (partitions are copied concurrently), so a
    /// snapshot is never written over a newer one.
    private func persist() throws(AgadirError) {
        try saving.withLock { (_: inout Void) throws(AgadirError) in
            try save(live.withLock { $0.record })
        }
    }
    private let saving = Mutex(())

    private func nanos() -> UInt64 {
        let d = ContinuousClock.now - origin
        return UInt64(d.components.seconds) * 1_000_000_000 + UInt64(d.components.attoseconds / 1_000_000_000)
    }

    // MARK: The loop

    // MARK: Worker

    public var name: String { "rebalance" }

    /// One round, and every `settingsPull` a peer's settings; then, by the phase the round
    /// left: copying goes on at once, paused and idle phases look again after `interval`.
    public func step() async -> WorkerStep {
        let error = await round()
        let pullDue = live.withLock { l in
            let now = ContinuousClock.now
            if let last = l.settingsPulled, now - last < timing.settingsPull { return false }
            l.settingsPulled = now
            return true
        }
        if pullDue { await pullSettings() }
        if let error { return .failed(error, retryAfter: timing.interval) }
        switch live.withLock({ $0.state }) {
        case "copying": return .busy
        case "paused": return .paused(timing.interval)
        default: return .idle(timing.interval)
        }
    }

    public func report() -> (phase: String?, progress: String?) {
        let s = status()
        return (
            s.state,
            "layout \(s.layoutVersion): \(s.partitionsDone)/\(s.partitionsTotal) partition(s), \(s.moved.bytes) bytes moved"
                + (s.waitingFor.isEmpty ? "" : ", waiting for \(s.waitingFor.joined(separator: ","))")
        )
    }

    /// One step of the rebalance state machine; public for tests that drive it by hand.
    /// Returns what made it fail, if anything did.
    @discardableResult
    public func round() async -> AgadirError? {
        let cluster = node.layout
        let v = cluster.current.version
        guard v >= 1 else { return nil }
        do throws(AgadirError) {
            if live.withLock({ $0.record.target }) != v {
                try commit { r in
                    r.target = v
                    r.done = []
                    r.manifestCursors = [:]
                    r.chunkCursors = [:]
                    r.moved = CopyTally()
                }
                update { l in
                    l.adoptedAt = nil
                    l.skipped = []
                }
            }
            func next() -> RebalanceDecisions.Action {
                let r = live.withLock { $0.record }
                return RebalanceDecisions.action(
                    liveVersions: cluster.live.count, current: v, synced: r.syncedVersion, dropped: r.droppedVersion)
            }
            // A round may take two steps: receive the last partition then retire at once, or
            // mark the version synced then drop.
            for _ in 0..<2 {
                switch next() {
                case .none: break
                case .receive: try await receive(cluster)
                case .retire: try await retireIfAllSynced(cluster)
                case .markSynced: try commit { $0.syncedVersion = v }
                case .drop: try await dropIfAllRetired(cluster)
                case .idle: update { $0.state = "idle" }
                }
                if case .retire = next(), cluster.live.count > 1, live.withLock({ $0.state }) == "synced" { continue }
                if case .drop = next() { continue }
                break
            }
            update { $0.lastError = nil }
            return nil
        } catch {
            logger.warning("rebalance round failed", metadata: ["error": "\(error)"])
            update { $0.lastError = error.message }
            return error
        }
    }

    // MARK: Receiving

    /// Copies every partition this node gains in the current version from every node of the
    /// older versions that holds it (so a write acknowledged by any quorum is seen).
    private func receive(_ cluster: ClusterLayout) async throws(AgadirError) {
        let v = cluster.current.version
        let plan = TransferPlanner.plan(layout: cluster, node: node.nodeID)
        let done = live.withLock { $0.record.done }
        let snapshot = node.snapshot()
        // A source removed from the current version (by force) and not alive is not waited
        // for: it will not come back, and the rebalance would otherwise block for ever.
        let removed = Set(plan.receive.flatMap(\.sources)).filter {
            RebalanceDecisions.isRemoved($0, in: cluster, alive: snapshot.alive)
        }
        let newlySkipped = live.withLock { l in
            let new = removed.subtracting(l.skipped)
            l.skipped.formUnion(removed)
            return new
        }
        for source in newlySkipped.sorted() {
            logger.warning(
                "rebalance: a source removed from the layout and not alive is skipped; writes acknowledged only by it may be lost",
                metadata: ["source": "\(source)", "version": "\(v)"])
        }
        func partitionDone(_ t: PartitionTransfer, _ done: Set<String>) -> Bool {
            RebalanceDecisions.isReceived(t, done: done, removed: removed)
        }
        update { l in
            l.partitionsTotal = plan.receive.count
            l.partitionsDone = plan.receive.filter { partitionDone($0, done) }.count
        }
        if plan.receive.allSatisfy({ partitionDone($0, done) }) {
            try commit { $0.syncedVersion = v }
            update { $0.state = "synced" }
            logger.notice(
                "rebalance: every partition received",
                metadata: ["version": "\(v)", "moved": "\(live.withLock { $0.record.moved })"])
            return
        }
        guard !settings.paused else {
            update { $0.state = "paused" }
            return
        }
        // Copy only once every alive member has adopted the version (and a moment more), so
        // that no write coordinated under an older layout alone is still on its way.
        let lagging = (node.gossip?.memberInfos() ?? [])
            .filter { $0.state == MemberInfo.State.alive && $0.layoutVersion < v && $0.nodeID != node.nodeID }.map(
                \.nodeID)
        let now = ContinuousClock.now
        let adoptedFor: Duration? = live.withLock { l in
            guard lagging.isEmpty else {
                l.adoptedAt = nil
                return nil
            }
            defer { if l.adoptedAt == nil { l.adoptedAt = now } }
            return l.adoptedAt.map { now - $0 }
        }
        switch RebalanceDecisions.copyGate(lagging: lagging, adoptedFor: adoptedFor, settle: timing.settle) {
        case .waitFor(let nodes):
            update { l in
                l.state = "waiting"
                l.waitingFor = nodes
            }
            return
        case .settling:
            update { $0.state = "waiting" }
            return
        case .go:
            break
        }
        update { l in
            l.state = "copying"
            l.waitingFor = []
        }
        let copier = PartitionCopier(local: node.local, partitionCount: cluster.current.partitionCount)
        // Partitions are copied a few at a time: one partition is a handful of round trips
        // per source, so one at a time leaves the links idle between them.
        let pending = plan.receive.filter { !partitionDone($0, done) }
        let unreachable: Set<String> = await withTaskGroup(of: Set<String>.self) { group in
            var next = 0
            var all: Set<String> = []
            func start() {
                let transfer = pending[next]
                next += 1
                group.addTask {
                    let missed = await self.receive(
                        transfer, version: v, snapshot: snapshot, removed: removed, copier: copier)
                    if partitionDone(transfer, self.live.withLock { $0.record.done }) {
                        self.update { $0.partitionsDone += 1 }
                    }
                    return missed
                }
            }
            while next < pending.count, next < timing.parallelPartitions { start() }
            while let missed = await group.next() {
                all.formUnion(missed)
                if next < pending.count { start() }
            }
            return all
        }
        if !unreachable.isEmpty {
            update { l in
                l.state = "blocked"
                l.waitingFor = unreachable.sorted()
            }
        }
    }

    /// Copies one partition from each of its sources; returns the sources it could not reach.
    private func receive(
        _ transfer: PartitionTransfer, version v: UInt64, snapshot: ClusterSnapshot, removed: Set<String>,
        copier: PartitionCopier
    ) async -> Set<String> {
        var unreachable: Set<String> = []
        for source in transfer.sources {
            guard !Task.isCancelled, node.layout.current.version == v else { break }
            guard !settings.paused else {
                update { $0.state = "paused" }
                break
            }
            guard snapshot.alive.contains(source), source != node.nodeID else {
                if source != node.nodeID, !removed.contains(source) { unreachable.insert(source) }
                continue
            }
            do throws(AgadirError) {
                try await copy(transfer, from: source, copier: copier)
            } catch {
                unreachable.insert(source)
                logger.warning(
                    "rebalance: copy failed; retried next round",
                    metadata: [
                        "policy": "\(transfer.policy)", "partition": "\(transfer.partition)", "source": "\(source)",
                        "error": "\(error)",
                    ])
                update { $0.lastError = "\(transfer.policy)/\(transfer.partition) from \(source): \(error.message)" }
            }
        }
        return unreachable
    }

    /// Copies one partition from one source, manifests then chunks, resuming at the saved cursors.
    private func copy(_ t: PartitionTransfer, from source: String, copier: PartitionCopier) async throws(AgadirError) {
        let replica = node.replica(source)
        let sameSite = node.snapshot().site(of: source) == node.site
        let throttle: @Sendable (UInt64) async -> Void = { [weak self] bytes in
            await self?.throttle(bytes, sameSite: sameSite)
        }
        let manifestsKey = RebalanceDecisions.stepKey(t, manifests: true, source: source)
        var rounds = 0
        while !live.withLock({ $0.record.done.contains(manifestsKey) }) {
            guard !Task.isCancelled, !settings.paused else { return }
            let after = live.withLock { $0.record.manifestCursors[manifestsKey] }
            let (next, tally) = try await copier.copyManifests(
                policy: t.policy, partition: t.partition, from: replica, after: after, throttle: throttle)
            try commit { r in
                r.moved.add(tally)
                if let next {
                    r.manifestCursors[manifestsKey] = next
                } else {
                    r.manifestCursors[manifestsKey] = nil
                    r.done.insert(manifestsKey)
                }
            }
            rounds += 1
            guard rounds < 1_000_000 else {
                throw AgadirError(.internalError, "partition \(t.partition) never ends at \(source)")
            }
        }
        let chunksKey = RebalanceDecisions.stepKey(t, manifests: false, source: source)
        while !live.withLock({ $0.record.done.contains(chunksKey) }) {
            guard !Task.isCancelled, !settings.paused else { return }
            let after = live.withLock { $0.record.chunkCursors[chunksKey] }.flatMap { ChunkID(hex: $0) }
            let (next, tally) = try await copier.copyChunks(
                policy: t.policy, partition: t.partition, from: replica, after: after, throttle: throttle)
            try commit { r in
                r.moved.add(tally)
                if let next {
                    r.chunkCursors[chunksKey] = next.hex
                } else {
                    r.chunkCursors[chunksKey] = nil
                    r.done.insert(chunksKey)
                }
            }
            rounds += 1
            guard rounds < 1_000_000 else {
                throw AgadirError(.internalError, "partition \(t.partition) never ends at \(source)")
            }
        }
    }

    /// Waits as the throttle of the link kind says for `bytes` (repair traffic shares the
    /// rebalance's budgets).
    func pace(_ bytes: UInt64, sameSite: Bool) async {
        let now = nanos()
        let wait = live.withLock { l in sameSite ? l.intra.take(bytes, now: now) : l.inter.take(bytes, now: now) }
        if wait > 0 { try? await Task.sleep(for: .nanoseconds(Int64(min(wait, 60_000_000_000)))) }
    }

    private func throttle(_ bytes: UInt64, sameSite: Bool) async {
        await pace(bytes, sameSite: sameSite)
        let at = ContinuousClock.now
        update { l in
            let total = (l.samples.last?.1 ?? 0) + bytes
            l.samples.append((at, total))
            l.samples.removeAll { at - $0.0 > .seconds(10) }
            if l.samples.count > 4096 { l.samples.removeFirst(l.samples.count - 4096) }
        }
    }

    // MARK: Retiring and dropping

    /// The rebalance statuses of `nodes` (this node's own without a network hop); nil for a
    /// node that did not answer.
    public func statuses(of nodes: [String]) async -> [String: NodeRebalanceStatus] {
        let me = node.nodeID
        return await nodeStatuses(of: nodes) { NodeStatus(node: me, rebalance: self.status()) }
            .compactMapValues { try? $0.get().rebalance }
    }

    /// The NODE_STATUS answers of `nodes`, this node's own from `local` (no network hop): the
    /// one gathering of node statuses (the rebalance's decisions, `cluster.status`, the
    /// admin status commands). A failure names why (not alive, no answer). Settings newer
    /// than this node's, seen in an answer, are adopted.
    public func nodeStatuses(
        of nodes: [String], local: @escaping @Sendable () async -> NodeStatus
    ) async -> [String: Result<NodeStatus, AgadirError>] {
        let gathered = await node.fanOut(nodes, request: .nodeStatus, decoding: NodeStatus.self) {
            () throws(AgadirError) in await local()
        }
        var out: [String: Result<NodeStatus, AgadirError>] = [:]
        for id in nodes {
            guard let result = gathered.result(of: id) else { continue }
            out[id] = result
            switch result {
            case .success(let s):
                if id != node.nodeID, let settings = s.rebalance?.settings { _ = try? adopt(settings) }
            case .failure(let error): logger.debug("status not read", metadata: ["peer": "\(id)", "error": "\(error)"])
            }
        }
        return out
    }

    /// Retires the older live versions once every storage node of the current one says it
    /// has received all its partitions.
    private func retireIfAllSynced(_ cluster: ClusterLayout) async throws(AgadirError) {
        let v = cluster.current.version
        let storage = Set(cluster.current.maps.values.flatMap { $0.replicas.flatMap { $0 } }).sorted()
        let answers = await statuses(of: storage)
        let behind = RebalanceDecisions.notYetSynced(storage, synced: answers.mapValues(\.syncedVersion), version: v)
        guard behind.isEmpty else {
            update { l in
                l.state = "synced"
                l.waitingFor = behind
            }
            return
        }
        var next = node.layout
        guard next.current.version == v else { return }
        next.retire(olderThan: v)
        try node.adopt(next, from: "retire")
        logger.notice("rebalance: older layout versions retired", metadata: ["version": "\(v)"])
        update { l in
            l.state = "dropping"
            l.waitingFor = []
        }
    }

    /// Drops what this node no longer owns once every node of the layout has retired the
    /// older versions (until then a node may still read from the old replica sets).
    private func dropIfAllRetired(_ cluster: ClusterLayout) async throws(AgadirError) {
        let v = cluster.current.version
        let members = cluster.current.nodes.map(\.id)
        let answers = await statuses(of: members)
        let behind = RebalanceDecisions.notYetRetired(
            members, oldestLive: answers.compactMapValues(\.liveVersions.first), version: v)
        guard behind.isEmpty else {
            update { l in
                l.state = "dropping"
                l.waitingFor = behind
            }
            return
        }
        update { l in
            l.state = "dropping"
            l.waitingFor = []
        }
        let cutoff = WallMillis.now() &- UInt64(max(0, timing.dropGrace.components.seconds)) * 1000
        let result = try await node.misplaced(drop: true, chunkReferencesBefore: cutoff)
        try commit { r in
            r.manifestsDropped += result.manifests
            r.chunksDropped += result.chunksDropped
            if result.complete { r.droppedVersion = v }
        }
        if result.manifests + result.chunksDropped > 0 {
            logger.notice(
                "rebalance: data no longer owned dropped",
                metadata: [
                    "manifests": "\(result.manifests)", "chunks": "\(result.chunksDropped)",
                    "complete": "\(result.complete)",
                ])
        }
        if result.complete { update { $0.state = "idle" } }
    }

    /// Asks one random alive peer for its settings (a change made while this node was down).
    private func pullSettings() async {
        guard let peer = node.snapshot().alive.subtracting([node.nodeID]).randomElement() else { return }
        _ = await statuses(of: [peer])
    }
}
