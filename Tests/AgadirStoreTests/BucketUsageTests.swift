import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

@Suite("What each bucket holds (schema 6): kept exact through every kind of write")
struct BucketUsageTests {
    /// The truth, counted from the rows themselves.
    private func counted(_ dir: TempDirectory, _ bucket: String) throws -> BucketUsage {
        try withMetadata(dir) { db in
            try db.firstRow(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM objects WHERE bucket = ? AND tombstone = 0",
                [.text(bucket)]
            ) { BucketUsage(objects: UInt64($0.int64(0)), bytes: UInt64($0.int64(1))) } ?? .zero
        }
    }

    @Test("random replica writes, overwrites, stale writes, delete markers and drops: the counters match the rows")
    func usage_matchesTheRowsAfterAnyHistory() async throws {
        var rng = SplitMix64(seed: 0x0B1E_C75)
        let buckets = ["alpha", "bravo"]
        for trial in 0..<6 {
            let dir = storeTempDirectory()
            defer { dir.cleanup() }
            let store = try openStore(dir)
            var held: [String: ObjectVersion] = [:]  // "bucket/key" -> the version written last
            for step in 0..<120 {
                let bucket = buckets[rng.int(0...1)]
                let key = "k\(rng.int(0...11))"
                let v = version(UInt64(step + 1), node: UInt64(rng.int(1...3)))
                switch rng.int(0...9) {
                case 0...4:  // a write, sometimes older than what is held (superseded)
                    let stale = rng.int(0...4) == 0 ? version(UInt64(max(1, step - 5))) : v
                    let body = [UInt8](repeating: 7, count: rng.int(0...300))
                    let outcome = try await store.putReplicaManifest(
                        inlineManifest(bucket: bucket, key: key, body: body, at: stale))
                    if case .applied = outcome { held["\(bucket)/\(key)"] = stale }
                case 5...7:
                    let outcome = try await store.putReplicaManifest(.tombstone(bucket: bucket, key: key, version: v))
                    if case .applied = outcome { held["\(bucket)/\(key)"] = v }
                default:  // a partition moved away: the row goes if its version is still the one held
                    if let stored = held["\(bucket)/\(key)"] {
                        _ = try await store.dropManifests([(bucket, key, stored)])
                        held["\(bucket)/\(key)"] = nil
                    }
                }
                if step % 20 == 19 {
                    for b in buckets {
                        let truth = try counted(dir, b)
                        #expect(try await store.bucketUsage(b) == truth, "trial \(trial) step \(step) bucket \(b)")
                    }
                }
            }
            await store.close()
            // Reopened: the counters are stored, not rebuilt.
            let again = try openStore(dir)
            for b in buckets { #expect(try await again.bucketUsage(b) == (try counted(dir, b)), "trial \(trial)") }
            await again.close()
        }
    }

    @Test("a standalone bucket's objects, overwritten and deleted, then the bucket removed")
    func standaloneWrites_andBucketDeletion() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("solo"))
        _ = try await store.putManifest(inlineManifest(bucket: "solo", key: "a", body: [1, 2, 3], at: version(1)))
        _ = try await store.putManifest(inlineManifest(bucket: "solo", key: "b", body: [1], at: version(2)))
        #expect(try await store.bucketUsage("solo") == BucketUsage(objects: 2, bytes: 4))
        _ = try await store.putManifest(
            inlineManifest(bucket: "solo", key: "a", body: [1, 2, 3, 4, 5], at: version(3)))
        #expect(try await store.bucketUsage("solo") == BucketUsage(objects: 2, bytes: 6))
        _ = try await store.putManifest(.tombstone(bucket: "solo", key: "a", version: version(4)))
        _ = try await store.putManifest(.tombstone(bucket: "solo", key: "b", version: version(5)))
        #expect(try await store.bucketUsage("solo") == .zero)
        try await store.deleteBucket("solo")
        #expect(try await store.bucketUsage("solo") == .zero)
        #expect(try await store.bucketUsage("never") == .zero)
        await store.close()
    }
}
