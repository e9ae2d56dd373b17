import AgadirCore
import AgadirTransport
import AgadirWire
import Foundation
import NIOCore
import Synchronization

/// Settings of a client, with defaults that suit a CLI and a benchmark alike.
public struct ClientConfiguration: Sendable {
    /// Connections kept open to the node; requests are spread over them. Default 2.
    public var connections: Int = 2
    /// Connect timeout. Default 5 s.
    public var connectTimeoutSeconds: Int64 = 5
    /// Largest DATA frame sent, bytes. Default 1 MiB.
    public var dataFrameBytes: Int = 1 << 20
    /// Response body bytes buffered per download before the connection stops reading. Default 8 MiB.
    public var bodyBufferBytes: Int = 8 << 20
    /// Limits applied to frames received from the node.
    public var limits: WireLimits = .default
    /// The key every request is signed with (docs/protocol.md, "Signed requests"); without
    /// one, only PING is answered. `Credentials.fromEnvironment()` reads the usual places.
    public var credentials: Credentials?
    /// With credentials, the signature covers every PUT's body: `put(bucket:key:data:)` and
    /// small bodies send CONTENT_SHA256 (the client hashes the body), a streamed body without
    /// one signs each DATA frame (BODY_SIGNING). Default true.
    public var signPayloads: Bool = true
    /// The cluster CA's certificate (PEM): with it, connections are TLS 1.3 and a node's
    /// certificate must chain to this CA and name the host dialed. Nodes with certificates
    /// speak TLS only. Default nil (clear text).
    public var caCertificatePEM: String?

    public init() {}

    /// Signs with `credentials`, and trusts the CA file they name, if any.
    public mutating func use(_ credentials: Credentials) throws(AgadirError) {
        self.credentials = credentials
        if let file = credentials.caFile { try trustCA(file: file) }
    }

    /// Trusts the CA certificate in the PEM file at `path` (`caCertificatePEM`).
    public mutating func trustCA(file path: String) throws(AgadirError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgadirError(.invalidArgument, "cannot read the CA certificate file \(path)")
        }
        caCertificatePEM = String(decoding: data, as: UTF8.self)
    }
}

/// A downloaded object's description and its body as a stream of byte buffers.
public struct ObjectDownload: Sendable {
    public let info: ObjectInfo
    public let body: BodyStream
}

/// The Swift client of Agadir's native protocol (docs/protocol.md).
///
/// Thread-safe; share one per process. Connections open lazily and are reused; each
/// carries many requests at once. Every method throws `AgadirError`.
public final class AgadirClient: Sendable {
    public let host: String
    public let port: Int
    public let configuration: ClientConfiguration
    /// Connections to the endpoint the client was made for.
    private let primary: ConnectionPool
    /// TLS of every connection (nil: clear text).
    private let tls: DialTLS?
    /// Connections to nodes learned from ROUTE answers and redirects, by endpoint.
    private let others = Mutex<[String: ConnectionPool]>([:])
    /// Where each bucket's requests go (ROUTE answers), with their expiry.
    private let routes = Mutex<[String: CachedRoute]>([:])

    /// A ROUTE answer kept for `routeCacheSeconds`.
    struct CachedRoute {
        var endpoint: String?  // nil: the primary endpoint
        var expires: ContinuousClock.Instant
    }

    /// How long a bucket's route is trusted before ROUTE is asked again.
    public static let routeCacheSeconds = 30
    /// Most buckets and endpoints remembered (the oldest are dropped beyond).
    public static let maxRoutes = 1024
    public static let maxEndpoints = 64

    /// `endpoint` is `HOST:PORT` or `[IPv6]:PORT`.
    public init(endpoint: String, configuration: ClientConfiguration = ClientConfiguration()) throws(AgadirError) {
        let (host, port) = try Self.parse(endpoint)
        self.host = host
        self.port = port
        self.configuration = configuration
        let tls = try configuration.caCertificatePEM.map { (pem) throws(AgadirError) in
            DialTLS(context: try TLSContexts.client(caPEM: pem))
        }
        self.tls = tls
        self.primary = Self.pool(host: host, port: port, configuration: configuration, tls: tls)
    }

