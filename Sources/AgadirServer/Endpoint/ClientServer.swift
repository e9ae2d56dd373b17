import AgadirCluster
import AgadirCore
import AgadirMembership
import AgadirTransport
import AgadirWire
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The client endpoint: accepts TCP connections speaking protocol v1 and runs each
/// request as a child task of its connection. A `Service`: on graceful shutdown it stops
/// accepting, lets in-flight requests finish for `shutdownGraceSeconds`, then closes.
public final class ClientServer: Service, Sendable {
    /// What this endpoint needs to serve peer links: the node's id, the cluster-secret
    /// authenticator, the handler of authenticated peer requests, and where to record what
    /// peers' certificates attest.
    public struct PeerAccess: Sendable {
        public var nodeID: String
        public var authenticator: PeerAuthenticator
        public var handler: any PeerRequestHandler
        public var attestations: Attestations
        /// The node's clock: merged with the HLC of every peer request, sent in every answer.
        public var clock: NodeClock?

        public init(
            nodeID: String, authenticator: PeerAuthenticator, handler: any PeerRequestHandler,
            attestations: Attestations? = nil, clock: NodeClock? = nil
        ) {
            self.clock = clock
            self.nodeID = nodeID
            self.authenticator = authenticator
            self.handler = handler
            self.attestations = attestations ?? Attestations(nodeID: nodeID, own: nil)
        }
    }

    let service: ObjectService
    /// Nil: peer requests are refused with UNAUTHENTICATED (a standalone node, or tests).
    let peerAccess: PeerAccess?
    let config: NodeConfiguration
    let host: String
    let port: Int
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    private let bound = Once<SocketAddress?>()
    private let admission: Mutex<ConnectionAdmission>
    /// True for an IP address of a cluster member (gossip): its connections use the peer slots.
    let isMemberAddress: @Sendable (String) -> Bool
    /// Decoded bytes the answers of all connections may hold before they are sent
    /// (`responseBufferBytes`); each connection has its own share too.
    let responseMemory: ByteBudget
    /// With certificates: TLS 1.3 on every connection (docs/security.md, "TLS"); peers
    /// must present a certificate naming the node id they claim.
    let tls: NodeTLS?
    /// Peer connections that passed the TLS identity check, with their certificate's serial,
    /// so a revocation or a certificate change closes them (`closePeers(where:)`).
    private let peerChannels = Mutex<[ObjectIdentifier: (serial: String, channel: any Channel)]>([:])

    package init(
        service: ObjectService, config: NodeConfiguration, host: String, port: Int, group: MultiThreadedEventLoopGroup,
        logger: Logger, peerAccess: PeerAccess? = nil, tls: NodeTLS? = nil,
        isMemberAddress: @escaping @Sendable (String) -> Bool = { _ in false }
    ) {
        self.tls = tls
        self.admission = Mutex(
            ConnectionAdmission(
                limits: .init(
                    maxConnections: config.maxConnections, maxPerAddress: config.maxConnectionsPerAddress,
                    peerReserve: config.peerConnectionsReserved)))
        self.isMemberAddress = isMemberAddress
        self.responseMemory = ByteBudget(capacity: config.responseBufferBytes)
        self.service = service
        self.peerAccess = peerAccess
        self.config = config
        self.host = host
        self.port = port
        self.group = group
        self.logger = logger
    }

    /// The address actually bound (useful with port 0); waits until bound.
    public func localAddress() async -> SocketAddress? { await bound.wait() }

    private func publish(_ address: SocketAddress?) { bound.publish(address) }

