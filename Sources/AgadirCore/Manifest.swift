/// A bucket's definition: the only per-bucket fact that will be known cluster-wide.
public struct BucketInfo: Hashable, Sendable {
    public var name: String
    /// The placement policy, fixed at creation ("default" on a one-node cluster).
    public var policy: String
    /// Creation time, milliseconds since the Unix epoch.
    public var createdMillis: UInt64

    public init(name: String, policy: String, createdMillis: UInt64) {
        self.name = name
        self.policy = policy
        self.createdMillis = createdMillis
    }
}

/// One chunk of an object, in object order: its id and its uncompressed length.
/// Lengths let a ranged GET find the chunks it needs without reading any.
public struct ChunkRef: Hashable, Sendable {
    public var id: ChunkID
    public var length: UInt32

    public init(id: ChunkID, length: UInt32) {
        self.id = id
        self.length = length
    }
}

/// Where an object's bytes are.
public enum ObjectBody: Hashable, Sendable {
    /// Small objects (up to the inline threshold) live inside the manifest.
    case inline([UInt8])
    /// Larger ones are the concatenation of these chunks.
    case chunks([ChunkRef])
}

/// Everything known about one version of an object.
public struct ObjectManifest: Hashable, Sendable {
    public var bucket: String
    @Bytewise public var key: String
    /// Size in bytes of the whole object.
    public var size: UInt64
    /// SHA-256 of the whole object: the ETag.
    public var etag: ChunkID
    public var contentType: String
    /// User metadata, sorted by name in UTF-8 byte order, names unique as bytes.
    public var userMetadata: [MetadataEntry]
    public var version: ObjectVersion
    /// A delete marker: the object does not exist as of `version`.
    public var isTombstone: Bool
    public var body: ObjectBody

    public init(
        bucket: String, key: String, size: UInt64, etag: ChunkID, contentType: String,
        userMetadata: [MetadataEntry], version: ObjectVersion, isTombstone: Bool, body: ObjectBody
    ) {
        self.bucket = bucket
        self.key = key
        self.size = size
        self.etag = etag
        self.contentType = contentType
        self.userMetadata = userMetadata
        self.version = version
        self.isTombstone = isTombstone
        self.body = body
    }

    /// A delete marker for `bucket/key` at `version`.
    public static func tombstone(bucket: String, key: String, version: ObjectVersion) -> ObjectManifest {
        ObjectManifest(
            bucket: bucket, key: key, size: 0, etag: ChunkID.of([UInt8]()), contentType: "",
            userMetadata: [], version: version, isTombstone: true, body: .inline([]))
    }

    public var chunkRefs: [ChunkRef] {
        if case .chunks(let refs) = body { return refs }
        return []
    }
}

public struct MetadataEntry: Hashable, Sendable {
    /// Compared as bytes, as object keys are (docs/protocol.md, "Keys are bytes").
    @Bytewise public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// Most entries per object and most bytes of names plus values, checked on PUT.
    public static let maxEntries = 64
    public static let maxTotalBytes = 8192

    /// Sorts, rejects duplicates, empty or control-character names and oversize totals.
    public static func normalize(_ entries: [MetadataEntry]) throws(AgadirError) -> [MetadataEntry] {
        guard entries.count <= maxEntries else {
            throw AgadirError(
                .metadataTooLarge, "\(entries.count) user metadata entries; at most \(maxEntries) are allowed")
        }
        let total = entries.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
        guard total <= maxTotalBytes else {
            throw AgadirError(
                .metadataTooLarge, "user metadata takes \(total) bytes; at most \(maxTotalBytes) are allowed")
        }
        let sorted = entries.sorted { $0.name.bytewisePrecedes($1.name) }
        for (i, e) in sorted.enumerated() {
            guard !e.name.isEmpty, e.name.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7f && $0 != UInt8(ascii: "=") }) else {
                throw AgadirError(
                    .invalidArgument,
                    "user metadata name '\(e.name)' is empty or has spaces, '=' or control characters")
            }
            if i > 0, sorted[i - 1].name.bytewiseEqual(e.name) {
                throw AgadirError(.invalidArgument, "user metadata name '\(e.name)' appears twice")
            }
        }
        return sorted
    }
}

