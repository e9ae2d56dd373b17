import AgadirCore
import Logging

// The store's side of scrubbing, quarantine, garbage collection and segment compaction (docs/rebalance.md,
// "Scrub" and "Garbage collection"; tables and crash safety in docs/storage.md, "Maintenance"). Reads run on
// the I/O queue with a reader connection; writes, compaction included, go through the writer thread's group
// commit, so a compaction step's appends never interleave with other appends.

/// The result of re-verifying one stored chunk.
public struct ChunkCheck: Sendable, Hashable {
    public var id: ChunkID
    public var storedBytes: UInt64
    /// nil when the record is sound (header, CRC-32, decoding, SHA-256 of the raw bytes = id); else what is wrong.
    public var problem: String?

    public init(id: ChunkID, storedBytes: UInt64, problem: String?) {
        self.id = id
        self.storedBytes = storedBytes
        self.problem = problem
    }
}

/// A chunk moved out of service because its bytes are bad.
public struct QuarantinedChunk: Sendable, Hashable {
    public var id: ChunkID
    public var reason: String
    public var quarantinedMillis: UInt64
    /// Its chunk_refs rows (kept), at most NodeStore.maxReferencesPerChunk, ordered.
    public var references: [ChunkReference]

    public init(id: ChunkID, reason: String, quarantinedMillis: UInt64, references: [ChunkReference]) {
        self.id = id
        self.reason = reason
        self.quarantinedMillis = quarantinedMillis
        self.references = references
    }
}

/// What one `NodeStore.compactSegments` call did.
public struct CompactionResult: Sendable, Hashable {
    /// Segments removed (their live records copied first, if any).
    public var segmentsCompacted: Int
    /// Bytes of live records (headers included) copied to the active segment.
    public var bytesCopied: UInt64
    /// File bytes removed from disk.
    public var bytesFreed: UInt64

    public init(segmentsCompacted: Int = 0, bytesCopied: UInt64 = 0, bytesFreed: UInt64 = 0) {
        self.segmentsCompacted = segmentsCompacted
        self.bytesCopied = bytesCopied
        self.bytesFreed = bytesFreed
    }
}

/// How much of a segment file is still in use.
public struct SegmentUsage: Sendable, Hashable {
    public var segment: Int
    /// Size of the file (0 when the index names a segment whose file is missing).
    public var fileBytes: UInt64
    /// Bytes of records still indexed (record headers included).
    public var liveBytes: UInt64
    /// The segment the writer appends to (never compacted).
    public var isActive: Bool

    public init(segment: Int, fileBytes: UInt64, liveBytes: UInt64, isActive: Bool) {
        self.segment = segment
        self.fileBytes = fileBytes
        self.liveBytes = liveBytes
        self.isActive = isActive
    }
}

// MARK: - Verification (scrub)

extension NodeStore {
    /// Re-reads and fully verifies the chunks after `after` in id order: at most `limit` (1...maxPageSize), and
    /// stops once `maxBytes` stored bytes were read (always at least one chunk). A corrupt chunk is REPORTED
    /// (problem != nil), never thrown; throws only when the metadata cannot be read. Runs on the I/O queue, not
    /// the writer.
    ///
    /// Every check of `readChunk` plus the CRC-32 of the stored bytes for raw records too. A read error of the
    /// segment file (EIO) is a problem like a bad checksum. A chunk whose check fails is looked up again: when
    /// compaction moved it (or it was stored again) meanwhile, its new place is verified instead; when it is no
    /// longer held (dropped or quarantined meanwhile) it is reported with the problem "no longer held ..." (and
    /// `quarantineChunk` answers false for it). `maxBytes` below 1 is `.invalidArgument`.
    public func verifyChunks(after: ChunkID?, limit: Int, maxBytes: Int) async throws(AgadirError) -> [ChunkCheck] {
        try Self.checkPageSize(limit, "chunk verification")
        guard maxBytes >= 1 else {
            throw AgadirError(.invalidArgument, "chunk verification maxBytes is \(maxBytes); give at least 1")
        }
        return try await blocking { [readers, readFiles] () throws(AgadirError) -> [ChunkCheck] in
            let rows = try readers.withConnection { db throws(AgadirError) -> [(ChunkID, ChunkLocation)] in
                var rows: [(ChunkID, ChunkLocation)] = []
                let sql =
                    #"SELECT id, segment, "offset", stored_len, raw_len, codec, crc FROM chunks "#
                    + (after == nil ? "ORDER BY id LIMIT ?" : "WHERE id > ? ORDER BY id LIMIT ?")
                let values: [SQLiteValue] = (after.map { [.blob($0.bytes)] } ?? []) + [.int(Int64(limit))]
                try db.forEachRow(sql, values) { row throws(AgadirError) -> Bool in
                    let bytes = row.blob(0)
                    guard let id = ChunkID(bytes: bytes) else {
                        throw corruptRow("chunks", "with a \(bytes.count)-byte id", "the id is not 32 bytes")
                    }
                    rows.append(
                        (
                            id,
                            ChunkLocation(
                                segment: UInt64(bitPattern: row.int64(1)), offset: Int(row.int64(2)),
                                storedLength: Int(row.int64(3)), rawLength: Int(row.int64(4)),
                                codec: UInt8(truncatingIfNeeded: row.int64(5)),
                                crc: UInt32(truncatingIfNeeded: row.int64(6)))
                        ))
                    return true
                }
                return rows
            }
            var checks: [ChunkCheck] = []
            var bytesRead = 0
            for (id, location) in rows {
                checks.append(try Self.check(id, at: location, readers: readers, files: readFiles))
                bytesRead += max(0, location.storedLength)
                if bytesRead >= maxBytes { break }
            }
            return checks
        }
    }

