import AgadirCore
import AgadirPlacement
import AgadirWire

// MARK: - Buckets (the cluster-wide catalog)

extension Coordinator {
    /// Creates a bucket bound to `policy` (default: `default`): the record goes to every
    /// alive member and needs a majority of the layout's nodes (docs/cluster.md, "Bucket
    /// catalog").
    public func createBucket(_ name: String, policy: String?) async throws(AgadirError) -> BucketRecord {
        try Names.validateBucket(name)
        let snapshot = context.snapshot()
        let policyName = policy ?? "default"
        guard snapshot.layout.current.policy(policyName) != nil else {
            let known = snapshot.layout.current.policies.map(\.name).joined(separator: ", ")
            throw AgadirError(
                .noSuchPolicy,
                "policy '\(policyName)' does not exist; this cluster has: \(known) (`agadir admin policy ls`)")
        }
        if let existing = try await context.bucketRecord(name), !existing.deleted {
            throw AgadirError(.bucketAlreadyExists, "bucket '\(name)' already exists (policy '\(existing.policy)')")
        }
        // The creation's version is the bucket's generation: whatever an earlier bucket of
        // this name left anywhere is older, and is refused, ignored and purged.
        let version = nextVersion(above: try await context.bucketRecord(name)?.version)
        let record = BucketRecord(
            name: name, policy: policyName, createdMillis: WallClock.millis(), version: version, deleted: false,
            generation: version)
        try await writeCatalog(record, snapshot: snapshot)
        return record
    }

    /// Deletes an empty bucket: the listing at ALL must be empty; the deletion record then
    /// goes to every alive member like a creation.
    public func deleteBucket(_ name: String) async throws(AgadirError) {
        let resolved = try await resolve(bucket: name)
        let page = try await list(ListRequest(bucket: name, limit: 1), level: .all, bucket: resolved)
        if let first = page.entries.first?.key ?? page.commonPrefixes.first {
            throw AgadirError(
                .bucketNotEmpty, "bucket '\(name)' still holds objects (for example '\(first)'); delete them first")
        }
        var record = resolved.record
        record.deleted = true
        record.version = nextVersion(above: record.version)
        try await writeCatalog(record, snapshot: resolved.snapshot)
    }

    /// A version from this node's clock, above `existing`: a catalog record is merged by last
    /// writer wins, so a change stamped below the record it replaces (this node's clock
    /// behind, after a restart with the wall clock set back) would be acknowledged and
    /// silently not applied. The clock is not persisted; this is why it need not be
    /// (docs/consistency.md, "Clocks").
    func nextVersion(above existing: ObjectVersion?) -> ObjectVersion {
        let version = context.nextVersion()
        guard let existing, version <= existing else { return version }
        return ObjectVersion(timestamp: HLCTimestamp(rawValue: existing.timestamp.rawValue + 1), node: version.node)
    }

    /// Sends a catalog record to every alive member; succeeds once a majority of the
    /// layout's nodes has it durably.
    func writeCatalog(_ record: BucketRecord, snapshot: ClusterSnapshot) async throws(AgadirError) {
        try await writeEverywhere("bucket '\(record.name)'", snapshot: snapshot) { replica throws(AgadirError) in
            try await replica.mergeCatalog([record])
        }
    }

    /// Sends an access key record to every alive member, as a catalog record
    /// (docs/security.md, "Access keys").
    public func writeAccessKey(_ record: AccessKeyRecord) async throws(AgadirError) {
        try await writeEverywhere("access key \(record.id)", snapshot: context.snapshot()) {
            replica throws(AgadirError) in
            try await replica.mergeAccessKeys([record])
        }
    }

    /// Runs `write` on every alive member (and this node); succeeds once a majority of the
    /// layout's nodes (this node alone without a layout) has done it.
    func writeEverywhere(
        _ what: String, snapshot: ClusterSnapshot,
        write: @escaping @Sendable (any ReplicaClient) async throws(AgadirError) -> Void
    ) async throws(AgadirError) {
        let layoutNodes = snapshot.layout.current.nodes.map(\.id)
        let targets = Quorum.distinct([snapshot.nodeID] + layoutNodes + snapshot.alive.sorted())
            .filter { snapshot.alive.contains($0) || $0 == snapshot.nodeID }
        let context = self.context
        let needed = ConsistencyLevel.majority(of: max(1, layoutNodes.count))
        let (acked, failures) = await Self.gather(
            targets,
            work: { node in
                do throws(AgadirError) {
                    try await write(context.replica(node))
                    return .success(true)
                } catch {
                    return .failure(error)
                }
            },
            enough: { got in got.count == targets.count })
        let got = layoutNodes.isEmpty ? acked.count : layoutNodes.filter { acked[$0] != nil }.count
        guard got >= needed else {
            let reasons = failures.keys.sorted().map { "\($0): \(failures[$0]?.message ?? "")" }
            throw AgadirError.notEnoughReplicas(
                "\(what): \(got) of the \(needed) layout nodes needed (a majority) recorded it"
                    + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: "; ")))"),
                answered: got, needed: needed)
        }
    }
}
