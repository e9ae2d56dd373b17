import AgadirCluster
import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirTestSupport
import AgadirTransport
import AgadirWire
import Foundation
import NIOCore
import Synchronization
import Testing

/// Collects the frames a `ReplicaService` answers with.
final class CapturingSink: ResponseSink {
    let frames = Mutex<[Frame]>([])
    func send(_ frame: Frame) async throws { frames.withLock { $0.append(frame) } }
}

/// One node's view of the cluster as its `ReplicaService` sees it: its own layout (which
/// may be behind or ahead of the coordinator's), and a newer one `refreshLayout` adopts,
/// as a pull from a member announcing it would.
final class NodeView: ClusterContext {
    let nodeID: String
    let store: NodeStore
    var local: LocalReplica { LocalReplica(nodeID: nodeID, store: store) }
    let layout: Mutex<ClusterLayout>
    let announced = Mutex<ClusterLayout?>(nil)
    let refreshes = Mutex(0)

    init(nodeID: String, store: NodeStore, layout: ClusterLayout) {
        self.nodeID = nodeID
        self.store = store
        self.layout = Mutex(layout)
    }

    func snapshot() -> ClusterSnapshot {
        let layout = self.layout.withLock { $0 }
        let all = Set(layout.live.flatMap { $0.nodes.map(\.id) })
        return ClusterSnapshot(
            nodeID: nodeID, site: layout.current.node(nodeID)?.site ?? "", layout: layout, alive: all,
            endpoints: Dictionary(uniqueKeysWithValues: all.map { ($0, "\($0).test:7480") }))
    }
    func replica(_ node: String) -> any ReplicaClient { LocalReplica(nodeID: nodeID, store: store) }
    func bucketRecord(_ name: String) async throws(AgadirError) -> BucketRecord? {
        try await store.bucketCatalog().first { $0.name == name }
    }
    func nextVersion() -> ObjectVersion { ObjectVersion(timestamp: HLCTimestamp(rawValue: 1), node: 1) }
    func refreshLayout() async {
        refreshes.withLock { $0 += 1 }
        if let newer = announced.withLock({ $0 }) { layout.withLock { $0 = newer } }
    }
}

/// A replica reached through its node's `ReplicaService`, in process: the peer requests a
/// coordinator sends go through the receiving side's checks, as over a peer link.
struct ServiceReplica: ReplicaClient {
    let local: LocalReplica
    let service: ReplicaService
    /// The node the requests come from (its site decides what it may read).
    var from = "benguerir-1"
    var nodeID: String { local.nodeID }

    /// The same replica, asked by `node`.
    func asked(by node: String) -> ServiceReplica {
        var copy = self
        copy.from = node
        return copy
    }

    func call(_ request: PeerRequest, body: [UInt8] = []) async throws(AgadirError) -> Frame {
        let sink = CapturingSink()
        await service.handle(
            id: 1, request: request, from: from, body: BodyStream(completeWith: ByteBuffer(bytes: body)),
            sink: sink)
        guard let first = sink.frames.withLock({ $0.first }) else {
            throw AgadirError(.internalError, "\(nodeID) sent no answer to \(request.opcode)")
        }
        if let error = first.error { throw error }
        return first
    }

    /// The body of the answer to `request`: the payloads of every frame the service sent.
    func callBody(_ request: PeerRequest) async throws(AgadirError) -> [UInt8] {
        let sink = CapturingSink()
        await service.handle(
            id: 1, request: request, from: from, body: BodyStream(completeWith: ByteBuffer()), sink: sink)
        let frames = sink.frames.withLock { $0 }
        guard let first = frames.first else {
            throw AgadirError(.internalError, "\(nodeID) sent no answer to \(request.opcode)")
        }
        if let error = first.error { throw error }
        return frames.flatMap { Array($0.payload.readableBytesView) }
    }

