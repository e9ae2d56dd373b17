/// A change about one member, spread by piggybacking on probes and by the gossip fan-out
/// (SWIM §4.1: "infection-style dissemination").
public enum GossipUpdate: Sendable, Hashable {
    /// The member's record at an incarnation; only the member itself originates these.
    case alive(Member)
    /// `from` suspects `nodeID` at `incarnation`.
    case suspect(nodeID: String, incarnation: Incarnation, from: String)
    /// `from` declared `nodeID` dead at `incarnation`.
    case dead(nodeID: String, incarnation: Incarnation, from: String)
    /// `nodeID` left the cluster on purpose at `incarnation`.
    case left(nodeID: String, incarnation: Incarnation)

    /// The member the update is about.
    public var subject: String {
        switch self {
        case .alive(let m): m.nodeID
        case .suspect(let id, _, _), .dead(let id, _, _), .left(let id, _): id
        }
    }

    public var incarnation: Incarnation {
        switch self {
        case .alive(let m): m.incarnation
        case .suspect(_, let i, _), .dead(_, let i, _), .left(_, let i): i
        }
    }
}

/// The failure detector's messages (SWIM §3 and Lifeguard §IV.A for `nack`).
public enum ProbeMessage: Sendable, Hashable {
    /// "Are you `target`?" A node that is not `target` (a new process on a recycled
    /// address) does not answer.
    case ping(sequence: UInt32, target: String)
    /// "Please ping `target` at `targetAddress` for me and tell me": an indirect probe.
    case pingRequest(sequence: UInt32, target: String, targetAddress: String)
    /// Answer to a ping, or relayed by an indirect-probe helper (`sequence` is then the
    /// requester's).
    case ack(sequence: UInt32)
    /// From an indirect-probe helper: "I asked and got no answer in time". Lets the
    /// requester tell a dead target from its own lost packets (local health).
    case nack(sequence: UInt32)
}

/// One UDP datagram's content (before authentication): who sends it, at most one probe
/// message, and piggybacked gossip.
public struct Packet: Sendable, Hashable {
    /// Sender's node id.
    public var sender: String
    /// Sender's peer address, where answers go.
    public var senderAddress: String
    public var probe: ProbeMessage?
    public var gossip: [GossipUpdate]

    public init(sender: String, senderAddress: String, probe: ProbeMessage? = nil, gossip: [GossipUpdate] = []) {
        self.sender = sender
        self.senderAddress = senderAddress
        self.probe = probe
        self.gossip = gossip
    }
}

/// Full-state exchange over TCP (push-pull): used to join through a seed and,
/// periodically, to repair whatever piggybacking missed.
public struct PushPullState: Sendable, Hashable {
    public var sender: String
    /// True when the sender is joining: the receiver answers even before it knows the sender.
    public var isJoin: Bool
    /// Every member the sender knows, itself included, with their status.
    public var members: [Member]

    public init(sender: String, isJoin: Bool, members: [Member]) {
        self.sender = sender
        self.isJoin = isJoin
        self.members = members
    }
}

/// What the state machine asks its shell (or the simulator) to do.
public enum Directive: Sendable, Hashable {
    /// Send one datagram to a peer address.
    case send(Packet, to: String)
    /// Open a TCP connection to `to`, send `state`, read the peer's state back and hand
    /// it to `onPushPullReply`; on any failure call `onPushPullFailed(address:now:)`.
    case pushPull(PushPullState, to: String)
    /// A member's status changed (or a new member appeared); for logs, metrics and
    /// the layers above.
    case changed(MemberChange)
    /// The local incarnation changed: record it so a restart announces a higher one.
    case persistIncarnation(Incarnation)
}

/// One observable membership transition.
public struct MemberChange: Sendable, Hashable {
    public var member: Member
    /// Status before the change; nil for a member seen for the first time.
    public var previous: MemberStatus?

    public init(member: Member, previous: MemberStatus?) {
        self.member = member
        self.previous = previous
    }
}