    /// A pool of `configuration.connections` connections to `host:port`.
    static func pool(host: String, port: Int, configuration: ClientConfiguration, tls: DialTLS?) -> ConnectionPool {
        ConnectionPool(endpoint: "\(host):\(port)", size: configuration.connections) { () throws(AgadirError) in
            try await ClientConnection.connect(
                host: host, port: port, limits: configuration.limits, bodyBufferBytes: configuration.bodyBufferBytes,
                connectTimeout: .seconds(configuration.connectTimeoutSeconds), tls: tls)
        }
    }

    static func parse(_ s: String) throws(AgadirError) -> (String, Int) { try Endpoint.parse(s) }

    /// Closes every connection; requests in flight fail with `.unavailable`.
    public func close() async {
        primary.close()
        let pools = others.withLock { o in
            defer { o.removeAll() }
            return Array(o.values)
        }
        for p in pools { p.close() }
    }

    // MARK: Routing

    /// The pool for `endpoint` (nil: the primary).
    private func pool(_ endpoint: String?) throws(AgadirError) -> ConnectionPool {
        guard let endpoint, endpoint != "\(host):\(port)" else { return primary }
        let (h, p) = try Self.parse(endpoint)
        return others.withLock { o in
            if let existing = o[endpoint] { return existing }
            if o.count >= Self.maxEndpoints, let victim = o.keys.sorted().first {
                o.removeValue(forKey: victim)?.close()
            }
            let pool = Self.pool(host: h, port: p, configuration: configuration, tls: tls)
            o[endpoint] = pool
            return pool
        }
    }

    private func remember(_ bucket: String, endpoint: String?, seconds: Int) {
        routes.withLock { r in
            if r.count >= Self.maxRoutes, r[bucket] == nil,
                let victim = r.min(by: { $0.value.expires < $1.value.expires })?.key
            {
                r.removeValue(forKey: victim)
            }
            r[bucket] = CachedRoute(endpoint: endpoint, expires: .now + .seconds(seconds))
        }
    }

    /// Where the requests of `bucket` go: the primary endpoint when it may coordinate the
    /// bucket, else the first eligible node ROUTE names (docs/protocol.md, "ROUTE").
    private func endpoint(for bucket: String) async -> String? {
        if let cached = routes.withLock({ $0[bucket] }), cached.expires > .now { return cached.endpoint }
        do {
            let (frame, _, _) = try await exchange(.route(bucket: bucket), options: .none, on: primary)
            let route = try RouteResult(fields: frame.fields)
            let target = route.mayCoordinate ? nil : route.endpoints.first
            remember(bucket, endpoint: target, seconds: Self.routeCacheSeconds)
            return target
        } catch {
            // No such bucket yet, or a node that predates ROUTE: use the primary, ask again soon.
            remember(bucket, endpoint: nil, seconds: 2)
            return nil
        }
    }

    /// Runs `attempt` on the pool for `bucket` (or the primary), following one REDIRECT.
    private func routed<T>(
        _ bucket: String?, _ attempt: (ConnectionPool) async throws(AgadirError) -> T
    ) async throws(AgadirError) -> T {
        guard let bucket else { return try await attempt(primary) }
        let first = try pool(await endpoint(for: bucket))
        do {
            return try await attempt(first)
        } catch  where error.code == .redirect {
            guard let target = error.redirect.first else { throw error }
            remember(bucket, endpoint: target, seconds: Self.routeCacheSeconds)
            return try await attempt(try pool(target))
        }
    }

    // MARK: Exchanges

    /// Sends a request without body (routed by its bucket) and returns the RESPONSE frame
    /// and the body stream.
    private func exchange(_ request: Request, options: RequestOptions = .none) async throws(AgadirError) -> (
        Frame, BodyStream, ClientConnection
    ) {
        try await routed(request.bucket) { (pool) throws(AgadirError) in
            try await self.exchange(request, options: options, on: pool)
        }
    }

    private func exchange(
        _ request: Request, options: RequestOptions, on pool: ConnectionPool
    ) async throws(AgadirError) -> (Frame, BodyStream, ClientConnection) {
        let conn = try await pool.connection()
        var fields = request.fields()
        options.apply(to: &fields)
        let signed = sign(request.opcode, fields)
        let (frame, body) = try await conn.roundTrip("\(request.opcode)") { (id) throws(AgadirError) in
            try await conn.write(.request(id: id, opcode: request.opcode, fields: signed, end: true))
        }
        return (frame, body, conn)
    }

