/// How many replicas must answer a read or acknowledge a write (Dynamo-style quorums).
///
/// `QUORUM` counts over the whole replica set; `LOCAL_QUORUM` over the replicas in the
/// coordinator's site; `EACH_QUORUM` needs a quorum in every site holding replicas.
/// The raw values travel on the wire (field CONSISTENCY) and in the layout; never renumber.
public enum ConsistencyLevel: UInt8, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    case one = 1
    case quorum = 2
    case localQuorum = 3
    case eachQuorum = 4
    case all = 5

    /// Accepts the names as written in docs and on the command line, any case, `-` or `_`.
    public init?(name: String) {
        switch String(name.lowercased().map { $0 == "-" ? "_" : $0 }) {
        case "one": self = .one
        case "quorum": self = .quorum
        case "local_quorum": self = .localQuorum
        case "each_quorum": self = .eachQuorum
        case "all": self = .all
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .one: "ONE"
        case .quorum: "QUORUM"
        case .localQuorum: "LOCAL_QUORUM"
        case .eachQuorum: "EACH_QUORUM"
        case .all: "ALL"
        }
    }

    /// Acknowledgements needed from a set of `n` replicas for QUORUM-like levels.
    public static func majority(of n: Int) -> Int { n / 2 + 1 }
}
