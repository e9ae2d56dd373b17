import AgadirCore

// The store's side of the cluster (docs/cluster.md; tables in docs/storage.md): chunk
// references, raw chunk records, replica manifests and listings, inventories for the
// residency audit, the bucket catalog, and hints. Writes go through the writer thread's group
// commit like every other write; multi-row reads run on the I/O queue with a reader connection.

// MARK: - Bounds

extension NodeStore {
    /// Most chunk ids one `claimChunks` call may name.
    public static let maxClaimIDs = 4096
    /// Largest `limit` of the paged reads (`replicaList`, `manifestInventory`, `chunkInventory`,
    /// `hints(for:limit:)`) and most ids one `deleteHints` call may name.
    public static let maxPageSize = 10_000
    /// Most targets `hintTargets()` returns (the first ones by name).
    public static let maxHintTargets = 10_000
    /// Longest hint target (a node id), in UTF-8 bytes.
    public static let maxHintTargetBytes = 255

    static func checkPageSize(_ limit: Int, _ what: String) throws(AgadirError) {
        guard (1...maxPageSize).contains(limit) else {
            throw AgadirError(.invalidArgument, "\(what) limit is \(limit); ask for 1 to \(maxPageSize) entries")
        }
    }
}

// MARK: - Chunks and their references

extension NodeStore {
    /// Stores the chunk (unless already held) AND records `reference` on it, in the same group
    /// commit; durable on return (the writer's fdatasync + COMMIT). Returns true when the bytes
    /// were newly stored, false when the chunk was already held (the reference is recorded
    /// all the same). Same consistency checks as `putChunk(_:durability:)`; the reference must
    /// name a valid bucket and key (`.invalidBucketName`, `.invalidKey`).
    @discardableResult
    public func putChunk(_ chunk: EncodedChunk, reference: ChunkReference) async throws(AgadirError) -> Bool {
        try Self.checkConsistency(chunk)
        try reference.validate()
        guard case .chunk(let stored) = try await write(.putChunk(chunk, .referenced(reference))) else {
            throw AgadirError(.internalError, "chunk write got a result of the wrong kind")
        }
        return stored
    }

    /// For each id, in order: when the chunk is held here, records `reference` on it and
    /// answers true; else false. Durable on return when anything was recorded; when nothing is
    /// held, answers from the index without a write. At most `maxClaimIDs` ids
    /// (else `.invalidArgument`).
    public func claimChunks(_ ids: [ChunkID], reference: ChunkReference) async throws(AgadirError) -> [Bool] {
        guard ids.count <= Self.maxClaimIDs else {
            throw AgadirError(
                .invalidArgument, "\(ids.count) chunk ids in one claim; send at most \(Self.maxClaimIDs) at a time")
        }
        try reference.validate()
        // Misses are the common case for new data: answer them without a group commit. When
        // any chunk is seen, the writer checks every id again before it records.
        guard try await containsChunks(ids).contains(true) else { return [Bool](repeating: false, count: ids.count) }
        guard case .claims(let held) = try await write(.claimChunks(ids, reference)), held.count == ids.count else {
            throw AgadirError(.internalError, "chunk claim got a result of the wrong kind")
        }
        return held
    }

    /// The stored record of a chunk as an `EncodedChunk` (codec, raw length, stored bytes,
    /// CRC), with the CRC-32 of the stored bytes checked and the record header verified (CRC,
    /// fields, id, agreement with the index), but NOT decoded or re-hashed: the receiver
    /// verifies. `.noSuchChunk` when not held here; `.corruptChunk` naming the chunk, the
    /// segment and the offset when the record on disk is damaged.
    public func readChunkRecord(_ id: ChunkID) async throws(AgadirError) -> EncodedChunk {
        try await blocking { [readers, readFiles] () throws(AgadirError) -> EncodedChunk in
            try Self.readIndexed(id, readers: readers) { location throws(AgadirError) in
                try ChunkRecordReader.readRecord(id, at: location, files: readFiles)
            }
        }
    }

