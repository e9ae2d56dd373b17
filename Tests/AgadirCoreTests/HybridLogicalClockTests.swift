import AgadirCore
import Testing

@Test func timestamp_packsMillisAboveA16BitLogicalCounter_andComparesByRawValue() {
    let t = HLCTimestamp(physicalMillis: 1_700_000_000_000, logical: 7)
    #expect(t.physicalMillis == 1_700_000_000_000)
    #expect(t.logical == 7)
    #expect(t.rawValue == 1_700_000_000_000 << 16 | 7)
    #expect(t < HLCTimestamp(physicalMillis: 1_700_000_000_000, logical: 8))
    let lastOfAMillisecond = HLCTimestamp(physicalMillis: 1_700_000_000_000, logical: .max)
    #expect(lastOfAMillisecond < HLCTimestamp(physicalMillis: 1_700_000_000_001, logical: 0))
    #expect(t.description == "1700000000000.7")
    #expect(HLCTimestamp(physicalMillis: .max, logical: 0).physicalMillis == HLCTimestamp.maxPhysical)
}

@Test func now_takesTheWallClock_whenItIsAhead() {
    var clock = HybridLogicalClock()
    #expect(clock.now(wallMillis: 1000) == HLCTimestamp(physicalMillis: 1000, logical: 0))
    #expect(clock.now(wallMillis: 1005) == HLCTimestamp(physicalMillis: 1005, logical: 0))
}

@Test func now_insideOneMillisecond_incrementsTheLogicalCounter() {
    var clock = HybridLogicalClock()
    for i in 0..<100 { #expect(clock.now(wallMillis: 1000) == HLCTimestamp(physicalMillis: 1000, logical: UInt16(i))) }
}

@Test func now_staysMonotonic_whenTheWallClockGoesBackwards() {
    var clock = HybridLogicalClock()
    let a = clock.now(wallMillis: 5000)
    let b = clock.now(wallMillis: 4000)
    let c = clock.now(wallMillis: 1)
    #expect(a < b && b < c)
    #expect(c == HLCTimestamp(physicalMillis: 5000, logical: 2))
}

@Test func observe_ofARemoteTimestampAhead_movesTheClockPastIt() {
    var clock = HybridLogicalClock()
    _ = clock.now(wallMillis: 1000)
    let remote = HLCTimestamp(physicalMillis: 9000, logical: 41)
    #expect(clock.observe(remote, wallMillis: 1001) == HLCTimestamp(physicalMillis: 9000, logical: 42))
    #expect(clock.now(wallMillis: 1002) == HLCTimestamp(physicalMillis: 9000, logical: 43))
    #expect(clock.now(wallMillis: 9001) == HLCTimestamp(physicalMillis: 9001, logical: 0))
}

@Test func observe_ofARemoteTimestampBehind_keepsTheLocalClock() {
    var clock = HybridLogicalClock()
    _ = clock.now(wallMillis: 5000)
    #expect(
        clock.observe(HLCTimestamp(physicalMillis: 10, logical: 3), wallMillis: 5000)
            == HLCTimestamp(physicalMillis: 5000, logical: 1))
}

@Test func logicalOverflow_borrowsTheNextMillisecond_insteadOfWrapping() {
    var clock = HybridLogicalClock(last: HLCTimestamp(physicalMillis: 1000, logical: .max - 1))
    #expect(clock.now(wallMillis: 1000) == HLCTimestamp(physicalMillis: 1000, logical: .max))
    #expect(clock.now(wallMillis: 1000) == HLCTimestamp(physicalMillis: 1001, logical: 0))
    #expect(clock.now(wallMillis: 1001) == HLCTimestamp(physicalMillis: 1001, logical: 1))
    #expect(clock.now(wallMillis: 1002) == HLCTimestamp(physicalMillis: 1002, logical: 0))
}

