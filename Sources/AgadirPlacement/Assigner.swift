import AgadirCore

/// Max over a range of integer keys, with point updates (an iterative segment tree).
struct MaxTree {
    private let size: Int
    private var tree: [Int]

    init(count: Int) {
        var size = 1
        while size < max(1, count) { size <<= 1 }
        self.size = size
        tree = [Int](repeating: -1, count: 2 * size)
    }

    mutating func set(_ i: Int, _ key: Int) {
        var at = i + size
        tree[at] = key
        at >>= 1
        while at >= 1 {
            tree[at] = max(tree[2 * at], tree[2 * at + 1])
            at >>= 1
        }
    }

    /// Largest key in `range`; -1 when empty.
    func maximum(in range: Range<Int>) -> Int {
        var lo = range.lowerBound + size
        var hi = range.upperBound + size
        var best = -1
        while lo < hi {
            if lo & 1 == 1 {
                best = Swift.max(best, tree[lo])
                lo += 1
            }
            if hi & 1 == 1 {
                hi -= 1
                best = Swift.max(best, tree[hi])
            }
            lo >>= 1
            hi >>= 1
        }
        return best
    }
}

/// Builds one policy's partition map from targets (`Shares`) and, when there is one, the
/// previous map. docs/placement.md, "The planner", explains each phase and why it is correct.
///
/// A partition is a list of node indices in rank order, with a parallel flag telling which
/// entries were placed by this run ("fresh"). Invariant after every step: each partition's
/// nodes are distinct, eligible, and independent (size <= RF and at most RF - minSites of them
/// on an already-used site), so it can always be completed to a valid replica set.
struct Assigner {
    let pb: PlacementProblem
    let target: [Int]
    private(set) var count: [Int]
    private(set) var members: [[Int]]
    private(set) var fresh: [[Bool]]
    /// Partitions changed by this run.
    private var touched: [Bool]
    /// Per node, the partitions holding it (any order); `slot[p][k]` is where partition p's
    /// k-th member appears in its node's list, so that removal is O(1).
    private var holders: [[Int]]
    private var slot: [[Int]]
    /// Per node, how many of its entries are fresh.
    private var freshCount: [Int]
    /// Per node, how many of its kept replicas may still be taken away: max(0, kept - target)
    /// after `keep`. Rule 3: a node within its target keeps every valid replica it had.
    private var keptAllowance: [Int]
    /// Per partition, the valid members kept from the previous map, in their order: a node that
    /// comes back to a partition it held returns to its place, as a kept replica.
    private var original: [[Int]]
    private var tree: MaxTree
    private let indexBits: Int
    /// Work left for augmenting-path searches, counted in candidate checks: bounds the run
    /// time on adversarial inputs while keeping the result deterministic.
    private var searchBudget: Int
    private var visitStamp: [Int]
    private var expandStamp: [Int]
    private var stamp = 0

    /// Counters for tests and the docs.
    private(set) var stats = Stats()
    struct Stats: Sendable, Hashable {
        /// Chains that moved only replicas placed by this run.
        var augmentations = 0
        /// Chains that had to move a kept replica (one extra slot moved each).
        var keptMoves = 0
        var failedAugmentations = 0
        /// Open slots given to a node at or over its target (no chain found within the budget).
        var overTargetFills = 0
        /// Kept replicas of nodes within their target moved to bring another node back within
        /// the balance tolerance (extra movement; see `restoreBalance`).
        var balanceMoves = 0
        /// Previous replicas of eligible nodes dropped because the partition had too many on
        /// one site to still reach minSites (after a node moved site or a label changed).
        var siteDrops = 0
    }

