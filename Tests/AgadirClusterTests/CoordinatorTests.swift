import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirTestSupport
import AgadirWire
import Foundation
import Synchronization
import Testing

@testable import AgadirCluster

/// A replica over a real store whose node can be made to fail every call.
final class SwitchableReplica: ReplicaClient {
    let local: LocalReplica
    let failing = Mutex(false)
    /// While set, manifest reads wait (at most 20 s) before answering: a slow replica.
    let stalled = Mutex(false)
    let calls = Mutex(0)
    /// Chunk bodies received (CHUNK_PUT), as opposed to claims.
    let chunkPuts = Mutex(0)
    /// While set, every chunk read fails verification, as a copy damaged on disk does.
    let corrupt = Mutex(false)
    var nodeID: String { local.nodeID }

    init(_ local: LocalReplica) { self.local = local }

    func check() throws(AgadirError) {
        calls.withLock { $0 += 1 }
        if failing.withLock({ $0 }) { throw AgadirError(.unavailable, "\(nodeID) is switched off") }
    }

    func claimChunks(_ ids: [ChunkID], reference: ChunkReference) async throws(AgadirError) -> [Bool] {
        try check()
        return try await local.claimChunks(ids, reference: reference)
    }
    func putChunk(_ chunk: EncodedChunk, reference: ChunkReference) async throws(AgadirError) {
        try check()
        chunkPuts.withLock { $0 += 1 }
        try await local.putChunk(chunk, reference: reference)
    }
    func getChunk(_ id: ChunkID, bucket: String) async throws(AgadirError) -> EncodedChunk {
        try check()
        if corrupt.withLock({ $0 }) { throw AgadirError(.corruptChunk, "chunk \(id.hex) on \(nodeID) is corrupt") }
        return try await local.getChunk(id, bucket: bucket)
    }
    func putManifest(_ manifest: ObjectManifest) async throws(AgadirError) -> (applied: Bool, stored: ObjectVersion) {
        try check()
        return try await local.putManifest(manifest)
    }
    func getManifest(bucket: String, key: String) async throws(AgadirError) -> ObjectManifest? {
        try check()
        for _ in 0..<2000 where stalled.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(10)) }
        return try await local.getManifest(bucket: bucket, key: key)
    }
    func list(bucket: String, prefix: String, startAfter: String?, limit: Int) async throws(AgadirError)
        -> [ReplicaListEntry]
    {
        try check()
        return try await local.list(bucket: bucket, prefix: prefix, startAfter: startAfter, limit: limit)
    }
    func putHint(target: String, bucket: String, hint: Hint) async throws(AgadirError) {
        try check()
        try await local.putHint(target: target, bucket: bucket, hint: hint)
    }
    func mergeCatalog(_ records: [BucketRecord]) async throws(AgadirError) {
        try check()
        try await local.mergeCatalog(records)
    }
    func catalog() async throws(AgadirError) -> [BucketRecord] {
        try check()
        return try await local.catalog()
    }
    func mergeAccessKeys(_ records: [AccessKeyRecord]) async throws(AgadirError) {
        try check()
        try await local.mergeAccessKeys(records)
    }
    func accessKeys() async throws(AgadirError) -> [AccessKeyRecord] {
        try check()
        return try await local.accessKeys()
    }
    func partitionManifests(
        policy: String, partition: Int, partitionCount: Int, after: ManifestCursor?, limit: Int
    ) async throws(AgadirError) -> ManifestPage {
        try check()
        return try await local.partitionManifests(
            policy: policy, partition: partition, partitionCount: partitionCount, after: after, limit: limit)
    }
    func partitionChunks(
        policy: String, partition: Int, partitionCount: Int, after: ChunkID?, limit: Int
    ) async throws(AgadirError) -> ChunkPage {
        try check()
        return try await local.partitionChunks(
            policy: policy, partition: partition, partitionCount: partitionCount, after: after, limit: limit)
    }
    func partitionDigest(
        policy: String, partition: Int, partitionCount: Int, tombstonesBefore: UInt64
    ) async throws(AgadirError) -> PartitionSummary {
        try check()
        return try await local.partitionDigest(
            policy: policy, partition: partition, partitionCount: partitionCount, tombstonesBefore: tombstonesBefore)
    }
}

