// Types shared by the store that produces them, the wire that carries them and the
// clients that read them.

/// What a node stores, as counted by `NodeStore.stats()`.
public struct StoreStats: Sendable, Hashable, Codable {
    /// Buckets defined on this node.
    public var buckets: Int
    /// Live (non-tombstone) manifests.
    public var objects: Int
    /// Sum of the sizes of live objects, in bytes.
    public var logicalBytes: UInt64
    /// Bytes held inline in live manifests.
    public var inlineBytes: UInt64
    /// Unique chunks in the index (including unreferenced ones awaiting GC).
    public var chunks: Int
    /// Sum of the raw (uncompressed) lengths of the unique chunks.
    public var uniqueRawBytes: UInt64
    /// Sum over chunks of raw length times reference count: the raw bytes manifests point at.
    public var referencedRawBytes: UInt64
    /// Sum of the stored (compressed) lengths of the unique chunks, record headers excluded.
    public var storedBytes: UInt64
    /// Number of segment files in `DIR/chunks`.
    public var segmentFiles: Int
    /// Size on disk of the segment files, headers and dead bytes included.
    public var segmentBytes: UInt64
    /// `referencedRawBytes / uniqueRawBytes`; 1 when both are 0.
    public var dedupRatio: Double
    /// `uniqueRawBytes / storedBytes`; 1 when both are 0.
    public var compressionRatio: Double
    /// Chunks taken out of service because their bytes are bad (not counted in `chunks`). Decoded as 0 when
    /// absent (a node older than schema 4).
    public var quarantinedChunks: Int

    public init(
        buckets: Int = 0, objects: Int = 0, logicalBytes: UInt64 = 0, inlineBytes: UInt64 = 0, chunks: Int = 0,
        uniqueRawBytes: UInt64 = 0, referencedRawBytes: UInt64 = 0, storedBytes: UInt64 = 0, segmentFiles: Int = 0,
        segmentBytes: UInt64 = 0, quarantinedChunks: Int = 0
    ) {
        self.quarantinedChunks = quarantinedChunks
        self.buckets = buckets
        self.objects = objects
        self.logicalBytes = logicalBytes
        self.inlineBytes = inlineBytes
        self.chunks = chunks
        self.uniqueRawBytes = uniqueRawBytes
        self.referencedRawBytes = referencedRawBytes
        self.storedBytes = storedBytes
        self.segmentFiles = segmentFiles
        self.segmentBytes = segmentBytes
        self.dedupRatio = Self.ratio(referencedRawBytes, uniqueRawBytes)
        self.compressionRatio = Self.ratio(uniqueRawBytes, storedBytes)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        buckets = try c.decode(Int.self, forKey: .buckets)
        objects = try c.decode(Int.self, forKey: .objects)
        logicalBytes = try c.decode(UInt64.self, forKey: .logicalBytes)
        inlineBytes = try c.decode(UInt64.self, forKey: .inlineBytes)
        chunks = try c.decode(Int.self, forKey: .chunks)
        uniqueRawBytes = try c.decode(UInt64.self, forKey: .uniqueRawBytes)
        referencedRawBytes = try c.decode(UInt64.self, forKey: .referencedRawBytes)
        storedBytes = try c.decode(UInt64.self, forKey: .storedBytes)
        segmentFiles = try c.decode(Int.self, forKey: .segmentFiles)
        segmentBytes = try c.decode(UInt64.self, forKey: .segmentBytes)
        dedupRatio = try c.decode(Double.self, forKey: .dedupRatio)
        compressionRatio = try c.decode(Double.self, forKey: .compressionRatio)
        quarantinedChunks = try c.decodeIfPresent(Int.self, forKey: .quarantinedChunks) ?? 0
    }

    public static func ratio(_ a: UInt64, _ b: UInt64) -> Double {
        guard b != 0 else { return 1 }  // 0/0, and never infinity (which JSON cannot encode)
        return Double(a) / Double(b)
    }
}

/// One object in a listing.
public struct ListEntry: Sendable, Hashable {
    @Bytewise public var key: String
    public var size: UInt64
    /// The whole-object SHA-256.
    public var etag: ChunkID
    public var version: ObjectVersion
    public var contentType: String

    public init(key: String, size: UInt64, etag: ChunkID, version: ObjectVersion, contentType: String) {
        self.key = key
        self.size = size
        self.etag = etag
        self.version = version
        self.contentType = contentType
    }
}

/// One page of `NodeStore.list`, with S3 ListObjectsV2 semantics.
public struct ListPage: Sendable, Hashable {
    /// Objects, sorted by the bytes of their keys.
    public var entries: [ListEntry]
    /// Rolled-up prefixes (each ends with the delimiter), sorted by bytes.
    public var commonPrefixes: [String]
    /// True when more keys or common prefixes follow; ask again with `nextStartAfter`.
    public var isTruncated: Bool
    /// The last key or common prefix of this page when `isTruncated`, else `nil`.
    public var nextStartAfter: String?

    public init(entries: [ListEntry], commonPrefixes: [String], isTruncated: Bool, nextStartAfter: String?) {
        self.entries = entries
        self.commonPrefixes = commonPrefixes
        self.isTruncated = isTruncated
        self.nextStartAfter = nextStartAfter
    }
}
