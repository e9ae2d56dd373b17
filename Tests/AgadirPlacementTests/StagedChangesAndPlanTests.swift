import AgadirCore
import Foundation
import Testing

@testable import AgadirPlacement

let maPolicy = Policy(
    name: "morocco", replicationFactor: 3, selector: SiteSelector(labels: ["country": "MA"]), minSites: 2,
    readConsistency: .quorum, writeConsistency: .quorum, codec: .lz4)

/// Three Moroccan sites with two nodes each, one French site, and the "morocco" policy: version 1.
func threeSiteLayout(partitions: Int = 256) throws -> Layout {
    var changes: [LayoutChange] = []
    for site in ["benguerir", "casablanca", "settat"] {
        changes.append(.setSiteLabels(site: site, labels: ["country": "MA"]))
        for k in 1...2 { changes.append(.assignNode(id: "\(site)-\(k)", site: site, capacity: 4 * terabyte)) }
    }
    changes.append(.setSiteLabels(site: "paris", labels: ["country": "FR"]))
    changes.append(.assignNode(id: "paris-1", site: "paris", capacity: 4 * terabyte))
    changes.append(.assignNode(id: "gw-1", site: "paris", capacity: 0))
    changes.append(.addPolicy(maPolicy))
    return try Planner.plan(
        previous: .empty(), changes: StagedChanges(changes: changes, partitionCount: partitions), appliedMillis: 1000,
        bytesPerPartition: { _, _ in 0 }
    ).layout
}

@Test func resolve_appliesChangesInOrder_andSortsEverything() throws {
    let staged = StagedChanges(changes: [
        .assignNode(id: "z-1", site: "zagora", capacity: 5),
        .assignNode(id: "a-1", site: "agadir", capacity: 5),
        .assignNode(id: "a-1", site: "agadir", capacity: 9),  // update
        .setSiteLabels(site: "agadir", labels: ["country": "MA"]),
        .setSiteLabels(site: "empty", labels: ["country": "MA"]),  // a site with labels and no node stays
        .assignNode(id: "gone", site: "ghost", capacity: 1),
        .removeNode(id: "gone"),  // "ghost" has no node and no label left: it disappears
        .addPolicy(maPolicy),
    ])
    let resolved = try staged.resolve(on: .empty())
    #expect(resolved.nodes.map(\.id) == ["a-1", "z-1"])
    #expect(resolved.nodes[0].capacity == 9)
    #expect(resolved.sites.map(\.name) == ["agadir", "empty", "zagora"])
    #expect(resolved.sites[0].labels == ["country": "MA"])
    #expect(resolved.policies.map(\.name) == ["default", "morocco"])
    #expect(resolved.policies[0] == .builtInDefault(storageNodes: 2))
}

@Test func resolve_refusesUnknownNodesExistingPoliciesAndBadValues() throws {
    let l = try threeSiteLayout()
    let noNode = expectError(.noSuchNode) { () throws(AgadirError) in
        try StagedChanges(changes: [.removeNode(id: "rabat-9")]).resolve(on: l)
    }
    #expect(noNode?.message.contains("rabat-9") == true)
    expectError(.policyAlreadyExists) { () throws(AgadirError) in
        try StagedChanges(changes: [.addPolicy(maPolicy)]).resolve(on: l)
    }
    expectError(.policyAlreadyExists) { () throws(AgadirError) in
        try StagedChanges(changes: [.addPolicy(.builtInDefault(storageNodes: 3))]).resolve(on: l)
    }
    var bad = maPolicy
    bad.name = "other"
    bad.minSites = 5
    expectError(.invalidArgument) { () throws(AgadirError) in
        try StagedChanges(changes: [.addPolicy(bad)]).resolve(on: l)
    }
    for change in [
        LayoutChange.assignNode(id: "", site: "a", capacity: 1), .assignNode(id: "n 1", site: "a", capacity: 1),
        .assignNode(id: "n1", site: "a/b", capacity: 1), .setSiteLabels(site: "a", labels: ["k": ""]),
        .setSiteLabels(site: "a", labels: ["bad key": "v"]),
    ] {
        let error = expectError(.invalidArgument) { () throws(AgadirError) in
            try StagedChanges(changes: [change]).resolve(on: l)
        }
        #expect(error?.message.hasPrefix("staged change 1") == true)
    }
    // The partition count may be chosen only before version 1.
    expectError(.invalidArgument) { () throws(AgadirError) in
        try StagedChanges(changes: [], partitionCount: 512).resolve(on: l)
    }
    #expect(throws: Never.self) { try StagedChanges(changes: [], partitionCount: 256).resolve(on: l) }
    expectError(.invalidArgument) { () throws(AgadirError) in
        try StagedChanges(changes: [], partitionCount: 100).resolve(on: .empty())
    }
    expectError(.invalidArgument) { () throws(AgadirError) in
        try StagedChanges(changes: [], partitionCount: 4).resolve(on: .empty())
    }
}

