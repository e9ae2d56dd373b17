import AgadirClient
import AgadirCore
import AgadirLab
import AgadirWire
import Foundation
import Testing

/// Access keys on real processes (docs/security.md, "Access keys"): anonymous and forged
/// requests are refused; a key reaches only the buckets it was granted, on every node.
@Suite("Access keys on real processes", .serialized, .oneLabAtATime)
struct AccessKeyLabTests {
    /// A client of `endpoint` signing with `credentials`; with `ca`, over TLS (the lab's nodes).
    static func client(_ endpoint: String, _ credentials: Credentials?, ca: String? = nil) throws -> AgadirClient {
        var c = ClientConfiguration()
        c.connections = 1
        c.credentials = credentials
        if let ca { try c.trustCA(file: ca) }
        return try AgadirClient(endpoint: endpoint, configuration: c)
    }

    @Test("an anonymous admin command, an anonymous read and a wrong secret are refused; PING is answered")
    func anonymousAndForgedRequests_areRefused() async throws {
        let node = try NodeProcess()
        defer { node.cleanUp() }
        try node.start()
        let root = try node.rootCredentials()
        let rooted = try Self.client(node.endpoint, root)
        try await rooted.createBucket("private")
        try await rooted.put(bucket: "private", key: "secret.txt", data: Array("classified".utf8))
        await rooted.close()

        let anonymous = try Self.client(node.endpoint, nil)
        #expect(try await anonymous.ping().nodeID.isEmpty == false)
        let admin = await agadirError { _ = try await anonymous.admin(Admin.layoutShow, Admin.Empty()) }
        #expect(admin?.code == .notAuthenticated, "\(String(describing: admin))")
        let read = await agadirError { _ = try await anonymous.get(bucket: "private", key: "secret.txt") }
        #expect(read?.code == .notAuthenticated)
        let list = await agadirError { _ = try await anonymous.listBuckets() }
        #expect(list?.code == .notAuthenticated)
        await anonymous.close()

        let forged = try Self.client(node.endpoint, Credentials(accessKey: root.accessKey, secretKey: "guessed"))
        let wrong = await agadirError { _ = try await forged.get(bucket: "private", key: "secret.txt") }
        #expect(wrong?.code == .notAuthenticated && wrong?.message.contains("signature") == true)
        await forged.close()
        let unknown = try Self.client(
            node.endpoint, Credentials(accessKey: "AKAAAAAAAAAAAAAAAAAA", secretKey: root.secretKey))
        let who = await agadirError { _ = try await unknown.listBuckets() }
        #expect(who?.code == .notAuthenticated && who?.message.contains("unknown") == true)
        await unknown.close()

        // The CLI without credentials exits 11 and says why.
        let cli = CLI(endpoint: node.endpoint, credentials: nil)
        let refused = try cli.run(["admin", "layout", "show"])
        #expect(refused.status == 11 && refused.stderr.contains("NOT_AUTHENTICATED"), "\(refused.stderr)")
    }

    @Test(
        "a key reaches only its granted buckets on every node; grants, stale grants and removal take effect cluster-wide"
    )
    func grants_areEnforcedOnEveryNode() async throws {
        try await withThreeSiteLab { lab in
            let ca = try lab.state().caFile
            let endpoints = Dictionary(
                uniqueKeysWithValues: try lab.status().compactMap { n in n.clientEndpoint.map { (n.name, $0) } })
            let e1 = try #require(endpoints["benguerir-1"])
            let e2 = try #require(endpoints["casablanca-1"])
            let e3 = try #require(endpoints["settat-1"])
            let cli = CLI(endpoint: e1, credentials: lab.credentialsFile)

            // Keys are created through node 1 and used through the others at once.
            let made = try await cli.runDetached(["admin", "key", "create", "alice", "--create-buckets", "--json"])
            #expect(made.status == 0, "\(made.stderr)")
            let aliceKey = try Admin.keyCreate.decode(output: Array(made.stdout.utf8))
            let alice = Credentials(accessKey: aliceKey.accessKey, secretKey: aliceKey.secretKey)
            let root = try Self.client(e1, try lab.rootCredentials(), ca: ca)
            let bobKey = try await root.admin(Admin.keyCreate, Admin.KeySpec(name: "bob"))
            let bob = Credentials(accessKey: bobKey.accessKey, secretKey: bobKey.secretKey)
            // The secret is stored sealed: not in clear in any node's metadata.
            for name in ["benguerir-1", "casablanca-1", "settat-1"] {
                let meta = try lab.state().nodes.first { $0.name == name }.map { $0.dataDir + "/meta.sqlite" } ?? ""
                let wal = (try? Data(contentsOf: URL(fileURLWithPath: meta + "-wal"))) ?? Data()
                let db = (try? Data(contentsOf: URL(fileURLWithPath: meta))) ?? Data()
                #expect(
                    db.range(of: Data(alice.secretKey.utf8)) == nil && wal.range(of: Data(alice.secretKey.utf8)) == nil,
                    "alice's secret in clear on \(name)")
                #expect(
                    wal.range(of: Data(alice.accessKey.utf8)) != nil || db.range(of: Data(alice.accessKey.utf8)) != nil)
            }

