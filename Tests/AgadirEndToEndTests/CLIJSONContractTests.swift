import AgadirClient
import AgadirCore
import AgadirIdentity
import AgadirWire
import Foundation
import Testing

/// Issue 17, "The CLI's JSON is a contract": every `--json` output of `agadir` is decoded
/// here into the type the CLI encodes (a missing key fails the decoding), its values are
/// checked against what the test set up, and its fields are compared with a literal set
/// written below, so that renaming, adding or removing a field fails until this file and
/// docs/operations.md ("JSON outputs") say so.
@Suite("The CLI's --json outputs are a contract", .serialized, .oneLabAtATime)
struct CLIJSONContractTests {
    @Test(
        "mb, put, head, get, ls, rm, rb, stat, ping, members and every admin command print JSON that decodes into its type, with exactly the documented fields"
    )
    func everyJSONOutput_decodesWithTheDocumentedFields() async throws {
        try await withThreeSiteLab(extraSites: ["paris"]) { lab in
            let nodes = try lab.state().nodes
            let endpoint = try #require(try lab.status().first { $0.name == "benguerir-1" }?.clientEndpoint)
            let nodeID = try #require(nodes.first { $0.name == "benguerir-1" }?.nodeID)
            let paris = try #require(nodes.first { $0.name == "paris-1" }?.nodeID)
            let cli = CLI(endpoint: endpoint, credentials: lab.credentialsFile)
            let dir = lab.root.appendingPathComponent("cli-json")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try await objectCommands(cli, dir: dir, nodeID: nodeID, nodeCount: nodes.count)
            try await adminReadCommands(cli, nodeCount: nodes.count)
            try await adminAccessCommands(cli)
            try await adminMaintenanceCommands(cli, nodeCount: nodes.count)
            try await adminLayoutCommands(cli, paris: paris)
        }
    }

