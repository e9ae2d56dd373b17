import AgadirCore
import AgadirWire

/// What a coordinator asks of one replica node. The node itself is served by its store
/// (`LocalReplica`), the others over peer links (`RemoteReplica`); tests substitute
/// replicas that fail, stall or answer stale data.
public protocol ReplicaClient: Sendable {
    /// The node this client reaches.
    var nodeID: String { get }
    /// For each id: true when the replica holds the chunk (it then records `reference`).
    func claimChunks(_ ids: [ChunkID], reference: ChunkReference) async throws(AgadirError) -> [Bool]
    /// Stores a chunk with its reference; returns once durable.
    func putChunk(_ chunk: EncodedChunk, reference: ChunkReference) async throws(AgadirError)
    /// The stored record of a chunk (the caller decodes and verifies it), read for `bucket`.
    func getChunk(_ id: ChunkID, bucket: String) async throws(AgadirError) -> EncodedChunk
    /// Applies a manifest (last writer wins); returns whether it was applied and the
    /// version the replica holds afterwards.
    func putManifest(_ manifest: ObjectManifest) async throws(AgadirError) -> (applied: Bool, stored: ObjectVersion)
    /// The replica's manifest of `bucket/key`, tombstones included; nil when it has none.
    func getManifest(bucket: String, key: String) async throws(AgadirError) -> ObjectManifest?
    /// The replica's entries of `bucket` (tombstones included) after `startAfter`.
    func list(bucket: String, prefix: String, startAfter: String?, limit: Int) async throws(AgadirError)
        -> [ReplicaListEntry]
    /// Parks a write for `target` on this replica (hinted handoff); returns once durable.
    func putHint(target: String, bucket: String, hint: Hint) async throws(AgadirError)
    /// Merges bucket catalog records (last writer wins per name); returns once durable.
    func mergeCatalog(_ records: [BucketRecord]) async throws(AgadirError)
    /// The node's whole bucket catalog, deleted records included.
    func catalog() async throws(AgadirError) -> [BucketRecord]
    /// Merges access key records (last writer wins per id); returns once durable.
    func mergeAccessKeys(_ records: [AccessKeyRecord]) async throws(AgadirError)
    /// The node's access key records, deleted ones included (secrets sealed).
    func accessKeys() async throws(AgadirError) -> [AccessKeyRecord]
    /// One page of the replica's manifests of partition `partition` (of `partitionCount`,
    /// fixed cluster-wide) whose bucket has `policy`, tombstones included, after `after`.
    func partitionManifests(
        policy: String, partition: Int, partitionCount: Int, after: ManifestCursor?, limit: Int
    ) async throws(AgadirError) -> ManifestPage
    /// One page of the replica's chunks of chunk partition `partition` referenced by buckets
    /// of `policy`, with those references, after `after`.
    func partitionChunks(
        policy: String, partition: Int, partitionCount: Int, after: ChunkID?, limit: Int
    ) async throws(AgadirError) -> ChunkPage
    /// The digests of the replica's data of `policy` in the partition, delete markers older
    /// than `tombstonesBefore` (ms since the epoch) left out.
    func partitionDigest(
        policy: String, partition: Int, partitionCount: Int, tombstonesBefore: UInt64
    ) async throws(AgadirError) -> PartitionSummary
    /// What the replica holds of `bucket`: live objects and their bytes (for quotas).
    func bucketUsage(_ bucket: String) async throws(AgadirError) -> BucketUsage
}

extension ReplicaClient {
    /// Replicas that keep no counts (tests' fakes) cannot say.
    public func bucketUsage(_ bucket: String) async throws(AgadirError) -> BucketUsage {
        throw AgadirError(.unavailable, "\(nodeID) keeps no usage counts")
    }
}

/// A write parked for a replica that could not take it.
public enum Hint: Sendable, Hashable {
    case chunk(EncodedChunk, ChunkReference)
    case manifest(ObjectManifest)
}

/// A replica on another node, reached over a peer link.
public struct RemoteReplica: ReplicaClient {
    public let nodeID: String
    let links: PeerLinks

    public init(nodeID: String, links: PeerLinks) {
        self.nodeID = nodeID
        self.links = links
    }

    /// Largest answer a peer may send: a chunk record at the codec's limit plus framing.
    static let maxChunkAnswer = ChunkCodec.maxRawLength + 1024

    public func claimChunks(_ ids: [ChunkID], reference: ChunkReference) async throws(AgadirError) -> [Bool] {
        let answer = try await links.call(
            nodeID, .chunksClaim(reference), body: ChunkIDListCodec.encode(ids), maxResponseBytes: ids.count)
        guard answer.body.count == ids.count, answer.body.allSatisfy({ $0 <= 1 }) else {
            throw AgadirError(
                .corruptData, "\(nodeID) answered CHUNKS_CLAIM for \(ids.count) ids with \(answer.body.count) bytes")
        }
        return answer.body.map { $0 == 1 }
    }

    public func putChunk(_ chunk: EncodedChunk, reference: ChunkReference) async throws(AgadirError) {
        _ = try await links.call(
            nodeID, .chunkPut(reference, chunk: chunk.id), body: EncodedChunkCodec.encode(chunk), maxResponseBytes: 0)
    }

    public func getChunk(_ id: ChunkID, bucket: String) async throws(AgadirError) -> EncodedChunk {
        let answer = try await links.call(
            nodeID, .chunkGet(chunk: id, bucket: bucket), maxResponseBytes: Self.maxChunkAnswer)
        return try EncodedChunkCodec.decode(answer.body, id: id)
    }

