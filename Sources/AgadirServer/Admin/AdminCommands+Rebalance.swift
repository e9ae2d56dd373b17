import AgadirCluster
import AgadirCore
import AgadirWire

extension AdminCommands {
    /// `rebalance.set` input: only the fields given change.
    public struct RebalanceChange: Codable, Sendable {
        public var intraSiteBytesPerSecond: UInt64?
        public var interSiteBytesPerSecond: UInt64?
        public var paused: Bool?
    }

    /// `rebalance.set` answer.
    public struct RebalanceSetView: Codable, Sendable {
        public var settings: RebalanceSettings
        /// Members that took the settings now; the others learn them from a peer later.
        public var reached: [String]
        public var unreached: [String]
    }

    /// One node's line of `rebalance.status`.
    public struct RebalanceNodeView: Codable, Sendable {
        public var node: String
        public var status: NodeRebalanceStatus?
        public var error: String?
    }

    /// `rebalance.status` answer: every node of the layout, and the sums.
    public struct RebalanceView: Codable, Sendable {
        public var layoutVersion: UInt64
        public var liveVersions: [UInt64]
        public var nodes: [RebalanceNodeView]
        public var partitionsTotal: Int
        public var partitionsDone: Int
        public var bytesMoved: UInt64
        public var bytesLeftEstimate: UInt64?
        public var rateBytesPerSecond: UInt64
        public var etaSeconds: UInt64?
        /// True when one version is live and every node has dropped what it no longer owns.
        public var complete: Bool
        public var settings: RebalanceSettings
    }

    func rebalance(_ command: String, input: [UInt8], cluster: ClusterBinding) async throws(AgadirError) -> [UInt8] {
        guard let rebalancer = cluster.rebalancer else {
            throw AgadirError(.invalidArgument, "this node runs no rebalancer")
        }
        switch command {
        case "rebalance.status":
            return try AdminJSON.encode(await rebalanceView(cluster, rebalancer))
        default:
            let change = try AdminJSON.decode(RebalanceChange.self, input, "the input of \(command)")
            var next = rebalancer.settings
            if let v = change.intraSiteBytesPerSecond { next.intraSiteBytesPerSecond = v }
            if let v = change.interSiteBytesPerSecond { next.interSiteBytesPerSecond = v }
            if let p = change.paused { next.paused = p }
            next.changedMillis = max(WallMillis.now(), next.changedMillis + 1)
            next.changedBy = cluster.node.nodeID
            try rebalancer.adopt(next)
            let body = try AdminJSON.encode(next)
            var reached = [cluster.node.nodeID]
            var unreached: [String] = []
            let snapshot = cluster.node.snapshot()
            let members = Set(snapshot.layout.current.nodes.map(\.id)).union(snapshot.endpoints.keys).subtracting([cluster.node.nodeID])
            for member in members.sorted() {
                guard snapshot.alive.contains(member), let links = cluster.node.links else {
                    unreached.append(member)
                    continue
                }
                do throws(AgadirError) {
                    _ = try await links.call(member, .rebalanceSet, body: body, maxResponseBytes: 0)
                    reached.append(member)
                } catch {
                    unreached.append(member)
                }
            }
            logger.notice("rebalance settings set", metadata: ["reached": "\(reached.count)", "unreached": "\(unreached)"])
            return try AdminJSON.encode(RebalanceSetView(settings: next, reached: reached.sorted(), unreached: unreached))
        }
    }

    /// The rebalance of every node; `known` are statuses already read (by `cluster.status`),
    /// the others are asked for.
    func rebalanceView(
        _ cluster: ClusterBinding, _ rebalancer: Rebalancer, known: [String: NodeRebalanceStatus]? = nil
    ) async -> RebalanceView {
        let layout = cluster.node.layout
        let snapshot = cluster.node.snapshot()
        let members = Set(layout.current.nodes.map(\.id)).union(snapshot.endpoints.keys).union([cluster.node.nodeID]).sorted()
        let statuses = if let known { known } else { await rebalancer.statuses(of: members) }
        var view = RebalanceView(
            layoutVersion: layout.current.version, liveVersions: layout.live.map(\.version), nodes: [], partitionsTotal: 0,
            partitionsDone: 0, bytesMoved: 0, bytesLeftEstimate: nil, rateBytesPerSecond: 0, etaSeconds: nil,
            complete: layout.live.count == 1, settings: rebalancer.settings)
        var left: UInt64 = 0
        var leftKnown = true
        for member in members {
            guard let s = statuses[member] else {
                let why = snapshot.alive.contains(member) ? "did not answer" : "not alive"
                view.nodes.append(RebalanceNodeView(node: member, status: nil, error: why))
                if layout.current.node(member) != nil { view.complete = false }
                continue
            }
            view.nodes.append(RebalanceNodeView(node: member, status: s, error: nil))
            let pending = s.syncedVersion < layout.current.version
            view.partitionsTotal += pending ? s.partitionsTotal : 0
            view.partitionsDone += pending ? s.partitionsDone : 0
            view.bytesMoved += s.moved.bytes
            view.rateBytesPerSecond += s.rateBytesPerSecond
            if pending {
                if let l = s.bytesLeftEstimate { left += l } else if s.partitionsTotal > s.partitionsDone { leftKnown = false }
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
