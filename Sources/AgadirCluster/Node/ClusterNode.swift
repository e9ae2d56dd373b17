import AgadirCore
import AgadirGossip
import AgadirPlacement
import AgadirStore
import AgadirWire
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Timing and bounds of a node's cluster work.
public struct ClusterNodeSettings: Sendable, Hashable {
    /// How often the node looks for a newer layout and delivers hints.
    public var syncInterval: Duration = .seconds(1)
    /// How often the node pulls the bucket catalog from one random peer.
    public var catalogSyncInterval: Duration = .seconds(10)
    /// Hints delivered to one target per round.
    public var hintBatch = 64
    /// Peers asked about a bucket this node does not know, before NO_SUCH_BUCKET.
    public var unknownBucketPeers = 3
    /// How long "no such bucket anywhere" is remembered (so a storm of requests for a
    /// missing bucket does not ask the peers each time).
    public var unknownBucketMemory: Duration = .seconds(1)
    /// How long a bucket's catalog record read from the store is reused without reading it
    /// again (any change to this node's catalog invalidates it at once).
    public var catalogCacheTTL: Duration = .seconds(1)
    /// A residency audit this young is answered again instead of scanning the store anew.
    public var auditReuse: Duration = .seconds(2)

    public init() {}

    /// Every interval multiplied by `percent` / 100 (tests and labs run faster).
    public func scaled(by percent: Int) -> ClusterNodeSettings {
        var s = self
        s.syncInterval = syncInterval * percent / 100
        s.catalogSyncInterval = catalogSyncInterval * percent / 100
        return s
    }
}

/// A node's part in the cluster (docs/cluster.md): its copy of the layout (persisted,
/// spread by gossip, pulled from peers), the staging area of layout changes, the view the
/// coordinator works from (`ClusterContext`), the bucket catalog sync, the delivery of
/// parked hints, and its own residency audit.
public final class ClusterNode: ClusterContext, Sendable {
    public let nodeID: String
    let configuredSite: String
    public let store: NodeStore
    let local: LocalReplica
    public let gossip: GossipService?
    public let links: PeerLinks?
    let logger: Logger
    let settings: ClusterNodeSettings
    /// The residency audit's single scan (`residencyAudit()`).
    let auditFlight = SingleFlight<ResidencyAudit>()
    let layoutPath: String
    let stagedPath: String
    let versions: @Sendable () -> ObjectVersion

    private struct State {
        var cluster: ClusterLayout
        var encoded: [UInt8]
        var staged: StagedChanges
        var unknownBuckets: [String: ContinuousClock.Instant] = [:]
        /// The last snapshot and when it was taken (see `snapshotReuse`).
        var snapshot: (value: ClusterSnapshot, taken: ContinuousClock.Instant)?
        /// Catalog records read recently, with when they were read (see `catalogCacheTTL`).
        var knownBuckets: [String: (record: BucketRecord, read: ContinuousClock.Instant, generation: UInt64)] = [:]
    }
    private let state: Mutex<State>

    public init(
        nodeID: String, site: String, store: NodeStore, gossip: GossipService?, links: PeerLinks?, dataDir: String,
        settings: ClusterNodeSettings = ClusterNodeSettings(), logger: Logger,
        versions: @escaping @Sendable () -> ObjectVersion
    ) throws(AgadirError) {
        self.nodeID = nodeID
        self.configuredSite = site
        self.store = store
        self.local = LocalReplica(nodeID: nodeID, store: store)
        self.gossip = gossip
        self.links = links
        self.logger = logger
        self.settings = settings
        self.versions = versions
        self.layoutPath = (dataDir as NSString).appendingPathComponent("layout.bin")
        self.stagedPath = (dataDir as NSString).appendingPathComponent("layout-staged.json")
        var cluster = ClusterLayout(initial: .empty())
        if let data = FileManager.default.contents(atPath: layoutPath) {
            do throws(AgadirError) {
                cluster = try ClusterLayoutCodec.decode(Array(data))
            } catch {
                throw AgadirError(
                    .corruptData,
                    "\(layoutPath) does not decode (\(error.message)); move it away and the node will pull the layout from its peers"
                )
            }
        }
        var staged = StagedChanges()
        if let data = FileManager.default.contents(atPath: stagedPath) {
            staged = (try? JSONDecoder().decode(StagedChanges.self, from: data)) ?? StagedChanges()
        }
        self.state = Mutex(State(cluster: cluster, encoded: ClusterLayoutCodec.encode(cluster), staged: staged))
        gossip?.announceLayoutVersion(cluster.current.version)
        links?.setSendGuard { [weak self] node, request throws(AgadirError) in
            try await self?.checkReceiver(node, request)
        }
    }

