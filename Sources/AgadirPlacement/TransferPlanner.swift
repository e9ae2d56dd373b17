import AgadirCore

/// One partition of one policy that moves to or away from a node.
public struct PartitionTransfer: Sendable, Hashable {
    public var policy: String
    public var partition: Int
    /// For a partition to receive: the nodes of the older live versions that hold it, same
    /// site as the receiving node first, then by site and id. Empty for a partition to drop.
    public var sources: [String]

    public init(policy: String, partition: Int, sources: [String]) {
        self.policy = policy
        self.partition = partition
        self.sources = sources
    }
}

/// What a node must copy in, and may drop once the older versions retire, for the layout's
/// live versions to converge on the newest (docs/rebalance.md, "Moving partitions").
public struct TransferPlan: Sendable, Hashable {
    /// The version the transfers lead to (the newest live one).
    public var version: UInt64
    /// Sorted by policy name, then partition.
    public var receive: [PartitionTransfer]
    public var drop: [PartitionTransfer]

    public var isEmpty: Bool { receive.isEmpty && drop.isEmpty }
}

/// Computes a node's transfers from the live layout versions. Pure and deterministic.
public enum TransferPlanner {
    /// A partition is received when the node is in the newest version's replica set and in
    /// no older live version's set (a policy new in the newest version has nothing to
    /// receive); it is dropped when the node is in an older live set and not in the newest.
    public static func plan(layout: ClusterLayout, node: String) -> TransferPlan {
        let target = layout.current
        let older = layout.live.dropLast()
        var receive: [PartitionTransfer] = []
        var drop: [PartitionTransfer] = []
        guard !older.isEmpty else { return TransferPlan(version: target.version, receive: [], drop: []) }
        let mySite = site(of: node, in: layout)
        for policy in target.maps.keys.sorted() {
            let sources = older.filter { $0.maps[policy] != nil }
            guard !sources.isEmpty else { continue }
            for partition in 0..<target.partitionCount {
                let wanted = target.replicas(policy: policy, partition: partition)
                var holders: [String] = []
                for l in sources {
                    for id in l.replicas(policy: policy, partition: partition) where !holders.contains(id) {
                        holders.append(id)
                    }
                }
                let inTarget = wanted.contains(node)
                let inOld = holders.contains(node)
                if inTarget, !inOld {
                    let ordered = holders.sorted { a, b in
                        let sa = site(of: a, in: layout)
                        let sb = site(of: b, in: layout)
                        return (sa == mySite ? 0 : 1, sa, a) < (sb == mySite ? 0 : 1, sb, b)
                    }
                    receive.append(PartitionTransfer(policy: policy, partition: partition, sources: ordered))
                } else if inOld, !inTarget {
                    drop.append(PartitionTransfer(policy: policy, partition: partition, sources: []))
                }
            }
        }
        return TransferPlan(version: target.version, receive: receive, drop: drop)
    }

    /// The node's site in the newest live version that has it ("" if none).
    static func site(of node: String, in layout: ClusterLayout) -> String {
        for l in layout.live.reversed() {
            if let n = l.node(node) { return n.site }
        }
        return ""
    }
}
