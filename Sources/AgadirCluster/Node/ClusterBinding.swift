import AgadirCore
import AgadirWire
import ServiceLifecycle

/// The cluster a node belongs to: its layout state and its coordinator.
public struct ClusterBinding: Sendable {
    public let node: ClusterNode
    public let coordinator: Coordinator
    /// Nil only in tests that build a node without them.
    public let rebalancer: Rebalancer?
    public let antiEntropy: AntiEntropy?
    public let scrubber: Scrubber?
    public let garbageCollector: GarbageCollector?

    public init(
        node: ClusterNode, coordinator: Coordinator, rebalancer: Rebalancer? = nil, antiEntropy: AntiEntropy? = nil,
        scrubber: Scrubber? = nil, garbageCollector: GarbageCollector? = nil
    ) {
        self.node = node
        self.coordinator = coordinator
        self.rebalancer = rebalancer
        self.antiEntropy = antiEntropy
        self.scrubber = scrubber
        self.garbageCollector = garbageCollector
    }

    /// The background services, in start order.
    public var maintenanceServices: [any Service] {
        [rebalancer as (any Service)?, antiEntropy, scrubber, garbageCollector].compactMap { $0 }
    }

    /// This node's part of NODE_STATUS.
    public func localStatus() async -> NodeStatus {
        NodeStatus(
            node: node.nodeID, rebalance: rebalancer?.status(), repair: antiEntropy?.progress, scrub: scrubber?.progress,
            gc: garbageCollector?.progress, store: await node.storeStatus())
    }

    /// MAINTENANCE: `{"task": "scrub" | "gc", "action": "start" | "pause"}`.
    public struct MaintenanceRequest: Codable, Sendable {
        public var task: String
        public var action: String

        public init(task: String, action: String) {
            self.task = task
            self.action = action
        }
    }

    public func maintenance(_ request: MaintenanceRequest) throws(AgadirError) {
        switch (request.task, request.action) {
        case ("scrub", _):
            guard let scrubber else { throw AgadirError(.invalidArgument, "this node runs no scrub") }
            try scrubber.control(request.action)
        case ("gc", "start"):
            guard let garbageCollector else { throw AgadirError(.invalidArgument, "this node runs no garbage collection") }
            garbageCollector.request()
        default:
            throw AgadirError(.invalidArgument, "maintenance '\(request.task) \(request.action)' is not scrub start|pause or gc start")
        }
    }
}
