import AgadirCore

// The store's side of partition moves (docs/rebalance.md, "Moving partitions"; tables in
// docs/storage.md): the chunks of a chunk partition with their references, read page by page
// from a range of the `chunks` primary key, and the drops a node makes once it no longer
// holds a partition: manifests by exact version, chunks unless referenced or stored recently.
// Writes go through the writer thread's group commit like every other write.

/// A chunk of a chunk partition with what it serves.
public struct PartitionChunk: Sendable, Hashable {
    public var id: ChunkID
    public var storedBytes: UInt64
    /// Its chunk_refs rows, ordered by (bucket, key, version), at most NodeStore.maxReferencesPerChunk.
    public var references: [ChunkReference]
    /// created_ms of its newest reference (0 when it has none).
    public var newestReferenceMillis: UInt64

    public init(id: ChunkID, storedBytes: UInt64, references: [ChunkReference], newestReferenceMillis: UInt64) {
        self.id = id
        self.storedBytes = storedBytes
        self.references = references
        self.newestReferenceMillis = newestReferenceMillis
    }
}

// MARK: - Reading a chunk partition

extension NodeStore {
    /// Most references `partitionChunks` returns with one chunk (the first in (bucket, key,
    /// version) order; `newestReferenceMillis` covers them all).
    public static let maxReferencesPerChunk = 64

    /// Chunks whose id's first 8 bytes big-endian (`ChunkID.w0`) are in `lo ..< hi` (hi == nil: up to the end
    /// of the id space), in id order strictly after `after` (nil: from the start of the range), at most `limit`
    /// (1 to `maxPageSize`, else `.invalidArgument`; `hi` below `lo` is `.invalidArgument` too), each with its
    /// references; one read transaction. `Partitioner.chunkRange(partition:count:)` gives a partition's range.
    ///
    /// One range query on the `chunks` primary key: `id >= lo` and `id < hi` as 32-byte ids (8 bytes big-endian
    /// followed by 24 zero bytes), which is exactly `w0` in `lo ..< hi` since every id is 32 bytes.
    public func partitionChunks(
        w0From lo: UInt64, below hi: UInt64?, after: ChunkID?, limit: Int
    ) async throws(AgadirError) -> [PartitionChunk] {
        try Self.checkPageSize(limit, "partition chunks")
        if let hi, hi < lo {
            throw AgadirError(
                .invalidArgument, "partition chunk range \(lo) ..< \(hi) ends before it starts; give hi >= lo")
        }
        var sql = "SELECT id, stored_len FROM chunks WHERE id >= ? "
        var values: [SQLiteValue] = [.blob(ChunkID(w0: lo, w1: 0, w2: 0, w3: 0).bytes)]
        if let hi {
            sql += "AND id < ? "
            values.append(.blob(ChunkID(w0: hi, w1: 0, w2: 0, w3: 0).bytes))
        }
        if let after {
            sql += "AND id > ? "
            values.append(.blob(after.bytes))
        }
        sql += "ORDER BY id LIMIT ?"
        values.append(.int(Int64(limit)))
        let query = sql
        let parameters = values
        return try await blocking { [readers] () throws(AgadirError) -> [PartitionChunk] in
            try readers.withConnection { db throws(AgadirError) -> [PartitionChunk] in
                // One read transaction: the references belong to the same snapshot as the chunks.
                try db.execute("BEGIN")
                defer { try? db.execute("COMMIT") }
                var chunks: [(id: ChunkID, storedBytes: UInt64)] = []
                try db.forEachRow(query, parameters) { row throws(AgadirError) -> Bool in
                    let bytes = row.blob(0)
                    guard let id = ChunkID(bytes: bytes) else {
                        throw corruptRow("chunks", "with a \(bytes.count)-byte id", "the id is not 32 bytes")
                    }
                    let stored = row.integer(1) ?? -1
                    guard (0...Int64(SegmentFormat.maxStoredLength)).contains(stored) else {
                        throw corruptRow("chunks", id.hex, "stored_len \(stored) is impossible")
                    }
                    chunks.append((id, UInt64(stored)))
                    return true
                }
                var out: [PartitionChunk] = []
                out.reserveCapacity(chunks.count)
                for chunk in chunks {
                    let references = try Self.references(of: chunk.id, in: db)
                    let newest = try Self.newestReferenceMillis(of: chunk.id, in: db)
                    out.append(
                        PartitionChunk(
                            id: chunk.id, storedBytes: chunk.storedBytes, references: references,
                            newestReferenceMillis: newest))
                }
                return out
            }
        }
    }