    /// Verifies one chunk where the index put it; on failure, where the index puts it now (see `verifyChunks`).
    private static func check(
        _ id: ChunkID, at location: ChunkLocation, readers: ReaderPool, files: SegmentReadFiles
    ) throws(AgadirError) -> ChunkCheck {
        let stored = UInt64(max(0, location.storedLength))
        let problem: String
        do throws(AgadirError) {
            try ChunkRecordReader.verify(id, at: location, files: files)
            return ChunkCheck(id: id, storedBytes: stored, problem: nil)
        } catch {
            if error.code == .shuttingDown { throw error }
            problem = error.message
        }
        let current: ChunkLocation
        do throws(AgadirError) {
            current = try readers.withConnection { db throws(AgadirError) in try Self.location(of: id, in: db) }
        } catch {
            guard error.code == .noSuchChunk else { throw error }
            return ChunkCheck(
                id: id, storedBytes: stored,
                problem: "no longer held here (dropped or quarantined while it was verified)")
        }
        guard current != location else { return ChunkCheck(id: id, storedBytes: stored, problem: problem) }
        do throws(AgadirError) {
            try ChunkRecordReader.verify(id, at: current, files: files)
            return ChunkCheck(id: id, storedBytes: UInt64(max(0, current.storedLength)), problem: nil)
        } catch {
            if error.code == .shuttingDown { throw error }
            return ChunkCheck(id: id, storedBytes: UInt64(max(0, current.storedLength)), problem: error.message)
        }
    }
}

// MARK: - Quarantine

extension NodeStore {
    /// Longest quarantine reason kept, in UTF-8 bytes (a longer one is cut).
    public static let maxQuarantineReasonBytes = 1024

    /// Takes a chunk out of service: its index row leaves `chunks` (so containsChunks says false,
    /// readChunkRecord/readChunk answer .noSuchChunk, partitionChunks and chunkInventory skip it, claimChunks
    /// answers false so writers send it again) and goes to a quarantine table with the reason and time; its
    /// chunk_refs rows stay, and so does its standalone reference count (`chunks.refs`), saved in the quarantine
    /// row. Durable. Returns false when the chunk is not held (already quarantined or absent).
    ///
    /// Storing the id again (`putChunk` in any form) appends the bytes anew, re-indexes the chunk with the
    /// saved count and deletes the quarantine row, in one transaction. While quarantined, a standalone manifest
    /// that lists the chunk is refused (`.noSuchChunk`), and one replaced or deleted lowers the saved count.
    /// The bad record stays in its segment as dead space.
    public func quarantineChunk(_ id: ChunkID, reason: String) async throws(AgadirError) -> Bool {
        let kept = String(decoding: reason.utf8.prefix(Self.maxQuarantineReasonBytes), as: UTF8.self)
        guard case .applied(let moved) = try await write(.quarantineChunk(id, reason: kept)) else {
            throw AgadirError(.internalError, "quarantine got a result of the wrong kind")
        }
        if moved {
            logger.warning(
                "chunk quarantined", metadata: ["store/chunk": "\(id.hex)", "store/reason": "\(kept)"])
        }
        return moved
    }

