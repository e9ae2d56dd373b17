import AgadirCore
import Testing

@testable import AgadirPlacement

/// A random planned layout: random sites, nodes and one to three policies, planned from empty.
func randomPlannedLayout(seed: UInt64, partitions: Int = 64) -> Layout? {
    var gen = RandomLayouts(seed: seed)
    let base = gen.layout(partitions: partitions)
    var changes: [LayoutChange] = base.sites.map { .setSiteLabels(site: $0.name, labels: $0.labels) }
    changes += base.nodes.map { .assignNode(id: $0.id, site: $0.site, capacity: $0.capacity) }
    for k in 0..<gen.int(0...2) {
        var policy = gen.policy()
        policy.name = "policy-\(k)"
        policy.codec = Codec.allCases[gen.int(0...2)]
        policy.readConsistency = ConsistencyLevel.allCases[gen.int(0...4)]
        changes.append(.addPolicy(policy))
    }
    for _ in 0..<4 {
        if let planned = try? Planner.plan(
            previous: .empty(), changes: StagedChanges(changes: changes, partitionCount: partitions),
            appliedMillis: gen.rng.next(), bytesPerPartition: { _, _ in 0 })
        {
            return planned.layout
        }
        changes.removeLast()  // drop a policy the layout cannot satisfy
    }
    return nil
}

@Test func layoutCodec_roundTripsRandomLayouts() throws {
    var decoded = 0
    for seed in 0..<60 as Range<UInt64> {
        guard let layout = randomPlannedLayout(seed: seed) else { continue }
        let bytes = LayoutCodec.encode(layout)
        #expect(Array(bytes.prefix(5)) == Array("AGLY".utf8) + [1])
        let back = try LayoutCodec.decode(bytes)
        #expect(back == layout, "seed \(seed)")
        #expect(LayoutCodec.encode(back) == bytes)
        decoded += 1
    }
    #expect(decoded >= 50)
    // The encoding is canonical: the same layout, whatever the order of its arrays, encodes the same.
    if let layout = randomPlannedLayout(seed: 7) {
        var shuffled = layout
        shuffled.nodes = layout.nodes.shuffled(seed: 1)
        shuffled.sites = layout.sites.shuffled(seed: 2)
        shuffled.policies = layout.policies.shuffled(seed: 3)
        #expect(LayoutCodec.encode(shuffled) == LayoutCodec.encode(layout))
    }
    // Version 0, the empty layout.
    #expect(try LayoutCodec.decode(LayoutCodec.encode(.empty())) == .empty())
}

@Test func layoutCodec_everyTruncationFailsWithCorruptData() throws {
    let layout = try #require(randomPlannedLayout(seed: 3, partitions: 8))
    let bytes = LayoutCodec.encode(layout)
    for n in 0..<bytes.count {
        expectError(.corruptData) { () throws(AgadirError) in try LayoutCodec.decode(Array(bytes.prefix(n))) }
    }
    expectError(.corruptData) { () throws(AgadirError) in try LayoutCodec.decode(bytes + [0]) }
}

@Test func layoutCodec_randomMutationsNeverCrash_andWhatDecodesIsValid() throws {
    var rng = SplitMix64(seed: 77)
    var decodedAnyway = 0
    var sources: [Layout] = []
    for seed in 10..<20 as Range<UInt64> {
        if let l = randomPlannedLayout(seed: seed, partitions: 8) { sources.append(l) }
    }
    for round in 0..<4000 {
        let layout = sources[round % sources.count]
        var bytes = LayoutCodec.encode(layout)
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let i = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0...3, using: &rng) {
            case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
            case 1: bytes[i] ^= 1 << UInt8.random(in: 0...7, using: &rng)
            case 2: bytes.remove(at: i)
            default: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: i)
            }
        }
        let decoded: Layout
        do { decoded = try LayoutCodec.decode(bytes) } catch {
            #expect(error.code == .corruptData)
            continue
        }
        decodedAnyway += 1
        for policy in decoded.policies {
            let map = decoded.maps[policy.name]?.replicas ?? []
            let problems = violations(map, policy: policy, layout: decoded)
            #expect(problems.isEmpty)
            #expect(throws: Never.self) { try policy.validate() }
        }
    }
    print("layout mutations: \(decodedAnyway) of 4000 still decoded (each valid)")
}

