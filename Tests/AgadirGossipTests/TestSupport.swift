import AgadirMembership
@_exported import AgadirTestSupport
import AgadirWire
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

extension Keyring {
    /// Seals as a node does: now, with a fresh random nonce.
    func seal(_ plaintext: [UInt8], channel: GossipChannel, sentAgoMillis: UInt64 = 0) -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        let nonce = (0..<Keyring.nonceBytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return seal(plaintext, channel: channel, sentAtMillis: WallTime.millis() - sentAgoMillis, nonce: nonce)
    }
}