    init(problem: PlacementProblem, target: [Int]) {
        pb = problem
        self.target = target
        let n = problem.count
        let p = problem.partitions
        count = [Int](repeating: 0, count: n)
        members = [[Int]](repeating: [], count: p)
        fresh = [[Bool]](repeating: [], count: p)
        touched = [Bool](repeating: false, count: p)
        holders = [[Int]](repeating: [], count: n)
        slot = [[Int]](repeating: [], count: p)
        freshCount = [Int](repeating: 0, count: n)
        keptAllowance = [Int](repeating: 0, count: n)
        original = [[Int]](repeating: [], count: p)
        tree = MaxTree(count: n)
        indexBits = Int.bitWidth - n.leadingZeroBitCount
        searchBudget = 20_000_000 + 40 * p * problem.rf
        visitStamp = [Int](repeating: 0, count: p)
        expandStamp = [Int](repeating: 0, count: n)
        for i in 0..<n { updateKey(i) }
    }

    /// Node ids per partition, rank order.
    var result: [[String]] { members.map { $0.map { pb.ids[$0] } } }

    // MARK: Bookkeeping

    func deficit(_ i: Int) -> Int { target[i] - count[i] }

    /// Key of node i in the tree: larger deficit first, then the smaller index.
    private mutating func updateKey(_ i: Int) {
        let d = deficit(i) + pb.partitions + 1  // > 0: count <= P and target >= 0
        tree.set(i, d << indexBits | ((1 << indexBits) - 1 - i))
    }

    private func node(ofKey key: Int) -> Int { (1 << indexBits) - 1 - (key & ((1 << indexBits) - 1)) }

    private mutating func insert(_ i: Int, into p: Int, at position: Int, fresh isFresh: Bool) {
        members[p].insert(i, at: position)
        fresh[p].insert(isFresh, at: position)
        slot[p].insert(holders[i].count, at: position)
        holders[i].append(p)
        if isFresh { freshCount[i] += 1 }
        count[i] += 1
        updateKey(i)
    }

    /// Entry `position` of partition p may be taken away: placed by this run, or a kept replica
    /// of a node whose allowance is not used up.
    private func isMovable(at position: Int, in p: Int) -> Bool {
        fresh[p][position] || keptAllowance[members[p][position]] > 0
    }

    /// Adds node i to partition p: at the end as a fresh entry, or, if i held p in the previous
    /// map, back at its place among the other kept replicas.
    private mutating func append(_ i: Int, to p: Int) {
        touched[p] = true
        guard let rank = original[p].firstIndex(of: i) else {
            insert(i, into: p, at: members[p].count, fresh: true)
            return
        }
        var position = 0
        while position < members[p].count, !fresh[p][position],
            let other = original[p].firstIndex(of: members[p][position]), other < rank
        {
            position += 1
        }
        insert(i, into: p, at: position, fresh: false)
        keptAllowance[i] += 1
    }

    @discardableResult
    private mutating func remove(at position: Int, from p: Int) -> Bool {
        let i = members[p][position]
        let h = slot[p][position]
        let moved = holders[i].removeLast()
        if h < holders[i].count {
            // The last holder of i takes the freed place in i's list.
            holders[i][h] = moved
            if let k = members[moved].firstIndex(of: i) { slot[moved][k] = h }
        }
        members[p].remove(at: position)
        slot[p].remove(at: position)
        var beyondAllowance = false
        if fresh[p].remove(at: position) {
            freshCount[i] -= 1
        } else if keptAllowance[i] > 0 {
            keptAllowance[i] -= 1
        } else {
            beyondAllowance = true
            stats.balanceMoves += 1
        }
        touched[p] = true
        count[i] -= 1
        updateKey(i)
        return beyondAllowance
    }

    private mutating func remove(_ i: Int, from p: Int) {
        if let position = members[p].firstIndex(of: i) { remove(at: position, from: p) }
    }

    private func isFresh(_ i: Int, in p: Int) -> Bool {
        guard let k = members[p].firstIndex(of: i) else { return false }
        return fresh[p][k]
    }

    // MARK: Independence

    /// Replicas beyond the first on their site: |S| - sites(S).
    private func extrasUsed(_ set: [Int]) -> Int {
        var sites: [Int] = []
        for i in set where !sites.contains(pb.siteOf[i]) { sites.append(pb.siteOf[i]) }
        return set.count - sites.count
    }

