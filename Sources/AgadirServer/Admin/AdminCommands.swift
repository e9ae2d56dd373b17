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
    let keys: AccessKeyAdmin
    let logger: Logger

    init(cluster: ClusterBinding?, keys: AccessKeyAdmin, logger: Logger) {
        self.cluster = cluster
        self.keys = keys
        self.logger = logger
    }

    /// Commands that only read: logged at info level; every other command is logged at notice
    /// level with its caller, as the admin audit log (docs/operations.md, "Audit log").
    static func onlyReads(_ command: String) -> Bool {
        command.hasPrefix("audit.") || command == Admin.workersList.name || command == Admin.clusterStatus.name
            || [".show", ".list", ".status", ".plan", ".history"].contains { command.hasSuffix($0) }
    }

    // MARK: Dispatch

    /// Decodes the input of `command`, runs `body`, encodes its answer: the schema's types
    /// (`Admin`, AgadirWire) bind each command's input and answer at compile time.
    private func serve<Input, Output>(
        _ command: AdminCommand<Input, Output>, _ input: [UInt8], _ body: (Input) async throws(AgadirError) -> Output
    ) async throws(AgadirError) -> [UInt8] {
        try command.encode(output: try await body(try command.decode(input: input)))
    }

    public func run(_ command: String, input: [UInt8], caller: Caller) async throws(AgadirError) -> [UInt8] {
        let metadata: Logger.Metadata = [
            "command": "\(command)", "principal": "\(caller.who)", "address": "\(caller.address)",
        ]
        do {
            let answer = try await dispatch(command, input: input, caller: caller)
            logger.log(level: Self.onlyReads(command) ? .info : .notice, "admin command", metadata: metadata)
            return answer
        } catch {
            var failed = metadata
            failed["error"] = "\(error.code.name)"
            logger.log(level: Self.onlyReads(command) ? .info : .notice, "admin command refused", metadata: failed)
            throw error
        }
    }

    private func dispatch(_ command: String, input: [UInt8], caller: Caller) async throws(AgadirError) -> [UInt8] {
        switch command {
        case Admin.keyCreate.name:
            return try await serve(Admin.keyCreate, input) { spec throws(AgadirError) in try await keys.create(spec) }
        case Admin.keyList.name:
            return try await serve(Admin.keyList, input) { _ throws(AgadirError) in try await keys.list() }
        case Admin.keyRemove.name:
            return try await serve(Admin.keyRemove, input) { r throws(AgadirError) in try await keys.remove(r.accessKey)
            }
        case Admin.keyGrant.name:
            return try await serve(Admin.keyGrant, input) { g throws(AgadirError) in try await keys.grant(g) }
        default:
            break
        }
        guard let cluster else {
            throw AgadirError(.invalidArgument, "this node has no cluster layer; admin command '\(command)' cannot run")
        }
        let node = cluster.node
        switch command {
        case Admin.layoutShow.name:
            return try await serve(Admin.layoutShow, input) { _ throws(AgadirError) in layoutView(node) }
        case Admin.bucketQuota.name:
            return try await serve(Admin.bucketQuota, input) { q throws(AgadirError) in
                try Names.validateBucket(q.bucket)
                guard node.layout.current.version > 0 else {
                    // A standalone node serves buckets from its own store, where no quota is checked.
                    throw AgadirError(
                        .invalidArgument,
                        "quotas need a layout and this node has none yet; apply one first (docs/operations.md)")
                }
                let coordinator = cluster.coordinator
                _ = try await coordinator.setQuota(bucket: q.bucket, maxBytes: q.maxBytes, maxObjects: q.maxObjects)
                let report = try await coordinator.usageReport(bucket: q.bucket)
                return Admin.QuotaView(
                    bucket: q.bucket, policy: report.record.policy, maxBytes: report.record.maxBytes,
                    maxObjects: report.record.maxObjects, objects: report.usage.objects, bytes: report.usage.bytes,
                    nodesAnswered: report.answered, nodesAsked: report.asked)
            }
        case Admin.layoutAssign.name:
            return try await serve(Admin.layoutAssign, input) { a throws(AgadirError) in
                if let labels = a.siteLabels { _ = try node.stage(.setSiteLabels(site: a.site, labels: labels)) }
                _ = try node.stage(.assignNode(id: a.node, site: a.site, capacity: a.capacity))
                return layoutView(node)
            }
        case Admin.layoutRemove.name:
            return try await serve(Admin.layoutRemove, input) { r throws(AgadirError) in
                _ = try node.stage(.removeNode(id: r.node))
                return layoutView(node)
            }
        case Admin.layoutSite.name:
            return try await serve(Admin.layoutSite, input) { s throws(AgadirError) in
                _ = try node.stage(.setSiteLabels(site: s.site, labels: s.labels))
                return layoutView(node)
            }
        case Admin.layoutPartitions.name:
            return try await serve(Admin.layoutPartitions, input) { p throws(AgadirError) in
                _ = try node.stagePartitionCount(p.count)
                return layoutView(node)
            }
        case Admin.layoutRevert.name:
            return try await serve(Admin.layoutRevert, input) { _ throws(AgadirError) in
                try node.revertStaged()
                return layoutView(node)
            }
        case Admin.layoutPlan.name:
            return try await serve(Admin.layoutPlan, input) { _ throws(AgadirError) in
                let (next, report) = try await node.plan()
                return planView(report, node: node, next: next)
            }
        case Admin.layoutApply.name:
            return try await serve(Admin.layoutApply, input) { a throws(AgadirError) in
                let changes = node.staged.changes.map(\.description)
                let (next, report) = try await node.apply(version: a.version)
                var view = planView(report, node: node, next: next)
                view.changes = changes
                logger.notice("layout applied", metadata: ["version": "\(a.version)", "changes": "\(changes.count)"])
                return view
            }
        case Admin.layoutHistory.name:
            return try await serve(Admin.layoutHistory, input) { _ throws(AgadirError) in
                node.layout.history.map {
                    Admin.HistoryView(version: $0.version, appliedMillis: $0.appliedMillis, summary: $0.summary)
                }
            }
        case Admin.policyCreate.name:
            return try await serve(Admin.policyCreate, input) { spec throws(AgadirError) in
                let policy = try Self.policy(spec)
                if spec.apply == true, !node.staged.changes.isEmpty {
                    throw AgadirError(
                        .layoutVersionConflict,
                        "other layout changes are staged (\(node.staged.changes.count)); apply or revert them first, or create the policy without --apply"
                    )
                }
                _ = try node.stage(.addPolicy(policy))
                guard spec.apply == true else { return .staged(layoutView(node)) }
                let (next, report) = try await node.apply(version: node.layout.current.version + 1)
                return .applied(planView(report, node: node, next: next))
            }
        case Admin.policyList.name:
            return try await serve(Admin.policyList, input) { _ throws(AgadirError) in layoutView(node).policies }
        case Admin.policyShow.name:
            return try await serve(Admin.policyShow, input) { n throws(AgadirError) in
                guard let p = layoutView(node).policies.first(where: { $0.name == n.name }) else {
                    throw AgadirError(
                        .noSuchPolicy, "policy '\(n.name)' does not exist in layout \(node.layout.current.version)")
                }
                return p
            }
        case Admin.auditResidency.name:
            return try await serve(Admin.auditResidency, input) { _ throws(AgadirError) in await clusterAudit(cluster) }
        case Admin.auditNode.name:
            return try await serve(Admin.auditNode, input) { _ throws(AgadirError) in try await node.residencyAudit() }
        case Admin.rebalanceStatus.name:
            return try await serve(Admin.rebalanceStatus, input) { _ throws(AgadirError) in
                await rebalanceView(cluster, try rebalancer(cluster))
            }
        case Admin.rebalanceSet.name:
            return try await serve(Admin.rebalanceSet, input) { change throws(AgadirError) in
                try await rebalanceSet(change, cluster)
            }
        case Admin.repairStart.name:
            return try await serve(Admin.repairStart, input) { request throws(AgadirError) in
                try await repairStart(request, cluster)
            }
        case Admin.repairStatus.name:
            return try await serve(Admin.repairStatus, input) { _ throws(AgadirError) in
                await nodeStatuses(cluster).map {
                    Admin.RepairNodeView(node: $0.node, repair: $0.status?.repair, error: $0.error)
                }
            }
        case Admin.scrubStatus.name:
            return try await serve(Admin.scrubStatus, input) { _ throws(AgadirError) in
                await nodeStatuses(cluster).map {
                    Admin.ScrubNodeView(node: $0.node, scrub: $0.status?.scrub, error: $0.error)
                }
            }
        case Admin.gcStatus.name:
            return try await serve(Admin.gcStatus, input) { _ throws(AgadirError) in
                await nodeStatuses(cluster).map {
                    Admin.GarbageNodeView(node: $0.node, gc: $0.status?.gc, error: $0.error)
                }
            }
        case Admin.scrubStart.name:
            return try await serve(Admin.scrubStart, input) { _ throws(AgadirError) in
                try await maintenance(MaintenanceRequest(task: "scrub", action: "start"), cluster)
            }
        case Admin.scrubPause.name:
            return try await serve(Admin.scrubPause, input) { _ throws(AgadirError) in
                try await maintenance(MaintenanceRequest(task: "scrub", action: "pause"), cluster)
            }
        case Admin.gcStart.name:
            return try await serve(Admin.gcStart, input) { _ throws(AgadirError) in
                try await maintenance(MaintenanceRequest(task: "gc", action: "start"), cluster)
            }
        case Admin.nodeDrain.name:
            return try await serve(Admin.nodeDrain, input) { r throws(AgadirError) in
                try await drain(r.node, node: node)
            }
        case Admin.nodeRemove.name:
            return try await serve(Admin.nodeRemove, input) { r throws(AgadirError) in
                try await remove(r.node, force: r.force ?? false, node: node)
            }
        case Admin.clusterStatus.name:
            return try await serve(Admin.clusterStatus, input) { _ throws(AgadirError) in
                try await clusterStatus(cluster)
            }
        case Admin.workersList.name:
            return try await serve(Admin.workersList, input) { _ throws(AgadirError) in
                await nodeStatuses(cluster).map {
                    Admin.NodeWorkersView(node: $0.node, workers: $0.status?.workers, error: $0.error)
                }
            }
        default:
            throw AgadirError(
                .invalidArgument,
                "admin command '\(command.prefix(64))' is unknown; this node knows \(Admin.commandNames.joined(separator: ", "))"
            )
        }
    }

    func rebalancer(_ cluster: ClusterBinding) throws(AgadirError) -> Rebalancer {
        guard let rebalancer = cluster.rebalancer else {
            throw AgadirError(.invalidArgument, "this node runs no rebalancer")
        }
        return rebalancer
    }

    /// Every node's residency audit (this node's own without a network hop).
    func clusterAudit(_ cluster: ClusterBinding) async -> [ResidencyAudit] {
        let node = cluster.node
        let snapshot = node.snapshot()
        let audience = node.adminAudience()
        let gathered = await node.fanOut(audience, request: .residencyAudit, decoding: ResidencyAudit.self) {
            () throws(AgadirError) in try await node.residencyAudit()
        }
        return audience.map { member in
            switch gathered.result(of: member) {
            case .some(.success(let audit)): audit
            case .some(.failure(let error)):
                ResidencyAudit(node: member, site: snapshot.site(of: member), layoutVersion: 0, error: error.message)
            case nil:
                ResidencyAudit(node: member, site: snapshot.site(of: member), layoutVersion: 0, error: "not asked")
            }
        }
    }

    // MARK: Views

    func layoutView(_ node: ClusterNode) -> Admin.LayoutView {
        let cluster = node.layout
        let layout = cluster.current
        let members = Dictionary(
            (node.gossip?.memberInfos() ?? []).map { ($0.nodeID, $0) }, uniquingKeysWith: { a, _ in a })
        let nodes = layout.nodes.map { n in
            var partitions: [String: Int] = [:]
            for (name, map) in layout.maps { partitions[name] = map.replicas.filter { $0.contains(n.id) }.count }
            return Admin.NodeView(
                id: n.id, site: n.site, capacity: n.capacity, partitions: partitions,
                state: members[n.id]?.state ?? "unknown", announcedVersion: members[n.id]?.layoutVersion)
        }
        var warnings: [String] = []
        for n in layout.nodes {
            if let m = members[n.id], m.site != n.site {
                warnings.append(
                    "node \(n.id) is configured with site '\(m.site)' but the layout puts it in '\(n.site)'")
            }
        }
        return Admin.LayoutView(
            version: layout.version, partitionCount: layout.partitionCount, liveVersions: cluster.live.map(\.version),
            appliedMillis: layout.appliedMillis,
            sites: layout.sites.map { Admin.SiteView(name: $0.name, labels: $0.labels) },
            nodes: nodes, policies: layout.policies.map { Self.policyView($0, layout: layout) },
            staged: node.staged.changes.map(\.description), stagedPartitionCount: node.staged.partitionCount,
            warnings: warnings)
    }

    static func policyView(_ p: Policy, layout: Layout) -> Admin.PolicyView {
        let eligible = layout.eligibleNodes(for: p)
        return Admin.PolicyView(
            name: p.name, replicationFactor: p.replicationFactor, sites: p.selector.description, minSites: p.minSites,
            read: p.readConsistency.description, write: p.writeConsistency.description, codec: p.codec.name,
            eligibleNodes: eligible.count, eligibleSites: Array(Set(eligible.map(\.site))).sorted())
    }

    func planView(_ report: PlanReport, node: ClusterNode, next: Layout) -> Admin.PlanView {
        func links(_ m: [SiteLink: UInt64]) -> [Admin.LinkView] {
            m.keys.sorted().map { Admin.LinkView(from: $0.from, to: $0.to, bytes: m[$0] ?? 0) }
        }
        var view = layoutView(node)
        view.version = next.version
        view.partitionCount = next.partitionCount
        view.sites = next.sites.map { Admin.SiteView(name: $0.name, labels: $0.labels) }
        view.policies = next.policies.map { Self.policyView($0, layout: next) }
        view.nodes = next.nodes.map { n in
            var partitions: [String: Int] = [:]
            for (name, map) in next.maps { partitions[name] = map.replicas.filter { $0.contains(n.id) }.count }
            return Admin.NodeView(
                id: n.id, site: n.site, capacity: n.capacity, partitions: partitions, state: "", announcedVersion: nil)
        }
        return Admin.PlanView(
            fromVersion: report.fromVersion, toVersion: report.toVersion,
            totalPartitionsMoved: report.totalPartitionsMoved,
            links: links(report.estimatedBytes),
            policies: report.policies.map {
                Admin.PolicyPlanView(
                    policy: $0.policy, partitionsMoved: $0.partitionsMoved, replicasMoved: $0.replicasMoved,
                    replicasBefore: $0.replicasBefore, replicasAfter: $0.replicasAfter, links: links($0.estimatedBytes))
            },
            changes: node.staged.changes.map(\.description), layout: view)
    }

    static func policy(_ spec: Admin.PolicySpec) throws(AgadirError) -> Policy {
        func level(_ s: String?, _ what: String) throws(AgadirError) -> ConsistencyLevel {
            guard let s else { return .quorum }
            guard let l = ConsistencyLevel(name: s) else {
                throw AgadirError(
                    .invalidArgument, "\(what) consistency '\(s)' is not ONE, QUORUM, LOCAL_QUORUM, EACH_QUORUM or ALL")
            }
            return l
        }
        let codec: Codec
        if let name = spec.codec {
            guard let c = Codec(name: name) else {
                throw AgadirError(.invalidArgument, "codec '\(name)' is not lz4, zlib or raw")
            }
            codec = c
        } else {
            codec = .lz4
        }
        let p = Policy(
            name: spec.name, replicationFactor: spec.replicationFactor, selector: try SiteSelector(parsing: spec.sites),
            minSites: spec.minSites, readConsistency: try level(spec.read, "read"),
            writeConsistency: try level(spec.write, "write"),
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
