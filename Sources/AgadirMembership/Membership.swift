#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// SWIM failure detection and dissemination with the Lifeguard refinements, as a pure
/// state machine.
///
/// Inputs are events (`start`, `tick`, `receive`, push-pull results, `leave`), each with
/// the current time and a random source; outputs are `Directive`s for the shell (UDP and
/// TCP on a real node, an event queue in the simulator). Nothing here reads a clock,
/// touches a socket or iterates a dictionary where the order could change an outcome, so
/// a run is reproducible from its inputs.
///
/// References: Das, Gupta, Motivala, "SWIM" (DSN 2002), sections cited as "SWIM §n";
/// Dadgar, Phillips, Currey, "Lifeguard" (arXiv:1707.00788), cited as "Lifeguard §n".
public struct Membership: Sendable {
    public let settings: MembershipSettings
    public private(set) var myself: Member
    public private(set) var localHealthScore = 0
    public private(set) var stats = MembershipStats()
    /// The earliest time at which `tick` has something to do.
    public private(set) var nextDeadline: MonotonicTime

    private let seeds: [String]
    private var table: [String: Entry] = [:]
    /// Every known member id in arrival order (deterministic iteration).
    private var order: [String] = []
    /// Alive and suspect members other than self, for random picks (swap-remove keeps it O(1)).
    private var active = IndexedSet()
    /// SWIM §4.3: round-robin over a shuffled list, new members inserted at random places.
    private var probeList: [String] = []
    private var probeIndex = 0
    private var probes: [UInt32: ProbeRound] = [:]
    private var relays: [UInt32: Relay] = [:]
    private var sequence: UInt32 = 0
    private var queue = BroadcastQueue()
    private var nextProbeAt: MonotonicTime
    private var nextGossipAt: MonotonicTime
    private var nextPushPullAt: MonotonicTime
    private var nextJoinAt: MonotonicTime?
    private var nextReclaimAt: MonotonicTime
    private var nextReconnectAt: MonotonicTime
    /// Members declared dead (not left) and still remembered: reconnect candidates.
    private var dead = IndexedSet()
    private var leaving = false
    private var started = false
    /// Members currently suspected (few; only `min` and sorted walks over it).
    private var suspectIDs: Set<String> = []
    /// Members declared dead recently, oldest first, for gossip to the dead.
    private var recentlyDead: [(id: String, at: MonotonicTime)] = []

    /// Most indirect probes this member relays for others at once.
    public static let maxRelays = 1024
    /// Dead members keep receiving gossip this long, so a falsely declared one learns it
    /// and refutes (as memberlist's "gossip to the dead").
    public static let gossipToTheDead: Duration = .seconds(30)

    /// - Parameter knownMembers: members known from the start without gossiping about them
    ///   (the simulator's bootstrapped clusters); a node normally passes none and joins.
    public init(
        myself: Member, seeds: [String], settings: MembershipSettings, now: MonotonicTime, knownMembers: [Member] = []
    ) {
        self.settings = settings
        var me = myself
        me.status = .alive
        self.myself = me
        self.seeds = seeds.filter { $0 != myself.peerAddress }
        nextProbeAt = now
        nextGossipAt = now
        nextPushPullAt = now + settings.pushPullInterval
        nextReclaimAt = now + settings.deadMemberRetention
        nextReconnectAt = now + settings.reconnectInterval
        nextDeadline = now
        for m in knownMembers
        where m.nodeID != me.nodeID && table[m.nodeID] == nil && table.count < settings.maxMembers - 1 {
            var m = m
            m.status = .alive
            table[m.nodeID] = Entry(member: m, lastContact: nil, changedAt: now, recordIncarnation: m.incarnation)
            order.append(m.nodeID)
            active.insert(m.nodeID)
        }
    }

    // MARK: - Views

    /// Every known member, self first, then in the order they were learned.
    public var members: [Member] {
        [myself] + order.compactMap { table[$0]?.member }
    }

    public func member(_ nodeID: String) -> Member? {
        nodeID == myself.nodeID ? myself : table[nodeID]?.member
    }

    /// When a message from this member was last received (nil for self or never).
    public func lastContact(of nodeID: String) -> MonotonicTime? { table[nodeID]?.lastContact }

    /// Lifeguard's local health multiplier: 1 when healthy, up to `maxLocalHealth`.
    public var localHealth: Int { localHealthScore + 1 }

    /// Members believed alive or suspect, self included.
    public var activeCount: Int { active.count + 1 }

    /// True once a seed answered (or immediately without seeds).
    public var hasJoined: Bool { nextJoinAt == nil }

    // MARK: - Events

