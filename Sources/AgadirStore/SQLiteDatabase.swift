import AgadirCore
import CSQLite

/// A value bound to a statement parameter.
enum SQLiteValue: Sendable {
    case int(Int64)
    case blob([UInt8])
    case text(String)
    case null
}

/// A thin wrapper over one SQLite connection, with a cache of prepared statements (keyed by
/// SQL text; every SQL string in this module is a literal, so the cache is bounded by the code).
///
/// Opened in multi-thread mode (`SQLITE_OPEN_NOMUTEX`): a connection must be used by one
/// thread at a time. The writer connection belongs to the writer thread; reader connections
/// are handed out one thread at a time by `ReaderPool`. That discipline is what makes the
/// `@unchecked Sendable` sound. Every SQLite failure becomes `AgadirError(.ioError, ...)`
/// carrying SQLite's own message; a full disk (`SQLITE_FULL`) becomes `.storageFull`.
final class SQLiteDatabase: @unchecked Sendable {
    let path: String
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    /// `vfs`: the SQLite VFS to open it with (tests' simulated disk); nil for the default.
    init(path: String, readOnly: Bool, vfs: String? = nil, busyTimeoutMillis: Int32 = 5000) throws(AgadirError) {
        self.path = path
        var db: OpaquePointer?
        let flags =
            (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE))
            | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, vfs)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            throw AgadirError(.ioError, "cannot open SQLite database \(path): \(message) (code \(rc))")
        }
        handle = db
        sqlite3_busy_timeout(db, busyTimeoutMillis)
        sqlite3_extended_result_codes(db, 1)
    }

    deinit { close() }

    /// Finalizes every statement and closes the connection; later calls throw.
    func close() {
        for (_, stmt) in statements { sqlite3_finalize(stmt) }
        statements.removeAll()
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    private func error(_ what: String, _ rc: Int32) -> AgadirError {
        let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "connection is closed"
        return AgadirError(Self.errorCode(rc), "SQLite \(path): \(what) failed: \(message) (code \(rc))")
    }

    /// `.storageFull` for a full disk (any extended code of `SQLITE_FULL`), `.ioError` otherwise.
    static func errorCode(_ rc: Int32) -> AgadirError.Code {
        rc & 0xFF == SQLITE_FULL ? .storageFull : .ioError
    }

    private func connection() throws(AgadirError) -> OpaquePointer {
        guard let handle else { throw AgadirError(.shuttingDown, "SQLite database \(path) is closed") }
        return handle
    }

    /// Runs one or more statements without parameters or results (pragmas, DDL, BEGIN/COMMIT).
    func execute(_ sql: String) throws(AgadirError) {
        let db = try connection()
        var messagePointer: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &messagePointer)
        if rc != SQLITE_OK {
            let message = messagePointer.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(messagePointer)
            throw AgadirError(
                Self.errorCode(rc), "SQLite \(path): '\(sql.prefix(60))' failed: \(message) (code \(rc))")
        }
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int {
        guard let handle else { return 0 }
        return Int(sqlite3_changes(handle))
    }

    /// The rowid of the last row inserted on this connection.
    var lastInsertRowID: Int64 {
        guard let handle else { return 0 }
        return sqlite3_last_insert_rowid(handle)
    }

    /// Runs a statement that returns no rows.
    func run(_ sql: String, _ values: [SQLiteValue] = []) throws(AgadirError) {
        let stmt = try prepared(sql, values)
        defer { sqlite3_reset(stmt) }
        while try step(stmt, sql) {}
    }

    /// Runs a query and calls `body` for each row until it returns false or rows run out.
    func forEachRow(
        _ sql: String, _ values: [SQLiteValue] = [], _ body: (SQLiteRow) throws(AgadirError) -> Bool
    ) throws(AgadirError) {
        let stmt = try prepared(sql, values)
        defer { sqlite3_reset(stmt) }
        while try step(stmt, sql) {
            guard try body(SQLiteRow(stmt: stmt)) else { return }
        }
    }

    /// Runs a query and maps its first row, or returns nil when it has none.
    func firstRow<T>(
        _ sql: String, _ values: [SQLiteValue] = [], _ map: (SQLiteRow) throws(AgadirError) -> T
    ) throws(AgadirError) -> T? {
        let stmt = try prepared(sql, values)
        defer { sqlite3_reset(stmt) }
        guard try step(stmt, sql) else { return nil }
        return try map(SQLiteRow(stmt: stmt))
    }

    // MARK: Statements

    private func prepared(_ sql: String, _ values: [SQLiteValue]) throws(AgadirError) -> OpaquePointer {
        let db = try connection()
        let stmt: OpaquePointer
        if let cached = statements[sql] {
            stmt = cached
        } else {
            var fresh: OpaquePointer?
            let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &fresh, nil)
            guard rc == SQLITE_OK, let fresh else { throw error("preparing '\(sql.prefix(60))'", rc) }
            statements[sql] = fresh
            stmt = fresh
        }
        sqlite3_clear_bindings(stmt)
        for (i, value) in values.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch value {
            case .int(let v):
                rc = sqlite3_bind_int64(stmt, index, v)
            case .null:
                rc = sqlite3_bind_null(stmt, index)
            case .blob(let bytes):
                if bytes.isEmpty {
                    rc = sqlite3_bind_zeroblob(stmt, index, 0)
                } else {
                    rc = bytes.withUnsafeBytes { buf in
                        sqlite3_bind_blob(stmt, index, buf.baseAddress, Int32(buf.count), sqliteTransient)
                    }
                }
            case .text(let string):
                var utf8 = Array(string.utf8)
                utf8.append(0)
                rc = utf8.withUnsafeBufferPointer { buf in
                    buf.withMemoryRebound(to: CChar.self) { chars in
                        sqlite3_bind_text(stmt, index, chars.baseAddress, Int32(chars.count - 1), sqliteTransient)
                    }
                }
            }
            guard rc == SQLITE_OK else {
                sqlite3_reset(stmt)
                throw error("binding parameter \(index) of '\(sql.prefix(60))'", rc)
            }
        }
        return stmt
    }

    /// True when a row is available, false when done.
    private func step(_ stmt: OpaquePointer, _ sql: String) throws(AgadirError) -> Bool {
        let rc = sqlite3_step(stmt)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw error("'\(sql.prefix(60))'", rc)
        }
    }
}

