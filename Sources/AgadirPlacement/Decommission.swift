import AgadirCore

// MARK: Removing a node (docs/rebalance.md, "Drain and remove")

extension ClusterLayout {
    /// The live versions, oldest first, in which `node` is in some policy's replica set:
    /// while any is live the node may hold the only copies of some objects.
    public func versionsWithReplicas(on node: String) -> [UInt64] {
        live.filter { layout in layout.maps.values.contains { map in map.replicas.contains { $0.contains(node) } } }
            .map(\.version)
    }

    /// Refuses (`.nodeNotDrained`) the removal of a node that is in a replica set of a live
    /// version; a node in none (drained and retired, a gateway, or never given partitions)
    /// may go, as no data moves.
    public func checkRemovable(_ node: String) throws(AgadirError) {
        let versions = versionsWithReplicas(on: node)
        guard versions.isEmpty else {
            let held = live.filter { versions.contains($0.version) }.reduce(0) { n, layout in
                n + layout.maps.values.reduce(0) { $0 + $1.replicas.count { $0.contains(node) } }
            }
            throw AgadirError(
                .nodeNotDrained,
                "node \(node) is in \(held) partition replica set(s) of live layout version(s) "
                    + versions.map(String.init).joined(separator: ", ")
                    + " and may hold the only copies of some objects: drain it first (`agadir admin node drain \(node)`), "
                    + "wait for `agadir admin rebalance status` to say complete, then remove it; "
                    + "`--force` removes it anyway (for a node lost for good)")
        }
    }
}

// MARK: Under-replication (docs/operations.md, "Reading `agadir admin status`")

/// Pure figures about the replicas of a layout version.
public enum ReplicaHealth {
    /// The policies of `layout` (sorted by name) with at least one partition whose replica
    /// set names a node outside `alive`; policies with every replica alive are left out.
    public static func underReplicated(_ layout: Layout, alive: Set<String>) -> [UnderReplication] {
        var out: [UnderReplication] = []
        for name in layout.maps.keys.sorted() {
            guard let map = layout.maps[name] else { continue }
            let rf = layout.policy(name)?.replicationFactor ?? (map.replicas.first?.count ?? 0)
            let majority = rf / 2 + 1
            var entry = UnderReplication(
                policy: name, replicationFactor: rf, partitions: 0, belowQuorum: 0, unavailable: 0, nodesDown: [])
            var down: Set<String> = []
            for set in map.replicas {
                let missing = set.filter { !alive.contains($0) }
                guard !missing.isEmpty else { continue }
                down.formUnion(missing)
                entry.partitions += 1
                let up = set.count - missing.count
                if up < majority { entry.belowQuorum += 1 }
                if up == 0 { entry.unavailable += 1 }
            }
            guard entry.partitions > 0 else { continue }
            entry.nodesDown = down.sorted()
            out.append(entry)
        }
        return out
    }
}
