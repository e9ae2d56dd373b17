import AgadirCore
import AgadirMembership
import AgadirServer
import Foundation
import Testing

@Suite("Node configuration")
struct NodeConfigurationTests {
    // MARK: Endpoints

    @Test("an IPv4 endpoint parses into host and port")
    func parseEndpoint_ipv4() throws {
        let (host, port) = try NodeConfiguration.parseEndpoint("10.1.2.3:7480")
        #expect(host == "10.1.2.3")
        #expect(port == 7480)
    }

    @Test("a bracketed IPv6 endpoint parses into the address without brackets and the port")
    func parseEndpoint_ipv6() throws {
        let (host, port) = try NodeConfiguration.parseEndpoint("[::1]:9000")
        #expect(host == "::1")
        #expect(port == 9000)
    }

    @Test("port 0 is accepted, so a test node can ask for any free port")
    func parseEndpoint_portZero() throws {
        #expect(try NodeConfiguration.parseEndpoint("127.0.0.1:0") == ("127.0.0.1", 0))
    }

    @Test(
        "an endpoint without a usable port is refused with INVALID_ARGUMENT naming the endpoint",
        arguments: ["127.0.0.1", "127.0.0.1:", ":7480", "host:http", "host:-1", "host:65536", "[::1]", "[::1]7480", ""])
    func parseEndpoint_refusesBadEndpoints(_ endpoint: String) async {
        let error = await agadirError { _ = try NodeConfiguration.parseEndpoint(endpoint) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("'\(endpoint)'") == true, "\(String(describing: error))")
    }

    // MARK: validate()

    @Test("the defaults validate and resolve to lz4 on 127.0.0.1:7480")
    func validate_defaults() throws {
        let (codec, host, port) = try NodeConfiguration().validate()
        #expect(codec == .lz4)
        #expect(host == "127.0.0.1")
        #expect(port == 7480)
    }

    @Test("an unknown codec is refused and the error names the codec setting and the choices")
    func validate_badCodec() async {
        var config = NodeConfiguration()
        config.codec = "zstd"
        let error = await agadirError { _ = try config.validate() }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("codec 'zstd'") == true, "\(String(describing: error))")
        #expect(error?.message.contains("lz4, zlib or raw") == true)
    }

    @Test(
        "chunk sizes out of order, too small or not a power of two are refused naming the chunk setting",
        arguments: [
            (64 * 1024, 64 * 1024, 256 * 1024, "chunkMinBytes"),  // min == avg
            (16 * 1024, 64 * 1024, 32 * 1024, "chunkMaxBytes"),  // max < avg
            (32, 64 * 1024, 256 * 1024, "chunkMinBytes"),  // below the hash window
            (16 * 1024, 60 * 1024, 256 * 1024, "chunkAvgBytes"),  // not a power of two
        ])
    func validate_badChunkSizes(min: Int, avg: Int, max: Int, setting: String) async {
        var config = NodeConfiguration()
        (config.chunkMinBytes, config.chunkAvgBytes, config.chunkMaxBytes) = (min, avg, max)
        let error = await agadirError { _ = try config.validate() }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(setting) == true, "\(String(describing: error))")
    }

    @Test(
        "dataFrameBytes below 4096 or above maxPayloadBytes is refused naming dataFrameBytes",
        arguments: [4095, 5 << 20])
    func validate_badDataFrameBytes(_ bytes: Int) async {
        var config = NodeConfiguration()
        config.dataFrameBytes = bytes
        let error = await agadirError { _ = try config.validate() }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("dataFrameBytes") == true, "\(String(describing: error))")
    }

    @Test("an unusable listen endpoint fails validation")
    func validate_badListen() async {
        var config = NodeConfiguration()
        config.listen = "localhost"
        #expect(await agadirError { _ = try config.validate() }?.code == .invalidArgument)
    }

    // MARK: Files, environment, JSON

    private func withConfigFile(_ text: String, _ body: (String) throws -> Void) throws {
        let dir = serverTempDirectory()
        defer { dir.cleanup() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let path = dir.path + "/agadird.json"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try body(path)
    }

    @Test("a config file that sets a few keys keeps the defaults of every key it leaves out")
    func load_partialFile_keepsDefaults() throws {
        try withConfigFile(#"{"listen": "0.0.0.0:9000", "codec": "zlib", "chunkAvgBytes": 2097152}"#) { path in
            let loaded = try NodeConfiguration.load(file: path)
            var expected = NodeConfiguration()
            expected.listen = "0.0.0.0:9000"
            expected.codec = "zlib"
            expected.chunkAvgBytes = 2 * 1024 * 1024
            #expect(loaded == expected)
        }
    }

    @Test("a config file with an unknown key is refused and the error names the key")
    func load_unknownKey_isRefused() throws {
        try withConfigFile(#"{"listen": "0.0.0.0:9000", "chunkAverageBytes": 1}"#) { path in
            do {
                _ = try NodeConfiguration.load(file: path)
                Issue.record("a config file with a typo was accepted")
            } catch let error as AgadirError {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains("chunkAverageBytes"), "\(error)")
            }
        }
    }

    @Test("a config file that is not a JSON object, or is missing, is refused with INVALID_ARGUMENT")
    func load_badFile_isRefused() async throws {
        try withConfigFile("[1, 2]") { path in
            #expect(throws: AgadirError.self) { _ = try NodeConfiguration.load(file: path) }
        }
        try withConfigFile(#"{"maxConnections": "many"}"#) { path in
            #expect(throws: AgadirError.self) { _ = try NodeConfiguration.load(file: path) }
        }
        let missing = await agadirError { _ = try NodeConfiguration.load(file: "/nonexistent/agadird.json") }
        #expect(missing?.code == .invalidArgument)
    }

    @Test("environment variables override file values, and empty variables are ignored")
    func applyEnvironment_overridesNonEmptyValues() throws {
        var config = NodeConfiguration()
        config.dataDir = "/from/file"
        config.listen = "10.0.0.1:7000"
        config.nodeID = "file-node"
        config.logLevel = "debug"
        try config.applyEnvironment([
            "AGADIR_DATA_DIR": "/from/env",
            "AGADIR_LISTEN": "",
            "AGADIR_NODE_ID": "env-node",
            "AGADIR_LOG_LEVEL": "warning",
            "AGADIR_CODEC": "raw",  // not an environment setting: ignored
        ])
        #expect(config.dataDir == "/from/env")
        #expect(config.listen == "10.0.0.1:7000")
        #expect(config.nodeID == "env-node")
        #expect(config.logLevel == "warning")
        #expect(config.codec == "lz4")
    }

    @Test("json() output, written as a config file, loads back to an equal configuration")
    func json_roundTripsThroughLoad() throws {
        var config = NodeConfiguration()
        config.listen = "[::1]:7481"
        config.codec = "raw"
        config.maxObjectBytes = 123_456_789
        config.shutdownGraceSeconds = 0
        try withConfigFile(config.json()) { path in
            let loaded = try NodeConfiguration.load(file: path)
            #expect(loaded == config)
        }
        let decoded = try JSONDecoder().decode(NodeConfiguration.self, from: Data(config.json().utf8))
        #expect(decoded == config)
    }
}

