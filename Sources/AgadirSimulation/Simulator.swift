import AgadirMembership

/// Runs many instances of the real `Membership` state machine against a simulated
/// network and simulated time.
///
/// One event queue orders everything (datagram and push-pull deliveries, member wake-ups
/// at their `nextDeadline`, scenario actions) by time, then by scheduling order; every
/// random choice comes from generators derived from the configuration's seed; nothing
/// iterates a dictionary or a set. The same configuration therefore gives the same report.
public enum Simulator {
    /// Runs `configuration` to its end and returns what it measured.
    public static func run(_ configuration: SimulationConfiguration) throws -> SimulationReport {
        if let problem = configuration.validate() { throw SimulationError(message: problem) }
        var engine = Engine(configuration)
        return engine.run()
    }
}

// MARK: - Events

private enum Event {
    case start(Int)
    /// A wake-up for `member`, valid while its generation is current.
    case wake(Int, generation: UInt64)
    case datagram(Packet, to: Int)
    case pushPullRequest(PushPullState, from: Int, instance: UInt32, to: Int, startedAt: Int64)
    case pushPullReply(PushPullState, to: Int, instance: UInt32, from: Int)
    case pushPullFailed(to: Int, instance: UInt32, address: String)
    case crash(Int)
    case restart(Int)
    case update(Int)
    case leave(Int)
    /// The end of a graceful leave's propagation: the process exits.
    case stop(Int)
    /// The end of a CPU starvation window.
    case resume(Int)
    case partitionHealed
    /// Join mode: every member has started; measure convergence from now on.
    case measureJoin

    /// The member whose processing this event needs (nil for scenario actions).
    var recipient: Int? {
        switch self {
        case .wake(let i, _), .datagram(_, let i), .pushPullRequest(_, _, _, let i, _), .pushPullReply(_, let i, _, _),
            .pushPullFailed(let i, _, _):
            i
        default: nil
        }
    }
}

private enum NodeState {
    case notStarted, running, crashed, stopped
}

// MARK: - Convergence tracking

/// Counts live members whose view satisfies `goal`, re-evaluated for a member after each
/// event it processes, and records when 50 %, 99 %, 99.99 % and 100 % of the population
/// first did.
private struct Tracker {
    enum Goal {
        case status(subject: String, MemberStatus)
        case layoutVersion(subject: String, atLeast: UInt64)
        case aliveAtLeast(subject: String, Incarnation)
        /// The member's active count equals the number of running members.
        case fullView
    }

    /// Thresholds in 1/10 000 of the population.
    static let thresholds = [5000, 9900, 9999, 10_000]

    enum Kind { case crash, restart, update, leave, join, heal }

    let kind: Kind
    let goal: Goal
    /// A member left out of the population (the crashed or leaving one).
    let exclude: Int?
    let startedAt: Int64
    var satisfied: [Bool]
    var count = 0
    var reached: [Int64?] = Array(repeating: nil, count: Tracker.thresholds.count)
    var done: Bool { reached[reached.count - 1] != nil }

    init(_ kind: Kind, goal: Goal, exclude: Int?, startedAt: Int64, members: Int) {
        self.kind = kind
        self.goal = goal
        self.exclude = exclude
        self.startedAt = startedAt
        satisfied = Array(repeating: false, count: members)
    }

    func holds(_ m: Membership, running: Int) -> Bool {
        switch goal {
        case .status(let id, let s): m.member(id)?.status == s
        case .layoutVersion(let id, let v): (m.member(id)?.layoutVersion ?? 0) >= v
        case .aliveAtLeast(let id, let inc):
            m.member(id).map { $0.status == .alive && $0.incarnation >= inc } ?? false
        case .fullView: m.activeCount == running
        }
    }

    mutating func set(_ i: Int, _ value: Bool) {
        guard satisfied[i] != value else { return }
        satisfied[i] = value
        count += value ? 1 : -1
    }

    mutating func checkThresholds(population: Int, now: Int64) {
        for (k, per10k) in Self.thresholds.enumerated() where reached[k] == nil {
            let needed = (population * per10k + 9999) / 10_000
            if count >= needed { reached[k] = now - startedAt }
        }
    }

    func convergence(population: Int) -> Convergence {
        func d(_ k: Int) -> Duration? { reached[k].map { .nanoseconds($0) } }
        return Convergence(
            startedAt: .nanoseconds(startedAt), toHalf: d(0), to99: d(1), to9999: d(2), toAll: d(3),
            reachedAtEnd: count, populationAtEnd: population)
    }
}

