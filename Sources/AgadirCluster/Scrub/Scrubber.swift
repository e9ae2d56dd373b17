import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirWire
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Re-reads and re-hashes every stored chunk in the background at a set rate (docs/rebalance.md,
/// "Scrub"): a chunk whose bytes are bad is quarantined (no longer served) and replaced by a
/// verified copy from another replica. Pause, start and the position reached survive restarts.
public final class Scrubber: Worker, Sendable {
    let node: ClusterNode
    let logger: Logger
    let interval: Duration
    let file: StateFile<Record>

    /// What survives a restart.
    struct Record: Codable {
        var paused = false
        var cursor: String?
        var running = false
        var passes = 0
        var startedMillis: UInt64?
        var finishedMillis: UInt64?
        var chunksChecked = 0
        var bytesChecked: UInt64 = 0
        var corruptFound = 0
        var repaired = 0
    }

    private struct State {
        var record: Record
        var bytesPerSecond: Int
        var lastError: String?
        var quarantined = 0
    }
    private let state: Mutex<State>

    public init(node: ClusterNode, dataDir: String, bytesPerSecond: Int, interval: Duration, logger: Logger)
        throws(AgadirError)
    {
        self.node = node
        self.logger = logger
        self.interval = interval
        self.file = StateFile(dataDir: dataDir, name: "scrub.json", ifMovedAway: "the scrub then starts over")
        let record = try file.load(or: Record())
        self.state = Mutex(State(record: record, bytesPerSecond: bytesPerSecond))
    }

    public var progress: ScrubProgress {
        state.withLock { s in
            var p = ScrubProgress()
            let r = s.record
            p.state = r.paused ? "paused" : (r.running ? "running" : "idle")
            p.passes = r.passes
            p.startedMillis = r.startedMillis
            p.finishedMillis = r.finishedMillis
            p.chunksChecked = r.chunksChecked
            p.bytesChecked = r.bytesChecked
            p.corruptFound = r.corruptFound
            p.repaired = r.repaired
            p.quarantined = s.quarantined
            p.bytesPerSecond = s.bytesPerSecond
            p.lastError = s.lastError
            return p
        }
    }

    /// `start` begins a pass now (and lifts a pause); `pause` stops at the position reached.
    public func control(_ action: String) throws(AgadirError) {
        switch action {
        case "start":
            try commit { r in
                r.paused = false
                if !r.running { Self.begin(&r) }
            }
        case "pause":
            try commit { $0.paused = true }
        default:
            throw AgadirError(.invalidArgument, "scrub action '\(action)' is not start or pause")
        }
        logger.notice("scrub \(action)")
    }

    static func begin(_ r: inout Record) {
        r.running = true
        r.cursor = nil
        r.startedMillis = WallMillis.now()
        r.chunksChecked = 0
        r.bytesChecked = 0
    }

    private func commit(_ body: (inout Record) -> Void) throws(AgadirError) {
        let record = state.withLock { s in
            body(&s.record)
            return s.record
        }
        try file.save(record)
    }

    // MARK: Worker

    public var name: String { "scrub" }

    public func report() -> (phase: String?, progress: String?) {
        let p = progress
        return (
            p.state,
            "\(p.chunksChecked) chunk(s) checked in this pass, \(p.corruptFound) corrupt, \(p.quarantined) quarantined"
        )
    }

    /// One step: repair what is quarantined, then verify the next slice at the set rate
    /// (about a quarter of a second of work); throttled to the rate, busy when unlimited.
    public func step() async -> WorkerStep {
        do throws(AgadirError) {
            try await repairQuarantined()
            let (record, rate) = state.withLock { ($0.record, $0.bytesPerSecond) }
            if record.paused { return .paused(.seconds(1)) }
            if !record.running {
                let due =
                    rate > 0
                    && (record.finishedMillis.map {
                        WallMillis.now() &- $0 >= UInt64(interval.components.seconds) * 1000
                    } ?? true)
                guard due else { return .idle(.seconds(1)) }
                try commit { Self.begin(&$0) }
            }
            // About a quarter of a second of work at the rate (unlimited: 16 MiB).
            let budget = rate > 0 ? max(64 << 10, rate / 4) : 16 << 20
            let after = record.cursor.flatMap { ChunkID(hex: $0) }
            let checks = try await node.store.verifyChunks(after: after, limit: 256, maxBytes: budget)
            var bytes: UInt64 = 0
            var bad = 0
            for check in checks {
                bytes += check.storedBytes
                guard let problem = check.problem else { continue }
                // A chunk dropped or quarantined while it was read is reported too: only a
                // chunk still held is corrupt.
                guard try await node.store.quarantineChunk(check.id, reason: problem) else { continue }
                bad += 1
                logger.error(
                    "scrub found a corrupt chunk; quarantined",
                    metadata: ["chunk": "\(check.id.hex)", "problem": "\(problem)"])
            }
            let finished = checks.count < 256 && bytes < UInt64(budget)
            try commit { r in
                r.chunksChecked += checks.count
                r.bytesChecked += bytes
                r.corruptFound += bad
                r.cursor = checks.last.map(\.id.hex) ?? r.cursor
                if finished || checks.isEmpty {
                    r.running = false
                    r.cursor = nil
                    r.passes += 1
                    r.finishedMillis = WallMillis.now()
                }
            }
            if finished || checks.isEmpty {
                logger.info(
                    "scrub pass finished", metadata: ["chunks": "\(state.withLock { $0.record.chunksChecked })"])
            }
            if bad > 0 { try await repairQuarantined() }
            state.withLock { $0.lastError = nil }
            if finished || checks.isEmpty { return .idle(.seconds(1)) }
            guard rate > 0 else { return .busy }
            return .throttled(.nanoseconds(Int64(Double(bytes) / Double(rate) * 1e9)))
        } catch {
            logger.warning("scrub step failed", metadata: ["error": "\(error)"])
            state.withLock { $0.lastError = error.message }
            return .failed(error, retryAfter: .seconds(1))
        }
    }

    /// Replaces quarantined chunks with a verified copy from another replica of their
    /// partition (policies from the chunk's references).
    private func repairQuarantined() async throws(AgadirError) {
        let store = node.store
        let waiting = try await store.quarantinedChunks(limit: 16)
        state.withLock { $0.quarantined = waiting.count }
        guard !waiting.isEmpty, node.isClusterMode else { return }
        let snapshot = node.snapshot()
        let count = snapshot.layout.current.partitionCount
        for q in waiting {
            guard let reference = q.references.first else { continue }
            guard let record = try await node.bucketRecord(reference.bucket),
                let policy = Coordinator.policyNamed(record.policy, in: snapshot.layout)
            else { continue }
            let partition = Partitioner.partition(of: q.id, count: count)
            let sources = snapshot.byProximity(snapshot.layout.allReplicas(policy: policy.name, partition: partition))
                .filter { $0 != node.nodeID && snapshot.alive.contains($0) }
            for source in sources {
                do throws(AgadirError) {
                    let chunk = try await node.replica(source).getChunk(q.id, bucket: reference.bucket)
                    guard chunk.id == q.id else { continue }
                    try ReplicaService.verify(chunk, from: source)
                    try await store.putChunk(chunk, reference: reference)
                    try commit { $0.repaired += 1 }
                    logger.notice(
                        "quarantined chunk replaced by a verified copy",
                        metadata: ["chunk": "\(q.id.hex)", "from": "\(source)"])
                    break
                } catch {
                    logger.debug(
                        "no good copy here",
                        metadata: ["chunk": "\(q.id.hex)", "source": "\(source)", "error": "\(error)"])
                }
            }
        }
        let left = try await store.quarantinedChunkCount()
        state.withLock { $0.quarantined = left }
    }
}
