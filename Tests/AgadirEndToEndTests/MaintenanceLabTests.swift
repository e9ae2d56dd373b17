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

/// Six nodes in three Moroccan sites with policy `ma` (RF 3) applied on 64 partitions and
/// bucket `bin` created; `arguments` go to every node.
private func maintenanceLab(_ arguments: [String]) async throws -> Lab {
    let lab = try await Lab.create(
        sites: ["benguerir", "casablanca", "settat"], nodesPerSite: 2, extraArguments: arguments)
    do {
        try await lab.up(waitForConvergence: true, timeout: .seconds(90))
        try await lab.applyLayout(
            policies: [LabPolicy(name: "ma", replicationFactor: 3, sites: "country=MA", minSites: 2)],
            partitionCount: 64)
        let client = try lab.client(for: "benguerir-1")
        try await client.createBucket("bin", policy: "ma")
        await client.close()
    } catch {
        _ = try? await lab.down(timeout: .seconds(15))
        try? FileManager.default.removeItem(at: lab.root)
        throw error
    }
    return lab
}

private func tearDown(_ lab: Lab) async {
    _ = try? await lab.down(timeout: .seconds(15))
    try? FileManager.default.removeItem(at: lab.root)
}

/// Sum over the running nodes of the bytes their segment files take (STAT).
private func segmentBytes(_ lab: Lab) async throws -> UInt64 {
    var total: UInt64 = 0
    for node in try lab.status() where node.state == .running {
        let client = try lab.client(for: node.name)
        let stats = try await client.stat()
        await client.close()
        total += stats.segmentBytes
    }
    return total
}

