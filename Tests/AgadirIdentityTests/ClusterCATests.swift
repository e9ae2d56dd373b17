import AgadirCore
import AgadirIdentity
import AgadirTestSupport
import Foundation
import Testing

@Suite("Cluster CA: node certificates bind id, site and labels")
struct ClusterCATests {
    let moroccan = NodeIdentity(nodeID: "benguerir-1", site: "benguerir", labels: ["country": "MA", "rack": "r1"])

    @Test func anIssuedCertificate_attestsItsNode_siteAndLabels() throws {
        let ca = try ClusterCA.create(clusterName: "sovereign")
        let node = try ClusterCA.issue(
            moroccan, hosts: ["127.0.0.1", "benguerir-1.example"], caCertificatePEM: ca.certificatePEM,
            caPrivateKeyPEM: ca.privateKeyPEM)
        #expect(node.certificatePEM.hasPrefix("-----BEGIN CERTIFICATE-----"))
        #expect(node.privateKeyPEM.contains("PRIVATE KEY"))
        let attested = try ClusterCA.attested(certificatePEM: node.certificatePEM, caCertificatePEM: ca.certificatePEM)
        var expected = moroccan
        expected.serial = attested.serial
        #expect(attested.serial.count == 40 && attested.serial.allSatisfy(\.isHexDigit), "\(attested.serial)")
        #expect(attested == expected)
        #expect(try ClusterCA.identity(certificatePEM: node.certificatePEM) == expected)
    }

