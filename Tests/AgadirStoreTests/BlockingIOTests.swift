import AgadirCore
import Dispatch
import Foundation
import Synchronization
import Testing

@testable import AgadirStore

/// Point reads never block a thread of the cooperative pool (issue 11): with every SQLite
/// connection lent, they wait on the store's I/O pool, and other tasks keep running.
/// Lends `count` read connections of `store` to threads that keep them until the returned
/// semaphore is signalled (once per connection).
private func holdEveryConnection(of store: NodeStore, count: Int) -> DispatchSemaphore {
    let release = DispatchSemaphore(value: 0)
    for _ in 0..<count {
        let held = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            _ = try? store.readers.withConnection { _ throws(AgadirError) in
                held.signal()
                release.wait()
            }
        }
        held.wait()
    }
    return release
}

@Suite("Blocking I/O stays off the cooperative pool")
struct BlockingIOTests {
    @Test func withIdleConnection_answersNil_whenEveryConnectionIsLent() throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var options = StoreOptions()
        options.readerCount = 1
        let store = try openStore(dir, options: options)
        let release = holdEveryConnection(of: store, count: 1)
        let idle = try store.readers.withIdleConnection { _ throws(AgadirError) in true }
        #expect(idle == nil)
        release.signal()
        // Once given back, it is lent at once again.
        var again: Bool? = nil
        for _ in 0..<1000 where again == nil {
            again = try store.readers.withIdleConnection { _ throws(AgadirError) in true }
            if again == nil { Thread.sleep(forTimeInterval: 0.005) }
        }
        #expect(again == true)
        let closing = DispatchSemaphore(value: 0)
        Task {
            await store.close()
            closing.signal()
        }
        closing.wait()
    }

    @Test(.timeLimit(.minutes(1))) func manyPointReads_withTheOnlyConnectionLent_waitOnTheIOPool_andOtherTasksRun()
        async throws
    {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var options = StoreOptions()
        options.readerCount = 1
        options.ioThreads = 2
        let store = try openStore(dir, options: options)
        try await store.createBucket(BucketInfo(name: "bio", policy: "default", createdMillis: 0))
        let release = holdEveryConnection(of: store, count: 1)
        defer { release.signal() }  // never leave the thread holding it, whatever fails below
        // More waiting reads than this machine has cooperative threads.
        let reads = Task {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<32 { group.addTask { try await store.manifest(bucket: "bio", key: "k\(i)") == nil } }
                var all = true
                for try await absent in group { all = all && absent }
                return all
            }
        }
        // The cooperative pool still runs other work while the reads wait.
        var ticks = 0
        for _ in 0..<20 {
            try await Task.sleep(for: .milliseconds(5))
            ticks += 1
        }
        #expect(ticks == 20)
        release.signal()
        #expect(try await reads.value)
        await store.close()
    }
}
