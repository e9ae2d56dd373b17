import AgadirCore
import Crypto

/// The cluster-secret handshake that turns a connection on the client port into a peer
/// link (docs/protocol.md, "Peer handshake"). Pure: nonces are passed in.
///
/// Keys: HKDF-SHA256 of each cluster secret, salt = the UTF-8 cluster name, info
/// `"agadir peer auth v1"` (not the gossip keys: a proof can never be replayed as a gossip
/// tag or the reverse). Proofs: HMAC-SHA256 over
/// `role | dialer nonce (32) | listener nonce (32) | string16 dialer id | string16 listener id`,
/// where `role` is the ASCII text `agadir peer v1 server` or `agadir peer v1 client`. A node
/// proves with its primary secret and accepts a proof made with any of its secrets, so
/// secrets rotate as for gossip.
public struct PeerAuthenticator: Sendable {
    public static let purpose = "agadir peer auth v1"

    public enum Role: String, Sendable {
        case server = "agadir peer v1 server"
        case client = "agadir peer v1 client"
    }

    /// The values both ends bind into their proofs.
    public struct Transcript: Sendable, Hashable {
        public var dialerNonce: [UInt8]
        public var listenerNonce: [UInt8]
        public var dialerID: String
        public var listenerID: String

        public init(dialerNonce: [UInt8], listenerNonce: [UInt8], dialerID: String, listenerID: String) {
            self.dialerNonce = dialerNonce
            self.listenerNonce = listenerNonce
            self.dialerID = dialerID
            self.listenerID = listenerID
        }
    }

    private let keys: [SymmetricKey]
    public let clusterName: String

    public init(clusterName: String, secretBytes: [[UInt8]]) throws(AgadirError) {
        // The gossip keyring validates names and secrets the same way.
        _ = try Keyring(clusterName: clusterName, secretBytes: secretBytes)
        self.clusterName = clusterName
        self.keys = secretBytes.map { secret in
            HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: secret), salt: Array(clusterName.utf8),
                info: Array(Self.purpose.utf8),
                outputByteCount: 32)
        }
    }

    public init(clusterName: String, secrets: [String]) throws(AgadirError) {
        try self.init(clusterName: clusterName, secretBytes: secrets.map { Array($0.utf8) })
    }

    static func message(_ role: Role, _ t: Transcript) -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        w.raw(Array(role.rawValue.utf8))
        w.raw(t.dialerNonce)
        w.raw(t.listenerNonce)
        w.string16(t.dialerID)
        w.string16(t.listenerID)
        return w.bytes
    }

    /// This node's proof for `role`, made with the primary secret.
    public func proof(_ role: Role, _ transcript: Transcript) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Self.message(role, transcript), using: keys[0]))
    }

    /// True when `proof` was made for `role` and `transcript` with one of this node's
    /// secrets. Compared in constant time.
    public func verify(_ proof: [UInt8], _ role: Role, _ transcript: Transcript) -> Bool {
        guard proof.count == 32 else { return false }
        let message = Self.message(role, transcript)
        var ok = false
        for key in keys {
            let mac = Array(HMAC<SHA256>.authenticationCode(for: message, using: key))
            var difference: UInt8 = 0
            for i in 0..<32 { difference |= mac[i] ^ proof[i] }
            ok = ok || difference == 0
        }
        return ok
    }
}