    /// Begins probing and, when seeds were given, joins through them.
    public mutating func start<R: RandomNumberGenerator>(now: MonotonicTime, rng: inout R) -> [Directive] {
        started = true
        var out: [Directive] = [.persistIncarnation(myself.incarnation)]
        nextProbeAt = now + settings.probeInterval.scaled(by: Double.random(in: 0..<1, using: &rng))
        nextGossipAt = now + settings.gossipInterval
        nextPushPullAt = now + pushPullPeriod.scaled(by: Double.random(in: 0.5..<1.5, using: &rng))
        if !seeds.isEmpty {
            out += joinThroughSeeds(now: now)
        }
        queue.enqueue(.alive(myself), size: GossipCodec.encodedSize(.alive(myself)))
        recomputeDeadline()
        return out
    }

    /// Runs every timer due at `now`: probes, their timeouts, suspicion timeouts, gossip,
    /// push-pull, join retries and reclaim of long-dead members.
    public mutating func tick<R: RandomNumberGenerator>(now: MonotonicTime, rng: inout R) -> [Directive] {
        guard started else { return [] }
        var out: [Directive] = []
        expireRelays(now: now, into: &out)
        expireProbes(now: now, rng: &rng, into: &out)
        expireSuspicions(now: now, into: &out)
        if !leaving, now >= nextProbeAt {
            startProbe(now: now, rng: &rng, into: &out)
            nextProbeAt = now + settings.probeInterval.scaled(by: Double(localHealth))
        }
        if now >= nextGossipAt {
            gossip(now: now, rng: &rng, into: &out)
            nextGossipAt = now + settings.gossipInterval
        }
        if !leaving, now >= nextPushPullAt {
            if let peer = randomActive(excluding: [], rng: &rng), let e = table[peer] {
                out.append(.pushPull(fullState(isJoin: false), to: e.member.peerAddress))
                stats.pushPullsStarted += 1
            }
            nextPushPullAt = now + pushPullPeriod
        }
        if !leaving, let at = nextJoinAt, now >= at {
            out += joinThroughSeeds(now: now)
        } else if !leaving, nextJoinAt == nil, active.count == 0, !seeds.isEmpty {
            // Alone after having joined (everyone else dead or partitioned away): ask the
            // seeds again after a pause, so the cluster heals without an operator.
            nextJoinAt = now + settings.joinRetryInterval
        }
        if !leaving, now >= nextReconnectAt {
            // After a partition heals, each side believes the other dead and nothing else
            // would bring them back: a push-pull with one dead member lets it refute (its
            // reply carries the refutation), as Serf's reconnect does.
            if dead.count > 0, let e = table[dead.elements[Int.random(in: 0..<dead.count, using: &rng)]] {
                out.append(.pushPull(fullState(isJoin: false), to: e.member.peerAddress))
                stats.reconnectAttempts += 1
            }
            nextReconnectAt = now + settings.reconnectInterval
        }
        if now >= nextReclaimAt {
            reclaim(now: now)
            nextReclaimAt = now + settings.deadMemberRetention.scaled(by: 0.1)
        }
        recomputeDeadline()
        return out
    }

    /// Handles one authenticated, decoded datagram.
    public mutating func receive<R: RandomNumberGenerator>(
        _ packet: Packet, now: MonotonicTime, rng: inout R
    ) -> [Directive] {
        guard packet.sender != myself.nodeID else {
            stats.packetsFromSelf += 1
            return []
        }
        var out: [Directive] = []
        stats.packetsReceived += 1
        if var e = table[packet.sender] {
            e.lastContact = now
            table[packet.sender] = e
        }
        for update in packet.gossip {
            apply(update, now: now, rng: &rng, into: &out)
        }
        if let probe = packet.probe {
            handle(probe, from: packet, now: now, into: &out)
        }
        recomputeDeadline()
        return out
    }

    /// The receiving side of a push-pull: merges the peer's state and returns ours.
    public mutating func receivePushPull<R: RandomNumberGenerator>(
        _ state: PushPullState, now: MonotonicTime, rng: inout R
    ) -> (reply: PushPullState, directives: [Directive]) {
        var out: [Directive] = []
        merge(state, now: now, rng: &rng, into: &out)
        recomputeDeadline()
        return (fullState(isJoin: false), out)
    }

    /// The peer answered our push-pull (a join or a periodic exchange).
    public mutating func pushPullReplied<R: RandomNumberGenerator>(
        _ state: PushPullState, from address: String, now: MonotonicTime, rng: inout R
    ) -> [Directive] {
        var out: [Directive] = []
        merge(state, now: now, rng: &rng, into: &out)
        if nextJoinAt != nil {
            nextJoinAt = nil
            stats.joins += 1
        }
        recomputeDeadline()
        return out
    }

