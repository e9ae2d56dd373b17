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

    /// The defaults: 256 MiB segments, 4 readers, 1024 operations per group commit,
    /// 1_000_000 pending hints.
    public init() {
        segmentMaxBytes = 256 * 1024 * 1024
        readerCount = 4
        maxBatchOperations = 1024
        maxHints = 1_000_000
    }
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