            let aliceOn2 = try Self.client(e2, alice, ca: ca)
            try await aliceOn2.createBucket("alice-data", policy: "ma")
            let body = randomBytes(100_000, seed: 3)
            try await aliceOn2.put(bucket: "alice-data", key: "report.bin", data: body)
            #expect(try await aliceOn2.listBuckets().map(\.name) == ["alice-data"])
            // Not an admin: no admin command.
            let aliceAdmin = await agadirError { _ = try await aliceOn2.admin(Admin.keyList, Admin.Empty()) }
            #expect(aliceAdmin?.code == .accessDenied)

            let bobOn3 = try Self.client(e3, bob, ca: ca)
            let denied = await agadirError { _ = try await bobOn3.get(bucket: "alice-data", key: "report.bin") }
            #expect(denied?.code == .accessDenied, "\(String(describing: denied))")
            let deniedPut = await agadirError { _ = try await bobOn3.put(bucket: "alice-data", key: "x", data: [1]) }
            #expect(deniedPut?.code == .accessDenied)
            let noCreate = await agadirError { try await bobOn3.createBucket("bob-data", policy: "ma") }
            #expect(noCreate?.code == .accessDenied)
            #expect(try await bobOn3.listBuckets().isEmpty)

            // Granted read through the CLI: bob reads, still cannot write.
            let granted = try await cli.runDetached(["admin", "key", "grant", bob.accessKey, "alice-data", "read"])
            #expect(granted.status == 0, "\(granted.stderr)")
            #expect(try await bobOn3.get(bucket: "alice-data", key: "report.bin").1 == body)
            #expect(try await bobOn3.listBuckets().map(\.name) == ["alice-data"])
            let stillNoPut = await agadirError { _ = try await bobOn3.put(bucket: "alice-data", key: "x", data: [1]) }
            #expect(stillNoPut?.code == .accessDenied)
            let cliDenied = try await CLI(endpoint: e3, credentials: nil, caFile: ca).runDetached(["ls", "alice-data/"])
            #expect(cliDenied.status == 11, "\(cliDenied.stderr)")
            // Without the CA, the CLI is told the node speaks TLS only.
            let clear = try await CLI(endpoint: e3, credentials: nil).runDetached(["ls", "alice-data/"])
            #expect(clear.status != 0 && clear.stderr.contains("requires TLS"), "\(clear.stderr)")

            // A write-only key (a log shipper) writes and cannot read back.
            let shipperKey = try await root.admin(Admin.keyCreate, Admin.KeySpec(name: "shipper"))
            _ = try await root.admin(
                Admin.keyGrant,
                Admin.KeyGrant(
                    accessKey: shipperKey.accessKey, bucket: "alice-data", read: false, write: true, owner: false))
            let shipper = try Self.client(
                e1, Credentials(accessKey: shipperKey.accessKey, secretKey: shipperKey.secretKey), ca: ca)
            try await shipper.put(bucket: "alice-data", key: "log-1", data: [1, 2, 3])
            let blind = await agadirError { _ = try await shipper.get(bucket: "alice-data", key: "log-1") }
            #expect(blind?.code == .accessDenied)
            let noDrop = await agadirError { try await shipper.deleteBucket("alice-data") }
            #expect(noDrop?.code == .accessDenied)
            await shipper.close()
            _ = try await aliceOn2.delete(bucket: "alice-data", key: "log-1")

            // Deleted and created again, the bucket is another bucket: bob's grant is stale.
            _ = try await aliceOn2.delete(bucket: "alice-data", key: "report.bin")
            try await aliceOn2.deleteBucket("alice-data")
            try await aliceOn2.createBucket("alice-data", policy: "ma")
            try await aliceOn2.put(bucket: "alice-data", key: "new.bin", data: body)
            let stale = await agadirError { _ = try await bobOn3.get(bucket: "alice-data", key: "new.bin") }
            #expect(stale?.code == .accessDenied, "\(String(describing: stale))")
            let listed = try await root.admin(Admin.keyList, Admin.Empty())
            #expect(listed.first { $0.accessKey == bob.accessKey }?.grants.map(\.current) == [false])
            #expect(listed.contains { $0.root })

            // Removed: refused on every node.
            let removed = try await cli.runDetached(["admin", "key", "rm", bob.accessKey])
            #expect(removed.status == 0, "\(removed.stderr)")
            for e in [e1, e2, e3] {
                let c = try Self.client(e, bob, ca: ca)
                let gone = await agadirError { _ = try await c.listBuckets() }
                #expect(gone?.code == .notAuthenticated, "via \(e): \(String(describing: gone))")
                await c.close()
            }
            await bobOn3.close()
            await aliceOn2.close()
            await root.close()
        }
    }
}