    /// `extrasUsed` of `set` with its entry at `index` replaced by node `node`, without copying.
    private func extrasUsed(_ set: [Int], replacing index: Int, with node: Int) -> Int {
        var distinct = 0
        for k in set.indices {
            let site = k == index ? pb.siteOf[node] : pb.siteOf[set[k]]
            var seen = false
            for e in 0..<k where (e == index ? pb.siteOf[node] : pb.siteOf[set[e]]) == site {
                seen = true
                break
            }
            if !seen { distinct += 1 }
        }
        return set.count - distinct
    }

    /// `set + i` is still independent (completable to a valid replica set).
    private func canAdd(_ i: Int, to set: [Int]) -> Bool {
        guard set.count < pb.rf, !set.contains(i) else { return false }
        if set.contains(where: { pb.siteOf[$0] == pb.siteOf[i] }) { return extrasUsed(set) < pb.extras }
        return true
    }

    /// The admissible node with the largest deficit (then the smallest index) for `set`, or nil.
    private func best(for set: [Int]) -> Int? {
        guard set.count < pb.rf else { return nil }
        var excluded: [Range<Int>]
        if extrasUsed(set) >= pb.extras {
            // Only a new site keeps the set independent: exclude the sites present.
            excluded = set.map { pb.siteStart[pb.siteOf[$0]]..<pb.siteStart[pb.siteOf[$0] + 1] }
        } else {
            excluded = set.map { $0..<($0 + 1) }
        }
        excluded.sort { $0.lowerBound < $1.lowerBound }
        var bestKey = -1
        var from = 0
        for r in excluded {
            if r.lowerBound > from { bestKey = max(bestKey, tree.maximum(in: from..<r.lowerBound)) }
            from = max(from, r.upperBound)
        }
        if from < pb.count { bestKey = max(bestKey, tree.maximum(in: from..<pb.count)) }
        return bestKey < 0 ? nil : node(ofKey: bestKey)
    }

    // MARK: Fresh placement

    /// Places every partition from scratch, reaching every target exactly (docs/placement.md,
    /// "Fresh maps"): node copies laid out in a sequence, sites with at least P slots first,
    /// each node's copies contiguous, and position q given to partition q mod P. Returns false
    /// (leaving the state untouched) if the result would not be valid, which the targets'
    /// feasibility rules out.
    mutating func placeFresh() -> Bool {
        let p = pb.partitions
        var siteTotal = [Int](repeating: 0, count: pb.siteCount)
        for i in 0..<pb.count { siteTotal[pb.siteOf[i]] += target[i] }
        let siteOrder =
            (0..<pb.siteCount).filter { siteTotal[$0] >= p } + (0..<pb.siteCount).filter { siteTotal[$0] < p }
        var lists = [[Int]](repeating: [], count: p)
        var position = 0
        for j in siteOrder {
            for i in pb.siteStart[j]..<pb.siteStart[j + 1] {
                for q in position..<(position + target[i]) { lists[q % p].append(i) }
                position += target[i]
            }
        }
        guard position == p * pb.rf else { return false }
        for (partition, list) in lists.enumerated() {
            guard list.count == pb.rf, Set(list).count == pb.rf, extrasUsed(list) <= pb.extras else { return false }
            // Rotate so that rank 0 is spread over the layers (and so over the nodes).
            let shift = partition % pb.rf
            let rotated = Array(list[shift...] + list[..<shift])
            for i in rotated { append(i, to: partition) }
        }
        decorrelate()
        return true
    }