    func claimChunks(_ ids: [ChunkID], reference: ChunkReference) async throws(AgadirError) -> [Bool] {
        let answer = try await call(.chunksClaim(reference), body: ChunkIDListCodec.encode(ids))
        return answer.payload.readableBytesView.map { $0 == 1 }
    }
    func putChunk(_ chunk: EncodedChunk, reference: ChunkReference) async throws(AgadirError) {
        _ = try await call(.chunkPut(reference, chunk: chunk.id), body: EncodedChunkCodec.encode(chunk))
    }
    func putManifest(_ manifest: ObjectManifest) async throws(AgadirError) -> (applied: Bool, stored: ObjectVersion) {
        let answer = try await call(
            .manifestPut(bucket: manifest.bucket, key: manifest.key), body: ManifestCodec.encode(manifest))
        return (try answer.fields.u8(.applied) == 1, try answer.fields.version(.version) ?? manifest.version)
    }
    func getChunk(_ id: ChunkID, bucket: String) async throws(AgadirError) -> EncodedChunk {
        try await local.getChunk(id, bucket: bucket)
    }
    func getManifest(bucket: String, key: String) async throws(AgadirError) -> ObjectManifest? {
        try await local.getManifest(bucket: bucket, key: key)
    }
    func list(bucket: String, prefix: String, startAfter: String?, limit: Int) async throws(AgadirError)
        -> [ReplicaListEntry]
    { try await local.list(bucket: bucket, prefix: prefix, startAfter: startAfter, limit: limit) }
    func putHint(target: String, bucket: String, hint: Hint) async throws(AgadirError) {
        try await local.putHint(target: target, bucket: bucket, hint: hint)
    }
    func mergeCatalog(_ records: [BucketRecord]) async throws(AgadirError) { try await local.mergeCatalog(records) }
    func catalog() async throws(AgadirError) -> [BucketRecord] { try await local.catalog() }
    func mergeAccessKeys(_ records: [AccessKeyRecord]) async throws(AgadirError) {
        try await local.mergeAccessKeys(records)
    }
    func accessKeys() async throws(AgadirError) -> [AccessKeyRecord] { try await local.accessKeys() }
    // The partition reads go through the service (its eligibility check on the reader), as a
    // peer's would: the copy paths of the rebalancer and anti-entropy use them.
    func partitionManifests(
        policy: String, partition: Int, partitionCount: Int, after: ManifestCursor?, limit: Int
    ) async throws(AgadirError) -> ManifestPage {
        try ManifestPageCodec.decode(
            try await callBody(.partitionManifests(policy: policy, partition: partition, after: after, limit: limit)))
    }
    func partitionChunks(
        policy: String, partition: Int, partitionCount: Int, after: ChunkID?, limit: Int
    ) async throws(AgadirError) -> ChunkPage {
        try ChunkPageCodec.decode(
            try await callBody(.partitionChunks(policy: policy, partition: partition, after: after, limit: limit)))
    }
    func partitionDigest(
        policy: String, partition: Int, partitionCount: Int, tombstonesBefore: UInt64
    ) async throws(AgadirError) -> PartitionSummary {
        try PartitionSummaryCodec.decode(
            try await callBody(
                .partitionDigest(policy: policy, partition: partition, tombstonesBefore: tombstonesBefore)))
    }
}

/// The eight nodes of `TestCluster`, each behind its own `ReplicaService` with its own
/// view of the layout, and a coordinator on benguerir-1 with a view of its own.
final class ServiceCluster: ClusterContext {
    let dir: TempDirectory
    let views: [String: NodeView]
    let services: [String: ServiceReplica]
    let coordinatorLayout: Mutex<ClusterLayout>
    let refreshes = Mutex(0)
    let clock = Mutex(HybridLogicalClock())
    let me = "benguerir-1"

    /// Version 1 as `TestCluster` plans it, and version 2 with settat-3 added: some
    /// partitions move to it, so some nodes leave replica sets.
    static func layouts() throws -> (Layout, Layout) {
        let v1 = try TestCluster.plannedLayout()
        let v2 = try Planner.plan(
            previous: v1,
            changes: StagedChanges(changes: [.assignNode(id: "settat-3", site: "settat", capacity: 1 << 40)]),
            appliedMillis: 2, bytesPerPartition: { _, _ in 0 }
        ).layout
        return (v1, v2)
    }

