import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirTransport
import AgadirWire
import Logging
import NIOCore

/// Serves the peer requests of the other nodes on this node's store (docs/cluster.md,
/// "Peer links"). Sovereignty is checked here a second time, on the receiving side: a
/// write of a bucket's bytes is refused (REDIRECT) unless this node's site is eligible
/// for the bucket's policy, and a read is refused unless the node asking is.
public final class ReplicaService: PeerRequestHandler {
    let local: LocalReplica
    let context: any ClusterContext
    let logger: Logger
    /// The encoded cluster layout, for LAYOUT_GET.
    let layoutBytes: @Sendable () -> [UInt8]
    /// This node's residency audit as JSON, for RESIDENCY_AUDIT.
    let audit: @Sendable () async throws(AgadirError) -> [UInt8]
    /// This node's status as JSON, for NODE_STATUS.
    let status: @Sendable () async throws(AgadirError) -> [UInt8]
    /// Adopts rebalance settings sent as JSON (REBALANCE_SET).
    let rebalanceSettings: @Sendable ([UInt8]) async throws(AgadirError) -> Void
    /// Starts an anti-entropy pass with the scope sent as JSON (REPAIR_START).
    let repairStart: @Sendable ([UInt8]) async throws(AgadirError) -> Void
    /// Starts or pauses the scrub or the garbage collection (MAINTENANCE, JSON).
    let maintenance: @Sendable ([UInt8]) async throws(AgadirError) -> Void

    public init(
        local: LocalReplica, context: any ClusterContext, logger: Logger,
        layoutBytes: @escaping @Sendable () -> [UInt8],
        audit: @escaping @Sendable () async throws(AgadirError) -> [UInt8],
        status: @escaping @Sendable () async throws(AgadirError) -> [UInt8] = { [] },
        rebalanceSettings: @escaping @Sendable ([UInt8]) async throws(AgadirError) -> Void = { _ throws(AgadirError) in
        },
        repairStart: @escaping @Sendable ([UInt8]) async throws(AgadirError) -> Void = { _ throws(AgadirError) in },
        maintenance: @escaping @Sendable ([UInt8]) async throws(AgadirError) -> Void = { _ throws(AgadirError) in }
    ) {
        self.local = local
        self.context = context
        self.logger = logger
        self.layoutBytes = layoutBytes
        self.audit = audit
        self.status = status
        self.rebalanceSettings = rebalanceSettings
        self.repairStart = repairStart
        self.maintenance = maintenance
    }

    /// Largest body of a chunk in transit: the largest chunk plus its 9-byte header.
    static let maxChunkBody = ChunkCodec.maxRawLength + EncodedChunkCodec.headerBytes

    public func handle(id: UInt64, request: PeerRequest, from peer: String, body: BodyStream?, sink: any ResponseSink)
        async
    {
        let opcode = request.opcode.rawValue
        do {
            let (fields, payload) = try await serve(request, from: peer, body: body)
            try await send(id: id, opcode: opcode, fields: fields, payload: payload, sink: sink)
        } catch let error as AgadirError {
            body?.abandon()
            if error.code.rawValue >= 500 {
                logger.warning(
                    "peer request failed",
                    metadata: ["peer": "\(peer)", "op": "\(request.opcode)", "error": "\(error)"])
            }
            try? await sink.send(.error(id: id, opcode: opcode, error, responseStarted: false))
        } catch {
            body?.abandon()  // the connection is gone
        }
    }

    private func send(id: UInt64, opcode: UInt16, fields: Fields, payload: [UInt8], sink: any ResponseSink) async throws
    {
        let frameBytes = 1 << 20
        if payload.count <= frameBytes {
            try await sink.send(
                .response(id: id, opcode: opcode, fields: fields, payload: ByteBuffer(bytes: payload), end: true))
            return
        }
        try await sink.send(.response(id: id, opcode: opcode, fields: fields, end: false))
        var offset = 0
        while offset < payload.count {
            let n = min(frameBytes, payload.count - offset)
            try await sink.send(
                .data(
                    id: id, payload: ByteBuffer(bytes: payload[offset..<offset + n]), end: offset + n == payload.count))
            offset += n
        }
    }

