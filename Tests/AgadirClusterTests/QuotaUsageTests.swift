import AgadirCore
import Synchronization
import Testing

@testable import AgadirCluster

@Suite("A coordinator's view of its buckets' usage")
struct QuotaUsageTests {
    @Test("one fetch serves callers within its age; admitted PUTs add to it until the next fetch; forget fetches anew")
    func fetchesAreReused_andAdmittedPutsCount() async throws {
        let cache = QuotaUsage(maxAge: .seconds(3600))
        let fetches = Atomic<Int>(0)
        let held = Mutex(BucketUsage(objects: 10, bytes: 100))
        let fetch: @Sendable () async throws(AgadirError) -> BucketUsage = {
            fetches.add(1, ordering: .relaxed)
            return held.withLock { $0 }
        }
        #expect(try await cache.usage(of: "b", fetch: fetch) == BucketUsage(objects: 10, bytes: 100))
        cache.admit(BucketUsage(objects: 1, bytes: 5), to: "b")
        cache.admit(BucketUsage(objects: 1, bytes: 5), to: "b")
        held.withLock { $0 = BucketUsage(objects: 50, bytes: 500) }
        #expect(try await cache.usage(of: "b", fetch: fetch) == BucketUsage(objects: 12, bytes: 110))
        #expect(fetches.load(ordering: .relaxed) == 1)
        // Another bucket has its own figures.
        cache.admit(BucketUsage(objects: 1, bytes: 1), to: "other")  // nothing fetched yet: ignored
        #expect(try await cache.usage(of: "other", fetch: fetch) == BucketUsage(objects: 50, bytes: 500))
        // After a delete: fetched anew, the admitted PUTs are in the new figures.
        cache.forget("b")
        #expect(try await cache.usage(of: "b", fetch: fetch) == BucketUsage(objects: 50, bytes: 500))
        #expect(fetches.load(ordering: .relaxed) == 3)
    }

    @Test("a fetch older than the age is made again, and the admitted count starts over")
    func staleFetches_areRenewed() async throws {
        let cache = QuotaUsage(maxAge: .zero)
        let fetches = Atomic<Int>(0)
        let fetch: @Sendable () async throws(AgadirError) -> BucketUsage = {
            fetches.add(1, ordering: .relaxed)
            return BucketUsage(objects: 1, bytes: 1)
        }
        _ = try await cache.usage(of: "b", fetch: fetch)
        cache.admit(BucketUsage(objects: 5, bytes: 5), to: "b")
        #expect(try await cache.usage(of: "b", fetch: fetch) == BucketUsage(objects: 1, bytes: 1))
        #expect(fetches.load(ordering: .relaxed) == 2)
    }
}
