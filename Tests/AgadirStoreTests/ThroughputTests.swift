import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

@Suite("Group commit throughput")
struct ThroughputTests {
    /// Not a benchmark with a threshold (machines differ); it prints what it measured so the
    /// figure can be compared with sequential writes in the same run.
    @Test("2000 concurrent 4 KiB manifest writes complete in far fewer commits than writes")
    func concurrentManifestWrites_measureThroughput() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("bench"))
        let body = randomBytes(4096, seed: 1)

        let sequential = 50
        let sequentialStart = ContinuousClock.now
        for i in 0..<sequential {
            try await store.putManifest(inlineManifest(bucket: "bench", key: "seq-\(i)", body: body, at: version(1)))
        }
        let sequentialTime = ContinuousClock.now - sequentialStart

        let concurrent = 2000
        let before = store.writerCounters
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<concurrent {
                group.addTask {
                    _ = try await store.putManifest(
                        inlineManifest(bucket: "bench", key: "par-\(i)", body: body, at: version(1)))
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        let commits = store.writerCounters.commitCount - before.commitCount
        func perSecond(_ n: Int, _ d: Duration) -> Int {
            let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
            return Int(Double(n) / max(seconds, 1e-9))
        }
        print(
            "group commit: \(concurrent) concurrent 4 KiB putManifest in \(elapsed) = "
                + "\(perSecond(concurrent, elapsed)) ops/s over \(commits) commits; "
                + "sequential: \(perSecond(sequential, sequentialTime)) ops/s")
        #expect(commits < concurrent / 10)
        #expect(try await store.stats().objects == concurrent + sequential)
        await store.close()
    }
}
