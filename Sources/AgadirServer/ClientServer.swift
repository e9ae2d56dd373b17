import AgadirCore
import AgadirTransport
import AgadirWire
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The client endpoint: accepts TCP connections speaking protocol v1 and runs each
/// request as a child task of its connection. A `Service`: on graceful shutdown it stops
/// accepting, lets in-flight requests finish for `shutdownGraceSeconds`, then closes.
public final class ClientServer: Service, Sendable {
    let service: ObjectService
    let config: NodeConfiguration
    let host: String
    let port: Int
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    private let boundAddress: Mutex<SocketAddress?> = Mutex(nil)
    private let boundWaiters: Mutex<[CheckedContinuation<SocketAddress?, Never>]> = Mutex([])
    private let connectionCount = Atomic<Int>(0)

    public init(service: ObjectService, config: NodeConfiguration, host: String, port: Int, group: MultiThreadedEventLoopGroup, logger: Logger) {
        self.service = service
        self.config = config
        self.host = host
        self.port = port
        self.group = group
        self.logger = logger
    }

    /// The address actually bound (useful with port 0); waits until bound.
    public func localAddress() async -> SocketAddress? {
        await withCheckedContinuation { c in
            let now: SocketAddress?? = boundAddress.withLock { a in
                if let a { return .some(a) }
                boundWaiters.withLock { $0.append(c) }
                return .none
            }
            if case .some(let a) = now { c.resume(returning: a) }
        }
    }

    private func publish(_ address: SocketAddress?) {
        let waiters = boundAddress.withLock { a in
            a = address
            return boundWaiters.withLock { w in
                defer { w.removeAll() }
                return w
            }
        }
        for w in waiters { w.resume(returning: address) }
    }

