import AgadirCore
@_exported import AgadirTestSupport
import Testing

@testable import AgadirPlacement

let terabyte: UInt64 = 1_000_000_000_000

func policy(
    _ name: String = "test-policy", rf: Int, minSites: Int = 1, selector: SiteSelector = .any
) -> Policy {
    Policy(
        name: name, replicationFactor: rf, selector: selector, minSites: minSites, readConsistency: .quorum,
        writeConsistency: .quorum, codec: .lz4)
}

func layout(
    sites: [SiteSpec] = [], nodes: [NodeSpec], policies: [Policy] = [], partitions: Int = 256, version: UInt64 = 1
) -> Layout {
    let storage = nodes.count { $0.capacity > 0 }
    var siteList = sites
    for node in nodes where !siteList.contains(where: { $0.name == node.site }) {
        siteList.append(SiteSpec(name: node.site))
    }
    return Layout(
        version: version, partitionCount: partitions, sites: siteList, nodes: nodes,
        policies: policies + [.builtInDefault(storageNodes: storage)], maps: [:], appliedMillis: 0)
}

/// `count` nodes of equal capacity named "<site>-<k>".
func nodes(site: String, count: Int, capacity: UInt64 = terabyte, from first: Int = 1) -> [NodeSpec] {
    (first..<(first + count)).map { NodeSpec(id: "\(site)-\($0)", site: site, capacity: capacity) }
}

// MARK: Checking maps

/// Everything rule 1 demands of a map: RF distinct, eligible (capacity > 0, site matching)
/// nodes per partition, on at least minSites sites. Returns the problems found (none = valid).
func violations(_ map: [[String]], policy: Policy, layout: Layout) -> [String] {
    var problems: [String] = []
    guard map.count == layout.partitionCount else { return ["\(map.count) partitions, not \(layout.partitionCount)"] }
    var nodeByID: [String: NodeSpec] = [:]
    for node in layout.nodes { nodeByID[node.id] = node }
    var labelsBySite: [String: [String: String]] = [:]
    for site in layout.sites { labelsBySite[site.name] = site.labels }
    for (p, set) in map.enumerated() {
        if set.count != policy.replicationFactor { problems.append("partition \(p) has \(set.count) replicas") }
        if Set(set).count != set.count { problems.append("partition \(p) repeats a node: \(set)") }
        var sites = Set<String>()
        for id in set {
            guard let node = nodeByID[id] else {
                problems.append("partition \(p) names unknown node \(id)")
                continue
            }
            let labels = labelsBySite[node.site] ?? [:]
            if node.capacity == 0 { problems.append("partition \(p) is on gateway \(id)") }
            if !policy.selector.matches(site: node.site, siteLabels: labels) {
                problems.append("partition \(p) is on non-eligible node \(id) (site \(node.site))")
            }
            sites.insert(node.site)
        }
        if sites.count < policy.minSites { problems.append("partition \(p) spans \(sites.count) sites") }
    }
    return problems
}

func counts(_ map: [[String]]) -> [String: Int] {
    var counts: [String: Int] = [:]
    for set in map { for id in set { counts[id, default: 0] += 1 } }
    return counts
}

/// Replica slots given to a node that did not hold the partition before.
func slotsMoved(from old: [[String]], to new: [[String]]) -> Int {
    zip(old, new).reduce(0) { sum, pair in sum + pair.1.filter { !pair.0.contains($0) }.count }
}

// MARK: Random layouts

/// Random sites (1-6, labelled), nodes (1-12 per site, varied capacities, a few gateways) and
/// one policy (RF 1-5, minSites 1-RF, selector on labels or a site list), from a seed.
struct RandomLayouts {
    var rng: SplitMix64

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func chance(_ oneIn: Int) -> Bool { int(1...oneIn) == 1 }

    static let siteNames = ["benguerir", "casablanca", "settat", "rabat", "paris", "madrid"]

    mutating func capacity() -> UInt64 {
        switch int(0...9) {
        case 0: 0  // gateway
        case 1...4: terabyte * UInt64(int(1...4))
        case 5...7: terabyte * UInt64(int(1...16)) + UInt64(int(0...999)) * 1_000_000
        default: UInt64(int(1...100)) * 100_000_000_000
        }
    }

    mutating func layout(partitions: Int = 256) -> Layout {
        let siteCount = int(1...6)
        var sites: [SiteSpec] = []
        var nodes: [NodeSpec] = []
        for s in 0..<siteCount {
            let name = Self.siteNames[s]
            let country = s < 3 || chance(3) ? "MA" : "FR"
            sites.append(SiteSpec(name: name, labels: ["country": country, "tier": chance(2) ? "4" : "3"]))
            for k in 1...int(1...12) {
                nodes.append(NodeSpec(id: "\(name)-\(k)", site: name, capacity: capacity()))
            }
        }
        return Layout(
            version: 1, partitionCount: partitions, sites: sites, nodes: nodes,
            policies: [.builtInDefault(storageNodes: nodes.count { $0.capacity > 0 })], maps: [:], appliedMillis: 0)
    }