// MARK: - Engine

private struct Engine {
    let config: SimulationConfiguration
    let settings: MembershipSettings
    let n: Int
    let records: [Member]
    let ids: [String]
    let addresses: [String]
    let indexByAddress: [String: Int]
    let indexByID: [String: Int]
    let siteOf: [Int]
    /// Base latency and jitter in nanoseconds, `[siteA * sites + siteB]`.
    let links: [(base: Int64, jitter: Int64)]
    let end: Int64
    let warmUpEnd: Int64

    var nodes: [Membership]
    var rngs: [SimulationRandom]
    var network: SimulationRandom
    var state: [NodeState]
    var everCrashed: [Bool]
    var leaving: [Bool]
    var instance: [UInt32]
    var wakeGeneration: [UInt64]
    /// Time of the one valid pending wake-up per member, or `Int64.min`.
    var scheduledWake: [Int64]
    /// `start` was called on the current instance (before it, a bootstrapped member answers
    /// messages but has no timers).
    var started: [Bool]
    var persisted: [Incarnation]
    var running = 0

    // Faults
    let starved: (member: Int, from: Int64, until: Int64)?
    var deferred: [Event] = []
    let partitionGroup: [Int]
    let partitionWindow: (from: Int64, until: Int64)?

    var queue = EventQueue<Event>()
    var now: Int64 = 0
    var processed = 0
    var truncated = false

    // Measurements
    var crashAt: Int64?
    var firstDetection: Int64?
    var trackers: [Tracker] = []
    var falselyDead: [Bool]
    var falseDeathDeclarations = 0
    var suspectedHealthy: [Bool]
    var healthySuspicions = 0
    var partitionVerdicts = 0
    var starvedSuspicions = 0
    var starvedDeclaredDead = 0
    var examples: [String] = []
    var maxHealth = 1
    var maxHealthOutsideStarved = 1
    var retiredTotals = ProtocolTotals()
    var firstProbeOfVictim: Int64?
    var suspectedAtCrash = false
    var stalledDeadlines = 0
    var datagramsSent = 0
    var datagramBytes = 0
    var datagramsLost = 0
    var datagramsBlocked = 0
    var datagramsToStopped = 0
    var pushPullMessages = 0
    var pushPullBytes = 0
    var pushPullsFailed = 0

