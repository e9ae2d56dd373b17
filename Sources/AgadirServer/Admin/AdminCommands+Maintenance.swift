import AgadirCluster
import AgadirCore
import AgadirWire

extension AdminCommands {

    /// `scrub.start|pause`, `gc.start`: done here, then on every node of the audience.
    func maintenance(_ request: MaintenanceRequest, _ cluster: ClusterBinding) async throws(AgadirError)
        -> Admin.MaintenanceView
    {
        // Refused here first (a bad request reaches no node), then sent to every other node.
        try cluster.maintenance(request)
        let node = cluster.node
        let sent = await node.fanOut(node.adminAudience(), request: .maintenance, body: try AdminJSON.encode(request)) {
            () throws(AgadirError) in  // done above
        }
        logger.notice(
            "maintenance requested",
            metadata: ["task": "\(request.task)", "action": "\(request.action)", "unreached": "\(sent.unreached)"])
        return Admin.MaintenanceView(
            task: request.task, action: request.action, reached: sent.reached, unreached: sent.unreached)
    }
}
