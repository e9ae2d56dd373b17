import AgadirCore
import Logging
import ServiceLifecycle
import Synchronization

/// Work a request leaves behind once it has answered (a read repair, a hint parked for a
/// replica whose write failed after the quorum): started at once, counted, bounded, owned
/// here and ended by the graceful shutdown. As a `Service`, it waits for graceful shutdown,
/// then refuses new work, lets the running tasks finish for `drainTimeout`, and cancels the
/// rest, before the store closes (it sits after the workers in the node's service group).
public final class BackgroundTasks: Service, Sendable {
    /// Tasks running at once at most; work beyond is dropped (and counted): it is best effort.
    public let limit: Int
    public let drainTimeout: Duration
    let logger: Logger

    private struct State {
        var running: [UInt64: Task<Void, Never>] = [:]
        var nextID: UInt64 = 0
        var closed = false
        var started = 0
        var dropped = 0
    }
    private let state = Mutex(State())

    public init(limit: Int = 1024, drainTimeout: Duration = .seconds(5), logger: Logger) {
        self.limit = max(1, limit)
        self.drainTimeout = drainTimeout
        self.logger = logger
    }

    /// Tasks running now, started and dropped since the node started.
    public var counts: (running: Int, started: Int, dropped: Int) {
        state.withLock { ($0.running.count, $0.started, $0.dropped) }
    }

    /// Starts `work` unless `limit` tasks run already or the shutdown has begun; returns
    /// false when the work was dropped.
    @discardableResult
    public func start(_ what: String, _ work: @escaping @Sendable () async -> Void) -> Bool {
        state.withLock { s -> Bool in
            guard !s.closed, s.running.count < limit else {
                s.dropped += 1
                return false
            }
            let id = s.nextID
            s.nextID &+= 1
            s.started += 1
            // The entry is made under the lock before the task can finish and remove it.
            s.running[id] = Task { [weak self] in
                await work()
                self?.finished(id)
            }
            return true
        }
    }

    private func finished(_ id: UInt64) {
        state.withLock { _ = $0.running.removeValue(forKey: id) }
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await drain()
    }

    /// Refuses new work, waits up to `drainTimeout` for the running tasks, cancels the rest.
    public func drain() async {
        let clock = ContinuousClock()
        let deadline = clock.now + drainTimeout
        state.withLock { $0.closed = true }
        while clock.now < deadline, state.withLock({ !$0.running.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let left = state.withLock { s in
            defer { s.running.removeAll() }
            return Array(s.running.values)
        }
        if !left.isEmpty {
            logger.notice("background tasks cancelled at shutdown", metadata: ["count": "\(left.count)"])
            for task in left { task.cancel() }
            for task in left { await task.value }
        }
    }
}
