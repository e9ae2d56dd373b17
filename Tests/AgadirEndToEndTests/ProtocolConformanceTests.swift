import AgadirTestSupport
import Foundation
import Testing

/// docs/protocol.md must be precise enough for a stranger to write a client in another
/// language. `PythonClient/` is such a client, written from that document alone (standard
/// library only); its conformance script exercises every operation, error code and
/// streaming rule against a live node and exits 0 only if all its checks pass.
@Suite("A Python client written from docs/protocol.md alone", .serialized)
struct ProtocolConformanceTests {
    static var scriptDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("PythonClient")
    }

    @Test("passes every conformance check against a live node")
    func pythonClientConforms() throws {
        // A request timeout of 2 s (default 60) lets the script see REQUEST_TIMEOUT (107) soon.
        let configDir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "agadir-python-config-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: configDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: configDir) }
        let config = configDir.appendingPathComponent("agadird.json")
        try Data(#"{"requestTimeoutSeconds": 2}"#.utf8).write(to: config)
        let node = try NodeProcess(extraArguments: ["--config", config.path])
        defer { node.cleanUp() }
        try node.start()
        let (status, text) = try Self.runScript(
            "conformance.py", against: node, arguments: ["--request-timeout-seconds", "2"])
        #expect(status == 0, "conformance.py failed:\n\(text)")
        #expect(text.contains(" passed, 0 failed"), "\(text.suffix(2000))")
    }

    /// Runs `script` of `PythonClient/` against `node` with its root credentials and
    /// `arguments`; its exit status and output.
    static func runScript(_ script: String, against node: NodeProcess, arguments: [String] = []) throws -> (
        Int32, String
    ) {
        // The script bounds every socket operation with a timeout, so this ends.
        try runProcess(
            "/usr/bin/env",
            [
                "python3", scriptDirectory.appendingPathComponent(script).path, node.endpoint, "--credentials",
                node.credentialsFile.path,
            ] + arguments)
    }

    @Test(
        "reaches a node with a certificate over TLS 1.3 with the stdlib's ssl module; clear text gets the documented refusal"
    )
    func pythonClientSpeaksTLS() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "agadir-python-tls-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ca = dir.appendingPathComponent("ca").path
        let cli = CLI(endpoint: "127.0.0.1:1", credentials: nil)
        #expect(try cli.run(["admin", "ca", "init", ca]).status == 0)
        let issued = try cli.run([
            "admin", "cert", "issue", "--ca", ca, "--node", "py-1", "--site", "default", "--host", "127.0.0.1",
            "--out", dir.path,
        ])
        #expect(issued.status == 0, "\(issued.stderr)")
        let node = try NodeProcess(extraArguments: [
            "--node-id", "py-1", "--site", "default", "--cert-file", dir.path + "/py-1.crt", "--key-file",
            dir.path + "/py-1.key", "--ca-file", ca + "/ca.crt",
        ])
        defer { node.cleanUp() }
        try node.start()
        let (status, text) = try Self.runScript("tls_check.py", against: node)
        #expect(status == 0, "tls_check.py failed:\n\(text)")
        #expect(text.contains("PASS TLS 1.3 negotiated") && text.contains("0 failed"), "\(text)")
    }
}