    private func serve(_ request: PeerRequest, from peer: String, body: BodyStream?) async throws(AgadirError) -> (
        Fields, [UInt8]
    ) {
        switch request {
        case .hello, .auth:
            throw AgadirError(.unauthenticated, "\(request.opcode) after the handshake")
        case .chunksClaim(let reference):
            let policy = try await acceptWrite(of: reference.bucket, version: reference.version, from: peer)
            let ids = try ChunkIDListCodec.decode(
                try await Self.collect(body, max: PeerLimits.maxClaimIDs * ChunkID.byteCount))
            for id in Set(ids) {
                try await requireReplica(
                    policy, from: peer, what: "chunk \(id.hex)"
                ) { Partitioner.partition(of: id, count: $0) }
            }
            let held = try await local.claimChunks(ids, reference: reference)
            return (Fields(), held.map { $0 ? 1 : 0 })
        case .chunkPut(let reference, let chunkID):
            let policy = try await acceptWrite(of: reference.bucket, version: reference.version, from: peer)
            try await requireReplica(
                policy, from: peer, what: "chunk \(chunkID.hex)"
            ) { Partitioner.partition(of: chunkID, count: $0) }
            let chunk = try EncodedChunkCodec.decode(try await Self.collect(body, max: Self.maxChunkBody), id: chunkID)
            try Self.verify(chunk, from: peer)
            try await local.putChunk(chunk, reference: reference)
            return (Fields(), [])
        case .chunkGet(let chunkID, let bucket):
            try await allowRead(of: bucket, by: peer)
            return (Fields(), EncodedChunkCodec.encode(try await local.getChunk(chunkID, bucket: bucket)))
        case .manifestPut(let bucket, let key):
            let policy = try await acceptWrite(of: bucket, version: nil, from: peer)
            try await requireReplica(policy, from: peer, what: "the manifest of '\(bucket)/\(key)'") {
                Partitioner.partition(bucket: bucket, key: key, count: $0)
            }
            let m = try ManifestCodec.decode(try await Self.collect(body, max: PeerLimits.maxStructuredBodyBytes))
            guard m.bucket == bucket, m.key.bytewiseEqual(key) else {
                throw AgadirError(
                    .invalidArgument, "MANIFEST_PUT for \(bucket)/\(key) carries the manifest of \(m.bucket)/\(m.key)")
            }
            try await refuseEarlierBucket(bucket, version: m.version, what: "the manifest of '\(bucket)/\(key)'")
            let (applied, stored) = try await local.putManifest(m)
            var f = Fields()
            f.set(.applied, u8: applied ? 1 : 0)
            f.set(.version, version: stored)
            return (f, [])
        case .manifestGet(let bucket, let key):
            try await allowRead(of: bucket, by: peer)
            guard let m = try await local.getManifest(bucket: bucket, key: key) else {
                throw AgadirError(.noSuchKey, "no manifest of '\(bucket)/\(key)' on this replica")
            }
            return (Fields(), ManifestCodec.encode(m))
        case .replicaList(let bucket, let prefix, let startAfter, let limit):
            try await allowRead(of: bucket, by: peer)
            return (
                Fields(),
                ReplicaListCodec.encode(
                    try await local.list(bucket: bucket, prefix: prefix, startAfter: startAfter, limit: limit))
            )
        case .hintPut(let target, let bucket, let kind, let reference, let chunkID):
            let policy = try await acceptWrite(of: bucket, version: reference?.version, from: peer)
            let snapshot = context.snapshot()
            guard snapshot.layout.live.contains(where: { $0.isEligible(node: target, for: policy) }) else {
                throw AgadirError(
                    .invalidArgument,
                    "refused a hint for \(target): it is not eligible for policy '\(policy.name)' of '\(bucket)'")
            }
            switch kind {
            case .chunk:
                guard let reference, let chunkID else {
                    throw AgadirError(.invalidArgument, "a chunk hint needs its reference and id")
                }
                let chunk = try EncodedChunkCodec.decode(
                    try await Self.collect(body, max: Self.maxChunkBody), id: chunkID)
                try Self.verify(chunk, from: peer)
                try await local.putHint(target: target, bucket: bucket, hint: .chunk(chunk, reference))
            case .manifest:
                let m = try ManifestCodec.decode(try await Self.collect(body, max: PeerLimits.maxStructuredBodyBytes))
                guard m.bucket == bucket else {
                    throw AgadirError(.invalidArgument, "a hint for '\(bucket)' carries a manifest of '\(m.bucket)'")
                }
                try await refuseEarlierBucket(bucket, version: m.version, what: "a hint of '\(bucket)/\(m.key)'")
                try await local.putHint(target: target, bucket: bucket, hint: .manifest(m))
            }
            return (Fields(), [])
        case .layoutGet:
            return (Fields(), layoutBytes())
        case .catalogGet:
            return (Fields(), BucketRecordCodec.encode(try await local.catalog()))
        case .bucketUsage(let bucket):
            return (Fields(), try AdminJSON.encode(try await local.bucketUsage(bucket), pretty: false))
        case .catalogPut:
            let records = try BucketRecordCodec.decode(
                try await Self.collect(body, max: PeerLimits.maxStructuredBodyBytes))
            try await local.mergeCatalog(records)
            return (Fields(), [])
        case .accessKeysGet:
            return (Fields(), try AdminJSON.encode(try await local.accessKeys(), pretty: false))
        case .accessKeysPut:
            let records = try AdminJSON.decode(
                [AccessKeyRecord].self, try await Self.collect(body, max: PeerLimits.maxStructuredBodyBytes),
                "the body of ACCESS_KEYS_PUT")
            try await local.mergeAccessKeys(records)
            return (Fields(), [])
        case .residencyAudit:
            return (Fields(), try await audit())
        case .partitionManifests(let policy, let partition, let after, let limit):
            let count = try await allowPartitionRead(of: policy, partition: partition, by: peer)
            let page = try await local.partitionManifests(
                policy: policy, partition: partition, partitionCount: count, after: after, limit: limit)
            return (Fields(), ManifestPageCodec.encode(page))
        case .partitionChunks(let policy, let partition, let after, let limit):
            let count = try await allowPartitionRead(of: policy, partition: partition, by: peer)
            let page = try await local.partitionChunks(
                policy: policy, partition: partition, partitionCount: count, after: after, limit: limit)
            return (Fields(), ChunkPageCodec.encode(page))
        case .nodeStatus:
            return (Fields(), try await status())
        case .rebalanceSet:
            try await rebalanceSettings(try await Self.collect(body, max: PeerLimits.maxSettingsBodyBytes))
            return (Fields(), [])
        case .partitionDigest(let policy, let partition, let before):
            let count = try await allowPartitionRead(of: policy, partition: partition, by: peer)
            let summary = try await local.partitionDigest(
                policy: policy, partition: partition, partitionCount: count, tombstonesBefore: before)
            return (Fields(), PartitionSummaryCodec.encode(summary))
        case .repairStart:
            try await repairStart(try await Self.collect(body, max: PeerLimits.maxSettingsBodyBytes))
            return (Fields(), [])
        case .maintenance:
            try await maintenance(try await Self.collect(body, max: PeerLimits.maxSettingsBodyBytes))
            return (Fields(), [])
        }
    }

