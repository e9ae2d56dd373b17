import AgadirCore
import AgadirWire
import Logging
import ServiceLifecycle
import Synchronization

/// What a worker says after one step: how it stands, and so when the runner steps it again.
public enum WorkerStep: Sendable, Equatable {
    /// More work waits: step again at once.
    case busy
    /// Working at its rate: step again after `Duration`.
    case throttled(Duration)
    /// Nothing to do: look again after `Duration`.
    case idle(Duration)
    /// Paused by an operator: look again after `Duration`.
    case paused(Duration)
    /// The step failed: retry after `Duration`.
    case failed(AgadirError, retryAfter: Duration)
    /// Finished for good: the runner ends.
    case done
}

/// A node's background work as a sequence of bounded steps (docs/architecture.md,
/// "Background workers"): the worker decides, the `WorkerRunner` owns the task, the
/// waiting between steps, the graceful shutdown and the reporting. The rebalance,
/// anti-entropy, scrub, garbage collection and the cluster sync are workers.
public protocol Worker: Sendable {
    /// A stable name (`rebalance`), as `agadir admin workers` lists it.
    var name: String { get }
    /// One bounded unit of work.
    func step() async -> WorkerStep
    /// The worker's own phase and a line of progress, for `agadir admin workers`.
    func report() -> (phase: String?, progress: String?)
}

/// Runs one worker inside the node's `ServiceGroup`: steps it, waits as it says, stops at
/// once on graceful shutdown (the wait is cancelled; a step in progress finishes its
/// current bounded unit), and keeps its state for `agadir admin workers`.
public final class WorkerRunner: Service, Sendable {
    public let worker: any Worker
    let logger: Logger

    private struct Status {
        var state: WorkerState = .idle
        var lastError: String?
        var steps = 0
        var lastStepMillis: UInt64?
    }
    private let status = Mutex(Status())

    public init(_ worker: any Worker, logger: Logger) {
        self.worker = worker
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.loop() }
    }

    /// Steps until `done` or cancellation; public for tests that drive a runner by hand.
    public func loop() async {
        while !Task.isCancelled {
            status.withLock { $0.state = .busy }
            let step = await worker.step()
            let pause = record(step)
            guard let pause else { return }
            if pause == .zero {
                await Task.yield()
                continue
            }
            do {
                try await Task.sleep(for: pause)
            } catch {
                return
            }
        }
    }

    /// Records the outcome of one step; the wait before the next, nil when the worker is done.
    @discardableResult
    func record(_ step: WorkerStep) -> Duration? {
        let now = WallMillis.now()
        return status.withLock { s in
            s.steps += 1
            s.lastStepMillis = now
            switch step {
            case .busy:
                s.state = .busy
                s.lastError = nil
                return .zero
            case .throttled(let d):
                s.state = .throttled
                s.lastError = nil
                return d
            case .idle(let d):
                s.state = .idle
                s.lastError = nil
                return d
            case .paused(let d):
                s.state = .paused
                return d
            case .failed(let error, let retry):
                s.state = .failed
                s.lastError = error.message
                return retry
            case .done:
                s.state = .done
                return nil
            }
        }
    }

    /// The worker as `agadir admin workers` shows it.
    public var info: WorkerInfo {
        let s = status.withLock { $0 }
        let (phase, progress) = worker.report()
        return WorkerInfo(
            name: worker.name, state: s.state, phase: phase, progress: progress, lastError: s.lastError, steps: s.steps,
            lastStepMillis: s.lastStepMillis)
    }
}
