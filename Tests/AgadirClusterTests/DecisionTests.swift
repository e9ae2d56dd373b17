import AgadirCore
import AgadirPlacement
import AgadirWire
import Testing

@testable import AgadirCluster

/// The rebalance's and anti-entropy's decisions as pure functions (RebalanceDecisions,
/// AntiEntropyDecisions): every case of each, without stores, sockets or clocks.
@Suite("Rebalance and anti-entropy decisions")
struct DecisionTests {
    // MARK: Rebalance

    @Test func theRoundsAction_followsLiveVersionsAndTheSavedProgress() {
        typealias D = RebalanceDecisions
        #expect(D.action(liveVersions: 1, current: 0, synced: 0, dropped: 0) == .none)
        // Two versions live: copy until synced, then retire.
        #expect(D.action(liveVersions: 2, current: 5, synced: 4, dropped: 4) == .receive)
        #expect(D.action(liveVersions: 2, current: 5, synced: 5, dropped: 4) == .retire)
        // One version live: confirm it, then drop leftovers once, then idle.
        #expect(D.action(liveVersions: 1, current: 5, synced: 4, dropped: 4) == .markSynced)
        #expect(D.action(liveVersions: 1, current: 5, synced: 5, dropped: 4) == .drop)
        #expect(D.action(liveVersions: 1, current: 5, synced: 5, dropped: 5) == .idle)
        // A first layout: no data to receive, nothing to drop before it is confirmed.
        #expect(D.action(liveVersions: 1, current: 1, synced: 0, dropped: 0) == .markSynced)
    }

