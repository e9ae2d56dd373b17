import AgadirCluster
import AgadirCore
import Testing

@Suite struct GarbageDecisionTests {
    static func v(_ n: UInt64) -> ObjectVersion { ObjectVersion(timestamp: HLCTimestamp(rawValue: n), node: 1) }
    static let set = ["a", "b", "c"]
    typealias Held = GarbageDecisions.Held

    func verdict(_ reference: UInt64, _ answers: [String: Held], sets: [[String]] = [set]) -> GarbageDecisions.Verdict {
        GarbageDecisions.reference(Self.v(reference), sets: sets, answers: answers)
    }

    @Test func everyReplicaAnswered_theNewestVersionDecides() {
        let live: Held = .version(Self.v(5), tombstone: false)
        #expect(verdict(5, ["a": live, "b": live, "c": .version(Self.v(3), tombstone: false)]) == .live)
        // Superseded by a newer PUT, or by a delete marker, on a single replica: dead (all answered).
        #expect(verdict(5, ["a": live, "b": live, "c": .version(Self.v(7), tombstone: false)]) == .dead)
        #expect(verdict(5, ["a": live, "b": live, "c": .version(Self.v(7), tombstone: true)]) == .dead)
        // No manifest anywhere, or a reference newer than every manifest: a PUT that failed.
        #expect(verdict(5, ["a": .none, "b": .none, "c": .none]) == .dead)
        #expect(verdict(9, ["a": live, "b": live, "c": live]) == .dead)
        // The reference's version is the newest but is a delete marker: dead.
        #expect(verdict(5, ["a": .version(Self.v(5), tombstone: true), "b": .none, "c": .none]) == .dead)
    }

    @Test func aReplicaDown_deadOnlyWhenAMajorityOfEverySetHoldsANewerVersion() {
        let marker: Held = .version(Self.v(8), tombstone: true)
        let old: Held = .version(Self.v(5), tombstone: false)
        #expect(verdict(5, ["a": marker, "b": marker]) == .dead)
        // A newer version on one replica only: the silent one may hold the reference's version.
        #expect(verdict(5, ["a": marker, "b": old]) == .undecided)
        // Nothing anywhere that answered: the silent replica may hold the only trace of it.
        #expect(verdict(5, ["a": .none, "b": .none]) == .undecided)
        // The reference's version is live on a majority: kept.
        #expect(verdict(5, ["a": old, "b": old]) != .dead)
        // A version equal to the reference's is not newer.
        #expect(verdict(8, ["a": marker, "b": marker]) == .undecided)
        // Two replicas down: no majority can answer.
        #expect(verdict(5, ["a": marker]) == .undecided)
        #expect(verdict(5, [:]) == .undecided)
    }

    @Test func duringALayoutChange_everyLiveVersionsSetMustHaveAMajority() {
        let marker: Held = .version(Self.v(8), tombstone: true)
        let sets = [["a", "b", "c"], ["a", "d", "e"]]
        // The old set has a majority newer; the new set only a (shared) minority.
        #expect(verdict(5, ["a": marker, "b": marker, "d": .none], sets: sets) == .undecided)
        #expect(verdict(5, ["a": marker, "b": marker, "d": marker], sets: sets) == .dead)
        #expect(verdict(5, [:], sets: []) == .undecided)
    }
}
