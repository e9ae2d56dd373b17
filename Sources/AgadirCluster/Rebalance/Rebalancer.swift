import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirWire
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Throttles and pause of the rebalance, the same on every node: the newest change wins
/// (by `changedMillis`, then `changedBy`), and nodes pass it on to each other.
public struct RebalanceSettings: Codable, Sendable, Hashable {
    /// Bytes per second this node pulls from nodes of its own site; 0 is unlimited.
    public var intraSiteBytesPerSecond: UInt64 = 200_000_000
    /// Bytes per second this node pulls from nodes of other sites; 0 is unlimited.
    public var interSiteBytesPerSecond: UInt64 = 50_000_000
    public var paused = false
    /// When the settings were changed (ms since the epoch) and on which node.
    public var changedMillis: UInt64 = 0
    public var changedBy = ""

    public init() {}

    func isNewer(than other: RebalanceSettings) -> Bool {
        (changedMillis, changedBy) > (other.changedMillis, other.changedBy)
    }
}

/// A node's rebalance, as NODE_STATUS and `agadir admin rebalance status` show it.
public struct NodeRebalanceStatus: Codable, Sendable, Hashable {
    public var node: String
    public var site: String
    public var layoutVersion: UInt64
    public var liveVersions: [UInt64]
    /// Newest version this node has received all its partitions for.
    public var syncedVersion: UInt64
    /// Newest version whose data this node no longer owns was dropped for.
    public var droppedVersion: UInt64
    /// idle, waiting (for every member to adopt the layout), copying, paused, blocked (a
    /// source is not reachable), synced (waiting for the other nodes), dropping.
    public var state: String
    public var partitionsTotal: Int
    public var partitionsDone: Int
    public var moved: CopyTally
    /// Bytes still to move, from the bytes per partition moved so far (nil before the first).
    public var bytesLeftEstimate: UInt64?
    public var rateBytesPerSecond: UInt64
    public var etaSeconds: UInt64?
    public var manifestsDropped: Int
    public var chunksDropped: Int
    public var settings: RebalanceSettings
    public var lastError: String?
    /// Sources this node waits for (not alive).
    public var waitingFor: [String]
    /// Sources not waited for: removed from the current layout version (by `node remove
    /// --force`) and not alive. Writes acknowledged only by them may be lost. Absent in the
    /// answers of older nodes.
    public var skippedSources: [String]?
}

