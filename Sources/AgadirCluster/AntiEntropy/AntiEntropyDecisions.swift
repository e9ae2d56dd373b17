import AgadirPlacement
import AgadirWire

/// The decisions of anti-entropy (docs/rebalance.md, "Anti-entropy"), as pure functions.
public enum AntiEntropyDecisions {
    /// The pass due now: the scope asked for, else everything once `interval` has passed
    /// since the last pass; nil when none is due. `lastPass` nil means the worker just
    /// started: the first scheduled pass comes one interval later (and `startClock` says
    /// to start counting).
    public static func due(
        requested: RepairScope?, sinceLastPass: Duration?, interval: Duration
    ) -> (scope: RepairScope?, startClock: Bool) {
        if let requested { return (requested, false) }
        guard let since = sinceLastPass else { return (nil, true) }
        return since >= interval ? (RepairScope(), false) : (nil, false)
    }

    /// The partitions of `scope` this node holds in `layout`, by policy name then partition.
    public static func partitions(of scope: RepairScope, in layout: Layout, node: String) -> [(
        policy: String, partition: Int
    )] {
        var work: [(policy: String, partition: Int)] = []
        for policy in layout.maps.keys.sorted() where scope.policy == nil || scope.policy == policy {
            for p in 0..<layout.partitionCount where scope.partition == nil || scope.partition == p {
                if layout.replicas(policy: policy, partition: p).contains(node) { work.append((policy, p)) }
            }
        }
        return work
    }

    /// Old delete markers of a partition may be purged only when every other replica was
    /// compared and held the same manifests (old markers aside): then none holds an older
    /// live version the purge could bring back.
    public static func mayPurge(comparedAll: Bool, manifestsDiffered: Bool) -> Bool {
        comparedAll && !manifestsDiffered
    }
}
