import AgadirClient
import AgadirCore
import AgadirServer
import AgadirStore
import AgadirTransport
import AgadirWire
import Foundation
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A node running in this process: store, object service and client endpoint on a free
/// loopback port, under a `ServiceGroup` that `stop()` shuts down gracefully.
final class InProcessNode: Sendable {
    let dir: TempDirectory
    let group: MultiThreadedEventLoopGroup
    let runtime: NodeRuntime
    let serviceGroup: ServiceGroup
    let running: Task<Void, any Error>
    let port: Int

    var endpoint: String { "127.0.0.1:\(port)" }

    init(shutdownGraceSeconds: Int = 1, name: String = #function) async throws {
        dir = serverTempDirectory(name)
        var config = smallChunkConfiguration(dataDir: dir.path)
        config.listen = "127.0.0.1:0"
        config.peerListen = "127.0.0.1:0"
        config.nodeID = "in-process"
        config.shutdownGraceSeconds = shutdownGraceSeconds
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        do {
            runtime = try NodeRuntime(config: config, group: group, logger: quietLogger)
        } catch {
            try? await group.shutdownGracefully()
            dir.cleanup()
            throw error
        }
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: runtime.services.map { .init(service: $0) }, gracefulShutdownSignals: [], logger: quietLogger)
        )
        self.serviceGroup = serviceGroup
        running = Task { try await serviceGroup.run() }
        let server = runtime.clientServer
        let address = try? await withTimeout(60) { await server.localAddress() }
        port = address?.port ?? 0
        if port == 0 {
            await stop()
            throw AgadirError(.unavailable, "the in-process node did not start listening")
        }
    }

    /// A client signing with the node's root key (`DATA/root.credentials`).
    func client() throws -> AgadirClient {
        var configuration = ClientConfiguration()
        configuration.credentials = try Credentials.read(dir.path + "/root.credentials")
        return try AgadirClient(endpoint: endpoint, configuration: configuration)
    }

    /// Graceful shutdown (servers first, then the store), bounded in time; removes the data directory.
    func stop(keepData: Bool = false) async {
        await serviceGroup.triggerGracefulShutdown()
        let running = self.running
        do {
            try await withTimeout(20) { try await running.value }
        } catch {
            Issue.record("node did not stop cleanly: \(error)")
            running.cancel()
        }
        try? await group.shutdownGracefully()
        if !keepData { dir.cleanup() }
    }
}

/// A blocking loopback socket that speaks raw bytes, every read bounded by a timeout.
struct RawConnection {
    let fd: Int32

    init(port: Int, readTimeoutSeconds: Int = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw AgadirError(.ioError, "socket() failed") }
        var tv = timeval(tv_sec: readTimeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw AgadirError(.unavailable, "connect to port \(port) failed: errno \(errno)")
        }
    }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw AgadirError(.ioError, "send failed: errno \(errno)") }
            sent += n
        }
    }

    func send(_ frames: Frame...) throws {
        for frame in frames { try send(FrameEncoder.encode(frame)) }
    }

    /// Reads until the peer closes (`closed` true) or the read timeout passes, and decodes
    /// the frames. The blocking reads run on a thread of their own: blocking a thread of the
    /// cooperative pool (two on a two-core machine) could starve the in-process node.
    func receiveUntilClosed(maxBytes: Int = 1 << 20) async throws -> (frames: [Frame], closed: Bool) {
        let fd = self.fd
        let (bytes, closed) = await withCheckedContinuation { (c: CheckedContinuation<([UInt8], Bool), Never>) in
            let reader = Thread {
                var bytes: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 4096)
                var closed = false
                while bytes.count < maxBytes {
                    let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n == 0 { closed = true }
                    if n <= 0 { break }
                    bytes += chunk[0..<n]
                }
                c.resume(returning: (bytes, closed))
            }
            reader.start()
        }
        var buffer = ByteBuffer(bytes: bytes)
        var frames: [Frame] = []
        while let frame = try FrameDecoder.next(from: &buffer, limits: .default) { frames.append(frame) }
        return (frames, closed)
    }

    func closeSocket() { close(fd) }
}

@Suite("Client endpoint, in process")
struct ClientServerTests {
    @Test(
        "bad magic gets a RESPONSE with request id 0 and MALFORMED_FRAME then EOF, while another connection keeps working"
    )
    func badMagic_closesOnlyThatConnection() async throws {
        let node = try await InProcessNode()
        let client = try node.client()
        #expect(try await withTimeout(60) { try await client.ping() }.nodeID == "in-process")

        let raw = try RawConnection(port: node.port)
        defer { raw.closeSocket() }
        var garbage = FrameEncoder.encode(.request(id: 1, opcode: .ping, fields: Fields(), end: true))
        garbage[0...3] = [0x48, 0x54, 0x54, 0x50]  // "HTTP"
        try raw.send(garbage)
        let (frames, closed) = try await raw.receiveUntilClosed()
        let answer = try #require(frames.first)
        #expect(frames.count == 1)
        #expect(answer.header.kind == .response && answer.isEndStream)
        #expect(answer.requestID == 0)
        #expect(answer.header.status == AgadirError.Code.malformedFrame.rawValue)
        #expect(answer.error?.message.contains("magic") == true)
        #expect(closed, "the node must close the connection after a connection-level error")

        #expect(try await withTimeout(60) { try await client.ping() }.nodeID == "in-process")
        await client.close()
        await node.stop()
    }

