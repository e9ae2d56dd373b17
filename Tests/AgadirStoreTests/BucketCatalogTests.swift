import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

@Suite("Bucket catalog")
struct BucketCatalogTests {
    private func record(
        _ name: String, _ v: ObjectVersion, deleted: Bool = false, policy: String = "eu-only"
    ) -> BucketRecord {
        BucketRecord(name: name, policy: policy, createdMillis: 1_700_000_000_000, version: v, deleted: deleted)
    }

    /// A random history of records over a few names; versions are unique per name, as HLC +
    /// node tags are in a cluster.
    private func randomHistory(_ rng: inout SplitMix64) -> [BucketRecord] {
        let names = ["alpha", "bravo", "charlie", "delta"]
        var used = Set<String>()
        var out: [BucketRecord] = []
        for _ in 0..<rng.int(1...16) {
            let name = names[rng.int(0...3)]
            let v = version(UInt64(rng.int(1...6)), node: UInt64(rng.int(1...3)))
            guard used.insert("\(name) \(v)").inserted else { continue }
            var r = record(name, v, deleted: rng.next() % 3 == 0, policy: "policy-\(rng.int(1...3))")
            if rng.next() % 2 == 0 {  // quotas travel with the record
                r.maxBytes = UInt64(rng.int(0...1 << 40))
                r.maxObjects = UInt64(rng.int(0...1_000_000))
            }
            out.append(r)
        }
        return out
    }

    @Test("merging the same records in random orders (sequential or concurrent) converges to the LWW catalog")
    func mergeBucketRecord_convergesInAnyOrder() async throws {
        var rng = SplitMix64(seed: 0xCA7A_1065)
        for trial in 0..<12 {
            let history = randomHistory(&rng)
            var expected: [String: BucketRecord] = [:]
            for r in history where expected[r.name].map({ r.version > $0.version }) ?? true { expected[r.name] = r }
            let catalog = expected.values.sorted { $0.name < $1.name }
            for order in 0..<3 {
                let dir = storeTempDirectory()
                defer { dir.cleanup() }
                let store = try openStore(dir)
                let shuffled = history.shuffled(using: &rng)
                if order == 2 {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for r in shuffled { group.addTask { _ = try await store.mergeBucketRecord(r) } }
                        try await group.waitForAll()
                    }
                } else {
                    var newest: [String: ObjectVersion] = [:]
                    for r in shuffled {
                        let shouldApply = newest[r.name].map { r.version > $0 } ?? true
                        #expect(try await store.mergeBucketRecord(r) == shouldApply, "trial \(trial)")
                        if shouldApply { newest[r.name] = r.version }
                    }
                }
                #expect(try await store.bucketCatalog() == catalog, "trial \(trial) order \(order)")
                let live = catalog.filter { !$0.deleted }
                #expect(try await store.listBuckets().map(\.name) == live.map(\.name))
                for r in catalog {
                    let info = try await store.bucket(r.name)
                    #expect(
                        info
                            == (r.deleted
                                ? nil : BucketInfo(name: r.name, policy: r.policy, createdMillis: r.createdMillis)))
                }
                await store.close()
            }
        }
    }

    @Test("a deleted record hides the bucket everywhere; an older record is ignored; a newer one brings it back")
    func deletedRecord_hidesBucket_untilNewerRecord() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var store = try openStore(dir)
        #expect(try await store.mergeBucketRecord(record("vault", version(5))) == true)
        try await store.putManifest(inlineManifest(bucket: "vault", key: "kept", body: [1, 2], at: version(1)))
        #expect(try await store.stats().buckets == 1)

        #expect(try await store.mergeBucketRecord(record("vault", version(6), deleted: true)) == true)
        #expect(try await store.bucket("vault") == nil)
        #expect(try await store.listBuckets().isEmpty)
        #expect(try await store.stats().buckets == 0)
        #expect(
            await agadirError {
                _ = try await store.list(bucket: "vault", prefix: "", delimiter: nil, startAfter: nil, limit: 5)
            }?.code == .noSuchBucket)
        #expect(
            await agadirError {
                try await store.putManifest(inlineManifest(bucket: "vault", key: "new", body: [], at: version(9)))
            }?.code == .noSuchBucket)
        #expect(try await store.mergeBucketRecord(record("vault", version(5, node: 9))) == false, "older: ignored")
        #expect(
            try await store.mergeBucketRecord(record("vault", version(6), deleted: true)) == false, "equal: ignored")
        #expect(try await store.bucketCatalog() == [record("vault", version(6), deleted: true)])
        await store.close()

        store = try openStore(dir)  // durable
        #expect(try await store.bucket("vault") == nil)
        let back = record("vault", version(7), policy: "eu-and-ma")
        #expect(try await store.mergeBucketRecord(back) == true)
        #expect(try await store.bucket("vault")?.policy == "eu-and-ma")
        // The deletion did not touch objects: the old key is there again.
        #expect(try await store.manifest(bucket: "vault", key: "kept")?.body == .inline([1, 2]))
        await store.close()
    }

    @Test("standalone createBucket records version zero, which any cluster record wins over; it replaces a deletion")
    func createBucket_isVersionZero_inTheCatalog() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("local"))
        #expect(
            try await store.bucketCatalog()
                == [
                    BucketRecord(
                        name: "local", policy: "default", createdMillis: 1_700_000_000_000, version: .zero,
                        deleted: false)
                ])
        #expect(try await store.mergeBucketRecord(record("local", .zero)) == false)
        #expect(try await store.mergeBucketRecord(record("local", version(1), deleted: true)) == true)
        #expect(try await store.bucket("local") == nil)
        try await store.createBucket(bucketInfo("local"))
        #expect(try await store.bucket("local") == bucketInfo("local"))
        #expect(await agadirError { try await store.createBucket(bucketInfo("local")) }?.code == .bucketAlreadyExists)
        try await store.deleteBucket("local")
        #expect(try await store.bucketCatalog().isEmpty, "standalone deletes remove the record")
        await store.close()
    }

    @Test("mergeBucketRecord refuses bad names and policies")
    func mergeBucketRecord_validates() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        #expect(
            await agadirError { _ = try await store.mergeBucketRecord(record("UPPER", version(1))) }?.code
                == .invalidBucketName)
        #expect(
            await agadirError { _ = try await store.mergeBucketRecord(record("fine", version(1), policy: "")) }?
                .code == .invalidArgument)
        #expect(
            await agadirError {
                _ = try await store.mergeBucketRecord(
                    record("fine", version(1), policy: String(repeating: "p", count: 256)))
            }?.code == .invalidArgument)
        #expect(try await store.bucketCatalog().isEmpty)
        await store.close()
    }
}
