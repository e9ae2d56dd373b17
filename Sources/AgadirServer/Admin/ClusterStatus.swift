import AgadirCluster
import AgadirCore
import AgadirPlacement
import AgadirWire

// MARK: agadir admin status (`cluster.status`)

extension AdminCommands {

    func clusterStatus(_ cluster: ClusterBinding) async throws(AgadirError) -> Admin.ClusterStatusView {
        let rebalancer = try rebalancer(cluster)
        let node = cluster.node
        let layout = node.layout
        let current = layout.current
        let infos = Dictionary(
            (node.gossip?.memberInfos() ?? []).map { ($0.nodeID, $0) }, uniquingKeysWith: { a, _ in a })
        func state(_ id: String) -> String {
            id == node.nodeID ? MemberInfo.State.alive : infos[id]?.state ?? "unknown"
        }
        let ids = node.adminAudience()
        let alive = Set(ids.filter { state($0) == MemberInfo.State.alive })
        let statuses = await rebalancer.nodeStatuses(of: ids) { await cluster.localStatus() }

        var nodes: [Admin.StatusNodeView] = []
        var reasons: [String] = []
        var hintsTotal = 0
        for id in ids {
            let spec = current.node(id)
            let site =
                spec?.site ?? layout.live.reversed().lazy.compactMap { $0.node(id)?.site }.first ?? infos[id]?.site
                ?? ""
            var view = Admin.StatusNodeView(
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
                if let r = s.repair {
                    view.repair = "\(r.state), \(r.passes) pass(es), \(r.partitionsRepaired) partition(s) repaired"
                }
                if let sc = s.scrub {
                    view.scrub =
                        "\(sc.state), \(sc.chunksChecked) checked, \(sc.corruptFound) corrupt, \(sc.repaired) repaired"
                    view.quarantinedChunks = sc.quarantined
                    if sc.quarantined > 0 {
                        reasons.append(
                            "\(sc.quarantined) corrupt chunk(s) quarantined on \(id) with no good copy stored yet")
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
                "rebalance in progress: layout versions \(layout.live.map { String($0.version) }.joined(separator: ", ")) are live"
            )
        }
        let known = statuses.compactMapValues { try? $0.get().rebalance }
        let r = await rebalanceView(cluster, rebalancer, known: known)
        // Reasons sorted so the same state always reads the same.
        return Admin.ClusterStatusView(
            node: node.nodeID, layoutVersion: current.version, liveVersions: layout.live.map(\.version),
            healthy: reasons.isEmpty,
            reasons: reasons.sorted(), nodes: nodes, underReplicated: under,
            rebalance: Admin.RebalanceSummary(
                liveVersions: r.liveVersions, complete: r.complete, partitionsTotal: r.partitionsTotal,
                partitionsDone: r.partitionsDone,
                bytesMoved: r.bytesMoved, bytesLeftEstimate: r.bytesLeftEstimate,
                rateBytesPerSecond: r.rateBytesPerSecond,
                etaSeconds: r.etaSeconds),
            hintsPending: hintsTotal)
    }
}
