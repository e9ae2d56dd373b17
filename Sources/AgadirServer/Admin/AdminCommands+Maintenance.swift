import AgadirCluster
import AgadirCore
import AgadirWire

extension AdminCommands {
    /// `scrub.start|pause` and `gc.start` answers.
    public struct MaintenanceView: Codable, Sendable {
        public var task: String
        public var action: String
        public var reached: [String]
        public var unreached: [String]
    }

    public struct ScrubNodeView: Codable, Sendable {
        public var node: String
        public var scrub: ScrubProgress?
        public var error: String?
    }

    public struct GarbageNodeView: Codable, Sendable {
        public var node: String
        public var gc: GarbageProgress?
        public var error: String?
    }

    func maintenance(_ command: String, cluster: ClusterBinding) async throws(AgadirError) -> [UInt8] {
        switch command {
        case "scrub.status":
            return try AdminJSON.encode(await nodeStatuses(cluster).map { ScrubNodeView(node: $0.node, scrub: $0.status?.scrub, error: $0.error) })
        case "gc.status":
            return try AdminJSON.encode(await nodeStatuses(cluster).map { GarbageNodeView(node: $0.node, gc: $0.status?.gc, error: $0.error) })
        default:
            let parts = command.split(separator: ".").map(String.init)
            let request = ClusterBinding.MaintenanceRequest(task: parts[0], action: parts.count > 1 ? parts[1] : "")
            try cluster.maintenance(request)
            let node = cluster.node
            let body = try AdminJSON.encode(request)
            let snapshot = node.snapshot()
            var reached = [node.nodeID]
            var unreached: [String] = []
            for member in Set(snapshot.layout.current.nodes.map(\.id)).subtracting([node.nodeID]).sorted() {
                guard snapshot.alive.contains(member), let links = node.links else {
                    unreached.append(member)
                    continue
                }
                do throws(AgadirError) {
                    _ = try await links.call(member, .maintenance, body: body, maxResponseBytes: 0)
                    reached.append(member)
                } catch {
                    unreached.append(member)
                }
            }
            logger.notice("maintenance requested", metadata: ["command": "\(command)", "unreached": "\(unreached)"])
            return try AdminJSON.encode(MaintenanceView(task: request.task, action: request.action, reached: reached.sorted(), unreached: unreached))
        }
    }
}
