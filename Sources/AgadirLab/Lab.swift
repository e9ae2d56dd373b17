import AgadirClient
import AgadirCore
import AgadirWire
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A node of a lab as `Lab.status()` sees it: the recorded facts plus the live state of
/// its process.
public struct LabNodeStatus: Sendable, Codable, Equatable {
    public var name: String
    public var site: String
    /// The pid while the process lives, else nil.
    public var pid: Int32?
    public var clientEndpoint: String?
    public var peerEndpoint: String?
    public var dataDir: String
    public var logFile: String
    public var state: LabNodeState
    /// The lab's root key (`ROOT/root.credentials`), what clients of this node sign with.
    public var credentialsFile: String
    /// The cluster CA clients check the node's TLS certificate with (nil: clear text).
    public var caFile: String?
}

/// A multi-node cluster of real `agadird` processes on loopback, in the spirit of
/// Cassandra's ccm. Everything lives under one root directory:
///
///     ROOT/lab.json             state: cluster name, nodes, pids, ports (LabState)
///     ROOT/lab.lock             flock'ed around every change of lab.json
///     ROOT/cluster.secret       32 random bytes as hex, mode 0600
///     ROOT/root.credentials     the cluster's root key (derived from the secret), mode 0600
///     ROOT/pki/ca.crt, ca.key   the lab's cluster CA (not with `plaintext`)
///     ROOT/nodes/NAME/node.crt  the node's certificate (site and labels attested), node.key
///     ROOT/nodes/NAME/data      the node's data directory
///     ROOT/nodes/NAME/agadird.log, ROOT/nodes/NAME/ready.json
///
/// so separate `agadir-lab` invocations work on the same lab. Nodes run in sessions of
/// their own and outlive the program that started them; they are signalled by pid, and
/// only while /proc/PID/cmdline still names their data directory.
public struct Lab: Sendable {
    public let root: URL
    let store: LabStore

    /// The sites `agadir-lab up` and `run` use by default.
    public static let defaultSites = ["benguerir", "casablanca", "settat"]

    init(root: URL) {
        self.root = root.standardizedFileURL
        self.store = LabStore(root: self.root)
    }