    /// A push-pull could not complete (connect, timeout, authentication, decoding).
    public mutating func pushPullFailed(address: String, now: MonotonicTime) -> [Directive] {
        stats.pushPullsFailed += 1
        recomputeDeadline()
        return []
    }

    /// Graceful leave: announce it at a higher incarnation and stop probing. The shell
    /// keeps calling `tick` for `settings.leavePropagation` so the news spreads.
    public mutating func leave(now: MonotonicTime) -> [Directive] {
        guard !leaving else { return [] }
        leaving = true
        myself.incarnation = myself.incarnation.next
        let update = GossipUpdate.left(nodeID: myself.nodeID, incarnation: myself.incarnation)
        queue.enqueue(update, size: GossipCodec.encodedSize(update), front: true)
        probes.removeAll()
        nextGossipAt = now
        recomputeDeadline()
        return [.persistIncarnation(myself.incarnation)]
    }

    /// Changes this member's own record (labels, addresses, layout version seen) and
    /// announces it at a higher incarnation.
    public mutating func updateMyself(now: MonotonicTime, _ change: (inout Member) -> Void) -> [Directive] {
        var m = myself
        change(&m)
        m.nodeID = myself.nodeID
        m.status = .alive
        m.incarnation = myself.incarnation.next
        myself = m
        queue.enqueue(.alive(myself), size: GossipCodec.encodedSize(.alive(myself)), front: true)
        recomputeDeadline()
        return [.persistIncarnation(myself.incarnation)]
    }

    // MARK: - Probing (SWIM §3, §4.3; Lifeguard §IV.A)

    private var pushPullPeriod: Duration {
        // Grows with the cluster beyond 32 members, as memberlist's pushPullScale.
        let n = Double(max(activeCount, 1))
        let scale = max(1, Int(ceil(log2(n) - 5)))
        return settings.pushPullInterval.scaled(by: Double(scale))
    }

    private func timing(for member: Member) -> LinkTiming {
        member.site == myself.site ? settings.intraSite : settings.interSite
    }

    private mutating func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    private mutating func startProbe<R: RandomNumberGenerator>(
        now: MonotonicTime, rng: inout R, into out: inout [Directive]
    ) {
        guard let target = nextProbeTarget(rng: &rng), let entry = table[target] else { return }
        let seq = nextSequence()
        let timeout = timing(for: entry.member).probeTimeout.scaled(by: Double(localHealth))
        probes[seq] = ProbeRound(
            target: target, incarnation: entry.member.incarnation, ackDeadline: now + timeout,
            endDeadline: now + timeout + timeout)
        stats.probesSent += 1
        out.append(
            .send(packet(probe: .ping(sequence: seq, target: target), buddy: target), to: entry.member.peerAddress))
    }

    /// SWIM §4.3: every member is probed once per pass over a shuffled list.
    private mutating func nextProbeTarget<R: RandomNumberGenerator>(rng: inout R) -> String? {
        for _ in 0..<2 {
            while probeIndex < probeList.count {
                let id = probeList[probeIndex]
                probeIndex += 1
                if let e = table[id], e.member.status.isActive { return id }
            }
            // End of a pass: reshuffle the members still worth probing.
            probeList = order.filter { table[$0]?.member.status.isActive == true }
            probeList.shuffle(using: &rng)
            probeIndex = 0
            if probeList.isEmpty { return nil }
        }
        return nil
    }

    private mutating func expireProbes<R: RandomNumberGenerator>(
        now: MonotonicTime, rng: inout R, into out: inout [Directive]
    ) {
        for seq in probes.keys.sorted() {
            guard var round = probes[seq] else { continue }
            if !round.indirectSent, now >= round.ackDeadline {
                // No direct ack: ask k helpers to probe it for us (SWIM §3.1).
                round.indirectSent = true
                guard let entry = table[round.target] else {
                    probes[seq] = nil
                    continue
                }
                let helpers = randomActive(
                    count: settings.indirectProbes, excluding: [round.target], aliveOnly: true, rng: &rng)
                round.expectedNacks = helpers.count
                for h in helpers {
                    guard let he = table[h] else { continue }
                    let msg = ProbeMessage.pingRequest(
                        sequence: seq, target: round.target, targetAddress: entry.member.peerAddress)
                    out.append(.send(packet(probe: msg, buddy: nil), to: he.member.peerAddress))
                    stats.indirectProbesSent += 1
                }
                probes[seq] = round
            } else if round.indirectSent, now >= round.endDeadline {
                probes[seq] = nil
                stats.probesFailed += 1
                // Lifeguard §IV.A: with helpers, only missing nacks count against our own
                // health (the target may simply be dead); without helpers, any failure does.
                if round.expectedNacks > 0 {
                    adjustHealth(by: max(0, round.expectedNacks - round.nacks))
                } else {
                    adjustHealth(by: 1)
                }
                // A failed probe of a member already suspected (by someone else) is an
                // independent confirmation (Lifeguard §IV.B; memberlist's suspectNode).
                if let e = table[round.target], e.member.status.isActive, e.member.incarnation == round.incarnation {
                    let update = GossipUpdate.suspect(
                        nodeID: round.target, incarnation: round.incarnation, from: myself.nodeID)
                    apply(update, now: now, rng: &rng, into: &out)
                }
            }
        }
    }

