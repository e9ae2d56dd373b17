import AgadirCore
import Crypto

/// Which transport a sealed gossip message travels on. The channel is written into the
/// envelope and covered by its tag, so a captured datagram cannot be replayed as a
/// push-pull stream message, nor the reverse.
public enum GossipChannel: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// A UDP datagram (`Packet`).
    case datagram = 1
    /// A push-pull message on a TCP connection (`PushPullState`).
    case stream = 2

    public var description: String {
        switch self {
        case .datagram: "datagram"
        case .stream: "stream"
        }
    }
}

/// Why `Keyring.open` dropped a message; the shell counts drops per reason
/// (`name` is the metric label) and logs `description`.
public enum GossipRejection: Error, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Shorter than the envelope itself (`Keyring.overhead` bytes).
    case tooShort
    /// Does not start with "AGSW": not Agadir gossip.
    case badMagic
    /// An envelope version this node does not speak.
    case unsupportedVersion
    /// Sealed for the other channel (or an unknown channel byte).
    case wrongChannel
    /// The key id matches none of this node's secrets.
    case unknownKey
    /// The key id is known but the tag does not match: corrupted or forged.
    case badTag
    /// Sent further from this node's clock than the replay window allows.
    case stale
    /// A message this node has already received (same nonce).
    case replayed

    /// Stable lower-case name for metrics and logs.
    public var name: String {
        switch self {
        case .tooShort: "too_short"
        case .badMagic: "bad_magic"
        case .unsupportedVersion: "unsupported_version"
        case .wrongChannel: "wrong_channel"
        case .unknownKey: "unknown_key"
        case .badTag: "bad_tag"
        case .stale: "stale"
        case .replayed: "replayed"
        }
    }

    public var description: String {
        switch self {
        case .tooShort:
            "gossip message shorter than its \(Keyring.overhead)-byte envelope"
        case .badMagic:
            "not an Agadir gossip message (no AGSW magic): something else is sending to the peer port"
        case .unsupportedVersion:
            "gossip envelope version other than \(Keyring.version): run the same Agadir release on every node"
        case .wrongChannel:
            "gossip message sealed for the other channel (a datagram replayed on a stream, or the reverse)"
        case .unknownKey:
            "gossip message sealed with a secret this node does not hold: check that both nodes have the same "
                + "cluster name and gossip secrets (during a rotation, the new secret must be added everywhere first)"
        case .badTag:
            "gossip message failed authentication: corrupted in transit or forged"
        case .stale:
            "gossip message sent further from this node's clock than the replay window allows: "
                + "keep the nodes' clocks in time (NTP), or it is an old message replayed"
        case .replayed:
            "gossip message already received (same nonce): replayed by someone on the path"
        }
    }
}

/// The cluster's gossip secrets, and the authentication envelope around every gossip
/// message (docs/protocol.md, "Authentication").
///
/// Each secret yields a 32-byte key: HKDF-SHA256 (RFC 5869) with the secret's bytes as
/// input key material, the UTF-8 cluster name as salt and `"agadir gossip v1"` as info.
/// Its key id is the first 4 bytes of SHA-256 of the key. The first secret is the
/// primary: it seals everything sent. All of them open what is received, so secrets can
/// be rotated without a flag day.
///
/// Envelope (`seal`), version 2:
///
///     0   4  magic "AGSW" (41 47 53 57)
///     4   1  envelope version = 2
///     5   1  channel: 1 datagram, 2 stream
///     6   4  key id of the sealing key
///     10  8  sent at: u64 ms since the Unix epoch (the sender's clock)
///     18  12 nonce: random, fresh for every message
///     30  n  ciphertext: AES-256-GCM of the plaintext (a `GossipCodec` message) under
///            the key, with this nonce and bytes 0 ..< 30 as additional data
///     30+n 16 GCM tag
///
/// Encrypted and authenticated; the receiving shell refuses a message sent outside its
/// replay window or seen before (`GossipReplayGuard`, docs/protocol.md, "Authentication").
public struct Keyring: Sendable {
    public static let magic: [UInt8] = Array("AGSW".utf8)
    /// Envelope version.
    public static let version: UInt8 = 2
    /// HKDF info string: the purpose the keys are derived for.
    public static let purpose = "agadir gossip v1"
    /// Bytes before the ciphertext: magic, version, channel, key id, sent at, nonce.
    public static let headerBytes = 30
    /// Bytes of the random nonce.
    public static let nonceBytes = 12
    /// Bytes of the GCM tag.
    public static let tagBytes = 16
    /// Bytes the envelope adds to a plaintext.
    public static let overhead = 46
    /// Shortest secret accepted, bytes.
    public static let minimumSecretBytes = 16