    public func run() async throws {
        let limits = config.wireLimits
        let idle = TimeAmount.seconds(Int64(config.idleTimeoutSeconds))
        let writeStall = TimeAmount.seconds(Int64(config.writeStallSeconds))
        let channel: NIOAsyncChannel<NIOAsyncChannel<Frame, Frame>, Never>
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                // A client may half-close after its last request and still read the answers.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelOption(.writeBufferWaterMark, value: .init(low: 1 << 20, high: 4 << 20))
                .childChannelOption(
                    .recvAllocator,
                    value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 64 * 1024, maximum: 1 << 20)
                )
                .bind(host: host, port: port) { [tls] child in
                    child.eventLoop.makeCompletedFuture {
                        if let tls {
                            try child.pipeline.syncOperations.addHandlers([
                                PlaintextRefusal(), NIOSSLServerHandler(context: tls.current.server),
                            ])
                        }
                        try child.pipeline.syncOperations.addHandlers([
                            ByteToMessageHandler(FrameDecoder(limits: limits)),
                            FrameEncoder(),
                            FrameIdleHandler(timeout: idle, writeStall: writeStall),
                        ])
                        return try NIOAsyncChannel<Frame, Frame>(
                            wrappingChannelSynchronously: child,
                            configuration: .init(backPressureStrategy: .init(lowWatermark: 4, highWatermark: 16)))
                    }
                }
        } catch {
            publish(nil)
            throw AgadirError(
                .unavailable, "cannot listen on \(host):\(port): \(error); is another agadird running there?")
        }
        publish(channel.channel.localAddress)
        if let bound = channel.channel.localAddress?.hostAndPort { service.clientEndpointBound(bound) }
        logger.info(
            "client endpoint listening", metadata: ["address": "\(channel.channel.localAddress.map { "\($0)" } ?? "?")"]
        )

        let grace = Duration.seconds(config.shutdownGraceSeconds)
        try await withGracefulShutdownHandler {
            try await channel.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { connections in
                    for try await connection in inbound {
                        let address = connection.channel.remoteAddress?.ipAddress ?? "?"
                        let member = isMemberAddress(address)
                        let decision = admission.withLock { $0.admit(address: address, fromClusterMember: member) }
                        guard case .admitted(let peerSlot) = decision else {
                            if case .refused(let why) = decision { refused(address, why) }
                            try? await connection.channel.close()
                            continue
                        }
                        connections.addTask {
                            defer { self.admission.withLock { $0.release(address: address, peerSlot: peerSlot) } }
                            await self.serve(connection, limits: limits, grace: grace)
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            self.logger.info("client endpoint stops accepting connections")
            channel.channel.close(promise: nil)
        }
        logger.info("client endpoint closed")
    }

    /// Refusals are logged at most once per 10 s (a flood must not flood the log too).
    private let lastRefusalLog = Mutex<ContinuousClock.Instant?>(nil)
    private let refusals = Atomic<Int>(0)

    private func refused(_ address: String, _ why: String) {
        let count = refusals.add(1, ordering: .relaxed).newValue
        let now = ContinuousClock.now
        let due = lastRefusalLog.withLock { last in
            guard last.map({ now - $0 >= .seconds(10) }) ?? true else { return false }
            last = now
            return true
        }
        if due {
            logger.warning(
                "connection refused",
                metadata: ["address": "\(address)", "reason": "\(why)", "refusedSoFar": "\(count)"])
        }
    }

    /// Closes the peer connections whose certificate serial satisfies `doomed`; returns how many.
    @discardableResult
    package func closePeers(where doomed: (String) -> Bool) -> Int {
        let doomed = peerChannels.withLock { all in
            all.values.filter { doomed($0.serial) }.map(\.channel)
        }
        for channel in doomed { channel.close(promise: nil) }
        return doomed.count
    }

    // MARK: One connection

    /// Per-connection state shared by the reader loop and the request tasks.
    private struct ConnectionState {
        /// Request ids in use (admitted, final response frame not yet sent), with the
        /// ticket of the request holding each: an id is released just before its
        /// END_STREAM goes out, so a client may reuse it as soon as it sees that frame.
        var ids: [UInt64: UInt64] = [:]
        var nextTicket: UInt64 = 0
        /// Request tasks still running (bounded by `maxInFlightRequests`).
        var running = 0
        /// Request bodies still being received, by id (bounded by `maxInFlightRequests`).
        var bodies: [UInt64: BodyStream] = [:]
        /// The bodies whose PUT asked for signed frames (BODY_SIGNING): their signature chain,
        /// or nil when the request was refused (its frames are then dropped unchecked).
        var signedBodies: [UInt64: FrameSignatures?] = [:]
        /// Set on graceful shutdown: new requests are refused, the connection closes when idle.
        var draining = false
        /// The peer handshake of this connection (docs/cluster.md, "Peer links").
        var handshake = PeerHandshakeState()

        mutating func release(_ id: UInt64, ticket: UInt64) {
            if ids[id] == ticket { ids[id] = nil }
        }
    }

    private func serve(_ connection: NIOAsyncChannel<Frame, Frame>, limits: WireLimits, grace: Duration) async {
        let peer = connection.channel.remoteAddress.map { "\($0)" } ?? "?"
        var log = logger
        log[metadataKey: "peer"] = "\(peer)"
        let state = Locked(ConnectionState())
        let bodyCapacity = config.requestBodyBufferBytes
        let channel = connection.channel
        do {
            try await withGracefulShutdownHandler {
                try await connection.executeThenClose { inbound, outbound in
                    let sink = OutboundSink(
                        writer: outbound, writerChannel: channel,
                        responseBudget: ResponseBudget(
                            connection: ByteBudget(capacity: self.config.connectionResponseBufferBytes),
                            node: self.responseMemory))
                    try await withThrowingDiscardingTaskGroup { requests in
                        defer {
                            // However the reader ends (EOF, reset, protocol error), bodies still
                            // open will never complete: fail them so their handlers return.
                            let open = state.withLock { s in
                                defer { s.bodies.removeAll() }
                                return Array(s.bodies.values)
                            }
                            for b in open {
                                b.finish(
                                    error: AgadirError(.invalidArgument, "connection closed before the body ended"))
                            }
                        }
                        do {
                            for try await frame in inbound {
                                try await self.route(
                                    frame, state: state, limits: limits, bodyCapacity: bodyCapacity, sink: sink,
                                    address: peer, requests: &requests)
                            }
                        } catch let error as AgadirError where error.code.closesConnection {
                            log.info("closing connection after protocol error", metadata: ["error": "\(error)"])
                            try? await outbound.write(.error(id: 0, opcode: 0, error, responseStarted: false))
                            connection.channel.close(mode: .input, promise: nil)
                        } catch {
                            log.debug("connection input ended", metadata: ["error": "\(error)"])
                        }
                    }
                }
            } onGracefulShutdown: {
                // Finish what is in flight, refuse new requests, close when idle; a hard close
                // after the grace period is the backstop.
                let idle = state.withLock { s in
                    s.draining = true
                    return s.running == 0
                }
                if idle { channel.close(mode: .output, promise: nil) }
                channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(grace.components.seconds) * 1_000_000_000)) {
                    channel.close(promise: nil)
                }
            }
        } catch {
            log.debug("connection ended", metadata: ["error": "\(error)"])
        }
        _ = peerChannels.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    private func route(
        _ frame: Frame, state: Locked<ConnectionState>, limits: WireLimits, bodyCapacity: Int, sink: OutboundSink,
        address: String, requests: inout ThrowingDiscardingTaskGroup<any Error>
    ) async throws {
        let id = frame.requestID
        guard id != 0 else {
            throw AgadirError(.malformedFrame, "request id 0 is reserved for connection-level errors")
        }
        switch frame.header.kind {
        case .request where frame.header.opcode >= PeerOpcode.first:
            try await routePeer(frame, state: state, bodyCapacity: bodyCapacity, sink: sink, requests: &requests)
        case .request:
            var decoded: Result<Request, AgadirError> = Result { () throws(AgadirError) -> Request in
                try Request.decode(opcode: frame.header.opcode, fields: frame.fields, limits: limits)
            }
            // CONSISTENCY and other qualifiers; a bad one fails the request like a bad field.
            let options = Result { () throws(AgadirError) -> RequestOptions in try RequestOptions.decode(frame.fields) }
            if case .failure(let e) = decoded, e.code.closesConnection { throw e }
            if !frame.isEndStream, case .success(let r) = decoded, !r.hasBody {
                throw AgadirError(.malformedFrame, "only PUT and ADMIN have a body; request \(id) left its stream open")
            }
            // Every request but PING is signed (docs/protocol.md, "Signed requests"); a refusal
            // fails the request only, like a bad field.
            var caller = Caller(principal: nil, address: address)
            var frameChain: FrameSignatures?
            if case .success = decoded {
                switch await service.access.authenticate(opcode: frame.header.opcode, fields: frame.fields) {
                case .success(let found):
                    caller.principal = found.principal
                    frameChain = found.frameSignatures
                    if frameChain != nil, frame.payload.readableBytes > 0 {
                        decoded = .failure(
                            AgadirError(
                                .invalidArgument,
                                "a PUT with BODY_SIGNING sends its body in signed DATA frames: its REQUEST "
                                    + "frame's payload must be empty"))
                    }
                case .failure(let refusal): decoded = .failure(refusal)
                }
            }
            let body: BodyStream? = frame.isEndStream ? nil : BodyStream(capacityBytes: bodyCapacity)
            if body != nil, frame.fields.first(.bodySigning) != nil {
                // Before admission: a refused request's signed frames are still recognised (and dropped).
                let chain: FrameSignatures? = if case .success = decoded { frameChain } else { nil }
                state.withLock { $0.signedBodies[id] = .some(chain) }
            }
            guard
                let ticket = try await admit(
                    id, body: body, opcode: frame.header.opcode, state: state, limits: limits, sink: sink)
            else { return }
            let service = self.service
            let channel = sink.writerChannel
            let requestTimeout = config.requestTimeoutSeconds
            let requestSink = RequestSink(base: sink, release: { state.withLock { $0.release(id, ticket: ticket) } })
            if body == nil, case .success(let request) = decoded, case .success(let opts) = options,
                await service.answerQuickly(id: id, request: request, options: opts, caller: caller, sink: requestSink)
            {
                let closeNow = state.withLock { s in
                    s.release(id, ticket: ticket)
                    s.running -= 1
                    return s.draining && s.running == 0
                }
                if closeNow { channel.close(mode: .output, promise: nil) }
                return
            }
            requests.addTask {
                defer {
                    let closeNow = state.withLock { s in
                        s.release(id, ticket: ticket)
                        s.running -= 1
                        return s.draining && s.running == 0
                    }
                    // Half-close: frames already queued are still flushed to the client.
                    if closeNow { channel.close(mode: .output, promise: nil) }
                }
                switch decoded.flatMap({ r in options.map { (r, $0) } }) {
                case .success(let (request, options)):
                    guard let watched = body ?? (request.hasBody ? BodyStream(completeWith: frame.payload) : nil) else {
                        await service.handle(
                            id: id, request: request, options: options, caller: caller, body: nil, sink: requestSink)
                        return
                    }
                    if watched.isClosed {  // the whole body rode in the REQUEST frame
                        await service.handle(
                            id: id, request: request, options: options, caller: caller, body: watched,
                            sink: requestSink)
                        return
                    }
                    // A body that stalls for the request timeout fails the request.
                    let timeout = AgadirError(
                        .requestTimeout, "no body bytes for \(requestTimeout) s; the upload stalled")
                    await withTaskGroup(of: Void.self) { group in
                        group.addTask { await watched.watch(interval: .seconds(requestTimeout), error: timeout) }
                        await service.handle(
                            id: id, request: request, options: options, caller: caller, body: watched,
                            sink: requestSink)
                        group.cancelAll()
                    }
                case .failure(let error):
                    body?.abandon()
                    try? await requestSink.send(
                        .error(id: id, opcode: frame.header.opcode, error, responseStarted: false))
                }
            }
            // After the consumer exists: a payload as large as the body buffer must not wait for room first.
            if let body, frame.payload.readableBytes > 0 { await body.send(frame.payload) }
        case .data, .abort:
            let (body, signing) = state.withLock { s -> (BodyStream?, FrameSignatures??) in
                guard let b = s.bodies[id] else { return (nil, nil) }
                let signing = s.signedBodies[id]
                if frame.isEndStream || frame.header.kind == .abort {
                    s.bodies[id] = nil
                    s.signedBodies[id] = nil
                }
                return (b, signing)
            }
            guard let body else {
                throw AgadirError(
                    .malformedFrame, "\(frame.header.kind) frame for request \(id), which has no open body")
            }
            if frame.header.kind == .abort {
                body.finish(error: frame.error ?? AgadirError(.invalidArgument, "the client aborted the request"))
                return
            }
            if case .some(.some(var chain)) = signing {
                // Hashed outside the lock: only this reader touches a request's chain.
                let intact = frame.payload.withUnsafeReadableBytes {
                    chain.verify(frame.fields.first(.frameSignature), payload: $0, end: frame.isEndStream)
                }
                guard intact else {
                    // The body fails; later frames of it are dropped (the chain stays behind them).
                    body.finish(
                        error: AgadirError(
                            .notAuthenticated,
                            "DATA frame \(chain.frames + 1) of request \(id) has a missing or wrong FRAME_SIGNATURE: "
                                + "the body was altered on its way, or the client chains frame signatures wrongly "
                                + "(docs/protocol.md, \"Signed bodies\")"))
                    return
                }
                if !frame.isEndStream { state.withLock { $0.signedBodies[id] = .some(chain) } }
            } else if signing == nil, !frame.fields.items.isEmpty {
                throw AgadirError(
                    .malformedFrame,
                    "DATA frame for request \(id) carries fields, but its REQUEST asked for no signed frames")
            }
            if frame.payload.readableBytes > 0 { await body.send(frame.payload) }
            if frame.isEndStream { body.finish() }
        case .response:
            throw AgadirError(.malformedFrame, "a client sent a RESPONSE frame (request \(id))")
        }
    }

    /// Registers request `id` (and its body) on the connection. Returns its ticket, or nil
    /// when it was refused with an answer already sent (the node is draining); throws the
    /// connection-fatal refusals (duplicate id, too many requests).
    private func admit(
        _ id: UInt64, body: BodyStream?, opcode: UInt16, state: Locked<ConnectionState>, limits: WireLimits,
        sink: OutboundSink
    ) async throws -> UInt64? {
        let admitted: Result<UInt64, AgadirError> = state.withLock { s in
            if s.ids[id] != nil || s.bodies[id] != nil {
                return .failure(
                    AgadirError(.duplicateRequestID, "request id \(id) is already in flight on this connection"))
            }
            if s.running >= limits.maxInFlightRequests || s.bodies.count >= limits.maxInFlightRequests {
                return .failure(
                    AgadirError(
                        .tooManyRequests, "more than \(limits.maxInFlightRequests) requests in flight on one connection"
                    ))
            }
            if s.draining {
                if let body { s.bodies[id] = body }  // its DATA frames are dropped, not fatal
                return .failure(
                    AgadirError(.shuttingDown, "this node is shutting down; retry on another node or after restart"))
            }
            s.nextTicket += 1
            s.ids[id] = s.nextTicket
            s.running += 1
            if let body { s.bodies[id] = body }
            return .success(s.nextTicket)
        }
        switch admitted {
        case .success(let t):
            return t
        case .failure(let refused) where refused.code == .shuttingDown:
            body?.abandon()
            try await sink.send(.error(id: id, opcode: opcode, refused, responseStarted: false))
            return nil
        case .failure(let refused):
            throw refused
        }
    }

    /// A peer request: the handshake is answered on the reader; any other peer request
    /// needs a connection that passed it and runs as a task like a client request.
    private func routePeer(
        _ frame: Frame, state: Locked<ConnectionState>, bodyCapacity: Int, sink: OutboundSink,
        requests: inout ThrowingDiscardingTaskGroup<any Error>
    ) async throws {
        let id = frame.requestID
        let opcode = frame.header.opcode
        guard let access = peerAccess else {
            throw AgadirError(.unauthenticated, "this node does not accept peer links (opcode \(opcode))")
        }
        // Peers run the same release: a peer request that does not decode is a bug or a
        // forgery, and the link is closed rather than trusted further.
        let decoded = Result { () throws(AgadirError) -> PeerRequest in
            try PeerRequest.decode(opcode: opcode, fields: frame.fields)
        }
        let request: PeerRequest
        switch decoded {
        case .success(let r): request = r
        case .failure(let e) where e.code.closesConnection: throw e
        case .failure(let e): throw AgadirError(.malformedFrame, "peer request \(id) (opcode \(opcode)): \(e.message)")
        }
        switch request {
        case .hello(let dialer, let nonce):
            if let tls {
                // Mutual TLS: the dialer's certificate must name the node id it claims; a client
                // without one, or a node claiming another's id, gets the same words as any
                // failed handshake (the log says which check failed).
                do {
                    let identity = try await PeerLinks.admitPeer(
                        on: sink.writerChannel, claiming: dialer, caPEM: tls.current.caPEM,
                        attestations: access.attestations)
                    let channel = sink.writerChannel
                    peerChannels.withLock { $0[ObjectIdentifier(channel)] = (identity.serial, channel) }
                } catch {
                    logger.warning(
                        "peer handshake refused", metadata: ["claimed": "\(dialer)", "why": "\(error.message)"])
                    throw AgadirError(.unauthenticated, "peer authentication failed")
                }
            }
            var rng = SystemRandomNumberGenerator()
            let listenerNonce = (0..<PeerLimits.nonceBytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let fields = try state.withLock { (s) throws(AgadirError) -> Fields in
                try s.handshake.hello(
                    nodeID: dialer, nonce: nonce, listenerID: access.nodeID, listenerNonce: listenerNonce)
            }
            try await sink.send(.response(id: id, opcode: opcode, fields: fields, end: true))
            return
        case .auth(let proof):
            let (peer, answer) = try state.withLock { (s) throws(AgadirError) -> (peer: String, answer: Fields) in
                try s.handshake.auth(proof: proof, authenticator: access.authenticator)
            }
            logger.debug("peer link authenticated", metadata: ["node": "\(peer)"])
            try await sink.send(.response(id: id, opcode: opcode, fields: answer, end: true))
            return
        default:
            break
        }
        guard let peer = state.withLock({ $0.handshake.authenticatedPeer }) else {
            throw AgadirError(
                .unauthenticated, "\(request.opcode) on a connection that has not passed the peer handshake")
        }
        if !frame.isEndStream, !request.hasBody {
            throw AgadirError(.malformedFrame, "\(request.opcode) has no body; request \(id) left its stream open")
        }
        let body: BodyStream? = frame.isEndStream ? nil : BodyStream(capacityBytes: bodyCapacity)
        guard
            let ticket = try await admit(
                id, body: body, opcode: opcode, state: state, limits: config.wireLimits, sink: sink)
        else { return }
        let channel = sink.writerChannel
        let requestSink = RequestSink(
            base: sink, release: { state.withLock { $0.release(id, ticket: ticket) } }, clock: access.clock)
        let handler = access.handler
        // The peer's clock, merged before the request runs; one too far ahead fails the request.
        var skewed: AgadirError? = nil
        if let clock = access.clock, let stamp = try? frame.fields.u64(.hlc) {
            do throws(AgadirError) {
                try clock.observe(HLCTimestamp(rawValue: stamp), from: peer)
            } catch {
                skewed = error
            }
        }
        let payload = frame.payload
        let requestTimeout = config.requestTimeoutSeconds
        requests.addTask {
            defer {
                let closeNow = state.withLock { s in
                    s.release(id, ticket: ticket)
                    s.running -= 1
                    return s.draining && s.running == 0
                }
                if closeNow { channel.close(mode: .output, promise: nil) }
            }
            if let skewed {
                body?.abandon()
                try? await requestSink.send(.error(id: id, opcode: opcode, skewed, responseStarted: false))
                return
            }
            guard let body else {
                let stream = request.hasBody ? BodyStream(completeWith: payload) : nil
                await handler.handle(id: id, request: request, from: peer, body: stream, sink: requestSink)
                return
            }
            // A body that stalls for the request timeout fails the request.
            let timeout = AgadirError(.requestTimeout, "no body bytes for \(requestTimeout) s from peer \(peer)")
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await body.watch(interval: .seconds(requestTimeout), error: timeout) }
                await handler.handle(id: id, request: request, from: peer, body: body, sink: requestSink)
                group.cancelAll()
            }
        }
        if let body, frame.payload.readableBytes > 0 { await body.send(frame.payload) }
    }
}

/// The sink of one request: releases the request id just before the frame that ends the
/// response goes out, so the client may reuse the id as soon as it sees that frame.
struct RequestSink: ResponseSink {
    let base: OutboundSink
    let release: @Sendable () -> Void
    /// For peer requests: the node's clock, sent in the RESPONSE frame (HLC).
    var clock: NodeClock? = nil
    var responseBudget: ResponseBudget? { base.responseBudget }

    func send(_ frame: Frame) async throws {
        if frame.isEndStream { release() }
        guard let clock, frame.header.kind == .response else { return try await base.send(frame) }
        var stamped = frame
        stamped.fields.set(.hlc, u64: clock.now().rawValue)
        try await base.send(stamped)
    }
}

/// Writes response frames to a connection.
struct OutboundSink: ResponseSink {
    let writer: NIOAsyncChannelOutboundWriter<Frame>
    let writerChannel: any Channel
    let responseBudget: ResponseBudget?
    func send(_ frame: Frame) async throws { try await writer.write(frame) }
}
