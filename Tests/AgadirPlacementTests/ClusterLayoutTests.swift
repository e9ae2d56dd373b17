import AgadirCore
import Testing

@testable import AgadirPlacement

/// Plans `changes` on top of `previous` (bytes unknown).
func next(_ previous: Layout, _ changes: [LayoutChange], at millis: UInt64 = 0) throws -> Layout {
    try Planner.plan(
        previous: previous, changes: StagedChanges(changes: changes), appliedMillis: millis,
        bytesPerPartition: { _, _ in 0 }
    ).layout
}

@Test func apply_firstVersionReplacesTheEmptyOne() throws {
    var cluster = ClusterLayout(initial: .empty())
    #expect(cluster.current.version == 0)
    #expect(cluster.readReplicas(policy: "default", partition: 0) == [])
    #expect(cluster.writeReplicaSets(policy: "default", partition: 0) == [])
    let v1 = try threeSiteLayout()
    try cluster.apply(v1, summary: "three sites")
    #expect(cluster.live.map(\.version) == [1])
    #expect(cluster.history == [LayoutHistoryEntry(version: 1, appliedMillis: 1000, summary: "three sites")])
    #expect(cluster.readReplicas(policy: "morocco", partition: 7) == v1.replicas(policy: "morocco", partition: 7))
}

@Test func apply_refusesAStaleOrSkippedVersion_sayingWhatIsCurrent() throws {
    var cluster = ClusterLayout(initial: try threeSiteLayout())
    let v2 = try next(cluster.current, [.assignNode(id: "rabat-1", site: "benguerir", capacity: terabyte)])
    var stale = v2
    stale.version = 1
    let error = expectError(.layoutVersionConflict) { () throws(AgadirError) in
        try cluster.apply(stale, summary: "")
    }
    #expect(error?.message.contains("the current version is 1") == true)
    #expect(error?.message.contains("plan again") == true)
    var skipped = v2
    skipped.version = 3
    expectError(.layoutVersionConflict) { () throws(AgadirError) in try cluster.apply(skipped, summary: "") }
    try cluster.apply(v2, summary: "")
    // Planning twice from version 1: the second apply is stale.
    expectError(.layoutVersionConflict) { () throws(AgadirError) in try cluster.apply(v2, summary: "") }
}

@Test func apply_withoutMovement_replacesTheCurrentVersion() throws {
    var cluster = ClusterLayout(initial: try threeSiteLayout())
    // Labels of an unrelated site and a gateway: no map changes.
    let v2 = try next(cluster.current, [.assignNode(id: "gw-2", site: "paris", capacity: 0)])
    #expect(v2.maps == cluster.current.maps)
    try cluster.apply(v2, summary: "gateway")
    #expect(cluster.live.map(\.version) == [2])
    // A new policy alone moves nothing either.
    var extra = maPolicy
    extra.name = "morocco-two"
    extra.replicationFactor = 2
    let v3 = try next(cluster.current, [.addPolicy(extra)])
    try cluster.apply(v3, summary: "policy")
    #expect(cluster.live.map(\.version) == [3])
    #expect(cluster.history.map(\.version) == [2, 3])
}

@Test func apply_withMovement_keepsOldVersionsLive_readsOldWritesAll() throws {
    var cluster = ClusterLayout(initial: try threeSiteLayout())
    let v1 = cluster.current
    let v2 = try next(v1, [.assignNode(id: "benguerir-3", site: "benguerir", capacity: 4 * terabyte)])
    try cluster.apply(v2, summary: "grow")
    #expect(cluster.live.map(\.version) == [1, 2])
    #expect(cluster.current.version == 2)
    var changed = 0
    for p in 0..<256 {
        let old = v1.replicas(policy: "morocco", partition: p)
        let new = v2.replicas(policy: "morocco", partition: p)
        #expect(cluster.readReplicas(policy: "morocco", partition: p) == old, "reads use the oldest live version")
        let sets = cluster.writeReplicaSets(policy: "morocco", partition: p)
        #expect(sets == (old == new ? [old] : [old, new]))
        let all = cluster.allReplicas(policy: "morocco", partition: p)
        #expect(Array(all.prefix(old.count)) == old)
        #expect(Set(all) == Set(old + new))
        #expect(all.count == Set(old + new).count)
        if old != new { changed += 1 }
    }
    #expect(changed > 0)
    // Even an apply that moves nothing is appended while a rebalance is in progress.
    let v3 = try next(v2, [.assignNode(id: "gw-2", site: "paris", capacity: 0)])
    try cluster.apply(v3, summary: "gateway")
    #expect(cluster.live.map(\.version) == [1, 2, 3])
    // Retirement by acknowledgement.
    cluster.retire(olderThan: 99)
    #expect(cluster.live.map(\.version) == [1, 2, 3], "unknown version: no-op")
    cluster.retire(olderThan: 2)
    #expect(cluster.live.map(\.version) == [2, 3])
    #expect(cluster.readReplicas(policy: "morocco", partition: 0) == v2.replicas(policy: "morocco", partition: 0))
    cluster.retire(olderThan: 3)
    #expect(cluster.live.map(\.version) == [3])
}

