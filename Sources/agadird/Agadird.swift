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
            client endpoint 127.0.0.1:7480. Settings come from --config FILE (JSON, as printed by \
            --print-config), then AGADIR_DATA_DIR / AGADIR_LISTEN / AGADIR_NODE_ID / AGADIR_LOG_LEVEL, \
            then these flags. SIGTERM or SIGINT shuts down gracefully.
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

    @Option(name: .long, help: "Write the bound client address to this file once listening (for scripts and tests).")
    var addressFile: String?

    @Flag(name: .long, help: "Print the resolved configuration as JSON and exit.")
    var printConfig = false

    func resolve() throws -> NodeConfiguration {
        var c = try config.map { path throws(AgadirError) in try NodeConfiguration.load(file: path) } ?? NodeConfiguration()
        c.applyEnvironment(ProcessInfo.processInfo.environment)
        if let dataDir { c.dataDir = dataDir }
        if let listen { c.listen = listen }
        if let nodeID { c.nodeID = nodeID }
        if let logLevel { c.logLevel = logLevel }
        if let codec { c.codec = codec }
        _ = try c.validate()
        guard Logger.Level(rawValue: c.logLevel) != nil else {
            throw AgadirError(.invalidArgument, "log level '\(c.logLevel)' is unknown; use trace, debug, info, notice, warning, error or critical")
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
        let server = runtime.clientServer
        async let announce: Void = {
            guard let address = await server.localAddress() else { return }
            let text = "\(address.ipAddress ?? "127.0.0.1"):\(address.port ?? 0)"
            if let addressFile {
                let tmp = addressFile + ".tmp"
                _ = FileManager.default.createFile(atPath: tmp, contents: Data((text + "\n").utf8))
                _ = rename(tmp, addressFile)
            }
            logger.notice("ready", metadata: ["client": "\(text)"])
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
}
