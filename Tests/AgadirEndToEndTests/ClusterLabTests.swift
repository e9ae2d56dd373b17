import AgadirClient
import AgadirCore
import AgadirLab
import AgadirPlacement
import AgadirStore
import AgadirTransport
import AgadirWire
import Foundation
import Logging
import Testing

/// Brings a lab down and deletes its root, whatever the test did.
private func tearDownCluster(_ lab: Lab) async {
    _ = try? await lab.down(timeout: .seconds(15))
    try? FileManager.default.removeItem(at: lab.root)
}

private let quietStoreLogger: Logger = {
    var l = Logger(label: "agadir.e2e.cluster")
    l.logLevel = .critical
    return l
}()

/// Four sites (three Moroccan, one French) of two nodes each, with the layout applied:
/// policy `ma` (RF 3, country=MA, at least 2 sites, QUORUM) and `global` (RF 3, any site).
private func moroccanLab() async throws -> Lab {
    let lab = try await Lab.create(sites: ["benguerir", "casablanca", "settat", "paris"], nodesPerSite: 2)
    do {
        try await lab.up(waitForConvergence: true, timeout: .seconds(90))
        try await lab.applyLayout(
            policies: [
                LabPolicy(name: "ma", replicationFactor: 3, sites: "country=MA", minSites: 2),
                LabPolicy(name: "global", replicationFactor: 3, sites: "any", minSites: 1),
            ], partitionCount: 64)
    } catch {
        await tearDownCluster(lab)
        throw error
    }
    return lab
}

/// The applied layout, read from a node's data directory.
private func currentLayout(_ lab: Lab) throws -> ClusterLayout {
    let dir = try #require(try lab.status().first?.dataDir)
    let bytes = try Data(contentsOf: URL(fileURLWithPath: dir).appendingPathComponent("layout.bin"))
    return try ClusterLayoutCodec.decode(Array(bytes))
}

/// The residency audit of the whole cluster, through `node`.
private func audit(_ lab: Lab, via node: String) async throws -> [ResidencyAudit] {
    let client = try lab.client(for: node)
    do {
        let answer = try await client.admin(Admin.auditResidency)
        await client.close()
        return answer
    } catch {
        await client.close()
        throw error
    }
}

private func totalHints(_ audit: [ResidencyAudit]) -> Int {
    audit.reduce(0) { $0 + $1.hints }
}