    private mutating func expireRelays(now: MonotonicTime, into out: inout [Directive]) {
        for seq in relays.keys.sorted() {
            guard let r = relays[seq], now >= r.deadline else { continue }
            relays[seq] = nil
            out.append(.send(packet(probe: .nack(sequence: r.originSequence), buddy: nil), to: r.originAddress))
            stats.nacksSent += 1
        }
    }

    private mutating func handle(
        _ probe: ProbeMessage, from packet: Packet, now: MonotonicTime, into out: inout [Directive]
    ) {
        switch probe {
        case .ping(let seq, let target):
            guard target == myself.nodeID else {
                stats.pingsForSomeoneElse += 1
                return
            }
            out.append(.send(self.packet(probe: .ack(sequence: seq), buddy: nil), to: packet.senderAddress))
        case .pingRequest(let seq, let target, let targetAddress):
            guard relays.count < Self.maxRelays, target != myself.nodeID else {
                if target == myself.nodeID {
                    out.append(.send(self.packet(probe: .ack(sequence: seq), buddy: nil), to: packet.senderAddress))
                }
                return
            }
            let mine = nextSequence()
            let link = table[target].map { timing(for: $0.member) } ?? settings.intraSite
            relays[mine] = Relay(
                originAddress: packet.senderAddress, originSequence: seq,
                deadline: now + link.probeTimeout.scaled(by: 0.8))
            out.append(
                .send(self.packet(probe: .ping(sequence: mine, target: target), buddy: target), to: targetAddress))
        case .ack(let seq):
            if let relay = relays.removeValue(forKey: seq) {
                out.append(
                    .send(self.packet(probe: .ack(sequence: relay.originSequence), buddy: nil), to: relay.originAddress)
                )
            } else if let round = probes.removeValue(forKey: seq) {
                adjustHealth(by: -1)
                if var e = table[round.target] {
                    e.lastContact = now
                    table[round.target] = e
                }
            }
        case .nack(let seq):
            if var round = probes[seq] {
                round.nacks += 1
                probes[seq] = round
            }
        }
    }

    private mutating func adjustHealth(by delta: Int) {
        localHealthScore = min(max(localHealthScore + delta, 0), settings.maxLocalHealth - 1)
    }

    // MARK: - Applying updates (SWIM §4.2, Lifeguard §IV.B)

    private mutating func apply<R: RandomNumberGenerator>(
        _ update: GossipUpdate, now: MonotonicTime, rng: inout R, into out: inout [Directive]
    ) {
        switch update {
        case .alive(let m):
            applyAlive(m, now: now, rng: &rng, into: &out)
        case .suspect(let id, let inc, let from):
            applySuspect(id, inc, from: from, now: now, into: &out)
        case .dead(let id, let inc, let from):
            applyDead(id, inc, status: .dead, from: from, now: now, into: &out)
        case .left(let id, let inc):
            applyDead(id, inc, status: .left, from: id, now: now, into: &out)
        }
    }

    private mutating func applyAlive<R: RandomNumberGenerator>(
        _ incoming: Member, now: MonotonicTime, rng: inout R, into out: inout [Directive]
    ) {
        var m = incoming
        m.status = .alive
        if m.nodeID == myself.nodeID {
            // Someone speaks for us with a newer or different record (an old process of
            // ours, or a replay): out-number it.
            var mine = myself
            mine.incarnation = m.incarnation
            if m.incarnation > myself.incarnation || (m.incarnation == myself.incarnation && m != mine) {
                refute(atLeast: m.incarnation, into: &out)
            }
            return
        }
        guard var e = table[m.nodeID] else {
            guard !leaving, table.count < settings.maxMembers - 1 else {
                stats.membersRefused += 1
                return
            }
            table[m.nodeID] = Entry(member: m, lastContact: nil, changedAt: now, recordIncarnation: m.incarnation)
            order.append(m.nodeID)
            active.insert(m.nodeID)
            // A newcomer joins the probe list at a random place (SWIM §4.3).
            let at = Int.random(in: probeIndex...probeList.count, using: &rng)
            probeList.insert(m.nodeID, at: at)
            out.append(.changed(MemberChange(member: m, previous: nil)))
            enqueue(.alive(m))
            return
        }
        if m.incarnation == e.member.incarnation, e.recordIncarnation < m.incarnation {
            // The accusation at this incarnation arrived before the record it accuses:
            // take the record's content, keep the status (only a higher number clears it).
            let status = e.member.status
            e.member = m
            e.member.status = status
            e.recordIncarnation = m.incarnation
            table[m.nodeID] = e
            return
        }
        guard m.incarnation > e.member.incarnation else { return }
        let previous = e.member.status
        e.member = m
        e.recordIncarnation = m.incarnation
        e.suspicion = nil
        e.changedAt = previous == .alive ? e.changedAt : now
        table[m.nodeID] = e
        suspectIDs.remove(m.nodeID)
        active.insert(m.nodeID)
        dead.remove(m.nodeID)
        if previous != .alive {
            out.append(.changed(MemberChange(member: m, previous: previous)))
        }
        enqueue(.alive(m))
    }

