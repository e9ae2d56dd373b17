import AgadirCore
import Dispatch
import Synchronization

/// How a chunk write is acknowledged, and what is recorded with it.
enum ChunkWrite: Sendable {
    /// Resumed after the sync and the index commit.
    case durable
    /// Resumed once the bytes are written, before the sync (`ChunkDurability.deferred`).
    case deferred
    /// Durable, and the reference is recorded in `chunk_refs` in the same transaction.
    case referenced(ChunkReference)

    var reference: ChunkReference? {
        if case .referenced(let reference) = self { return reference }
        return nil
    }
}

/// One write a caller waits for.
enum WriteOperation: Sendable {
    case putChunk(EncodedChunk, ChunkWrite)
    /// The manifest and its `ManifestCodec` encoding (done by the caller, off the writer thread).
    case putManifest(ObjectManifest, encoded: [UInt8])
    case createBucket(BucketInfo)
    case deleteBucket(String)
    /// Records the reference on each listed chunk that is held (`NodeStore.claimChunks`).
    case claimChunks([ChunkID], ChunkReference)
    /// Last writer wins without bucket, chunk or reference-count bookkeeping.
    case putReplicaManifest(ObjectManifest, encoded: [UInt8])
    case mergeBucketRecord(BucketRecord)
    /// Last writer wins per key id; the record's JSON encoding done by the caller.
    case mergeAccessKey(AccessKeyRecord, encoded: [UInt8])
    /// Removes deletion records of buckets older than the cutoff (HLC raw value) whose name
    /// holds no manifest any more (`NodeStore.purgeDeletedBuckets`).
    case purgeDeletedBuckets(before: UInt64, limit: Int)
    case putHint(EncodedHint)
    case deleteHints([Int64])
    /// Deletes each (bucket, key) row whose stored version is the given one (`NodeStore.dropManifests`).
    case dropManifests([(bucket: String, key: String, version: ObjectVersion)])
    /// Removes the chunks not referenced or stored since `referencedBefore` (`NodeStore.dropChunks`).
    case dropChunks([ChunkID], referencedBefore: UInt64)
    /// Moves a held chunk's index row to `quarantine` (`NodeStore.quarantineChunk`).
    case quarantineChunk(ChunkID, reason: String)
    /// Deletes these `chunk_refs` rows if still created before the cutoff (`NodeStore.deleteChunkReferences`).
    case deleteChunkReferences([(chunk: ChunkID, reference: ChunkReference)], createdBefore: UInt64)
    /// Copies up to `maxBytes` of the segment's live records to the active segment, points the index at the
    /// copies, and removes the segment once nothing points at it (`NodeStore.compactSegments`).
    case compactSegment(UInt64, maxBytes: Int)
}

/// What one `compactSegment` operation did.
struct CompactionStep: Sendable, Equatable {
    /// False when the segment may not be compacted (the active one, the newest recorded, or one the
    /// `segments` table does not know); nothing was done.
    var eligible = true
    /// Bytes of records (headers included) copied and re-pointed.
    var copiedBytes: UInt64 = 0
    /// True when no index row points at the segment any more: it left `segments` for `retired_segments`.
    var retired = false
    /// Bytes of the segment file deleted (0 when retired but the file could not be deleted yet).
    var freedBytes: UInt64 = 0
}

enum WriteOutcome: Sendable {
    case chunk(stored: Bool)
    case manifest(PutManifestOutcome)
    case claims([Bool])
    case applied(Bool)
    case hint(id: Int64)
    /// Rows removed (`dropManifests`).
    case removed(count: Int)
    /// The chunks removed from the index, in the order asked (`dropChunks`).
    case droppedChunks([ChunkID])
    case compacted(CompactionStep)
    case done
}

typealias WriteCompletion = CheckedContinuation<Result<WriteOutcome, AgadirError>, Never>

struct PendingWrite: Sendable {
    var operation: WriteOperation
    var completion: WriteCompletion
}

/// The hand-over point between callers and the writer thread.
///
/// Callers append under a mutex and signal a semaphore; the writer takes everything queued
/// (up to a batch limit) in one go, which is what turns many concurrent writes into one
/// group commit. Once stopping, new writes fail with `.shuttingDown`; queued ones still run.
final class WriteQueue: Sendable {
    private struct State {
        var pending: [PendingWrite] = []
        var stopping = false
        var stopped = false
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
        var counters = StoreWriterCounters()
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)

    func submit(_ operation: WriteOperation, _ completion: WriteCompletion) {
        let accepted = state.withLock { state -> Bool in
            if state.stopping { return false }
            state.pending.append(PendingWrite(operation: operation, completion: completion))
            return true
        }
        if accepted {
            wake.signal()
        } else {
            completion.resume(returning: .failure(AgadirError(.shuttingDown, "the store is closing; write refused")))
        }
    }

    /// Blocks until writes are queued and returns up to `limit` of them, oldest first; returns
    /// an empty array once stopping and nothing is left.
    func next(limit: Int) -> [PendingWrite] {
        while true {
            let taken = state.withLock { state -> [PendingWrite]? in
                if !state.pending.isEmpty {
                    let n = min(limit, state.pending.count)
                    let batch = Array(state.pending.prefix(n))
                    state.pending.removeFirst(n)
                    return batch
                }
                return state.stopping ? [] : nil
            }
            if let taken { return taken }
            wake.wait()
        }
    }

    /// Asks the writer to finish what is queued and exit; `waiter` is resumed when it has.
    func requestStop(waiter: CheckedContinuation<Void, Never>?) {
        let resumeNow = state.withLock { state -> Bool in
            state.stopping = true
            if state.stopped { return true }
            if let waiter { state.stopWaiters.append(waiter) }
            return false
        }
        if resumeNow { waiter?.resume() }
        wake.signal()
    }

    /// Called by the writer thread as its last act.
    func markStopped() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.stopped = true
            defer { state.stopWaiters.removeAll() }
            return state.stopWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func recordCommit(operations: Int) {
        state.withLock { state in
            state.counters.commitCount += 1
            state.counters.operationCount += operations
            state.counters.largestBatch = max(state.counters.largestBatch, operations)
        }
    }

    var counters: StoreWriterCounters { state.withLock { $0.counters } }
}