    init(_ config: SimulationConfiguration) {
        self.config = config
        settings = config.settings
        n = config.members
        let sites = config.sites
        var records: [Member] = []
        records.reserveCapacity(n)
        for i in 0..<n {
            let site = i % sites
            let host = "10.\(site).\(i / 256).\(i % 256)"
            records.append(
                Member(
                    nodeID: "node-\(i)", site: "site-\(site)", clientAddress: host + ":7480",
                    peerAddress: host + ":7946"))
        }
        self.records = records
        ids = records.map(\.nodeID)
        addresses = records.map(\.peerAddress)
        var byAddress: [String: Int] = [:]
        var byID: [String: Int] = [:]
        for (i, m) in records.enumerated() {
            byAddress[m.peerAddress] = i
            byID[m.nodeID] = i
        }
        indexByAddress = byAddress
        indexByID = byID
        siteOf = (0..<n).map { $0 % sites }
        var links: [(Int64, Int64)] = []
        for a in 0..<sites {
            for b in 0..<sites {
                var l = a == b ? config.latency : config.interSiteLatency
                for o in config.siteLinks where (o.siteA == a && o.siteB == b) || (o.siteA == b && o.siteB == a) {
                    l = o.latency
                }
                links.append((l.base.nanoseconds, l.jitter.nanoseconds))
            }
        }
        self.links = links
        end = config.duration.nanoseconds
        warmUpEnd = config.warmUp.nanoseconds

        rngs = (0..<n).map { SimulationRandom(seed: config.seed, stream: Self.memberStream($0, instance: 0)) }
        network = SimulationRandom(seed: config.seed, stream: 0xFFFF_FFFF_0000_0001)
        state = Array(repeating: .notStarted, count: n)
        everCrashed = Array(repeating: false, count: n)
        leaving = Array(repeating: false, count: n)
        instance = Array(repeating: 0, count: n)
        wakeGeneration = Array(repeating: 0, count: n)
        scheduledWake = Array(repeating: .min, count: n)
        started = Array(repeating: false, count: n)
        persisted = Array(repeating: .zero, count: n)
        falselyDead = Array(repeating: false, count: n)
        suspectedHealthy = Array(repeating: false, count: n)
        starved = config.starvation.map { ($0.member, $0.from.nanoseconds, $0.until.nanoseconds) }
        var groups = Array(repeating: -1, count: n)
        if let p = config.partition {
            for (g, members) in p.groups.enumerated() { for m in members { groups[m] = g } }
        }
        partitionGroup = groups
        partitionWindow = config.partition.map { ($0.from.nanoseconds, $0.until.nanoseconds) }

        // Members: all of them exist from time 0 (bootstrapped) or are created when they start.
        var scenario = SimulationRandom(seed: config.seed, stream: 0xFFFF_FFFF_0000_0002)
        let origin = MonotonicTime.zero
        switch config.start {
        case .bootstrapped:
            // Already running (they answer), their timers starting at random offsets below.
            nodes = records.map {
                Membership(myself: $0, seeds: [], settings: config.settings, now: origin, knownMembers: records)
            }
            state = Array(repeating: .running, count: n)
            running = n
        case .joinThroughSeeds:
            nodes = records.map { Membership(myself: $0, seeds: [], settings: config.settings, now: origin) }
        }
        // Scenario actions first, so that they run before member events at the same instant.
        if let c = config.crash {
            queue.push(at: c.at.nanoseconds, .crash(c.member))
            if let r = c.restartAfter { queue.push(at: (c.at + r).nanoseconds, .restart(c.member)) }
        }
        if let u = config.update { queue.push(at: u.at.nanoseconds, .update(u.member)) }
        if let l = config.leave { queue.push(at: l.at.nanoseconds, .leave(l.member)) }
        if let s = config.starvation { queue.push(at: s.until.nanoseconds, .resume(s.member)) }
        if let p = config.partition { queue.push(at: p.until.nanoseconds, .partitionHealed) }
        switch config.start {
        case .bootstrapped:
            let interval = Double(config.settings.probeInterval.nanoseconds)
            for i in 0..<n { queue.push(at: Int64(scenario.unit() * interval), .start(i)) }
        case .joinThroughSeeds(_, let spread):
            queue.push(at: 0, .start(0))
            var last: Int64 = 0
            for i in 1..<n {
                let t = Int64(scenario.unit() * Double(spread.nanoseconds))
                last = max(last, t)
                queue.push(at: t, .start(i))
            }
            queue.push(at: last, .measureJoin)
        }
    }

    static func memberStream(_ i: Int, instance: UInt32) -> UInt64 {
        (UInt64(i) << 24) | UInt64(instance)
    }

    var seedAddresses: [String] {
        guard case .joinThroughSeeds(let seeds, _) = config.start else {
            // Bootstrapped clusters restart through two members other than the victim.
            return Array((0..<n).filter { $0 != config.crash?.member }.prefix(2).map { addresses[$0] })
        }
        return Array(addresses.prefix(seeds))
    }

    // MARK: Main loop

    mutating func run() -> SimulationReport {
        while let next = queue.nextTime, next <= end {
            guard processed < config.maxEvents else {
                truncated = true
                break
            }
            guard let (t, event) = queue.pop() else { break }
            now = t
            processed += 1
            dispatch(event)
        }
        now = end
        return report()
    }

    func isStarved(_ i: Int) -> Bool {
        guard let s = starved, s.member == i else { return false }
        return now >= s.from && now < s.until
    }