    struct Key: Sendable {
        let id: [UInt8]
        let key: SymmetricKey
    }

    /// Primary first.
    private let keys: [Key]

    /// Keys from secrets written as text (their UTF-8 bytes are the secret; a hex string
    /// is used as typed, not decoded). The first is the primary.
    public init(clusterName: String, secrets: [String]) throws(AgadirError) {
        try self.init(clusterName: clusterName, secretBytes: secrets.map { Array($0.utf8) })
    }

    /// Keys from raw secrets. The first is the primary.
    public init(clusterName: String, secretBytes: [[UInt8]]) throws(AgadirError) {
        guard !clusterName.isEmpty else {
            throw AgadirError(
                .invalidArgument, "the cluster name is empty: give every node of the cluster the same non-empty name")
        }
        guard !secretBytes.isEmpty else {
            throw AgadirError(
                .invalidArgument,
                "no gossip secret: generate one with `openssl rand -hex 32` and give the same one to every node")
        }
        var keys: [Key] = []
        for (index, secret) in secretBytes.enumerated() {
            guard secret.count >= Self.minimumSecretBytes else {
                let which = index == 0 ? "the primary gossip secret" : "gossip secret \(index + 1)"
                throw AgadirError(
                    .invalidArgument,
                    "\(which) is \(secret.count) bytes; at least \(Self.minimumSecretBytes) are required: "
                        + "generate one with `openssl rand -hex 32`")
            }
            let key = Self.deriveKey(clusterName: clusterName, secret: secret)
            if keys.contains(where: { $0.id == key.id && Self.sameKey($0.key, key.key) }) { continue }
            keys.append(key)
        }
        self.keys = keys
    }

    /// Key id of the primary secret (the one `seal` uses), for logs.
    public var primaryKeyID: UInt32 { Self.number(keys[0].id) }

    /// Key ids of every secret, primary first, duplicates removed.
    public var keyIDs: [UInt32] { keys.map { Self.number($0.id) } }

    // MARK: - Envelope

    /// What `open` gives: the plaintext, and the envelope's time and nonce for the
    /// receiver's replay check.
    public struct Opened: Sendable, Hashable {
        public var plaintext: [UInt8]
        public var sentAtMillis: UInt64
        public var nonce: [UInt8]
    }

    /// `plaintext` encrypted in an envelope sealed with the primary key; `overhead` bytes
    /// longer. `nonce` must be `nonceBytes` random bytes never used before with this key
    /// (the shell draws them from the system's generator); `sentAtMillis` is the wall clock.
    public func seal(_ plaintext: [UInt8], channel: GossipChannel, sentAtMillis: UInt64, nonce: [UInt8]) -> [UInt8] {
        let primary = keys[0]
        var header: [UInt8] = []
        header.reserveCapacity(Self.headerBytes)
        header.append(contentsOf: Self.magic)
        header.append(Self.version)
        header.append(channel.rawValue)
        header.append(contentsOf: primary.id)
        for shift in stride(from: 56, through: 0, by: -8) {
            header.append(UInt8(truncatingIfNeeded: sentAtMillis >> shift))
        }
        var nonceBytes = Array(nonce.prefix(Self.nonceBytes))
        while nonceBytes.count < Self.nonceBytes { nonceBytes.append(0) }
        header.append(contentsOf: nonceBytes)
        // The nonce is exactly 12 bytes, so neither can fail.
        guard let gcmNonce = try? AES.GCM.Nonce(data: nonceBytes),
            let box = try? AES.GCM.seal(plaintext, using: primary.key, nonce: gcmNonce, authenticating: header)
        else { return header }
        var out = header
        out.reserveCapacity(Self.overhead + plaintext.count)
        out.append(contentsOf: box.ciphertext)
        out.append(contentsOf: box.tag)
        return out
    }

