import Synchronization

/// FOR TESTS ONLY (`testingAddressMapFile`, the lab's relays): the addresses (`HOST:PORT`)
/// this node dials instead of others. The lab puts a relay on every path between two nodes
/// and gives each node the relays' addresses for its peers' client and peer endpoints;
/// gossip (datagrams and push-pull) and peer links send through `route(_:)`. Empty by
/// default: every address is itself.
public final class AddressMap: Sendable {
    private let routes = Mutex<[String: String]>([:])

    public init() {}

    /// The address to dial for `address`.
    public func route(_ address: String) -> String {
        routes.withLock { $0.isEmpty ? address : ($0[address] ?? address) }
    }

    public var count: Int { routes.withLock { $0.count } }

    /// Replaces the routes; returns true when they changed.
    @discardableResult
    public func replace(_ next: [String: String]) -> Bool {
        routes.withLock { current in
            guard current != next else { return false }
            current = next
            return true
        }
    }

    /// Parses the map file: one route per line, `FROM TO` (addresses `HOST:PORT`), `#`
    /// comments and blank lines ignored; at most `maxRoutes` routes.
    public static func parse(_ text: String) throws(AgadirError) -> [String: String] {
        var out: [String: String] = [:]
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let parts = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if parts.isEmpty { continue }
            guard parts.count == 2, parts.allSatisfy({ $0.contains(":") && $0.utf8.count <= 300 }) else {
                throw AgadirError(.invalidArgument, "address map line \(n + 1): expected `FROM TO` (HOST:PORT each)")
            }
            out[String(parts[0])] = String(parts[1])
            guard out.count <= maxRoutes else {
                throw AgadirError(.invalidArgument, "address map: more than \(maxRoutes) routes")
            }
        }
        return out
    }

    public static let maxRoutes = 10_000
}
