import AgadirCore
import Crypto
import Foundation
import SwiftASN1
import X509

/// The cluster's certificate authority (docs/security.md, "Cluster PKI"): a P-256 key kept
/// offline in a directory, which signs node certificates binding a node id, its site and
/// its residency labels. A node's certificate, not the mutable layout, is what attests
/// where it stands.
///
/// The binding travels in the certificate's subject alternative names as URNs, readable
/// by any X.509 tool (`openssl x509 -text`):
///
///     urn:agadir:cluster:<cluster name>
///     urn:agadir:node:<node id>
///     urn:agadir:site:<site>
///     urn:agadir:label:<key>=<value>     (one per label)
///
/// plus the DNS names and IP addresses given at issue, for host verification.
public enum ClusterCA {
    public static let urnPrefix = "urn:agadir:"
    /// Default lifetimes: ten years for the CA, 90 days for a node (renewed by issuing again).
    public static let defaultCADays = 3650
    public static let defaultNodeDays = 90

    /// A new CA: its certificate and its private key, both PEM.
    public static func create(clusterName: String, days: Int = defaultCADays, now: Date = Date()) throws(AgadirError)
        -> (certificatePEM: String, privateKeyPEM: String)
    {
        try validate(name: clusterName, what: "cluster name")
        try validate(days: days)
        let key = P256.Signing.PrivateKey()
        let signer = Certificate.PrivateKey(key)
        return try wrap("creating the cluster CA") {
            let name = try DistinguishedName {
                OrganizationName("Agadir cluster \(clusterName)")
                CommonName("Agadir cluster CA \(clusterName)")
            }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectAlternativeNames([.uniformResourceIdentifier(urnPrefix + "cluster:" + clusterName)])
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: signer.publicKey,
                notValidBefore: now.addingTimeInterval(-300),
                notValidAfter: now.addingTimeInterval(Double(days) * 86_400),
                issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
                issuerPrivateKey: signer)
            return (try certificate.serializeAsPEM().pemString, key.pemRepresentation)
        }
    }

    /// A node certificate for `identity`, signed by the CA; its private key is new.
    public static func issue(
        _ identity: NodeIdentity, hosts: [String] = [], caCertificatePEM: String, caPrivateKeyPEM: String,
        days: Int = defaultNodeDays, now: Date = Date()
    ) throws(AgadirError) -> (certificatePEM: String, privateKeyPEM: String) {
        try validate(identity)
        try validate(days: days)
        let ca = try parse(caCertificatePEM, what: "the CA certificate")
        let signer = Certificate.PrivateKey(try privateKey(caPrivateKeyPEM, of: ca, what: "the CA"))
        let cluster = try clusterName(of: ca)
        let key = P256.Signing.PrivateKey()
        var names: [GeneralName] = [
            .uniformResourceIdentifier(urnPrefix + "cluster:" + cluster),
            .uniformResourceIdentifier(urnPrefix + "node:" + identity.nodeID),
            .uniformResourceIdentifier(urnPrefix + "site:" + identity.site),
        ]
        for (k, v) in identity.labels.sorted(by: { $0.key < $1.key }) {
            names.append(.uniformResourceIdentifier(urnPrefix + "label:" + k + "=" + v))
        }
        for host in hosts {
            if let ip = ipBytes(host) {
                names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(ip))))
            } else {
                names.append(.dnsName(host))
            }
        }
        let subjectNames = names
        return try wrap("issuing the certificate of node \(identity.nodeID)") {
            let subject = try DistinguishedName {
                OrganizationName("Agadir cluster \(cluster)")
                OrganizationalUnitName(identity.site)
                CommonName(identity.nodeID)
            }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames(subjectNames)
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(),
                publicKey: Certificate.PrivateKey(key).publicKey, notValidBefore: now.addingTimeInterval(-300),
                notValidAfter: now.addingTimeInterval(Double(days) * 86_400), issuer: ca.subject, subject: subject,
                signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: signer)
            return (try certificate.serializeAsPEM().pemString, key.pemRepresentation)
        }
    }

    /// What a node certificate attests, once checked: signed by `ca`, valid at `now`, for
    /// the CA's cluster. `.notAuthenticated` says what failed.
    public static func attested(
        certificatePEM: String, caCertificatePEM: String, now: Date = Date()
    ) throws(AgadirError) -> NodeIdentity {
        try attested(
            leaf: try parse(certificatePEM, what: "the node certificate"), caCertificatePEM: caCertificatePEM, now: now)
    }

    /// `attested(certificatePEM:caCertificatePEM:now:)` for a certificate in DER, as a peer
    /// presents it in its TLS handshake.
    public static func attested(
        certificateDER: [UInt8], caCertificatePEM: String, now: Date = Date()
    ) throws(AgadirError) -> NodeIdentity {
        let leaf: Certificate
        do {
            leaf = try Certificate(derEncoded: certificateDER)
        } catch {
            throw AgadirError(.notAuthenticated, "the peer's certificate does not decode: \(error)")
        }
        return try attested(leaf: leaf, caCertificatePEM: caCertificatePEM, now: now)
    }

    static func attested(leaf: Certificate, caCertificatePEM: String, now: Date) throws(AgadirError) -> NodeIdentity {
        let ca = try parse(caCertificatePEM, what: "the CA certificate")
        guard leaf.issuer == ca.subject, ca.publicKey.isValidSignature(leaf.signature, for: leaf) else {
            throw AgadirError(.notAuthenticated, "the node certificate is not signed by this cluster's CA")
        }
        guard leaf.notValidBefore <= now, now <= leaf.notValidAfter else {
            throw AgadirError(
                .notAuthenticated,
                "the node certificate is valid from \(leaf.notValidBefore) to \(leaf.notValidAfter), not now (\(now)); "
                    + "issue a new one (`agadir admin cert issue`)")
        }
        let cluster = try clusterName(of: ca)
        let urns = try uris(of: leaf)
        guard urns.contains(urnPrefix + "cluster:" + cluster) else {
            throw AgadirError(
                .notAuthenticated, "the node certificate was issued for another cluster than '\(cluster)'")
        }
        var identity = try identity(fromURNs: urns)
        identity.serial = serialHex(leaf)
        return identity
    }

    /// The certificate's serial number in lowercase hex, as `cert show` and the revocation
    /// list write it.
    static func serialHex(_ certificate: Certificate) -> String {
        let digits = Array("0123456789abcdef")
        return String(certificate.serialNumber.bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }

    /// `.invalidArgument` unless `privateKeyPEM` is the private key of `certificatePEM`.
    public static func checkKey(certificatePEM: String, privateKeyPEM: String) throws(AgadirError) {
        _ = try privateKey(privateKeyPEM, of: try parse(certificatePEM, what: "the node certificate"), what: "the node")
    }

    /// The P-256 key in `pem`, once checked to be `certificate`'s; `.invalidArgument` naming
    /// `what` ("the CA", "the node") otherwise.
    static func privateKey(_ pem: String, of certificate: Certificate, what: String) throws(AgadirError)
        -> P256.Signing.PrivateKey
    {
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(pemRepresentation: pem)
        } catch {
            throw AgadirError(.invalidArgument, "\(what) private key is not a P-256 key in PEM: \(error)")
        }
        guard Certificate.PrivateKey(key).publicKey == certificate.publicKey else {
            throw AgadirError(.invalidArgument, "\(what) private key does not belong to \(what) certificate")
        }
        return key
    }

    /// The identity written in a certificate's URNs, without checking who signed it.
    public static func identity(certificatePEM: String) throws(AgadirError) -> NodeIdentity {
        let certificate = try parse(certificatePEM, what: "the certificate")
        var identity = try identity(fromURNs: try uris(of: certificate))
        identity.serial = serialHex(certificate)
        return identity
    }

    static func identity(fromURNs urns: [String]) throws(AgadirError) -> NodeIdentity {
        var node: String?
        var site: String?
        var labels: [String: String] = [:]
        for urn in urns where urn.hasPrefix(urnPrefix) {
            let rest = String(urn.dropFirst(urnPrefix.count))
            if rest.hasPrefix("node:") {
                node = String(rest.dropFirst(5))
            } else if rest.hasPrefix("site:") {
                site = String(rest.dropFirst(5))
            } else if rest.hasPrefix("label:"), let eq = rest.firstIndex(of: "=") {
                labels[String(rest[rest.index(rest.startIndex, offsetBy: 6)..<eq])] = String(
                    rest[rest.index(after: eq)...])
            }
        }
        guard let node, let site else {
            throw AgadirError(
                .notAuthenticated, "the certificate names no Agadir node and site (urn:agadir:node:, urn:agadir:site:)")
        }
        return NodeIdentity(nodeID: node, site: site, labels: labels)
    }

    static func clusterName(of ca: Certificate) throws(AgadirError) -> String {
        guard let urn = try uris(of: ca).first(where: { $0.hasPrefix(urnPrefix + "cluster:") }) else {
            throw AgadirError(.invalidArgument, "the CA certificate names no Agadir cluster (urn:agadir:cluster:)")
        }
        return String(urn.dropFirst((urnPrefix + "cluster:").count))
    }

    static func uris(of certificate: Certificate) throws(AgadirError) -> [String] {
        let names: SubjectAlternativeNames?
        do {
            names = try certificate.extensions.subjectAlternativeNames
        } catch {
            throw AgadirError(.invalidArgument, "the certificate's subject alternative names do not decode: \(error)")
        }
        return (names ?? SubjectAlternativeNames()).compactMap {
            if case .uniformResourceIdentifier(let uri) = $0 { return uri }
            return nil
        }
    }

    static func parse(_ pem: String, what: String) throws(AgadirError) -> Certificate {
        do {
            return try Certificate(pemEncoded: pem)
        } catch {
            throw AgadirError(.invalidArgument, "\(what) is not a PEM certificate: \(error)")
        }
    }

    // MARK: Validation

    static func validate(_ identity: NodeIdentity) throws(AgadirError) {
        try validate(name: identity.nodeID, what: "node id")
        try validate(name: identity.site, what: "site")
        guard identity.labels.count <= 32 else {
            throw AgadirError(.invalidArgument, "\(identity.labels.count) labels; a node certificate holds at most 32")
        }
        for (k, v) in identity.labels {
            try validate(name: k, what: "label key")
            guard (1...255).contains(v.utf8.count), !v.contains(where: { $0.isWhitespace || $0 == "=" }) else {
                throw AgadirError(.invalidArgument, "label value '\(v)' must be 1-255 bytes without spaces or '='")
            }
        }
    }

    static func validate(name: String, what: String) throws(AgadirError) {
        guard (1...128).contains(name.utf8.count),
            name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") })
        else {
            throw AgadirError(.invalidArgument, "\(what) '\(name)' must be 1-128 of A-Z, a-z, 0-9, '-', '_', '.'")
        }
    }

    static func validate(days: Int) throws(AgadirError) {
        guard (1...36_500).contains(days) else {
            throw AgadirError(.invalidArgument, "a lifetime of \(days) days; give 1 to 36500")
        }
    }

    static func ipBytes(_ host: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    static func wrap<T>(_ what: String, _ body: () throws -> T) throws(AgadirError) -> T {
        do {
            return try body()
        } catch let error as AgadirError {
            throw error
        } catch {
            throw AgadirError(.internalError, "\(what) failed: \(error)")
        }
    }
}