    // MARK: Views

    public var layout: ClusterLayout { state.withLock { $0.cluster } }
    public var encodedLayout: [UInt8] { state.withLock { $0.encoded } }
    public var staged: StagedChanges { state.withLock { $0.staged } }

    /// True once a layout has been applied: bucket requests go through the coordinator.
    public var isClusterMode: Bool { layout.current.version >= 1 }

    /// True while this node has no layout but an alive member announces one: it has joined
    /// a running cluster and must pull the layout before it serves bucket requests.
    public var awaitsLayout: Bool {
        guard !isClusterMode, let gossip else { return false }
        return gossip.memberInfos().contains {
            $0.nodeID != nodeID && $0.layoutVersion >= 1 && $0.state == MemberInfo.State.alive
        }
    }

    /// This node's site: its site in the layout, else its configured one.
    public var site: String { layout.current.node(nodeID)?.site ?? configuredSite }

    // MARK: ClusterContext

    /// How long a snapshot is reused: every request takes one (sometimes two), and the
    /// member list changes at gossip speed (a new layout is seen at once: `adopt` clears it).
    static let snapshotReuse = Duration.milliseconds(100)

    public func snapshot() -> ClusterSnapshot {
        let now = ContinuousClock.now
        if let cached = state.withLock({ s in
            s.snapshot.flatMap { now - $0.taken < Self.snapshotReuse ? $0.value : nil }
        }) {
            return cached
        }
        let fresh = takeSnapshot()
        state.withLock { $0.snapshot = (fresh, now) }
        return fresh
    }

    private func takeSnapshot() -> ClusterSnapshot {
        let cluster = layout
        var alive: Set<String> = [nodeID]
        var endpoints: [String: String] = [:]
        for m in gossip?.memberInfos() ?? [] {
            endpoints[m.nodeID] = m.clientAddress
            if m.state == MemberInfo.State.alive || m.state == "suspect" { alive.insert(m.nodeID) }
        }
        let site = cluster.current.node(nodeID)?.site ?? configuredSite
        return ClusterSnapshot(nodeID: nodeID, site: site, layout: cluster, alive: alive, endpoints: endpoints)
    }

    public func replica(_ node: String) -> any ReplicaClient {
        if node == nodeID { return local }
        guard let links else { return UnreachableReplica(nodeID: node) }
        return RemoteReplica(nodeID: node, links: links)
    }

    public func bucketRecord(_ name: String) async throws(AgadirError) -> BucketRecord? {
        // Every request names its bucket: a record read in the last `catalogCacheTTL` is
        // used as it is (a deletion elsewhere is seen that much later at most).
        let now = ContinuousClock.now
        let ttl = settings.catalogCacheTTL
        let generation = store.catalogGeneration
        if let cached = state.withLock({ s in
            s.knownBuckets[name].flatMap { now - $0.read < ttl && $0.generation == generation ? $0.record : nil }
        }) {
            return cached
        }
        if let record = try await store.bucketCatalog(named: name) {
            state.withLock { s in
                if s.knownBuckets.count >= 4096 { s.knownBuckets.removeAll() }
                s.knownBuckets[name] = (record, now, generation)
            }
            return record
        }
        // Not here (yet): ask a few peers, remembering a miss for a moment.
        let missed = state.withLock { s -> Bool in
            guard let until = s.unknownBuckets[name] else { return false }
            if until > .now { return true }
            s.unknownBuckets[name] = nil
            return false
        }
        if missed { return nil }
        let peers = snapshot().alive.subtracting([nodeID]).sorted().shuffled().prefix(settings.unknownBucketPeers)
        for peer in peers {
            guard let records = try? await replica(peer).catalog() else { continue }
            for r in records { _ = try? await store.mergeBucketRecord(r) }
            if let record = try await store.bucketCatalog(named: name) { return record }
        }
        let until = ContinuousClock.now + settings.unknownBucketMemory
        state.withLock { s in
            if s.unknownBuckets.count > 1024 { s.unknownBuckets.removeAll() }
            s.unknownBuckets[name] = until
        }
        return nil
    }