    /// Refuses to list a policy's partition to a peer outside the policy's sites; returns
    /// the partition count.
    private func allowPartitionRead(of policyName: String, partition: Int, by peer: String) async throws(AgadirError)
        -> Int
    {
        var snapshot = context.snapshot()
        if snapshot.site(of: peer).isEmpty {
            await context.refreshLayout()
            snapshot = context.snapshot()
        }
        guard let policy = Coordinator.policyNamed(policyName, in: snapshot.layout) else {
            throw AgadirError(
                .noSuchPolicy,
                "policy '\(policyName)' is not in this node's layout (version \(snapshot.layout.current.version))")
        }
        let peerSite = snapshot.site(of: peer)
        if let why = context.attestedRefusal(peer, for: policy) {
            logger.error(
                "refused to list a partition to a node its certificate does not make eligible",
                metadata: ["peer": "\(peer)", "policy": "\(policyName)", "why": "\(why)"])
            throw AgadirError(.notAttested, "node \(peer) may not read data of policy '\(policyName)': \(why)")
        }
        guard snapshot.layout.live.contains(where: { $0.isEligible(site: peerSite, for: policy) }) else {
            logger.error(
                "refused to list a partition to a node outside its policy's sites",
                metadata: ["peer": "\(peer)", "policy": "\(policyName)", "partition": "\(partition)"])
            throw AgadirError(
                .invalidArgument, "node \(peer) (site '\(peerSite)') may not read data of policy '\(policyName)'")
        }
        let count = snapshot.layout.current.partitionCount
        guard partition < count else {
            throw AgadirError(
                .invalidArgument, "partition \(partition) does not exist: the layout has \(count) partitions")
        }
        return count
    }