    mutating func dispatch(_ event: Event) {
        if let i = event.recipient, isStarved(i) {
            deferred.append(event)
            return
        }
        switch event {
        case .start(let i):
            startMember(i)
        case .wake(let i, let generation):
            guard generation == wakeGeneration[i], state[i] == .running else { return }
            scheduledWake[i] = .min
            let out = nodes[i].tick(now: time, rng: &rngs[i])
            carryOut(out, from: i, ticked: true)
        case .datagram(let packet, let to):
            guard state[to] == .running else {
                if inWindow { datagramsToStopped += 1 }
                return
            }
            let out = nodes[to].receive(packet, now: time, rng: &rngs[to])
            carryOut(out, from: to, ticked: false)
        case .pushPullRequest(let request, let from, let inst, let to, let startedAt):
            guard state[to] == .running, !partitioned(from, to) else {
                queue.push(
                    at: max(now, startedAt + config.pushPullTimeout.nanoseconds),
                    .pushPullFailed(to: from, instance: inst, address: addresses[to]))
                return
            }
            let (reply, out) = nodes[to].receivePushPull(request, now: time, rng: &rngs[to])
            carryOut(out, from: to, ticked: false)
            count(pushPull: reply)
            if partitioned(from, to) {
                queue.push(
                    at: max(now, startedAt + config.pushPullTimeout.nanoseconds),
                    .pushPullFailed(to: from, instance: inst, address: addresses[to]))
            } else {
                queue.push(at: now + latency(to, from), .pushPullReply(reply, to: from, instance: inst, from: to))
            }
        case .pushPullReply(let reply, let to, let inst, let from):
            guard state[to] == .running, instance[to] == inst else { return }
            let out = nodes[to].pushPullReplied(reply, from: addresses[from], now: time, rng: &rngs[to])
            carryOut(out, from: to, ticked: false)
        case .pushPullFailed(let to, let inst, let address):
            guard state[to] == .running, instance[to] == inst else { return }
            pushPullsFailed += inWindow ? 1 : 0
            let out = nodes[to].pushPullFailed(address: address, now: time)
            carryOut(out, from: to, ticked: false)
        case .crash(let i):
            guard state[i] == .running else { return }
            crashAt = now
            everCrashed[i] = true
            // A suspicion already running (loss) would be counted as an instant detection.
            suspectedAtCrash = (0..<n).contains { j in
                j != i && state[j] == .running && nodes[j].member(ids[i])?.status == .suspect
            }
            retire(i, as: .crashed)
            addTracker(.crash, goal: .status(subject: ids[i], .dead), exclude: i, startedAt: now)
        case .restart(let i):
            guard state[i] == .crashed else { return }
            instance[i] &+= 1
            rngs[i] = SimulationRandom(seed: config.seed, stream: Self.memberStream(i, instance: instance[i]))
            var me = records[i]
            me.incarnation = persisted[i].next
            nodes[i] = Membership(myself: me, seeds: seedAddresses, settings: settings, now: time)
            startMember(i)
            addTracker(.restart, goal: .aliveAtLeast(subject: ids[i], me.incarnation), exclude: nil, startedAt: now)
        case .update(let i):
            guard state[i] == .running else { return }
            let out = nodes[i].updateMyself(now: time) { $0.layoutVersion += 1 }
            let version = nodes[i].myself.layoutVersion
            addTracker(.update, goal: .layoutVersion(subject: ids[i], atLeast: version), exclude: nil, startedAt: now)
            carryOut(out, from: i, ticked: false)
        case .leave(let i):
            guard state[i] == .running else { return }
            leaving[i] = true
            let out = nodes[i].leave(now: time)
            addTracker(.leave, goal: .status(subject: ids[i], .left), exclude: i, startedAt: now)
            carryOut(out, from: i, ticked: false)
            queue.push(at: now + settings.leavePropagation.nanoseconds, .stop(i))
        case .stop(let i):
            guard state[i] == .running else { return }
            retire(i, as: .stopped)
        case .resume:
            let backlog = deferred
            deferred = []
            for e in backlog { dispatch(e) }
        case .partitionHealed:
            addTracker(.heal, goal: .fullView, exclude: nil, startedAt: now)
        case .measureJoin:
            addTracker(.join, goal: .fullView, exclude: nil, startedAt: 0)
        }
    }

    var time: MonotonicTime { MonotonicTime(nanoseconds: now) }
    var inWindow: Bool { now >= warmUpEnd }

    mutating func startMember(_ i: Int) {
        guard !started[i] else { return }
        if case .joinThroughSeeds = config.start, instance[i] == 0 {
            nodes[i] = Membership(myself: records[i], seeds: seedAddresses, settings: settings, now: time)
        }
        if state[i] != .running {
            state[i] = .running
            running += 1
        }
        started[i] = true
        let out = nodes[i].start(now: time, rng: &rngs[i])
        carryOut(out, from: i, ticked: false)  // evaluates the trackers for `i`
    }

    /// A member stops processing for good (crash or the end of a leave).
    mutating func retire(_ i: Int, as final: NodeState) {
        state[i] = final
        started[i] = false
        running -= 1
        wakeGeneration[i] &+= 1
        scheduledWake[i] = .min
        retiredTotals.add(nodes[i].stats)
        for k in trackers.indices where !trackers[k].done {
            trackers[k].set(i, false)
            trackers[k].checkThresholds(population: population(of: trackers[k]), now: now)
        }
    }

    func population(of t: Tracker) -> Int {
        if let x = t.exclude, state[x] == .running { return running - 1 }
        return running
    }

