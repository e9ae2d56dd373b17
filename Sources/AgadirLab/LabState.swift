import AgadirCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What the lab last did to a node (kept in `lab.json`). The live state of the process
/// is read from /proc by `Lab.status()`.
public enum LabNodeState: String, Codable, Sendable, CaseIterable {
    /// Started by the lab and, as far as it knows, running.
    case running
    /// Stopped by the lab (SIGTERM), or never started.
    case stopped
    /// Stopped with SIGSTOP: alive but frozen; `resume` continues it.
    case paused
    /// Ended by the lab with SIGKILL.
    case killed
    /// Recorded as running, but the process is gone: it ended by itself (see its log).
    case exited
}

/// One node of a lab, as `lab.json` records it.
public struct LabNode: Codable, Sendable, Equatable {
    /// `<site>-<n>`, e.g. `benguerir-1`; also the node id.
    public var name: String
    public var site: String
    public var labels: [String: String]
    public var nodeID: String
    /// The pid of the last process started for this node (0 before the first start).
    public var pid: Int32
    /// Loopback ports, 0 until the first start has bound them; later starts reuse them.
    public var clientPort: Int
    public var peerPort: Int
    public var dataDir: String
    public var logFile: String
    public var readyFile: String
    public var state: LabNodeState

    /// The node's certificate and key (`nodes/NAME/node.crt`, `node.key`), issued by the
    /// lab's CA; nil in a lab without certificates.
    public var certFile: String?
    public var keyFile: String?

    public var clientEndpoint: String? { clientPort > 0 ? "127.0.0.1:\(clientPort)" : nil }
    public var peerEndpoint: String? { peerPort > 0 ? "127.0.0.1:\(peerPort)" : nil }
}

/// The content of `ROOT/lab.json`.
public struct LabState: Codable, Sendable, Equatable {
    /// Format of this file; 1.
    public var formatVersion: Int = 1
    public var clusterName: String
    /// `ROOT/cluster.secret`: 32 random bytes as hex, mode 0600.
    public var secretFile: String
    /// Appended to every agadird command line (after `--` on `agadir-lab up`).
    public var extraArguments: [String]
    /// The sites in the order given at creation.
    public var sites: [String]
    public var nodesPerSite: Int
    /// Nodes in creation order (site by site).
    public var nodes: [LabNode]
    /// The lab's cluster CA certificate (`ROOT/pki/ca.crt`; its key beside it): every node
    /// has a certificate of it and speaks TLS. Nil in a lab made with `--plaintext`.
    public var caFile: String?
    /// `ROOT/pki/revocations.json`, every node's revocation list (with `caFile`).
    public var revocationFile: String?
    /// A relay on every path between two nodes (`agadir-lab up --relays`), through which
    /// `partition`, `heal` and `link` act (docs/lab.md, "Network faults").
    public var relays: Bool?
    /// The relayed directions, one per ordered pair of nodes that have ports.
    public var relayRoutes: [LabRelayRoute]?
    /// The relay process (`agadir-lab relay`), while it runs.
    public var relayPid: Int32?
}

/// `ROOT/lab.json` and its lock: reads need no lock (writes are tmp + rename, so a reader
/// sees a whole file); read-modify-write cycles hold `ROOT/lab.lock` (flock), so parallel
/// `agadir-lab` invocations do not lose each other's changes.
struct LabStore: Sendable {
    let root: URL
    var stateFile: URL { root.appendingPathComponent("lab.json") }
    var lockFile: URL { root.appendingPathComponent("lab.lock") }

    var exists: Bool { FileManager.default.fileExists(atPath: stateFile.path) }

    func load() throws(AgadirError) -> LabState {
        guard let data = FileManager.default.contents(atPath: stateFile.path) else {
            throw AgadirError(
                .invalidArgument,
                "no lab at \(root.path) (no lab.json); create one with `agadir-lab up`, or pick the right --root / AGADIR_LAB_ROOT"
            )
        }
        do {
            return try JSONDecoder().decode(LabState.self, from: data)
        } catch {
            throw AgadirError(.corruptData, "\(stateFile.path) cannot be read: \(error); fix or delete the lab root")
        }
    }

    func save(_ state: LabState) throws(AgadirError) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let tmp = stateFile.path + ".tmp.\(getpid())"
        do {
            try enc.encode(state).write(to: URL(fileURLWithPath: tmp))
        } catch {
            throw AgadirError(.ioError, "cannot write \(tmp): \(error)")
        }
        guard rename(tmp, stateFile.path) == 0 else {
            let e = errno
            unlink(tmp)
            throw AgadirError(.ioError, "cannot replace \(stateFile.path): errno \(e)")
        }
    }

    /// Runs `body` holding the lab's lock. The lock is taken without blocking a thread:
    /// tried every 50 ms for at most `timeout`.
    func locked<T>(
        timeout: Duration = .seconds(120), _ body: () async throws(AgadirError) -> T
    ) async throws(AgadirError) -> T {
        // O_CLOEXEC: a node started while the lock is held must not inherit (and keep) it.
        let fd = open(lockFile.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AgadirError(.ioError, "cannot open \(lockFile.path): errno \(errno)") }
        defer { close(fd) }  // closing the descriptor releases the lock
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, clock.now < deadline else {
                throw AgadirError(
                    .unavailable,
                    "the lab at \(root.path) stayed locked by another agadir-lab command for \(timeout); wait for it or check for a stuck one"
                )
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await body()
    }
}