@Suite("A multi-site cluster on the lab: sovereignty, quorums, hints, convergence", .serialized, .oneLabAtATime)
struct ClusterLabTests {
    @Test("a bucket on policy ma is served through every node, Paris included, and no byte of it lands in Paris")
    func sovereignty() async throws {
        let lab = try await moroccanLab()
        do {
            let names = try lab.status().map(\.name)
            let paris = try lab.client(for: "paris-1")
            try await paris.createBucket("ma-data", policy: "ma")
            try await paris.createBucket("world", policy: "global")
            // Incompressible objects, inline and chunked, written through every node in turn.
            let marker = "sovereign-7f3a"
            let sizes = [1, 100, 4096, 5000, 70_000, 300_000, 2_500_000]
            var objects: [(key: String, data: [UInt8])] = []
            for (i, size) in sizes.enumerated() {
                let key = "\(marker)/object-\(i)"
                let data = randomBytes(size, seed: UInt64(1000 + i))
                let writer = try lab.client(for: names[i % names.count])
                _ = try await writer.put(bucket: "ma-data", key: key, data: data)
                await writer.close()
                objects.append((key, data))
            }
            // The global bucket may live anywhere, Paris included.
            _ = try await paris.put(bucket: "world", key: "hello", data: randomBytes(200_000, seed: 77))
            // Read back through every node, Paris included (redirected), and listed through Paris.
            for name in names {
                let reader = try lab.client(for: name)
                for (key, data) in objects {
                    let (_, got) = try await reader.get(bucket: "ma-data", key: key)
                    #expect(got == data, "\(key) through \(name)")
                }
                await reader.close()
            }
            let page = try await paris.list(ListRequest(bucket: "ma-data", prefix: "\(marker)/"))
            #expect(page.entries.map(\.key) == objects.map(\.key).sorted())
            await paris.close()

            // A client that does not ask ROUTE first gets REDIRECT from Paris, naming Moroccan nodes.
            let parisEndpoint = try #require(try lab.status().first { $0.name == "paris-1" }?.clientEndpoint)
            let (host, port) = try Endpoint.parse(parisEndpoint)
            let caPEM = try String(contentsOfFile: try #require(try lab.state().caFile), encoding: .utf8)
            let raw = try await ClientConnection.connect(
                host: host, port: port, limits: .default, bodyBufferBytes: 1 << 20, connectTimeout: .seconds(2),
                tls: DialTLS(context: try TLSContexts.client(caPEM: caPEM)))
            let (id, body) = try raw.open()
            body.abandon()
            var fields = Request.head(bucket: "ma-data", key: objects[0].key).fields()
            RequestSigning.sign(opcode: Opcode.head.rawValue, fields: &fields, credentials: try lab.rootCredentials())
            try await raw.write(.request(id: id, opcode: .head, fields: fields, end: true))
            let answer = try await raw.awaitResponse(id)
            raw.close()
            let redirect = try #require(answer.error)
            #expect(redirect.code == .redirect, "\(redirect)")
            let moroccan = Set(try lab.status().filter { $0.site != "paris" }.compactMap(\.clientEndpoint))
            #expect(
                !redirect.redirect.isEmpty && redirect.redirect.allSatisfy { moroccan.contains($0) },
                "\(redirect.redirect)")

            // No file under a Paris node's data directory holds any of the bucket's bytes or keys.
            var needles: [Data] = [Data(marker.utf8)]
            for (_, data) in objects where data.count >= 64 {
                for offset in stride(from: 0, to: data.count - 32, by: max(32, data.count / 16)) {
                    needles.append(Data(data[offset..<offset + 32]))
                }
            }
            var scannedFiles = 0
            for node in try lab.status() where node.site == "paris" {
                let root = URL(fileURLWithPath: node.dataDir)
                let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])
                while let url = files?.nextObject() as? URL {
                    guard (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true else {
                        continue
                    }
                    let contents = try Data(contentsOf: url)
                    scannedFiles += 1
                    for needle in needles {
                        #expect(contents.range(of: needle) == nil, "\(url.path) holds bytes of bucket ma-data")
                    }
                }
            }
            #expect(scannedFiles > 0)

            // The audit, asked through Paris, finds nothing outside its sites on any node.
            let report = try await audit(lab, via: "paris-1")
            #expect(report.count == 8)
            for n in report {
                #expect(n.error == nil, "\(n)")
                #expect(n.violationCount == 0, "\(n)")
                if n.site == "paris" { #expect(n.manifests <= 1, "\(n)") }
            }
            let manifests = report.reduce(0) { $0 + $1.manifests }
            #expect(manifests == 3 * (objects.count + 1), "every object on 3 replicas: \(report)")
        } catch {
            await tearDownCluster(lab)
            throw error
        }
        await tearDownCluster(lab)
    }

