import AgadirCore

// MARK: - Reads

// Metadata point reads (containsChunks, bucket, manifest) run on the calling thread:
// the hop to the I/O queue and back cost more than the lookup (docs/storage.md).
extension NodeStore {
    /// For each id, whether the chunk is stored on this node (index lookup only).
    public func containsChunks(_ ids: [ChunkID]) async throws(AgadirError) -> [Bool] {
        try await read { db throws(AgadirError) -> [Bool] in
            var out: [Bool] = []
            out.reserveCapacity(ids.count)
            for id in ids {
                let found = try db.firstRow("SELECT 1 FROM chunks WHERE id = ?", [.blob(id.bytes)]) { _ in true }
                out.append(found ?? false)
            }
            return out
        }
    }

    /// The raw (uncompressed) bytes of a chunk, fully verified (record CRCs, id, decoding,
    /// SHA-256). `.noSuchChunk` when not stored here, `.corruptChunk` naming the chunk, the
    /// segment and the offset when the bytes on disk are damaged.
    public func readChunk(_ id: ChunkID) async throws(AgadirError) -> [UInt8] {
        try await blocking { [readers, readFiles] () throws(AgadirError) -> [UInt8] in
            try Self.readIndexed(id, readers: readers) { location throws(AgadirError) in
                try ChunkRecordReader.read(id, at: location, files: readFiles)
            }
        }
    }

    /// Runs `read` at the place the index gives for `id`. When it fails as corrupt and the index now gives
    /// another place (compaction moved the record and removed its segment meanwhile, or the chunk was stored
    /// again), it reads there, once; when the chunk is no longer indexed, `.noSuchChunk`.
    static func readIndexed<T>(
        _ id: ChunkID, readers: ReaderPool, _ read: (ChunkLocation) throws(AgadirError) -> T
    ) throws(AgadirError) -> T {
        try readIndexed(
            lookup: { () throws(AgadirError) in
                try readers.withConnection { db throws(AgadirError) in try Self.location(of: id, in: db) }
            }, read)
    }

    /// `readIndexed` with the index lookup given (tests answer a stale place first).
    static func readIndexed<T>(
        lookup: () throws(AgadirError) -> ChunkLocation, _ read: (ChunkLocation) throws(AgadirError) -> T
    ) throws(AgadirError) -> T {
        let location = try lookup()
        do throws(AgadirError) {
            return try read(location)
        } catch {
            guard error.code == .corruptChunk else { throw error }
            let again = try lookup()
            guard again != location else { throw error }
            return try read(again)
        }
    }

    /// Where the index says chunk `id` is (checked by `ChunkRecordReader`); `.noSuchChunk`.
    static func location(of id: ChunkID, in db: SQLiteDatabase) throws(AgadirError) -> ChunkLocation {
        let location = try db.firstRow(
            """
            SELECT segment, "offset", stored_len, raw_len, codec, crc FROM chunks WHERE id = ?
            """, [.blob(id.bytes)]
        ) { row in
            ChunkLocation(
                segment: UInt64(bitPattern: row.int64(0)), offset: Int(row.int64(1)),
                storedLength: Int(row.int64(2)), rawLength: Int(row.int64(3)),
                codec: UInt8(truncatingIfNeeded: row.int64(4)), crc: UInt32(truncatingIfNeeded: row.int64(5)))
        }
        guard let location else {
            throw AgadirError(.noSuchChunk, "chunk \(id.hex) is not stored on this node")
        }
        return location
    }

    /// The bucket named `name`, or nil (also when its newest catalog record is a deletion).
    public func bucket(_ name: String) async throws(AgadirError) -> BucketInfo? {
        try await read { db throws(AgadirError) -> BucketInfo? in
            try db.firstRow(
                "SELECT name, policy, created_ms FROM buckets WHERE name = ? AND deleted = 0", [.text(name)]
            ) { row in
                BucketInfo(
                    name: row.text(0), policy: row.text(1), createdMillis: UInt64(bitPattern: row.int64(2)))
            }
        }
    }

    /// Every bucket on this node, sorted by name (not those whose newest catalog record is a
    /// deletion).
    public func listBuckets() async throws(AgadirError) -> [BucketInfo] {
        try await blocking { [readers] () throws(AgadirError) -> [BucketInfo] in
            try readers.withConnection { db throws(AgadirError) -> [BucketInfo] in
                var out: [BucketInfo] = []
                let sql = "SELECT name, policy, created_ms FROM buckets WHERE deleted = 0 ORDER BY name"
                try db.forEachRow(sql) { row in
                    out.append(
                        BucketInfo(
                            name: row.text(0), policy: row.text(1), createdMillis: UInt64(bitPattern: row.int64(2))))
                    return true
                }
                return out
            }
        }
    }