    mutating func addTracker(_ kind: Tracker.Kind, goal: Tracker.Goal, exclude: Int?, startedAt: Int64) {
        var t = Tracker(kind, goal: goal, exclude: exclude, startedAt: startedAt, members: n)
        for i in 0..<n where state[i] == .running && i != exclude {
            t.set(i, t.holds(nodes[i], running: running))
        }
        t.checkThresholds(population: population(of: t), now: now)
        trackers.append(t)
    }

    // MARK: Directives

    mutating func carryOut(_ directives: [Directive], from i: Int, ticked: Bool) {
        for d in directives {
            switch d {
            case .send(let packet, let address):
                send(packet, from: i, to: address)
            case .pushPull(let request, let address):
                count(pushPull: request)
                guard let j = indexByAddress[address] else {
                    queue.push(
                        at: now + config.pushPullTimeout.nanoseconds,
                        .pushPullFailed(to: i, instance: instance[i], address: address))
                    continue
                }
                // TCP: a handshake round trip, then the request.
                let arrival = now + latency(i, j) + latency(j, i) + latency(i, j)
                queue.push(
                    at: arrival, .pushPullRequest(request, from: i, instance: instance[i], to: j, startedAt: now))
            case .changed(let change):
                observe(change, by: i)
            case .persistIncarnation(let incarnation):
                persisted[i] = incarnation
            }
        }
        observeState(of: i)
        reschedule(i, ticked: ticked)
    }

    mutating func reschedule(_ i: Int, ticked: Bool) {
        guard state[i] == .running, started[i] else { return }
        var d = nodes[i].nextDeadline.nanoseconds
        if d <= now {
            if ticked {
                // A tick must move the deadline forward; never spin on one that does not.
                stalledDeadlines += 1
                d = now + 1_000_000
            } else {
                d = now
            }
        }
        guard scheduledWake[i] != d else { return }
        wakeGeneration[i] &+= 1
        scheduledWake[i] = d
        queue.push(at: d, .wake(i, generation: wakeGeneration[i]))
    }

    mutating func send(_ packet: Packet, from i: Int, to address: String) {
        if inWindow {
            datagramsSent += 1
            datagramBytes += Self.datagramSize(packet)
        }
        guard let j = indexByAddress[address], j != i else { return }
        if firstProbeOfVictim == nil, let c = crashAt, config.crash?.member == j, state[j] == .crashed,
            case .ping = packet.probe
        {
            firstProbeOfVictim = now - c
        }
        if config.loss > 0, network.unit() < config.loss {
            if inWindow { datagramsLost += 1 }
            return
        }
        if partitioned(i, j) {
            if inWindow { datagramsBlocked += 1 }
            return
        }
        queue.push(at: now + latency(i, j), .datagram(packet, to: j))
    }

    mutating func count(pushPull message: PushPullState) {
        guard inWindow else { return }
        pushPullMessages += 1
        pushPullBytes += Self.pushPullSize(message)
    }

    mutating func latency(_ a: Int, _ b: Int) -> Int64 {
        let l = links[siteOf[a] * config.sites + siteOf[b]]
        guard l.jitter > 0 else { return l.base }
        let j = Int64((network.unit() * 2 - 1) * Double(l.jitter))
        return max(0, l.base + j)
    }

    func partitioned(_ a: Int, _ b: Int) -> Bool {
        guard let w = partitionWindow, now >= w.from, now < w.until else { return false }
        let ga = partitionGroup[a]
        let gb = partitionGroup[b]
        return ga >= 0 && gb >= 0 && ga != gb
    }

    // MARK: Observation

    func isHealthy(_ j: Int) -> Bool { state[j] == .running && !everCrashed[j] && !leaving[j] }

    mutating func observe(_ change: MemberChange, by i: Int) {
        guard let j = indexByID[change.member.nodeID] else { return }
        let victimDown = config.crash?.member == j && state[j] == .crashed
        switch change.member.status {
        case .suspect:
            if victimDown {
                if firstDetection == nil, let c = crashAt { firstDetection = now - c }
            } else if isHealthy(j) {
                healthySuspicions += 1
                suspectedHealthy[j] = true
            }
            if starved?.member == j { starvedSuspicions += 1 }
        case .dead:
            if victimDown {
                if firstDetection == nil, let c = crashAt { firstDetection = now - c }
            } else if isHealthy(j) {
                if let p = partitionWindow, now >= p.from, partitionGroup[i] >= 0, partitionGroup[j] >= 0,
                    partitionGroup[i] != partitionGroup[j]
                {
                    partitionVerdicts += 1
                } else {
                    falseDeathDeclarations += 1
                    falselyDead[j] = true
                    if examples.count < 5 {
                        examples.append("t=\(seconds(.nanoseconds(now))): \(ids[i]) declared \(ids[j]) dead")
                    }
                }
            }
            if starved?.member == j { starvedDeclaredDead += 1 }
        case .alive, .left:
            break
        }
    }

