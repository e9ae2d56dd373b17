import AgadirCore
import AgadirGossip
import AgadirMembership
import AgadirWire
import Foundation
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

/// Gossip timing ten times faster than the LAN preset: probe every 100 ms, suspicion
/// after 0.4-2.4 s, leave announced for 100 ms.
let fastGossip = MembershipSettings.lan.scaled(by: 0.1)

let testSecret = "0123456789abcdef0123456789abcdef"

/// A `GossipService` on 127.0.0.1 with a free port, running under its own `ServiceGroup`.
final class GossipNode: Sendable {
    let nodeID: String
    let dir: TempDirectory
    let service: GossipService
    let serviceGroup: ServiceGroup
    let running: Task<Void, any Error>
    let addresses: GossipAddresses

    init(
        _ nodeID: String, seeds: [GossipNode] = [], secret: String = testSecret, dir: TempDirectory? = nil,
        group: MultiThreadedEventLoopGroup, name: String = #function
    ) async throws {
        self.nodeID = nodeID
        let dir = dir ?? gossipTempDirectory(name + nodeID)
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        self.dir = dir
        let configuration = GossipConfiguration(
            settings: fastGossip, peerHost: "127.0.0.1", peerPort: 0, seeds: seeds.map(\.addresses.peer),
            site: "site-a", labels: ["rack": nodeID], clusterName: "test")
        service = GossipService(
            nodeID: nodeID, configuration: configuration, keyring: try Keyring(clusterName: "test", secrets: [secret]),
            dataDir: dir.path, group: group, logger: quietLogger, clientAddress: { "127.0.0.1:7480" })
        let serviceGroup = ServiceGroup(
            configuration: .init(services: [.init(service: service)], gracefulShutdownSignals: [], logger: quietLogger))
        self.serviceGroup = serviceGroup
        running = Task { try await serviceGroup.run() }
        let service = self.service
        guard let addresses = try await withTimeout(10, { await service.addresses() }) else {
            running.cancel()
            throw AgadirError(.unavailable, "gossip node \(nodeID) did not start")
        }
        self.addresses = addresses
    }

    /// Graceful stop (leave, propagate, close), bounded in time.
    func stop() async {
        await serviceGroup.triggerGracefulShutdown()
        let running = self.running
        _ = try? await withTimeout(60) { try await running.value }
    }

    /// nodeID -> state, as this node sees the cluster.
    var view: [String: String] {
        Dictionary(service.memberInfos().map { ($0.nodeID, $0.state) }, uniquingKeysWith: { a, _ in a })
    }
}

/// Polls `condition` every 50 ms for at most `seconds`; records an issue naming `what` if it never holds.
@discardableResult
func eventually(
    _ what: String, within seconds: Double = 15, sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () -> Bool
) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    if condition() { return true }
    Issue.record("not within \(seconds) s: \(what)", sourceLocation: sourceLocation)
    return false
}

/// Sends raw datagrams to a gossip port from a socket of its own.
func sendDatagrams(_ datagrams: [[UInt8]], to peer: String, group: MultiThreadedEventLoopGroup) async throws {
    let (host, port) = try Endpoint.parse(peer, allowPortZero: true)
    let target = try SocketAddress(ipAddress: host, port: port)
    let channel = try await DatagramBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
    for (i, bytes) in datagrams.enumerated() {
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try? await channel.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: buffer))
        // Let the receiver drain now and then: the flood is for the parser, not the socket buffer.
        if i % 64 == 63 { try? await Task.sleep(for: .milliseconds(2)) }
    }
    try await channel.close()
}

/// Opens a TCP connection to a gossip port, writes `bytes`, and waits until the peer closes.
func sendStream(_ bytes: [UInt8], to peer: String, group: MultiThreadedEventLoopGroup) async throws {
    let (host, port) = try Endpoint.parse(peer, allowPortZero: true)
    let channel = try await ClientBootstrap(group: group).connect(host: host, port: port).get()
    var buffer = channel.allocator.buffer(capacity: bytes.count)
    buffer.writeBytes(bytes)
    try? await channel.writeAndFlush(buffer)
    _ = try? await withTimeout(60) { try await channel.closeFuture.get() }
    try? await channel.close()
}

