import AgadirClient
import AgadirCore
import AgadirLab
import AgadirWire
import Foundation
import Synchronization

/// `agadir-bench --rebalance`: a six-node lab (three Moroccan sites) loaded with data grows
/// by one node with the rebalance unthrottled (throughput as a share of the loopback
/// limit), then by another with it throttled while a foreground workload runs (its latency
/// against the same workload on the idle cluster).
struct RebalanceBench {
    static let sites = ["benguerir", "casablanca", "settat"]
    static let initial = ["benguerir-1", "benguerir-2", "casablanca-1", "casablanca-2", "settat-1", "settat-2"]

    let quick: Bool
    let skipLimits: Bool
    /// Throttles of the second growth, bytes per second.
    let throttledIntra: UInt64
    let throttledInter: UInt64
    let spawned: SpawnedProcesses
    let log: @Sendable (String) -> Void

    struct Foreground {
        var ops = 0
        var seconds = 0.0
        var putP50 = 0.0, putP99 = 0.0, getP50 = 0.0, getP99 = 0.0
        var failures = 0
    }

    func run() async throws -> String {
        let loopback = skipLimits ? 0 : MachineLimits.loopback(bytes: quick ? 1 << 30 : 4 << 30)
        if !skipLimits { log(String(format: "loopback TCP: %.0f MiB/s", loopback)) }
        let root = Lab.temporaryRoot(prefix: "agadir-bench-rebalance")
        spawned.adopt(labRoot: root)
        let lab = try await Lab.create(
            root: root, sites: Self.sites, nodesPerSite: 3, clusterName: "agadir-bench",
            // Clear text, as the figures of issue 15 were measured; `--compare-tls` measures what TLS costs.
            extraArguments: ["--log-level", "warning"], plaintext: true)
        spawned.adopt(lab)
        for name in Self.initial { try await lab.start(name) }
        try await waitAlive(lab, Self.initial)
        let admin = try lab.client(for: "benguerir-1")
        defer { Task { await admin.close() } }
        func call(_ command: String, _ input: [String: Any] = [:]) async throws -> [String: Any] {
            let body = try JSONSerialization.data(withJSONObject: input, options: [.sortedKeys])
            return
                (try JSONSerialization.jsonObject(with: Data(try await admin.admin(command, input: Array(body))))
                as? [String: Any]) ?? [:]
        }
        func assign(_ name: String) async throws {
            _ = try await call(
                "layout.assign",
                [
                    "node": name, "site": String(name.split(separator: "-")[0]), "capacity": 1_000_000_000_000,
                    "siteLabels": ["country": "MA"],
                ])
        }
        for name in Self.initial { try await assign(name) }
        _ = try await call(
            "policy.create", ["name": "ma", "replicationFactor": 3, "sites": "country=MA", "minSites": 2])
        _ = try await call("layout.apply", ["version": 1])
        try await Task.sleep(for: .seconds(2))
        try await admin.createBucket("load", policy: "ma")

        // Load: incompressible 1 MiB objects through every node.
        let objects = quick ? 64 : 768
        log("loading \(objects) objects of 1 MiB (RF 3)")
        var clients: [AgadirClient] = []
        var config = ClientConfiguration()
        config.connections = 4
        try config.use(try lab.rootCredentials())
        for name in Self.initial {
            clients.append(try AgadirClient(endpoint: try endpoint(lab, name), configuration: config))
        }
        let base = BenchData.random(1 << 20, seed: 99)
        let loaders = clients
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<8 {
                group.addTask {
                    for i in stride(from: w, to: objects, by: 8) {
                        _ = try await loaders[i % loaders.count].put(
                            bucket: "load", key: "load-\(i)", data: BenchData.stamp(base, index: i, run: 1))
                    }
                }
            }
            try await group.waitForAll()
        }