    /// `fields` with the authentication fields of this client's key, fresh for each request.
    func sign(_ opcode: Opcode, _ fields: Fields) -> Fields {
        guard let credentials = configuration.credentials else { return fields }
        var signed = fields
        RequestSigning.sign(opcode: opcode.rawValue, fields: &signed, credentials: credentials)
        return signed
    }

    /// The whole response body: payload of the RESPONSE frame plus its DATA frames.
    private func collect(_ frame: Frame, _ body: BodyStream, max: Int) async throws(AgadirError) -> [UInt8] {
        try await ClientConnection.collect(frame, body, max: max, what: "the response body")
    }

    // MARK: Operations

    public func ping() async throws(AgadirError) -> PingResult {
        let (frame, _, _) = try await exchange(.ping)
        return try PingResult(fields: frame.fields)
    }

    public func createBucket(_ name: String, policy: String? = nil) async throws(AgadirError) {
        try Names.validateBucket(name)
        _ = try await exchange(.createBucket(name: name, policy: policy))
    }

    public func deleteBucket(_ name: String) async throws(AgadirError) {
        try Names.validateBucket(name)
        _ = try await exchange(.deleteBucket(name: name))
    }

    public func listBuckets() async throws(AgadirError) -> [BucketInfo] {
        let (frame, body, _) = try await exchange(.listBuckets)
        return try BucketListCodec.decode(try await collect(frame, body, max: configuration.limits.maxListingBodyBytes))
    }

    public func head(bucket: String, key: String, consistency: ConsistencyLevel? = nil) async throws(AgadirError)
        -> ObjectInfo
    {
        let (frame, _, _) = try await exchange(
            .head(bucket: bucket, key: key), options: RequestOptions(consistency: consistency))
        return try ObjectInfo(fields: frame.fields)
    }

    @discardableResult
    public func delete(bucket: String, key: String, consistency: ConsistencyLevel? = nil) async throws(AgadirError)
        -> WriteResult
    {
        let (frame, _, _) = try await exchange(
            .delete(bucket: bucket, key: key), options: RequestOptions(consistency: consistency))
        return try WriteResult(fields: frame.fields)
    }

    public func list(_ request: ListRequest, consistency: ConsistencyLevel? = nil) async throws(AgadirError) -> ListPage
    {
        let (frame, body, _) = try await exchange(.list(request), options: RequestOptions(consistency: consistency))
        return try ListPage.decode(
            try await collect(frame, body, max: configuration.limits.maxListingBodyBytes), limits: configuration.limits)
    }

    public func stat() async throws(AgadirError) -> StoreStats {
        let (frame, body, _) = try await exchange(.stat)
        let json = try await collect(frame, body, max: configuration.limits.maxListingBodyBytes)
        do {
            return try JSONDecoder().decode(StoreStats.self, from: Data(json))
        } catch {
            throw AgadirError(.malformedFrame, "STAT body is not the expected JSON: \(error)")
        }
    }

    /// The cluster's members as the node sees them (MEMBERS); a node without a membership
    /// layer answers with itself alone.
    public func members() async throws(AgadirError) -> [MemberInfo] {
        let (frame, body, _) = try await exchange(.members)
        return try MemberListCodec.decode(
            try await collect(frame, body, max: configuration.limits.maxListingBodyBytes), limits: configuration.limits)
    }

    /// Runs an administrative command of the admin schema (`Admin`, AgadirWire): the input
    /// and the answer are the command's typed records. Sent to the node the client was made for.
    public func admin<Input, Output>(_ command: AdminCommand<Input, Output>, _ input: Input) async throws(AgadirError)
        -> Output
    {
        try command.decode(output: try await admin(command.name, input: try command.encode(input: input)))
    }

    /// `admin(_:_:)` for a command that takes no input.
    public func admin<Output>(_ command: AdminCommand<Admin.Empty, Output>) async throws(AgadirError) -> Output {
        try await admin(command, Admin.Empty())
    }

