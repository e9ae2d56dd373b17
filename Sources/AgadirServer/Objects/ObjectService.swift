import AgadirCluster
import AgadirCore
import AgadirStore
import AgadirTransport
import AgadirWire
import Foundation
import Logging
import NIOCore
import Synchronization

/// The single-node object service: turns decoded requests into store operations.
/// In the cluster this becomes the coordinator; its request/response contract stays.
public final class ObjectService: Sendable {
    public let store: NodeStore
    public let nodeID: String
    public let nodeTag: UInt64
    let config: NodeConfiguration
    let codec: Codec
    let logger: Logger
    /// The node's hybrid logical clock: every version this node stamps.
    public let clock: NodeClock
    /// Answers MEMBERS; nil, or an empty answer (gossip still starting): this node alone (`selfMember()`).
    let membersProvider: (@Sendable () -> [MemberInfo])?
    /// The cluster this node belongs to; nil for a node built without one (tests). With a
    /// layout applied, bucket requests go through its coordinator.
    let cluster: ClusterBinding?
    /// `agadir admin` commands.
    let admin: AdminCommands
    /// Who may send which request (docs/security.md, "Access keys").
    public let access: AccessControl
    let keys: AccessKeyAdmin
    /// The client endpoint actually bound (set by `ClientServer` once listening), for the
    /// self record; `config.listen` until then.
    private let boundClientAddress = Mutex<String?>(nil)

    public static let serverVersion = "agadir/0.1.0"

    /// `membersProvider` answers MEMBERS with the cluster's members as this node sees
    /// them (the membership layer passes it); without one, MEMBERS describes this node
    /// alone (`selfMember()`).
    public init(
        store: NodeStore, nodeID: String, config: NodeConfiguration, codec: Codec, logger: Logger,
        access: AccessControl, membersProvider: (@Sendable () -> [MemberInfo])? = nil, cluster: ClusterBinding? = nil,
        clock: NodeClock = NodeClock(maxSkewMillis: 5000, wall: { WallMillis.now() })
    ) {
        self.cluster = cluster
        self.access = access
        self.clock = clock
        let tag = ChunkID.of(Array(nodeID.utf8)).prefix64
        let keys = AccessKeyAdmin(
            access: access, store: store, cluster: cluster,
            versions: {
                if let cluster { return cluster.node.nextVersion() }
                return ObjectVersion(timestamp: clock.now(), node: tag)
            },
            bucketCreatedMillis: { (name: String) throws(AgadirError) -> UInt64? in
                if let cluster, cluster.node.isClusterMode {
                    guard let r = try await cluster.node.bucketRecord(name), !r.deleted else { return nil }
                    return r.createdMillis
                }
                return try await store.bucket(name)?.createdMillis
            })
        self.keys = keys
        self.admin = AdminCommands(cluster: cluster, keys: keys, logger: logger)
        self.store = store
        self.nodeID = nodeID
        self.nodeTag = ChunkID.of(Array(nodeID.utf8)).prefix64
        self.config = config
        self.codec = codec
        self.logger = logger
        self.membersProvider = membersProvider
    }

    /// Records the client endpoint actually bound (`HOST:PORT`), which `selfMember()` reports.
    public func clientEndpointBound(_ address: String) {
        boundClientAddress.withLock { $0 = address }
    }

    /// The client endpoint this node announces: the one bound, else the configured one.
    var clientEndpoint: String { boundClientAddress.withLock { $0 } ?? config.listen }

    /// This node as the only member: alive, site `default`, incarnation 0, no peer
    /// endpoint, last contact -1 (self). What MEMBERS answers without a membership layer.
    public func selfMember() -> MemberInfo {
        MemberInfo(
            nodeID: nodeID, site: "default", labels: [:],
            clientAddress: boundClientAddress.withLock { $0 } ?? config.listen, peerAddress: "", incarnation: 0,
            state: MemberInfo.State.alive, layoutVersion: 0, lastContactMillisAgo: -1)
    }

    static func wallMillis() -> UInt64 { WallMillis.now() }

    public func nextVersion() -> ObjectVersion {
        ObjectVersion(timestamp: clock.now(), node: nodeTag)
    }

