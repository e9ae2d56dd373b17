import AgadirClient
import AgadirCore
import AgadirLab
import AgadirWire
import Foundation
import Testing

/// `agadir-lab add` (docs/operations.md, "Local lab"): the lab grows by one node as an
/// operator grows a cluster, with a certificate the layout's residency checks accept.
@Suite("Growing a lab by one node", .serialized, .oneLabAtATime)
struct LabGrowthTests {
    @Test("a node added in a new Moroccan site joins, is assigned by a layout apply, and serves a Moroccan bucket")
    func addedNode_joinsAndIsAssigned() async throws {
        try await withThreeSiteLab { lab in
            let name = try await lab.add(site: "rabat")
            #expect(name == "rabat-1")
            try await lab.waitConverged(timeout: .seconds(60))
            let admin = try lab.client(for: "benguerir-1")
            defer { Task { await admin.close() } }
            let members = try await admin.members()
            #expect(members.contains { $0.nodeID == "rabat-1" && $0.state == MemberInfo.State.alive })
            // Its certificate attests country=MA for rabat: the layout may give it Moroccan data.
            let shown = try await admin.admin(Admin.layoutShow)
            _ = try await admin.admin(
                Admin.layoutAssign,
                Admin.Assign(node: "rabat-1", site: "rabat", capacity: 1 << 40, siteLabels: ["country": "MA"]))
            let applied = try await admin.admin(Admin.layoutApply, Admin.Apply(version: shown.version + 1))
            #expect(applied.toVersion == shown.version + 1 && applied.totalPartitionsMoved > 0, "\(applied)")
            // Through the new node: a Moroccan bucket is served there.
            try await admin.createBucket("grown", policy: "ma")
            let added = try lab.client(for: "rabat-1")
            defer { Task { await added.close() } }
            var served = false
            for _ in 0..<40 where !served {
                if (try? await added.put(bucket: "grown", key: "k", data: [1, 2, 3])) != nil {
                    served = true
                } else {
                    try await Task.sleep(for: .milliseconds(250))
                }
            }
            #expect(served, "the added node never served the Moroccan bucket")
            #expect(try await admin.get(bucket: "grown", key: "k").1 == [1, 2, 3])
            #expect(try lab.state().nodes.map(\.name).contains("rabat-1") && lab.state().sites.contains("rabat"))
        }
    }
}