    mutating func policy() -> Policy {
        let rf = int(1...5)
        let minSites = int(1...rf)
        let selector: SiteSelector
        switch int(0...4) {
        case 0: selector = .any
        case 1: selector = SiteSelector(labels: ["country": "MA"])
        case 2: selector = SiteSelector(labels: ["tier": "4"])
        case 3: selector = SiteSelector(labels: ["country": "MA", "tier": "4"])
        default:
            let names = Self.siteNames.filter { _ in chance(2) }
            selector = SiteSelector(sites: names.isEmpty ? [Self.siteNames[0]] : names)
        }
        return Policy(
            name: "random", replicationFactor: rf, selector: selector,
            minSites: selector.sites.isEmpty ? minSites : min(minSites, selector.sites.count),
            readConsistency: .quorum, writeConsistency: .quorum, codec: .lz4)
    }

    /// A random edit of the layout's nodes: add one or several, remove some, change capacities,
    /// or move a node to another site.
    mutating func mutate(_ layout: Layout) -> Layout {
        var nodes = layout.nodes
        var sites = layout.sites
        switch int(0...5) {
        case 0, 1:
            let count = chance(3) ? int(2...4) : 1
            for _ in 0..<count {
                let site = sites[int(0...sites.count - 1)].name
                nodes.append(NodeSpec(id: "\(site)-new\(int(100...99999))", site: site, capacity: capacity()))
            }
        case 2:
            if nodes.count > 1 { nodes.remove(at: int(0...nodes.count - 1)) }
        case 3:
            for i in nodes.indices where chance(3) { nodes[i].capacity = capacity() }
        case 4:
            if sites.count < Self.siteNames.count {
                let name = Self.siteNames[sites.count]
                sites.append(SiteSpec(name: name, labels: ["country": chance(2) ? "MA" : "FR", "tier": "4"]))
                for k in 1...int(1...4) { nodes.append(NodeSpec(id: "\(name)-\(k)", site: name, capacity: capacity())) }
            }
        default:
            let i = int(0...nodes.count - 1)
            nodes[i].site = sites[int(0...sites.count - 1)].name
        }
        var dedup: [String: NodeSpec] = [:]
        for node in nodes { dedup[node.id] = node }
        let list = dedup.values.sorted { $0.id < $1.id }
        return Layout(
            version: layout.version + 1, partitionCount: layout.partitionCount, sites: sites, nodes: list,
            policies: [.builtInDefault(storageNodes: list.count { $0.capacity > 0 })], maps: [:], appliedMillis: 0)
    }
}

/// Water-filling as the brief states it, written independently of the planner (bisection on
/// the water level, floating point): RF × P slots in proportion to capacity, a node capped at P
/// and a site at P × (RF - minSites + 1), the excess redistributed. Returns node id -> share, or
/// nil when these caps alone give a share no placement can reach (then the planner's general
/// form differs; see docs/placement.md, "Targets").
func simpleWaterFilling(policy: Policy, layout: Layout) -> [String: Double]? {
    let eligible = layout.eligibleNodes(for: policy)
    let p = Double(layout.partitionCount)
    let total = Double(policy.replicationFactor) * p
    let siteCap = p * Double(policy.replicationFactor - policy.minSites + 1)
    let sites = Set(eligible.map(\.site)).sorted()
    let capacity = eligible.map { Double($0.capacity) / 1e12 }
    let membersOf = sites.map { site in eligible.indices.filter { eligible[$0].site == site } }
    func nodeShares(_ members: [Int], level: Double) -> Double {
        var sum = 0.0
        for i in members { sum += min(p, level * capacity[i]) }
        return sum
    }
    /// Per node share at water level `level`: proportional, node-capped, and within a site that
    /// would exceed its cap, a lower level found by bisection so the site holds exactly its cap.
    func shares(level: Double) -> [Double] {
        var out = [Double](repeating: 0, count: eligible.count)
        for members in membersOf {
            var siteLevel = level
            if nodeShares(members, level: level) > siteCap {
                var lo = 0.0
                var hi = level
                for _ in 0..<64 {
                    let mid = (lo + hi) / 2
                    if nodeShares(members, level: mid) > siteCap { hi = mid } else { lo = mid }
                }
                siteLevel = lo
            }
            for i in members { out[i] = min(p, siteLevel * capacity[i]) }
        }
        return out
    }
    var lo = 0.0
    var hi = 1.0
    while shares(level: hi).reduce(0, +) < total, hi < 1e30 { hi *= 2 }
    for _ in 0..<64 {
        let mid = (lo + hi) / 2
        if shares(level: mid).reduce(0, +) < total { lo = mid } else { hi = mid }
    }
    let final = shares(level: hi)
    guard abs(final.reduce(0, +) - total) < 1e-6 * total else { return nil }  // caps too tight
    // Reachable only if the sites' excess over P fits in the extra replicas: sum(max(0, Y - P)) <= (RF - m) P.
    var bySite: [String: Double] = [:]
    for (i, node) in eligible.enumerated() { bySite[node.site, default: 0] += final[i] }
    let excess = bySite.values.reduce(0.0) { $0 + max(0, $1 - p) }
    guard excess <= Double(policy.replicationFactor - policy.minSites) * p * (1 + 1e-9) + 1e-6 else { return nil }
    return Dictionary(uniqueKeysWithValues: eligible.enumerated().map { ($1.id, final[$0]) })
}

extension Array {
    /// A deterministic shuffle from a seed.
    func shuffled(seed: UInt64) -> [Element] {
        var rng = SplitMix64(seed: seed)
        return shuffled(using: &rng)
    }
}
