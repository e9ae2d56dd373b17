import AgadirCore
import AgadirWire

/// What `agadir --json` prints for the commands that are not admin commands (`mb`, `rb`,
/// `put`, `get`, `head`, `rm`, `ls`, `ping`); `stat` prints `StoreStats`, `admin members`
/// `[MemberInfo]`, and every other `admin` command its answer of the admin schema
/// (AgadirWire's `Admin`). The CLI encodes these types and the tests decode its output into
/// them, so the keys are a contract (docs/operations.md, "JSON outputs"): a renamed field
/// fails a test.
public enum CLIOutput {
    /// `agadir mb BUCKET --json`.
    public struct BucketCreated: Codable, Sendable, Hashable {
        public var bucket: String
        /// Always true (a failure prints nothing on stdout and exits non-zero).
        public var created: Bool

        public init(bucket: String, created: Bool = true) {
            self.bucket = bucket
            self.created = created
        }
    }

    /// `agadir rb BUCKET --json`.
    public struct BucketDeleted: Codable, Sendable, Hashable {
        public var bucket: String
        /// Always true.
        public var deleted: Bool

        public init(bucket: String, deleted: Bool = true) {
            self.bucket = bucket
            self.deleted = deleted
        }
    }

    /// `agadir put FILE BUCKET/KEY --json`.
    public struct Uploaded: Codable, Sendable, Hashable {
        public var bucket: String
        public var key: String
        /// Bytes stored.
        public var size: UInt64
        /// The object's SHA-256, lowercase hex ("" when the node did not return it).
        public var etag: String
        /// The version the node gave the object.
        public var version: String

        public init(bucket: String, key: String, size: UInt64, etag: String, version: String) {
            self.bucket = bucket
            self.key = key
            self.size = size
            self.etag = etag
            self.version = version
        }

        public init(bucket: String, key: String, _ result: WriteResult) {
            self.init(
                bucket: bucket, key: key, size: result.size, etag: result.etag?.hex ?? "",
                version: result.version.description)
        }
    }

    /// `agadir head BUCKET/KEY --json`, and `agadir get BUCKET/KEY FILE --json` (not when
    /// the object goes to standard output).
    public struct ObjectView: Codable, Sendable, Hashable {
        public var bucket: String
        public var key: String
        /// The whole object's size in bytes (also for a ranged `get`).
        public var size: UInt64
        /// The object's SHA-256, lowercase hex.
        public var etag: String
        public var version: String
        public var contentType: String
        /// The version's wall-clock time, ms since the epoch.
        public var lastModifiedMillis: UInt64
        /// User metadata, name to value (the first value of a name given twice).
        public var metadata: [String: String]

        public init(
            bucket: String, key: String, size: UInt64, etag: String, version: String, contentType: String,
            lastModifiedMillis: UInt64, metadata: [String: String]
        ) {
            self.bucket = bucket
            self.key = key
            self.size = size
            self.etag = etag
            self.version = version
            self.contentType = contentType
            self.lastModifiedMillis = lastModifiedMillis
            self.metadata = metadata
        }

        public init(_ info: ObjectInfo) {
            self.init(
                bucket: info.bucket, key: info.key, size: info.size, etag: info.etag.hex,
                version: info.version.description, contentType: info.contentType,
                lastModifiedMillis: info.version.timestamp.physicalMillis,
                metadata: Dictionary(info.metadata.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a }))
        }
    }

    /// `agadir rm BUCKET/KEY --json`.
    public struct ObjectDeleted: Codable, Sendable, Hashable {
        public var bucket: String
        public var key: String
        /// Always true.
        public var deleted: Bool
        /// The version of the delete marker.
        public var version: String

        public init(bucket: String, key: String, deleted: Bool = true, version: String) {
            self.bucket = bucket
            self.key = key
            self.deleted = deleted
            self.version = version
        }
    }

    /// One element of `agadir ls --json` (no bucket: the array of buckets).
    public struct Bucket: Codable, Sendable, Hashable {
        public var name: String
        /// The placement policy the bucket is bound to.
        public var policy: String
        /// When the bucket was created, ms since the epoch.
        public var createdMillis: UInt64

        public init(name: String, policy: String, createdMillis: UInt64) {
            self.name = name
            self.policy = policy
            self.createdMillis = createdMillis
        }

        public init(_ info: BucketInfo) {
            self.init(name: info.name, policy: info.policy, createdMillis: info.createdMillis)
        }
    }

    /// `agadir ls BUCKET[/PREFIX] --json`.
    public struct Listing: Codable, Sendable, Hashable {
        public var bucket: String
        /// The prefix listed ("" for the whole bucket).
        public var prefix: String
        /// The "folders" rolled up at the next `/` (empty with `--recursive`).
        public var commonPrefixes: [String]
        public var objects: [ListedObject]

        public init(bucket: String, prefix: String, commonPrefixes: [String], objects: [ListedObject]) {
            self.bucket = bucket
            self.prefix = prefix
            self.commonPrefixes = commonPrefixes
            self.objects = objects
        }
    }

    /// One object of `Listing`.
    public struct ListedObject: Codable, Sendable, Hashable {
        public var key: String
        public var size: UInt64
        /// The object's SHA-256, lowercase hex.
        public var etag: String
        public var version: String
        /// The version's wall-clock time, ms since the epoch.
        public var lastModifiedMillis: UInt64

        public init(key: String, size: UInt64, etag: String, version: String, lastModifiedMillis: UInt64) {
            self.key = key
            self.size = size
            self.etag = etag
            self.version = version
            self.lastModifiedMillis = lastModifiedMillis
        }

        public init(_ entry: ListEntry) {
            self.init(
                key: entry.key, size: entry.size, etag: entry.etag.hex, version: entry.version.description,
                lastModifiedMillis: entry.version.timestamp.physicalMillis)
        }
    }

    /// `agadir ping --json`.
    public struct Pong: Codable, Sendable, Hashable {
        /// The node id of the node that answered.
        public var node: String
        /// Its server version.
        public var version: String
        /// Round-trip time of the PING, milliseconds.
        public var rttMillis: Double

        public init(node: String, version: String, rttMillis: Double) {
            self.node = node
            self.version = version
            self.rttMillis = rttMillis
        }
    }
}
