import AgadirCore
import Foundation
import Glibc
import Logging

/// The segment the writer appends to.
struct ActiveSegment {
    var number: UInt64
    var path: String
    var fd: Int32
    /// Bytes in the file: where the next record goes.
    var length: Int
}

/// The single writer of a store: owns the writer SQLite connection and the active segment.
///
/// Confined to the writer thread once `run` starts (the initializer runs on the opening
/// thread before that thread exists); this confinement is why `@unchecked Sendable` holds.
///
/// Each batch is one group commit, in this order (docs/storage.md, "Group commit"):
/// 1. append the records of new chunks to the active segment (rotating when full);
/// 2. `fdatasync` every segment written, and fsync `DIR/chunks` if a segment was created;
/// 3. one SQLite transaction: chunk index rows, segment lengths, then every manifest and
///    bucket operation inside its own SAVEPOINT so that one failing operation fails alone;
///    COMMIT (the WAL is fsynced, synchronous=FULL);
/// 4. resume every caller with its own result.
/// A caller is resumed only after step 3, so an acknowledged write is durable, and no index
/// row ever points at bytes that were not synced before it was committed.
final class GroupCommitWriter: @unchecked Sendable {
    private let db: SQLiteDatabase
    private let chunksDirectory: String
    private let options: StoreOptions
    private var files: any StoreFileSystem { options.fileSystem }
    private let logger: Logger
    /// Shared with readers: the active segment's number, and the segments compaction removed.
    private let readFiles: SegmentReadFiles
    private var active: ActiveSegment? {
        didSet { readFiles.activeSegment.store(active?.number ?? 0, ordering: .sequentiallyConsistent) }
    }
    private var nextSegmentNumber: UInt64
    /// Set when a segment sync failed: the kernel may have dropped dirty pages, so no later
    /// write can be trusted to be durable; every write fails until the store is reopened.
    private var poisoned: AgadirError?
    /// Rows in `hints` as of the last commit; nil until first needed (or after a failed commit),
    /// then counted once. Keeps `putHint`'s bound from counting the table on every hint.
    private var committedHintCount: Int?
    /// Hints added (positive) or deleted (negative) by the transaction in progress.
    private var batchHintDelta = 0

    init(
        db: SQLiteDatabase, chunksDirectory: String, options: StoreOptions, logger: Logger,
        readFiles: SegmentReadFiles, active: ActiveSegment?, nextSegmentNumber: UInt64
    ) {
        self.db = db
        self.chunksDirectory = chunksDirectory
        self.options = options
        self.logger = logger
        self.readFiles = readFiles
        self.active = active
        self.nextSegmentNumber = nextSegmentNumber
        readFiles.activeSegment.store(active?.number ?? 0, ordering: .sequentiallyConsistent)
    }

    /// The thread body: group-commits until the queue says stop, then closes everything.
    func run(queue: WriteQueue) {
        while true {
            let batch = queue.next(limit: max(1, options.maxBatchOperations))
            if batch.isEmpty { break }
            var resumedEarly = Set<Int>()
            let results = commit(batch.map(\.operation)) { early in
                for (i, result) in early {
                    batch[i].completion.resume(returning: result)
                    resumedEarly.insert(i)
                }
            }
            queue.recordCommit(operations: batch.count)
            for (i, (pending, result)) in zip(batch, results).enumerated() where !resumedEarly.contains(i) {
                pending.completion.resume(returning: result)
            }
        }
        if let active { close(active.fd) }
        active = nil
        db.close()
        queue.markStopped()
    }

    // MARK: One group commit

    struct RecordPlace: Equatable {
        var segment: UInt64
        var offset: Int
    }

    private struct NewChunk {
        var index: Int
        var chunk: EncodedChunk
        var segment: UInt64
        var offset: Int
    }

