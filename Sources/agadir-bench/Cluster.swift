import AgadirClient
import AgadirCore
import AgadirLab
import AgadirWire
import Foundation
import Synchronization

/// The processes and directories the benchmark started, stopped and removed once, by
/// whichever comes first: the end of the run, an error, or SIGINT/SIGTERM. Lab nodes run
/// in sessions of their own (a Ctrl-C in the terminal does not reach them), so the
/// benchmark must stop them itself.
final class SpawnedProcesses: Sendable {
    private struct State {
        var nodes: [NodeProcess] = []
        var lab: Lab?
        var labRoot: URL?
        var cleanup: Task<Void, Never>?
        var signal: Int32?
    }
    private let state = Mutex(State())

    func adopt(_ node: NodeProcess) { state.withLock { $0.nodes.append(node) } }

    /// The lab's root is adopted before the lab is created (a failed creation may leave it).
    func adopt(labRoot: URL) { state.withLock { $0.labRoot = labRoot } }
    func adopt(_ lab: Lab) { state.withLock { $0.lab = lab } }

    /// The signal that is ending the program, if any (requests then fail: not worth reporting).
    var signalReceived: Int32? { state.withLock { $0.signal } }

    /// Stops every adopted process and removes their directories; later calls wait for the
    /// first one's work and do nothing more.
    func cleanUp(log: @escaping @Sendable (String) -> Void) async {
        let task = state.withLock { s -> Task<Void, Never> in
            if let running = s.cleanup { return running }
            let (nodes, lab, root) = (s.nodes, s.lab, s.labRoot)
            let t = Task<Void, Never> {
                for node in nodes { node.cleanUp() }
                var labStopped = true
                if let lab {
                    do throws(AgadirError) {
                        try await lab.down(timeout: .seconds(20))
                        log("lab stopped")
                    } catch {
                        labStopped = false
                        log(
                            "cannot stop the lab at \(lab.root.path): \(error.message); look with `agadir-lab status --root \(lab.root.path)`"
                        )
                    }
                }
                if let root, labStopped {
                    do {
                        if FileManager.default.fileExists(atPath: root.path) {
                            try FileManager.default.removeItem(at: root)
                        }
                    } catch {
                        log("cannot remove \(root.path): \(error)")
                    }
                }
            }
            s.cleanup = t
            return t
        }
        await task.value
    }

    /// SIGINT and SIGTERM clean up and end the program (exit status 128 + the signal).
    /// Keep the returned sources for as long as they should act; cancel them at the end.
    func stopOnSignals(log: @escaping @Sendable (String) -> Void) -> [any DispatchSourceSignal] {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        return [SIGINT, SIGTERM].map { sig in
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self] in
                self.state.withLock { $0.signal = sig }
                Task {
                    log(
                        "\(sig == SIGINT ? "SIGINT" : "SIGTERM") received: stopping every process the benchmark started"
                    )
                    await self.cleanUp(log: log)
                    exit(128 + sig)
                }
            }
            source.resume()
            return source
        }
    }
}

/// `agadir-bench --cluster`: the single-node workloads on a spawned node, then the same
/// workloads on a lab of real agadird processes (three sites by default) with a bucket of
/// policy `bench` (RF 3, one replica per site), QUORUM, and a report that sets them side by side.
struct ClusterBench {
    static let sites = ["benguerir", "casablanca", "settat"]
    static let policy = LabPolicy(name: "bench", replicationFactor: 3, sites: "any", minSites: 3)
    /// The aims of issue 4: cluster throughput as a share of the single node's.
    static let putAim = 40.0
    static let getAim = 70.0

    let quick: Bool
    let only: Set<Int>?
    let repeats: Int
    let skipLimits: Bool
    let scratchDir: String?
    let nodesPerSite: Int
    let spawned: SpawnedProcesses
    let log: @Sendable (String) -> Void

    /// Runs both halves and returns the report; the caller cleans `spawned` up.
    func run() async throws -> String {
        // Single node, as `--spawn` does.
        let node = try NodeProcess(logLevel: "warning")
        spawned.adopt(node)
        try node.start()
        let singleEndpoint = node.endpoint
        log(
            "spawned agadird pid \(node.pid) at \(singleEndpoint), data in \(node.dataDir.path), log \(node.logFile.path)"
        )
        let limits =
            skipLimits
            ? MachineLimits.Figures()
            : MachineLimits.measure(scratchDir: scratchDir ?? node.dataDir.path, quick: quick, log: log)
        warnIfShortOfSpace(at: node.dataDir.path, copies: 1)
        let single = try await workloads(
            endpoints: [singleEndpoint], credentials: try node.rootCredentials(), policy: nil, consistency: nil,
            label: "single: ")
        // Stopped before the cluster starts: it must not hold memory or page cache meanwhile.
        node.cleanUp()

        // The lab.
        let root = Lab.temporaryRoot(prefix: "agadir-bench-lab")
        spawned.adopt(labRoot: root)
        warnIfShortOfSpace(at: root.deletingLastPathComponent().path, copies: Self.policy.replicationFactor)
        log("creating a lab in \(root.path): \(Self.sites.joined(separator: ", ")) x \(nodesPerSite)")
        let lab = try await Lab.create(
            root: root, sites: Self.sites, nodesPerSite: nodesPerSite, clusterName: "agadir-bench",
            // Clear text, as the figures of issue 15 were measured; `--compare-tls` measures what TLS costs.
            extraArguments: ["--log-level", "warning"], plaintext: true)
        spawned.adopt(lab)
        try await lab.up()
        let version = try await lab.applyLayout(policies: [Self.policy])
        let nodes = try lab.status()
        let described = nodes.map { "\($0.name) pid \($0.pid ?? 0) at \($0.clientEndpoint ?? "?")" }
        log("lab up: layout version \(version), nodes \(described.joined(separator: ", "))")
        let endpoints = nodes.compactMap(\.clientEndpoint)
        guard endpoints.count == nodes.count else {
            throw AgadirError(.unavailable, "a node of the lab has no client endpoint: \(nodes.map(\.name))")
        }
        let cluster = try await workloads(
            endpoints: endpoints, credentials: try lab.rootCredentials(), policy: Self.policy.name,
            consistency: .quorum, label: "cluster: ")

        let names = nodes.map(\.name).joined(separator: ", ")
        return ClusterReport.markdown(
            limits: limits, single: single, cluster: cluster,
            header: [
                "single node: \(singleEndpoint) (spawned by the benchmark, same machine; standalone, no layout)",
                "cluster: \(nodes.count) agadird on this machine (\(names)), in clear text (no TLS), layout version \(version); bucket policy "
                    + "`\(Self.policy.name)`: RF \(Self.policy.replicationFactor), sites `\(Self.policy.sites)`, at least "
                    + "\(Self.policy.minSites) sites; QUORUM writes and reads",
                "clients: one AgadirClient per node (4 connections each); object i is PUT through node i mod \(nodes.count) "
                    + "and read through the next node",
            ] + (quick ? ["--quick workloads (a smoke test: the figures mean nothing)"] : []))
    }

