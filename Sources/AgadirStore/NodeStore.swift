import AgadirCore
import Dispatch
import Foundation
import Logging
import NIOPosix
import Synchronization

/// A node's local storage under one data directory: a content-addressed, deduplicated,
/// crash-safe chunk store plus the metadata store (buckets and object manifests).
///
/// Layout of the directory (docs/storage.md): `meta.sqlite` (index and metadata, WAL),
/// `chunks/seg-NNNNNNNN.agseg` (append-only segment files) and `LOCK` (held exclusively while
/// open). Every write is acknowledged only once it is durable: it survives `kill -9` and
/// power loss. Writes go through one writer thread doing group commit; reads run on a
/// Dispatch queue with a pool of read-only SQLite connections, never on the Swift
/// cooperative pool. Every chunk read is verified end to end.
public final class NodeStore: Sendable {
    /// The data directory this store was opened on.
    public let directory: String

    /// Most records the bucket catalog keeps (deleted ones included): a new name beyond it is
    /// refused with `.storageFull` by `createBucket` and `mergeBucketRecord`.
    public static let maxBucketRecords = 100_000
    /// Most access key records (deleted ones included) a node keeps.
    public static let maxAccessKeys = 10_000

    let logger: Logger
    let readers: ReaderPool
    let readFiles: SegmentReadFiles
    /// The bounded pool every blocking read runs on (docs/architecture.md, "Blocking I/O"):
    /// never the cooperative pool, never an unbounded number of threads. The node's gossip
    /// shares it for its file writes and name lookups.
    public let ioPool: NIOThreadPool
    let options: StoreOptions
    private let queue: WriteQueue
    private let lock: DirectoryLock
    /// Counts changes to the bucket catalog; a cache of catalog records is valid while it
    /// has not moved since the record was read (`catalogGeneration`).
    let catalogChanges = Atomic<UInt64>(0)
    /// Counts changes to the access keys (`accessKeyGeneration`).
    let accessKeyChanges = Atomic<UInt64>(0)

    private init(
        directory: String, options: StoreOptions, logger: Logger, readers: ReaderPool, readFiles: SegmentReadFiles,
        queue: WriteQueue, lock: DirectoryLock
    ) {
        self.directory = directory
        self.options = options
        self.logger = logger
        self.readers = readers
        self.readFiles = readFiles
        self.queue = queue
        self.lock = lock
        ioPool = NIOThreadPool(numberOfThreads: options.ioThreads)
        ioPool.start()
    }

    /// Opens (creating if needed) the store in `directory`, recovers it after a crash, and
    /// starts its writer thread.
    ///
    /// Throws `.ioError` when another process (or another `NodeStore`) has the directory open,
    /// when `meta.sqlite` has a schema newer than this build, or when the disk fails;
    /// `.invalidArgument` for unusable options.
    public static func open(
        directory: String, options: StoreOptions = StoreOptions(), logger: Logger
    ) throws(AgadirError) -> NodeStore {
        guard options.segmentMaxBytes >= 4096, options.readerCount >= 1, options.maxBatchOperations >= 1,
            options.maxHints >= 0, (1...256).contains(options.ioThreads)
        else {
            throw AgadirError(
                .invalidArgument,
                "store options need segmentMaxBytes >= 4096, readerCount >= 1, maxBatchOperations >= 1, "
                    + "maxHints >= 0 and ioThreads in 1...256")
        }
        let chunksDirectory = directory + "/chunks"
        if try Posix.makeDirectory(directory) {
            // The new directory's own entry must survive a power cut too.
            try Posix.syncDirectory(
                (directory as NSString).deletingLastPathComponent.isEmpty
                    ? "." : (directory as NSString).deletingLastPathComponent)
        }
        let lock = try DirectoryLock(directory: directory)
        if try Posix.makeDirectory(chunksDirectory) { try Posix.syncDirectory(directory) }
        let dbPath = directory + "/meta.sqlite"
        let files = options.fileSystem
        let db = try SQLiteDatabase(path: dbPath, readOnly: false, vfs: files.sqliteVFS)
        if let from = try MetadataSchema.prepareWriter(db) {
            logger.info(
                "metadata schema migrated",
                metadata: ["store/schema-from": "\(from)", "store/schema-to": "\(MetadataSchema.currentVersion)"])
        }
        try files.syncDirectory(directory)  // the entries of meta.sqlite and its WAL
        let recovered = try SegmentRecovery.recover(
            db: db, chunksDirectory: chunksDirectory, files: files, logger: logger)
        let readers: ReaderPool
        do throws(AgadirError) {
            readers = try ReaderPool(path: dbPath, count: options.readerCount, vfs: files.sqliteVFS)
        } catch {
            if let active = recovered.active { Glibc.close(active.fd) }
            throw error
        }
        let readFiles = SegmentReadFiles(chunksDirectory: chunksDirectory)
        let writer = GroupCommitWriter(
            db: db, chunksDirectory: chunksDirectory, options: options, logger: logger, readFiles: readFiles,
            active: recovered.active, nextSegmentNumber: recovered.nextSegmentNumber)
        let queue = WriteQueue()
        let thread = Thread { writer.run(queue: queue) }
        thread.name = "agadir-store-writer"
        thread.start()
        logger.info(
            "store open",
            metadata: [
                "store/directory": "\(directory)",
                "store/active-segment": "\(recovered.active.map { "\($0.number)@\($0.length)" } ?? "none")",
            ])
        return NodeStore(
            directory: directory, options: options, logger: logger, readers: readers, readFiles: readFiles,
            queue: queue, lock: lock)
    }