    mutating func observeState(of i: Int) {
        guard state[i] == .running else { return }
        let h = nodes[i].localHealth
        if h > maxHealth { maxHealth = h }
        if h > maxHealthOutsideStarved, starved?.member != i { maxHealthOutsideStarved = h }
        for k in trackers.indices where !trackers[k].done {
            if i != trackers[k].exclude {
                trackers[k].set(i, trackers[k].holds(nodes[i], running: running))
            }
            trackers[k].checkThresholds(population: population(of: trackers[k]), now: now)
        }
    }

    // MARK: Sizes

    /// Bytes on the wire for one datagram: header, gossip, authentication.
    static func datagramSize(_ p: Packet) -> Int {
        var size =
            GossipCodec.headerSize(sender: p.sender, senderAddress: p.senderAddress, probe: p.probe)
            + Keyring.overhead
        for u in p.gossip { size += GossipCodec.encodedSize(u) }
        return size
    }

    /// Bytes on the wire for one push-pull message: length prefix, authentication, the
    /// state's header (as the codec encodes it) and every member.
    static func pushPullSize(_ s: PushPullState) -> Int {
        var size =
            4 + Keyring.overhead
            + GossipCodec.encode(PushPullState(sender: s.sender, isJoin: s.isJoin, members: [])).count
        for m in s.members { size += GossipCodec.encodedSize(m) }
        return size
    }

    // MARK: Report

    mutating func report() -> SimulationReport {
        var totals = retiredTotals
        for i in 0..<n where state[i] == .running { totals.add(nodes[i].stats) }
        var wrongViews = 0
        for i in 0..<n where state[i] == .running {
            for j in 0..<n where j != i && state[j] == .running {
                if nodes[i].member(ids[j])?.status.isActive != true { wrongViews += 1 }
            }
        }
        let windowSeconds = Double((end - warmUpEnd)) / 1e9
        let perMember = windowSeconds > 0 ? 1 / (windowSeconds * Double(n)) : 0
        func conv(_ kind: Tracker.Kind) -> Convergence? {
            trackers.last { $0.kind == kind }.map { $0.convergence(population: population(of: $0)) }
        }
        return SimulationReport(
            configuration: config,
            simulatedTime: .nanoseconds(end),
            eventsProcessed: processed,
            truncated: truncated,
            datagramsSent: datagramsSent,
            datagramBytes: datagramBytes,
            datagramsLost: datagramsLost,
            datagramsBlocked: datagramsBlocked,
            datagramsToStopped: datagramsToStopped,
            pushPullMessages: pushPullMessages,
            pushPullBytes: pushPullBytes,
            pushPullsFailed: pushPullsFailed,
            messagesPerSecondPerMember: Double(datagramsSent + pushPullMessages) * perMember,
            bytesPerSecondPerMember: Double(datagramBytes + pushPullBytes) * perMember,
            firstDetection: firstDetection.map { .nanoseconds($0) },
            crashKnownDead: conv(.crash),
            restartAlive: conv(.restart),
            update: conv(.update),
            leave: conv(.leave),
            join: conv(.join),
            partitionHeal: conv(.heal),
            falsePositives: falselyDead.lazy.filter { $0 }.count,
            falseDeathDeclarations: falseDeathDeclarations,
            healthySuspicions: healthySuspicions,
            healthyMembersSuspected: suspectedHealthy.lazy.filter { $0 }.count,
            partitionVerdicts: partitionVerdicts,
            starvedSuspicions: starvedSuspicions,
            starvedDeclaredDead: starvedDeclaredDead,
            refutations: totals.refutations,
            totals: totals,
            firstProbeOfVictim: firstProbeOfVictim.map { .nanoseconds($0) },
            victimSuspectedAtCrash: suspectedAtCrash,
            maxLocalHealth: maxHealth,
            maxLocalHealthExcludingStarved: maxHealthOutsideStarved,
            falsePositiveExamples: examples,
            finalWrongViews: wrongViews,
            stalledDeadlines: stalledDeadlines)
    }
}