    private mutating func applySuspect(
        _ id: String, _ inc: Incarnation, from: String, now: MonotonicTime, into out: inout [Directive]
    ) {
        guard inc.isRefutable else {
            stats.unrefutableAccusationsIgnored += 1
            return
        }
        if id == myself.nodeID {
            if !leaving, inc >= myself.incarnation {
                // Lifeguard §IV.A: having to refute is a sign we are slow ourselves.
                adjustHealth(by: 1)
                refute(atLeast: inc, into: &out)
            }
            return
        }
        guard var e = table[id], inc >= e.member.incarnation, e.member.status.isActive else { return }
        if e.member.status == .suspect, var s = e.suspicion, inc == e.member.incarnation {
            // Lifeguard §IV.B: independent confirmations shorten the timeout.
            // Our own failed probe counts too, once (the set refuses a second one).
            guard s.confirmers.count <= s.expected, s.confirmers.insert(from).inserted else { return }
            s.deadline = s.start + s.timeout(confirmations: s.confirmers.count - 1)
            e.suspicion = s
            table[id] = e
            stats.suspicionConfirmations += 1
            enqueue(.suspect(nodeID: id, incarnation: inc, from: from))
            return
        }
        let previous = e.member.status
        e.member.incarnation = inc
        e.member.status = .suspect
        e.changedAt = now
        let link = timing(for: e.member)
        let n = Double(max(activeCount, 1))
        let minimum = settings.probeInterval.scaled(by: Double(link.suspicionMultiplier) * max(1, log10(n)))
        let maximum = minimum.scaled(by: Double(link.suspicionMaxMultiplier))
        var expected = link.suspicionMultiplier - 2
        if activeCount - 2 < expected { expected = 0 }
        var s = Suspicion(
            start: now, confirmers: [from], expected: max(expected, 0), minimum: minimum, maximum: maximum,
            deadline: now)
        s.deadline = now + s.timeout(confirmations: 0)
        e.suspicion = s
        table[id] = e
        suspectIDs.insert(id)
        stats.suspicionsStarted += 1
        if previous != .suspect {
            out.append(.changed(MemberChange(member: e.member, previous: previous)))
        }
        enqueue(.suspect(nodeID: id, incarnation: inc, from: from))
    }

    private mutating func applyDead(
        _ id: String, _ inc: Incarnation, status: MemberStatus, from: String, now: MonotonicTime,
        into out: inout [Directive]
    ) {
        guard inc.isRefutable || status == .left else {
            stats.unrefutableAccusationsIgnored += 1
            return
        }
        if id == myself.nodeID {
            if !leaving, inc >= myself.incarnation { refute(atLeast: inc, into: &out) }
            return
        }
        guard var e = table[id], inc >= e.member.incarnation, e.member.status.isActive else { return }
        let previous = e.member.status
        e.member.incarnation = inc
        e.member.status = status
        e.suspicion = nil
        e.changedAt = now
        table[id] = e
        active.remove(id)
        suspectIDs.remove(id)
        if status == .dead {
            recentlyDead.append((id, now))
            dead.insert(id)
        }
        probes = probes.filter { $0.value.target != id }
        out.append(.changed(MemberChange(member: e.member, previous: previous)))
        enqueue(status == .left ? .left(nodeID: id, incarnation: inc) : .dead(nodeID: id, incarnation: inc, from: from))
    }

    private mutating func refute(atLeast inc: Incarnation, into out: inout [Directive]) {
        let next = max(inc, myself.incarnation).next
        guard next > myself.incarnation else { return }
        myself.incarnation = next
        stats.refutations += 1
        queue.enqueue(.alive(myself), size: GossipCodec.encodedSize(.alive(myself)), front: true)
        out.append(.persistIncarnation(next))
    }