/// Builds a tiny layout by hand and lets a test corrupt one field of its encoding.
func handEncodedLayout(_ edit: (inout Layout) -> Void) -> [UInt8] {
    var l = Layout(
        version: 1, partitionCount: 8,
        sites: [SiteSpec(name: "a", labels: ["country": "MA"]), SiteSpec(name: "b", labels: ["country": "MA"])],
        nodes: [
            NodeSpec(id: "a-1", site: "a", capacity: 1), NodeSpec(id: "a-2", site: "a", capacity: 1),
            NodeSpec(id: "b-1", site: "b", capacity: 1), NodeSpec(id: "gw", site: "b", capacity: 0),
        ],
        policies: [.builtInDefault(storageNodes: 3)], maps: [:], appliedMillis: 0)
    l.maps["default"] = PartitionMap(policy: "default", replicas: (0..<8).map { _ in ["a-1", "a-2", "b-1"] })
    edit(&l)
    return LayoutCodec.encode(l)
}

@Test func layoutCodec_validationErrorsSayWhatIsWrong() throws {
    #expect(throws: Never.self) { try LayoutCodec.decode(handEncodedLayout { _ in }) }
    func expectCorrupt(_ fragment: String, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        let error = expectError(.corruptData, sourceLocation: sourceLocation) { () throws(AgadirError) in
            try LayoutCodec.decode(bytes)
        }
        #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "")", sourceLocation: sourceLocation)
    }
    expectCorrupt("bad magic", Array("AGLX".utf8) + [1])
    var bytes = handEncodedLayout { _ in }
    bytes[4] = 2
    expectCorrupt("format version 2", bytes)
    expectCorrupt("partition count 12", handEncodedLayout { $0.partitionCount = 12 })
    expectCorrupt("twice", handEncodedLayout { $0.maps["default"]?.replicas[3] = ["a-1", "a-1", "b-1"] })
    expectCorrupt("not eligible", handEncodedLayout { $0.maps["default"]?.replicas[5] = ["a-1", "gw", "b-1"] })
    expectCorrupt("names node #65535", handEncodedLayout { $0.maps["default"]?.replicas[0] = ["a-1", "zz", "b-1"] })
    expectCorrupt(
        "spans 1 site",
        handEncodedLayout {
            $0.policies[0] = Policy(
                name: "default", replicationFactor: 2, selector: .any, minSites: 2, readConsistency: .quorum,
                writeConsistency: .quorum, codec: .lz4)
            $0.maps["default"]?.replicas = (0..<8).map { _ in ["a-1", "a-2"] }
        })
    expectCorrupt("policy 'default': minSites", handEncodedLayout { $0.policies[0].minSites = 0 })
    expectCorrupt(
        "'default' is missing",
        handEncodedLayout {
            $0.policies[0].name = "other"
            $0.maps = ["other": PartitionMap(policy: "other", replicas: (0..<8).map { _ in ["a-1", "a-2", "b-1"] })]
        })
    expectCorrupt("0 partition maps", handEncodedLayout { $0.maps = [:] })
    expectCorrupt(
        "site name",
        handEncodedLayout {
            $0.sites[0].name = "bad site"; $0.nodes[0].site = "bad site"
        })
    expectCorrupt("node id", handEncodedLayout { $0.nodes[3].id = "g w" })
    expectCorrupt("names site #65535", handEncodedLayout { $0.nodes[3].site = "nowhere" })
    expectCorrupt("label key", handEncodedLayout { $0.sites[0].labels = ["bad key": "x"] })
    // Unsorted arrays (encode sorts, so edit the bytes): swap the two site names "a" and "b".
    var swapped = handEncodedLayout { _ in }
    let first = try #require(swapped.firstIndex(of: UInt8(ascii: "a")))
    let second = try #require(swapped[(first + 1)...].firstIndex(of: UInt8(ascii: "b")))
    swapped[first] = UInt8(ascii: "b")
    swapped[second] = UInt8(ascii: "a")
    expectCorrupt("not in ascending order", swapped)
}

@Test func layoutCodec_boundsAreCheckedBeforeAnyLargeAllocation() {
    var w = ByteWriter()
    w.raw(Array("AGLY".utf8))
    w.u8(1)
    w.u64(1)
    w.u32(256)
    w.u64(0)
    w.u16(UInt16.max)  // 65535 sites claimed
    let error = expectError(.corruptData) { () throws(AgadirError) in try LayoutCodec.decode(w.bytes) }
    #expect(error?.message.contains("65535 sites") == true)
}

@Test func layoutCodec_encodesEvenNonsense_andDecodeRefusesIt() {
    let broken = handEncodedLayout {
        $0.partitionCount = -3
        $0.policies[0].replicationFactor = -1
    }
    expectError(.corruptData) { () throws(AgadirError) in try LayoutCodec.decode(broken) }
    let huge = handEncodedLayout { $0.partitionCount = Int.max }
    expectError(.corruptData) { () throws(AgadirError) in try LayoutCodec.decode(huge) }
}
