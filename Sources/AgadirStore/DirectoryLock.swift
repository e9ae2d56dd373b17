import AgadirCore
import Glibc
import Synchronization

/// An exclusive `flock` on `DIR/LOCK`, held for as long as a `NodeStore` has the directory
/// open. `flock` locks belong to the open file description, so a second open of the same
/// directory fails whether it comes from another process or from this one.
final class DirectoryLock: Sendable {
    let path: String
    /// The locked descriptor; -1 once released.
    private let fd: Mutex<Int32>

    init(directory: String) throws(AgadirError) {
        path = directory + "/LOCK"
        let fd = try Posix.open(path, O_RDWR | O_CREAT, mode: 0o644)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            close(fd)
            if code == EWOULDBLOCK {
                throw AgadirError(
                    .ioError, "data directory \(directory) is in use by another process (lock held on \(path))")
            }
            throw Posix.ioError("locking", path, errno: code)
        }
        self.fd = Mutex(fd)
    }

    /// Releases the lock (closing the descriptor releases it); later calls do nothing.
    func release() {
        fd.withLock { fd in
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    deinit { release() }
}
