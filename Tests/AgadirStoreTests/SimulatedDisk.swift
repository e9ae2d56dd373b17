import AgadirCore
import CSimulatedVFS
import Foundation
import Glibc
import Synchronization

@testable import AgadirStore

/// One change a store made to its disk, in the order the disk saw it.
enum DiskEvent: Sendable, Equatable {
    /// A file came into being; its directory entry is durable once its directory is synced
    /// (or, with `entryOnSync`, once the file is: SQLite's journals and WALs sync their directory then).
    case create(path: String, entryOnSync: Bool)
    case write(path: String, offset: Int, bytes: [UInt8])
    case truncate(path: String, length: Int)
    /// `fdatasync`: every write and truncation of the file so far is durable.
    case sync(path: String)
    /// The creations in the directory are durable.
    case syncDirectory(path: String)
    /// Removals are taken as durable at once (a removed file never comes back).
    case remove(path: String)

    var path: String {
        switch self {
        case .create(let p, _), .write(let p, _, _), .truncate(let p, _), .sync(let p), .syncDirectory(let p),
            .remove(let p):
            return p
        }
    }

    /// The same event with its path written one way (no doubled or trailing slashes), so that
    /// the store's paths and SQLite's full pathnames compare equal.
    func normalized() -> DiskEvent {
        let p = DiskModel.normalized(path)
        switch self {
        case .create(_, let entryOnSync): return .create(path: p, entryOnSync: entryOnSync)
        case .write(_, let offset, let bytes): return .write(path: p, offset: offset, bytes: bytes)
        case .truncate(_, let length): return .truncate(path: p, length: length)
        case .sync: return .sync(path: p)
        case .syncDirectory: return .syncDirectory(path: p)
        case .remove: return .remove(path: p)
        }
    }

    var isSync: Bool {
        if case .sync = self { return true }
        return false
    }
}

/// What survives a power cut.
enum PowerLoss: Sendable, CustomStringConvertible {
    /// Everything not synced is gone, and so is every file whose directory entry was not synced.
    case dropUnsynced
    /// Each file keeps a random prefix of its unsynced writes, the last one torn at a 4 KiB
    /// boundary; a file whose entry was not synced survives or not at random (ALICE, FoundationDB).
    case tornPrefix(seed: UInt64)

    var description: String {
        switch self {
        case .dropUnsynced: return "drop unsynced"
        case .tornPrefix(let seed): return "torn prefix (seed \(seed))"
        }
    }
}

/// The disk as a power cut would leave it, replayed from the events (pure: no I/O).
struct DiskModel {
    enum Pending {
        case write(offset: Int, bytes: [UInt8])
        case truncate(Int)
    }

    struct File {
        var synced: [UInt8] = []
        var entryDurable: Bool
        var entryOnSync = false
        var pending: [Pending] = []
    }

    private(set) var files: [String: File] = [:]

    /// Files that were on the disk (durably) before the first event.
    init(existing: [String: [UInt8]] = [:]) {
        for (path, bytes) in existing { files[path] = File(synced: bytes, entryDurable: true) }
    }

    mutating func apply(_ event: DiskEvent) {
        switch event {
        case .create(let path, let entryOnSync):
            files[path] = File(entryDurable: false, entryOnSync: entryOnSync)
        case .write(let path, let offset, let bytes):
            files[path, default: File(entryDurable: true)].pending.append(.write(offset: offset, bytes: bytes))
        case .truncate(let path, let length):
            files[path, default: File(entryDurable: true)].pending.append(.truncate(length))
        case .sync(let path):
            guard var file = files[path] else { return }
            for op in file.pending { Self.apply(op, to: &file.synced) }
            file.pending = []
            if file.entryOnSync { file.entryDurable = true }
            files[path] = file
        case .syncDirectory(let dir):
            for (path, file) in files where Self.parent(of: path) == Self.normalized(dir) && !file.entryDurable {
                files[path]?.entryDurable = true
            }
        case .remove(let path):
            files[path] = nil
        }
    }

