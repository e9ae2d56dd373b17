import AgadirCore
import Testing

@testable import AgadirPlacement

/// Worst figures seen by the property tests, printed so docs/placement.md can quote them.
struct Worst: CustomStringConvertible {
    var shareDeviation = 0.0
    var shareDeviationCase = ""
    var targetMisses = 0
    var layouts = 0
    var unsatisfiable = 0

    mutating func record(deviation: Double, at label: String) {
        if deviation > shareDeviation {
            shareDeviation = deviation
            shareDeviationCase = label
        }
    }

    var description: String {
        "\(layouts) layouts (\(unsatisfiable) unsatisfiable): worst share deviation "
            + "\(String(format3: shareDeviation * 100)) % (\(shareDeviationCase)), nodes off target: \(targetMisses)"
    }
}

extension String {
    /// Three decimals without Foundation.
    init(format3 value: Double) {
        let scaled = Int((value * 1000).rounded())
        let frac = abs(scaled % 1000)
        self = "\(scaled / 1000).\(frac < 10 ? "00" : frac < 100 ? "0" : "")\(frac)"
    }
}

/// Checks rules 1 and 2 on one map; returns the worst relative deviation over nodes whose ideal
/// share is at least 10 slots, and how many nodes missed their whole-slot target. `limit` is 10 %
/// for fresh maps and `Planner.balanceTolerance` after incremental plans.
func checkBalance(
    _ map: [[String]], policy: Policy, layout: Layout, label: String, limit: Double = 0.10,
    sourceLocation: SourceLocation = #_sourceLocation
) -> (deviation: Double, misses: Int) {
    let problems = violations(map, policy: policy, layout: layout)
    #expect(problems.isEmpty, "\(label): \(problems.prefix(3))", sourceLocation: sourceLocation)
    guard let shares = try? Planner.shares(policy: policy, layout: layout) else {
        Issue.record("\(label): shares failed", sourceLocation: sourceLocation)
        return (0, 0)
    }
    let held = counts(map)
    var worst = 0.0
    var misses = 0
    for share in shares {
        let actual = Double(held[share.node, default: 0])
        if share.ideal >= 10 {
            let deviation = abs(actual - share.ideal) / share.ideal
            worst = max(worst, deviation)
            #expect(
                deviation <= limit, "\(label): \(share.node) holds \(actual), ideal \(share.ideal)",
                sourceLocation: sourceLocation)
        }
        #expect(abs(Double(share.target) - share.ideal) < 1, "\(label): target \(share.target) vs \(share.ideal)")
        if held[share.node, default: 0] != share.target { misses += 1 }
    }
    let total = shares.reduce(0) { $0 + $1.target }
    #expect(total == policy.replicationFactor * layout.partitionCount, "\(label): targets sum to \(total)")
    return (worst, misses)
}

@Test func randomLayouts_freshMaps_areValidBalancedAndDeterministic() throws {
    var gen = RandomLayouts(seed: 0xA6AD_1200)
    var worst = Worst()
    var simpleCompared = 0
    var n = 0
    while worst.layouts - worst.unsatisfiable < 300 {
        n += 1
        let layout = gen.layout()
        let policy = gen.policy()
        let label =
            "layout \(n) (\(layout.nodes.count) nodes, \(layout.sites.count) sites, RF "
            + "\(policy.replicationFactor), minSites \(policy.minSites), \(policy.selector))"
        worst.layouts += 1
        let eligible = layout.eligibleNodes(for: policy)
        let eligibleSites = Set(eligible.map(\.site)).count
        guard eligible.count >= policy.replicationFactor, eligibleSites >= policy.minSites else {
            worst.unsatisfiable += 1
            let error = expectError(.policyUnsatisfiable) { () throws(AgadirError) in
                try Planner.assign(policy: policy, layout: layout, previous: nil)
            }
            #expect(error?.message.contains("policy 'random' needs \(policy.replicationFactor) node") == true)
            continue
        }
        let map = try Planner.assign(policy: policy, layout: layout, previous: nil)
        let (deviation, misses) = checkBalance(map, policy: policy, layout: layout, label: label)
        worst.record(deviation: deviation, at: label)
        worst.targetMisses += misses

        // The general water-filling agrees with the brief's simple one wherever that one is reachable.
        if let simple = simpleWaterFilling(policy: policy, layout: layout) {
            simpleCompared += 1
            for share in try Planner.shares(policy: policy, layout: layout) {
                let expected = simple[share.node, default: 0]
                #expect(abs(share.ideal - expected) <= 1e-6 * max(1, expected), "\(label): \(share.node)")
            }
        }

        // Same input, same output; shuffled input arrays, same output.
        #expect(try Planner.assign(policy: policy, layout: layout, previous: nil) == map, "\(label)")
        var shuffled = layout
        shuffled.nodes = layout.nodes.shuffled(seed: UInt64(n))
        shuffled.sites = layout.sites.shuffled(seed: UInt64(n) + 1)
        #expect(try Planner.assign(policy: policy, layout: shuffled, previous: nil) == map, "\(label) shuffled")
    }
    print("fresh maps: \(worst); compared with the simple water-filling on \(simpleCompared)")
}

