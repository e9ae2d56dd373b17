import AgadirClient
import AgadirCore
import AgadirLab
import AgadirWire
import ArgumentParser
import Foundation
import Synchronization

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agadir-bench",
        abstract: "Measure an Agadir node against the limits of this machine, and print a markdown report.",
        discussion: """
            Against a running node (--endpoint) or one it starts itself (--spawn, data in a temporary \
            directory, stopped at the end). --cluster runs the workloads on a spawned node, then on a lab \
            of agadird processes (three sites, RF 3, QUORUM) and compares the two. Build with -c release: \
            debug figures mean nothing.
            """)

    @Option(name: .long, help: "Node endpoint HOST:PORT.") var endpoint: String?
    @Flag(name: .long, help: "Start an agadird (next to this executable) in a temporary directory.") var spawn = false
    @Flag(name: .long, help: "Smaller workloads (a smoke test of the benchmark itself).") var quick = false
    @Option(name: .long, help: "Directory for the disk-limit measurements (default: the spawned node's, else /tmp).")
    var scratchDir: String?
    @Option(name: .long, help: "Write the markdown report to this file too.") var output: String?
    @Option(name: .long, help: "Only these object sizes in bytes, comma-separated (default 4096,1048576,67108864).")
    var sizes: String?
    @Flag(name: .long, help: "Skip measuring the machine's limits.") var skipLimits = false
    @Flag(
        name: .long,
        help:
            "Single node: also PUT with the body covered by the signature and without, alternating, in the same run (4 KiB c16, 1 MiB c16, 64 MiB c4)."
    )
    var comparePayloadSigning = false
    @Flag(
        name: .long,
        help: """
            Compare security on against off in the same run: a node and a lab (3 sites, RF 3) with certificates \
            (TLS 1.3, body signed) against the same in clear text (headers signed), PUT and GET of 4 KiB c16, \
            1 MiB c16, 64 MiB c4.
            """)
    var compareTLS = false
    @Option(name: .long, help: "Run each workload this many times and report the median run (this machine is noisy).")
    var repeats = 1
    @Flag(
        name: .long,
        help: """
            Run the workloads on a spawned node, then on a lab of agadird processes (sites benguerir, casablanca, \
            settat; bucket policy RF 3, one replica per site; QUORUM), and report the cluster/single ratios.
            """)
    var cluster = false
    @Option(name: .long, help: "With --cluster: nodes per site (1...32).") var clusterNodesPerSite = 1
    @Flag(
        name: .long,
        help: """
            Measure the rebalance on a lab of six nodes in three sites loaded with data: growth by one node unthrottled \
            (throughput against loopback), then by another throttled while a foreground workload runs (its latency against the idle cluster).
            """)
    var rebalance = false
    @Option(name: .long, help: "With --rebalance: the throttled growth's intra-site rate, bytes/s.") var rebalanceIntra:
        UInt64 = 50_000_000
    @Option(name: .long, help: "With --rebalance: the throttled growth's inter-site rate, bytes/s.") var rebalanceInter:
        UInt64 = 20_000_000

    func validate() throws {
        if compareTLS, cluster || rebalance || comparePayloadSigning || endpoint != nil {
            throw ValidationError("--compare-tls spawns its own nodes and labs; run it alone")
        }
        if comparePayloadSigning, cluster || rebalance {
            throw ValidationError("--compare-payload-signing runs on a single node (--spawn or --endpoint)")
        }
        if rebalance {
            guard !cluster, endpoint == nil, !spawn else {
                throw ValidationError("--rebalance runs its own lab; it takes no --cluster, --endpoint or --spawn")
            }
        }
        if cluster {
            guard endpoint == nil else {
                throw ValidationError("--cluster spawns its single node; it does not take --endpoint")
            }
            guard (1...32).contains(clusterNodesPerSite) else {
                throw ValidationError("--cluster-nodes-per-site must be 1...32")
            }
        }
    }

    func run() async throws {
        let log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data("bench: \($0)\n".utf8)) }
        let spawned = SpawnedProcesses()
        let signals = spawned.stopOnSignals(log: log)
        defer { for s in signals { s.cancel() } }
        let report: String
        do {
            if compareTLS {
                let limits =
                    skipLimits
                    ? MachineLimits.Figures()
                    : MachineLimits.measure(scratchDir: scratchDir ?? NSTemporaryDirectory(), quick: quick, log: log)
                let rows = try await TLSComparison(
                    quick: quick, repeats: max(1, repeats), spawned: spawned, log: log
                ).run()
                report =
                    Report.header(
                        [
                            "nodes and labs spawned by the benchmark, same machine"
                                + (quick ? "; --quick workloads" : "")
                        ],
                        runs: max(1, repeats)) + Report.limitsTable(limits)
                    + TLSComparison.markdown(rows, repeats: max(1, repeats))
            } else if rebalance {
                report = try await RebalanceBench(
                    quick: quick, skipLimits: skipLimits, throttledIntra: rebalanceIntra,
                    throttledInter: rebalanceInter, spawned: spawned,
                    log: log
                ).run()
            } else {
                report =
                    try await cluster ? runCluster(spawned: spawned, log: log) : runSingle(spawned: spawned, log: log)
            }
        } catch {
            // After SIGINT/SIGTERM requests fail because the nodes are going: not an error to report.
            if let sig = spawned.signalReceived {
                await spawned.cleanUp(log: log)
                Foundation.exit(128 + sig)
            }
            log(
                "failed: \((error as? AgadirError)?.message ?? "\(error)"); stopping every process the benchmark started"
            )
            await spawned.cleanUp(log: log)
            throw error
        }
        await spawned.cleanUp(log: log)
        print(report)
        if let output { try report.write(toFile: output, atomically: true, encoding: .utf8) }
    }

    func runCluster(spawned: SpawnedProcesses, log: @escaping @Sendable (String) -> Void) async throws -> String {
        let bench = ClusterBench(
            quick: quick, only: onlySizes, repeats: max(1, repeats), skipLimits: skipLimits, scratchDir: scratchDir,
            nodesPerSite: clusterNodesPerSite, spawned: spawned, log: log)
        return try await bench.run()
    }

    /// `--spawn` or `--endpoint`: one node.
    func runSingle(spawned: SpawnedProcesses, log: @escaping @Sendable (String) -> Void) async throws -> String {
        var node: NodeProcess? = nil
        let target: String
        if spawn {
            let n = try NodeProcess(logLevel: "warning")
            spawned.adopt(n)  // stopped and removed by the caller's clean-up
            node = n
            try n.start()
            target = n.endpoint
            log("spawned agadird pid \(n.pid) at \(n.endpoint), data in \(n.dataDir.path), log \(n.logFile.path)")
        } else {
            target = endpoint ?? ProcessInfo.processInfo.environment["AGADIR_ENDPOINT"] ?? "127.0.0.1:7480"
        }
        let scratch = scratchDir ?? node?.dataDir.path ?? NSTemporaryDirectory()

        let limits =
            skipLimits ? MachineLimits.Figures() : MachineLimits.measure(scratchDir: scratch, quick: quick, log: log)
        var config = ClientConfiguration()
        config.connections = 4
        if let credentials = try node?.rootCredentials() ?? Credentials.fromEnvironment() {
            try config.use(credentials)
        }
        let client = try AgadirClient(endpoint: target, configuration: config)
        let results: [WorkloadResult]
        do {
            let runner = try WorkloadRunner(
                clients: [client], quick: quick, only: onlySizes, repeats: max(1, repeats), log: log)
            results = try await runner.runAll()
        } catch {
            await client.close()
            throw error
        }
        await client.close()
        var report = Report.markdown(limits: limits, results: results, endpoint: target, spawned: spawn, quick: quick)
        if comparePayloadSigning, let credentials = config.credentials {
            let rows = try await SigningComparison(
                endpoint: target, credentials: credentials, quick: quick, repeats: max(1, repeats), log: log
            ).run()
            report += SigningComparison.markdown(rows)
        }
        return report
    }
}

