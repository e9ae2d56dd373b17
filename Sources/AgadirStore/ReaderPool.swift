import AgadirCore
import Dispatch
import Synchronization

/// A fixed set of read-only SQLite connections (WAL lets them read while the writer
/// commits), lent to one caller at a time. `withConnection` may wait for a free one: it is
/// called only on `NodeStore`'s I/O pool. Async callers use `withIdleConnection`, which
/// never waits (`NodeStore.read`).
final class ReaderPool: Sendable {
    private let available: DispatchSemaphore
    private let state: Mutex<(idle: [SQLiteDatabase], closed: Bool)>

    init(path: String, count: Int, vfs: String? = nil) throws(AgadirError) {
        var connections: [SQLiteDatabase] = []
        for _ in 0..<max(1, count) {
            let db = try SQLiteDatabase(path: path, readOnly: true, vfs: vfs)
            try db.execute("PRAGMA query_only=ON")
            connections.append(db)
        }
        available = DispatchSemaphore(value: connections.count)
        state = Mutex((connections, false))
    }

    /// Runs `body` with a connection of its own if one is idle now; nil (without running
    /// `body`) when every connection is lent.
    func withIdleConnection<T>(_ body: (SQLiteDatabase) throws(AgadirError) -> T) throws(AgadirError) -> T? {
        guard available.wait(timeout: .now()) == .success else { return nil }
        return try lent(body)
    }

    /// Runs `body` with a connection of its own, waiting for one (I/O pool threads only).
    func withConnection<T>(_ body: (SQLiteDatabase) throws(AgadirError) -> T) throws(AgadirError) -> T {
        available.wait()
        return try lent(body)
    }

    /// Runs `body` with an idle connection; the caller has taken one from `available`.
    private func lent<T>(_ body: (SQLiteDatabase) throws(AgadirError) -> T) throws(AgadirError) -> T {
        let db = state.withLock { state -> SQLiteDatabase? in
            state.closed ? nil : state.idle.popLast()
        }
        guard let db else {
            available.signal()
            throw AgadirError(.shuttingDown, "the store is closed")
        }
        defer {
            let keep = state.withLock { state -> Bool in
                if state.closed { return false }
                state.idle.append(db)
                return true
            }
            if !keep { db.close() }
            available.signal()
        }
        return try body(db)
    }

    /// Closes idle connections now and busy ones when they come back.
    func close() {
        let idle = state.withLock { state -> [SQLiteDatabase] in
            state.closed = true
            defer { state.idle.removeAll() }
            return state.idle
        }
        for db in idle { db.close() }
    }
}
