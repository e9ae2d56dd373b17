import AgadirCore
import AgadirServer
import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

@main
struct Agadird: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agadird",
        abstract: "The Agadir storage node.",
        discussion: """
            With no options it runs a one-node cluster with embedded defaults: data in ./agadir-data, \
            client endpoint 127.0.0.1:7480, gossip on 127.0.0.1:7946 (UDP and TCP). Settings come from \
            --config FILE (JSON, as printed by --print-config), then the AGADIR_* environment variables \
            (docs/operations.md), then these flags. SIGTERM or SIGINT shuts down gracefully: the node \
            announces its departure to the cluster, finishes requests in flight, closes the store.
            """)

    @Option(name: .long, help: "JSON configuration file.")
    var config: String?

    @Option(name: .long, help: "Data directory (default ./agadir-data).")
    var dataDir: String?

    @Option(name: .long, help: "Client endpoint HOST:PORT (default 127.0.0.1:7480; port 0 picks a free port).")
    var listen: String?

    @Option(name: .long, help: "Node id (default: generated once, kept in the data directory).")
    var nodeID: String?

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    @Option(name: .long, help: "Codec for new chunks: lz4, zlib or raw.")
    var codec: String?

    @Option(name: .long, help: "Site (data centre) of this node (default 'default').")
    var site: String?

    @Option(name: .long, help: "A label KEY=VALUE gossiped with this node's record (repeatable).")
    var label: [String] = []

    @Option(name: .long, help: "Peer addresses to join through: HOST:PORT,HOST:PORT.")
    var seeds: String?

    @Option(
        name: .long, help: "Gossip endpoint HOST:PORT, UDP and TCP (default 127.0.0.1:7946; port 0 picks a free port).")
    var peerListen: String?

    @Option(name: .long, help: "Client endpoint announced to the cluster (default: the bound one).")
    var advertiseClient: String?

    @Option(name: .long, help: "Peer endpoint announced to the cluster (default: the bound one).")
    var advertisePeer: String?

    @Option(name: .long, help: "Cluster name (default 'agadir').")
    var clusterName: String?

    @Option(name: .long, help: "Cluster secret file (default DATA/cluster.secret, created when missing).")
    var clusterSecretFile: String?

    @Option(
        name: .long, help: "This node's certificate (PEM, `agadir admin cert issue`); with --key-file and --ca-file.")
    var certFile: String?

    @Option(name: .long, help: "This node's private key (PEM).")
    var keyFile: String?

    @Option(name: .long, help: "The cluster CA's certificate (PEM, ca.crt).")
    var caFile: String?

    @Option(name: .long, help: "The cluster's revocation list (`agadir admin cert revoke`).")
    var revocationFile: String?

    @Option(name: .long, help: "A peer clock further ahead than this many ms is refused (default 5000).")
    var maxClockSkewMs: Int?
    @Option(name: .long, help: "FOR TESTS ONLY: ms added to this node's clock for the versions it stamps (default 0).")
    var testingClockOffsetMs: Int?
    @Option(name: .long, help: "FOR TESTS ONLY: a file whose integer (ms) offsets this node's clock while it runs.")
    var testingClockOffsetFile: String?
    @Option(
        name: .long,
        help: "FOR TESTS ONLY: a file of `FROM TO` address pairs this node dials through (the lab's relays).")
    var testingAddressMapFile: String?
    @Option(name: .long, help: "Seconds between reads of the certificate files (default 60).")
    var certReloadSeconds: Int?

    @Option(name: .long, help: "Gossip timing: lan or wan (default lan).")
    var gossipPreset: String?

    @Option(name: .long, help: "Write the bound client address to this file once listening (for scripts and tests).")
    var addressFile: String?

    @Option(
        name: .long,
        help: """
            Once the client and peer endpoints are bound, write {"nodeID", "client", "peer", "pid"} (JSON) to this file.
            """)
    var readyFile: String?

    @Option(name: .long, help: "Seconds before a delete marker held by every replica is purged (default 86400).")
    var tombstoneGrace: Int?

    @Option(name: .long, help: "Seconds before a chunk no object refers to any more is reclaimed (default 3600).")
    var garbageGrace: Int?

    @Option(name: .long, help: "Seconds between anti-entropy passes (default 3600).")
    var repairInterval: Int?

    @Option(name: .long, help: "Seconds between garbage collection passes (default 600).")
    var garbageInterval: Int?

    @Option(name: .long, help: "Bytes per second the scrub re-reads, 0 for no scheduled scrub (default 20000000).")
    var scrubRate: Int?

    @Option(name: .long, help: "Seconds between scheduled scrub passes (default 604800).")
    var scrubInterval: Int?

    @Option(name: .long, help: "Size at which a chunk segment file is closed, bytes (default 268435456).")
    var segmentMaxBytes: Int?

    @Flag(name: .long, help: "Print the resolved configuration as JSON and exit.")
    var printConfig = false

    func resolve() throws -> NodeConfiguration {
        var c =
            try config.map { path throws(AgadirError) in try NodeConfiguration.load(file: path) } ?? NodeConfiguration()
        try c.applyEnvironment(ProcessInfo.processInfo.environment)
        if let dataDir { c.dataDir = dataDir }
        if let listen { c.listen = listen }
        if let nodeID { c.nodeID = nodeID }
        if let logLevel { c.logLevel = logLevel }
        if let codec { c.codec = codec }
        if let site { c.site = site }
        if !label.isEmpty {
            c.labels = [:]
            for pair in label { try NodeConfiguration.addLabel(pair, to: &c.labels) }
        }
        if let seeds { c.seeds = NodeConfiguration.splitList(seeds) }
        if let peerListen { c.peerListen = peerListen }
        if let advertiseClient { c.advertiseClient = advertiseClient }
        if let advertisePeer { c.advertisePeer = advertisePeer }
        if let clusterName { c.clusterName = clusterName }
        if let clusterSecretFile { c.clusterSecretFile = clusterSecretFile }
        if let certFile { c.certFile = certFile }
        if let keyFile { c.keyFile = keyFile }
        if let caFile { c.caFile = caFile }
        if let revocationFile { c.revocationFile = revocationFile }
        if let certReloadSeconds { c.certReloadSeconds = certReloadSeconds }
        if let maxClockSkewMs { c.maxClockSkewMillis = maxClockSkewMs }
        if let testingClockOffsetMs { c.testingClockOffsetMillis = testingClockOffsetMs }
        if let testingClockOffsetFile { c.testingClockOffsetFile = testingClockOffsetFile }
        if let testingAddressMapFile { c.testingAddressMapFile = testingAddressMapFile }
        if let gossipPreset { c.gossipPreset = gossipPreset }
        if let tombstoneGrace { c.tombstoneGraceSeconds = tombstoneGrace }
        if let garbageGrace { c.garbageGraceSeconds = garbageGrace }
        if let repairInterval { c.repairIntervalSeconds = repairInterval }
        if let garbageInterval { c.garbageIntervalSeconds = garbageInterval }
        if let scrubRate { c.scrubBytesPerSecond = scrubRate }
        if let scrubInterval { c.scrubIntervalSeconds = scrubInterval }
        if let segmentMaxBytes { c.segmentMaxBytes = segmentMaxBytes }
        _ = try c.validate()
        guard Logger.Level(rawValue: c.logLevel) != nil else {
            throw AgadirError(
                .invalidArgument,
                "log level '\(c.logLevel)' is unknown; use trace, debug, info, notice, warning, error or critical")
        }
        return c
    }

    func run() async throws {
        let resolved: NodeConfiguration
        do {
            resolved = try resolve()
        } catch let e as AgadirError {
            FileHandle.standardError.write(Data("agadird: \(e.message)\n".utf8))
            throw ExitCode(2)
        }
        if printConfig {
            print(resolved.json())
            return
        }
        let level = Logger.Level(rawValue: resolved.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "agadird")
        let group = MultiThreadedEventLoopGroup(
            numberOfThreads: resolved.eventLoopThreads > 0 ? resolved.eventLoopThreads : NIOCore.System.coreCount)
        let runtime: NodeRuntime
        do {
            runtime = try NodeRuntime(config: resolved, group: group, logger: logger)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            try? await group.shutdownGracefully()
            throw ExitCode(1)
        }
        logger.info(
            "agadird starting",
            metadata: ["node": "\(runtime.nodeID)", "dataDir": "\(resolved.dataDir)", "listen": "\(resolved.listen)"])
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: runtime.services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        let addressFile = self.addressFile
        let readyFile = self.readyFile
        let server = runtime.clientServer
        let gossip = runtime.gossip
        let nodeID = runtime.nodeID
        async let announce: Void = {
            guard let address = await server.localAddress()?.hostAndPort else { return }
            if let addressFile { Self.writeAtomically(address + "\n", to: addressFile) }
            guard let gossipAddresses = await gossip.addresses() else { return }
            if let readyFile {
                let ready: [String: any Sendable] = [
                    "nodeID": nodeID, "client": gossipAddresses.client, "peer": gossipAddresses.peer,
                    "pid": Int(ProcessInfo.processInfo.processIdentifier),
                ]
                if let json = try? JSONSerialization.data(withJSONObject: ready, options: [.sortedKeys]) {
                    Self.writeAtomically(String(decoding: json, as: UTF8.self) + "\n", to: readyFile)
                }
            }
            logger.notice(
                "ready", metadata: ["client": "\(gossipAddresses.client)", "peer": "\(gossipAddresses.peer)"])
        }()
        do {
            try await serviceGroup.run()
        } catch {
            logger.critical("node stopped on error", metadata: ["error": "\(error)"])
            await runtime.store.close()
            _ = await announce
            try? await group.shutdownGracefully()
            throw ExitCode(1)
        }
        _ = await announce
        try? await group.shutdownGracefully()
        logger.info("agadird stopped")
    }

    /// Writes `PATH.tmp` then renames it over `PATH`, so a reader never sees half a file.
    static func writeAtomically(_ text: String, to path: String) {
        let tmp = path + ".tmp"
        _ = FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8))
        _ = rename(tmp, path)
    }
}
