import AgadirMembership

/// One simulated run: the cluster, the network, the faults and what to measure. Times
/// are offsets from the start of the run (simulated time; nothing reads a clock).
public struct SimulationConfiguration: Sendable, Hashable {
    /// Which `MembershipSettings` preset every member runs.
    public enum Preset: String, Sendable, Hashable, CaseIterable {
        case lan, wan

        public var settings: MembershipSettings {
            switch self {
            case .lan: .lan
            case .wan: .wan
            }
        }
    }

    /// How the cluster comes up.
    public enum StartMode: Sendable, Hashable {
        /// Every member knows every other one from the start (`Membership(knownMembers:)`)
        /// and starts at a random offset within one probe interval: measures the steady state.
        case bootstrapped
        /// Member 0 starts alone at time 0; every other member starts at a random time in
        /// `0..<spread` knowing nobody and joins through the first `seeds` members' addresses.
        case joinThroughSeeds(seeds: Int, spread: Duration)
    }

    /// One-way latency of a datagram: `base` plus a uniform jitter in `-jitter...jitter`
    /// (never below zero).
    public struct Latency: Sendable, Hashable {
        public var base: Duration
        public var jitter: Duration

        public init(base: Duration, jitter: Duration) {
            self.base = base
            self.jitter = jitter
        }

        /// 1 ms ± 0.5 ms.
        public static let lan = Latency(base: .milliseconds(1), jitter: .microseconds(500))
        /// 20 ms ± 2 ms.
        public static let metro = Latency(base: .milliseconds(20), jitter: .milliseconds(2))
    }

    /// Latency between two given sites (both directions), overriding `interSiteLatency`.
    public struct SiteLink: Sendable, Hashable {
        public var siteA: Int
        public var siteB: Int
        public var latency: Latency

        public init(siteA: Int, siteB: Int, latency: Latency) {
            self.siteA = siteA
            self.siteB = siteB
            self.latency = latency
        }
    }

    /// A member that crashes (stops forever) at `at`; with `restartAfter`, a new instance
    /// with the same id and a higher incarnation starts that much later and joins through
    /// the seeds.
    public struct Crash: Sendable, Hashable {
        public var member: Int
        public var at: Duration
        public var restartAfter: Duration?

        public init(member: Int, at: Duration, restartAfter: Duration? = nil) {
            self.member = member
            self.at = at
            self.restartAfter = restartAfter
        }
    }

    /// A live member announces a change of its own record at `at`
    /// (`updateMyself { $0.layoutVersion += 1 }`).
    public struct Update: Sendable, Hashable {
        public var member: Int
        public var at: Duration

        public init(member: Int, at: Duration) {
            self.member = member
            self.at = at
        }
    }

    /// A member that processes nothing from `from` to `until` (a stalled process or an
    /// overloaded host); what arrives meanwhile is handled at `until`, in arrival order.
    public struct Starvation: Sendable, Hashable {
        public var member: Int
        public var from: Duration
        public var until: Duration

        public init(member: Int, from: Duration, until: Duration) {
            self.member = member
            self.from = from
            self.until = until
        }
    }

    /// A member that leaves gracefully at `at` (and stops `leavePropagation` later).
    public struct Leave: Sendable, Hashable {
        public var member: Int
        public var at: Duration

        public init(member: Int, at: Duration) {
            self.member = member
            self.at = at
        }
    }

    /// Members in different groups cannot reach each other (datagrams or push-pull) from
    /// `from` to `until`; members in no group reach everyone.
    public struct Partition: Sendable, Hashable {
        public var groups: [[Int]]
        public var from: Duration
        public var until: Duration

        public init(groups: [[Int]], from: Duration, until: Duration) {
            self.groups = groups
            self.from = from
            self.until = until
        }

        /// Members `0..<members/2` against the rest.
        public static func halves(members: Int, from: Duration, until: Duration) -> Partition {
            Partition(groups: [Array(0..<members / 2), Array(members / 2..<members)], from: from, until: until)
        }
    }

    /// Number of members. Default 100.
    public var members: Int
    /// Seed of every random choice of the run. Default 1.
    public var seed: UInt64
    public var preset: Preset
    /// Settings every member runs; default `preset.settings`.
    public var settings: MembershipSettings
    /// Sites; member `i` belongs to site `i % sites`. Default 1.
    public var sites: Int
    /// Probability that a datagram is lost, 0...1. Push-pull (TCP) is never lossy. Default 0.
    public var loss: Double
    /// Latency inside a site. Default 1 ms ± 0.5 ms.
    public var latency: Latency
    /// Latency between sites unless `siteLinks` says otherwise. Default 20 ms ± 2 ms.
    public var interSiteLatency: Latency
    public var siteLinks: [SiteLink]
    /// Simulated time of the run. Default 60 s.
    public var duration: Duration
    /// Traffic is counted from here to the end. Default 10 s.
    public var warmUp: Duration
    public var start: StartMode
    public var crash: Crash?
    public var update: Update?
    public var starvation: Starvation?
    public var leave: Leave?
    public var partition: Partition?
    /// A push-pull towards a crashed or unreachable member fails this long after it
    /// started (the shell's connect/read timeout). Default 2 s.
    public var pushPullTimeout: Duration
    /// Safety bound on the events processed; the report says when it cut the run short.
    /// Default 2 000 000 000.
    public var maxEvents: Int

