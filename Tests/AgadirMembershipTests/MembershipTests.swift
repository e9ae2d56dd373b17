import AgadirCore
import AgadirMembership
import AgadirTestSupport
import Testing

// MARK: - Fixtures

private func member(_ id: String, site: String = "s1", incarnation: UInt64 = 0) -> Member {
    Member(
        nodeID: id, site: site, clientAddress: "127.0.0.1:\(id.hashValue & 0x3fff + 1000)",
        peerAddress: "peer-\(id)", incarnation: Incarnation(incarnation) ?? .zero)
}

private func at(_ seconds: Double) -> MonotonicTime { MonotonicTime(nanoseconds: Int64(seconds * 1e9)) }

private extension Array where Element == Directive {
    var sends: [(packet: Packet, to: String)] {
        compactMap { if case .send(let p, let to) = $0 { (p, to) } else { nil } }
    }
    var changes: [MemberChange] {
        compactMap { if case .changed(let c) = $0 { c } else { nil } }
    }
    var pushPulls: [(state: PushPullState, to: String)] {
        compactMap { if case .pushPull(let s, let to) = $0 { (s, to) } else { nil } }
    }
    var persisted: [Incarnation] {
        compactMap { if case .persistIncarnation(let i) = $0 { i } else { nil } }
    }
}

/// A started instance "a" that already knows `others`, with deterministic randomness.
private struct Node {
    var m: Membership
    var rng = SplitMix64(seed: 42)
    var now = at(0)

    init(_ me: Member = member("a"), knows others: [Member], settings: MembershipSettings = .lan, seeds: [String] = [])
    {
        m = Membership(myself: me, seeds: seeds, settings: settings, now: at(0), knownMembers: others)
        _ = m.start(now: now, rng: &rng)
    }

    mutating func advance(to t: Double) -> [Directive] {
        var out: [Directive] = []
        let end = at(t)
        // Bounded: every tick moves the clock to the next deadline.
        for _ in 0..<100_000 {
            guard m.nextDeadline <= end else { break }
            now = max(now, m.nextDeadline)
            out += m.tick(now: now, rng: &rng)
        }
        now = end
        out += m.tick(now: now, rng: &rng)
        return out
    }

    mutating func receive(_ p: Packet) -> [Directive] { m.receive(p, now: now, rng: &rng) }
}

private func packet(from id: String, _ probe: ProbeMessage? = nil, gossip: [GossipUpdate] = []) -> Packet {
    Packet(sender: id, senderAddress: "peer-\(id)", probe: probe, gossip: gossip)
}

// MARK: - Probing

@Suite struct MembershipProbeTests {
    @Test func onPing_forMe_acksToSenderAddress() {
        var n = Node(knows: [member("b")])
        let out = n.receive(packet(from: "b", .ping(sequence: 7, target: "a")))
        let acks = out.sends.filter { $0.packet.probe == .ack(sequence: 7) }
        #expect(acks.count == 1)
        #expect(acks.first?.to == "peer-b")
    }

    @Test func onPing_forSomeoneElse_doesNotAck() {
        var n = Node(knows: [member("b")])
        let out = n.receive(packet(from: "b", .ping(sequence: 7, target: "z")))
        #expect(out.sends.isEmpty)
        #expect(n.m.stats.pingsForSomeoneElse == 1)
    }

    @Test func probeTick_pingsEveryMemberOncePerRound() {
        var n = Node(knows: ["b", "c", "d"].map { member($0) })
        var targets: [String] = []
        for step in 1...3 {
            let out = n.advance(to: Double(step) + 0.01)
            for s in out.sends {
                if case .ping(let seq, let target) = s.packet.probe {
                    targets.append(target)
                    _ = n.receive(packet(from: target, .ack(sequence: seq)))
                }
            }
        }
        #expect(Set(targets) == ["b", "c", "d"])
        #expect(targets.count == 3)
    }