    @Test func aRevocationList_isTheCAs_andCannotBeEdited() throws {
        let ca = try ClusterCA.create(clusterName: "sovereign")
        let node = try ClusterCA.issue(moroccan, caCertificatePEM: ca.certificatePEM, caPrivateKeyPEM: ca.privateKeyPEM)
        let serial = try ClusterCA.attested(certificatePEM: node.certificatePEM, caCertificatePEM: ca.certificatePEM)
            .serial
        let first = try RevocationList.sign(
            serials: [serial.uppercased()], caCertificatePEM: ca.certificatePEM, caPrivateKeyPEM: ca.privateKeyPEM)
        let second = try RevocationList.sign(
            serials: ["0abc"], previous: first, caCertificatePEM: ca.certificatePEM, caPrivateKeyPEM: ca.privateKeyPEM)
        #expect(second.serials == ["0abc", serial].sorted())
        let json = try second.encoded()
        let read = try RevocationList.verified(json: json, caCertificatePEM: ca.certificatePEM)
        #expect(read.revokes(serial) && read.revokes("0ABC") && !read.revokes("0abd"))
        // Un-revoking by editing the file breaks the signature.
        let edited = json.replacingOccurrences(of: "\"\(serial)\"", with: "\"00\"")
        #expect(edited != json)
        let refused = #expect(throws: AgadirError.self) {
            try RevocationList.verified(json: edited, caCertificatePEM: ca.certificatePEM)
        }
        #expect(refused?.code == .notAuthenticated)
        // Another CA's list is not this cluster's.
        let rogue = try ClusterCA.create(clusterName: "sovereign")
        let forged = try RevocationList.sign(
            serials: [], caCertificatePEM: rogue.certificatePEM, caPrivateKeyPEM: rogue.privateKeyPEM)
        #expect(throws: AgadirError.self) {
            try RevocationList.verified(json: try forged.encoded(), caCertificatePEM: ca.certificatePEM)
        }
        // A serial that is not hex is refused before signing.
        #expect(throws: AgadirError.self) {
            try RevocationList.sign(
                serials: ["node-1"], caCertificatePEM: ca.certificatePEM, caPrivateKeyPEM: ca.privateKeyPEM)
        }
    }

    @Test func anotherCA_anExpiredCertificate_andAnotherCluster_areRefused() throws {
        let ca = try ClusterCA.create(clusterName: "sovereign")
        let rogue = try ClusterCA.create(clusterName: "sovereign")
        // A "Moroccan" certificate made by someone else's CA, even for the same cluster name.
        let forged = try ClusterCA.issue(
            moroccan, caCertificatePEM: rogue.certificatePEM, caPrivateKeyPEM: rogue.privateKeyPEM)
        let notOurs = #expect(throws: AgadirError.self) {
            try ClusterCA.attested(certificatePEM: forged.certificatePEM, caCertificatePEM: ca.certificatePEM)
        }
        #expect(notOurs?.code == .notAuthenticated && notOurs?.message.contains("not signed") == true)

        let issued = try ClusterCA.issue(
            moroccan, caCertificatePEM: ca.certificatePEM, caPrivateKeyPEM: ca.privateKeyPEM, days: 1)
        let later = Date().addingTimeInterval(2 * 86_400)
        let expired = #expect(throws: AgadirError.self) {
            try ClusterCA.attested(
                certificatePEM: issued.certificatePEM, caCertificatePEM: ca.certificatePEM, now: later)
        }
        #expect(expired?.message.contains("valid from") == true)

        // The CA key must match its certificate.
        #expect(throws: AgadirError.self) {
            try ClusterCA.issue(moroccan, caCertificatePEM: ca.certificatePEM, caPrivateKeyPEM: rogue.privateKeyPEM)
        }
    }

    @Test func badIdentitiesAndLifetimes_areRefusedBeforeSigning() throws {
        let ca = try ClusterCA.create(clusterName: "c")
        for bad in [
            NodeIdentity(nodeID: "", site: "s"), NodeIdentity(nodeID: "n", site: "a site"),
            NodeIdentity(nodeID: "n", site: "s", labels: ["country": "M A"]),
            NodeIdentity(nodeID: "n", site: "s", labels: ["k=v": "x"]),
        ] {
            #expect(throws: AgadirError.self, "\(bad)") {
                try ClusterCA.issue(bad, caCertificatePEM: ca.certificatePEM, caPrivateKeyPEM: ca.privateKeyPEM)
            }
        }
        #expect(throws: AgadirError.self) {
            try ClusterCA.issue(
                moroccan, caCertificatePEM: ca.certificatePEM, caPrivateKeyPEM: ca.privateKeyPEM, days: 0)
        }
        #expect(throws: AgadirError.self) { try ClusterCA.create(clusterName: "bad name") }
        #expect(throws: AgadirError.self) { try ClusterCA.identity(certificatePEM: "not a certificate") }
    }

    /// An independent reader: openssl (installed by deploy/setup.sh) sees the CA's signature
    /// and the URNs.
    @Test func openssl_verifiesTheChain_andReadsTheBinding() throws {
        let dir = TempDirectory(prefix: "identity", #function)
        defer { dir.cleanup() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let ca = try ClusterCA.create(clusterName: "sovereign")
        let node = try ClusterCA.issue(moroccan, caCertificatePEM: ca.certificatePEM, caPrivateKeyPEM: ca.privateKeyPEM)
        try ca.certificatePEM.write(toFile: dir.path + "/ca.crt", atomically: true, encoding: .utf8)
        try node.certificatePEM.write(toFile: dir.path + "/node.crt", atomically: true, encoding: .utf8)
        func openssl(_ args: [String]) throws -> (Int32, String) { try runProcess("/usr/bin/openssl", args) }
        let (verified, vText) = try openssl(["verify", "-CAfile", dir.path + "/ca.crt", dir.path + "/node.crt"])
        #expect(verified == 0, "\(vText)")
        let (_, text) = try openssl(["x509", "-in", dir.path + "/node.crt", "-noout", "-text"])
        for urn in ["urn:agadir:node:benguerir-1", "urn:agadir:site:benguerir", "urn:agadir:label:country=MA"] {
            #expect(text.contains(urn), "\(urn) not in:\n\(text)")
        }
    }
}
