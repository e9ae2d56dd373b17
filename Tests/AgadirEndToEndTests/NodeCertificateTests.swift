import AgadirClient
import AgadirCore
import AgadirLab
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
}