@Test func randomLayouts_incrementalMaps_moveOnlySurplusAndInvalidSlots() throws {
    var gen = RandomLayouts(seed: 0xA6AD_1201)
    var worst = Worst()
    var moved = 0
    var lowerBound = 0
    var augmentations = 0
    var overTarget = 0
    var keptMoves = 0
    var balanceMoves = 0
    var steps = 0
    while steps < 320 {
        var layout = gen.layout()
        let policy = gen.policy()
        guard var map = try? Planner.assign(policy: policy, layout: layout, previous: nil) else { continue }
        // A few successive edits, each planned from the previous map.
        for round in 0..<3 {
            let next = gen.mutate(layout)
            let label =
                "step \(steps) round \(round) (\(next.nodes.count) nodes, RF \(policy.replicationFactor), "
                + "minSites \(policy.minSites), \(policy.selector))"
            let result: (replicas: [[String]], stats: Assigner.Stats)
            do {
                result = try Planner.assignWithStats(policy: policy, layout: next, previous: map)
            } catch {
                #expect(error.code == .policyUnsatisfiable, "\(label): \(error)")
                break
            }
            steps += 1
            worst.layouts += 1
            let newMap = result.replicas
            augmentations += result.stats.augmentations
            overTarget += result.stats.overTargetFills
            let (deviation, misses) = checkBalance(
                newMap, policy: policy, layout: next, label: label, limit: Planner.balanceTolerance)
            worst.record(deviation: deviation, at: label)
            worst.targetMisses += misses

            // Rule 3: an eligible node loses at most its surplus (old count - target), apart from
            // replicas dropped to keep minSites reachable after a node changed site and those moved
            // to bring a node back within the balance tolerance (both counted); kept replicas keep
            // their order.
            let shares = try Planner.shares(policy: policy, layout: next)
            let target = Dictionary(uniqueKeysWithValues: shares.map { ($0.node, $0.target) })
            var keptValid: [String: Int] = [:]
            for (old, new) in zip(map, newMap) {
                let survivors = old.filter { new.contains($0) }
                #expect(new.prefix(survivors.count).elementsEqual(survivors), "\(label): order \(old) -> \(new)")
                for id in old where target[id] != nil { keptValid[id, default: 0] += 1 }
            }
            var beyondSurplus = 0
            for (id, was) in keptValid.sorted(by: { $0.key < $1.key }) {
                let lost = zip(map, newMap).filter { $0.0.contains(id) && !$0.1.contains(id) }.count
                beyondSurplus += max(0, lost - max(0, was - target[id, default: 0]))
            }
            #expect(
                beyondSurplus <= result.stats.siteDrops + result.stats.balanceMoves,
                "\(label): \(beyondSurplus) slots lost beyond surplus, stats \(result.stats)")
            keptMoves += result.stats.keptMoves
            balanceMoves += result.stats.balanceMoves
            // Slots that had to move: those of nodes now absent or over target, plus new slots.
            let mustMove = shares.reduce(0) { $0 + max(0, $1.target - keptValid[$1.node, default: 0]) }
            moved += slotsMoved(from: map, to: newMap)
            lowerBound += mustMove
            map = newMap
            layout = next
        }
    }
    print(
        "incremental maps: \(worst); slots moved \(moved) for a lower bound of \(lowerBound); "
            + "chains \(augmentations), kept replicas moved by chains \(keptMoves), kept replicas taken beyond "
            + "their node's surplus to restore balance \(balanceMoves), slots given over target \(overTarget)")
    #expect(steps >= 300)
}
