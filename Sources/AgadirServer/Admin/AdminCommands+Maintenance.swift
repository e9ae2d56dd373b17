import AgadirCluster
import AgadirCore
import AgadirWire

extension AdminCommands {

    /// `scrub.start|pause`, `gc.start`: done here, then on every node of the audience.
    func maintenance(_ request: MaintenanceRequest, _ cluster: ClusterBinding) async throws(AgadirError)
        -> Admin.MaintenanceView
    {
        try cluster.maintenance(request)
        let node = cluster.node
        let others = node.adminAudience().filter { $0 != node.nodeID }
        let sent = await node.fanOut(others, request: .maintenance, body: try AdminJSON.encode(request)) {
            () throws(AgadirError) in
        }
        let reached = ([node.nodeID] + sent.reached).sorted()
        logger.notice(
            "maintenance requested",
            metadata: ["task": "\(request.task)", "action": "\(request.action)", "unreached": "\(sent.unreached)"])
        return Admin.MaintenanceView(
            task: request.task, action: request.action, reached: reached, unreached: sent.unreached)
    }
}
