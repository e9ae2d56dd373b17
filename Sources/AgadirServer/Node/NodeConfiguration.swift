import AgadirCore
import AgadirGossip
import AgadirMembership
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
    /// Most connections from one address (cluster members' addresses excepted). Default 256.
    public var maxConnectionsPerAddress: Int = 256
    /// Connections from cluster members' addresses counted apart from `maxConnections`, so
    /// replication keeps working when clients hold every slot. Default 256.
    public var peerConnectionsReserved: Int = 256
    /// A connection on which no whole frame was received or sent for this long is closed
    /// (single bytes do not count). Default 300 s.
    public var idleTimeoutSeconds: Int = 300
    /// A streaming request body that stalls this long fails with REQUEST_TIMEOUT. Default 60 s.
    public var requestTimeoutSeconds: Int = 60
    /// A connection whose answers cannot be written for this long (the client does not read
    /// them and the socket's buffers are full) is closed. Default 60 s.
    public var writeStallSeconds: Int = 60
    /// Decoded bytes the answers of one connection may hold before they are sent (a GET
    /// waits for its share before reading a chunk). At least `chunkMaxBytes`. Default 16 MiB.
    public var connectionResponseBufferBytes: Int = 16 << 20
    /// The same for all connections together. Default 256 MiB.
    public var responseBufferBytes: Int = 256 << 20
    /// A signed request is refused when its SIGNED_AT is further than this from the node's
    /// clock (and its nonce is remembered this long against replays). Default 900 s, as AWS.
    public var requestSkewSeconds: Int = 900
    /// A peer whose clock (the hybrid logical clock every peer request and answer carries) is
    /// further ahead of this node's wall clock than this is refused (REQUEST_TIME_SKEWED): its
    /// versions would win every last-writer-wins race (docs/consistency.md). Default 5000 ms.
    public var maxClockSkewMillis: Int = 5000
    /// FOR TESTS ONLY: added to this node's wall clock for every version it stamps, to try
    /// clock skew on one machine (`agadir-lab skew`). Default 0; never set it in production.
    public var testingClockOffsetMillis: Int = 0
    /// FOR TESTS ONLY: a file whose integer (ms) replaces `testingClockOffsetMillis` while
    /// the node runs, read twice a second (`agadir-lab skew`). Default none.
    public var testingClockOffsetFile: String = ""
    /// FOR TESTS ONLY: a file of `FROM TO` address pairs (`AddressMap`): the node dials TO
    /// wherever it would dial FROM (gossip and peer links), read twice a second. The lab's
    /// relays (`agadir-lab partition`, `link`) sit on every inter-node path this way.
    /// Default none.
    public var testingAddressMapFile: String = ""
    /// On SIGTERM, in-flight requests get this long to finish before connections close. Default 10 s.
    public var shutdownGraceSeconds: Int = 10
    /// Wire limits enforced on every frame received.
    public var maxHeaderBytes: Int = WireLimits.default.maxHeaderBytes
    public var maxFieldCount: Int = WireLimits.default.maxFieldCount
    public var maxPayloadBytes: Int = WireLimits.default.maxPayloadBytes
    public var maxInFlightRequests: Int = WireLimits.default.maxInFlightRequests

    // MARK: Cluster membership (gossip)

    /// Site (data centre) this node belongs to: letters, digits, '-', '_', '.'. Default `default`.
    public var site: String = "default"
    /// Free-form labels gossiped with this node's record (`rack=r1`). Default none.
    public var labels: [String: String] = [:]
    /// Peer addresses (`HOST:PORT`) of nodes to join through; one live seed suffices.
    /// Default none: the node waits for others to join it.
    public var seeds: [String] = []
    /// Gossip endpoint, UDP and TCP on the same port. Default `127.0.0.1:7946` (port 0 picks a free port).
    public var peerListen: String = "127.0.0.1:7946"
    /// Client endpoint announced to the cluster, `HOST:PORT`. Default empty: the bound
    /// client address (refused when that is 0.0.0.0 or ::, which nobody can connect to).
    public var advertiseClient: String = ""
    /// Peer endpoint announced to the cluster, `HOST:PORT`. Default empty: the bound peer
    /// address (same rule as `advertiseClient`).
    public var advertisePeer: String = ""
    /// Nodes gossip only with nodes of the same cluster name and secret. Default `agadir`.
    public var clusterName: String = "agadir"
    /// File holding the cluster secret (first line). Default empty: `<dataDir>/cluster.secret`,
    /// created once with 32 random bytes (hex) when missing.
    public var clusterSecretFile: String = ""
    /// Files of further secrets accepted from peers (not used to send), for rotation. Default none.
    public var clusterSecretsAccepted: [String] = []
    /// This node's certificate, its private key and the cluster CA's certificate (PEM files,
    /// `agadir admin cert issue`): all three or none. With them the node starts only if the
    /// CA signed the certificate, it is valid, and it attests this node's id and site; its
    /// client port then speaks TLS 1.3 only, its peer links are mutual TLS, and residency
    /// follows what the certificates attest (docs/security.md). Default none.
    public var certFile: String = ""
    public var keyFile: String = ""
    public var caFile: String = ""
    /// The cluster's revocation list (`agadir admin cert revoke` writes it, signed by the
    /// CA): peers whose certificate serial it names are refused. Default none.
    public var revocationFile: String = ""
    /// How often the certificate, key, CA and revocation files are read again; a change that
    /// passes the start-up checks is adopted without a restart. Default 60 s.
    public var certReloadSeconds: Int = 60
    /// Failure-detector timing: `lan` (probe every 1 s) or `wan` (every 5 s). Default `lan`.
    public var gossipPreset: String = "lan"
    /// Every gossip duration of the preset (probe interval and timeouts, gossip and
    /// push-pull intervals, join retry, leave propagation) times this / 100. Default 100;
    /// 10 makes a local test cluster ten times faster. Range 1...1000.
    public var gossipTimeScalePercent: Int = 100

    // MARK: Maintenance (docs/rebalance.md, docs/operations.md)

    /// Delete markers older than this are purged, once every replica of their partition
    /// holds them. Default 86400 (one day).
    public var tombstoneGraceSeconds: Int = 86_400
    /// A chunk no live object version refers to is reclaimed once its last reference is
    /// this old (a PUT taking longer could lose its chunks). Default 3600.
    public var garbageGraceSeconds: Int = 3600
    /// Seconds between anti-entropy passes over this node's partitions. Default 3600.
    public var repairIntervalSeconds: Int = 3600
    /// Seconds between garbage collection passes. Default 600.
    public var garbageIntervalSeconds: Int = 600
    /// Bytes per second the scrub re-reads; 0 stops the scheduled scrub. Default 20 MB/s.
    public var scrubBytesPerSecond: Int = 20_000_000
    /// Seconds between the starts of two scheduled scrub passes. Default 604800 (a week).
    public var scrubIntervalSeconds: Int = 604_800
    /// A chunk segment file is closed and a new one started at this size; space of deleted
    /// chunks comes back when a closed segment is compacted. Default 256 MiB.
    public var segmentMaxBytes: Int = 256 * 1024 * 1024

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
            for (name, setting) in [
                ("minSize", "chunkMinBytes"), ("avgSize", "chunkAvgBytes"), ("maxSize", "chunkMaxBytes"),
            ] {
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
        guard (0...256).contains(eventLoopThreads) else {
            throw bad("eventLoopThreads must be 0...256 (0: one per core)")
        }
        guard maxConnections >= 1, maxInFlightRequests >= 1, maxConnectionsPerAddress >= 1, peerConnectionsReserved >= 0
        else { throw bad("connection limits must be positive") }
        guard idleTimeoutSeconds >= 1, requestTimeoutSeconds >= 1, shutdownGraceSeconds >= 0 else {
            throw bad("timeouts must be positive")
        }
        guard (1...3600).contains(requestSkewSeconds) else { throw bad("requestSkewSeconds must be 1 to 3600") }
        guard (100...3_600_000).contains(maxClockSkewMillis) else {
            throw bad("maxClockSkewMillis must be 100 to 3600000")
        }
        guard abs(testingClockOffsetMillis) <= 86_400_000 else {
            throw bad("testingClockOffsetMillis must be within a day either way")
        }
        guard writeStallSeconds >= 1 else { throw bad("writeStallSeconds must be at least 1") }
        guard connectionResponseBufferBytes >= chunkMaxBytes, responseBufferBytes >= connectionResponseBufferBytes
        else {
            throw bad(
                "connectionResponseBufferBytes must be at least chunkMaxBytes (\(chunkMaxBytes)), and responseBufferBytes at least connectionResponseBufferBytes"
            )
        }
        for (name, value) in [
            ("tombstoneGraceSeconds", tombstoneGraceSeconds), ("garbageGraceSeconds", garbageGraceSeconds),
            ("repairIntervalSeconds", repairIntervalSeconds), ("garbageIntervalSeconds", garbageIntervalSeconds),
            ("scrubIntervalSeconds", scrubIntervalSeconds),
        ] where !(1...(10 * 365 * 86_400)).contains(value) {
            throw bad("\(name) must be 1 second to 10 years, not \(value)")
        }
        guard scrubBytesPerSecond >= 0 else { throw bad("scrubBytesPerSecond must be 0 (off) or more") }
        guard (1 << 20...1 << 34).contains(segmentMaxBytes) else {
            throw bad("segmentMaxBytes must be 1 MiB to 16 GiB")
        }
        let (host, port) = try Self.parseEndpoint(listen)
        _ = try validateGossip()
        return (codec, host, port)
    }

    /// The gossip settings, checked: every message names the setting and the fix.
    public func validateGossip() throws(AgadirError) -> GossipConfiguration {
        func bad(_ what: String) -> AgadirError { AgadirError(.invalidArgument, "configuration: \(what)") }
        func isName(_ s: String, max: Int = 64) -> Bool {
            (1...max).contains(s.utf8.count)
                && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        }
        // Sizes as the gossip codec bounds them (GossipLimits), so the record is never clipped.
        guard isName(site, max: GossipLimits.maxSiteBytes) else {
            throw bad("site '\(site)' must be 1-\(GossipLimits.maxSiteBytes) letters, digits, '-', '_' or '.'")
        }
        guard isName(clusterName) else {
            throw bad("clusterName '\(clusterName)' must be 1-64 letters, digits, '-', '_' or '.'")
        }
        guard labels.count <= GossipLimits.maxLabels else {
            throw bad("at most \(GossipLimits.maxLabels) labels, got \(labels.count)")
        }
        for (key, value) in labels {
            guard isName(key, max: GossipLimits.maxLabelKeyBytes), value.utf8.count <= GossipLimits.maxLabelValueBytes,
                !value.contains(where: { $0 == "," || $0.isNewline })
            else {
                throw bad(
                    "label '\(key)=\(value)': keys are 1-\(GossipLimits.maxLabelKeyBytes) letters, digits, "
                        + "'-', '_' or '.'; values at most \(GossipLimits.maxLabelValueBytes) bytes without ','")
            }
        }
        guard seeds.count <= 64 else { throw bad("at most 64 seeds, got \(seeds.count)") }
        for seed in seeds {
            do { _ = try Endpoint.parse(seed) } catch { throw bad("seed: \(error.message)") }
        }
        let (peerHost, peerPort) = try Self.parseEndpoint(peerListen)
        let advertised = [("advertiseClient", advertiseClient), ("advertisePeer", advertisePeer)]
        for (name, value) in advertised where !value.isEmpty {
            let host: String
            do { host = try Endpoint.parse(value).host } catch { throw bad("\(name): \(error.message)") }
            guard !Self.isUnspecified(host) else {
                throw bad(
                    "\(name) '\(value)' is a wildcard address other nodes cannot connect to; "
                        + "give this node's reachable HOST:PORT")
            }
        }
        let bindings = [
            ("listen", listen, "advertiseClient", advertiseClient),
            ("peerListen", peerListen, "advertisePeer", advertisePeer),
        ]
        for (name, value, flag, bound) in bindings where bound.isEmpty {
            if let host = try? Self.parseEndpoint(value).0, Self.isUnspecified(host) {
                throw bad(
                    "\(name) is \(value), which other nodes cannot connect to; "
                        + "set \(flag) to this node's reachable HOST:PORT")
            }
        }
        var settings: MembershipSettings
        switch gossipPreset {
        case "lan": settings = .lan
        case "wan": settings = .wan
        default: throw bad("gossipPreset '\(gossipPreset)' is unknown; use lan or wan")
        }
        guard (1...1000).contains(gossipTimeScalePercent) else { throw bad("gossipTimeScalePercent must be 1...1000") }
        settings = settings.scaled(by: Double(gossipTimeScalePercent) / 100)
        if let problem = settings.validate() { throw bad("gossip settings: \(problem)") }
        return GossipConfiguration(
            settings: settings, peerHost: peerHost, peerPort: peerPort, seeds: seeds, site: site, labels: labels,
            advertiseClient: advertiseClient, advertisePeer: advertisePeer, clusterName: clusterName)
    }

    /// True for 0.0.0.0 and :: (any spelling), which a node can bind but nobody can reach.
    static func isUnspecified(_ host: String) -> Bool {
        if host == "0.0.0.0" || host == "::" { return true }
        var v6 = in6_addr()
        return inet_pton(AF_INET6, host, &v6) == 1 && withUnsafeBytes(of: &v6) { $0.allSatisfy { $0 == 0 } }
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
            guard
                var merged = try JSONSerialization.jsonObject(with: JSONEncoder().encode(NodeConfiguration()))
                    as? [String: Any],
                let given = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            else {
                throw AgadirError(.invalidArgument, "config file \(file) must hold one JSON object")
            }
            let unknown = Set(given.keys).subtracting(merged.keys)
            if !unknown.isEmpty {
                throw AgadirError(.invalidArgument, "config file \(file): unknown settings \(unknown.sorted())")
            }
            merged.merge(given) { _, new in new }
            return try JSONDecoder().decode(
                NodeConfiguration.self, from: JSONSerialization.data(withJSONObject: merged))
        } catch let e as AgadirError {
            throw e
        } catch {
            throw AgadirError(.invalidArgument, "config file \(file) is not valid: \(error)")
        }
    }

    /// Applies `AGADIR_DATA_DIR`, `AGADIR_LISTEN`, `AGADIR_NODE_ID`, `AGADIR_LOG_LEVEL`,
    /// `AGADIR_SITE`, `AGADIR_LABELS` (`K=V,K=V`), `AGADIR_SEEDS` (`HOST:PORT,HOST:PORT`),
    /// `AGADIR_PEER_LISTEN`, `AGADIR_ADVERTISE_CLIENT`, `AGADIR_ADVERTISE_PEER`,
    /// `AGADIR_CLUSTER_NAME`, `AGADIR_CLUSTER_SECRET_FILE`, `AGADIR_GOSSIP_PRESET`.
    public mutating func applyEnvironment(_ env: [String: String]) throws(AgadirError) {
        if let v = env["AGADIR_DATA_DIR"], !v.isEmpty { dataDir = v }
        if let v = env["AGADIR_LISTEN"], !v.isEmpty { listen = v }
        if let v = env["AGADIR_NODE_ID"], !v.isEmpty { nodeID = v }
        if let v = env["AGADIR_LOG_LEVEL"], !v.isEmpty { logLevel = v }
        if let v = env["AGADIR_SITE"], !v.isEmpty { site = v }
        if let v = env["AGADIR_LABELS"], !v.isEmpty {
            labels = [:]
            for pair in Self.splitList(v) { try Self.addLabel(pair, to: &labels) }
        }
        if let v = env["AGADIR_SEEDS"], !v.isEmpty { seeds = Self.splitList(v) }
        if let v = env["AGADIR_PEER_LISTEN"], !v.isEmpty { peerListen = v }
        if let v = env["AGADIR_ADVERTISE_CLIENT"], !v.isEmpty { advertiseClient = v }
        if let v = env["AGADIR_ADVERTISE_PEER"], !v.isEmpty { advertisePeer = v }
        if let v = env["AGADIR_CLUSTER_NAME"], !v.isEmpty { clusterName = v }
        if let v = env["AGADIR_CLUSTER_SECRET_FILE"], !v.isEmpty { clusterSecretFile = v }
        if let v = env["AGADIR_GOSSIP_PRESET"], !v.isEmpty { gossipPreset = v }
    }

    /// `a,b, c` -> `["a", "b", "c"]` (empty items dropped).
    public static func splitList(_ s: String) -> [String] {
        s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Adds `KEY=VALUE` to `labels`.
    public static func addLabel(_ pair: String, to labels: inout [String: String]) throws(AgadirError) {
        guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
            throw AgadirError(.invalidArgument, "label '\(pair)' must be KEY=VALUE, e.g. rack=r1")
        }
        labels[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
    }

    public func json() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? enc.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
