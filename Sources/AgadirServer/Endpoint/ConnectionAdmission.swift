/// Who may open a connection to the client endpoint (issue 12, "Bounds"), as a pure value:
/// the endpoint asks `admit` for each accepted socket and calls `release` when it closes.
///
/// - A single address holds at most `maxPerAddress` connections, so one host opening
///   thousands of sockets cannot crowd out the others.
/// - Clients together hold at most `maxConnections`.
/// - Connections from the address of a known cluster member (gossip) are counted apart, in
///   up to `peerReserve` more slots: replication keeps working while clients fill theirs.
///   (The per-address bound does not apply to them: several nodes and their clients may
///   share one host, as in the lab.)
public struct ConnectionAdmission: Sendable, Hashable {
    public struct Limits: Sendable, Hashable {
        public var maxConnections: Int
        public var maxPerAddress: Int
        public var peerReserve: Int

        public init(maxConnections: Int, maxPerAddress: Int, peerReserve: Int) {
            self.maxConnections = maxConnections
            self.maxPerAddress = maxPerAddress
            self.peerReserve = peerReserve
        }
    }

    public enum Decision: Sendable, Hashable {
        /// Admitted; `peerSlot` says which count it took (give it back to `release`).
        case admitted(peerSlot: Bool)
        case refused(String)
    }

    public let limits: Limits
    public private(set) var clients = 0
    public private(set) var peers = 0
    public private(set) var byAddress: [String: Int] = [:]

    public init(limits: Limits) { self.limits = limits }

    public mutating func admit(address: String, fromClusterMember: Bool) -> Decision {
        if fromClusterMember {
            if peers < limits.peerReserve {
                peers += 1
                return .admitted(peerSlot: true)
            }
            // The reserve is full: a member may still use a client slot.
        }
        let held = byAddress[address, default: 0]
        guard fromClusterMember || held < limits.maxPerAddress else {
            return .refused("\(held) connections from \(address) already (at most \(limits.maxPerAddress) per address)")
        }
        guard clients < limits.maxConnections else {
            return .refused("\(clients) client connections already (at most \(limits.maxConnections))")
        }
        clients += 1
        byAddress[address] = held + 1
        return .admitted(peerSlot: false)
    }

    public mutating func release(address: String, peerSlot: Bool) {
        if peerSlot {
            peers = max(0, peers - 1)
            return
        }
        clients = max(0, clients - 1)
        let left = byAddress[address, default: 0] - 1
        byAddress[address] = left > 0 ? left : nil
    }
}