    /// The policy of `bucket`, when this node may hold its bytes; REDIRECT otherwise. A
    /// deleted bucket, or a `version` older than the bucket's generation (a write of an
    /// earlier bucket of that name), is refused with NO_SUCH_BUCKET.
    @discardableResult
    private func acceptWrite(of bucket: String, version: ObjectVersion?, from peer: String) async throws(AgadirError)
        -> Policy
    {
        if let version { try await refuseEarlierBucket(bucket, version: version, what: "a write of '\(bucket)'") }
        var (policy, snapshot) = try await policy(of: bucket)
        if !snapshot.layout.live.contains(where: { $0.isEligible(node: snapshot.nodeID, for: policy) }) {
            // A node just added may not know the layout that names it yet.
            await context.refreshLayout()
            (policy, snapshot) = try await self.policy(of: bucket)
        }
        if let why = context.attestedRefusal(snapshot.nodeID, for: policy) {
            logger.error(
                "refused bytes of a bucket this node's certificate does not make it eligible for",
                metadata: ["peer": "\(peer)", "bucket": "\(bucket)", "why": "\(why)"])
            throw AgadirError(.notAttested, "this node refuses bytes of bucket '\(bucket)': \(why)")
        }
        guard snapshot.layout.live.contains(where: { $0.isEligible(node: snapshot.nodeID, for: policy) }) else {
            logger.error(
                "refused bytes of a bucket outside its policy's sites",
                metadata: ["peer": "\(peer)", "bucket": "\(bucket)", "policy": "\(policy.name)"])
            throw AgadirError.redirect(
                "node \(snapshot.nodeID) (site \(snapshot.site)) is not eligible for bucket '\(bucket)' (policy '\(policy.name)')",
                to: [])
        }
        return policy
    }

    /// Refuses a write of a deleted bucket, or one stamped before the bucket's generation:
    /// it belongs to an earlier bucket of that name, whose data must never mix with this
    /// one's (nor travel to this one's policy's sites).
    private func refuseEarlierBucket(_ bucket: String, version: ObjectVersion, what: String) async throws(AgadirError) {
        guard let record = try await context.bucketRecord(bucket) else {
            throw AgadirError(.noSuchBucket, "bucket '\(bucket)' is not in this node's catalog")
        }
        if record.deleted {
            throw AgadirError(.noSuchBucket, "bucket '\(bucket)' was deleted; \(what) is refused")
        }
        if record.predates(version) {
            logger.info(
                "refused a write of an earlier bucket of the same name",
                metadata: ["what": "\(what)", "version": "\(version)", "generation": "\(record.generation)"])
            throw AgadirError(
                .noSuchBucket,
                "\(what) (version \(version)) is older than bucket '\(bucket)' (created at \(record.generation)): "
                    + "it belongs to an earlier bucket of that name, deleted")
        }
    }

