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
        let node = try NodeProcess()
        defer { node.cleanUp() }
        try node.start()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", Self.scriptDirectory.appendingPathComponent("conformance.py").path, node.endpoint,
            "--credentials", node.credentialsFile.path,
        ]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        // Read before waiting, so a full pipe cannot block the script; the script bounds
        // every socket operation with a timeout, so this ends.
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "conformance.py failed:\n\(text)")
        #expect(text.contains(" passed, 0 failed"), "\(text.suffix(2000))")
    }
}
