import AgadirCore
import AgadirLab
import AgadirStore
import Foundation
import Logging
import Testing

/// The torture smoke of CI (docs/consistency.md): one seed, a minute of clients under
/// kill, pause, clock skew, partitions and degraded links on a three-site lab, then the
/// checker; and 45 s of layout growth and drain with a Paris node scanned raw afterwards. The full matrix
/// runs on request (`agadir-lab torture`, see docs/consistency.md for the command).
@Suite("Torture smoke: clients under a seeded nemesis, then the history checker", .serialized, .oneLabAtATime)
struct TortureSmokeTests {
    @Test("the replica check can fail: a manifest planted into one stopped node's store is found divergent")
    func replicaCheck_findsAPlantedDivergence() async throws {
        try await withThreeSiteLab { lab in
            let client = try lab.client(for: "benguerir-1")
            defer { Task { await client.close() } }
            try await client.createBucket("torture", policy: "ma")
            let put = try await client.put(bucket: "torture", key: "k0", data: Array("v".utf8), consistency: .all)
            var options = Torture.Options()
            options.bucket = "torture"
            let torture = Torture(lab: lab, options: options)
            let clean = try await torture.checkReplicas(client)
            #expect(clean.divergentPartitions == 0 && clean.residencyViolations == 0, "\(clean)")
            // Behind the cluster's back: settat-1 alone gets a newer version of k0.
            try await lab.stop("settat-1")
            let dir = try #require(try lab.status().first { $0.name == "settat-1" }?.dataDir)
            let store = try NodeStore.open(directory: dir, logger: Logger(label: "planting"))
            let planted = ObjectManifest(
                bucket: "torture", key: "k0", size: 1, etag: ChunkID.of([1]), contentType: "x", userMetadata: [],
                version: ObjectVersion(timestamp: HLCTimestamp(rawValue: put.version.timestamp.rawValue + 1), node: 7),
                isTombstone: false, body: .inline([1]))
            _ = try await store.putReplicaManifest(planted)
            await store.close()
            try await lab.start("settat-1")
            try await lab.waitConverged(timeout: .seconds(60))
            let found = try await torture.checkReplicas(client)
            #expect(found.divergentPartitions > 0, "the planted manifest went unnoticed")
            // The pass repaired it: the next one finds the replicas identical again.
            #expect(try await torture.checkReplicas(client).divergentPartitions == 0)
        }
    }

    @Test(
        "seed 1, kill + pause + skew + partition + link, 60 s: faults were injected, operations ran, and the checker finds nothing"
    )
    func smoke_findsNoAnomaly() async throws {
        try await withThreeSiteLab(relays: true) { lab in
            var options = Torture.Options()
            options.seed = 1
            options.duration = .seconds(60)
            options.clients = 3
            options.faults = [.kill, .pause, .skew, .partition, .link]
            options.historyFile = lab.root.appendingPathComponent("history.jsonl").path
            let result = try await Torture(lab: lab, options: options).run()
            let kinds = Set(result.faults.map { $0.what.split(separator: " ").first.map(String.init) ?? "" })
            #expect(
                kinds.isSuperset(of: ["kill", "pause", "skew", "partition", "link"]),
                "faults injected: \(result.faults)")
            #expect((result.report.counts["put ok"] ?? 0) > 100 && (result.report.counts["get ok"] ?? 0) > 100)
            #expect(
                result.report.anomalies.isEmpty,
                "\(result.report.anomalies.prefix(3).map { "\($0)\n" + $0.excerpt.map(HistoryFile.encode).joined(separator: "\n") })"
            )
            #expect(result.divergentPartitions == 0, "replicas still differ after a repair")
            #expect(result.residencyViolations == 0)
            // The history on disk is what was checked.
            let text = try String(contentsOfFile: try #require(options.historyFile), encoding: .utf8)
            #expect(try HistoryFile.decode(text).count == result.operations * 2)
        }
    }

    /// Three Moroccan nodes, one Paris node, relays; policy `ma` on 16 partitions.
    static func withForeignLab(_ body: (Lab) async throws -> Void) async throws {
        try await withThreeSiteLab(relays: true, extraSites: ["paris"], body)
    }

    @Test("the raw scan can fail: a manifest of the Moroccan bucket planted on the Paris node's disk is found")
    func foreignScan_findsAPlantedFragment() async throws {
        try await Self.withForeignLab { lab in
            let client = try lab.client(for: "benguerir-1")
            defer { Task { await client.close() } }
            try await client.createBucket("torture", policy: "ma")
            let put = try await client.put(bucket: "torture", key: "k0", data: Array("v".utf8), consistency: .all)
            var options = Torture.Options()
            options.foreignNodes = ["paris-1"]
            let torture = Torture(lab: lab, options: options)
            #expect(try await torture.scanForeignDisks() == 0)
            // The scan stopped paris-1: plant the manifest behind the cluster's back.
            let dir = try #require(try lab.status().first { $0.name == "paris-1" }?.dataDir)
            let store = try NodeStore.open(directory: dir, logger: Logger(label: "planting"))
            _ = try await store.putReplicaManifest(
                ObjectManifest(
                    bucket: "torture", key: "k0", size: 1, etag: ChunkID.of([1]), contentType: "x", userMetadata: [],
                    version: put.version, isTombstone: false, body: .inline(Array("v".utf8))))
            await store.close()
            #expect(try await torture.scanForeignDisks() == 1, "the planted manifest went unnoticed")
        }
    }

    @Test(
        "seed 3, grow + drain + kill + partition with a Paris node, 45 s: the layout grows and drains under load, nothing is lost, nothing of the bucket reaches Paris"
    )
    func layoutChangesUnderFaults_findNoAnomaly() async throws {
        try await Self.withForeignLab { lab in
            var options = Torture.Options()
            options.seed = 3
            options.duration = .seconds(45)
            options.clients = 3
            options.faults = [.grow, .drain, .kill, .partition]
            options.foreignNodes = ["paris-1"]
            let result = try await Torture(lab: lab, options: options).run()
            let kinds = Set(result.faults.map { $0.what.split(separator: " ").first.map(String.init) ?? "" })
            #expect(kinds.isSuperset(of: ["grow:", "kill", "partition"]), "faults injected: \(result.faults)")
            #expect(!result.faults.contains { $0.what.contains("nemesis error") }, "\(result.faults)")
            #expect(try lab.state().nodes.count > 4, "the layout did not grow")
            #expect(
                result.report.anomalies.isEmpty,
                "\(result.report.anomalies.prefix(3).map { "\($0)\n" + $0.excerpt.map(HistoryFile.encode).joined(separator: "\n") })"
            )
            #expect(result.divergentPartitions == 0 && result.residencyViolations == 0)
            #expect(result.foreignFragments == 0)
        }
    }

}
