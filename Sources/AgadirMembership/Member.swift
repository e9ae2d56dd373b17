/// A member's incarnation number: only the member itself raises it, to refute a
/// suspicion or to announce a change of its own record (SWIM §4.2).
///
/// Values never wrap. Anything above `ceiling` is refused when decoded, and an accusation
/// (suspect, dead) is only accepted below the ceiling, so the accused member can always
/// answer with a higher number: a message carrying the maximum value cannot evict anyone.
public struct Incarnation: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let value: UInt64

    /// Largest incarnation any member may hold (2^62): ~10^18 refutations away from 0.
    public static let ceiling = Incarnation(uncheckedValue: 1 << 62)
    public static let zero = Incarnation(uncheckedValue: 0)

    /// Nil when `value` is above the ceiling.
    public init?(_ value: UInt64) {
        guard value <= Self.ceiling.value else { return nil }
        self.value = value
    }

    private init(uncheckedValue: UInt64) { self.value = uncheckedValue }

    /// The next number, saturating at the ceiling (never wraps).
    public var next: Incarnation {
        self < Self.ceiling ? Incarnation(uncheckedValue: value + 1) : self
    }

    /// True when a member accused at this incarnation can still refute.
    public var isRefutable: Bool { self < Self.ceiling }

    public static func < (a: Incarnation, b: Incarnation) -> Bool { a.value < b.value }
    public var description: String { String(value) }
}

/// What this member believes about another one.
public enum MemberStatus: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case alive = 0
    case suspect = 1
    case dead = 2
    /// Announced its own departure (graceful leave); treated like dead, never suspected.
    case left = 3

    public var description: String {
        switch self {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .left: "left"
        }
    }

    /// Alive or suspect: still probed and still a gossip target.
    public var isActive: Bool { self == .alive || self == .suspect }
}

/// One member's record as gossiped: identity, where to reach it, and its state.
public struct Member: Sendable, Hashable {
    /// Stable node id (the data directory's identity).
    public var nodeID: String
    /// Site (data centre) the node belongs to.
    public var site: String
    /// Free-form labels (`rack=r1`, ...); site labels such as `country=MA` live in the layout.
    public var labels: [String: String]
    /// Client endpoint, `HOST:PORT`.
    public var clientAddress: String
    /// Peer (gossip, UDP and TCP) endpoint, `HOST:PORT`.
    public var peerAddress: String
    public var incarnation: Incarnation
    public var status: MemberStatus
    /// Highest cluster layout version this member has seen (layouts arrive with issue 4).
    public var layoutVersion: UInt64

    public init(
        nodeID: String, site: String, labels: [String: String] = [:], clientAddress: String, peerAddress: String,
        incarnation: Incarnation = .zero, status: MemberStatus = .alive, layoutVersion: UInt64 = 0
    ) {
        self.nodeID = nodeID
        self.site = site
        self.labels = labels
        self.clientAddress = clientAddress
        self.peerAddress = peerAddress
        self.incarnation = incarnation
        self.status = status
        self.layoutVersion = layoutVersion
    }
}

/// A point on a monotonic clock, in nanoseconds from an arbitrary origin. The state
/// machine never reads a clock: the shell or the simulator passes `now`.
public struct MonotonicTime: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static let zero = MonotonicTime(nanoseconds: 0)

    public static func < (a: MonotonicTime, b: MonotonicTime) -> Bool { a.nanoseconds < b.nanoseconds }

    public static func + (t: MonotonicTime, d: Duration) -> MonotonicTime {
        MonotonicTime(nanoseconds: t.nanoseconds &+ d.nanoseconds)
    }

    public static func - (a: MonotonicTime, b: MonotonicTime) -> Duration {
        .nanoseconds(a.nanoseconds &- b.nanoseconds)
    }

    public var seconds: Double { Double(nanoseconds) / 1e9 }
    public var description: String { "\(seconds)s" }
}

extension Duration {
    /// Whole nanoseconds, saturating (durations in settings are far below the limits).
    public var nanoseconds: Int64 {
        let (s, atto) = components
        let (ns, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return s < 0 ? .min : .max }
        return ns &+ atto / 1_000_000_000
    }

    /// `self * factor`, for the Lifeguard multipliers.
    public func scaled(by factor: Double) -> Duration {
        .nanoseconds(Int64((Double(nanoseconds) * factor).rounded()))
    }
}
