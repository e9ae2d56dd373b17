import AgadirCluster
import ServiceLifecycle
import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirTransport
import AgadirWire
import Foundation
import NIOCore

extension ClusterWriteTarget: ObjectWriteTarget {}

extension ObjectService {
    /// A bucket request on a node whose layout is applied: every object operation goes
    /// through the coordinator (docs/cluster.md, "Coordinator").
    func handleInCluster(
        id: UInt64, request: Request, options: RequestOptions, body: BodyStream?, sink: any ResponseSink,
        cluster: ClusterBinding, started: inout Bool
    ) async throws {
        let coordinator = cluster.coordinator
        let opcode = request.opcode.rawValue
        switch request {
        case .ping, .stat, .members, .admin:
            // Node-local answers: the standalone switch serves them.
            try await handleLocally(id: id, request: request, body: body, sink: sink, started: &started)
        case .createBucket(let name, let policy):
            let record = try await coordinator.createBucket(name, policy: policy)
            logger.info("bucket created", metadata: ["bucket": "\(name)", "policy": "\(record.policy)"])
            try await sink.send(.response(id: id, opcode: opcode, end: true))
        case .deleteBucket(let name):
            try await coordinator.deleteBucket(name)
            logger.info("bucket deleted", metadata: ["bucket": "\(name)"])
            try await sink.send(.response(id: id, opcode: opcode, end: true))
        case .listBuckets:
            let buckets = try await store.listBuckets()
            try await sendBody(BucketListCodec.encode(buckets), id: id, opcode: opcode, sink: sink, started: &started)
        case .route(let bucket):
            let result = try await route(bucket, cluster: cluster)
            try await sink.send(.response(id: id, opcode: opcode, fields: result.fields(), end: true))
        case .put(let p):
            // Refuse before reading a byte of the body: a non-eligible node must not take it.
            let bucket = try await coordinator.resolve(bucket: p.bucket)
            let level = options.consistency ?? bucket.policy.writeConsistency
            let version = cluster.node.nextVersion()
            let target = ClusterWriteTarget(
                coordinator: coordinator, bucket: bucket, reference: ChunkReference(bucket: p.bucket, key: p.key, version: version),
                level: level)
            let result = try await put(p, body: body, version: version, target: target)
            try await sink.send(.response(id: id, opcode: opcode, fields: result.fields(), end: true))
        case .get(let bucketName, let key, let range):
            let bucket = try await coordinator.resolve(bucket: bucketName)
            let level = options.consistency ?? bucket.policy.readConsistency
            let m = try await coordinator.liveManifest(key: key, level: level, bucket: bucket)
            try await get(manifest: m, range: range, id: id, sink: sink, started: &started) { (chunk) throws(AgadirError) in
                try await coordinator.readChunk(chunk, bucket: bucket)
            }
        case .head(let bucketName, let key):
            let bucket = try await coordinator.resolve(bucket: bucketName)
            let level = options.consistency ?? bucket.policy.readConsistency
            let m = try await coordinator.liveManifest(key: key, level: level, bucket: bucket)
            try await sink.send(.response(id: id, opcode: opcode, fields: ObjectInfo(manifest: m).fields(), end: true))
        case .delete(let bucketName, let key):
            let bucket = try await coordinator.resolve(bucket: bucketName)
            _ = try await coordinator.liveManifest(key: key, level: options.consistency ?? bucket.policy.readConsistency, bucket: bucket)
            let version = cluster.node.nextVersion()
            try await coordinator.writeManifest(
                .tombstone(bucket: bucketName, key: key, version: version), level: options.consistency ?? bucket.policy.writeConsistency,
                bucket: bucket)
            let r = WriteResult(etag: nil, version: version, size: 0)
            try await sink.send(.response(id: id, opcode: opcode, fields: r.fields(), end: true))
        case .list(let l):
            let bucket = try await coordinator.resolve(bucket: l.bucket)
            let page = try await coordinator.list(l, level: options.consistency ?? bucket.policy.readConsistency, bucket: bucket)
            try await sendBody(page.encoded(), id: id, opcode: opcode, sink: sink, started: &started)
        }
    }

    /// ROUTE in a cluster: this node when it may coordinate the bucket (with the other
    /// eligible nodes after it), else the eligible nodes the redirect names.
    func route(_ bucket: String, cluster: ClusterBinding) async throws(AgadirError) -> RouteResult {
        let resolved: ResolvedBucket
        do {
            resolved = try await cluster.coordinator.resolve(bucket: bucket)
        } catch {
            guard error.code == .redirect else { throw error }
            let record = try await cluster.node.bucketRecord(bucket)
            return RouteResult(policy: record?.policy ?? "", mayCoordinate: false, endpoints: error.redirect)
        }
        var endpoints = [cluster.node.snapshot().endpoints[nodeID] ?? config.listen]
        endpoints += Coordinator.eligibleEndpoints(policy: resolved.policy, snapshot: resolved.snapshot)
        return RouteResult(policy: resolved.policy.name, mayCoordinate: true, endpoints: Quorum.distinct(endpoints))
    }
}