/// The current row of a statement; valid only inside the callback that received it.
struct SQLiteRow {
    fileprivate let stmt: OpaquePointer

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_NULL }

    func blob(_ column: Int32) -> [UInt8] {
        let base = sqlite3_column_blob(stmt, column)  // before column_bytes, as SQLite asks
        let count = Int(sqlite3_column_bytes(stmt, column))
        guard count > 0, let base else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: base, count: count))
    }

    /// The column's value when it is an INTEGER (not NULL, text or a blob read as a number).
    func integer(_ column: Int32) -> Int64? {
        sqlite3_column_type(stmt, column) == SQLITE_INTEGER ? sqlite3_column_int64(stmt, column) : nil
    }

    /// The column's text when it is TEXT holding valid UTF-8; nil otherwise (a damaged row).
    /// `text(_:)` repairs invalid UTF-8 instead; values read back for other nodes use this one.
    func utf8Text(_ column: Int32) -> String? {
        guard sqlite3_column_type(stmt, column) == SQLITE_TEXT else { return nil }
        let base = sqlite3_column_text(stmt, column)  // before column_bytes, as SQLite asks
        let count = Int(sqlite3_column_bytes(stmt, column))
        guard count > 0 else { return "" }
        guard let base else { return nil }
        return String(validating: UnsafeBufferPointer(start: base, count: count), as: UTF8.self)
    }

    func text(_ column: Int32) -> String {
        guard let base = sqlite3_column_text(stmt, column) else { return "" }
        let count = Int(sqlite3_column_bytes(stmt, column))
        return String(decoding: UnsafeBufferPointer(start: base, count: count), as: UTF8.self)
    }
}

/// `SQLITE_TRANSIENT`: SQLite copies bound bytes before the bind call returns.
private let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