@Suite("Node configuration: gossip")
struct GossipConfigurationTests {
    @Test("the gossip defaults validate: site default, peer 127.0.0.1:7946, LAN timing, no seeds")
    func defaults() throws {
        let g = try NodeConfiguration().validateGossip()
        #expect(g.site == "default" && g.clusterName == "agadir" && g.seeds.isEmpty)
        #expect(g.peerHost == "127.0.0.1" && g.peerPort == 7946)
        #expect(g.settings == .lan)
    }

    @Test(
        "a wildcard address is refused as advertised address, and as bound address without an advertised one",
        arguments: [
            ("advertisePeer", "0.0.0.0:7946"), ("advertiseClient", "[::]:7480"), ("advertisePeer", "[0:0::0]:7946"),
            ("listen", "0.0.0.0:7480"), ("peerListen", "[::]:7946"),
        ])
    func wildcardAdvertised_isRefused(setting: String, value: String) async {
        var config = NodeConfiguration()
        switch setting {
        case "advertisePeer": config.advertisePeer = value
        case "advertiseClient": config.advertiseClient = value
        case "listen": config.listen = value
        default: config.peerListen = value
        }
        let error = await agadirError { _ = try config.validate() }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("advertise") == true, "\(String(describing: error))")
    }

    @Test("binding the wildcard is fine once reachable addresses are advertised")
    func wildcardWithAdvertised_isAccepted() throws {
        var config = NodeConfiguration()
        config.listen = "0.0.0.0:7480"
        config.peerListen = "0.0.0.0:7946"
        config.advertiseClient = "10.0.0.5:7480"
        config.advertisePeer = "10.0.0.5:7946"
        #expect(try config.validateGossip().peerHost == "0.0.0.0")
    }

    @Test("bad seeds, sites, labels and presets are refused naming the setting")
    func badValues_areRefused() async {
        var cases: [(NodeConfiguration, String)] = []
        var c = NodeConfiguration()
        c.seeds = ["10.0.0.1:7946", "nowhere"]
        cases.append((c, "seed"))
        c = NodeConfiguration()
        c.site = "bad site"
        cases.append((c, "site"))
        c = NodeConfiguration()
        c.labels = ["": "x"]
        cases.append((c, "label"))
        c = NodeConfiguration()
        c.gossipPreset = "metro"
        cases.append((c, "gossipPreset"))
        c = NodeConfiguration()
        c.gossipTimeScalePercent = 0
        cases.append((c, "gossipTimeScalePercent"))
        for (config, setting) in cases {
            let error = await agadirError { _ = try config.validate() }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains(setting) == true, "\(String(describing: error))")
        }
    }

    @Test("gossipTimeScalePercent scales every duration of the preset and nothing else")
    func timeScale() throws {
        var config = NodeConfiguration()
        config.gossipTimeScalePercent = 10
        let s = try config.validateGossip().settings
        #expect(s.probeInterval == .milliseconds(100) && s.intraSite.probeTimeout == .milliseconds(50))
        #expect(s.pushPullInterval == .seconds(3) && s.leavePropagation == .milliseconds(100))
        #expect(s.gossipFanout == MembershipSettings.lan.gossipFanout)
        #expect(s.maxPacketBytes == MembershipSettings.lan.maxPacketBytes)
    }

    @Test("gossip environment variables: lists split on commas, labels KEY=VALUE")
    func environment() throws {
        var config = NodeConfiguration()
        try config.applyEnvironment([
            "AGADIR_SITE": "benguerir", "AGADIR_LABELS": "rack=r1, tier=4",
            "AGADIR_SEEDS": "10.0.0.1:7946,10.0.0.2:7946",
            "AGADIR_PEER_LISTEN": "10.0.0.3:7946", "AGADIR_CLUSTER_NAME": "morocco", "AGADIR_GOSSIP_PRESET": "wan",
        ])
        #expect(config.site == "benguerir" && config.labels == ["rack": "r1", "tier": "4"])
        #expect(config.seeds == ["10.0.0.1:7946", "10.0.0.2:7946"] && config.peerListen == "10.0.0.3:7946")
        #expect(config.clusterName == "morocco" && config.gossipPreset == "wan")
        #expect(throws: AgadirError.self) { try config.applyEnvironment(["AGADIR_LABELS": "rack"]) }
    }

    @Test("without a secret file the node creates DATA/cluster.secret once, mode 0600, and reuses it")
    func clusterSecret_generatedOnce() throws {
        let dir = serverTempDirectory()
        defer { dir.cleanup() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        var config = NodeConfiguration()
        config.dataDir = dir.path
        let first = try ClusterSecrets.keyring(config: config, logger: quietLogger)
        let path = dir.path + "/cluster.secret"
        let secret = try String(contentsOfFile: path, encoding: .utf8)
        #expect(secret.trimmingCharacters(in: .whitespacesAndNewlines).count == 64)
        let mode = try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode == 0o600)
        let second = try ClusterSecrets.keyring(config: config, logger: quietLogger)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == secret)
        let sealed = first.seal([1, 2, 3], channel: .datagram, sentAtMillis: 1, nonce: Array(repeating: 0, count: 12))
        #expect(try second.open(sealed, channel: .datagram).plaintext == [1, 2, 3])
    }

    @Test("during a rotation a node accepts the old secret and the new one, and seals with the primary")
    func clusterSecret_rotation() throws {
        let dir = serverTempDirectory()
        defer { dir.cleanup() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        for name in ["new", "old"] {
            try "\(name)-secret-0123456789abcdef0123456789\n".write(
                toFile: dir.path + "/" + name, atomically: true, encoding: .utf8)
        }
        var rotating = NodeConfiguration()
        rotating.dataDir = dir.path
        rotating.clusterSecretFile = dir.path + "/new"
        rotating.clusterSecretsAccepted = [dir.path + "/old"]
        var old = rotating
        old.clusterSecretFile = dir.path + "/old"
        old.clusterSecretsAccepted = []
        let r = try ClusterSecrets.keyring(config: rotating, logger: quietLogger)
        let o = try ClusterSecrets.keyring(config: old, logger: quietLogger)
        let nonce = Array(repeating: UInt8(0), count: 12)
        let fromOld = o.seal([7], channel: .datagram, sentAtMillis: 1, nonce: nonce)
        #expect(try r.open(fromOld, channel: .datagram).plaintext == [7])
        let fromRotating = r.seal([7], channel: .datagram, sentAtMillis: 1, nonce: nonce)
        #expect(throws: GossipRejection.self) { try o.open(fromRotating, channel: .datagram) }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/cluster.secret"))
    }

    @Test("a configured secret file that is missing or empty is refused, naming the file")
    func clusterSecret_missing() async throws {
        let dir = serverTempDirectory()
        defer { dir.cleanup() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        var config = NodeConfiguration()
        config.dataDir = dir.path
        config.clusterSecretFile = dir.path + "/absent"
        let missing = await agadirError { _ = try ClusterSecrets.keyring(config: config, logger: quietLogger) }
        #expect(missing?.code == .invalidArgument && missing?.message.contains("absent") == true)
        _ = FileManager.default.createFile(atPath: dir.path + "/empty", contents: Data("\n".utf8))
        config.clusterSecretFile = dir.path + "/empty"
        let empty = await agadirError { _ = try ClusterSecrets.keyring(config: config, logger: quietLogger) }
        #expect(empty?.message.contains("is empty") == true, "\(String(describing: empty))")
    }

    @Test("json() with gossip settings round-trips through a config file")
    func json_roundTrip() throws {
        var config = NodeConfiguration()
        config.site = "casablanca"
        config.labels = ["rack": "r2"]
        config.seeds = ["10.0.0.1:7946"]
        config.clusterSecretsAccepted = ["/etc/agadir/old.secret"]
        let decoded = try JSONDecoder().decode(NodeConfiguration.self, from: Data(config.json().utf8))
        #expect(decoded == config)
    }
}