    /// Finishes every queued write, stops the writer thread and closes files and connections.
    /// Later calls return at once; later operations fail with `.shuttingDown`.
    public func close() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            queue.requestStop(waiter: waiter)
        }
        readers.close()
        readFiles.closeAll()
        try? await ioPool.shutdownGracefully()
        lock.release()
    }

    deinit {
        // Never leave the writer thread waiting forever; `close()` is the orderly way.
        queue.requestStop(waiter: nil)
    }

    /// Group-commit counters: how many commits carried how many operations.
    public var writerCounters: StoreWriterCounters { queue.counters }

    // MARK: Writes

    func write(_ operation: WriteOperation) async throws(AgadirError) -> WriteOutcome {
        let result = await withCheckedContinuation { (completion: WriteCompletion) in
            queue.submit(operation, completion)
        }
        return try result.get()
    }

    /// Stores a chunk unless a chunk with its id is already stored. Returns true when it was
    /// newly stored, false when it was already there.
    ///
    /// With `.durable` (the default) it returns only once the chunk is durable and indexed.
    /// With `.deferred` it returns once the bytes are written to the segment (not yet
    /// synced): the group commit that syncs and indexes them completes before any later
    /// write is applied, so a manifest submitted afterwards that references the chunk is
    /// durable only after the chunk is; and if that commit fails, the chunk is not indexed
    /// and such a manifest is refused with `.noSuchChunk`. A PUT uses it to keep streaming
    /// while the disk syncs; only the manifest's answer is an acknowledgement.
    ///
    /// Checks cheaply that the chunk is consistent (CRC-32 of `stored` equals `checksum`,
    /// lengths within bounds, a raw chunk's length equals `rawLength`) but does not re-hash:
    /// the caller vouches that `id` is the SHA-256 of the decoded bytes (reads verify it).
    @discardableResult
    public func putChunk(_ chunk: EncodedChunk, durability: ChunkDurability = .durable) async throws(AgadirError)
        -> Bool
    {
        try Self.checkConsistency(chunk)
        let mode: ChunkWrite = durability == .deferred ? .deferred : .durable
        guard case .chunk(let stored) = try await write(.putChunk(chunk, mode)) else {
            throw AgadirError(.internalError, "chunk write got a result of the wrong kind")
        }
        return stored
    }

    /// The cheap checks of a chunk given to `putChunk`: lengths within bounds, a raw chunk's
    /// length, and the CRC-32 of the stored bytes (not the SHA-256).
    static func checkConsistency(_ chunk: EncodedChunk) throws(AgadirError) {
        guard Int(chunk.rawLength) <= ChunkCodec.maxRawLength,
            chunk.stored.count <= SegmentFormat.maxStoredLength
        else {
            throw AgadirError(
                .invalidArgument,
                "chunk \(chunk.id.hex) claims \(chunk.rawLength) raw and holds \(chunk.stored.count) stored bytes; "
                    + "the limit is \(ChunkCodec.maxRawLength) raw bytes")
        }
        guard chunk.codec != .raw || chunk.stored.count == Int(chunk.rawLength) else {
            throw AgadirError(
                .bodyLengthMismatch,
                "raw chunk \(chunk.id.hex) holds \(chunk.stored.count) bytes but claims \(chunk.rawLength)")
        }
        let crc = Checksum.crc32(chunk.stored)
        guard crc == chunk.checksum else {
            throw AgadirError(
                .checksumMismatch,
                "chunk \(chunk.id.hex): stored bytes have CRC-32 \(crc), the chunk claims \(chunk.checksum)")
        }
    }

    /// Creates a bucket; `.bucketAlreadyExists` if one has that name.
    ///
    /// The bucket is recorded in the catalog at version `ObjectVersion.zero`, not deleted, in
    /// place of a deleted record of that name if there is one (`BucketRecord`). `.storageFull`
    /// when the catalog already holds `maxBucketRecords` names.
    public func createBucket(_ bucket: BucketInfo) async throws(AgadirError) {
        try Names.validateBucket(bucket.name)
        defer { catalogChanges.wrappingAdd(1, ordering: .sequentiallyConsistent) }
        _ = try await write(.createBucket(bucket))
    }

    /// Moves on every write to the bucket catalog (after the write): read it before reading a
    /// record, and the record is current while the generation has not moved.
    public var catalogGeneration: UInt64 { catalogChanges.load(ordering: .sequentiallyConsistent) }

    /// Deletes a bucket: `.noSuchBucket` if it does not exist, `.bucketNotEmpty` while any live
    /// object remains. Its tombstones go with it (their chunk references are released), and so
    /// does its catalog record (standalone mode; the cluster writes deletion records instead).
    public func deleteBucket(_ name: String) async throws(AgadirError) {
        defer { catalogChanges.wrappingAdd(1, ordering: .sequentiallyConsistent) }
        _ = try await write(.deleteBucket(name))
    }

    /// Stores `manifest` if its version is newer than the stored one (last writer wins);
    /// tombstones are manifests with `isTombstone`. Durable on return.
    ///
    /// Applying a manifest takes a reference on each chunk it lists (with multiplicity) and
    /// releases those of the manifest it replaces, in the same transaction. Throws
    /// `.noSuchBucket` when the bucket is missing and `.noSuchChunk` when a listed chunk is not
    /// stored on this node; `.invalidKey`/`.invalidArgument` when the manifest cannot be
    /// stored faithfully (key rules, or a field too long for `ManifestCodec`).
    @discardableResult
    public func putManifest(_ manifest: ObjectManifest) async throws(AgadirError) -> PutManifestOutcome {
        let encoded = try Self.encodeFaithfully(manifest)
        guard case .manifest(let outcome) = try await write(.putManifest(manifest, encoded: encoded)) else {
            throw AgadirError(.internalError, "manifest write got a result of the wrong kind")
        }
        return outcome
    }

    /// The `ManifestCodec` encoding of a manifest whose key follows the key rules, checked to
    /// decode back to the same manifest.
    static func encodeFaithfully(_ manifest: ObjectManifest) throws(AgadirError) -> [UInt8] {
        try Names.validateKey(manifest.key)
        let encoded = ManifestCodec.encode(manifest)
        // The codec clamps over-long fields when encoding; a manifest that does not come back
        // identical would be stored damaged, so it is refused here instead.
        guard (try? ManifestCodec.decode(encoded)) == manifest else {
            throw AgadirError(
                .invalidArgument,
                "manifest of '\(manifest.bucket)/\(manifest.key)' exceeds the limits of the manifest format "
                    + "(strings up to 65535 bytes, inline bodies up to \(ManifestCodec.maxInlineBytes) bytes)")
        }
        return encoded
    }

    // MARK: Blocking work off the cooperative pool

    /// Runs `body` on the I/O pool and resumes with its result (`.shuttingDown` once the
    /// store is closed).
    func blocking<T: Sendable>(
        _ body: @escaping @Sendable () throws(AgadirError) -> T
    ) async throws(AgadirError) -> T {
        let result: Result<T, AgadirError>
        do {
            result = try await ioPool.runIfActive { Result { () throws(AgadirError) -> T in try body() } }
        } catch {
            throw AgadirError(.shuttingDown, "the store is closed")
        }
        return try result.get()
    }

    /// A metadata read: on the calling task at once when a connection is idle (a point read
    /// costs less than the hop to the pool and back), else on the I/O pool, which may wait
    /// for one. The calling task never blocks a thread of the cooperative pool.
    /// The rows `query` selects, each made an entry by `entry` (given the row and how many
    /// entries came before it), read on a reader connection of the blocking pool.
    func rows<Entry: Sendable>(
        _ query: String, _ parameters: [SQLiteValue],
        _ entry: @escaping @Sendable (SQLiteRow, Int) throws(AgadirError) -> Entry
    ) async throws(AgadirError) -> [Entry] {
        try await blocking { [readers] () throws(AgadirError) -> [Entry] in
            try readers.withConnection { db throws(AgadirError) -> [Entry] in
                var out: [Entry] = []
                try db.forEachRow(query, parameters) { row throws(AgadirError) -> Bool in
                    out.append(try entry(row, out.count))
                    return true
                }
                return out
            }
        }
    }

    func read<T: Sendable>(
        _ body: @escaping @Sendable (SQLiteDatabase) throws(AgadirError) -> T
    ) async throws(AgadirError) -> T {
        if let now = try readers.withIdleConnection(body) { return now }
        return try await blocking { [readers] () throws(AgadirError) -> T in try readers.withConnection(body) }
    }
}