    @Test func missedAck_asksHelpers_thenSuspects() {
        var n = Node(knows: ["b", "c", "d", "e"].map { member($0) })
        var target: String?
        var pingRequests: [(Packet, String)] = []
        var suspected: [MemberChange] = []
        for _ in 0..<400 where suspected.isEmpty {
            let out = n.advance(to: n.now.seconds + 0.05)
            for s in out.sends {
                if case .ping(_, let t) = s.packet.probe, target == nil { target = t }
                if case .pingRequest = s.packet.probe { pingRequests.append((s.packet, s.to)) }
            }
            suspected += out.changes.filter { $0.member.status == .suspect }
        }
        #expect(target != nil)
        #expect(pingRequests.count == 3)
        #expect(!pingRequests.contains { $0.1 == "peer-\(target ?? "")" })
        #expect(suspected.first?.member.nodeID == target)
        #expect(suspected.first?.previous == .alive)
    }

    @Test func ack_afterPing_keepsMemberAlive_andLowersLocalHealth() {
        var n = Node(knows: [member("b")])
        // Fail two probes (no helpers: health rises), then answer.
        var answered = false
        for _ in 0..<200 {
            let out = n.advance(to: n.now.seconds + 0.05)
            if n.m.localHealth >= 2, !answered {
                for s in out.sends {
                    if case .ping(let seq, _) = s.packet.probe {
                        _ = n.receive(packet(from: "b", .ack(sequence: seq)))
                        answered = true
                    }
                }
            }
            if answered { break }
        }
        #expect(answered)
        #expect(n.m.localHealth >= 1)
    }

    @Test func interSiteTarget_usesWanProbeTimeout() {
        var n = Node(knows: [member("far", site: "s2")])
        var pingAt: Double?
        var requestAt: Double?
        for _ in 0..<400 where requestAt == nil {
            let out = n.advance(to: n.now.seconds + 0.05)
            for s in out.sends {
                if case .ping = s.packet.probe, pingAt == nil { pingAt = n.now.seconds }
            }
            // Only one member: no helpers, so the probe ends without indirect requests;
            // the suspicion shows when the WAN round ended.
            if out.changes.contains(where: { $0.member.status == .suspect }) { requestAt = n.now.seconds }
        }
        let wait = (requestAt ?? 0) - (pingAt ?? 0)
        // LAN would end the round after 2 × 0.5 s; WAN after 2 × 3 s.
        #expect(wait >= 5.9)
    }
}

// MARK: - Indirect probes (SWIM §3.1, Lifeguard nacks)

@Suite struct MembershipRelayTests {
    @Test func pingRequest_relaysPing_andForwardsAckWithOriginSequence() {
        var n = Node(knows: [member("b"), member("c")])
        let out = n.receive(packet(from: "b", .pingRequest(sequence: 99, target: "c", targetAddress: "peer-c")))
        let ping = out.sends.first { if case .ping(_, "c") = $0.packet.probe { true } else { false } }
        #expect(ping?.to == "peer-c")
        guard case .ping(let mine, _) = ping?.packet.probe else {
            Issue.record("no relayed ping")
            return
        }
        let back = n.receive(packet(from: "c", .ack(sequence: mine)))
        #expect(back.sends.contains { $0.packet.probe == .ack(sequence: 99) && $0.to == "peer-b" })
    }

    @Test func pingRequest_withoutAnswer_sendsNack() {
        var n = Node(knows: [member("b"), member("c")])
        _ = n.receive(packet(from: "b", .pingRequest(sequence: 5, target: "c", targetAddress: "peer-c")))
        let out = n.advance(to: 0.45)
        #expect(out.sends.contains { $0.packet.probe == .nack(sequence: 5) && $0.to == "peer-b" })
    }
}

// MARK: - Suspicion, refutation, incarnations