    /// A fresh, unique directory under the temporary directory (not yet created).
    public static func temporaryRoot(prefix: String = "agadir-lab") -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(12))")
    }

    /// Opens the lab at `root` (it must hold a lab.json).
    public static func open(root: URL) throws(AgadirError) -> Lab {
        let lab = Lab(root: root)
        _ = try lab.store.load()
        return lab
    }

    /// Creates a lab of `nodesPerSite` nodes in each of `sites` (named `<site>-<n>`) at
    /// `root`, default a fresh temporary directory; starts nothing (see `up`). A root that
    /// already holds a lab with no running node and the same sites is reused (its data and
    /// ports kept); one with running nodes, or other sites, is refused. Unless `plaintext`,
    /// the lab makes a cluster CA and gives every node a certificate attesting its site and
    /// the labels of `knownSiteLabels` (with `labels` over them): nodes then speak TLS and
    /// residency follows the certificates, as in production (docs/security.md).
    public static func create(
        root: URL? = nil, sites: [String] = Lab.defaultSites, nodesPerSite: Int = 1, clusterName: String = "agadir-lab",
        labels: [String: String] = [:], extraArguments: [String] = [], plaintext: Bool = false, relays: Bool = false
    ) async throws(AgadirError) -> Lab {
        try validate(sites: sites, nodesPerSite: nodesPerSite, clusterName: clusterName)
        let lab = Lab(root: root ?? temporaryRoot())
        do {
            try FileManager.default.createDirectory(at: lab.root, withIntermediateDirectories: true)
        } catch {
            throw AgadirError(.ioError, "cannot create the lab root \(lab.root.path): \(error)")
        }
        try await lab.store.locked { () throws(AgadirError) in
            if lab.store.exists {
                var state = try lab.store.load()
                let running = state.nodes.filter { Lab.live($0) != .gone }.map(\.name)
                guard running.isEmpty else {
                    throw AgadirError(
                        .invalidArgument,
                        "the lab at \(lab.root.path) has running nodes (\(running.joined(separator: ", "))); "
                            + "stop it with `agadir-lab down --root \(lab.root.path)` or pick another --root")
                }
                guard state.sites == sites, state.nodesPerSite == nodesPerSite else {
                    throw AgadirError(
                        .invalidArgument,
                        "the lab at \(lab.root.path) was created with sites \(state.sites.joined(separator: ",")) x "
                            + "\(state.nodesPerSite); delete it with `agadir-lab down --purge --root \(lab.root.path)` or pick another --root"
                    )
                }
                state.extraArguments = extraArguments
                if relays { state.relays = true }
                try lab.store.save(state)
                try writeRootCredentials(
                    secretFile: state.secretFile, clusterName: state.clusterName, root: lab.root, caFile: state.caFile)
                return
            }
            let secretFile = lab.root.appendingPathComponent("cluster.secret").path
            try writeSecret(to: secretFile)
            let pki = plaintext ? nil : try LabPKI.create(root: lab.root, clusterName: clusterName)
            try writeRootCredentials(
                secretFile: secretFile, clusterName: clusterName, root: lab.root, caFile: pki?.caFile)
            var nodes: [LabNode] = []
            for site in sites {
                for n in 1...nodesPerSite {
                    nodes.append(
                        try makeNode("\(site)-\(n)", site: site, labels: labels, root: lab.root, pki: pki))
                }
            }
            try lab.store.save(
                LabState(
                    clusterName: clusterName, secretFile: secretFile, extraArguments: extraArguments, sites: sites,
                    nodesPerSite: nodesPerSite, nodes: nodes, caFile: pki?.caFile,
                    revocationFile: pki?.revocationFile, relays: relays ? true : nil))
        }
        return lab
    }

    /// A new node's directory and record, with a certificate from `pki` attesting its site
    /// and the site's known labels (`labels` over them) when the lab has a CA.
    static func makeNode(
        _ name: String, site: String, labels: [String: String], root: URL, pki: LabPKI?
    ) throws(AgadirError) -> LabNode {
        let dir = root.appendingPathComponent("nodes").appendingPathComponent(name)
        do {
            try FileManager.default.createDirectory(
                at: dir.appendingPathComponent("data"), withIntermediateDirectories: true)
        } catch {
            throw AgadirError(.ioError, "cannot create \(dir.path): \(error)")
        }
        var node = LabNode(
            name: name, site: site, labels: labels, nodeID: name, pid: 0, clientPort: 0, peerPort: 0,
            dataDir: dir.appendingPathComponent("data").path, logFile: dir.appendingPathComponent("agadird.log").path,
            readyFile: dir.appendingPathComponent("ready.json").path, state: .stopped)
        if let pki {
            let attested = (knownSiteLabels[site] ?? [:]).merging(labels) { _, given in given }
            (node.certFile, node.keyFile) = try pki.issue(node: name, site: site, labels: attested, dir: dir)
        }
        return node
    }

    static func validate(sites: [String], nodesPerSite: Int, clusterName: String) throws(AgadirError) {
        func isName(_ s: String) -> Bool {
            (1...40).contains(s.utf8.count)
                && s.utf8.allSatisfy { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2d }
        }
        guard !sites.isEmpty, sites.allSatisfy(isName) else {
            throw AgadirError(.invalidArgument, "sites must be 1-40 characters of a-z, 0-9 and '-' each; got \(sites)")
        }
        guard Set(sites).count == sites.count else {
            throw AgadirError(.invalidArgument, "sites \(sites) repeat a name")
        }
        guard (1...32).contains(nodesPerSite) else {
            throw AgadirError(.invalidArgument, "nodes per site must be 1...32, not \(nodesPerSite)")
        }
        guard isName(clusterName) else {
            throw AgadirError(
                .invalidArgument, "cluster name '\(clusterName)' must be 1-40 characters of a-z, 0-9 and '-'")
        }
    }

    /// 32 random bytes as hex in a new file of mode 0600.
    /// `ROOT/root.credentials`: the cluster's root key, derived from its secret as every node
    /// derives it (what the lab's clients sign with, and what `agadir` reads through
    /// AGADIR_CREDENTIALS).
    public var credentialsFile: String { root.appendingPathComponent("root.credentials").path }

    static func rootCredentials(secretFile: String, clusterName: String) throws(AgadirError) -> Credentials {
        guard let data = FileManager.default.contents(atPath: secretFile) else {
            throw AgadirError(.ioError, "cannot read the lab's cluster secret \(secretFile)")
        }
        let secret =
            String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map {
                $0.trimmingCharacters(in: .whitespaces)
            } ?? ""
        return Credentials.root(clusterName: clusterName, secret: secret)
    }

    static func writeRootCredentials(secretFile: String, clusterName: String, root: URL, caFile: String?)
        throws(AgadirError)
    {
        var credentials = try rootCredentials(secretFile: secretFile, clusterName: clusterName)
        credentials.caFile = caFile
        try LabPKI.write(
            credentials.fileText(comment: "Agadir root key of the lab cluster '\(clusterName)'"),
            to: root.appendingPathComponent("root.credentials").path, mode: 0o600)
    }

    /// The lab's root key.
    public func rootCredentials() throws(AgadirError) -> Credentials {
        let state = try store.load()
        var credentials = try Self.rootCredentials(secretFile: state.secretFile, clusterName: state.clusterName)
        credentials.caFile = state.caFile
        return credentials
    }

    static func writeSecret(to path: String) throws(AgadirError) {
        var rng = SystemRandomNumberGenerator()
        let hex = Hex.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }) + "\n"
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AgadirError(.ioError, "cannot create \(path): errno \(errno)") }
        defer { close(fd) }
        let bytes = Array(hex.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fchmod(fd, 0o600) == 0 else {
            throw AgadirError(.ioError, "cannot write \(path): errno \(errno)")
        }
    }

    // MARK: State

    /// The lab's recorded state (lab.json).
    public func state() throws(AgadirError) -> LabState { try store.load() }

    static func live(_ node: LabNode) -> ProcessControl.LiveState {
        ProcessControl.state(of: node.pid, marker: node.dataDir)
    }

    /// Every node with the live state of its process, in creation order.
    public func status() throws(AgadirError) -> [LabNodeStatus] {
        let lab = try store.load()
        return lab.nodes.map { node in
            let live = Self.live(node)
            let state: LabNodeState
            switch live {
            case .running: state = .running
            case .paused: state = .paused
            case .gone: state = node.state == .running || node.state == .paused ? .exited : node.state
            }
            return LabNodeStatus(
                name: node.name, site: node.site, pid: live == .gone ? nil : node.pid,
                clientEndpoint: node.clientEndpoint,
                peerEndpoint: node.peerEndpoint, dataDir: node.dataDir, logFile: node.logFile, state: state,
                credentialsFile: credentialsFile, caFile: lab.caFile)
        }
    }

    static func index(of name: String, in state: LabState) throws(AgadirError) -> Int {
        guard let i = state.nodes.firstIndex(where: { $0.name == name }) else {
            throw AgadirError(
                .noSuchKey,
                "the lab has no node '\(name)'; its nodes are \(state.nodes.map(\.name).joined(separator: ", "))")
        }
        return i
    }

    // MARK: Starting

    /// Starts every node that is not running, in creation order (the first one seeds the
    /// others), then, with `waitForConvergence`, waits until every running node's MEMBERS
    /// lists every running node alive.
    public func up(waitForConvergence: Bool = true, timeout: Duration = .seconds(60)) async throws(AgadirError) {
        try await store.locked { () throws(AgadirError) in
            var state = try store.load()
            for i in state.nodes.indices where Self.live(state.nodes[i]) == .gone {
                try await startNode(&state, i)
            }
        }
        if waitForConvergence { try await waitConverged(timeout: timeout) }
    }

    /// Starts the node `name` (an error if it runs), reusing its ports.
    public func start(_ name: String) async throws(AgadirError) {
        try await store.locked { () throws(AgadirError) in
            var state = try store.load()
            let i = try Self.index(of: name, in: state)
            guard Self.live(state.nodes[i]) == .gone else {
                throw AgadirError(.invalidArgument, "node \(name) is already running (pid \(state.nodes[i].pid))")
            }
            try await startNode(&state, i)
        }
    }

    /// Grows the lab by one node in `site` (a new site too), as an operator adds a machine:
    /// its name is the next free `<site>-<n>`, it gets a certificate attesting its site and
    /// the known labels of the site (with `labels` over them), and it starts and joins
    /// through the other nodes. It holds no data until a layout assigns it
    /// (`agadir admin layout assign` then `apply`). Returns its name.
    public func add(site: String, labels: [String: String] = [:]) async throws(AgadirError) -> String {
        try Self.validate(sites: [site], nodesPerSite: 1, clusterName: "x")
        return try await store.locked { () throws(AgadirError) -> String in
            var state = try store.load()
            var n = 1
            while state.nodes.contains(where: { $0.name == "\(site)-\(n)" }) { n += 1 }
            let name = "\(site)-\(n)"
            let pki = state.caFile == nil ? nil : try LabPKI.open(root: root)
            state.nodes.append(try Self.makeNode(name, site: site, labels: labels, root: root, pki: pki))
            if !state.sites.contains(site) { state.sites.append(site) }
            try store.save(state)
            try await startNode(&state, state.nodes.count - 1)
            return name
        }
    }

    /// Stops (SIGTERM) then starts the node `name`, on the same ports.
    public func restart(_ name: String, timeout: Duration = .seconds(30)) async throws(AgadirError) {
        try await store.locked { () throws(AgadirError) in
            var state = try store.load()
            let i = try Self.index(of: name, in: state)
            try await terminate(&state, [i], signal: SIGTERM, as: .stopped, timeout: timeout)
            try await startNode(&state, i)
        }
    }

    /// Seeds of node `i`: on its first start, the peer endpoint of the first node started
    /// before it (none for the first node); on later starts, every other node's.
    static func seeds(for i: Int, in state: LabState) -> [String] {
        let others = state.nodes.indices.filter { $0 != i }.compactMap { state.nodes[$0].peerEndpoint }
        return state.nodes[i].clientPort == 0 ? Array(others.prefix(1)) : others
    }

    /// Checks of a node's ports before its start (100 ms apart on a restart): 3 s.
    static let portAttempts = 30

    /// Starts node `i` (the caller holds the lock) and records it, then waits for its
    /// ready file and records the ports it bound.
    private func startNode(_ state: inout LabState, _ i: Int) async throws(AgadirError) {
        let seeds = Self.seeds(for: i, in: state)
        let firstStart = state.nodes[i].clientPort == 0
        // A port found taken is looked at again for a while (a socket of the node's previous
        // process may still be closing); on a first start another port is chosen instead.
        for attempt in 0..<Self.portAttempts {
            if state.nodes[i].clientPort == 0 {
                // First start: ports below the kernel's ephemeral range, so that a later restart
                // on the same ports never finds one taken by some process's outgoing connection
                // (the kernel hands those out from the ephemeral range, where port 0 would land).
                state.nodes[i].clientPort = try Self.freePort(udp: false, avoiding: Self.usedPorts(state))
                state.nodes[i].peerPort = try Self.freePort(udp: true, avoiding: Self.usedPorts(state))
            }
            let node = state.nodes[i]
            do throws(AgadirError) {
                try Self.checkPortFree(node.clientPort, udp: false, what: "client endpoint of \(node.name)")
                try Self.checkPortFree(node.peerPort, udp: true, what: "peer endpoint of \(node.name)")
                break
            } catch {
                if attempt == Self.portAttempts - 1 { throw error }
                if firstStart {
                    state.nodes[i].clientPort = 0
                    state.nodes[i].peerPort = 0
                } else {
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
        }
        if state.relays == true { try await prepareRelays(&state) }
        let node = state.nodes[i]
        unlink(node.readyFile)
        let arguments = LabCommandLine.arguments(
            node: node, lab: state, clientPort: node.clientPort, peerPort: node.peerPort, seeds: seeds)
        let pid = try ProcessControl.spawn(
            executable: try AgadirBinaries.path(of: "agadird"), arguments: arguments, logPath: node.logFile,
            newSession: true)
        state.nodes[i].pid = pid
        state.nodes[i].state = .running
        try store.save(state)

        let clock = ContinuousClock()
        let deadline = clock.now + LabCommandLine.readyTimeout
        while clock.now < deadline {
            if let ready = Self.readReady(node.readyFile), ready.pid == pid {
                state.nodes[i].clientPort = ready.clientPort
                state.nodes[i].peerPort = ready.peerPort
                try store.save(state)
                return
            }
            guard ProcessControl.state(of: pid, marker: node.dataDir) != .gone || ProcessControl.isExecuting(pid) else {
                // Once more: a child that ended between the reaping and the /proc check is reaped
                // now, so the message can say how it ended.
                _ = ProcessControl.state(of: pid, marker: node.dataDir)
                let how = ProcessControl.ending(of: pid).map { " (\($0))" } ?? " (not reaped here)"
                throw AgadirError(
                    .unavailable,
                    "node \(node.name) exited while starting\(how); the end of \(node.logFile):\n\(Self.tail(node.logFile, lines: 15))"
                )
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        if ProcessControl.signal(pid, SIGKILL, marker: node.dataDir) {
            _ = await ProcessControl.waitUntilGone(pid, marker: node.dataDir, timeout: .seconds(10))
        }
        state.nodes[i].state = .killed
        try store.save(state)
        throw AgadirError(
            .unavailable,
            "node \(node.name) wrote no ready file \(node.readyFile) within \(LabCommandLine.readyTimeout), so it was killed; "
                + "the end of its log:\n\(Self.tail(node.logFile, lines: 15))")
    }

    struct Ready {
        var clientPort: Int
        var peerPort: Int
        var pid: Int32
    }

    /// Parses `{"nodeID", "client", "peer", "pid"}`; nil while absent or incomplete.
    static func readReady(_ path: String) -> Ready? {
        guard let data = FileManager.default.contents(atPath: path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let client = object["client"] as? String, let peer = object["peer"] as? String,
            let pid = (object["pid"] as? NSNumber)?.int32Value,
            let c = try? Endpoint.parse(client), let p = try? Endpoint.parse(peer)
        else { return nil }
        return Ready(clientPort: c.port, peerPort: p.port, pid: pid)
    }

    static func usedPorts(_ state: LabState) -> Set<Int> {
        Set(
            (state.nodes.flatMap { [$0.clientPort, $0.peerPort] }
                + (state.relayRoutes ?? []).flatMap { [$0.dataPort, $0.gossipPort] }).filter { $0 > 0 })
    }

    /// A random port on 127.0.0.1 free for TCP (and UDP when `udp`), below the ephemeral
    /// range of `/proc/sys/net/ipv4/ip_local_port_range` (ports 10000 up to it; 10000-32767
    /// when unreadable). At most 200 tries.
    static func freePort(udp: Bool, avoiding: Set<Int>) throws(AgadirError) -> Int {
        var low = 32768
        if let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
            let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first, let v = Int(first)
        {
            low = v
        }
        let range = 10_000..<max(low, 10_001)
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let port = Int.random(in: range, using: &rng)
            guard !avoiding.contains(port) else { continue }
            if (try? checkPortFree(port, udp: udp, what: "candidate")) != nil { return port }
        }
        throw AgadirError(
            .unavailable,
            "found no free port in \(range.lowerBound)...\(range.upperBound - 1) on 127.0.0.1 after 200 tries")
    }

    /// Fails with an error naming `port` when something on 127.0.0.1 holds it (TCP, and UDP
    /// for a peer endpoint, which gossip uses for both).
    static func checkPortFree(_ port: Int, udp: Bool, what: String) throws(AgadirError) {
        for type in udp ? [SOCK_STREAM, SOCK_DGRAM] : [SOCK_STREAM] {
            let fd = socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var one: Int32 = 1
            // As agadird binds: TIME_WAIT connections of an earlier run do not count.
            if type == SOCK_STREAM {
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if rc != 0, errno == EADDRINUSE {
                throw AgadirError(
                    .unavailable,
                    "port \(port) (\(what), \(type == SOCK_STREAM ? "TCP" : "UDP")) is taken by another process; free it, "
                        + "or `agadir-lab down --purge` and `up` again to get new ports")
            }
        }
    }

    // MARK: Stopping and signals

    /// SIGKILL: the node dies at once, as in a power cut.
    public func kill(_ name: String) async throws(AgadirError) {
        try await signalNode(name, SIGKILL, as: .killed, timeout: .seconds(10))
    }

    /// SIGTERM (a graceful shutdown), then SIGKILL if the node has not exited within `timeout`.
    public func stop(_ name: String, timeout: Duration = .seconds(30)) async throws(AgadirError) {
        try await signalNode(name, SIGTERM, as: .stopped, timeout: timeout)
    }

    /// Stops every node (SIGTERM to all, then waits; SIGKILL after `timeout`).
    public func stopAll(timeout: Duration = .seconds(30)) async throws(AgadirError) {
        try await store.locked { () throws(AgadirError) in
            var state = try store.load()
            try await terminate(&state, Array(state.nodes.indices), signal: SIGTERM, as: .stopped, timeout: timeout)
        }
    }

    /// Starts every node that is not running; does not wait for convergence.
    public func startAll() async throws(AgadirError) { try await up(waitForConvergence: false) }

    /// Stops every node the lab started (by pid) and returns the root, where the data stays.
    @discardableResult
    public func down(timeout: Duration = .seconds(30)) async throws(AgadirError) -> URL {
        try await stopAll(timeout: timeout)
        try await store.locked { () throws(AgadirError) in
            var state = try store.load()
            await stopRelay(&state)
        }
        return root
    }

    private func signalNode(_ name: String, _ signal: Int32, as final: LabNodeState, timeout: Duration)
        async throws(AgadirError)
    {
        try await store.locked { () throws(AgadirError) in
            var state = try store.load()
            let i = try Self.index(of: name, in: state)
            if signal == SIGKILL, Self.live(state.nodes[i]) == .gone {
                throw AgadirError(
                    .invalidArgument, "node \(name) is not running; its state is \(state.nodes[i].state.rawValue)")
            }
            try await terminate(&state, [i], signal: signal, as: final, timeout: timeout)
        }
    }

    /// Sends `signal` to the live ones among `indices` (SIGCONT too, so a paused node can
    /// act on it), waits until all are gone (SIGKILL after `timeout`), records `final`.
    private func terminate(
        _ state: inout LabState, _ indices: [Int], signal: Int32, as final: LabNodeState, timeout: Duration
    ) async throws(AgadirError) {
        var pending: [Int] = []
        for i in indices {
            let node = state.nodes[i]
            guard Self.live(node) != .gone else { continue }
            ProcessControl.signal(node.pid, signal, marker: node.dataDir)
            ProcessControl.signal(node.pid, SIGCONT, marker: node.dataDir)
            pending.append(i)
        }
        var stuck: [Int] = []
        for i in pending {
            let node = state.nodes[i]
            if await ProcessControl.waitUntilGone(node.pid, marker: node.dataDir, timeout: timeout) { continue }
            ProcessControl.signal(node.pid, SIGKILL, marker: node.dataDir)
            if !(await ProcessControl.waitUntilGone(node.pid, marker: node.dataDir, timeout: .seconds(10))) {
                stuck.append(i)
            }
        }
        for i in indices where !stuck.contains(i) {
            if pending.contains(i) {
                state.nodes[i].state = final
            } else if state.nodes[i].state != .killed {
                state.nodes[i].state = .stopped  // it had ended by itself: now it is recorded as stopped
            }
        }
        try store.save(state)
        guard stuck.isEmpty else {
            let names = stuck.map { "\(state.nodes[$0].name) (pid \(state.nodes[$0].pid))" }
            throw AgadirError(
                .unavailable, "\(names.joined(separator: ", ")) did not exit even after SIGKILL; look at it with ps")
        }
    }

    /// FOR TESTS ONLY: offsets `name`'s clock by `millis` (negative: behind) while it runs:
    /// every version it stamps, and the time its PING reports. The node reads the offset
    /// twice a second (`testingClockOffsetFile`); 0 puts its clock back. Kept across restarts.
    public func skew(_ name: String, millis: Int64) throws(AgadirError) {
        let state = try store.load()
        let node = state.nodes[try Self.index(of: name, in: state)]
        guard abs(millis) <= 86_400_000 else {
            throw AgadirError(
                .invalidArgument, "a clock offset of \(millis) ms is over a day; the node would ignore it")
        }
        let path = LabCommandLine.clockOffsetFile(node)
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data("\(millis)\n".utf8)),
            rename(tmp, path) == 0
        else { throw AgadirError(.ioError, "cannot write \(path)") }
    }

    /// The clock offset `skew` gave `name` (0 when none).
    public func skewMillis(_ name: String) throws(AgadirError) -> Int64 {
        let state = try store.load()
        let path = LabCommandLine.clockOffsetFile(state.nodes[try Self.index(of: name, in: state)])
        guard let data = FileManager.default.contents(atPath: path) else { return 0 }
        return Int64(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// SIGSTOP: the node stays alive but frozen (it answers nothing; peers will suspect it).
    public func pause(_ name: String) async throws(AgadirError) {
        try await freeze(name, SIGSTOP, from: .running, to: .paused)
    }

    /// SIGCONT for a paused node.
    public func resume(_ name: String) async throws(AgadirError) {
        try await freeze(name, SIGCONT, from: .paused, to: .running)
    }

    private func freeze(
        _ name: String, _ signal: Int32, from: ProcessControl.LiveState, to: LabNodeState
    ) async throws(AgadirError) {
        try await store.locked { () throws(AgadirError) in
            var state = try store.load()
            let i = try Self.index(of: name, in: state)
            let node = state.nodes[i]
            let live = Self.live(node)
            guard live == from else {
                throw AgadirError(
                    .invalidArgument,
                    "node \(name) is \(live == .gone ? "not running" : live.rawValue), not \(from.rawValue)")
            }
            ProcessControl.signal(node.pid, signal, marker: node.dataDir)
            let want: ProcessControl.LiveState = to == .paused ? .paused : .running
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(5)
            while Self.live(node) != want, clock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
            guard Self.live(node) == want else {
                throw AgadirError(
                    .unavailable, "node \(name) (pid \(node.pid)) did not become \(want.rawValue) within 5 s")
            }
            state.nodes[i].state = to
            try store.save(state)
        }
    }

    // MARK: Logs

    /// The path of the node's log file.
    public func logPath(_ name: String) throws(AgadirError) -> String {
        let state = try store.load()
        return state.nodes[try Self.index(of: name, in: state)].logFile
    }

    /// The last `lines` lines of the node's log.
    public func logs(_ name: String, lines: Int = 50) throws(AgadirError) -> String {
        Self.tail(try logPath(name), lines: lines)
    }

    /// The last `lines` lines of a file (read from its last MiB at most).
    static func tail(_ path: String, lines: Int) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        let start = size > 1 << 20 ? size - (1 << 20) : 0
        try? handle.seek(toOffset: start)
        let text = String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
        var all = text.split(separator: "\n", omittingEmptySubsequences: false)
        if all.last == "" { all.removeLast() }
        return all.suffix(max(0, lines)).joined(separator: "\n")
    }

    // MARK: Clients and membership views

    /// A client of the node `name` (close it when done).
    public func client(for name: String) throws(AgadirError) -> AgadirClient {
        let state = try store.load()
        let node = state.nodes[try Self.index(of: name, in: state)]
        guard let endpoint = node.clientEndpoint else {
            throw AgadirError(.unavailable, "node \(name) has never been started; `agadir-lab start \(name)`")
        }
        var configuration = ClientConfiguration()
        configuration.connections = 1
        configuration.connectTimeoutSeconds = 2
        try configuration.use(try rootCredentials())
        return try AgadirClient(endpoint: endpoint, configuration: configuration)
    }

    /// The MEMBERS answer of the node `name`, or an error after `timeout` (a paused node
    /// accepts connections but answers nothing).
    /// A connection that fails (a node just resumed or restarted may refuse or stall its
    /// first TLS handshake on a loaded machine) is tried again until `timeout`.
    public func members(of name: String, timeout: Duration = .seconds(5)) async throws(AgadirError) -> [MemberInfo] {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var last = AgadirError(.unavailable, "node \(name) did not answer MEMBERS within \(timeout)")
        repeat {
            let client = try client(for: name)
            let result = await withDeadline(deadline - clock.now) { () async -> Result<[MemberInfo], AgadirError> in
                do throws(AgadirError) { return .success(try await client.members()) } catch { return .failure(error) }
            }
            await client.close()
            switch result {
            case .some(.success(let members)): return members
            case .some(.failure(let error)) where error.code == .unavailable:
                last = error
                try? await Task.sleep(for: .milliseconds(100))
            case .some(.failure(let error)): throw error
            case .none: throw AgadirError(.unavailable, "node \(name) did not answer MEMBERS within \(timeout)")
            }
        } while clock.now < deadline
        throw AgadirError(last.code, "node \(name) did not answer MEMBERS within \(timeout): \(last.message)")
    }

    /// The MEMBERS answer of every node whose process runs (not paused), by node name;
    /// nodes that fail to answer within `timeout` are left out.
    public func membershipViews(timeout: Duration = .seconds(3)) async throws(AgadirError) -> [String: [MemberInfo]] {
        let running = try status().filter { $0.state == .running }.map(\.name)
        let lab = self
        return await withTaskGroup(of: (String, [MemberInfo]?).self) { group in
            for name in running {
                group.addTask { (name, try? await lab.members(of: name, timeout: timeout)) }
            }
            var views: [String: [MemberInfo]] = [:]
            for await (name, members) in group { if let members { views[name] = members } }
            return views
        }
    }

    /// Waits (at most `timeout`) until `predicate` holds for the membership views of the
    /// running nodes (see `membershipViews`), e.g. "every node but X reports X dead". The
    /// error quotes `description` and the last views.
    public func waitUntil(
        timeout: Duration = .seconds(60), _ description: String,
        _ predicate: @Sendable ([String: [MemberInfo]]) -> Bool
    ) async throws(AgadirError) {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var views: [String: [MemberInfo]] = [:]
        repeat {
            views = try await membershipViews()
            if predicate(views) { return }
            try? await Task.sleep(for: .milliseconds(250))
        } while clock.now < deadline
        let summary = views.keys.sorted().map { name in
            "\(name) sees " + (views[name] ?? []).map { "\($0.nodeID) \($0.state)" }.joined(separator: ", ")
        }
        throw AgadirError(
            .unavailable,
            "timed out after \(timeout) waiting until \(description); last views: \(summary.joined(separator: "; "))")
    }

    /// Waits (at most `timeout`) until every running node's MEMBERS lists every running
    /// node alive; the error names the nodes whose view is not there yet.
    public func waitConverged(timeout: Duration = .seconds(60)) async throws(AgadirError) {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var lagging: [String] = []
        repeat {
            let running = try status().filter { $0.state == .running }.map(\.name)
            let views = try await membershipViews()
            lagging = Self.notConverged(running: running, views: views)
            if lagging.isEmpty { return }
            try? await Task.sleep(for: .milliseconds(250))
        } while clock.now < deadline
        throw AgadirError(
            .unavailable,
            "the lab did not converge within \(timeout): \(lagging.joined(separator: "; ")); see `agadir-lab logs NODE`"
        )
    }

    /// For each running node whose view lacks a running node alive: what it is missing.
    static func notConverged(running: [String], views: [String: [MemberInfo]]) -> [String] {
        running.compactMap { name in
            guard let view = views[name] else { return "\(name) does not answer MEMBERS" }
            let missing = running.filter { other in
                !view.contains { $0.nodeID == other && $0.state == MemberInfo.State.alive }
            }
            return missing.isEmpty ? nil : "\(name) does not see \(missing.joined(separator: ", ")) alive"
        }
    }
}

/// Runs `body` in its own task; nil if it has not finished after `timeout` (the task is
/// then cancelled and left to end on its own: a hung call cannot hang the caller).
func withDeadline<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async -> T) async -> T? {
    let waiter = Locked<CheckedContinuation<T?, Never>?>(nil)
    let timer = Locked<Task<Void, Never>?>(nil)
    @Sendable func finish(_ value: T?) {
        let c = waiter.withLock { w in
            defer { w = nil }
            return w
        }
        c?.resume(returning: value)
    }
    return await withCheckedContinuation { (c: CheckedContinuation<T?, Never>) in
        waiter.withLock { $0 = c }
        let work = Task {
            finish(await body())
            timer.value?.cancel()
        }
        timer.withLock {
            $0 = Task {
                // Cancelled means the work finished first.
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                work.cancel()
                finish(nil)
            }
        }
    }
}