@Test func resolve_enforcesTheLayoutLimits() {
    let many = (0..<(PlacementLimits.maxNodes + 1)).map {
        LayoutChange.assignNode(id: "n\($0)", site: "s", capacity: 1)
    }
    let error = expectError(.invalidArgument) { () throws(AgadirError) in
        try StagedChanges(changes: many).resolve(on: .empty())
    }
    #expect(error?.message.contains("4097 nodes") == true)
    let labels = Dictionary(uniqueKeysWithValues: (0...PlacementLimits.maxLabels).map { ("k\($0)", "v") })
    expectError(.invalidArgument) { () throws(AgadirError) in
        try StagedChanges(changes: [.setSiteLabels(site: "s", labels: labels)]).resolve(on: .empty())
    }
}

@Test func plan_buildsTheNextVersionWithAMapPerPolicy() throws {
    let l = try threeSiteLayout()
    #expect(l.version == 1)
    #expect(l.partitionCount == 256)
    #expect(l.appliedMillis == 1000)
    #expect(l.maps.keys.sorted() == ["default", "morocco"])
    #expect(l.policy("default")?.replicationFactor == 3)
    for policy in l.policies {
        let map = try #require(l.maps[policy.name])
        #expect(violations(map.replicas, policy: policy, layout: l).isEmpty)
    }
    #expect(
        l.maps["morocco"]?.replicas.allSatisfy { $0.allSatisfy { !$0.hasPrefix("paris") && !$0.hasPrefix("gw") } }
            == true)
    #expect(l.eligibleNodes(for: maPolicy).count == 6)
    #expect(l.isEligible(node: "benguerir-1", for: maPolicy))
    #expect(!l.isEligible(node: "paris-1", for: maPolicy))
    #expect(!l.isEligible(node: "nobody", for: maPolicy))
    #expect(l.isEligible(node: "gw-1", for: .builtInDefault(storageNodes: 1)), "a gateway may coordinate")
    #expect(l.siteLabels("nowhere") == [:])
    #expect(l.replicas(policy: "nope", partition: 0) == [])
    #expect(l.replicas(policy: "morocco", partition: 256) == [])
    #expect(l.replicas(policy: "morocco", partition: -1) == [])
    #expect(l.node("gw-1")?.capacity == 0)
}

@Test func plan_reportsMovementAndBytesPerSiteLink() throws {
    let l = try threeSiteLayout()
    // Adding a fourth Moroccan site moves some replicas of "morocco" there.
    let staged = StagedChanges(changes: [
        .setSiteLabels(site: "rabat", labels: ["country": "MA"]),
        .assignNode(id: "rabat-1", site: "rabat", capacity: 4 * terabyte),
    ])
    let (next, report) = try Planner.plan(
        previous: l, changes: staged, appliedMillis: 2000,
        bytesPerPartition: { policy, _ in policy == "morocco" ? 10 : 1 })
    #expect(next.version == 2)
    #expect(report.fromVersion == 1 && report.toVersion == 2)
    #expect(report.policies.map(\.policy) == ["default", "morocco"])
    let ma = try #require(report.policies.last)
    let old = try #require(l.maps["morocco"]?.replicas)
    let new = try #require(next.maps["morocco"]?.replicas)
    #expect(ma.replicasMoved == slotsMoved(from: old, to: new))
    #expect(ma.partitionsMoved == zip(old, new).count { Set($0.0) != Set($0.1) })
    #expect(ma.replicasBefore == counts(old))
    #expect(ma.replicasAfter == counts(new))
    #expect(ma.replicasAfter["rabat-1"] == ma.replicasMoved, "only the new node receives data")
    // Every transfer goes to rabat from the site of the old rank-0 replica (rabat had none).
    var expected: [SiteLink: UInt64] = [:]
    for (a, b) in zip(old, new) where b.contains("rabat-1") && !a.contains("rabat-1") {
        let from = next.node(a[0])?.site ?? ""
        expected[SiteLink(from: from, to: "rabat"), default: 0] += 10
    }
    #expect(ma.estimatedBytes == expected)
    #expect(report.totalPartitionsMoved == report.policies.reduce(0) { $0 + $1.partitionsMoved })
    let total = report.estimatedBytes.values.reduce(0, +)
    #expect(total == report.policies.reduce(0) { $0 + $1.estimatedBytes.values.reduce(0, +) })
    #expect(report.summary.hasPrefix("v1 -> v2: "))
    #expect(SiteLink(from: "a", to: "b") < SiteLink(from: "b", to: "a"))
}