    /// Whether a reference of `bucket` to chunk `id` is recorded here (an object version of
    /// the bucket stored or claimed it). A chunk is served to a peer only for a bucket that
    /// references it (docs/cluster.md, "Sovereignty checks").
    public func chunkReferenced(_ id: ChunkID, by bucket: String) async throws(AgadirError) -> Bool {
        try await read { db throws(AgadirError) -> Bool in
            try db.firstRow(
                "SELECT 1 FROM chunk_refs WHERE chunk = ? AND bucket = ? LIMIT 1", [.blob(id.bytes), .text(bucket)]
            ) {
                _ in true
            } ?? false
        }
    }

    /// Chunk ids held here in id order after `after`, at most `limit` (1 to `maxPageSize`),
    /// each with its stored length and the buckets recorded in its references (distinct,
    /// sorted); a chunk with no recorded reference (an interrupted PUT, or one stored by
    /// `putChunk(_:durability:)`) comes with []. For the residency audit.
    public func chunkInventory(
        after: ChunkID?, limit: Int
    ) async throws(AgadirError) -> [(id: ChunkID, storedBytes: UInt64, buckets: [String])] {
        try Self.checkPageSize(limit, "chunk inventory")
        typealias Entry = (id: ChunkID, storedBytes: UInt64, buckets: [String])
        return try await blocking { [readers] () throws(AgadirError) -> [Entry] in
            try readers.withConnection { db throws(AgadirError) -> [Entry] in
                // One read transaction: the references belong to the same snapshot as the chunks.
                try db.execute("BEGIN")
                defer { try? db.execute("COMMIT") }
                var chunks: [(id: ChunkID, storedBytes: UInt64)] = []
                let sql =
                    after == nil
                    ? "SELECT id, stored_len FROM chunks ORDER BY id LIMIT ?"
                    : "SELECT id, stored_len FROM chunks WHERE id > ? ORDER BY id LIMIT ?"
                let values: [SQLiteValue] = (after.map { [.blob($0.bytes)] } ?? []) + [.int(Int64(limit))]
                try db.forEachRow(sql, values) { row throws(AgadirError) -> Bool in
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
                var out: [Entry] = []
                out.reserveCapacity(chunks.count)
                for chunk in chunks {
                    var buckets: [String] = []
                    try db.forEachRow(
                        "SELECT DISTINCT bucket FROM chunk_refs WHERE chunk = ? ORDER BY bucket LIMIT ?",
                        [.blob(chunk.id.bytes), .int(Int64(Self.maxBucketRecords))]
                    ) { row throws(AgadirError) -> Bool in
                        guard let bucket = row.utf8Text(0) else {
                            throw corruptRow("chunk_refs", "of chunk \(chunk.id.hex)", "the bucket is not UTF-8 text")
                        }
                        buckets.append(bucket)
                        return true
                    }
                    out.append((chunk.id, chunk.storedBytes, buckets))
                }
                return out
            }
        }
    }
}

// MARK: - Replica manifests and listings

extension NodeStore {
    /// Stores a manifest as a REPLICA: last writer wins on the version exactly like
    /// `putManifest`, but the manifest's chunks need not be held here and `chunks.refs` is NOT
    /// touched (neither increments nor decrements of the replaced version); the bucket need
    /// not exist in `buckets` (the catalog is replicated separately), only its name must be
    /// valid (`.invalidBucketName`). Durable on return. `.invalidKey`/`.invalidArgument` as
    /// `putManifest`.
    @discardableResult
    public func putReplicaManifest(_ manifest: ObjectManifest) async throws(AgadirError) -> PutManifestOutcome {
        try Names.validateBucket(manifest.bucket)
        let encoded = try Self.encodeFaithfully(manifest)
        guard case .manifest(let outcome) = try await write(.putReplicaManifest(manifest, encoded: encoded)) else {
            throw AgadirError(.internalError, "replica manifest write got a result of the wrong kind")
        }
        return outcome
    }