    /// The first `maxReferencesPerChunk` `chunk_refs` rows of a chunk in (bucket, key, version) order.
    static func references(of id: ChunkID, in db: SQLiteDatabase) throws(AgadirError) -> [ChunkReference] {
        var references: [ChunkReference] = []
        try db.forEachRow(
            """
            SELECT bucket, key, version_hlc, version_node FROM chunk_refs WHERE chunk = ?
            ORDER BY bucket, key, version_hlc, version_node LIMIT ?
            """, [.blob(id.bytes), .int(Int64(maxReferencesPerChunk))]
        ) { row throws(AgadirError) -> Bool in
            guard let bucket = row.utf8Text(0) else {
                throw corruptRow("chunk_refs", "of chunk \(id.hex)", "the bucket is not UTF-8 text")
            }
            guard let key = String(validating: row.blob(1), as: UTF8.self) else {
                throw corruptRow("chunk_refs", "of chunk \(id.hex) in bucket '\(bucket)'", "the key is not valid UTF-8")
            }
            references.append(ChunkReference(bucket: bucket, key: key, version: row.version(2, 3)))
            return true
        }
        return references
    }

    /// `created_ms` of the newest `chunk_refs` row of a chunk, over all its rows; 0 when it has none.
    private static func newestReferenceMillis(of id: ChunkID, in db: SQLiteDatabase) throws(AgadirError) -> UInt64 {
        // An aggregate gives one row: NULL when the chunk has no reference.
        var newest: Int64? = 0
        try db.forEachRow("SELECT MAX(created_ms) FROM chunk_refs WHERE chunk = ?", [.blob(id.bytes)]) { row in
            newest = row.isNull(0) ? 0 : row.integer(0)
            return false
        }
        guard let newest, newest >= 0 else {
            throw corruptRow("chunk_refs", "of chunk \(id.hex)", "created_ms is negative or not an integer")
        }
        return UInt64(newest)
    }
}

// MARK: - Dropping what moved away

extension NodeStore {
    /// Deletes each (bucket, key) manifest row from `objects` ONLY if its stored version equals the given version
    /// (a newer write that arrived since is kept). Replica semantics: `chunks.refs` is not touched. Durable on
    /// return (group commit). At most `maxPageSize` entries (else `.invalidArgument`). Returns how many rows were
    /// deleted (an entry named twice counts once; tombstones are rows like any other).
    public func dropManifests(
        _ entries: [(bucket: String, key: String, version: ObjectVersion)]
    ) async throws(AgadirError) -> Int {
        guard entries.count <= Self.maxPageSize else {
            throw AgadirError(
                .invalidArgument,
                "\(entries.count) manifests in one drop; send at most \(Self.maxPageSize) at a time")
        }
        guard !entries.isEmpty else { return 0 }
        guard case .removed(let count) = try await write(.dropManifests(entries)) else {
            throw AgadirError(.internalError, "manifest drop got a result of the wrong kind")
        }
        return count
    }

    /// Removes chunks from the index together with their `chunk_refs` rows, but ONLY those chunks that have no
    /// `chunk_refs` row with `created_ms >= referencedBefore` (milliseconds since the epoch): a chunk claimed or
    /// stored recently is kept (a PUT in flight may use it). The bytes stay in their segment until compaction;
    /// `putChunk` of a dropped id stores it again. Durable on return. At most `maxPageSize` ids (else
    /// `.invalidArgument`). Returns the ids actually dropped, once each, in the order given.
    ///
    /// Also kept, whatever their references: a chunk whose index row was itself written at or after
    /// `referencedBefore` (stored recently without a reference); a chunk that a standalone manifest counts
    /// (`chunks.refs` > 0; a stored manifest never points at a missing chunk); a chunk named by a pending hint
    /// (its delivery reads the bytes); a chunk written by a `putChunk` of the same group commit. Ids not held
    /// here are ignored.
    public func dropChunks(_ ids: [ChunkID], referencedBefore: UInt64) async throws(AgadirError) -> [ChunkID] {
        guard ids.count <= Self.maxPageSize else {
            throw AgadirError(
                .invalidArgument, "\(ids.count) chunk ids in one drop; send at most \(Self.maxPageSize) at a time")
        }
        guard !ids.isEmpty else { return [] }
        guard case .droppedChunks(let dropped) = try await write(.dropChunks(ids, referencedBefore: referencedBefore))
        else {
            throw AgadirError(.internalError, "chunk drop got a result of the wrong kind")
        }
        return dropped
    }
}