@Test func plan_sameSiteTransfers_comeFromTheSameSite() throws {
    let l = try threeSiteLayout()
    // A new node in benguerir: copies to it come from benguerir when a replica is there.
    let (next, report) = try Planner.plan(
        previous: l,
        changes: StagedChanges(changes: [.assignNode(id: "benguerir-3", site: "benguerir", capacity: 4 * terabyte)]),
        appliedMillis: 2000, bytesPerPartition: { _, _ in 1 })
    let ma = try #require(report.policies.last)
    let old = try #require(l.maps["morocco"]?.replicas)
    let new = try #require(next.maps["morocco"]?.replicas)
    var expected: [SiteLink: UInt64] = [:]
    for (a, b) in zip(old, new) where b.contains("benguerir-3") {
        let oldSites = a.compactMap { l.node($0)?.site }
        let from = oldSites.contains("benguerir") ? "benguerir" : oldSites[0]
        expected[SiteLink(from: from, to: "benguerir"), default: 0] += 1
    }
    #expect(ma.estimatedBytes == expected)
    #expect(ma.estimatedBytes[SiteLink(from: "benguerir", to: "benguerir"), default: 0] > 0)
}

@Test func plan_refusesALayoutThatCannotSatisfyAPolicy() throws {
    let l = try threeSiteLayout()
    // Removing both Settat and Casablanca nodes leaves "morocco" one site: refused, naming the policy.
    let staged = StagedChanges(
        changes: ["casablanca-1", "casablanca-2", "settat-1", "settat-2"].map { .removeNode(id: $0) })
    let error = expectError(.policyUnsatisfiable) { () throws(AgadirError) in
        try Planner.plan(previous: l, changes: staged, appliedMillis: 0, bytesPerPartition: { _, _ in 0 })
    }
    #expect(
        error?.message
            == "policy 'morocco' needs 3 nodes with capacity on at least 2 sites matching country=MA; "
            + "the layout has 2 such nodes on 1 site (benguerir)")
}

@Test func plan_isDeterministic_whateverTheOrderOfTheStagedChanges() throws {
    var changes: [LayoutChange] = []
    for s in 0..<5 {
        changes.append(.setSiteLabels(site: "s\(s)", labels: ["country": s < 3 ? "MA" : "FR"]))
        for k in 0..<4 {
            changes.append(.assignNode(id: "s\(s)-\(k)", site: "s\(s)", capacity: UInt64(1 + k) * terabyte))
        }
    }
    changes.append(.addPolicy(maPolicy))
    let a = try Planner.plan(
        previous: .empty(), changes: StagedChanges(changes: changes), appliedMillis: 5, bytesPerPartition: { _, _ in 0 }
    )
    let b = try Planner.plan(
        previous: .empty(), changes: StagedChanges(changes: changes.shuffled(seed: 9)), appliedMillis: 5,
        bytesPerPartition: { _, _ in 0 })
    #expect(a.layout == b.layout)
}

@Test func codableValues_roundTripThroughJSON() throws {
    let policy = Policy(
        name: "ma", replicationFactor: 3, selector: SiteSelector(labels: ["country": "MA"], sites: ["b", "a"]),
        minSites: 2, readConsistency: .one, writeConsistency: .eachQuorum, codec: .zlib)
    let staged = StagedChanges(
        changes: [
            .assignNode(id: "benguerir-1", site: "benguerir", capacity: 7), .removeNode(id: "x"),
            .setSiteLabels(site: "benguerir", labels: ["country": "MA"]), .addPolicy(policy),
        ], partitionCount: 1024)
    let data = try JSONEncoder().encode(staged)
    #expect(try JSONDecoder().decode(StagedChanges.self, from: data) == staged)
    #expect(String(decoding: data, as: UTF8.self).contains("\"codec\":\"zlib\""))
    let report = PlanReport(
        fromVersion: 1, toVersion: 2,
        policies: [
            PolicyPlan(
                policy: "morocco", partitionsMoved: 1, replicasMoved: 2, replicasBefore: ["a": 1],
                replicasAfter: ["b": 1],
                estimatedBytes: [SiteLink(from: "a", to: "b"): 5])
        ], totalPartitionsMoved: 1, estimatedBytes: [SiteLink(from: "a", to: "b"): 5])
    #expect(try JSONDecoder().decode(PlanReport.self, from: try JSONEncoder().encode(report)) == report)
    let badCodec = Data(
        (#"{"name":"ma","replicationFactor":3,"selector":{},"minSites":1,"readConsistency":2,"#
            + #""writeConsistency":2,"codec":"zstd"}"#).utf8)
    #expect(throws: DecodingError.self) { try JSONDecoder().decode(Policy.self, from: badCodec) }
}