    /// The wrap-around layout ties each node to very few partners (node i shares most of its
    /// partitions with the nodes next to it in the sequence), which later leaves a removed
    /// node's slots fillable only by moving other replicas. Seeded pseudo-random swaps of two
    /// members between two partitions, each kept only if both partitions stay valid, spread
    /// the partners while keeping every count (and so every target) exact. The seed is a
    /// function of the policy name: the result is the same on every node.
    private mutating func decorrelate() {
        let p = pb.partitions
        guard p > 1, pb.rf > 0 else { return }
        var state = StableHash.of(pb.policy.name)
        func next() -> Int {
            state = StableHash.mix(state)
            return Int(truncatingIfNeeded: state >> 1)
        }
        for _ in 0..<(3 * p * pb.rf) {
            let a = next() % p
            let b = next() % p
            guard a != b else { continue }
            let i = next() % pb.rf
            let j = next() % pb.rf
            let x = members[a][i]
            let y = members[b][j]
            guard x != y, !members[a].contains(y), !members[b].contains(x),
                extrasUsed(members[a], replacing: i, with: y) <= pb.extras,
                extrasUsed(members[b], replacing: j, with: x) <= pb.extras
            else { continue }
            members[a][i] = y
            members[b][j] = x
        }
        // Rebuild the holder lists the swaps did not maintain.
        holders = [[Int]](repeating: [], count: pb.count)
        for q in 0..<p {
            for (k, i) in members[q].enumerated() {
                slot[q][k] = holders[i].count
                holders[i].append(q)
            }
        }
    }

    // MARK: Incremental placement

    /// Keeps the valid replicas of `previous` and moves only what must move. Returns the number
    /// of replicas kept.
    mutating func keep(previous: [[String]]) -> Int {
        var kept = 0
        for p in 0..<min(pb.partitions, previous.count) {
            for id in previous[p] {
                guard let i = pb.index[id], !members[p].contains(i), members[p].count < pb.rf else { continue }
                guard canAdd(i, to: members[p]) else {
                    stats.siteDrops += 1
                    continue
                }
                insert(i, into: p, at: members[p].count, fresh: false)
                kept += 1
            }
            original[p] = members[p]
        }
        for i in 0..<pb.count { keptAllowance[i] = max(0, count[i] - target[i]) }
        for p in 0..<min(pb.partitions, previous.count) where members[p].count != previous[p].count {
            touched[p] = true  // lost a replica that is not valid any more
        }
        return kept
    }

    /// After `keep`: fills open slots with under-target nodes, replaces surplus replicas of
    /// over-target nodes by under-target ones, then repairs what the greedy steps left with
    /// augmenting paths that move only replicas placed by this run or surplus replicas. Last,
    /// nodes still further than `tolerance` from their ideal share are brought back with chains
    /// that may move any replica (the only step that moves replicas of nodes within target).
    mutating func rebalance(ideal: [Double], tolerance: Double) {
        fillOpenSlots()
        swapSurplus()
        completeOpenSlots()
        resolveSurplus()
        restoreBalance(ideal: ideal, tolerance: tolerance)
    }

    /// Greedy fill: each open slot takes the admissible node with the largest deficit. Partitions
    /// that need a new site go first (they have the fewest candidates).
    private mutating func fillOpenSlots() {
        let open = (0..<pb.partitions).filter { members[$0].count < pb.rf }
        let constrained = open.filter { extrasUsed(members[$0]) >= pb.extras }
        let others = open.filter { extrasUsed(members[$0]) < pb.extras }
        for p in constrained + others {
            while members[p].count < pb.rf, let v = best(for: members[p]), deficit(v) > 0 {
                append(v, to: p)
            }
        }
    }

    /// The order in which node x gives up its partitions: untouched ones first (so that each
    /// partition loses at most one replica when it can), then a stable pseudo-random order.
    private func surplusOrder(of x: Int) -> [Int] {
        holders[x].sorted { a, b in
            if touched[a] != touched[b] { return !touched[a] }
            let ha = StableHash.mix(pb.idHash[x], a)
            let hb = StableHash.mix(pb.idHash[x], b)
            return ha != hb ? ha < hb : a < b
        }
    }

    /// Over-target nodes, largest surplus first, then by id.
    private func surplusNodes() -> [Int] {
        (0..<pb.count).filter { deficit($0) < 0 }.sorted { a, b in
            deficit(a) != deficit(b) ? deficit(a) < deficit(b) : pb.ids[a] < pb.ids[b]
        }
    }