@Suite struct MembershipSuspicionTests {
    @Test func suspicion_expires_toDead() {
        var n = Node(knows: ["b", "c"].map { member($0) })
        _ = n.receive(packet(from: "c", gossip: [.suspect(nodeID: "b", incarnation: .zero, from: "c")]))
        #expect(n.m.member("b")?.status == .suspect)
        // 3 members: min = α × max(1, log10 3) × 1 s = 3 s, max = 6 × 3 s; k = α − 2 = 1
        // confirmation, which our own failed probe of b gives: the verdict comes 3 s after
        // the suspicion or at that confirmation, whichever is later.
        var dead: Double?
        for _ in 0..<200 where dead == nil {
            let out = n.advance(to: n.now.seconds + 0.1)
            // Keep c alive by acking whatever is sent to it.
            for s in out.sends where s.to == "peer-c" {
                if case .ping(let seq, _) = s.packet.probe { _ = n.receive(packet(from: "c", .ack(sequence: seq))) }
            }
            if out.changes.contains(where: { $0.member.nodeID == "b" && $0.member.status == .dead }) {
                dead = n.now.seconds
            }
        }
        #expect(dead != nil)
        #expect((dead ?? 0) >= 2.9 && (dead ?? 0) <= 4.5)
    }

    @Test func confirmations_shortenSuspicion() {
        let others = (0..<10).map { member("m\($0)") }
        func timeToDead(confirmers: Int) -> Double {
            var n = Node(knows: others)
            _ = n.receive(packet(from: "m1", gossip: [.suspect(nodeID: "m0", incarnation: .zero, from: "m1")]))
            for i in 0..<confirmers {
                _ = n.receive(
                    packet(from: "m\(i + 2)", gossip: [.suspect(nodeID: "m0", incarnation: .zero, from: "m\(i + 2)")]))
            }
            for _ in 0..<2000 {
                let out = n.advance(to: n.now.seconds + 0.1)
                if out.changes.contains(where: { $0.member.nodeID == "m0" && $0.member.status == .dead }) {
                    return n.now.seconds
                }
                // Every probe of ours succeeds: only the confirmations given count.
                for s in out.sends {
                    if case .ping(let seq, let target) = s.packet.probe {
                        _ = n.receive(packet(from: target, .ack(sequence: seq)))
                    }
                }
            }
            return .infinity
        }
        // 11 members: min = 3 × log10(11) × 1 s ≈ 3.12 s, max = 6 × min ≈ 18.7 s, k = 1.
        let none = timeToDead(confirmers: 0)
        let one = timeToDead(confirmers: 1)
        let two = timeToDead(confirmers: 2)
        #expect(none > 18.5 && none < 19.2)
        #expect(one < none && one == two)
        #expect(two > 3.0 && two < 3.5)
    }

    @Test func ownFailedProbeOfASuspect_confirmsTheSuspicion() {
        var n = Node(knows: (0..<10).map { member("m\($0)") })
        _ = n.receive(packet(from: "m1", gossip: [.suspect(nodeID: "m0", incarnation: .zero, from: "m1")]))
        // Nobody answers anything: our own probe of m0 fails and counts as a confirmation.
        for _ in 0..<200 where n.m.stats.suspicionConfirmations == 0 { _ = n.advance(to: n.now.seconds + 0.1) }
        #expect(n.m.stats.suspicionConfirmations >= 1)
    }

