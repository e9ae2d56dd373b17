#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Timing that depends on the link between two members: probes between sites use the
/// WAN values, probes inside a site the LAN values.
public struct LinkTiming: Sendable, Hashable, Codable {
    /// Wait for a direct ack before asking helpers (scaled by local health). LAN 500 ms, WAN 3 s.
    public var probeTimeout: Duration
    /// Minimum suspicion timeout = `suspicionMultiplier × max(1, log10(members)) × probeInterval`
    /// (Lifeguard §IV.B "α"). LAN 3, WAN 6.
    /// LAN 3 rather than memberlist's 4: the simulator shows every member of a 1000-member
    /// cluster knowing a crash in 11-13 s with it (14-16 s with 4), and still no false
    /// positive at 10% loss (docs/benchmarks.md, "Membership simulation").
    public var suspicionMultiplier: Int
    /// Suspicion starts at `suspicionMaxMultiplier ×` the minimum and shrinks to the minimum
    /// as independent confirmations arrive (Lifeguard §IV.B "β"). LAN 6, WAN 6.
    public var suspicionMaxMultiplier: Int

    public init(probeTimeout: Duration, suspicionMultiplier: Int, suspicionMaxMultiplier: Int) {
        self.probeTimeout = probeTimeout
        self.suspicionMultiplier = suspicionMultiplier
        self.suspicionMaxMultiplier = suspicionMaxMultiplier
    }

    public static let lan = LinkTiming(
        probeTimeout: .milliseconds(500), suspicionMultiplier: 3, suspicionMaxMultiplier: 6)
    public static let wan = LinkTiming(probeTimeout: .seconds(3), suspicionMultiplier: 6, suspicionMaxMultiplier: 6)
}

/// Every knob of the failure detector and of dissemination, with its default and unit.
/// Presets: `.lan` (one site, or sites on a metro network; probes between sites still use
/// `interSite`) and `.wan` (every link slow).
public struct MembershipSettings: Sendable, Hashable {
    /// Time between two probes of this member (scaled by local health). LAN 1 s, WAN 5 s.
    public var probeInterval: Duration
    /// Timing for probes of members in this member's own site.
    public var intraSite: LinkTiming
    /// Timing for probes of members in other sites.
    public var interSite: LinkTiming
    /// Helpers asked for an indirect probe after a missed ack (SWIM "k"). Default 3.
    public var indirectProbes: Int
    /// Gossip fan-out period and width: every `gossipInterval` queued updates go to
    /// `gossipFanout` random members. LAN 200 ms × 3, WAN 500 ms × 4.
    public var gossipInterval: Duration
    public var gossipFanout: Int
    /// An update is sent `retransmitMultiplier × ceil(log10(members + 1))` times. Default 4.
    public var retransmitMultiplier: Int
    /// Full-state TCP exchange with one random member every
    /// `pushPullInterval × max(1, ceil(log2(members) − 5))` (grows with the cluster
    /// beyond 32 members). LAN 30 s, WAN 60 s.
    public var pushPullInterval: Duration
    /// Upper bound of the Lifeguard local health multiplier: probe interval and timeouts
    /// stretch to at most this many times their value (Lifeguard §IV.A). Default 8.
    public var maxLocalHealth: Int
    /// Largest datagram sent, bytes, authentication included. Default 1400.
    public var maxPacketBytes: Int
    /// Retry a join through the seeds this often until a seed answers. Default 2 s.
    public var joinRetryInterval: Duration
    /// Every this often, push-pull with one random dead member, so both sides of a healed
    /// partition find each other again. Default 30 s.
    public var reconnectInterval: Duration
    /// Dead and left members are remembered this long (so old rumours cannot revive
    /// them), then forgotten. Default 1 h.
    public var deadMemberRetention: Duration
    /// After `leave`, keep gossiping the departure this long before the shell stops. Default 1 s.
    public var leavePropagation: Duration
    /// Most members tracked; alive records beyond are ignored. Default 10 000.
    public var maxMembers: Int

    public init(
        probeInterval: Duration, intraSite: LinkTiming, interSite: LinkTiming, indirectProbes: Int = 3,
        gossipInterval: Duration, gossipFanout: Int, retransmitMultiplier: Int = 4, pushPullInterval: Duration,
        maxLocalHealth: Int = 8, maxPacketBytes: Int = 1400, joinRetryInterval: Duration = .seconds(2),
        reconnectInterval: Duration = .seconds(30),
        deadMemberRetention: Duration = .seconds(3600), leavePropagation: Duration = .seconds(1),
        maxMembers: Int = 10_000
    ) {
        self.probeInterval = probeInterval
        self.intraSite = intraSite
        self.interSite = interSite
        self.indirectProbes = indirectProbes
        self.gossipInterval = gossipInterval
        self.gossipFanout = gossipFanout
        self.retransmitMultiplier = retransmitMultiplier
        self.pushPullInterval = pushPullInterval
        self.maxLocalHealth = maxLocalHealth
        self.maxPacketBytes = maxPacketBytes
        self.joinRetryInterval = joinRetryInterval
        self.reconnectInterval = reconnectInterval
        self.deadMemberRetention = deadMemberRetention
        self.leavePropagation = leavePropagation
        self.maxMembers = maxMembers
    }