extension Bench {
    var onlySizes: Set<Int>? { sizes.map { Set($0.split(separator: ",").compactMap { Int($0) }) } }
}

struct WorkloadResult {
    var name: String
    var op: String
    var objectBytes: Int
    var concurrency: Int
    var data: String
    var ops: Int
    var seconds: Double
    var p50Millis: Double
    var p99Millis: Double
    var runs = 1

    var opsPerSecond: Double { Double(ops) / max(seconds, 1e-9) }
    var mibPerSecond: Double { Double(ops * objectBytes) / 1_048_576 / max(seconds, 1e-9) }
}

/// Runs each workload: `ops` operations spread over `concurrency` tasks sharing the
/// clients. With several clients (one per node of a cluster) operation `i` goes to
/// client `i % n` for its PUT and to the next client for its GET, so an object is read
/// through another node than the one that coordinated its write.
struct WorkloadRunner: Sendable {
    let clients: [AgadirClient]
    let quick: Bool
    let only: Set<Int>?
    let repeats: Int
    let log: @Sendable (String) -> Void
    /// The bucket's policy (nil: the node's default) and the level of every request
    /// (nil: the policy's default).
    let policy: String?
    let consistency: ConsistencyLevel?
    /// Prefix of the log lines, e.g. "cluster: ".
    let label: String
    let run = UInt64(Date().timeIntervalSince1970 * 1000)

