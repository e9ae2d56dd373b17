import AgadirClient
import AgadirCore
import AgadirLab
import AgadirWire
import Foundation
import Testing

@Suite("Background workers on the lab: agadir admin workers", .serialized, .oneLabAtATime)
struct WorkersLabTests {
    static let workers = ["cluster-sync", "rebalance", "anti-entropy", "scrub", "gc"]

    @Test(
        "every node lists its five workers; a paused scrub shows paused everywhere; a dead node makes the command exit 1"
    )
    func workersOfEveryNode_areListed_withTheirState() async throws {
        try await withThreeSiteLab { lab in
            let endpoint = try #require(try lab.status().first { $0.name == "benguerir-1" }?.clientEndpoint)
            let cli = CLI(endpoint: endpoint, credentials: lab.credentialsFile)
            let names = try lab.status().map(\.name).sorted()

            let json = try await cli.runDetached(["admin", "workers", "--json"])
            #expect(json.status == 0, "\(json.stdout)\(json.stderr)")
            let nodes = try Admin.workersList.decode(output: Array(json.stdout.utf8))
            #expect(nodes.map(\.node) == names)
            for n in nodes {
                #expect(n.workers?.map(\.name) == Self.workers, "\(n)")
                #expect(n.workers?.allSatisfy { $0.state != .failed && $0.state != .done } == true, "\(n)")
            }
            let text = try await cli.runDetached(["admin", "workers"])
            #expect(
                text.status == 0 && text.stdout.contains("WORKER") && text.stdout.contains("anti-entropy"),
                "\(text.stdout)")

            // Paused through one node, the scrub worker of every node says so.
            let paused = try await cli.runDetached(["admin", "scrub", "pause"])
            #expect(paused.status == 0, "\(paused.stderr)")
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(30)
            var scrubStates: [String] = []
            while clock.now < deadline {
                let r = try await cli.runDetached(["admin", "workers", "--json"])
                let view = (try? Admin.workersList.decode(output: Array(r.stdout.utf8))) ?? []
                scrubStates = view.compactMap { $0.workers?.first { $0.name == "scrub" }?.state.rawValue }
                if scrubStates == ["paused", "paused", "paused"] { break }
                try await Task.sleep(for: .milliseconds(300))
            }
            #expect(scrubStates == ["paused", "paused", "paused"])

            // A node down: its workers are unknown, and the command says so with exit code 1.
            try await lab.kill("settat-1")
            let degraded = try await cli.runDetached(["admin", "workers"])
            #expect(degraded.status == 1, "\(degraded.stdout)\(degraded.stderr)")
            #expect(degraded.stdout.contains("settat-1") && degraded.stdout.contains("unknown"), "\(degraded.stdout)")
        }
    }
}
