import AgadirCore
import AgadirPlacement
import Synchronization

// MARK: - Quotas per bucket (docs/operations.md, "Quotas")

/// What a coordinator knows of its buckets' usage: the cluster's counts, fetched at most
/// every `maxAge` per bucket (one fetch at a time, callers arriving meanwhile share it),
/// plus what this coordinator admitted since the fetch.
final class QuotaUsage: Sendable {
    struct Fetched: Sendable {
        var usage: BucketUsage
        var at: ContinuousClock.Instant
    }

    private struct Entry {
        var fetchedAt: ContinuousClock.Instant
        var admitted: BucketUsage
    }

    let maxAge: Duration
    private let flights = Mutex<[String: SingleFlight<Fetched>]>([:])
    private let entries = Mutex<[String: Entry]>([:])

    init(maxAge: Duration) { self.maxAge = maxAge }

    /// The bucket's usage: the latest fetch (no older than `maxAge`) plus what this
    /// coordinator admitted since.
    func usage(
        of bucket: String, fetch: @escaping @Sendable () async throws(AgadirError) -> BucketUsage
    ) async throws(AgadirError) -> BucketUsage {
        let flight = flights.withLock { all in
            if let f = all[bucket] { return f }
            let f = SingleFlight<Fetched>()
            all[bucket] = f
            return f
        }
        let fetched = try await flight.run(reuseWithin: maxAge) { () throws(AgadirError) -> Fetched in
            Fetched(usage: try await fetch(), at: .now)
        }
        return entries.withLock { all in
            // A newer fetch counts what was admitted before it (once the replicas applied it).
            if all[bucket]?.fetchedAt != fetched.at { all[bucket] = Entry(fetchedAt: fetched.at, admitted: .zero) }
            return fetched.usage + (all[bucket]?.admitted ?? .zero)
        }
    }

    /// Counts a PUT this coordinator admitted until the next fetch.
    func admit(_ usage: BucketUsage, to bucket: String) {
        entries.withLock { all in
            guard var entry = all[bucket] else { return }
            entry.admitted = entry.admitted + usage
            all[bucket] = entry
        }
    }

    /// Forgets what is known of `bucket` (after a delete, or a quota change), so the next
    /// check fetches anew.
    func forget(_ bucket: String) {
        _ = flights.withLock { $0.removeValue(forKey: bucket) }
        _ = entries.withLock { $0.removeValue(forKey: bucket) }
    }
}

extension Coordinator {
    /// How long a coordinator reuses a bucket's fetched usage.
    public static let quotaUsageMaxAge = Duration.seconds(2)

    /// The bucket's usage across the cluster: the live objects and bytes every node that may
    /// hold its data reports, summed and divided by the replication factor (rounded up, so
    /// a replica that has not yet applied a write does not hide it). Nodes that do not
    /// answer are left out: the figure is then low, and a quota may be passed by what they
    /// hold alone (docs/operations.md, "Quotas").
    public func clusterUsage(of bucket: ResolvedBucket) async -> (usage: BucketUsage, answered: Int, asked: Int) {
        let snapshot = bucket.snapshot
        var holders = Set<String>()
        for layout in snapshot.layout.live {
            for node in layout.nodes where layout.isEligible(site: node.site, for: bucket.policy) {
                holders.insert(node.id)
            }
        }
        let asked = holders.filter { snapshot.alive.contains($0) || $0 == snapshot.nodeID }.sorted()
        let context = self.context
        let name = bucket.record.name
        let (answers, _) = await Self.gather(
            asked,
            work: { node in
                do throws(AgadirError) {
                    return .success(try await context.replica(node).bucketUsage(name))
                } catch {
                    return .failure(error)
                }
            },
            enough: { got in got.count == asked.count })
        let total = answers.values.reduce(BucketUsage.zero, +)
        let rf = UInt64(max(1, bucket.policy.replicationFactor))
        let usage = BucketUsage(objects: (total.objects + rf - 1) / rf, bytes: (total.bytes + rf - 1) / rf)
        return (usage, answers.count, asked.count)
    }

    /// A bucket's record and its usage across the cluster (`clusterUsage`), from any node,
    /// eligible for the bucket's policy or not.
    public func usageReport(
        bucket name: String
    ) async throws(AgadirError) -> (record: BucketRecord, usage: BucketUsage, answered: Int, asked: Int) {
        let bucket = try await lookUp(bucket: name)
        let found = await clusterUsage(of: bucket)
        return (bucket.record, found.usage, found.answered, found.asked)
    }

    /// Admits a PUT of `size` bytes to `key` against its bucket's quota, before a byte of
    /// the body is read: QUOTA_EXCEEDED when the bucket would hold more objects or bytes than
    /// its record allows. Replacing an object counts only the difference, checked when the
    /// bucket is at its limit (a read of the key). Buckets without a quota cost nothing.
    public func admitPut(key: String, size: UInt64, bucket: ResolvedBucket) async throws(AgadirError) {
        let record = bucket.record
        guard record.hasQuota else { return }
        let usage = try await quotaUsage.usage(of: record.name) { () throws(AgadirError) -> BucketUsage in
            await self.clusterUsage(of: bucket).usage
        }
        var adds = BucketUsage(objects: 1, bytes: size)
        func over(_ adds: BucketUsage) -> Bool {
            (record.maxObjects > 0 && usage.objects + adds.objects > record.maxObjects)
                || (record.maxBytes > 0 && usage.bytes + adds.bytes > record.maxBytes)
        }
        if over(adds) {
            // At the limit: an overwrite adds no object and frees the old bytes.
            do throws(AgadirError) {
                let old = try await liveManifest(key: key, level: bucket.policy.readConsistency, bucket: bucket)
                adds = BucketUsage(objects: 0, bytes: size > old.size ? size - old.size : 0)
            } catch  where error.code == .noSuchKey {
                // A new key: counts whole.
            }
        }
        guard !over(adds) else {
            throw AgadirError(
                .quotaExceeded,
                "bucket '\(record.name)' holds \(usage.objects) objects and \(usage.bytes) bytes; a PUT of "
                    + "\(size) bytes would pass its quota ("
                    + [
                        record.maxObjects > 0 ? "\(record.maxObjects) objects" : nil,
                        record.maxBytes > 0 ? "\(record.maxBytes) bytes" : nil,
                    ].compactMap { $0 }.joined(separator: ", ")
                    + "); delete objects, or raise it with `agadir admin bucket quota \(record.name)`")
        }
        quotaUsage.admit(adds, to: record.name)
    }

    /// A delete frees room: the next PUT of the bucket fetches its usage anew.
    public func deleted(from bucket: ResolvedBucket) {
        if bucket.record.hasQuota { quotaUsage.forget(bucket.record.name) }
    }

    /// Sets a bucket's quota (nil leaves a limit as it is, 0 removes it): a new catalog record
    /// sent to every alive member like a creation.
    public func setQuota(
        bucket name: String, maxBytes: UInt64?, maxObjects: UInt64?
    ) async throws(AgadirError) -> BucketRecord {
        guard var record = try await context.bucketRecord(name), !record.deleted else {
            throw AgadirError(.noSuchBucket, "bucket '\(name)' does not exist")
        }
        guard maxBytes != nil || maxObjects != nil else { return record }
        if let maxBytes { record.maxBytes = maxBytes }
        if let maxObjects { record.maxObjects = maxObjects }
        record.version = nextVersion(above: record.version)
        try await writeCatalog(record, snapshot: context.snapshot())
        quotaUsage.forget(name)
        return record
    }
}