    private mutating func expireSuspicions(now: MonotonicTime, into out: inout [Directive]) {
        let due = suspectIDs.filter { id in table[id]?.suspicion.map { now >= $0.deadline } ?? true }
        for id in due.sorted() {
            guard let e = table[id] else { continue }
            stats.declaredDead += 1
            applyDead(id, e.member.incarnation, status: .dead, from: myself.nodeID, now: now, into: &out)
        }
    }

    private mutating func reclaim(now: MonotonicTime) {
        let gone = order.filter { id in
            guard let e = table[id] else { return true }
            return !e.member.status.isActive && now - e.changedAt >= settings.deadMemberRetention
        }
        guard !gone.isEmpty else { return }
        let set = Set(gone)
        for id in gone {
            table[id] = nil
            dead.remove(id)
        }
        order.removeAll { set.contains($0) }
        stats.membersReclaimed += gone.count
    }

    // MARK: - Push-pull and join (memberlist's full-state sync)

    private func fullState(isJoin: Bool) -> PushPullState {
        PushPullState(sender: myself.nodeID, isJoin: isJoin, members: members)
    }

    private mutating func joinThroughSeeds(now: MonotonicTime) -> [Directive] {
        nextJoinAt = now + settings.joinRetryInterval
        stats.joinAttempts += 1
        let state = fullState(isJoin: true)
        return seeds.map { .pushPull(state, to: $0) }
    }

    private mutating func merge<R: RandomNumberGenerator>(
        _ state: PushPullState, now: MonotonicTime, rng: inout R, into out: inout [Directive]
    ) {
        stats.pushPullsMerged += 1
        if var e = table[state.sender] {
            e.lastContact = now
            table[state.sender] = e
        }
        for m in state.members.prefix(settings.maxMembers) {
            switch m.status {
            case .alive:
                applyAlive(m, now: now, rng: &rng, into: &out)
            case .suspect, .dead:
                // A peer's verdict is only a suspicion here: we give the member its own
                // chance to refute (as memberlist does).
                if table[m.nodeID] == nil, m.nodeID != myself.nodeID { continue }
                applySuspect(m.nodeID, m.incarnation, from: state.sender, now: now, into: &out)
            case .left:
                applyDead(m.nodeID, m.incarnation, status: .left, from: m.nodeID, now: now, into: &out)
            }
        }
    }

    // MARK: - Dissemination (SWIM §4.1)

    private var retransmitLimit: Int {
        settings.retransmitMultiplier * max(1, Int(ceil(log10(Double(activeCount + 1)))))
    }

    private mutating func enqueue(_ update: GossipUpdate) {
        queue.enqueue(update, size: GossipCodec.encodedSize(update))
    }

    /// A datagram with `probe` and as much queued gossip as fits; when pinging a suspect,
    /// its suspicion goes first so it can refute (Lifeguard §IV.C, "buddy system").
    private mutating func packet(probe: ProbeMessage?, buddy: String?) -> Packet {
        var p = Packet(sender: myself.nodeID, senderAddress: myself.peerAddress, probe: probe)
        var budget =
            settings.maxPacketBytes - Keyring.overhead
            - GossipCodec.headerSize(sender: p.sender, senderAddress: p.senderAddress, probe: probe)
        if let buddy, let e = table[buddy], e.member.status == .suspect {
            let u = GossipUpdate.suspect(nodeID: buddy, incarnation: e.member.incarnation, from: myself.nodeID)
            let size = GossipCodec.encodedSize(u)
            if size <= budget {
                p.gossip.append(u)
                budget -= size
            }
        }
        p.gossip += queue.take(
            budget: budget, limit: retransmitLimit, maxCount: GossipLimits.maxUpdatesPerPacket - p.gossip.count)
        stats.packetsSent += 1
        return p
    }

    private mutating func gossip<R: RandomNumberGenerator>(
        now: MonotonicTime, rng: inout R, into out: inout [Directive]
    ) {
        guard !queue.isEmpty, settings.gossipFanout > 0 else { return }
        var targets = randomActive(count: settings.gossipFanout, excluding: [], aliveOnly: false, rng: &rng)
        recentlyDead.removeAll { now - $0.at >= Self.gossipToTheDead || table[$0.id]?.member.status != .dead }
        if !leaving {
            // Recently dead members keep hearing gossip for a while (with the same odds as
            // any member), so a false verdict reaches its subject, which then refutes.
            for (id, _) in recentlyDead.suffix(64)
            where Int.random(in: 0..<max(active.count, 1), using: &rng) < settings.gossipFanout {
                targets.append(id)
            }
        }
        for id in targets {
            guard !queue.isEmpty, let e = table[id] else { break }
            let p = packet(probe: nil, buddy: nil)
            guard !p.gossip.isEmpty else { break }
            out.append(.send(p, to: e.member.peerAddress))
            stats.gossipPacketsSent += 1
        }
    }

    // MARK: - Random picks and deadlines

