import AgadirClient
import AgadirCore
@_exported import AgadirTestSupport
import Foundation

/// A real `agadird` process for end-to-end tests: its own temporary data directory, a
/// free loopback port chosen by the kernel, stopped by pid when the test ends.
final class NodeProcess: @unchecked Sendable {
    let dataDir: URL
    let logFile: URL
    private(set) var process: Process?
    private(set) var endpoint = ""
    let extraArguments: [String]

    /// Directory holding the built executables (next to the test bundle), or $AGADIR_BIN_DIR.
    static var binDir: URL {
        if let dir = ProcessInfo.processInfo.environment["AGADIR_BIN_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        // Inside an .xctest bundle directory on some layouts.
        while dir.path != "/", !FileManager.default.fileExists(atPath: dir.appendingPathComponent("agadird").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }

    init(dataDir: URL? = nil, extraArguments: [String] = []) throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("agadir-e2e-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        self.dataDir = dataDir ?? base.appendingPathComponent("data")
        self.logFile = base.appendingPathComponent("agadird.log")
        self.extraArguments = extraArguments
    }

    var pid: Int32 { process?.processIdentifier ?? 0 }

    /// Starts the node and waits (at most 30 s) until it listens.
    func start() throws {
        let addressFile = dataDir.deletingLastPathComponent().appendingPathComponent("address-\(UUID().uuidString.prefix(6))")
        let p = Process()
        p.executableURL = Self.binDir.appendingPathComponent("agadird")
        p.arguments = [
            "--data-dir", dataDir.path, "--listen", "127.0.0.1:0", "--address-file", addressFile.path, "--log-level", "info",
        ] + extraArguments
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let log = try FileHandle(forWritingTo: logFile)
        log.seekToEndOfFile()
        p.standardOutput = log
        p.standardError = log
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let text = try? String(contentsOf: addressFile, encoding: .utf8),
                !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            {
                endpoint = text.trimmingCharacters(in: .whitespacesAndNewlines)
                return
            }
            guard p.isRunning else { break }
            usleep(20_000)
        }
        let tail = (try? String(contentsOf: logFile, encoding: .utf8))?.suffix(2000) ?? ""
        stop(signal: SIGKILL)
        throw AgadirError(.unavailable, "agadird did not start; log:\n\(tail)")
    }

    func client(connections: Int = 2) throws -> AgadirClient {
        var c = ClientConfiguration()
        c.connections = connections
        return try AgadirClient(endpoint: endpoint, configuration: c)
    }

    /// Sends `signal` to the process by pid and waits (at most 30 s) for it to exit.
    @discardableResult
    func stop(signal: Int32 = SIGTERM) -> Int32? {
        guard let p = process else { return nil }
        if p.isRunning { kill(p.processIdentifier, signal) }
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning, Date() < deadline { usleep(10_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        process = nil
        return p.terminationStatus
    }

    /// Removes the data directory and log (after the process stopped).
    func cleanUp() {
        stop(signal: SIGKILL)
        try? FileManager.default.removeItem(at: dataDir.deletingLastPathComponent())
    }

    deinit { if let p = process, p.isRunning { kill(p.processIdentifier, SIGKILL) } }
}