        // 1. Unthrottled growth.
        _ = try await call("rebalance.set", ["intraSiteBytesPerSecond": 0, "interSiteBytesPerSecond": 0])
        try await lab.start("benguerir-3")
        try await waitAlive(lab, Self.initial + ["benguerir-3"])
        try await assign("benguerir-3")
        let plan1 = try await call("layout.plan")
        let estimate1 = ((plan1["links"] as? [[String: Any]]) ?? []).reduce(UInt64(0)) {
            $0 + ((($1["bytes"] as? NSNumber)?.uint64Value) ?? 0)
        }
        log(
            "growth 1 (unthrottled): the plan moves \(plan1["totalPartitionsMoved"] ?? 0) partitions, about \(estimate1) bytes"
        )
        let start1 = ContinuousClock.now
        _ = try await call("layout.apply", ["version": 2])
        let (first1, synced1, done1, moved1) = try await waitRebalance(
            call, version: 2, timeout: .seconds(quick ? 120 : 900))
        // From the first byte seen moved (status polled every 0.1 s) to every node synced;
        // before it: gossip spreading the layout and the 2 s settle time.
        let copySeconds1 = seconds(synced1 - first1)
        let startSeconds1 = seconds(first1 - start1)
        let totalSeconds1 = seconds(done1 - start1)

        // 2. Foreground latency on the idle cluster, then during a throttled growth.
        clients.append(try AgadirClient(endpoint: try endpoint(lab, "benguerir-3"), configuration: config))
        let duration: Duration = quick ? .seconds(5) : .seconds(20)
        log("foreground workload on the idle cluster for \(duration)")
        let idle = try await foreground(clients, for: duration, tag: "idle")
        _ = try await call(
            "rebalance.set", ["intraSiteBytesPerSecond": throttledIntra, "interSiteBytesPerSecond": throttledInter])
        try await lab.start("casablanca-3")
        try await waitAlive(lab, Self.initial + ["benguerir-3", "casablanca-3"])
        try await assign("casablanca-3")
        _ = try await call("layout.apply", ["version": 3])
        try await Task.sleep(for: .seconds(3))  // the settle time before copying starts
        log("foreground workload during the throttled rebalance for \(duration)")
        let during = try await foreground(clients, for: duration, tag: "during")
        let status = try await call("rebalance.status")
        let stillMoving = (status["complete"] as? Bool) == false
        _ = try await call("rebalance.set", ["intraSiteBytesPerSecond": 0, "interSiteBytesPerSecond": 0])
        let (_, _, _, moved2) = try await waitRebalance(call, version: 3, timeout: .seconds(quick ? 120 : 900))
        for c in clients { await c.close() }