/// Eight nodes in four sites (three Moroccan, one French), each with a real store, and a
/// coordinator on one of them.
final class TestCluster: ClusterContext {
    static let sites = ["benguerir", "casablanca", "settat", "paris"]
    let dir: TempDirectory
    let layout: ClusterLayout
    let replicas: [String: SwitchableReplica]
    let stores: [String: NodeStore]
    let me: String
    let down = Mutex<Set<String>>([])
    let clock = Mutex(HybridLogicalClock())

    static func plannedLayout(partitionCount: Int = 64, excluding: Set<String> = []) throws -> Layout {
        var changes: [LayoutChange] = []
        for site in sites {
            changes.append(.setSiteLabels(site: site, labels: ["country": site == "paris" ? "FR" : "MA"]))
            for i in 1...2 where !excluding.contains("\(site)-\(i)") {
                changes.append(.assignNode(id: "\(site)-\(i)", site: site, capacity: 1 << 40))
            }
        }
        changes.append(
            .addPolicy(
                Policy(
                    name: "ma", replicationFactor: 3, selector: SiteSelector(labels: ["country": "MA"]), minSites: 2,
                    readConsistency: .quorum, writeConsistency: .quorum, codec: .lz4)))
        changes.append(
            .addPolicy(
                Policy(
                    name: "global", replicationFactor: 3, selector: .any, minSites: 1, readConsistency: .quorum,
                    writeConsistency: .quorum, codec: .lz4)))
        return try Planner.plan(
            previous: .empty(partitionCount: partitionCount), changes: StagedChanges(changes: changes),
            appliedMillis: 1,
            bytesPerPartition: { _, _ in 0 }
        ).layout
    }

    init(me: String = "benguerir-1", layout: ClusterLayout? = nil, name: String = #function) throws {
        dir = TempDirectory(prefix: "coordinator", name)
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        self.layout = try layout ?? ClusterLayout(initial: Self.plannedLayout())
        self.me = me
        var replicas: [String: SwitchableReplica] = [:]
        var stores: [String: NodeStore] = [:]
        for node in self.layout.current.nodes {
            let store = try NodeStore.open(directory: "\(dir.path)/\(node.id)", logger: quiet)
            stores[node.id] = store
            replicas[node.id] = SwitchableReplica(LocalReplica(nodeID: node.id, store: store))
        }
        self.replicas = replicas
        self.stores = stores
    }

    func close() async {
        for store in stores.values { await store.close() }
        dir.cleanup()
    }

    func snapshot() -> ClusterSnapshot {
        let down = self.down.withLock { $0 }
        let all = Set(layout.current.nodes.map(\.id))
        return ClusterSnapshot(
            nodeID: me, site: layout.current.node(me)?.site ?? "", layout: layout, alive: all.subtracting(down),
            endpoints: Dictionary(uniqueKeysWithValues: all.map { ($0, "\($0).test:7480") }))
    }

    func replica(_ node: String) -> any ReplicaClient {
        guard let replica = replicas[node] else { preconditionFailure("the test cluster has no node \(node)") }
        return replica
    }

    func bucketRecord(_ name: String) async throws(AgadirError) -> BucketRecord? {
        guard let store = stores[me] else {
            throw AgadirError(.internalError, "no store for \(me) in the test cluster")
        }
        return try await store.bucketCatalog().first { $0.name == name }
    }

    func nextVersion() -> ObjectVersion {
        ObjectVersion(timestamp: clock.withLock { $0.now(wallMillis: 1_700_000_000_000) }, node: 7)
    }

    func site(of node: String) -> String { layout.current.node(node)?.site ?? "" }

    func refreshLayout() async {}

    /// A coordinator on this cluster and the bucket `ma-data` on policy `ma`, created and resolved.
    func maBucket() async throws -> (Coordinator, ResolvedBucket) {
        let coordinator = Coordinator(context: self, logger: quiet)
        _ = try await coordinator.createBucket("ma-data", policy: "ma")
        return (coordinator, try await coordinator.resolve(bucket: "ma-data"))
    }

    /// The current layout's replicas of the manifest of `ma-data/key`.
    func manifestReplicas(_ key: String) -> [String] {
        let l = layout.current
        return l.replicas(
            policy: "ma", partition: Partitioner.partition(bucket: "ma-data", key: key, count: l.partitionCount))
    }
}

@Suite struct CoordinatorTests {
    /// A one-byte object of bucket ma-data, stored inline in its manifest.
    static func inline(_ key: String, _ byte: UInt8, _ version: ObjectVersion) -> ObjectManifest {
        ObjectManifest(
            bucket: "ma-data", key: key, size: 1, etag: ChunkID.of([byte]), contentType: "x", userMetadata: [],
            version: version,
            isTombstone: false, body: .inline([byte]))
    }

