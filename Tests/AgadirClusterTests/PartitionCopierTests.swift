import AgadirCluster
import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirTestSupport
import AgadirWire
import Synchronization
import Testing

/// A replica that answers chunk reads with one byte flipped: a source gone bad.
struct CorruptingReplica: ReplicaClient {
    let inner: LocalReplica
    var nodeID: String { inner.nodeID }
    func claimChunks(_ ids: [ChunkID], reference: ChunkReference) async throws(AgadirError) -> [Bool] {
        try await inner.claimChunks(ids, reference: reference)
    }
    func putChunk(_ chunk: EncodedChunk, reference: ChunkReference) async throws(AgadirError) {
        try await inner.putChunk(chunk, reference: reference)
    }
    func getChunk(_ id: ChunkID, bucket: String) async throws(AgadirError) -> EncodedChunk {
        var c = try await inner.getChunk(id, bucket: bucket)
        if !c.stored.isEmpty { c.stored[c.stored.count / 2] ^= 0x40 }
        c.checksum = Checksum.crc32(c.stored)
        return c
    }
    func putManifest(_ manifest: ObjectManifest) async throws(AgadirError) -> (applied: Bool, stored: ObjectVersion) {
        try await inner.putManifest(manifest)
    }
    func getManifest(bucket: String, key: String) async throws(AgadirError) -> ObjectManifest? {
        try await inner.getManifest(bucket: bucket, key: key)
    }
    func list(bucket: String, prefix: String, startAfter: String?, limit: Int) async throws(AgadirError)
        -> [ReplicaListEntry]
    {
        try await inner.list(bucket: bucket, prefix: prefix, startAfter: startAfter, limit: limit)
    }
    func putHint(target: String, bucket: String, hint: Hint) async throws(AgadirError) {
        try await inner.putHint(target: target, bucket: bucket, hint: hint)
    }
    func mergeCatalog(_ records: [BucketRecord]) async throws(AgadirError) { try await inner.mergeCatalog(records) }
    func catalog() async throws(AgadirError) -> [BucketRecord] { try await inner.catalog() }
    func mergeAccessKeys(_ records: [AccessKeyRecord]) async throws(AgadirError) {
        try await inner.mergeAccessKeys(records)
    }
    func accessKeys() async throws(AgadirError) -> [AccessKeyRecord] { try await inner.accessKeys() }
    func partitionManifests(
        policy: String, partition: Int, partitionCount: Int, after: ManifestCursor?, limit: Int
    ) async throws(AgadirError) -> ManifestPage {
        try await inner.partitionManifests(
            policy: policy, partition: partition, partitionCount: partitionCount, after: after, limit: limit)
    }
    func partitionChunks(
        policy: String, partition: Int, partitionCount: Int, after: ChunkID?, limit: Int
    ) async throws(AgadirError) -> ChunkPage {
        try await inner.partitionChunks(
            policy: policy, partition: partition, partitionCount: partitionCount, after: after, limit: limit)
    }
    func partitionDigest(
        policy: String, partition: Int, partitionCount: Int, tombstonesBefore: UInt64
    ) async throws(AgadirError) -> PartitionSummary {
        try await inner.partitionDigest(
            policy: policy, partition: partition, partitionCount: partitionCount, tombstonesBefore: tombstonesBefore)
    }
}

/// Eight real stores with layout versions 1 (settat-2 not assigned) and 2 (settat-2 added)
/// live, and objects of bucket `ma-data` (policy ma) and `world` (policy global) written to
/// their version-1 replicas only, as they were before the change.
struct GrowthFixture {
    let cluster: TestCluster
    let v1: Layout
    let v2: Layout
    /// key → (bucket, bytes, manifest)
    var objects: [String: (bucket: String, data: [UInt8], manifest: ObjectManifest)] = [:]

    static let newcomer = "settat-2"

