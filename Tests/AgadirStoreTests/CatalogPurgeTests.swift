import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

/// Deleted buckets' records are purged after the catalog grace (issue 12, "Bounds"): names
/// created and deleted by the hundred thousand do not fill the catalog for good.
@Suite("Bucket catalog purge")
struct CatalogPurgeTests {
    private func at(_ millis: UInt64, node: UInt64 = 1) -> ObjectVersion {
        ObjectVersion(timestamp: HLCTimestamp(physicalMillis: millis, logical: 0), node: node)
    }

    private func record(_ name: String, _ millis: UInt64, deleted: Bool) -> BucketRecord {
        BucketRecord(name: name, policy: "ma", createdMillis: millis, version: at(millis), deleted: deleted)
    }

    @Test func onlyOldDeletionRecords_withNoManifestLeft_arePurged() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        _ = try await store.mergeBucketRecord(record("old-deleted", 1_000, deleted: true))
        _ = try await store.mergeBucketRecord(record("new-deleted", 9_000, deleted: true))
        _ = try await store.mergeBucketRecord(record("old-live", 1_000, deleted: false))
        _ = try await store.mergeBucketRecord(record("old-with-data", 1_000, deleted: true))
        // A manifest still held under the deleted name keeps its record (it stays attributable).
        _ = try await store.putReplicaManifest(
            .tombstone(bucket: "old-with-data", key: "k", version: at(900)))
        #expect(try await store.purgeDeletedBuckets(deletedBeforeMillis: 5_000) == 1)
        let names = try await store.bucketCatalog().map(\.name).sorted()
        #expect(names == ["new-deleted", "old-live", "old-with-data"])
        #expect(try await store.purgeDeletedBuckets(deletedBeforeMillis: 5_000) == 0)
        await store.close()
    }

    @Test(.timeLimit(.minutes(5))) func aCatalogFullOfDeletedNames_takesNewBucketsAgainOnceTheyArePurged() async throws
    {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        let total = NodeStore.maxBucketRecords
        // 100,000 names created and deleted long ago (deletion records), merged 1,000 at a time.
        for start in stride(from: 0, to: total, by: 1000) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in start..<min(start + 1000, total) {
                    group.addTask { _ = try await store.mergeBucketRecord(record("gone-\(i)", 1_000, deleted: true)) }
                }
                try await group.waitForAll()
            }
        }
        let full = await agadirError {
            try await store.createBucket(BucketInfo(name: "fresh-bucket", policy: "default", createdMillis: 2_000))
        }
        #expect(full?.code == .storageFull, "\(String(describing: full))")
        var purged = 0
        for _ in 0..<20 {
            let n = try await store.purgeDeletedBuckets(deletedBeforeMillis: 5_000)
            purged += n
            if n == 0 { break }
        }
        #expect(purged == total)
        try await store.createBucket(BucketInfo(name: "fresh-bucket", policy: "default", createdMillis: 2_000))
        #expect(try await store.bucket("fresh-bucket") != nil)
        await store.close()
    }
}