    private func randomActive<R: RandomNumberGenerator>(excluding: Set<String>, rng: inout R) -> String? {
        guard active.count > 0 else { return nil }
        for _ in 0..<8 {
            let id = active.elements[Int.random(in: 0..<active.count, using: &rng)]
            if !excluding.contains(id) { return id }
        }
        return nil
    }

    /// Up to `count` distinct active members, uniformly at random.
    private func randomActive<R: RandomNumberGenerator>(
        count: Int, excluding: Set<String>, aliveOnly: Bool, rng: inout R
    ) -> [String] {
        var picked: [String] = []
        var seen = excluding
        let n = active.count
        guard n > 0, count > 0 else { return [] }
        // Bounded rejection sampling: enough tries for the sparse case, never a loop
        // that depends on the input for its termination.
        var tries = 0
        while picked.count < count, tries < 4 * count + 16, seen.count < n + excluding.count {
            tries += 1
            let id = active.elements[Int.random(in: 0..<n, using: &rng)]
            guard seen.insert(id).inserted else { continue }
            if aliveOnly, table[id]?.member.status != .alive { continue }
            picked.append(id)
        }
        return picked
    }

    private mutating func recomputeDeadline() {
        var d = nextGossipAt
        if !leaving {
            d = min(d, nextProbeAt)
            d = min(d, nextPushPullAt)
            d = min(d, nextReconnectAt)
            if let j = nextJoinAt { d = min(d, j) }
        }
        d = min(d, nextReclaimAt)
        for r in probes.values { d = min(d, r.indirectSent ? r.endDeadline : r.ackDeadline) }
        for r in relays.values { d = min(d, r.deadline) }
        for id in suspectIDs { if let s = table[id]?.suspicion { d = min(d, s.deadline) } }
        nextDeadline = d
    }
}

// MARK: - Counters

/// Counters for logs, metrics and the simulator's report.
public struct MembershipStats: Sendable, Hashable {
    public var packetsSent = 0
    public var packetsReceived = 0
    public var packetsFromSelf = 0
    public var probesSent = 0
    public var probesFailed = 0
    public var indirectProbesSent = 0
    public var nacksSent = 0
    public var pingsForSomeoneElse = 0
    public var gossipPacketsSent = 0
    public var suspicionsStarted = 0
    public var suspicionConfirmations = 0
    public var declaredDead = 0
    public var refutations = 0
    public var unrefutableAccusationsIgnored = 0
    public var membersRefused = 0
    public var membersReclaimed = 0
    public var pushPullsStarted = 0
    public var pushPullsMerged = 0
    public var pushPullsFailed = 0
    public var reconnectAttempts = 0
    public var joinAttempts = 0
    public var joins = 0
}

// MARK: - Internal records

private struct Entry: Sendable {
    var member: Member
    var lastContact: MonotonicTime?
    var changedAt: MonotonicTime
    var suspicion: Suspicion?
    /// Incarnation of the record's content (addresses, labels, layout version): an
    /// accusation can raise `member.incarnation` before the matching `alive` arrives.
    var recordIncarnation: Incarnation
}

/// Lifeguard §IV.B: the timeout starts at `maximum` and falls logarithmically to
/// `minimum` as `expected` independent confirmations arrive.
private struct Suspicion: Sendable {
    var start: MonotonicTime
    var confirmers: Set<String>
    var expected: Int
    var minimum: Duration
    var maximum: Duration
    var deadline: MonotonicTime

    func timeout(confirmations c: Int) -> Duration {
        guard expected >= 1 else { return minimum }
        let fraction = log(Double(c) + 1) / log(Double(expected) + 1)
        let span = Double((maximum - minimum).nanoseconds)
        let t = Double(maximum.nanoseconds) - fraction * span
        return .nanoseconds(max(Int64(t), minimum.nanoseconds))
    }
}

private struct ProbeRound: Sendable {
    var target: String
    var incarnation: Incarnation
    var ackDeadline: MonotonicTime
    var endDeadline: MonotonicTime
    var indirectSent = false
    var expectedNacks = 0
    var nacks = 0
}

private struct Relay: Sendable {
    var originAddress: String
    var originSequence: UInt32
    var deadline: MonotonicTime
}

/// Member ids with O(1) insert, remove and uniform random pick.
struct IndexedSet: Sendable {
    private(set) var elements: [String] = []
    private var index: [String: Int] = [:]

    var count: Int { elements.count }

    mutating func insert(_ id: String) {
        guard index[id] == nil else { return }
        index[id] = elements.count
        elements.append(id)
    }

    mutating func remove(_ id: String) {
        guard let i = index.removeValue(forKey: id) else { return }
        let last = elements.removeLast()
        if i < elements.count {
            elements[i] = last
            index[last] = i
        }
    }
}