    /// Entries of a bucket in key (byte) order after `startAfter` with `prefix`, TOMBSTONES
    /// INCLUDED, at most `limit` (1 to `maxPageSize`, else `.invalidArgument`), no delimiter
    /// grouping; for replica listings that a coordinator merges. The bucket need not exist
    /// here (an unknown bucket lists nothing). One range query on the `(bucket, key)` key.
    public func replicaList(
        bucket: String, prefix: String, startAfter: String?, limit: Int
    ) async throws(AgadirError) -> [ReplicaListEntry] {
        try Self.checkPageSize(limit, "replica list")
        return try await blocking { [readers] () throws(AgadirError) -> [ReplicaListEntry] in
            try readers.withConnection { db throws(AgadirError) -> [ReplicaListEntry] in
                let p = Array(prefix.utf8)
                var lower = p
                var inclusive = true
                if let startAfter {
                    let s = Array(startAfter.utf8)
                    if !s.lexicographicallyPrecedes(p) {
                        lower = s
                        inclusive = false
                    }
                }
                var sql = "SELECT key, version_hlc, version_node, tombstone, size, etag, content_type FROM objects "
                sql += inclusive ? "WHERE bucket = ? AND key >= ? " : "WHERE bucket = ? AND key > ? "
                var values: [SQLiteValue] = [.text(bucket), .blob(lower)]
                if let upper = ObjectListing.successor(p) {
                    sql += "AND key < ? "
                    values.append(.blob(upper))
                }
                sql += "ORDER BY key LIMIT ?"
                values.append(.int(Int64(limit)))
                var out: [ReplicaListEntry] = []
                try db.forEachRow(sql, values) { row throws(AgadirError) -> Bool in
                    let keyBytes = row.blob(0)
                    guard let key = String(validating: keyBytes, as: UTF8.self) else {
                        throw corruptRow("objects", "in bucket '\(bucket)'", "a key is not valid UTF-8")
                    }
                    let what = "'\(bucket)/\(key)'"
                    guard let tombstone = row.flag(3) else {
                        throw corruptRow("objects", what, "tombstone is neither 0 nor 1")
                    }
                    guard let etag = ChunkID(bytes: row.blob(5)) else {
                        throw corruptRow("objects", what, "the etag is not 32 bytes")
                    }
                    guard let contentType = row.utf8Text(6) else {
                        throw corruptRow("objects", what, "the content type is not UTF-8 text")
                    }
                    out.append(
                        ReplicaListEntry(
                            key: key, version: row.version(1, 2), isTombstone: tombstone,
                            size: UInt64(bitPattern: row.int64(4)), etag: etag, contentType: contentType))
                    return true
                }
                return out
            }
        }
    }

    /// (bucket, key, version, isTombstone) of every manifest stored here, in (bucket, key)
    /// byte order after `after`, at most `limit` (1 to `maxPageSize`); for the residency audit.
    public func manifestInventory(
        after: (bucket: String, key: String)?, limit: Int
    ) async throws(AgadirError) -> [(bucket: String, key: String, version: ObjectVersion, isTombstone: Bool)] {
        try Self.checkPageSize(limit, "manifest inventory")
        typealias Entry = (bucket: String, key: String, version: ObjectVersion, isTombstone: Bool)
        let afterValues: [SQLiteValue]? = after.map { [.text($0.bucket), .blob(Array($0.key.utf8))] }
        return try await blocking { [readers] () throws(AgadirError) -> [Entry] in
            try readers.withConnection { db throws(AgadirError) -> [Entry] in
                let columns = "SELECT bucket, key, version_hlc, version_node, tombstone FROM objects "
                let sql =
                    afterValues == nil
                    ? columns + "ORDER BY bucket, key LIMIT ?"
                    : columns + "WHERE (bucket, key) > (?, ?) ORDER BY bucket, key LIMIT ?"
                var out: [Entry] = []
                try db.forEachRow(sql, (afterValues ?? []) + [.int(Int64(limit))]) { row throws(AgadirError) -> Bool in
                    guard let bucket = row.utf8Text(0) else {
                        throw corruptRow("objects", "after \(out.count) entries", "the bucket is not UTF-8 text")
                    }
                    guard let key = String(validating: row.blob(1), as: UTF8.self) else {
                        throw corruptRow("objects", "in bucket '\(bucket)'", "a key is not valid UTF-8")
                    }
                    guard let tombstone = row.flag(4) else {
                        throw corruptRow("objects", "'\(bucket)/\(key)'", "tombstone is neither 0 nor 1")
                    }
                    out.append((bucket, key, row.version(2, 3), tombstone))
                    return true
                }
                return out
            }
        }
    }

