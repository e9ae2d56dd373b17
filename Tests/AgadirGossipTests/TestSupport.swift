@_exported import AgadirTestSupport
import Foundation
import Logging

/// A fresh directory for one gossip test.
func gossipTempDirectory(_ name: String = #function) -> TempDirectory { TempDirectory(prefix: "gossip", name) }

/// Logs are silent unless AGADIR_TEST_LOG is set (then everything is logged to stderr).
let quietLogger: Logger = {
    var logger = Logger(label: "agadir.gossip.tests")
    logger.logLevel = ProcessInfo.processInfo.environment["AGADIR_TEST_LOG"] != nil ? .trace : .critical
    return logger
}()
