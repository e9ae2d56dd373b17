import AgadirClient
import AgadirCore
import AgadirLab
import AgadirWire
import Foundation
import Testing

/// Network faults through the lab's relays (docs/lab.md, "Network faults"): every path
/// between two nodes goes through a relay, which cuts and degrades it.
@Suite("Partitions and degraded links on a three-site lab with relays", .serialized, .oneLabAtATime)
struct RelayLabTests {
    static func state(_ views: [String: [MemberInfo]], of node: String, seenBy viewer: String) -> String? {
        views[viewer]?.first { $0.nodeID == node }?.state
    }

    @Test(
        "a site cut off is declared dead by the others, the majority side still writes at QUORUM and not at ALL; healed, the cut node converges and reads the write"
    )
    func partitionAndHeal() async throws {
        try await withThreeSiteLab(relays: true) { lab in
            // Every node dials every other through a relay.
            let state = try lab.state()
            #expect(state.relayRoutes?.count == 6)
            let majority = try lab.client(for: "benguerir-1")
            defer { Task { await majority.close() } }
            try await majority.createBucket("cut", policy: "ma")
            _ = try await majority.put(bucket: "cut", key: "before", data: Array("before".utf8))

            try await lab.partition([["benguerir-1", "casablanca-1"], ["settat-1"]], oneWay: false)
            try await lab.waitUntil(timeout: .seconds(60), "benguerir-1 and casablanca-1 see settat-1 not alive") {
                views in
                ["benguerir-1", "casablanca-1"].allSatisfy { viewer in
                    let s = Self.state(views, of: "settat-1", seenBy: viewer)
                    return s == "dead" || s == "suspect"
                }
            }
            let during = Array("written during the partition".utf8)
            _ = try await majority.put(bucket: "cut", key: "during", data: during, consistency: .quorum)
            let all = await agadirError {
                _ = try await majority.put(bucket: "cut", key: "all", data: [1], consistency: .all)
            }
            #expect(all != nil, "a write at ALL succeeded with settat-1 cut off")

            try await lab.heal()
            try await lab.waitConverged(timeout: .seconds(60))
            let cut = try lab.client(for: "settat-1")
            defer { Task { await cut.close() } }
            // Right after the heal settat-1 may still count a member dead for a moment (seen
            // once: converged views, then a read answered "not alive"): a read refused for that
            // is tried again, at most 20 times.
            var read: [UInt8]? = nil
            for _ in 0..<20 where read == nil {
                do {
                    read = try await cut.get(bucket: "cut", key: "during", consistency: .quorum).1
                } catch let error as AgadirError where error.code == .notEnoughReplicas {
                    try await Task.sleep(for: .milliseconds(500))
                }
            }
            #expect(read == during, "settat-1 never read the write made during the partition")
            #expect(try await cut.get(bucket: "cut", key: "before").1 == Array("before".utf8))
        }
    }

    @Test("a one-way cut stops one direction only; a delayed link slows what crosses it and nothing else")
    func oneWayAndDelay() async throws {
        try await withThreeSiteLab(relays: true) { lab in
            let client = try lab.client(for: "benguerir-1")
            defer { Task { await client.close() } }
            try await client.createBucket("slow", policy: "ma")
            // settat-1 cannot send to the others; they can send to it. It hears them, they do
            // not hear its answers: they suspect it.
            try await lab.partition([["settat-1"], ["benguerir-1", "casablanca-1"]], oneWay: true)
            try await lab.waitUntil(timeout: .seconds(60), "the others stop hearing settat-1") { views in
                ["benguerir-1", "casablanca-1"].allSatisfy { viewer in
                    let s = Self.state(views, of: "settat-1", seenBy: viewer)
                    return s == "dead" || s == "suspect"
                }
            }
            #expect(lab.faults().fault(from: "settat-1", to: "benguerir-1").cut)
            #expect(!lab.faults().fault(from: "benguerir-1", to: "settat-1").cut)
            try await lab.heal()
            try await lab.waitConverged(timeout: .seconds(60))

            // 120 ms each way between benguerir and casablanca: a write at ALL from benguerir
            // waits for casablanca's answer, so it takes at least the round trip (a lower
            // bound of the injected delay, not a speed claim); a write at ONE does not wait.
            try await lab.link(["benguerir-1"], ["casablanca-1"], fault: LinkFault(delayMillis: 120))
            // Right after the heal a member may still flap (suspected again while its
            // refutation spreads): a write at ALL refused for that is tried again; the time
            // measured is that of the write that succeeded.
            let clock = ContinuousClock()
            var took: Duration? = nil
            for _ in 0..<20 where took == nil {
                let started = clock.now
                do {
                    _ = try await client.put(bucket: "slow", key: "all", data: [1], consistency: .all)
                    took = clock.now - started
                } catch let error as AgadirError where error.code == .notEnoughReplicas {
                    try await Task.sleep(for: .milliseconds(500))
                }
            }
            let measured = try #require(took, "no write at ALL succeeded after the heal")
            #expect(measured >= .milliseconds(220), "a write at ALL across a 120 ms link took \(measured)")
            try await lab.link(["benguerir-1"], ["casablanca-1"], fault: LinkFault())
            #expect(lab.faults().links.isEmpty)
        }
    }
}