    @Test func aPartitionIsReceived_onlyWhenBothKindsAreDoneFromEverySourceNotRemoved() {
        typealias D = RebalanceDecisions
        let t = PartitionTransfer(policy: "ma", partition: 7, sources: ["a", "b"])
        func done(_ keys: [(Bool, String)]) -> Set<String> {
            Set(keys.map { D.stepKey(t, manifests: $0.0, source: $0.1) })
        }
        #expect(!D.isReceived(t, done: [], removed: []))
        #expect(!D.isReceived(t, done: done([(true, "a"), (false, "a"), (true, "b")]), removed: []))
        #expect(D.isReceived(t, done: done([(true, "a"), (false, "a"), (true, "b"), (false, "b")]), removed: []))
        #expect(
            D.isReceived(t, done: done([(true, "a"), (false, "a")]), removed: ["b"]),
            "a removed source is not waited for")
        #expect(!D.isReceived(t, done: done([(true, "a")]), removed: ["b"]))
        #expect(D.isReceived(PartitionTransfer(policy: "ma", partition: 1, sources: []), done: [], removed: []))
    }

    @Test func theStepKeys_keepTheFormatSavedInRebalanceJSON() {
        let t = PartitionTransfer(policy: "ma", partition: 12, sources: ["x"])
        #expect(RebalanceDecisions.stepKey(t, manifests: true, source: "settat-1") == "ma/12/manifests/settat-1")
        #expect(RebalanceDecisions.stepKey(t, manifests: false, source: "settat-1") == "ma/12/chunks/settat-1")
    }

    @Test func copying_waitsForLaggingMembers_thenTheSettleTime() {
        typealias D = RebalanceDecisions
        #expect(
            D.copyGate(lagging: ["c", "a"], adoptedFor: .seconds(100), settle: .seconds(2)) == .waitFor(["a", "c"]))
        #expect(D.copyGate(lagging: [], adoptedFor: nil, settle: .seconds(2)) == .settling)
        #expect(D.copyGate(lagging: [], adoptedFor: .milliseconds(1999), settle: .seconds(2)) == .settling)
        #expect(D.copyGate(lagging: [], adoptedFor: .seconds(2), settle: .seconds(2)) == .go)
    }

    @Test func olderVersionsRetire_onlyWhenEveryStorageNodeConfirmed_aSilentOneBlocks() {
        typealias D = RebalanceDecisions
        let storage = ["c", "a", "b"]
        #expect(D.notYetSynced(storage, synced: ["a": 3, "b": 3, "c": 3], version: 3).isEmpty)
        #expect(D.notYetSynced(storage, synced: ["a": 3, "b": 2, "c": 4], version: 3) == ["b"])
        #expect(
            D.notYetSynced(storage, synced: ["a": 3, "b": 3], version: 3) == ["c"], "no answer is not a confirmation")
    }

    @Test func dataIsDropped_onlyWhenEveryNodeRetiredTheOlderVersions_aSilentOneBlocks() {
        typealias D = RebalanceDecisions
        let members = ["a", "b", "c"]
        #expect(D.notYetRetired(members, oldestLive: ["a": 3, "b": 3, "c": 3], version: 3).isEmpty)
        #expect(D.notYetRetired(members, oldestLive: ["a": 2, "b": 3, "c": 3], version: 3) == ["a"])
        #expect(D.notYetRetired(members, oldestLive: ["a": 3, "b": 3], version: 3) == ["c"])
    }

    // MARK: Anti-entropy

    @Test func aPass_isDueWhenAskedFor_orOneIntervalAfterTheLast_theFirstOneIntervalAfterStart() {
        typealias D = AntiEntropyDecisions
        let asked = RepairScope(policy: "ma", partition: 3)
        #expect(D.due(requested: asked, sinceLastPass: nil, interval: .seconds(60)).scope == asked)
        #expect(D.due(requested: asked, sinceLastPass: .seconds(1), interval: .seconds(60)).scope == asked)
        let start = D.due(requested: nil, sinceLastPass: nil, interval: .seconds(60))
        #expect(start.scope == nil && start.startClock)
        #expect(D.due(requested: nil, sinceLastPass: .seconds(59), interval: .seconds(60)).scope == nil)
        #expect(D.due(requested: nil, sinceLastPass: .seconds(60), interval: .seconds(60)).scope == RepairScope())
    }

    @Test func aPass_coversThePartitionsOfItsScopeThisNodeHolds_andOnlyThose() throws {
        let layout = try TestCluster.plannedLayout(partitionCount: 16)
        let me = "benguerir-1"
        let all = AntiEntropyDecisions.partitions(of: RepairScope(), in: layout, node: me)
        var expected: [String] = []
        for policy in layout.maps.keys.sorted() {
            for p in 0..<16 where layout.replicas(policy: policy, partition: p).contains(me) {
                expected.append("\(policy)/\(p)")
            }
        }
        #expect(all.map { "\($0.policy)/\($0.partition)" } == expected)
        #expect(!expected.isEmpty)
        let ma = AntiEntropyDecisions.partitions(of: RepairScope(policy: "ma"), in: layout, node: me)
        #expect(ma.allSatisfy { $0.policy == "ma" } && ma.count == expected.filter { $0.hasPrefix("ma/") }.count)
        let one = AntiEntropyDecisions.partitions(
            of: RepairScope(policy: "ma", partition: ma.first?.partition), in: layout, node: me)
        #expect(one.count == 1)
        #expect(AntiEntropyDecisions.partitions(of: RepairScope(), in: layout, node: "paris-9").isEmpty)
    }

    @Test func oldDeleteMarkersArePurged_onlyWhenEveryReplicaWasComparedAndAgreed() {
        #expect(AntiEntropyDecisions.mayPurge(comparedAll: true, manifestsDiffered: false))
        #expect(
            !AntiEntropyDecisions.mayPurge(comparedAll: false, manifestsDiffered: false),
            "a replica down may hold an older live version")
        #expect(!AntiEntropyDecisions.mayPurge(comparedAll: true, manifestsDiffered: true))
    }
}