/// Moves partitions after a layout change (docs/rebalance.md): this node pulls every
/// partition it gains from the nodes of the older live versions, throttled and resumable
/// (progress in `DATA/rebalance.json`), announces when it has all of them, retires the old
/// versions once every storage node of the new one has, and then drops what it no longer owns.
public final class Rebalancer: Service, Sendable {
    let node: ClusterNode
    let path: String
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
    }
    private let live: Mutex<Live>
    private let origin = ContinuousClock.now

    public init(node: ClusterNode, dataDir: String, timing: Timing = Timing(), logger: Logger) throws(AgadirError) {
        self.node = node
        self.path = (dataDir as NSString).appendingPathComponent("rebalance.json")
        self.logger = logger
        self.timing = timing
        var record = Record()
        if let data = FileManager.default.contents(atPath: path) {
            do {
                record = try JSONDecoder().decode(Record.self, from: data)
            } catch {
                throw AgadirError(
                    .corruptData,
                    "\(path) does not decode (\(error)); move it away: the node then copies its partitions again from the start")
            }
        }
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
                node: node.nodeID, site: node.site, layoutVersion: cluster.current.version, liveVersions: cluster.live.map(\.version),
                syncedVersion: l.record.syncedVersion, droppedVersion: l.record.droppedVersion, state: l.state,
                partitionsTotal: l.partitionsTotal, partitionsDone: l.partitionsDone, moved: l.record.moved,
                bytesLeftEstimate: left, rateBytesPerSecond: rate, etaSeconds: eta, manifestsDropped: l.record.manifestsDropped,
                chunksDropped: l.record.chunksDropped, settings: l.record.settings, lastError: l.lastError, waitingFor: l.waitingFor,
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

    private func save(_ record: Record) throws(AgadirError) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        guard let data = try? enc.encode(record) else { throw AgadirError(.internalError, "the rebalance progress does not encode") }
        try AtomicFile.save(Array(data), to: path)
    }

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

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.loop() }
    }

    private func loop() async {
        var sinceSettings = Duration.zero
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: timing.interval)
            } catch {
                break
            }
            await round()
            sinceSettings += timing.interval
            if sinceSettings >= timing.settingsPull {
                sinceSettings = .zero
                await pullSettings()
            }
        }
    }

    /// One step of the rebalance state machine; public for tests that drive it by hand.
    public func round() async {
        let cluster = node.layout
        let v = cluster.current.version
        guard v >= 1 else { return }
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
            if cluster.live.count > 1 {
                if live.withLock({ $0.record.syncedVersion }) < v { try await receive(cluster) }
                if live.withLock({ $0.record.syncedVersion }) >= v { try await retireIfAllSynced(cluster) }
            } else {
                if live.withLock({ $0.record.syncedVersion }) < v { try commit { $0.syncedVersion = v } }
                if live.withLock({ $0.record.droppedVersion }) < v {
                    try await dropIfAllRetired(cluster)
                } else {
                    update { $0.state = "idle" }
                }
            }
            update { $0.lastError = nil }
        } catch {
            logger.warning("rebalance round failed", metadata: ["error": "\(error)"])
            update { $0.lastError = error.message }
        }
    }

    // MARK: Receiving

    enum Kind: String { case manifests, chunks }

    static func stepKey(_ t: PartitionTransfer, _ kind: Kind, _ source: String) -> String {
        "\(t.policy)/\(t.partition)/\(kind.rawValue)/\(source)"
    }

    /// Copies every partition this node gains in the current version from every node of the
    /// older versions that holds it (so a write acknowledged by any quorum is seen).
    private func receive(_ cluster: ClusterLayout) async throws(AgadirError) {
        let v = cluster.current.version
        let plan = TransferPlanner.plan(layout: cluster, node: node.nodeID)
        let done = live.withLock { $0.record.done }
        let snapshot = node.snapshot()
        // A source removed from the current version (by force) and not alive is not waited
        // for: it will not come back, and the rebalance would otherwise block for ever.
        let removed = Set(plan.receive.flatMap(\.sources)).filter { Self.isRemoved($0, in: cluster, alive: snapshot.alive) }
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
            t.sources.allSatisfy { s in
                removed.contains(s) || (done.contains(Self.stepKey(t, .manifests, s)) && done.contains(Self.stepKey(t, .chunks, s)))
            }
        }
        update { l in
            l.partitionsTotal = plan.receive.count
            l.partitionsDone = plan.receive.filter { partitionDone($0, done) }.count
        }
        if plan.receive.allSatisfy({ partitionDone($0, done) }) {
            try commit { $0.syncedVersion = v }
            update { $0.state = "synced" }
            logger.notice("rebalance: every partition received", metadata: ["version": "\(v)", "moved": "\(live.withLock { $0.record.moved })"])
            return
        }
        guard !settings.paused else {
            update { $0.state = "paused" }
            return
        }
        // Copy only once every alive member has adopted the version (and a moment more), so
        // that no write coordinated under an older layout alone is still on its way.
        let lagging = (node.gossip?.memberInfos() ?? [])
            .filter { $0.state == MemberInfo.State.alive && $0.layoutVersion < v && $0.nodeID != node.nodeID }.map(\.nodeID)
        guard lagging.isEmpty else {
            update { l in
                l.state = "waiting"
                l.waitingFor = lagging.sorted()
                l.adoptedAt = nil
            }
            return
        }
        let adoptedAt = live.withLock { l in
            if l.adoptedAt == nil { l.adoptedAt = .now }
            return l.adoptedAt ?? .now
        }
        guard ContinuousClock.now - adoptedAt >= timing.settle else {
            update { $0.state = "waiting" }
            return
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
                    let missed = await self.receive(transfer, version: v, snapshot: snapshot, removed: removed, copier: copier)
                    if partitionDone(transfer, self.live.withLock { $0.record.done }) { self.update { $0.partitionsDone += 1 } }
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
        _ transfer: PartitionTransfer, version v: UInt64, snapshot: ClusterSnapshot, removed: Set<String>, copier: PartitionCopier
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
                    metadata: ["policy": "\(transfer.policy)", "partition": "\(transfer.partition)", "source": "\(source)", "error": "\(error)"])
                update { $0.lastError = "\(transfer.policy)/\(transfer.partition) from \(source): \(error.message)" }
            }
        }
        return unreachable
    }

    /// True for a source that is in no node list of the current version and not alive: it
    /// was removed by force (`agadir admin node remove --force`) and is not waited for. A
    /// source still in the layout, or alive, is waited for.
    static func isRemoved(_ source: String, in cluster: ClusterLayout, alive: Set<String>) -> Bool {
        cluster.current.node(source) == nil && !alive.contains(source)
    }

    /// Copies one partition from one source, manifests then chunks, resuming at the saved cursors.
    private func copy(_ t: PartitionTransfer, from source: String, copier: PartitionCopier) async throws(AgadirError) {
        let replica = node.replica(source)
        let sameSite = node.snapshot().site(of: source) == node.site
        let throttle: @Sendable (UInt64) async -> Void = { [weak self] bytes in await self?.throttle(bytes, sameSite: sameSite) }
        let manifestsKey = Self.stepKey(t, .manifests, source)
        var rounds = 0
        while !live.withLock({ $0.record.done.contains(manifestsKey) }) {
            guard !Task.isCancelled, !settings.paused else { return }
            let after = live.withLock { $0.record.manifestCursors[manifestsKey] }
            let (next, tally) = try await copier.copyManifests(
                policy: t.policy, partition: t.partition, from: replica, after: after, throttle: throttle)
            try commit { r in
                r.moved.add(tally)
                if let next { r.manifestCursors[manifestsKey] = next } else {
                    r.manifestCursors[manifestsKey] = nil
                    r.done.insert(manifestsKey)
                }
            }
            rounds += 1
            guard rounds < 1_000_000 else { throw AgadirError(.internalError, "partition \(t.partition) never ends at \(source)") }
        }
        let chunksKey = Self.stepKey(t, .chunks, source)
        while !live.withLock({ $0.record.done.contains(chunksKey) }) {
            guard !Task.isCancelled, !settings.paused else { return }
            let after = live.withLock { $0.record.chunkCursors[chunksKey] }.flatMap { ChunkID(hex: $0) }
            let (next, tally) = try await copier.copyChunks(
                policy: t.policy, partition: t.partition, from: replica, after: after, throttle: throttle)
            try commit { r in
                r.moved.add(tally)
                if let next { r.chunkCursors[chunksKey] = next.hex } else {
                    r.chunkCursors[chunksKey] = nil
                    r.done.insert(chunksKey)
                }
            }
            rounds += 1
            guard rounds < 1_000_000 else { throw AgadirError(.internalError, "partition \(t.partition) never ends at \(source)") }
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
        await nodeStatuses(of: nodes, store: false).compactMapValues { try? $0.get().rebalance }
    }

    /// The NODE_STATUS answers of `nodes` (this node's own without a network hop, with its
    /// store figures only when `store`): a failure names why (not alive, no answer).
    public func nodeStatuses(of nodes: [String], store: Bool) async -> [String: Result<NodeStatus, AgadirError>] {
        var out: [String: Result<NodeStatus, AgadirError>] = [:]
        for id in nodes {
            if id == node.nodeID {
                out[id] = .success(store ? await nodeStatus() : NodeStatus(node: id, rebalance: status()))
                continue
            }
            guard let links = node.links, node.snapshot().alive.contains(id) else {
                out[id] = .failure(AgadirError(.unavailable, "not alive"))
                continue
            }
            do throws(AgadirError) {
                let answer = try await links.call(id, .nodeStatus, maxResponseBytes: PeerLimits.maxStructuredBodyBytes)
                let s = try AdminJSON.decode(NodeStatus.self, answer.body, "the status of \(id)")
                out[id] = .success(s)
                if let settings = s.rebalance?.settings { _ = try? adopt(settings) }
            } catch {
                logger.debug("status not read", metadata: ["peer": "\(id)", "error": "\(error)"])
                out[id] = .failure(error)
            }
        }
        return out
    }

    /// This node's NODE_STATUS answer: its rebalance and its store figures.
    public func nodeStatus() async -> NodeStatus {
        NodeStatus(node: node.nodeID, rebalance: status(), store: await node.storeStatus())
    }

    /// Retires the older live versions once every storage node of the current one says it
    /// has received all its partitions.
    private func retireIfAllSynced(_ cluster: ClusterLayout) async throws(AgadirError) {
        let v = cluster.current.version
        let storage = Set(cluster.current.maps.values.flatMap { $0.replicas.flatMap { $0 } }).sorted()
        let answers = await statuses(of: storage)
        let behind = storage.filter { id in (answers[id]?.syncedVersion ?? 0) < v }
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
        let behind = members.filter { id in (answers[id]?.liveVersions.first ?? 0) < v }
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
                metadata: ["manifests": "\(result.manifests)", "chunks": "\(result.chunksDropped)", "complete": "\(result.complete)"])
        }
        if result.complete { update { $0.state = "idle" } }
    }

    /// Asks one random alive peer for its settings (a change made while this node was down).
    private func pullSettings() async {
        guard let peer = node.snapshot().alive.subtracting([node.nodeID]).randomElement() else { return }
        _ = await statuses(of: [peer])
    }
}

/// What NODE_STATUS answers (JSON): the node's rebalance, its store and, later, repair and
/// scrub. Every section is optional, so the answers of older and newer nodes decode.
public struct NodeStatus: Codable, Sendable {
    public var node: String
    public var rebalance: NodeRebalanceStatus?
    public var repair: RepairProgress?
    public var scrub: ScrubProgress?
    public var gc: GarbageProgress?
    public var store: NodeStoreStatus?

    public init(
        node: String, rebalance: NodeRebalanceStatus? = nil, repair: RepairProgress? = nil, scrub: ScrubProgress? = nil,
        gc: GarbageProgress? = nil, store: NodeStoreStatus? = nil
    ) {
        self.node = node
        self.rebalance = rebalance
        self.repair = repair
        self.scrub = scrub
        self.gc = gc
        self.store = store
    }
}
