import AgadirCore
import Synchronization
import Testing

@Suite("SingleFlight: one run shared by concurrent callers")
struct SingleFlightTests {
    final class Counter: Sendable {
        let runs = Atomic<Int>(0)
    }

    @Test func concurrentCallers_shareOneRun_andAFreshResultIsReused() async throws {
        let flight = SingleFlight<Int>()
        let counter = Counter()
        let work: @Sendable () async throws(AgadirError) -> Int = {
            let n = counter.runs.add(1, ordering: .sequentiallyConsistent).newValue
            try? await Task.sleep(for: .milliseconds(200))
            return n
        }
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<20 { group.addTask { try await flight.run(reuseWithin: .seconds(60), work) } }
            var out: [Int] = []
            for try await r in group { out.append(r) }
            return out
        }
        #expect(results == Array(repeating: 1, count: 20))
        #expect(counter.runs.load(ordering: .sequentiallyConsistent) == 1)
        // Within the reuse window: the same answer, no new run.
        #expect(try await flight.run(reuseWithin: .seconds(60), work) == 1)
        // A window of zero: a new run.
        #expect(try await flight.run(reuseWithin: .zero, work) == 2)
    }

    @Test func failuresAreNotReused() async throws {
        let flight = SingleFlight<Int>()
        let counter = Counter()
        let failing: @Sendable () async throws(AgadirError) -> Int = { () throws(AgadirError) -> Int in
            counter.runs.add(1, ordering: .sequentiallyConsistent)
            throw AgadirError(.ioError, "disk")
        }
        for _ in 0..<3 {
            await #expect(throws: AgadirError.self) { try await flight.run(reuseWithin: .seconds(60), failing) }
        }
        #expect(counter.runs.load(ordering: .sequentiallyConsistent) == 3)
    }
}
