import AgadirCore
import AgadirStore
import AgadirWire
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Reclaims chunks no live object version refers to (docs/rebalance.md, "Garbage
/// collection"): a chunk reference (the object version it was stored or claimed for) older
/// than the grace period is dropped when the object's newest version, read from ALL its
/// replicas, is another one (or a delete marker, or none); a chunk with no reference left
/// and stored before the grace period is dropped; then segments mostly dead are compacted
/// and the space is back on disk. A PUT in flight keeps its chunks: claiming or storing a
/// chunk records a fresh reference, and the store re-checks references inside the writer
/// before it drops anything.
public final class GarbageCollector: Worker, Sendable {
    let node: ClusterNode
    let coordinator: Coordinator?
    let logger: Logger
    let interval: Duration
    let grace: Duration
    /// Segments whose live share is below this are compacted.
    let compactBelow = 0.5

    private struct State {
        var progress = GarbageProgress()
        var requested = false
        var lastPass: ContinuousClock.Instant?
        /// Buckets whose earlier generations' objects were purged, at that generation.
        var purgedGenerations: [String: ObjectVersion] = [:]
    }
    private let state = Mutex(State())

    /// How long a deleted bucket's record is kept (the tombstone grace): a node down longer
    /// could bring the bucket back.
    let catalogGrace: Duration

    public init(
        node: ClusterNode, coordinator: Coordinator?, interval: Duration, grace: Duration,
        catalogGrace: Duration = .seconds(86_400), logger: Logger
    ) {
        self.catalogGrace = catalogGrace
        self.node = node
        self.coordinator = coordinator
        self.interval = interval
        self.grace = grace
        self.logger = logger
    }

    public var progress: GarbageProgress { state.withLock { $0.progress } }

    /// Asks for a pass now.
    public func request() { state.withLock { $0.requested = true } }

    // MARK: Worker

    public var name: String { "gc" }

    /// How often the worker looks whether a pass is due or asked for.
    var tick: Duration { min(Duration.seconds(1), interval) }

    /// A pass when one is asked for (`gc start`) or `interval` has passed since the last
    /// (the first comes one interval after start).
    public func step() async -> WorkerStep {
        let now = ContinuousClock.now
        let due = state.withLock { s in
            let last = s.lastPass ?? now
            if s.lastPass == nil { s.lastPass = now }
            defer { s.requested = false }
            return s.requested || now - last >= interval
        }
        guard due else { return .idle(tick) }
        state.withLock { $0.lastPass = now }
        if let error = await pass() { return .failed(error, retryAfter: tick) }
        return .idle(tick)
    }

    public func report() -> (phase: String?, progress: String?) {
        let p = progress
        return (p.state, "\(p.passes) pass(es), \(p.chunksReclaimed) chunk(s) reclaimed, \(p.bytesFreed) bytes freed")
    }

    /// One collection pass; public for tests. Returns what made it fail, if anything did.
    @discardableResult
    public func pass() async -> AgadirError? {
        state.withLock { s in
            s.progress.state = "running"
            s.progress.startedMillis = WallMillis.now()
        }
        var failure: AgadirError? = nil
        do throws(AgadirError) {
            let graceMillis =
                max(0, grace.components.seconds) * 1000 + max(0, grace.components.attoseconds) / 1_000_000_000_000_000
            let cutoff = WallMillis.now() &- UInt64(graceMillis)
            if node.isClusterMode, let coordinator {
                try await purgeEarlierBuckets()
                try await dropDeadReferences(before: cutoff, coordinator: coordinator)
            }
            try await reclaimChunks(before: cutoff)
            try await compact()
            try await purgeCatalog()
            state.withLock { $0.progress.lastError = nil }
        } catch {
            logger.warning("garbage collection pass failed", metadata: ["error": "\(error)"])
            state.withLock { $0.progress.lastError = error.message }
            failure = error
        }
        state.withLock { s in
            s.progress.state = "idle"
            s.progress.passes += 1
            s.progress.finishedMillis = WallMillis.now()
        }
        return failure
    }

    /// Drops the references (older than `before`) whose object version can no longer be
    /// the newest (`GarbageDecisions.reference`); with a replica down, only those a
    /// majority of every replica set has superseded.
    private func dropDeadReferences(before: UInt64, coordinator: Coordinator) async throws(AgadirError) {
        let store = node.store
        var after: (chunk: ChunkID, reference: ChunkReference)? = nil
        // What the replicas hold of each object, asked once per pass.
        // Keyed by bytes: NFC and NFD spellings of a key are two objects (docs/protocol.md).
        var held: [Bytewise: (sets: [[String]], answers: [String: GarbageDecisions.Held])] = [:]
        var resolved: [String: ResolvedBucket?] = [:]
        for _ in 0..<100_000 {
            let page = try await store.chunkReferences(createdBefore: before, after: after, limit: 1000)
            var dead: [(chunk: ChunkID, reference: ChunkReference)] = []
            var checked = 0
            var undecided = 0
            for row in page {
                checked += 1
                let ref = row.reference
                if resolved[ref.bucket] == nil {
                    resolved[ref.bucket] = .some(try await bucket(ref.bucket, coordinator))
                }
                guard let b = resolved[ref.bucket] ?? nil else {
                    // A deleted bucket's objects were all deleted first: every reference is dead.
                    if try await node.bucketRecord(ref.bucket)?.deleted == true {
                        dead.append((row.chunk, ref))
                    } else {
                        undecided += 1
                    }
                    continue
                }
                // A reference older than its bucket's generation is an earlier bucket's.
                if b.record.predates(ref.version) {
                    dead.append((row.chunk, ref))
                    continue
                }
                let objectKey = Bytewise(ref.bucket + "\u{0}" + ref.key)
                let known: (sets: [[String]], answers: [String: GarbageDecisions.Held])
                if let cached = held[objectKey] {
                    known = cached
                } else {
                    do throws(AgadirError) {
                        known = try await coordinator.manifestHolders(key: ref.key, bucket: b)
                    } catch {
                        undecided += 1
                        continue
                    }
                    if held.count < 100_000 { held[objectKey] = known }
                }
                switch GarbageDecisions.reference(ref.version, sets: known.sets, answers: known.answers) {
                case .dead: dead.append((row.chunk, ref))
                case .undecided: undecided += 1
                case .live: break
                }
            }
            if !dead.isEmpty {
                let dropped = try await store.deleteChunkReferences(dead, createdBefore: before)
                state.withLock { $0.progress.referencesDropped += dropped }
            }
            state.withLock { s in
                s.progress.referencesChecked += checked
                s.progress.referencesUndecided += undecided
            }
            guard page.count == 1000, let last = page.last else { break }
            after = (last.chunk, last.reference)
        }
    }

    /// Drops the manifests (delete markers included) that a deleted bucket, or an earlier
    /// bucket of a name created again, left on this node (docs/consistency.md, "Deleted
    /// buckets"): nothing of them may come back, nor travel to the new bucket's sites. Their
    /// chunk references die with them (`dropDeadReferences`). A bucket is scanned once per
    /// generation while the node runs.
    private func purgeEarlierBuckets() async throws(AgadirError) {
        let store = node.store
        for record in try await store.bucketCatalog() {
            let before: ObjectVersion? = record.deleted ? nil : record.generation
            if let before {
                guard before != .zero, state.withLock({ $0.purgedGenerations[record.name] }) != before else { continue }
            }
            var after: String? = nil
            var purged = 0
            for _ in 0..<10_000 {
                let page = try await store.manifestVersions(
                    bucket: record.name, before: before, after: after, limit: 1000)
                guard let last = page.last else { break }
                purged += try await store.dropManifests(page.map { (record.name, $0.key, $0.version) })
                guard page.count == 1000 else { break }
                after = last.key
            }
            if let before { state.withLock { $0.purgedGenerations[record.name] = before } }
            if purged > 0 {
                state.withLock { $0.progress.manifestsPurged = ($0.progress.manifestsPurged ?? 0) + purged }
                logger.info(
                    "objects of a deleted or earlier bucket purged",
                    metadata: ["bucket": "\(record.name)", "deleted": "\(record.deleted)", "manifests": "\(purged)"])
            }
        }
    }

    private func bucket(_ name: String, _ coordinator: Coordinator) async throws(AgadirError) -> ResolvedBucket? {
        do throws(AgadirError) {
            return try await coordinator.resolve(bucket: name)
        } catch {
            if error.code == .noSuchBucket { return nil }
            throw error
        }
    }

    /// Drops chunks with no reference left, stored before `before`.
    private func reclaimChunks(before: UInt64) async throws(AgadirError) {
        let store = node.store
        var after: ChunkID? = nil
        for _ in 0..<100_000 {
            let ids = try await store.unreferencedChunks(storedBefore: before, after: after, limit: 1000)
            guard !ids.isEmpty else { break }
            let gone = try await store.dropChunks(ids, referencedBefore: before)
            state.withLock { $0.progress.chunksReclaimed += gone.count }
            guard ids.count == 1000, let last = ids.last else { break }
            after = last
        }
    }

    /// Forgets the records of buckets deleted longer than `catalogGrace` ago.
    private func purgeCatalog() async throws(AgadirError) {
        let graceMillis = UInt64(max(0, catalogGrace.components.seconds)) * 1000
        let purged = try await node.store.purgeDeletedBuckets(deletedBeforeMillis: WallMillis.now() &- graceMillis)
        if purged > 0 {
            state.withLock { $0.progress.bucketsPurged = ($0.progress.bucketsPurged ?? 0) + purged }
            logger.info("deleted buckets' records purged", metadata: ["count": "\(purged)"])
        }
    }

    /// Compacts the segments that are mostly dead, a few at a time.
    private func compact() async throws(AgadirError) {
        for _ in 0..<64 {
            let result = try await node.store.compactSegments(liveFraction: compactBelow, maxSegments: 4)
            state.withLock { s in
                s.progress.segmentsCompacted += result.segmentsCompacted
                s.progress.bytesFreed += result.bytesFreed
            }
            if result.segmentsCompacted == 0 { break }
        }
    }
}
