import AgadirCore

// Access keys (docs/operations.md, "Access keys"): the inputs and answers of `key.*`.
extension Admin {
    public static let keyCreate = AdminCommand<KeySpec, KeyCreated>("key.create")
    public static let keyList = AdminCommand<Empty, [KeyView]>("key.list")
    public static let keyRemove = AdminCommand<KeyRef, KeyView>("key.remove")
    public static let keyGrant = AdminCommand<KeyGrant, KeyView>("key.grant")

    public struct KeySpec: Codable, Sendable {
        public var name: String
        public var admin: Bool?
        public var createBuckets: Bool?

        public init(name: String, admin: Bool? = nil, createBuckets: Bool? = nil) {
            self.name = name
            self.admin = admin
            self.createBuckets = createBuckets
        }
    }

    /// The only answer that carries a secret: shown once, never stored in clear.
    public struct KeyCreated: Codable, Sendable {
        public var accessKey: String
        public var secretKey: String
        public var key: KeyView

        public init(accessKey: String, secretKey: String, key: KeyView) {
            self.accessKey = accessKey
            self.secretKey = secretKey
            self.key = key
        }
    }

    public struct KeyRef: Codable, Sendable {
        public var accessKey: String
        public init(accessKey: String) { self.accessKey = accessKey }
    }

    /// Sets the rights of a key on a bucket to exactly these (all false removes the grant).
    public struct KeyGrant: Codable, Sendable {
        public var accessKey: String
        public var bucket: String
        public var read: Bool
        public var write: Bool
        public var owner: Bool

        public init(accessKey: String, bucket: String, read: Bool, write: Bool, owner: Bool) {
            self.accessKey = accessKey
            self.bucket = bucket
            self.read = read
            self.write = write
            self.owner = owner
        }
    }

    public struct KeyView: Codable, Sendable {
        public var accessKey: String
        public var name: String
        /// The root key, derived from the cluster secret (not a stored record).
        public var root: Bool
        public var admin: Bool
        public var createBuckets: Bool
        public var deleted: Bool
        public var createdMillis: UInt64
        public var grants: [GrantView]

        public init(
            accessKey: String, name: String, root: Bool, admin: Bool, createBuckets: Bool, deleted: Bool,
            createdMillis: UInt64, grants: [GrantView]
        ) {
            self.accessKey = accessKey
            self.name = name
            self.root = root
            self.admin = admin
            self.createBuckets = createBuckets
            self.deleted = deleted
            self.createdMillis = createdMillis
            self.grants = grants
        }
    }

    public struct GrantView: Codable, Sendable {
        public var bucket: String
        public var read: Bool
        public var write: Bool
        public var owner: Bool
        /// False when the bucket was deleted (or deleted and created again) since the grant:
        /// the grant then gives nothing.
        public var current: Bool

        public init(bucket: String, read: Bool, write: Bool, owner: Bool, current: Bool) {
            self.bucket = bucket
            self.read = read
            self.write = write
            self.owner = owner
            self.current = current
        }
    }
}