    /// (key, version) of the manifests of `bucket` (tombstones included) stamped before
    /// `before`, or all of them when nil, in key byte order after `after`, at most `limit`
    /// (1 to `maxPageSize`): what an earlier or a deleted bucket of the name left here, for
    /// the garbage collector to purge (`dropManifests`).
    public func manifestVersions(
        bucket: String, before: ObjectVersion?, after: String?, limit: Int
    ) async throws(AgadirError) -> [(key: String, version: ObjectVersion)] {
        try Self.checkPageSize(limit, "bucket manifests")
        typealias Entry = (key: String, version: ObjectVersion)
        var sql = "SELECT key, version_hlc, version_node FROM objects WHERE bucket = ? "
        var values: [SQLiteValue] = [.text(bucket)]
        if let after {
            sql += "AND key > ? "
            values.append(.blob(Array(after.utf8)))
        }
        if let before {
            sql += "AND (version_hlc, version_node) < (?, ?) "
            values += [
                .int(Int64(bitPattern: before.timestamp.rawValue)), .int(Int64(bitPattern: before.node)),
            ]
        }
        sql += "ORDER BY key LIMIT ?"
        values.append(.int(Int64(limit)))
        return try await rows(sql, values) { row, _ throws(AgadirError) -> Entry in
            guard let key = String(validating: row.blob(0), as: UTF8.self) else {
                throw corruptRow("objects", "in bucket '\(bucket)'", "a key is not valid UTF-8")
            }
            return (key, row.version(1, 2))
        }
    }

    /// The manifests (tombstones included) whose key hash (`KeyHash`) is in `lo ..< hi`, in
    /// (key hash, bucket, key) order after `after`, at most `limit` (1 to `maxPageSize`): the
    /// manifests of one partition (`KeyHash.range`), for moving and comparing partitions.
    public func manifests(
        keyHashes lo: UInt32, below hi: UInt64, after: (keyHash: UInt32, bucket: String, key: String)?, limit: Int
    ) async throws(AgadirError) -> [(keyHash: UInt32, manifest: ObjectManifest)] {
        try Self.checkPageSize(limit, "partition manifests")
        typealias Entry = (keyHash: UInt32, manifest: ObjectManifest)
        var values: [SQLiteValue] = [.int(Int64(lo)), .int(Int64(min(hi, 1 << 32)))]
        var sql = "SELECT khash, bucket, key, manifest FROM objects WHERE khash >= ? AND khash < ? "
        if let after {
            sql += "AND (khash, bucket, key) > (?, ?, ?) "
            values += [.int(Int64(after.keyHash)), .text(after.bucket), .blob(Array(after.key.utf8))]
        }
        sql += "ORDER BY khash, bucket, key LIMIT ?"
        values.append(.int(Int64(limit)))
        return try await rows(sql, values) { row, before throws(AgadirError) -> Entry in
            let hash = row.int64(0)
            guard (0...Int64(UInt32.max)).contains(hash) else {
                throw corruptRow("objects", "after \(before) entries", "khash \(hash) is not a 32-bit value")
            }
            do throws(AgadirError) {
                return (UInt32(hash), try ManifestCodec.decode(row.blob(3)))
            } catch {
                throw corruptRow("objects", "after \(before) entries", "the manifest does not decode: \(error.message)")
            }
        }
    }
}

// MARK: - Bucket catalog

extension NodeStore {
    /// Applies the record if its version is newer than the stored one for that name (or none
    /// is stored). Returns true when applied. Durable on return. Does NOT check emptiness (the
    /// cluster checks that across replicas before writing a deletion) and does not touch
    /// objects. A bucket whose newest record is deleted is absent from `bucket(_:)` and
    /// `listBuckets()`; a later record with a newer version brings it back.
    /// `.invalidBucketName`/`.invalidArgument` for a bad name or policy; `.storageFull` for a
    /// new name when the catalog holds `maxBucketRecords` records.
    public func mergeBucketRecord(_ record: BucketRecord) async throws(AgadirError) -> Bool {
        try record.validate()
        defer { catalogChanges.wrappingAdd(1, ordering: .sequentiallyConsistent) }
        guard case .applied(let applied) = try await write(.mergeBucketRecord(record)) else {
            throw AgadirError(.internalError, "bucket record write got a result of the wrong kind")
        }
        return applied
    }