    @Test("admin cert show --json (offline) decodes into NodeIdentity with exactly its fields")
    func certShow_decodes() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "agadir-json-pki-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: base) }
        let ca = base.appendingPathComponent("ca").path
        let cli = CLI(endpoint: "127.0.0.1:1", credentials: nil)  // no node is contacted
        #expect(try cli.run(["admin", "ca", "init", ca, "--cluster", "contract"]).status == 0)
        let issued = try cli.run([
            "admin", "cert", "issue", "--ca", ca, "--node", "settat-9", "--site", "settat", "--label", "country=MA",
            "--host", "127.0.0.1", "--out", base.path,
        ])
        #expect(issued.status == 0, "\(issued.stderr)")
        let shown = try cli.run(["admin", "cert", "show", base.path + "/settat-9.crt", "--ca", ca, "--json"])
        let identity = try JSONContract.decode(
            NodeIdentity.self, shown, fields: ["nodeID", "site", "labels", "serial"])
        #expect(identity.nodeID == "settat-9" && identity.site == "settat" && identity.labels == ["country": "MA"])
        #expect(!identity.serial.isEmpty)
    }

    // MARK: - The commands, in groups

    /// mb, put, head, get, ls, rm, rb, stat, ping, admin members.
    func objectCommands(_ cli: CLI, dir: URL, nodeID: String, nodeCount: Int) async throws {
        let bucket = "json-contract"
        let made = try JSONContract.decode(
            CLIOutput.BucketCreated.self, try await cli.runDetached(["mb", bucket, "--policy", "ma", "--json"]),
            fields: ["bucket", "created"])
        #expect(made == CLIOutput.BucketCreated(bucket: bucket, created: true))

        var rng = SplitMix64(seed: 17)
        let data = Data(rng.bytes(70_000))
        let src = dir.appendingPathComponent("src.bin")
        try data.write(to: src)
        let put = try JSONContract.decode(
            CLIOutput.Uploaded.self,
            try await cli.runDetached(["put", src.path, "\(bucket)/dir/a.bin", "--json", "-m", "owner=amina"]),
            fields: ["bucket", "key", "size", "etag", "version"])
        #expect(put.bucket == bucket && put.key == "dir/a.bin" && put.size == UInt64(data.count))
        #expect(put.etag == ChunkID.of(Array(data)).hex && !put.version.isEmpty)
        #expect(try await cli.runDetached(["put", "-", "\(bucket)/b.txt"], stdin: Data("bee\n".utf8)).status == 0)

        let objectFields: Set<String> = [
            "bucket", "key", "size", "etag", "version", "contentType", "lastModifiedMillis", "metadata",
        ]
        let head = try JSONContract.decode(
            CLIOutput.ObjectView.self, try await cli.runDetached(["head", "\(bucket)/dir/a.bin", "--json"]),
            fields: objectFields)
        #expect(head.bucket == bucket && head.key == "dir/a.bin" && head.size == UInt64(data.count))
        #expect(head.etag == put.etag && head.version == put.version)
        #expect(head.contentType == "application/octet-stream" && head.metadata == ["owner": "amina"])
        #expect(head.lastModifiedMillis > 1_600_000_000_000)
        let dst = dir.appendingPathComponent("dst.bin")
        let got = try JSONContract.decode(
            CLIOutput.ObjectView.self,
            try await cli.runDetached(["get", "\(bucket)/dir/a.bin", dst.path, "--json"]), fields: objectFields)
        #expect(got == head)
        #expect(try Data(contentsOf: dst) == data)

        let buckets = try JSONContract.decode(
            [CLIOutput.Bucket].self, try await cli.runDetached(["ls", "--json"]),
            fields: ["[].name", "[].policy", "[].createdMillis"])
        #expect(buckets.map(\.name) == [bucket] && buckets.first?.policy == "ma")
        #expect((buckets.first?.createdMillis ?? 0) > 1_600_000_000_000)
        let listingFields: Set<String> = [
            "bucket", "prefix", "commonPrefixes", "objects", "objects[].key", "objects[].size", "objects[].etag",
            "objects[].version", "objects[].lastModifiedMillis",
        ]
        let listing = try JSONContract.decode(
            CLIOutput.Listing.self, try await cli.runDetached(["ls", bucket, "--json"]), fields: listingFields)
        #expect(listing.bucket == bucket && listing.prefix == "" && listing.commonPrefixes == ["dir/"])
        #expect(listing.objects.map(\.key) == ["b.txt"] && listing.objects.first?.size == 4)
        let all = try JSONContract.decode(
            CLIOutput.Listing.self, try await cli.runDetached(["ls", "\(bucket)/dir/", "-r", "--json"]),
            fields: listingFields)
        #expect(all.prefix == "dir/" && all.commonPrefixes.isEmpty)
        #expect(
            all.objects
                == [
                    CLIOutput.ListedObject(
                        key: "dir/a.bin", size: UInt64(data.count), etag: put.etag, version: put.version,
                        lastModifiedMillis: head.lastModifiedMillis)
                ])

        // RF 3 on three nodes: benguerir-1 holds both objects.
        let stats = try JSONContract.decode(
            StoreStats.self, try await cli.runDetached(["stat", "--json"]),
            fields: [
                "buckets", "objects", "logicalBytes", "inlineBytes", "chunks", "uniqueRawBytes", "referencedRawBytes",
                "storedBytes", "segmentFiles", "segmentBytes", "dedupRatio", "compressionRatio", "quarantinedChunks",
            ])
        #expect(stats.buckets == 1 && stats.objects == 2 && stats.logicalBytes == UInt64(data.count) + 4)
        let pong = try JSONContract.decode(
            CLIOutput.Pong.self, try await cli.runDetached(["ping", "--json"]),
            fields: ["node", "version", "rttMillis"])
        #expect(pong.node == nodeID && !pong.version.isEmpty && pong.rttMillis >= 0)
        let members = try JSONContract.decode(
            [MemberInfo].self, try await cli.runDetached(["admin", "members", "--json"]),
            fields: [
                "[].nodeID", "[].site", "[].labels", "[].clientAddress", "[].peerAddress", "[].incarnation", "[].state",
                "[].layoutVersion", "[].lastContactMillisAgo",
            ])
        #expect(members.count == nodeCount && members.allSatisfy { $0.state == MemberInfo.State.alive })
        #expect(Set(members.map(\.site)) == ["benguerir", "casablanca", "settat", "paris"])

        let removed = try JSONContract.decode(
            CLIOutput.ObjectDeleted.self, try await cli.runDetached(["rm", "\(bucket)/b.txt", "--json"]),
            fields: ["bucket", "key", "deleted", "version"])
        #expect(removed.bucket == bucket && removed.key == "b.txt" && removed.deleted && !removed.version.isEmpty)
        #expect(try await cli.runDetached(["rm", "\(bucket)/dir/a.bin"]).status == 0)
        let deleted = try JSONContract.decode(
            CLIOutput.BucketDeleted.self, try await cli.runDetached(["rb", bucket, "--json"]),
            fields: ["bucket", "deleted"])
        #expect(deleted == CLIOutput.BucketDeleted(bucket: bucket, deleted: true))
        // The bucket of the admin commands below.
        #expect(try await cli.runDetached(["mb", "json-admin", "--policy", "ma"]).status == 0)
        #expect(try await cli.runDetached(["put", "-", "json-admin/k"], stdin: Data("x".utf8)).status == 0)
    }

    /// admin status, layout show, layout history, policy ls, policy show, audit residency.
    func adminReadCommands(_ cli: CLI, nodeCount: Int) async throws {
        let status = try JSONContract.decode(
            Admin.ClusterStatusView.self, try await cli.runDetached(["admin", "status", "--json"]),
            fields: ContractFields.clusterStatus)
        #expect(status.healthy && status.reasons.isEmpty && status.layoutVersion == 1)
        #expect(status.nodes.count == nodeCount && status.nodes.allSatisfy { $0.inLayout && $0.state == "alive" })
        #expect(status.underReplicated.isEmpty && status.rebalance.liveVersions == [1])

        let layout = try JSONContract.decode(
            Admin.LayoutView.self, try await cli.runDetached(["admin", "layout", "show", "--json"]),
            fields: ContractFields.layout)
        #expect(layout.version == 1 && layout.partitionCount == 16 && layout.nodes.count == nodeCount)
        #expect(layout.staged.isEmpty && Set(layout.policies.map(\.name)) == ["default", "ma"])
        #expect(layout.nodes.filter { $0.site != "paris" }.allSatisfy { $0.partitions["ma"] == 16 })
        #expect(layout.sites.first { $0.name == "paris" }?.labels == ["country": "FR"])

        let history = try JSONContract.decode(
            [Admin.HistoryView].self, try await cli.runDetached(["admin", "layout", "history", "--json"]),
            fields: ["[].version", "[].appliedMillis", "[].summary"])
        #expect(history.map(\.version) == [1] && history.first?.appliedMillis == layout.appliedMillis)

        let policies = try JSONContract.decode(
            [Admin.PolicyView].self, try await cli.runDetached(["admin", "policy", "ls", "--json"]),
            fields: Set(ContractFields.policy.map { "[]." + $0 }))
        #expect(policies.map(\.name) == ["default", "ma"])
        let ma = try JSONContract.decode(
            Admin.PolicyView.self, try await cli.runDetached(["admin", "policy", "show", "ma", "--json"]),
            fields: ContractFields.policy)
        #expect(ma.replicationFactor == 3 && ma.minSites == 2 && ma.sites == "country=MA")
        #expect(ma.eligibleNodes == 3 && ma.eligibleSites == ["benguerir", "casablanca", "settat"])

        let audit = try JSONContract.decode(
            [ResidencyAudit].self, try await cli.runDetached(["admin", "audit", "residency", "--json"]),
            fields: [
                "[].node", "[].site", "[].layoutVersion", "[].manifests", "[].chunks", "[].hints",
                "[].unattributedChunks", "[].misplacedManifests", "[].misplacedChunks", "[].violationCount",
                "[].violations", "[].error", "[].attestedLabels",
            ])
        #expect(audit.count == nodeCount && audit.allSatisfy { $0.violationCount == 0 && $0.error == nil })
        #expect(audit.allSatisfy { $0.layoutVersion == 1 && $0.attestedLabels != nil }, "\(audit)")
        #expect(audit.filter { $0.site != "paris" }.allSatisfy { $0.manifests >= 1 }, "\(audit)")
    }

    /// admin key create, ls, grant, rm; admin bucket quota.
    func adminAccessCommands(_ cli: CLI) async throws {
        let created = try JSONContract.decode(
            Admin.KeyCreated.self, try await cli.runDetached(["admin", "key", "create", "reader", "--json"]),
            fields: Set(["accessKey", "secretKey", "key"]).union(ContractFields.key.map { "key." + $0 }))
        #expect(created.key.name == "reader" && created.key.accessKey == created.accessKey)
        #expect(!created.secretKey.isEmpty && !created.key.admin && created.key.grants.isEmpty)
        let granted = try JSONContract.decode(
            Admin.KeyView.self,
            try await cli.runDetached(["admin", "key", "grant", created.accessKey, "json-admin", "read", "--json"]),
            fields: ContractFields.key.union(ContractFields.grant.map { "grants[]." + $0 }))
        #expect(granted.grants.map(\.bucket) == ["json-admin"])
        #expect(granted.grants.first.map { $0.read && !$0.write && !$0.owner && $0.current } == true)
        let keys = try JSONContract.decode(
            [Admin.KeyView].self, try await cli.runDetached(["admin", "key", "ls", "--json"]),
            fields: Set(ContractFields.key.map { "[]." + $0 }).union(ContractFields.grant.map { "[].grants[]." + $0 }))
        #expect(keys.contains { $0.root } && keys.contains { $0.accessKey == created.accessKey })
        let removed = try JSONContract.decode(
            Admin.KeyView.self, try await cli.runDetached(["admin", "key", "rm", created.accessKey, "--json"]),
            fields: ContractFields.key)
        #expect(removed.accessKey == created.accessKey && removed.name == "reader")

        let quota = try JSONContract.decode(
            Admin.QuotaView.self,
            try await cli.runDetached(["admin", "bucket", "quota", "json-admin", "--max-objects", "10", "--json"]),
            fields: ["bucket", "policy", "maxBytes", "maxObjects", "objects", "bytes", "nodesAnswered", "nodesAsked"])
        #expect(quota.bucket == "json-admin" && quota.policy == "ma" && quota.maxObjects == 10 && quota.maxBytes == 0)
        #expect(quota.nodesAsked == 3 && quota.nodesAnswered == 3)
    }

    /// admin rebalance set, pause, resume, status (also --watch); repair start (also --wait),
    /// status; scrub status, start, pause; gc status, start; workers.
    func adminMaintenanceCommands(_ cli: CLI, nodeCount: Int) async throws {
        let settingsFields: Set<String> = [
            "settings.intraSiteBytesPerSecond", "settings.interSiteBytesPerSecond", "settings.paused",
            "settings.changedMillis", "settings.changedBy",
        ]
        let setFields = Set(["settings", "reached", "unreached"]).union(settingsFields)
        let set = try JSONContract.decode(
            Admin.RebalanceSetView.self,
            try await cli.runDetached(["admin", "rebalance", "set", "--rate-intra-site", "100MB/s", "--json"]),
            fields: setFields)
        #expect(set.settings.intraSiteBytesPerSecond == 100_000_000 && !set.settings.paused)
        #expect(set.reached.count == nodeCount && set.unreached.isEmpty)
        let paused = try JSONContract.decode(
            Admin.RebalanceSetView.self, try await cli.runDetached(["admin", "rebalance", "pause", "--json"]),
            fields: setFields)
        #expect(paused.settings.paused && paused.settings.intraSiteBytesPerSecond == 100_000_000)
        let resumed = try JSONContract.decode(
            Admin.RebalanceSetView.self, try await cli.runDetached(["admin", "rebalance", "resume", "--json"]),
            fields: setFields)
        #expect(!resumed.settings.paused)

        let rebalanceFields = ContractFields.rebalance
        // The first layout's round (mark synced, drop) may still be under way.
        for _ in 0..<120 {
            let polled = try await cli.runDetached(["admin", "rebalance", "status", "--json"])
            if (try? Admin.rebalanceStatus.decode(output: Array(polled.stdout.utf8)))?.complete == true { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        let rebalance = try JSONContract.decode(
            Admin.RebalanceView.self, try await cli.runDetached(["admin", "rebalance", "status", "--json"]),
            fields: rebalanceFields)
        #expect(rebalance.layoutVersion == 1 && rebalance.complete && rebalance.nodes.count == nodeCount)
        #expect(rebalance.nodes.allSatisfy { $0.status?.syncedVersion == 1 && $0.error == nil })
        // Complete: --watch prints one view, on one line.
        let watched = try await cli.runDetached(["admin", "rebalance", "status", "--watch", "--json"])
        #expect(watched.stdout.split(separator: "\n").count == 1, "\(watched.stdout)")
        let line = try JSONContract.decode(Admin.RebalanceView.self, watched, fields: rebalanceFields)
        #expect(line.complete && line.layoutVersion == 1)

        let started = try JSONContract.decode(
            Admin.RepairStartView.self,
            try await cli.runDetached(["admin", "repair", "start", "--bucket", "json-admin", "--json"]),
            fields: ContractFields.repairScope.union(["reached", "unreached"]))
        #expect(started.scope.policy == "ma" && started.scope.partition == nil && started.reached.count == nodeCount)
        let repairFields: Set<String> = Set(
            ["[].node", "[].repair", "[].error"] + ContractFields.repair.map { "[].repair." + $0 })
        let waited = try JSONContract.decode(
            [Admin.RepairNodeView].self,
            try await cli.runDetached(["admin", "repair", "start", "--wait", "--timeout", "120", "--json"]),
            fields: repairFields)
        #expect(waited.count == nodeCount && waited.allSatisfy { ($0.repair?.passes ?? 0) >= 1 })
        let repair = try JSONContract.decode(
            [Admin.RepairNodeView].self, try await cli.runDetached(["admin", "repair", "status", "--json"]),
            fields: repairFields)
        #expect(repair.count == nodeCount && repair.allSatisfy { $0.repair?.partitionsIncomplete == 0 })

        let scrub = try JSONContract.decode(
            [Admin.ScrubNodeView].self, try await cli.runDetached(["admin", "scrub", "status", "--json"]),
            fields: Set(["[].node", "[].scrub", "[].error"] + ContractFields.scrub.map { "[].scrub." + $0 }))
        #expect(scrub.count == nodeCount && scrub.allSatisfy { $0.scrub?.quarantined == 0 })
        let maintenanceFields: Set<String> = ["task", "action", "reached", "unreached"]
        for (command, task, action) in [
            ("scrub", "scrub", "start"), ("scrub", "scrub", "pause"), ("gc", "gc", "start"),
        ] {
            let view = try JSONContract.decode(
                Admin.MaintenanceView.self, try await cli.runDetached(["admin", command, action, "--json"]),
                fields: maintenanceFields)
            #expect(view.task == task && view.action == action && view.reached.count == nodeCount)
        }
        let gc = try JSONContract.decode(
            [Admin.GarbageNodeView].self, try await cli.runDetached(["admin", "gc", "status", "--json"]),
            fields: Set(["[].node", "[].gc", "[].error"] + ContractFields.gc.map { "[].gc." + $0 }))
        #expect(gc.count == nodeCount && gc.allSatisfy { $0.gc != nil && $0.error == nil })

        // Exit 1 when a worker's last step failed (it retries): the JSON says which.
        let workersRun = try await cli.runDetached(["admin", "workers", "--json"])
        let workers = try JSONContract.decode(
            [Admin.NodeWorkersView].self, workersRun, exitCodes: [0, 1],
            fields: [
                "[].node", "[].workers", "[].error", "[].workers[].name", "[].workers[].state", "[].workers[].phase",
                "[].workers[].progress", "[].workers[].lastError", "[].workers[].steps", "[].workers[].lastStepMillis",
            ])
        #expect(workers.count == nodeCount)
        let failed = workers.flatMap { n in (n.workers ?? []).filter { $0.state == .failed }.map { "\(n.node): \($0)" }
        }
        #expect((workersRun.status == 1) == !failed.isEmpty, "\(failed)")
        #expect(
            workers.allSatisfy { Set(($0.workers ?? []).map(\.name)).isSuperset(of: ["rebalance", "scrub", "gc"]) })
    }

    /// admin policy create (staged, and --apply), layout site, assign, remove, plan, revert,
    /// apply; node drain and remove. Last: they change the layout.
    func adminLayoutCommands(_ cli: CLI, paris: String) async throws {
        // Staged: the answer is the layout with the policy staged.
        let stagedPolicy = try await cli.runDetached(["admin", "policy", "create", "solo", "--rf", "1", "--json"])
        let staged = try JSONContract.decode(Admin.LayoutView.self, stagedPolicy, fields: ContractFields.layout)
        #expect(staged.staged.count == 1 && staged.version == 1)
        guard case .staged = try JSONDecoder().decode(Admin.PolicyCreated.self, from: Data(stagedPolicy.stdout.utf8))
        else {
            Issue.record("policy create without --apply must answer the staged layout: \(stagedPolicy.stdout)")
            return
        }
        let site = try JSONContract.decode(
            Admin.LayoutView.self,
            try await cli.runDetached(["admin", "layout", "site", "settat", "--label", "country=MA", "--json"]),
            fields: ContractFields.layout)
        #expect(site.staged.count == 2)
        let plan = try JSONContract.decode(
            Admin.PlanView.self, try await cli.runDetached(["admin", "layout", "plan", "--json"]),
            fields: ContractFields.plan(links: false))
        #expect(plan.fromVersion == 1 && plan.toVersion == 2 && plan.changes.count == 2)
        let reverted = try JSONContract.decode(
            Admin.LayoutView.self, try await cli.runDetached(["admin", "layout", "revert", "--json"]),
            fields: ContractFields.layout)
        #expect(reverted.staged.isEmpty && reverted.version == 1)

        // --apply: the answer is the plan of version 2.
        let appliedPolicy = try await cli.runDetached([
            "admin", "policy", "create", "solo", "--rf", "1", "--apply", "--json",
        ])
        let applied = try JSONContract.decode(
            Admin.PlanView.self, appliedPolicy, fields: ContractFields.plan(links: false))
        #expect(applied.fromVersion == 1 && applied.toVersion == 2)
        guard case .applied = try JSONDecoder().decode(Admin.PolicyCreated.self, from: Data(appliedPolicy.stdout.utf8))
        else {
            Issue.record("policy create --apply must answer the plan: \(appliedPolicy.stdout)")
            return
        }

        // The Paris node (only `default` and `solo` may use it): a new capacity, applied,
        // then drained and removed.
        let assigned = try JSONContract.decode(
            Admin.LayoutView.self,
            try await cli.runDetached([
                "admin", "layout", "assign", paris, "--site", "paris", "--capacity", "2TB", "--json",
            ]), fields: ContractFields.layout)
        #expect(assigned.staged.count == 1 && assigned.version == 2)
        let apply = try JSONContract.decode(
            Admin.PlanView.self, try await cli.runDetached(["admin", "layout", "apply", "--version", "3", "--json"]),
            fields: ContractFields.plan(links: true))
        #expect(apply.fromVersion == 2 && apply.toVersion == 3 && apply.layout?.version == 3)
        let drained = try JSONContract.decode(
            Admin.PlanView.self, try await cli.runDetached(["admin", "node", "drain", paris, "--json"]),
            fields: ContractFields.plan(links: true))
        #expect(drained.fromVersion == 3 && drained.toVersion == 4)
        #expect(drained.layout?.nodes.first { $0.id == paris }?.capacity == 0)
        #expect(drained.links.contains { $0.from == "paris" && $0.to != "paris" }, "\(drained.links)")
        let removedNode = try JSONContract.decode(
            Admin.PlanView.self, try await cli.runDetached(["admin", "node", "remove", paris, "--force", "--json"]),
            fields: ContractFields.plan(links: false))
        #expect(removedNode.fromVersion == 4 && removedNode.toVersion == 5)
        #expect(removedNode.layout?.nodes.contains { $0.id == paris } == false)
        // Staged and unstaged again: `layout remove` of a node of the layout.
        let unstaged = try JSONContract.decode(
            Admin.LayoutView.self, try await cli.runDetached(["admin", "layout", "remove", "settat-1", "--json"]),
            fields: ContractFields.layout)
        #expect(unstaged.staged.count == 1)
        #expect(try await cli.runDetached(["admin", "layout", "revert"]).status == 0)
    }
}

