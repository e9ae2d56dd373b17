import AgadirCore
import AgadirWire
import Logging
import Synchronization
import Testing

@testable import AgadirCluster

/// A worker that plays a script of steps, then says done.
private final class ScriptedWorker: Worker, Sendable {
    let script: [WorkerStep]
    let taken = Atomic<Int>(0)

    init(_ script: [WorkerStep]) { self.script = script }

    var name: String { "scripted" }

    func step() async -> WorkerStep {
        let i = taken.add(1, ordering: .relaxed).newValue - 1
        return i < script.count ? script[i] : .done
    }

    func report() -> (phase: String?, progress: String?) { ("phase-\(taken.load(ordering: .relaxed))", "progress") }
}

private let quietWorkers = Logger(label: "agadir.tests.workers", factory: { _ in SwiftLogNoOpLogHandler() })

@Suite("Background worker runner")
struct WorkerRunnerTests {
    @Test func everyStepOutcome_mapsToItsStateAndWait() {
        let runner = WorkerRunner(ScriptedWorker([]), logger: quietWorkers)
        let error = AgadirError(.unavailable, "peer gone")
        let cases: [(WorkerStep, WorkerState, Duration?)] = [
            (.busy, .busy, .zero), (.throttled(.milliseconds(250)), .throttled, .milliseconds(250)),
            (.idle(.seconds(1)), .idle, .seconds(1)), (.paused(.seconds(2)), .paused, .seconds(2)),
            (.failed(error, retryAfter: .seconds(3)), .failed, .seconds(3)), (.done, .done, nil),
        ]
        for (step, state, wait) in cases {
            #expect(runner.record(step) == wait, "\(step)")
            #expect(runner.info.state == state, "\(step)")
        }
        #expect(runner.info.steps == cases.count)
        #expect(runner.info.name == "scripted")
    }

    @Test func aFailure_keepsItsError_untilASuccessfulStep_butAPauseKeepsIt() {
        let runner = WorkerRunner(ScriptedWorker([]), logger: quietWorkers)
        runner.record(.failed(AgadirError(.ioError, "disk full"), retryAfter: .seconds(1)))
        #expect(runner.info.lastError == "disk full")
        runner.record(.paused(.seconds(1)))
        #expect(runner.info.lastError == "disk full" && runner.info.state == .paused)
        runner.record(.idle(.seconds(1)))
        #expect(runner.info.lastError == nil && runner.info.state == .idle)
    }

    @Test func theLoop_runsTheScriptToDone_andReportsThePhase() async {
        let worker = ScriptedWorker([.busy, .busy, .throttled(.milliseconds(1)), .idle(.milliseconds(1)), .busy])
        let runner = WorkerRunner(worker, logger: quietWorkers)
        await runner.loop()
        #expect(worker.taken.load(ordering: .relaxed) == 6)
        #expect(runner.info.state == .done)
        #expect(runner.info.steps == 6)
        #expect(runner.info.phase == "phase-6")
    }

    @Test func cancelling_endsTheLoopDuringItsWait() async throws {
        let worker = ScriptedWorker([.idle(.seconds(3600))])
        let runner = WorkerRunner(worker, logger: quietWorkers)
        let task = Task { await runner.loop() }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        while worker.taken.load(ordering: .relaxed) == 0, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        task.cancel()
        await task.value
        #expect(worker.taken.load(ordering: .relaxed) == 1, "the hour-long wait was cut short and no step followed")
        #expect(runner.info.state == .idle)
    }
}
