import AgadirCluster
import AgadirCore
import AgadirWire

extension AdminCommands {

    /// `repair.start`: every node of the audience starts an anti-entropy pass over `scope`.
    func repairStart(_ request: Admin.RepairRequest, _ cluster: ClusterBinding) async throws(AgadirError)
        -> Admin.RepairStartView
    {
        let node = cluster.node
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
                throw AgadirError(
                    .invalidArgument,
                    "partition \(p) does not exist: the layout has \(count) partitions (0...\(count - 1))")
            }
        }
        let requested = scope
        let antiEntropy = cluster.antiEntropy
        let sent = await node.fanOut(node.adminAudience(), request: .repairStart, body: try AdminJSON.encode(scope)) {
            () throws(AgadirError) in antiEntropy?.request(requested)
        }
        logger.notice("repair started", metadata: ["scope": "\(scope)", "unreached": "\(sent.unreached)"])
        return Admin.RepairStartView(scope: scope, reached: sent.reached, unreached: sent.unreached)
    }

    /// Every node's NODE_STATUS (this node's own, whole, without a network hop).
    func nodeStatuses(_ cluster: ClusterBinding) async -> [(node: String, status: NodeStatus?, error: String?)] {
        let audience = cluster.node.adminAudience()
        let answers = await cluster.rebalancer?.nodeStatuses(of: audience) { await cluster.localStatus() } ?? [:]
        return audience.map { member in
            switch answers[member] {
            case .some(.success(let status)): (member, status, nil)
            case .some(.failure(let error)): (member, nil, error.message)
            case nil: (member, nil, "not asked: this node runs no rebalancer")
            }
        }
    }
}
