import AgadirCore
import AgadirStore
import AgadirWire

#if canImport(Glibc)
    import Glibc
#endif

/// This node as a replica: the same operations as `RemoteReplica`, served by its store
/// without a network hop. The sovereignty checks of the receiving side are made by the
/// callers (`ReplicaService` for peers, the coordinator for itself) before these run.
public struct LocalReplica: ReplicaClient {
    public let nodeID: String
    public let store: NodeStore

    public init(nodeID: String, store: NodeStore) {
        self.nodeID = nodeID
        self.store = store
    }

    public func claimChunks(_ ids: [ChunkID], reference: ChunkReference) async throws(AgadirError) -> [Bool] {
        try await store.claimChunks(ids, reference: reference)
    }

    public func putChunk(_ chunk: EncodedChunk, reference: ChunkReference) async throws(AgadirError) {
        try await store.putChunk(chunk, reference: reference)
    }

    /// The chunk, only for a bucket that references it: a chunk id alone (a hash anyone can
    /// compute from known content) never reads another bucket's bytes.
    public func getChunk(_ id: ChunkID, bucket: String) async throws(AgadirError) -> EncodedChunk {
        guard try await store.chunkReferenced(id, by: bucket) else {
            throw AgadirError(.noSuchChunk, "chunk \(id.hex) is not referenced by bucket '\(bucket)' on node \(nodeID)")
        }
        return try await store.readChunkRecord(id)
    }

    public func putManifest(_ manifest: ObjectManifest) async throws(AgadirError) -> (
        applied: Bool, stored: ObjectVersion
    ) {
        switch try await store.putReplicaManifest(manifest) {
        case .applied: (true, manifest.version)
        case .superseded(let current): (false, current)
        }
    }

    public func getManifest(bucket: String, key: String) async throws(AgadirError) -> ObjectManifest? {
        do {
            return try await store.manifest(bucket: bucket, key: key)
        } catch  where error.code == .noSuchBucket {
            // A replica may hold manifests of a bucket before (or without) its catalog record.
            return nil
        }
    }

    public func list(bucket: String, prefix: String, startAfter: String?, limit: Int) async throws(AgadirError)
        -> [ReplicaListEntry]
    {
        try await store.replicaList(bucket: bucket, prefix: prefix, startAfter: startAfter, limit: limit)
    }

    public func mergeCatalog(_ records: [BucketRecord]) async throws(AgadirError) {
        for r in records { _ = try await store.mergeBucketRecord(r) }
    }

    public func catalog() async throws(AgadirError) -> [BucketRecord] {
        try await store.bucketCatalog()
    }

    public func bucketUsage(_ bucket: String) async throws(AgadirError) -> BucketUsage {
        try await store.bucketUsage(bucket)
    }

    public func mergeAccessKeys(_ records: [AccessKeyRecord]) async throws(AgadirError) {
        for r in records { _ = try await store.mergeAccessKey(r) }
    }

    public func accessKeys() async throws(AgadirError) -> [AccessKeyRecord] { try await store.accessKeys() }

    public func putHint(target: String, bucket: String, hint: Hint) async throws(AgadirError) {
        switch hint {
        case .chunk(let chunk, let reference):
            try await store.putChunk(chunk, reference: reference)
            _ = try await store.putHint(
                target: target, bucket: bucket, payload: .chunk(chunk.id, reference), createdMillis: WallClock.millis())
        case .manifest(let m):
            _ = try await store.putHint(
                target: target, bucket: bucket, payload: .manifest(m), createdMillis: WallClock.millis())
        }
    }
}

/// Milliseconds since the Unix epoch, for record timestamps (never for ordering: versions
/// come from the HLC).
enum WallClock {
    static func millis() -> UInt64 { WallTime.millis() }
}