    /// Quarantined chunks, oldest first (then by id), at most `limit` (1 to `maxPageSize`).
    public func quarantinedChunks(limit: Int) async throws(AgadirError) -> [QuarantinedChunk] {
        try Self.checkPageSize(limit, "quarantined chunks")
        return try await blocking { [readers] () throws(AgadirError) -> [QuarantinedChunk] in
            try readers.withConnection { db throws(AgadirError) -> [QuarantinedChunk] in
                // One read transaction: the references belong to the same snapshot as the rows.
                try db.execute("BEGIN")
                defer { try? db.execute("COMMIT") }
                var rows: [(id: ChunkID, reason: String, millis: UInt64)] = []
                try db.forEachRow(
                    "SELECT id, reason, quarantined_ms FROM quarantine ORDER BY quarantined_ms, id LIMIT ?",
                    [.int(Int64(limit))]
                ) { row throws(AgadirError) -> Bool in
                    let bytes = row.blob(0)
                    guard let id = ChunkID(bytes: bytes) else {
                        throw corruptRow("quarantine", "with a \(bytes.count)-byte id", "the id is not 32 bytes")
                    }
                    guard let reason = row.utf8Text(1) else {
                        throw corruptRow("quarantine", id.hex, "the reason is not UTF-8 text")
                    }
                    guard let millis = row.integer(2), millis >= 0 else {
                        throw corruptRow("quarantine", id.hex, "quarantined_ms is negative or not an integer")
                    }
                    rows.append((id, reason, UInt64(millis)))
                    return true
                }
                var out: [QuarantinedChunk] = []
                out.reserveCapacity(rows.count)
                for row in rows {
                    out.append(
                        QuarantinedChunk(
                            id: row.id, reason: row.reason, quarantinedMillis: row.millis,
                            references: try Self.references(of: row.id, in: db)))
                }
                return out
            }
        }
    }

    /// How many chunks are quarantined.
    public func quarantinedChunkCount() async throws(AgadirError) -> Int {
        try await read { db throws(AgadirError) -> Int in
            try db.firstRow("SELECT COUNT(*) FROM quarantine") { row in Int(row.int64(0)) } ?? 0
        }
    }
}

// MARK: - Garbage

extension NodeStore {
    /// Reference rows created before `createdBefore` (ms since the epoch), in (chunk, bucket, key, version)
    /// order strictly after `after`, at most `limit` (1 to `maxPageSize`). The order is the table's: versions
    /// compare as signed 64-bit bit patterns (the same as unsigned for every HLC time before the year 292 million).
    public func chunkReferences(
        createdBefore: UInt64, after: (chunk: ChunkID, reference: ChunkReference)?, limit: Int
    ) async throws(AgadirError) -> [(chunk: ChunkID, reference: ChunkReference, createdMillis: UInt64)] {
        try Self.checkPageSize(limit, "chunk references")
        typealias Row = (chunk: ChunkID, reference: ChunkReference, createdMillis: UInt64)
        var sql = "SELECT chunk, bucket, key, version_hlc, version_node, created_ms FROM chunk_refs WHERE 1 "
        var values: [SQLiteValue] = []
        if createdBefore <= UInt64(Int64.max) {
            sql += "AND created_ms < ? "
            values.append(.int(Int64(createdBefore)))
        }
        if let after {
            sql += "AND (chunk, bucket, key, version_hlc, version_node) > (?, ?, ?, ?, ?) "
            values += [
                .blob(after.chunk.bytes), .text(after.reference.bucket), .blob(Array(after.reference.key.utf8)),
                .int(Int64(bitPattern: after.reference.version.timestamp.rawValue)),
                .int(Int64(bitPattern: after.reference.version.node)),
            ]
        }
        sql += "ORDER BY chunk, bucket, key, version_hlc, version_node LIMIT ?"
        values.append(.int(Int64(limit)))
        let query = sql
        let parameters = values
        return try await blocking { [readers] () throws(AgadirError) -> [Row] in
            try readers.withConnection { db throws(AgadirError) -> [Row] in
                var out: [Row] = []
                try db.forEachRow(query, parameters) { row throws(AgadirError) -> Bool in
                    let bytes = row.blob(0)
                    guard let chunk = ChunkID(bytes: bytes) else {
                        throw corruptRow("chunk_refs", "with a \(bytes.count)-byte chunk id", "the id is not 32 bytes")
                    }
                    guard let bucket = row.utf8Text(1) else {
                        throw corruptRow("chunk_refs", "of chunk \(chunk.hex)", "the bucket is not UTF-8 text")
                    }
                    guard let key = String(validating: row.blob(2), as: UTF8.self) else {
                        throw corruptRow("chunk_refs", "of chunk \(chunk.hex) in '\(bucket)'", "the key is not UTF-8")
                    }
                    guard let created = row.integer(5), created >= 0 else {
                        throw corruptRow(
                            "chunk_refs", "of chunk \(chunk.hex)", "created_ms is negative or not an integer")
                    }
                    out.append(
                        (chunk, ChunkReference(bucket: bucket, key: key, version: row.version(3, 4)), UInt64(created)))
                    return true
                }
                return out
            }
        }
    }

