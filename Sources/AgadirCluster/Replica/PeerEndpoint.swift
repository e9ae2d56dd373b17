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

    /// The answer to PEER_HELLO: a fresh nonce, and nothing else (no proof, no id, no
    /// cluster name: the dialer proves itself first). UNAUTHENTICATED when a handshake
    /// already ran or the dialer claims this node's id.
    public mutating func hello(nodeID dialer: String, nonce: [UInt8], listenerID: String, listenerNonce: [UInt8])
        throws(AgadirError) -> Fields
    {
        guard transcript == nil, authenticatedPeer == nil else {
            throw AgadirError(.unauthenticated, "PEER_HELLO sent twice on one connection")
        }
        guard dialer != listenerID else {
            throw AgadirError(.unauthenticated, "peer authentication failed")
        }
        transcript = PeerAuthenticator.Transcript(
            dialerNonce: nonce, listenerNonce: listenerNonce, dialerID: dialer, listenerID: listenerID)
        var f = Fields()
        f.set(.nonce, bytes: listenerNonce)
        return f
    }

    /// Checks the dialer's PEER_AUTH proof (made for this node's id: a dialer that meant
    /// another node fails here); on success the connection is a peer link of the dialer
    /// and the answer carries this node's proof.
    public mutating func auth(proof: [UInt8], authenticator: PeerAuthenticator) throws(AgadirError) -> (
        peer: String, answer: Fields
    ) {
        guard let t = transcript, authenticatedPeer == nil else {
            throw AgadirError(.unauthenticated, "PEER_AUTH without a PEER_HELLO before it")
        }
        guard authenticator.verify(proof, .client, t) else {
            // The same words whatever failed: a prober learns nothing from them.
            throw AgadirError(.unauthenticated, "peer authentication failed")
        }
        authenticatedPeer = t.dialerID
        var f = Fields()
        f.set(.proof, bytes: authenticator.proof(.server, t))
        return (t.dialerID, f)
    }
}