    init(
        clients: [AgadirClient], quick: Bool, only: Set<Int>?, repeats: Int, log: @escaping @Sendable (String) -> Void,
        policy: String? = nil, consistency: ConsistencyLevel? = nil, label: String = ""
    ) throws(AgadirError) {
        guard !clients.isEmpty else { throw AgadirError(.invalidArgument, "the benchmark needs at least one client") }
        self.clients = clients
        self.quick = quick
        self.only = only
        self.repeats = repeats
        self.log = log
        self.policy = policy
        self.consistency = consistency
        self.label = label
    }

    func putClient(_ i: Int) -> AgadirClient { clients[i % clients.count] }
    func getClient(_ i: Int) -> AgadirClient { clients[(i + 1) % clients.count] }

    func runAll() async throws -> [WorkloadResult] {
        let bucket = "bench-\(run)"
        try await clients[0].createBucket(bucket, policy: policy)
        var results: [WorkloadResult] = []
        for kind in Self.kinds {
            for (size, levels, opsBase) in Self.plans(quick: quick) where only?.contains(size) ?? true {
                let base = kind == "incompressible" ? BenchData.random(size, seed: 11) : BenchData.text(size, seed: 12)
                for c in levels {
                    let ops = Self.ops(opsBase, concurrency: c, quick: quick)
                    var puts: [WorkloadResult] = []
                    var gets: [WorkloadResult] = []
                    for r in 0..<repeats {
                        let prefix = "\(kind)/\(size)/c\(c)/r\(r)"
                        let put = try await measure(op: "PUT", size: size, concurrency: c, ops: ops, data: kind) { i in
                            let unique = i + r * ops
                            let body =
                                size >= 64 * 1024
                                ? BenchData.stamp(base, index: unique, run: run) : stampSmall(base, unique)
                            try await putClient(i).put(
                                bucket: bucket, key: "\(prefix)/\(i)", data: body, consistency: consistency)
                        }
                        log(label + line(put))
                        puts.append(put)
                        let get = try await measure(op: "GET", size: size, concurrency: c, ops: ops, data: kind) { i in
                            let d = try await getClient(i).download(
                                bucket: bucket, key: "\(prefix)/\(i)", consistency: consistency)
                            var n = 0
                            while let b = try await d.body.next() { n += b.readableBytes }
                            guard n == size else {
                                throw AgadirError(.bodyLengthMismatch, "GET returned \(n) bytes, expected \(size)")
                            }
                        }
                        log(label + line(get))
                        gets.append(get)
                    }
                    results.append(median(puts))
                    results.append(median(gets))
                }
            }
        }
        return results
    }

    static let kinds = ["incompressible", "compressible"]

    /// (object size, concurrencies, ops per concurrency level before `--quick` scaling)
    static func plans(quick: Bool) -> [(Int, [Int], Int)] {
        [
            (4096, [1, 16, 64], quick ? 500 : 4000),
            (1 << 20, [1, 16, 64], quick ? 64 : 512),
            (64 << 20, [1, 4], quick ? 4 : 16),
        ]
    }

