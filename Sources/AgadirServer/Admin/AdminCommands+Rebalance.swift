import AgadirCluster
import AgadirCore
import AgadirWire

extension AdminCommands {

    /// `rebalance.set`: the change is adopted here, then sent to every node of the audience;
    /// a node not reached learns it later from a peer (the newest change wins).
    func rebalanceSet(_ change: Admin.RebalanceChange, _ cluster: ClusterBinding) async throws(AgadirError)
        -> Admin.RebalanceSetView
    {
        let rebalancer = try rebalancer(cluster)
        var next = rebalancer.settings
        if let v = change.intraSiteBytesPerSecond { next.intraSiteBytesPerSecond = v }
        if let v = change.interSiteBytesPerSecond { next.interSiteBytesPerSecond = v }
        if let p = change.paused { next.paused = p }
        next.changedMillis = max(WallMillis.now(), next.changedMillis + 1)
        next.changedBy = cluster.node.nodeID
        try rebalancer.adopt(next)
        let settings = next
        let sent = await cluster.node.fanOut(
            cluster.node.adminAudience(), request: .rebalanceSet, body: try AdminJSON.encode(next)
        ) { () throws(AgadirError) in try rebalancer.adopt(settings) }
        logger.notice(
            "rebalance settings set", metadata: ["reached": "\(sent.reached.count)", "unreached": "\(sent.unreached)"])
        return Admin.RebalanceSetView(settings: next, reached: sent.reached, unreached: sent.unreached)
    }

    /// The rebalance of every node; `known` are statuses already read (by `cluster.status`),
    /// the others are asked for.
    func rebalanceView(
        _ cluster: ClusterBinding, _ rebalancer: Rebalancer, known: [String: NodeRebalanceStatus]? = nil
    ) async -> Admin.RebalanceView {
        let layout = cluster.node.layout
        let snapshot = cluster.node.snapshot()
        let members = cluster.node.adminAudience()
        let statuses = if let known { known } else { await rebalancer.statuses(of: members) }
        var view = Admin.RebalanceView(
            layoutVersion: layout.current.version, liveVersions: layout.live.map(\.version), nodes: [],
            partitionsTotal: 0,
            partitionsDone: 0, bytesMoved: 0, bytesLeftEstimate: nil, rateBytesPerSecond: 0, etaSeconds: nil,
            complete: layout.live.count == 1, settings: rebalancer.settings)
        var left: UInt64 = 0
        var leftKnown = true
        for member in members {
            guard let s = statuses[member] else {
                let why = snapshot.alive.contains(member) ? "did not answer" : "not alive"
                view.nodes.append(Admin.RebalanceNodeView(node: member, status: nil, error: why))
                if layout.current.node(member) != nil { view.complete = false }
                continue
            }
            view.nodes.append(Admin.RebalanceNodeView(node: member, status: s, error: nil))
            let pending = s.syncedVersion < layout.current.version
            view.partitionsTotal += pending ? s.partitionsTotal : 0
            view.partitionsDone += pending ? s.partitionsDone : 0
            view.bytesMoved += s.moved.bytes
            view.rateBytesPerSecond += s.rateBytesPerSecond
            if pending {
                if let l = s.bytesLeftEstimate {
                    left += l
                } else if s.partitionsTotal > s.partitionsDone {
                    leftKnown = false
                }
            }
            if s.droppedVersion < layout.current.version || s.liveVersions.count > 1 { view.complete = false }
        }
        if leftKnown {
            view.bytesLeftEstimate = left
            if view.rateBytesPerSecond > 0 { view.etaSeconds = left / view.rateBytesPerSecond }
        }
        return view
    }
}
