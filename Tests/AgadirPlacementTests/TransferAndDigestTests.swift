import AgadirCore
import AgadirPlacement
import AgadirTestSupport
import Testing

private func threeSiteLayout(extra: Bool) throws -> (Layout, Layout) {
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
    let v1 = try Planner.plan(
        previous: .empty(partitionCount: 64), changes: StagedChanges(changes: changes), appliedMillis: 1,
        bytesPerPartition: { _, _ in 0 }
    ).layout
    var next: [LayoutChange] = [.assignNode(id: "settat-3", site: "settat", capacity: terabyte)]
    if extra {
        next.append(
            .addPolicy(
                Policy(
                    name: "later", replicationFactor: 2, selector: .any, minSites: 1, readConsistency: .quorum,
                    writeConsistency: .quorum, codec: .lz4)))
    }
    let v2 = try Planner.plan(
        previous: v1, changes: StagedChanges(changes: next), appliedMillis: 2, bytesPerPartition: { _, _ in 0 }
    ).layout
    return (v1, v2)
}

@Test func transferPlan_receivesWhatTheNewestVersionAdds_andDropsWhatItTakesAway() throws {
    let (v1, v2) = try threeSiteLayout(extra: true)
    var cluster = ClusterLayout(initial: v1)
    try cluster.apply(v2, summary: "grow")
    #expect(cluster.live.count == 2)
    var received = 0
    var dropped = 0
    for node in v2.nodes.map(\.id) {
        let plan = TransferPlanner.plan(layout: cluster, node: node)
        #expect(plan.version == 2)
        for t in plan.receive {
            #expect(t.policy != "later", "a policy new in the newest version has nothing to receive")
            #expect(v2.replicas(policy: t.policy, partition: t.partition).contains(node))
            #expect(!v1.replicas(policy: t.policy, partition: t.partition).contains(node))
            #expect(Set(t.sources) == Set(v1.replicas(policy: t.policy, partition: t.partition)))
            // Same site first.
            let mySite = v2.node(node)?.site
            if let firstOther = t.sources.firstIndex(where: { v1.node($0)?.site != mySite }) {
                #expect(t.sources[firstOther...].allSatisfy { v1.node($0)?.site != mySite })
            }
        }
        for t in plan.drop {
            #expect(v1.replicas(policy: t.policy, partition: t.partition).contains(node))
            #expect(!v2.replicas(policy: t.policy, partition: t.partition).contains(node))
            #expect(t.sources.isEmpty)
        }
        received += plan.receive.count
        dropped += plan.drop.count
        #expect(plan == TransferPlanner.plan(layout: cluster, node: node), "deterministic")
    }
    // Every replica slot that moved is received by one node and dropped by another.
    var moved = 0
    for policy in v1.maps.keys {
        for p in 0..<v2.partitionCount {
            moved +=
                Set(v2.replicas(policy: policy, partition: p)).subtracting(v1.replicas(policy: policy, partition: p))
                .count
        }
    }
    #expect(received == moved && dropped == moved && moved > 0)
    // The new node receives and drops nothing it did not have.
    #expect(TransferPlanner.plan(layout: cluster, node: "settat-3").drop.isEmpty)
    // Once version 1 retires there is nothing left to move.
    cluster.retire(olderThan: 2)
    for node in v2.nodes.map(\.id) { #expect(TransferPlanner.plan(layout: cluster, node: node).isEmpty) }
}

@Test func partitionDigest_isOrderFree_andPointsAtTheDifferingBucket() {
    var rng = SplitMix64(seed: 9)
    var entries: [ManifestSummary] = []
    for i in 0..<500 {
        entries.append(
            ManifestSummary(
                bucket: i % 3 == 0 ? "alpha" : "beta", key: "key-\(i)",
                version: ObjectVersion(timestamp: HLCTimestamp(rawValue: UInt64(i) * 7 + 1), node: UInt64(i % 5)),
                isTombstone: i % 11 == 0))
    }
    let digest = PartitionDigest(entries)
    #expect(digest.count == 500)
    #expect(PartitionDigest(entries.shuffled(using: &rng)) == digest)
    #expect(digest.differingBuckets(from: PartitionDigest(entries.shuffled(using: &rng))).isEmpty)
    #expect(PartitionDigest([]) == PartitionDigest([]))
    #expect(PartitionDigest([]).root != digest.root)
    for changed in [17, 250, 499] {
        var newer = entries
        newer[changed].version = ObjectVersion(timestamp: HLCTimestamp(rawValue: 1 << 40), node: 1)
        let other = PartitionDigest(newer)
        let bucket = PartitionDigest.bucket(bucket: entries[changed].bucket, key: entries[changed].key)
        #expect(digest.differingBuckets(from: other) == [bucket])
        var deleted = entries
        deleted[changed].isTombstone.toggle()
        #expect(digest.differingBuckets(from: PartitionDigest(deleted)) == [bucket])
        var missing = entries
        missing.remove(at: changed)
        #expect(digest.differingBuckets(from: PartitionDigest(missing)) == [bucket])
    }
    // Buckets spread: 500 keys land in many of the 256 buckets.
    let used = Set(entries.map { PartitionDigest.bucket(bucket: $0.bucket, key: $0.key) })
    #expect(used.count > 150)
}