    static func ops(_ base: Int, concurrency: Int, quick: Bool) -> Int { max(concurrency, base / (quick ? 4 : 1)) }

    /// The bytes the PUTs of `runAll` send, counting compressible data at full size: an
    /// upper bound of what one copy of the objects takes on disk (nothing is deleted).
    static func bytesWritten(quick: Bool, only: Set<Int>?, repeats: Int) -> Int {
        var total = 0
        for (size, levels, opsBase) in plans(quick: quick) where only?.contains(size) ?? true {
            for c in levels { total += size * ops(opsBase, concurrency: c, quick: quick) }
        }
        return total * kinds.count * repeats
    }

    /// The run with the median throughput (the report says how many runs there were).
    func median(_ runs: [WorkloadResult]) -> WorkloadResult {
        var r = runs.sorted { $0.opsPerSecond < $1.opsPerSecond }[runs.count / 2]
        r.runs = runs.count
        return r
    }

    func stampSmall(_ base: [UInt8], _ i: Int) -> [UInt8] {
        var b = base
        withUnsafeBytes(of: UInt64(i).bigEndian) { for k in 0..<8 { b[k] = $0[k] } }
        withUnsafeBytes(of: run.bigEndian) { for k in 0..<8 { b[8 + k] = $0[k] } }
        return b
    }

    func line(_ r: WorkloadResult) -> String {
        String(
            format: "%@ %@ %d B c=%d: %.1f MiB/s, %.0f ops/s, p50 %.2f ms, p99 %.2f ms", r.op, r.data, r.objectBytes,
            r.concurrency, r.mibPerSecond, r.opsPerSecond, r.p50Millis, r.p99Millis)
    }

    func measure(
        op: String, size: Int, concurrency: Int, ops: Int, data: String,
        _ body: @escaping @Sendable (Int) async throws -> Void
    ) async throws -> WorkloadResult {
        let next = Locked(0)
        let latencies = Locked<[Double]>([])
        let start = DispatchTime.now().uptimeNanoseconds
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var mine: [Double] = []
                    while true {
                        let i = next.withLock { n in
                            defer { n += 1 }
                            return n
                        }
                        if i >= ops { break }
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        try await body(i)
                        mine.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                    }
                    let done = mine
                    latencies.withLock { $0 += done }
                }
            }
            try await group.waitForAll()
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let sorted = latencies.withLock { $0.sorted() }
        func pct(_ p: Double) -> Double {
            sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
        return WorkloadResult(
            name: "\(op) \(size)", op: op, objectBytes: size, concurrency: concurrency, data: data, ops: ops,
            seconds: seconds,
            p50Millis: pct(0.5), p99Millis: pct(0.99))
    }
}

enum Report {
    static func markdown(
        limits l: MachineLimits.Figures, results: [WorkloadResult], endpoint: String, spawned: Bool, quick: Bool
    ) -> String {
        var s = header(
            [
                "node: \(endpoint)\(spawned ? " (spawned by the benchmark, same machine)" : "")\(quick ? "; --quick workloads" : "")"
            ],
            runs: results.first?.runs ?? 1)
        s += limitsTable(l)
        s += "### Workloads\n\n" + workloadsTable(results)
        s += "\n### Against the targets\n\n" + targets(limits: l, results: results)
        return s
    }

