import AgadirCore
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

    @Test("dataFrameBytes below 4096 or above maxPayloadBytes is refused naming dataFrameBytes", arguments: [4095, 5 << 20])
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
    func applyEnvironment_overridesNonEmptyValues() {
        var config = NodeConfiguration()
        config.dataDir = "/from/file"
        config.listen = "10.0.0.1:7000"
        config.nodeID = "file-node"
        config.logLevel = "debug"
        config.applyEnvironment([
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
