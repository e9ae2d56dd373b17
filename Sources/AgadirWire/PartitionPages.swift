import AgadirCore

// Pages of a partition, as a node that receives a partition pulls them from one that holds
// it (docs/rebalance.md, "Moving partitions"; docs/protocol.md, PARTITION_MANIFESTS and
// PARTITION_CHUNKS).

/// Where a page of a partition's manifests ends: the last (key hash, bucket, key) the
/// source looked at, included or not (a manifest of another policy is skipped).
public struct ManifestCursor: Sendable, Hashable, Codable {
    public var keyHash: UInt32
    public var bucket: String
    @Bytewise public var key: String

    public init(keyHash: UInt32, bucket: String, key: String) {
        self.keyHash = keyHash
        self.bucket = bucket
        self.key = key
    }
}

/// One page of a partition's manifests of one policy, tombstones included.
public struct ManifestPage: Sendable, Hashable {
    public var manifests: [ObjectManifest]
    /// Where the next page starts; nil when the partition is done.
    public var next: ManifestCursor?

    public init(manifests: [ObjectManifest], next: ManifestCursor?) {
        self.manifests = manifests
        self.next = next
    }
}

/// A chunk of a chunk partition with the references of one policy's buckets it serves.
public struct PartitionChunkEntry: Sendable, Hashable {
    public var id: ChunkID
    public var storedBytes: UInt64
    /// Non-empty, at most `PeerLimits.maxReferencesPerChunk`.
    public var references: [ChunkReference]

    public init(id: ChunkID, storedBytes: UInt64, references: [ChunkReference]) {
        self.id = id
        self.storedBytes = storedBytes
        self.references = references
    }
}

/// One page of a chunk partition's chunks of one policy.
public struct ChunkPage: Sendable, Hashable {
    public var chunks: [PartitionChunkEntry]
    /// The last id the source looked at; nil when the partition is done.
    public var next: ChunkID?

    public init(chunks: [PartitionChunkEntry], next: ChunkID?) {
        self.chunks = chunks
        self.next = next
    }
}

