import AgadirCluster
import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirWire

/// Where the objects of a request live: this node's store (a standalone node, or a node
/// before any layout is applied) or the cluster's replicas through the coordinator.
/// `ObjectService.handle` dispatches every request once, in one switch, over this protocol;
/// the streaming, chunking, hashing and verification around it are the same for both.
protocol ObjectBackend: Sendable {
    /// Creates `name` and returns the policy it was bound to.
    func createBucket(_ name: String, policy: String?) async throws(AgadirError) -> String
    func deleteBucket(_ name: String) async throws(AgadirError)
    func route(_ bucket: String) async throws(AgadirError) -> RouteResult
    /// Checks that the bucket may be written here, before any byte of the body is read, and
    /// returns the object's version and where its pieces go.
    func beginPut(_ p: PutRequest, options: RequestOptions) async throws(AgadirError) -> (
        ObjectVersion, any ObjectWriteTarget
    )
    /// The live manifest of `bucket/key` (NO_SUCH_KEY, NO_SUCH_BUCKET) and how its chunks are read, verified.
    func open(bucket: String, key: String, options: RequestOptions) async throws(AgadirError) -> OpenedObject
    func delete(bucket: String, key: String, options: RequestOptions) async throws(AgadirError) -> WriteResult
    func list(_ request: ListRequest, options: RequestOptions) async throws(AgadirError) -> ListPage
}

struct OpenedObject: Sendable {
    var manifest: ObjectManifest
    var readChunk: @Sendable (ChunkID) async throws(AgadirError) -> [UInt8]
}

// MARK: - This node's store

/// A node with no layout applied: every bucket is its own, with the policy `default`.
struct LocalObjects: ObjectBackend {
    let service: ObjectService

    var store: NodeStore { service.store }

    func createBucket(_ name: String, policy: String?) async throws(AgadirError) -> String {
        let policy = policy ?? "default"
        guard policy == "default" else {
            throw AgadirError(.invalidArgument, "policy '\(policy)' is unknown; this cluster has the policy 'default'")
        }
        try await store.createBucket(BucketInfo(name: name, policy: policy, createdMillis: ObjectService.wallMillis()))
        return policy
    }

    func deleteBucket(_ name: String) async throws(AgadirError) {
        try await store.deleteBucket(name)
    }

    func route(_ bucket: String) async throws(AgadirError) -> RouteResult {
        // Standalone: this node serves every bucket it has.
        guard let info = try await store.bucket(bucket) else { throw service.noSuchBucket(bucket) }
        return RouteResult(policy: info.policy, mayCoordinate: true, endpoints: [service.clientEndpoint])
    }

    func beginPut(_ p: PutRequest, options: RequestOptions) async throws(AgadirError) -> (
        ObjectVersion, any ObjectWriteTarget
    ) {
        guard try await store.bucket(p.bucket) != nil else { throw service.noSuchBucket(p.bucket) }
        return (service.nextVersion(), LocalWriteTarget(store: store, codec: service.codec))
    }

    func open(bucket: String, key: String, options: RequestOptions) async throws(AgadirError) -> OpenedObject {
        let store = self.store
        return OpenedObject(manifest: try await service.liveManifest(bucket: bucket, key: key)) {
            (chunk) throws(AgadirError) in
            try await store.readChunk(chunk)
        }
    }

    func delete(bucket: String, key: String, options: RequestOptions) async throws(AgadirError) -> WriteResult {
        _ = try await service.liveManifest(bucket: bucket, key: key)
        let version = service.nextVersion()
        try await store.putManifest(.tombstone(bucket: bucket, key: key, version: version))
        return WriteResult(etag: nil, version: version, size: 0)
    }

    func list(_ l: ListRequest, options: RequestOptions) async throws(AgadirError) -> ListPage {
        guard try await store.bucket(l.bucket) != nil else { throw service.noSuchBucket(l.bucket) }
        return try await store.list(
            bucket: l.bucket, prefix: l.prefix, delimiter: l.delimiter, startAfter: l.startAfter, limit: l.limit)
    }
}

