import AgadirCore
import AgadirMembership
import AgadirWire
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The gossip shell: SWIM + Lifeguard membership (`Membership`) on a UDP socket and a TCP
/// listener sharing the peer port, as a `Service` of the node.
///
/// `run()` binds both sockets, starts the state machine and serves until graceful
/// shutdown; then it announces the departure (`leave`), keeps gossiping for
/// `leavePropagation` and closes. The state machine and the sockets live on one event
/// loop (see `GossipEngine`); other threads read `memberInfos()`, `counters` and
/// `membershipStats` from a snapshot under a lock.
public final class GossipService: Service, Sendable {
    public let nodeID: String
    let configuration: GossipConfiguration
    let keyring: Keyring
    let stateFile: GossipStateFile
    let loop: any EventLoop
    let limits: GossipServiceLimits
    let logger: Logger
    let clientAddress: @Sendable () async -> String?
    let clock = GossipClock()
    private let snapshot = Locked(GossipSnapshot())
    private let announced = Once<GossipAddresses?>()
    /// The layout version this node announces, and the engine once it runs.
    private let layoutVersion = Locked<UInt64>(0)
    private let running = Locked<NIOLoopBound<GossipEngine>?>(nil)
    let threadPool: NIOThreadPool
    /// FOR TESTS ONLY: the lab's relays (`AddressMap`).
    let routes: AddressMap

    /// - Parameter clientAddress: the bound client address (`HOST:PORT`), used as the
    ///   advertised one when `advertiseClient` is empty; nil when the client endpoint failed.
    /// - Parameter threadPool: where the blocking work runs (the state file, name lookups):
    ///   the node's one I/O pool (`NodeStore.ioPool`).
    public init(
        nodeID: String, configuration: GossipConfiguration, keyring: Keyring, dataDir: String,
        group: any EventLoopGroup, threadPool: NIOThreadPool = .singleton,
        limits: GossipServiceLimits = GossipServiceLimits(), routes: AddressMap = AddressMap(),
        logger: Logger, clientAddress: @escaping @Sendable () async -> String?
    ) {
        self.routes = routes
        self.threadPool = threadPool
        self.nodeID = nodeID
        self.configuration = configuration
        self.keyring = keyring
        self.stateFile = GossipStateFile(dataDir: dataDir)
        self.loop = group.next()
        self.limits = limits
        self.logger = logger
        self.clientAddress = clientAddress
    }

    /// Announces the layout version this node holds (docs/cluster.md, "Spreading"): it
    /// travels in this node's member record, so the others learn to pull the new layout.
    public func announceLayoutVersion(_ version: UInt64) {
        layoutVersion.withLock { $0 = version }
        guard let engine = running.value else { return }
        loop.execute { engine.value.updateLayoutVersion(version) }
    }

    // MARK: Views (any thread)

    /// The advertised client and peer addresses, once both sockets are bound (nil when
    /// the service could not start).
    public func addresses() async -> GossipAddresses? { await announced.wait() }

    /// Everyone this node knows, itself first, as MEMBERS answers (empty until started).
    public func memberInfos() -> [MemberInfo] {
        let s = snapshot.value
        let now = clock.now()
        return s.members.map { m in
            var ago: Int64 = -1
            if m.nodeID != nodeID, let t = s.lastContact[m.nodeID] {
                ago = max(0, (now.nanoseconds - t.nanoseconds) / 1_000_000)
            }
            return MemberInfo(
                nodeID: m.nodeID, site: m.site, labels: m.labels, clientAddress: m.clientAddress,
                peerAddress: m.peerAddress,
                incarnation: m.incarnation.value, state: "\(m.status)", layoutVersion: m.layoutVersion,
                lastContactMillisAgo: ago)
        }
    }

    /// Counters of the shell: datagrams, push-pulls, drops by reason, member transitions.
    public var counters: GossipCounters { snapshot.value.counters }

    /// The state machine's own counters (probes, suspicions, refutations, ...); nil before it starts.
    public var membershipStats: MembershipStats? { snapshot.value.stats }

    /// Lifeguard's local health multiplier (1 when healthy).
    public var localHealth: Int { snapshot.value.localHealth }

    // MARK: Service