    /// Direct swaps: a surplus replica of x is replaced, in the same partition, by the
    /// admissible node with the largest deficit.
    private mutating func swapSurplus() {
        for x in surplusNodes() {
            for p in surplusOrder(of: x) {
                guard deficit(x) < 0 else { break }
                guard let position = members[p].firstIndex(of: x), isMovable(at: position, in: p) else { continue }
                var rest = members[p]
                rest.remove(at: position)
                guard let v = best(for: rest), deficit(v) > 0 else { continue }
                remove(at: position, from: p)
                append(v, to: p)
            }
        }
    }

    /// Open slots the greedy fill could not give to an under-target node: augmenting paths,
    /// then (only if none exists within the budget) the least loaded admissible node.
    private mutating func completeOpenSlots() {
        for p in 0..<pb.partitions {
            while members[p].count < pb.rf {
                if augment(from: p, movingKept: false) || augment(from: p, movingKept: true) { continue }
                // Always exists: a partial independent set extends (the matroid has rank RF).
                guard let v = best(for: members[p]) else { return }
                stats.overTargetFills += 1
                append(v, to: p)
            }
        }
    }

    /// Surplus that direct swaps could not place: free one of x's slots and look for an
    /// augmenting path into it; put x back if there is none.
    private mutating func resolveSurplus() {
        for x in surplusNodes() {
            var tries = 0
            for p in surplusOrder(of: x) {
                guard deficit(x) < 0, tries < 64, searchBudget > 0 else { break }
                guard let position = members[p].firstIndex(of: x), isMovable(at: position, in: p) else { continue }
                tries += 1
                let wasFresh = fresh[p][position]
                let wasTouched = touched[p]
                let counted = remove(at: position, from: p)
                if augment(from: p, movingKept: false, excluding: x) { continue }
                if augment(from: p, movingKept: true, excluding: x) { continue }
                undoRemoval(of: x, from: p, at: position, fresh: wasFresh, counted: counted, touched: wasTouched)
            }
        }
    }

    /// Puts back an entry taken out for a chain that was not found.
    private mutating func undoRemoval(
        of x: Int, from p: Int, at position: Int, fresh wasFresh: Bool, counted: Bool, touched wasTouched: Bool
    ) {
        insert(x, into: p, at: position, fresh: wasFresh)
        if !wasFresh {
            if counted { stats.balanceMoves -= 1 } else { keptAllowance[x] += 1 }
        }
        touched[p] = wasTouched
    }

    /// Brings every node back within `tolerance` of its ideal share (at least one slot) when
    /// keeping replicas in place left it further off: an over-band node gives up a slot and a
    /// chain that may move any replica fills it; an under-band node is reached by a chain from a
    /// slot given up by an over-target node. Each kept replica moved here is one extra slot moved.
    private mutating func restoreBalance(ideal: [Double], tolerance: Double) {
        func band(_ i: Int) -> Double { max(1, tolerance * ideal[i]) }
        func over(_ i: Int) -> Bool { Double(count[i]) > ideal[i] + band(i) }
        func under(_ i: Int) -> Bool { Double(count[i]) < ideal[i] - band(i) }
        for _ in 0..<2 {
            var progress = false
            let overNodes = (0..<pb.count).filter(over).sorted {
                deficit($0) != deficit($1) ? deficit($0) < deficit($1) : $0 < $1
            }
            for x in overNodes {
                for p in surplusOrder(of: x) {
                    guard over(x), searchBudget > 0 else { break }
                    guard let position = members[p].firstIndex(of: x) else { continue }
                    let wasFresh = fresh[p][position]
                    let wasTouched = touched[p]
                    let counted = remove(at: position, from: p)
                    if augment(from: p, movingKept: true, movingAll: true, excluding: x) {
                        progress = true
                        continue
                    }
                    undoRemoval(of: x, from: p, at: position, fresh: wasFresh, counted: counted, touched: wasTouched)
                }
            }
            let underNodes = (0..<pb.count).filter(under).sorted {
                deficit($0) != deficit($1) ? deficit($0) > deficit($1) : $0 < $1
            }
            for v in underNodes {
                let donors = (0..<pb.count).filter { deficit($0) < 0 }.sorted {
                    deficit($0) != deficit($1) ? deficit($0) < deficit($1) : $0 < $1
                }
                donorLoop: for x in donors {
                    for p in surplusOrder(of: x).prefix(16) {
                        guard under(v), deficit(x) < 0, searchBudget > 0 else { break donorLoop }
                        guard let position = members[p].firstIndex(of: x) else { continue }
                        let wasFresh = fresh[p][position]
                        let wasTouched = touched[p]
                        let counted = remove(at: position, from: p)
                        if augment(from: p, movingKept: true, movingAll: true, excluding: x, minDeficit: deficit(v)) {
                            progress = true
                            continue
                        }
                        undoRemoval(
                            of: x, from: p, at: position, fresh: wasFresh, counted: counted, touched: wasTouched)
                    }
                }
            }
            if !progress { return }
        }
    }

