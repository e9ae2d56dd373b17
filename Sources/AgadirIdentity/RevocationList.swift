import AgadirCore
import Crypto
import Foundation
import X509

/// The cluster's revocation list: serial numbers of node certificates no node may use any
/// more (a stolen key, a decommissioned machine), signed by the cluster CA so a node can
/// trust a copy however it arrived (docs/operations.md, "Revoking a certificate"). Nodes
/// read it from `revocationFile` at start and whenever it changes; a peer presenting a
/// revoked certificate is refused, and a node whose own certificate is revoked does not
/// start.
public struct RevocationList: Sendable, Hashable, Codable {
    public static let format = "agadir-revocations-1"
    /// Most serials one list may name (a CA issuing 90-day certificates revokes far fewer).
    public static let maxSerials = 100_000

    public var format: String
    public var cluster: String
    /// When the CA signed it, milliseconds since the epoch.
    public var issuedAtMillis: UInt64
    /// Lowercase hex, sorted, without duplicates.
    public var serials: [String]
    /// ECDSA P-256 / SHA-256 signature of `signedBytes`, DER, base64.
    public var signature: String

    public func revokes(_ serial: String) -> Bool {
        serials.contains(serial.lowercased())
    }

    /// What the CA signs: the format, cluster, time and serials, one per line.
    static func signedBytes(cluster: String, issuedAtMillis: UInt64, serials: [String]) -> [UInt8] {
        Array(([format, cluster, String(issuedAtMillis)] + serials).joined(separator: "\n").utf8)
    }

    /// A list naming `serials` (added to those of `previous`, if given), signed by the CA.
    public static func sign(
        serials: [String], previous: RevocationList? = nil, caCertificatePEM: String, caPrivateKeyPEM: String,
        now: Date = Date()
    ) throws(AgadirError) -> RevocationList {
        let ca = try ClusterCA.parse(caCertificatePEM, what: "the CA certificate")
        let cluster = try ClusterCA.clusterName(of: ca)
        let key = try ClusterCA.privateKey(caPrivateKeyPEM, of: ca, what: "the CA")
        var all = Set(previous?.serials ?? [])
        for serial in serials {
            let s = serial.lowercased()
            guard !s.isEmpty, s.count <= 64, s.allSatisfy({ $0.isHexDigit }) else {
                throw AgadirError(
                    .invalidArgument, "serial '\(serial)' is not a certificate serial (hex, as `cert show` prints it)")
            }
            all.insert(s)
        }
        guard all.count <= maxSerials else {
            throw AgadirError(.invalidArgument, "a revocation list names at most \(maxSerials) serials")
        }
        let sorted = all.sorted()
        let issued = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        let bytes = signedBytes(cluster: cluster, issuedAtMillis: issued, serials: sorted)
        let signature: P256.Signing.ECDSASignature
        do {
            signature = try key.signature(for: bytes)
        } catch {
            throw AgadirError(.internalError, "signing the revocation list failed: \(error)")
        }
        return RevocationList(
            format: format, cluster: cluster, issuedAtMillis: issued, serials: sorted,
            signature: Data(signature.derRepresentation).base64EncodedString())
    }

    /// The list in `json`, once its signature by the cluster CA is checked;
    /// `.notAuthenticated` when it is not the CA's, `.invalidArgument` when it does not decode.
    public static func verified(json: String, caCertificatePEM: String) throws(AgadirError) -> RevocationList {
        let list: RevocationList
        do {
            list = try JSONDecoder().decode(RevocationList.self, from: Data(json.utf8))
        } catch {
            throw AgadirError(.invalidArgument, "the revocation list does not decode: \(error)")
        }
        guard list.format == format else {
            throw AgadirError(.invalidArgument, "the revocation list has format '\(list.format)', not '\(format)'")
        }
        guard list.serials.count <= maxSerials else {
            throw AgadirError(.invalidArgument, "the revocation list names more than \(maxSerials) serials")
        }
        let ca = try ClusterCA.parse(caCertificatePEM, what: "the CA certificate")
        guard list.cluster == (try ClusterCA.clusterName(of: ca)) else {
            throw AgadirError(.notAuthenticated, "the revocation list is for cluster '\(list.cluster)', not this CA's")
        }
        guard let publicKey = P256.Signing.PublicKey(ca.publicKey), let der = Data(base64Encoded: list.signature),
            let signature = try? P256.Signing.ECDSASignature(derRepresentation: der),
            publicKey.isValidSignature(
                signature,
                for: signedBytes(cluster: list.cluster, issuedAtMillis: list.issuedAtMillis, serials: list.serials))
        else {
            throw AgadirError(.notAuthenticated, "the revocation list is not signed by this cluster's CA")
        }
        return list
    }

    /// JSON, one key per line, as `cert revoke` writes it.
    public func encoded() throws(AgadirError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
        } catch {
            throw AgadirError(.internalError, "encoding the revocation list failed: \(error)")
        }
    }
}
