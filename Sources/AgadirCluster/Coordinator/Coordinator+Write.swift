import AgadirCore
import AgadirPlacement

// MARK: - Writes

extension Coordinator {
    /// Writes one chunk to its replicas in every live layout version: asks each whether it
    /// holds the chunk (dedup, recording the reference), sends it to those that do not,
    /// and returns once `level` is met in every version's replica set. Replicas that are
    /// down or fail get a hint on another eligible node.
    public func writeChunk(
        _ chunk: EncodedChunk, reference: ChunkReference, level: ConsistencyLevel, bucket: ResolvedBucket
    ) async throws(AgadirError) {
        let snapshot = bucket.snapshot
        let partition = Partitioner.partition(of: chunk.id, count: snapshot.layout.current.partitionCount)
        let sets = snapshot.layout.writeReplicaSets(policy: bucket.policy.name, partition: partition)
        try await replicate(
            sets: sets, bucket: bucket, level: level,
            what: "chunk \(chunk.id.hex) of '\(reference.bucket)/\(reference.key)'",
            hint: .chunk(chunk, reference)
        ) { (replica) throws(AgadirError) in
            if try await replica.claimChunks([chunk.id], reference: reference).first == true { return }
            try await replica.putChunk(chunk, reference: reference)
        }
    }

    /// Writes a manifest (or a tombstone) to the replicas of its partition in every live
    /// version; returns once `level` is met in each, with the version written.
    ///
    /// A replica that already holds a newer version acknowledges but does not apply. That
    /// newer version may belong to a write acknowledged before this one began, stamped by a
    /// node whose clock was ahead (docs/consistency.md, "Clocks"): this write would then be
    /// lost although it came later. So the write is stamped again above what the replicas
    /// hold (their answers merged this node's clock) and sent again, at most
    /// `restampAttempts` times; a chunked body's chunks are first claimed under the new
    /// version, so the garbage collector counts them as used.
    @discardableResult
    public func writeManifest(_ manifest: ObjectManifest, level: ConsistencyLevel, bucket: ResolvedBucket)
        async throws(AgadirError) -> ObjectVersion
    {
        let snapshot = bucket.snapshot
        let partition = Partitioner.partition(
            bucket: manifest.bucket, key: manifest.key, count: snapshot.layout.current.partitionCount)
        let sets = snapshot.layout.writeReplicaSets(policy: bucket.policy.name, partition: partition)
        var current = manifest
        for attempt in 0...Self.restampAttempts {
            let written = current
            let newer = Locked<ObjectVersion?>(nil)
            try await replicate(
                sets: sets, bucket: bucket, level: level, what: "manifest of '\(manifest.bucket)/\(manifest.key)'",
                hint: .manifest(written)
            ) { (replica) throws(AgadirError) in
                let (applied, stored) = try await replica.putManifest(written)
                if !applied, stored > written.version { newer.withLock { $0 = max($0 ?? stored, stored) } }
            }
            guard let seen = newer.withLock({ $0 }), attempt < Self.restampAttempts else { return written.version }
            let version = nextVersion(above: seen)
            if !written.chunkRefs.isEmpty {
                try await claimAgain(
                    written.chunkRefs.map(\.id),
                    reference: ChunkReference(bucket: written.bucket, key: written.key, version: version), level: level,
                    bucket: bucket)
            }
            count { $0.restamps += 1 }
            logger.debug(
                "write stamped again above a newer version a replica holds",
                metadata: ["object": "\(written.bucket)/\(written.key)", "held": "\(seen)", "now": "\(version)"])
            current.version = version
        }
        return current.version
    }

    /// How many times a write superseded at its replicas is stamped again.
    static let restampAttempts = 3

    /// Records `reference` on chunks already written (CHUNKS_CLAIM) until `level` is met in
    /// every live version's replica set of each; a replica that lacks a chunk counts as
    /// failed (its bytes are not at hand to send again).
    private func claimAgain(
        _ ids: [ChunkID], reference: ChunkReference, level: ConsistencyLevel, bucket: ResolvedBucket
    ) async throws(AgadirError) {
        let snapshot = bucket.snapshot
        let context = self.context
        let coordinatorSite = snapshot.site
        let siteOf: @Sendable (String) -> String = { snapshot.site(of: $0) }
        for id in Set(ids) {
            let partition = Partitioner.partition(of: id, count: snapshot.layout.current.partitionCount)
            let sets = snapshot.layout.writeReplicaSets(policy: bucket.policy.name, partition: partition)
            let nodes = Quorum.distinct(sets.flatMap { $0 }).filter { snapshot.alive.contains($0) }
            let (acked, _) = await Self.gather(
                nodes,
                work: { node -> Result<Bool, AgadirError> in
                    do throws(AgadirError) {
                        guard try await context.replica(node).claimChunks([id], reference: reference).first == true
                        else {
                            return .failure(AgadirError(.noSuchChunk, "\(node) does not hold chunk \(id.hex)"))
                        }
                        return .success(true)
                    } catch {
                        return .failure(error)
                    }
                },
                enough: { acks in
                    Quorum.evaluate(
                        level: level, sets: sets, coordinatorSite: coordinatorSite, answered: Set(acks.keys),
                        site: siteOf
                    ).satisfied
                })
            let outcome = Quorum.evaluate(
                level: level, sets: sets, coordinatorSite: coordinatorSite, answered: Set(acked.keys), site: siteOf)
            guard outcome.satisfied else {
                throw AgadirError.notEnoughReplicas(
                    "'\(reference.bucket)/\(reference.key)' lost to a newer version and could not be stamped again: "
                        + "chunk \(id.hex) is held by \(outcome.answered) of the \(outcome.needed) replicas needed; retry the PUT",
                    answered: outcome.answered, needed: outcome.needed)
            }
        }
    }

