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
/// least) and `bucket` holding `objects` objects; with `nodesPerSite` 3, the third node of
/// each site exists in the lab but is not started (a node to add). The admin client and the
/// `agadir` CLI talk to benguerir-1. For the rebalance and drain lab tests.
struct LoadedLab {
    let lab: Lab
    let admin: AgadirClient
    let cli: CLI
    let bucket: String
    var objects: [String: [UInt8]] = [:]
    static let nodes = ["benguerir-1", "benguerir-2", "casablanca-1", "casablanca-2", "settat-1", "settat-2"]

    init(objects count: Int, seed: UInt64, bucket: String, nodesPerSite: Int = 2) async throws {
        self.bucket = bucket
        lab = try await Lab.create(sites: ["benguerir", "casablanca", "settat"], nodesPerSite: nodesPerSite)
        do {
            for name in Self.nodes { try await lab.start(name) }
            try await Self.waitAlive(lab, Self.nodes)
            admin = try lab.client(for: "benguerir-1")
            let endpoint = try #require(try lab.status().first { $0.name == "benguerir-1" }?.clientEndpoint)
            cli = CLI(endpoint: endpoint, credentials: lab.credentialsFile)
        } catch {
            _ = try? await lab.down(timeout: .seconds(15))
            try? FileManager.default.removeItem(at: lab.root)
            throw error
        }
        _ = try await call(Admin.layoutPartitions, Admin.Partitions(count: 64))
        for name in Self.nodes { try await assign(name) }
        _ = try await call(
            Admin.policyCreate, Admin.PolicySpec(name: "ma", replicationFactor: 3, sites: "country=MA", minSites: 2))
        _ = try await call(Admin.layoutApply, Admin.Apply(version: 1))
        try await waitForVersion(1, on: Self.nodes)
        try await admin.createBucket(bucket, policy: "ma")
        // Incompressible objects of 20 KB to 200 KB: one chunk each, written through every node.
        var rng = SplitMix64(seed: seed)
        var clients: [AgadirClient] = []
        for name in Self.nodes { clients.append(try lab.client(for: name)) }
        for i in 0..<count {
            let data = rng.bytes(20_000 + Int(rng.next() % 180_000))
            _ = try await clients[i % clients.count].put(bucket: bucket, key: "object-\(i)", data: data)
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
    func call<Input, Output>(_ command: AdminCommand<Input, Output>, _ input: Input) async throws -> Output {
        try await admin.admin(command, input)
    }

    @discardableResult
    func call<Output>(_ command: AdminCommand<Admin.Empty, Output>) async throws -> Output {
        try await admin.admin(command)
    }

    func assign(_ name: String) async throws {
        let site = String(name.split(separator: "-")[0])
        _ = try await call(
            Admin.layoutAssign,
            Admin.Assign(node: name, site: site, capacity: 1_000_000_000_000, siteLabels: ["country": "MA"]))
    }

    /// Polls `rebalance.status` until it says complete; returns the last view.
    func waitComplete(timeout: Duration) async throws -> Admin.RebalanceView? {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var view: Admin.RebalanceView? = nil
        while clock.now < deadline {
            view = (try? await call(Admin.rebalanceStatus)) ?? view
            if view?.complete == true { return view }
            try await Task.sleep(for: .milliseconds(500))
        }
        Issue.record("the rebalance did not complete within \(timeout): \(String(describing: view))")
        return view
    }

    static func waitAlive(_ lab: Lab, _ names: [String]) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        for name in names {
            while true {
                let alive = Set(
                    ((try? await lab.members(of: name)) ?? []).filter { $0.state == MemberInfo.State.alive }.map(
                        \.nodeID))
                if alive.isSuperset(of: names) { break }
                guard clock.now < deadline else {
                    throw AgadirError(.unavailable, "\(name) does not see \(names) alive")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    func waitForVersion(_ v: UInt64, on names: [String]) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        for name in names {
            while try await lab.layoutVersion(of: name) < v {
                guard clock.now < deadline else {
                    throw AgadirError(.unavailable, "\(name) did not reach layout version \(v)")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Stops every node, opens each store (but those of `excluded`) and checks that every
    /// manifest and chunk is held by exactly the nodes `layout` names for its partition.
    func expectHeldExactlyWhereTheLayoutSays(_ layout: Layout, keys: Set<String>, excluded: Set<String> = [])
        async throws
    {
        try await lab.stopAll(timeout: .seconds(30))
        var logger = Logger(label: "agadir.e2e.holdings")
        logger.logLevel = .critical
        var manifestHolders: [String: Set<String>] = [:]
        var chunkHolders: [ChunkID: Set<String>] = [:]
        for node in try lab.status()
        where !excluded.contains(node.name) && FileManager.default.fileExists(atPath: node.dataDir + "/node-id") {
            let store = try NodeStore.open(directory: node.dataDir, logger: logger)
            for m in try await store.manifestInventory(after: nil, limit: 10_000) where m.bucket == bucket {
                manifestHolders[m.key, default: []].insert(node.name)
            }
            for c in try await store.chunkInventory(after: nil, limit: 10_000) where c.buckets.contains(bucket) {
                chunkHolders[c.id, default: []].insert(node.name)
            }
            await store.close()
        }
        let n = layout.partitionCount
        #expect(Set(manifestHolders.keys) == keys)
        for (key, holders) in manifestHolders {
            let expected = Set(
                layout.replicas(policy: "ma", partition: Partitioner.partition(bucket: bucket, key: key, count: n)))
            #expect(
                holders == expected, "manifest \(key): held by \(holders.sorted()), layout names \(expected.sorted())")
        }
        for (id, holders) in chunkHolders {
            let expected = Set(layout.replicas(policy: "ma", partition: Partitioner.partition(of: id, count: n)))
            #expect(
                holders == expected, "chunk \(id.hex): held by \(holders.sorted()), layout names \(expected.sorted())")
        }
    }

    func layoutOnDisk() throws -> ClusterLayout {
        let dir = try #require(try lab.status().first { $0.name == "benguerir-1" }?.dataDir)
        return try ClusterLayoutCodec.decode(
            Array(try Data(contentsOf: URL(fileURLWithPath: dir).appendingPathComponent("layout.bin"))))
    }

    func expectEveryObjectReadable(_ objects: [String: [UInt8]], via names: [String]) async throws {
        for name in names {
            let reader = try lab.client(for: name)
            for (key, data) in objects {
                #expect(try await reader.get(bucket: bucket, key: key).1 == data, "\(key) via \(name)")
            }
            await reader.close()
        }
    }
}

/// An application that writes new objects and reads old ones of `bucket` until stopped,
/// through every node of `names` in turn; it records what it wrote and every failure.
final class LabApplication: Sendable {
    let bucket: String
    let written = Mutex<[String: [UInt8]]>([:])
    let failures = Mutex<[String]>([])
    let operations = Mutex(0)
    private let stopFlag = Mutex(false)

    init(bucket: String) { self.bucket = bucket }

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
                    _ = try await client.put(bucket: bucket, key: "during-\(i)", data: data)
                    written.withLock { $0["during-\(i)"] = data }
                } else if let key = keys.isEmpty ? nil : keys[Int(rng.next() % UInt64(keys.count))] {
                    let (_, body) = try await client.get(bucket: bucket, key: key)
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

/// Runs `body` with a converged lab of one node in each of benguerir, casablanca and settat
/// with the layout applied (policy `ma`: three copies on at least two Moroccan sites, 16
/// partitions); stops it and removes it afterwards.
func withThreeSiteLab(
    relays: Bool = false, extraSites: [String] = [], _ body: (Lab) async throws -> Void
) async throws {
    let lab = try await Lab.create(
        sites: ["benguerir", "casablanca", "settat"] + extraSites, nodesPerSite: 1, relays: relays)
    try await withLab(lab) {
        try await lab.up(waitForConvergence: true, timeout: .seconds(90))
        _ = try await lab.applyLayout(
            policies: [LabPolicy(name: "ma", replicationFactor: 3, sites: "country=MA", minSites: 2)],
            partitionCount: 16)
        try await body(lab)
    }
}

/// Runs `body` with `lab`, then stops every node by pid and removes the lab's directory,
/// whether `body` returns or throws.
func withLab(_ lab: Lab, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch {
        _ = try? await lab.down(timeout: .seconds(15))
        try? FileManager.default.removeItem(at: lab.root)
        throw error
    }
    _ = try? await lab.down(timeout: .seconds(15))
    try? FileManager.default.removeItem(at: lab.root)
}
