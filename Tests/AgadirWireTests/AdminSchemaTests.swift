import AgadirCore
import AgadirTestSupport
import AgadirWire
import Testing

/// The admin schema (AgadirWire `Admin`): the one definition of every admin command's input
/// and answer, shared by the server, the CLI, the lab and the tests.
@Suite("Admin schema")
struct AdminSchemaTests {
    @Test func commandNames_areUniqueAndDotted() {
        #expect(Set(Admin.commandNames).count == Admin.commandNames.count)
        for name in Admin.commandNames { #expect(name.split(separator: ".").count == 2, "\(name)") }
    }

    @Test func anEmptyInputBody_decodesAsEmpty_andAWrongOneSaysWhichCommand() throws {
        _ = try Admin.layoutShow.decode(input: [])
        let error = expectError(.invalidArgument) { () throws(AgadirError) in
            _ = try Admin.layoutApply.decode(input: Array(#"{"version": "two"}"#.utf8))
        }
        #expect(error?.message.contains("layout.apply") == true)
    }

    @Test func policyCreated_decodesAsThePlanWhenApplied_elseAsTheLayout() throws {
        let layout = Admin.LayoutView(
            version: 1, partitionCount: 8, liveVersions: [1], appliedMillis: 0, sites: [], nodes: [], policies: [],
            staged: ["x"],
            stagedPartitionCount: nil, warnings: [])
        let plan = Admin.PlanView(
            fromVersion: 1, toVersion: 2, totalPartitionsMoved: 3, links: [], policies: [], changes: [], layout: layout)
        let staged = try Admin.policyCreate.decode(output: try Admin.policyCreate.encode(output: .staged(layout)))
        let applied = try Admin.policyCreate.decode(output: try Admin.policyCreate.encode(output: .applied(plan)))
        guard case .staged(let l) = staged, case .applied(let p) = applied else {
            Issue.record("wrong cases: \(staged), \(applied)")
            return
        }
        #expect(l.staged == ["x"])
        #expect(p.totalPartitionsMoved == 3 && p.layout?.version == 1)
    }

    @Test func nodeStatus_ofAnOlderNode_withoutItsLaterSections_stillDecodes() throws {
        let s = try AdminJSON.decode(NodeStatus.self, Array(#"{"node": "a-1"}"#.utf8), "test")
        #expect(s.node == "a-1" && s.rebalance == nil && s.store == nil && s.gc == nil)
    }

    @Test func slashesInKeys_areNotEscaped() throws {
        let audit = ResidencyAudit(node: "n", site: "s", layoutVersion: 1)
        var a = audit
        a.add(.init(kind: "manifest", bucket: "b", key: "photos/2026/x", chunk: nil, policy: "ma", reason: "r"))
        let text = String(decoding: try AdminJSON.encode(a), as: UTF8.self)
        #expect(text.contains("photos/2026/x"))
    }
}