    /// The files that survive a power cut now, with their contents.
    func afterPowerLoss(_ mode: PowerLoss) -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        switch mode {
        case .dropUnsynced:
            for (path, file) in files where file.entryDurable { out[path] = file.synced }
        case .tornPrefix(let seed):
            var rng = SplitMix64(seed: seed)
            for path in files.keys.sorted() {
                guard let file = files[path] else { continue }
                if !file.entryDurable, rng.next() % 2 == 0 { continue }
                var bytes = file.synced
                let kept = Int(rng.next() % UInt64(file.pending.count + 1))
                for op in file.pending.prefix(kept) { Self.apply(op, to: &bytes) }
                if kept < file.pending.count, case .write(let offset, let data) = file.pending[kept] {
                    // Torn: only whole 4 KiB pages of the file reached the disk, up to a random one.
                    let end = offset + data.count
                    var cuts = [offset]
                    var page = (offset / 4096 + 1) * 4096
                    while page < end {
                        cuts.append(page)
                        page += 4096
                    }
                    let cut = cuts[Int(rng.next() % UInt64(cuts.count))]
                    if cut > offset {
                        Self.apply(.write(offset: offset, bytes: Array(data[0..<(cut - offset)])), to: &bytes)
                    }
                }
                out[path] = bytes
            }
        }
        return out
    }

    static func apply(_ op: Pending, to bytes: inout [UInt8]) {
        switch op {
        case .write(let offset, let data):
            if bytes.count < offset + data.count {
                bytes.append(contentsOf: [UInt8](repeating: 0, count: offset + data.count - bytes.count))
            }
            bytes.replaceSubrange(offset..<(offset + data.count), with: data)
        case .truncate(let length):
            if bytes.count > length {
                bytes.removeSubrange(length...)
            } else {
                bytes.append(contentsOf: [UInt8](repeating: 0, count: length - bytes.count))
            }
        }
    }

    static func normalized(_ path: String) -> String {
        var p = path
        while p.contains("//") { p = p.replacingOccurrences(of: "//", with: "/") }
        while p.count > 1, p.hasSuffix("/") { p.removeLast() }
        return p
    }

    static func parent(of path: String) -> String {
        normalized((normalized(path) as NSString).deletingLastPathComponent)
    }
}

/// A disk for one store directory that keeps, per file, what was written and what was synced,
/// for the store's own files (`StoreFileSystem`) and its SQLite database (a VFS of its own).
/// Writes go to the real files too (the page cache, as it were), so the store reads what it
/// wrote; `materialize` builds what a power cut at any event would have left.
///
/// Faults: `cutPower(afterEvents:)` fails every change from that event on (the machine is off);
/// `fault` fails the events it matches with an errno (EIO, ENOSPC), as a failing disk would.
final class SimulatedDisk: StoreFileSystem, @unchecked Sendable {
    struct State {
        var log: [DiskEvent] = []
        var cutAt: Int?
        var fault: (@Sendable (DiskEvent) -> Int32?)?
        /// Events refused by `fault` (not in the log).
        var faulted: [DiskEvent] = []
    }

    let root: String
    let vfsName: String
    private let existing: [String: [UInt8]]
    private let state = Mutex(State())
    private var registered = false

    private static let counter = Atomic<Int>(0)

    /// A disk for the store in `root` (files already there count as durable).
    init(root: String) throws {
        self.root = DiskModel.normalized(root)
        vfsName = "agadir-sim-\(Self.counter.add(1, ordering: .relaxed).newValue)-\(getpid())"
        var found: [String: [UInt8]] = [:]
        if let walker = FileManager.default.enumerator(atPath: root) {
            while let relative = walker.nextObject() as? String {
                let path = self.root + "/" + relative
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                    !path.hasSuffix("-shm")
                else { continue }
                found[path] = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            }
        }
        existing = found
        let hooks = agadir_sim_hooks(
            context: Unmanaged.passRetained(self).toOpaque(),
            open: { context, path, flags in
                guard let context, let path else { return 0 }
                return SimulatedDisk.from(context).sqliteOpen(String(cString: path), flags: flags)
            },
            write: { context, path, bytes, count, offset in
                guard let context, let path, let bytes else { return 0 }
                let data = [UInt8](UnsafeRawBufferPointer(start: bytes, count: Int(count)))
                return SimulatedDisk.from(context).sqlite(
                    .write(path: String(cString: path), offset: Int(offset), bytes: data),
                    failure: agadir_sim_ioerr_write())
            },
            truncate: { context, path, size in
                guard let context, let path else { return 0 }
                return SimulatedDisk.from(context).sqlite(
                    .truncate(path: String(cString: path), length: Int(size)), failure: agadir_sim_ioerr_truncate())
            },
            sync: { context, path, flags in
                guard let context, let path else { return 0 }
                let disk = SimulatedDisk.from(context)
                let name = String(cString: path)
                // SQLite's unix VFS syncs a new journal's or WAL's directory with its first sync.
                if flags & (agadir_sim_open_wal() | agadir_sim_open_main_journal()) != 0 {
                    let rc = disk.sqlite(.sync(path: name), failure: agadir_sim_ioerr_fsync())
                    if rc != 0 { return rc }
                    disk.state.withLock { $0.log.append(.syncDirectory(path: DiskModel.parent(of: name)).normalized()) }
                    return 0
                }
                return disk.sqlite(.sync(path: name), failure: agadir_sim_ioerr_fsync())
            },
            remove: { context, path in
                guard let context, let path else { return 0 }
                return SimulatedDisk.from(context).sqlite(
                    .remove(path: String(cString: path)), failure: agadir_sim_ioerr_delete())
            })
        let rc = agadir_sim_vfs_register(vfsName, hooks)
        guard rc == 0 else {
            Unmanaged<SimulatedDisk>.fromOpaque(hooks.context).release()
            throw AgadirError(.ioError, "registering the simulated SQLite VFS failed (code \(rc))")
        }
        registered = true
    }