    /// `appended` receives the results of deferred chunk writes as soon as their bytes are
    /// written (before the sync); those callers must not be resumed again.
    func commit(
        _ operations: [WriteOperation],
        appended: (_ early: [(Int, Result<WriteOutcome, AgadirError>)]) -> Void = { _ in }
    ) -> [Result<WriteOutcome, AgadirError>] {
        var results = [Result<WriteOutcome, AgadirError>?](repeating: nil, count: operations.count)
        if let poisoned { return operations.map { _ in .failure(poisoned) } }

        // Step 1 and 2: chunk bytes, appended and synced.
        var firstOfID: [ChunkID: Int] = [:]
        var duplicateOf: [Int: Int] = [:]
        var newChunks: [NewChunk] = []
        var touchedSegments: [UInt64: Int] = [:]
        // Compaction steps of this batch: their copies are appended (and synced) with the new chunks.
        var compactions: [Int: CompactionPlan] = [:]
        for (i, op) in operations.enumerated() {
            guard case .compactSegment(let number, let maxBytes) = op else { continue }
            do throws(AgadirError) {
                compactions[i] = try planCompaction(of: number, maxBytes: maxBytes)
            } catch {
                results[i] = .failure(error)
            }
        }
        do throws(AgadirError) {
            var candidates: [(Int, EncodedChunk)] = []
            for (i, op) in operations.enumerated() {
                guard case .putChunk(let chunk, _) = op else { continue }
                if let first = firstOfID[chunk.id] {
                    duplicateOf[i] = first
                    continue
                }
                firstOfID[chunk.id] = i
                if try isIndexed(chunk.id) {
                    results[i] = .success(.chunk(stored: false))
                } else {
                    candidates.append((i, chunk))
                }
            }
            var items = candidates.map { AppendItem.chunk($0.1) }
            let copyOrder = compactions.keys.sorted()
            for i in copyOrder { items += compactions[i]?.moves.map { AppendItem.copy($0.record) } ?? [] }
            if !items.isEmpty {
                let places = try append(items, touched: &touchedSegments)
                for ((index, chunk), place) in zip(candidates, places) {
                    newChunks.append(NewChunk(index: index, chunk: chunk, segment: place.segment, offset: place.offset))
                }
                var next = candidates.count
                for i in copyOrder {
                    guard var plan = compactions[i] else { continue }
                    for m in plan.moves.indices {
                        plan.moves[m].record = []  // copied: free the bytes before the transaction
                        plan.moves[m].to = places[next]
                        next += 1
                    }
                    compactions[i] = plan
                }
            }
        } catch {
            logger.error("chunk append failed", metadata: ["store/error": "\(error)"])
            for (i, op) in operations.enumerated() where results[i] == nil {
                if case .putChunk = op, duplicateOf[i] == nil { results[i] = .failure(error) }
                if case .compactSegment = op { results[i] = .failure(error) }
            }
            compactions = [:]
            newChunks = []
            touchedSegments = [:]
        }

        // Deferred chunk writes learn their outcome now, before the sync and the index commit.
        var early: [(Int, Result<WriteOutcome, AgadirError>)] = []
        let appendedIndexes = Set(newChunks.map(\.index))
        for (i, op) in operations.enumerated() {
            guard case .putChunk(_, .deferred) = op else { continue }
            if let first = duplicateOf[i] {
                if case .some(.failure(let e)) = results[first] {
                    early.append((i, .failure(e)))
                } else {
                    early.append((i, .success(.chunk(stored: false))))
                }
            } else if let r = results[i] {
                early.append((i, r))
            } else if appendedIndexes.contains(i) {
                early.append((i, .success(.chunk(stored: true))))
            }
        }
        if !early.isEmpty { appended(early) }

        if options.compactionCrash == .beforeIndexCommit, compactions.values.contains(where: { !$0.moves.isEmpty }) {
            // Test hook: the process "dies" with the copies synced and nothing committed.
            let crash = AgadirError(.ioError, "simulated crash before the compaction's index commit")
            poisoned = crash
            return operations.map { _ in .failure(crash) }
        }

        // Step 3: one transaction.
        var transactionError: AgadirError?
        batchHintDelta = 0
        do throws(AgadirError) {
            try db.execute("BEGIN IMMEDIATE")
            do throws(AgadirError) {
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                for new in newChunks {
                    try db.run(
                        """
                        INSERT OR IGNORE INTO chunks(id, segment, "offset", stored_len, raw_len, codec, crc, refs, \
                        created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)
                        """,
                        [
                            .blob(new.chunk.id.bytes), .int(Int64(new.segment)), .int(Int64(new.offset)),
                            .int(Int64(new.chunk.stored.count)), .int(Int64(new.chunk.rawLength)),
                            .int(Int64(new.chunk.codec.rawValue)), .int(Int64(new.chunk.checksum)), .int(now),
                        ])
                    if db.changes == 1 { try restoreFromQuarantine(new.chunk.id) }
                    results[new.index] = .success(.chunk(stored: true))
                }
                for (segment, length) in touchedSegments {
                    try db.run(
                        """
                        INSERT INTO segments(number, committed_len) VALUES (?, ?)
                        ON CONFLICT(number) DO UPDATE SET committed_len = excluded.committed_len
                        """, [.int(Int64(segment)), .int(Int64(length))])
                }
                // References of chunk writes that succeeded (stored now, or already held),
                // committed with the chunk rows.
                for (i, op) in operations.enumerated() {
                    guard case .putChunk(let chunk, .referenced(let reference)) = op,
                        case .some(.success) = results[duplicateOf[i] ?? i]
                    else { continue }
                    try recordReference(reference, on: chunk.id, now: now)
                }
                for (i, op) in operations.enumerated() {
                    if case .putChunk = op { continue }
                    if case .compactSegment = op, compactions[i] == nil { continue }  // failed in step 1
                    let hintDelta = batchHintDelta
                    try db.execute("SAVEPOINT op")
                    do throws(AgadirError) {
                        if case .compactSegment = op, let plan = compactions[i] {
                            results[i] = .success(.compacted(try applyCompaction(plan)))
                        } else {
                            results[i] = .success(try apply(op, now: now, chunksInBatch: firstOfID))
                        }
                        try db.execute("RELEASE op")
                    } catch {
                        try db.execute("ROLLBACK TO op; RELEASE op")
                        batchHintDelta = hintDelta
                        results[i] = .failure(error)
                    }
                }
                try db.execute("COMMIT")
                committedHintCount = committedHintCount.map { $0 + batchHintDelta }
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        } catch {
            transactionError = error
            committedHintCount = nil
            logger.error("group commit failed", metadata: ["store/error": "\(error)"])
            // A failed COMMIT (a WAL sync error, say) may have left SQLite's view of its
            // files ahead of the disk: like a failed segment sync, nothing later can be
            // trusted to be durable, so every later write is refused until a reopen.
            poisoned = AgadirError(
                error.code == .storageFull ? .storageFull : .ioError,
                "the metadata database failed to commit (\(error.message)); writes are refused until the node restarts")
            for i in results.indices where duplicateOf[i] == nil {
                if case .putChunk(_, let write) = operations[i], write.reference == nil,
                    case .some(.success(.chunk(stored: false))) = results[i]
                {
                    continue  // already indexed before this batch, and nothing to record: still true
                }
                results[i] = .failure(error)
            }
        }
        batchHintDelta = 0

        // After the commit, segments no index row points at any more are only garbage: delete them.
        for (i, plan) in compactions {
            guard case .some(.success(.compacted(var step))) = results[i], step.retired else { continue }
            step.freedBytes = removeRetiredSegment(plan.segment)
            results[i] = .success(.compacted(step))
        }

        // Step 4: every caller gets its own result.
        return results.indices.map { i in
            if let first = duplicateOf[i] {
                switch results[first] {
                case .some(.failure(let error)): return .failure(error)
                default:
                    // Its reference went down with a failed transaction even if the chunk was held.
                    if case .putChunk(_, .referenced) = operations[i], let transactionError {
                        return .failure(transactionError)
                    }
                    return .success(.chunk(stored: false))
                }
            }
            return results[i] ?? .failure(AgadirError(.internalError, "write \(i) of a batch got no result"))
        }
    }

    private func isIndexed(_ id: ChunkID) throws(AgadirError) -> Bool {
        try db.firstRow("SELECT 1 FROM chunks WHERE id = ?", [.blob(id.bytes)]) { _ in true } ?? false
    }

    // MARK: Segments

    /// A record to append: a new chunk's (built as it is appended), or one copied by compaction.
    private enum AppendItem {
        case chunk(EncodedChunk)
        case copy([UInt8])

        var record: [UInt8] {
            switch self {
            case .chunk(let chunk): return SegmentFormat.record(chunk)
            case .copy(let bytes): return bytes
            }
        }
    }

    /// Appends the records, rotating segments as needed, and syncs everything written. Returns where
    /// each record went, in order.
    private func append(
        _ items: [AppendItem], touched: inout [UInt64: Int]
    ) throws(AgadirError) -> [RecordPlace] {
        var placed: [RecordPlace] = []
        placed.reserveCapacity(items.count)
        var buffer: [UInt8] = []
        var createdSegment = false
        do throws(AgadirError) {
            for item in items {
                let record = item.record
                var segment: ActiveSegment
                if let current = active {
                    segment = current
                } else {
                    segment = try createSegment()
                    active = segment  // so a failure below closes it
                    createdSegment = true
                }
                let end = segment.length + buffer.count
                if end > SegmentFormat.fileHeaderSize, end + record.count > options.segmentMaxBytes {
                    try flush(&buffer, into: &segment)
                    try sync { () throws(AgadirError) in try files.dataSync(segment.fd, path: segment.path) }
                    touched[segment.number] = segment.length
                    close(segment.fd)
                    active = nil
                    segment = try createSegment()
                    active = segment  // so a failure below closes it
                    createdSegment = true
                }
                let offset = segment.length + buffer.count
                placed.append(RecordPlace(segment: segment.number, offset: offset))
                buffer.append(contentsOf: record)
                if buffer.count >= Self.maxBufferedBytes { try flush(&buffer, into: &segment) }
                active = segment
            }
            if var segment = active {
                try flush(&buffer, into: &segment)
                active = segment
                try sync { () throws(AgadirError) in try files.dataSync(segment.fd, path: segment.path) }
                touched[segment.number] = segment.length
            }
            if createdSegment {
                try sync { () throws(AgadirError) in try files.syncDirectory(chunksDirectory) }
            }
        } catch {
            // Retire the segment: what was appended in this batch is dead space that no index
            // row points at. After a failed sync nothing written later can be trusted.
            if let segment = active { close(segment.fd) }
            active = nil
            throw error
        }
        return placed
    }

    /// Runs a sync; a failed sync poisons the writer (see `poisoned`).
    private func sync(_ body: () throws(AgadirError) -> Void) throws(AgadirError) {
        do throws(AgadirError) {
            try body()
        } catch {
            poisoned = AgadirError(
                error.code, "\(error.message); writes are refused until the store is reopened and recovered")
            throw error
        }
    }

    /// Bytes of records gathered before a `pwrite`: few syscalls, bounded extra memory.
    private static let maxBufferedBytes = 8 * 1024 * 1024

    private func flush(_ buffer: inout [UInt8], into segment: inout ActiveSegment) throws(AgadirError) {
        guard !buffer.isEmpty else { return }
        try files.write(segment.fd, buffer, at: segment.length, path: segment.path)
        segment.length += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    private func createSegment() throws(AgadirError) -> ActiveSegment {
        let number = nextSegmentNumber
        nextSegmentNumber += 1
        let path = chunksDirectory + "/" + SegmentFormat.fileName(number)
        let fd = try files.open(path, O_RDWR | O_CREAT | O_EXCL)
        do throws(AgadirError) {
            try files.write(fd, SegmentFormat.fileHeader(segment: number), at: 0, path: path)
        } catch {
            close(fd)
            throw error
        }
        logger.info("started segment", metadata: ["store/segment": "\(number)"])
        return ActiveSegment(number: number, path: path, fd: fd, length: SegmentFormat.fileHeaderSize)
    }

    // MARK: Metadata operations (inside the batch transaction, each in a SAVEPOINT)

    /// `chunksInBatch`: the ids of this batch's chunk writes (whose bytes step 1 stored or found held).
    private func apply(
        _ op: WriteOperation, now: Int64, chunksInBatch: [ChunkID: Int]
    ) throws(AgadirError) -> WriteOutcome {
        switch op {
        case .putChunk:
            throw AgadirError(.internalError, "chunk writes are not metadata operations")
        case .putManifest(let manifest, let encoded):
            return .manifest(try applyManifest(manifest, encoded: encoded))
        case .createBucket(let bucket):
            if try bucketExists(bucket.name) {
                throw AgadirError(.bucketAlreadyExists, "bucket '\(bucket.name)' already exists")
            }
            // A standalone bucket is a catalog record at version (0, 0); it takes the place of a
            // deleted record of the same name (BucketRecord).
            try checkRoomForBucketRecord(bucket.name)
            try db.run(
                """
                INSERT OR REPLACE INTO buckets(name, policy, created_ms, version_hlc, version_node, deleted)
                VALUES (?, ?, ?, 0, 0, 0)
                """,
                [.text(bucket.name), .text(bucket.policy), .int(Int64(bitPattern: bucket.createdMillis))])
            return .done
        case .deleteBucket(let name):
            try deleteBucket(name)
            return .done
        case .claimChunks(let ids, let reference):
            var held: [Bool] = []
            held.reserveCapacity(ids.count)
            for id in ids {
                let isHeld = try isIndexed(id)
                if isHeld { try recordReference(reference, on: id, now: now) }
                held.append(isHeld)
            }
            return .claims(held)
        case .putReplicaManifest(let manifest, let encoded):
            return .manifest(try applyManifest(manifest, encoded: encoded, asReplica: true))
        case .mergeBucketRecord(let record):
            return .applied(try mergeBucketRecord(record))
        case .mergeAccessKey(let record, let encoded):
            return .applied(try mergeAccessKey(record, encoded: encoded))
        case .putHint(let hint):
            return .hint(id: try insertHint(hint))
        case .deleteHints(let ids):
            for id in ids {
                try db.run("DELETE FROM hints WHERE id = ?", [.int(id)])
                batchHintDelta -= db.changes
            }
            return .done
        case .purgeDeletedBuckets(let before, let limit):
            try db.run(
                """
                DELETE FROM buckets WHERE name IN (
                    SELECT name FROM buckets b WHERE b.deleted = 1 AND b.version_hlc < ?
                    AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.bucket = b.name) LIMIT ?)
                """, [.int(Int64(bitPattern: before)), .int(Int64(limit))])
            return .removed(count: db.changes)
        case .dropManifests(let entries):
            var removed = 0
            for entry in entries {
                try db.run(
                    "DELETE FROM objects WHERE bucket = ? AND key = ? AND version_hlc = ? AND version_node = ?",
                    [
                        .text(entry.bucket), .blob(Array(entry.key.utf8)),
                        .int(Int64(bitPattern: entry.version.timestamp.rawValue)),
                        .int(Int64(bitPattern: entry.version.node)),
                    ])
                removed += db.changes
            }
            return .removed(count: removed)
        case .dropChunks(let ids, let referencedBefore):
            return .droppedChunks(
                try dropChunks(ids, referencedBefore: referencedBefore, keeping: chunksInBatch))
        case .quarantineChunk(let id, let reason):
            return .applied(try quarantine(id, reason: reason, now: now))
        case .deleteChunkReferences(let refs, let createdBefore):
            return .removed(count: try deleteReferences(refs, createdBefore: createdBefore))
        case .compactSegment:
            throw AgadirError(.internalError, "compaction steps are applied with their plan")
        }
    }

    // MARK: Maintenance (docs/storage.md, "Maintenance")

    /// Moves a held chunk's index row to `quarantine` with its standalone reference count; its `chunk_refs`
    /// rows stay. Even a chunk written again in this batch is quarantined: that write found it held and did not
    /// rewrite its bytes, which are the bad ones. False when the chunk is not held.
    private func quarantine(_ id: ChunkID, reason: String, now: Int64) throws(AgadirError) -> Bool {
        let refs = try db.firstRow("SELECT refs FROM chunks WHERE id = ?", [.blob(id.bytes)]) { row in row.int64(0) }
        guard let refs else { return false }
        try db.run(
            "INSERT OR REPLACE INTO quarantine(id, reason, refs, quarantined_ms) VALUES (?, ?, ?, ?)",
            [.blob(id.bytes), .text(reason), .int(max(refs, 0)), .int(now)])
        try db.run("DELETE FROM chunks WHERE id = ?", [.blob(id.bytes)])
        return true
    }

    /// A chunk indexed again (its bytes appended anew) leaves quarantine with its saved reference count.
    private func restoreFromQuarantine(_ id: ChunkID) throws(AgadirError) {
        let saved = try db.firstRow("SELECT refs FROM quarantine WHERE id = ?", [.blob(id.bytes)]) { row in
            row.int64(0)
        }
        guard let saved else { return }
        try db.run("UPDATE chunks SET refs = ? WHERE id = ?", [.int(max(saved, 0)), .blob(id.bytes)])
        try db.run("DELETE FROM quarantine WHERE id = ?", [.blob(id.bytes)])
        logger.info("quarantined chunk stored again", metadata: ["store/chunk": "\(id.hex)"])
    }

    /// Deletes the exact `chunk_refs` rows whose `created_ms` is still below the cutoff.
    private func deleteReferences(
        _ refs: [(chunk: ChunkID, reference: ChunkReference)], createdBefore: UInt64
    ) throws(AgadirError) -> Int {
        // Times are stored as Int64; a cutoff beyond them is later than every stored time.
        let cutoff: Int64? = createdBefore > UInt64(Int64.max) ? nil : Int64(createdBefore)
        var deleted = 0
        for (chunk, reference) in refs {
            var values: [SQLiteValue] = [
                .blob(chunk.bytes), .text(reference.bucket), .blob(Array(reference.key.utf8)),
                .int(Int64(bitPattern: reference.version.timestamp.rawValue)),
                .int(Int64(bitPattern: reference.version.node)),
            ]
            var sql =
                "DELETE FROM chunk_refs WHERE chunk = ? AND bucket = ? AND key = ? AND version_hlc = ? "
                + "AND version_node = ?"
            if let cutoff {
                sql += " AND created_ms < ?"
                values.append(.int(cutoff))
            }
            try db.run(sql, values)
            deleted += db.changes
        }
        return deleted
    }

    /// The live records of a segment that one compaction step moves, read from the old file (step 1).
    struct CompactionPlan {
        struct Move {
            var id: ChunkID
            var from: Int
            var length: Int
            /// The record's bytes until appended, then emptied.
            var record: [UInt8]
            /// Where the copy went (set once appended).
            var to: RecordPlace?
        }

        var segment: UInt64
        var eligible: Bool
        var moves: [Move] = []
    }

    /// Reads the first live records (by offset) of `number`, up to `maxBytes` (at least one), to copy them.
    /// Only a segment the `segments` table records, older than the newest recorded one and not the active one,
    /// is eligible: recovery resumes appending in the newest recorded segment, and numbers are never reused. A
    /// record whose header or stored-bytes CRC is bad is not copied: it stays where it is (so its segment stays
    /// too) until scrubbing quarantines it.
    private func planCompaction(of number: UInt64, maxBytes: Int) throws(AgadirError) -> CompactionPlan {
        var plan = CompactionPlan(segment: number, eligible: false)
        guard number <= SegmentFormat.maxSegmentNumber, active?.number != number else { return plan }
        let recorded =
            try db.firstRow("SELECT 1 FROM segments WHERE number = ?", [.int(Int64(number))]) { _ in
                true
            } ?? false
        let newest = try db.firstRow("SELECT MAX(number) FROM segments") { row in row.integer(0) } ?? nil
        guard recorded, let newest, Int64(number) < newest else { return plan }
        plan.eligible = true
        var rows: [(id: ChunkID, offset: Int, length: Int)] = []
        var total = 0
        try db.forEachRow(
            #"SELECT id, "offset", stored_len FROM chunks WHERE segment = ? ORDER BY "offset""#, [.int(Int64(number))]
        ) { row throws(AgadirError) -> Bool in
            let bytes = row.blob(0)
            guard let id = ChunkID(bytes: bytes) else {
                throw corruptRow("chunks", "with a \(bytes.count)-byte id", "the id is not 32 bytes")
            }
            let offset = row.int64(1)
            let stored = row.int64(2)
            guard offset >= SegmentFormat.fileHeaderSize, offset < 1 << 48,
                (0...Int64(SegmentFormat.maxStoredLength)).contains(stored)
            else {
                throw corruptRow("chunks", id.hex, "offset \(offset) or stored_len \(stored) is impossible")
            }
            let length = SegmentFormat.recordHeaderSize + Int(stored)
            if !rows.isEmpty, total + length > maxBytes { return false }
            rows.append((id, Int(offset), length))
            total += length
            return true
        }
        guard !rows.isEmpty else { return plan }
        let path = chunksDirectory + "/" + SegmentFormat.fileName(number)
        let fd = try Posix.open(path, O_RDONLY)
        defer { close(fd) }
        for row in rows {
            let record = try Posix.pread(fd, count: row.length, at: row.offset, path: path)
            if let problem = Self.recordProblem(record, id: row.id, length: row.length) {
                logger.warning(
                    "compaction leaves a damaged record in place",
                    metadata: [
                        "store/chunk": "\(row.id.hex)", "store/segment": "\(number)", "store/offset": "\(row.offset)",
                        "store/problem": "\(problem)",
                    ])
                continue
            }
            plan.moves.append(CompactionPlan.Move(id: row.id, from: row.offset, length: row.length, record: record))
        }
        return plan
    }

    /// Why a record read for copying cannot be vouched for (complete, header sound and naming the chunk, the
    /// CRC-32 of its stored bytes right), or nil.
    private static func recordProblem(_ record: [UInt8], id: ChunkID, length: Int) -> String? {
        guard record.count == length else { return "truncated (\(record.count) of \(length) bytes)" }
        let header: SegmentFormat.RecordHeader
        do throws(AgadirError) {
            header = try SegmentFormat.parseRecordHeader(record)
        } catch {
            return error.message
        }
        guard header.id == id, Int(header.storedLength) + SegmentFormat.recordHeaderSize == length else {
            return "the record there is not this chunk's"
        }
        let crc = record.withUnsafeBytes { buffer in
            Checksum.crc32(UnsafeRawBufferPointer(rebasing: buffer[SegmentFormat.recordHeaderSize...]))
        }
        return crc == header.storedCRC ? nil : "stored bytes have CRC-32 \(crc), the record says \(header.storedCRC)"
    }

    /// Points the index rows at the copies (only rows still at the old place: a chunk quarantined or dropped
    /// meanwhile is not brought back), and retires the segment once no row points at it: its `segments` row
    /// goes, a `retired_segments` row comes (so that a reopen deletes the file if this process does not).
    private func applyCompaction(_ plan: CompactionPlan) throws(AgadirError) -> CompactionStep {
        var step = CompactionStep(eligible: plan.eligible)
        guard plan.eligible else { return step }
        let segment = Int64(plan.segment)
        for move in plan.moves {
            guard let to = move.to else { continue }
            try db.run(
                #"UPDATE chunks SET segment = ?, "offset" = ? WHERE id = ? AND segment = ? AND "offset" = ?"#,
                [
                    .int(Int64(to.segment)), .int(Int64(to.offset)), .blob(move.id.bytes), .int(segment),
                    .int(Int64(move.from)),
                ])
            if db.changes == 1 { step.copiedBytes += UInt64(move.length) }
        }
        let remaining = try db.firstRow("SELECT 1 FROM chunks WHERE segment = ? LIMIT 1", [.int(segment)]) { _ in true }
        if remaining == nil {
            try db.run("DELETE FROM segments WHERE number = ?", [.int(segment)])
            try db.run("INSERT OR IGNORE INTO retired_segments(number) VALUES (?)", [.int(segment)])
            step.retired = true
        }
        return step
    }

    /// Deletes a retired segment's file (after the commit that retired it) and lets readers drop it. Returns the
    /// bytes freed; 0 when the file could not be deleted (a reopen deletes it: its `retired_segments` row stays
    /// until then).
    private func removeRetiredSegment(_ number: UInt64) -> UInt64 {
        if options.compactionCrash == .beforeFileRemoval { return 0 }
        let path = chunksDirectory + "/" + SegmentFormat.fileName(number)
        let size = Posix.sizeOfFile(atPath: path) ?? 0
        defer { readFiles.retire(number) }
        do throws(AgadirError) {
            try files.remove(path)
        } catch {
            logger.warning(
                "compacted segment could not be deleted; the next open deletes it",
                metadata: ["store/segment": "\(path)", "store/error": "\(error)"])
            return 0
        }
        do throws(AgadirError) {
            try files.syncDirectory(chunksDirectory)
        } catch {
            // Not an acknowledged write: at worst the file comes back after a crash, and the reopen deletes it.
            logger.warning("syncing the chunks directory failed", metadata: ["store/error": "\(error)"])
        }
        logger.info("removed compacted segment", metadata: ["store/segment": "\(number)", "store/bytes": "\(size)"])
        return UInt64(size)
    }

    /// Removes from the index, with their `chunk_refs` rows, the listed chunks (once each, in the order given)
    /// that nothing may still need: no reference recorded, and not stored, at or after `referencedBefore`; no
    /// standalone manifest counting it (`refs` > 0: a durable manifest never points at a missing chunk); no
    /// pending hint naming it (delivery reads its bytes); and no chunk write of this batch naming it (that
    /// write was answered "held" in step 1, before this operation ran). Ids not held are skipped. The bytes
    /// stay in their segment (dead space); a later `putChunk` of the same id appends and indexes it again,
    /// since `isIndexed` asks the table. Returns the ids removed.
    private func dropChunks(
        _ ids: [ChunkID], referencedBefore: UInt64, keeping chunksInBatch: [ChunkID: Int]
    ) throws(AgadirError) -> [ChunkID] {
        // Times are stored as Int64; a cutoff beyond them is later than every stored time.
        let cutoff: Int64? = referencedBefore > UInt64(Int64.max) ? nil : Int64(referencedBefore)
        var seen = Set<ChunkID>()
        var candidates: [ChunkID] = []
        for id in ids where seen.insert(id).inserted && chunksInBatch[id] == nil {
            let row = try db.firstRow("SELECT refs, created_ms FROM chunks WHERE id = ?", [.blob(id.bytes)]) { row in
                (refs: row.int64(0), createdMillis: row.int64(1))
            }
            guard let row, row.refs == 0 else { continue }
            if let cutoff {
                guard row.createdMillis < cutoff else { continue }
                let recent = try db.firstRow(
                    "SELECT 1 FROM chunk_refs WHERE chunk = ? AND created_ms >= ? LIMIT 1",
                    [.blob(id.bytes), .int(cutoff)]
                ) { _ in true }
                guard recent == nil else { continue }
            }
            candidates.append(id)
        }
        if !candidates.isEmpty, try pendingHintCount() > 0 {
            // `hints` has no index on the chunk: one pass over the pending hints for the whole call.
            let wanted = Set(candidates)
            var hinted = Set<ChunkID>()
            try db.forEachRow("SELECT chunk FROM hints WHERE kind = ?", [.int(HintKind.chunk.rawValue)]) { row in
                if let id = ChunkID(bytes: row.blob(0)), wanted.contains(id) { hinted.insert(id) }
                return true
            }
            candidates.removeAll { hinted.contains($0) }
        }
        for id in candidates {
            try db.run("DELETE FROM chunk_refs WHERE chunk = ?", [.blob(id.bytes)])
            try db.run("DELETE FROM chunks WHERE id = ?", [.blob(id.bytes)])
        }
        return candidates
    }

    /// A bucket exists for standalone writes when its newest catalog record is not a deletion.
    private func bucketExists(_ name: String) throws(AgadirError) -> Bool {
        try db.firstRow("SELECT 1 FROM buckets WHERE name = ? AND deleted = 0", [.text(name)]) { _ in true } ?? false
    }

    /// Records a reference, or refreshes the time of the same reference recorded before (a PUT retried, or
    /// claiming again): garbage collection deletes a reference only while it is older than its grace period.
    private func recordReference(_ reference: ChunkReference, on id: ChunkID, now: Int64) throws(AgadirError) {
        try db.run(
            """
            INSERT INTO chunk_refs(chunk, bucket, key, version_hlc, version_node, created_ms)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT(chunk, bucket, key, version_hlc, version_node)
            DO UPDATE SET created_ms = MAX(created_ms, excluded.created_ms)
            """,
            [
                .blob(id.bytes), .text(reference.bucket), .blob(Array(reference.key.utf8)),
                .int(Int64(bitPattern: reference.version.timestamp.rawValue)),
                .int(Int64(bitPattern: reference.version.node)), .int(now),
            ])
    }

    /// Applies `m` if it is newer than the stored version (last writer wins). A standalone
    /// manifest needs its bucket and its chunks here and moves reference counts; a replica
    /// (`asReplica`) needs neither and leaves `chunks.refs` alone, including the counts of the
    /// version it replaces.
    private func applyManifest(
        _ m: ObjectManifest, encoded: [UInt8], asReplica: Bool = false
    ) throws(AgadirError) -> PutManifestOutcome {
        if !asReplica, try !bucketExists(m.bucket) {
            throw AgadirError(.noSuchBucket, "bucket '\(m.bucket)' does not exist on this node; create it first")
        }
        let key = Array(m.key.utf8)
        let current = try db.firstRow(
            "SELECT version_hlc, version_node, manifest FROM objects WHERE bucket = ? AND key = ?",
            [.text(m.bucket), .blob(key)]
        ) { row in
            (
                version: ObjectVersion(
                    timestamp: HLCTimestamp(rawValue: UInt64(bitPattern: row.int64(0))),
                    node: UInt64(bitPattern: row.int64(1))),
                manifest: row.blob(2)
            )
        }
        if let current, !(m.version > current.version) {
            return .superseded(current: current.version)
        }
        for (id, count) in asReplica ? [] : Self.referenceCounts(m.chunkRefs) {
            try db.run("UPDATE chunks SET refs = refs + ? WHERE id = ?", [.int(count), .blob(id.bytes)])
            guard db.changes == 1 else {
                throw AgadirError(
                    .noSuchChunk,
                    "manifest of '\(m.bucket)/\(m.key)' references chunk \(id.hex), which this node does not hold; "
                        + "store the chunk first")
            }
        }
        if let current, !asReplica {
            try releaseReferences(ofEncoded: current.manifest, what: "\(m.bucket)/\(m.key)")
        }
        let inlineSize: Int64
        if case .inline(let data) = m.body { inlineSize = Int64(data.count) } else { inlineSize = 0 }
        try db.run(
            """
            INSERT OR REPLACE INTO objects(bucket, key, version_hlc, version_node, tombstone, size, manifest, etag,
            content_type, inline_size, khash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(m.bucket), .blob(key), .int(Int64(bitPattern: m.version.timestamp.rawValue)),
                .int(Int64(bitPattern: m.version.node)), .int(m.isTombstone ? 1 : 0),
                .int(Int64(bitPattern: m.size)), .blob(encoded), .blob(m.etag.bytes), .text(m.contentType),
                .int(inlineSize), .int(Int64(KeyHash.of(bucket: m.bucket, key: m.key))),
            ])
        return .applied(replaced: current?.version)
    }

    /// Decrements the reference counts of the chunks an encoded manifest lists. A manifest
    /// that no longer decodes is logged and skipped: its chunks keep their counts, which can
    /// only delay garbage collection, never lose data.
    private func releaseReferences(ofEncoded encoded: [UInt8], what: String) throws(AgadirError) {
        let old: ObjectManifest
        do throws(AgadirError) {
            old = try ManifestCodec.decode(encoded)
        } catch {
            logger.error(
                "stored manifest does not decode; its chunk references are kept",
                metadata: ["store/object": "\(what)", "store/error": "\(error)"])
            return
        }
        for (id, count) in Self.referenceCounts(old.chunkRefs) {
            try db.run(
                "UPDATE chunks SET refs = MAX(refs - ?, 0) WHERE id = ?", [.int(count), .blob(id.bytes)])
            if db.changes == 0 {
                // A quarantined chunk keeps its count for when it is stored again.
                try db.run(
                    "UPDATE quarantine SET refs = MAX(refs - ?, 0) WHERE id = ?", [.int(count), .blob(id.bytes)])
            }
        }
    }

    private func deleteBucket(_ name: String) throws(AgadirError) {
        guard try bucketExists(name) else {
            throw AgadirError(.noSuchBucket, "bucket '\(name)' does not exist on this node")
        }
        let live = try db.firstRow(
            "SELECT key FROM objects WHERE bucket = ? AND tombstone = 0 LIMIT 1", [.text(name)]
        ) { row in String(decoding: row.blob(0), as: UTF8.self) }
        if let live {
            throw AgadirError(
                .bucketNotEmpty, "bucket '\(name)' still holds objects (for example '\(live)'); delete them first")
        }
        var remaining: [(String, [UInt8])] = []
        try db.forEachRow("SELECT key, manifest FROM objects WHERE bucket = ?", [.text(name)]) { row in
            remaining.append((String(decoding: row.blob(0), as: UTF8.self), row.blob(1)))
            return true
        }
        for (key, manifest) in remaining { try releaseReferences(ofEncoded: manifest, what: "\(name)/\(key)") }
        try db.run("DELETE FROM objects WHERE bucket = ?", [.text(name)])
        try db.run("DELETE FROM buckets WHERE name = ?", [.text(name)])
    }

    // MARK: Bucket catalog

    /// The (version_hlc, version_node) of the row `sql` selects by `key`, if any.
    private func storedVersion(_ sql: String, _ key: String) throws(AgadirError) -> ObjectVersion? {
        try db.firstRow(sql, [.text(key)]) { row in
            ObjectVersion(
                timestamp: HLCTimestamp(rawValue: UInt64(bitPattern: row.int64(0))),
                node: UInt64(bitPattern: row.int64(1)))
        }
    }

    /// Applies `record` when it is newer than the stored record of its name, or none is stored.
    private func mergeBucketRecord(_ record: BucketRecord) throws(AgadirError) -> Bool {
        if let stored = try storedVersion("SELECT version_hlc, version_node FROM buckets WHERE name = ?", record.name) {
            guard record.version > stored else { return false }
        } else {
            try checkRoomForBucketRecord(record.name)
        }
        try db.run(
            """
            INSERT OR REPLACE INTO buckets(
                name, policy, created_ms, version_hlc, version_node, deleted, max_bytes, max_objects, gen_hlc, gen_node)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(record.name), .text(record.policy), .int(Int64(bitPattern: record.createdMillis)),
                .int(Int64(bitPattern: record.version.timestamp.rawValue)),
                .int(Int64(bitPattern: record.version.node)), .int(record.deleted ? 1 : 0),
                .int(Int64(bitPattern: record.maxBytes)), .int(Int64(bitPattern: record.maxObjects)),
                .int(Int64(bitPattern: record.generation.timestamp.rawValue)),
                .int(Int64(bitPattern: record.generation.node)),
            ])
        return true
    }

    /// Applies `record` when it is newer than the stored record of its id, or none is stored.
    private func mergeAccessKey(_ record: AccessKeyRecord, encoded: [UInt8]) throws(AgadirError) -> Bool {
        if let stored = try storedVersion("SELECT version_hlc, version_node FROM access_keys WHERE id = ?", record.id) {
            guard record.version > stored else { return false }
        } else {
            let count = try db.firstRow("SELECT COUNT(*) FROM access_keys") { row in row.int64(0) } ?? 0
            guard count < Int64(NodeStore.maxAccessKeys) else {
                throw AgadirError(
                    .storageFull,
                    "the node holds \(count) access keys, the most it keeps (\(NodeStore.maxAccessKeys)); "
                        + "key \(record.id) was not recorded: remove unused keys (`agadir admin key rm`)")
            }
        }
        try db.run(
            "INSERT OR REPLACE INTO access_keys(id, record, version_hlc, version_node) VALUES (?, ?, ?, ?)",
            [
                .text(record.id), .blob(encoded), .int(Int64(bitPattern: record.version.timestamp.rawValue)),
                .int(Int64(bitPattern: record.version.node)),
            ])
        return true
    }

    /// Refuses a new name once the catalog holds `NodeStore.maxBucketRecords` records.
    private func checkRoomForBucketRecord(_ name: String) throws(AgadirError) {
        let exists = try db.firstRow("SELECT 1 FROM buckets WHERE name = ?", [.text(name)]) { _ in true } ?? false
        guard !exists else { return }
        let count = try db.firstRow("SELECT COUNT(*) FROM buckets") { row in row.int64(0) } ?? 0
        guard count < Int64(NodeStore.maxBucketRecords) else {
            throw AgadirError(
                .storageFull,
                "the bucket catalog holds \(count) records, the most a node keeps (\(NodeStore.maxBucketRecords)); "
                    + "bucket '\(name)' was not recorded")
        }
    }

    // MARK: Hints

    private func insertHint(_ hint: EncodedHint) throws(AgadirError) -> Int64 {
        if let chunk = hint.chunk, try !isIndexed(chunk) {
            throw AgadirError(
                .noSuchChunk,
                "hint for node '\(hint.target)' names chunk \(chunk.hex), which this node does not hold; "
                    + "store it with putChunk(_:reference:) first")
        }
        let pending = try pendingHintCount()
        guard pending < options.maxHints else {
            throw AgadirError(
                .storageFull,
                "\(pending) hints are pending, the most this node parks (maxHints = \(options.maxHints)); "
                    + "hint for node '\(hint.target)' refused: bring the node back or raise maxHints")
        }
        try db.run(
            """
            INSERT INTO hints(target, bucket, kind, chunk, manifest, reference, created_ms)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(hint.target), .text(hint.bucket), .int(hint.kind.rawValue),
                hint.chunk.map { .blob($0.bytes) } ?? .null, hint.manifest.map { .blob($0) } ?? .null,
                hint.reference.map { .blob($0) } ?? .null, .int(Int64(bitPattern: hint.createdMillis)),
            ])
        batchHintDelta += 1
        return db.lastInsertRowID
    }

    /// Rows in `hints` as the transaction in progress sees them.
    private func pendingHintCount() throws(AgadirError) -> Int {
        if let committedHintCount { return committedHintCount + batchHintDelta }
        let now = try db.firstRow("SELECT COUNT(*) FROM hints") { row in Int(row.int64(0)) } ?? 0
        committedHintCount = now - batchHintDelta
        return now
    }

    /// Distinct chunk ids with their multiplicity, in order of first appearance.
    static func referenceCounts(_ refs: [ChunkRef]) -> [(ChunkID, Int64)] {
        var order: [ChunkID] = []
        var counts: [ChunkID: Int64] = [:]
        for ref in refs {
            if counts[ref.id] == nil { order.append(ref.id) }
            counts[ref.id, default: 0] += 1
        }
        return order.map { ($0, counts[$0] ?? 0) }
    }
}