    @Test func suspicionOfMyself_isRefuted_withHigherIncarnation() {
        var n = Node(knows: [member("b")])
        let out = n.receive(packet(from: "b", gossip: [.suspect(nodeID: "a", incarnation: .zero, from: "b")]))
        #expect(n.m.myself.incarnation == Incarnation(1))
        #expect(out.persisted == [Incarnation(1)!])
        #expect(n.m.stats.refutations == 1)
        // The refutation travels on the next datagram.
        let reply = n.receive(packet(from: "b", .ping(sequence: 1, target: "a")))
        let gossip = reply.sends.flatMap { $0.packet.gossip }
        #expect(
            gossip.contains {
                if case .alive(let m) = $0 { m.nodeID == "a" && m.incarnation == Incarnation(1) } else { false }
            })
    }

    @Test func accusationAtCeiling_cannotEvict() {
        var n = Node(knows: [member("b")])
        _ = n.receive(
            packet(
                from: "b",
                gossip: [
                    .dead(nodeID: "a", incarnation: .ceiling, from: "b"),
                    .suspect(nodeID: "b", incarnation: .ceiling, from: "x"),
                    .dead(nodeID: "b", incarnation: .ceiling, from: "x"),
                ]))
        #expect(n.m.member("b")?.status == .alive)
        #expect(n.m.myself.incarnation == .zero)
        #expect(n.m.stats.unrefutableAccusationsIgnored == 3)
        #expect(Incarnation(UInt64.max) == nil)
        #expect(Incarnation.ceiling.next == .ceiling)
    }

    @Test func accusationJustBelowCeiling_isRefutable() {
        var n = Node(knows: [member("b")])
        let below = Incarnation(Incarnation.ceiling.value - 1)!
        _ = n.receive(packet(from: "b", gossip: [.suspect(nodeID: "a", incarnation: below, from: "b")]))
        #expect(n.m.myself.incarnation == .ceiling)
    }

    @Test func dead_isRevivedOnlyByHigherIncarnation() {
        var n = Node(knows: [member("b", incarnation: 3)])
        _ = n.receive(packet(from: "c", gossip: [.dead(nodeID: "b", incarnation: Incarnation(3)!, from: "c")]))
        #expect(n.m.member("b")?.status == .dead)
        _ = n.receive(packet(from: "c", gossip: [.alive(member("b", incarnation: 3))]))
        #expect(n.m.member("b")?.status == .dead)
        let out = n.receive(packet(from: "b", gossip: [.alive(member("b", incarnation: 4))]))
        #expect(n.m.member("b")?.status == .alive)
        #expect(out.changes.first?.previous == .dead)
    }

    @Test func aliveAtTheAccusedIncarnation_bringsTheRecordButKeepsTheSuspicion() {
        var n = Node(knows: [member("b")])
        _ = n.receive(packet(from: "c", gossip: [.suspect(nodeID: "b", incarnation: Incarnation(1)!, from: "c")]))
        var updated = member("b", incarnation: 1)
        updated.layoutVersion = 9
        _ = n.receive(packet(from: "c", gossip: [.alive(updated)]))
        #expect(n.m.member("b")?.layoutVersion == 9)
        #expect(n.m.member("b")?.status == .suspect)
    }

    @Test func staleSuspicion_isIgnored() {
        var n = Node(knows: [member("b", incarnation: 5)])
        _ = n.receive(packet(from: "c", gossip: [.suspect(nodeID: "b", incarnation: Incarnation(4)!, from: "c")]))
        #expect(n.m.member("b")?.status == .alive)
    }

    @Test func pingToSuspect_carriesItsSuspicionFirst() {
        var n = Node(knows: [member("b")])
        _ = n.receive(packet(from: "c", gossip: [.suspect(nodeID: "b", incarnation: .zero, from: "c")]))
        var first: GossipUpdate?
        for _ in 0..<100 where first == nil {
            for s in n.advance(to: n.now.seconds + 0.05).sends {
                if case .ping(_, "b") = s.packet.probe { first = s.packet.gossip.first }
            }
        }
        #expect(first == .suspect(nodeID: "b", incarnation: .zero, from: "a"))
    }
}

// MARK: - Dissemination, join, leave

@Suite struct MembershipDisseminationTests {
    @Test func newMember_isAnnounced_andGossipedAtMostRetransmitLimitTimes() {
        var n = Node(knows: (0..<9).map { member("m\($0)") })
        _ = n.receive(packet(from: "m0", gossip: [.alive(member("new"))]))
        var sent = 0
        for _ in 0..<100 {
            for s in n.advance(to: n.now.seconds + 0.2).sends {
                sent += s.packet.gossip.filter { if case .alive(let m) = $0 { m.nodeID == "new" } else { false } }.count
            }
        }
        // 11 members: limit = 4 × ceil(log10(12)) = 8.
        #expect(sent == 8)
    }

