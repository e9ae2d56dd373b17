import AgadirCore
import AgadirIdentity
import AgadirMembership
import AgadirPlacement
import AgadirTransport
import AgadirWire
import NIOCore
import ServiceLifecycle
import Synchronization

/// The answer of a peer: the RESPONSE frame's fields and the whole body.
public struct PeerResponse: Sendable {
    public var fields: Fields
    public var body: [UInt8]

    public init(fields: Fields, body: [UInt8]) {
        self.fields = fields
        self.body = body
    }
}

/// Bounds of outbound peer links.
public struct PeerLinkSettings: Sendable, Hashable {
    /// Connections kept to each peer (requests are multiplexed on them).
    public var connectionsPerPeer = 2
    /// TCP connect plus handshake, seconds.
    public var connectTimeoutSeconds: Double = 2
    /// One request from its first frame to its last answer byte, seconds; a peer that does
    /// not answer in time has the connection closed (it may be paused or wedged).
    public var requestTimeoutSeconds: Double = 30
    /// Body bytes a request carries inside its REQUEST frame; larger bodies go in DATA frames.
    public var inlineBodyBytes = 64 * 1024
    /// Largest DATA frame sent.
    public var dataFrameBytes = 1 << 20
    /// Receive buffer for an answer's body, per request.
    public var bodyBufferBytes = 8 << 20
    public var limits = WireLimits.default

    public init() {}
}

/// Outbound, authenticated connections to the other nodes (docs/cluster.md, "Peer links").
///
/// A link is a client-protocol connection to the peer's client endpoint that passed the
/// cluster-secret handshake: PEER_HELLO, then PEER_AUTH. The peer's endpoint comes from
/// membership (`resolve`); the handshake checks that the node answering there is the node
/// asked for, so a stale address never delivers a bucket's bytes to another node. With
/// certificates (`tls`), the link is mutual TLS 1.3 first: the peer's certificate must chain
/// to the cluster CA and name the node asked for, and what it attests is recorded in
/// `attestations`, which the send guard checks before a bucket's bytes leave.
public final class PeerLinks: Service, Sendable {
    /// Checks a request about to leave for a node; throws to refuse it (nothing is sent).
    public typealias SendGuard = @Sendable (_ node: String, _ request: PeerRequest) async throws(AgadirError) -> Void

    public let nodeID: String
    public let authenticator: PeerAuthenticator
    public let settings: PeerLinkSettings
    /// What peers' certificates attest, recorded at each TLS handshake.
    public let attestations: Attestations
    let tls: NodeTLS?
    /// The node's clock: every request carries it (HLC), every answer's is merged into it.
    let clock: NodeClock?
    let resolve: @Sendable (String) -> String?
    /// In a class box, not as a closure in the Mutex: with the closure in the Mutex, calls
    /// went through ever longer chains of reabstraction thunks (our reading: an `inout`
    /// access to a function value in generic storage writes back a thunk around it) (measured: 42 % of a lab node's CPU samples in
    /// thunks after a few thousand PUTs, throughput falling run after run).
    private final class GuardBox: Sendable {
        let check: SendGuard
        init(_ check: @escaping SendGuard) { self.check = check }
    }
    private let sendGuard = Mutex<GuardBox?>(nil)

    /// One pool per peer, for the endpoint membership gave when it was made.
    private let pools = Mutex<[String: ConnectionPool]>([:])

    /// Connections open now to `node` (for tests).
    package func openConnections(to node: String) -> Int { pools.withLock { $0[node]?.openCount ?? 0 } }

    /// `resolve` maps a node id to its client endpoint (`HOST:PORT`), nil when unknown.
    /// With `tls`, links are mutual TLS with the node's certificate.
    package init(
        nodeID: String, authenticator: PeerAuthenticator, settings: PeerLinkSettings = PeerLinkSettings(),
        tls: NodeTLS? = nil, attestations: Attestations? = nil, clock: NodeClock? = nil,
        resolve: @escaping @Sendable (String) -> String?
    ) {
        self.clock = clock
        self.nodeID = nodeID
        self.authenticator = authenticator
        self.settings = settings
        self.tls = tls
        self.attestations = attestations ?? Attestations(nodeID: nodeID, own: nil)
        self.resolve = resolve
    }

    /// Sets the check every request runs before it leaves (the cluster node's residency
    /// check of the receiver's attestation).
    public func setSendGuard(_ check: @escaping SendGuard) {
        let box = GuardBox(check)
        sendGuard.withLock { $0 = box }
    }

    /// As a service of the node: the links stay open until graceful shutdown, then close
    /// (after the workers and the background tasks that use them have stopped).
    public func run() async throws {
        try? await gracefulShutdown()
        closeAll()
    }