    @Test(
        "QUORUM survives one replica down and refuses with two, ONE goes on; after restarts hints deliver and replicas converge"
    )
    func quorumsHintsAndConvergence() async throws {
        let lab = try await moroccanLab()
        do {
            let layout = try currentLayout(lab).current
            let key = "q-key"
            let replicas = layout.replicas(
                policy: "ma",
                partition: Partitioner.partition(bucket: "ma-data", key: key, count: layout.partitionCount))
            #expect(replicas.count == 3)
            // A coordinator outside the replica set, in Morocco.
            let names = try lab.status().map(\.name)
            let coordinatorName = try #require(names.first { !replicas.contains($0) && !$0.hasPrefix("paris") })
            let client = try lab.client(for: coordinatorName)
            try await client.createBucket("ma-data", policy: "ma")

            try await lab.kill(replicas[0])
            let v1 = try await client.put(bucket: "ma-data", key: key, data: Array("v1".utf8))
            #expect(try await client.get(bucket: "ma-data", key: key).1 == Array("v1".utf8))

            try await lab.kill(replicas[1])
            let refused = await agadirError {
                _ = try await client.put(bucket: "ma-data", key: key, data: Array("v2".utf8))
            }
            #expect(refused?.code == .notEnoughReplicas, "\(String(describing: refused))")
            #expect(refused?.replicas == AgadirError.ReplicaCount(answered: 1, needed: 2))
            let readRefused = await agadirError { _ = try await client.get(bucket: "ma-data", key: key) }
            #expect(readRefused?.code == .notEnoughReplicas)
            let v3 = try await client.put(bucket: "ma-data", key: key, data: Array("v3".utf8), consistency: .one)
            #expect(v3.version > v1.version)
            #expect(try await client.get(bucket: "ma-data", key: key, consistency: .one).1 == Array("v3".utf8))
            // A chunked object at ONE while both are down: its chunks park hints too.
            let big = randomBytes(1_500_000, seed: 5)
            _ = try await client.put(bucket: "ma-data", key: "big", data: big, consistency: .one)

            try await lab.start(replicas[0])
            try await lab.start(replicas[1])
            // Hints deliver once gossip sees the nodes again.
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(60)
            var pending = -1
            while clock.now < deadline {
                let report = try await audit(lab, via: coordinatorName)
                pending = report.contains { $0.error != nil } ? -1 : totalHints(report)
                if pending == 0 { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(pending == 0, "hints still pending after 60 s")

            // Read-your-writes under QUORUM, through nodes of different sites.
            for i in 0..<20 {
                let writer = try lab.client(for: names[i % names.count])
                let reader = try lab.client(for: names[(i + 3) % names.count])
                let value = Array("ryw-\(i)".utf8)
                _ = try await writer.put(bucket: "ma-data", key: "ryw", data: value)
                #expect(try await reader.get(bucket: "ma-data", key: "ryw").1 == value, "iteration \(i)")
                await writer.close()
                await reader.close()
            }
            // Concurrent writers to one key through different nodes.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<8 {
                    let writer = try lab.client(for: names[i % names.count])
                    group.addTask {
                        _ = try await writer.put(
                            bucket: "ma-data", key: "contended", data: randomBytes(6000 + i, seed: UInt64(i)))
                        await writer.close()
                    }
                }
                try await group.waitForAll()
            }
            let (winner, _) = try await client.get(bucket: "ma-data", key: "contended", consistency: .all)
            await client.close()

            // Stop everything and compare the replicas' stores directly.
            try await lab.stopAll()
            let dirs = Dictionary(uniqueKeysWithValues: try lab.status().map { ($0.name, $0.dataDir) })
            var stores: [String: NodeStore] = [:]
            for (name, dir) in dirs { stores[name] = try NodeStore.open(directory: dir, logger: quietStoreLogger) }
            for k in [key, "big", "contended", "ryw"] {
                let set = layout.replicas(
                    policy: "ma",
                    partition: Partitioner.partition(bucket: "ma-data", key: k, count: layout.partitionCount))
                var seen: [ObjectManifest] = []
                for node in set {
                    seen.append(
                        try #require(
                            try await stores[node]?.manifest(bucket: "ma-data", key: k), "\(k) missing on \(node)"))
                }
                #expect(Set(seen.map(\.version)).count == 1, "\(k): replicas disagree: \(seen.map(\.version))")
                #expect(Set(seen.map(\.etag)).count == 1)
                if k == key { #expect(seen.first?.version == v3.version) }
                if k == "contended" { #expect(seen.first?.etag == winner.etag) }
                if k == "big", case .chunks(let refs) = seen.first?.body {
                    for ref in refs {
                        let holders = layout.replicas(
                            policy: "ma", partition: Partitioner.partition(of: ref.id, count: layout.partitionCount))
                        for holder in holders {
                            #expect(
                                try await stores[holder]?.containsChunks([ref.id]).first == true,
                                "chunk \(ref.id.hex) missing on \(holder)")
                        }
                    }
                }
            }
            for s in stores.values { await s.close() }
            stores.removeAll()
        } catch {
            await tearDownCluster(lab)
            throw error
        }
        await tearDownCluster(lab)
    }