    @Test func accusation_doesNotPushTheRecordItAccusesOutOfTheQueue() {
        var n = Node(knows: (0..<9).map { member("m\($0)") })
        var updated = member("m1", incarnation: 1)
        updated.layoutVersion = 3
        _ = n.receive(packet(from: "m1", gossip: [.alive(updated)]))
        _ = n.receive(packet(from: "m2", gossip: [.suspect(nodeID: "m1", incarnation: Incarnation(1)!, from: "m2")]))
        var record = false
        var accusation = false
        for _ in 0..<10 {
            for s in n.advance(to: n.now.seconds + 0.2).sends {
                for u in s.packet.gossip {
                    if case .alive(let m) = u, m.nodeID == "m1", m.layoutVersion == 3 { record = true }
                    if case .suspect("m1", _, _) = u { accusation = true }
                }
            }
        }
        #expect(record && accusation)
    }

    @Test func packets_neverExceedTheDatagramBudget() {
        var rng = SplitMix64(seed: 9)
        var n = Node(knows: (0..<50).map { member("m\($0)") })
        for i in 0..<300 {
            var m = member("joiner-with-a-long-name-\(i)")
            m.labels = ["rack": "r\(i % 7)", "zone": String(repeating: "z", count: Int(rng.next() % 40))]
            _ = n.receive(packet(from: "m0", gossip: [.alive(m)]))
        }
        var sizes: [Int] = []
        for _ in 0..<50 {
            for s in n.advance(to: n.now.seconds + 0.2).sends {
                let size =
                    GossipCodec.headerSize(
                        sender: s.packet.sender, senderAddress: s.packet.senderAddress, probe: s.packet.probe)
                    + s.packet.gossip.map(GossipCodec.encodedSize).reduce(0, +) + Keyring.overhead
                sizes.append(size)
            }
        }
        #expect(!sizes.isEmpty)
        #expect(sizes.allSatisfy { $0 <= 1400 })
        #expect(sizes.contains { $0 > 1000 })
    }

    @Test func join_throughSeed_exchangesFullState() {
        var rng = SplitMix64(seed: 1)
        var seed = Membership(
            myself: member("s"), seeds: [], settings: .lan, now: at(0), knownMembers: [member("x"), member("y")])
        _ = seed.start(now: at(0), rng: &rng)
        var joiner = Membership(myself: member("j"), seeds: ["peer-s"], settings: .lan, now: at(0))
        let start = joiner.start(now: at(0), rng: &rng)
        let request = start.pushPulls
        #expect(request.count == 1)
        #expect(request.first?.to == "peer-s")
        #expect(request.first?.state.isJoin == true)
        guard let req = request.first?.state else { return }
        let (reply, seedOut) = seed.receivePushPull(req, now: at(0.1), rng: &rng)
        #expect(seedOut.changes.map(\.member.nodeID) == ["j"])
        let out = joiner.pushPullReplied(reply, from: "peer-s", now: at(0.1), rng: &rng)
        #expect(Set(out.changes.map(\.member.nodeID)) == ["s", "x", "y"])
        #expect(joiner.hasJoined)
        #expect(joiner.activeCount == 4)
    }

    @Test func join_retriesUntilASeedAnswers() {
        var rng = SplitMix64(seed: 1)
        var joiner = Membership(myself: member("j"), seeds: ["peer-s"], settings: .lan, now: at(0))
        var attempts = joiner.start(now: at(0), rng: &rng).pushPulls.count
        _ = joiner.pushPullFailed(address: "peer-s", now: at(0.1))
        var t = 0.1
        for _ in 0..<1000 where t < 7 {
            t = max(t + 0.01, joiner.nextDeadline.seconds)
            attempts += joiner.tick(now: at(t), rng: &rng).pushPulls.filter { $0.state.isJoin }.count
        }
        // Every 2 s: at 0, 2, 4, 6.
        #expect(attempts == 4)
        #expect(!joiner.hasJoined)
    }