    /// Title, date, machine, command line, `lines`, and how rows are chosen.
    static func header(_ lines: [String], runs: Int) -> String {
        var s = ""
        let date = ISO8601DateFormatter().string(from: Date())
        var uts = utsname()
        uname(&uts)
        let kernel = withUnsafeBytes(of: &uts.release) {
            String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        s += "## agadir-bench report\n\n"
        s += "- date: \(date)\n- machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, "
        s += String(
            format: "%.1f GiB memory, Linux %@\n", Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824,
            kernel)
        let command = ["agadir-bench"] + CommandLine.arguments.dropFirst()
        s += "- command: `\(command.joined(separator: " "))`\n"
        for line in lines { s += "- \(line)\n" }
        s += "- each workload row is the median of \(runs) run(s) by throughput\n\n"
        return s
    }

    static func limitsTable(_ l: MachineLimits.Figures) -> String {
        var s = "### Machine limits (same run)\n\n| limit | value |\n| --- | --- |\n"
        s += String(format: "| loopback TCP, one stream, 1 MiB writes | %.0f MiB/s |\n", l.loopbackMiBps)
        s += String(format: "| sequential write 1 MiB blocks + fsync | %.0f MiB/s |\n", l.seqWriteFsyncMiBps)
        s += String(format: "| 4 KiB write + fdatasync | %.0f /s |\n", l.syncWrites4KiBPerSec)
        s += String(format: "| SHA-256, one core | %.0f MiB/s |\n", l.sha256MiBps)
        s += String(
            format:
                "| AES-256-GCM seal, 16 KiB records (TLS 1.3 negotiates AES-128-GCM here, faster), one core | %.0f MiB/s |\n",
            l.aesGCMMiBps)
        s += String(
            format: "| LZ4 compress text / random, one core | %.0f / %.0f MiB/s |\n", l.lz4CompressTextMiBps,
            l.lz4CompressRandomMiBps)
        s += String(format: "| LZ4 decompress text, one core | %.0f MiB/s |\n", l.lz4DecompressTextMiBps)
        s += String(
            format: "| request signing (canonical GET + HMAC-SHA256), one core | %.0f /s (%.1f µs each) |\n\n",
            l.requestSignaturesPerSec, 1e6 / max(l.requestSignaturesPerSec, 1))
        return s
    }

    static func workloadsTable(_ results: [WorkloadResult]) -> String {
        var s = "| op | data | object | concurrency | ops | MiB/s | ops/s | p50 ms | p99 ms |\n"
        s += "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        for r in results {
            s += String(
                format: "| %@ | %@ | %@ | %d | %d | %.1f | %.0f | %.2f | %.2f |\n", r.op, r.data, size(r.objectBytes),
                r.concurrency,
                r.ops, r.mibPerSecond, r.opsPerSecond, r.p50Millis, r.p99Millis)
        }
        return s
    }

    /// The single-node targets of issue 2.
    static func targets(limits l: MachineLimits.Figures, results: [WorkloadResult]) -> String {
        var s = "| target | reached | limit in this run | share |\n| --- | --- | --- | --- |\n"
        let putLimit = min(l.seqWriteFsyncMiBps, l.sha256MiBps)
        let getLimit = min(l.loopbackMiBps, l.sha256MiBps)
        func best(_ op: String, _ size: Int, _ data: String) -> WorkloadResult? {
            results.filter { $0.op == op && $0.objectBytes == size && $0.data == data }.max {
                $0.mibPerSecond < $1.mibPerSecond
            }
        }
        func ops(_ op: String, _ c: Int) -> Double {
            results.filter {
                $0.op == op && $0.objectBytes == 4096 && $0.concurrency == c && $0.data == "incompressible"
            }.first?.opsPerSecond ?? 0
        }
        if let p = best("PUT", 64 << 20, "incompressible") {
            s += String(
                format:
                    "| PUT 64 MiB incompressible >= 50%% of min(fsync write, SHA-256) | %.0f MiB/s | %.0f MiB/s | %.0f%% |\n",
                p.mibPerSecond, putLimit, 100 * p.mibPerSecond / max(putLimit, 1))
        }
        if let g = best("GET", 64 << 20, "incompressible") {
            s += String(
                format:
                    "| GET 64 MiB incompressible >= 50%% of min(loopback, SHA-256) | %.0f MiB/s | %.0f MiB/s | %.0f%% |\n",
                g.mibPerSecond, getLimit, 100 * g.mibPerSecond / max(getLimit, 1))
        }
        s += String(
            format: "| 4 KiB PUT at concurrency 64 >= 5000 ops/s | %.0f ops/s | %.0f fsyncs/s | |\n", ops("PUT", 64),
            l.syncWrites4KiBPerSec)
        s += String(format: "| 4 KiB GET at concurrency 64 >= 20000 ops/s | %.0f ops/s | | |\n", ops("GET", 64))
        return s
    }

    static func size(_ n: Int) -> String {
        n >= 1 << 20 ? "\(n >> 20) MiB" : n >= 1024 ? "\(n >> 10) KiB" : "\(n) B"
    }
}
