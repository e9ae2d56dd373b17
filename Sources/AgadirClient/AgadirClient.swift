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

    public init() {}
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
    private let pool: Mutex<[ClientConnection?]>
    private let next = Atomic<Int>(0)
    private let connecting = Mutex<[Int: Task<ClientConnection, any Error>]>([:])

    /// `endpoint` is `HOST:PORT` or `[IPv6]:PORT`.
    public init(endpoint: String, configuration: ClientConfiguration = ClientConfiguration()) throws(AgadirError) {
        let (host, port) = try Self.parse(endpoint)
        self.host = host
        self.port = port
        self.configuration = configuration
        self.pool = Mutex(Array(repeating: nil, count: max(1, configuration.connections)))
    }

    static func parse(_ s: String) throws(AgadirError) -> (String, Int) { try Endpoint.parse(s) }

    /// Closes every connection; requests in flight fail with `.unavailable`.
    public func close() async {
        let conns = pool.withLock { p in
            defer { for i in p.indices { p[i] = nil } }
            return p.compactMap { $0 }
        }
        for c in conns { c.close() }
    }

    // MARK: Connections

    private func connection() async throws(AgadirError) -> ClientConnection {
        let count = pool.withLock { $0.count }
        // Prefer the least busy open connection; open a slot that is empty or dead.
        let start = next.wrappingAdd(1, ordering: .relaxed).oldValue
        let pick: (Int, ClientConnection?) = pool.withLock { p in
            var best: (Int, ClientConnection?) = (start % count, nil)
            var bestLoad = Int.max
            for k in 0..<count {
                let i = (start + k) % count
                guard let c = p[i], !c.isClosed else { return (i, nil) }
                let load = c.inFlight
                if load < bestLoad {
                    best = (i, c)
                    bestLoad = load
                }
            }
            return best
        }
        if let c = pick.1 { return c }
        return try await open(slot: pick.0)
    }

    private func open(slot: Int) async throws(AgadirError) -> ClientConnection {
        let cfg = configuration
        let (host, port) = (self.host, self.port)
        let task: Task<ClientConnection, any Error> = connecting.withLock { m in
            if let t = m[slot] { return t }
            let t = Task { () async throws -> ClientConnection in
                try await ClientConnection.connect(
                    host: host, port: port, limits: cfg.limits, bodyBufferBytes: cfg.bodyBufferBytes,
                    connectTimeout: .seconds(cfg.connectTimeoutSeconds))
            }
            m[slot] = t
            return t
        }
        let result = await task.result
        connecting.withLock { _ = $0.removeValue(forKey: slot) }
        switch result {
        case .success(let c):
            pool.withLock { p in
                if p[slot] == nil || p[slot]?.isClosed == true { p[slot] = c }
            }
            return c
        case .failure(let e as AgadirError):
            throw e
        case .failure(let e):
            throw AgadirError(.unavailable, "cannot connect to \(host):\(port): \(e)")
        }
    }

    // MARK: Exchanges

    /// Sends a request without body and returns the RESPONSE frame and the body stream.
    private func exchange(_ request: Request) async throws(AgadirError) -> (Frame, BodyStream, ClientConnection) {
        let conn = try await connection()
        let (id, body) = try conn.open()
        do {
            try await conn.write(.request(id: id, opcode: request.opcode, fields: request.fields(), end: true))
            let frame = try await conn.awaitResponse(id)
            if let error = frame.error { throw error }
            return (frame, body, conn)
        } catch let e as AgadirError {
            conn.cancel(id)
            throw e
        } catch {
            conn.cancel(id)
            throw AgadirError(.unavailable, "\(request.opcode) failed: \(error)")
        }
    }

    /// The whole response body: payload of the RESPONSE frame plus its DATA frames.
    private func collect(_ frame: Frame, _ body: BodyStream, max: Int) async throws(AgadirError) -> [UInt8] {
        if frame.isEndStream { return Array(frame.payload.readableBytesView) }
        var out: [UInt8] = []  // an open RESPONSE frame's payload was routed into `body` first
        while let buf = try await body.next() {
            out.append(contentsOf: buf.readableBytesView)
            guard out.count <= max else {
                body.abandon()
                throw AgadirError(.frameTooLarge, "response body exceeds \(max) bytes")
            }
        }
        return out
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

    public func head(bucket: String, key: String) async throws(AgadirError) -> ObjectInfo {
        let (frame, _, _) = try await exchange(.head(bucket: bucket, key: key))
        return try ObjectInfo(fields: frame.fields)
    }

    @discardableResult
    public func delete(bucket: String, key: String) async throws(AgadirError) -> WriteResult {
        let (frame, _, _) = try await exchange(.delete(bucket: bucket, key: key))
        return try WriteResult(fields: frame.fields)
    }

    public func list(_ request: ListRequest) async throws(AgadirError) -> ListPage {
        let (frame, body, _) = try await exchange(.list(request))
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

    /// Starts a download; read `body` to the end (or call `body.abandon()`).
    public func download(bucket: String, key: String, range: ByteRange? = nil) async throws(AgadirError) -> ObjectDownload {
        let (frame, body, _) = try await exchange(.get(bucket: bucket, key: key, range: range))
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
    public func get(bucket: String, key: String, range: ByteRange? = nil) async throws(AgadirError) -> (ObjectInfo, [UInt8]) {
        let d = try await download(bucket: bucket, key: key, range: range)
        var out: [UInt8] = []
        let expected = d.info.range?.length ?? d.info.size
        out.reserveCapacity(Int(min(expected, 1 << 30)))
        while let buf = try await d.body.next() { out.append(contentsOf: buf.readableBytesView) }
        guard UInt64(out.count) == expected else {
            throw AgadirError(.bodyLengthMismatch, "GET \(bucket)/\(key) returned \(out.count) bytes, expected \(expected)")
        }
        if range == nil {
            let sha = ChunkID.of(out)
            guard sha == d.info.etag else {
                throw AgadirError(.checksumMismatch, "GET \(bucket)/\(key): body hashes to \(sha.hex), ETag is \(d.info.etag.hex)")
            }
        }
        return (d.info, out)
    }

    /// Stores `data` as one object.
    @discardableResult
    public func put(
        bucket: String, key: String, data: [UInt8], contentType: String = "application/octet-stream",
        metadata: [MetadataEntry] = [], verify: Bool = false
    ) async throws(AgadirError) -> WriteResult {
        let request = PutRequest(
            bucket: bucket, key: key, size: UInt64(data.count), contentType: contentType, metadata: metadata,
            contentSHA256: verify ? ChunkID.of(data) : nil)
        let frameBytes = configuration.dataFrameBytes
        return try await put(request) { (send: (ArraySlice<UInt8>) async throws(AgadirError) -> Void) throws(AgadirError) in
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
    public func put(
        _ request: PutRequest,
        produce: (_ send: (ArraySlice<UInt8>) async throws(AgadirError) -> Void) async throws(AgadirError) -> Void
    ) async throws(AgadirError) -> WriteResult {
        try Names.validateBucket(request.bucket)
        try Names.validateKey(request.key)
        let conn = try await connection()
        let (id, body) = try conn.open()
        body.abandon()
        let frameBytes = configuration.dataFrameBytes
        let req = Request.put(request)
        var streamOpen = false  // a REQUEST without END_STREAM went out and no END/ABORT yet
        do {
            // Small bodies ride in the REQUEST frame: one frame, one round trip.
            if request.size <= UInt64(min(frameBytes, 64 * 1024)) {
                var bytes: [UInt8] = []
                try await produce { (piece: ArraySlice<UInt8>) throws(AgadirError) in bytes.append(contentsOf: piece) }
                try await conn.write(.request(id: id, opcode: .put, fields: req.fields(), payload: ByteBuffer(bytes: bytes), end: true))
            } else {
                try await conn.write(.request(id: id, opcode: .put, fields: req.fields(), end: false))
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
                            try await conn.write(.data(id: id, payload: ByteBuffer(bytes: pending), end: false))
                            pending.removeAll(keepingCapacity: true)
                        }
                    }
                }
                if !conn.hasResponded(id) {
                    try await conn.write(.data(id: id, payload: ByteBuffer(bytes: pending), end: true))
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
            let e = (error as? AgadirError) ?? AgadirError(.unavailable, "PUT \(request.bucket)/\(request.key) failed: \(error)")
            // Tell the node this body will not continue, so it frees the request at once.
            if streamOpen { try? await conn.write(.error(id: id, opcode: 0, e, responseStarted: true)) }
            conn.cancel(id)
            throw e
        }
    }
}
