import AgadirCluster
import AgadirCore
import AgadirPlacement
import AgadirWire

// MARK: agadir admin status (`cluster.status`)

extension AdminCommands {
    /// One node of `cluster.status`.
    public struct StatusNodeView: Codable, Sendable {
        public var node: String
        public var site: String
        /// alive, suspect, dead, left (gossip), or unknown.
        public var state: String
        /// In the current layout version (false for a member not assigned yet, or a node
        /// removed but still in an older live version).
        public var inLayout: Bool
        /// Layout capacity in bytes (0 for a gateway); nil when not in the current version.
        public var capacity: UInt64?
        /// Partition replicas the node holds in the current version, all policies together.
        public var partitions: Int
        public var usedBytes: UInt64?
        /// Capacity minus used (nil for a gateway or when the status is unknown).
        public var freeBytes: UInt64?
        public var fsFreeBytes: UInt64?
        public var hintsPending: Int?
        public var chunks: Int?
        public var objects: Int?
        /// The node's rebalance state (idle, copying, ...).
        public var rebalance: String?
        /// Its anti-entropy: state and passes done.
        public var repair: String?
        /// Its scrub: state, chunks checked in the pass, corrupt found, quarantined now.
        public var scrub: String?
        public var quarantinedChunks: Int?
        /// Its garbage collection: chunks reclaimed, bytes freed.
        public var gc: String?
        /// Why the node's status is not known.
        public var error: String?
    }

    /// The rebalance in a few figures (the whole view is `rebalance.status`).
    public struct RebalanceSummary: Codable, Sendable {
        public var liveVersions: [UInt64]
        public var complete: Bool
        public var partitionsTotal: Int
        public var partitionsDone: Int
        public var bytesMoved: UInt64
        public var bytesLeftEstimate: UInt64?
        public var rateBytesPerSecond: UInt64
        public var etaSeconds: UInt64?
    }

    /// `cluster.status` answer.
    public struct ClusterStatusView: Codable, Sendable {
        /// The node that answered.
        public var node: String
        public var layoutVersion: UInt64
        public var liveVersions: [UInt64]
        /// True when `reasons` is empty.
        public var healthy: Bool
        /// Why the cluster is degraded, one sentence each.
        public var reasons: [String]
        /// Sorted by site, then node.
        public var nodes: [StatusNodeView]
        /// Per policy, the partitions of the current version with a replica not alive.
        public var underReplicated: [UnderReplication]
        public var rebalance: RebalanceSummary
        public var hintsPending: Int
    }

    func clusterStatus(_ cluster: ClusterBinding) async throws(AgadirError) -> ClusterStatusView {
        guard let rebalancer = cluster.rebalancer else {
            throw AgadirError(.invalidArgument, "this node runs no rebalancer; its cluster status is unknown")
        }
        let node = cluster.node
        let layout = node.layout
        let current = layout.current
        let infos = Dictionary((node.gossip?.memberInfos() ?? []).map { ($0.nodeID, $0) }, uniquingKeysWith: { a, _ in a })
        func state(_ id: String) -> String {
            id == node.nodeID ? MemberInfo.State.alive : infos[id]?.state ?? "unknown"
        }
        // Every node of a live version, every alive member (a node not assigned yet), this node.
        var ids = Set(layout.live.flatMap { $0.nodes.map(\.id) }).union([node.nodeID])
        for (id, info) in infos where info.state == MemberInfo.State.alive { ids.insert(id) }
        let alive = Set(ids.filter { state($0) == MemberInfo.State.alive })
        var statuses = await rebalancer.nodeStatuses(of: ids.sorted(), store: true)
        statuses[node.nodeID] = .success(await cluster.localStatus())

        var nodes: [StatusNodeView] = []
        var reasons: [String] = []
        var hintsTotal = 0
        for id in ids {
            let spec = current.node(id)
            let site = spec?.site ?? layout.live.reversed().lazy.compactMap { $0.node(id)?.site }.first ?? infos[id]?.site ?? ""
            var view = StatusNodeView(
                node: id, site: site, state: state(id), inLayout: spec != nil, capacity: spec?.capacity,
                partitions: current.maps.values.reduce(0) { n, map in n + map.replicas.count { $0.contains(id) } })
            switch statuses[id] {
            case .success(let s):
                if let store = s.store {
                    view.usedBytes = store.usedBytes
                    if let capacity = spec?.capacity, capacity > 0 {
                        view.freeBytes = capacity > store.usedBytes ? capacity - store.usedBytes : 0
                    }
                    view.fsFreeBytes = store.fsFreeBytes
                    view.hintsPending = store.hintsPending
                    view.chunks = store.chunks
                    view.objects = store.objects
                    if store.hintsPending > 0 {
                        hintsTotal += store.hintsPending
                        let targets = store.hintsByTarget.keys.sorted().joined(separator: ", ")
                        reasons.append("\(store.hintsPending) hint(s) pending on \(id) (for \(targets))")
                    }
                } else {
                    view.error = "its status has no store section (an older version?)"
                }
                view.rebalance = s.rebalance?.state
                if let r = s.repair { view.repair = "\(r.state), \(r.passes) pass(es), \(r.partitionsRepaired) partition(s) repaired" }
                if let sc = s.scrub {
                    view.scrub = "\(sc.state), \(sc.chunksChecked) checked, \(sc.corruptFound) corrupt, \(sc.repaired) repaired"
                    view.quarantinedChunks = sc.quarantined
                    if sc.quarantined > 0 {
                        reasons.append("\(sc.quarantined) corrupt chunk(s) quarantined on \(id) with no good copy stored yet")
                    }
                }
                if let g = s.gc { view.gc = "\(g.chunksReclaimed) chunk(s) reclaimed, \(g.bytesFreed) bytes freed" }
            case .failure(let error):
                view.error = error.message
            case nil:
                view.error = "not asked"
            }
            if spec != nil, view.state != MemberInfo.State.alive {
                reasons.append("node \(id) (site \(site)) is \(view.state)")
            } else if let error = view.error {
                reasons.append("the status of \(id) is unreadable: \(error)")
            }
            nodes.append(view)
        }
        nodes.sort { ($0.site, $0.node) < ($1.site, $1.node) }
        let under = ReplicaHealth.underReplicated(current, alive: alive)
        for u in under {
            reasons.append(
                "policy \(u.policy): \(u.partitions) partition(s) under-replicated (\(u.belowQuorum) below quorum, "
                    + "\(u.unavailable) with no replica alive); replicas down: \(u.nodesDown.joined(separator: ", "))")
        }
        if layout.live.count > 1 {
            reasons.append(
                "rebalance in progress: layout versions \(layout.live.map { String($0.version) }.joined(separator: ", ")) are live")
        }
        let known = statuses.compactMapValues { try? $0.get().rebalance }
        let r = await rebalanceView(cluster, rebalancer, known: known)
        // Reasons sorted so the same state always reads the same.
        return ClusterStatusView(
            node: node.nodeID, layoutVersion: current.version, liveVersions: layout.live.map(\.version), healthy: reasons.isEmpty,
            reasons: reasons.sorted(), nodes: nodes, underReplicated: under,
            rebalance: RebalanceSummary(
                liveVersions: r.liveVersions, complete: r.complete, partitionsTotal: r.partitionsTotal, partitionsDone: r.partitionsDone,
                bytesMoved: r.bytesMoved, bytesLeftEstimate: r.bytesLeftEstimate, rateBytesPerSecond: r.rateBytesPerSecond,
                etaSeconds: r.etaSeconds),
            hintsPending: hintsTotal)
    }
}