    public init(
        members: Int = 100, seed: UInt64 = 1, preset: Preset = .lan, settings: MembershipSettings? = nil,
        sites: Int = 1, loss: Double = 0, latency: Latency = .lan, interSiteLatency: Latency = .metro,
        siteLinks: [SiteLink] = [], duration: Duration = .seconds(60), warmUp: Duration = .seconds(10),
        start: StartMode = .bootstrapped, crash: Crash? = nil, update: Update? = nil, starvation: Starvation? = nil,
        leave: Leave? = nil, partition: Partition? = nil, pushPullTimeout: Duration = .seconds(2),
        maxEvents: Int = 2_000_000_000
    ) {
        self.members = members
        self.seed = seed
        self.preset = preset
        self.settings = settings ?? preset.settings
        self.sites = sites
        self.loss = loss
        self.latency = latency
        self.interSiteLatency = interSiteLatency
        self.siteLinks = siteLinks
        self.duration = duration
        self.warmUp = warmUp
        self.start = start
        self.crash = crash
        self.update = update
        self.starvation = starvation
        self.leave = leave
        self.partition = partition
        self.pushPullTimeout = pushPullTimeout
        self.maxEvents = maxEvents
    }

    /// Checks every value once; the message names the field and the accepted range.
    public func validate() -> String? {
        if let problem = settings.validate() { return "settings: \(problem)" }
        guard (2...settings.maxMembers).contains(members) else {
            return "members must be in 2...\(settings.maxMembers) (settings.maxMembers)"
        }
        guard (1...members).contains(sites) else { return "sites must be in 1...members" }
        guard loss.isFinite, (0...1).contains(loss) else { return "loss must be in 0...1" }
        let latencies =
            [("latency", latency), ("interSiteLatency", interSiteLatency)]
            + siteLinks.map { ("siteLinks", $0.latency) }
        for (name, l) in latencies {
            if l.base < .zero || l.jitter < .zero { return "\(name): base and jitter must not be negative" }
        }
        for link in siteLinks where !(0..<sites).contains(link.siteA) || !(0..<sites).contains(link.siteB) {
            return "siteLinks: site numbers must be in 0..<sites"
        }
        guard duration > .zero, duration <= .seconds(86_400) else { return "duration must be in (0, 1 day]" }
        guard warmUp >= .zero, warmUp < duration else { return "warmUp must be in [0, duration)" }
        guard pushPullTimeout > .zero else { return "pushPullTimeout must be positive" }
        guard maxEvents > 0 else { return "maxEvents must be positive" }
        let range = 0..<members
        if case .joinThroughSeeds(let seeds, let spread) = start {
            guard (1...members).contains(seeds) else { return "start: seeds must be in 1...members" }
            guard spread >= .zero else { return "start: spread must not be negative" }
        }
        if let c = crash {
            guard range.contains(c.member) else { return "crash.member must be in 0..<members" }
            guard c.at >= .zero else { return "crash.at must not be negative" }
            if let r = c.restartAfter, r <= .zero { return "crash.restartAfter must be positive" }
        }
        if let u = update {
            guard range.contains(u.member) else { return "update.member must be in 0..<members" }
            guard u.at >= .zero else { return "update.at must not be negative" }
            if let c = crash, c.member == u.member { return "update.member must not be the crashed member" }
        }
        if let s = starvation {
            guard range.contains(s.member) else { return "starvation.member must be in 0..<members" }
            guard s.from >= .zero, s.from < s.until else { return "starvation needs 0 <= from < until" }
        }
        if let l = leave {
            guard range.contains(l.member) else { return "leave.member must be in 0..<members" }
            guard l.at >= .zero else { return "leave.at must not be negative" }
            if let c = crash, c.member == l.member { return "leave.member must not be the crashed member" }
        }
        if let p = partition {
            guard p.from >= .zero, p.from < p.until else { return "partition needs 0 <= from < until" }
            var seen = Set<Int>()
            for g in p.groups {
                for m in g {
                    guard range.contains(m) else { return "partition: members must be in 0..<members" }
                    guard seen.insert(m).inserted else { return "partition: member \(m) is in two groups" }
                }
            }
        }
        return nil
    }
}

/// The configuration could not run; the message names the field.
public struct SimulationError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { "invalid simulation configuration: \(message)" }
}