    init(objects count: Int, name: String = #function) async throws {
        v1 = try TestCluster.plannedLayout(excluding: [Self.newcomer])
        v2 = try Planner.plan(
            previous: v1,
            changes: StagedChanges(changes: [.assignNode(id: Self.newcomer, site: "settat", capacity: 1 << 40)]),
            appliedMillis: 2, bytesPerPartition: { _, _ in 0 }
        ).layout
        var layout = ClusterLayout(initial: v1)
        try layout.apply(v2, summary: "add settat-2")
        cluster = try TestCluster(layout: layout, name: name)
        let coordinator = Coordinator(context: cluster, logger: quiet)
        _ = try await coordinator.createBucket("ma-data", policy: "ma")
        _ = try await coordinator.createBucket("world", policy: "global")
        let n = v1.partitionCount
        var rng = SplitMix64(seed: 77)
        for i in 0..<count {
            let bucket = i % 4 == 3 ? "world" : "ma-data"
            let key = "object-\(i)"
            let version = cluster.nextVersion()
            let data = rng.bytes(i % 5 == 0 ? 40 : 300 + Int(rng.next() % 3000))
            let manifest: ObjectManifest
            if data.count <= 64 {
                manifest = ObjectManifest(
                    bucket: bucket, key: key, size: UInt64(data.count), etag: ChunkID.of(data), contentType: "x",
                    userMetadata: [],
                    version: version, isTombstone: false, body: .inline(data))
            } else {
                // Two chunks per object, each placed by its own id.
                let halves = [Array(data.prefix(data.count / 2)), Array(data.dropFirst(data.count / 2))]
                var refs: [ChunkRef] = []
                for half in halves {
                    let chunk = try CoordinatorTests.chunk(half)
                    let policy = bucket == "world" ? "global" : "ma"
                    let holders = v1.replicas(policy: policy, partition: Partitioner.partition(of: chunk.id, count: n))
                    for node in holders {
                        try await #require(cluster.stores[node]).putChunk(
                            chunk, reference: ChunkReference(bucket: bucket, key: key, version: version))
                    }
                    refs.append(ChunkRef(id: chunk.id, length: UInt32(half.count)))
                }
                manifest = ObjectManifest(
                    bucket: bucket, key: key, size: UInt64(data.count), etag: ChunkID.of(data), contentType: "x",
                    userMetadata: [],
                    version: version, isTombstone: i % 11 == 7, body: .chunks(refs))
            }
            let policy = bucket == "world" ? "global" : "ma"
            for node in v1.replicas(
                policy: policy, partition: Partitioner.partition(bucket: bucket, key: key, count: n))
            {
                _ = try await #require(cluster.stores[node]).putReplicaManifest(manifest)
            }
            objects[key] = (bucket, data, manifest)
        }
    }

    /// Copies every partition the newcomer gains from every source, `pageSize` at a time;
    /// `stopAfterPages` stops early (a crash) and returns the cursors reached.
    func copyAll(pageSize: Int, replica: (String) -> any ReplicaClient) async throws -> CopyTally {
        let plan = TransferPlanner.plan(layout: cluster.layout, node: Self.newcomer)
        var copier = PartitionCopier(
            local: try #require(cluster.replicas[Self.newcomer]).local, partitionCount: v2.partitionCount)
        copier.pageSize = pageSize
        var tally = CopyTally()
        for t in plan.receive {
            for source in t.sources {
                var after: ManifestCursor? = nil
                for _ in 0..<10_000 {
                    let (next, moved) = try await copier.copyManifests(
                        policy: t.policy, partition: t.partition, from: replica(source), after: after,
                        throttle: { _ in })
                    tally.add(moved)
                    guard let next else { break }
                    after = next
                }
                var afterChunk: ChunkID? = nil
                for _ in 0..<10_000 {
                    let (next, moved) = try await copier.copyChunks(
                        policy: t.policy, partition: t.partition, from: replica(source), after: afterChunk,
                        throttle: { _ in })
                    tally.add(moved)
                    guard let next else { break }
                    afterChunk = next
                }
            }
        }
        return tally
    }

    /// Checks that the newcomer holds exactly what version 2 names it for: every manifest
    /// and chunk of its partitions (chunks readable and with their references), nothing else.
    func expectNewcomerHoldsExactlyItsPartitions() async throws {
        let store = try #require(cluster.stores[Self.newcomer])
        let n = v2.partitionCount
        for (key, object) in objects {
            let policy = object.bucket == "world" ? "global" : "ma"
            let owns = v2.replicas(
                policy: policy, partition: Partitioner.partition(bucket: object.bucket, key: key, count: n)
            )
            .contains(Self.newcomer)
            let held = try await store.manifest(bucket: object.bucket, key: key)
            #expect(owns == (held != nil), "\(object.bucket)/\(key): owns \(owns), holds \(held != nil)")
            if let held { #expect(held == object.manifest) }
            for ref in object.manifest.chunkRefs {
                let ownsChunk = v2.replicas(policy: policy, partition: Partitioner.partition(of: ref.id, count: n))
                    .contains(Self.newcomer)
                let isHeld = try await store.containsChunks([ref.id]) == [true]
                #expect(ownsChunk == isHeld, "chunk \(ref.id.hex) of \(key)")
                if isHeld {
                    #expect(ChunkID.of(try await store.readChunk(ref.id)) == ref.id)
                }
            }
        }
    }
}

@Suite struct PartitionCopierTests {
    @Test("a node that gains partitions copies exactly their manifests and chunks, with references, page by page")
    func copiesExactlyTheGainedPartitions() async throws {
        let fixture = try await GrowthFixture(objects: 160)
        let plan = TransferPlanner.plan(layout: fixture.cluster.layout, node: GrowthFixture.newcomer)
        #expect(!plan.receive.isEmpty)
        let tally = try await fixture.copyAll(pageSize: 7) { fixture.cluster.replicas[$0]! }
        #expect(tally.manifests > 0 && tally.chunks > 0)
        try await fixture.expectNewcomerHoldsExactlyItsPartitions()
        // Each chunk was fetched once although several sources list it; the others only
        // gave their references.
        let store = fixture.cluster.stores[GrowthFixture.newcomer]!
        let stats = try await store.stats()
        #expect(stats.chunks == tally.chunks)
        #expect(tally.chunksAlreadyHeld > 0)
        // The references came along: the newcomer's chunks name their objects.
        for (key, object) in fixture.objects {
            for ref in object.manifest.chunkRefs where try await store.containsChunks([ref.id]) == [true] {
                let (lo, hi) = Partitioner.chunkRange(
                    partition: Partitioner.partition(of: ref.id, count: fixture.v2.partitionCount),
                    count: fixture.v2.partitionCount)
                let listed = try await store.partitionChunks(w0From: lo, below: hi, after: nil, limit: 10_000).first {
                    $0.id == ref.id
                }
                #expect(listed?.references.contains { $0.key == key && $0.bucket == object.bucket } == true, "\(key)")
            }
        }
        // Copying again moves nothing new: manifests are idempotent, chunks already held.
        let again = try await fixture.copyAll(pageSize: 50) { fixture.cluster.replicas[$0]! }
        #expect(again.chunks == 0)
        #expect(try await store.stats().chunks == stats.chunks)
        await fixture.cluster.close()
    }

    @Test("a source's pages hold only its policy's buckets and only the partition asked")
    func pagesAreRestrictedToPolicyAndPartition() async throws {
        let fixture = try await GrowthFixture(objects: 120)
        let n = fixture.v1.partitionCount
        let source = fixture.cluster.replicas["benguerir-1"]!.local
        var seen = 0
        for partition in 0..<n {
            let page = try await source.partitionManifests(
                policy: "ma", partition: partition, partitionCount: n, after: nil, limit: 1000)
            #expect(page.next == nil)
            for m in page.manifests {
                #expect(m.bucket == "ma-data")
                #expect(Partitioner.partition(bucket: m.bucket, key: m.key, count: n) == partition)
                seen += 1
            }
            let chunks = try await source.partitionChunks(
                policy: "global", partition: partition, partitionCount: n, after: nil, limit: 1000)
            for c in chunks.chunks {
                #expect(c.references.allSatisfy { $0.bucket == "world" })
                #expect(Partitioner.partition(of: c.id, count: n) == partition)
            }
        }
        let held = try await source.store.manifestInventory(after: nil, limit: 10_000).filter { $0.bucket == "ma-data" }
            .count
        #expect(seen == held)
        await #expect(throws: AgadirError.self) {
            try await source.partitionManifests(policy: "ma", partition: n, partitionCount: n, after: nil, limit: 10)
        }
        await fixture.cluster.close()
    }

    @Test("a chunk that does not match its id is refused and nothing of it is stored")
    func corruptChunksAreRefused() async throws {
        let fixture = try await GrowthFixture(objects: 40)
        let outcome = await agadirError {
            _ = try await fixture.copyAll(pageSize: 100) {
                CorruptingReplica(inner: fixture.cluster.replicas[$0]!.local)
            }
        }
        #expect(outcome?.code == .corruptChunk)
        #expect(try await fixture.cluster.stores[GrowthFixture.newcomer]!.stats().chunks == 0)
        await fixture.cluster.close()
    }

    @Test("a copy stopped part-way resumes from its cursor and ends with the same data")
    func resumesFromACursor() async throws {
        let fixture = try await GrowthFixture(objects: 120)
        let plan = TransferPlanner.plan(layout: fixture.cluster.layout, node: GrowthFixture.newcomer)
        let t = try #require(plan.receive.first { !$0.sources.isEmpty })
        let source = fixture.cluster.replicas[t.sources[0]]!
        var copier = PartitionCopier(
            local: fixture.cluster.replicas[GrowthFixture.newcomer]!.local, partitionCount: fixture.v2.partitionCount)
        copier.pageSize = 1
        // One page, then "crash": a new copier continues from the saved cursor.
        let (cursor, _) = try await copier.copyManifests(
            policy: t.policy, partition: t.partition, from: source, after: nil, throttle: { _ in })
        let resumed = PartitionCopier(
            local: fixture.cluster.replicas[GrowthFixture.newcomer]!.local, partitionCount: fixture.v2.partitionCount)
        var after = cursor
        var pages = 0
        while let a = after, pages < 1000 {
            after = try await resumed.copyManifests(
                policy: t.policy, partition: t.partition, from: source, after: a, throttle: { _ in }
            ).next
            pages += 1
        }
        let expected = try await source.partitionManifests(
            policy: t.policy, partition: t.partition, partitionCount: fixture.v2.partitionCount, after: nil, limit: 1000
        )
        let store = fixture.cluster.stores[GrowthFixture.newcomer]!
        for m in expected.manifests { #expect(try await store.manifest(bucket: m.bucket, key: m.key) == m) }
        await fixture.cluster.close()
    }

    @Test("the throttle is told the bytes of every page and every fetched chunk")
    func throttleSeesEveryByte() async throws {
        let fixture = try await GrowthFixture(objects: 60)
        let told = Mutex<UInt64>(0)
        let plan = TransferPlanner.plan(layout: fixture.cluster.layout, node: GrowthFixture.newcomer)
        let copier = PartitionCopier(
            local: fixture.cluster.replicas[GrowthFixture.newcomer]!.local, partitionCount: fixture.v2.partitionCount)
        var tally = CopyTally()
        for t in plan.receive {
            let source = fixture.cluster.replicas[t.sources[0]]!
            let m = try await copier.copyManifests(policy: t.policy, partition: t.partition, from: source, after: nil) {
                n in told.withLock { $0 += n }
            }
            let c = try await copier.copyChunks(policy: t.policy, partition: t.partition, from: source, after: nil) {
                n in told.withLock { $0 += n }
            }
            tally.add(m.tally)
            tally.add(c.tally)
        }
        #expect(tally.bytes > 0)
        #expect(told.withLock { $0 } == tally.bytes)
        await fixture.cluster.close()
    }
}

@Suite struct PartitionDigestServiceTests {
    @Test(
        "replicas with the same data have the same digests; a missing or older manifest, or a missing chunk, changes them; old delete markers are left out"
    )
    func digestsTellReplicasApart() async throws {
        let fixture = try await GrowthFixture(objects: 80)
        let n = fixture.v1.partitionCount
        let far = UInt64(1) << 60  // every marker counts as old
        // Find a partition of policy ma with data, and two of its version-1 replicas.
        let object = try #require(
            fixture.objects.first { $0.value.bucket == "ma-data" && !$0.value.manifest.isTombstone })
        let partition = Partitioner.partition(bucket: "ma-data", key: object.key, count: n)
        let holders = fixture.v1.replicas(policy: "ma", partition: partition)
        let a = fixture.cluster.replicas[holders[0]]!.local
        let b = fixture.cluster.replicas[holders[1]]!.local
        let da = try await a.partitionDigest(policy: "ma", partition: partition, partitionCount: n, tombstonesBefore: 0)
        let db = try await b.partitionDigest(policy: "ma", partition: partition, partitionCount: n, tombstonesBefore: 0)
        #expect(da == db)
        #expect(da.manifestCount > 0)
        // A newer version on one replica: the manifest digests differ, the chunk digests do not.
        var newer = object.value.manifest
        newer.version = fixture.cluster.nextVersion()
        _ = try await b.store.putReplicaManifest(newer)
        let db2 = try await b.partitionDigest(
            policy: "ma", partition: partition, partitionCount: n, tombstonesBefore: 0)
        #expect(db2.manifests != da.manifests && db2.chunks == db.chunks)
        // A delete marker newer than the horizon counts; once old, it is left out.
        let marker = ObjectManifest.tombstone(
            bucket: "ma-data", key: object.key, version: fixture.cluster.nextVersion())
        _ = try await b.store.putReplicaManifest(marker)
        let recent = try await b.partitionDigest(
            policy: "ma", partition: partition, partitionCount: n, tombstonesBefore: 0)
        let old = try await b.partitionDigest(
            policy: "ma", partition: partition, partitionCount: n, tombstonesBefore: far)
        #expect(recent.manifestCount > old.manifestCount && recent.manifests != old.manifests)
        // Another policy's digest of the same partition does not see ma's data.
        let global = try await a.partitionDigest(
            policy: "global", partition: partition, partitionCount: n, tombstonesBefore: 0)
        #expect(global.manifests != da.manifests || da.manifestCount == 0)
        await fixture.cluster.close()
    }

    @Test(
        "a copy with a purge horizon brings an old delete marker only to a replica that holds an older version of the key"
    )
    func oldMarkersAreNotCopiedBackWherePurged() async throws {
        let fixture = try await GrowthFixture(objects: 30)
        let n = fixture.v1.partitionCount
        let object = try #require(
            fixture.objects.first { $0.value.bucket == "ma-data" && !$0.value.manifest.isTombstone })
        let partition = Partitioner.partition(bucket: "ma-data", key: object.key, count: n)
        let holders = fixture.v1.replicas(policy: "ma", partition: partition)
        let source = fixture.cluster.replicas[holders[0]]!
        // An old marker of the object on the source, and a marker of a key nobody else has.
        let stamp = HLCTimestamp(physicalMillis: 1000, logical: 0)
        let objectMarker = ObjectManifest.tombstone(
            bucket: "ma-data", key: object.key,
            version: ObjectVersion(timestamp: HLCTimestamp(physicalMillis: 4_000_000_000_000, logical: 0), node: 1))
        _ = try await source.local.store.putReplicaManifest(objectMarker)
        let lonelyKey = try #require(
            (0..<5000).map { "lonely-\($0)" }.first {
                Partitioner.partition(bucket: "ma-data", key: $0, count: n) == partition
            })
        _ = try await source.local.store.putReplicaManifest(
            ObjectManifest.tombstone(
                bucket: "ma-data", key: lonelyKey, version: ObjectVersion(timestamp: stamp, node: 1)))
        // The newcomer (settat-2) holds the object's older version but not the lonely key.
        let target = fixture.cluster.replicas[GrowthFixture.newcomer]!.local
        _ = try await target.store.putReplicaManifest(object.value.manifest)
        let copier = PartitionCopier(local: target, partitionCount: n)
        var after: ManifestCursor? = nil
        for _ in 0..<1000 {
            let (next, _) = try await copier.copyManifests(
                policy: "ma", partition: partition, from: source, after: after, tombstonesBefore: UInt64(1) << 60,
                throttle: { _ in })
            guard let next else { break }
            after = next
        }
        #expect(try await target.getManifest(bucket: "ma-data", key: object.key)?.isTombstone == true)
        #expect(try await target.getManifest(bucket: "ma-data", key: lonelyKey) == nil)
        await fixture.cluster.close()
    }
}
