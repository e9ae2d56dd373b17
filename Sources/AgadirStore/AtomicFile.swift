import AgadirCore
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Small files replaced all at once: written to `PATH.tmp`, fsync'd, renamed over `PATH`,
/// then the directory fsync'd, so a crash leaves the old content or the new, never a mix.
public enum AtomicFile {
    public static func save(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(AgadirError) {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else { throw AgadirError(.ioError, "cannot write \(tmp): \(String(cString: strerror(errno)))") }
        // O_CREAT honours the umask; the mode asked for is the mode wanted (0600 for secrets).
        _ = fchmod(fd, mode)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0, rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw AgadirError(
                .ioError, "cannot write \(path): \(reason); check the disk and the directory's permissions")
        }
        let dir = (path as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}