    /// Refuses a write of a partition this node is in no live layout version's replica set
    /// of (NOT_REPLICA): a coordinator on an older layout would otherwise leave data on a
    /// node that the rebalance already left, where no read and no repair looks for it.
    /// A sender with a newer layout is caught up with first (gossip announces it).
    private func requireReplica(
        _ policy: Policy, from peer: String, what: String, partition: (Int) -> Int
    ) async throws(AgadirError) {
        func owns(_ snapshot: ClusterSnapshot) -> Bool {
            let layout = snapshot.layout
            guard layout.current.version >= 1 else { return true }
            return layout.allReplicas(policy: policy.name, partition: partition(layout.current.partitionCount))
                .contains(snapshot.nodeID)
        }
        if owns(context.snapshot()) { return }
        await context.refreshLayout()
        let snapshot = context.snapshot()
        if owns(snapshot) { return }
        let p = partition(snapshot.layout.current.partitionCount)
        logger.info(
            "refused a write of a partition this node does not hold",
            metadata: ["peer": "\(peer)", "what": "\(what)", "partition": "\(p)"])
        throw AgadirError(
            .notReplica,
            "node \(snapshot.nodeID) holds partition \(p) of policy '\(policy.name)' in no live layout version "
                + "(live: \(snapshot.layout.live.map(\.version))), so it refuses \(what); the sender's layout is older")
    }

    /// Refuses to send a bucket's bytes or names to a peer outside its policy's sites.
    private func allowRead(of bucket: String, by peer: String) async throws(AgadirError) {
        var (policy, snapshot) = try await policy(of: bucket)
        if snapshot.site(of: peer).isEmpty {
            // A node this layout does not know yet: it may be in a newer layout still spreading.
            await context.refreshLayout()
            (policy, snapshot) = try await self.policy(of: bucket)
        }
        let peerSite = snapshot.site(of: peer)
        if let why = context.attestedRefusal(peer, for: policy) {
            logger.error(
                "refused to send a bucket's data to a node its certificate does not make eligible",
                metadata: ["peer": "\(peer)", "bucket": "\(bucket)", "why": "\(why)"])
            throw AgadirError(.notAttested, "node \(peer) may not read bucket '\(bucket)': \(why)")
        }
        guard snapshot.layout.live.contains(where: { $0.isEligible(site: peerSite, for: policy) }) else {
            logger.error(
                "refused to send a bucket's data to a node outside its policy's sites",
                metadata: ["peer": "\(peer)", "bucket": "\(bucket)", "policy": "\(policy.name)"])
            throw AgadirError(
                .invalidArgument,
                "node \(peer) (site '\(peerSite)') may not read bucket '\(bucket)' (policy '\(policy.name)')")
        }
    }

    private func policy(of bucket: String) async throws(AgadirError) -> (Policy, ClusterSnapshot) {
        guard let record = try await context.bucketRecord(bucket) else {
            throw AgadirError(.noSuchBucket, "bucket '\(bucket)' is not in this node's catalog")
        }
        let snapshot = context.snapshot()
        guard let policy = Coordinator.policyNamed(record.policy, in: snapshot.layout) else {
            throw AgadirError(
                .noSuchPolicy, "policy '\(record.policy)' of bucket '\(bucket)' is not in this node's layout yet")
        }
        return (policy, snapshot)
    }

    /// A chunk from a peer is verified before it is stored: CRC, decoding, SHA-256 = id.
    public static func verify(_ chunk: EncodedChunk, from peer: String) throws(AgadirError) {
        var engine = ChunkCodec()
        let raw = try engine.decode(chunk)
        try ChunkVerifier.verify(raw, id: chunk.id, context: "sent by \(peer)")
    }

    public static func collect(_ body: BodyStream?, max: Int) async throws(AgadirError) -> [UInt8] {
        guard let body else { return [] }
        var out: [UInt8] = []
        do {
            while let buf = try await body.next() {
                guard out.count + buf.readableBytes <= max else {
                    body.abandon()
                    throw AgadirError(.frameTooLarge, "peer request body over \(max) bytes")
                }
                out.append(contentsOf: buf.readableBytesView)
            }
        } catch let e as AgadirError {
            throw e
        } catch {
            throw AgadirError(.invalidArgument, "peer request body failed: \(error)")
        }
        return out
    }
}
