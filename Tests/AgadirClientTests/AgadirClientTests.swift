import AgadirClient
import AgadirCore
import AgadirWire
import Foundation
import Testing

/// A client with one connection, so every request shares the fake server's connection.
private func oneConnectionClient(_ server: FakeServer) throws -> AgadirClient {
    var configuration = ClientConfiguration()
    configuration.connections = 1
    configuration.connectTimeoutSeconds = 2
    return try AgadirClient(endpoint: server.endpoint, configuration: configuration)
}

private func objectInfoFields(_ body: [UInt8], bucket: String = "photos", key: String = "a.bin") -> Fields {
    ObjectInfo(
        bucket: bucket, key: key, size: UInt64(body.count), etag: ChunkID.of(body),
        version: ObjectVersion(timestamp: HLCTimestamp(physicalMillis: 1_700_000_000_000, logical: 3), node: 42),
        contentType: "application/octet-stream", metadata: []
    ).fields()
}

private func messageFields(_ message: String) -> Fields {
    var f = Fields()
    f.set(.message, message)
    return f
}

@Suite("Agadir client")
struct AgadirClientTests {
    // MARK: Endpoints

    @Test("HOST:PORT and [IPv6]:PORT endpoints give the host and port to connect to")
    func endpoint_validFormsParse() throws {
        let v4 = try AgadirClient(endpoint: "192.168.1.20:7480")
        #expect(v4.host == "192.168.1.20" && v4.port == 7480)
        let v6 = try AgadirClient(endpoint: "[fe80::1]:9000")
        #expect(v6.host == "fe80::1" && v6.port == 9000)
        let named = try AgadirClient(endpoint: "node-1.example:1")
        #expect(named.host == "node-1.example" && named.port == 1)
    }

    @Test(
        "an endpoint without a host or a port in 1...65535 is refused with INVALID_ARGUMENT",
        arguments: [
            "", "localhost", "127.0.0.1:", ":7480", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http",
            "[::1]", "[::1]:", "[::1]7480", "[]:7480",
        ])
    func endpoint_badFormsAreRefused(_ endpoint: String) async {
        let error = await agadirError { _ = try AgadirClient(endpoint: endpoint) }
        #expect(error?.code == .invalidArgument, "'\(endpoint)' gave \(String(describing: error))")
    }

    // MARK: Connecting

    @Test("a request to a port nobody listens on fails with UNAVAILABLE instead of hanging")
    func closedPort_failsWithUnavailable() async throws {
        let port = try closedPort()
        let client = try AgadirClient(endpoint: "127.0.0.1:\(port)")
        // The timeout only turns a hang into a failure; no wall-clock figure is asserted.
        let error = await agadirError { _ = try await withTimeout(60) { try await client.ping() } }
        #expect(error?.code == .unavailable, "\(String(describing: error))")
        await client.close()
    }

    // MARK: Against a fake server

    @Test("ping decodes a hand-built RESPONSE frame echoing the request id")
    func ping_decodesResponse() async throws {
        let server = try FakeServer { conn in
            let request = try conn.readFrame()
            guard request.header.kind == .request, request.header.opcode == Opcode.ping.rawValue,
                request.header.isEndStream, request.header.requestID != 0
            else { throw FakeServerFailure("unexpected first frame \(request.header)") }
            let answer = PingResult(nodeID: "fake-node", serverVersion: "fake/9.9", timeMillis: 1_234_567)
            try conn.send(
                .response, id: request.header.requestID, opcode: Opcode.ping.rawValue, end: true,
                fields: answer.fields())
            conn.awaitPeerClose()
        }
        let client = try oneConnectionClient(server)
        let ping = try await withTimeout(60) { try await client.ping() }
        #expect(ping == PingResult(nodeID: "fake-node", serverVersion: "fake/9.9", timeMillis: 1_234_567))
        await client.close()
        #expect(await server.stop() == [])
    }