// MARK: - The cluster

extension ClusterWriteTarget: ObjectWriteTarget {}

/// A node with a layout applied: every bucket request goes through the coordinator
/// (docs/cluster.md, "Coordinator"), at the request's consistency level or the policy's.
struct ClusterObjects: ObjectBackend {
    let service: ObjectService
    let cluster: ClusterBinding

    var coordinator: Coordinator { cluster.coordinator }

    func createBucket(_ name: String, policy: String?) async throws(AgadirError) -> String {
        try await coordinator.createBucket(name, policy: policy).policy
    }

    func deleteBucket(_ name: String) async throws(AgadirError) {
        try await coordinator.deleteBucket(name)
    }

    /// This node when it may coordinate the bucket (with the other eligible nodes after
    /// it), else the eligible nodes the redirect names.
    func route(_ bucket: String) async throws(AgadirError) -> RouteResult {
        let resolved: ResolvedBucket
        do {
            resolved = try await coordinator.resolve(bucket: bucket)
        } catch {
            guard error.code == .redirect else { throw error }
            let record = try await cluster.node.bucketRecord(bucket)
            return RouteResult(policy: record?.policy ?? "", mayCoordinate: false, endpoints: error.redirect)
        }
        var endpoints = [cluster.node.snapshot().endpoints[service.nodeID] ?? service.clientEndpoint]
        endpoints += Coordinator.eligibleEndpoints(policy: resolved.policy, snapshot: resolved.snapshot)
        return RouteResult(policy: resolved.policy.name, mayCoordinate: true, endpoints: Quorum.distinct(endpoints))
    }

    func beginPut(_ p: PutRequest, options: RequestOptions) async throws(AgadirError) -> (
        ObjectVersion, any ObjectWriteTarget
    ) {
        // REDIRECT before reading a byte of the body: a node outside the policy must not take it.
        let bucket = try await coordinator.resolve(bucket: p.bucket)
        try await coordinator.admitPut(key: p.key, size: p.size, bucket: bucket)
        let version = cluster.node.nextVersion()
        let target = ClusterWriteTarget(
            coordinator: coordinator, bucket: bucket,
            reference: ChunkReference(bucket: p.bucket, key: p.key, version: version),
            level: options.consistency ?? bucket.policy.writeConsistency)
        return (version, target)
    }

    func open(bucket name: String, key: String, options: RequestOptions) async throws(AgadirError) -> OpenedObject {
        let coordinator = self.coordinator
        let bucket = try await coordinator.resolve(bucket: name)
        let level = options.consistency ?? bucket.policy.readConsistency
        let manifest = try await coordinator.liveManifest(key: key, level: level, bucket: bucket)
        return OpenedObject(manifest: manifest) { (chunk) throws(AgadirError) in
            try await coordinator.readChunk(chunk, bucket: bucket)
        }
    }

    func delete(bucket name: String, key: String, options: RequestOptions) async throws(AgadirError) -> WriteResult {
        let bucket = try await coordinator.resolve(bucket: name)
        _ = try await coordinator.liveManifest(
            key: key, level: options.consistency ?? bucket.policy.readConsistency, bucket: bucket)
        let version = try await coordinator.writeManifest(
            .tombstone(bucket: name, key: key, version: cluster.node.nextVersion()),
            level: options.consistency ?? bucket.policy.writeConsistency,
            bucket: bucket)
        coordinator.deleted(from: bucket)
        return WriteResult(etag: nil, version: version, size: 0)
    }

    func list(_ l: ListRequest, options: RequestOptions) async throws(AgadirError) -> ListPage {
        let bucket = try await coordinator.resolve(bucket: l.bucket)
        return try await coordinator.list(
            l, level: options.consistency ?? bucket.policy.readConsistency, bucket: bucket)
    }
}
