import AgadirCore
import AgadirWire
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// One multiplexed connection to a node: many requests in flight, told apart by id.
///
/// A reader task owns the inbound side and routes each frame to its request: the
/// RESPONSE frame resumes the caller, DATA frames go into the request's `BodyStream`
/// (whose backpressure pauses the reader, and with it the socket).
package final class ClientConnection: Sendable {
    private struct Pending {
        var response: CheckedContinuation<Frame, any Error>?
        /// The RESPONSE frame when it arrived before anyone waited for it.
        var received: Frame?
        var body: BodyStream
        var responded = false
        /// The response body ended (DATA END_STREAM or ABORT) while `received` waited.
        var bodyEnded = false
    }

    private struct State {
        var pending: [UInt64: Pending] = [:]
        var nextID: UInt64 = 1
        var closed: AgadirError?
    }

    package let endpoint: String
    let outbound: NIOAsyncChannelOutboundWriter<Frame>
    package let channel: any Channel
    let bodyBufferBytes: Int
    private let state = Mutex(State())
    private let reader: Mutex<Task<Void, Never>?> = Mutex(nil)

    package var inFlight: Int { state.withLock { $0.pending.count } }
    package var isClosed: Bool { state.withLock { $0.closed != nil } }

    private init(
        endpoint: String, outbound: NIOAsyncChannelOutboundWriter<Frame>, channel: any Channel, bodyBufferBytes: Int
    ) {
        self.endpoint = endpoint
        self.outbound = outbound
        self.channel = channel
        self.bodyBufferBytes = bodyBufferBytes
    }

    /// Connects to `host:port`; with `tls`, the TLS handshake must also complete within
    /// `connectTimeout`.
    package static func connect(
        host: String, port: Int, limits: WireLimits, bodyBufferBytes: Int, connectTimeout: TimeAmount,
        tls: DialTLS? = nil
    ) async throws(AgadirError) -> ClientConnection {
        let endpoint = "\(host):\(port)"
        let async: NIOAsyncChannel<Frame, Frame>
        let handshake: EventLoopFuture<Void>?
        do {
            (async, handshake) = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.writeBufferWaterMark, value: .init(low: 1 << 20, high: 4 << 20))
                .channelOption(
                    .recvAllocator,
                    value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 64 * 1024, maximum: 1 << 20)
                )
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        var handshake: EventLoopFuture<Void>? = nil
                        if let tls {
                            let done = channel.eventLoop.makePromise(of: Void.self)
                            try channel.pipeline.syncOperations.addHandlers([
                                try NIOSSLClientHandler(context: tls.context, serverHostname: tls.serverHostname(host)),
                                TLSHandshakeWatcher(done: done),
                            ])
                            handshake = done.futureResult
                        }
                        try channel.pipeline.syncOperations.addHandlers([
                            ByteToMessageHandler(FrameDecoder(limits: limits)), FrameEncoder(),
                        ])
                        let wrapped = try NIOAsyncChannel<Frame, Frame>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(backPressureStrategy: .init(lowWatermark: 4, highWatermark: 16)))
                        return (wrapped, handshake)
                    }
                }
        } catch {
            throw AgadirError(.unavailable, "cannot connect to \(endpoint): \(error); is agadird running there?")
        }
        if let handshake {
            let channel = async.channel
            let timer = channel.eventLoop.scheduleTask(in: connectTimeout) { channel.close(promise: nil) }
            defer { timer.cancel() }
            do {
                try await handshake.get()
            } catch {
                try? await channel.close()
                throw AgadirError(
                    .unavailable,
                    "TLS handshake with \(endpoint) failed: \(error); the node's certificate must be issued by the "
                        + "cluster CA given (--ca-file) and name \(host) (agadir admin cert issue --host \(host))")
            }
        }
        return await withCheckedContinuation { (ready: CheckedContinuation<ClientConnection, Never>) in
            let task = Task {
                do {
                    try await async.executeThenClose { inbound, outbound in
                        let connection = ClientConnection(
                            endpoint: endpoint, outbound: outbound, channel: async.channel,
                            bodyBufferBytes: bodyBufferBytes)
                        ready.resume(returning: connection)
                        await connection.readLoop(inbound)
                    }
                } catch {
                    // executeThenClose only fails here if closing failed; nothing to do.
                }
            }
            _ = task
        }
    }

    // MARK: Reading

    private func readLoop(_ inbound: NIOAsyncChannelInboundStream<Frame>) async {
        var failure = AgadirError(.unavailable, "connection to \(endpoint) closed by the server")
        do {
            for try await frame in inbound {
                if frame.requestID == 0, let error = frame.error {
                    failure = AgadirError(error.code, "\(endpoint) closed the connection: \(error.message)")
                    break
                }
                await route(frame)
            }
        } catch let e as AgadirError {
            failure = AgadirError(e.code, "bad frame from \(endpoint): \(e.message)")
        } catch {
            failure = AgadirError(.unavailable, "connection to \(endpoint) failed: \(error)")
        }
        fail(with: failure)
    }

    private func route(_ frame: Frame) async {
        let id = frame.requestID
        enum Action { case resume(CheckedContinuation<Frame, any Error>?, BodyStream), body(BodyStream), none }
        let action: Action = state.withLock { s in
            guard var p = s.pending[id] else { return .none }
            switch frame.header.kind {
            case .response where !p.responded:
                p.responded = true
                let c = p.response
                p.response = nil
                if c == nil { p.received = frame }
                if frame.isEndStream { p.body.finish(error: frame.error) }
                // Keep the entry while its frame waits to be taken or its body streams.
                s.pending[id] = (frame.isEndStream && c != nil) ? nil : p
                return .resume(c, p.body)
            case .data, .abort:
                if frame.isEndStream || frame.header.kind == .abort {
                    // Keep an entry whose RESPONSE frame nobody has taken yet.
                    if p.received != nil {
                        p.bodyEnded = true
                        s.pending[id] = p
                    } else {
                        s.pending[id] = nil
                    }
                }
                return .body(p.body)
            default:
                return .none
            }
        }
        switch action {
        case .resume(let c, let body):
            c?.resume(returning: frame)
            // Body bytes in an open RESPONSE frame come before any DATA frame's.
            if !frame.isEndStream, frame.payload.readableBytes > 0 { await body.send(frame.payload) }
        case .body(let body):
            if frame.header.kind == .abort {
                body.finish(error: frame.error ?? AgadirError(.internalError, "the server aborted the response"))
            } else {
                if frame.payload.readableBytes > 0 { await body.send(frame.payload) }
                if frame.isEndStream { body.finish() }
            }
        case .none:
            break
        }
    }

    private func fail(with error: AgadirError) {
        let pending = state.withLock { s in
            if s.closed == nil { s.closed = error }
            // Entries whose RESPONSE frame arrived stay, so `awaitResponse` still gets it.
            let failing = s.pending.filter { $0.value.received == nil }
            for id in failing.keys { s.pending[id] = nil }
            return Array(s.pending.values) + Array(failing.values)
        }
        for p in pending {
            p.response?.resume(throwing: error)
            p.body.finish(error: error)  // no effect on a body that already ended
        }
    }

    package func close() {
        fail(with: AgadirError(.unavailable, "the client closed the connection"))
        channel.close(promise: nil)
    }

    // MARK: Requests

    /// Registers a request id whose response will be delivered to `awaitResponse`.
    package func open() throws(AgadirError) -> (UInt64, BodyStream) {
        let body = BodyStream(capacityBytes: bodyBufferBytes)
        let id: UInt64 = try state.withLock { (s) throws(AgadirError) -> UInt64 in
            if let closed = s.closed { throw closed }
            let id = s.nextID
            s.nextID &+= 1
            if s.nextID == 0 { s.nextID = 1 }
            s.pending[id] = Pending(response: nil, body: body)
            return id
        }
        return (id, body)
    }

    /// Waits for the RESPONSE frame of `id` (or throws if the connection fails first).
    package func awaitResponse(_ id: UInt64) async throws -> Frame {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Frame, any Error>) in
            let early: Result<Frame, AgadirError>? = state.withLock { s in
                guard var p = s.pending[id] else {
                    return .failure(s.closed ?? AgadirError(.internalError, "request \(id) is not pending"))
                }
                if let f = p.received {
                    p.received = nil
                    s.pending[id] = (f.isEndStream || p.bodyEnded) ? nil : p
                    return .success(f)
                }
                if let closed = s.closed { return .failure(closed) }
                p.response = c
                s.pending[id] = p
                return nil
            }
            switch early {
            case .some(.failure(let e)): c.resume(throwing: e)
            case .some(.success(let f)): c.resume(returning: f)
            case .none: break
            }
        }
    }

    /// True once the response of `id` has arrived (a PUT stops sending on an early error).
    package func hasResponded(_ id: UInt64) -> Bool {
        state.withLock { s in s.pending[id].map { $0.responded } ?? true }
    }

    /// Fails `id` with `error`: its waiter and its body get the error (a peer call that
    /// timed out, for example).
    package func fail(_ id: UInt64, with error: AgadirError) {
        let p = state.withLock { $0.pending.removeValue(forKey: id) }
        p?.body.finish(error: error)
        p?.response?.resume(throwing: error)
    }

    /// Forgets `id` (after an error on the caller's side).
    package func cancel(_ id: UInt64) {
        let p = state.withLock { $0.pending.removeValue(forKey: id) }
        p?.body.abandon()
        p?.response?.resume(throwing: AgadirError(.internalError, "request \(id) cancelled"))
    }

    /// One request's round trip, the sequence every caller shares: a request id is
    /// registered, `send` writes the request's frames, and the RESPONSE frame is awaited.
    /// An error answer is thrown as it came; any failure forgets the request id, and an
    /// untyped one becomes UNAVAILABLE naming `what`. The body stream carries the DATA
    /// frames of a response that did not end in its RESPONSE frame.
    package func roundTrip(
        _ what: @autoclosure () -> String, send: (_ id: UInt64) async throws(AgadirError) -> Void
    ) async throws(AgadirError) -> (frame: Frame, body: BodyStream) {
        let (id, body) = try open()
        do {
            try await send(id)
            let frame = try await awaitResponse(id)
            if let error = frame.error { throw error }
            return (frame, body)
        } catch let e as AgadirError {
            cancel(id)
            throw e
        } catch {
            cancel(id)
            throw AgadirError(.unavailable, "\(what()) failed: \(error)")
        }
    }

    /// The whole body of a response: the RESPONSE frame's payload when it ended the stream,
    /// else its DATA frames, at most `max` bytes (FRAME_TOO_LARGE beyond).
    package static func collect(_ frame: Frame, _ body: BodyStream, max: Int, what: String) async throws(AgadirError)
        -> [UInt8]
    {
        if frame.isEndStream {
            body.abandon()
            guard frame.payload.readableBytes <= max else {
                throw AgadirError(.frameTooLarge, "\(what): the answer exceeds \(max) bytes")
            }
            return Array(frame.payload.readableBytesView)
        }
        var out: [UInt8] = []  // an open RESPONSE frame's payload was routed into `body` first
        while let buf = try await body.next() {
            out.append(contentsOf: buf.readableBytesView)
            guard out.count <= max else {
                body.abandon()
                throw AgadirError(.frameTooLarge, "\(what): the answer exceeds \(max) bytes")
            }
        }
        return out
    }

    package func write(_ frame: Frame) async throws(AgadirError) {
        do {
            try await outbound.write(frame)
        } catch {
            let closed = state.withLock { $0.closed }
            throw closed ?? AgadirError(.unavailable, "cannot send to \(endpoint): \(error)")
        }
    }
}