    /// Runs an administrative command (ADMIN, docs/protocol.md) by name: `input` is a JSON
    /// object, the answer is JSON. Sent to the node the client was made for.
    public func admin(_ command: String, input: [UInt8] = Array("{}".utf8)) async throws(AgadirError) -> [UInt8] {
        guard input.count <= AdminLimits.maxBodyBytes else {
            throw AgadirError(
                .invalidArgument, "admin input of \(input.count) bytes is over \(AdminLimits.maxBodyBytes)")
        }
        let conn = try await primary.connection()
        var fields = Request.admin(command: command).fields()
        // The signature covers the input through its hash.
        RequestOptions(contentSHA256: ChunkID.of(input)).apply(to: &fields)
        let signed = sign(.admin, fields)
        let (frame, body) = try await conn.roundTrip("ADMIN \(command)") { (id) throws(AgadirError) in
            try await conn.write(
                .request(id: id, opcode: .admin, fields: signed, payload: ByteBuffer(bytes: input), end: true))
        }
        return try await collect(frame, body, max: PeerLimits.maxStructuredBodyBytes)
    }

    /// Starts a download; read `body` to the end (or call `body.abandon()`).
    public func download(
        bucket: String, key: String, range: ByteRange? = nil, consistency: ConsistencyLevel? = nil
    ) async throws(AgadirError) -> ObjectDownload {
        let (frame, body, _) = try await exchange(
            .get(bucket: bucket, key: key, range: range), options: RequestOptions(consistency: consistency))
        let info: ObjectInfo
        do {
            info = try ObjectInfo(fields: frame.fields)
        } catch {
            body.abandon()  // else its DATA frames would fill the buffer and stall the connection
            throw error
        }
        if frame.isEndStream {
            // Small objects arrive in the RESPONSE frame itself.
            return ObjectDownload(info: info, body: BodyStream(completeWith: frame.payload))
        }
        return ObjectDownload(info: info, body: body)
    }

    /// Downloads a whole object (or range) into memory, checking its length and, for
    /// whole objects, its SHA-256 against the ETag.
    public func get(
        bucket: String, key: String, range: ByteRange? = nil, consistency: ConsistencyLevel? = nil
    ) async throws(AgadirError) -> (ObjectInfo, [UInt8]) {
        let d = try await download(bucket: bucket, key: key, range: range, consistency: consistency)
        var out: [UInt8] = []
        let expected = d.info.range?.length ?? d.info.size
        out.reserveCapacity(Int(min(expected, 1 << 30)))
        while let buf = try await d.body.next() { out.append(contentsOf: buf.readableBytesView) }
        guard UInt64(out.count) == expected else {
            throw AgadirError(
                .bodyLengthMismatch, "GET \(bucket)/\(key) returned \(out.count) bytes, expected \(expected)")
        }
        if range == nil {
            let sha = ChunkID.of(out)
            guard sha == d.info.etag else {
                throw AgadirError(
                    .checksumMismatch, "GET \(bucket)/\(key): body hashes to \(sha.hex), ETag is \(d.info.etag.hex)")
            }
        }
        return (d.info, out)
    }

    /// Stores `data` as one object.
    @discardableResult
    public func put(
        bucket: String, key: String, data: [UInt8], contentType: String = "application/octet-stream",
        metadata: [MetadataEntry] = [], verify: Bool = false, consistency: ConsistencyLevel? = nil
    ) async throws(AgadirError) -> WriteResult {
        let request = PutRequest(
            bucket: bucket, key: key, size: UInt64(data.count), contentType: contentType, metadata: metadata,
            contentSHA256: verify || (configuration.credentials != nil && configuration.signPayloads)
                ? ChunkID.of(data) : nil)
        let frameBytes = configuration.dataFrameBytes
        return try await put(request, consistency: consistency) {
            (send: (ArraySlice<UInt8>) async throws(AgadirError) -> Void) throws(AgadirError) in
            var offset = 0
            while offset < data.count {
                let n = min(frameBytes, data.count - offset)
                try await send(data[offset..<offset + n])
                offset += n
            }
        }
    }

    /// Streams an object of exactly `request.size` bytes: `produce` calls `send` with
    /// successive pieces of the body (any sizes; each is split into DATA frames).
    ///
    /// The bucket's route is asked first (ROUTE), so the body goes to a node that may
    /// coordinate the bucket. Should a node still answer REDIRECT, the PUT is sent again to
    /// the node it names and `produce` is called a second time: it must produce the same
    /// bytes again (a file or a buffer can; a pipe cannot, and that PUT then fails).
    public func put(
        _ request: PutRequest, consistency: ConsistencyLevel? = nil,
        produce: (_ send: (ArraySlice<UInt8>) async throws(AgadirError) -> Void) async throws(AgadirError) -> Void
    ) async throws(AgadirError) -> WriteResult {
        try Names.validateBucket(request.bucket)
        try Names.validateKey(request.key)
        return try await routed(request.bucket) { (pool) throws(AgadirError) in
            try await self.put(request, options: RequestOptions(consistency: consistency), on: pool, produce: produce)
        }
    }

