import AgadirCore
import AgadirPlacement
import AgadirWire
import Foundation
import Testing

@testable import AgadirCluster

@Suite("Drain, remove and status: the rebalancer's removed sources and NODE_STATUS compatibility")
struct DrainAndStatusTests {
    private func cluster() throws -> ClusterLayout {
        let changes: [LayoutChange] = [
            .assignNode(id: "a-1", site: "a", capacity: 1_000), .assignNode(id: "b-1", site: "b", capacity: 1_000),
            .assignNode(id: "c-1", site: "c", capacity: 1_000),
        ]
        let v1 = try Planner.plan(
            previous: .empty(partitionCount: 8), changes: StagedChanges(changes: changes), appliedMillis: 1,
            bytesPerPartition: { _, _ in 0 }
        ).layout
        let v2 = try Planner.plan(
            previous: v1,
            changes: StagedChanges(changes: [
                .removeNode(id: "c-1"), .assignNode(id: "d-1", site: "d", capacity: 1_000),
            ]),
            appliedMillis: 2, bytesPerPartition: { _, _ in 0 }
        ).layout
        var cluster = ClusterLayout(initial: v1)
        try cluster.apply(v2, summary: "replace c-1 by d-1")
        return cluster
    }

    @Test("a source is skipped only when it is out of the current version and not alive")
    func isRemoved_onlyOutOfTheLayoutAndNotAlive() throws {
        let c = try cluster()
        #expect(RebalanceDecisions.isRemoved("c-1", in: c, alive: ["a-1", "b-1", "d-1"]))
        #expect(
            !RebalanceDecisions.isRemoved("c-1", in: c, alive: ["a-1", "b-1", "c-1", "d-1"]),
            "alive: waited for (copied from)")
        #expect(!RebalanceDecisions.isRemoved("b-1", in: c, alive: ["a-1", "d-1"]), "in the layout: waited for")
    }

    @Test("a NODE_STATUS answer without the store section or skippedSources (an older node) still decodes")
    func nodeStatus_olderAnswerDecodes() throws {
        let older = #"{"node": "a-1"}"#
        let s = try AdminJSON.decode(NodeStatus.self, Array(older.utf8), "test")
        #expect(s.node == "a-1" && s.rebalance == nil && s.store == nil)
        let store = NodeStoreStatus(
            usedBytes: 10, segmentBytes: 6, metadataBytes: 4, fsFreeBytes: nil, fsTotalBytes: nil, hintsPending: 1,
            hintsByTarget: ["b-1": 1], chunks: 2, objects: 3)
        let back = try AdminJSON.decode(
            NodeStatus.self, try AdminJSON.encode(NodeStatus(node: "a-1", store: store)), "test")
        #expect(back.store == store)
    }
}