    /// Logs a warning when the file system of `dir` has less free space than the workloads
    /// may write there (`copies` of every object; compressible data counted uncompressed).
    func warnIfShortOfSpace(at dir: String, copies: Int) {
        var fs = statvfs()
        guard statvfs(dir, &fs) == 0 else { return }
        let free = Double(fs.f_bavail) * Double(fs.f_frsize)
        let needed = Double(WorkloadRunner.bytesWritten(quick: quick, only: only, repeats: repeats) * copies)
        if free < needed {
            log(
                String(
                    format: "warning: the workloads may write up to %.1f GiB under %@ and it has %.1f GiB free",
                    needed / 1_073_741_824, dir, free / 1_073_741_824))
        }
    }

    /// The workloads with one client (4 connections) per endpoint.
    func workloads(
        endpoints: [String], credentials: Credentials, policy: String?, consistency: ConsistencyLevel?, label: String
    ) async throws -> [WorkloadResult] {
        var config = ClientConfiguration()
        config.connections = 4
        try config.use(credentials)
        var clients: [AgadirClient] = []
        do {
            for e in endpoints { clients.append(try AgadirClient(endpoint: e, configuration: config)) }
            let runner = try WorkloadRunner(
                clients: clients, quick: quick, only: only, repeats: repeats, log: log, policy: policy,
                consistency: consistency,
                label: label)
            let results = try await runner.runAll()
            for c in clients { await c.close() }
            return results
        } catch {
            for c in clients { await c.close() }
            throw error
        }
    }
}

enum ClusterReport {
    static func markdown(
        limits: MachineLimits.Figures, single: [WorkloadResult], cluster: [WorkloadResult], header: [String]
    ) -> String {
        var s = Report.header(header, runs: single.first?.runs ?? 1)
        s += Report.limitsTable(limits)
        s += "### Cluster versus single node (issue 4)\n\n"
        s += "Throughput in MiB/s (ops/s for 4 KiB objects); latencies in ms. Aim: cluster PUT >= "
        s += String(
            format: "%.0f%% and GET >= %.0f%% of the single node's throughput in the same run.\n\n",
            ClusterBench.putAim, ClusterBench.getAim)
        s +=
            "| op | data | object | concurrency | ops | single node | cluster | cluster / single | aim | single p50 / p99 | cluster p50 / p99 |\n"
        s += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        var tally: [String: (met: Int, rows: Int)] = [:]
        for a in single {
            let same = { (r: WorkloadResult) in
                r.op == a.op && r.data == a.data && r.objectBytes == a.objectBytes && r.concurrency == a.concurrency
            }
            guard let b = cluster.first(where: same) else { continue }
            let small = a.objectBytes < 1 << 20
            func rate(_ r: WorkloadResult) -> String {
                small ? String(format: "%.0f ops/s", r.opsPerSecond) : String(format: "%.1f MiB/s", r.mibPerSecond)
            }
            let share = 100 * b.opsPerSecond / max(a.opsPerSecond, 1e-9)
            let aim = a.op == "PUT" ? ClusterBench.putAim : ClusterBench.getAim
            let met = share >= aim
            tally[a.op, default: (0, 0)].rows += 1
            if met { tally[a.op, default: (0, 0)].met += 1 }
            s += String(
                format: "| %@ | %@ | %@ | %d | %d | %@ | %@ | %.0f%% | >= %.0f%%: %@ | %.2f / %.2f | %.2f / %.2f |\n",
                a.op, a.data,
                Report.size(a.objectBytes), a.concurrency, a.ops, rate(a), rate(b), share, aim, met ? "met" : "not met",
                a.p50Millis,
                a.p99Millis, b.p50Millis, b.p99Millis)
        }
        s += "\n"
        for op in ["PUT", "GET"] {
            if let t = tally[op] { s += "- \(op) rows meeting the aim: \(t.met) of \(t.rows)\n" }
        }
        s += "\n### Single node against the targets of issue 2\n\n" + Report.targets(limits: limits, results: single)
        return s
    }
}