    @Test func restartedMember_knownDead_refutesFromPushPull() {
        var rng = SplitMix64(seed: 3)
        var seed = Membership(
            myself: member("s"), seeds: [], settings: .lan, now: at(0), knownMembers: [member("j", incarnation: 5)])
        _ = seed.start(now: at(0), rng: &rng)
        _ = seed.receive(
            packet(from: "x", gossip: [.dead(nodeID: "j", incarnation: Incarnation(5)!, from: "x")]), now: at(1),
            rng: &rng)
        #expect(seed.member("j")?.status == .dead)
        // The restarted process lost its state and starts from incarnation 0.
        var j = Membership(myself: member("j"), seeds: ["peer-s"], settings: .lan, now: at(2))
        guard let req = j.start(now: at(2), rng: &rng).pushPulls.first?.state else {
            Issue.record("no join")
            return
        }
        let (reply, _) = seed.receivePushPull(req, now: at(2), rng: &rng)
        #expect(seed.member("j")?.status == .dead)
        let out = j.pushPullReplied(reply, from: "peer-s", now: at(2.1), rng: &rng)
        #expect(j.myself.incarnation == Incarnation(6))
        #expect(out.persisted.last == Incarnation(6))
        // Its next datagram carries the refutation, which revives it at the seed.
        let ping = j.receive(packet(from: "s", .ping(sequence: 1, target: "j")), now: at(2.2), rng: &rng)
        for s in ping.sends { _ = seed.receive(s.packet, now: at(2.3), rng: &rng) }
        #expect(seed.member("j")?.status == .alive)
        #expect(seed.member("j")?.incarnation == Incarnation(6))
    }

    @Test func leave_isGossiped_andMarksLeft() {
        var a = Node(knows: [member("b")])
        var b = Node(member("b"), knows: [member("a")])
        let persisted = a.m.leave(now: a.now).persisted
        #expect(persisted == [Incarnation(1)!])
        var got = false
        for _ in 0..<20 where !got {
            for s in a.advance(to: a.now.seconds + 0.2).sends where s.to == "peer-b" {
                _ = b.receive(s.packet)
                got = b.m.member("a")?.status == .left
            }
        }
        #expect(got)
        // A member that left is never probed again.
        let later = b.advance(to: b.now.seconds + 5).sends
        #expect(!later.contains { if case .ping(_, "a") = $0.packet.probe { true } else { false } })
    }

    @Test func updateMyself_raisesIncarnation_andSpreads() {
        var a = Node(knows: [member("b")])
        var b = Node(member("b"), knows: [member("a")])
        _ = a.m.updateMyself(now: a.now) { $0.layoutVersion = 7 }
        for _ in 0..<10 {
            for s in a.advance(to: a.now.seconds + 0.2).sends where s.to == "peer-b" { _ = b.receive(s.packet) }
        }
        #expect(b.m.member("a")?.layoutVersion == 7)
        #expect(b.m.member("a")?.incarnation == Incarnation(1))
    }
}

// MARK: - Properties

@Suite struct MembershipPropertyTests {
    /// Whatever arrives, in any order: no crash, our own record stays alive, our
    /// incarnation never decreases, never passes the ceiling, and members never exceed the bound.
    @Test func randomMessages_keepInvariants() {
        var rng = SplitMix64(seed: 2024)
        let ids = ["a", "b", "c", "d", "e", "f"]
        var settings = MembershipSettings.lan
        settings.maxMembers = 5
        var n = Node(knows: [member("b"), member("c")], settings: settings)
        var lastInc = n.m.myself.incarnation
        func inc() -> Incarnation {
            switch rng.next() % 4 {
            case 0: .ceiling
            case 1: Incarnation(rng.next() % 4)!
            default: Incarnation(rng.next() % (1 << 62))!
            }
        }
        for step in 0..<20_000 {
            let id = ids[Int(rng.next() % UInt64(ids.count))]
            let from = ids[Int(rng.next() % UInt64(ids.count))]
            let update: GossipUpdate =
                switch rng.next() % 4 {
                case 0: .alive(member(id, incarnation: inc().value))
                case 1: .suspect(nodeID: id, incarnation: inc(), from: from)
                case 2: .dead(nodeID: id, incarnation: inc(), from: from)
                default: .left(nodeID: id, incarnation: inc())
                }
            let probe: ProbeMessage? =
                switch rng.next() % 5 {
                case 0: .ping(sequence: UInt32(rng.next() % 8), target: id)
                case 1: .pingRequest(sequence: UInt32(rng.next() % 8), target: id, targetAddress: "peer-\(id)")
                case 2: .ack(sequence: UInt32(rng.next() % 8))
                case 3: .nack(sequence: UInt32(rng.next() % 8))
                default: nil
                }
            _ = n.receive(packet(from: from, probe, gossip: [update]))
            if step % 50 == 0 { _ = n.advance(to: n.now.seconds + 0.3) }
            #expect(n.m.myself.status == .alive)
            #expect(n.m.myself.incarnation >= lastInc)
            #expect(n.m.members.count <= settings.maxMembers)
            lastInc = n.m.myself.incarnation
        }
        #expect(n.m.localHealth >= 1 && n.m.localHealth <= settings.maxLocalHealth)
    }
}

