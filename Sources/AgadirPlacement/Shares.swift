import AgadirCore

/// One eligible node's share of a policy's replica slots (`Planner.shares`).
public struct NodeShare: Sendable, Hashable, Codable {
    public var node: String
    public var site: String
    /// The exact share by water-filling, in replica slots (partitions held); may be fractional.
    public var ideal: Double
    /// The whole number of slots the planner aims at: the ideal rounded by largest remainder.
    public var target: Int

    public init(node: String, site: String, ideal: Double, target: Int) {
        self.node = node
        self.site = site
        self.ideal = ideal
        self.target = target
    }
}

/// A policy's placement problem in index form: the eligible storage nodes ordered by (site name,
/// node id), so that every site is a contiguous range of indices.
///
/// Built from sorted copies of the layout's arrays, never from their given order or from any
/// dictionary's iteration order: the same layout gives the same problem on every node.
final class PlacementProblem {
    let policy: Policy
    let partitions: Int
    let rf: Int
    let minSites: Int
    /// Replicas a partition may place beyond the first on each of its sites: RF - minSites.
    let extras: Int
    /// Index -> node id, capacity, site index, stable hash of the id.
    let ids: [String]
    let capacities: [UInt64]
    let siteOf: [Int]
    let idHash: [UInt64]
    let siteNames: [String]
    /// Site j is the index range `siteStart[j] ..< siteStart[j + 1]`.
    let siteStart: [Int]
    let index: [String: Int]

    var count: Int { ids.count }
    var siteCount: Int { siteNames.count }

    init(policy: Policy, layout: Layout) throws(AgadirError) {
        self.policy = policy
        partitions = layout.partitionCount
        rf = policy.replicationFactor
        minSites = policy.minSites
        extras = policy.replicationFactor - policy.minSites

        var labels: [String: [String: String]] = [:]
        for site in layout.sites.sorted(by: { $0.name < $1.name }) where labels[site.name] == nil {
            labels[site.name] = site.labels
        }
        func eligible(_ site: String) -> Bool { policy.selector.matches(site: site, siteLabels: labels[site] ?? [:]) }
        var seen = Set<String>()
        let matching = layout.nodes
            .sorted { ($0.id, $0.site, $0.capacity) < ($1.id, $1.site, $1.capacity) }
            .filter { seen.insert($0.id).inserted && eligible($0.site) }
        let storage = matching.filter(\.isStorage).sorted { ($0.site, $0.id) < ($1.site, $1.id) }

        var siteNames: [String] = []
        var siteStart: [Int] = []
        var siteOf: [Int] = []
        for (i, node) in storage.enumerated() {
            if siteNames.last != node.site {
                siteNames.append(node.site)
                siteStart.append(i)
            }
            siteOf.append(siteNames.count - 1)
        }
        siteStart.append(storage.count)

        guard storage.count >= rf, siteNames.count >= minSites else {
            var message =
                "policy '\(policy.name)' needs \(plural(rf, "node")) with capacity on at least "
                + plural(minSites, "site")
            if policy.selector != .any { message += " matching \(policy.selector)" }
            if storage.isEmpty {
                message += "; the layout has no such node"
            } else {
                let shown = siteNames.prefix(12).joined(separator: ", ") + (siteNames.count > 12 ? ", …" : "")
                message +=
                    "; the layout has \(plural(storage.count, "such node")) on "
                    + "\(plural(siteNames.count, "site")) (\(shown))"
            }
            let gateways = matching.count - storage.count
            if gateways > 0 {
                message += " and \(plural(gateways, "matching gateway")) (capacity 0), which store nothing"
            }
            throw AgadirError(.policyUnsatisfiable, message)
        }

        self.siteNames = siteNames
        self.siteStart = siteStart
        self.siteOf = siteOf
        ids = storage.map(\.id)
        capacities = storage.map(\.capacity)
        idHash = storage.map { StableHash.of($0.id) }
        var index: [String: Int] = [:]
        for (i, id) in ids.enumerated() { index[id] = i }
        self.index = index
    }
}

/// FNV-1a over UTF-8, then a SplitMix64 finalizer: the same value in every process (Swift's
/// `Hasher` is seeded per process and must never decide placement).
enum StableHash {
    static func of(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return mix(h)
    }

    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func mix(_ a: UInt64, _ b: Int) -> UInt64 { mix(a ^ mix(UInt64(truncatingIfNeeded: b))) }
}