/// PARTITION_MANIFESTS answer: `u8 more | [u32 key hash | string16 bucket | string16 key]
/// when more = 1 | u32 count | count × (u32 length | manifest (ManifestCodec))`.
public enum ManifestPageCodec {
    public static func encode(_ page: ManifestPage) -> [UInt8] {
        var w = ByteWriter()
        if let next = page.next {
            w.u8(1)
            w.u32(next.keyHash)
            w.string16(next.bucket)
            w.string16(next.key)
        } else {
            w.u8(0)
        }
        w.u32(UInt32(clamping: page.manifests.count))
        for m in page.manifests { w.bytes32(ManifestCodec.encode(m)) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(AgadirError) -> ManifestPage {
        var r = ByteReader(bytes, errorCode: .corruptData, context: "PARTITION_MANIFESTS answer")
        let more = try r.u8("more")
        guard more <= 1 else { throw AgadirError(.corruptData, "PARTITION_MANIFESTS answer: more flag \(more)") }
        var next: ManifestCursor? = nil
        if more == 1 {
            next = ManifestCursor(
                keyHash: try r.u32("cursor key hash"), bucket: try r.string16("cursor bucket"),
                key: try r.string16("cursor key"))
        }
        let n = Int(try r.u32("count"))
        guard n <= PeerLimits.maxPartitionPageEntries else {
            throw AgadirError(
                .corruptData,
                "PARTITION_MANIFESTS answer claims \(n) manifests, over \(PeerLimits.maxPartitionPageEntries)")
        }
        var manifests: [ObjectManifest] = []
        manifests.reserveCapacity(n)
        for i in 0..<n {
            let encoded = try r.bytes32("manifest \(i)", max: r.remaining)
            do throws(AgadirError) {
                manifests.append(try ManifestCodec.decode(encoded))
            } catch {
                throw AgadirError(
                    .corruptData, "PARTITION_MANIFESTS answer: manifest \(i) does not decode: \(error.message)")
            }
        }
        guard r.isAtEnd else {
            throw AgadirError(.corruptData, "PARTITION_MANIFESTS answer has \(r.remaining) trailing bytes")
        }
        return ManifestPage(manifests: manifests, next: next)
    }
}

/// PARTITION_CHUNKS answer: `u8 more | [32 cursor id] when more = 1 | u32 count | count ×
/// (32 id | u64 stored bytes | u16 reference count (1...64) | that many × (string16 bucket
/// | string16 key | u64 hlc | u64 node))`.
public enum ChunkPageCodec {
    public static func encode(_ page: ChunkPage) -> [UInt8] {
        var w = ByteWriter()
        if let next = page.next {
            w.u8(1)
            w.chunkID(next)
        } else {
            w.u8(0)
        }
        w.u32(UInt32(clamping: page.chunks.count))
        for c in page.chunks {
            w.chunkID(c.id)
            w.u64(c.storedBytes)
            let refs = c.references.prefix(PeerLimits.maxReferencesPerChunk)
            w.u16(UInt16(refs.count))
            for ref in refs {
                w.string16(ref.bucket)
                w.string16(ref.key)
                w.u64(ref.version.timestamp.rawValue)
                w.u64(ref.version.node)
            }
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(AgadirError) -> ChunkPage {
        var r = ByteReader(bytes, errorCode: .corruptData, context: "PARTITION_CHUNKS answer")
        let more = try r.u8("more")
        guard more <= 1 else { throw AgadirError(.corruptData, "PARTITION_CHUNKS answer: more flag \(more)") }
        let next = more == 1 ? try r.chunkID("cursor") : nil
        let n = Int(try r.u32("count"))
        guard n <= PeerLimits.maxPartitionPageEntries else {
            throw AgadirError(
                .corruptData, "PARTITION_CHUNKS answer claims \(n) chunks, over \(PeerLimits.maxPartitionPageEntries)")
        }
        var chunks: [PartitionChunkEntry] = []
        chunks.reserveCapacity(n)
        for _ in 0..<n {
            let id = try r.chunkID("chunk id")
            let stored = try r.u64("stored bytes")
            let refCount = Int(try r.u16("reference count"))
            guard (1...PeerLimits.maxReferencesPerChunk).contains(refCount) else {
                throw AgadirError(.corruptData, "PARTITION_CHUNKS answer: chunk \(id.hex) has \(refCount) references")
            }
            var refs: [ChunkReference] = []
            for _ in 0..<refCount {
                let bucket = try r.string16("reference bucket")
                let key = try r.string16("reference key")
                let version = ObjectVersion(
                    timestamp: HLCTimestamp(rawValue: try r.u64("hlc")), node: try r.u64("node"))
                refs.append(ChunkReference(bucket: bucket, key: key, version: version))
            }
            chunks.append(PartitionChunkEntry(id: id, storedBytes: stored, references: refs))
        }
        guard r.isAtEnd else {
            throw AgadirError(.corruptData, "PARTITION_CHUNKS answer has \(r.remaining) trailing bytes")
        }
        return ChunkPage(chunks: chunks, next: next)
    }
}

/// What anti-entropy compares between the replicas of a partition (docs/rebalance.md,
/// "Anti-entropy"): a digest of the policy's manifests in it, leaving out delete markers
/// older than the purge horizon, and a digest of its chunk ids.
public struct PartitionSummary: Sendable, Hashable {
    /// `PartitionDigest` root of the manifests, delete markers older than the horizon left out.
    public var manifests: ChunkID
    public var manifestCount: Int
    /// SHA-256 of the chunk ids in id order.
    public var chunks: ChunkID
    public var chunkCount: Int

    public init(manifests: ChunkID, manifestCount: Int, chunks: ChunkID, chunkCount: Int) {
        self.manifests = manifests
        self.manifestCount = manifestCount
        self.chunks = chunks
        self.chunkCount = chunkCount
    }
}

/// PARTITION_DIGEST answer: `32 manifests digest | u32 manifest count | 32 chunks digest | u32 chunk count`.
public enum PartitionSummaryCodec {
    public static func encode(_ s: PartitionSummary) -> [UInt8] {
        var w = ByteWriter(capacity: 72)
        w.chunkID(s.manifests)
        w.u32(UInt32(clamping: s.manifestCount))
        w.chunkID(s.chunks)
        w.u32(UInt32(clamping: s.chunkCount))
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(AgadirError) -> PartitionSummary {
        var r = ByteReader(bytes, errorCode: .corruptData, context: "PARTITION_DIGEST answer")
        let s = PartitionSummary(
            manifests: try r.chunkID("manifests digest"), manifestCount: Int(try r.u32("manifest count")),
            chunks: try r.chunkID("chunks digest"), chunkCount: Int(try r.u32("chunk count")))
        guard r.isAtEnd else {
            throw AgadirError(.corruptData, "PARTITION_DIGEST answer has \(r.remaining) trailing bytes")
        }
        return s
    }
}