// MARK: - Binary form

/// The versioned binary encoding of a manifest, used on disk and between nodes.
/// Layout (big-endian), documented in docs/storage.md:
///
///     u8 format(=1) | string16 bucket | string16 key | u64 size | 32 etag | string16 contentType
///     | u16 nMeta { string16 name | string16 value } | u64 hlc | u64 node | u8 flags(bit0 tombstone)
///     | u8 bodyKind (0 inline, 1 chunks)
///     | inline: bytes32 data   | chunks: u32 n { 32 id | u32 length }
public enum ManifestCodec {
    public static let formatVersion: UInt8 = 1
    /// No manifest may list more chunks than this (16 TiB at 4 MiB maximal chunks).
    public static let maxChunks = 4 * 1024 * 1024
    /// No inline body may be larger than this, whatever the configured threshold.
    public static let maxInlineBytes = 1 << 20

    public static func encode(_ m: ObjectManifest) -> [UInt8] {
        var w = ByteWriter(capacity: 128 + m.chunkRefs.count * 36)
        w.u8(formatVersion)
        w.string16(m.bucket)
        w.string16(m.key)
        w.u64(m.size)
        w.chunkID(m.etag)
        w.string16(m.contentType)
        w.u16(UInt16(clamping: m.userMetadata.count))
        for e in m.userMetadata {
            w.string16(e.name)
            w.string16(e.value)
        }
        w.u64(m.version.timestamp.rawValue)
        w.u64(m.version.node)
        w.u8(m.isTombstone ? 1 : 0)
        switch m.body {
        case .inline(let data):
            w.u8(0)
            w.bytes32(data)
        case .chunks(let refs):
            w.u8(1)
            w.u32(UInt32(clamping: refs.count))
            for r in refs {
                w.chunkID(r.id)
                w.u32(r.length)
            }
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(AgadirError) -> ObjectManifest {
        var r = ByteReader(bytes, errorCode: .corruptData, context: "manifest")
        let format = try r.u8("format")
        guard format == formatVersion else {
            throw AgadirError(
                .corruptData, "manifest format \(format) is not known to this version (expects \(formatVersion))")
        }
        let bucket = try r.string16("bucket")
        let key = try r.string16("key")
        let size = try r.u64("size")
        let etag = try r.chunkID("etag")
        let contentType = try r.string16("content type")
        let nMeta = Int(try r.u16("metadata count"))
        var meta: [MetadataEntry] = []
        meta.reserveCapacity(min(nMeta, MetadataEntry.maxEntries))
        for _ in 0..<nMeta {
            let name = try r.string16("metadata name")
            let value = try r.string16("metadata value")
            meta.append(MetadataEntry(name: name, value: value))
        }
        let hlc = try r.u64("version")
        let node = try r.u64("version node")
        let flags = try r.u8("flags")
        let kind = try r.u8("body kind")
        let body: ObjectBody
        switch kind {
        case 0:
            body = .inline(try r.bytes32("inline body", max: maxInlineBytes))
        case 1:
            let n = Int(try r.u32("chunk count"))
            guard n <= maxChunks, n * 36 <= r.remaining else {
                throw AgadirError(.corruptData, "manifest claims \(n) chunks but holds \(r.remaining) bytes")
            }
            var refs: [ChunkRef] = []
            refs.reserveCapacity(n)
            for _ in 0..<n {
                let id = try r.chunkID()
                refs.append(ChunkRef(id: id, length: try r.u32("chunk length")))
            }
            body = .chunks(refs)
        default:
            throw AgadirError(.corruptData, "manifest body kind \(kind) is unknown")
        }
        guard r.isAtEnd else { throw AgadirError(.corruptData, "manifest has \(r.remaining) trailing bytes") }
        return ObjectManifest(
            bucket: bucket, key: key, size: size, etag: etag, contentType: contentType, userMetadata: meta,
            version: ObjectVersion(timestamp: HLCTimestamp(rawValue: hlc), node: node),
            isTombstone: flags & 1 != 0, body: body)
    }
}
