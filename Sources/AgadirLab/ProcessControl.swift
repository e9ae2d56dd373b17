import AgadirCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Starting and signalling processes by pid, with the checks that make it safe to do so
/// from a later CLI invocation: a pid is only signalled while `/proc/PID/cmdline` still
/// names the expected data directory, so a recycled pid is never hit.
public enum ProcessControl {
    /// What `/proc` says about a pid that is still the expected process.
    public enum LiveState: String, Sendable {
        /// Running or sleeping.
        case running
        /// Stopped by SIGSTOP (state `T`).
        case paused
        /// No such process, a zombie, or a pid now used by another program.
        case gone
    }

    /// glibc's `POSIX_SPAWN_SETSID` (spawn.h, glibc >= 2.26); Swift does not import it
    /// because it is declared under `__USE_GNU`.
    static let spawnSetSID: Int32 = 0x80

    /// Starts `executable` with `arguments`: standard input from /dev/null, standard output
    /// and error appended to `logPath`, descriptors above 2 closed, every signal disposition
    /// reset to its default (a parent that ignores SIGINT does not pass that on). With
    /// `newSession` the child leads a session of its own (setsid): a Ctrl-C in the
    /// terminal that started it does not reach it, and it outlives its parent.
    public static func spawn(
        executable: String, arguments: [String], logPath: String, newSession: Bool
    ) throws(AgadirError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        addCloseFrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig: Int32 in 1..<32 where sig != SIGKILL && sig != SIGSTOP { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)
        if newSession { flags |= spawnSetSID }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else {
            throw AgadirError(.ioError, "cannot start \(executable): \(String(cString: strerror(rc))) (errno \(rc))")
        }
        if newSession { sessionChildren.withLock { _ = $0.insert(pid) } }
        return pid
    }

    /// Children this process started with `newSession` (lab nodes) and has not reaped yet:
    /// the only ones `state(of:marker:)` reaps. A pid read from a lab's state file may since
    /// belong to another child of this process (pids wrap at `pid_max`, 32768 here), for
    /// example a `NodeProcess` of a test; reaping that one would let its pid be reused while
    /// its owner still means to signal it.
    private static let sessionChildren = Locked<Set<pid_t>>([])

    /// `posix_spawn_file_actions_addclosefrom_np` (glibc >= 2.34), looked up at run time:
    /// without it a daemon would inherit any descriptor its parent opened without
    /// O_CLOEXEC. On an older glibc nothing is added.
    private static func addCloseFrom(_ actions: inout posix_spawn_file_actions_t, _ lowest: Int32) {
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return }
        let closeFrom = unsafeBitCast(symbol, to: CloseFrom.self)
        _ = closeFrom(&actions, lowest)
    }

    /// The live state of `pid`, provided its command line has an argument equal to `marker`
    /// (else `.gone`: the pid now belongs to another program). Reaps `pid` first when it is
    /// an exited lab node this process started.
    public static func state(of pid: pid_t, marker: String) -> LiveState {
        guard pid > 0 else { return .gone }
        var status: Int32 = 0
        // Only a lab node this process started is reaped here; its end is kept for messages.
        if sessionChildren.withLock({ $0.contains(pid) }), waitpid(pid, &status, WNOHANG) == pid {
            sessionChildren.withLock { _ = $0.remove(pid) }
            endings.withLock { $0[pid] = Self.describe(status) }
        }
        guard let stat = readAll("/proc/\(pid)/stat"), let state = processState(stat) else { return .gone }
        if state == "Z" || state == "X" || state == "x" { return .gone }
        guard let cmdline = readAll("/proc/\(pid)/cmdline") else { return .gone }
        let arguments = cmdline.split(separator: 0, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        guard arguments.contains(marker) else { return .gone }
        return state == "T" || state == "t" ? .paused : .running
    }

    /// True while `pid`, a lab node this process just started, is still inside its exec:
    /// posix_spawn returns once the child has left the parent's memory, before the kernel
    /// has set up the new program's arguments, so for a moment (longer on a loaded
    /// machine) its command line reads empty and `state(of:marker:)` says `.gone`.
    public static func isExecuting(_ pid: pid_t) -> Bool {
        guard pid > 0, sessionChildren.withLock({ $0.contains(pid) }),
            let stat = readAll("/proc/\(pid)/stat"), let state = processState(stat),
            state != "Z" && state != "X" && state != "x"
        else { return false }
        return readAll("/proc/\(pid)/cmdline")?.isEmpty ?? false
    }

    /// How children of this process that were reaped ended ("exit status 1", "killed by
    /// signal 9"), for error messages; at most the last 256.
    private static let endings = Locked<[pid_t: String]>([:])

    /// How the child `pid` ended, when this process reaped it.
    public static func ending(of pid: pid_t) -> String? {
        endings.withLock { e in
            if e.count > 256 { e.removeAll() }
            return e[pid]
        }
    }

    static func describe(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exit status \((status >> 8) & 0xff)" }
        return "killed by signal \(signal)" + (status & 0x80 != 0 ? " (core dumped)" : "")
    }

    /// Sends `signal` to `pid` if it is still the process `marker` names; false otherwise.
    @discardableResult
    public static func signal(_ pid: pid_t, _ signal: Int32, marker: String) -> Bool {
        guard state(of: pid, marker: marker) != .gone else { return false }
        return kill(pid, signal) == 0
    }

    /// Waits until `pid` has exited, checking every 20 ms for at most `timeout`; true if it
    /// did. Stricter than `state(of:marker:) == .gone`: a process in the middle of exiting
    /// has already lost its command line but still exists, so the wait goes on until the
    /// kernel shows it as a zombie or no longer lists it.
    public static func waitUntilGone(_ pid: pid_t, marker: String, timeout: Duration) async -> Bool {
        func exited() -> Bool {
            guard state(of: pid, marker: marker) == .gone else { return false }
            guard let stat = readAll("/proc/\(pid)/stat"), let s = processState(stat) else { return true }
            return s == "Z" || s == "X" || s == "x"
        }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if exited() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return exited()
    }

    /// For a child of this process: its exit status once it exited (the exit code, or
    /// 128 + the signal that ended it), `.some(nil)` while it runs, nil if it is not a child.
    public static func exitStatus(ofChild pid: pid_t) -> Int32?? {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == 0 { return .some(nil) }
        guard r == pid else { return nil }
        let signal = status & 0x7f
        return .some(signal == 0 ? (status >> 8) & 0xff : 128 + signal)
    }

    /// The session id of `pid` (field 6 of /proc/PID/stat), or nil.
    public static func sessionID(of pid: pid_t) -> pid_t? {
        guard let stat = readAll("/proc/\(pid)/stat"), let close = stat.lastIndex(of: UInt8(ascii: ")")) else {
            return nil
        }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        // After the command: state, ppid, pgrp, session.
        guard fields.count > 3 else { return nil }
        return pid_t(String(decoding: fields[3], as: UTF8.self))
    }

    /// The state letter of a /proc/PID/stat line: the field after the command, which is
    /// in parentheses and may itself hold spaces and parentheses.
    static func processState(_ stat: [UInt8]) -> Character? {
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.count else { return nil }
        return Character(UnicodeScalar(stat[close + 2]))
    }

    /// Reads a whole file, including /proc files whose size reads as 0.
    static func readAll(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while out.count < 1 << 20 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            out += buffer[0..<n]
        }
        return out
    }
}
