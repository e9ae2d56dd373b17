@_exported import AgadirLab
@_exported import AgadirTestSupport
import Foundation

// End-to-end tests start agadird through AgadirLab: `NodeProcess` for one node (its own
// temporary directory, a free loopback port, stopped by pid), `Lab` for several.

extension NodeProcess {
    /// Directory holding the built executables ($AGADIR_BIN_DIR, else next to the test bundle).
    static var binDir: URL {
        (try? AgadirBinaries.directory()) ?? URL(fileURLWithPath: "/nonexistent-run-swift-build-first")
    }
}