    public func run() async throws {
        let limits = config.wireLimits
        let idle = TimeAmount.seconds(Int64(config.idleTimeoutSeconds))
        let channel: NIOAsyncChannel<NIOAsyncChannel<Frame, Frame>, Never>
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                // A client may half-close after its last request and still read the answers.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelOption(.writeBufferWaterMark, value: .init(low: 1 << 20, high: 4 << 20))
                .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 64 * 1024, maximum: 1 << 20))
                .bind(host: host, port: port) { child in
                    child.eventLoop.makeCompletedFuture {
                        try child.pipeline.syncOperations.addHandlers([
                            IdleStateHandler(allTimeout: idle),
                            IdleCloser(),
                            ByteToMessageHandler(FrameDecoder(limits: limits)),
                            FrameEncoder(),
                        ])
                        return try NIOAsyncChannel<Frame, Frame>(
                            wrappingChannelSynchronously: child,
                            configuration: .init(backPressureStrategy: .init(lowWatermark: 4, highWatermark: 16)))
                    }
                }
        } catch {
            publish(nil)
            throw AgadirError(.unavailable, "cannot listen on \(host):\(port): \(error); is another agadird running there?")
        }
        publish(channel.channel.localAddress)
        logger.info("client endpoint listening", metadata: ["address": "\(channel.channel.localAddress.map { "\($0)" } ?? "?")"])

        let grace = Duration.seconds(config.shutdownGraceSeconds)
        try await withGracefulShutdownHandler {
            try await channel.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { connections in
                    for try await connection in inbound {
                        if connectionCount.wrappingAdd(1, ordering: .relaxed).newValue > config.maxConnections {
                            connectionCount.wrappingSubtract(1, ordering: .relaxed)
                            logger.warning("connection refused: too many connections", metadata: ["limit": "\(config.maxConnections)"])
                            try? await connection.channel.close()
                            continue
                        }
                        connections.addTask {
                            defer { self.connectionCount.wrappingSubtract(1, ordering: .relaxed) }
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

    // MARK: One connection

    /// Per-connection state shared by the reader loop and the request tasks.
    private struct ConnectionState {
        /// Requests whose response is not finished, by id.
        var active: Set<UInt64> = []
        /// Request bodies still being received, by id.
        var bodies: [UInt64: BodyStream] = [:]
        /// Set on graceful shutdown: new requests are refused, the connection closes when idle.
        var draining = false
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
                let sink = OutboundSink(writer: outbound, writerChannel: channel)
                try await withThrowingDiscardingTaskGroup { requests in
                    do {
                        for try await frame in inbound {
                            try await self.route(
                                frame, state: state, limits: limits, bodyCapacity: bodyCapacity, sink: sink, requests: &requests)
                        }
                    } catch let error as AgadirError where error.code.closesConnection {
                        log.info("closing connection after protocol error", metadata: ["error": "\(error)"])
                        try? await outbound.write(.error(id: 0, opcode: 0, error, responseStarted: false))
                        connection.channel.close(mode: .input, promise: nil)
                    } catch let error as AgadirError {
                        log.info("closing connection", metadata: ["error": "\(error)"])
                    }
                    // The peer stopped sending: bodies still open will never complete.
                    let open = state.withLock { s in
                        defer { s.bodies.removeAll() }
                        return Array(s.bodies.values)
                    }
                    for b in open { b.finish(error: AgadirError(.invalidArgument, "connection closed before the body ended")) }
                }
            }
            } onGracefulShutdown: {
                // Finish what is in flight, refuse new requests, close when idle or after the grace period.
                let idle = state.withLock { s in
                    s.draining = true
                    return s.active.isEmpty
                }
                if idle {
                    channel.close(promise: nil)
                } else {
                    channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(grace.components.seconds) * 1_000_000_000)) {
                        channel.close(promise: nil)
                    }
                }
            }
        } catch {
            log.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }

    private func route(
        _ frame: Frame, state: Locked<ConnectionState>, limits: WireLimits, bodyCapacity: Int, sink: OutboundSink,
        requests: inout ThrowingDiscardingTaskGroup<any Error>
    ) async throws {
        let id = frame.requestID
        switch frame.header.kind {
        case .request:
            let decoded: Result<Request, AgadirError> = Result { () throws(AgadirError) -> Request in
                try Request.decode(opcode: frame.header.opcode, fields: frame.fields, limits: limits)
            }
            if case .failure(let e) = decoded, e.code.closesConnection { throw e }
            let body: BodyStream? = frame.isEndStream ? nil : BodyStream(capacityBytes: bodyCapacity)
            let admitted: AgadirError? = state.withLock { s in
                if s.draining {
                    if let body { s.bodies[id] = body }  // its DATA frames are dropped, not fatal
                    return AgadirError(.shuttingDown, "this node is shutting down; retry on another node or after restart")
                }
                if s.active.contains(id) || s.bodies[id] != nil {
                    return AgadirError(.duplicateRequestID, "request id \(id) is already in flight on this connection")
                }
                if s.active.count >= limits.maxInFlightRequests {
                    return AgadirError(.tooManyRequests, "more than \(limits.maxInFlightRequests) requests in flight on one connection")
                }
                s.active.insert(id)
                if let body { s.bodies[id] = body }
                return nil
            }
            if let admitted {
                if admitted.code == .shuttingDown {
                    body?.abandon()
                    try await sink.send(.error(id: id, opcode: frame.header.opcode, admitted, responseStarted: false))
                    return
                }
                throw admitted
            }
            if let body, frame.payload.readableBytes > 0 { await body.send(frame.payload) }
            let service = self.service
            let channel = sink.writerChannel
            let requestTimeout = config.requestTimeoutSeconds
            requests.addTask {
                defer {
                    let closeNow = state.withLock { s in
                        s.active.remove(id)
                        return s.draining && s.active.isEmpty
                    }
                    if closeNow { channel.close(promise: nil) }
                }
                switch decoded {
                case .success(let request):
                    // A PUT whose whole body rides in the REQUEST frame.
                    var stream = body
                    if stream == nil, request.hasBody { stream = BodyStream(completeWith: frame.payload) }
                    if !request.hasBody { stream?.abandon() }
                    guard request.hasBody, let watched = stream, !watched.isClosed else {
                        await service.handle(id: id, request: request, body: request.hasBody ? stream : nil, sink: sink)
                        return
                    }
                    // A body that stalls for the request timeout fails the request.
                    let timeout = AgadirError(
                        .requestTimeout, "no body bytes for \(requestTimeout) s; the upload stalled")
                    await withTaskGroup(of: Void.self) { group in
                        group.addTask { await watched.watch(interval: .seconds(requestTimeout), error: timeout) }
                        await service.handle(id: id, request: request, body: watched, sink: sink)
                        group.cancelAll()
                    }
                case .failure(let error):
                    body?.abandon()
                    try? await sink.send(.error(id: id, opcode: frame.header.opcode, error, responseStarted: false))
                }
            }
        case .data, .abort:
            let body = state.withLock { s -> BodyStream? in
                guard let b = s.bodies[id] else { return nil }
                if frame.isEndStream || frame.header.kind == .abort { s.bodies[id] = nil }
                return b
            }
            guard let body else {
                throw AgadirError(.malformedFrame, "\(frame.header.kind) frame for request \(id), which has no open body")
            }
            if frame.header.kind == .abort {
                body.finish(error: frame.error ?? AgadirError(.invalidArgument, "the client aborted the request"))
                return
            }
            if frame.payload.readableBytes > 0 { await body.send(frame.payload) }
            if frame.isEndStream { body.finish() }
        case .response:
            throw AgadirError(.malformedFrame, "a client sent a RESPONSE frame (request \(id))")
        }
    }
}

/// Writes response frames to a connection.
struct OutboundSink: ResponseSink {
    let writer: NIOAsyncChannelOutboundWriter<Frame>
    let writerChannel: any Channel
    func send(_ frame: Frame) async throws { try await writer.write(frame) }
}

/// Closes a connection on which nothing was read or written for the idle timeout.
final class IdleCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