    public func run() async throws {
        let settings = configuration.settings
        let (nodeID, keyring, stateFile, clock, snapshot, limits, logger, loop) =
            (self.nodeID, self.keyring, self.stateFile, self.clock, self.snapshot, self.limits, self.logger, self.loop)
        let threadPool = self.threadPool
        let routes = self.routes
        let incarnation: Incarnation
        let engine: NIOLoopBound<GossipEngine>
        let udp: any Channel
        let listener: any Channel
        do {
            // The cluster must hear a higher number than this node ever announced.
            incarnation = try stateFile.read()?.next ?? .zero
            engine = try await loop.submit {
                NIOLoopBound(
                    GossipEngine(
                        loop: loop, nodeID: nodeID, settings: settings, keyring: keyring, stateFile: stateFile,
                        clock: clock, snapshot: snapshot, limits: limits, threadPool: threadPool, routes: routes,
                        logger: logger),
                    eventLoop: loop)
            }.get()
            (udp, listener) = try await bind(engine)
        } catch {
            announced.publish(nil)
            throw error
        }
        let closed = engine.eventLoop.makeSucceededVoidFuture().flatMap { engine.value.closed.futureResult }
        let myself: Member
        do {
            myself = try await record(incarnation: incarnation, boundPeer: listener.localAddress?.hostAndPort)
        } catch {
            announced.publish(nil)
            loop.execute { engine.value.close() }
            try? await udp.close()
            try? await listener.close()
            try? await closed.get()
            throw error
        }
        let seeds = configuration.seeds
        // Started before the addresses are announced: whoever waited for them sees this node in `memberInfos()`.
        try await loop.submit { engine.value.start(myself: myself, seeds: seeds, udp: udp, listener: listener) }.get()
        running.withLock { $0 = engine }
        // A version announced while the record was being built.
        let latest = layoutVersion.value
        if latest != myself.layoutVersion { loop.execute { engine.value.updateLayoutVersion(latest) } }
        announced.publish(GossipAddresses(client: myself.clientAddress, peer: myself.peerAddress))
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await closed.get()
            } onGracefulShutdown: {
                loop.execute { engine.value.leave() }
            }
        } onCancel: {
            loop.execute { engine.value.close() }
        }
        logger.info("gossip stopped")
    }

    /// This node's record: the advertised addresses (by default the bound ones), checked
    /// against the codec's limits.
    private func record(incarnation: Incarnation, boundPeer: String?) async throws(AgadirError) -> Member {
        let advertised = configuration.advertiseClient
        guard let peer = configuration.advertisePeer.isEmpty ? boundPeer : configuration.advertisePeer,
            let client = advertised.isEmpty ? await clientAddress() : advertised
        else {
            throw AgadirError(.unavailable, "gossip cannot start: the client endpoint did not start")
        }
        let myself = Member(
            nodeID: nodeID, site: configuration.site, labels: configuration.labels, clientAddress: client,
            peerAddress: peer,
            incarnation: incarnation, layoutVersion: layoutVersion.value)
        do {
            try GossipLimits.validate(myself)
        } catch {
            throw AgadirError(.invalidArgument, "configuration: this node's gossip record: \(error.message)")
        }
        return myself
    }

    /// Binds the UDP socket and the TCP listener on the same port. With port 0, TCP picks
    /// the port and UDP takes the same one (retried when UDP finds it taken).
    private func bind(_ engine: NIOLoopBound<GossipEngine>) async throws(AgadirError) -> (any Channel, any Channel) {
        let host = configuration.peerHost
        let port = configuration.peerPort
        var failure: (any Error)?
        for _ in 0..<(port == 0 ? 8 : 1) {
            var tcp: (any Channel)?
            do {
                if port == 0 {
                    let listener = try await listenerBootstrap(engine).bind(host: host, port: 0).get()
                    tcp = listener
                    let udp = try await datagramBootstrap(engine).bind(
                        host: host, port: listener.localAddress?.port ?? 0
                    ).get()
                    return (udp, listener)
                }
                let udp = try await datagramBootstrap(engine).bind(host: host, port: port).get()
                do {
                    return (udp, try await listenerBootstrap(engine).bind(host: host, port: port).get())
                } catch {
                    try? await udp.close()
                    throw error
                }
            } catch {
                try? await tcp?.close()
                failure = error
            }
        }
        throw AgadirError(
            .unavailable,
            "cannot listen for gossip on \(host):\(port) (UDP and TCP): \(failure.map { "\($0)" } ?? "unknown error"); "
                + "is another agadird using this peer port? Set peerListen (--peer-listen)")
    }

    private func datagramBootstrap(_ engine: NIOLoopBound<GossipEngine>) -> DatagramBootstrap {
        DatagramBootstrap(group: loop)
            // One buffer holds any UDP payload (at most 65,527 bytes), so no datagram is cut.
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 64 * 1024))
            .channelOption(.maxMessagesPerRead, value: 16)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(GossipDatagramHandler(engine: engine.value))
                }
            }
    }

    private func listenerBootstrap(_ engine: NIOLoopBound<GossipEngine>) -> ServerBootstrap {
        let limits = self.limits
        return ServerBootstrap(group: loop)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let engine = engine.value
                    guard engine.admitInbound(channel) else {
                        channel.close(promise: nil)
                        return
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(StreamFrameDecoder()),
                        PushPullServerHandler(engine: engine, timeout: limits.exchangeTimeout),
                    ])
                }
            }
    }
}

/// Where this node says it can be reached.
public struct GossipAddresses: Sendable, Hashable {
    public var client: String
    public var peer: String
}

/// Counters of the gossip shell.
public struct GossipCounters: Sendable, Hashable {
    /// Authenticated, decoded datagrams handed to the state machine.
    public var datagramsReceived = 0
    public var datagramsSent = 0
    /// Datagrams the socket refused or whose address could not be resolved.
    public var sendFailures = 0
    public var pushPullsStarted = 0
    public var pushPullsSucceeded = 0
    public var pushPullsFailed = 0
    /// Inbound push-pulls answered.
    public var pushPullsServed = 0
    public var incarnationWrites = 0
    public var incarnationWriteFailures = 0
    /// Inputs dropped, by reason: `datagram unauthenticated (bad_tag)`, `datagram malformed`,
    /// `datagram oversized`, `datagram from self`, `stream ...`.
    public var drops: [String: Int] = [:]
    /// Member transitions, `alive→suspect` (`new→alive` for a member seen the first time).
    public var transitions: [String: Int] = [:]

    /// Drops whose reason starts with `prefix`.
    public func dropped(_ prefix: String) -> Int {
        drops.filter { $0.key.hasPrefix(prefix) }.values.reduce(0, +)
    }
}

/// What other threads may read of the engine's state.
struct GossipSnapshot: Sendable {
    var members: [Member] = []
    var lastContact: [String: MonotonicTime] = [:]
    var localHealth = 1
    var stats: MembershipStats?
    var counters = GossipCounters()
}

extension SocketAddress {
    /// `HOST:PORT`, or `[IPv6]:PORT`, as configuration and gossip write endpoints.
    public var hostAndPort: String? {
        guard let ip = ipAddress, let port else { return nil }
        return self.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