/// The field sets of the types, as paths: `a.b` is a field of a nested object, `a[].b` a
/// field of the elements of an array; a dictionary is one field (its keys are data).
enum ContractFields {
    /// `fields` under `prefix` (`nodes[]`, `settings`).
    static func under(_ prefix: String, _ fields: Set<String>) -> Set<String> {
        Set(fields.map { prefix + "." + $0 })
    }

    static let policy: Set<String> = [
        "name", "replicationFactor", "sites", "minSites", "read", "write", "codec", "eligibleNodes", "eligibleSites",
    ]
    static let layout: Set<String> = Set([
        "version", "partitionCount", "liveVersions", "appliedMillis", "sites", "nodes", "policies", "staged",
        "stagedPartitionCount", "warnings", "sites[].name", "sites[].labels", "nodes[].id", "nodes[].site",
        "nodes[].capacity", "nodes[].partitions", "nodes[].state", "nodes[].announcedVersion",
    ]).union(under("policies[]", policy))
    static let policyPlan: Set<String> = [
        "policy", "partitionsMoved", "replicasMoved", "replicasBefore", "replicasAfter", "links",
    ]
    static let link: Set<String> = ["from", "to", "bytes"]
    /// A plan with its layout and a policy moving partitions (links between sites, when
    /// `links`).
    static func plan(links: Bool) -> Set<String> {
        var fields: Set<String> = [
            "fromVersion", "toVersion", "totalPartitionsMoved", "links", "policies", "changes", "layout", "warnings",
        ]
        fields.formUnion(under("policies[]", policyPlan))
        fields.formUnion(under("layout", layout))
        if links { fields.formUnion(under("links[]", link).union(under("policies[].links[]", link))) }
        return fields
    }
    static let key: Set<String> = [
        "accessKey", "name", "root", "admin", "createBuckets", "deleted", "createdMillis", "grants",
    ]
    static let grant: Set<String> = ["bucket", "read", "write", "owner", "current"]
    static let statusNode: Set<String> = [
        "node", "site", "state", "inLayout", "capacity", "partitions", "usedBytes", "freeBytes", "fsFreeBytes",
        "hintsPending", "chunks", "objects", "rebalance", "repair", "scrub", "quarantinedChunks", "gc", "error",
    ]
    static let rebalanceSummary: Set<String> = [
        "liveVersions", "complete", "partitionsTotal", "partitionsDone", "bytesMoved", "bytesLeftEstimate",
        "rateBytesPerSecond", "etaSeconds",
    ]
    /// `underReplicated` is empty in a healthy cluster: its elements' fields are not seen.
    static let clusterStatus: Set<String> = Set([
        "node", "layoutVersion", "liveVersions", "healthy", "reasons", "nodes", "underReplicated", "rebalance",
        "hintsPending",
    ]).union(under("nodes[]", statusNode)).union(under("rebalance", rebalanceSummary))
    static let settings: Set<String> = [
        "intraSiteBytesPerSecond", "interSiteBytesPerSecond", "paused", "changedMillis", "changedBy",
    ]
    static let copyTally: Set<String> = ["manifests", "manifestBytes", "chunks", "chunkBytes", "chunksAlreadyHeld"]
    static let nodeRebalance: Set<String> = Set([
        "node", "site", "layoutVersion", "liveVersions", "syncedVersion", "droppedVersion", "state", "partitionsTotal",
        "partitionsDone", "moved", "bytesLeftEstimate", "rateBytesPerSecond", "etaSeconds", "manifestsDropped",
        "chunksDropped", "settings", "lastError", "waitingFor", "skippedSources",
    ]).union(under("moved", copyTally)).union(under("settings", settings))
    static let rebalance: Set<String> = Set([
        "layoutVersion", "liveVersions", "nodes", "partitionsTotal", "partitionsDone", "bytesMoved",
        "bytesLeftEstimate", "rateBytesPerSecond", "etaSeconds", "complete", "settings", "nodes[].node",
        "nodes[].status", "nodes[].error",
    ]).union(under("settings", settings)).union(under("nodes[].status", nodeRebalance))
    static let repairScope: Set<String> = ["scope", "scope.policy", "scope.partition"]
    static let repair: Set<String> = Set([
        "state", "passes", "startedMillis", "finishedMillis", "partitionsTotal", "partitionsChecked",
        "partitionsRepaired", "partitionsIncomplete", "manifestsCopied", "chunksCopied", "bytesCopied",
        "tombstonesPurged", "unreachable", "lastError",
    ]).union(repairScope)
    static let scrub: Set<String> = [
        "state", "passes", "startedMillis", "finishedMillis", "chunksChecked", "bytesChecked", "corruptFound",
        "repaired", "quarantined", "bytesPerSecond", "lastError",
    ]
    static let gc: Set<String> = [
        "state", "passes", "startedMillis", "finishedMillis", "referencesChecked", "referencesDropped",
        "referencesUndecided", "chunksReclaimed", "bytesFreed", "segmentsCompacted", "bucketsPurged",
        "manifestsPurged", "lastError",
    ]
}

