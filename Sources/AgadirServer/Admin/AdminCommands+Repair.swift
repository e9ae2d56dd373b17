import AgadirCluster
import AgadirCore
import AgadirWire

extension AdminCommands {
    /// `repair.start` input.
    public struct RepairRequest: Codable, Sendable {
        public var bucket: String?
        public var partition: Int?
    }

    /// `repair.start` answer.
    public struct RepairStartView: Codable, Sendable {
        public var scope: RepairScope
        public var reached: [String]
        public var unreached: [String]
    }

    public struct RepairNodeView: Codable, Sendable {
        public var node: String
        public var repair: RepairProgress?
        public var error: String?
    }

    func repair(_ command: String, input: [UInt8], cluster: ClusterBinding) async throws(AgadirError) -> [UInt8] {
        let node = cluster.node
        switch command {
        case "repair.status":
            return try AdminJSON.encode(await repairView(cluster))
        default:
            let request = try AdminJSON.decode(RepairRequest.self, input, "the input of \(command)")
            var scope = RepairScope(partition: request.partition)
            if let bucket = request.bucket {
                guard let record = try await node.bucketRecord(bucket), !record.deleted else {
                    throw AgadirError(.noSuchBucket, "bucket '\(bucket)' does not exist")
                }
                scope.policy = record.policy
            }
            if let p = request.partition {
                let count = node.layout.current.partitionCount
                guard (0..<count).contains(p) else {
                    throw AgadirError(.invalidArgument, "partition \(p) does not exist: the layout has \(count) partitions (0...\(count - 1))")
                }
            }
            let body = try AdminJSON.encode(scope)
            let snapshot = node.snapshot()
            var reached: [String] = []
            var unreached: [String] = []
            for member in snapshot.layout.current.nodes.map(\.id).sorted() {
                if member == node.nodeID {
                    cluster.antiEntropy?.request(scope)
                    reached.append(member)
                    continue
                }
                guard snapshot.alive.contains(member), let links = node.links else {
                    unreached.append(member)
                    continue
                }
                do throws(AgadirError) {
                    _ = try await links.call(member, .repairStart, body: body, maxResponseBytes: 0)
                    reached.append(member)
                } catch {
                    unreached.append(member)
                }
            }
            logger.notice("repair started", metadata: ["scope": "\(scope)", "unreached": "\(unreached)"])
            return try AdminJSON.encode(RepairStartView(scope: scope, reached: reached, unreached: unreached))
        }
    }

    /// Every layout node's NODE_STATUS, gathered as `cluster.status` gathers them (this
    /// node's own, whole, without a network hop).
    func nodeStatuses(_ cluster: ClusterBinding) async -> [(node: String, status: NodeStatus?, error: String?)] {
        let node = cluster.node
        let members = Set(node.snapshot().layout.current.nodes.map(\.id)).union([node.nodeID]).sorted()
        var answers = await cluster.rebalancer?.nodeStatuses(of: members, store: false) ?? [:]
        answers[node.nodeID] = .success(await cluster.localStatus())
        return members.map { member in
            switch answers[member] {
            case .success(let status): (member, status, nil)
            case .failure(let error): (member, nil, error.message)
            case nil: (member, nil, "this node runs no rebalancer to ask it")
            }
        }
    }

    func repairView(_ cluster: ClusterBinding) async -> [RepairNodeView] {
        await nodeStatuses(cluster).map { RepairNodeView(node: $0.node, repair: $0.status?.repair, error: $0.error) }
    }
}