@Test func everyTimestamp_isStrictlyGreaterThanAllEarlierOnes_underRandomEvents() {
    var rng = SplitMix64(seed: 0x41C)
    for run in 0..<50 {
        var clock = HybridLogicalClock()
        var wall: UInt64 = 1_000_000 + rng.next() % 1000
        var latest = HLCTimestamp(rawValue: 0)
        var observedMax = HLCTimestamp(rawValue: 0)
        for step in 0..<2000 {
            switch rng.next() % 10 {
            case 0: wall -= min(wall, rng.next() % 50)  // the wall clock steps back
            case 1, 2, 3: wall += rng.next() % 3
            default: break  // many events inside one millisecond
            }
            let t: HLCTimestamp
            if rng.next() % 4 == 0 {
                // A remote timestamp near ours, sometimes with an exhausted counter.
                let physical = wall + rng.next() % 20 - min(wall, 10)
                let logical = rng.next() % 8 == 0 ? UInt16.max : UInt16(truncatingIfNeeded: rng.next() % 100)
                let remote = HLCTimestamp(physicalMillis: physical, logical: logical)
                observedMax = max(observedMax, remote)
                t = clock.observe(remote, wallMillis: wall)
            } else {
                t = clock.now(wallMillis: wall)
            }
            #expect(t > latest, "run \(run), step \(step)")
            #expect(t > observedMax, "run \(run), step \(step)")
            #expect(t.physicalMillis >= wall, "run \(run), step \(step)")
            latest = t
        }
    }
}

@Test func objectVersions_orderByTimestamp_thenByNode() {
    let t1 = HLCTimestamp(physicalMillis: 100, logical: 0)
    let t2 = HLCTimestamp(physicalMillis: 100, logical: 1)
    #expect(ObjectVersion(timestamp: t1, node: 9) < ObjectVersion(timestamp: t2, node: 1))
    #expect(ObjectVersion(timestamp: t1, node: 1) < ObjectVersion(timestamp: t1, node: 2))
    #expect(ObjectVersion.zero < ObjectVersion(timestamp: t1, node: 0))
    #expect(ObjectVersion(timestamp: t1, node: 3) == ObjectVersion(timestamp: t1, node: 3))
    let v = ObjectVersion(timestamp: t2, node: 0xAB)
    #expect(v.description == "0000000000640001-00000000000000ab")
}

@Suite("A node's shared clock: merged from peers, bounded skew, a testing offset")
struct NodeClockTests {
    @Test("a peer's timestamp ahead within the bound is merged: the next local one is newer")
    func observe_withinTheBound_merges() throws {
        let wall = Locked<UInt64>(10_000)
        let clock = NodeClock(maxSkewMillis: 5000, wall: { wall.withLock { $0 } })
        let remote = HLCTimestamp(physicalMillis: 14_000, logical: 3)
        try clock.observe(remote, from: "peer")
        #expect(clock.now() > remote)
        #expect(clock.now().physicalMillis == 14_000, "the wall clock is behind: the logical counter moves")
    }

    @Test("a peer's timestamp further ahead than the bound is refused and leaves the clock as it was")
    func observe_beyondTheBound_isRefused() {
        let clock = NodeClock(maxSkewMillis: 5000, wall: { 10_000 })
        let before = clock.now()
        #expect {
            try clock.observe(HLCTimestamp(physicalMillis: 15_001, logical: 0), from: "fast-node")
        } throws: { ($0 as? AgadirError)?.code == .requestTimeSkewed }
        #expect(clock.last == before)
        #expect(clock.now().physicalMillis == 10_000)
    }

    @Test("the testing offset moves the wall clock the versions are stamped with, either way")
    func offset_movesTheWallClock() throws {
        let clock = NodeClock(maxSkewMillis: 5000, offsetMillis: -3000, wall: { 10_000 })
        #expect(clock.wallMillis() == 7000 && clock.now().physicalMillis == 7000)
        clock.offsetMillis = 2000
        #expect(clock.wallMillis() == 12_000 && clock.now().physicalMillis == 12_000)
        // The bound counts from the offset clock.
        #expect(throws: AgadirError.self) {
            try clock.observe(HLCTimestamp(physicalMillis: 17_001, logical: 0), from: "p")
        }
        try clock.observe(HLCTimestamp(physicalMillis: 17_000, logical: 0), from: "p")
    }
}
