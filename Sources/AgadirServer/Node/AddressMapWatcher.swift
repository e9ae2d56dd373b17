import AgadirCore
import Foundation
import Logging
import ServiceLifecycle

/// FOR TESTS ONLY (`testingAddressMapFile`, the lab's relays): reads the address map file
/// twice a second into the node's `AddressMap`. A missing file is an empty map; a file that
/// does not parse leaves the routes as they were (and is logged).
final class AddressMapWatcher: PolledFile, Sendable {
    let path: String
    let routes: AddressMap
    let logger: Logger

    init(path: String, routes: AddressMap, logger: Logger) {
        self.path = path
        self.routes = routes
        self.logger = logger
    }

    func apply() {
        let text = FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } ?? ""
        do throws(AgadirError) {
            if routes.replace(try AddressMap.parse(text)) {
                logger.warning(
                    "FOR TESTS ONLY: this node dials through an address map", metadata: ["routes": "\(routes.count)"])
            }
        } catch {
            logger.error("the address map file is unusable", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

}
