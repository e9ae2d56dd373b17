import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirTestSupport
import AgadirWire
import Testing

@testable import AgadirCluster

/// Issue 17, "Untested decisions": the two guards whose regression would lose or resurrect
/// data, on real stores in process. The tombstone purge of anti-entropy waits for every
/// replica (else a deleted object comes back from the one that missed the delete); the
/// rebalance drops what a node no longer owns only after the new replicas confirmed their
/// copy (else the only copies go).
@Suite struct PurgeAndDropGuardTests {
    // MARK: Tombstone purge

    @Test(
        "an old delete marker is not purged while a replica is down or does not answer, and is once every replica agreed"
    )
    func tombstonePurge_waitsForEveryReplica() async throws {
        let cluster = try TestCluster()
        _ = try await cluster.maBucket()
        let layout = cluster.layout.current
        let me = cluster.me
        let key = try #require((0..<10_000).map { "gone-\($0)" }.first { cluster.manifestReplicas($0).contains(me) })
        let replicas = cluster.manifestReplicas(key)
        let others = replicas.filter { $0 != me }
        try #require(others.count == 2)
        let partition = Partitioner.partition(bucket: "ma-data", key: key, count: layout.partitionCount)
        // A delete marker older than the grace, on every replica (the delete reached them all).
        let marker = ObjectManifest.tombstone(bucket: "ma-data", key: key, version: cluster.nextVersion())
        for node in replicas { _ = try await #require(cluster.stores[node]).putReplicaManifest(marker) }
        let local = try #require(cluster.replicas[me]).local
        func pass() async throws -> (PartitionRepair.Outcome, Set<String>) {
            let repair = PartitionRepair(
                local: local, me: me, site: cluster.site(of: me), snapshot: cluster.snapshot(),
                replica: { cluster.replica($0) }, horizon: WallMillis.now(), pace: { _, _ in })
            var unreachable: Set<String> = []
            let outcome = try await repair.run(
                policy: "ma", partition: partition, layout: layout, unreachable: &unreachable
            ) { _ in }
            return (outcome, unreachable)
        }
        func markerHeld() async throws -> Bool {
            try await #require(cluster.stores[me]).manifest(bucket: "ma-data", key: key)?.isTombstone == true
        }

        // One replica down (gossip says so): kept, the partition counted incomplete.
        cluster.down.withLock { $0 = [others[0]] }
        let (down, unreachableDown) = try await pass()
        #expect(down == PartitionRepair.Outcome(repaired: false, incomplete: true, purged: 0))
        #expect(unreachableDown == [others[0]])
        #expect(try await markerHeld(), "purged while \(others[0]) was down")

        // Alive by gossip but its digest request fails: kept too.
        cluster.down.withLock { $0 = [] }
        try #require(cluster.replicas[others[1]]).failing.withLock { $0 = true }
        let (silent, unreachableSilent) = try await pass()
        #expect(silent.purged == 0 && unreachableSilent == [others[1]])
        #expect(try await markerHeld(), "purged while \(others[1]) did not answer")

        // Every replica compared and equal: purged here (each replica purges its own).
        try #require(cluster.replicas[others[1]]).failing.withLock { $0 = false }
        let (agreed, unreachableNone) = try await pass()
        #expect(agreed == PartitionRepair.Outcome(repaired: false, incomplete: false, purged: 1))
        #expect(unreachableNone.isEmpty)
        #expect(try await !markerHeld())
        for node in others {
            #expect(try await #require(cluster.stores[node]).manifest(bucket: "ma-data", key: key) != nil)
        }
        await cluster.close()
    }

    // MARK: Rebalance drop

    @Test(
        "a node that left partitions drops nothing until every new replica confirmed its copy, then exactly what it no longer owns"
    )
    func rebalanceDrop_waitsForTheNewReplicasToConfirm() async throws {
        let fixture = try await GrowthFixture(objects: 120)
        let cluster = fixture.cluster
        let newcomer = GrowthFixture.newcomer
        _ = try await fixture.copyAll(pageSize: 50) { cluster.replicas[$0]! }
        let before = try await holdings(cluster)
        let v2 = fixture.v2
        let storage = Set(v2.maps.values.flatMap { $0.replicas.flatMap { $0 } }).sorted()
        #expect(storage.contains(newcomer))

        // Every storage node of version 2 but the newcomer confirmed (the newcomer did not
        // answer): the older version stays live, and nothing is dropped anywhere.
        var synced = Dictionary(uniqueKeysWithValues: storage.filter { $0 != newcomer }.map { ($0, v2.version) })
        let behind = RebalanceDecisions.notYetSynced(storage, synced: synced, version: v2.version)
        #expect(behind == [newcomer])
        var layout = cluster.layout
        if behind.isEmpty { layout.retire(olderThan: v2.version) }
        for node in storage {
            let tally = try await Ownership.misplaced(
                store: try #require(cluster.stores[node]), layout: layout, nodeID: node, drop: true,
                chunkReferencesBefore: .max)
            #expect(tally.manifests == 0 && tally.chunks == 0 && tally.chunksDropped == 0, "\(node): \(tally)")
        }
        #expect(try await holdings(cluster) == before, "data dropped before the newcomer confirmed its copy")

        // The newcomer confirms: version 1 retires, and each node drops what version 2 does
        // not name it for; every object is then held exactly by its version-2 replicas.
        synced[newcomer] = v2.version
        #expect(RebalanceDecisions.notYetSynced(storage, synced: synced, version: v2.version).isEmpty)
        layout.retire(olderThan: v2.version)
        var dropped = 0
        for node in storage {
            let tally = try await Ownership.misplaced(
                store: try #require(cluster.stores[node]), layout: layout, nodeID: node, drop: true,
                chunkReferencesBefore: .max)
            #expect(tally.complete, "\(node): \(tally)")
            dropped += tally.manifests + tally.chunksDropped
        }
        #expect(dropped > 0)
        let after = try await holdings(cluster)
        let n = v2.partitionCount
        for (key, object) in fixture.objects {
            let policy = object.bucket == "world" ? "global" : "ma"
            let expected = Set(
                v2.replicas(policy: policy, partition: Partitioner.partition(bucket: object.bucket, key: key, count: n))
            )
            #expect(after.manifests["\(object.bucket)/\(key)"] == expected, "\(key)")
            for ref in object.manifest.chunkRefs {
                let owners = Set(v2.replicas(policy: policy, partition: Partitioner.partition(of: ref.id, count: n)))
                #expect(after.chunks[ref.id] == owners, "chunk \(ref.id.hex) of \(key)")
            }
        }
        await cluster.close()
    }

    /// Which nodes hold each manifest (`bucket/key`) and each chunk.
    func holdings(_ cluster: TestCluster) async throws -> Holdings {
        var out = Holdings()
        for (node, store) in cluster.stores {
            for m in try await store.manifestInventory(after: nil, limit: 10_000) {
                out.manifests["\(m.bucket)/\(m.key)", default: []].insert(node)
            }
            for c in try await store.chunkInventory(after: nil, limit: 10_000) {
                out.chunks[c.id, default: []].insert(node)
            }
        }
        return out
    }

    struct Holdings: Equatable {
        var manifests: [String: Set<String>] = [:]
        var chunks: [ChunkID: Set<String>] = [:]
    }
}
