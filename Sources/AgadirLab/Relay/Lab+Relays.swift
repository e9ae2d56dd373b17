import AgadirCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// Network faults between the lab's nodes (docs/lab.md, "Network faults"): in a lab made
// with relays, every node dials its peers through a relay (its address map), and the relay
// applies `ROOT/faults.json`, which `partition`, `heal` and `link` write.

extension Lab {
    var faultsFile: URL { root.appendingPathComponent("faults.json") }

    /// The faults in `ROOT/faults.json` (none when absent or unreadable).
    static func loadFaults(root: URL) -> LabFaults {
        guard let data = FileManager.default.contents(atPath: root.appendingPathComponent("faults.json").path) else {
            return LabFaults()
        }
        return (try? JSONDecoder().decode(LabFaults.self, from: data)) ?? LabFaults()
    }

    /// The faults applied now.
    public func faults() -> LabFaults { Self.loadFaults(root: root) }

    /// Every node and its site, for `PartitionSpec`.
    public func nodeSites() throws(AgadirError) -> [(name: String, site: String)] {
        try state().nodes.map { ($0.name, $0.site) }
    }

    /// Cuts the links between `groups` (node names; both ways unless `oneWay`).
    public func partition(_ groups: [[String]], oneWay: Bool) async throws(AgadirError) {
        try await changeFaults { $0.partition(groups, oneWay: oneWay) }
    }

    /// Ends every cut (delays and losses stay).
    public func heal() async throws(AgadirError) {
        try await changeFaults { $0.heal() }
    }

    /// Ends every cut, delay and loss.
    public func clearFaults() async throws(AgadirError) {
        try await changeFaults { $0 = LabFaults() }
    }

    /// Sets delay, jitter and loss on every link between `a` and `b` (node names), both ways.
    public func link(_ a: [String], _ b: [String], fault: LinkFault) async throws(AgadirError) {
        try fault.validate()
        try await changeFaults { $0.degrade(between: a, and: b, like: fault) }
    }

    private func changeFaults(_ change: (inout LabFaults) -> Void) async throws(AgadirError) {
        try await store.locked { () throws(AgadirError) in
            let state = try store.load()
            guard state.relays == true else {
                throw AgadirError(
                    .invalidArgument,
                    "this lab has no relays between its nodes; create it with `agadir-lab up --relays` (a new --root)")
            }
            var faults = faults()
            change(&faults)
            faults.generation += 1
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            do {
                let tmp = faultsFile.path + ".tmp"
                try enc.encode(faults).write(to: URL(fileURLWithPath: tmp))
                guard rename(tmp, faultsFile.path) == 0 else { throw AgadirError(.ioError, "rename: errno \(errno)") }
            } catch let e as AgadirError {
                throw e
            } catch {
                throw AgadirError(.ioError, "cannot write \(faultsFile.path): \(error)")
            }
            // In force once the relay says so (it reads the file ten times a second).
            guard let pid = state.relayPid, ProcessControl.state(of: pid, marker: root.path) != .gone else { return }
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(5)
            while Self.relayApplied(root: root, pid: pid) < faults.generation {
                guard clock.now < deadline else {
                    throw AgadirError(
                        .unavailable,
                        "the lab's relay did not apply the change within 5 s; see \(root.appendingPathComponent("relay.log").path)"
                    )
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// The faults generation the relay process `pid` applies (`relay-ready.json`).
    static func relayApplied(root: URL, pid: Int32) -> Int {
        guard let data = FileManager.default.contents(atPath: root.appendingPathComponent("relay-ready.json").path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            (object["pid"] as? NSNumber)?.int32Value == pid
        else { return -1 }
        return (object["faults"] as? NSNumber)?.intValue ?? -1
    }

    /// Before a node starts (the caller holds the lock): a route for every ordered pair of
    /// nodes with ports, the relay process running with all of them bound, and every
    /// node's address map written.
    func prepareRelays(_ state: inout LabState) async throws(AgadirError) {
        var routes = state.relayRoutes ?? []
        for a in state.nodes where a.clientPort > 0 {
            for b in state.nodes where b.name != a.name && b.clientPort > 0 {
                if let i = routes.firstIndex(where: { $0.from == a.name && $0.to == b.name }) {
                    routes[i].dataTarget = b.clientPort
                    routes[i].gossipTarget = b.peerPort
                    continue
                }
                var used = Self.usedPorts(state).union(routes.flatMap { [$0.dataPort, $0.gossipPort] })
                let data = try Self.freePort(udp: false, avoiding: used)
                used.insert(data)
                let gossip = try Self.freePort(udp: true, avoiding: used)
                routes.append(
                    LabRelayRoute(
                        from: a.name, to: b.name, dataPort: data, gossipPort: gossip, dataTarget: b.clientPort,
                        gossipTarget: b.peerPort))
            }
        }
        state.relayRoutes = routes
        try store.save(state)
        let marker = root.path
        if state.relayPid.map({ ProcessControl.state(of: $0, marker: marker) == .gone }) ?? true {
            let log = root.appendingPathComponent("relay.log").path
            unlink(root.appendingPathComponent("relay-ready.json").path)
            state.relayPid = try ProcessControl.spawn(
                executable: try AgadirBinaries.path(of: "agadir-lab"), arguments: ["relay", "--root", root.path],
                logPath: log, newSession: true)
            try store.save(state)
        }
        let wanted = Set(routes.map(\.name))
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(15)
        while !wanted.isSubset(of: Self.relayReady(root: root, pid: state.relayPid ?? 0)) {
            guard clock.now < deadline else {
                throw AgadirError(
                    .unavailable,
                    "the lab's relay did not bind its routes within 15 s; see \(root.appendingPathComponent("relay.log").path)"
                )
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        for node in state.nodes {
            var lines = ["# FOR TESTS ONLY: written by agadir-lab; this node dials its peers through the lab's relays"]
            for r in routes where r.from == node.name {
                lines.append("127.0.0.1:\(r.dataTarget) 127.0.0.1:\(r.dataPort)")
                lines.append("127.0.0.1:\(r.gossipTarget) 127.0.0.1:\(r.gossipPort)")
            }
            let path = LabCommandLine.addressMapFile(node)
            do {
                try (lines.joined(separator: "\n") + "\n").write(
                    toFile: path + ".tmp", atomically: false, encoding: .utf8)
                guard rename(path + ".tmp", path) == 0 else { throw AgadirError(.ioError, "rename: errno \(errno)") }
            } catch let e as AgadirError {
                throw e
            } catch {
                throw AgadirError(.ioError, "cannot write \(path): \(error)")
            }
        }
    }

    /// The routes the relay process `pid` has bound (`relay-ready.json`).
    static func relayReady(root: URL, pid: Int32) -> Set<String> {
        guard let data = FileManager.default.contents(atPath: root.appendingPathComponent("relay-ready.json").path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            (object["pid"] as? NSNumber)?.int32Value == pid, let routes = object["routes"] as? [String]
        else { return [] }
        return Set(routes)
    }

    /// Stops the relay process (the caller holds the lock).
    func stopRelay(_ state: inout LabState) async {
        guard let pid = state.relayPid else { return }
        let marker = root.path
        if ProcessControl.signal(pid, SIGTERM, marker: marker),
            !(await ProcessControl.waitUntilGone(pid, marker: marker, timeout: .seconds(5)))
        {
            ProcessControl.signal(pid, SIGKILL, marker: marker)
            _ = await ProcessControl.waitUntilGone(pid, marker: marker, timeout: .seconds(5))
        }
        state.relayPid = nil
        try? store.save(state)
    }
}
