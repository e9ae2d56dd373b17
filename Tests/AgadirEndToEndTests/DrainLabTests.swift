import AgadirClient
import AgadirCore
import AgadirLab
import AgadirPlacement
import AgadirStore
import AgadirWire
import Foundation
import Logging
import Synchronization
import Testing

/// Six nodes in three Moroccan sites (x-1 and x-2 of benguerir, casablanca, settat) with
/// layout version 1 applied (64 partitions, policy `ma`: RF 3, country=MA, 2 sites at
/// least) and bucket `drain` holding `objects` objects. Adapted from `GrowLab`
/// (RebalanceLabTests.swift), with the `agadir` CLI at hand.
private struct DrainLab {
    let lab: Lab
    let admin: AgadirClient
    let cli: CLI
    var objects: [String: [UInt8]] = [:]
    static let nodes = ["benguerir-1", "benguerir-2", "casablanca-1", "casablanca-2", "settat-1", "settat-2"]
    static let bucket = "drain"

    init(objects count: Int, seed: UInt64) async throws {
        lab = try await Lab.create(sites: ["benguerir", "casablanca", "settat"], nodesPerSite: 2)
        do {
            for name in Self.nodes { try await lab.start(name) }
            try await Self.waitAlive(lab, Self.nodes)
            admin = try lab.client(for: "benguerir-1")
            let endpoint = try #require(try lab.status().first { $0.name == "benguerir-1" }?.clientEndpoint)
            cli = CLI(endpoint: endpoint)
        } catch {
            _ = try? await lab.down(timeout: .seconds(15))
            try? FileManager.default.removeItem(at: lab.root)
            throw error
        }
        _ = try await call("layout.partitions", ["count": 64])
        for name in Self.nodes {
            let site = String(name.split(separator: "-")[0])
            _ = try await call("layout.assign", ["node": name, "site": site, "capacity": 1_000_000_000_000, "siteLabels": ["country": "MA"]])
        }
        _ = try await call("policy.create", ["name": "ma", "replicationFactor": 3, "sites": "country=MA", "minSites": 2])
        _ = try await call("layout.apply", ["version": 1])
        try await waitForVersion(1, on: Self.nodes)
        try await admin.createBucket(Self.bucket, policy: "ma")
        // Incompressible objects of 20 KB to 200 KB: one chunk each, written through every node.
        var rng = SplitMix64(seed: seed)
        var clients: [AgadirClient] = []
        for name in Self.nodes { clients.append(try lab.client(for: name)) }
        for i in 0..<count {
            let data = rng.bytes(20_000 + Int(rng.next() % 180_000))
            _ = try await clients[i % clients.count].put(bucket: Self.bucket, key: "object-\(i)", data: data)
            objects["object-\(i)"] = data
        }
        for c in clients { await c.close() }
    }

    func tearDown() async {
        await admin.close()
        _ = try? await lab.down(timeout: .seconds(15))
        try? FileManager.default.removeItem(at: lab.root)
    }

    @discardableResult
    func call(_ command: String, _ input: [String: Any] = [:]) async throws -> [String: Any] {
        let body = try JSONSerialization.data(withJSONObject: input, options: [.sortedKeys])
        let answer = try await admin.admin(command, input: Array(body))
        return (try JSONSerialization.jsonObject(with: Data(answer)) as? [String: Any]) ?? [:]
    }