    private func put(
        _ request: PutRequest, options: RequestOptions, on pool: ConnectionPool,
        produce: (_ send: (ArraySlice<UInt8>) async throws(AgadirError) -> Void) async throws(AgadirError) -> Void
    ) async throws(AgadirError) -> WriteResult {
        let conn = try await pool.connection()
        let (id, body) = try conn.open()
        body.abandon()
        let frameBytes = configuration.dataFrameBytes
        let credentials = configuration.signPayloads ? configuration.credentials : nil
        var streamOpen = false  // a REQUEST without END_STREAM went out and no END/ABORT yet
        do {
            // Small bodies ride in the REQUEST frame: one frame, one round trip; with a key,
            // the signature covers them through their hash.
            if request.size <= UInt64(min(frameBytes, 64 * 1024)) {
                var bytes: [UInt8] = []
                try await produce { (piece: ArraySlice<UInt8>) throws(AgadirError) in bytes.append(contentsOf: piece) }
                var request = request
                if credentials != nil, request.contentSHA256 == nil { request.contentSHA256 = ChunkID.of(bytes) }
                var fields = Request.put(request).fields()
                options.apply(to: &fields)
                fields = sign(.put, fields)
                try await conn.write(
                    .request(id: id, opcode: .put, fields: fields, payload: ByteBuffer(bytes: bytes), end: true))
            } else {
                var fields = Request.put(request).fields()
                options.apply(to: &fields)
                // A body not hashed up front is covered frame by frame (docs/protocol.md, "Signed bodies").
                let chainFrames = credentials != nil && request.contentSHA256 == nil
                if chainFrames { fields.set(.bodySigning, u8: 1) }
                fields = sign(.put, fields)
                var chain: FrameSignatures? = nil
                if chainFrames, let credentials, let seed = fields.first(.signature) {
                    chain = FrameSignatures(secret: credentials.secretKey, requestSignature: seed)
                }
                func dataFrame(_ payload: [UInt8], end: Bool) -> Frame {
                    var frame = Frame.data(id: id, payload: ByteBuffer(bytes: payload), end: end)
                    if var signer = chain {
                        frame.fields.set(
                            .frameSignature, bytes: payload.withUnsafeBytes { signer.sign(payload: $0, end: end) })
                        chain = signer
                    }
                    return frame
                }
                try await conn.write(.request(id: id, opcode: .put, fields: fields, end: false))
                streamOpen = true
                var pending: [UInt8] = []
                pending.reserveCapacity(frameBytes)
                try await produce { (piece: ArraySlice<UInt8>) throws(AgadirError) in
                    var piece = piece
                    while !piece.isEmpty {
                        if conn.hasResponded(id) { return }  // the node answered early, with an error
                        let take = min(frameBytes - pending.count, piece.count)
                        pending.append(contentsOf: piece.prefix(take))
                        piece = piece.dropFirst(take)
                        if pending.count == frameBytes {
                            try await conn.write(dataFrame(pending, end: false))
                            pending.removeAll(keepingCapacity: true)
                        }
                    }
                }
                if !conn.hasResponded(id) {
                    try await conn.write(dataFrame(pending, end: true))
                    streamOpen = false
                } else {
                    // Release the node's body slot for this request: we will send no more.
                    let stop = AgadirError(.invalidArgument, "client stopped sending after the node's answer")
                    try? await conn.write(.error(id: id, opcode: 0, stop, responseStarted: true))
                    streamOpen = false
                }
            }
            let frame = try await conn.awaitResponse(id)
            if let error = frame.error { throw error }
            return try WriteResult(fields: frame.fields)
        } catch {
            let e =
                (error as? AgadirError)
                ?? AgadirError(.unavailable, "PUT \(request.bucket)/\(request.key) failed: \(error)")
            // Tell the node this body will not continue, so it frees the request at once.
            if streamOpen { try? await conn.write(.error(id: id, opcode: 0, e, responseStarted: true)) }
            conn.cancel(id)
            throw e
        }
    }
}