    /// The plaintext (and the envelope's time and nonce) of a message sealed for
    /// `channel` by a node sharing one of this keyring's secrets; the reason otherwise.
    public func open(_ sealed: [UInt8], channel: GossipChannel) throws(GossipRejection) -> Opened {
        guard sealed.count >= Self.overhead else { throw .tooShort }
        guard sealed[0..<4].elementsEqual(Self.magic) else { throw .badMagic }
        guard sealed[4] == Self.version else { throw .unsupportedVersion }
        guard sealed[5] == channel.rawValue else { throw .wrongChannel }
        let id = sealed[6..<10]
        let sentAt = sealed[10..<18].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let nonce = Array(sealed[18..<Self.headerBytes])
        let tagStart = sealed.count - Self.tagBytes
        guard let gcmNonce = try? AES.GCM.Nonce(data: nonce),
            let box = try? AES.GCM.SealedBox(
                nonce: gcmNonce, ciphertext: sealed[Self.headerBytes..<tagStart], tag: sealed[tagStart...])
        else { throw .badTag }
        var known = false
        // Distinct secrets sharing a 4-byte id are astronomically unlikely but harmless:
        // each candidate is tried.
        for key in keys where key.id.elementsEqual(id) {
            known = true
            if let plaintext = try? AES.GCM.open(box, using: key.key, authenticating: sealed[0..<Self.headerBytes]) {
                return Opened(plaintext: Array(plaintext), sentAtMillis: sentAt, nonce: nonce)
            }
        }
        throw known ? .badTag : .unknownKey
    }

    // MARK: - Derivation

    static func deriveKey(clusterName: String, secret: [UInt8]) -> Key {
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: secret), salt: Array(clusterName.utf8), info: Array(purpose.utf8),
            outputByteCount: 32)
        var hasher = SHA256()
        key.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        let digest = hasher.finalize()
        return Key(id: Array(digest.prefix(4)), key: key)
    }

    /// The derived key's bytes, for the documentation test.
    static func derivedKeyBytes(clusterName: String, secret: [UInt8]) -> [UInt8] {
        deriveKey(clusterName: clusterName, secret: secret).key.withUnsafeBytes { Array($0) }
    }

    private static func sameKey(_ a: SymmetricKey, _ b: SymmetricKey) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in x.elementsEqual(y) } }
    }

    private static func number(_ id: [UInt8]) -> UInt32 {
        id.reduce(0) { $0 << 8 | UInt32($1) }
    }
}

/// The replay check of opened gossip messages (pure: time is an input). A message is
/// refused when sent further than `skewMillis` from the receiver's clock (`stale`) or
/// when its nonce was seen within that window (`replayed`); nonces are remembered per
/// source, at most `capacity` in all (`ReplayWindow`).
public struct GossipReplayGuard: Sendable {
    private var window: ReplayWindow

    /// Defaults: 2 minutes each way, 65,536 nonces.
    public init(skewMillis: UInt64 = 120_000, capacity: Int = 1 << 16) {
        window = ReplayWindow(skewMillis: skewMillis, capacity: capacity)
    }

    /// `source`: where the message came from (its address; `stream` for push-pull).
    public mutating func admit(_ opened: Keyring.Opened, source: String, nowMillis: UInt64) throws(GossipRejection) {
        switch window.admit(
            accessKey: source, nonce: opened.nonce, signedAtMillis: opened.sentAtMillis, nowMillis: nowMillis)
        {
        case .success: return
        case .failure(let e): throw e.code == .requestTimeSkewed ? .stale : .replayed
        }
    }
}