    init(nodes: ClusterLayout, coordinator: ClusterLayout, name: String = #function) throws {
        dir = TempDirectory(prefix: "replica-service", name)
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        coordinatorLayout = Mutex(coordinator)
        var views: [String: NodeView] = [:]
        var services: [String: ServiceReplica] = [:]
        for node in Set(nodes.live.flatMap { $0.nodes.map(\.id) } + coordinator.live.flatMap { $0.nodes.map(\.id) }) {
            let store = try NodeStore.open(directory: "\(dir.path)/\(node)", logger: quiet)
            let view = NodeView(nodeID: node, store: store, layout: nodes)
            let local = LocalReplica(nodeID: node, store: store)
            views[node] = view
            services[node] = ServiceReplica(
                local: local,
                service: ReplicaService(local: local, context: view, logger: quiet, layoutBytes: { [] }, audit: { [] }))
        }
        self.views = views
        self.services = services
    }

    func close() async {
        for view in views.values { await view.store.close() }
        dir.cleanup()
    }

    func snapshot() -> ClusterSnapshot {
        let layout = coordinatorLayout.withLock { $0 }
        let all = Set(layout.live.flatMap { $0.nodes.map(\.id) })
        return ClusterSnapshot(
            nodeID: me, site: layout.current.node(me)?.site ?? "", layout: layout, alive: all,
            endpoints: Dictionary(uniqueKeysWithValues: all.map { ($0, "\($0).test:7480") }))
    }
    func replica(_ node: String) -> any ReplicaClient {
        guard let replica = services[node] else { preconditionFailure("the service cluster has no node \(node)") }
        return replica
    }
    func bucketRecord(_ name: String) async throws(AgadirError) -> BucketRecord? {
        guard let view = views[me] else { throw AgadirError(.internalError, "no store for \(me)") }
        return try await view.store.bucketCatalog().first { $0.name == name }
    }
    func nextVersion() -> ObjectVersion {
        ObjectVersion(timestamp: clock.withLock { $0.now(wallMillis: 1_700_000_000_000) }, node: 7)
    }
    func refreshLayout() async { refreshes.withLock { $0 += 1 } }

    /// Hints parked anywhere for `target`.
    func hints(for target: String) async throws -> Int {
        var n = 0
        for view in views.values { n += try await view.store.hints(for: target, limit: 100).count }
        return n
    }
}

@Suite struct ReplicaServiceTests {
    /// A key of `ma-data` whose manifest partition `leaver` holds in version 1 and not in
    /// version 2, with version 2's replica set.
    static func movedKey(_ v1: Layout, _ v2: Layout) -> (key: String, leaver: String, v2Set: [String])? {
        for i in 0..<10_000 {
            let key = "moved-\(i)"
            let p = Partitioner.partition(bucket: "ma-data", key: key, count: v1.partitionCount)
            let old = v1.replicas(policy: "ma", partition: p)
            let new = v2.replicas(policy: "ma", partition: p)
            if let leaver = old.first(where: { !new.contains($0) }) { return (key, leaver, new) }
        }
        return nil
    }

    static func manifest(_ key: String, _ version: ObjectVersion) -> ObjectManifest {
        ObjectManifest(
            bucket: "ma-data", key: key, size: 1, etag: ChunkID.of([1]), contentType: "x", userMetadata: [],
            version: version, isTombstone: false, body: .inline([1]))
    }

