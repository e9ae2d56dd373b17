import AgadirCore

/// Tuning of a `NodeStore`. Every field has a documented default; `init()` gives them all.
public struct StoreOptions: Sendable {
    /// A segment file is closed and a new one started once appending the next record would
    /// make it larger than this many bytes (a single record larger than this still gets a
    /// segment of its own). Default 256 MiB.
    public var segmentMaxBytes: Int
    /// Number of read-only SQLite connections used by concurrent reads. Default 4.
    public var readerCount: Int
    /// Most operations the writer thread takes into one group commit. Default 1024.
    public var maxBatchOperations: Int
    /// Most hints (writes parked for a replica that was down) pending at once; `putHint`
    /// beyond it fails with `.storageFull`. Default 1_000_000.
    public var maxHints: Int
    /// Threads of the store's blocking I/O pool (segment reads, index scans, and point
    /// reads that found no idle connection). Default 4 (`readerCount`).
    public var ioThreads: Int
    /// Most record bytes one compaction step copies while holding the writer (tests lower it).
    var compactionStepBytes = 64 * 1024 * 1024
    /// Tests only: where a compaction step stops as if the process had died there.
    var compactionCrash: CompactionCrashPoint?
    /// The disk the store changes files through (tests swap in a simulated one).
    var fileSystem: any StoreFileSystem = PosixFileSystem()

    /// The defaults: 256 MiB segments, 4 readers, 1024 operations per group commit,
    /// 1_000_000 pending hints, 4 I/O threads.
    public init() {
        segmentMaxBytes = 256 * 1024 * 1024
        readerCount = 4
        maxBatchOperations = 1024
        maxHints = 1_000_000
        ioThreads = 4
    }
}

/// Where a simulated crash stops a compaction step (tests of `NodeStore.compactSegments`).
enum CompactionCrashPoint: Sendable {
    /// After the copies are written and synced, before the transaction that points the index at them:
    /// the writer stops committing anything (as a dead process would) until the store is reopened.
    case beforeIndexCommit
    /// After that transaction commits, before the old segment file is deleted.
    case beforeFileRemoval
}

/// Counters of the writer thread, for tests and metrics.
public struct StoreWriterCounters: Sendable, Hashable {
    /// Group commits carried out (each one: at most one segment sync and one SQLite commit).
    public var commitCount: Int = 0
    /// Operations (chunk puts, manifest puts, bucket changes) completed by those commits.
    public var operationCount: Int = 0
    /// Largest number of operations in a single commit.
    public var largestBatch: Int = 0

    public init() {}
}

/// The result of `NodeStore.putManifest`.
public enum PutManifestOutcome: Sendable, Equatable {
    /// The manifest is now the stored version; `replaced` is the version it replaced
    /// (tombstones included), `nil` when the key was new.
    case applied(replaced: ObjectVersion?)
    /// The stored version is newer or equal (last writer wins); nothing changed.
    case superseded(current: ObjectVersion)
}

/// When `NodeStore.putChunk` returns: after the sync and index commit, or as soon as the
/// bytes are written (see `putChunk`).
public enum ChunkDurability: Sendable, Equatable {
    case durable
    case deferred
}
