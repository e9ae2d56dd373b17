import AgadirCore
import Testing

@testable import AgadirPlacement

/// N equal nodes, either one per site or spread over several sites ("several per site").
func equalCluster(nodes n: Int, distinctSites: Bool) -> [NodeSpec] {
    let siteCount = distinctSites ? n : max(2, n / 3)
    return (0..<n).map { k in
        let site = "site\(k % siteCount)"
        return NodeSpec(id: "node\(k < 10 ? "0" : "")\(k)", site: site, capacity: terabyte)
    }
}

@Test func addingOneNode_toNEqualNodes_movesAboutOneShareOfSlots() throws {
    let p = 256
    var worst = 0.0
    var worstCase = ""
    for n in 3...12 {
        for distinct in [true, false] {
            for minSites in [1, 2] {
                let rule = policy(rf: 3, minSites: minSites)
                let before = equalCluster(nodes: n, distinctSites: distinct)
                let old = try Planner.assign(policy: rule, layout: layout(nodes: before, partitions: p), previous: nil)
                // One per site: the new node brings a new site. Several per site: it joins site0.
                let added = NodeSpec(id: "node99", site: distinct ? "site99" : "site0", capacity: terabyte)
                let after = layout(nodes: before + [added], partitions: p)
                let new = try Planner.assign(policy: rule, layout: after, previous: old)
                let label = "N=\(n) \(distinct ? "distinct sites" : "several per site") minSites \(minSites)"
                #expect(violations(new, policy: rule, layout: after).isEmpty, "\(label)")
                let fraction = Double(slotsMoved(from: old, to: new)) / Double(3 * p)
                #expect(fraction <= 1.2 / Double(n + 1), "\(label): moved \(fraction)")
                let ratio = fraction * Double(n + 1)
                if ratio > worst {
                    worst = ratio
                    worstCase = label
                }
                // Every moved slot went to the new node, and each partition lost at most one replica.
                for (a, b) in zip(old, new) {
                    let gained = b.filter { !a.contains($0) }
                    #expect(gained.allSatisfy { $0 == "node99" }, "\(label): \(a) -> \(b)")
                    #expect(gained.count <= 1, "\(label): \(a) -> \(b)")
                }
            }
        }
    }
    print("add one node: worst moved fraction = \(String(format3: worst)) / (N + 1) (\(worstCase))")
}

@Test func removingOneNode_movesOnlyTheSlotsThatNodeHeld() throws {
    let p = 256
    var worst = 0.0
    var worstCase = ""
    var cases = 0
    var worstBalance = 0.0
    var worstBalanceCase = ""
    for n in 4...12 {
        for distinct in [true, false] {
            for minSites in [1, 2] {
                let rule = policy(rf: 3, minSites: minSites)
                let before = equalCluster(nodes: n, distinctSites: distinct)
                let old = try Planner.assign(policy: rule, layout: layout(nodes: before, partitions: p), previous: nil)
                for removed in before {
                    let rest = before.filter { $0.id != removed.id }
                    guard Set(rest.map(\.site)).count >= minSites else { continue }
                    let after = layout(nodes: rest, partitions: p)
                    let new = try Planner.assign(policy: rule, layout: after, previous: old)
                    cases += 1
                    let label =
                        "N=\(n) \(distinct ? "distinct" : "several per site") minSites \(minSites) "
                        + "without \(removed.id)"
                    #expect(violations(new, policy: rule, layout: after).isEmpty, "\(label)")
                    for (a, b) in zip(old, new) {
                        if !a.contains(removed.id) {
                            #expect(a == b, "\(label): untouched partition changed \(a) -> \(b)")
                        } else {
                            // The other replicas stay, in order; one new replica is appended.
                            #expect(Array(b.prefix(2)) == a.filter { $0 != removed.id }, "\(label): \(a) -> \(b)")
                        }
                    }
                    let held = old.count { $0.contains(removed.id) }
                    #expect(slotsMoved(from: old, to: new) == held, "\(label)")
                    let fraction = Double(held) / Double(3 * p)
                    if fraction * Double(n) > worst {
                        worst = fraction * Double(n)
                        worstCase = label
                    }
                    // The survivors are balanced too, within the incremental tolerance.
                    let deviation = checkBalance(
                        new, policy: rule, layout: after, label: label, limit: Planner.balanceTolerance
                    ).deviation
                    if deviation > worstBalance {
                        worstBalance = deviation
                        worstBalanceCase = label
                    }
                }
            }
        }
    }
    print(
        "remove one node (\(cases) cases): worst moved fraction = \(String(format3: worst)) / N (\(worstCase)); "
            + "worst share deviation \(String(format3: worstBalance * 100)) % (\(worstBalanceCase))")
}