    /// Breadth-first search for a shortest chain that fills one open slot of partition `start`
    /// with an under-target node: `start` takes y1 from q1, q1 takes y2 from q2, ..., the last
    /// partition takes an under-target node. Every partition on the chain changes once (one
    /// member out, one in) and the change is checked against that partition's own state, so the
    /// chain keeps every partition independent. Counts change only for the under-target node
    /// (+1). Without `movingKept`, only entries placed by this run move; with it, kept replicas
    /// of nodes with allowance left may move too (each such move costs one extra slot moved and
    /// one unit of that node's allowance; replicas of nodes within their target never move).
    private mutating func augment(
        from start: Int, movingKept: Bool, movingAll: Bool = false, excluding: Int = -1, minDeficit: Int = 1
    ) -> Bool {
        stamp += 1
        visitStamp[start] = stamp
        var queue: [(partition: Int, evicted: Int, parent: Int)] = [(start, -1, -1)]
        var movers = (0..<pb.count).filter {
            $0 != excluding
                && (movingAll ? !holders[$0].isEmpty : freshCount[$0] > 0 || (movingKept && keptAllowance[$0] > 0))
        }
        var head = 0
        while head < queue.count {
            guard searchBudget > 0 else { break }
            let entry = queue[head]
            var set = members[entry.partition]
            if entry.evicted >= 0, let k = set.firstIndex(of: entry.evicted) { set.remove(at: k) }
            if let v = best(for: set), deficit(v) >= minDeficit {
                let keptMoved = apply(queue, end: head, incoming: v)
                if keptMoved > 0 { stats.keptMoves += keptMoved } else { stats.augmentations += 1 }
                return true
            }
            var m = 0
            while m < movers.count {
                searchBudget -= 1
                let y = movers[m]
                if expandStamp[y] != stamp, !canAdd(y, to: set) {
                    m += 1
                    continue
                }
                if expandStamp[y] != stamp {
                    expandStamp[y] = stamp
                    let keptMovable = movingAll || (movingKept && keptAllowance[y] > 0)
                    for q in holders[y] where visitStamp[q] != stamp && (keptMovable || isFresh(y, in: q)) {
                        searchBudget -= 1
                        visitStamp[q] = stamp
                        queue.append((q, y, head))
                    }
                }
                movers.swapAt(m, movers.count - 1)
                movers.removeLast()
            }
            head += 1
        }
        stats.failedAugmentations += 1
        return false
    }

    /// Carries out a chain found by `augment`; returns how many kept replicas it moved.
    private mutating func apply(
        _ queue: [(partition: Int, evicted: Int, parent: Int)], end: Int, incoming: Int
    ) -> Int {
        var at = end
        var incoming = incoming
        var keptMoved = 0
        while true {
            let entry = queue[at]
            if entry.evicted >= 0 {
                if !isFresh(entry.evicted, in: entry.partition) { keptMoved += 1 }
                remove(entry.evicted, from: entry.partition)
            }
            append(incoming, to: entry.partition)
            guard entry.parent >= 0 else { return keptMoved }
            incoming = entry.evicted
            at = entry.parent
        }
    }

    // MARK: Checks

    /// Every partition holds RF distinct nodes on at least minSites sites.
    func isValid() -> Bool {
        members.allSatisfy { set in set.count == pb.rf && Set(set).count == pb.rf && extrasUsed(set) <= pb.extras }
    }
}