    /// Forgets the deletion records of buckets deleted before `deletedBeforeMillis` whose
    /// name holds no manifest any more, at most `limit` at once; returns how many. Without
    /// it, names created and deleted by the hundred thousand would fill the catalog for good
    /// (`maxBucketRecords`). The cutoff is the catalog's grace: a node down longer than it
    /// could bring a deleted bucket back when it returns, as for object delete markers.
    public func purgeDeletedBuckets(deletedBeforeMillis: UInt64, limit: Int = 10_000) async throws(AgadirError) -> Int {
        guard limit >= 1 else { throw AgadirError(.invalidArgument, "purge limit \(limit); give at least 1") }
        let before = HLCTimestamp(physicalMillis: deletedBeforeMillis, logical: 0).rawValue
        defer { catalogChanges.wrappingAdd(1, ordering: .sequentiallyConsistent) }
        guard case .removed(let count) = try await write(.purgeDeletedBuckets(before: before, limit: limit)) else {
            throw AgadirError(.internalError, "bucket purge got a result of the wrong kind")
        }
        return count
    }

    /// Every record, deleted ones included, sorted by name (at most `maxBucketRecords`, which
    /// writes enforce). Standalone buckets appear at version `ObjectVersion.zero`.
    public func bucketCatalog() async throws(AgadirError) -> [BucketRecord] {
        try await blocking { [readers] () throws(AgadirError) -> [BucketRecord] in
            try readers.withConnection { db throws(AgadirError) -> [BucketRecord] in
                var out: [BucketRecord] = []
                try db.forEachRow(
                    """
                    SELECT name, policy, created_ms, version_hlc, version_node, deleted, max_bytes, max_objects, gen_hlc, gen_node
                    FROM buckets ORDER BY name LIMIT ?
                    """, [.int(Int64(Self.maxBucketRecords + 1))]
                ) { row throws(AgadirError) -> Bool in
                    guard let name = row.utf8Text(0) else {
                        throw corruptRow("buckets", "after \(out.count) records", "the name is not UTF-8 text")
                    }
                    guard let policy = row.utf8Text(1) else {
                        throw corruptRow("buckets", "'\(name)'", "the policy is not UTF-8 text")
                    }
                    guard let deleted = row.flag(5) else {
                        throw corruptRow("buckets", "'\(name)'", "deleted is neither 0 nor 1")
                    }
                    out.append(
                        BucketRecord(
                            name: name, policy: policy, createdMillis: UInt64(bitPattern: row.int64(2)),
                            version: row.version(3, 4), deleted: deleted, maxBytes: UInt64(bitPattern: row.int64(6)),
                            maxObjects: UInt64(bitPattern: row.int64(7)),
                            generation: row.version(8, 9)))
                    return true
                }
                guard out.count <= Self.maxBucketRecords else {
                    throw AgadirError(
                        .corruptData,
                        "table buckets holds more than \(Self.maxBucketRecords) records, more than any write "
                            + "allows; meta.sqlite was changed outside Agadir")
                }
                return out
            }
        }
    }