    public func putManifest(_ manifest: ObjectManifest) async throws(AgadirError) -> (
        applied: Bool, stored: ObjectVersion
    ) {
        let answer = try await links.call(
            nodeID, .manifestPut(bucket: manifest.bucket, key: manifest.key), body: ManifestCodec.encode(manifest),
            maxResponseBytes: 0)
        let applied = try answer.fields.u8(.applied) == 1
        let stored = try answer.fields.version(.version) ?? manifest.version
        return (applied, stored)
    }

    public func getManifest(bucket: String, key: String) async throws(AgadirError) -> ObjectManifest? {
        let answer: PeerResponse
        do {
            answer = try await links.call(
                nodeID, .manifestGet(bucket: bucket, key: key), maxResponseBytes: PeerLimits.maxStructuredBodyBytes)
        } catch  where error.code == .noSuchKey {
            return nil
        }
        let m = try ManifestCodec.decode(answer.body)
        guard m.bucket == bucket, m.key.bytewiseEqual(key) else {
            throw AgadirError(
                .corruptData, "\(nodeID) answered MANIFEST_GET \(bucket)/\(key) with \(m.bucket)/\(m.key)")
        }
        return m
    }

    public func list(bucket: String, prefix: String, startAfter: String?, limit: Int) async throws(AgadirError)
        -> [ReplicaListEntry]
    {
        let answer = try await links.call(
            nodeID, .replicaList(bucket: bucket, prefix: prefix, startAfter: startAfter, limit: limit),
            maxResponseBytes: PeerLimits.maxStructuredBodyBytes)
        let entries = try ReplicaListCodec.decode(answer.body)
        guard entries.count <= limit else {
            throw AgadirError(
                .corruptData, "\(nodeID) answered REPLICA_LIST with \(entries.count) entries for a limit of \(limit)")
        }
        return entries
    }

    public func mergeCatalog(_ records: [BucketRecord]) async throws(AgadirError) {
        _ = try await links.call(nodeID, .catalogPut, body: BucketRecordCodec.encode(records), maxResponseBytes: 0)
    }

    public func catalog() async throws(AgadirError) -> [BucketRecord] {
        try BucketRecordCodec.decode(
            try await links.call(nodeID, .catalogGet, maxResponseBytes: PeerLimits.maxStructuredBodyBytes).body)
    }

    public func bucketUsage(_ bucket: String) async throws(AgadirError) -> BucketUsage {
        let body = try await links.call(nodeID, .bucketUsage(bucket: bucket), maxResponseBytes: 4096).body
        return try AdminJSON.decode(BucketUsage.self, body, "\(nodeID)'s BUCKET_USAGE answer")
    }

    public func mergeAccessKeys(_ records: [AccessKeyRecord]) async throws(AgadirError) {
        _ = try await links.call(
            nodeID, .accessKeysPut, body: try AdminJSON.encode(records, pretty: false), maxResponseBytes: 0)
    }

    public func accessKeys() async throws(AgadirError) -> [AccessKeyRecord] {
        let body = try await links.call(nodeID, .accessKeysGet, maxResponseBytes: PeerLimits.maxStructuredBodyBytes)
            .body
        return try AdminJSON.decode([AccessKeyRecord].self, body, "\(nodeID)'s ACCESS_KEYS_GET answer")
    }

    public func partitionManifests(
        policy: String, partition: Int, partitionCount: Int, after: ManifestCursor?, limit: Int
    ) async throws(AgadirError) -> ManifestPage {
        let answer = try await links.call(
            nodeID, .partitionManifests(policy: policy, partition: partition, after: after, limit: limit),
            maxResponseBytes: PeerLimits.maxStructuredBodyBytes)
        let page = try ManifestPageCodec.decode(answer.body)
        guard page.manifests.count <= limit else {
            throw AgadirError(
                .corruptData,
                "\(nodeID) answered PARTITION_MANIFESTS with \(page.manifests.count) manifests for a limit of \(limit)")
        }
        return page
    }

    public func partitionChunks(
        policy: String, partition: Int, partitionCount: Int, after: ChunkID?, limit: Int
    ) async throws(AgadirError) -> ChunkPage {
        let answer = try await links.call(
            nodeID, .partitionChunks(policy: policy, partition: partition, after: after, limit: limit),
            maxResponseBytes: PeerLimits.maxStructuredBodyBytes)
        let page = try ChunkPageCodec.decode(answer.body)
        guard page.chunks.count <= limit else {
            throw AgadirError(
                .corruptData,
                "\(nodeID) answered PARTITION_CHUNKS with \(page.chunks.count) chunks for a limit of \(limit)")
        }
        return page
    }

    public func partitionDigest(
        policy: String, partition: Int, partitionCount: Int, tombstonesBefore: UInt64
    ) async throws(AgadirError) -> PartitionSummary {
        let answer = try await links.call(
            nodeID, .partitionDigest(policy: policy, partition: partition, tombstonesBefore: tombstonesBefore),
            maxResponseBytes: 1024)
        return try PartitionSummaryCodec.decode(answer.body)
    }

    public func putHint(target: String, bucket: String, hint: Hint) async throws(AgadirError) {
        switch hint {
        case .chunk(let chunk, let reference):
            _ = try await links.call(
                nodeID, .hintPut(target: target, bucket: bucket, kind: .chunk, reference: reference, chunk: chunk.id),
                body: EncodedChunkCodec.encode(chunk), maxResponseBytes: 0)
        case .manifest(let m):
            _ = try await links.call(
                nodeID, .hintPut(target: target, bucket: bucket, kind: .manifest, reference: nil, chunk: nil),
                body: ManifestCodec.encode(m), maxResponseBytes: 0)
        }
    }
}
