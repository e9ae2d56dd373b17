import AgadirCore
import AgadirStore
import AgadirWire
import Crypto
import Foundation
import Synchronization

/// Who sent a request: the key it was signed with and what that key may do.
public struct Principal: Sendable, Hashable {
    public var accessKey: String
    public var name: String
    /// The key derived from the cluster secret (`AccessControl.rootCredentials`).
    public var isRoot: Bool
    public var admin: Bool
    public var createBuckets: Bool
    public var grants: [String: BucketGrant]

    public init(
        accessKey: String, name: String, isRoot: Bool, admin: Bool, createBuckets: Bool,
        grants: [String: BucketGrant]
    ) {
        self.accessKey = accessKey
        self.name = name
        self.isRoot = isRoot
        self.admin = admin
        self.createBuckets = createBuckets
        self.grants = grants
    }

    init(record: AccessKeyRecord) {
        self.init(
            accessKey: record.id, name: record.name, isRoot: false, admin: record.admin,
            createBuckets: record.createBuckets,
            grants: Dictionary(record.grants.map { ($0.bucket, $0) }, uniquingKeysWith: { a, _ in a }))
    }
}

/// Who sent a request and from where: what authorization and the admin audit log use.
public struct Caller: Sendable, Hashable {
    /// Nil only for the requests anonymous callers may send (PING).
    public var principal: Principal?
    /// `HOST:PORT` of the client's socket.
    public var address: String

    public init(principal: Principal?, address: String) {
        self.principal = principal
        self.address = address
    }

    /// For log lines: the key id, or `anonymous`.
    public var who: String { principal.map { "\($0.accessKey) (\($0.name))" } ?? "anonymous" }
}

/// Authenticates client requests (docs/protocol.md, "Signed requests") and seals the
/// secrets of stored access keys.
///
/// Keys: the root key, derived from each cluster secret (so every node of a cluster knows
/// it without storing it, and a rotation of the cluster secret rotates it), and the keys
/// created with `agadir admin key create`, stored sealed in the catalog of every node.
public final class AccessControl: Sendable {
    let store: NodeStore
    let clusterName: String
    /// One root key per cluster secret, the primary's first.
    public let roots: [Credentials]
    /// AES-256-GCM keys that seal stored secrets, by key id; `sealKeys[0]` seals new ones.
    let sealKeys: [(id: UInt32, key: SymmetricKey)]
    let replay: Mutex<ReplayWindow>
    let now: @Sendable () -> UInt64
    private let cache = Mutex<(generation: UInt64, keys: [String: (secret: String, principal: Principal)])?>(nil)