    /// Closes every link; calls in flight fail with UNAVAILABLE.
    public func closeAll() {
        let all = pools.withLock { p in
            defer { p.removeAll() }
            return Array(p.values)
        }
        for pool in all { pool.close() }
    }

    /// Sends `request` (with `body`, if any) to `node` and returns its answer. An error
    /// answer is thrown as it came; a peer that cannot be reached or does not answer in
    /// `requestTimeoutSeconds` gives UNAVAILABLE.
    public func call(
        _ node: String, _ request: PeerRequest, body: [UInt8]? = nil, maxResponseBytes: Int
    ) async throws(AgadirError) -> PeerResponse {
        let connection = try await link(to: node)
        if let box = sendGuard.withLock({ $0 }) { try await box.check(node, request) }
        let opcode = request.opcode
        let seconds = settings.requestTimeoutSeconds
        // A timer on the connection's event loop (cheaper than a task per call), over the
        // whole call: sending, the answer, and its body.
        var watchdog: Scheduled<Void>? = nil
        defer { watchdog?.cancel() }
        let (frame, responseBody) = try await connection.roundTrip("\(opcode) to \(node)") { (id) throws(AgadirError) in
            watchdog = connection.channel.eventLoop.scheduleTask(in: .milliseconds(Int64(seconds * 1000))) {
                connection.fail(
                    id,
                    with: AgadirError(.unavailable, "\(node) did not answer \(opcode) within \(seconds) s; link closed")
                )
                connection.close()
            }
            try await send(request, body: body, id: id, on: connection)
        }
        let out = try await ClientConnection.collect(
            frame, responseBody, max: maxResponseBytes, what: "\(node)'s answer to \(opcode)")
        if let clock, let stamp = try frame.fields.u64(.hlc) {
            try clock.observe(HLCTimestamp(rawValue: stamp), from: node)
        }
        return PeerResponse(fields: frame.fields, body: out)
    }

    private func send(_ request: PeerRequest, body: [UInt8]?, id: UInt64, on connection: ClientConnection)
        async throws(AgadirError)
    {
        let opcode = request.opcode.rawValue
        var fields = request.fields()
        if let clock { fields.set(.hlc, u64: clock.now().rawValue) }
        guard let body, body.count > settings.inlineBodyBytes else {
            let payload = body.map { ByteBuffer(bytes: $0) } ?? ByteBuffer()
            try await connection.write(
                Frame(
                    header: FrameHeader(kind: .request, flags: FrameHeader.endStream, opcode: opcode, requestID: id),
                    fields: fields, payload: payload))
            return
        }
        try await connection.write(
            Frame(header: FrameHeader(kind: .request, opcode: opcode, requestID: id), fields: fields))
        var offset = 0
        while offset < body.count {
            if connection.hasResponded(id) { return }  // answered early (an error): stop sending
            let n = min(settings.dataFrameBytes, body.count - offset)
            try await connection.write(
                .data(id: id, payload: ByteBuffer(bytes: body[offset..<offset + n]), end: offset + n == body.count))
            offset += n
        }
    }

    // MARK: Links

    /// Opens a link to `node` if none is open (its certificate is then in `attestations`).
    public func connect(to node: String) async throws(AgadirError) {
        _ = try await link(to: node)
    }

    private func link(to node: String) async throws(AgadirError) -> ClientConnection {
        guard node != nodeID else {
            throw AgadirError(.internalError, "a peer link to this node itself (\(node)) was asked for")
        }
        guard let endpoint = resolve(node) else {
            throw AgadirError(.unavailable, "no address is known for node \(node); is it a member of the cluster?")
        }
        let (pool, moved): (ConnectionPool, ConnectionPool?) = pools.withLock { all in
            if let p = all[node], p.endpoint == endpoint { return (p, nil) }
            // New, or the peer moved: a pool for its current endpoint (the old one is closed).
            let p = ConnectionPool(endpoint: endpoint, size: settings.connectionsPerPeer) { () throws(AgadirError) in
                try await self.handshake(node: node, endpoint: endpoint)
            }
            defer { all[node] = p }
            return (p, all[node])
        }
        moved?.close()
        return try await pool.connection()
    }