    @Test("killing the coordinator in the middle of a PUT never leaves a readable half-object")
    func coordinatorKilledMidPut() async throws {
        let lab = try await moroccanLab()
        do {
            let names = try lab.status().map(\.name)
            let setup = try lab.client(for: "benguerir-1")
            try await setup.createBucket("ma-data", policy: "ma")
            let old = randomBytes(3000, seed: 1)
            _ = try await setup.put(bucket: "ma-data", key: "replaced", data: old)
            await setup.close()
            // The coordinator: a Moroccan node the client sends to (ROUTE says it may coordinate).
            let victim = try #require(names.first { $0.hasPrefix("casablanca") })
            let client = try lab.client(for: victim)
            let size = 24 << 20
            for key in ["fresh", "replaced"] {
                let sent = Locked(0)
                let lab2 = lab
                let killer = Task {
                    while sent.value < size / 3 { try await Task.sleep(for: .milliseconds(5)) }
                    try await lab2.kill(victim)
                }
                let failed = await agadirError {
                    _ = try await client.put(PutRequest(bucket: "ma-data", key: key, size: UInt64(size))) {
                        (send: (ArraySlice<UInt8>) async throws(AgadirError) -> Void) throws(AgadirError) in
                        var offset = 0
                        while offset < size {
                            let n = min(256 << 10, size - offset)
                            try await send(ArraySlice(randomBytes(n, seed: UInt64(offset))))
                            offset += n
                            sent.withLock { $0 = offset }
                            try? await Task.sleep(for: .milliseconds(2))
                        }
                    }
                }
                _ = try? await killer.value
                #expect(failed != nil, "the PUT of \(key) succeeded although its coordinator was killed")
                let reader = try lab.client(for: "settat-1")
                if key == "fresh" {
                    let missing = await agadirError { _ = try await reader.get(bucket: "ma-data", key: key) }
                    #expect(missing?.code == .noSuchKey, "\(String(describing: missing))")
                } else {
                    #expect(try await reader.get(bucket: "ma-data", key: key).1 == old)
                }
                await reader.close()
                try await lab.start(victim)
            }
            await client.close()
        } catch {
            await tearDownCluster(lab)
            throw error
        }
        await tearDownCluster(lab)
    }
}