@Test func sovereignty_neverPlacesOnNonEligibleNodes_evenWhenTheyAreTheBiggest() throws {
    let sites = [
        SiteSpec(name: "benguerir", labels: ["country": "MA"]), SiteSpec(name: "casablanca", labels: ["country": "MA"]),
        SiteSpec(name: "paris", labels: ["country": "FR"]),
    ]
    let all =
        nodes(site: "benguerir", count: 2) + nodes(site: "casablanca", count: 2)
        + nodes(site: "paris", count: 6, capacity: 100 * terabyte)
    let rule = policy("morocco", rf: 3, minSites: 2, selector: SiteSelector(labels: ["country": "MA"]))
    let l = layout(sites: sites, nodes: all, policies: [rule])
    let map = try Planner.assign(policy: rule, layout: l, previous: nil)
    #expect(violations(map, policy: rule, layout: l).isEmpty)
    #expect(map.allSatisfy { $0.allSatisfy { !$0.hasPrefix("paris") } })
    // A site losing its label: its replicas move away (to a new Moroccan site), never to it.
    var relabelled = l
    relabelled.sites = [
        SiteSpec(name: "benguerir", labels: ["country": "MA"]), SiteSpec(name: "casablanca", labels: ["country": "FR"]),
        SiteSpec(name: "paris", labels: ["country": "FR"]), SiteSpec(name: "settat", labels: ["country": "MA"]),
    ]
    relabelled.nodes = (l.nodes + nodes(site: "settat", count: 2)).sorted { $0.id < $1.id }
    let moved = try Planner.assign(policy: rule, layout: relabelled, previous: map)
    #expect(violations(moved, policy: rule, layout: relabelled).isEmpty)
    #expect(moved.allSatisfy { $0.allSatisfy { $0.hasPrefix("benguerir") || $0.hasPrefix("settat") } })
    // Benguerir's replicas stay where they were, in order, unless the node is over its target.
    for (a, b) in zip(map, moved) {
        let kept = a.filter { $0.hasPrefix("benguerir") && b.contains($0) }
        #expect(Array(b.prefix(kept.count)) == kept)
    }
}

