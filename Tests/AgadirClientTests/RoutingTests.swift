import AgadirClient
import AgadirCore
import AgadirWire
import Testing

/// The client sends a bucket's requests where ROUTE says, follows a REDIRECT once, and
/// carries the consistency level it is given.
@Suite struct RoutingTests {
    static func client(_ endpoint: String) throws -> AgadirClient {
        var configuration = ClientConfiguration()
        configuration.connections = 1
        configuration.connectTimeoutSeconds = 2
        return try AgadirClient(endpoint: endpoint, configuration: configuration)
    }

    static func info(_ key: String) -> ObjectInfo {
        ObjectInfo(
            bucket: "ma-data", key: key, size: 0, etag: ChunkID.of([]), version: .zero, contentType: "text/plain",
            metadata: [])
    }

    @Test func requestsGoWhereRouteSays_withTheirConsistencyLevel() async throws {
        // The eligible node: answers the HEAD, which carries CONSISTENCY = ONE.
        let eligible = try FakeServer { conn in
            let head = try conn.readFrame()
            #expect(head.header.opcode == Opcode.head.rawValue)
            #expect(try head.fields.u8(.consistency) == ConsistencyLevel.one.rawValue)
            try conn.send(
                .response, id: head.header.requestID, opcode: head.header.opcode, end: true,
                fields: Self.info("k").fields())
            conn.awaitPeerClose()
        }
        let target = eligible.endpoint
        // The node the client knows: not eligible; ROUTE names the eligible one, and the
        // HEAD (key included) never reaches it.
        let gateway = try FakeServer { conn in
            let route = try conn.readAnyFrame()
            #expect(route.header.opcode == Opcode.route.rawValue)
            let answer = RouteResult(policy: "ma", mayCoordinate: false, endpoints: [target])
            try conn.send(
                .response, id: route.header.requestID, opcode: route.header.opcode, end: true, fields: answer.fields())
            conn.awaitPeerClose()
        }
        let client = try Self.client(gateway.endpoint)
        let got = try await withTimeout(60) { try await client.head(bucket: "ma-data", key: "k", consistency: .one) }
        #expect(got.key == "k")
        await client.close()
        #expect(await gateway.stop() == [])
        #expect(await eligible.stop() == [])
    }

    @Test func aRedirect_isFollowedOnce_toTheNodeItNames() async throws {
        let eligible = try FakeServer { conn in
            let put = try conn.readFrame()
            #expect(put.header.opcode == Opcode.put.rawValue && put.payload == Array("hello".utf8))
            let result = WriteResult(etag: ChunkID.of(Array("hello".utf8)), version: .zero, size: 5)
            try conn.send(
                .response, id: put.header.requestID, opcode: put.header.opcode, end: true, fields: result.fields())
            conn.awaitPeerClose()
        }
        let target = eligible.endpoint
        // A stale route ("serve it yourself"), then a REDIRECT for the PUT.
        let gateway = try FakeServer { conn in
            let put = try conn.readFrame()
            let redirect = AgadirError.redirect("bucket 'ma-data' lives in Morocco", to: [target])
            var f = Fields()
            f.set(.message, redirect.message)
            for e in redirect.redirect { f.set(.address, e) }
            try conn.send(
                .response, id: put.header.requestID, opcode: put.header.opcode,
                status: AgadirError.Code.redirect.rawValue,
                end: true, fields: f)
            conn.awaitPeerClose()
        }
        let client = try Self.client(gateway.endpoint)
        let result = try await withTimeout(60) {
            try await client.put(bucket: "ma-data", key: "k", data: Array("hello".utf8))
        }
        #expect(result.size == 5)
        await client.close()
        #expect(await gateway.stop() == [])
        #expect(await eligible.stop() == [])
    }
}