    public func nextVersion() -> ObjectVersion { versions() }

    public func refreshLayout() async { await syncLayout() }

    // MARK: Layout changes (agadir admin layout ...)

    /// Adds a change to the staging area after checking it resolves on the current layout.
    public func stage(_ change: LayoutChange) throws(AgadirError) -> StagedChanges {
        let current = layout.current
        var next = staged
        guard next.changes.count < StagedChanges.maxChanges else {
            throw AgadirError(
                .invalidArgument,
                "\(next.changes.count) layout changes are staged, the most a node keeps; apply them "
                    + "(`agadir admin layout apply`) or revert them (`agadir admin layout revert`) first")
        }
        next.changes.append(change)
        _ = try next.resolve(on: current)
        try saveStaged(next)
        return next
    }

    /// Sets the partition count of the first layout version (refused once one is applied).
    public func stagePartitionCount(_ count: Int) throws(AgadirError) -> StagedChanges {
        var next = staged
        next.partitionCount = count
        _ = try next.partitionCount(on: layout.current)
        try saveStaged(next)
        return next
    }

    public func revertStaged() throws(AgadirError) {
        try saveStaged(StagedChanges())
    }

    private func saveStaged(_ staged: StagedChanges) throws(AgadirError) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        guard let data = try? enc.encode(staged) else {
            throw AgadirError(.internalError, "the staged layout changes do not encode")
        }
        try AtomicFile.save(Array(data), to: stagedPath)
        state.withLock { $0.staged = staged }
    }

    /// The layout that `apply` would commit now, and what would move.
    public func plan() async throws(AgadirError) -> (layout: Layout, report: PlanReport) {
        // Fresh store figures: the estimate is what `agadir admin rebalance status` is
        // compared with.
        if let stats = try? await store.stats() { statsCache.withLock { $0 = stats } }
        let (cluster, staged) = state.withLock { ($0.cluster, $0.staged) }
        let perPartition = estimatedBytesPerPartitionReplica(cluster.current)
        return try Planner.plan(
            previous: cluster.current, changes: staged, appliedMillis: WallMillis.now(),
            bytesPerPartition: { _, _ in perPartition })
    }

    /// Commits the staged changes as layout version `version` (which must be the current
    /// one + 1, and not announced by any alive member), persists it and announces it.
    public func apply(version: UInt64) async throws(AgadirError) -> (layout: Layout, report: PlanReport) {
        let current = layout.current.version
        guard version == current + 1 else {
            throw AgadirError(
                .layoutVersionConflict,
                "the current layout version is \(current); apply --version \(current + 1) (after checking `agadir admin layout plan`)"
            )
        }
        if let other = gossip?.memberInfos().first(where: {
            $0.layoutVersion >= version && $0.state == MemberInfo.State.alive
        }) {
            throw AgadirError(
                .layoutVersionConflict,
                "node \(other.nodeID) already announces layout version \(other.layoutVersion); wait for it to reach this node, then plan again"
            )
        }
        let (next, report) = try await plan()
        try await checkAttested(next, previous: layout.current)
        let summary = staged.changes.map(\.description).joined(separator: "; ")
        var cluster = layout
        try cluster.apply(next, summary: summary.isEmpty ? "no change" : summary)
        try adopt(cluster, from: "apply")
        try revertStaged()
        return (next, report)
    }

    /// Makes `cluster` this node's layout: persisted first, then announced.
    func adopt(_ cluster: ClusterLayout, from source: String) throws(AgadirError) {
        let encoded = ClusterLayoutCodec.encode(cluster)
        try AtomicFile.save(encoded, to: layoutPath)
        state.withLock { s in
            s.cluster = cluster
            s.encoded = encoded
            s.snapshot = nil
        }
        gossip?.announceLayoutVersion(cluster.current.version)
        logger.notice(
            "layout adopted",
            metadata: [
                "version": "\(cluster.current.version)", "live": "\(cluster.live.map(\.version))",
                "source": "\(source)",
            ])
    }

    /// Average bytes of one partition replica, from this node's store: the plan's
    /// estimate of the bytes a moved partition carries.
    func estimatedBytesPerPartitionReplica(_ layout: Layout) -> UInt64 {
        let held = layout.maps.values.reduce(0) { n, map in n + map.replicas.filter { $0.contains(nodeID) }.count }
        guard held > 0, let stats = statsCache.withLock({ $0 }) else { return 0 }
        return (stats.storedBytes + stats.inlineBytes) / UInt64(held)
    }
    /// The store's figures, refreshed every `catalogSyncInterval` (they cost a scan of the index).
    let statsCache = Mutex<StoreStats?>(nil)

    // MARK: Background work (the `cluster-sync` worker, ClusterSyncWorker)

    /// Pulls the layout from an alive member that announces a newer version.
    public func syncLayout() async {
        guard let gossip, let links else { return }
        let mine = layout.current.version
        let newer = gossip.memberInfos()
            .filter { $0.nodeID != nodeID && $0.layoutVersion > mine && $0.state == MemberInfo.State.alive }
            .sorted { ($0.layoutVersion, $0.nodeID) > ($1.layoutVersion, $1.nodeID) }
        for member in newer.prefix(2) {
            do throws(AgadirError) {
                let answer = try await links.call(
                    member.nodeID, .layoutGet, maxResponseBytes: PeerLimits.maxStructuredBodyBytes)
                let cluster = try ClusterLayoutCodec.decode(answer.body)
                guard cluster.current.version > layout.current.version else { return }
                let joining = !isClusterMode
                try adopt(cluster, from: member.nodeID)
                // A node that just joined has no bucket catalog yet: without it, it would not
                // know which policy its data belongs to.
                if joining { await syncCatalog() }
                return
            } catch {
                logger.warning("layout pull failed", metadata: ["from": "\(member.nodeID)", "error": "\(error)"])
            }
        }
    }

    /// Merges the catalog of one random alive peer.
    func syncCatalog() async {
        let peers = snapshot().alive.subtracting([nodeID]).sorted()
        guard let peer = peers.randomElement() else { return }
        do throws(AgadirError) {
            for r in try await replica(peer).catalog() { _ = try await store.mergeBucketRecord(r) }
            for r in try await replica(peer).accessKeys() { _ = try await store.mergeAccessKey(r) }
        } catch {
            logger.debug("catalog sync failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
        }
    }

    /// Delivers parked hints to targets that are alive again; a delivered hint is deleted.
    func deliverHints() async {
        guard let targets = try? await store.hintTargets(), !targets.isEmpty else { return }
        let snap = snapshot()
        // A target no live layout version names any more was removed from the cluster (by
        // force, while down): its hints can never be delivered, and the data they carry is
        // on the partitions' new replicas. Dropped once no member announces a newer layout.
        let known = Set(snap.layout.live.flatMap { $0.nodes.map(\.id) })
        let newest = gossip?.memberInfos().map(\.layoutVersion).max() ?? 0
        let upToDate = snap.layout.current.version >= 1 && snap.layout.current.version >= newest
        if upToDate {
            for (target, count) in targets where !known.contains(target) {
                guard let hints = try? await store.hints(for: target, limit: NodeStore.maxPageSize) else { continue }
                do throws(AgadirError) {
                    try await store.deleteHints(hints.map(\.id))
                    logger.warning(
                        "hints for a node removed from the layout dropped",
                        metadata: ["target": "\(target)", "dropped": "\(hints.count)", "pending": "\(count)"])
                } catch {
                    logger.warning(
                        "hints of a removed node not dropped", metadata: ["target": "\(target)", "error": "\(error)"])
                }
            }
        }
        for (target, _) in targets where target != nodeID && snap.alive.contains(target) {
            guard let hints = try? await store.hints(for: target, limit: settings.hintBatch) else { continue }
            var delivered: [Int64] = []
            var moved = 0
            for hint in hints {
                do throws(AgadirError) {
                    // A hint of a deleted or earlier bucket, or for a partition its target left,
                    // is dropped; one for a target outside the bucket's policy is never sent.
                    let record = try await bucketRecord(hint.bucket)
                    switch HintDecisions.disposition(
                        of: hint.payload, for: target, record: record, layout: snap.layout, layoutUpToDate: upToDate)
                    {
                    case .drop:
                        delivered.append(hint.id)
                        moved += 1
                        continue
                    case .withhold(let why):
                        logger.error(
                            "a hint is not deliverable",
                            metadata: ["target": "\(target)", "bucket": "\(hint.bucket)", "why": "\(why)"])
                        continue
                    case .deliver:
                        break
                    }
                    let remote = replica(target)
                    switch hint.payload {
                    case .chunk(let id, let reference):
                        try await remote.putChunk(try await store.readChunkRecord(id), reference: reference)
                    case .manifest(let m):
                        _ = try await remote.putManifest(m)
                    }
                    delivered.append(hint.id)
                } catch {
                    logger.debug("hint delivery failed", metadata: ["target": "\(target)", "error": "\(error)"])
                    if error.code == .notReplica { await syncLayout() }
                    break
                }
            }
            if moved > 0 {
                logger.info(
                    "hints for partitions their target no longer holds, or of deleted buckets, dropped",
                    metadata: ["target": "\(target)", "dropped": "\(moved)"])
            }
            if !delivered.isEmpty {
                do throws(AgadirError) {
                    try await store.deleteHints(delivered)
                    logger.info("hints delivered", metadata: ["target": "\(target)", "count": "\(delivered.count)"])
                } catch {
                    logger.warning(
                        "delivered hints not deleted; they will be delivered again", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

extension ClusterNode {
    /// Whether `node` is in some live version's replica set of the partition `payload`
    /// belongs to (a chunk's by its id, a manifest's by its key).
    public static func holds(_ node: String, _ payload: HintPayload, policy: String, in layout: ClusterLayout) -> Bool {
        let count = layout.current.partitionCount
        let partition: Int
        switch payload {
        case .chunk(let id, _): partition = Partitioner.partition(of: id, count: count)
        case .manifest(let m): partition = Partitioner.partition(bucket: m.bucket, key: m.key, count: count)
        }
        return layout.allReplicas(policy: policy, partition: partition).contains(node)
    }

    /// The object version a hint's write was stamped with.
    static func version(of payload: HintPayload) -> ObjectVersion {
        switch payload {
        case .chunk(_, let reference): reference.version
        case .manifest(let m): m.version
        }
    }
}

/// A replica for a node that cannot be reached (no peer links configured).
struct UnreachableReplica: ReplicaClient {
    let nodeID: String
    func fail() -> AgadirError {
        AgadirError(.unavailable, "node \(nodeID) is not reachable: this node has no peer links")
    }
    func claimChunks(_ ids: [ChunkID], reference: ChunkReference) async throws(AgadirError) -> [Bool] { throw fail() }
    func putChunk(_ chunk: EncodedChunk, reference: ChunkReference) async throws(AgadirError) { throw fail() }
    func getChunk(_ id: ChunkID, bucket: String) async throws(AgadirError) -> EncodedChunk { throw fail() }
    func putManifest(_ manifest: ObjectManifest) async throws(AgadirError) -> (applied: Bool, stored: ObjectVersion) {
        throw fail()
    }
    func getManifest(bucket: String, key: String) async throws(AgadirError) -> ObjectManifest? { throw fail() }
    func list(bucket: String, prefix: String, startAfter: String?, limit: Int) async throws(AgadirError)
        -> [ReplicaListEntry]
    { throw fail() }
    func putHint(target: String, bucket: String, hint: Hint) async throws(AgadirError) { throw fail() }
    func mergeCatalog(_ records: [BucketRecord]) async throws(AgadirError) { throw fail() }
    func catalog() async throws(AgadirError) -> [BucketRecord] { throw fail() }
    func mergeAccessKeys(_ records: [AccessKeyRecord]) async throws(AgadirError) { throw fail() }
    func accessKeys() async throws(AgadirError) -> [AccessKeyRecord] { throw fail() }
    func partitionManifests(
        policy: String, partition: Int, partitionCount: Int, after: ManifestCursor?, limit: Int
    ) async throws(AgadirError) -> ManifestPage { throw fail() }
    func partitionChunks(
        policy: String, partition: Int, partitionCount: Int, after: ChunkID?, limit: Int
    ) async throws(AgadirError) -> ChunkPage { throw fail() }
    func partitionDigest(
        policy: String, partition: Int, partitionCount: Int, tombstonesBefore: UInt64
    ) async throws(AgadirError) -> PartitionSummary { throw fail() }
}

/// Milliseconds since the Unix epoch (records and history, never ordering).
public enum WallMillis {
    public static func now() -> UInt64 { WallTime.millis() }
}
