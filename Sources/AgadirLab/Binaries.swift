import AgadirCore
import Foundation

/// Finds the built executables (`agadird`, `agadir`, ...).
public enum AgadirBinaries {
    /// `$AGADIR_BIN_DIR` when set; else the directory of the running executable or the
    /// nearest directory above it that holds `agadird` (a test bundle sits below
    /// `.build/debug`).
    public static func directory() throws(AgadirError) -> URL {
        if let dir = ProcessInfo.processInfo.environment["AGADIR_BIN_DIR"], !dir.isEmpty {
            let url = URL(fileURLWithPath: dir)
            guard FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("agadird").path) else {
                throw AgadirError(
                    .invalidArgument,
                    "AGADIR_BIN_DIR=\(dir) holds no agadird; build it with `swift build` or fix the variable")
            }
            return url
        }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<16 {
            if FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("agadird").path) { return dir }
            if dir.path == "/" { break }
            dir = dir.deletingLastPathComponent()
        }
        throw AgadirError(
            .invalidArgument,
            "cannot find agadird next to \(exe.path) or in a directory above it; run `swift build` first, or set AGADIR_BIN_DIR"
        )
    }

    /// The path of the executable `name` in `directory()`.
    public static func path(of name: String) throws(AgadirError) -> String {
        try directory().appendingPathComponent(name).path
    }
}