    /// The regression of issue 13: a coordinator still on version 1 writes after every
    /// other node retired it. The node that left the partition refuses (NOT_REPLICA) and
    /// holds nothing; the write is acknowledged by the others, parks no hint for the
    /// leaver, and makes the coordinator pull the newer layout.
    @Test func aCoordinatorOnARetiredLayout_cannotLeaveDataOnANodeThatLeftThePartition() async throws {
        let (v1, v2) = try ServiceCluster.layouts()
        var current = ClusterLayout(initial: v1)
        try current.apply(v2, summary: "settat-3 added")
        current.retire(olderThan: v2.version)
        let cluster = try ServiceCluster(nodes: current, coordinator: ClusterLayout(initial: v1))
        let coordinator = Coordinator(context: cluster, logger: quiet)
        _ = try await coordinator.createBucket("ma-data", policy: "ma")
        let bucket = try await coordinator.resolve(bucket: "ma-data")
        let moved = try #require(Self.movedKey(v1, v2))

        let version = cluster.nextVersion()
        try await coordinator.writeManifest(Self.manifest(moved.key, version), level: .quorum, bucket: bucket)
        let leaver = try #require(cluster.views[moved.leaver])
        await coordinator.background.drain()
        #expect(try await leaver.local.getManifest(bucket: "ma-data", key: moved.key) == nil)
        #expect(try await cluster.hints(for: moved.leaver) == 0)
        #expect(cluster.refreshes.withLock { $0 } >= 1)
        // The leaver asked its own layout again before refusing: a sender may be ahead.
        #expect(leaver.refreshes.withLock { $0 } >= 1)

        // Asked directly, the answer is NOT_REPLICA, for manifests, chunks and claims alike.
        let direct = try #require(cluster.services[moved.leaver])
        let refused = await agadirError { _ = try await direct.putManifest(Self.manifest(moved.key, version)) }
        #expect(refused?.code == .notReplica)
        var engine = ChunkCodec()
        var chunk: EncodedChunk? = nil
        for i in 0..<10_000 where chunk == nil {
            let candidate = try engine.encode(Array("chunk \(i)".utf8), preferred: .lz4)
            let p = Partitioner.partition(of: candidate.id, count: v2.partitionCount)
            if !current.allReplicas(policy: "ma", partition: p).contains(moved.leaver) { chunk = candidate }
        }
        let foreign = try #require(chunk)
        let reference = ChunkReference(bucket: "ma-data", key: moved.key, version: version)
        let chunkRefused = await agadirError { try await direct.putChunk(foreign, reference: reference) }
        #expect(chunkRefused?.code == .notReplica)
        let claimRefused = await agadirError { _ = try await direct.claimChunks([foreign.id], reference: reference) }
        #expect(claimRefused?.code == .notReplica)
        #expect(try await leaver.store.containsChunks([foreign.id]) == [false])
        #expect(try await leaver.local.getManifest(bucket: "ma-data", key: moved.key) == nil)
        await cluster.close()
    }

    /// While both versions are live (the rebalance has not finished), the old owners still
    /// take writes: they are what reads at the old version find.
    @Test func anOldOwnerTakesWritesWhileItsVersionIsLive() async throws {
        let (v1, v2) = try ServiceCluster.layouts()
        var both = ClusterLayout(initial: v1)
        try both.apply(v2, summary: "settat-3 added")
        let cluster = try ServiceCluster(nodes: both, coordinator: both)
        let coordinator = Coordinator(context: cluster, logger: quiet)
        _ = try await coordinator.createBucket("ma-data", policy: "ma")
        let bucket = try await coordinator.resolve(bucket: "ma-data")
        let moved = try #require(Self.movedKey(v1, v2))
        let version = cluster.nextVersion()
        try await coordinator.writeManifest(Self.manifest(moved.key, version), level: .all, bucket: bucket)
        let leaver = try #require(cluster.views[moved.leaver])
        #expect(try await leaver.local.getManifest(bucket: "ma-data", key: moved.key)?.version == version)
        #expect(leaver.refreshes.withLock { $0 } == 0)
        await cluster.close()
    }

