import AgadirCore
import AgadirWire
import Foundation

/// Everything `agadird` can be told, with embedded defaults: with no file, no flag and
/// no environment variable, a node runs as a one-node cluster with its data under
/// `./agadir-data` and its client endpoint on 127.0.0.1:7480.
///
/// Precedence: command-line flags > environment (`AGADIR_*`) > config file > defaults.
/// `agadird --print-config` prints the resolved value as JSON (the config-file format).
public struct NodeConfiguration: Sendable, Codable, Equatable {
    /// Data directory (chunk segments, metadata database, node identity). Default `./agadir-data`.
    public var dataDir: String = "agadir-data"
    /// Client endpoint, `HOST:PORT`. Default `127.0.0.1:7480`.
    public var listen: String = "127.0.0.1:7480"
    /// Node id; empty means "generate once and keep it in the data directory".
    public var nodeID: String = ""
    /// Log level: trace, debug, info, notice, warning, error, critical. Default info.
    public var logLevel: String = "info"
    /// Objects of at most this many bytes are stored inside their manifest. Default 4096.
    public var inlineThresholdBytes: Int = 4096
    /// FastCDC minimum, average and maximum chunk sizes in bytes. Defaults 256 KiB, 1 MiB, 4 MiB.
    public var chunkMinBytes: Int = 256 * 1024
    public var chunkAvgBytes: Int = 1024 * 1024
    public var chunkMaxBytes: Int = 4 * 1024 * 1024
    /// Codec for new chunks: lz4, zlib or raw. Default lz4.
    public var codec: String = "lz4"
    /// Chunks of one PUT being hashed, compressed and written at once. Default 4.
    public var putChunksInFlight: Int = 4
    /// Chunks of one GET read ahead of the one being sent. Default 2.
    public var getChunksReadAhead: Int = 2
    /// Largest accepted object, bytes. Default 1 TiB.
    public var maxObjectBytes: UInt64 = 1 << 40
    /// Body bytes buffered per streaming request before the connection stops reading. Default 8 MiB.
    public var requestBodyBufferBytes: Int = 8 * 1024 * 1024
    /// Largest DATA frame payload this node sends, bytes. Default 1 MiB.
    public var dataFrameBytes: Int = 1024 * 1024
    /// NIO event-loop threads; 0 means one per core. Default 0.
    public var eventLoopThreads: Int = 0
    /// Most concurrent client connections. Default 1024.
    public var maxConnections: Int = 1024
    /// A connection with no traffic either way for this long is closed. Default 300 s.
    public var idleTimeoutSeconds: Int = 300
    /// A streaming request body that stalls this long fails with REQUEST_TIMEOUT. Default 60 s.
    public var requestTimeoutSeconds: Int = 60
    /// On SIGTERM, in-flight requests get this long to finish before connections close. Default 10 s.
    public var shutdownGraceSeconds: Int = 10
    /// Wire limits enforced on every frame received.
    public var maxHeaderBytes: Int = WireLimits.default.maxHeaderBytes
    public var maxFieldCount: Int = WireLimits.default.maxFieldCount
    public var maxPayloadBytes: Int = WireLimits.default.maxPayloadBytes
    public var maxInFlightRequests: Int = WireLimits.default.maxInFlightRequests

    public init() {}

    public var wireLimits: WireLimits {
        var l = WireLimits()
        l.maxHeaderBytes = maxHeaderBytes
        l.maxFieldCount = maxFieldCount
        l.maxPayloadBytes = maxPayloadBytes
        l.maxInFlightRequests = maxInFlightRequests
        return l
    }

    public var chunker: ChunkerSettings {
        ChunkerSettings(minSize: chunkMinBytes, avgSize: chunkAvgBytes, maxSize: chunkMaxBytes)
    }

