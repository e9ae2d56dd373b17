import AgadirCore
import AgadirPlacement
import AgadirWire

// MARK: - Listing

extension Coordinator {
    /// Rounds of replica listings one LIST page may take (each round reads up to
    /// `PeerLimits.maxReplicaListEntries` keys per replica).
    public static let maxListRounds = 64

    /// A LIST page merged from the replicas (docs/cluster.md, "Coordinator"): every node of
    /// the policy's maps is asked for its entries (tombstones included), an entry counts only
    /// from a replica of its key's partition, the newest version of a key wins, and
    /// tombstones are dropped; `level` must be met for every partition.
    public func list(_ request: ListRequest, level: ConsistencyLevel, bucket: ResolvedBucket) async throws(AgadirError)
        -> ListPage
    {
        let snapshot = bucket.snapshot
        let layout = snapshot.layout
        let policy = bucket.policy.name
        let partitions = layout.current.partitionCount
        let readSets = (0..<partitions).map { layout.readReplicas(policy: policy, partition: $0) }
        let holders = (0..<partitions).map { Set(layout.allReplicas(policy: policy, partition: $0)) }
        let nodes = Quorum.distinct(holders.flatMap { $0.sorted() })
        let what = "the listing of '\(bucket.record.name)'"
        for node in nodes { try checkEligible(node, policy: bucket.policy, snapshot: snapshot, what: what) }
        let reachable = nodes.filter { snapshot.alive.contains($0) }
        let batch = min(PeerLimits.maxReplicaListEntries, max(100, request.limit * 2 + 1))
        let context = self.context
        let bucketName = bucket.record.name
        let siteOf: @Sendable (String) -> String = { snapshot.site(of: $0) }

        var pager = ListPager(
            prefix: request.prefix, delimiter: request.delimiter, startAfter: request.startAfter, limit: request.limit)
        var cursor = request.startAfter
        if let c = cursor, c.bytewisePrecedes(request.prefix) { cursor = nil }
        for _ in 0..<Self.maxListRounds {
            let after = cursor
            let (lists, failures) = await Self.gather(
                reachable,
                work: { node in
                    do throws(AgadirError) {
                        return .success(
                            try await context.replica(node).list(
                                bucket: bucketName, prefix: request.prefix, startAfter: after, limit: batch))
                    } catch {
                        return .failure(error)
                    }
                },
                enough: { got in got.count == reachable.count })
            let answered = Set(lists.keys)
            for (p, set) in readSets.enumerated() {
                let o = Quorum(level: level, replicas: set, coordinatorSite: snapshot.site).evaluate(
                    answered: answered, site: siteOf)
                if !o.satisfied {
                    let reasons =
                        failures.keys.sorted().map { "\($0): \(failures[$0]?.message ?? "")" }
                        + set.filter { !snapshot.alive.contains($0) }.map { "\($0): not alive" }
                    throw AgadirError.notEnoughReplicas(
                        "\(what): partition \(p) has \(o.answered) of \(o.needed) replicas needed for \(o.scope)"
                            + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: "; ")))"),
                        answered: o.answered, needed: o.needed)
                }
            }
            // Keys up to the horizon are complete: every replica listed at least that far.
            var horizon: String? = nil
            for (_, entries) in lists where entries.count == batch {
                if let lastKey = entries.last?.key, horizon.map({ lastKey.bytewisePrecedes($0) }) ?? true {
                    horizon = lastKey
                }
            }
            // Keyed by bytes: NFC and NFD spellings of a key are two objects (docs/protocol.md).
            var newest: [Bytewise: ReplicaListEntry] = [:]
            for (node, entries) in lists {
                for e in entries {
                    if let h = horizon, h.bytewisePrecedes(e.key) { continue }
                    let p = Partitioner.partition(bucket: bucketName, key: e.key, count: partitions)
                    guard holders[p].contains(node), !bucket.record.predates(e.version) else { continue }
                    if let seen = newest[Bytewise(e.key)], !(e.version > seen.version) { continue }
                    newest[Bytewise(e.key)] = e
                }
            }
            for key in newest.keys.sorted() {
                guard let e = newest[key], !e.isTombstone else { continue }
                if pager.feed(e) { return pager.page }
            }
            guard let h = horizon else { return pager.page }
            cursor = h
        }
        throw AgadirError(
            .unavailable,
            "\(what) needed more than \(Self.maxListRounds) rounds of replica listings (many deleted keys?); "
                + "retry with a narrower prefix")
    }
}
