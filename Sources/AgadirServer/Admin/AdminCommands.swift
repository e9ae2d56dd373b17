import AgadirCluster
import AgadirCore
import AgadirPlacement
import AgadirTransport
import AgadirWire
import Foundation
import Logging

/// The `agadir admin` commands a node serves through ADMIN (docs/protocol.md): JSON in,
/// JSON out. Layout and policy changes are staged on the node that receives them.
public struct AdminCommands: Sendable {
    let cluster: ClusterBinding?
    let logger: Logger

    public init(cluster: ClusterBinding?, logger: Logger) {
        self.cluster = cluster
        self.logger = logger
    }

    // MARK: Messages

    public struct Empty: Codable, Sendable {}
    public struct Assign: Codable, Sendable {
        public var node: String
        public var site: String
        public var capacity: UInt64
        public var siteLabels: [String: String]?
    }
    public struct Remove: Codable, Sendable { public var node: String }
    public struct SiteLabels: Codable, Sendable {
        public var site: String
        public var labels: [String: String]
    }
    public struct Partitions: Codable, Sendable { public var count: Int }
    public struct Apply: Codable, Sendable { public var version: UInt64 }
    public struct PolicySpec: Codable, Sendable {
        public var name: String
        public var replicationFactor: Int
        /// Selector text: `any`, `country=MA`, `sites=a,b`.
        public var sites: String
        public var minSites: Int
        public var read: String?
        public var write: String?
        public var codec: String?
        /// Apply at once as the next layout version (only when nothing else is staged).
        public var apply: Bool?
    }
    public struct Name: Codable, Sendable { public var name: String }

    public struct SiteView: Codable, Sendable, Hashable {
        public var name: String
        public var labels: [String: String]
    }
    public struct NodeView: Codable, Sendable, Hashable {
        public var id: String
        public var site: String
        public var capacity: UInt64
        /// Partition replicas this node holds per policy.
        public var partitions: [String: Int]
        /// From gossip: alive/suspect/dead/left, or `unknown`.
        public var state: String
        /// Layout version the node announces in gossip.
        public var announcedVersion: UInt64?
    }
    public struct PolicyView: Codable, Sendable, Hashable {
        public var name: String
        public var replicationFactor: Int
        public var sites: String
        public var minSites: Int
        public var read: String
        public var write: String
        public var codec: String
        /// Storage nodes and sites the policy may use in the current layout.
        public var eligibleNodes: Int
        public var eligibleSites: [String]
    }
    public struct LayoutView: Codable, Sendable {
        public var version: UInt64
        public var partitionCount: Int
        public var liveVersions: [UInt64]
        public var appliedMillis: UInt64
        public var sites: [SiteView]
        public var nodes: [NodeView]
        public var policies: [PolicyView]
        public var staged: [String]
        public var stagedPartitionCount: Int?
        /// Members whose configured site differs from the layout's.
        public var warnings: [String]
    }
    public struct LinkView: Codable, Sendable, Hashable {
        public var from: String
        public var to: String
        public var bytes: UInt64
    }
    public struct PolicyPlanView: Codable, Sendable, Hashable {
        public var policy: String
        public var partitionsMoved: Int
        public var replicasMoved: Int
        public var replicasBefore: [String: Int]
        public var replicasAfter: [String: Int]
        public var links: [LinkView]
    }
    public struct PlanView: Codable, Sendable {
        public var fromVersion: UInt64
        public var toVersion: UInt64
        public var totalPartitionsMoved: Int
        public var links: [LinkView]
        public var policies: [PolicyPlanView]
        public var changes: [String]
        public var layout: LayoutView?
        /// What the operator must know about this change (`node.remove` by force).
        public var warnings: [String]? = nil
    }
    public struct HistoryView: Codable, Sendable, Hashable {
        public var version: UInt64
        public var appliedMillis: UInt64
        public var summary: String
    }

    // MARK: Dispatch

