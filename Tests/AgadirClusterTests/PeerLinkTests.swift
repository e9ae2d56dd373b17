import AgadirClient
import AgadirCluster
import AgadirCore
import AgadirMembership
import AgadirServer
import AgadirStore
import AgadirTestSupport
import AgadirTransport
import AgadirWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

let quiet: Logger = {
    var logger = Logger(label: "agadir.cluster.tests")
    logger.logLevel = ProcessInfo.processInfo.environment["AGADIR_TEST_LOG"] != nil ? .trace : .critical
    return logger
}()

/// Answers LAYOUT_GET with a fixed body and CATALOG_PUT with the size of the body it got
/// (in the MESSAGE field), and records who called.
final class EchoPeerHandler: PeerRequestHandler {
    let callers = Locked<[String]>([])

    func handle(id: UInt64, request: PeerRequest, from peer: String, body: BodyStream?, sink: any ResponseSink) async {
        callers.withLock { $0.append(peer) }
        let opcode = request.opcode.rawValue
        switch request {
        case .layoutGet:
            try? await sink.send(
                .response(id: id, opcode: opcode, payload: ByteBuffer(bytes: Array("layout".utf8)), end: true))
        case .residencyAudit:
            // A peer that does not answer in time (bounded: 3 s).
            try? await Task.sleep(for: .seconds(3))
            try? await sink.send(.response(id: id, opcode: opcode, end: true))
        case .catalogPut:
            var n = 0
            while let buf = try? await body?.next() { n += buf.readableBytes }
            var f = Fields()
            f.set(.message, "\(n)")
            try? await sink.send(.response(id: id, opcode: opcode, fields: f, end: true))
        default:
            try? await sink.send(
                .error(
                    id: id, opcode: opcode, AgadirError(.invalidArgument, "not in this test"), responseStarted: false))
        }
    }
}

/// A client endpoint in this process that accepts peer links as `nodeID`.
final class PeerEndpointNode: Sendable {
    let dir: TempDirectory
    let store: NodeStore
    let group: MultiThreadedEventLoopGroup
    let serviceGroup: ServiceGroup
    let running: Task<Void, any Error>
    let endpoint: String
    let handler = EchoPeerHandler()

    init(nodeID: String, secret: String, name: String = #function) async throws {
        dir = TempDirectory(prefix: "cluster", "\(name)-\(nodeID)")
        var config = NodeConfiguration()
        config.dataDir = dir.path
        config.nodeID = nodeID
        let (codec, _, _) = try config.validate()
        store = try NodeStore.open(directory: dir.path, logger: quiet)
        let service = ObjectService(
            store: store, nodeID: nodeID, config: config, codec: codec, logger: quiet,
            access: try AccessControl(store: store, clusterName: "test", secrets: [secret]))
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let access = ClientServer.PeerAccess(
            nodeID: nodeID, authenticator: try PeerAuthenticator(clusterName: "test", secrets: [secret]),
            handler: handler)
        let server = ClientServer(
            service: service, config: config, host: "127.0.0.1", port: 0, group: group, logger: quiet,
            peerAccess: access)
        let serviceGroup = ServiceGroup(
            configuration: .init(services: [.init(service: server)], gracefulShutdownSignals: [], logger: quiet))
        self.serviceGroup = serviceGroup
        running = Task { try await serviceGroup.run() }
        let address = try await withTimeout(60) { await server.localAddress() }
        endpoint = "127.0.0.1:\(address?.port ?? 0)"
    }

    func stop() async {
        await serviceGroup.triggerGracefulShutdown()
        let running = self.running
        _ = try? await withTimeout(20) { try await running.value }
        await store.close()
        try? await group.shutdownGracefully()
        dir.cleanup()
    }
}

@Suite struct PeerLinkTests {
    static let secret = "0123456789abcdef0123456789abcdef"

