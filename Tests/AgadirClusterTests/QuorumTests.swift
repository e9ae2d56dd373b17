import AgadirCluster
import AgadirCore
import AgadirTestSupport
import Testing

@Suite struct QuorumTests {
    static let sites: [String: String] = [
        "b1": "benguerir", "b2": "benguerir", "c1": "casablanca", "s1": "settat", "p1": "paris",
    ]
    static func site(_ n: String) -> String { sites[n] ?? "?" }

    func outcome(
        _ level: ConsistencyLevel, _ replicas: [String], _ answered: Set<String>, at site: String = "benguerir"
    ) -> Quorum.Outcome {
        Quorum(level: level, replicas: replicas, coordinatorSite: site).evaluate(answered: answered, site: Self.site)
    }

    @Test func levels_countTheRightReplicas() {
        let rs = ["b1", "c1", "s1"]
        #expect(outcome(.one, rs, ["s1"]).satisfied)
        #expect(!outcome(.one, rs, []).satisfied)
        #expect(outcome(.quorum, rs, ["b1", "s1"]).satisfied)
        let q = outcome(.quorum, rs, ["b1"])
        #expect(!q.satisfied && q.answered == 1 && q.needed == 2)
        #expect(outcome(.all, rs, ["b1", "c1", "s1"]).satisfied)
        #expect(!outcome(.all, rs, ["b1", "c1"]).satisfied)
        // Answers from nodes outside the set do not count.
        #expect(!outcome(.quorum, rs, ["b1", "p1", "b2"]).satisfied)
        // LOCAL_QUORUM: the coordinator's site decides.
        let local = ["b1", "b2", "c1"]
        #expect(outcome(.localQuorum, local, ["b1", "b2"]).satisfied)
        #expect(!outcome(.localQuorum, local, ["b1", "c1"]).satisfied)
        #expect(outcome(.localQuorum, local, ["c1"], at: "casablanca").satisfied)
        // No replica in the coordinator's site: QUORUM of the whole set.
        #expect(outcome(.localQuorum, rs, ["c1", "s1"], at: "paris").satisfied)
        #expect(!outcome(.localQuorum, rs, ["c1"], at: "paris").satisfied)
        // EACH_QUORUM: a majority in every site.
        #expect(outcome(.eachQuorum, local, ["b1", "b2", "c1"]).satisfied)
        let each = outcome(.eachQuorum, local, ["b1", "c1"])
        #expect(!each.satisfied && each.needed == 2 && each.answered == 1)
    }

    @Test func severalLiveVersions_needTheLevelInEverySet() {
        let old = ["b1", "c1", "s1"]
        let new = ["b2", "c1", "s1"]
        let both = Quorum.evaluate(
            level: .quorum, sets: [old, new], coordinatorSite: "benguerir", answered: ["c1", "s1"], site: Self.site)
        #expect(both.satisfied)
        let short = Quorum.evaluate(
            level: .all, sets: [old, new], coordinatorSite: "benguerir", answered: ["b1", "c1", "s1"], site: Self.site)
        #expect(!short.satisfied && short.answered == 2 && short.needed == 3)
    }

    @Test func property_quorumReadsMeetQuorumWrites() {
        // For QUORUM and ALL/ONE pairs: any read set of R answers intersects any write set of W acks.
        var rng = SplitMix64(seed: 3)
        let nodes = ["b1", "b2", "c1", "s1", "p1"]
        for _ in 0..<2000 {
            let n = Int.random(in: 1...5, using: &rng)
            let rs = Array(nodes.shuffled(using: &rng).prefix(n))
            let w = Set(rs.filter { _ in Bool.random(using: &rng) })
            let r = Set(rs.filter { _ in Bool.random(using: &rng) })
            let wo = outcome(.quorum, rs, w)
            let ro = outcome(.quorum, rs, r)
            if wo.satisfied && ro.satisfied { #expect(!w.isDisjoint(with: r)) }
            let wa = outcome(.all, rs, w)
            let r1 = outcome(.one, rs, r)
            if wa.satisfied && r1.satisfied { #expect(!w.isDisjoint(with: r)) }
        }
    }
}