/// Each eligible node's share of the RF × P replica slots, by water-filling in proportion to
/// capacity under the constraints every valid placement obeys.
///
/// A valid replica set is a basis of a matroid (docs/placement.md, "Targets"): RF distinct nodes
/// with at most RF - minSites of them on an already-used site. The slot counts `y` that P valid
/// sets can produce are exactly the integer vectors with y(A) <= P · min(RF, |A|, sites(A) +
/// RF - minSites) for every node set A and y(all) = RF · P. The share is the lexicographically
/// optimal point of that polytope for the capacities (Fujishige 1980): the set with the smallest
/// rank per byte of capacity is filled first, in proportion to capacity, then the rest in turn.
/// With only the node cap (P) and the site cap (P · (RF - minSites + 1)) binding, this is the
/// usual "proportional, capped, excess redistributed" water-filling; the general form also
/// handles sets of several sites (e.g. RF 5, minSites 3: two sites together hold at most 4P).
///
/// Arithmetic is exact (integers), so every node computes the same shares.
struct Shares {
    /// Ideal of node i = `numerator[i] / denominator[i]` slots.
    var numerator: [UInt64]
    var denominator: [UInt64]
    /// Whole slots per node: sums to RF × P, each within one slot of the ideal, feasible.
    var target: [Int]

    func ideal(_ i: Int) -> Double { Double(numerator[i]) / Double(denominator[i]) }

    init(_ pb: PlacementProblem) {
        let n = pb.count
        let p = UInt64(pb.partitions)
        // Capacities scaled to at most 2^40 so that P × RF × w fits in 64 bits (P <= 2^16, RF <= 7).
        let maxCapacity = pb.capacities.max() ?? 1
        let shift = max(0, (64 - maxCapacity.leadingZeroBitCount) - 40)
        let weight = pb.capacities.map { max(1, $0 >> UInt64(shift)) }

        numerator = [UInt64](repeating: 0, count: n)
        denominator = [UInt64](repeating: 1, count: n)
        target = [Int](repeating: 0, count: n)
        var fixed = [Bool](repeating: false, count: n)
        var fixedCount = 0
        var siteTouched = [Bool](repeating: false, count: pb.siteCount)
        var touchedCount = 0
        var rankFixed = 0

        // Rank (in replicas per partition) the free set B adds to the fixed set F.
        func rank(size: Int, newSites: Int) -> Int {
            min(pb.rf, fixedCount + size, touchedCount + newSites + pb.extras) - rankFixed
        }

        while fixedCount < n {
            let free = (0..<n).filter { !fixed[$0] }
            // The best candidate: smallest units / weight; on a tie the larger set. `prefix` > 0 is
            // the heaviest `prefix` free nodes; otherwise the touched sites plus `newSites` new ones.
            var best: (units: Int, weight: UInt64, size: Int, prefix: Int, newSites: Int)? = nil
            func consider(units: Int, weight: UInt64, size: Int, prefix: Int, newSites: Int) {
                guard size > 0 else { return }
                let units = max(0, units)
                if let b = best {
                    let lhs = UInt64(units) * b.weight
                    let rhs = UInt64(b.units) * weight
                    guard lhs < rhs || (lhs == rhs && size > b.size) else { return }
                }
                best = (units, weight, size, prefix, newSites)
            }

            // Node-count term: the heaviest s free nodes, for every s.
            let byWeight = free.sorted { weight[$0] != weight[$1] ? weight[$0] > weight[$1] : $0 < $1 }
            var seenSite = [Bool](repeating: false, count: pb.siteCount)
            var newSites = 0
            var sum: UInt64 = 0
            for (s, i) in byWeight.enumerated() {
                sum += weight[i]
                let site = pb.siteOf[i]
                if !siteTouched[site], !seenSite[site] {
                    seenSite[site] = true
                    newSites += 1
                }
                consider(
                    units: rank(size: s + 1, newSites: newSites), weight: sum, size: s + 1, prefix: s + 1, newSites: 0)
            }

            // Site term: every free node of the sites already touched, plus whole new sites,
            // heaviest first.
            var siteWeight = [UInt64](repeating: 0, count: pb.siteCount)
            var siteSize = [Int](repeating: 0, count: pb.siteCount)
            for i in free {
                siteWeight[pb.siteOf[i]] += weight[i]
                siteSize[pb.siteOf[i]] += 1
            }
            var baseWeight: UInt64 = 0
            var baseSize = 0
            for j in 0..<pb.siteCount where siteTouched[j] {
                baseWeight += siteWeight[j]
                baseSize += siteSize[j]
            }
            let newSiteOrder = (0..<pb.siteCount).filter { !siteTouched[$0] && siteSize[$0] > 0 }
                .sorted { siteWeight[$0] != siteWeight[$1] ? siteWeight[$0] > siteWeight[$1] : $0 < $1 }
            var w = baseWeight
            var size = baseSize
            for q in 0...newSiteOrder.count {
                if q > 0 {
                    w += siteWeight[newSiteOrder[q - 1]]
                    size += siteSize[newSiteOrder[q - 1]]
                }
                consider(units: rank(size: size, newSites: q), weight: w, size: size, prefix: 0, newSites: q)
            }

            guard let chosen = best else { break }  // unreachable: the whole free set is a candidate
            let members: [Int]
            if chosen.prefix > 0 {
                members = Array(byWeight.prefix(chosen.prefix))
            } else {
                var inLayer = siteTouched
                for j in newSiteOrder.prefix(chosen.newSites) { inLayer[j] = true }
                members = free.filter { inLayer[pb.siteOf[$0]] }
            }
            let layer = (units: chosen.units, weight: chosen.weight, members: members)
            // Fill the layer in proportion to weight; round by largest remainder inside it (its
            // total, P × units, is whole), ties to the smaller node id.
            let total = p * UInt64(layer.units)
            var given: UInt64 = 0
            for i in layer.members {
                numerator[i] = total * weight[i]
                denominator[i] = layer.weight
                target[i] = Int(numerator[i] / layer.weight)
                given += UInt64(target[i])
            }
            let byRemainder = layer.members.sorted { a, b in
                let ra = numerator[a] % layer.weight
                let rb = numerator[b] % layer.weight
                return ra != rb ? ra > rb : pb.ids[a] < pb.ids[b]
            }
            for i in byRemainder.prefix(Int(total - given)) { target[i] += 1 }

            for i in layer.members {
                fixed[i] = true
                fixedCount += 1
                if !siteTouched[pb.siteOf[i]] {
                    siteTouched[pb.siteOf[i]] = true
                    touchedCount += 1
                }
            }
            rankFixed += layer.units
        }
        repairSiteExcess(pb)
    }

