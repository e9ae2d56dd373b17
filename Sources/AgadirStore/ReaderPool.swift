import AgadirCore
import Dispatch
import Synchronization

/// A fixed set of read-only SQLite connections (WAL lets them read while the writer
/// commits), lent to one blocking caller at a time. Callers run on `NodeStore`'s I/O
/// queue, never on the Swift cooperative pool, so waiting for a free connection is fine.
final class ReaderPool: Sendable {
    private let available: DispatchSemaphore
    private let state: Mutex<(idle: [SQLiteDatabase], closed: Bool)>

    init(path: String, count: Int) throws(AgadirError) {
        var connections: [SQLiteDatabase] = []
        for _ in 0..<max(1, count) {
            let db = try SQLiteDatabase(path: path, readOnly: true)
            try db.execute("PRAGMA query_only=ON")
            connections.append(db)
        }
        available = DispatchSemaphore(value: connections.count)
        state = Mutex((connections, false))
    }

    /// Runs `body` with a connection of its own.
    func withConnection<T>(_ body: (SQLiteDatabase) throws(AgadirError) -> T) throws(AgadirError) -> T {
        available.wait()
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
