import AgadirClient
import AgadirCore
import AgadirWire
import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - agadir admin rebalance

struct Rebalance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch and steer the data movement that follows a layout change.",
        subcommands: [RebalanceStatus.self, RebalanceSet.self, RebalancePause.self, RebalanceResume.self])
}

/// `200MB/s`, `1GiB/s`, `50000000`, `0` or `unlimited` (0): bytes per second.
func parseRate(_ text: String) throws -> UInt64 {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    if t == "unlimited" || t == "0" { return 0 }
    let bare = t.hasSuffix("/s") ? String(t.dropLast(2)) : t
    return try parseCapacity(bare)
}

func formatRate(_ n: UInt64) -> String { n == 0 ? "unlimited" : formatBytes(n) + "/s" }

func formatSeconds(_ s: UInt64?) -> String {
    guard let s else { return "-" }
    if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
    if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
    return "\(s)s"
}

struct RebalanceStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Partitions and bytes moved and left, per node and in total, with the rate and an ETA.",
        discussion: """
            With --watch the view is redrawn every --interval seconds until the rebalance is complete \
            (one version live, every node done dropping what it no longer owns); with --json each view \
            is one JSON object per line. Exit code 0; with --watch, 0 once complete.
            """)
    @OptionGroup var options: GlobalOptions
    @Flag(name: .long, help: "Redraw until the rebalance is complete.") var watch = false
    @Option(name: .long, help: "Seconds between views with --watch.") var interval: Double = 1

    func run() async throws {
        guard interval >= 0.1, interval <= 3600 else { throw ValidationError("--interval must be 0.1 to 3600 seconds") }
        let terminal = isatty(STDOUT_FILENO) == 1
        var first = true
        while true {
            let view = try await admin(options, Admin.rebalanceStatus)
            if options.json {
                printJSON(value: view, pretty: !watch)
            } else {
                if watch, terminal, !first { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                print(Self.render(view))
            }
            fflush(nil)  // each view shows at once, even when piped
            first = false
            guard watch, !view.complete else { return }
            try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
        }
    }

    static func render(_ view: Admin.RebalanceView) -> String {
        let live = view.liveVersions.map(String.init).joined(separator: ", ")
        var lines = ["layout version \(view.layoutVersion), live versions: \(live)"]
        var rows: [[String]] = []
        for n in view.nodes {
            guard let s = n.status else {
                rows.append([n.node, "", "unknown: \(n.error ?? "")", "", "", "", "", ""])
                continue
            }
            let waiting = s.waitingFor.joined(separator: ",")
            let skipped = (s.skippedSources ?? []).joined(separator: ",")
            var note = waiting.isEmpty ? (s.lastError ?? "") : "waiting for \(waiting)"
            if !skipped.isEmpty { note += (note.isEmpty ? "" : "; ") + "skipped removed \(skipped)" }
            rows.append([
                n.node, s.site, s.state, "\(s.partitionsDone)/\(s.partitionsTotal)", formatBytes(s.moved.bytes),
                s.rateBytesPerSecond == 0 ? "-" : formatRate(s.rateBytesPerSecond), formatSeconds(s.etaSeconds), note,
            ])
        }
        lines.append(table(["NODE", "SITE", "STATE", "PARTITIONS", "MOVED", "RATE", "ETA", "NOTE"], rows))
        let left = view.bytesLeftEstimate.map(formatBytes) ?? "unknown"
        lines.append(
            "total: \(view.partitionsDone)/\(view.partitionsTotal) partitions, \(formatBytes(view.bytesMoved)) moved, "
                + "about \(left) left, \(view.rateBytesPerSecond == 0 ? "-" : formatRate(view.rateBytesPerSecond)), "
                + "ETA \(formatSeconds(view.etaSeconds))")
        lines.append(throttles(view.settings) + (view.settings.paused ? "; PAUSED" : ""))
        lines.append(view.complete ? "rebalance complete" : "rebalance in progress")
        return lines.joined(separator: "\n")
    }
}

func throttles(_ s: RebalanceSettings) -> String {
    "throttles: intra-site \(formatRate(s.intraSiteBytesPerSecond)), inter-site \(formatRate(s.interSiteBytesPerSecond))"
}

struct RebalanceSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set the rebalance throttles on every node (each node pulls at most this much per second).",
        discussion:
            "Rates take units: 200MB/s, 1GiB/s, or 0 / unlimited. A node that is down learns the settings from a peer when it is back."
    )
    @OptionGroup var options: GlobalOptions
    @Option(name: .customLong("rate-intra-site"), help: "Pull rate from nodes of the same site.") var intra: String?
    @Option(name: .customLong("rate-inter-site"), help: "Pull rate from nodes of other sites.") var inter: String?

    func run() async throws {
        guard intra != nil || inter != nil else {
            throw ValidationError("give --rate-intra-site, --rate-inter-site or both")
        }
        try await rebalanceSet(
            options,
            Admin.RebalanceChange(
                intraSiteBytesPerSecond: try intra.map(parseRate), interSiteBytesPerSecond: try inter.map(parseRate)))
    }
}

struct RebalancePause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Pause the data movement on every node (writes keep reaching both layout versions).")
    @OptionGroup var options: GlobalOptions
    func run() async throws { try await rebalanceSet(options, Admin.RebalanceChange(paused: true)) }
}

struct RebalanceResume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Resume the data movement on every node.")
    @OptionGroup var options: GlobalOptions
    func run() async throws { try await rebalanceSet(options, Admin.RebalanceChange(paused: false)) }
}

func rebalanceSet(_ options: GlobalOptions, _ change: Admin.RebalanceChange) async throws {
    let view = try await admin(options, Admin.rebalanceSet, change)
    if options.json {
        printJSON(value: view)
        return
    }
    print(throttles(view.settings) + (view.settings.paused ? "; PAUSED" : "; running"))
    print(
        "taken by \(view.reached.count) node(s)"
            + (view.unreached.isEmpty
                ? "" : "; not reached now (they learn it from a peer later): \(view.unreached.joined(separator: ", "))")
    )
}