    /// `secrets` are the cluster secrets, primary first; `now` is the wall clock in ms.
    public init(
        store: NodeStore, clusterName: String, secrets: [String], replay: ReplayWindow = ReplayWindow(),
        now: @escaping @Sendable () -> UInt64 = { WallTime.millis() }
    ) throws(AgadirError) {
        guard !secrets.isEmpty else { throw AgadirError(.invalidArgument, "access control needs a cluster secret") }
        self.store = store
        self.clusterName = clusterName
        self.roots = secrets.map { Credentials.root(clusterName: clusterName, secret: $0) }
        self.sealKeys = secrets.map { secret in
            let key = HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: Array(secret.utf8)), salt: Array(clusterName.utf8),
                info: Array("agadir access key seal v1".utf8), outputByteCount: 32)
            let digest = SHA256.hash(data: key.withUnsafeBytes { Array($0) })
            let id = digest.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            return (id, key)
        }
        self.replay = Mutex(replay)
        self.now = now
    }

    // MARK: Authentication

    /// What authentication found: who signed (nil for an unsigned PING) and, for a PUT that
    /// asked for it (BODY_SIGNING), the chain its DATA frames' signatures must follow.
    public struct Authenticated: Sendable {
        public var principal: Principal?
        public var frameSignatures: FrameSignatures?
    }

    /// The caller of a request: its key, checked against the signature and the replay
    /// window. PING alone may come unsigned (nil principal).
    public func authenticate(opcode: UInt16, fields: Fields) async -> Result<Authenticated, AgadirError> {
        let claim: RequestSigning.Claim
        do {
            guard let c = try RequestSigning.claim(fields) else {
                if opcode == Opcode.ping.rawValue { return .success(Authenticated(principal: nil)) }
                return .failure(
                    AgadirError(
                        .notAuthenticated,
                        "the request is not signed and anonymous access is off: sign it with an access key "
                            + "(the CLI reads AGADIR_CREDENTIALS or AGADIR_ACCESS_KEY/AGADIR_SECRET_KEY; "
                            + "a node writes its root key to DATA/root.credentials)"))
            }
            claim = c
        } catch {
            return .failure(error)
        }
        let resolved: (secret: String, principal: Principal)?
        if let root = roots.first(where: { $0.accessKey == claim.accessKey }) {
            resolved = (
                root.secretKey,
                Principal(
                    accessKey: root.accessKey, name: "root", isRoot: true, admin: true, createBuckets: true, grants: [:]
                )
            )
        } else {
            do {
                resolved = try await storedKeys()[claim.accessKey]
            } catch {
                return .failure(error)
            }
        }
        guard let resolved else {
            return .failure(
                AgadirError(
                    .notAuthenticated,
                    "access key \(claim.accessKey) is unknown to this node (never created, or removed)"))
        }
        guard RequestSigning.verify(claim, opcode: opcode, fields: fields, secret: resolved.secret) else {
            return .failure(
                AgadirError(
                    .notAuthenticated,
                    "the signature of a request by \(claim.accessKey) does not match: wrong secret key, or the "
                        + "request was altered on its way"))
        }
        let now = self.now()
        let admitted = replay.withLock {
            $0.admit(
                accessKey: claim.accessKey, nonce: claim.nonce, signedAtMillis: claim.signedAtMillis, nowMillis: now)
        }
        return admitted.flatMap { () -> Result<Authenticated, AgadirError> in
            guard let mode = fields.first(.bodySigning) else {
                return .success(Authenticated(principal: resolved.principal))
            }
            guard mode == [1], opcode == Opcode.put.rawValue else {
                return .failure(
                    AgadirError(
                        .invalidArgument,
                        "BODY_SIGNING must be the byte 1 and only a PUT may carry it (docs/protocol.md, \"Signed bodies\")"
                    ))
            }
            return .success(
                Authenticated(
                    principal: resolved.principal,
                    frameSignatures: FrameSignatures(secret: resolved.secret, requestSignature: claim.signature)))
        }
    }

    /// The stored keys that are not deleted, with their secrets, re-read whenever the store's
    /// keys changed (a key removed stops working on the next request).
    func storedKeys() async throws(AgadirError) -> [String: (secret: String, principal: Principal)] {
        let generation = store.accessKeyGeneration
        if let cached = cache.withLock({ $0 }), cached.generation == generation { return cached.keys }
        var keys: [String: (secret: String, principal: Principal)] = [:]
        for record in try await store.accessKeys() where !record.deleted {
            guard let secret = try? unseal(record) else { continue }
            keys[record.id] = (secret, Principal(record: record))
        }
        cache.withLock { $0 = (generation, keys) }
        return keys
    }

    // MARK: Sealing

    /// Seals `secret` under the primary seal key.
    func seal(_ secret: String) throws(AgadirError) -> (sealed: [UInt8], keyID: UInt32) {
        let primary = sealKeys[0]
        do {
            let box = try AES.GCM.seal(Array(secret.utf8), using: primary.key)
            guard let combined = box.combined else {
                throw AgadirError(.internalError, "AES-GCM gave no combined form")
            }
            return (Array(combined), primary.id)
        } catch let error as AgadirError {
            throw error
        } catch {
            throw AgadirError(.internalError, "sealing an access key secret failed: \(error)")
        }
    }

    /// The secret of `record`; `.notAuthenticated` when no secret of this node opens it.
    func unseal(_ record: AccessKeyRecord) throws(AgadirError) -> String {
        guard let key = sealKeys.first(where: { $0.id == record.sealKeyID })?.key else {
            throw AgadirError(
                .notAuthenticated,
                "access key \(record.id) is sealed with a cluster secret this node does not hold "
                    + "(seal key \(record.sealKeyID)); add that secret to clusterSecretsAccepted or create a new key")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: record.sealedSecret)
            return String(decoding: try AES.GCM.open(box, using: key), as: UTF8.self)
        } catch {
            throw AgadirError(.corruptData, "the sealed secret of access key \(record.id) does not open: \(error)")
        }
    }

    /// A new key record and its credentials (the only time the secret is seen in clear).
    public func newKey(
        name: String, admin: Bool, createBuckets: Bool, version: ObjectVersion, nowMillis: UInt64
    ) throws(AgadirError) -> (AccessKeyRecord, Credentials) {
        try AccessKeyRecord.validateName(name)
        var rng = SystemRandomNumberGenerator()
        let id = AccessKeyRecord.newID(using: &rng)
        let secret = Hex.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let (sealed, keyID) = try seal(secret)
        let record = AccessKeyRecord(
            id: id, name: name, sealedSecret: sealed, sealKeyID: keyID, admin: admin, createBuckets: createBuckets,
            grants: [], createdMillis: nowMillis, version: version, deleted: false)
        return (record, Credentials(accessKey: id, secretKey: secret))
    }

    /// Writes `DIR/root.credentials` (mode 0600) when it is missing or holds another key, and
    /// returns its path.
    /// With `caFile` (a node with certificates), the file names the CA (`ca_file`), so a
    /// client given only this file speaks TLS to the node.
    @discardableResult
    public func writeRootCredentials(dataDir: String, caFile: String? = nil) throws(AgadirError) -> String {
        let path = (dataDir as NSString).appendingPathComponent("root.credentials")
        var root = roots[0]
        if let caFile {
            root.caFile =
                caFile.hasPrefix("/")
                ? caFile : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(caFile)
        }
        let text = root.fileText(
            comment: "Agadir root key of cluster '\(clusterName)', derived from its cluster secret: every admin "
                + "command, every bucket. Keep it like the secret; create narrower keys with `agadir admin key create`."
        )
        if let data = FileManager.default.contents(atPath: path), String(decoding: data, as: UTF8.self) == text {
            return path
        }
        try AtomicFile.save(Array(text.utf8), to: path, mode: 0o600)
        return path
    }
}