/// Decodes a `--json` output and checks its fields.
enum JSONContract {
    /// Decodes `result.stdout` into `T` (a missing key or a wrong type fails), checks that
    /// every key of the JSON is a field of `T`, and that the fields of the decoded value are
    /// exactly `fields`: its stored properties by path, through nested objects, the elements
    /// of arrays and optionals that are set (an optional that is nil counts, its own fields
    /// do not; a dictionary is one field, its keys are data).
    @discardableResult
    static func decode<T: Decodable>(
        _ type: T.Type, _ result: CLI.Result, exitCodes: Set<Int32> = [0], fields expected: Set<String>,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> T {
        #expect(
            exitCodes.contains(result.status), "exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation
        )
        let data = Data(result.stdout.utf8)
        let value: T
        do {
            value = try JSONDecoder().decode(T.self, from: data)
        } catch {
            Issue.record(
                "the output does not decode as \(T.self): \(error)\n\(result.stdout)", sourceLocation: sourceLocation)
            throw error
        }
        let json = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        var fields: Set<String> = []
        var strays: [String] = []
        walk(value, json, "", &fields, &strays)
        #expect(
            strays.isEmpty, "keys of the output that are no field of \(T.self): \(strays.sorted())",
            sourceLocation: sourceLocation)
        #expect(
            fields == expected,
            "fields of \(T.self) the test does not list: \(fields.subtracting(expected).sorted()); listed but gone: \(expected.subtracting(fields).sorted())",
            sourceLocation: sourceLocation)
        return value
    }

    static func walk(_ value: Any, _ json: Any?, _ path: String, _ fields: inout Set<String>, _ strays: inout [String])
    {
        let mirror = Mirror(reflecting: value)
        switch mirror.displayStyle {
        case .optional:
            if let wrapped = mirror.children.first { walk(wrapped.value, json, path, &fields, &strays) }
        case .collection:
            let elements = json as? [Any] ?? []
            for (i, element) in mirror.children.enumerated() {
                walk(element.value, i < elements.count ? elements[i] : nil, path + "[]", &fields, &strays)
            }
        case .struct, .class:
            // A value encoded as a scalar (a number, a string) has no fields of its own.
            guard let object = json as? [String: Any] else { return }
            var labels: Set<String> = []
            for child in mirror.children {
                guard var label = child.label else { continue }
                if label.hasPrefix("_") { label.removeFirst() }  // a property wrapper's storage
                labels.insert(label)
                let field = path.isEmpty ? label : path + "." + label
                fields.insert(field)
                walk(child.value, object[label], field, &fields, &strays)
            }
            for key in object.keys where !labels.contains(key) {
                strays.append(path.isEmpty ? key : path + "." + key)
            }
        default:
            break  // a dictionary, an enum, a scalar
        }
    }
}
