import AgadirCore
import Glibc

/// The few POSIX calls the store needs, with EINTR and short transfers handled and every
/// failure turned into an `AgadirError` naming the file.
enum Posix {
    static func errorMessage(_ code: Int32) -> String { String(cString: strerror(code)) }

    static func ioError(_ what: String, _ path: String, errno code: Int32 = errno) -> AgadirError {
        let kind: AgadirError.Code = code == ENOSPC || code == EDQUOT ? .storageFull : .ioError
        return AgadirError(kind, "\(what) \(path) failed: \(errorMessage(code)) (errno \(code))")
    }

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(AgadirError) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno != EINTR { throw ioError("opening", path) }
        }
    }

    /// Writes all of `bytes` at `offset`.
    static func pwriteAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(AgadirError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { buf in
                pwrite(fd, buf.baseAddress.map { $0 + done }, buf.count - done, off_t(offset + done))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("writing", path)
            }
            if n == 0 { throw AgadirError(.ioError, "writing \(path) made no progress at offset \(offset + done)") }
            done += n
        }
    }

    /// Reads up to `count` bytes at `offset`; fewer only at end of file.
    static func pread(_ fd: Int32, count: Int, at offset: Int, path: String) throws(AgadirError) -> [UInt8] {
        var failure: AgadirError? = nil
        // Not zero-filled first: pread overwrites it, and only the bytes read are kept.
        let out = [UInt8](unsafeUninitializedCapacity: max(count, 0)) { buf, initialized in
            var done = 0
            while done < count {
                let n = Glibc.pread(fd, buf.baseAddress.map { $0 + done }, count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = ioError("reading", path)
                    break
                }
                if n == 0 { break }
                done += n
            }
            initialized = done
        }
        if let failure { throw failure }
        return out
    }

    static func fdatasync(_ fd: Int32, path: String) throws(AgadirError) {
        while Glibc.fdatasync(fd) != 0 {
            if errno != EINTR { throw ioError("syncing", path) }
        }
    }

    static func fsync(_ fd: Int32, path: String) throws(AgadirError) {
        while Glibc.fsync(fd) != 0 {
            if errno != EINTR { throw ioError("syncing", path) }
        }
    }

    /// fsyncs a directory, making the creation or removal of its entries durable.
    static func syncDirectory(_ path: String) throws(AgadirError) {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fsync(fd, path: path)
    }

    static func ftruncate(_ fd: Int32, to length: Int, path: String) throws(AgadirError) {
        while Glibc.ftruncate(fd, off_t(length)) != 0 {
            if errno != EINTR { throw ioError("truncating", path) }
        }
    }

    static func fileSize(_ fd: Int32, path: String) throws(AgadirError) -> Int {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ioError("inspecting", path) }
        return Int(st.st_size)
    }

    /// Creates `path` as a directory unless it exists; true when it was created.
    @discardableResult
    static func makeDirectory(_ path: String) throws(AgadirError) -> Bool {
        if mkdir(path, 0o755) == 0 { return true }
        let code = errno
        var st = stat()
        if code == EEXIST, stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR { return false }
        throw ioError("creating directory", path, errno: code)
    }

    /// Names in a directory, without "." and "..".
    static func listDirectory(_ path: String) throws(AgadirError) -> [String] {
        guard let dir = opendir(path) else { throw ioError("listing", path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func unlink(_ path: String) throws(AgadirError) {
        guard Glibc.unlink(path) == 0 else { throw ioError("removing", path) }
    }

    static func sizeOfFile(atPath path: String) -> Int? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int(st.st_size)
    }
}