    static func waitAlive(_ lab: Lab, _ names: [String]) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        for name in names {
            while true {
                let alive = Set(((try? await lab.members(of: name)) ?? []).filter { $0.state == MemberInfo.State.alive }.map(\.nodeID))
                if alive.isSuperset(of: names) { break }
                guard clock.now < deadline else { throw AgadirError(.unavailable, "\(name) does not see \(names) alive") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    func waitForVersion(_ v: UInt64, on names: [String]) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        for name in names {
            while try await lab.layoutVersion(of: name) < v {
                guard clock.now < deadline else { throw AgadirError(.unavailable, "\(name) did not reach layout version \(v)") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Runs the CLI off the cooperative pool (it blocks until the process exits).
    func agadir(_ args: [String]) async throws -> CLI.Result {
        try await cli.runDetached(args)
    }

    /// Polls `agadir admin rebalance status --json` until it says complete; returns the last view.
    func waitCompleteByCLI(timeout: Duration) async throws -> [String: Any] {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var view: [String: Any] = [:]
        while clock.now < deadline {
            let r = try await agadir(["admin", "rebalance", "status", "--json"])
            view = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
            if r.status == 0, (view["complete"] as? Bool) == true { return view }
            try await Task.sleep(for: .milliseconds(700))
        }
        Issue.record("the rebalance did not complete within \(timeout): \(view)")
        return view
    }

    /// Polls `agadir admin status` until it exits with `code`; returns the last result.
    func waitStatus(exitCode code: Int32, json: Bool = false, timeout: Duration = .seconds(45)) async throws -> CLI.Result {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var last = CLI.Result(status: -1, stdout: "", stderr: "")
        while clock.now < deadline {
            last = try await agadir(["admin", "status"] + (json ? ["--json"] : []))
            if last.status == code { return last }
            try await Task.sleep(for: .milliseconds(700))
        }
        Issue.record("agadir admin status did not exit \(code) within \(timeout): exit \(last.status)\n\(last.stdout)\n\(last.stderr)")
        return last
    }

    /// Stops every node, opens each store (but those of `excluded`) and checks that every
    /// manifest and chunk is held by exactly the nodes `layout` names for its partition.
    func expectHeldExactlyWhereTheLayoutSays(_ layout: Layout, keys: Set<String>, excluded: Set<String> = []) async throws {
        try await lab.stopAll(timeout: .seconds(30))
        var logger = Logger(label: "agadir.e2e.drain")
        logger.logLevel = .critical
        var manifestHolders: [String: Set<String>] = [:]
        var chunkHolders: [ChunkID: Set<String>] = [:]
        for node in try lab.status() where !excluded.contains(node.name) && FileManager.default.fileExists(atPath: node.dataDir + "/node-id") {
            let store = try NodeStore.open(directory: node.dataDir, logger: logger)
            for m in try await store.manifestInventory(after: nil, limit: 10_000) where m.bucket == Self.bucket {
                manifestHolders[m.key, default: []].insert(node.name)
            }
            for c in try await store.chunkInventory(after: nil, limit: 10_000) where c.buckets.contains(Self.bucket) {
                chunkHolders[c.id, default: []].insert(node.name)
            }
            await store.close()
        }
        let n = layout.partitionCount
        #expect(Set(manifestHolders.keys) == keys)
        for (key, holders) in manifestHolders {
            let expected = Set(layout.replicas(policy: "ma", partition: Partitioner.partition(bucket: Self.bucket, key: key, count: n)))
            #expect(holders == expected, "manifest \(key): held by \(holders.sorted()), layout names \(expected.sorted())")
        }
        for (id, holders) in chunkHolders {
            let expected = Set(layout.replicas(policy: "ma", partition: Partitioner.partition(of: id, count: n)))
            #expect(holders == expected, "chunk \(id.hex): held by \(holders.sorted()), layout names \(expected.sorted())")
        }
    }

    func layoutOnDisk() throws -> ClusterLayout {
        let dir = try #require(try lab.status().first { $0.name == "benguerir-1" }?.dataDir)
        return try ClusterLayoutCodec.decode(Array(try Data(contentsOf: URL(fileURLWithPath: dir).appendingPathComponent("layout.bin"))))
    }

    func expectEveryObjectReadable(_ objects: [String: [UInt8]], via names: [String]) async throws {
        for name in names {
            let reader = try lab.client(for: name)
            for (key, data) in objects {
                #expect(try await reader.get(bucket: Self.bucket, key: key).1 == data, "\(key) via \(name)")
            }
            await reader.close()
        }
    }
}

/// An application that writes new objects and reads old ones until stopped, through every
/// node of `names` in turn; it records what it wrote and every failure (as in RebalanceLabTests).
private final class DrainApplication: Sendable {
    let written = Mutex<[String: [UInt8]]>([:])
    let failures = Mutex<[String]>([])
    let operations = Mutex(0)
    private let stopFlag = Mutex(false)

    func run(_ lab: Lab, names: [String], reading: [String: [UInt8]], seed: UInt64) async {
        var rng = SplitMix64(seed: seed)
        var clients: [AgadirClient] = []
        for name in names { if let c = try? lab.client(for: name) { clients.append(c) } }
        let keys = reading.keys.sorted()
        for i in 0..<100_000 where !stopFlag.withLock({ $0 }) && !clients.isEmpty {
            let client = clients[i % clients.count]
            do {
                if i % 2 == 0 {
                    let data = rng.bytes(10_000 + Int(rng.next() % 50_000))
                    _ = try await client.put(bucket: DrainLab.bucket, key: "during-\(i)", data: data)
                    written.withLock { $0["during-\(i)"] = data }
                } else if let key = keys.isEmpty ? nil : keys[Int(rng.next() % UInt64(keys.count))] {
                    let (_, body) = try await client.get(bucket: DrainLab.bucket, key: key)
                    if body != reading[key] { failures.withLock { $0.append("\(key) read back different bytes") } }
                }
            } catch {
                failures.withLock { $0.append("operation \(i): \(error)") }
            }
            operations.withLock { $0 += 1 }
            try? await Task.sleep(for: .milliseconds(20))
        }
        for c in clients { await c.close() }
    }

    func stop() { stopFlag.withLock { $0 = true } }
}

@Suite("Drain, remove and cluster status on the lab", .serialized, .oneLabAtATime)
struct DrainLabTests {
    @Test("a node is drained and removed through the CLI while an application writes and reads; admin status is healthy before and after, degraded with a node down")
    func drainAndRemoveThroughTheCLI() async throws {
        var drain = try await DrainLab(objects: 240, seed: 51)
        do {
            // Refused while casablanca-2 holds replicas of the live version.
            let refused = try await drain.agadir(["admin", "node", "remove", "casablanca-2"])
            #expect(refused.status == 3, "\(refused.stderr)")
            #expect(refused.stderr.contains("NODE_NOT_DRAINED") && refused.stderr.contains("drain it first"), "\(refused.stderr)")
            #expect(try drain.layoutOnDisk().current.node("casablanca-2") != nil)

            // Healthy: exit 0; JSON and human output name every node.
            let healthyJSON = try await drain.waitStatus(exitCode: 0, json: true)
            let view = (try? JSONSerialization.jsonObject(with: Data(healthyJSON.stdout.utf8)) as? [String: Any]) ?? [:]
            let listed = Set(((view["nodes"] as? [[String: Any]]) ?? []).compactMap { $0["node"] as? String })
            #expect(listed == Set(DrainLab.nodes), "\(healthyJSON.stdout)")
            #expect((view["healthy"] as? Bool) == true)
            for n in (view["nodes"] as? [[String: Any]]) ?? [] {
                #expect(((n["usedBytes"] as? NSNumber)?.uint64Value ?? 0) > 0, "\(n)")
                #expect(n["fsFreeBytes"] != nil, "\(n)")
            }
            let healthy = try await drain.waitStatus(exitCode: 0)
            for name in DrainLab.nodes { #expect(healthy.stdout.contains(name), "\(healthy.stdout)") }
            #expect(healthy.stdout.contains("cluster healthy"))

            // Drain casablanca-2 through the CLI while the application runs through the other nodes.
            let app = DrainApplication()
            let others = DrainLab.nodes.filter { $0 != "casablanca-2" }
            let objects = drain.objects
            let lab = drain.lab
            let running = Task { await app.run(lab, names: others, reading: objects, seed: 9) }
            let drained = try await drain.agadir(["admin", "node", "drain", "casablanca-2", "--json"])
            #expect(drained.status == 0, "\(drained.stderr)")
            let plan = (try? JSONSerialization.jsonObject(with: Data(drained.stdout.utf8)) as? [String: Any]) ?? [:]
            #expect((plan["toVersion"] as? NSNumber)?.uint64Value == 2, "\(drained.stdout)")
            #expect(((plan["totalPartitionsMoved"] as? NSNumber)?.intValue ?? 0) > 0)
            // Still refused while version 1 is live (casablanca-2 is a source until it retires).
            let early = try await drain.agadir(["admin", "node", "remove", "casablanca-2"])
            if try drain.layoutOnDisk().live.count > 1 { #expect(early.status == 3, "\(early.stderr)") }

            _ = try await drain.waitCompleteByCLI(timeout: .seconds(180))
            let removed = try await drain.agadir(["admin", "node", "remove", "casablanca-2"])
            #expect(removed.status == 0, "\(removed.stderr)")
            #expect(!removed.stderr.contains("WARNING"), "\(removed.stderr)")
            try await drain.waitForVersion(3, on: others)
            try await drain.lab.stop("casablanca-2")
            let after = try await drain.waitStatus(exitCode: 0, json: true)
            let afterView = (try? JSONSerialization.jsonObject(with: Data(after.stdout.utf8)) as? [String: Any]) ?? [:]
            let afterNodes = Set(((afterView["nodes"] as? [[String: Any]]) ?? []).compactMap { $0["node"] as? String })
            #expect(afterNodes == Set(others), "\(after.stdout)")
            app.stop()
            await running.value
            #expect(app.failures.withLock { $0 }.isEmpty, "\(app.failures.withLock { $0.prefix(5) })")
            #expect(app.operations.withLock { $0 } > 10)

            // Another node down: degraded (exit 10), with the reason printed.
            try await drain.lab.kill("settat-1")
            let degraded = try await drain.waitStatus(exitCode: 10)
            #expect(degraded.stdout.contains("DEGRADED") && degraded.stdout.contains("settat-1"), "\(degraded.stdout)")

            for (key, data) in app.written.withLock({ $0 }) { drain.objects[key] = data }
            try await drain.expectEveryObjectReadable(drain.objects, via: ["benguerir-1", "settat-2"])
            let cluster = try drain.layoutOnDisk()
            #expect(cluster.live.map(\.version) == [3])
            #expect(cluster.current.node("casablanca-2") == nil)
            try await drain.expectHeldExactlyWhereTheLayoutSays(cluster.current, keys: Set(drain.objects.keys))
        } catch {
            await drain.tearDown()
            throw error
        }
        await drain.tearDown()
    }

    @Test("a node lost for good: remove is refused, remove --force warns, and the rebalance completes without waiting for it")
    func forcedRemovalOfADeadNode() async throws {
        let drain = try await DrainLab(objects: 120, seed: 53)
        do {
            try await drain.lab.kill("settat-2")
            let refused = try await drain.agadir(["admin", "node", "remove", "settat-2"])
            #expect(refused.status == 3, "\(refused.stderr)")
            let forced = try await drain.agadir(["admin", "node", "remove", "settat-2", "--force"])
            #expect(forced.status == 0, "\(forced.stderr)")
            #expect(forced.stderr.contains("WARNING") && forced.stderr.contains("may be lost"), "\(forced.stderr)")
            let view = try await drain.waitCompleteByCLI(timeout: .seconds(180))
            let skipped = ((view["nodes"] as? [[String: Any]]) ?? []).contains { n in
                (((n["status"] as? [String: Any])?["skippedSources"] as? [String]) ?? []).contains("settat-2")
            }
            #expect(skipped, "no node reports settat-2 as a skipped source: \(view)")
            let survivors = DrainLab.nodes.filter { $0 != "settat-2" }
            _ = try await drain.waitStatus(exitCode: 0)
            try await drain.expectEveryObjectReadable(drain.objects, via: ["benguerir-1", "settat-1"])
            let cluster = try drain.layoutOnDisk()
            #expect(cluster.live.count == 1)
            #expect(cluster.current.node("settat-2") == nil)
            #expect(Set(cluster.current.nodes.map(\.id)) == Set(survivors))
            try await drain.expectHeldExactlyWhereTheLayoutSays(cluster.current, keys: Set(drain.objects.keys), excluded: ["settat-2"])
        } catch {
            await drain.tearDown()
            throw error
        }
        await drain.tearDown()
    }
}