    /// A replica behind the coordinator (it does not know version 2 yet) first pulls the
    /// layout a member announces, then takes the write of a partition version 2 gave it.
    @Test func aReplicaBehindTheSenderCatchesUpBeforeRefusing() async throws {
        let (v1, v2) = try ServiceCluster.layouts()
        var both = ClusterLayout(initial: v1)
        try both.apply(v2, summary: "settat-3 added")
        let cluster = try ServiceCluster(nodes: ClusterLayout(initial: v1), coordinator: both)
        let newcomer = try #require(cluster.views["settat-3"])
        newcomer.announced.withLock { $0 = both }
        let coordinator = Coordinator(context: cluster, logger: quiet)
        _ = try await coordinator.createBucket("ma-data", policy: "ma")
        let bucket = try await coordinator.resolve(bucket: "ma-data")
        var key: String? = nil
        for i in 0..<10_000 where key == nil {
            let p = Partitioner.partition(bucket: "ma-data", key: "new-\(i)", count: v2.partitionCount)
            if v2.replicas(policy: "ma", partition: p).contains("settat-3") { key = "new-\(i)" }
        }
        let k = try #require(key)
        let version = cluster.nextVersion()
        try await coordinator.writeManifest(Self.manifest(k, version), level: .all, bucket: bucket)
        #expect(try await newcomer.local.getManifest(bucket: "ma-data", key: k)?.version == version)
        #expect(newcomer.refreshes.withLock { $0 } >= 1)
        await cluster.close()
    }

    /// Hint delivery's test of whether a target still holds the hint's partition.
    @Test func aHintsPartitionIsJudgedByTheChunkIdOrTheKey() async throws {
        let (v1, v2) = try ServiceCluster.layouts()
        var current = ClusterLayout(initial: v1)
        try current.apply(v2, summary: "settat-3 added")
        let moved = try #require(Self.movedKey(v1, v2))
        let m = Self.manifest(moved.key, ObjectVersion(timestamp: HLCTimestamp(rawValue: 1), node: 1))
        #expect(ClusterNode.holds(moved.leaver, .manifest(m), policy: "ma", in: current))
        current.retire(olderThan: v2.version)
        #expect(!ClusterNode.holds(moved.leaver, .manifest(m), policy: "ma", in: current))
        for node in moved.v2Set { #expect(ClusterNode.holds(node, .manifest(m), policy: "ma", in: current)) }
    }
}

/// Issue 13: a deleted bucket's objects never come back when its name is created again.
@Suite struct EarlierBucketTests {
    static func manifest(_ bucket: String, _ key: String, _ version: ObjectVersion, tombstone: Bool = false)
        -> ObjectManifest
    {
        ObjectManifest(
            bucket: bucket, key: key, size: tombstone ? 0 : 1, etag: ChunkID.of([1]), contentType: "x",
            userMetadata: [], version: version, isTombstone: tombstone, body: .inline(tombstone ? [] : [1]))
    }