    /// Deletes these exact reference rows, but only those whose created_ms is still < `createdBefore` (a claim
    /// since the listing refreshed the row, and it stays). Durable. Returns how many were deleted. At most
    /// `maxPageSize` (else `.invalidArgument`).
    public func deleteChunkReferences(
        _ refs: [(chunk: ChunkID, reference: ChunkReference)], createdBefore: UInt64
    ) async throws(AgadirError) -> Int {
        guard refs.count <= Self.maxPageSize else {
            throw AgadirError(
                .invalidArgument, "\(refs.count) references in one delete; send at most \(Self.maxPageSize) at a time")
        }
        guard !refs.isEmpty else { return 0 }
        guard case .removed(let count) = try await write(.deleteChunkReferences(refs, createdBefore: createdBefore))
        else {
            throw AgadirError(.internalError, "reference delete got a result of the wrong kind")
        }
        return count
    }

    /// Held chunks with no chunk_refs row and chunks.refs == 0 whose index row was written before `storedBefore`
    /// (ms), in id order after `after`, at most `limit` (1 to `maxPageSize`): garbage once the grace period has
    /// passed. (Drop them with `dropChunks(_:referencedBefore:)`, which checks again inside the writer, and
    /// also keeps a chunk a pending hint names.)
    ///
    /// One pass over the `chunks` primary key from `after`, which reads held chunks until `limit` are found:
    /// on a node with little garbage one call may read the whole index.
    public func unreferencedChunks(
        storedBefore: UInt64, after: ChunkID?, limit: Int
    ) async throws(AgadirError) -> [ChunkID] {
        try Self.checkPageSize(limit, "unreferenced chunks")
        var sql = "SELECT id FROM chunks WHERE refs = 0 "
        var values: [SQLiteValue] = []
        if storedBefore <= UInt64(Int64.max) {
            sql += "AND created_ms < ? "
            values.append(.int(Int64(storedBefore)))
        }
        if let after {
            sql += "AND id > ? "
            values.append(.blob(after.bytes))
        }
        sql += "AND NOT EXISTS (SELECT 1 FROM chunk_refs WHERE chunk_refs.chunk = chunks.id) ORDER BY id LIMIT ?"
        values.append(.int(Int64(limit)))
        let query = sql
        let parameters = values
        return try await blocking { [readers] () throws(AgadirError) -> [ChunkID] in
            try readers.withConnection { db throws(AgadirError) -> [ChunkID] in
                var out: [ChunkID] = []
                try db.forEachRow(query, parameters) { row throws(AgadirError) -> Bool in
                    let bytes = row.blob(0)
                    guard let id = ChunkID(bytes: bytes) else {
                        throw corruptRow("chunks", "with a \(bytes.count)-byte id", "the id is not 32 bytes")
                    }
                    out.append(id)
                    return true
                }
                return out
            }
        }
    }
}

// MARK: - Segment compaction

extension NodeStore {
    /// File size and live (indexed) bytes of every segment: every segment file in `DIR/chunks`, and every segment
    /// the index points at (with `fileBytes` 0 if its file is missing), by number.
    public func segmentUsage() async throws(AgadirError) -> [SegmentUsage] {
        let chunksDirectory = readFiles.chunksDirectory
        return try await blocking { [readers, readFiles] () throws(AgadirError) -> [SegmentUsage] in
            var live: [UInt64: UInt64] = [:]
            try readers.withConnection { db throws(AgadirError) in
                let sql = "SELECT segment, COUNT(*), COALESCE(SUM(stored_len), 0) FROM chunks GROUP BY segment"
                try db.forEachRow(sql) { row throws(AgadirError) -> Bool in
                    let segment = row.int64(0)
                    let count = row.int64(1)
                    let stored = row.int64(2)
                    guard segment >= 0, UInt64(segment) <= SegmentFormat.maxSegmentNumber, count >= 0, stored >= 0
                    else {
                        throw corruptRow("chunks", "of segment \(segment)", "the segment or a stored_len is impossible")
                    }
                    live[UInt64(segment)] = UInt64(stored) + UInt64(count) * UInt64(SegmentFormat.recordHeaderSize)
                    return true
                }
            }
            var files: [UInt64: UInt64] = [:]
            for name in try Posix.listDirectory(chunksDirectory) {
                guard let number = SegmentFormat.number(fromFileName: name) else { continue }
                files[number] = UInt64(Posix.sizeOfFile(atPath: chunksDirectory + "/" + name) ?? 0)
            }
            let active = readFiles.activeSegment.load(ordering: .sequentiallyConsistent)
            return Set(live.keys).union(files.keys).sorted().map { number in
                SegmentUsage(
                    segment: Int(number), fileBytes: files[number] ?? 0, liveBytes: live[number] ?? 0,
                    isActive: number == active)
            }
        }
    }

