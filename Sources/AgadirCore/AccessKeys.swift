/// Access keys: who may send requests, and to which buckets (docs/security.md, "Access
/// keys"). A key record travels with the bucket catalog to every node (last writer wins on
/// `version`); its secret is sealed, never stored in clear.

/// What a key may do with one bucket. The three rights are independent, as in Garage: a
/// log shipper can hold `write` alone.
public struct BucketGrant: Sendable, Hashable, Codable {
    public var bucket: String
    /// The `createdMillis` of the bucket the grant was given on: a bucket deleted and
    /// created again under the same name is another bucket, and old grants do not apply to it.
    public var bucketCreatedMillis: UInt64
    /// GET, HEAD, LIST.
    public var read: Bool
    /// PUT, DELETE.
    public var write: Bool
    /// DELETE_BUCKET (and everything `read` and `write` allow).
    public var owner: Bool

    public init(bucket: String, bucketCreatedMillis: UInt64, read: Bool, write: Bool, owner: Bool) {
        self.bucket = bucket
        self.bucketCreatedMillis = bucketCreatedMillis
        self.read = read
        self.write = write
        self.owner = owner
    }

    /// True when the grant gives nothing (it is then dropped from its key).
    public var isEmpty: Bool { !read && !write && !owner }
}

/// One access key as the cluster stores it.
public struct AccessKeyRecord: Sendable, Hashable, Codable {
    /// The public half, sent with every request (`AK` and 18 characters of `A-Z2-7`).
    public var id: String
    /// A name for people (`agadir admin key ls`), 1-64 printable characters.
    public var name: String
    /// The secret, sealed with AES-256-GCM under a key derived from the cluster secret
    /// (`sealKeyID` says which): 12-byte nonce, ciphertext, 16-byte tag.
    public var sealedSecret: [UInt8]
    public var sealKeyID: UInt32
    /// Every admin command, every bucket.
    public var admin: Bool
    /// CREATE_BUCKET; the key then owns the buckets it creates.
    public var createBuckets: Bool
    /// Sorted by bucket name, at most `AccessKeyRecord.maxGrants`.
    public var grants: [BucketGrant]
    public var createdMillis: UInt64
    /// HLC timestamp raw value and node tag of the last change (last writer wins).
    public var versionHLC: UInt64
    public var versionNode: UInt64
    public var deleted: Bool

    /// Most grants one key holds.
    public static let maxGrants = 1000
    /// Largest encoded record the store and the peers accept.
    public static let maxEncodedBytes = 256 * 1024

    public init(
        id: String, name: String, sealedSecret: [UInt8], sealKeyID: UInt32, admin: Bool, createBuckets: Bool,
        grants: [BucketGrant], createdMillis: UInt64, version: ObjectVersion, deleted: Bool
    ) {
        self.id = id
        self.name = name
        self.sealedSecret = sealedSecret
        self.sealKeyID = sealKeyID
        self.admin = admin
        self.createBuckets = createBuckets
        self.grants = grants
        self.createdMillis = createdMillis
        self.versionHLC = version.timestamp.rawValue
        self.versionNode = version.node
        self.deleted = deleted
    }

    public var version: ObjectVersion {
        get { ObjectVersion(timestamp: HLCTimestamp(rawValue: versionHLC), node: versionNode) }
        set {
            versionHLC = newValue.timestamp.rawValue
            versionNode = newValue.node
        }
    }

    /// The grant on `bucket`, if any.
    public func grant(on bucket: String) -> BucketGrant? { grants.first { $0.bucket == bucket } }

    /// Replaces (or removes, when empty) the grant on `grant.bucket`, keeping the order.
    public mutating func setGrant(_ grant: BucketGrant) throws(AgadirError) {
        grants.removeAll { $0.bucket == grant.bucket }
        if !grant.isEmpty {
            guard grants.count < Self.maxGrants else {
                throw AgadirError(
                    .invalidArgument,
                    "key \(id) already holds \(grants.count) grants, the most a key holds; remove some first")
            }
            grants.append(grant)
            grants.sort { Array($0.bucket.utf8).lexicographicallyPrecedes(Array($1.bucket.utf8)) }
        }
    }

    /// Checks what a record received from a peer or read from disk must satisfy.
    public func validate() throws(AgadirError) {
        guard Self.isValidID(id) else {
            throw AgadirError(.invalidArgument, "access key id '\(id)' is not AK followed by 18 of A-Z and 2-7")
        }
        try Self.validateName(name)
        guard grants.count <= Self.maxGrants else {
            throw AgadirError(.invalidArgument, "access key \(id) has \(grants.count) grants, over \(Self.maxGrants)")
        }
        for g in grants { try Names.validateBucket(g.bucket) }
    }

    /// `AK` and 18 characters of the base32 alphabet.
    public static func isValidID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard bytes.count == 20, bytes[0] == UInt8(ascii: "A"), bytes[1] == UInt8(ascii: "K") else { return false }
        return bytes.dropFirst(2).allSatisfy {
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || (50...55).contains($0)
        }
    }

    /// 1-64 bytes, no control characters.
    public static func validateName(_ name: String) throws(AgadirError) {
        guard (1...64).contains(name.utf8.count),
            !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw AgadirError(.invalidArgument, "key name '\(name)' must be 1-64 bytes without control characters")
        }
    }

    /// A new key id from 90 random bits.
    public static func newID<R: RandomNumberGenerator>(using rng: inout R) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)
        var out = Array("AK".utf8)
        for _ in 0..<18 { out.append(alphabet[Int(rng.next() % 32)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