    /// Handles one request to completion, sending its response frames to `sink`.
    /// `body` is the request body stream (PUT) or nil. Never throws: every failure is
    /// answered with an error frame.
    public func handle(
        id: UInt64, request: Request, options: RequestOptions = .none, caller: Caller, body: BodyStream?,
        sink: any ResponseSink
    ) async {
        let opcode = request.opcode.rawValue
        var started = false
        do {
            try await authorize(request, caller: caller)
            try await dispatch(
                id: id, request: request, options: options, caller: caller, body: body, sink: sink, started: &started)
        } catch let error as AgadirError {
            body?.abandon()
            if error.code.rawValue >= 500 {
                logger.error(
                    "request failed", metadata: ["request": "\(id)", "op": "\(request.opcode)", "error": "\(error)"])
            } else {
                logger.debug(
                    "request refused", metadata: ["request": "\(id)", "op": "\(request.opcode)", "error": "\(error)"])
            }
            try? await sink.send(.error(id: id, opcode: opcode, error, responseStarted: started))
        } catch {
            body?.abandon()
            // Only the sink throws untyped errors: the connection is gone, nobody to answer.
            logger.debug("response not delivered", metadata: ["request": "\(id)", "error": "\(error)"])
        }
    }

    /// Where this request's objects live: the cluster once a layout is applied, else this
    /// node's store. A node that joins a running cluster pulls the layout first and refuses
    /// bucket requests until it has it (it must not answer them from its own empty store).
    func backend(for request: Request) async throws(AgadirError) -> any ObjectBackend {
        guard let cluster else { return LocalObjects(service: self) }
        if cluster.node.isClusterMode { return ClusterObjects(service: self, cluster: cluster) }
        if cluster.node.awaitsLayout {
            await cluster.node.syncLayout()
            if cluster.node.isClusterMode { return ClusterObjects(service: self, cluster: cluster) }
            if request.bucket != nil {
                throw AgadirError(
                    .unavailable,
                    "this node has not received the cluster's layout yet; retry in a moment or ask another node")
            }
        }
        return LocalObjects(service: self)
    }

    /// The one dispatch of every request: node-local answers here, object requests through
    /// the backend (`ObjectBackend`).
    func dispatch(
        id: UInt64, request: Request, options: RequestOptions, caller: Caller, body: BodyStream?,
        sink: any ResponseSink, started: inout Bool
    ) async throws {
        let opcode = request.opcode.rawValue
        switch request {
        case .ping:
            let r = PingResult(nodeID: nodeID, serverVersion: Self.serverVersion, timeMillis: clock.wallMillis())
            try await sink.send(.response(id: id, opcode: opcode, fields: r.fields(), end: true))
        case .admin(let command):
            let input = try await AdminCommands.collect(body)
            if !input.isEmpty, caller.principal != nil {
                // The signature covers the body through CONTENT_SHA256 (docs/protocol.md, "Signed requests").
                guard let sha = options.contentSHA256 else {
                    throw AgadirError(
                        .invalidArgument, "a signed ADMIN request with a body must carry CONTENT_SHA256 of the body")
                }
                guard ChunkID.of(input) == sha else {
                    throw AgadirError(.checksumMismatch, "the ADMIN body does not hash to its CONTENT_SHA256")
                }
            }
            try await sendBody(
                try await admin.run(command, input: input, caller: caller), id: id, opcode: opcode, sink: sink,
                started: &started)
        case .stat:
            let stats = try await store.stats()
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            let json = (try? enc.encode(stats)).map { Array($0) } ?? Array("{}".utf8)
            try await sendBody(json, id: id, opcode: opcode, sink: sink, started: &started)
        case .members:
            // Empty while gossip is still starting: the node itself is always a member.
            let provided = membersProvider?() ?? []
            let members = provided.isEmpty ? [selfMember()] : provided
            let body = try MemberListCodec.encode(members)
            guard body.count <= config.wireLimits.maxListingBodyBytes else {
                throw AgadirError(
                    .internalError,
                    "MEMBERS: \(members.count) members take \(body.count) bytes, over the \(config.wireLimits.maxListingBodyBytes)-byte body limit"
                )
            }
            try await sendBody(body, id: id, opcode: opcode, sink: sink, started: &started)
        case .listBuckets:
            // The catalog is known cluster-wide: every node answers from its own.
            let buckets = try await store.listBuckets().filter { Authorization.lists($0, principal: caller.principal) }
            try await sendBody(BucketListCodec.encode(buckets), id: id, opcode: opcode, sink: sink, started: &started)
        case .createBucket(let name, let policy):
            let bound = try await backend(for: request).createBucket(name, policy: policy)
            logger.info(
                "bucket created", metadata: ["bucket": "\(name)", "policy": "\(bound)", "by": "\(caller.who)"])
            if let principal = caller.principal { try await keys.grantCreator(principal, bucket: name) }
            try await sink.send(.response(id: id, opcode: opcode, end: true))
        case .deleteBucket(let name):
            try await backend(for: request).deleteBucket(name)
            logger.info("bucket deleted", metadata: ["bucket": "\(name)", "by": "\(caller.who)"])
            try await sink.send(.response(id: id, opcode: opcode, end: true))
        case .route(let bucket):
            let r = try await backend(for: request).route(bucket)
            try await sink.send(.response(id: id, opcode: opcode, fields: r.fields(), end: true))
        case .put(let p):
            let (version, target) = try await backend(for: request).beginPut(p, options: options)
            let result = try await put(p, body: body, version: version, target: target)
            try await sink.send(.response(id: id, opcode: opcode, fields: result.fields(), end: true))
        case .get(let bucket, let key, let range):
            let object = try await backend(for: request).open(bucket: bucket, key: key, options: options)
            try await get(
                manifest: object.manifest, range: range, id: id, sink: sink, started: &started, read: object.readChunk)
        case .head(let bucket, let key):
            let object = try await backend(for: request).open(bucket: bucket, key: key, options: options)
            try await sink.send(
                .response(id: id, opcode: opcode, fields: ObjectInfo(manifest: object.manifest).fields(), end: true))
        case .delete(let bucket, let key):
            let r = try await backend(for: request).delete(bucket: bucket, key: key, options: options)
            try await sink.send(.response(id: id, opcode: opcode, fields: r.fields(), end: true))
        case .list(let l):
            let page = try await backend(for: request).list(l, options: options)
            try await sendBody(page.encoded(), id: id, opcode: opcode, sink: sink, started: &started)
        }
    }

