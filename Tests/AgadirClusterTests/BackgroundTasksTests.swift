import AgadirCore
import Logging
import Synchronization
import Testing

@testable import AgadirCluster

private let quietTasks = Logger(label: "agadir.tests.background", factory: { _ in SwiftLogNoOpLogHandler() })

@Suite("Background tasks: owned, bounded, ended by the shutdown")
struct BackgroundTasksTests {
    @Test func workBeyondTheLimit_isDropped_andCounted() async {
        let tasks = BackgroundTasks(limit: 2, drainTimeout: .seconds(10), logger: quietTasks)
        let release = Mutex(false)
        for _ in 0..<2 {
            #expect(
                tasks.start("slow") {
                    while !release.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(5)) }
                })
        }
        #expect(!tasks.start("third") {})
        #expect(tasks.counts.running == 2 && tasks.counts.dropped == 1 && tasks.counts.started == 2)
        release.withLock { $0 = true }
        await tasks.drain()
        #expect(tasks.counts.running == 0)
    }

    @Test func drain_waitsForRunningWork_thenRefusesNewWork() async {
        let tasks = BackgroundTasks(limit: 8, drainTimeout: .seconds(30), logger: quietTasks)
        let done = Atomic<Int>(0)
        for _ in 0..<4 {
            tasks.start("repair") {
                try? await Task.sleep(for: .milliseconds(50))
                done.add(1, ordering: .relaxed)
            }
        }
        await tasks.drain()
        let finished = done.load(ordering: .relaxed)
        #expect(finished == 4, "every running task finished before drain returned")
        #expect(!tasks.start("late") {})
        #expect(tasks.counts.dropped == 1)
    }

    @Test(.timeLimit(.minutes(1))) func drain_cancelsWhatOutlivesTheTimeout() async {
        let tasks = BackgroundTasks(limit: 8, drainTimeout: .milliseconds(100), logger: quietTasks)
        let cancelled = Atomic<Bool>(false)
        tasks.start("stuck") {
            do {
                try await Task.sleep(for: .seconds(3600))
            } catch {
                cancelled.store(true, ordering: .relaxed)
            }
        }
        await tasks.drain()
        let wasCancelled = cancelled.load(ordering: .relaxed)
        #expect(wasCancelled)
        #expect(tasks.counts.running == 0)
    }
}