@Suite("Gossip service on real sockets", .serialized)
struct GossipServiceTests {
    @Test("three nodes joining through one seed all see each other alive, with addresses and last contact")
    func threeNodes_converge_allAlive() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let a = try await GossipNode("a", group: group)
        let b = try await GossipNode("b", seeds: [a], group: group)
        let c = try await GossipNode("c", seeds: [a], group: group)
        let nodes = [a, b, c]
        await eventually("every node sees a, b and c alive") {
            nodes.allSatisfy { $0.view == ["a": "alive", "b": "alive", "c": "alive"] }
        }
        let viewOfB = b.service.memberInfos()
        #expect(viewOfB.first?.nodeID == "b", "self first")
        #expect(viewOfB.first?.lastContactMillisAgo == -1)
        let aSeenByB = try #require(viewOfB.first { $0.nodeID == "a" })
        #expect(aSeenByB.peerAddress == a.addresses.peer)
        #expect(aSeenByB.clientAddress == "127.0.0.1:7480")
        #expect(aSeenByB.site == "site-a" && aSeenByB.labels == ["rack": "a"])
        await eventually("b has heard from a and c recently") {
            b.service.memberInfos().filter { $0.nodeID != "b" }.allSatisfy {
                (0..<5000).contains($0.lastContactMillisAgo)
            }
        }
        #expect(a.service.counters.transitions["new→alive"] == 2)
        #expect(a.service.counters.drops.isEmpty, "\(a.service.counters.drops)")
        for n in nodes { await n.stop() }
        for n in nodes { n.dir.cleanup() }
        try await group.shutdownGracefully()
    }

    @Test("a node with the wrong secret never appears in the cluster, and what it sends is counted as unauthenticated")
    func wrongSecret_neverAppears() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let a = try await GossipNode("a", group: group)
        let b = try await GossipNode("b", seeds: [a], group: group)
        let intruder = try await GossipNode(
            "intruder", seeds: [a], secret: "another-secret-of-32-characters!", group: group)
        await eventually("a and b see each other") { a.view == ["a": "alive", "b": "alive"] && b.view.count == 2 }
        await eventually("a counted the intruder's join attempts as unauthenticated streams") {
            a.service.counters.dropped("stream unauthenticated") >= 2
        }
        // A datagram sealed with the wrong secret, carrying a well-formed packet.
        let wrong = try Keyring(clusterName: "test", secrets: ["another-secret-of-32-characters!"])
        let packet = Packet(
            sender: "intruder", senderAddress: intruder.addresses.peer,
            gossip: [
                .alive(
                    Member(
                        nodeID: "intruder", site: "x", clientAddress: "127.0.0.1:1",
                        peerAddress: intruder.addresses.peer))
            ])
        try await sendDatagrams(
            Array(repeating: wrong.seal(GossipCodec.encode(packet), channel: .datagram), count: 5),
            to: a.addresses.peer,
            group: group)
        await eventually("a counted the wrong-secret datagrams") {
            a.service.counters.dropped("datagram unauthenticated") >= 1
        }
        // Another cluster name with the same secret is just as foreign.
        let otherCluster = try Keyring(clusterName: "other", secrets: [testSecret])
        try await sendDatagrams(
            [otherCluster.seal(GossipCodec.encode(packet), channel: .datagram)], to: b.addresses.peer, group: group)
        await eventually("b counted the other cluster's datagram") {
            b.service.counters.dropped("datagram unauthenticated") >= 1
        }
        // The event itself: the intruder's own joins were refused (no sleep before the check).
        await eventually("the intruder's joins failed") { intruder.service.counters.pushPullsFailed >= 2 }
        #expect(a.view["intruder"] == nil && b.view["intruder"] == nil, "\(a.view) \(b.view)")
        #expect(intruder.view == ["intruder": "alive"])
        for n in [a, b, intruder] { await n.stop() }
        for n in [a, b, intruder] { n.dir.cleanup() }
        try await group.shutdownGracefully()
    }

    @Test("gossip captured long ago, or replayed, is dropped and counted; a member it announces never appears")
    func staleAndReplayedDatagrams_changeNothing() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let a = try await GossipNode("a", group: group)
        let b = try await GossipNode("b", seeds: [a], group: group)
        await eventually("a and b see each other") { a.view.count == 2 && b.view.count == 2 }
        let keyring = try Keyring(clusterName: "test", secrets: [testSecret])
        // A real member's announcement, as someone on the path captured it ten minutes ago.
        let ghost = Packet(
            sender: "ghost", senderAddress: "127.0.0.1:9",
            gossip: [
                .alive(Member(nodeID: "ghost", site: "x", clientAddress: "127.0.0.1:1", peerAddress: "127.0.0.1:9"))
            ])
        let captured = keyring.seal(GossipCodec.encode(ghost), channel: .datagram, sentAgoMillis: 600_000)
        try await sendDatagrams(Array(repeating: captured, count: 3), to: a.addresses.peer, group: group)
        await eventually("a counted the stale datagrams") {
            a.service.counters.dropped("datagram unauthenticated (stale)") == 3
        }
        // A fresh datagram of a's peer b, sent again and again: one is taken, the copies are not.
        let packet = Packet(sender: "b", senderAddress: b.addresses.peer)
        let fresh = keyring.seal(GossipCodec.encode(packet), channel: .datagram)
        let before = a.service.counters.datagramsReceived
        try await sendDatagrams(Array(repeating: fresh, count: 4), to: a.addresses.peer, group: group)
        await eventually("a counted three replays") {
            a.service.counters.dropped("datagram unauthenticated (replayed)") == 3
        }
        #expect(a.service.counters.datagramsReceived >= before + 1)
        // The stale and replayed datagrams were dropped when counted: the view cannot change later.
        #expect(a.view["ghost"] == nil && b.view["ghost"] == nil, "\(a.view)")
        for n in [a, b] { await n.stop() }
        for n in [a, b] { n.dir.cleanup() }
        try await group.shutdownGracefully()
    }

    @Test("a node stopped gracefully is seen as left (not dead) by the others")
    func gracefulStop_isLeftAtOthers() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let a = try await GossipNode("a", group: group)
        let b = try await GossipNode("b", seeds: [a], group: group)
        let c = try await GossipNode("c", seeds: [a], group: group)
        await eventually("all alive") { [a, b, c].allSatisfy { $0.view.values.filter { $0 == "alive" }.count == 3 } }
        await c.stop()
        await eventually("a and b see c as left") { a.view["c"] == "left" && b.view["c"] == "left" }
        // alive→left, or suspect→left if a slow machine made c look late once.
        #expect(a.service.counters.transitions.filter { $0.key.hasSuffix("→left") }.values.reduce(0, +) == 1)
        await eventually("a and b still see each other alive") { a.view["b"] == "alive" && b.view["a"] == "alive" }
        for n in [a, b] { await n.stop() }
        for n in [a, b, c] { n.dir.cleanup() }
        try await group.shutdownGracefully()
    }

    @Test("garbage, oversized, malformed and self-addressed input is dropped and counted; the node keeps gossiping")
    func garbage_isDroppedAndCounted() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let a = try await GossipNode("a", group: group)
        let b = try await GossipNode("b", seeds: [a], group: group)
        await eventually("a and b see each other") { a.view.count == 2 && b.view.count == 2 }
        let keyring = try Keyring(clusterName: "test", secrets: [testSecret])
        var rng = SplitMix64(seed: 42)
        var flood: [[UInt8]] = []
        for i in 0..<2000 {
            switch i % 4 {
            case 0: flood.append(rng.bytes(Int(rng.next() % 1400)))  // noise
            case 1:  // a real envelope header, then noise
                flood.append(Array(keyring.seal([], channel: .datagram).prefix(8)) + rng.bytes(Int(rng.next() % 200)))
            case 2:  // authentic, not a packet
                flood.append(keyring.seal(rng.bytes(Int(rng.next() % 300)), channel: .datagram))
            default:
                flood.append(
                    keyring.seal(GossipCodec.encode(Packet(sender: "a", senderAddress: "x:1")), channel: .datagram))
            }
        }
        flood += Array(repeating: rng.bytes(65_100), count: 8)
        try await sendDatagrams(flood, to: a.addresses.peer, group: group)
        await eventually("a counted every kind of bad datagram") {
            let c = a.service.counters
            return c.dropped("datagram unauthenticated") > 0 && c.dropped("datagram malformed") > 0
                && c.dropped("datagram from self") > 0 && c.dropped("datagram oversized") > 0
        }
        // Streams: a length above the 16 MiB bound, then noise of a plausible length.
        try await sendStream([0xFF, 0xFF, 0xFF, 0xFF], to: a.addresses.peer, group: group)
        try await sendStream([0, 0, 0, 40] + rng.bytes(40), to: a.addresses.peer, group: group)
        await eventually("a counted the bad streams") {
            a.service.counters.dropped("stream oversized") == 1
                && a.service.counters.dropped("stream unauthenticated") == 1
        }
        let total = a.service.counters.drops.values.reduce(0, +)
        #expect(total <= flood.count + 2, "\(a.service.counters.drops)")
        // Still a working member: a newcomer joins through it and everyone stays alive.
        let received = a.service.counters.datagramsReceived
        let c = try await GossipNode("c", seeds: [a], group: group)
        await eventually("c joins through a after the flood") {
            [a, b, c].allSatisfy { $0.view == ["a": "alive", "b": "alive", "c": "alive"] }
        }
        #expect(a.service.counters.datagramsReceived > received)
        for n in [a, b, c] { await n.stop() }
        for n in [a, b, c] { n.dir.cleanup() }
        try await group.shutdownGracefully()
    }

    @Test("a restart on the same data directory announces a higher incarnation, and the others accept it")
    func restart_announcesHigherIncarnation() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let seed = try await GossipNode("seed", group: group)
        let dir = gossipTempDirectory()
        let first = try await GossipNode("n", seeds: [seed], dir: dir, group: group)
        await eventually("n joined") { seed.view["n"] == "alive" }
        let before = try #require(first.service.memberInfos().first).incarnation
        await first.stop()
        await eventually("n left") { seed.view["n"] == "left" }
        let state = try String(contentsOfFile: dir.path + "/gossip-state.json", encoding: .utf8)
        #expect(state.contains("\"incarnation\": \(before + 1)"), "leave is recorded: \(state)")
        let second = try await GossipNode("n", seeds: [seed], dir: dir, group: group)
        let after = try #require(second.service.memberInfos().first).incarnation
        #expect(after == before + 2, "persisted \(before + 1), restarted one above")
        await eventually("the seed sees n alive again at the new incarnation") {
            seed.service.memberInfos().contains { $0.nodeID == "n" && $0.state == "alive" && $0.incarnation == after }
        }
        for n in [seed, second] { await n.stop() }
        seed.dir.cleanup()
        dir.cleanup()
        try await group.shutdownGracefully()
    }
}