    /// The record of one bucket name, deleted or not; nil when the catalog has none.
    public func bucketCatalog(named name: String) async throws(AgadirError) -> BucketRecord? {
        try await read { db throws(AgadirError) -> BucketRecord? in
            var found: BucketRecord? = nil
            try db.forEachRow(
                """
                SELECT name, policy, created_ms, version_hlc, version_node, deleted, max_bytes, max_objects, gen_hlc, gen_node
                FROM buckets WHERE name = ?
                """,
                [.text(name)]
            ) { row throws(AgadirError) -> Bool in
                guard let policy = row.utf8Text(1) else {
                    throw corruptRow("buckets", "'\(name)'", "the policy is not UTF-8 text")
                }
                guard let deleted = row.flag(5) else {
                    throw corruptRow("buckets", "'\(name)'", "deleted is neither 0 nor 1")
                }
                found = BucketRecord(
                    name: name, policy: policy, createdMillis: UInt64(bitPattern: row.int64(2)),
                    version: row.version(3, 4), deleted: deleted, maxBytes: UInt64(bitPattern: row.int64(6)),
                    maxObjects: UInt64(bitPattern: row.int64(7)),
                    generation: row.version(8, 9))
                return false
            }
            return found
        }
    }

    /// What this node holds of `bucket`: its live objects and their logical bytes (kept by
    /// the store as manifests are applied, replaced and dropped; schema version 6).
    public func bucketUsage(_ bucket: String) async throws(AgadirError) -> BucketUsage {
        try await read { db throws(AgadirError) -> BucketUsage in
            try db.firstRow("SELECT objects, bytes FROM bucket_usage WHERE bucket = ?", [.text(bucket)]) { row in
                BucketUsage(
                    objects: UInt64(clamping: max(0, row.int64(0))), bytes: UInt64(clamping: max(0, row.int64(1))))
            } ?? .zero
        }
    }
}

// MARK: - Hints

extension NodeStore {
    /// Parks a hint durably; returns its id (increasing). At most `StoreOptions.maxHints`
    /// pending: beyond that `.storageFull`. `bucket` must be the payload's bucket
    /// (`.invalidArgument`); a chunk payload's chunk must be held here (`.noSuchChunk`: store
    /// it with `putChunk(_:reference:)` first); a manifest payload is checked as `putManifest`
    /// checks it. `target` takes 1 to `maxHintTargetBytes` bytes without control characters.
    public func putHint(
        target: String, bucket: String, payload: HintPayload, createdMillis: UInt64
    ) async throws(AgadirError) -> Int64 {
        let n = target.utf8.count
        guard n >= 1, n <= Self.maxHintTargetBytes, target.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7f }) else {
            throw AgadirError(
                .invalidArgument,
                "hint target of \(n) bytes or with control characters; a target is a node id of 1 to "
                    + "\(Self.maxHintTargetBytes) printable bytes")
        }
        try Names.validateBucket(bucket)
        guard payload.bucket == bucket else {
            throw AgadirError(
                .invalidArgument, "hint for bucket '\(bucket)' carries a write for bucket '\(payload.bucket)'")
        }
        let hint: EncodedHint
        switch payload {
        case .chunk(let id, let reference):
            try reference.validate()
            hint = EncodedHint(
                target: target, bucket: bucket, kind: .chunk, chunk: id, manifest: nil,
                reference: ChunkReferenceCodec.encode(reference), createdMillis: createdMillis)
        case .manifest(let manifest):
            hint = EncodedHint(
                target: target, bucket: bucket, kind: .manifest, chunk: nil,
                manifest: try Self.encodeFaithfully(manifest), reference: nil, createdMillis: createdMillis)
        }
        guard case .hint(let id) = try await write(.putHint(hint)) else {
            throw AgadirError(.internalError, "hint write got a result of the wrong kind")
        }
        return id
    }

    /// Pending hints for a target, oldest first, at most `limit` (1 to `maxPageSize`).
    public func hints(for target: String, limit: Int) async throws(AgadirError) -> [StoredHint] {
        try Self.checkPageSize(limit, "hint")
        return try await blocking { [readers] () throws(AgadirError) -> [StoredHint] in
            try readers.withConnection { db throws(AgadirError) -> [StoredHint] in
                var out: [StoredHint] = []
                try db.forEachRow(
                    """
                    SELECT id, target, bucket, kind, chunk, manifest, reference, created_ms FROM hints
                    WHERE target = ? ORDER BY id LIMIT ?
                    """, [.text(target), .int(Int64(limit))]
                ) { row throws(AgadirError) -> Bool in
                    out.append(try Self.decodeHint(row))
                    return true
                }
                return out
            }
        }
    }

    /// Targets with pending hints and their counts, sorted by target (at most
    /// `maxHintTargets`, the first by name).
    public func hintTargets() async throws(AgadirError) -> [(target: String, count: Int)] {
        try await blocking { [readers] () throws(AgadirError) -> [(target: String, count: Int)] in
            try readers.withConnection { db throws(AgadirError) -> [(target: String, count: Int)] in
                var out: [(target: String, count: Int)] = []
                try db.forEachRow(
                    "SELECT target, COUNT(*) FROM hints GROUP BY target ORDER BY target LIMIT ?",
                    [.int(Int64(Self.maxHintTargets))]
                ) { row throws(AgadirError) -> Bool in
                    guard let target = row.utf8Text(0) else {
                        throw corruptRow("hints", "after \(out.count) targets", "a target is not UTF-8 text")
                    }
                    out.append((target, Int(row.int64(1))))
                    return true
                }
                return out
            }
        }
    }

    /// Deletes delivered hints (durable on return); ids that are not pending are ignored. At
    /// most `maxPageSize` ids per call.
    public func deleteHints(_ ids: [Int64]) async throws(AgadirError) {
        guard ids.count <= Self.maxPageSize else {
            throw AgadirError(
                .invalidArgument, "\(ids.count) hint ids in one delete; send at most \(Self.maxPageSize) at a time")
        }
        guard !ids.isEmpty else { return }
        _ = try await write(.deleteHints(ids))
    }

    private static func decodeHint(_ row: SQLiteRow) throws(AgadirError) -> StoredHint {
        guard let id = row.integer(0) else {
            throw corruptRow("hints", "with a non-integer id", "the id is not an integer")
        }
        let what = "id \(id)"
        guard let target = row.utf8Text(1), let bucket = row.utf8Text(2) else {
            throw corruptRow("hints", what, "the target or the bucket is not UTF-8 text")
        }
        guard let created = row.integer(7) else {
            throw corruptRow("hints", what, "created_ms is not an integer")
        }
        let payload: HintPayload
        switch row.integer(3).flatMap(HintKind.init(rawValue:)) {
        case .chunk:
            guard let chunk = ChunkID(bytes: row.blob(4)) else {
                throw corruptRow("hints", what, "the chunk id is not 32 bytes")
            }
            let reference: ChunkReference
            do throws(AgadirError) {
                reference = try ChunkReferenceCodec.decode(row.blob(6))
            } catch {
                throw corruptRow("hints", what, error.message)
            }
            payload = .chunk(chunk, reference)
        case .manifest:
            do throws(AgadirError) {
                payload = .manifest(try ManifestCodec.decode(row.blob(5)))
            } catch {
                throw corruptRow("hints", what, error.message)
            }
        case nil:
            throw corruptRow("hints", what, "kind \(row.int64(3)) is unknown")
        }
        guard payload.bucket == bucket else {
            throw corruptRow("hints", what, "the payload belongs to bucket '\(payload.bucket)', not '\(bucket)'")
        }
        return StoredHint(
            id: id, target: target, bucket: bucket, payload: payload, createdMillis: UInt64(bitPattern: created))
    }
}

// MARK: - Reading rows back

/// A damaged row: what the error of a read that meets one says.
func corruptRow(_ table: String, _ row: String, _ why: String) -> AgadirError {
    AgadirError(
        .corruptData,
        "table \(table), row \(row): \(why); meta.sqlite is damaged there (restore it from a backup, or rebuild "
            + "this node from its replicas)")
}

extension SQLiteRow {
    /// An `ObjectVersion` from its two columns (any bit pattern is a valid version).
    func version(_ hlc: Int32, _ node: Int32) -> ObjectVersion {
        ObjectVersion(
            timestamp: HLCTimestamp(rawValue: UInt64(bitPattern: int64(hlc))), node: UInt64(bitPattern: int64(node)))
    }

    /// A 0/1 integer column as a Bool; nil for anything else.
    fileprivate func flag(_ column: Int32) -> Bool? {
        switch integer(column) {
        case 0: false
        case 1: true
        default: nil
        }
    }
}