@Suite("Scrub and garbage collection on the lab", .serialized, .oneLabAtATime)
struct MaintenanceLabTests {
    @Test(
        "a chunk corrupted on disk is found by the scrub, quarantined and replaced by a verified copy from another replica"
    )
    func scrubRepairsACorruptChunk() async throws {
        let lab = try await maintenanceLab(["--scrub-rate", "0"])
        do {
            let client = try lab.client(for: "benguerir-1")
            var objects: [String: [UInt8]] = [:]
            for i in 0..<12 {
                let data = randomBytes(100_000 + i * 1000, seed: UInt64(700 + i))
                _ = try await client.put(bucket: "bin", key: "s-\(i)", data: data)
                objects["s-\(i)"] = data
            }
            await client.close()
            // One chunk (the whole of object s-0), on one of its replicas.
            let data = try #require(objects["s-0"])
            let id = ChunkID.of(data)
            let layoutDir = try #require(try lab.status().first { $0.name == "benguerir-1" }?.dataDir)
            let layout = try ClusterLayoutCodec.decode(
                Array(try Data(contentsOf: URL(fileURLWithPath: layoutDir + "/layout.bin")))
            ).current
            let victim = try #require(
                layout.replicas(policy: "ma", partition: Partitioner.partition(of: id, count: layout.partitionCount))
                    .first)
            try await lab.stop(victim)
            let dir = try #require(try lab.status().first { $0.name == victim }?.dataDir)
            // The chunk's bytes appear as they are in its segment (incompressible data stays as
            // literals); flip one in the middle.
            let sample = Data(data[50_000..<50_032])
            var flipped = false
            for name in try FileManager.default.contentsOfDirectory(atPath: dir + "/chunks") {
                let url = URL(fileURLWithPath: dir + "/chunks/" + name)
                var contents = try Data(contentsOf: url)
                guard let range = contents.range(of: sample) else { continue }
                contents[range.lowerBound + 7] ^= 0x01
                try contents.write(to: url)
                flipped = true
            }
            try #require(flipped, "the chunk's bytes were not found in \(victim)'s segments")
            try await lab.start(victim)
            try await lab.waitConverged(timeout: .seconds(60))

            let endpoint = try #require(try lab.status().first { $0.name == "benguerir-1" }?.clientEndpoint)
            let cli = CLI(endpoint: endpoint, credentials: lab.credentialsFile)
            let started = try await cli.runDetached(["admin", "scrub", "start"])
            #expect(started.status == 0, "\(started.stderr)")
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(60)
            var repaired = false
            var last = ""
            while !repaired, clock.now < deadline {
                let status = try await cli.runDetached(["admin", "scrub", "status", "--json"])
                last = status.stdout
                let nodes = (try? Admin.scrubStatus.decode(output: Array(status.stdout.utf8))) ?? []
                let mine = nodes.first { $0.node == victim }?.scrub
                repaired = (mine?.corruptFound ?? 0) >= 1 && (mine?.repaired ?? 0) >= 1 && (mine?.quarantined ?? 1) == 0
                if !repaired { try await Task.sleep(for: .milliseconds(300)) }
            }
            #expect(repaired, "\(last)")
            let table = try await cli.runDetached(["admin", "scrub", "status"])
            #expect(table.status == 0 && table.stdout.contains(victim), "\(table.stdout)\(table.stderr)")
            // The victim's own copy is sound again: read its store directly.
            try await lab.stop(victim)
            var logger = Logger(label: "agadir.e2e.scrub")
            logger.logLevel = .critical
            let store = try NodeStore.open(directory: dir, logger: logger)
            #expect(try await store.readChunk(id) == data)
            await store.close()
        } catch {
            await tearDown(lab)
            throw error
        }
        await tearDown(lab)
    }

    @Test(
        "deleted objects' space comes back after the grace period and not before; uploads racing the collector lose nothing"
    )
    func spaceComesBackAfterGrace_andUploadsRacingCollectionLoseNothing() async throws {
        // Long enough that the "not before the grace period" check, 3 s after the deletes,
        // is far inside it on a loaded machine.
        let grace = 20
        let lab = try await maintenanceLab([
            "--garbage-grace", "\(grace)", "--garbage-interval", "1", "--segment-max-bytes", "\(1 << 20)",
        ])
        do {
            let client = try lab.client(for: "benguerir-1")
            // Objects whose bytes come back under new keys, objects deleted for good, and live
            // filler written last (so the deleted bytes lie in closed segments).
            var reused: [(old: String, new: String, data: [UInt8])] = []
            var doomed: [String] = []
            for i in 0..<20 {
                let data = randomBytes(120_000, seed: UInt64(9500 + i))
                _ = try await client.put(bucket: "bin", key: "old-\(i)", data: data)
                reused.append(("old-\(i)", "new-\(i)", data))
            }
            let reusedWritten = ContinuousClock.now
            for i in 0..<60 {
                _ = try await client.put(
                    bucket: "bin", key: "doomed-\(i)", data: randomBytes(200_000, seed: UInt64(9000 + i)))
                doomed.append("doomed-\(i)")
            }
            for i in 0..<12 {
                _ = try await client.put(
                    bucket: "bin", key: "filler-\(i)", data: randomBytes(200_000, seed: UInt64(9900 + i)))
            }
            let before = try await segmentBytes(lab)
            let deletedAt = ContinuousClock.now
            for key in doomed { _ = try await client.delete(bucket: "bin", key: key) }
            let doomedBytes: UInt64 = 60 * 200_000 * 3

            // Before the grace period: nothing reclaimed.
            try await Task.sleep(for: .seconds(3))
            let early = try await segmentBytes(lab)
            #expect(early >= before, "space came back before the grace period: \(before) -> \(early)")
            #expect(ContinuousClock.now - deletedAt < .seconds(grace), "the check ran too late to mean anything")

            // After it, most of the deleted objects' bytes (the rest share segments with live
            // data, below the compaction threshold) are gone from disk.
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(120)
            var after = early
            while clock.now < deadline {
                after = try await segmentBytes(lab)
                if after + doomedBytes * 6 / 10 <= early { break }
                try await Task.sleep(for: .seconds(1))
            }
            #expect(
                after + doomedBytes * 6 / 10 <= early,
                "segment bytes \(before) before, \(early) early, \(after) after the grace period")
            print(
                "garbage collection: segment bytes \(before) before the deletes, \(early) within the grace period, \(after) after it (\(doomedBytes) bytes deleted)"
            )

            // The race, for real. Each reused object was written more than the grace period
            // ago, so the moment it is deleted its chunk has no live reference and is the
            // collector's to drop on its next pass (every second). Each is deleted, and its
            // bytes uploaded again under a new key 0-2 s later (seeded), all at once: the
            // uploads' claims of those chunks race the collector's drops of them.
            while ContinuousClock.now - reusedWritten < .seconds(grace + 1) {
                try await Task.sleep(for: .milliseconds(200))
            }
            let racer = try lab.client(for: "casablanca-1")
            var rng = SplitMix64(seed: 95)
            let delays = reused.map { _ in Int(rng.next() % 2000) }
            let failures = await withTaskGroup(of: String?.self) { group -> [String] in
                for (r, delay) in zip(reused, delays) {
                    group.addTask {
                        do {
                            _ = try await racer.delete(bucket: "bin", key: r.old)
                            try await Task.sleep(for: .milliseconds(delay))
                            _ = try await racer.put(bucket: "bin", key: r.new, data: r.data)
                            return nil
                        } catch {
                            return "\(r.new): \(error)"
                        }
                    }
                }
                var out: [String] = []
                for await f in group { if let f { out.append(f) } }
                return out
            }
            await racer.close()
            #expect(failures.isEmpty, "\(failures.prefix(3))")
            // A few more collector passes, then every re-uploaded object reads back whole,
            // through every node (a chunk dropped under a claim would fail here).
            let passes = try await Self.gcTotal(
                CLI(
                    endpoint: try #require(try lab.status().first?.clientEndpoint), credentials: lab.credentialsFile)
            ) { $0.passes }
            var now = passes
            let more = clock.now + .seconds(60)
            while now < passes + 3 * 6, clock.now < more {
                try await Task.sleep(for: .milliseconds(500))
                now = try await Self.gcTotal(
                    CLI(
                        endpoint: try #require(try lab.status().first?.clientEndpoint),
                        credentials: lab.credentialsFile)
                ) { $0.passes }
            }
            for name in try lab.status().map(\.name) {
                let reader = try lab.client(for: name)
                for r in reused {
                    #expect(try await reader.get(bucket: "bin", key: r.new).1 == r.data, "\(r.new) via \(name)")
                }
                await reader.close()
            }
            let gc = try await CLI(
                endpoint: try #require(try lab.status().first?.clientEndpoint), credentials: lab.credentialsFile
            ).runDetached([
                "admin", "gc", "status",
            ])
            #expect(gc.status == 0 && gc.stdout.contains("CHUNKS RECLAIMED"), "\(gc.stdout)\(gc.stderr)")
            await client.close()
        } catch {
            await tearDown(lab)
            throw error
        }
        await tearDown(lab)
    }

    /// Sums a field of every node's `gc status --json` record.
    private static func gcTotal(_ cli: CLI, _ field: (GarbageProgress) -> Int) async throws -> Int {
        let status = try await cli.runDetached(["admin", "gc", "status", "--json"])
        let nodes = (try? Admin.gcStatus.decode(output: Array(status.stdout.utf8))) ?? []
        return nodes.compactMap(\.gc).map(field).reduce(0, +)
    }

    @Test(
        "with a replica down, a deleted object's chunks are reclaimed on the others; back, the replica neither resurrects it nor reads a missing chunk; a deleted bucket's objects are purged"
    )
    func collectsWithAReplicaDown_andPurgesDeletedBuckets() async throws {
        let lab = try await maintenanceLab(["--garbage-grace", "3", "--garbage-interval", "1"])
        do {
            let client = try lab.client(for: "benguerir-1")
            let victim = randomBytes(300_000, seed: 4242)
            let keeper = randomBytes(300_000, seed: 4343)
            _ = try await client.put(bucket: "bin", key: "victim", data: victim)
            _ = try await client.put(bucket: "bin", key: "keeper", data: keeper)
            let layout = try ClusterLayoutCodec.decode(
                Array(
                    try Data(
                        contentsOf: URL(
                            fileURLWithPath: try #require(try lab.status().first { $0.name == "benguerir-1" }?.dataDir)
                                + "/layout.bin")))
            ).current
            let down = try #require(
                layout.replicas(
                    policy: "ma",
                    partition: Partitioner.partition(bucket: "bin", key: "victim", count: layout.partitionCount)
                ).first { $0 != "benguerir-1" })
            try await lab.kill(down)
            _ = try await client.delete(bucket: "bin", key: "victim")

            // The collector decides from the replicas that answer: a majority of the victim's
            // manifest replicas holds its delete marker, so its chunks are reclaimed although
            // one replica is down (before, every reference stayed undecided).
            let endpoint = try #require(try lab.status().first { $0.name == "benguerir-1" }?.clientEndpoint)
            let cli = CLI(endpoint: endpoint, credentials: lab.credentialsFile)
            let clock = ContinuousClock()
            var deadline = clock.now + .seconds(60)
            var reclaimed = 0
            while clock.now < deadline {
                reclaimed = try await Self.gcTotal(cli) { $0.chunksReclaimed }
                if reclaimed > 0 { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(reclaimed > 0, "no chunk reclaimed with \(down) down")

            // Back: the delete marker reaches it (hint, read repair), nothing comes back, and
            // every remaining object reads whole through every node, the returning one included.
            try await lab.start(down)
            try await lab.waitConverged(timeout: .seconds(60))
            for name in try lab.status().map(\.name) {
                let reader = try lab.client(for: name)
                let gone = await agadirError { _ = try await reader.get(bucket: "bin", key: "victim") }
                #expect(gone?.code == .noSuchKey, "victim via \(name): \(String(describing: gone))")
                #expect(try await reader.get(bucket: "bin", key: "keeper").1 == keeper, "keeper via \(name)")
                let listed = try await reader.list(ListRequest(bucket: "bin", limit: 100))
                #expect(listed.entries.map(\.key) == ["keeper"], "listing via \(name)")
                await reader.close()
            }

            // A deleted bucket's delete markers are purged by every node's collector.
            try await client.createBucket("gone", policy: "ma")
            for i in 0..<5 {
                _ = try await client.put(bucket: "gone", key: "x\(i)", data: randomBytes(5000, seed: UInt64(i)))
            }
            for i in 0..<5 { _ = try await client.delete(bucket: "gone", key: "x\(i)") }
            try await client.deleteBucket("gone")
            deadline = clock.now + .seconds(60)
            var purged = 0
            while clock.now < deadline {
                purged = try await Self.gcTotal(cli) { $0.manifestsPurged ?? 0 }
                if purged >= 15 { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(purged >= 15, "\(purged) manifests of the deleted bucket purged; 5 markers x RF 3 expected")
            await client.close()
            // Raw: no node's store holds a manifest of the deleted bucket.
            try await lab.stopAll(timeout: .seconds(30))
            var logger = Logger(label: "agadir.e2e.gc")
            logger.logLevel = .critical
            for node in try lab.status() {
                let store = try NodeStore.open(directory: node.dataDir, logger: logger)
                let left = try await store.manifestInventory(after: nil, limit: 10_000).filter { $0.bucket == "gone" }
                #expect(left.isEmpty, "\(node.name) still holds \(left.map(\.key))")
                await store.close()
            }
        } catch {
            await tearDown(lab)
            throw error
        }
        await tearDown(lab)
    }

}