    /// Checks every value once, at start-up; the error names the setting and the fix.
    public func validate() throws(AgadirError) -> (codec: Codec, host: String, port: Int) {
        func bad(_ what: String) -> AgadirError { AgadirError(.invalidArgument, "configuration: \(what)") }
        guard let codec = Codec(name: codec) else { throw bad("codec '\(codec)' is unknown; use lz4, zlib or raw") }
        do {
            try chunker.validate()
        } catch {
            // Name the settings as the config file spells them.
            var message = error.message
            for (name, setting) in [("minSize", "chunkMinBytes"), ("avgSize", "chunkAvgBytes"), ("maxSize", "chunkMaxBytes")] {
                message = message.replacingOccurrences(of: name, with: setting)
            }
            throw bad(message)
        }
        guard (0...ManifestCodec.maxInlineBytes).contains(inlineThresholdBytes) else {
            throw bad("inlineThresholdBytes must be 0...\(ManifestCodec.maxInlineBytes)")
        }
        guard (1...64).contains(putChunksInFlight) else { throw bad("putChunksInFlight must be 1...64") }
        guard (0...16).contains(getChunksReadAhead) else { throw bad("getChunksReadAhead must be 0...16") }
        guard dataFrameBytes >= 4096, dataFrameBytes <= maxPayloadBytes else {
            throw bad("dataFrameBytes must be between 4096 and maxPayloadBytes (\(maxPayloadBytes))")
        }
        guard requestBodyBufferBytes > maxPayloadBytes else {
            throw bad("requestBodyBufferBytes must be larger than maxPayloadBytes (\(maxPayloadBytes))")
        }
        guard (0...256).contains(eventLoopThreads) else { throw bad("eventLoopThreads must be 0...256 (0: one per core)") }
        guard maxConnections >= 1, maxInFlightRequests >= 1 else { throw bad("connection limits must be positive") }
        guard idleTimeoutSeconds >= 1, requestTimeoutSeconds >= 1, shutdownGraceSeconds >= 0 else {
            throw bad("timeouts must be positive")
        }
        let (host, port) = try Self.parseEndpoint(listen)
        return (codec, host, port)
    }

    /// Parses `HOST:PORT`, `[IPv6]:PORT` (port 0 allowed: the kernel picks one).
    public static func parseEndpoint(_ s: String) throws(AgadirError) -> (String, Int) {
        try Endpoint.parse(s, allowPortZero: true)
    }

    /// Reads a JSON config file; unknown keys are an error so typos do not pass silently.
    public static func load(file: String) throws(AgadirError) -> NodeConfiguration {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw AgadirError(.invalidArgument, "cannot read config file \(file)")
        }
        do {
            // Settings the file leaves out keep their defaults: overlay the file on them.
            guard var merged = try JSONSerialization.jsonObject(with: JSONEncoder().encode(NodeConfiguration())) as? [String: Any],
                let given = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            else {
                throw AgadirError(.invalidArgument, "config file \(file) must hold one JSON object")
            }
            let unknown = Set(given.keys).subtracting(merged.keys)
            if !unknown.isEmpty {
                throw AgadirError(.invalidArgument, "config file \(file): unknown settings \(unknown.sorted())")
            }
            merged.merge(given) { _, new in new }
            return try JSONDecoder().decode(NodeConfiguration.self, from: JSONSerialization.data(withJSONObject: merged))
        } catch let e as AgadirError {
            throw e
        } catch {
            throw AgadirError(.invalidArgument, "config file \(file) is not valid: \(error)")
        }
    }

    /// Applies `AGADIR_DATA_DIR`, `AGADIR_LISTEN`, `AGADIR_NODE_ID`, `AGADIR_LOG_LEVEL`.
    public mutating func applyEnvironment(_ env: [String: String]) {
        if let v = env["AGADIR_DATA_DIR"], !v.isEmpty { dataDir = v }
        if let v = env["AGADIR_LISTEN"], !v.isEmpty { listen = v }
        if let v = env["AGADIR_NODE_ID"], !v.isEmpty { nodeID = v }
        if let v = env["AGADIR_LOG_LEVEL"], !v.isEmpty { logLevel = v }
    }

    public func json() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? enc.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
