import AgadirCore
import AgadirPlacement
import Synchronization

/// What the certificates of this node and its peers attest (docs/security.md, "Attested
/// residency"). In a cluster with certificates (`required`), every peer link starts with a
/// TLS handshake in which both ends present a certificate of the cluster CA; the node id,
/// site and labels it names are recorded here, and every path that sends a bucket's bytes
/// to a peer, or answers a peer with them, checks the peer's attestation against the
/// bucket's policy. Without certificates nothing is attested and the layout decides alone.
public final class Attestations: Sendable {
    /// True when this node has a certificate: peers must present theirs, and residency
    /// follows what they attest.
    public let required: Bool
    public let nodeID: String
    private let byNode = Mutex<[String: Attestation]>([:])
    private let ownAndRevoked: Mutex<(own: Attestation?, revoked: Set<String>)>

    public init(nodeID: String, own: Attestation?, revokedSerials: Set<String> = []) {
        self.nodeID = nodeID
        self.ownAndRevoked = Mutex((own, revokedSerials))
        self.required = own != nil
    }

    /// This node's own attestation (nil without a certificate).
    public var own: Attestation? { ownAndRevoked.withLock { $0.own } }

    /// After a certificate reload: this node's new attestation and the revocation list.
    public func replaceOwn(_ attestation: Attestation, revokedSerials: Set<String>) {
        ownAndRevoked.withLock { $0 = (attestation, revokedSerials) }
    }

    /// True when the revocation list names the certificate serial `serial`.
    public func isRevoked(serial: String) -> Bool {
        ownAndRevoked.withLock { $0.revoked.contains(serial.lowercased()) }
    }

    /// Records what `node`'s certificate attests, after its TLS handshake was checked.
    public func record(_ node: String, _ attestation: Attestation) {
        byNode.withLock { $0[node] = attestation }
    }

    /// What `node`'s certificate attests, as last seen (this node's own included).
    public func of(_ node: String) -> Attestation? {
        if node == nodeID { return own }
        return byNode.withLock { $0[node] }
    }

    /// Nil when `node` may hold bytes of `policy` by what it attests; otherwise why not.
    /// Always nil without certificates (the layout's eligibility checks then stand alone).
    public func refusal(_ node: String, for policy: Policy) -> String? {
        guard required else { return nil }
        guard let attested = of(node) else {
            return "node \(node) has presented no certificate to this node yet, so nothing attests its site"
        }
        guard attested.permits(policy) else {
            return "node \(node)'s certificate attests site '\(attested.site)' with labels "
                + "[\(attested.labels.labelText)], which policy '\(policy.name)' (\(policy.selector)) does not allow"
        }
        return nil
    }
}
