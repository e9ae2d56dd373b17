import AgadirClient
import AgadirCluster
import AgadirCore
import AgadirIdentity
import AgadirLab
import AgadirMembership
import AgadirPlacement
import AgadirTransport
import AgadirWire
import Foundation
import Testing

/// Attested residency on real processes (docs/security.md, "Attested residency"): the lab
/// gives every node a certificate of its CA; labels and node ids come from those
/// certificates, not from what an admin or a peer claims.
@Suite("Attested residency and mutual TLS on real processes", .serialized, .oneLabAtATime)
struct AttestedResidencyLabTests {
    /// Benguerir and Casablanca (country=MA) and Paris (country=FR), one node each, policy
    /// `ma` (RF 2 on country=MA, 2 sites) applied.
    static func start(
        _ lab: Lab, siteLabels: [String: [String: String]] = [:], replicationFactor: Int = 2
    ) async throws {
        try await lab.up(waitForConvergence: true, timeout: .seconds(90))
        try await lab.applyLayout(
            siteLabels: siteLabels,
            policies: [LabPolicy(name: "ma", replicationFactor: replicationFactor, sites: "country=MA", minSites: 2)],
            partitionCount: 32)
    }

    static func create(root: URL? = nil) async throws -> Lab {
        try await Lab.create(root: root, sites: ["benguerir", "casablanca", "paris"], nodesPerSite: 1)
    }

    /// Files under the data directories of `nodes` holding any of `needles`.
    static func filesHolding(_ needles: [Data], in lab: Lab, nodes: Set<String>) throws -> (
        hits: [String], scanned: Int
    ) {
        var hits: [String] = []
        var scanned = 0
        for node in try lab.status() where nodes.contains(node.name) {
            let files = FileManager.default.enumerator(
                at: URL(fileURLWithPath: node.dataDir), includingPropertiesForKeys: [.isRegularFileKey])
            while let url = files?.nextObject() as? URL {
                guard (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true else { continue }
                let contents = try Data(contentsOf: url)
                scanned += 1
                if needles.contains(where: { contents.range(of: $0) != nil }) { hits.append(url.path) }
            }
        }
        return (hits, scanned)
    }

    /// 32-byte samples of `data` and the key marker: what a raw scan looks for.
    static func needles(marker: String, objects: [[UInt8]]) -> [Data] {
        var out = [Data(marker.utf8)]
        for data in objects where data.count >= 64 {
            for offset in stride(from: 0, to: data.count - 32, by: max(32, data.count / 16)) {
                out.append(Data(data[offset..<offset + 32]))
            }
        }
        return out
    }

    @Test(
        "`layout site paris --label country=MA` then `apply` is refused (NOT_ATTESTED, exit 9), and no fragment of a Moroccan bucket reaches the Paris disks"
    )
    func relabellingParis_isRefused() async throws {
        let lab = try await Self.create()
        try await withLab(lab) { try await relabel(lab) }
    }

    func relabel(_ lab: Lab) async throws {
        try await Self.start(lab)
        let via = try #require(try lab.status().first { $0.name == "benguerir-1" }?.clientEndpoint)
        let cli = CLI(endpoint: via, credentials: lab.credentialsFile)
        let staged = try await cli.runDetached(["admin", "layout", "site", "paris", "--label", "country=MA"])
        #expect(staged.status == 0, "\(staged.stderr)")
        let applied = try await cli.runDetached(["admin", "layout", "apply", "--version", "2"])
        #expect(applied.status == 9, "\(applied.stdout)\(applied.stderr)")
        #expect(
            applied.stderr.contains("NOT_ATTESTED") && applied.stderr.contains("paris-1")
                && applied.stderr.contains("country=MA"),
            "\(applied.stderr)")
        #expect(try await lab.layoutVersion(of: "benguerir-1") == 1)
        // The same through another node, after reverting: the check does not depend on who applies.
        let other = try #require(try lab.status().first { $0.name == "paris-1" }?.clientEndpoint)
        let viaParis = CLI(endpoint: other, credentials: lab.credentialsFile)
        #expect(
            try await viaParis.runDetached(["admin", "layout", "site", "paris", "--label", "country=MA"]).status == 0)
        #expect(try await viaParis.runDetached(["admin", "layout", "apply", "--version", "2"]).status == 9)

