import AgadirCore
import AgadirWire
import Logging
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

    /// The node's background workers, each under its runner, in start order: the cluster
    /// sync, then the rebalance, anti-entropy, scrub and garbage collection present.
    public let workers: [WorkerRunner]

    public init(
        node: ClusterNode, coordinator: Coordinator, rebalancer: Rebalancer? = nil, antiEntropy: AntiEntropy? = nil,
        scrubber: Scrubber? = nil, garbageCollector: GarbageCollector? = nil,
        logger: Logger = Logger(label: "agadir.workers")
    ) {
        self.node = node
        self.coordinator = coordinator
        self.rebalancer = rebalancer
        self.antiEntropy = antiEntropy
        self.scrubber = scrubber
        self.garbageCollector = garbageCollector
        let all: [(any Worker)?] = [ClusterSyncWorker(node: node), rebalancer, antiEntropy, scrubber, garbageCollector]
        self.workers = all.compactMap { $0 }.map { WorkerRunner($0, logger: logger) }
    }

    /// This node's part of NODE_STATUS, with its workers.
    public func localStatus() async -> NodeStatus {
        var status = NodeStatus(
            node: node.nodeID, rebalance: rebalancer?.status(), repair: antiEntropy?.progress,
            scrub: scrubber?.progress,
            gc: garbageCollector?.progress, store: await node.storeStatus())
        status.workers = workers.map(\.info)
        return status
    }

    public func maintenance(_ request: MaintenanceRequest) throws(AgadirError) {
        switch (request.task, request.action) {
        case ("scrub", _):
            guard let scrubber else { throw AgadirError(.invalidArgument, "this node runs no scrub") }
            try scrubber.control(request.action)
        case ("gc", "start"):
            guard let garbageCollector else {
                throw AgadirError(.invalidArgument, "this node runs no garbage collection")
            }
            garbageCollector.request()
        default:
            throw AgadirError(
                .invalidArgument, "maintenance '\(request.task) \(request.action)' is not scrub start|pause or gc start"
            )
        }
    }
}
