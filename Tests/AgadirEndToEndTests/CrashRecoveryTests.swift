import AgadirClient
import AgadirCore
import AgadirWire
import Foundation
import Synchronization
import Testing

@Suite("Acknowledged writes survive kill -9", .serialized)
struct CrashRecoveryTests {
    /// The bytes of an object are a function of its key, so a reader can check any object.
    static func content(for key: String) -> [UInt8] {
        let seed = ChunkID.of(Array(key.utf8)).prefix64
        var rng = SplitMix64(seed: seed)
        let sizes = [0, 100, 4096, 70_000, 1 << 20, (2 << 20) + 333]
        let size = sizes[Int(seed % UInt64(sizes.count))]
        return rng.bytes(size)
    }

    @Test("kill -9 during concurrent PUTs: every acknowledged object reads back, nothing half-visible")
    func killDuringConcurrentPuts() async throws {
        let node = try NodeProcess()
        defer { node.cleanUp() }
        try node.start()
        let client = try node.client(connections: 4)
        try await client.createBucket("crash")

        let acknowledged = Locked<Set<String>>([])
        let attempted = Locked<Set<String>>([])
        let writers = 16
        let killAfterAcks = 150
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<writers {
                group.addTask {
                    for i in 0..<10_000 {  // bounded; the kill ends it long before
                        let key = "w\(w)/obj-\(i)"
                        attempted.withLock { _ = $0.insert(key) }
                        do {
                            try await client.put(bucket: "crash", key: key, data: Self.content(for: key))
                            acknowledged.withLock { _ = $0.insert(key) }
                        } catch {
                            return
                        }
                    }
                }
            }
            group.addTask {
                let deadline = Date().addingTimeInterval(120)
                while acknowledged.withLock({ $0.count }) < killAfterAcks, Date() < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                }
                node.stop(signal: SIGKILL)
            }
            try await group.waitForAll()
        }
        await client.close()
        let acked = acknowledged.withLock { $0 }
        let tried = attempted.withLock { $0 }
        #expect(acked.count >= killAfterAcks)

        try node.start()
        let after = try node.client()
        for key in acked.sorted() {
            let (_, bytes) = try await after.get(bucket: "crash", key: key)
            #expect(bytes == Self.content(for: key), "acknowledged \(key) reads back intact")
        }
        // Unacknowledged PUTs are either absent or whole: never a partial object.
        var resurrected = 0
        for key in tried.subtracting(acked).sorted() {
            do {
                let (_, bytes) = try await after.get(bucket: "crash", key: key)
                #expect(bytes == Self.content(for: key), "unacknowledged \(key) is whole if visible")
                resurrected += 1
            } catch {
                #expect(error.code == .noSuchKey, "unacknowledged \(key): \(error)")
            }
        }
        // Listing shows nothing that was never written, and everything acknowledged.
        var listed: Set<String> = []
        var startAfter: String? = nil
        for _ in 0..<1000 {
            let page = try await after.list(ListRequest(bucket: "crash", startAfter: startAfter, limit: 1000))
            listed.formUnion(page.entries.map(\.key))
            guard page.isTruncated else { break }
            startAfter = page.nextStartAfter
        }
        #expect(listed.isSuperset(of: acked))
        #expect(listed.isSubset(of: tried))
        await after.close()
        _ = resurrected
    }

    @Test("SIGTERM lets the node stop cleanly and restart with every object")
    func gracefulStopAndRestart() async throws {
        let node = try NodeProcess()
        defer { node.cleanUp() }
        try node.start()
        let client = try node.client()
        try await client.createBucket("graceful")
        for i in 0..<20 { try await client.put(bucket: "graceful", key: "k\(i)", data: Self.content(for: "k\(i)")) }
        await client.close()
        let status = node.stop(signal: SIGTERM)
        #expect(status == 0, "agadird exits 0 after SIGTERM")
        try node.start()
        let again = try node.client()
        for i in 0..<20 {
            let (_, bytes) = try await again.get(bucket: "graceful", key: "k\(i)")
            #expect(bytes == Self.content(for: "k\(i)"))
        }
        await again.close()
    }
}