/// Updates waiting to be piggybacked, one per member (a newer update about a member
/// replaces the older one), least-sent first.
///
/// The queue order (least-sent, then newest) is kept in a sorted array of small keys, so
/// `take` walks it from the front instead of copying and sorting every item per packet.
struct BroadcastQueue: Sendable {
    private struct Item: Sendable {
        var update: GossipUpdate
        var size: Int
        var transmits: Int
        var serial: UInt64
    }

    /// Position of an item in the queue order; serials are unique.
    private struct Key: Sendable {
        var transmits: Int
        var serial: UInt64
        var size: Int
        var subject: String

        func precedes(_ other: Key) -> Bool {
            transmits != other.transmits ? transmits < other.transmits : serial > other.serial
        }
    }

    private var items: [String: Item] = [:]
    /// Every item's key, sorted by `precedes`.
    private var order: [Key] = []
    private var serial: UInt64 = 0
    /// Most queued updates; the most-sent ones are dropped first beyond it.
    static let capacity = 4096

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }

    /// A member's record (`alive`, `left`) and the accusation against it (`suspect`,
    /// `dead`) are queued side by side: an accusation must not push the record it accuses
    /// out of the queue, or members that hear only the accusation learn the incarnation
    /// without the record. Node ids never contain `#`.
    private static func slot(_ update: GossipUpdate) -> String {
        switch update {
        case .suspect, .dead: update.subject + "#accusation"
        case .alive, .left: update.subject
        }
    }

    private mutating func remove(slot: String) {
        guard let old = items.removeValue(forKey: slot) else { return }
        let at = lowerBound(Key(transmits: old.transmits, serial: old.serial, size: old.size, subject: slot))
        if at < order.count, order[at].serial == old.serial { order.remove(at: at) }
    }

    mutating func enqueue(_ update: GossipUpdate, size: Int, front: Bool = false) {
        serial += 1
        let subject = Self.slot(update)
        switch update {
        case .alive(let m):
            // An accusation at a lower incarnation is answered by this record.
            if let a = items[m.nodeID + "#accusation"], a.update.incarnation < m.incarnation {
                remove(slot: m.nodeID + "#accusation")
            }
        case .left(let id, _):
            remove(slot: id + "#accusation")
        case .suspect(let id, let inc, _), .dead(let id, let inc, _):
            // An older record is superseded by the accusation's incarnation.
            if let r = items[id], r.update.incarnation < inc { remove(slot: id) }
        }
        remove(slot: subject)
        let item = Item(update: update, size: size, transmits: front ? -1 : 0, serial: serial)
        items[subject] = item
        let key = Key(transmits: item.transmits, serial: serial, size: size, subject: subject)
        order.insert(key, at: lowerBound(key))
        if items.count > Self.capacity, let victim = order.popLast() {
            items[victim.subject] = nil
        }
    }

    /// Removes and returns updates fitting in `budget` bytes, least-sent and newest first;
    /// each taken update counts one transmission and leaves after `limit` of them.
    mutating func take(budget: Int, limit: Int, maxCount: Int) -> [GossipUpdate] {
        guard !items.isEmpty, budget > 0, maxCount > 0 else { return [] }
        var left = budget
        var taken: [GossipUpdate] = []
        var kept: [Key] = []
        kept.reserveCapacity(order.count)
        var bumped: [Key] = []
        var i = 0
        while i < order.count, taken.count < maxCount {
            let key = order[i]
            i += 1
            guard key.size <= left else {
                kept.append(key)
                continue
            }
            guard let item = items[key.subject] else { continue }
            left -= key.size
            taken.append(item.update)
            if item.transmits + 1 >= limit {
                items[key.subject] = nil
            } else {
                let transmits = max(item.transmits, 0) + 1
                items[key.subject]?.transmits = transmits
                bumped.append(Key(transmits: transmits, serial: key.serial, size: key.size, subject: key.subject))
            }
        }
        guard !taken.isEmpty else { return [] }
        kept.append(contentsOf: order[i...])
        bumped.sort { $0.precedes($1) }
        // Merge the two sorted runs.
        var merged: [Key] = []
        merged.reserveCapacity(kept.count + bumped.count)
        var a = 0
        var b = 0
        while a < kept.count || b < bumped.count {
            if b == bumped.count || (a < kept.count && kept[a].precedes(bumped[b])) {
                merged.append(kept[a])
                a += 1
            } else {
                merged.append(bumped[b])
                b += 1
            }
        }
        order = merged
        return taken
    }

    /// First position whose key does not precede `key`.
    private func lowerBound(_ key: Key) -> Int {
        var low = 0
        var high = order.count
        while low < high {
            let mid = (low + high) / 2
            if order[mid].precedes(key) { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