    /// `reborn` on policy `ma` holds `k`, which is deleted, then the bucket is deleted. A PUT
    /// of `straggler` stamped before the deletion lands on the Moroccan replicas after it
    /// (it raced the deletion). The name is created again on policy `global`: the new bucket
    /// neither reads, lists nor ships the straggler, replicas refuse writes of the earlier
    /// bucket (a late hint), and the store names what the collector purges.
    @Test func aNameCreatedAgainNeverSeesTheEarlierBucketsObjects() async throws {
        let (v1, _) = try ServiceCluster.layouts()
        let layout = ClusterLayout(initial: v1)
        let cluster = try ServiceCluster(nodes: layout, coordinator: layout)
        let coordinator = Coordinator(context: cluster, logger: quiet)
        _ = try await coordinator.createBucket("reborn", policy: "ma")
        let first = try await coordinator.resolve(bucket: "reborn")
        #expect(first.record.generation == first.record.version)
        try await coordinator.writeManifest(
            Self.manifest("reborn", "k", cluster.nextVersion()), level: .all, bucket: first)
        try await coordinator.writeManifest(
            Self.manifest("reborn", "k", cluster.nextVersion(), tombstone: true), level: .all, bucket: first)
        let raced = cluster.nextVersion()
        try await coordinator.deleteBucket("reborn")

        // A write of the deleted bucket is refused by its replicas.
        let moroccan = v1.nodes.filter { !$0.id.hasPrefix("paris") }.map(\.id)
        let anyReplica = try #require(cluster.services[moroccan[0]])
        let afterDeletion = await agadirError {
            _ = try await anyReplica.putManifest(Self.manifest("reborn", "late", raced))
        }
        #expect(afterDeletion?.code == .noSuchBucket)
        // The racing PUT that got in anyway, on every Moroccan node.
        for node in moroccan {
            _ = try await cluster.views[node]?.local.putManifest(Self.manifest("reborn", "straggler", raced))
        }

        _ = try await coordinator.createBucket("reborn", policy: "global")
        let second = try await coordinator.resolve(bucket: "reborn")
        #expect(second.policy.name == "global")
        #expect(second.record.predates(raced))
        #expect(try await coordinator.readManifest(key: "straggler", level: .all, bucket: second) == nil)
        let page = try await coordinator.list(ListRequest(bucket: "reborn", limit: 100), level: .all, bucket: second)
        #expect(page.entries.isEmpty)

        // Partition pages (what a rebalance or a repair pulls) under the new policy leave
        // the straggler out: it never travels to the global policy's nodes (Paris).
        let partition = Partitioner.partition(bucket: "reborn", key: "straggler", count: v1.partitionCount)
        for node in moroccan {
            let view = try #require(cluster.views[node])
            let pulled = try await view.local.partitionManifests(
                policy: "global", partition: partition, partitionCount: v1.partitionCount, after: nil, limit: 100)
            #expect(pulled.manifests.filter { $0.bucket == "reborn" }.isEmpty, "\(node) ships the earlier bucket")
        }

        // A late write of the earlier bucket (a hint parked before the deletion) is refused,
        // by a replica of its partition under the new policy.
        let latePartition = Partitioner.partition(bucket: "reborn", key: "late", count: v1.partitionCount)
        let owner = try #require(v1.replicas(policy: "global", partition: latePartition).first)
        let ownerReplica = try #require(cluster.services[owner])
        let late = await agadirError { _ = try await ownerReplica.putManifest(Self.manifest("reborn", "late", raced)) }
        #expect(late?.code == .noSuchBucket)
        #expect(try await cluster.views[owner]?.local.getManifest(bucket: "reborn", key: "late") == nil)

        // The collector's page: the straggler and the old delete marker, not the new bucket's objects.
        let fresh = cluster.nextVersion()
        try await coordinator.writeManifest(Self.manifest("reborn", "fresh", fresh), level: .all, bucket: second)
        let store = try #require(cluster.views[moroccan[0]]).store
        let earlier = try await store.manifestVersions(
            bucket: "reborn", before: second.record.generation, after: nil, limit: 100)
        #expect(earlier.map(\.key).contains("straggler"))
        #expect(!earlier.map(\.key).contains("fresh"))
        #expect(earlier.allSatisfy { $0.version < second.record.generation })
        await cluster.close()
    }
}

/// Issue 17: the receiving side's residency checks (`ReplicaService`), each path asked by or
/// of a foreign node, over real stores.
@Suite struct ReceivingSideTests {
    static func chunk(_ text: String) throws -> EncodedChunk {
        var engine = ChunkCodec()
        return try engine.encode(Array(text.utf8), preferred: .lz4)
    }