    /// Rewrites up to `maxSegments` non-active segments whose live bytes are below `liveFraction` (0...1) of
    /// their file size (and every segment with no live record), emptiest first: their live records are appended
    /// to the active segment (same record format, fsynced), the index rows point to the new places (one
    /// transaction, after the data is durable), then the old file is deleted. A segment with no live record at
    /// all is just deleted.
    ///
    /// Runs in steps of the writer thread, each copying at most 64 MiB, so writes wait at most one step. Only
    /// segments the `segments` table records, older than the newest recorded one, are compacted (files the
    /// index does not know, e.g. left by a lost database, are never touched). A record whose header or CRC-32
    /// is bad is not copied: it keeps its segment until scrubbing quarantines it. Crash-safe at every step: a
    /// crash before the index commit leaves the old records in use (the copies are past the committed length,
    /// and recovery cuts them off); after it, the old file is only garbage, recorded in `retired_segments`, and
    /// opening the store deletes it. Reads that race a compaction succeed: a read that finds its segment gone
    /// looks the chunk up again (once) and reads the new place.
    ///
    /// A segment whose step fails (an unreadable file, say) is logged and skipped; the call throws only when
    /// every segment it tried failed (or the store is closing). `.invalidArgument` for `liveFraction` outside
    /// 0...1 or `maxSegments` below 0.
    public func compactSegments(liveFraction: Double, maxSegments: Int) async throws(AgadirError) -> CompactionResult {
        guard liveFraction >= 0, liveFraction <= 1, maxSegments >= 0 else {
            throw AgadirError(
                .invalidArgument,
                "compaction needs liveFraction in 0...1 and maxSegments >= 0 (got \(liveFraction), \(maxSegments))")
        }
        var result = CompactionResult()
        guard maxSegments > 0 else { return result }
        let recorded = try await read { db throws(AgadirError) -> [UInt64] in
            var numbers: [UInt64] = []
            try db.forEachRow("SELECT number FROM segments") { row in
                if row.int64(0) > 0 { numbers.append(UInt64(row.int64(0))) }
                return true
            }
            return numbers
        }
        guard let newest = recorded.max() else { return result }
        let known = Set(recorded)
        func fraction(_ u: SegmentUsage) -> Double { u.fileBytes == 0 ? 0 : Double(u.liveBytes) / Double(u.fileBytes) }
        let candidates = try await segmentUsage()
            .filter { u in
                let number = UInt64(u.segment)
                return !u.isActive && known.contains(number) && number < newest
                    && (u.liveBytes == 0 || Double(u.liveBytes) < liveFraction * Double(u.fileBytes))
            }
            .sorted { (fraction($0), $0.segment) < (fraction($1), $1.segment) }
            .prefix(maxSegments)
        var firstError: AgadirError?
        for candidate in candidates {
            do throws(AgadirError) {
                try await compact(candidate, into: &result)
            } catch {
                if error.code == .shuttingDown { throw error }
                logger.error(
                    "segment compaction failed; the segment is kept",
                    metadata: ["store/segment": "\(candidate.segment)", "store/error": "\(error)"])
                firstError = firstError ?? error
            }
        }
        if let firstError, result.segmentsCompacted == 0, result.bytesCopied == 0 { throw firstError }
        return result
    }

    /// Steps one segment's compaction until it is removed, nothing more can be copied, or it is not eligible.
    private func compact(_ usage: SegmentUsage, into result: inout CompactionResult) async throws(AgadirError) {
        // Every step copies at least one record (56 bytes or more) or ends the loop.
        let maxSteps = Int(usage.fileBytes / UInt64(SegmentFormat.recordHeaderSize)) + 2
        for _ in 0..<maxSteps {
            let outcome = try await write(
                .compactSegment(UInt64(usage.segment), maxBytes: max(1, options.compactionStepBytes)))
            guard case .compacted(let step) = outcome else {
                throw AgadirError(.internalError, "compaction step got a result of the wrong kind")
            }
            guard step.eligible else { return }
            result.bytesCopied += step.copiedBytes
            if step.retired {
                result.segmentsCompacted += 1
                result.bytesFreed += step.freedBytes
                return
            }
            if step.copiedBytes == 0 { return }
        }
    }
}
