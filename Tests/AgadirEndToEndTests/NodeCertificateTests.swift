import AgadirClient
import AgadirCore
import AgadirLab
import AgadirWire
import Foundation
import Testing

/// A node starts with a certificate only when the cluster CA attests its own id and site
/// (docs/operations.md, "Cluster PKI").
@Suite("Node certificates on real processes", .serialized)
struct NodeCertificateTests {
    @Test(
        "a node given a paris certificate while claiming to be benguerir-1 refuses to start; its own certificate starts it"
    )
    func aNodeCannotClaimAnotherNodesCertificate() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "agadir-certs-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: base) }
        let ca = base.appendingPathComponent("ca").path
        let cli = CLI(endpoint: "127.0.0.1:1", credentials: nil)
        #expect(try cli.run(["admin", "ca", "init", ca]).status == 0)
        for (node, site, country) in [("paris-1", "paris", "FR"), ("benguerir-1", "benguerir", "MA")] {
            let r = try cli.run([
                "admin", "cert", "issue", "--ca", ca, "--node", node, "--site", site, "--label", "country=\(country)",
                "--out", base.path,
            ])
            #expect(r.status == 0, "\(r.stderr)")
        }
        func node(cert: String, key: String) throws -> NodeProcess {
            try NodeProcess(
                extraArguments: [
                    "--node-id", "benguerir-1", "--site", "benguerir", "--cert-file", base.path + "/\(cert).crt",
                    "--key-file", base.path + "/\(key).key", "--ca-file", ca + "/ca.crt",
                ], logLevel: "info")
        }
        // A Moroccan node id with the Paris certificate: refused before it listens.
        let impostor = try node(cert: "paris-1", key: "paris-1")
        defer { impostor.cleanUp() }
        let refused = #expect(throws: AgadirError.self) { try impostor.start(timeout: .seconds(30)) }
        #expect(
            refused?.message.contains("attests node 'paris-1', not this node 'benguerir-1'") == true,
            "\(String(describing: refused))")
        // Its own certificate with another node's key: refused too.
        let wrongKey = try node(cert: "benguerir-1", key: "paris-1")
        defer { wrongKey.cleanUp() }
        let keyRefused = #expect(throws: AgadirError.self) { try wrongKey.start(timeout: .seconds(30)) }
        #expect(keyRefused?.message.contains("does not belong to the node certificate") == true)
        // Its own certificate and key: it starts and says what the CA attests.
        let genuine = try node(cert: "benguerir-1", key: "benguerir-1")
        defer { genuine.cleanUp() }
        try genuine.start()
        let log = try String(contentsOf: genuine.logFile, encoding: .utf8)
        #expect(log.contains("node certificate checked") && log.contains("country=MA"), "\(log.suffix(2000))")
    }

    @Test(
        "a Paris node with a certificate: relabelling its site country=MA is refused (NOT_ATTESTED, exit 9); a label applied before the certificate is a 'label' violation"
    )
    func aRelabelledSite_isRefusedOrReported() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "agadir-relabel-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: base) }
        let ca = base.appendingPathComponent("ca").path
        let cli = CLI(endpoint: "127.0.0.1:1", credentials: nil)
        #expect(try await cli.runDetached(["admin", "ca", "init", ca]).status == 0)
        let issued = try await cli.runDetached([
            "admin", "cert", "issue", "--ca", ca, "--node", "paris-1", "--site", "paris", "--label", "country=FR",
            "--host", "127.0.0.1", "--out", base.path,
        ])
        #expect(issued.status == 0, "\(issued.stderr)")
        let identity = ["--node-id", "paris-1", "--site", "paris"]
        let certificate = [
            "--cert-file", base.path + "/paris-1.crt", "--key-file", base.path + "/paris-1.key", "--ca-file",
            ca + "/ca.crt",
        ]
        let relabel = Admin.Assign(node: "paris-1", site: "paris", capacity: 1 << 40, siteLabels: ["country": "MA"])

        // With its certificate: the relabelling is refused, and nothing is applied.
        let attested = try NodeProcess(extraArguments: identity + certificate, logLevel: "warning")
        defer { attested.cleanUp() }
        try attested.start()
        let client = try attested.client()
        _ = try await client.admin(Admin.layoutAssign, relabel)
        let refused = await agadirError { _ = try await client.admin(Admin.layoutApply, Admin.Apply(version: 1)) }
        #expect(refused?.code == .notAttested, "\(String(describing: refused))")
        #expect(refused?.message.contains("does not attest") == true, "\(String(describing: refused))")
        #expect(try await client.admin(Admin.layoutShow).version == 0)
        await client.close()
        // The CLI says the same with exit 9.
        let viaCLI = try await CLI(endpoint: attested.endpoint, credentials: attested.credentialsFile.path).runDetached(
            [
                "admin", "layout", "apply", "--version", "1",
            ])
        #expect(viaCLI.status == 9 && viaCLI.stderr.contains("NOT_ATTESTED"), "\(viaCLI.stderr)")
        attested.stop(signal: SIGKILL)  // a SIGTERM would hold this thread through the graceful shutdown

        // A label applied while the node ran without a certificate (before the PKI was set up):
        // once the certificate is installed, the audit reports it and exits 9.
        let before = try NodeProcess(
            dataDir: attested.dataDir, extraArguments: identity, logLevel: "warning")
        defer { before.cleanUp() }
        try before.start()
        let plain = try before.client()
        _ = try await plain.admin(Admin.layoutRevert)
        _ = try await plain.admin(Admin.layoutAssign, relabel)
        _ = try await plain.admin(Admin.layoutApply, Admin.Apply(version: 1))
        await plain.close()
        before.stop(signal: SIGKILL)  // the layout is on disk once applied
        let after = try NodeProcess(
            dataDir: attested.dataDir, extraArguments: identity + certificate, logLevel: "warning")
        defer { after.cleanUp() }
        try after.start()
        let audited = try after.client()
        let audit = try await audited.admin(Admin.auditNode, Admin.Empty())
        await audited.close()
        #expect(audit.attestedLabels == ["country": "FR"])
        #expect(
            audit.violations.contains { $0.kind == "label" && $0.reason.contains("country=MA") },
            "\(audit.violations)")
        let shown = try await CLI(endpoint: after.endpoint, credentials: after.credentialsFile.path).runDetached([
            "admin", "audit", "residency",
        ])
        #expect(shown.status == 9, "\(shown.stdout)\(shown.stderr)")
        #expect(shown.stdout.contains("attested") && shown.stdout.contains("does not attest"), "\(shown.stdout)")
    }
}