    /// Connects and runs the handshake; the connection is closed on any failure.
    func handshake(node: String, endpoint: String) async throws(AgadirError) -> ClientConnection {
        let (host, port) = try Endpoint.parse(endpoint)
        let connectTimeout = TimeAmount.milliseconds(Int64(settings.connectTimeoutSeconds * 1000))
        let contexts = tls?.current
        let connection = try await ClientConnection.connect(
            host: host, port: port, limits: settings.limits, bodyBufferBytes: settings.bodyBufferBytes,
            connectTimeout: connectTimeout, tls: contexts.map { DialTLS(context: $0.peer) })
        do throws(AgadirError) {
            if let contexts {
                do {
                    _ = try await Self.admitPeer(
                        on: connection.channel, claiming: node, caPEM: contexts.caPEM, attestations: attestations)
                } catch {
                    throw AgadirError(error.code, "\(node) at \(endpoint): \(error.message); no link is made")
                }
            }
            var rng = SystemRandomNumberGenerator()
            let nonce = (0..<PeerLimits.nonceBytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // This node proves itself first (for the node it means to reach), and only then
            // checks the listener's proof: a stranger listening at a stale address learns a
            // nonce and a MAC of it, nothing to guess a secret from that it could not ask for.
            let hello = try await exchange(.hello(nodeID: nodeID, nonce: nonce), on: connection, node: node)
            guard let listenerNonce = hello.first(.nonce), listenerNonce.count == PeerLimits.nonceBytes else {
                throw AgadirError(.unauthenticated, "\(node) at \(endpoint) answered PEER_HELLO without a nonce")
            }
            let transcript = PeerAuthenticator.Transcript(
                dialerNonce: nonce, listenerNonce: listenerNonce, dialerID: nodeID, listenerID: node)
            let answer: Fields
            do {
                answer = try await exchange(
                    .auth(proof: authenticator.proof(.client, transcript)), on: connection, node: node)
            } catch  where error.code == .unauthenticated {
                throw AgadirError(
                    .unauthenticated,
                    "the node at \(endpoint) refused this node's proof: it is not \(node) any more (membership will "
                        + "catch up), or it does not share this node's cluster name and secret")
            }
            guard let proof = answer.first(.proof), authenticator.verify(proof, .server, transcript) else {
                throw AgadirError(
                    .unauthenticated,
                    "\(node) at \(endpoint) failed the cluster-secret handshake: it does not share this node's cluster secret"
                )
            }
            return connection
        } catch {
            connection.close()
            throw error
        }
    }

    /// The checks of a peer's certificate on a TLS link, the same at both ends: the
    /// certificate the other end of `channel` presented chains to the cluster CA and is for
    /// this cluster (the TLS handshake checked the chain; this reads it again with
    /// swift-certificates), names the node id `claimed`, and is not revoked; then what it
    /// attests is recorded. UNAUTHENTICATED says which check failed (the listener answers
    /// every failure with the same words, and logs this one).
    package static func admitPeer(
        on channel: any Channel, claiming claimed: String, caPEM: String, attestations: Attestations
    ) async throws(AgadirError) -> NodeIdentity {
        guard let der = await peerCertificateDER(of: channel) else {
            throw AgadirError(.unauthenticated, "no certificate presented")
        }
        let identity: NodeIdentity
        do {
            identity = try ClusterCA.attested(certificateDER: der, caCertificatePEM: caPEM)
        } catch {
            throw AgadirError(.unauthenticated, "the certificate presented: \(error.message)")
        }
        guard identity.nodeID == claimed else {
            throw AgadirError(
                .unauthenticated,
                "the certificate presented names node '\(identity.nodeID)', not '\(claimed)' (a stale address, or a "
                    + "node claiming another's id)")
        }
        guard !attestations.isRevoked(serial: identity.serial) else {
            throw AgadirError(
                .unauthenticated,
                "the certificate presented (serial \(identity.serial)) is on the cluster's revocation list; issue "
                    + "\(claimed) a new one")
        }
        attestations.record(claimed, Attestation(site: identity.site, labels: identity.labels))
        return identity
    }

    private func exchange(_ request: PeerRequest, on connection: ClientConnection, node: String)
        async throws(AgadirError) -> Fields
    {
        let timeout = Duration.milliseconds(Int64(settings.connectTimeoutSeconds * 1000))
        var watchdog: Task<Void, any Error>? = nil
        defer { watchdog?.cancel() }
        let (frame, body) = try await connection.roundTrip("\(request.opcode) to \(node)") { (id) throws(AgadirError) in
            watchdog = Task {
                try await Task.sleep(for: timeout)
                connection.fail(id, with: AgadirError(.unavailable, "\(node) did not complete the handshake in time"))
            }
            try await connection.write(
                Frame(
                    header: FrameHeader(
                        kind: .request, flags: FrameHeader.endStream, opcode: request.opcode.rawValue, requestID: id),
                    fields: request.fields()))
        }
        body.abandon()
        return frame.fields
    }
}
