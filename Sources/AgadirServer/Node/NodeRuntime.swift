import AgadirCluster
import AgadirCore
import AgadirGossip
import AgadirMembership
import AgadirStore
import AgadirTransport
import AgadirWire
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Keeps the store open while the node runs and closes it last on shutdown (it is
/// the first service of the group, so it is shut down after the servers).
public final class StoreService: Service, Sendable {
    let store: NodeStore
    let logger: Logger

    public init(store: NodeStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await store.close()
        logger.info("store closed", metadata: ["dir": "\(store.directory)"])
    }
}

/// Wires a node together from its configuration: identity, store, client endpoint.
public struct NodeRuntime: Sendable {
    public let config: NodeConfiguration
    public let nodeID: String
    public let store: NodeStore
    public let service: ObjectService
    public let clientServer: ClientServer
    public let gossip: GossipService
    public let cluster: ClusterBinding
    public let links: PeerLinks
    /// Read repairs and late hint parking, ended by the graceful shutdown.
    public let background: BackgroundTasks
    /// Reads the certificate files again now and then (nil without certificates).
    let certificateReloader: CertificateReloader?
    /// FOR TESTS ONLY: offsets the clock from `testingClockOffsetFile` (`agadir-lab skew`).
    let clockOffsetWatcher: ClockOffsetWatcher?
    /// FOR TESTS ONLY: the lab's relays, from `testingAddressMapFile`.
    let addressMapWatcher: AddressMapWatcher?
    let logger: Logger

    public init(config: NodeConfiguration, group: MultiThreadedEventLoopGroup, logger: Logger) throws(AgadirError) {
        let (codec, host, port) = try config.validate()
        let dir = config.dataDir
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw AgadirError(.ioError, "cannot create data directory \(dir): \(error)")
        }
        let nodeID = try Self.loadOrCreateNodeID(dir: dir, configured: config.nodeID)
        var logger = logger
        logger[metadataKey: "node"] = "\(nodeID)"
        let gossipConfiguration = try config.validateGossip()
        let certificate = try NodeCertificate.load(config: config, nodeID: nodeID, site: gossipConfiguration.site)
        let attestations = Attestations(
            nodeID: nodeID, own: certificate?.attestation, revokedSerials: certificate?.revoked ?? [])
        let tls = try certificate.map { (c) throws(AgadirError) in NodeTLS(try c.contexts()) }
        if let identity = certificate?.identity {
            logger.notice(
                "node certificate checked: the cluster CA attests this node; TLS 1.3 on the client port and peer links",
                metadata: [
                    "site": "\(identity.site)", "labels": "\(identity.labels.labelText)",
                    "serial": "\(identity.serial)",
                ])
        }
        let keyring = try ClusterSecrets.keyring(config: config, logger: logger)
        var storeOptions = StoreOptions()
        storeOptions.segmentMaxBytes = config.segmentMaxBytes
        let store = try NodeStore.open(directory: dir, options: storeOptions, logger: logger)
        self.config = config
        self.nodeID = nodeID
        self.store = store
        self.logger = logger
        // Gossip first, so the object service can answer MEMBERS from it; gossip asks for
        // the client endpoint's address only once running.
        let clientServerOnceBuilt = Locked<ClientServer?>(nil)
        let routes = AddressMap()
        self.addressMapWatcher =
            config.testingAddressMapFile.isEmpty
            ? nil : AddressMapWatcher(path: config.testingAddressMapFile, routes: routes, logger: logger)
        addressMapWatcher?.apply()
        let gossip = GossipService(
            nodeID: nodeID, configuration: gossipConfiguration, keyring: keyring, dataDir: dir, group: group,
            threadPool: store.ioPool, routes: routes, logger: logger,
            clientAddress: { await clientServerOnceBuilt.value?.localAddress()?.hostAndPort })
        self.gossip = gossip
        // Peer links reach the other nodes' client endpoints as gossip knows them.
        let authenticator = try ClusterSecrets.peerAuthenticator(config: config, logger: logger)
        // One hybrid logical clock for the node: its versions, and every peer exchange merges it.
        let clock = NodeClock(
            maxSkewMillis: UInt64(config.maxClockSkewMillis), offsetMillis: Int64(config.testingClockOffsetMillis),
            wall: { WallMillis.now() })
        self.clockOffsetWatcher =
            config.testingClockOffsetFile.isEmpty
            ? nil : ClockOffsetWatcher(path: config.testingClockOffsetFile, clock: clock, logger: logger)
        clockOffsetWatcher?.apply()
        if config.testingClockOffsetMillis != 0 {
            logger.warning(
                "FOR TESTS ONLY: this node's clock is offset", metadata: ["ms": "\(config.testingClockOffsetMillis)"])
        }
        let links = PeerLinks(
            nodeID: nodeID, authenticator: authenticator, tls: tls, attestations: attestations, clock: clock,
            resolve: { node in gossip.memberInfos().first { $0.nodeID == node }.map { routes.route($0.clientAddress) } }
        )
        self.links = links
        let nodeTag = ChunkID.of(Array(nodeID.utf8)).prefix64
        let clusterNode = try ClusterNode(
            nodeID: nodeID, site: gossipConfiguration.site, store: store, gossip: gossip, links: links, dataDir: dir,
            settings: ClusterNodeSettings().scaled(by: config.gossipTimeScalePercent), logger: logger,
            versions: { ObjectVersion(timestamp: clock.now(), node: nodeTag) })
        let background = BackgroundTasks(logger: logger)
        self.background = background
        let coordinator = Coordinator(context: clusterNode, logger: logger, background: background)
        let rebalancer = try Rebalancer(
            node: clusterNode, dataDir: dir, timing: Rebalancer.Timing().scaled(by: config.gossipTimeScalePercent),
            logger: logger)
        let scale = config.gossipTimeScalePercent
        let antiEntropy = AntiEntropy(
            node: clusterNode, rebalancer: rebalancer, interval: .seconds(config.repairIntervalSeconds) * scale / 100,
            tombstoneGrace: .seconds(config.tombstoneGraceSeconds), logger: logger)
        let scrubber = try Scrubber(
            node: clusterNode, dataDir: dir, bytesPerSecond: config.scrubBytesPerSecond,
            interval: .seconds(config.scrubIntervalSeconds),
            logger: logger)
        let garbageCollector = GarbageCollector(
            node: clusterNode, coordinator: coordinator, interval: .seconds(config.garbageIntervalSeconds),
            grace: .seconds(config.garbageGraceSeconds), catalogGrace: .seconds(config.tombstoneGraceSeconds),
            logger: logger)
        let cluster = ClusterBinding(
            node: clusterNode, coordinator: coordinator, rebalancer: rebalancer, antiEntropy: antiEntropy,
            scrubber: scrubber,
            garbageCollector: garbageCollector, logger: logger)
        self.cluster = cluster
        let access = try AccessControl(
            store: store, clusterName: config.clusterName,
            secrets: try ClusterSecrets.secrets(config: config, logger: logger),
            replay: ReplayWindow(skewMillis: UInt64(config.requestSkewSeconds) * 1000))
        let rootFile = try access.writeRootCredentials(dataDir: dir, caFile: certificate == nil ? nil : config.caFile)
        logger.notice(
            "root key ready: every admin command, every bucket; point the CLI at it with AGADIR_CREDENTIALS",
            metadata: ["path": "\(rootFile)", "accessKey": "\(access.roots[0].accessKey)"])
        let service = ObjectService(
            store: store, nodeID: nodeID, config: config, codec: codec, logger: logger, access: access,
            membersProvider: { gossip.memberInfos() }, cluster: cluster, clock: clock)
        self.service = service
        let replicaService = ReplicaService(
            local: LocalReplica(nodeID: nodeID, store: store), context: clusterNode, logger: logger,
            layoutBytes: { clusterNode.encodedLayout },
            audit: { () throws(AgadirError) -> [UInt8] in try AdminJSON.encode(try await clusterNode.residencyAudit())
            },
            status: { () throws(AgadirError) -> [UInt8] in try AdminJSON.encode(await cluster.localStatus()) },
            rebalanceSettings: { (body: [UInt8]) throws(AgadirError) in
                try rebalancer.adopt(try AdminJSON.decode(RebalanceSettings.self, body, "the body of REBALANCE_SET"))
            },
            repairStart: { (body: [UInt8]) throws(AgadirError) in
                antiEntropy.request(try AdminJSON.decode(RepairScope.self, body, "the body of REPAIR_START"))
            },
            maintenance: { (body: [UInt8]) throws(AgadirError) in
                try cluster.maintenance(try AdminJSON.decode(MaintenanceRequest.self, body, "the body of MAINTENANCE"))
            })
        let clientServer = ClientServer(
            service: service, config: config, host: host, port: port, group: group, logger: logger,
            peerAccess: ClientServer.PeerAccess(
                nodeID: nodeID, authenticator: authenticator, handler: replicaService, attestations: attestations,
                clock: clock),
            tls: tls, isMemberAddress: MemberHosts(nodeID: nodeID, gossip: gossip).contains)
        clientServerOnceBuilt.withLock { $0 = clientServer }
        self.clientServer = clientServer
        if let certificate, let tls {
            self.certificateReloader = CertificateReloader(
                config: config, nodeID: nodeID, site: gossipConfiguration.site, loaded: certificate, tls: tls,
                attestations: attestations, logger: logger,
                revocationsChanged: { revoked in
                    links.closeAll()
                    clientServer.closePeers { revoked.contains($0) }
                },
                certificateChanged: {
                    links.closeAll()
                    clientServer.closePeers { _ in true }
                })
        } else {
            self.certificateReloader = nil
        }
    }

    /// The services in start order; shutdown runs in reverse: gossip first (the node
    /// announces its departure), then the client endpoint, the work requests left behind
    /// (read repairs, hints), the background workers, the peer links, the store last.
    public var services: [any Service] {
        [StoreService(store: store, logger: logger), links] + cluster.workers + [background, clientServer, gossip]
            + (certificateReloader.map { [$0] } ?? []) + (clockOffsetWatcher.map { [$0] } ?? [])
            + (addressMapWatcher.map { [$0] } ?? [])
    }

    /// The node id lives in `DIR/node-id`: chosen once (from the configuration or at
    /// random) and kept, so a restart is the same node. A configured id that disagrees
    /// with the stored one is refused: a data directory belongs to one node.
    static func loadOrCreateNodeID(dir: String, configured: String) throws(AgadirError) -> String {
        let path = (dir as NSString).appendingPathComponent("node-id")
        if let data = FileManager.default.contents(atPath: path) {
            let stored = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !stored.isEmpty else { throw AgadirError(.ioError, "\(path) is empty; restore it or remove it") }
            if !configured.isEmpty, configured != stored {
                throw AgadirError(
                    .invalidArgument,
                    "data directory \(dir) belongs to node '\(stored)', not '\(configured)'; use the right --data-dir or node id"
                )
            }
            return stored
        }
        var id = configured
        if id.isEmpty {
            var rng = SystemRandomNumberGenerator()
            id = "node-" + Hex.encode((0..<6).map { _ in UInt8.random(in: 0...255, using: &rng) })
        }
        guard id.utf8.count <= 128, id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." })
        else {
            throw AgadirError(.invalidArgument, "node id '\(id)' must be 1-128 letters, digits, '-', '_' or '.'")
        }
        try AtomicFile.save(Array((id + "\n").utf8), to: path)
        return id
    }
}

/// The hosts of the other cluster members (their client and peer addresses, from gossip),
/// for the connection admission of every accepted socket: computed at most once a second,
/// not per connection.
final class MemberHosts: Sendable {
    let nodeID: String
    let gossip: GossipService
    private let cache = Mutex<(hosts: Set<String>, at: ContinuousClock.Instant)?>(nil)

    init(nodeID: String, gossip: GossipService) {
        self.nodeID = nodeID
        self.gossip = gossip
    }

    @Sendable func contains(_ address: String) -> Bool {
        let now = ContinuousClock.now
        if let cached = cache.withLock({ $0 }), now - cached.at < .seconds(1) { return cached.hosts.contains(address) }
        var hosts = Set<String>()
        for m in gossip.memberInfos() where m.nodeID != nodeID {
            for endpoint in [m.clientAddress, m.peerAddress] {
                if let host = try? Endpoint.parse(endpoint).host { hosts.insert(host) }
            }
        }
        cache.withLock { $0 = (hosts, now) }
        return hosts.contains(address)
    }
}
