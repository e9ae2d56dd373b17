import AgadirClient
import AgadirCore
import AgadirLab
import AgadirPlacement
import AgadirStore
import AgadirWire
import Foundation
import Logging
import Testing

/// Opens every started node's store (the lab must be stopped) and returns, for bucket
/// `bucket`: the nodes holding each key's manifest (with its tombstone flag), and the nodes
/// holding each chunk.
func storeHoldings(_ lab: Lab, bucket: String) async throws -> (
    manifests: [String: [String: Bool]], chunks: [ChunkID: Set<String>], refs: [String: [ChunkID]]
) {
    var logger = Logger(label: "agadir.e2e.holdings")
    logger.logLevel = .critical
    var manifests: [String: [String: Bool]] = [:]
    var chunks: [ChunkID: Set<String>] = [:]
    var refs: [String: [ChunkID]] = [:]
    for node in try lab.status() where FileManager.default.fileExists(atPath: node.dataDir + "/node-id") {
        let store = try NodeStore.open(directory: node.dataDir, logger: logger)
        for m in try await store.manifestInventory(after: nil, limit: 10_000) where m.bucket == bucket {
            manifests[m.key, default: [:]][node.name] = m.isTombstone
            if !m.isTombstone, let full = try await store.manifest(bucket: bucket, key: m.key) {
                refs[m.key] = full.chunkRefs.map(\.id)
            }
        }
        for c in try await store.chunkInventory(after: nil, limit: 10_000) where c.buckets.contains(bucket) {
            chunks[c.id, default: []].insert(node.name)
        }
        await store.close()
    }
    return (manifests, chunks, refs)
}

@Suite("Anti-entropy on the lab: a wiped node refilled, old delete markers purged", .serialized, .oneLabAtATime)
struct RepairLabTests {
    @Test(
        "`agadir admin repair` refills a node whose disk was wiped, and purges delete markers once every replica holds them"
    )
    func wipedNodeIsRefilled_andOldTombstonesPurged() async throws {
        let lab = try await Lab.create(
            sites: ["benguerir", "casablanca", "settat"], nodesPerSite: 2, extraArguments: ["--tombstone-grace", "3"])
        try await withLab(lab) {
            try await lab.up(waitForConvergence: true, timeout: .seconds(90))
            try await lab.applyLayout(
                policies: [LabPolicy(name: "ma", replicationFactor: 3, sites: "country=MA", minSites: 2)],
                partitionCount: 64)
            let client = try lab.client(for: "benguerir-1")
            try await client.createBucket("repaired", policy: "ma")
            var live: [String: [UInt8]] = [:]
            var deleted: [String] = []
            for i in 0..<120 {
                let data = randomBytes(10_000 + (i * 7919) % 140_000, seed: UInt64(5000 + i))
                _ = try await client.put(bucket: "repaired", key: "k-\(i)", data: data)
                live["k-\(i)"] = data
            }
            for i in stride(from: 0, to: 120, by: 6) {
                _ = try await client.delete(bucket: "repaired", key: "k-\(i)")
                live["k-\(i)"] = nil
                deleted.append("k-\(i)")
            }
            await client.close()

            // settat-1 loses its disk: everything but its identity is gone.
            try await lab.stop("settat-1")
            let dir = try #require(try lab.status().first { $0.name == "settat-1" }?.dataDir)
            for item in try FileManager.default.contentsOfDirectory(atPath: dir) where item != "node-id" {
                try FileManager.default.removeItem(atPath: dir + "/" + item)
            }
            try await lab.start("settat-1")
            try await lab.waitConverged(timeout: .seconds(60))

            // The delete markers are older than the grace period (3 s) by the time the passes run.
            try await Task.sleep(for: .seconds(4))
            let endpoint = try #require(try lab.status().first { $0.name == "benguerir-1" }?.clientEndpoint)
            let cli = CLI(endpoint: endpoint, credentials: lab.credentialsFile)
            let first = try await cli.runDetached(["admin", "repair", "--wait", "--timeout", "120"])
            #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")
            #expect(first.stdout.contains("settat-1"), "\(first.stdout)")
            // A second pass finds every replica in agreement and purges the old markers.
            let second = try await cli.runDetached(["admin", "repair", "--wait", "--timeout", "120", "--json"])
            #expect(second.status == 0, "\(second.stderr)")
            let status = try Admin.repairStatus.decode(output: Array(second.stdout.utf8))
            let purged = status.reduce(0) { $0 + ($1.repair?.tombstonesPurged ?? 0) }
            #expect(purged > 0, "\(second.stdout)")
            let statusText = try await cli.runDetached(["admin", "repair", "status"])
            #expect(statusText.status == 0 && statusText.stdout.contains("PURGED"))

            // Reads through the refilled node see every live object and none of the deleted.
            let reader = try lab.client(for: "settat-1")
            for (key, data) in live { #expect(try await reader.get(bucket: "repaired", key: key).1 == data, "\(key)") }
            for key in deleted {
                let missing = await agadirError { _ = try await reader.get(bucket: "repaired", key: key) }
                #expect(missing?.code == .noSuchKey, "\(key): \(String(describing: missing))")
            }
            await reader.close()

            // On disk: each live object on exactly its three replicas (settat-1 refilled), its
            // chunks likewise, and no delete marker left anywhere.
            let layoutDir = try #require(try lab.status().first { $0.name == "benguerir-1" }?.dataDir)
            let cluster = try ClusterLayoutCodec.decode(
                Array(try Data(contentsOf: URL(fileURLWithPath: layoutDir + "/layout.bin"))))
            try await lab.stopAll(timeout: .seconds(30))
            let held = try await storeHoldings(lab, bucket: "repaired")
            let layout = cluster.current
            let n = layout.partitionCount
            for (key, _) in live {
                let expected = Set(
                    layout.replicas(
                        policy: "ma", partition: Partitioner.partition(bucket: "repaired", key: key, count: n)))
                #expect(Set((held.manifests[key] ?? [:]).keys) == expected, "\(key): \(held.manifests[key] ?? [:])")
                for id in held.refs[key] ?? [] {
                    let replicas = Set(
                        layout.replicas(policy: "ma", partition: Partitioner.partition(of: id, count: n)))
                    #expect(held.chunks[id] == replicas, "chunk \(id.hex) of \(key): \(held.chunks[id] ?? [])")
                }
                #expect(!(held.refs[key] ?? []).isEmpty, "\(key) has chunks")
            }
            for key in deleted {
                #expect(
                    held.manifests[key] == nil,
                    "the delete marker of \(key) is still held: \(held.manifests[key] ?? [:])")
            }
            #expect(held.manifests.values.contains { $0["settat-1"] != nil }, "settat-1 holds manifests again")
        }
    }
}
