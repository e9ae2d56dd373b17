import AgadirClient
import AgadirCore
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
            let answer = try await adminCall(options, "rebalance.status")
            let view = (answer as? [String: Any]) ?? [:]
            if options.json {
                if let data = try? JSONSerialization.data(withJSONObject: answer, options: watch ? [.sortedKeys] : [.sortedKeys, .prettyPrinted]) {
                    print(String(decoding: data, as: UTF8.self))
                }
            } else {
                if watch, terminal, !first { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                print(Self.render(view))
            }
            fflush(nil)  // each view shows at once, even when piped
            first = false
            let complete = (view["complete"] as? Bool) ?? false
            guard watch, !complete else { return }
            try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
        }
    }

    static func render(_ view: [String: Any]) -> String {
        func int(_ v: Any?) -> UInt64 { (v as? NSNumber)?.uint64Value ?? 0 }
        let live = ((view["liveVersions"] as? [Any]) ?? []).map { "\($0)" }.joined(separator: ", ")
        var lines = ["layout version \(view["layoutVersion"] ?? "?"), live versions: \(live)"]
        var rows: [[String]] = []
        for n in (view["nodes"] as? [[String: Any]]) ?? [] {
            let id = "\(n["node"] ?? "")"
            guard let s = n["status"] as? [String: Any] else {
                rows.append([id, "", "unknown: \(n["error"] ?? "")", "", "", "", "", ""])
                continue
            }
            let moved = (s["moved"] as? [String: Any]) ?? [:]
            let bytes = int(moved["manifestBytes"]) + int(moved["chunkBytes"])
            let waiting = ((s["waitingFor"] as? [String]) ?? []).joined(separator: ",")
            let skipped = ((s["skippedSources"] as? [String]) ?? []).joined(separator: ",")
            var note = waiting.isEmpty ? ((s["lastError"] as? String) ?? "") : "waiting for \(waiting)"
            if !skipped.isEmpty { note += (note.isEmpty ? "" : "; ") + "skipped removed \(skipped)" }
            rows.append([
                id, "\(s["site"] ?? "")", "\(s["state"] ?? "")", "\(s["partitionsDone"] ?? 0)/\(s["partitionsTotal"] ?? 0)",
                formatBytes(bytes), int(s["rateBytesPerSecond"]) == 0 ? "-" : formatRate(int(s["rateBytesPerSecond"])),
                formatSeconds((s["etaSeconds"] as? NSNumber)?.uint64Value),
                note,
            ])
        }
        lines.append(table(["NODE", "SITE", "STATE", "PARTITIONS", "MOVED", "RATE", "ETA", "NOTE"], rows))
        let left = (view["bytesLeftEstimate"] as? NSNumber).map { formatBytes($0.uint64Value) } ?? "unknown"
        lines.append(
            "total: \(view["partitionsDone"] ?? 0)/\(view["partitionsTotal"] ?? 0) partitions, \(formatBytes(int(view["bytesMoved"]))) moved, "
                + "about \(left) left, \(formatRate(int(view["rateBytesPerSecond"])) == "unlimited" ? "-" : formatRate(int(view["rateBytesPerSecond"]))), "
                + "ETA \(formatSeconds((view["etaSeconds"] as? NSNumber)?.uint64Value))")
        let settings = (view["settings"] as? [String: Any]) ?? [:]
        lines.append(
            "throttles: intra-site \(formatRate(int(settings["intraSiteBytesPerSecond"]))), inter-site \(formatRate(int(settings["interSiteBytesPerSecond"])))"
                + ((settings["paused"] as? Bool) == true ? "; PAUSED" : ""))
        lines.append((view["complete"] as? Bool) == true ? "rebalance complete" : "rebalance in progress")
        return lines.joined(separator: "\n")
    }
}

struct RebalanceSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set the rebalance throttles on every node (each node pulls at most this much per second).",
        discussion: "Rates take units: 200MB/s, 1GiB/s, or 0 / unlimited. A node that is down learns the settings from a peer when it is back.")
    @OptionGroup var options: GlobalOptions
    @Option(name: .customLong("rate-intra-site"), help: "Pull rate from nodes of the same site.") var intra: String?
    @Option(name: .customLong("rate-inter-site"), help: "Pull rate from nodes of other sites.") var inter: String?

    func run() async throws {
        guard intra != nil || inter != nil else { throw ValidationError("give --rate-intra-site, --rate-inter-site or both") }
        var input: [String: Any] = [:]
        if let intra { input["intraSiteBytesPerSecond"] = try parseRate(intra) }
        if let inter { input["interSiteBytesPerSecond"] = try parseRate(inter) }
        try await rebalanceSet(options, input)
    }
}

struct RebalancePause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Pause the data movement on every node (writes keep reaching both layout versions).")
    @OptionGroup var options: GlobalOptions
    func run() async throws { try await rebalanceSet(options, ["paused": true]) }
}

struct RebalanceResume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Resume the data movement on every node.")
    @OptionGroup var options: GlobalOptions
    func run() async throws { try await rebalanceSet(options, ["paused": false]) }
}

func rebalanceSet(_ options: GlobalOptions, _ input: [String: Any]) async throws {
    let answer = try await adminCall(options, "rebalance.set", input)
    if options.json {
        printRawJSON(answer)
        return
    }
    let view = (answer as? [String: Any]) ?? [:]
    let settings = (view["settings"] as? [String: Any]) ?? [:]
    func int(_ v: Any?) -> UInt64 { (v as? NSNumber)?.uint64Value ?? 0 }
    print(
        "throttles: intra-site \(formatRate(int(settings["intraSiteBytesPerSecond"]))), inter-site \(formatRate(int(settings["interSiteBytesPerSecond"])))"
            + ((settings["paused"] as? Bool) == true ? "; PAUSED" : "; running"))
    let reached = (view["reached"] as? [String]) ?? []
    let unreached = (view["unreached"] as? [String]) ?? []
    print("taken by \(reached.count) node(s)" + (unreached.isEmpty ? "" : "; not reached now (they learn it from a peer later): \(unreached.joined(separator: ", "))"))
}