    static func chunk(_ bytes: [UInt8]) throws -> EncodedChunk {
        var engine = ChunkCodec()
        return try engine.encode(bytes, preferred: .lz4)
    }

    @Test func writesLandOnExactlyTheLayoutsReplicas_andNeverOutsideThePolicy() async throws {
        let cluster = try TestCluster()
        let (coordinator, bucket) = try await cluster.maBucket()
        let layout = cluster.layout.current
        for i in 0..<40 {
            let data = randomBytes(3000 + i, seed: UInt64(i))
            let encoded = try Self.chunk(data)
            let version = cluster.nextVersion()
            let ref = ChunkReference(bucket: "ma-data", key: "k\(i)", version: version)
            // ALL, so that every replica has it when the call returns (QUORUM returns after two).
            try await coordinator.writeChunk(encoded, reference: ref, level: .all, bucket: bucket)
            let manifest = ObjectManifest(
                bucket: "ma-data", key: "k\(i)", size: UInt64(data.count), etag: ChunkID.of(data), contentType: "x",
                userMetadata: [], version: version, isTombstone: false,
                body: .chunks([ChunkRef(id: encoded.id, length: UInt32(data.count))]))
            try await coordinator.writeManifest(manifest, level: .all, bucket: bucket)
            // Held by exactly the replicas the layout names, all in Morocco.
            let chunkReplicas = Set(
                layout.replicas(
                    policy: "ma", partition: Partitioner.partition(of: encoded.id, count: layout.partitionCount)))
            let manifestReplicas = Set(cluster.manifestReplicas("k\(i)"))
            for (node, store) in cluster.stores {
                let holds = try await store.containsChunks([encoded.id]).first ?? false
                #expect(holds == chunkReplicas.contains(node), "chunk \(i) on \(node)")
                let hasManifest =
                    try await cluster.replicas[node]!.local.getManifest(bucket: "ma-data", key: "k\(i)") != nil
                #expect(hasManifest == manifestReplicas.contains(node), "manifest \(i) on \(node)")
                if node.hasPrefix("paris") { #expect(!holds && !hasManifest) }
            }
            let read = try await coordinator.liveManifest(key: "k\(i)", level: .quorum, bucket: bucket)
            #expect(read.version == version)
            #expect(try await coordinator.readChunk(encoded.id, bucket: bucket) == data)
        }
        await cluster.close()
    }

    @Test(
        "a chunk whose every copy fails verification is CORRUPT_CHUNK; with a holder unreachable or down, UNAVAILABLE"
    )
    func readChunk_everyCopyCorrupt_isCorruptChunk() async throws {
        let cluster = try TestCluster()
        let (coordinator, bucket) = try await cluster.maBucket()
        let encoded = try Self.chunk(randomBytes(5000, seed: 41))
        let ref = ChunkReference(bucket: "ma-data", key: "k", version: cluster.nextVersion())
        try await coordinator.writeChunk(encoded, reference: ref, level: .all, bucket: bucket)
        let layout = cluster.layout.current
        let holders = layout.replicas(
            policy: "ma", partition: Partitioner.partition(of: encoded.id, count: layout.partitionCount))
        for node in holders { cluster.replicas[node]?.corrupt.withLock { $0 = true } }
        let everyCopy = await agadirError { _ = try await coordinator.readChunk(encoded.id, bucket: bucket) }
        #expect(everyCopy?.code == .corruptChunk, "\(String(describing: everyCopy))")
        // A holder that could not be asked may hold a sound copy: worth a retry.
        cluster.replicas[holders[0]]?.failing.withLock { $0 = true }
        let unreachable = await agadirError { _ = try await coordinator.readChunk(encoded.id, bucket: bucket) }
        #expect(unreachable?.code == .unavailable, "\(String(describing: unreachable))")
        cluster.replicas[holders[0]]?.failing.withLock { $0 = false }
        cluster.down.withLock { $0 = [holders[0]] }
        let resolved = try await coordinator.resolve(bucket: "ma-data")
        let down = await agadirError { _ = try await coordinator.readChunk(encoded.id, bucket: resolved) }
        #expect(down?.code == .unavailable, "\(String(describing: down))")
        await cluster.close()
    }

    @Test func aNodeOutsideThePolicy_redirectsToEligibleNodes() async throws {
        let cluster = try TestCluster(me: "paris-1")
        let coordinator = Coordinator(context: cluster, logger: quiet)
        _ = try await coordinator.createBucket("ma-data", policy: "ma")
        let error = await agadirError { _ = try await coordinator.resolve(bucket: "ma-data") }
        #expect(error?.code == .redirect)
        #expect(error?.redirect.isEmpty == false)
        #expect(error?.redirect.allSatisfy { !$0.hasPrefix("paris") } == true)
        // The global bucket is served here.
        _ = try await coordinator.createBucket("everywhere", policy: "global")
        _ = try await coordinator.resolve(bucket: "everywhere")
        let unknown = await agadirError { _ = try await coordinator.createBucket("x-data", policy: "mars") }
        #expect(unknown?.code == .noSuchPolicy)
        await cluster.close()
    }

    @Test func quorumSurvivesOneReplicaDown_withAHint_andTwoDownFailClearly() async throws {
        let cluster = try TestCluster()
        let coordinator = Coordinator(context: cluster, logger: quiet)
        _ = try await coordinator.createBucket("ma-data", policy: "ma")
        let bucket0 = try await coordinator.resolve(bucket: "ma-data")
        let key = "object"
        let replicas = cluster.manifestReplicas(key)
        #expect(replicas.count == 3)
        func manifest(_ v: ObjectVersion) -> ObjectManifest {
            Self.inline(key, 1, v)
        }
        // One replica down (known dead): QUORUM write and read go on; a hint is parked.
        cluster.down.withLock { $0 = [replicas[0]] }
        let b1 = try await coordinator.resolve(bucket: "ma-data")
        let v1 = cluster.nextVersion()
        try await coordinator.writeManifest(manifest(v1), level: .quorum, bucket: b1)
        #expect(try await coordinator.liveManifest(key: key, level: .quorum, bucket: b1).version == v1)
        #expect(coordinator.counters.hintsParked == 1)
        var holders: [String] = []
        for (node, store) in cluster.stores where try await !store.hints(for: replicas[0], limit: 10).isEmpty {
            holders.append(node)
        }
        // Where it lands: on one node, eligible for the policy, in the target's site when one
        // is alive there (it is nearest the target for the delivery), never in Paris.
        let targetSite = cluster.site(of: replicas[0])
        let sameSite = cluster.layout.current.nodes.filter { $0.site == targetSite && $0.id != replicas[0] }.map(\.id)
        #expect(holders.count == 1, "hint holders: \(holders)")
        #expect(holders.allSatisfy { sameSite.contains($0) }, "the hint for \(replicas[0]) landed on \(holders)")
        #expect(!holders.contains { $0.hasPrefix("paris") })
        // Two down: QUORUM fails with the counts; ONE succeeds.
        cluster.down.withLock { $0 = [replicas[0], replicas[1]] }
        let b2 = try await coordinator.resolve(bucket: "ma-data")
        let v2 = cluster.nextVersion()
        let refused = await agadirError {
            try await coordinator.writeManifest(manifest(v2), level: .quorum, bucket: b2)
        }
        #expect(refused?.code == .notEnoughReplicas)
        #expect(refused?.replicas == AgadirError.ReplicaCount(answered: 1, needed: 2))
        let readRefused = await agadirError {
            _ = try await coordinator.readManifest(key: key, level: .quorum, bucket: b2)
        }
        #expect(readRefused?.code == .notEnoughReplicas)
        try await coordinator.writeManifest(manifest(v2), level: .one, bucket: b2)
        #expect(try await coordinator.liveManifest(key: key, level: .one, bucket: b2).version == v2)
        // A replica that is "alive" but fails counts as missing too.
        cluster.down.withLock { $0 = [] }
        cluster.replicas[replicas[2]]!.failing.withLock { $0 = true }
        cluster.replicas[replicas[1]]!.failing.withLock { $0 = true }
        let failing = await agadirError {
            try await coordinator.writeManifest(manifest(cluster.nextVersion()), level: .quorum, bucket: bucket0)
        }
        #expect(failing?.code == .notEnoughReplicas)
        #expect(failing?.message.contains("switched off") == true)
        await cluster.close()
    }

    @Test func readRepair_bringsStaleReplicasToTheNewestVersion() async throws {
        let cluster = try TestCluster()
        let (coordinator, bucket) = try await cluster.maBucket()
        let key = "repaired"
        let replicas = cluster.manifestReplicas(key)
        let old = cluster.nextVersion()
        let new = cluster.nextVersion()
        func manifest(_ v: ObjectVersion) -> ObjectManifest {
            Self.inline(key, 2, v)
        }
        // Replica 0 has the new version, replica 1 the old one, replica 2 nothing.
        _ = try await cluster.replicas[replicas[0]]!.local.putManifest(manifest(new))
        _ = try await cluster.replicas[replicas[1]]!.local.putManifest(manifest(old))
        #expect(try await coordinator.liveManifest(key: key, level: .all, bucket: bucket).version == new)
        try await withTimeout(60) {
            while true {
                var versions: [ObjectVersion?] = []
                for r in replicas {
                    versions.append(
                        try await cluster.replicas[r]!.local.getManifest(bucket: "ma-data", key: key)?.version)
                }
                if versions.allSatisfy({ $0 == new }) { return }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        #expect(coordinator.counters.readRepairs == 2)
        await cluster.close()
    }

    @Test(
        "a write that finds a newer version at its replicas (stamped ahead by a faster clock) is stamped again and wins"
    )
    func writeBehindANewerVersion_isStampedAgain() async throws {
        let cluster = try TestCluster()
        let (coordinator, bucket) = try await cluster.maBucket()
        // A write acknowledged first, by a node whose clock ran 2 s ahead of this one.
        let slow = cluster.nextVersion()
        let ahead = ObjectVersion(
            timestamp: HLCTimestamp(physicalMillis: slow.timestamp.physicalMillis + 2000, logical: 0), node: 99)
        try await coordinator.writeManifest(Self.inline("k", 1, ahead), level: .quorum, bucket: bucket)
        // Then a write through this node, stamped by its (slower) clock: it must not be lost.
        let written = try await coordinator.writeManifest(Self.inline("k", 2, slow), level: .quorum, bucket: bucket)
        #expect(written > ahead)
        let read = try await coordinator.liveManifest(key: "k", level: .quorum, bucket: bucket)
        #expect(read.version == written && read.etag == ChunkID.of([2]), "the later write was lost to the earlier one")
        #expect(coordinator.counters.restamps == 1)
        await cluster.close()
    }

    @Test(
        "a catalog change by a node whose clock is behind the record it replaces (restarted with the clock set back) still applies"
    )
    func catalogChangesFromASlowClock_apply() async throws {
        let cluster = try TestCluster()
        let (coordinator, _) = try await cluster.maBucket()
        // The record was last written by a node 10 s ahead of this one's clock.
        var record = try #require(try await cluster.bucketRecord("ma-data"))
        let slow = cluster.nextVersion()
        record.version = ObjectVersion(
            timestamp: HLCTimestamp(physicalMillis: slow.timestamp.physicalMillis + 10_000, logical: 0), node: 99)
        for store in cluster.stores.values { _ = try await store.mergeBucketRecord(record) }
        // A quota, the deletion, and the name created again, all from the slow clock.
        let quota = try await coordinator.setQuota(bucket: "ma-data", maxBytes: 1000, maxObjects: nil)
        #expect(quota.version > record.version)
        #expect(try await cluster.bucketRecord("ma-data")?.maxBytes == 1000, "the quota was not applied")
        try await coordinator.deleteBucket("ma-data")
        for (node, store) in cluster.stores {
            #expect(try await store.bucketCatalog(named: "ma-data")?.deleted == true, "the deletion lost on \(node)")
        }
        let again = try await coordinator.createBucket("ma-data", policy: "global")
        #expect(again.generation > record.version)
        #expect(try await cluster.bucketRecord("ma-data")?.policy == "global", "the creation lost to the deletion")
        await cluster.close()
    }

    @Test func concurrentWriters_endWithTheSameNewestVersionOnEveryReplica() async throws {
        let cluster = try TestCluster()
        let (coordinator, bucket) = try await cluster.maBucket()
        let versions = (0..<16).map { _ in cluster.nextVersion() }
        // A writer that finds a newer version at a replica is stamped again above it
        // (writeManifest), so the winner is the newest version any writer ended with.
        let written = try await withThrowingTaskGroup(of: ObjectVersion.self) { group in
            for (i, v) in versions.shuffled().enumerated() {
                group.addTask {
                    let m = Self.inline("contended", UInt8(i), v)
                    return try await coordinator.writeManifest(m, level: .all, bucket: bucket)
                }
            }
            return try await group.reduce(into: [ObjectVersion]()) { $0.append($1) }
        }
        let winner = try #require(written.max())
        #expect(winner >= (try #require(versions.max())))
        let replicas = cluster.manifestReplicas("contended")
        for r in replicas {
            #expect(
                try await cluster.replicas[r]!.local.getManifest(bucket: "ma-data", key: "contended")?.version
                    == winner)
        }
        await cluster.close()
    }

    @Test func listings_mergeReplicas_likeOneNodesListingOfTheNewestVersions() async throws {
        let cluster = try TestCluster()
        let (coordinator, bucket) = try await cluster.maBucket()
        // The model: a standalone store that gets every write in version order.
        let modelDir = TempDirectory(prefix: "coordinator-model")
        let model = try NodeStore.open(directory: modelDir.path, logger: quiet)
        try await model.createBucket(BucketInfo(name: "ma-data", policy: "ma", createdMillis: 0))
        var rng = SplitMix64(seed: 21)
        // Canonically equivalent spellings (NFC and NFD) are distinct keys, as bytes.
        let spellings = ["", "caf\u{e9}", "cafe\u{301}", "\u{212b}", "\u{c5}"]
        let keys = (0..<150).map { i in
            ["a/", "a/b/", "b/", "", "c/d/"][i % 5] + "k\(Int.random(in: 0..<60, using: &rng))"
                + spellings[(i / 5) % spellings.count]
        }
        for key in keys {
            let v = cluster.nextVersion()
            let tomb = Int.random(in: 0..<4, using: &rng) == 0
            let m =
                tomb
                ? ObjectManifest.tombstone(bucket: "ma-data", key: key, version: v)
                : Self.inline(key, 3, v)
            // Each write reaches a random majority of its replicas only (the others stay stale).
            let replicas = cluster.manifestReplicas(key)
            for r in replicas.shuffled(using: &rng).prefix(2) {
                _ = try await cluster.replicas[r]!.local.putManifest(m)
            }
            try await model.putManifest(m)
        }
        for delimiter in [nil, "/"] as [String?] {
            for prefix in ["", "a/", "c/"] {
                for limit in [1, 3, 7, 1000] {
                    var after: String? = nil
                    for _ in 0..<400 {
                        let request = ListRequest(
                            bucket: "ma-data", prefix: prefix, delimiter: delimiter, startAfter: after, limit: limit)
                        let got = try await coordinator.list(request, level: .quorum, bucket: bucket)
                        let want = try await model.list(
                            bucket: "ma-data", prefix: prefix, delimiter: delimiter, startAfter: after, limit: limit)
                        #expect(
                            got.entries.map { Array($0.key.utf8) } == want.entries.map { Array($0.key.utf8) },
                            "prefix \(prefix) delimiter \(delimiter ?? "-") limit \(limit) after \(after ?? "-")")
                        #expect(got.entries.map(\.version) == want.entries.map(\.version))
                        #expect(got.commonPrefixes.map { Array($0.utf8) } == want.commonPrefixes.map { Array($0.utf8) })
                        #expect(got.isTruncated == want.isTruncated)
                        #expect(got.nextStartAfter.map { Array($0.utf8) } == want.nextStartAfter.map { Array($0.utf8) })
                        guard want.isTruncated, let next = want.nextStartAfter else { break }
                        after = next
                    }
                }
            }
        }
        await model.close()
        modelDir.cleanup()
        await cluster.close()
    }

    @Test func theSendPathRefusesANodeOutsideThePolicy_evenIfALayoutNamesIt() async throws {
        // A corrupted layout whose `ma` map puts paris-1 first everywhere: the planner never
        // does this; the guard on the send path must still refuse.
        var layout = try TestCluster.plannedLayout()
        if var map = layout.maps["ma"] {
            map.replicas = map.replicas.map { ["paris-1"] + $0.dropFirst() }
            layout.maps["ma"] = map
        }
        let cluster = try TestCluster(layout: ClusterLayout(initial: layout))
        let (coordinator, bucket) = try await cluster.maBucket()
        let m = Self.inline("k", 4, cluster.nextVersion())
        let refused = await agadirError { try await coordinator.writeManifest(m, level: .one, bucket: bucket) }
        #expect(refused?.code == .internalError)
        #expect(refused?.message.contains("paris-1") == true)
        #expect(cluster.replicas["paris-1"]!.calls.withLock { $0 } == 1)  // the catalog record only
        #expect(try await cluster.replicas["paris-1"]!.local.getManifest(bucket: "ma-data", key: "k") == nil)
        await cluster.close()
    }

    /// The corrupted layout of `theSendPathRefusesANodeOutsideThePolicy_evenIfALayoutNamesIt`:
    /// paris-1 first in every replica set of the `ma` map.
    static func layoutNamingParis() throws -> ClusterLayout {
        var layout = try TestCluster.plannedLayout()
        if var map = layout.maps["ma"] {
            map.replicas = map.replicas.map { ["paris-1"] + $0.dropFirst() }
            layout.maps["ma"] = map
        }
        return ClusterLayout(initial: layout)
    }

    @Test func everyReadPathAndReadRepairRefuseANodeOutsideThePolicy_evenIfALayoutNamesIt() async throws {
        let cluster = try TestCluster(layout: Self.layoutNamingParis())
        let (coordinator, bucket) = try await cluster.maBucket()
        let paris = try #require(cluster.replicas["paris-1"])
        let callsBefore = paris.calls.withLock { $0 }  // the catalog record
        // The Moroccan replicas hold the object (written to their stores directly).
        let m = Self.inline("k", 5, cluster.nextVersion())
        for node in cluster.manifestReplicas("k") where node != "paris-1" {
            _ = try await cluster.replicas[node]!.local.putManifest(m)
        }
        // Manifest reads, listings and the collector's version reads refuse before asking anyone.
        let refusals = [
            (
                "read",
                await agadirError { _ = try await coordinator.readManifest(key: "k", level: .one, bucket: bucket) }
            ),
            (
                "list",
                await agadirError {
                    _ = try await coordinator.list(
                        ListRequest(bucket: "ma-data", limit: 10), level: .one,
                        bucket: bucket)
                }
            ),
            ("versions", await agadirError { _ = try await coordinator.manifestHolders(key: "k", bucket: bucket) }),
        ]
        for (path, refused) in refusals {
            #expect(refused?.code == .internalError, "\(path): \(String(describing: refused))")
            #expect(refused?.message.contains("paris-1") == true, "\(path): \(String(describing: refused))")
        }
        // A chunk read skips paris-1 and asks the eligible replicas (none holds this chunk).
        let missing = try Self.chunk(Array("held nowhere".utf8))
        let chunkRead = await agadirError { _ = try await coordinator.readChunk(missing.id, bucket: bucket) }
        #expect(chunkRead != nil)
        #expect(chunkRead?.message.contains("not eligible") == true, "\(String(describing: chunkRead))")
        // Read repair of paris-1 (were it ever chosen) is refused too.
        await coordinator.repair("paris-1", with: m, bucket: bucket)
        #expect(coordinator.counters.readRepairFailures == 1)
        #expect(coordinator.counters.readRepairs == 0)
        #expect(paris.calls.withLock { $0 } == callsBefore, "paris-1 was asked")
        #expect(try await paris.local.getManifest(bucket: "ma-data", key: "k") == nil)
        await cluster.close()
    }

    @Test func duringALayoutChange_readsUseTheOldVersion_andWritesReachBothVersionsReplicas() async throws {
        let v1 = try TestCluster.plannedLayout(excluding: ["settat-2"])
        let (v2, report) = try Planner.plan(
            previous: v1,
            changes: StagedChanges(changes: [.assignNode(id: "settat-2", site: "settat", capacity: 1 << 40)]),
            appliedMillis: 2, bytesPerPartition: { _, _ in 0 })
        #expect(report.totalPartitionsMoved > 0)
        var layout = ClusterLayout(initial: v1)
        try layout.apply(v2, summary: "add settat-2")
        #expect(layout.live.map(\.version) == [1, 2])
        let cluster = try TestCluster(layout: layout)
        let (coordinator, bucket) = try await cluster.maBucket()
        // A key whose replicas differ between the two versions.
        let count = v2.partitionCount
        let key = try #require(
            (0..<500).map { "key-\($0)" }.first { k in
                let p = Partitioner.partition(bucket: "ma-data", key: k, count: count)
                return Set(v1.replicas(policy: "ma", partition: p)) != Set(v2.replicas(policy: "ma", partition: p))
            })
        let p = Partitioner.partition(bucket: "ma-data", key: key, count: count)
        let oldSet = v1.replicas(policy: "ma", partition: p)
        let newSet = v2.replicas(policy: "ma", partition: p)
        // Data written before the change lives on the old replicas only: still readable.
        let before = Self.inline(key, 5, cluster.nextVersion())
        for node in oldSet { _ = try await cluster.replicas[node]!.local.putManifest(before) }
        #expect(try await coordinator.liveManifest(key: key, level: .quorum, bucket: bucket).version == before.version)
        // A write during the change reaches the replicas of both versions.
        let during = Self.inline(key, 6, cluster.nextVersion())
        try await coordinator.writeManifest(during, level: .all, bucket: bucket)
        for node in Set(oldSet + newSet) {
            #expect(
                try await cluster.replicas[node]!.local.getManifest(bucket: "ma-data", key: key)?.version
                    == during.version, "\(node)")
        }
        // The level must hold in each version's set: a node of the old set only, down, fails ALL
        // although the new set is complete.
        let onlyOld = oldSet.filter { !newSet.contains($0) }
        if let gone = onlyOld.first {
            cluster.down.withLock { $0 = [gone] }
            let b = try await coordinator.resolve(bucket: "ma-data")
            let m = Self.inline(key, 7, cluster.nextVersion())
            let outcome = await agadirError { try await coordinator.writeManifest(m, level: .all, bucket: b) }
            #expect(outcome?.code == .notEnoughReplicas)
        }
        await cluster.close()
    }

    @Test func reads_askTheNearestReplicasFirst_andTheOthersOnlyWhenOneIsSlow() async throws {
        let cluster = try TestCluster()
        let (writer, bucket) = try await cluster.maBucket()
        let key = "speculative"
        let replicas = cluster.manifestReplicas(key)
        let m = Self.inline(key, 8, cluster.nextVersion())
        try await writer.writeManifest(m, level: .all, bucket: bucket)
        func calls(_ node: String) -> Int { cluster.replicas[node]?.calls.withLock { $0 } ?? -1 }
        let order = cluster.snapshot().byProximity(replicas)
        // A QUORUM read asks the two nearest; the third (held back 60 s here, so that it
        // cannot be asked by then) is not asked at all.
        let patient = Coordinator(context: cluster, logger: quiet, speculativeReadDelay: .seconds(60))
        let before = order.map(calls)
        #expect(try await patient.liveManifest(key: key, level: .quorum, bucket: bucket).version == m.version)
        let asked = zip(order.map(calls), before).map { $0 - $1 }
        #expect(asked == [1, 1, 0], "asked per replica, nearest first: \(asked)")
        // The nearest is slow (it stalls 20 s): the read asks the third after 50 ms and
        // completes through it, well within 10 s (without speculation it would wait 20 s).
        cluster.replicas[order[0]]?.stalled.withLock { $0 = true }
        let third = calls(order[2])
        let read = try await withTimeout(10) {
            try await writer.liveManifest(key: key, level: .quorum, bucket: bucket)
        }
        #expect(read.version == m.version)
        #expect(calls(order[2]) == third + 1, "the third replica was not asked")
        cluster.replicas[order[0]]?.stalled.withLock { $0 = false }
        await cluster.close()
    }

    @Test func aChunkTheReplicasHold_isClaimedNotSentAgain_andItsReferencesAreRecorded() async throws {
        let cluster = try TestCluster()
        let (coordinator, bucket) = try await cluster.maBucket()
        let data = randomBytes(200_000, seed: 42)
        let chunk = try Self.chunk(data)
        func puts() -> Int { cluster.replicas.values.reduce(0) { $0 + $1.chunkPuts.withLock { $0 } } }
        let first = ChunkReference(bucket: "ma-data", key: "one", version: cluster.nextVersion())
        try await coordinator.writeChunk(chunk, reference: first, level: .all, bucket: bucket)
        #expect(puts() == 3)
        let second = ChunkReference(bucket: "ma-data", key: "two", version: cluster.nextVersion())
        try await coordinator.writeChunk(chunk, reference: second, level: .all, bucket: bucket)
        #expect(puts() == 3, "the bytes were sent again although every replica held them")
        let layout = cluster.layout.current
        for node in layout.replicas(
            policy: "ma", partition: Partitioner.partition(of: chunk.id, count: layout.partitionCount))
        {
            let inventory = try await cluster.stores[node]!.chunkInventory(after: nil, limit: 100)
            #expect(inventory.first { $0.id == chunk.id }?.buckets == ["ma-data"], "\(node)")
        }
        await cluster.close()
    }
}
