import AgadirCore
import AgadirLab
import Foundation
import Testing

/// The torture smoke of CI (docs/consistency.md): one seed, about 40 seconds of clients
/// under kill, pause and clock skew on a three-site lab, then the checker. The full matrix
/// runs on request (`agadir-lab torture`, see docs/consistency.md for the command).
@Suite("Torture smoke: clients under a seeded nemesis, then the history checker", .serialized, .oneLabAtATime)
struct TortureSmokeTests {
    @Test("seed 1, kill + pause + skew, 40 s: faults were injected, operations ran, and the checker finds nothing")
    func smoke_findsNoAnomaly() async throws {
        try await withThreeSiteLab { lab in
            var options = Torture.Options()
            options.seed = 1
            options.duration = .seconds(40)
            options.clients = 3
            options.historyFile = lab.root.appendingPathComponent("history.jsonl").path
            let result = try await Torture(lab: lab, options: options).run()
            let kinds = Set(result.faults.map { $0.what.split(separator: " ").first.map(String.init) ?? "" })
            #expect(kinds.isSuperset(of: ["kill", "pause", "skew"]), "faults injected: \(result.faults)")
            #expect((result.report.counts["put ok"] ?? 0) > 100 && (result.report.counts["get ok"] ?? 0) > 100)
            #expect(
                result.report.anomalies.isEmpty,
                "\(result.report.anomalies.prefix(3).map { "\($0)\n" + $0.excerpt.map(HistoryFile.encode).joined(separator: "\n") })"
            )
            // The history on disk is what was checked.
            let text = try String(contentsOfFile: try #require(options.historyFile), encoding: .utf8)
            #expect(try HistoryFile.decode(text).count == result.operations * 2)
        }
    }
}