    /// Answers PING, HEAD, and a GET whose object lives inside its manifest, right away
    /// on the connection's reader: those need one metadata lookup and one frame, and
    /// spawning a task for each cost more than the work (profiled on 4 KiB GETs). Returns
    /// false, having sent nothing, when the request must run as its own task.
    public func answerQuickly(
        id: UInt64, request: Request, options: RequestOptions = .none, caller: Caller, sink: any ResponseSink
    ) async -> Bool {
        let opcode = request.opcode.rawValue
        // In a cluster, HEAD and GET need the replicas: they run as tasks.
        if let cluster, cluster.node.isClusterMode || cluster.node.awaitsLayout, request.opcode != .ping {
            return false
        }
        do {
            switch request {
            case .ping, .head:
                await handle(id: id, request: request, caller: caller, body: nil, sink: sink)
                return true
            case .get(let bucket, let key, let range):
                try await authorize(request, caller: caller)
                let object = try await LocalObjects(service: self).open(bucket: bucket, key: key, options: options)
                guard case .inline = object.manifest.body else { return false }
                var started = false
                try await get(
                    manifest: object.manifest, range: range, id: id, sink: sink, started: &started,
                    read: object.readChunk)
                return true
            default:
                return false
            }
        } catch let error as AgadirError {
            try? await sink.send(.error(id: id, opcode: opcode, error, responseStarted: false))
            return true
        } catch {
            return true  // the connection is gone
        }
    }

    // MARK: Helpers

    /// Refuses the request unless its caller's key allows it (`Authorization`).
    func authorize(_ request: Request, caller: Caller) async throws(AgadirError) {
        let need = Authorization.need(request)
        var created: UInt64? = nil
        if let p = caller.principal, !p.admin, let bucket = Authorization.bucket(of: need), p.grants[bucket] != nil {
            created = try await keys.bucketCreatedMillis(bucket)
        }
        if let refusal = Authorization.refusal(need, principal: caller.principal, bucketCreatedMillis: created) {
            throw refusal
        }
    }

    func noSuchBucket(_ b: String) -> AgadirError {
        AgadirError(.noSuchBucket, "bucket '\(b)' does not exist; create it with `agadir mb \(b)`")
    }

    /// The live manifest of `bucket/key`, or `.noSuchKey` / `.noSuchBucket`.
    func liveManifest(bucket: String, key: String) async throws(AgadirError) -> ObjectManifest {
        if let m = try await store.manifest(bucket: bucket, key: key), !m.isTombstone { return m }
        guard try await store.bucket(bucket) != nil else { throw noSuchBucket(bucket) }
        throw AgadirError(.noSuchKey, "object '\(bucket)/\(key)' does not exist")
    }

    func sendBody(
        _ bytes: [UInt8], id: UInt64, opcode: UInt16, sink: any ResponseSink, started: inout Bool
    ) async throws {
        let frameBytes = config.dataFrameBytes
        if bytes.count <= frameBytes {
            try await sink.send(.response(id: id, opcode: opcode, payload: ByteBuffer(bytes: bytes), end: true))
            return
        }
        try await sink.send(.response(id: id, opcode: opcode, end: false))
        started = true
        var offset = 0
        while offset < bytes.count {
            let n = min(frameBytes, bytes.count - offset)
            let end = offset + n == bytes.count
            try await sink.send(.data(id: id, payload: ByteBuffer(bytes: bytes[offset..<offset + n]), end: end))
            offset += n
        }
    }
}
