import AgadirCore
import AgadirMembership
import AgadirTransport
import AgadirWire

/// What serves peer requests on a node (the cluster's side of the client port).
public protocol PeerRequestHandler: Sendable {
    /// Runs one authenticated peer request to completion, answering on `sink`; never throws.
    /// `peer` is the node id the handshake proved.
    func handle(id: UInt64, request: PeerRequest, from peer: String, body: BodyStream?, sink: any ResponseSink) async
}

/// The listener's half of the peer handshake, for one connection (docs/protocol.md,
/// "Peer handshake"). The connection holds one value and feeds it PEER_HELLO and
/// PEER_AUTH; any other peer request is allowed once `authenticatedPeer` is set.
public struct PeerHandshakeState: Sendable {
    public private(set) var authenticatedPeer: String?
    private var transcript: PeerAuthenticator.Transcript?

    public init() {}

    /// The answer to PEER_HELLO: this node's id, a fresh nonce and the server proof.
    /// UNAUTHENTICATED when the cluster name differs or a handshake already ran.
    public mutating func hello(
        nodeID dialer: String, cluster: String, nonce: [UInt8], listenerID: String, authenticator: PeerAuthenticator,
        listenerNonce: [UInt8]
    ) throws(AgadirError) -> Fields {
        guard transcript == nil, authenticatedPeer == nil else {
            throw AgadirError(.unauthenticated, "PEER_HELLO sent twice on one connection")
        }
        guard cluster == authenticator.clusterName else {
            throw AgadirError(
                .unauthenticated,
                "node \(dialer) belongs to cluster '\(cluster)', this node to '\(authenticator.clusterName)'")
        }
        guard dialer != listenerID else {
            throw AgadirError(.unauthenticated, "node \(dialer) has the same node id as this node")
        }
        let t = PeerAuthenticator.Transcript(
            dialerNonce: nonce, listenerNonce: listenerNonce, dialerID: dialer, listenerID: listenerID)
        transcript = t
        var f = Fields()
        f.set(.nodeID, listenerID)
        f.set(.nonce, bytes: listenerNonce)
        f.set(.proof, bytes: authenticator.proof(.server, t))
        return f
    }

    /// Checks the dialer's PEER_AUTH proof; on success the connection is a peer link of
    /// the node it returns.
    public mutating func auth(proof: [UInt8], authenticator: PeerAuthenticator) throws(AgadirError) -> String {
        guard let t = transcript, authenticatedPeer == nil else {
            throw AgadirError(.unauthenticated, "PEER_AUTH without a PEER_HELLO before it")
        }
        guard authenticator.verify(proof, .client, t) else {
            throw AgadirError(
                .unauthenticated,
                "node \(t.dialerID) failed the cluster-secret handshake: it does not share this node's secret")
        }
        authenticatedPeer = t.dialerID
        return t.dialerID
    }
}
