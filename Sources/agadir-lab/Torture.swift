import AgadirCore
import AgadirLab
import ArgumentParser
import Foundation

struct TortureCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "torture",
        abstract: "Clients against a fresh lab while a seeded nemesis injects faults; then check the history.",
        discussion: """
            Makes a lab of one node in each of benguerir, casablanca and settat (policy ma: RF 3, \
            QUORUM) in a fresh root (unless --root), runs --clients clients doing PUT, GET, DELETE \
            and LIST at QUORUM over --keys keys with unique values for --duration seconds while \
            the nemesis injects one fault at a time (kill, pause, skew, partition, link: through relays \
            on every path between nodes; grow, drain: layout changes), heals every node, runs a \
            repair, reads every key at ALL and lists the bucket, and checks the history \
            (docs/consistency.md). Prints a table; on an anomaly, prints the shortest excerpt of \
            the history that shows it and exits 1. The history is written as JSON lines to \
            --history (default ROOT/history.jsonl).
            """)
    @Option(name: .long, help: "Seed of the nemesis and the clients' choices.") var seed: UInt64 = 1
    @Option(name: .long, help: "Seconds of operations under faults.") var duration: Int = 60
    @Option(name: .long, help: "Concurrent clients.") var clients: Int = 4
    @Option(name: .long, help: "Keys the clients share.") var keys: Int = 12
    @Option(
        name: .long, help: "Faults, comma-separated: kill, pause, skew, partition, link, grow, drain (none: no faults)."
    )
    var nemesis = "kill,pause,skew,partition,link"
    @Flag(
        name: .long,
        help:
            "Add a Paris node (outside policy ma): clients and the nemesis use it too, and its disk is scanned raw for the bucket afterwards."
    )
    var foreign = false
    @Option(name: .long, help: "Lab root (default: a fresh temporary directory, removed unless --keep).")
    var root: String?
    @Option(name: .long, help: "Where to write the history (JSON lines).") var history: String?
    @Flag(name: .long, help: "Keep the lab's directory (its logs and data) afterwards.") var keep = false

    func run() async throws {
        guard (1...86_400).contains(duration), (1...64).contains(clients), (1...10_000).contains(keys) else {
            throw ValidationError("--duration 1...86400, --clients 1...64, --keys 1...10000")
        }
        var faults: [Torture.Fault] = []
        for name in parseSites(nemesis) where name != "none" {
            guard let f = Torture.Fault(rawValue: name) else {
                throw ValidationError("unknown fault '\(name)'; use \(Torture.Fault.allCases.map(\.rawValue))")
            }
            faults.append(f)
        }
        let rootURL = root.map { URL(fileURLWithPath: $0) } ?? Lab.temporaryRoot()
        let lab = try await Lab.create(
            root: rootURL, sites: ["benguerir", "casablanca", "settat"] + (foreign ? ["paris"] : []), nodesPerSite: 1,
            relays: faults.contains { $0.needsRelays })
        var options = Torture.Options()
        options.seed = seed
        options.duration = .seconds(duration)
        options.clients = clients
        options.keys = keys
        options.faults = faults
        options.foreignNodes = foreign ? ["paris-1"] : []
        options.historyFile = history ?? rootURL.appendingPathComponent("history.jsonl").path
        let result: Torture.Result
        do {
            try await lab.up(waitForConvergence: true, timeout: .seconds(90))
            _ = try await lab.applyLayout(
                policies: [LabPolicy(name: "ma", replicationFactor: 3, sites: "country=MA", minSites: 2)],
                partitionCount: 16)
            result = try await Torture(lab: lab, options: options).run { print($0) }
        } catch {
            stderr("agadir-lab torture: \(error); the lab is at \(rootURL.path)")
            _ = try? await lab.down()
            throw ExitCode(2)
        }
        _ = try? await lab.down()
        print(Self.render(result, options: options))
        if !keep && result.clean && root == nil {
            try? FileManager.default.removeItem(at: rootURL)
        } else {
            print("lab root (logs, data, history): \(rootURL.path)")
        }
        if !result.clean { throw ExitCode(1) }
    }

    static func render(_ result: Torture.Result, options: Torture.Options) -> String {
        var lines: [String] = []
        lines.append("")
        lines.append(
            "| seed | faults | operations | keys | ok / fail / info | anomalies | divergent partitions | residency violations | foreign fragments |"
        )
        lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        let c = result.report.counts
        func sum(_ kind: String) -> Int { c.filter { $0.key.hasSuffix(" \(kind)") }.values.reduce(0, +) }
        lines.append(
            "| \(options.seed) | \(options.faults.map(\.rawValue).joined(separator: ",")) (\(result.faults.count / 2) injected) "
                + "| \(result.operations) | \(result.report.keys) | \(sum("ok")) / \(sum("fail")) / \(sum("info")) "
                + "| \(result.report.anomalies.count) | \(result.divergentPartitions) | \(result.residencyViolations) "
                + "| \(options.foreignNodes.isEmpty ? "not scanned" : "\(result.foreignFragments)") |"
        )
        lines.append("")
        for kind in ["put", "get", "delete", "list"] {
            lines.append(
                "  \(kind): ok \(c["\(kind) ok"] ?? 0), fail \(c["\(kind) fail"] ?? 0), info \(c["\(kind) info"] ?? 0)")
        }
        for a in result.report.anomalies.prefix(10) {
            lines.append("")
            lines.append("ANOMALY \(a)")
            for op in a.excerpt { lines.append("  " + HistoryFile.encode(op)) }
        }
        if result.report.anomalies.count > 10 { lines.append("... and \(result.report.anomalies.count - 10) more") }
        return lines.joined(separator: "\n")
    }
}
