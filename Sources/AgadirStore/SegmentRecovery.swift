import AgadirCore
import Glibc
import Logging

/// Brings the segment files back in line with the index when a store opens
/// (docs/storage.md, "Recovery on open").
///
/// The `segments` table records, in the same transaction as the index rows, how many bytes
/// of each segment are committed. Anything past that was never acknowledged:
/// - segment files newer than the newest recorded segment hold no indexed record (they were
///   created by a batch whose commit never happened) and are removed;
/// - the newest recorded segment is truncated to its committed length, and appending resumes
///   at that offset (no new segment per restart). If its header is damaged or the file is
///   shorter than recorded, it is left alone and the next write starts a fresh segment.
enum SegmentRecovery {
    struct Recovered {
        var active: ActiveSegment?
        var nextSegmentNumber: UInt64
    }

    static func recover(
        db: SQLiteDatabase, chunksDirectory: String, files: any StoreFileSystem, logger: Logger
    ) throws(AgadirError) -> Recovered {
        try removeRetiredSegments(db: db, chunksDirectory: chunksDirectory, files: files, logger: logger)
        let onDisk = try Posix.listDirectory(chunksDirectory).compactMap(SegmentFormat.number(fromFileName:))
        var committed: [UInt64: Int] = [:]
        try db.forEachRow("SELECT number, committed_len FROM segments") { (row) throws(AgadirError) -> Bool in
            let number = row.int64(0)
            let length = row.int64(1)
            guard number >= 0, UInt64(number) <= SegmentFormat.maxSegmentNumber, length >= 0 else {
                throw AgadirError(
                    .corruptData, "the segments table holds an impossible row (number \(number), length \(length))")
            }
            committed[UInt64(number)] = Int(length)
            return true
        }
        let newestRecorded = committed.keys.max()
        var removed = false
        if newestRecorded == nil, !onDisk.isEmpty {
            // Segments but no record of any: either the first batch never committed, or the
            // metadata database was lost or replaced. The second must not cost the data (the
            // records are self-describing and can be rescanned), so nothing is deleted;
            // appending starts in a new segment after them.
            logger.warning(
                "segment files exist but the metadata database records none; leaving them in place",
                metadata: ["store/segments": "\(onDisk.count)", "store/dir": "\(chunksDirectory)"])
        }
        for number in onDisk where newestRecorded != nil && number > (newestRecorded ?? 0) {
            let path = chunksDirectory + "/" + SegmentFormat.fileName(number)
            logger.warning(
                "removing segment that holds no committed record", metadata: ["store/segment": "\(path)"])
            try files.remove(path)
            removed = true
        }
        if removed { try files.syncDirectory(chunksDirectory) }
        let next = max(onDisk.max() ?? 0, newestRecorded ?? 0) + 1
        guard let last = newestRecorded, let length = committed[last] else {
            return Recovered(active: nil, nextSegmentNumber: next)
        }
        let path = chunksDirectory + "/" + SegmentFormat.fileName(last)
        let fd: Int32
        do throws(AgadirError) {
            fd = try files.open(path, O_RDWR)
        } catch {
            logger.error(
                "newest segment cannot be opened; writes start a new one",
                metadata: ["store/segment": "\(path)", "store/error": "\(error)"])
            return Recovered(active: nil, nextSegmentNumber: next)
        }
        do throws(AgadirError) {
            let size = try Posix.fileSize(fd, path: path)
            let header = try Posix.pread(fd, count: SegmentFormat.fileHeaderSize, at: 0, path: path)
            if let problem = SegmentFormat.fileHeaderProblem(header, segment: last) {
                logger.error(
                    "newest segment has a damaged header; writes start a new one",
                    metadata: ["store/segment": "\(path)", "store/problem": "\(problem)"])
                close(fd)
                return Recovered(active: nil, nextSegmentNumber: next)
            }
            if size < length {
                logger.error(
                    "newest segment is shorter than its committed length; chunks past its end are lost",
                    metadata: ["store/segment": "\(path)", "store/size": "\(size)", "store/committed": "\(length)"])
                close(fd)
                return Recovered(active: nil, nextSegmentNumber: next)
            }
            if size > length {
                logger.info(
                    "truncating unacknowledged bytes at the end of the newest segment",
                    metadata: ["store/segment": "\(path)", "store/bytes": "\(size - length)"])
                try files.truncate(fd, to: length, path: path)
                try files.dataSync(fd, path: path)
            }
            return Recovered(
                active: ActiveSegment(number: last, path: path, fd: fd, length: length), nextSegmentNumber: next)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Deletes the files of segments compaction retired (the process may have stopped between the commit that
    /// retired one and the deletion of its file), then forgets them. A retired segment that an index row still
    /// points at (which compaction never commits) is left alone and logged: data is never deleted on a guess.
    static func removeRetiredSegments(
        db: SQLiteDatabase, chunksDirectory: String, files: any StoreFileSystem, logger: Logger
    ) throws(AgadirError) {
        var retired: [Int64] = []
        try db.forEachRow("SELECT number FROM retired_segments") { row in
            retired.append(row.int64(0))
            return true
        }
        guard !retired.isEmpty else { return }
        var forgotten: [Int64] = []
        var removed = false
        for number in retired {
            guard number > 0, UInt64(number) <= SegmentFormat.maxSegmentNumber else {
                throw AgadirError(.corruptData, "the retired_segments table holds an impossible number \(number)")
            }
            let used = try db.firstRow("SELECT 1 FROM chunks WHERE segment = ? LIMIT 1", [.int(number)]) { _ in true }
            if used != nil {
                logger.error(
                    "a retired segment still holds indexed chunks; it is kept",
                    metadata: ["store/segment": "\(number)"])
                continue
            }
            let path = chunksDirectory + "/" + SegmentFormat.fileName(UInt64(number))
            if Posix.sizeOfFile(atPath: path) != nil {
                logger.info(
                    "removing segment left by an interrupted compaction", metadata: ["store/segment": "\(path)"])
                try files.remove(path)
                removed = true
            }
            forgotten.append(number)
        }
        if removed { try files.syncDirectory(chunksDirectory) }
        for number in forgotten {
            try db.run("DELETE FROM retired_segments WHERE number = ?", [.int(number)])
        }
    }
}