    /// Members of one site on a LAN; other sites are probed with WAN timing.
    public static let lan = MembershipSettings(
        probeInterval: .seconds(1), intraSite: .lan, interSite: .wan,
        gossipInterval: .milliseconds(200), gossipFanout: 3, pushPullInterval: .seconds(30))

    /// Every link slow (members spread over distant sites).
    public static let wan = MembershipSettings(
        probeInterval: .seconds(5), intraSite: .wan, interSite: .wan,
        gossipInterval: .milliseconds(500), gossipFanout: 4, pushPullInterval: .seconds(60))

    /// Longest time from a member's crash until every other member has it dead, for a
    /// cluster of `members`, when every survivor is healthy (local health 1) and no
    /// datagram is lost. The sum of:
    /// - the wait for the first probe of the victim: a survivor probes everyone once per
    ///   shuffled pass, so at worst `2 × (members − 1) − 1` probe intervals;
    /// - that probe's round: direct and indirect timeouts, `2 ×` the slower link's timeout;
    /// - the suspicion timeout before any confirmation, `β × α × max(1, log10 members)`
    ///   probe intervals on the slower link (Lifeguard §IV.B);
    /// - dissemination of the verdict: `retransmitMultiplier × ceil(log10(members + 1))`
    ///   gossip intervals, the time a queued update keeps being pushed.
    /// Typical times are far shorter (confirmations cut the suspicion to α × ...); the
    /// simulator measures them.
    public func worstCaseTimeToDead(members: Int) -> Duration {
        let n = max(members, 2)
        let firstProbe = probeInterval.scaled(by: Double(2 * (n - 1) - 1))
        let slow = intraSite.probeTimeout > interSite.probeTimeout ? intraSite : interSite
        let round = slow.probeTimeout.scaled(by: 2)
        let alpha = max(
            intraSite.suspicionMultiplier * intraSite.suspicionMaxMultiplier,
            interSite.suspicionMultiplier * interSite.suspicionMaxMultiplier)
        let scale = max(1, log10(Double(n)))
        let suspicion = probeInterval.scaled(by: Double(alpha) * scale)
        let spread = gossipInterval.scaled(
            by: Double(retransmitMultiplier * max(1, Int(log10(Double(n + 1)).rounded(.up)))))
        return firstProbe + round + suspicion + spread
    }

    /// Checks every value once; the message names the field and the accepted range.
    public func validate() -> String? {
        func positive(_ d: Duration) -> Bool { d > .zero }
        if !positive(probeInterval) { return "probeInterval must be positive" }
        for (name, t) in [("intraSite", intraSite), ("interSite", interSite)] {
            if !positive(t.probeTimeout) { return "\(name).probeTimeout must be positive" }
            if t.suspicionMultiplier < 1 { return "\(name).suspicionMultiplier must be at least 1" }
            if t.suspicionMaxMultiplier < 1 { return "\(name).suspicionMaxMultiplier must be at least 1" }
        }
        if !(0...16).contains(indirectProbes) { return "indirectProbes must be in 0...16" }
        if !positive(gossipInterval) { return "gossipInterval must be positive" }
        if !(0...32).contains(gossipFanout) { return "gossipFanout must be in 0...32" }
        if !(1...32).contains(retransmitMultiplier) { return "retransmitMultiplier must be in 1...32" }
        if !positive(pushPullInterval) { return "pushPullInterval must be positive" }
        if !(1...64).contains(maxLocalHealth) { return "maxLocalHealth must be in 1...64" }
        if !(512...65_000).contains(maxPacketBytes) { return "maxPacketBytes must be in 512...65000" }
        if !positive(joinRetryInterval) { return "joinRetryInterval must be positive" }
        if !positive(reconnectInterval) { return "reconnectInterval must be positive" }
        if !(2...100_000).contains(maxMembers) { return "maxMembers must be in 2...100000" }
        return nil
    }
}

extension MembershipSettings {
    /// Every duration times `factor` (counts and sizes unchanged): `gossipTimeScalePercent`.
    public func scaled(by factor: Double) -> MembershipSettings {
        guard factor != 1 else { return self }
        func link(_ t: LinkTiming) -> LinkTiming {
            var t = t
            t.probeTimeout = t.probeTimeout.scaled(by: factor)
            return t
        }
        var s = self
        s.probeInterval = probeInterval.scaled(by: factor)
        s.intraSite = link(intraSite)
        s.interSite = link(interSite)
        s.gossipInterval = gossipInterval.scaled(by: factor)
        s.pushPullInterval = pushPullInterval.scaled(by: factor)
        s.joinRetryInterval = joinRetryInterval.scaled(by: factor)
        s.leavePropagation = leavePropagation.scaled(by: factor)
        s.reconnectInterval = reconnectInterval.scaled(by: factor)
        s.deadMemberRetention = deadMemberRetention.scaled(by: factor)
        return s
    }
}