@Test func unsatisfiablePolicies_sayWhatIsNeededAndWhatExists() {
    let sites = [
        SiteSpec(name: "benguerir", labels: ["country": "MA"]), SiteSpec(name: "paris", labels: ["country": "FR"]),
    ]
    let l = layout(
        sites: sites, nodes: nodes(site: "benguerir", count: 2) + nodes(site: "paris", count: 5))
    let ma = policy("morocco", rf: 3, minSites: 2, selector: SiteSelector(labels: ["country": "MA"]))
    let error = expectError(.policyUnsatisfiable) { () throws(AgadirError) in
        try Planner.assign(policy: ma, layout: l, previous: nil)
    }
    #expect(
        error?.message
            == "policy 'morocco' needs 3 nodes with capacity on at least 2 sites matching country=MA; "
            + "the layout has 2 such nodes on 1 site (benguerir)")

    // Enough nodes but too few sites.
    let wide = policy("wide", rf: 2, minSites: 2, selector: SiteSelector(labels: ["country": "MA"]))
    let sitesError = expectError(.policyUnsatisfiable) { () throws(AgadirError) in
        try Planner.assign(policy: wide, layout: l, previous: nil)
    }
    #expect(sitesError?.message.contains("on at least 2 sites") == true)
    #expect(sitesError?.message.contains("2 such nodes on 1 site (benguerir)") == true)

    // Gateways only: they are eligible but store nothing.
    let gateways = layout(sites: sites, nodes: nodes(site: "benguerir", count: 3, capacity: 0))
    let gatewayError = expectError(.policyUnsatisfiable) { () throws(AgadirError) in
        try Planner.assign(policy: ma, layout: gateways, previous: nil)
    }
    #expect(gatewayError?.message.contains("the layout has no such node and 3 matching gateways (capacity 0)") == true)

    // No node at all: even the default policy cannot be placed.
    expectError(.policyUnsatisfiable) { () throws(AgadirError) in
        try Planner.assign(policy: .builtInDefault(storageNodes: 0), layout: .empty(), previous: nil)
    }
}

@Test func siteCaps_forceSpreadingWhenOneSiteHasMostOfTheCapacity() throws {
    // RF 3, minSites 2: site A may hold at most 2 replicas of each partition (2P slots) however
    // large it is; the small site B must take one replica of every partition.
    let all = nodes(site: "a", count: 6, capacity: 50 * terabyte) + nodes(site: "b", count: 2, capacity: terabyte)
    let rule = policy(rf: 3, minSites: 2)
    let l = layout(nodes: all)
    let map = try Planner.assign(policy: rule, layout: l, previous: nil)
    #expect(violations(map, policy: rule, layout: l).isEmpty)
    let held = counts(map)
    #expect(held["b-1", default: 0] + held["b-2", default: 0] == 256)
    _ = checkBalance(map, policy: rule, layout: l, label: "site cap")
}

@Test func groupsOfSites_areCappedTogether_notOnlyOneByOne() throws {
    // RF 5, minSites 3: two big sites may hold at most 4 replicas of a partition between them,
    // so the small third site takes one replica of every partition although the brief's per-site
    // cap alone (3P each) would give it almost nothing.
    let all =
        nodes(site: "a", count: 4, capacity: 20 * terabyte) + nodes(site: "b", count: 4, capacity: 20 * terabyte)
        + nodes(site: "c", count: 2, capacity: terabyte)
    let rule = policy(rf: 5, minSites: 3)
    let l = layout(nodes: all)
    let shares = try Planner.shares(policy: rule, layout: l)
    let siteC = shares.filter { $0.site == "c" }.reduce(0.0) { $0 + $1.ideal }
    #expect(abs(siteC - 256) < 1e-9)
    #expect(simpleWaterFilling(policy: rule, layout: l) == nil, "the simple caps give an unreachable share")
    let map = try Planner.assign(policy: rule, layout: l, previous: nil)
    #expect(violations(map, policy: rule, layout: l).isEmpty)
    _ = checkBalance(map, policy: rule, layout: l, label: "site group cap")
}

@Test func nodeCap_aHugeNodeHoldsEveryPartitionOnceAndTheRestIsShared() throws {
    let all = [NodeSpec(id: "huge", site: "a", capacity: 1000 * terabyte)] + nodes(site: "a", count: 4)
    let rule = policy(rf: 2)
    let l = layout(nodes: all)
    let shares = try Planner.shares(policy: rule, layout: l)
    #expect(shares.first { $0.node == "huge" }?.target == 256)
    #expect(shares.filter { $0.node != "huge" }.allSatisfy { $0.target == 64 })
    let map = try Planner.assign(policy: rule, layout: l, previous: nil)
    #expect(map.allSatisfy { $0.contains("huge") })
}