@Test func apply_refusesMoreThanEightLiveVersions() throws {
    var cluster = ClusterLayout(initial: try threeSiteLayout())
    for k in 3...9 {
        let grown = try next(
            cluster.current, [.assignNode(id: "benguerir-\(k)", site: "benguerir", capacity: 4 * terabyte)])
        try cluster.apply(grown, summary: "grow \(k)")
    }
    #expect(cluster.live.count == ClusterLayout.maxLiveVersions)
    let one = try next(cluster.current, [.assignNode(id: "benguerir-10", site: "benguerir", capacity: 4 * terabyte)])
    let error = expectError(.layoutVersionConflict) { () throws(AgadirError) in try cluster.apply(one, summary: "") }
    #expect(error?.message == "8 layout versions are still live; wait for the rebalance to retire old ones")
    #expect(cluster.live.count == 8)
}

@Test func history_keepsTheNewestHundred_andClipsLongSummaries() throws {
    var cluster = ClusterLayout(initial: try threeSiteLayout())
    for k in 0..<120 {
        var same = cluster.current
        same.version += 1
        same.appliedMillis = UInt64(k)
        try cluster.apply(same, summary: k == 119 ? String(repeating: "ⵣ", count: 600) : "step \(k)")
    }
    #expect(cluster.live.count == 1)
    #expect(cluster.history.count == ClusterLayout.maxHistory)
    #expect(cluster.history.first?.summary == "step 20")
    let last = try #require(cluster.history.last)
    #expect(last.summary.utf8.count <= PlacementLimits.maxSummaryBytes)
    #expect(last.summary.hasSuffix("..."))
    #expect(try ClusterLayoutCodec.decode(ClusterLayoutCodec.encode(cluster)) == cluster)
}

@Test func clusterLayoutCodec_roundTrips_andRefusesCorruption() throws {
    var cluster = ClusterLayout(initial: try threeSiteLayout(partitions: 8))
    let v2 = try next(cluster.current, [.assignNode(id: "benguerir-3", site: "benguerir", capacity: 4 * terabyte)])
    try cluster.apply(v2, summary: "grow")
    let v3 = try next(v2, [.removeNode(id: "settat-1")])
    try cluster.apply(v3, summary: "shrink")
    let bytes = ClusterLayoutCodec.encode(cluster)
    #expect(Array(bytes.prefix(5)) == Array("AGCL".utf8) + [1])
    #expect(try ClusterLayoutCodec.decode(bytes) == cluster)
    #expect(
        try ClusterLayoutCodec.decode(ClusterLayoutCodec.encode(ClusterLayout(initial: .empty())))
            == ClusterLayout(initial: .empty()))

    // Every truncation fails cleanly.
    for n in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 3000)) {
        expectError(.corruptData) { () throws(AgadirError) in try ClusterLayoutCodec.decode(Array(bytes.prefix(n))) }
    }
    for n in (bytes.count - 64)..<bytes.count {
        expectError(.corruptData) { () throws(AgadirError) in try ClusterLayoutCodec.decode(Array(bytes.prefix(n))) }
    }
    // Random mutations never crash.
    var rng = SplitMix64(seed: 5)
    for _ in 0..<1500 {
        var mutated = bytes
        let i = Int.random(in: 0..<mutated.count, using: &rng)
        mutated[i] = UInt8.random(in: 0...255, using: &rng)
        do {
            let decoded = try ClusterLayoutCodec.decode(mutated)
            #expect(!decoded.live.isEmpty)
            #expect(zip(decoded.live, decoded.live.dropFirst()).allSatisfy { $0.version < $1.version })
        } catch {
            #expect(error.code == .corruptData)
        }
    }
    // Live versions out of order.
    var reversed = cluster
    reversed.live.reverse()
    let error = expectError(.corruptData) { () throws(AgadirError) in
        try ClusterLayoutCodec.decode(ClusterLayoutCodec.encode(reversed))
    }
    #expect(error?.message.contains("not ascending") == true)
    // A live version of another partition count.
    var mixed = cluster
    mixed.live[0] = try threeSiteLayout(partitions: 16)
    expectError(.corruptData) { () throws(AgadirError) in
        try ClusterLayoutCodec.decode(ClusterLayoutCodec.encode(mixed))
    }
}
