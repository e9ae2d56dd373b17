import AgadirCore
import AgadirPlacement
import AgadirTestSupport
import Testing

/// Six nodes on three Moroccan sites, policy `ma` (RF 3, country=MA, 2 sites at least), 64 partitions.
private func sixNodes() throws -> Layout {
    var changes: [LayoutChange] = []
    for site in ["benguerir", "casablanca", "settat"] {
        changes.append(.setSiteLabels(site: site, labels: ["country": "MA"]))
        for i in 1...2 { changes.append(.assignNode(id: "\(site)-\(i)", site: site, capacity: terabyte)) }
    }
    changes.append(
        .addPolicy(
            Policy(
                name: "ma", replicationFactor: 3, selector: SiteSelector(labels: ["country": "MA"]), minSites: 2,
                readConsistency: .quorum, writeConsistency: .quorum, codec: .lz4)))
    return try Planner.plan(
        previous: .empty(partitionCount: 64), changes: StagedChanges(changes: changes), appliedMillis: 1,
        bytesPerPartition: { _, _ in 0 }
    ).layout
}

private func next(_ layout: Layout, _ change: LayoutChange) throws -> Layout {
    try Planner.plan(
        previous: layout, changes: StagedChanges(changes: [change]), appliedMillis: 2, bytesPerPartition: { _, _ in 0 }
    ).layout
}

@Suite("Drain and remove, and under-replication: pure")
struct DecommissionTests {
    @Test("draining (capacity 0) moves every replica of the node away; the node stays in the layout as a gateway")
    func drain_capacityZero_plansTheNodeOutOfEveryReplicaSet() throws {
        let v1 = try sixNodes()
        let v2 = try next(v1, .assignNode(id: "casablanca-2", site: "casablanca", capacity: 0))
        #expect(v2.node("casablanca-2")?.capacity == 0)
        for (name, map) in v2.maps {
            #expect(map.replicas.allSatisfy { !$0.contains("casablanca-2") }, "policy \(name)")
            #expect(map.replicas.allSatisfy { $0.count == 3 }, "policy \(name) keeps RF 3 on five storage nodes")
        }
        #expect(v1.maps.values.contains { $0.replicas.contains { $0.contains("casablanca-2") } })
    }

    @Test(
        "remove is refused while the node is in a replica set of any live version, allowed once the old version retires"
    )
    func checkRemovable_refusedWhileInALiveReplicaSet() throws {
        let v1 = try sixNodes()
        var cluster = ClusterLayout(initial: v1)
        #expect(cluster.versionsWithReplicas(on: "casablanca-2") == [1])
        let refused = expectError(.nodeNotDrained) { () throws(AgadirError) in
            try cluster.checkRemovable("casablanca-2")
        }
        #expect(refused?.message.contains("drain it first") == true)
        #expect(refused?.message.contains("rebalance status") == true)

        // Drained: version 2 names it nowhere, but version 1 is live until the rebalance retires it.
        try cluster.apply(
            try next(v1, .assignNode(id: "casablanca-2", site: "casablanca", capacity: 0)), summary: "drain")
        #expect(cluster.live.map(\.version) == [1, 2])
        #expect(cluster.versionsWithReplicas(on: "casablanca-2") == [1])
        expectError(.nodeNotDrained) { () throws(AgadirError) in try cluster.checkRemovable("casablanca-2") }

        cluster.retire(olderThan: 2)
        #expect(cluster.versionsWithReplicas(on: "casablanca-2").isEmpty)
        try cluster.checkRemovable("casablanca-2")
        // Removing a gateway moves nothing: the version replaces the current one.
        let v3 = try next(cluster.current, .removeNode(id: "casablanca-2"))
        #expect(v3.maps == cluster.current.maps)
        try cluster.apply(v3, summary: "remove")
        #expect(cluster.live.map(\.version) == [3])
        #expect(cluster.current.node("casablanca-2") == nil)
    }

    @Test("a node no version names (never given partitions) may be removed at once")
    func checkRemovable_nodeInNoReplicaSet_isAllowed() throws {
        let v1 = try next(try sixNodes(), .assignNode(id: "gateway-1", site: "casablanca", capacity: 0))
        let cluster = ClusterLayout(initial: v1)
        try cluster.checkRemovable("gateway-1")
        try cluster.checkRemovable("not-a-node")
    }

    @Test("under-replication counts, per policy, the partitions with a replica not alive, below quorum and unavailable")
    func underReplicated_countsPartitionsWithAReplicaDown() throws {
        let v1 = try sixNodes()
        let all = Set(v1.nodes.map(\.id))
        #expect(ReplicaHealth.underReplicated(v1, alive: all).isEmpty)

        let ma = try #require(v1.maps["ma"])
        let oneDown = ReplicaHealth.underReplicated(v1, alive: all.subtracting(["settat-1"]))
        let maOne = try #require(oneDown.first { $0.policy == "ma" })
        #expect(maOne.partitions == ma.replicas.count { $0.contains("settat-1") })
        #expect(maOne.partitions > 0)
        #expect(maOne.belowQuorum == 0 && maOne.unavailable == 0)
        #expect(maOne.nodesDown == ["settat-1"])
        #expect(maOne.replicationFactor == 3)
        #expect(oneDown.map(\.policy) == oneDown.map(\.policy).sorted())

        let twoDown: Set<String> = ["settat-1", "settat-2"]
        let maTwo = try #require(
            ReplicaHealth.underReplicated(v1, alive: all.subtracting(twoDown)).first { $0.policy == "ma" })
        #expect(maTwo.partitions == ma.replicas.count { !Set($0).isDisjoint(with: twoDown) })
        #expect(maTwo.belowQuorum == ma.replicas.count { Set($0).intersection(twoDown).count >= 2 })
        #expect(maTwo.unavailable == 0)

        let none = ReplicaHealth.underReplicated(v1, alive: [])
        let maNone = try #require(none.first { $0.policy == "ma" })
        #expect(maNone.partitions == 64 && maNone.belowQuorum == 64 && maNone.unavailable == 64)
        #expect(maNone.nodesDown == Set(ma.replicas.flatMap { $0 }).sorted())
    }
}
