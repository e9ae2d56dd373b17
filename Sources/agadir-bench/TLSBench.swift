import AgadirClient
import AgadirCore
import AgadirIdentity
import AgadirLab
import AgadirWire
import Foundation

/// Security on against off, in the same run (docs/benchmarks.md, "TLS and signing"): a node
/// (and a lab) in clear text whose clients sign headers only, against a node (and a lab)
/// with certificates, TLS 1.3 on every connection, peer links included, whose clients sign
/// the body too (CONTENT_SHA256). Runs alternate so drift hits both alike. Anonymous
/// access cannot be turned on: "off" is the cheapest the node accepts.
struct TLSComparison {
    let quick: Bool
    let repeats: Int
    let spawned: SpawnedProcesses
    let log: @Sendable (String) -> Void

    struct Row {
        var setup: String
        var op: String
        var size: Int
        var concurrency: Int
        var off: WorkloadResult
        var on: WorkloadResult
    }

    /// One side: its clients (one per node), and how to freeze and thaw its processes
    /// (SIGSTOP, SIGCONT), so the side not measured takes no CPU (its background workers
    /// would otherwise run on the same two cores).
    struct Side {
        var on: Bool
        var clients: [AgadirClient]
        var policy: String?
        var freeze: @Sendable () async throws -> Void
        var thaw: @Sendable () async throws -> Void
    }

    static let plans: [(size: Int, concurrency: Int, ops: Int)] = [
        (4096, 16, 4000), (1 << 20, 16, 512), (64 << 20, 4, 16),
    ]

    func run() async throws -> [Row] {
        var rows = try await single()
        rows += try await lab()
        return rows
    }

    /// Two standalone nodes: one in clear text, one with a certificate.
    func single() async throws -> [Row] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "agadir-bench-pki-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ca = try ClusterCA.create(clusterName: "agadir")
        let node = try ClusterCA.issue(
            NodeIdentity(nodeID: "bench-tls", site: "default"), hosts: ["127.0.0.1"],
            caCertificatePEM: ca.certificatePEM,
            caPrivateKeyPEM: ca.privateKeyPEM)
        let files = [
            ("ca.crt", ca.certificatePEM), ("node.crt", node.certificatePEM), ("node.key", node.privateKeyPEM),
        ]
        for (name, text) in files {
            try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        let clear = try NodeProcess(logLevel: "warning")
        let secured = try NodeProcess(
            extraArguments: [
                "--node-id", "bench-tls", "--site", "default", "--cert-file",
                dir.appendingPathComponent("node.crt").path,
                "--key-file", dir.appendingPathComponent("node.key").path, "--ca-file",
                dir.appendingPathComponent("ca.crt").path,
            ], logLevel: "warning")
        for n in [clear, secured] {
            spawned.adopt(n)
            try n.start()
        }
        log("TLS comparison, single node: clear text at \(clear.endpoint), TLS at \(secured.endpoint)")
        func side(_ node: NodeProcess, on: Bool) throws -> Side {
            let pid = node.pid
            return Side(
                on: on, clients: [try client(node.endpoint, try node.rootCredentials(), on: on)], policy: nil,
                freeze: { kill(pid, SIGSTOP) }, thaw: { kill(pid, SIGCONT) })
        }
        let (off, on) = (try side(clear, on: false), try side(secured, on: true))
        let rows = try await compare(off, on, setup: "single node")
        for c in off.clients + on.clients { await c.close() }
        clear.cleanUp()
        secured.cleanUp()
        return rows
    }

    /// Two labs of three sites, one node each, RF 3 at QUORUM: one in clear text, one with
    /// the lab's PKI (mutual TLS between the nodes too).
    func lab() async throws -> [Row] {
        var sides: [Side] = []
        var labs: [Lab] = []
        for plaintext in [true, false] {
            let root = Lab.temporaryRoot(prefix: "agadir-bench-tls")
            spawned.adopt(labRoot: root)
            let lab = try await Lab.create(
                root: root, sites: ClusterBench.sites, nodesPerSite: 1, clusterName: "agadir-bench",
                extraArguments: ["--log-level", "warning"], plaintext: plaintext)
            try await lab.up()
            try await lab.applyLayout(policies: [ClusterBench.policy])
            let endpoints = try lab.status().compactMap(\.clientEndpoint)
            let credentials = try lab.rootCredentials()
            sides.append(
                Side(
                    on: !plaintext, clients: try endpoints.map { try client($0, credentials, on: !plaintext) },
                    policy: ClusterBench.policy.name,
                    freeze: { for n in try lab.status() where n.state == .running { try await lab.pause(n.name) } },
                    thaw: {
                        let paused = try lab.status().filter { $0.state == .paused }.map(\.name)
                        guard !paused.isEmpty else { return }
                        for n in paused { try await lab.resume(n) }
                        try await lab.waitConverged(timeout: .seconds(60))
                    }))
            labs.append(lab)
            log("TLS comparison, lab \(plaintext ? "in clear text" : "with TLS") up in \(root.path)")
        }
        let rows = try await compare(sides[0], sides[1], setup: "lab (3 sites, RF 3, QUORUM)")
        for side in sides { for c in side.clients { await c.close() } }
        for lab in labs {
            _ = try? await lab.down(timeout: .seconds(15))
            try? FileManager.default.removeItem(at: lab.root)
        }
        return rows
    }