        // Moroccan data written through every node, Paris included, stays off the Paris disk.
        let client = try lab.client(for: "paris-1")
        try await client.createBucket("ma-data", policy: "ma")
        let marker = "attested-5e1d"
        var objects: [[UInt8]] = []
        for i in 0..<6 {
            let data = randomBytes([5000, 70_000, 300_000, 1_500_000][i % 4], seed: UInt64(900 + i))
            _ = try await client.put(bucket: "ma-data", key: "\(marker)/\(i)", data: data)
            objects.append(data)
        }
        await client.close()
        let (hits, scanned) = try Self.filesHolding(
            Self.needles(marker: marker, objects: objects), in: lab, nodes: ["paris-1"])
        #expect(scanned > 0)
        #expect(hits.isEmpty, "the Paris disk holds bytes of ma-data: \(hits)")
        let audit = try await cli.runDetached(["admin", "audit", "residency"])
        #expect(audit.status == 0 && audit.stdout.contains("attested"), "\(audit.stdout)\(audit.stderr)")
    }

    @Test(
        "a Paris certificate corrected to country=FR after the layout made Paris Moroccan: every send path refuses Paris, the audit reports the label, Paris gets no new byte"
    )
    func aCorrectedCertificate_stopsEverySend() async throws {
        let lab = try await Self.create()
        try await withLab(lab) { try await correct(lab) }
    }

    func correct(_ lab: Lab) async throws {
        // The operator's mistake: Paris issued a country=MA certificate, so the layout may
        // label it Moroccan and policy `ma` (RF 3) places replicas there.
        let root = lab.root
        let paris = try #require(try lab.state().nodes.first { $0.name == "paris-1" })
        let pki = root.appendingPathComponent("pki").path
        func issueParis(_ country: String) async throws {
            let out = root.appendingPathComponent("reissue-\(country)").path
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let issued = try await CLI(endpoint: "127.0.0.1:1", credentials: nil).runDetached([
                "admin", "cert", "issue", "--ca", pki, "--node", "paris-1", "--site", "paris", "--label",
                "country=\(country)", "--host", "127.0.0.1", "--out", out,
            ])
            #expect(issued.status == 0, "\(issued.stderr)")
            for (from, to) in [("paris-1.crt", paris.certFile), ("paris-1.key", paris.keyFile)] {
                let target = try #require(to)
                try? FileManager.default.removeItem(atPath: target)
                try FileManager.default.copyItem(atPath: out + "/" + from, toPath: target)
            }
        }
        try await issueParis("MA")
        try await Self.start(lab, siteLabels: ["paris": ["country": "MA"]], replicationFactor: 3)

        // While Paris is attested Moroccan, data of the bucket reaches it: every node then
        // holds a link to Paris, made when its certificate said country=MA.
        let early = try lab.client(for: "benguerir-1")
        try await early.createBucket("ma-data", policy: "ma")
        _ = try await early.put(bucket: "ma-data", key: "before-correction", data: randomBytes(70_000, seed: 699))
        await early.close()

        // The CA corrects it; Paris reloads its country=FR certificate without a restart and
        // closes its peer links, so the Moroccan nodes see the new certificate when they
        // link again (links opened before would otherwise keep the old attestation).
        try await issueParis("FR")
        let clock = ContinuousClock()
        let reloadDeadline = clock.now + .seconds(20)
        var reloaded = false
        while !reloaded, clock.now < reloadDeadline {
            try await Task.sleep(for: .milliseconds(500))
            let log = (try? String(contentsOfFile: paris.logFile, encoding: .utf8)) ?? ""
            reloaded = log.contains("own certificate changed")
        }
        #expect(reloaded, "paris-1 did not reload its corrected certificate")
        try await LoadedLab.waitAlive(lab, ["benguerir-1", "casablanca-1", "paris-1"])

        // Writes through a Moroccan node reach QUORUM on the two Moroccan replicas; Paris's
        // share is refused by the send guard, parked as a hint on a Moroccan node, and its
        // delivery refused too.
        let client = try lab.client(for: "benguerir-1")
        let marker = "corrected-9b2c"
        var objects: [[UInt8]] = []
        for i in 0..<4 {
            let data = randomBytes([5000, 70_000, 300_000, 1_200_000][i], seed: UInt64(700 + i))
            _ = try await client.put(bucket: "ma-data", key: "\(marker)/\(i)", data: data)
            objects.append(data)
        }
        await client.close()
        // Hint delivery runs every second: give it time to try (and be refused).
        try await Task.sleep(for: .seconds(3))
        let (hits, scanned) = try Self.filesHolding(
            Self.needles(marker: marker, objects: objects), in: lab, nodes: ["paris-1"])
        #expect(scanned > 0)
        #expect(hits.isEmpty, "Paris holds bytes written after its certificate was corrected: \(hits)")
        let logs = try lab.status().filter { $0.site != "paris" }.map {
            (try? String(contentsOfFile: $0.logFile, encoding: .utf8)) ?? ""
        }.joined()
        #expect(logs.contains("refused to send a bucket's data to a node its certificate does not make eligible"))

        // Paris asking a Moroccan replica for the bucket's data is refused by what its
        // certificate attests, though the layout still calls Paris Moroccan.
        let dialer = try Dialer(lab)
        let asked = await dialer.dial(
            as: "paris-1", tls: dialer.tls, asking: .manifestGet(bucket: "ma-data", key: "\(marker)/0"))
        #expect(asked?.code == .notAttested, "\(String(describing: asked))")
        let listed = await dialer.dial(
            as: "paris-1", tls: dialer.tls,
            asking: .partitionManifests(policy: "ma", partition: 0, after: nil, limit: 10))
        #expect(listed?.code == .notAttested, "\(String(describing: listed))")

        // Bytes pushed to Paris by a sender that skips its own checks (here, one holding
        // Casablanca's certificate): Paris refuses them by its own certificate.
        let pusher = try Dialer(lab, holding: "casablanca-1", target: "paris-1")
        let pushed = await pusher.dial(
            as: "casablanca-1", tls: pusher.tls, asking: .manifestPut(bucket: "ma-data", key: "\(marker)/0"))
        #expect(pushed?.code == .notAttested, "\(String(describing: pushed))")

        // Paris's own audit names the label its certificate no longer attests.
        let via = try #require(try lab.status().first { $0.name == "benguerir-1" }?.clientEndpoint)
        let audit = try await CLI(endpoint: via, credentials: lab.credentialsFile).runDetached([
            "admin", "audit", "residency",
        ])
        #expect(audit.status == 9, "\(audit.stdout)\(audit.stderr)")
        #expect(audit.stdout.contains("does not attest"), "\(audit.stdout)")
    }

    @Test(
        "a dialer with the Paris certificate claiming to be benguerir-1 is refused by every node; its true id links; a dialer without a certificate is refused"
    )
    func aPeerClaimingAnotherId_isRefused() async throws {
        let lab = try await Self.create()
        try await withLab(lab) { try await impersonate(lab) }
    }

    /// A dialer holding the lab's cluster secret and a node's certificate and key (paris-1's
    /// by default), which links to a node (casablanca-1) as `id` (with `tls`, else in clear)
    /// and sends one request (LAYOUT_GET by default), bypassing every check a node would
    /// run before sending.
    struct Dialer {
        let authenticator: PeerAuthenticator
        let tls: NodeTLS
        let target: String

        let targetName: String

        /// Holding `holder`'s certificate and key, dialing `target`.
        init(_ lab: Lab, holding holder: String = "paris-1", target targetName: String = "casablanca-1") throws {
            let state = try lab.state()
            let paris = try #require(state.nodes.first { $0.name == holder })
            self.targetName = targetName
            target = try #require(state.nodes.first { $0.name == targetName }?.clientEndpoint)
            let secret = try #require(
                String(contentsOfFile: state.secretFile, encoding: .utf8).split(whereSeparator: \.isNewline).first)
            authenticator = try PeerAuthenticator(clusterName: state.clusterName, secrets: [String(secret)])
            let caPEM = try String(contentsOfFile: try #require(state.caFile), encoding: .utf8)
            tls = NodeTLS(
                try NodeTLS.Contexts(
                    certificatePEM: try String(contentsOfFile: try #require(paris.certFile), encoding: .utf8),
                    keyPEM: try String(contentsOfFile: try #require(paris.keyFile), encoding: .utf8), caPEM: caPEM))
        }

        func dial(as id: String, tls: NodeTLS?, asking request: PeerRequest = .layoutGet) async -> AgadirError? {
            let (target, name) = (self.target, targetName)
            let links = PeerLinks(
                nodeID: id, authenticator: authenticator, tls: tls, resolve: { $0 == name ? target : nil })
            defer { links.closeAll() }
            return await agadirError { _ = try await links.call(name, request, maxResponseBytes: 1 << 20) }
        }
    }

    func impersonate(_ lab: Lab) async throws {
        try await Self.start(lab)
        let state = try lab.state()
        let dialer = try Dialer(lab)
        let tls = dialer.tls
        func dial(as id: String, tls: NodeTLS?) async -> AgadirError? { await dialer.dial(as: id, tls: tls) }
        // The Paris key and certificate, claiming Benguerir's id: refused.
        let impostor = await dial(as: "benguerir-1", tls: tls)
        #expect(impostor?.code == .unauthenticated, "\(String(describing: impostor))")
        // The same certificate under its own id: a link, and an answer.
        let genuine = await dial(as: "paris-1", tls: tls)
        #expect(genuine == nil, "\(String(describing: genuine))")
        // The cluster secret alone, without a certificate (clear text): refused.
        let noCertificate = await dial(as: "benguerir-1", tls: nil)
        #expect(noCertificate != nil)
        let log = try String(
            contentsOfFile: try #require(state.nodes.first { $0.name == "casablanca-1" }).logFile, encoding: .utf8)
        #expect(
            log.contains("peer handshake refused") && log.contains("names node 'paris-1', not 'benguerir-1'"),
            "\(log.suffix(3000))")
    }

    @Test(
        "a revoked certificate: within the reload interval every node refuses it, and the node holding it no longer starts"
    )
    func aRevokedCertificate_isRefused() async throws {
        let lab = try await Self.create()
        try await withLab(lab) { try await revoke(lab) }
    }

    func revoke(_ lab: Lab) async throws {
        try await Self.start(lab)
        let state = try lab.state()
        let dialer = try Dialer(lab)
        let before = await dialer.dial(as: "paris-1", tls: dialer.tls)
        #expect(before == nil, "\(String(describing: before))")
        let paris = try #require(state.nodes.first { $0.name == "paris-1" })
        let revoked = try await CLI(endpoint: "127.0.0.1:1", credentials: nil).runDetached([
            "admin", "cert", "revoke", "--ca", lab.root.appendingPathComponent("pki").path, "--cert",
            try #require(paris.certFile), "--out", try #require(state.revocationFile),
        ])
        #expect(
            revoked.status == 0 && revoked.stdout.contains("1 revoked serial"), "\(revoked.stdout)\(revoked.stderr)")
        // The lab's nodes read their certificate files every 2 s.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        var after = await dialer.dial(as: "paris-1", tls: dialer.tls)
        while after == nil, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
            after = await dialer.dial(as: "paris-1", tls: dialer.tls)
        }
        #expect(after?.code == .unauthenticated, "\(String(describing: after))")
        let log = try String(
            contentsOfFile: try #require(state.nodes.first { $0.name == "casablanca-1" }).logFile, encoding: .utf8)
        #expect(log.contains("revocation list changed"), "\(log.suffix(3000))")
        #expect(
            log.contains("peer handshake refused") && log.contains("is on the cluster's revocation list"),
            "\(log.suffix(3000))")
        // paris-1 itself: its own certificate is revoked, so it does not start again.
        try await lab.stop("paris-1")
        let restart = await agadirError { try await lab.start("paris-1") }
        #expect(restart != nil)
        let parisLog = try String(contentsOfFile: paris.logFile, encoding: .utf8)
        #expect(parisLog.contains("is revoked by"), "\(parisLog.suffix(2000))")
    }

    @Test("a renewed certificate is adopted without a restart: new connections get it, the node keeps serving")
    func aRenewedCertificate_isReloaded() async throws {
        let lab = try await Self.create()
        try await withLab(lab) { try await renew(lab) }
    }

    /// The serial of the certificate `endpoint` presents to a new TLS connection.
    static func servedSerial(_ endpoint: String, caPEM: String) async throws -> String {
        let (host, port) = try Endpoint.parse(endpoint)
        let connection = try await ClientConnection.connect(
            host: host, port: port, limits: .default, bodyBufferBytes: 1 << 20, connectTimeout: .seconds(2),
            tls: DialTLS(context: try TLSContexts.client(caPEM: caPEM)))
        defer { connection.close() }
        let der = try #require(await peerCertificateDER(of: connection.channel))
        return try ClusterCA.attested(certificateDER: der, caCertificatePEM: caPEM).serial
    }

    func renew(_ lab: Lab) async throws {
        try await Self.start(lab)
        let state = try lab.state()
        let node = try #require(state.nodes.first { $0.name == "benguerir-1" })
        let endpoint = try #require(node.clientEndpoint)
        let caPEM = try String(contentsOfFile: try #require(state.caFile), encoding: .utf8)
        let before = try await Self.servedSerial(endpoint, caPEM: caPEM)

        let out = lab.root.appendingPathComponent("renewed").path
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let issued = try await CLI(endpoint: "127.0.0.1:1", credentials: nil).runDetached([
            "admin", "cert", "issue", "--ca", lab.root.appendingPathComponent("pki").path, "--node", "benguerir-1",
            "--site", "benguerir", "--label", "country=MA", "--host", "127.0.0.1", "--out", out,
        ])
        #expect(issued.status == 0, "\(issued.stderr)")
        let renewed = try ClusterCA.identity(
            certificatePEM: try String(contentsOfFile: out + "/benguerir-1.crt", encoding: .utf8)
        ).serial
        #expect(renewed != before)
        // Key first, then certificate, each renamed into place (a reload between the two
        // sees a key that does not match and keeps the old pair, as documented).
        for (from, to) in [("benguerir-1.key", node.keyFile), ("benguerir-1.crt", node.certFile)] {
            let target = try #require(to)
            let staging = target + ".new"
            try FileManager.default.copyItem(atPath: out + "/" + from, toPath: staging)
            _ = rename(staging, target)
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        var served = before
        while served != renewed, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
            served = try await Self.servedSerial(endpoint, caPEM: caPEM)
        }
        #expect(served == renewed)
        let log = try String(contentsOfFile: node.logFile, encoding: .utf8)
        #expect(log.contains("certificate reloaded") && log.contains(renewed), "\(log.suffix(3000))")
        // Still the same node, serving and linking: a Moroccan write reaches QUORUM through it.
        let client = try lab.client(for: "benguerir-1")
        try await client.createBucket("after-renewal", policy: "ma")
        _ = try await client.put(bucket: "after-renewal", key: "k", data: randomBytes(100_000, seed: 5))
        #expect(try await client.get(bucket: "after-renewal", key: "k").1 == randomBytes(100_000, seed: 5))
        await client.close()
    }
}