    @Test func handshake_authenticatesBothEnds_andCarriesLargeBodies() async throws {
        let node = try await PeerEndpointNode(nodeID: "node-b", secret: Self.secret)
        let endpoint = node.endpoint
        let links = PeerLinks(
            nodeID: "node-a", authenticator: try PeerAuthenticator(clusterName: "test", secrets: [Self.secret]),
            resolve: { $0 == "node-b" ? endpoint : nil })
        do {
            let answer = try await links.call("node-b", .layoutGet, maxResponseBytes: 1024)
            #expect(answer.body == Array("layout".utf8))
            // 3 MiB: sent as a REQUEST then DATA frames of 1 MiB.
            let big = randomBytes(3 << 20, seed: 5)
            let echoed = try await links.call("node-b", .catalogPut, body: big, maxResponseBytes: 1024)
            #expect(try echoed.fields.string(.message) == "\(big.count)")
            let small = try await links.call("node-b", .catalogPut, body: [1, 2, 3], maxResponseBytes: 1024)
            #expect(try small.fields.string(.message) == "3")
            #expect(node.handler.callers.value == ["node-a", "node-a", "node-a"])
            // Unknown node: no address.
            let unknown = await agadirError { _ = try await links.call("node-z", .layoutGet, maxResponseBytes: 16) }
            #expect(unknown?.code == .unavailable)
            // A bounded answer.
            let tooBig = await agadirError { _ = try await links.call("node-b", .layoutGet, maxResponseBytes: 3) }
            #expect(tooBig?.code == .frameTooLarge)
        } catch {
            Issue.record("\(error)")
        }
        links.closeAll()
        await node.stop()
    }

    @Test func wrongSecret_wrongNode_andPlainConnections_areRefused() async throws {
        let node = try await PeerEndpointNode(nodeID: "node-b", secret: Self.secret)
        let endpoint = node.endpoint
        let intruder = PeerLinks(
            nodeID: "node-x",
            authenticator: try PeerAuthenticator(clusterName: "test", secrets: ["ffffffffffffffffffffffffffffffff"]),
            resolve: { _ in endpoint })
        let wrongSecret = await agadirError { _ = try await intruder.call("node-b", .layoutGet, maxResponseBytes: 64) }
        #expect(wrongSecret?.code == .unauthenticated)

        // The address of node-b asked as node-c: node-b refuses a proof made for node-c.
        let confused = PeerLinks(
            nodeID: "node-a", authenticator: try PeerAuthenticator(clusterName: "test", secrets: [Self.secret]),
            resolve: { _ in endpoint })
        let wrongNode = await agadirError { _ = try await confused.call("node-c", .layoutGet, maxResponseBytes: 64) }
        #expect(wrongNode?.code == .unauthenticated)
        #expect(wrongNode?.message.contains("not node-c any more") == true, "\(String(describing: wrongNode))")

        let otherCluster = PeerLinks(
            nodeID: "node-a", authenticator: try PeerAuthenticator(clusterName: "elsewhere", secrets: [Self.secret]),
            resolve: { _ in endpoint })
        let clusterError = await agadirError {
            _ = try await otherCluster.call("node-b", .layoutGet, maxResponseBytes: 64)
        }
        #expect(clusterError?.code == .unauthenticated)
        #expect(node.handler.callers.value.isEmpty)

        // An application connection sending a peer request is closed with UNAUTHENTICATED.
        let client = try AgadirClientProbe(endpoint: endpoint)
        let plain = await client.sendPeerWithoutHandshake()
        #expect(plain?.code == .unauthenticated)
        #expect(node.handler.callers.value.isEmpty)
        intruder.closeAll()
        confused.closeAll()
        otherCluster.closeAll()
        await node.stop()
    }

