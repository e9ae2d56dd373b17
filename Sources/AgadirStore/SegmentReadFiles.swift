import AgadirCore
import Glibc
import Synchronization

/// A read-only descriptor of one segment file; closed when the last reader lets go of it,
/// so closing the store never pulls a descriptor out from under a `pread` in flight.
final class SegmentReadFile: Sendable {
    let number: UInt64
    let path: String
    let fd: Int32

    init(number: UInt64, path: String) throws(AgadirError) {
        self.number = number
        self.path = path
        fd = try Posix.open(path, O_RDONLY)
        let header: [UInt8]
        do throws(AgadirError) {
            header = try Posix.pread(fd, count: SegmentFormat.fileHeaderSize, at: 0, path: path)
        } catch {
            close(fd)
            throw error
        }
        if let problem = SegmentFormat.fileHeaderProblem(header, segment: number) {
            close(fd)
            throw AgadirError(.corruptData, "segment \(number) (\(path)): \(problem)")
        }
    }

    deinit { close(fd) }
}

/// The cache of read-only segment descriptors, opened on first use, and what readers must know of
/// the writer's segments: which one it appends to, and which ones compaction removed.
final class SegmentReadFiles: Sendable {
    let chunksDirectory: String
    private struct State {
        var open: [UInt64: SegmentReadFile] = [:]
        /// Segments removed by compaction: never cached again (numbers are never reused).
        var retired: Set<UInt64> = []
        var closed = false
    }
    private let files = Mutex(State())
    /// The number of the segment the writer appends to; 0 when it has none (set by the writer).
    let activeSegment = Atomic<UInt64>(0)

    init(chunksDirectory: String) {
        self.chunksDirectory = chunksDirectory
    }

    func file(_ number: UInt64) throws(AgadirError) -> SegmentReadFile {
        let cached = files.withLock { state -> Result<SegmentReadFile?, AgadirError> in
            if state.closed { return .failure(AgadirError(.shuttingDown, "the store is closed")) }
            if state.retired.contains(number) {
                return .failure(AgadirError(.ioError, "segment \(number) was removed by compaction"))
            }
            return .success(state.open[number])
        }
        if let file = try cached.get() { return file }
        let fresh = try SegmentReadFile(
            number: number, path: chunksDirectory + "/" + SegmentFormat.fileName(number))
        return files.withLock { state in
            if let raced = state.open[number] { return raced }
            // A file opened just before compaction removed it is used once, never cached: the
            // cache would keep its disk space.
            if !state.closed, !state.retired.contains(number) { state.open[number] = fresh }
            return fresh
        }
    }

    /// Called by the writer after it deleted segment `number`'s file: drops its descriptor (a read
    /// in flight keeps it until done) and refuses it from now on.
    func retire(_ number: UInt64) {
        files.withLock { state in
            state.open[number] = nil
            state.retired.insert(number)
        }
    }

    /// Drops every cached descriptor; each closes once no read holds it.
    func closeAll() {
        files.withLock { state in
            state.open.removeAll()
            state.closed = true
        }
    }
}
