import AgadirCore
import Foundation
import Logging
import ServiceLifecycle

/// FOR TESTS ONLY (`testingClockOffsetFile`, `agadir-lab skew`): reads a file holding a
/// signed number of milliseconds twice a second and offsets the node's clock by it, so a
/// lab can skew one node's clock while it runs. A missing or unreadable file is offset 0.
final class ClockOffsetWatcher: PolledFile, Sendable {
    let path: String
    let clock: NodeClock
    let logger: Logger

    init(path: String, clock: NodeClock, logger: Logger) {
        self.path = path
        self.clock = clock
        self.logger = logger
    }

    /// The offset the file gives: an integer (ms), bounded to a day either way; 0 without one.
    static func read(_ path: String) -> Int64 {
        guard let data = FileManager.default.contents(atPath: path),
            let value = Int64(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        else { return 0 }
        return min(max(value, -86_400_000), 86_400_000)
    }

    func apply() {
        let offset = Self.read(path)
        guard offset != clock.offsetMillis else { return }
        clock.offsetMillis = offset
        logger.warning("FOR TESTS ONLY: this node's clock offset changed", metadata: ["ms": "\(offset)"])
    }

}

/// FOR TESTS ONLY: a file a node reads twice a second while it runs (`apply`), until the
/// graceful shutdown: the clock offset and the address map of the lab.
protocol PolledFile: Service {
    func apply()
}

extension PolledFile {
    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            apply()
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}