    /// The dialer proves first: a stranger gets a random nonce and nothing made with the
    /// secret, and a refusal never names the cluster.
    @Test func aStranger_learnsNothingBeforeProvingItself() async throws {
        let node = try await PeerEndpointNode(nodeID: "node-b", secret: Self.secret)
        let probe = try AgadirClientProbe(endpoint: node.endpoint)
        var hello = PeerRequest.hello(nodeID: "stranger", nonce: Array(repeating: 1, count: 32)).fields()
        hello.set(.cluster, "guessing")  // what an old dialer sent: ignored, never corrected
        let (answer, refusal) = await probe.exchange([
            (.hello, hello), (.auth, PeerRequest.auth(proof: Array(repeating: 0, count: 32)).fields()),
        ])
        let first = try #require(answer.first)
        #expect(
            first.items.map(\.tag) == [FieldTag.nonce.rawValue],
            "the HELLO answer holds only a nonce: \(first.items.map(\.tag))")
        #expect(refusal?.code == .unauthenticated)
        #expect(refusal?.message.hasSuffix(": peer authentication failed") == true, "\(String(describing: refusal))")
        #expect(refusal?.message.contains("test") == false, "the cluster's name leaked")
        #expect(node.handler.callers.value.isEmpty)
        await node.stop()
    }

    @Test func aPeerThatDoesNotAnswerInTime_failsTheCall_andClosesTheLink() async throws {
        let node = try await PeerEndpointNode(nodeID: "node-b", secret: Self.secret)
        let endpoint = node.endpoint
        var settings = PeerLinkSettings()
        settings.requestTimeoutSeconds = 0.3
        let links = PeerLinks(
            nodeID: "node-a", authenticator: try PeerAuthenticator(clusterName: "test", secrets: [Self.secret]),
            settings: settings, resolve: { _ in endpoint })
        let slow = await agadirError { _ = try await links.call("node-b", .residencyAudit, maxResponseBytes: 64) }
        #expect(slow?.code == .unavailable)
        #expect(slow?.message.contains("did not answer") == true, "\(String(describing: slow))")
        // The link it was sent on is closed, not left for the next call to wait behind.
        #expect(links.openConnections(to: "node-b") == 0, "the late peer's link is still open")
        // A later call opens a new link and works. The deadline is short, so a machine busy
        // with other tests may miss it on a plain call too: a few attempts (each one a new
        // link once the last was closed).
        var answer: [UInt8]? = nil
        for _ in 0..<20 where answer == nil {
            answer = try? await links.call("node-b", .layoutGet, maxResponseBytes: 64).body
        }
        #expect(answer == Array("layout".utf8))
        links.closeAll()
        await node.stop()
    }
}

/// A plain protocol connection (no handshake) that sends one peer request.
struct AgadirClientProbe {
    let host: String
    let port: Int

    init(endpoint: String) throws {
        (host, port) = try Endpoint.parse(endpoint)
    }

    /// Sends each request in turn on one connection and returns the answers' fields, and the
    /// first error (after which nothing more is sent).
    func exchange(_ requests: [(PeerOpcode, Fields)]) async -> ([Fields], AgadirError?) {
        var answers: [Fields] = []
        let error = await agadirError {
            let c = try await ClientConnection.connect(
                host: host, port: port, limits: .default, bodyBufferBytes: 1 << 20, connectTimeout: .seconds(2))
            defer { c.close() }
            for (opcode, fields) in requests {
                let (id, body) = try c.open()
                body.abandon()
                try await c.write(
                    Frame(
                        header: FrameHeader(
                            kind: .request, flags: FrameHeader.endStream, opcode: opcode.rawValue, requestID: id),
                        fields: fields))
                let frame = try await c.awaitResponse(id)
                if let e = frame.error { throw e }
                answers.append(frame.fields)
            }
        }
        return (answers, error)
    }

    func sendPeerWithoutHandshake() async -> AgadirError? {
        await agadirError {
            let c = try await ClientConnection.connect(
                host: host, port: port, limits: .default, bodyBufferBytes: 1 << 20, connectTimeout: .seconds(2))
            defer { c.close() }
            let (id, body) = try c.open()
            body.abandon()
            try await c.write(
                Frame(
                    header: FrameHeader(
                        kind: .request, flags: FrameHeader.endStream, opcode: PeerOpcode.layoutGet.rawValue,
                        requestID: id),
                    fields: Fields()))
            let frame = try await c.awaitResponse(id)
            if let e = frame.error { throw e }
        }
    }
}
