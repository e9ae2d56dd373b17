import AgadirCore
import AgadirPlacement
import Synchronization

// MARK: - Reads

extension Coordinator {
    /// How long a read waits for the replicas it asked first before asking the others too
    /// (`speculativeReadDelay`), unless told otherwise.
    public static let defaultSpeculativeReadDelay = Duration.milliseconds(50)

    /// The newest manifest of `bucket/key` among `level` replicas of the read version
    /// (tombstones included; nil when no replica that answered has one). Replicas that
    /// answered with an older version, or none, are repaired in the background, and so are
    /// those that answer after the level was met.
    public func readManifest(key: String, level: ConsistencyLevel, bucket: ResolvedBucket) async throws(AgadirError)
        -> ObjectManifest?
    {
        let snapshot = bucket.snapshot
        let partition = Partitioner.partition(
            bucket: bucket.record.name, key: key, count: snapshot.layout.current.partitionCount)
        let replicas = snapshot.layout.readReplicas(policy: bucket.policy.name, partition: partition)
        guard !replicas.isEmpty else {
            throw AgadirError(
                .policyUnsatisfiable,
                "policy '\(bucket.policy.name)' has no replicas in layout \(snapshot.layout.current.version)")
        }
        let what = "manifest of '\(bucket.record.name)/\(key)'"
        for node in replicas { try checkEligible(node, policy: bucket.policy, snapshot: snapshot, what: what) }
        let coordinatorSite = snapshot.site
        let siteOf: @Sendable (String) -> String = { snapshot.site(of: $0) }
        let context = self.context
        let bucketName = bucket.record.name
        let record = bucket.record
        let reachable = snapshot.byProximity(replicas.filter { snapshot.alive.contains($0) })
        // Ask the nearest replicas that can meet the level first; the others only if those
        // have not met it after `speculativeReadDelay` (a slow or failed replica).
        let quorum = Quorum(level: level, replicas: replicas, coordinatorSite: coordinatorSite)
        var wave: Set<String> = []
        for node in reachable where !quorum.evaluate(answered: wave, site: siteOf).satisfied { wave.insert(node) }
        let firstWave = wave
        // Late answers are compared with the winner once it is known.
        let winnerBox = WinnerBox()
        let (answers, failures) = await Self.gather(
            reachable, delayed: Set(reachable).subtracting(firstWave), after: speculativeReadDelay,
            work: { (node: String) async -> Result<Answer, AgadirError> in
                do throws(AgadirError) {
                    // A manifest older than the bucket's generation is an earlier bucket's: none.
                    let m = try await context.replica(node).getManifest(bucket: bucketName, key: key)
                    return .success(Answer(manifest: m.flatMap { record.predates($0.version) ? nil : $0 }))
                } catch {
                    return .failure(error)
                }
            },
            enough: { got in quorum.evaluate(answered: Set(got.keys), site: siteOf).satisfied },
            late: { [self] node, result in
                guard case .success(let answer) = result, let winner = winnerBox.value else { return }
                if answer.manifest.map({ $0.version < winner.version }) ?? true {
                    background.start("read repair") { await self.repair(node, with: winner, bucket: bucket) }
                }
            })
        let outcome = Quorum(level: level, replicas: replicas, coordinatorSite: coordinatorSite)
            .evaluate(answered: Set(answers.keys), site: siteOf)
        guard outcome.satisfied else {
            let reasons =
                failures.keys.sorted().map { "\($0): \(failures[$0]?.message ?? "")" }
                + replicas.filter { !snapshot.alive.contains($0) }.map { "\($0): not alive" }
            throw AgadirError.notEnoughReplicas(
                "reading the \(what): \(outcome.answered) of \(outcome.needed) replicas needed for \(outcome.scope) answered"
                    + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: "; ")))"),
                answered: outcome.answered, needed: outcome.needed)
        }
        let winner = answers.values.compactMap(\.manifest).max { $0.version < $1.version }
        guard let winner else { return nil }
        winnerBox.set(winner)
        for (node, answer) in answers.sorted(by: { $0.key < $1.key })
        where answer.manifest.map({ $0.version < winner.version }) ?? true {
            background.start("read repair") { await self.repair(node, with: winner, bucket: bucket) }
        }
        return winner
    }

    /// What every alive replica of the manifest's partition, in every live layout version,
    /// holds of `bucket/key` (for the garbage collector: `GarbageDecisions.reference`), with
    /// the replica sets; a replica that is down or fails is absent from the answers. No read
    /// repair.
    public func manifestHolders(key: String, bucket: ResolvedBucket) async throws(AgadirError) -> (
        sets: [[String]], answers: [String: GarbageDecisions.Held]
    ) {
        let snapshot = bucket.snapshot
        let partition = Partitioner.partition(
            bucket: bucket.record.name, key: key, count: snapshot.layout.current.partitionCount)
        let sets = snapshot.layout.writeReplicaSets(policy: bucket.policy.name, partition: partition)
        let nodes = Quorum.distinct(sets.flatMap { $0 })
        for node in nodes {
            try checkEligible(node, policy: bucket.policy, snapshot: snapshot, what: "a manifest version read")
        }
        let reachable = nodes.filter { snapshot.alive.contains($0) }
        let context = self.context
        let record = bucket.record
        let (answers, _) = await Self.gather(
            reachable,
            work: { node -> Result<GarbageDecisions.Held, AgadirError> in
                do throws(AgadirError) {
                    let m = try await context.replica(node).getManifest(bucket: record.name, key: key)
                    guard let m, !record.predates(m.version) else { return .success(.none) }
                    return .success(.version(m.version, tombstone: m.isTombstone))
                } catch {
                    return .failure(error)
                }
            },
            enough: { got in got.count == reachable.count })
        return (sets, answers)
    }

    /// The live manifest, or NO_SUCH_KEY.
    public func liveManifest(key: String, level: ConsistencyLevel, bucket: ResolvedBucket) async throws(AgadirError)
        -> ObjectManifest
    {
        guard let m = try await readManifest(key: key, level: level, bucket: bucket), !m.isTombstone else {
            throw AgadirError(.noSuchKey, "object '\(bucket.record.name)/\(key)' does not exist")
        }
        return m
    }

    /// Read repair: gives a stale replica the newest manifest.
    func repair(_ node: String, with manifest: ObjectManifest, bucket: ResolvedBucket) async {
        do throws(AgadirError) {
            try checkEligible(node, policy: bucket.policy, snapshot: bucket.snapshot, what: "a read repair")
            _ = try await context.replica(node).putManifest(manifest)
            count { $0.readRepairs += 1 }
        } catch {
            count { $0.readRepairFailures += 1 }
            logger.debug(
                "read repair failed",
                metadata: ["node": "\(node)", "object": "\(manifest.bucket)/\(manifest.key)", "error": "\(error)"])
        }
    }

    /// One chunk's bytes, verified: asked from its replicas nearest first (every live
    /// version's); a replica that fails or returns bytes that do not verify is skipped.
    /// CORRUPT_CHUNK when every replica was asked and each copy failed verification (no
    /// intact copy is left to wait for), else UNAVAILABLE.
    public func readChunk(_ id: ChunkID, bucket: ResolvedBucket) async throws(AgadirError) -> [UInt8] {
        let snapshot = bucket.snapshot
        let partition = Partitioner.partition(of: id, count: snapshot.layout.current.partitionCount)
        let candidates = snapshot.byProximity(
            snapshot.layout.allReplicas(policy: bucket.policy.name, partition: partition))
        var errors: [String] = []
        var corruptCopies = 0
        for node in candidates where snapshot.alive.contains(node) {
            do throws(AgadirError) {
                try checkEligible(node, policy: bucket.policy, snapshot: snapshot, what: "a chunk read")
                let encoded = try await context.replica(node).getChunk(id, bucket: bucket.record.name)
                guard encoded.id == id else {
                    throw AgadirError(.corruptChunk, "asked for chunk \(id.hex), got \(encoded.id.hex)")
                }
                var engine = ChunkCodec()
                let raw = try engine.decode(encoded)
                try ChunkVerifier.verify(raw, id: id, context: "from \(node)")
                return raw
            } catch {
                errors.append("\(node): \(error.message)")
                if error.code == .corruptChunk || error.code == .corruptData {
                    corruptCopies += 1
                    logger.error(
                        "corrupt chunk on a replica",
                        metadata: ["node": "\(node)", "chunk": "\(id.hex)", "error": "\(error)"])
                }
            }
        }
        let everyCopyCorrupt = corruptCopies > 0 && corruptCopies == candidates.count
        throw AgadirError(
            everyCopyCorrupt ? .corruptChunk : .unavailable,
            "no replica returned chunk \(id.hex) of bucket '\(bucket.record.name)' intact"
                + (errors.isEmpty ? " (no replica alive)" : ": \(errors.joined(separator: "; "))"))
    }
}

/// One replica's answer to a manifest read.
struct Answer: Sendable {
    var manifest: ObjectManifest?
}

/// The winner of a read, set once known, for answers that arrive later.
final class WinnerBox: Sendable {
    private let box = Mutex<ObjectManifest?>(nil)
    var value: ObjectManifest? { box.withLock { $0 } }
    func set(_ m: ObjectManifest) { box.withLock { $0 = m } }
}
