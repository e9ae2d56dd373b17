import AgadirCore
import Synchronization

/// A budget of bytes shared by tasks, with waiting: what bounds the memory that answers
/// not yet read by their clients may hold (docs/architecture.md, "Memory held by
/// answers"). Waiters are served first come, first served; a waiter whose task is
/// cancelled leaves the queue.
public final class ByteBudget: Sendable {
    public let capacity: Int

    private struct Waiter {
        var id: UInt64
        var bytes: Int
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var available: Int
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }

    private let state: Mutex<State>

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        self.state = Mutex(State(available: max(1, capacity)))
    }

    /// Bytes not taken now.
    public var available: Int { state.withLock { $0.available } }

    /// Takes `bytes` (clamped to the capacity) when nobody waits and they are free.
    public func tryAcquire(_ bytes: Int) -> Bool {
        let n = min(max(0, bytes), capacity)
        return state.withLock { s in
            guard s.waiters.isEmpty, s.available >= n else { return false }
            s.available -= n
            return true
        }
    }

    /// Takes `bytes` (clamped to the capacity), waiting for them; throws `CancellationError`
    /// when the task is cancelled while waiting.
    public func acquire(_ bytes: Int) async throws {
        let n = min(max(0, bytes), capacity)
        let id = state.withLock { s -> UInt64? in
            if s.waiters.isEmpty, s.available >= n {
                s.available -= n
                return nil
            }
            s.nextID += 1
            return s.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let resumeNow = state.withLock { s -> Bool in
                    if Task.isCancelled { return true }
                    s.waiters.append(Waiter(id: id, bytes: n, continuation: c))
                    return false
                }
                if resumeNow { c.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let cancelled = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            cancelled?.resume(throwing: CancellationError())
        }
    }

    /// Gives back `bytes` taken by `acquire` or `tryAcquire` (clamped the same way).
    public func release(_ bytes: Int) {
        let n = min(max(0, bytes), capacity)
        let ready = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.available = min(capacity, s.available + n)
            var out: [CheckedContinuation<Void, any Error>] = []
            while let first = s.waiters.first, first.bytes <= s.available {
                s.available -= first.bytes
                out.append(s.waiters.removeFirst().continuation)
            }
            return out
        }
        for c in ready { c.resume() }
    }
}

/// The two budgets an answer's bytes are taken from: its connection's and the node's.
public struct ResponseBudget: Sendable {
    public let connection: ByteBudget
    public let node: ByteBudget

    public init(connection: ByteBudget, node: ByteBudget) {
        self.connection = connection
        self.node = node
    }

    /// Waits for `bytes` of both (the connection's first, so one connection never holds the
    /// node's budget while waiting for its own).
    public func acquire(_ bytes: Int) async throws {
        try await connection.acquire(bytes)
        do {
            try await node.acquire(bytes)
        } catch {
            connection.release(bytes)
            throw error
        }
    }

    /// Takes `bytes` of both at once, or nothing.
    public func tryAcquire(_ bytes: Int) -> Bool {
        guard connection.tryAcquire(bytes) else { return false }
        guard node.tryAcquire(bytes) else {
            connection.release(bytes)
            return false
        }
        return true
    }

    public func release(_ bytes: Int) {
        node.release(bytes)
        connection.release(bytes)
    }
}