    func client(_ endpoint: String, _ credentials: Credentials, on: Bool) throws -> AgadirClient {
        var c = ClientConfiguration()
        c.connections = 4
        try c.use(credentials)  // TLS when the credentials name the CA (the secured side)
        c.signPayloads = on
        return try AgadirClient(endpoint: endpoint, configuration: c)
    }

    func compare(_ off: Side, _ on: Side, setup: String) async throws -> [Row] {
        var rows: [Row] = []
        for plan in Self.plans {
            let ops = quick ? max(plan.concurrency, plan.ops / 8) : plan.ops
            var runs: [String: [Bool: [WorkloadResult]]] = ["PUT": [:], "GET": [:]]
            for r in 0..<repeats {
                for (side, other) in [(off, on), (on, off)] {
                    try await other.freeze()
                    try await side.thaw()
                    let runner = try WorkloadRunner(
                        clients: side.clients, quick: quick, only: [plan.size], repeats: 1, log: log,
                        policy: side.policy, consistency: side.policy == nil ? nil : .quorum)
                    let bucket = "tls-\(runner.run)-\(plan.size)-\(r)-\(side.on ? "on" : "off")"
                    try await side.clients[0].createBucket(bucket, policy: side.policy)
                    let base = BenchData.random(plan.size, seed: 31)
                    let tag = side.on ? "TLS + body signed" : "clear + headers signed"
                    let put = try await runner.measure(
                        op: "PUT", size: plan.size, concurrency: plan.concurrency, ops: ops, data: tag
                    ) { i in
                        let body =
                            plan.size >= 64 * 1024
                            ? BenchData.stamp(base, index: i, run: runner.run) : runner.stampSmall(base, i)
                        try await runner.putClient(i).put(
                            bucket: bucket, key: "\(i)", data: body, consistency: runner.consistency)
                    }
                    log("\(setup): " + runner.line(put))
                    let get = try await runner.measure(
                        op: "GET", size: plan.size, concurrency: plan.concurrency, ops: ops, data: tag
                    ) { i in
                        let d = try await runner.getClient(i).download(
                            bucket: bucket, key: "\(i)", consistency: runner.consistency)
                        var n = 0
                        while let b = try await d.body.next() { n += b.readableBytes }
                        guard n == plan.size else {
                            throw AgadirError(.bodyLengthMismatch, "GET returned \(n) bytes, expected \(plan.size)")
                        }
                    }
                    log("\(setup): " + runner.line(get))
                    runs["PUT", default: [:]][side.on, default: []].append(put)
                    runs["GET", default: [:]][side.on, default: []].append(get)
                }
            }
            func median(_ all: [WorkloadResult]) -> WorkloadResult {
                all.sorted { $0.opsPerSecond < $1.opsPerSecond }[all.count / 2]
            }
            try await off.thaw()
            try await on.thaw()
            for op in ["PUT", "GET"] {
                guard let offRuns = runs[op]?[false], let onRuns = runs[op]?[true] else { continue }
                rows.append(
                    Row(
                        setup: setup, op: op, size: plan.size, concurrency: plan.concurrency, off: median(offRuns),
                        on: median(onRuns)))
            }
        }
        return rows
    }

    static func markdown(_ rows: [Row], repeats: Int) -> String {
        var s = "\n### TLS and signing: on against off, same run (median of \(repeats))\n\n"
        s +=
            "off: clear text, headers signed, body not; on: TLS 1.3 (mutual between nodes), headers and body signed.\n\n"
        s += "| setup | op | object | concurrency | off MiB/s | on MiB/s | change | p99 ms off / on |\n"
        s += "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
        for r in rows {
            let change = (r.on.mibPerSecond / max(r.off.mibPerSecond, 1e-9) - 1) * 100
            s += String(
                format: "| %@ | %@ | %@ | %d | %.1f | %.1f | %+.1f %% | %.2f / %.2f |\n", r.setup, r.op,
                Report.size(r.size), r.concurrency, r.off.mibPerSecond, r.on.mibPerSecond, change, r.off.p99Millis,
                r.on.p99Millis)
        }
        return s
    }
}