    public func run(_ command: String, input: [UInt8]) async throws(AgadirError) -> [UInt8] {
        guard let cluster else {
            throw AgadirError(.invalidArgument, "this node has no cluster layer; admin command '\(command)' cannot run")
        }
        let node = cluster.node
        switch command {
        case "layout.show":
            return try AdminJSON.encode(layoutView(node))
        case "layout.assign":
            let a = try AdminJSON.decode(Assign.self, input, "the input of \(command)")
            if let labels = a.siteLabels { _ = try node.stage(.setSiteLabels(site: a.site, labels: labels)) }
            _ = try node.stage(.assignNode(id: a.node, site: a.site, capacity: a.capacity))
            return try AdminJSON.encode(layoutView(node))
        case "layout.remove":
            _ = try node.stage(.removeNode(id: try AdminJSON.decode(Remove.self, input, "the input of \(command)").node))
            return try AdminJSON.encode(layoutView(node))
        case "layout.site":
            let s = try AdminJSON.decode(SiteLabels.self, input, "the input of \(command)")
            _ = try node.stage(.setSiteLabels(site: s.site, labels: s.labels))
            return try AdminJSON.encode(layoutView(node))
        case "layout.partitions":
            _ = try node.stagePartitionCount(try AdminJSON.decode(Partitions.self, input, "the input of \(command)").count)
            return try AdminJSON.encode(layoutView(node))
        case "layout.revert":
            try node.revertStaged()
            return try AdminJSON.encode(layoutView(node))
        case "layout.plan":
            let (next, report) = try await node.plan()
            return try AdminJSON.encode(planView(report, node: node, next: next))
        case "layout.apply":
            let version = try AdminJSON.decode(Apply.self, input, "the input of \(command)").version
            let changes = node.staged.changes.map(\.description)
            let (next, report) = try await node.apply(version: version)
            var view = planView(report, node: node, next: next)
            view.changes = changes
            logger.notice("layout applied", metadata: ["version": "\(version)", "changes": "\(changes.count)"])
            return try AdminJSON.encode(view)
        case "layout.history":
            let history = node.layout.history.map { HistoryView(version: $0.version, appliedMillis: $0.appliedMillis, summary: $0.summary) }
            return try AdminJSON.encode(history)
        case "policy.create":
            let spec = try AdminJSON.decode(PolicySpec.self, input, "the input of \(command)")
            let policy = try Self.policy(spec)
            if spec.apply == true, !node.staged.changes.isEmpty {
                throw AgadirError(
                    .layoutVersionConflict,
                    "other layout changes are staged (\(node.staged.changes.count)); apply or revert them first, or create the policy without --apply")
            }
            _ = try node.stage(.addPolicy(policy))
            if spec.apply == true {
                let (next, report) = try await node.apply(version: node.layout.current.version + 1)
                return try AdminJSON.encode(planView(report, node: node, next: next))
            }
            return try AdminJSON.encode(layoutView(node))
        case "policy.list":
            return try AdminJSON.encode(layoutView(node).policies)
        case "policy.show":
            let name = try AdminJSON.decode(Name.self, input, "the input of \(command)").name
            guard let p = layoutView(node).policies.first(where: { $0.name == name }) else {
                throw AgadirError(.noSuchPolicy, "policy '\(name)' does not exist in layout \(node.layout.current.version)")
            }
            return try AdminJSON.encode(p)
        case "audit.residency":
            return try AdminJSON.encode(await clusterAudit(cluster))
        case "audit.node":
            return try AdminJSON.encode(try await node.residencyAudit())
        case "rebalance.status", "rebalance.set":
            return try await rebalance(command, input: input, cluster: cluster)
        case "repair.start", "repair.status":
            return try await repair(command, input: input, cluster: cluster)
        case "scrub.status", "scrub.start", "scrub.pause", "gc.status", "gc.start":
            return try await maintenance(command, cluster: cluster)
        case "node.drain", "node.remove":
            return try await self.node(command, input: input, cluster: cluster)
        case "cluster.status":
            return try AdminJSON.encode(try await clusterStatus(cluster))
        default:
            throw AgadirError(
                .invalidArgument,
                "admin command '\(command)' is unknown; this node knows layout.show, layout.assign, layout.remove, layout.site, "
                    + "layout.partitions, layout.revert, layout.plan, layout.apply, layout.history, policy.create, policy.list, "
                    + "policy.show, audit.residency, audit.node, rebalance.status, rebalance.set, repair.start, repair.status, "
                    + "scrub.status, scrub.start, scrub.pause, gc.status, gc.start, node.drain, node.remove, cluster.status")
        }
    }

    /// Every alive member's residency audit (this node's own without a network hop).
    func clusterAudit(_ cluster: ClusterBinding) async -> [ResidencyAudit] {
        let node = cluster.node
        let snapshot = node.snapshot()
        var members = Set(snapshot.layout.current.nodes.map(\.id)).union(snapshot.endpoints.keys)
        members.insert(node.nodeID)
        var out: [ResidencyAudit] = []
        for member in members.sorted() {
            if member == node.nodeID {
                do throws(AgadirError) {
                    out.append(try await node.residencyAudit())
                } catch {
                    out.append(ResidencyAudit(node: member, site: node.site, layoutVersion: 0, error: error.message))
                }
                continue
            }
            let site = snapshot.site(of: member)
            guard snapshot.alive.contains(member), let links = node.links else {
                out.append(ResidencyAudit(node: member, site: site, layoutVersion: 0, error: "not alive: not audited"))
                continue
            }
            do throws(AgadirError) {
                let answer = try await links.call(member, .residencyAudit, maxResponseBytes: PeerLimits.maxStructuredBodyBytes)
                out.append(try AdminJSON.decode(ResidencyAudit.self, answer.body, "the audit of \(member)"))
            } catch {
                out.append(ResidencyAudit(node: member, site: site, layoutVersion: 0, error: error.message))
            }
        }
        return out
    }

