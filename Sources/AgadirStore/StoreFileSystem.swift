import AgadirCore
import Glibc

/// The operations through which a store changes its disk: creating, writing, truncating,
/// syncing and removing files, and syncing directories. Reads go straight to the descriptors.
///
/// Production uses `PosixFileSystem`. Tests swap in a simulated disk that records, per file,
/// what was written and what was synced, and then "loses power" (docs/storage.md, "Power
/// loss"); `sqliteVFS` routes the metadata database's writes through the same disk.
protocol StoreFileSystem: Sendable {
    /// Opens `path`; with `O_CREAT` it may create it.
    func open(_ path: String, _ flags: Int32, mode: mode_t) throws(AgadirError) -> Int32
    /// Writes all of `bytes` at `offset` of the file `fd` (opened on `path`).
    func write(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(AgadirError)
    /// Makes every write to the file so far durable (`fdatasync`).
    func dataSync(_ fd: Int32, path: String) throws(AgadirError)
    func truncate(_ fd: Int32, to length: Int, path: String) throws(AgadirError)
    /// Makes the creation and removal of the directory's entries durable.
    func syncDirectory(_ path: String) throws(AgadirError)
    func remove(_ path: String) throws(AgadirError)
    /// The SQLite VFS the metadata database is opened with; nil for SQLite's default.
    var sqliteVFS: String? { get }
}

extension StoreFileSystem {
    func open(_ path: String, _ flags: Int32) throws(AgadirError) -> Int32 {
        try open(path, flags, mode: 0o644)
    }
}

/// The real disk.
struct PosixFileSystem: StoreFileSystem {
    func open(_ path: String, _ flags: Int32, mode: mode_t) throws(AgadirError) -> Int32 {
        try Posix.open(path, flags, mode: mode)
    }

    func write(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(AgadirError) {
        try Posix.pwriteAll(fd, bytes, at: offset, path: path)
    }

    func dataSync(_ fd: Int32, path: String) throws(AgadirError) {
        try Posix.fdatasync(fd, path: path)
    }

    func truncate(_ fd: Int32, to length: Int, path: String) throws(AgadirError) {
        try Posix.ftruncate(fd, to: length, path: path)
    }

    func syncDirectory(_ path: String) throws(AgadirError) {
        try Posix.syncDirectory(path)
    }

    func remove(_ path: String) throws(AgadirError) {
        try Posix.unlink(path)
    }

    var sqliteVFS: String? { nil }
}
