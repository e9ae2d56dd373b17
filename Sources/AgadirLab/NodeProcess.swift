import AgadirClient
import AgadirCore
import AgadirWire
import Foundation
import Synchronization

/// One `agadird` child process on a free loopback port, with its data directory and log
/// under a fresh temporary directory: what end-to-end tests and `agadir-bench --spawn`
/// need. It stays in its parent's process group (a Ctrl-C stops it too) and is stopped
/// by pid. For several nodes that outlive the program that started them, use `Lab`.
public final class NodeProcess: Sendable {
    /// The temporary directory holding `data/`, the log and the address file.
    public let base: URL
    public let dataDir: URL
    public let logFile: URL
    public let extraArguments: [String]
    public let logLevel: String
    private struct Running {
        var pid: pid_t = 0
        var endpoint = ""
    }
    private let running = Mutex(Running())

    /// `dataDir` defaults to `base/data`; `extraArguments` are appended to agadird's.
    public init(dataDir: URL? = nil, extraArguments: [String] = [], logLevel: String = "info") throws(AgadirError) {
        base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "agadir-node-\(UUID().uuidString.prefix(8))")
        do {
            try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        } catch {
            throw AgadirError(.ioError, "cannot create \(base.path): \(error)")
        }
        self.dataDir = dataDir ?? base.appendingPathComponent("data")
        self.logFile = base.appendingPathComponent("agadird.log")
        self.extraArguments = extraArguments
        self.logLevel = logLevel
    }

    /// The pid while started, else 0.
    public var pid: pid_t { running.withLock { $0.pid } }
    /// The client endpoint `127.0.0.1:PORT` once started.
    public var endpoint: String { running.withLock { $0.endpoint } }
    /// True while the started process has not exited.
    public var isRunning: Bool {
        let pid = self.pid
        guard pid > 0, case .some(nil) = ProcessControl.exitStatus(ofChild: pid) else { return false }
        return true
    }

    /// Starts the node and waits (at most `timeout`) until it listens; on failure the
    /// error holds the end of its log.
    public func start(timeout: Duration = .seconds(30)) throws(AgadirError) {
        let addressFile = base.appendingPathComponent("address-\(UUID().uuidString.prefix(6))")
        let arguments =
            [
                "--data-dir", dataDir.path, "--listen", "127.0.0.1:0", "--peer-listen", "127.0.0.1:0", "--address-file",
                addressFile.path, "--log-level", logLevel,
            ] + extraArguments
        let pid = try ProcessControl.spawn(
            executable: try AgadirBinaries.path(of: "agadird"), arguments: arguments, logPath: logFile.path,
            newSession: false)
        running.withLock { $0 = Running(pid: pid, endpoint: "") }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if let text = try? String(contentsOf: addressFile, encoding: .utf8) {
                let endpoint = text.trimmingCharacters(in: .whitespacesAndNewlines)
                if !endpoint.isEmpty {
                    running.withLock { $0.endpoint = endpoint }
                    return
                }
            }
            guard isRunning else { break }
            usleep(20_000)
        }
        let tail = (try? String(contentsOf: logFile, encoding: .utf8))?.suffix(2000) ?? ""
        stop(signal: SIGKILL)
        throw AgadirError(.unavailable, "agadird did not start; the end of \(logFile.path):\n\(tail)")
    }

    /// The root key the node writes into its data directory when it starts.
    public var credentialsFile: URL { dataDir.appendingPathComponent("root.credentials") }

    /// The node's root key (readable once the node has started).
    public func rootCredentials() throws(AgadirError) -> Credentials { try Credentials.read(credentialsFile.path) }

    /// A client of this node, signing with its root key.
    public func client(connections: Int = 2) throws(AgadirError) -> AgadirClient {
        var c = ClientConfiguration()
        c.connections = connections
        try c.use(try rootCredentials())
        return try AgadirClient(endpoint: endpoint, configuration: c)
    }

    /// Sends `signal` to the process by pid and waits (at most `timeout`, then SIGKILL) for
    /// it to exit; returns its exit status (128 + signal when a signal ended it), or nil
    /// when it was not started.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(30)) -> Int32? {
        let pid = running.withLock { r in
            defer { r = Running() }
            return r.pid
        }
        guard pid > 0 else { return nil }
        if case .some(nil) = ProcessControl.exitStatus(ofChild: pid) { kill(pid, signal) }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            switch ProcessControl.exitStatus(ofChild: pid) {
            case .some(.some(let status)): return status
            case .some(.none): usleep(10_000)
            case .none: return nil  // already reaped
            }
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        return 128 + SIGKILL
    }

    /// Stops the process (SIGKILL) and removes the temporary directory.
    public func cleanUp() {
        stop(signal: SIGKILL)
        try? FileManager.default.removeItem(at: base)
    }

    deinit {
        let pid = running.withLock { $0.pid }
        if pid > 0, case .some(nil) = ProcessControl.exitStatus(ofChild: pid) {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
    }
}