    @Test("a DATA frame for a request id with no open body closes only that connection with MALFORMED_FRAME")
    func dataForUnknownRequest_closesOnlyThatConnection() async throws {
        let node = try await InProcessNode()
        let client = try node.client()
        try await withTimeout(60) { try await client.createBucket("kept") }

        let raw = try RawConnection(port: node.port)
        defer { raw.closeSocket() }
        try raw.send(.data(id: 77, payload: ByteBuffer(bytes: [1, 2, 3]), end: true))
        let (frames, closed) = try await raw.receiveUntilClosed()
        #expect(frames.first?.requestID == 0)
        #expect(frames.first?.header.status == AgadirError.Code.malformedFrame.rawValue)
        #expect(closed)

        let body = randomBytes(200_000, seed: 11)
        try await withTimeout(60) { _ = try await client.put(bucket: "kept", key: "after", data: body) }
        let (_, got) = try await withTimeout(60) { try await client.get(bucket: "kept", key: "after") }
        #expect(got == body)
        await client.close()
        await node.stop()
    }

    @Test("a second REQUEST with an id still in flight closes the connection with DUPLICATE_REQUEST_ID")
    func duplicateInFlightRequestID_closesConnection() async throws {
        let node = try await InProcessNode()
        let client = try node.client()
        try await withTimeout(60) { try await client.createBucket("dup-ids") }

        let raw = try RawConnection(port: node.port)
        defer { raw.closeSocket() }
        // A PUT whose body never ends keeps id 5 in flight.
        let put = Request.put(PutRequest(bucket: "dup-ids", key: "k", size: 100_000))
        try raw.send(
            .request(id: 5, opcode: .put, fields: put.fields(), payload: ByteBuffer(bytes: [0, 1, 2]), end: false),
            .request(id: 5, opcode: .ping, fields: Fields(), end: true))
        let (frames, closed) = try await raw.receiveUntilClosed()
        let fatal = try #require(frames.first { $0.requestID == 0 }, "frames: \(frames.map(\.header))")
        #expect(fatal.header.status == AgadirError.Code.duplicateRequestID.rawValue)
        #expect(fatal.error?.message.contains("5") == true)
        #expect(closed)
        // The half-sent PUT stored nothing.
        let missing = await agadirError {
            _ = try await withTimeout(60) { try await client.head(bucket: "dup-ids", key: "k") }
        }
        #expect(missing?.code == .noSuchKey)
        await client.close()
        await node.stop()
    }

    @Test(
        "graceful shutdown during a large streaming PUT: the PUT completes or fails, and the object is then absent or whole",
        arguments: [0, 5])
    func gracefulShutdownDuringPut_leavesNoPartialObject(graceSeconds: Int) async throws {
        let node = try await InProcessNode(shutdownGraceSeconds: graceSeconds)
        let dataDir = node.dir
        defer { dataDir.cleanup() }
        let client = try node.client()
        try await withTimeout(60) { try await client.createBucket("shutdown") }

        let body = randomBytes(12 << 20, seed: 12)
        let piece = 256 * 1024
        let store = node.runtime.store
        let outcome: Result<WriteResult, AgadirError> = await {
            do {
                let request = PutRequest(bucket: "shutdown", key: "big", size: UInt64(body.count))
                return .success(
                    try await withTimeout(30) {
                        try await client.put(request) { send throws(AgadirError) in
                            var offset = 0
                            while offset < body.count {
                                if offset == 4 << 20 {
                                    // Shut down only once the node is storing this PUT's chunks (at most 5 s).
                                    for _ in 0..<500 where (try? await store.stats().chunks) ?? 0 == 0 {
                                        try? await Task.sleep(for: .milliseconds(10))
                                    }
                                    await node.serviceGroup.triggerGracefulShutdown()
                                }
                                try await send(body[offset..<min(offset + piece, body.count)])
                                offset += piece
                            }
                        }
                    })
            } catch let error as AgadirError {
                return .failure(error)
            } catch {
                Issue.record("PUT did not end: \(error)")
                return .failure(AgadirError(.internalError, "\(error)"))
            }
        }()
        await client.close()
        await node.stop(keepData: true)
        if graceSeconds >= 5 {
            #expect(throws: Never.self, "a PUT in flight must be allowed to finish within the grace period") {
                try outcome.get()
            }
        }

        let reopened = try NodeStore.open(directory: dataDir.path, logger: quietLogger)
        let manifest = try await reopened.manifest(bucket: "shutdown", key: "big")
        if case .success(let written) = outcome {
            #expect(manifest?.version == written.version, "an acknowledged PUT must survive shutdown")
        }
        if let manifest {
            #expect(manifest.size == UInt64(body.count))
            #expect(manifest.etag == ChunkID.of(body))
            var stored: [UInt8] = []
            for ref in manifest.chunkRefs { stored += try await reopened.readChunk(ref.id) }
            #expect(stored == body, "a visible object must be whole")
        }
        await reopened.close()
    }
}