    /// The newest stored manifest of `bucket/key`, tombstones included (the caller decides what
    /// a tombstone means); nil when none. `.noSuchBucket` when the bucket does not exist,
    /// `.corruptData` when the stored manifest does not decode.
    public func manifest(bucket: String, key: String) async throws(AgadirError) -> ObjectManifest? {
        try await read { db throws(AgadirError) -> ObjectManifest? in
            let encoded = try db.firstRow(
                "SELECT manifest FROM objects WHERE bucket = ? AND key = ?", [.text(bucket), .blob(Array(key.utf8))]
            ) { row in row.blob(0) }
            guard let encoded else {
                let exists = try db.firstRow(
                    "SELECT 1 FROM buckets WHERE name = ? AND deleted = 0", [.text(bucket)]
                ) { _ in true }
                guard exists != nil else {
                    throw AgadirError(.noSuchBucket, "bucket '\(bucket)' does not exist on this node")
                }
                return nil
            }
            do throws(AgadirError) {
                return try ManifestCodec.decode(encoded)
            } catch {
                throw AgadirError(
                    .corruptData, "stored manifest of '\(bucket)/\(key)' is corrupt: \(error.message)")
            }
        }
    }

    /// One page of the live objects of `bucket`, as S3 ListObjectsV2 with start-after: keys in
    /// byte order that start with `prefix` and sort after `startAfter`; with a delimiter, keys
    /// whose remainder after the prefix contains it are rolled up into common prefixes, each
    /// counted once against `limit` and never repeated on later pages. `limit` must be at
    /// least 1 and is clamped to 1000. `.noSuchBucket` when the bucket does not exist.
    public func list(
        bucket: String, prefix: String, delimiter: String?, startAfter: String?, limit: Int
    ) async throws(AgadirError) -> ListPage {
        guard limit >= 1 else {
            throw AgadirError(.invalidArgument, "list limit is \(limit); ask for 1 to \(ObjectListing.maxLimit) keys")
        }
        return try await blocking { [readers] () throws(AgadirError) -> ListPage in
            try readers.withConnection { db throws(AgadirError) -> ListPage in
                let exists = try db.firstRow(
                    "SELECT 1 FROM buckets WHERE name = ? AND deleted = 0", [.text(bucket)]
                ) { _ in true }
                guard exists != nil else {
                    throw AgadirError(.noSuchBucket, "bucket '\(bucket)' does not exist on this node")
                }
                return try ObjectListing.page(
                    db, bucket: bucket, prefix: prefix, delimiter: delimiter, startAfter: startAfter, limit: limit)
            }
        }
    }

    /// What the node stores: buckets, live objects, chunks, quarantined chunks, segment files (their size on
    /// disk: compaction lowers it), and the dedup and compression ratios. Aggregates over the index: cost grows
    /// with the number of rows.
    public func stats() async throws(AgadirError) -> StoreStats {
        let chunksDirectory = readFiles.chunksDirectory
        return try await blocking { [readers] () throws(AgadirError) -> StoreStats in
            var stats = try readers.withConnection { db throws(AgadirError) -> StoreStats in
                // One read transaction, so the three aggregates agree with each other.
                try db.execute("BEGIN")
                defer { try? db.execute("COMMIT") }
                let buckets =
                    try db.firstRow("SELECT COUNT(*) FROM buckets WHERE deleted = 0") { Int($0.int64(0)) } ?? 0
                let objects = try db.firstRow(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(inline_size), 0) FROM objects "
                        + "WHERE tombstone = 0"
                ) { row in (Int(row.int64(0)), UInt64(bitPattern: row.int64(1)), UInt64(bitPattern: row.int64(2))) }
                let chunks = try db.firstRow(
                    "SELECT COUNT(*), COALESCE(SUM(raw_len), 0), COALESCE(SUM(raw_len * refs), 0), "
                        + "COALESCE(SUM(stored_len), 0) FROM chunks"
                ) { row in
                    (
                        Int(row.int64(0)), UInt64(bitPattern: row.int64(1)), UInt64(bitPattern: row.int64(2)),
                        UInt64(bitPattern: row.int64(3))
                    )
                }
                let quarantined = try db.firstRow("SELECT COUNT(*) FROM quarantine") { Int($0.int64(0)) } ?? 0
                return StoreStats(
                    buckets: buckets, objects: objects?.0 ?? 0, logicalBytes: objects?.1 ?? 0,
                    inlineBytes: objects?.2 ?? 0, chunks: chunks?.0 ?? 0, uniqueRawBytes: chunks?.1 ?? 0,
                    referencedRawBytes: chunks?.2 ?? 0, storedBytes: chunks?.3 ?? 0, quarantinedChunks: quarantined)
            }
            for name in try Posix.listDirectory(chunksDirectory) where SegmentFormat.number(fromFileName: name) != nil {
                stats.segmentFiles += 1
                stats.segmentBytes += UInt64(Posix.sizeOfFile(atPath: chunksDirectory + "/" + name) ?? 0)
            }
            return stats
        }
    }
}
