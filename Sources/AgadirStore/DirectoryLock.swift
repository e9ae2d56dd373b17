import AgadirCore
import Glibc
import Synchronization

/// An exclusive `flock` on `DIR/LOCK`, held for as long as a `NodeStore` has the directory
/// open. `flock` locks belong to the open file description, so a second open of the same
/// directory fails whether it comes from another process or from this one.
final class DirectoryLock: Sendable {
    let path: String
    /// Tries of a busy lock, 10 ms apart, before the open fails (0.5 s).
    static let busyRetries = 50
    /// The locked descriptor; -1 once released.
    private let fd: Mutex<Int32>

    init(directory: String) throws(AgadirError) {
        path = directory + "/LOCK"
        let fd = try Posix.open(path, O_RDWR | O_CREAT, mode: 0o644)
        // A busy lock is tried again for up to `busyRetries` × 10 ms: a process that this one
        // spawns holds a copy of every descriptor between its fork and its exec (where
        // close-on-exec drops it), and with it the lock of a store that was just closed.
        var busy = 0
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            if code == EWOULDBLOCK, busy < Self.busyRetries {
                busy += 1
                usleep(10_000)
                continue
            }
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