    // MARK: Views

    func layoutView(_ node: ClusterNode) -> LayoutView {
        let cluster = node.layout
        let layout = cluster.current
        let members = Dictionary(
            (node.gossip?.memberInfos() ?? []).map { ($0.nodeID, $0) }, uniquingKeysWith: { a, _ in a })
        let nodes = layout.nodes.map { n in
            var partitions: [String: Int] = [:]
            for (name, map) in layout.maps { partitions[name] = map.replicas.filter { $0.contains(n.id) }.count }
            return NodeView(
                id: n.id, site: n.site, capacity: n.capacity, partitions: partitions,
                state: members[n.id]?.state ?? "unknown", announcedVersion: members[n.id]?.layoutVersion)
        }
        var warnings: [String] = []
        for n in layout.nodes {
            if let m = members[n.id], m.site != n.site {
                warnings.append("node \(n.id) is configured with site '\(m.site)' but the layout puts it in '\(n.site)'")
            }
        }
        return LayoutView(
            version: layout.version, partitionCount: layout.partitionCount, liveVersions: cluster.live.map(\.version),
            appliedMillis: layout.appliedMillis, sites: layout.sites.map { SiteView(name: $0.name, labels: $0.labels) },
            nodes: nodes, policies: layout.policies.map { Self.policyView($0, layout: layout) },
            staged: node.staged.changes.map(\.description), stagedPartitionCount: node.staged.partitionCount,
            warnings: warnings)
    }

    static func policyView(_ p: Policy, layout: Layout) -> PolicyView {
        let eligible = layout.eligibleNodes(for: p)
        return PolicyView(
            name: p.name, replicationFactor: p.replicationFactor, sites: p.selector.description, minSites: p.minSites,
            read: p.readConsistency.description, write: p.writeConsistency.description, codec: p.codec.name,
            eligibleNodes: eligible.count, eligibleSites: Array(Set(eligible.map(\.site))).sorted())
    }

    func planView(_ report: PlanReport, node: ClusterNode, next: Layout) -> PlanView {
        func links(_ m: [SiteLink: UInt64]) -> [LinkView] {
            m.keys.sorted().map { LinkView(from: $0.from, to: $0.to, bytes: m[$0] ?? 0) }
        }
        var view = layoutView(node)
        view.version = next.version
        view.partitionCount = next.partitionCount
        view.sites = next.sites.map { SiteView(name: $0.name, labels: $0.labels) }
        view.policies = next.policies.map { Self.policyView($0, layout: next) }
        view.nodes = next.nodes.map { n in
            var partitions: [String: Int] = [:]
            for (name, map) in next.maps { partitions[name] = map.replicas.filter { $0.contains(n.id) }.count }
            return NodeView(id: n.id, site: n.site, capacity: n.capacity, partitions: partitions, state: "", announcedVersion: nil)
        }
        return PlanView(
            fromVersion: report.fromVersion, toVersion: report.toVersion, totalPartitionsMoved: report.totalPartitionsMoved,
            links: links(report.estimatedBytes),
            policies: report.policies.map {
                PolicyPlanView(
                    policy: $0.policy, partitionsMoved: $0.partitionsMoved, replicasMoved: $0.replicasMoved,
                    replicasBefore: $0.replicasBefore, replicasAfter: $0.replicasAfter, links: links($0.estimatedBytes))
            },
            changes: node.staged.changes.map(\.description), layout: view)
    }

    static func policy(_ spec: PolicySpec) throws(AgadirError) -> Policy {
        func level(_ s: String?, _ what: String) throws(AgadirError) -> ConsistencyLevel {
            guard let s else { return .quorum }
            guard let l = ConsistencyLevel(name: s) else {
                throw AgadirError(.invalidArgument, "\(what) consistency '\(s)' is not ONE, QUORUM, LOCAL_QUORUM, EACH_QUORUM or ALL")
            }
            return l
        }
        let codec: Codec
        if let name = spec.codec {
            guard let c = Codec(name: name) else { throw AgadirError(.invalidArgument, "codec '\(name)' is not lz4, zlib or raw") }
            codec = c
        } else {
            codec = .lz4
        }
        let p = Policy(
            name: spec.name, replicationFactor: spec.replicationFactor, selector: try SiteSelector(parsing: spec.sites),
            minSites: spec.minSites, readConsistency: try level(spec.read, "read"), writeConsistency: try level(spec.write, "write"),
            codec: codec)
        try p.validate()
        return p
    }

    // MARK: Body

    /// The whole body of an ADMIN request, at most `AdminLimits.maxBodyBytes`.
    static func collect(_ body: BodyStream?) async throws(AgadirError) -> [UInt8] {
        try await ReplicaService.collect(body, max: AdminLimits.maxBodyBytes)
    }
}