    /// Bucket `ma-data` on policy `ma` and its object `k` (one chunk holding `text`), written at ALL
    /// by a coordinator on benguerir-1.
    static func residentObject(_ text: String, in cluster: ServiceCluster) async throws -> (
        EncodedChunk, ObjectManifest
    ) {
        let coordinator = Coordinator(context: cluster, logger: quiet)
        _ = try await coordinator.createBucket("ma-data", policy: "ma")
        let bucket = try await coordinator.resolve(bucket: "ma-data")
        let chunk = try Self.chunk(text)
        let version = cluster.nextVersion()
        let reference = ChunkReference(bucket: "ma-data", key: "k", version: version)
        try await coordinator.writeChunk(chunk, reference: reference, level: .all, bucket: bucket)
        var manifest = EarlierBucketTests.manifest("ma-data", "k", version)
        manifest.body = .chunks([ChunkRef(id: chunk.id, length: UInt32(text.utf8.count))])
        manifest.size = UInt64(text.utf8.count)
        try await coordinator.writeManifest(manifest, level: .all, bucket: bucket)
        return (chunk, manifest)
    }

    @Test func aForeignNodeRefusesEveryWriteOfAResidentBucket_andStoresNothing() async throws {
        let (v1, _) = try ServiceCluster.layouts()
        let layout = ClusterLayout(initial: v1)
        let cluster = try ServiceCluster(nodes: layout, coordinator: layout)
        let coordinator = Coordinator(context: cluster, logger: quiet)
        _ = try await coordinator.createBucket("ma-data", policy: "ma")
        let paris = try #require(cluster.services["paris-1"])
        let version = cluster.nextVersion()
        let chunk = try Self.chunk("resident bytes")
        let reference = ChunkReference(bucket: "ma-data", key: "k", version: version)
        let manifest = EarlierBucketTests.manifest("ma-data", "k", version)
        let refusals = [
            await agadirError { _ = try await paris.putManifest(manifest) },
            await agadirError { try await paris.putChunk(chunk, reference: reference) },
            await agadirError { _ = try await paris.claimChunks([chunk.id], reference: reference) },
            await agadirError {
                _ = try await paris.call(
                    .hintPut(target: "benguerir-2", bucket: "ma-data", kind: .manifest, reference: nil, chunk: nil),
                    body: ManifestCodec.encode(manifest))
            },
        ]
        for (i, refusal) in refusals.enumerated() {
            #expect(refusal?.code == .redirect, "write \(i): \(String(describing: refusal))")
        }
        let store = try #require(cluster.views["paris-1"]).store
        #expect(try await store.manifestInventory(after: nil, limit: 10).isEmpty)
        #expect(try await store.chunkInventory(after: nil, limit: 10).isEmpty)
        #expect(try await store.hintTargets().isEmpty)
        await cluster.close()
    }

    @Test func aResidentReplicaRefusesAForeignReader_onEveryReadPath_andAnswersAnEligibleOne() async throws {
        let (v1, _) = try ServiceCluster.layouts()
        let layout = ClusterLayout(initial: v1)
        let cluster = try ServiceCluster(nodes: layout, coordinator: layout)
        let (chunk, manifest) = try await Self.residentObject("resident bytes", in: cluster)
        let count = v1.partitionCount
        let chunkPartition = Partitioner.partition(of: chunk.id, count: count)
        let keyPartition = Partitioner.partition(bucket: "ma-data", key: "k", count: count)
        let holder = try #require(v1.replicas(policy: "ma", partition: chunkPartition).first)
        let keyHolder = try #require(v1.replicas(policy: "ma", partition: keyPartition).first)
        let chunkReplica = try #require(cluster.services[holder])
        let keyReplica = try #require(cluster.services[keyHolder])
        let reads: [(String, ServiceReplica, PeerRequest)] = [
            ("CHUNK_GET", chunkReplica, .chunkGet(chunk: chunk.id, bucket: "ma-data")),
            ("MANIFEST_GET", keyReplica, .manifestGet(bucket: "ma-data", key: "k")),
            (
                "REPLICA_LIST", keyReplica,
                .replicaList(bucket: "ma-data", prefix: "", startAfter: nil, limit: 10)
            ),
            (
                "PARTITION_MANIFESTS", keyReplica,
                .partitionManifests(policy: "ma", partition: keyPartition, after: nil, limit: 10)
            ),
            (
                "PARTITION_CHUNKS", chunkReplica,
                .partitionChunks(policy: "ma", partition: chunkPartition, after: nil, limit: 10)
            ),
            (
                "PARTITION_DIGEST", keyReplica,
                .partitionDigest(policy: "ma", partition: keyPartition, tombstonesBefore: 0)
            ),
        ]
        for (name, replica, request) in reads {
            let refused = await agadirError { _ = try await replica.asked(by: "paris-1").call(request) }
            #expect(
                refused?.code == .invalidArgument, "\(name) answered a Paris reader: \(String(describing: refused))")
            let answered = try await replica.asked(by: "casablanca-1").call(request)
            #expect(answered.payload.readableBytes > 0, "\(name) gave an eligible reader nothing")
        }
        // A hint for a foreign target is refused even by an eligible holder.
        let hint = await agadirError {
            _ = try await cluster.services[keyHolder]?.call(
                .hintPut(target: "paris-1", bucket: "ma-data", kind: .manifest, reference: nil, chunk: nil),
                body: ManifestCodec.encode(manifest))
        }
        #expect(hint?.code == .invalidArgument)
        await cluster.close()
    }