        let rate1 = Double(moved1) / 1_048_576 / max(copySeconds1, 1e-9)
        var s = "## Rebalance (issue 5)\n\n"
        s +=
            "Command: `agadir-bench --rebalance\(quick ? " --quick" : "")`. Lab: benguerir, casablanca, settat x 2 (country=MA), "
        s +=
            "policy `ma` RF 3 over 256 partitions, \(objects) incompressible objects of 1 MiB (\(objects * 3) MiB stored).\n\n"
        if loopback > 0 { s += String(format: "Loopback TCP limit, same run: %.0f MiB/s (one stream).\n\n", loopback) }
        s +=
            "| growth | throttles | bytes moved | plan estimate | moved / estimate | apply to first byte | copy phase | apply to complete | throughput (copy phase) | share of loopback |\n"
        s += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        s += String(
            format:
                "| + benguerir-3 | unlimited | %.1f MiB | %.1f MiB | %.2f | %.1f s | %.1f s | %.1f s | %.1f MiB/s | %@ |\n",
            Double(moved1) / 1_048_576, Double(estimate1) / 1_048_576, Double(moved1) / Double(max(estimate1, 1)),
            startSeconds1,
            copySeconds1, totalSeconds1, rate1, loopback > 0 ? String(format: "%.1f%%", 100 * rate1 / loopback) : "-")
        s += String(
            format:
                "| + casablanca-3 | intra %.0f MB/s, inter %.0f MB/s during the foreground run | %.1f MiB | | | | | | | |\n\n",
            Double(throttledIntra) / 1e6, Double(throttledInter) / 1e6, Double(moved2) / 1_048_576)
        s +=
            "Foreground: one task per node (\(clients.count)), each in a loop a PUT of 64 KiB then a GET of a random loaded 1 MiB object, QUORUM, "
        s += "for \(duration) (latencies in ms).\n\n"
        s +=
            "| cluster | ops/s | PUT p50 | PUT p99 | GET p50 | GET p99 | failures |\n| --- | --- | --- | --- | --- | --- | --- |\n"
        for (name, f) in [("idle", idle), ("during the throttled rebalance", during)] {
            s += String(
                format: "| %@ | %.0f | %.2f | %.2f | %.2f | %.2f | %d |\n", name, Double(f.ops) / max(f.seconds, 1e-9),
                f.putP50, f.putP99,
                f.getP50, f.getP99, f.failures)
        }
        s +=
            "\n"
            + (stillMoving
                ? "The second rebalance was still moving data when the foreground run ended.\n"
                : "Note: the second rebalance had completed before the foreground run ended; the figures under load cover part of the run only.\n")
        return s
    }

    func seconds(_ d: Duration) -> Double { Self.seconds(d) }
    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    func endpoint(_ lab: Lab, _ name: String) throws -> String {
        guard let e = try lab.status().first(where: { $0.name == name })?.clientEndpoint else {
            throw AgadirError(.unavailable, "\(name) has no client endpoint")
        }
        return e
    }

    func waitAlive(_ lab: Lab, _ names: [String]) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        for name in names {
            while true {
                let alive = Set(((try? await lab.members(of: name)) ?? []).filter { $0.state == "alive" }.map(\.nodeID))
                if alive.isSuperset(of: names) { break }
                guard clock.now < deadline else {
                    throw AgadirError(.unavailable, "\(name) does not see \(names) alive")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Polls the status until every node has synced `version` and until it is complete;
    /// returns both instants and the bytes moved.
    func waitRebalance(
        _ call: (String, [String: Any]) async throws -> [String: Any], version: UInt64, timeout: Duration
    ) async throws -> (
        firstByte: ContinuousClock.Instant, synced: ContinuousClock.Instant, done: ContinuousClock.Instant,
        moved: UInt64
    ) {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var synced: ContinuousClock.Instant?
        var firstByte: ContinuousClock.Instant?
        var moved: UInt64 = 0
        while clock.now < deadline {
            let view = try await call("rebalance.status", [:])
            moved = (view["bytesMoved"] as? NSNumber)?.uint64Value ?? moved
            if moved > 0, firstByte == nil { firstByte = clock.now }
            let nodes = (view["nodes"] as? [[String: Any]]) ?? []
            let all = nodes.allSatisfy {
                (($0["status"] as? [String: Any])?["syncedVersion"] as? NSNumber)?.uint64Value ?? 0 >= version
            }
            if all, synced == nil { synced = clock.now }
            if (view["complete"] as? Bool) == true, let synced {
                return (firstByte ?? synced, synced, clock.now, moved)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw AgadirError(.unavailable, "the rebalance to version \(version) did not complete within \(timeout)")
    }

    func foreground(_ clients: [AgadirClient], for duration: Duration, tag: String) async throws -> Foreground {
        final class Samples: Sendable {
            let puts = Mutex<[Double]>([])
            let gets = Mutex<[Double]>([])
            let failures = Mutex(0)
        }
        let samples = Samples()
        let objects = quick ? 64 : 768
        let body = BenchData.random(64 << 10, seed: 5)
        let start = ContinuousClock.now
        let end = start + duration
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<clients.count {
                let client = clients[t % clients.count]
                group.addTask {
                    var rng = SystemRandomNumberGenerator()
                    for i in 0..<1_000_000 where ContinuousClock.now < end {
                        let p0 = ContinuousClock.now
                        do {
                            _ = try await client.put(
                                bucket: "load", key: "fg-\(tag)-\(t)-\(i)",
                                data: BenchData.stamp(body, index: i, run: UInt64(t)))
                            let p1 = ContinuousClock.now
                            samples.puts.withLock { $0.append(Self.seconds(p1 - p0) * 1000) }
                            _ = try await client.get(
                                bucket: "load", key: "load-\(Int.random(in: 0..<objects, using: &rng))")
                            samples.gets.withLock { $0.append(Self.seconds(ContinuousClock.now - p1) * 1000) }
                        } catch {
                            samples.failures.withLock { $0 += 1 }
                        }
                    }
                }
            }
        }
        func pct(_ v: [Double], _ p: Double) -> Double {
            let s = v.sorted()
            return s.isEmpty ? 0 : s[min(s.count - 1, Int(Double(s.count) * p))]
        }
        let p = samples.puts.withLock { $0 }
        let g = samples.gets.withLock { $0 }
        return Foreground(
            ops: p.count + g.count, seconds: seconds(ContinuousClock.now - start), putP50: pct(p, 0.5),
            putP99: pct(p, 0.99),
            getP50: pct(g, 0.5), getP99: pct(g, 0.99), failures: samples.failures.withLock { $0 })
    }
}