/// Hint delivery's decision (`HintDecisions`): what happens to one parked hint.
@Suite("Hint delivery decisions")
struct HintDecisionTests {
    static func record(_ policy: String, deleted: Bool = false, generation: ObjectVersion = .zero) -> BucketRecord {
        BucketRecord(
            name: "ma-data", policy: policy, createdMillis: 1,
            version: ObjectVersion(timestamp: HLCTimestamp(rawValue: 9), node: 1),
            deleted: deleted, generation: generation)
    }

    static func at(_ t: UInt64) -> ObjectVersion { ObjectVersion(timestamp: HLCTimestamp(rawValue: t), node: 1) }

    @Test func aHintIsNeverSentToANodeOutsideThePolicy_evenIfTheLayoutMakesItAReplica() throws {
        // paris-1 first in every `ma` replica set: still not eligible for `ma` (its site is FR).
        let corrupted = try CoordinatorTests.layoutNamingParis()
        let m = CoordinatorTests.inline("k", 1, Self.at(100))
        let d = HintDecisions.disposition(
            of: .manifest(m), for: "paris-1", record: Self.record("ma"), layout: corrupted, layoutUpToDate: true)
        guard case .withhold(let why) = d else {
            Issue.record("a hint for paris-1 was \(d)")
            return
        }
        #expect(why.contains("not eligible"))
        // For a Moroccan replica of the key, the same hint is delivered.
        let layout = ClusterLayout(initial: try TestCluster.plannedLayout())
        let l = layout.current
        let replica = try #require(
            l.replicas(
                policy: "ma", partition: Partitioner.partition(bucket: "ma-data", key: "k", count: l.partitionCount)
            )
            .first)
        #expect(
            HintDecisions.disposition(
                of: .manifest(m), for: replica, record: Self.record("ma"), layout: layout, layoutUpToDate: true)
                == .deliver(policy: "ma"))
        // A global bucket's hint may go to paris-1 when it is a replica.
        let global = try #require(
            l.replicas(
                policy: "global", partition: Partitioner.partition(bucket: "ma-data", key: "k", count: l.partitionCount)
            ).first)
        #expect(
            HintDecisions.disposition(
                of: .manifest(m), for: global, record: Self.record("global"), layout: layout, layoutUpToDate: true)
                == .deliver(policy: "global"))
    }

    @Test func deletedAndEarlierBuckets_andPartitionsTheTargetLeft_areDropped_unknownOnesWithheld() throws {
        let layout = ClusterLayout(initial: try TestCluster.plannedLayout())
        let l = layout.current
        let partition = Partitioner.partition(bucket: "ma-data", key: "k", count: l.partitionCount)
        let replica = try #require(l.replicas(policy: "ma", partition: partition).first)
        let other = try #require(
            l.nodes.map(\.id).first {
                !$0.hasPrefix("paris") && !l.replicas(policy: "ma", partition: partition).contains($0)
            })
        let m = CoordinatorTests.inline("k", 1, Self.at(100))
        func d(_ record: BucketRecord?, to target: String = replica, upToDate: Bool = true) -> HintDecisions.Disposition
        {
            HintDecisions.disposition(
                of: .manifest(m), for: target, record: record, layout: layout, layoutUpToDate: upToDate)
        }
        #expect(d(Self.record("ma", deleted: true)) == .drop)
        #expect(d(Self.record("ma", generation: Self.at(200))) == .drop, "an earlier bucket's write")
        #expect(d(Self.record("ma", generation: Self.at(100))) == .deliver(policy: "ma"))
        #expect(d(Self.record("ma"), to: other) == .drop, "the target holds the partition in no live version")
        #expect(
            d(Self.record("ma"), to: other, upToDate: false) == .deliver(policy: "ma"), "a newer layout may name it")
        if case .withhold = d(nil) {} else { Issue.record("an unknown bucket's hint was not withheld") }
        if case .withhold = d(Self.record("nowhere")) {
        } else {
            Issue.record("an unknown policy's hint was not withheld")
        }
    }
}