@Test func rankZero_isSpreadOverTheNodes() throws {
    let l = layout(nodes: equalCluster(nodes: 6, distinctSites: false))
    let map = try Planner.assign(policy: policy(rf: 3, minSites: 2), layout: l, previous: nil)
    var firsts: [String: Int] = [:]
    for set in map { firsts[set[0], default: 0] += 1 }
    #expect(firsts.count == 6)
    #expect(firsts.values.allSatisfy { $0 >= 256 / 6 / 2 }, "\(firsts.sorted { $0.key < $1.key })")
}

@Test func growingDefaultPolicy_addsReplicasWithoutMovingTheOldOnes() throws {
    var previous: [[String]]? = nil
    var all: [NodeSpec] = []
    for k in 1...5 {
        all.append(NodeSpec(id: "n\(k)", site: "s\(k % 2)", capacity: terabyte))
        let rule = Policy.builtInDefault(storageNodes: all.count)
        let l = layout(nodes: all)
        let map = try Planner.assign(policy: rule, layout: l, previous: previous)
        #expect(violations(map, policy: rule, layout: l).isEmpty)
        if let previous {
            for (a, b) in zip(previous, map) where rule.replicationFactor > a.count {
                #expect(Array(b.prefix(a.count)) == a, "growing RF keeps the old replicas first")
            }
        }
        _ = checkBalance(map, policy: rule, layout: l, label: "default with \(k) nodes")
        previous = map
    }
}

@Test func previousMapWithForeignOrDuplicateEntries_isCleanedUp() throws {
    let l = layout(nodes: nodes(site: "a", count: 3) + nodes(site: "b", count: 3))
    let rule = policy(rf: 3, minSites: 2)
    let garbage = (0..<256).map { p in p % 2 == 0 ? ["a-1", "a-1", "ghost", "b-1", "a-2", "a-3"] : [] }
    let map = try Planner.assign(policy: rule, layout: l, previous: garbage)
    #expect(violations(map, policy: rule, layout: l).isEmpty)
    // A previous map of another partition count is ignored.
    let other = try Planner.assign(policy: rule, layout: l, previous: [["a-1", "b-1", "a-2"]])
    #expect(other == (try Planner.assign(policy: rule, layout: l, previous: nil)))
}

@Test func invalidInputs_areRefusedNotCrashed() {
    let l = layout(nodes: nodes(site: "a", count: 3))
    expectError(.invalidArgument) { () throws(AgadirError) in
        try Planner.assign(policy: policy(rf: 0), layout: l, previous: nil)
    }
    expectError(.invalidArgument) { () throws(AgadirError) in
        try Planner.assign(policy: policy(rf: 8), layout: l, previous: nil)
    }
    var odd = l
    odd.partitionCount = 100
    expectError(.invalidArgument) { () throws(AgadirError) in
        try Planner.assign(policy: policy(rf: 1), layout: odd, previous: nil)
    }
}

@Test func planningTime_256PartitionsOn100Nodes_isWellUnderASecond() throws {
    var all: [NodeSpec] = []
    for s in 0..<10 {
        all += (1...10).map { NodeSpec(id: "s\(s)-\($0)", site: "s\(s)", capacity: terabyte * UInt64(1 + ($0 % 4))) }
    }
    let rule = policy(rf: 3, minSites: 2)
    let l = layout(nodes: all)
    let clock = ContinuousClock()
    var map: [[String]] = []
    let fresh = try clock.measure { map = try Planner.assign(policy: rule, layout: l, previous: nil) }
    var grown = l
    grown.nodes.append(NodeSpec(id: "s9-99", site: "s9", capacity: 4 * terabyte))
    let incremental = try clock.measure { _ = try Planner.assign(policy: rule, layout: grown, previous: map) }
    print("256 partitions × 100 nodes: fresh \(fresh), add one node \(incremental)")
    #expect(fresh < .seconds(1))
    #expect(incremental < .seconds(1))
}