    /// Unregisters the VFS; call once no store uses the disk any more.
    func detach() {
        guard registered else { return }
        registered = false
        agadir_sim_vfs_unregister(vfsName)
        Unmanaged.passUnretained(self).release()
    }

    private static func from(_ context: UnsafeMutableRawPointer) -> SimulatedDisk {
        Unmanaged<SimulatedDisk>.fromOpaque(context).takeUnretainedValue()
    }

    // MARK: Faults and the log

    var events: [DiskEvent] { state.withLock { $0.log } }
    var eventCount: Int { state.withLock { $0.log.count } }
    var faultedEvents: [DiskEvent] { state.withLock { $0.faulted } }

    /// From the event after the first `count` on, every change fails: the power is off.
    func cutPower(afterEvents count: Int) { state.withLock { $0.cutAt = count } }

    /// Fails the events `rule` returns an errno for; nil lifts the fault.
    func setFault(_ rule: (@Sendable (DiskEvent) -> Int32?)?) { state.withLock { $0.fault = rule } }

    /// The errno that refuses `event` (the power is off, or a fault), or nil: then it is logged.
    private func admit(_ raw: DiskEvent) -> Int32? {
        let event = raw.normalized()
        return state.withLock { state in
            if let cut = state.cutAt, state.log.count >= cut { return EIO }
            if let code = state.fault?(event) {
                state.faulted.append(event)
                return code
            }
            state.log.append(event)
            return nil
        }
    }

    private func admitOrThrow(_ event: DiskEvent, _ what: String) throws(AgadirError) {
        if let code = admit(event) { throw Posix.ioError(what, event.path, errno: code) }
    }

    /// What a power cut after the first `events` events leaves, written into `target` (the
    /// disk's root mapped there): the files that survive, and every directory under the root.
    func materialize(atEvent events: Int, _ mode: PowerLoss, into target: String) throws {
        let log = state.withLock { $0.log }
        var model = DiskModel(existing: existing)
        for event in log.prefix(events) { model.apply(event) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: target, withIntermediateDirectories: true)
        if let walker = fm.enumerator(atPath: root) {
            while let relative = walker.nextObject() as? String {
                var isDirectory: ObjCBool = false
                if fm.fileExists(atPath: root + "/" + relative, isDirectory: &isDirectory), isDirectory.boolValue {
                    try fm.createDirectory(atPath: target + "/" + relative, withIntermediateDirectories: true)
                }
            }
        }
        for (path, bytes) in model.afterPowerLoss(mode) where path.hasPrefix(root + "/") {
            let mapped = target + path.dropFirst(root.count)
            try fm.createDirectory(
                atPath: (mapped as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: mapped))
        }
    }

    // MARK: SQLite's files (through the VFS)

    private func sqliteOpen(_ path: String, flags: Int32) -> Int32 {
        let create = flags & 0x0000_0004 != 0  // SQLITE_OPEN_CREATE
        guard create, access(path, F_OK) != 0 else { return 0 }
        let entryOnSync = flags & (agadir_sim_open_wal() | agadir_sim_open_main_journal()) != 0
        return admit(.create(path: path, entryOnSync: entryOnSync)) == nil ? 0 : agadir_sim_ioerr_write()
    }

    private func sqlite(_ event: DiskEvent, failure: Int32) -> Int32 {
        guard let code = admit(event) else { return 0 }
        return code == ENOSPC ? agadir_sim_full() : failure
    }

    // MARK: StoreFileSystem

    func open(_ path: String, _ flags: Int32, mode: mode_t) throws(AgadirError) -> Int32 {
        if flags & O_CREAT != 0, access(path, F_OK) != 0 {
            try admitOrThrow(.create(path: path, entryOnSync: false), "creating")
        }
        return try Posix.open(path, flags, mode: mode)
    }

    func write(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(AgadirError) {
        try admitOrThrow(.write(path: path, offset: offset, bytes: bytes), "writing")
        try Posix.pwriteAll(fd, bytes, at: offset, path: path)
    }

    /// Records the sync; the real file is not synced (the model decides what survives).
    func dataSync(_ fd: Int32, path: String) throws(AgadirError) {
        try admitOrThrow(.sync(path: path), "syncing")
    }

    func truncate(_ fd: Int32, to length: Int, path: String) throws(AgadirError) {
        try admitOrThrow(.truncate(path: path, length: length), "truncating")
        try Posix.ftruncate(fd, to: length, path: path)
    }

    func syncDirectory(_ path: String) throws(AgadirError) {
        try admitOrThrow(.syncDirectory(path: path), "syncing")
    }

    func remove(_ path: String) throws(AgadirError) {
        try admitOrThrow(.remove(path: path), "removing")
        try Posix.unlink(path)
    }

    var sqliteVFS: String? { vfsName }
}