    /// Rounding can break the one constraint whole counts must meet beyond `target <= P`: the
    /// sum over sites of (site total - P, when positive) is at most (RF - minSites) × P. Moves a
    /// rounded-up slot of an over-P site to a rounded-down node of an under-P site until it
    /// holds; each node stays within one slot of its ideal.
    private mutating func repairSiteExcess(_ pb: PlacementProblem) {
        let p = pb.partitions
        let allowed = pb.extras * p
        for _ in 0..<(pb.count + 1) {
            var siteTotal = [Int](repeating: 0, count: pb.siteCount)
            for i in 0..<pb.count { siteTotal[pb.siteOf[i]] += target[i] }
            let excess = siteTotal.reduce(0) { $0 + max(0, $1 - p) }
            guard excess > allowed else { return }
            var donor: Int? = nil
            var recipient: Int? = nil
            for i in 0..<pb.count {
                let floor = Int(numerator[i] / denominator[i])
                if siteTotal[pb.siteOf[i]] > p, target[i] > floor {
                    if let d = donor, !remainderLess(i, d) { continue }
                    donor = i
                } else if siteTotal[pb.siteOf[i]] < p, target[i] == floor, numerator[i] % denominator[i] != 0,
                    target[i] < p
                {
                    if let r = recipient, !remainderLess(r, i) { continue }
                    recipient = i
                }
            }
            guard let d = donor, let r = recipient else { return }
            target[d] -= 1
            target[r] += 1
        }
    }

    /// Fractional part of node a's ideal < node b's (exact, 128-bit cross products).
    private func remainderLess(_ a: Int, _ b: Int) -> Bool {
        let ra = numerator[a] % denominator[a]
        let rb = numerator[b] % denominator[b]
        let lhs = ra.multipliedFullWidth(by: denominator[b])
        let rhs = rb.multipliedFullWidth(by: denominator[a])
        return (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}
