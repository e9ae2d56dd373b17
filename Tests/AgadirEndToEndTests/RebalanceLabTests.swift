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
/// least) and bucket `grow` holding `objects` objects; the third node of each site exists
/// in the lab but is not started.
private struct GrowLab {
    let lab: Lab
    let admin: AgadirClient
    var objects: [String: [UInt8]] = [:]
    static let initial = ["benguerir-1", "benguerir-2", "casablanca-1", "casablanca-2", "settat-1", "settat-2"]

    init(objects count: Int, seed: UInt64) async throws {
        lab = try await Lab.create(sites: ["benguerir", "casablanca", "settat"], nodesPerSite: 3)
        do {
            for name in Self.initial { try await lab.start(name) }
            try await Self.waitAlive(lab, Self.initial)
            admin = try lab.client(for: "benguerir-1")
        } catch {
            _ = try? await lab.down(timeout: .seconds(15))
            try? FileManager.default.removeItem(at: lab.root)
            throw error
        }
        _ = try await call("layout.partitions", ["count": 64])
        for name in Self.initial { try await assign(name) }
        _ = try await call("policy.create", ["name": "ma", "replicationFactor": 3, "sites": "country=MA", "minSites": 2])
        _ = try await call("layout.apply", ["version": 1])
        try await waitForVersion(1, on: Self.initial)
        try await admin.createBucket("grow", policy: "ma")
        // Incompressible objects of 20 KB to 200 KB: one chunk each, written through every node.
        var rng = SplitMix64(seed: seed)
        var clients: [AgadirClient] = []
        for name in Self.initial { clients.append(try lab.client(for: name)) }
        for i in 0..<count {
            let data = rng.bytes(20_000 + Int(rng.next() % 180_000))
            _ = try await clients[i % clients.count].put(bucket: "grow", key: "object-\(i)", data: data)
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

    func assign(_ name: String) async throws {
        let site = String(name.split(separator: "-")[0])
        _ = try await call("layout.assign", ["node": name, "site": site, "capacity": 1_000_000_000_000, "siteLabels": ["country": "MA"]])
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

    /// Adds benguerir-3 and applies version 2; returns the plan's estimate of the bytes to move.
    func grow() async throws -> UInt64 {
        try await lab.start("benguerir-3")
        try await Self.waitAlive(lab, Self.initial + ["benguerir-3"])
        try await assign("benguerir-3")
        let plan = try await call("layout.plan")
        let links = (plan["links"] as? [[String: Any]]) ?? []
        let estimate = links.reduce(UInt64(0)) { $0 + ((($1["bytes"] as? NSNumber)?.uint64Value) ?? 0) }
        _ = try await call("layout.apply", ["version": 2])
        return estimate
    }

    /// Polls `rebalance.status` until it says complete; returns the last view.
    func waitComplete(timeout: Duration) async throws -> [String: Any] {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var view: [String: Any] = [:]
        while clock.now < deadline {
            view = (try? await call("rebalance.status")) ?? [:]
            if (view["complete"] as? Bool) == true { return view }
            try await Task.sleep(for: .milliseconds(500))
        }
        Issue.record("the rebalance did not complete within \(timeout): \(view)")
        return view
    }

    /// Stops every node, opens each store and checks that every manifest and chunk is held
    /// by exactly the nodes `layout` names for its partition (and that all objects are there).
    func expectHeldExactlyWhereTheLayoutSays(_ layout: Layout, keys: Set<String>) async throws {
        try await lab.stopAll(timeout: .seconds(30))
        var logger = Logger(label: "agadir.e2e.rebalance")
        logger.logLevel = .critical
        var manifestHolders: [String: Set<String>] = [:]
        var chunkHolders: [ChunkID: Set<String>] = [:]
        for node in try lab.status() where FileManager.default.fileExists(atPath: node.dataDir + "/node-id") {
            let store = try NodeStore.open(directory: node.dataDir, logger: logger)
            for m in try await store.manifestInventory(after: nil, limit: 10_000) where m.bucket == "grow" {
                manifestHolders[m.key, default: []].insert(node.name)
            }
            for c in try await store.chunkInventory(after: nil, limit: 10_000) where c.buckets.contains("grow") {
                chunkHolders[c.id, default: []].insert(node.name)
            }
            await store.close()
        }
        let n = layout.partitionCount
        #expect(Set(manifestHolders.keys) == keys)
        for (key, holders) in manifestHolders {
            let expected = Set(layout.replicas(policy: "ma", partition: Partitioner.partition(bucket: "grow", key: key, count: n)))
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
}

/// An application that writes new objects and reads old ones until stopped, through every
/// node of `names` in turn; it records what it wrote and every failure.
private final class Application: Sendable {
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
                    _ = try await client.put(bucket: "grow", key: "during-\(i)", data: data)
                    written.withLock { $0["during-\(i)"] = data }
                } else if let key = keys.isEmpty ? nil : keys[Int(rng.next() % UInt64(keys.count))] {
                    let (_, body) = try await client.get(bucket: "grow", key: key)
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

@Suite("Rebalance on the lab: growth, restarts in the middle", .serialized, .oneLabAtATime)
struct RebalanceLabTests {
    @Test("a six-node, three-site cluster grows by one node while an application writes and reads; data ends exactly where the new layout says")
    func growBySeventhNode() async throws {
        var grow = try await GrowLab(objects: 360, seed: 41)
        do {
            let app = Application()
            let estimate = try await grow.grow()
            #expect(estimate > 0)
            let names = GrowLab.initial + ["benguerir-3"]
            let objects = grow.objects
            let lab = grow.lab
            let running = Task { await app.run(lab, names: names, reading: objects, seed: 7) }
            let view = try await grow.waitComplete(timeout: .seconds(180))
            app.stop()
            await running.value
            #expect(app.failures.withLock { $0 }.isEmpty, "\(app.failures.withLock { $0.prefix(5) })")
            #expect(app.operations.withLock { $0 } > 10)
            let moved = (view["bytesMoved"] as? NSNumber)?.uint64Value ?? 0
            #expect(moved > 0)
            #expect(Double(moved) <= 1.2 * Double(estimate), "moved \(moved) bytes, the plan estimated \(estimate)")
            print("rebalance growth: moved \(moved) bytes, plan estimate \(estimate) (\(String(format: "%.2f", Double(moved) / Double(max(estimate, 1))))x)")
            // Every object, old and new, reads back through the new node and an old one.
            for (key, data) in app.written.withLock({ $0 }) { grow.objects[key] = data }
            for name in ["benguerir-3", "settat-2"] {
                let reader = try grow.lab.client(for: name)
                for (key, data) in grow.objects { #expect(try await reader.get(bucket: "grow", key: key).1 == data, "\(key) via \(name)") }
                await reader.close()
            }
            let cluster = try grow.layoutOnDisk()
            #expect(cluster.live.map(\.version) == [2])
            try await grow.expectHeldExactlyWhereTheLayoutSays(cluster.current, keys: Set(grow.objects.keys))
        } catch {
            await grow.tearDown()
            throw error
        }
        await grow.tearDown()
    }

    @Test("nodes killed and restarted in the middle of a throttled rebalance: it resumes and completes with nothing lost")
    func killAndRestartMidRebalance() async throws {
        let grow = try await GrowLab(objects: 240, seed: 43)
        do {
            // Slow enough to be caught in the middle.
            try await grow.call("rebalance.set", ["intraSiteBytesPerSecond": 1_000_000, "interSiteBytesPerSecond": 1_000_000])
            _ = try await grow.grow()
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(60)
            var copying = false
            while clock.now < deadline, !copying {
                let view = try await grow.call("rebalance.status")
                copying = ((view["bytesMoved"] as? NSNumber)?.uint64Value ?? 0) > 0
                if !copying { try await Task.sleep(for: .milliseconds(300)) }
            }
            #expect(copying, "the rebalance never started moving data")
            // The new node and a source die mid-copy (SIGKILL), and come back.
            try await grow.lab.kill("benguerir-3")
            try await grow.lab.kill("casablanca-1")
            try await Task.sleep(for: .seconds(2))
            let stalled = try await grow.call("rebalance.status")
            #expect((stalled["complete"] as? Bool) == false)
            try await grow.lab.start("casablanca-1")
            try await grow.lab.start("benguerir-3")
            try await GrowLab.waitAlive(grow.lab, GrowLab.initial + ["benguerir-3"])
            try await grow.call("rebalance.set", ["intraSiteBytesPerSecond": 0, "interSiteBytesPerSecond": 0])
            _ = try await grow.waitComplete(timeout: .seconds(180))
            for name in ["benguerir-3", "casablanca-1"] {
                let reader = try grow.lab.client(for: name)
                for (key, data) in grow.objects { #expect(try await reader.get(bucket: "grow", key: key).1 == data, "\(key) via \(name)") }
                await reader.close()
            }
            let cluster = try grow.layoutOnDisk()
            #expect(cluster.live.map(\.version) == [2])
            try await grow.expectHeldExactlyWhereTheLayoutSays(cluster.current, keys: Set(grow.objects.keys))
        } catch {
            await grow.tearDown()
            throw error
        }
        await grow.tearDown()
    }
}