    @Test("a GET body split over RESPONSE and 3 DATA frames, interleaved with another request's answer, arrives whole")
    func get_interleavedWithAnotherResponse_returnsRightBytes() async throws {
        let body = (0..<30_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let server = try FakeServer { conn in
            let first = try conn.readFrame()
            let second = try conn.readFrame()
            let requests = [first, second]
            guard let get = requests.first(where: { $0.header.opcode == Opcode.get.rawValue }),
                let ping = requests.first(where: { $0.header.opcode == Opcode.ping.rawValue })
            else { throw FakeServerFailure("expected a GET and a PING, got \(requests.map(\.header))") }
            guard try get.fields.string(.bucket) == "photos", try get.fields.string(.key) == "a.bin" else {
                throw FakeServerFailure("GET fields \(get.fields)")
            }
            let g = get.header.requestID
            let op = Opcode.get.rawValue
            try conn.send(
                .response, id: g, opcode: op, end: false, fields: objectInfoFields(body),
                payload: Array(body[0..<1_000]))
            try conn.send(.data, id: g, end: false, payload: Array(body[1_000..<11_000]))
            let pong = PingResult(nodeID: "fake-node", serverVersion: "fake/9.9", timeMillis: 1)
            try conn.send(
                .response, id: ping.header.requestID, opcode: Opcode.ping.rawValue, end: true, fields: pong.fields())
            try conn.send(.data, id: g, end: false, payload: Array(body[11_000..<29_000]))
            try conn.send(.data, id: g, end: true, payload: Array(body[29_000...]))
            conn.awaitPeerClose()
        }
        let client = try oneConnectionClient(server)
        async let pinged = withTimeout(60) { try await client.ping() }
        async let got = withTimeout(60) { try await client.get(bucket: "photos", key: "a.bin") }
        let (info, bytes) = try await got
        #expect(try await pinged.nodeID == "fake-node")
        #expect(bytes == body)
        #expect(info.size == UInt64(body.count))
        #expect(info.etag == ChunkID.of(body))
        #expect(info.version.node == 42)
        await client.close()
        #expect(await server.stop() == [])
    }

    @Test("an ABORT in the middle of a GET body fails the GET with the ABORT's error code and message")
    func get_abortMidBody_throwsAbortCode() async throws {
        let body = [UInt8](repeating: 0xAB, count: 20_000)
        let server = try FakeServer { conn in
            let get = try conn.readFrame()
            let g = get.header.requestID
            try conn.send(.response, id: g, opcode: Opcode.get.rawValue, end: false, fields: objectInfoFields(body))
            try conn.send(.data, id: g, end: false, payload: Array(body[0..<8_000]))
            try conn.send(
                .abort, id: g, status: AgadirError.Code.corruptChunk.rawValue, end: true,
                fields: messageFields("chunk 00ff is corrupt"))
            conn.awaitPeerClose()
        }
        let client = try oneConnectionClient(server)
        let error = await agadirError {
            _ = try await withTimeout(60) { try await client.get(bucket: "photos", key: "a.bin") }
        }
        #expect(error?.code == .corruptChunk, "\(String(describing: error))")
        #expect(error?.message.contains("chunk 00ff is corrupt") == true)
        await client.close()
        #expect(await server.stop() == [])
    }

    @Test("an error RESPONSE fails the request with its code and message, and the connection keeps working")
    func errorResponse_failsOnlyThatRequest() async throws {
        let server = try FakeServer { conn in
            let head = try conn.readFrame()
            try conn.send(
                .response, id: head.header.requestID, opcode: head.header.opcode,
                status: AgadirError.Code.noSuchKey.rawValue, end: true,
                fields: messageFields("object 'photos/x' does not exist"))
            let ping = try conn.readFrame()
            let pong = PingResult(nodeID: "still-here", serverVersion: "fake/9.9", timeMillis: 1)
            try conn.send(
                .response, id: ping.header.requestID, opcode: Opcode.ping.rawValue, end: true, fields: pong.fields())
            conn.awaitPeerClose()
        }
        let client = try oneConnectionClient(server)
        let error = await agadirError {
            _ = try await withTimeout(60) { try await client.head(bucket: "photos", key: "x") }
        }
        #expect(error?.code == .noSuchKey)
        #expect(error?.message == "object 'photos/x' does not exist")
        #expect(try await withTimeout(60) { try await client.ping() }.nodeID == "still-here")
        await client.close()
        #expect(await server.stop() == [])
    }

    @Test("a connection-level error (request id 0) fails the requests in flight with that code")
    func connectionLevelError_failsPendingRequests() async throws {
        let server = try FakeServer { conn in
            _ = try conn.readFrame()
            try conn.send(
                .response, id: 0, status: AgadirError.Code.malformedFrame.rawValue, end: true,
                fields: messageFields("bad magic: this is not an Agadir protocol stream"))
        }
        let client = try oneConnectionClient(server)
        let error = await agadirError { _ = try await withTimeout(60) { try await client.ping() } }
        #expect(error?.code == .malformedFrame, "\(String(describing: error))")
        #expect(error?.message.contains("bad magic") == true)
        await client.close()
        #expect(await server.stop() == [])
    }

    @Test("a server that closes the connection in the middle of a GET body fails the GET with UNAVAILABLE")
    func serverClosesMidBody_failsWithUnavailable() async throws {
        let body = [UInt8](repeating: 7, count: 50_000)
        let server = try FakeServer { conn in
            let get = try conn.readFrame()
            let g = get.header.requestID
            try conn.send(
                .response, id: g, opcode: Opcode.get.rawValue, end: false, fields: objectInfoFields(body),
                payload: [7, 7])
            try conn.send(.data, id: g, end: false, payload: Array(body[2..<10_000]))
        }
        let client = try oneConnectionClient(server)
        let error = await agadirError {
            _ = try await withTimeout(60) { try await client.get(bucket: "photos", key: "a.bin") }
        }
        #expect(error?.code == .unavailable, "\(String(describing: error))")
        await client.close()
        #expect(await server.stop() == [])
    }

    @Test("members decodes a MEMBERS body split over the RESPONSE frame and DATA frames")
    func members_decodesBodyAcrossFrames() async throws {
        let expected = [
            MemberInfo(
                nodeID: "benguerir-1", site: "benguerir", labels: ["country": "MA"], clientAddress: "127.0.0.1:7480",
                peerAddress: "127.0.0.1:7946", incarnation: 2, state: "alive", layoutVersion: 1,
                lastContactMillisAgo: -1),
            MemberInfo(
                nodeID: "settat-1", site: "settat", labels: [:], clientAddress: "127.0.0.1:7481",
                peerAddress: "127.0.0.1:7947",
                incarnation: 5, state: "dead", layoutVersion: 1, lastContactMillisAgo: 9_000),
        ]
        let body = try MemberListCodec.encode(expected)
        let server = try FakeServer { conn in
            let request = try conn.readFrame()
            guard request.header.opcode == Opcode.members.rawValue, request.header.isEndStream,
                request.header.headerLength == 0
            else { throw FakeServerFailure("unexpected MEMBERS request \(request.header)") }
            let id = request.header.requestID
            try conn.send(.response, id: id, opcode: Opcode.members.rawValue, end: false, payload: Array(body[0..<10]))
            try conn.send(.data, id: id, end: false, payload: Array(body[10..<40]))
            try conn.send(.data, id: id, end: true, payload: Array(body[40...]))
            conn.awaitPeerClose()
        }
        let client = try oneConnectionClient(server)
        let members = try await withTimeout(60) { try await client.members() }
        #expect(members == expected)
        await client.close()
        #expect(await server.stop() == [])
    }

    @Test("a MEMBERS body that lies about its member count fails with MALFORMED_FRAME")
    func members_lyingBody_isMalformed() async throws {
        let server = try FakeServer { conn in
            let request = try conn.readFrame()
            try conn.send(
                .response, id: request.header.requestID, opcode: Opcode.members.rawValue, end: true,
                payload: [0, 1, 0, 0])
            conn.awaitPeerClose()
        }
        let client = try oneConnectionClient(server)
        let error = await agadirError { _ = try await withTimeout(60) { try await client.members() } }
        #expect(error?.code == .malformedFrame, "\(String(describing: error))")
        await client.close()
        #expect(await server.stop() == [])
    }

    @Test("a server that closes the connection before answering fails the pending request with UNAVAILABLE")
    func serverClosesBeforeAnswer_failsWithUnavailable() async throws {
        let server = try FakeServer { conn in _ = try conn.readFrame() }
        let client = try oneConnectionClient(server)
        let error = await agadirError { _ = try await withTimeout(60) { try await client.stat() } }
        #expect(error?.code == .unavailable, "\(String(describing: error))")
        await client.close()
        #expect(await server.stop() == [])
    }
}