    /// The write fan-out shared by chunks and manifests.
    private func replicate(
        sets: [[String]], bucket: ResolvedBucket, level: ConsistencyLevel, what: String, hint: Hint,
        send: @escaping @Sendable (any ReplicaClient) async throws(AgadirError) -> Void
    ) async throws(AgadirError) {
        let snapshot = bucket.snapshot
        let nodes = Quorum.distinct(sets.flatMap { $0 })
        guard !nodes.isEmpty else {
            throw AgadirError(
                .policyUnsatisfiable,
                "policy '\(bucket.policy.name)' has no replicas in layout \(snapshot.layout.current.version)")
        }
        for node in nodes { try checkEligible(node, policy: bucket.policy, snapshot: snapshot, what: what) }
        let coordinatorSite = snapshot.site
        let siteOf: @Sendable (String) -> String = { snapshot.site(of: $0) }
        let context = self.context
        let reachable = nodes.filter { snapshot.alive.contains($0) }
        let (acked, failures) = await Self.gather(
            reachable,
            work: { node in
                do throws(AgadirError) {
                    try await send(context.replica(node))
                    return .success(true)
                } catch {
                    return .failure(error)
                }
            },
            enough: { acks in
                Quorum.evaluate(
                    level: level, sets: sets, coordinatorSite: coordinatorSite, answered: Set(acks.keys), site: siteOf
                )
                .satisfied
            },
            late: { [self] node, result in
                if case .failure(let e) = result {
                    count { $0.lateWriteFailures += 1 }
                    logger.warning(
                        "replica write failed after the quorum",
                        metadata: ["node": "\(node)", "what": "\(what)", "error": "\(e)"])
                    if e.code == .notReplica {
                        background.start("layout refresh") { await context.refreshLayout() }
                    } else {
                        background.start("hint parking") { await self.park(hint, for: node, bucket: bucket) }
                    }
                }
            })
        // A replica that no longer holds the partition: this node's layout is behind. No
        // hint for it (it would refuse that too); the newer layout is pulled for the next
        // request.
        let moved = Set(failures.filter { $0.value.code == .notReplica }.keys)
        if !moved.isEmpty { background.start("layout refresh") { await context.refreshLayout() } }
        let outcome = Quorum.evaluate(
            level: level, sets: sets, coordinatorSite: coordinatorSite, answered: Set(acked.keys), site: siteOf)
        guard outcome.satisfied else {
            let reasons =
                failures.keys.sorted().map { "\($0): \(failures[$0]?.message ?? "")" }
                + nodes.filter { !snapshot.alive.contains($0) }.map { "\($0): not alive" }
            throw AgadirError.notEnoughReplicas(
                "\(what): \(outcome.answered) of \(outcome.needed) replicas needed for \(outcome.scope) acknowledged"
                    + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: "; ")))"),
                answered: outcome.answered, needed: outcome.needed)
        }
        // Replicas that are down or failed: park the write for them on another eligible node.
        for node in nodes where !moved.contains(node) && (!snapshot.alive.contains(node) || failures[node] != nil) {
            await park(hint, for: node, bucket: bucket)
        }
    }

    /// Parks `hint` for `target` on another alive node eligible for the policy (same site
    /// as the target first); best effort: a failure is counted and logged.
    func park(_ hint: Hint, for target: String, bucket: ResolvedBucket) async {
        let snapshot = bucket.snapshot
        let layout = snapshot.layout.current
        let targetSite = snapshot.site(of: target)
        let candidates = layout.eligibleNodes(for: bucket.policy)
            .filter { $0.id != target && snapshot.alive.contains($0.id) }
            .sorted {
                ($0.site == targetSite ? 0 : 1, $0.id == snapshot.nodeID ? 0 : 1, $0.id) < (
                    $1.site == targetSite ? 0 : 1, $1.id == snapshot.nodeID ? 0 : 1, $1.id
                )
            }
        for holder in candidates.prefix(3) {
            do throws(AgadirError) {
                try checkEligible(holder.id, policy: bucket.policy, snapshot: snapshot, what: "a hint for \(target)")
                try await context.replica(holder.id).putHint(target: target, bucket: bucket.record.name, hint: hint)
                count { $0.hintsParked += 1 }
                return
            } catch {
                logger.debug(
                    "hint not parked", metadata: ["holder": "\(holder.id)", "target": "\(target)", "error": "\(error)"])
            }
        }
        count { $0.hintsFailed += 1 }
        logger.warning(
            "no node could hold a hint; the replica converges by anti-entropy",
            metadata: ["target": "\(target)", "bucket": "\(bucket.record.name)"])
    }
}

/// The target of a cluster PUT: each chunk is compressed once with the policy's codec and
/// written to its replicas; the manifest is written last, so an interrupted PUT is never
/// visible.
public struct ClusterWriteTarget: Sendable {
    public let coordinator: Coordinator
    public let bucket: ResolvedBucket
    public let reference: ChunkReference
    public let level: ConsistencyLevel

    public init(coordinator: Coordinator, bucket: ResolvedBucket, reference: ChunkReference, level: ConsistencyLevel) {
        self.coordinator = coordinator
        self.bucket = bucket
        self.reference = reference
        self.level = level
    }

    public func storeChunk(_ raw: [UInt8], id: ChunkID) async throws(AgadirError) {
        var engine = ChunkCodec()
        let encoded = try engine.encode(raw, preferred: bucket.policy.codec, id: id)
        try await coordinator.writeChunk(encoded, reference: reference, level: level, bucket: bucket)
    }

    public func commit(_ manifest: ObjectManifest) async throws(AgadirError) -> ObjectVersion {
        try await coordinator.writeManifest(manifest, level: level, bucket: bucket)
    }
}