@Suite struct MembershipPartitionTests {
    /// After a partition heals, each side believes the other dead; the periodic reconnect
    /// push-pull lets them refute and find each other again.
    @Test func healedPartition_reconnectsBothSides() {
        var a = Node(knows: [member("b")])
        var b = Node(member("b"), knows: [member("a")])
        _ = a.receive(packet(from: "x", gossip: [.dead(nodeID: "b", incarnation: .zero, from: "x")]))
        _ = b.receive(packet(from: "x", gossip: [.dead(nodeID: "a", incarnation: .zero, from: "x")]))
        #expect(a.m.member("b")?.status == .dead && b.m.member("a")?.status == .dead)
        var healed = false
        for _ in 0..<400 where !healed {
            let out = a.advance(to: a.now.seconds + 0.25)
            for (state, to) in out.pushPulls where to == "peer-b" {
                b.now = a.now
                let (reply, _) = b.m.receivePushPull(state, now: b.now, rng: &b.rng)
                _ = a.m.pushPullReplied(reply, from: to, now: a.now, rng: &a.rng)
            }
            for s in out.sends where s.to == "peer-b" { _ = b.receive(s.packet) }
            b.now = a.now
            healed = a.m.member("b")?.status == .alive && b.m.member("a")?.status == .alive
        }
        #expect(healed)
        #expect(a.m.stats.reconnectAttempts >= 1)
    }
}

@Suite struct MembershipSettingsTests {
    @Test func worstCaseTimeToDead_forSixMembersOnLan() {
        // 9 intervals to the first probe + 2 × 3 s WAN round + 36 s suspicion (6 × 6 × 1 s)
        // + 4 × 1 × 200 ms of gossip = 51.8 s.
        let bound = MembershipSettings.lan.worstCaseTimeToDead(members: 6)
        #expect(bound == .milliseconds(51_800))
    }

    @Test func lanAndWanPresets_validate() {
        #expect(MembershipSettings.lan.validate() == nil)
        #expect(MembershipSettings.wan.validate() == nil)
        var bad = MembershipSettings.lan
        bad.maxPacketBytes = 100
        #expect(bad.validate()?.contains("maxPacketBytes") == true)
    }
}

@Suite struct MembershipSettingsScalingTests {
    @Test func scaled_multipliesEveryDuration_andNothingElse() {
        let s = MembershipSettings.lan.scaled(by: 0.5)
        let l = MembershipSettings.lan
        #expect(s.probeInterval == .milliseconds(500))
        #expect(s.intraSite.probeTimeout == .milliseconds(250) && s.interSite.probeTimeout == .milliseconds(1500))
        #expect(s.gossipInterval == .milliseconds(100) && s.pushPullInterval == .seconds(15))
        #expect(s.joinRetryInterval == .seconds(1) && s.leavePropagation == .milliseconds(500))
        #expect(s.reconnectInterval == .seconds(15) && s.deadMemberRetention == .seconds(1800))
        #expect(s.gossipFanout == l.gossipFanout && s.maxPacketBytes == l.maxPacketBytes)
        #expect(s.intraSite.suspicionMultiplier == l.intraSite.suspicionMultiplier)
    }
}