@Suite("Layout changes through the agadir CLI, with data living in the cluster", .serialized, .oneLabAtATime)
struct LayoutLifecycleTests {
    @Test(
        "stage, plan, refuse a stale version, apply, grow by one node with both versions live, refuse an unsatisfiable plan, persist"
    )
    func layoutLifecycle() async throws {
        let lab = try await Lab.create(sites: ["benguerir", "casablanca", "settat"], nodesPerSite: 2)
        do {
            try await lab.up(waitForConvergence: true, timeout: .seconds(90))
            let endpoint = try #require(try lab.status().first?.clientEndpoint)
            let cli = CLI(endpoint: endpoint, credentials: lab.credentialsFile)
            func ok(_ args: [String]) async throws -> String {
                let r = try await cli.runDetached(args)
                #expect(r.status == 0, "agadir \(args.joined(separator: " ")): \(r.stderr)")
                return r.stdout
            }
            func waitForVersion(_ v: UInt64) async throws {
                let clock = ContinuousClock()
                let deadline = clock.now + .seconds(30)
                for name in try lab.status().map(\.name) {
                    while try await lab.layoutVersion(of: name) < v {
                        #expect(clock.now < deadline, "\(name) did not reach layout version \(v)")
                        if clock.now >= deadline { return }
                        try await Task.sleep(for: .milliseconds(200))
                    }
                }
            }
            #expect(try await ok(["admin", "layout", "show"]).contains("layout version 0"))
            for node in try lab.status() where node.name != "settat-2" {
                _ = try await ok([
                    "admin", "layout", "assign", node.name, "--site", node.site, "--capacity", "2TB", "--site-label",
                    "country=MA",
                ])
            }
            _ = try await ok(["admin", "layout", "partitions", "64"])
            _ = try await ok([
                "admin", "policy", "create", "ma", "--rf", "3", "--sites", "country=MA", "--min-sites", "2",
            ])
            #expect(try await ok(["admin", "layout", "plan"]).contains("layout version 0 -> 1"))
            let stale = try await cli.runDetached(["admin", "layout", "apply", "--version", "2"])
            #expect(stale.status == 3, "stale version: \(stale.stderr)")
            #expect(stale.stderr.contains("LAYOUT_VERSION_CONFLICT") && stale.stderr.contains("--version 1"))
            _ = try await ok(["admin", "layout", "apply", "--version", "1"])
            try await waitForVersion(1)

            _ = try await ok(["mb", "moroccan", "--policy", "ma"])
            let client = try lab.client(for: "benguerir-1")
            var objects: [(String, [UInt8])] = []
            for i in 0..<24 {
                let data = randomBytes(i % 4 == 0 ? 600_000 : 2000 + i, seed: UInt64(300 + i))
                _ = try await client.put(bucket: "moroccan", key: "before-\(i)", data: data)
                objects.append(("before-\(i)", data))
            }

            // Grow by one node: partitions move; until a rebalance retires version 1, both stay live.
            _ = try await ok(["admin", "layout", "assign", "settat-2", "--site", "settat", "--capacity", "2TB"])
            let plan = try await cli.runDetached(["admin", "layout", "plan", "--json"])
            let planView = try Admin.layoutPlan.decode(output: Array(plan.stdout.utf8))
            #expect(planView.totalPartitionsMoved > 0, "\(plan.stdout)")
            #expect(!planView.links.isEmpty, "bytes per site link are estimated")
            // Paused, the rebalance keeps both versions live (the pause survives a restart below).
            #expect(try await ok(["admin", "rebalance", "pause"]).contains("PAUSED"))
            _ = try await ok(["admin", "layout", "apply", "--version", "2"])
            try await waitForVersion(2)
            let shown = try Admin.layoutShow.decode(
                output: Array(try await ok(["admin", "layout", "show", "--json"]).utf8))
            #expect(shown.liveVersions == [1, 2], "\(shown.liveVersions)")
            for name in ["settat-2", "casablanca-1"] {
                let reader = try lab.client(for: name)
                for (key, data) in objects {
                    #expect(try await reader.get(bucket: "moroccan", key: key).1 == data, "\(key) via \(name)")
                }
                await reader.close()
            }
            for i in 0..<8 {
                let data = randomBytes(3000 + i, seed: UInt64(900 + i))
                _ = try await client.put(bucket: "moroccan", key: "during-\(i)", data: data)
                objects.append(("during-\(i)", data))
            }
            let page = try await client.list(ListRequest(bucket: "moroccan"))
            #expect(page.entries.map(\.key) == objects.map(\.0).sorted())
            await client.close()

            // A plan that leaves too few Moroccan nodes is refused, naming the policy.
            for n in ["benguerir-1", "benguerir-2", "casablanca-1", "casablanca-2"] {
                _ = try await ok(["admin", "layout", "remove", n])
            }
            let refused = try await cli.runDetached(["admin", "layout", "plan"])
            #expect(
                refused.status == 4 && refused.stderr.contains("POLICY_UNSATISFIABLE")
                    && refused.stderr.contains("'ma'"), "\(refused.stderr)")
            _ = try await ok(["admin", "layout", "revert"])
            #expect(try await ok(["admin", "layout", "show"]).contains("no staged changes"))
            let history = try await ok(["admin", "layout", "history"])
            #expect(history.contains("policy ma"), "\(history)")

            // A bucket deleted and made again at once, on another policy.
            _ = try await ok(["mb", "short-lived", "--policy", "ma"])
            _ = try await ok(["rb", "short-lived"])
            _ = try await ok(["mb", "short-lived", "--policy", "default"])
            #expect(try await ok(["ls"]).contains("short-lived  (policy default)"))

            // Persisted: a restarted node comes back with version 2 and both live versions.
            try await lab.restart("benguerir-1")
            #expect(try await lab.layoutVersion(of: "benguerir-1") == 2)
            let again = try Admin.layoutShow.decode(
                output: Array(try await ok(["admin", "layout", "show", "--json"]).utf8))
            #expect(again.version == 2 && again.liveVersions == [1, 2])

            // Resumed, the rebalance moves the partitions and retires version 1.
            #expect(try await ok(["admin", "rebalance", "resume"]).contains("running"))
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(90)
            var complete = false
            while !complete, clock.now < deadline {
                let status = try Admin.rebalanceStatus.decode(
                    output: Array(try await ok(["admin", "rebalance", "status", "--json"]).utf8))
                complete = status.complete
                if !complete { try await Task.sleep(for: .milliseconds(500)) }
            }
            #expect(complete, "the rebalance did not complete")
            let watched = try await ok(["admin", "rebalance", "status", "--watch", "--interval", "0.5"])
            #expect(watched.contains("rebalance complete") && watched.contains("settat-2"), "\(watched)")
            let after = try Admin.layoutShow.decode(
                output: Array(try await ok(["admin", "layout", "show", "--json"]).utf8))
            #expect(after.liveVersions == [2])
            let reader = try lab.client(for: "settat-2")
            for (key, data) in objects {
                #expect(try await reader.get(bucket: "moroccan", key: key).1 == data, "\(key) after the rebalance")
            }
            await reader.close()
        } catch {
            await tearDownCluster(lab)
            throw error
        }
        await tearDownCluster(lab)
    }
}
