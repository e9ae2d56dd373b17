import AgadirCore

/// The admin schema (docs/protocol.md, ADMIN): every `agadir admin` command with the type
/// of its input and of its answer. The server decodes inputs and encodes answers with these
/// types, the CLI, the lab and the tests send and read them with the same ones
/// (`AgadirClient.admin(_:_:)`), so a field renamed on one side fails to build on the
/// other instead of printing "?".
public enum Admin {
    // Layout and policies (docs/placement.md).
    public static let layoutShow = AdminCommand<Empty, LayoutView>("layout.show")
    public static let layoutAssign = AdminCommand<Assign, LayoutView>("layout.assign")
    public static let layoutRemove = AdminCommand<Remove, LayoutView>("layout.remove")
    public static let layoutSite = AdminCommand<SiteLabels, LayoutView>("layout.site")
    public static let layoutPartitions = AdminCommand<Partitions, LayoutView>("layout.partitions")
    public static let layoutRevert = AdminCommand<Empty, LayoutView>("layout.revert")
    public static let layoutPlan = AdminCommand<Empty, PlanView>("layout.plan")
    public static let layoutApply = AdminCommand<Apply, PlanView>("layout.apply")
    public static let layoutHistory = AdminCommand<Empty, [HistoryView]>("layout.history")
    /// Answers a `PlanView` when `apply` is set, else the `LayoutView` with the policy staged.
    public static let policyCreate = AdminCommand<PolicySpec, PolicyCreated>("policy.create")
    public static let policyList = AdminCommand<Empty, [PolicyView]>("policy.list")
    public static let policyShow = AdminCommand<Name, PolicyView>("policy.show")
    // Sovereignty.
    public static let auditResidency = AdminCommand<Empty, [ResidencyAudit]>("audit.residency")
    public static let auditNode = AdminCommand<Empty, ResidencyAudit>("audit.node")
    // Maintenance (docs/rebalance.md).
    public static let rebalanceStatus = AdminCommand<Empty, RebalanceView>("rebalance.status")
    public static let rebalanceSet = AdminCommand<RebalanceChange, RebalanceSetView>("rebalance.set")
    public static let repairStart = AdminCommand<RepairRequest, RepairStartView>("repair.start")
    public static let repairStatus = AdminCommand<Empty, [RepairNodeView]>("repair.status")
    public static let scrubStatus = AdminCommand<Empty, [ScrubNodeView]>("scrub.status")
    public static let scrubStart = AdminCommand<Empty, MaintenanceView>("scrub.start")
    public static let scrubPause = AdminCommand<Empty, MaintenanceView>("scrub.pause")
    public static let gcStatus = AdminCommand<Empty, [GarbageNodeView]>("gc.status")
    public static let gcStart = AdminCommand<Empty, MaintenanceView>("gc.start")
    // Nodes and the cluster.
    public static let nodeDrain = AdminCommand<NodeRef, PlanView>("node.drain")
    public static let nodeRemove = AdminCommand<NodeRemoval, PlanView>("node.remove")
    public static let clusterStatus = AdminCommand<Empty, ClusterStatusView>("cluster.status")
    public static let workersList = AdminCommand<Empty, [NodeWorkersView]>("workers.list")

    /// Every command's name, in the order above (the error for an unknown one lists them).
    public static let commandNames: [String] = [
        layoutShow.name, layoutAssign.name, layoutRemove.name, layoutSite.name, layoutPartitions.name,
        layoutRevert.name,
        layoutPlan.name, layoutApply.name, layoutHistory.name, policyCreate.name, policyList.name, policyShow.name,
        auditResidency.name, auditNode.name, rebalanceStatus.name, rebalanceSet.name, repairStart.name,
        repairStatus.name,
        scrubStatus.name, scrubStart.name, scrubPause.name, gcStatus.name, gcStart.name, nodeDrain.name,
        nodeRemove.name,
        clusterStatus.name, workersList.name, keyCreate.name, keyList.name, keyRemove.name, keyGrant.name,
        bucketQuota.name,
    ]

    /// One node's line of `workers.list`: its background workers, or why they are unknown.
    public struct NodeWorkersView: Codable, Sendable {
        public var node: String
        public var workers: [WorkerInfo]?
        public var error: String?

        public init(node: String, workers: [WorkerInfo]?, error: String?) {
            self.node = node
            self.workers = workers
            self.error = error
        }
    }
}

/// One admin command: its name on the wire, the type of its JSON input and of its answer.
public struct AdminCommand<Input: Codable & Sendable, Output: Codable & Sendable>: Sendable {
    public let name: String

    public init(_ name: String) { self.name = name }

    public func encode(input: Input) throws(AgadirError) -> [UInt8] { try AdminJSON.encode(input) }
    public func decode(input bytes: [UInt8]) throws(AgadirError) -> Input {
        try AdminJSON.decode(Input.self, bytes, "the input of \(name)")
    }
    public func encode(output: Output) throws(AgadirError) -> [UInt8] { try AdminJSON.encode(output) }
    public func decode(output bytes: [UInt8]) throws(AgadirError) -> Output {
        try AdminJSON.decode(Output.self, bytes, "the answer to \(name)")
    }
}

extension Admin {
    /// `policy.create`'s answer: the plan when the policy was applied at once, else the
    /// layout with the policy staged. Encoded as the one or the other, unwrapped.
    public enum PolicyCreated: Codable, Sendable {
        case staged(LayoutView)
        case applied(PlanView)

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let plan = try? c.decode(PlanView.self) {
                self = .applied(plan)
            } else {
                self = .staged(try c.decode(LayoutView.self))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .staged(let v): try c.encode(v)
            case .applied(let v): try c.encode(v)
            }
        }
    }
}