    /// The copy path of the rebalancer and of anti-entropy (`PartitionCopier`), driven by a Paris
    /// node as if a layout had made it a replica of a Moroccan partition: the Moroccan sources
    /// refuse it, and nothing reaches its store.
    @Test func aForeignNodeCopyingAResidentPartition_isRefused_andStoresNothing() async throws {
        let (v1, _) = try ServiceCluster.layouts()
        let layout = ClusterLayout(initial: v1)
        let cluster = try ServiceCluster(nodes: layout, coordinator: layout)
        let (chunk, _) = try await Self.residentObject("resident bytes to copy", in: cluster)
        let count = v1.partitionCount
        let keyPartition = Partitioner.partition(bucket: "ma-data", key: "k", count: count)
        let chunkPartition = Partitioner.partition(of: chunk.id, count: count)
        let parisView = try #require(cluster.views["paris-1"])
        let copier = PartitionCopier(local: parisView.local, partitionCount: count)
        for source in Set(v1.replicas(policy: "ma", partition: keyPartition)) {
            let replica = try #require(cluster.services[source]).asked(by: "paris-1")
            let refused = await agadirError {
                _ = try await copier.copyManifests(
                    policy: "ma", partition: keyPartition, from: replica, after: nil, throttle: { _ in })
            }
            #expect(
                refused?.code == .invalidArgument, "\(source) gave paris-1 manifests: \(String(describing: refused))")
        }
        for source in Set(v1.replicas(policy: "ma", partition: chunkPartition)) {
            let replica = try #require(cluster.services[source]).asked(by: "paris-1")
            let refused = await agadirError {
                _ = try await copier.copyChunks(
                    policy: "ma", partition: chunkPartition, from: replica, after: nil, throttle: { _ in })
            }
            #expect(refused?.code == .invalidArgument, "\(source) gave paris-1 chunks: \(String(describing: refused))")
        }
        #expect(try await parisView.store.manifestInventory(after: nil, limit: 10).isEmpty)
        #expect(try await parisView.store.chunkInventory(after: nil, limit: 10).isEmpty)
        // The same copy by an eligible node that lacks the data brings it over: the refusal is the guard's.
        let settat = try #require(
            cluster.views.keys.first {
                $0.hasPrefix("settat") && !v1.replicas(policy: "ma", partition: keyPartition).contains($0)
            })
        let eligible = PartitionCopier(local: try #require(cluster.views[settat]).local, partitionCount: count)
        let source = try #require(v1.replicas(policy: "ma", partition: keyPartition).first)
        let copied = try await eligible.copyManifests(
            policy: "ma", partition: keyPartition, from: try #require(cluster.services[source]).asked(by: settat),
            after: nil, throttle: { _ in })
        #expect(copied.tally.manifests == 1)
        await cluster.close()
    }

}
