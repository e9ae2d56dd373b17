import AgadirClient
import AgadirCore
import ArgumentParser
import Foundation

// MARK: - agadir admin scrub / gc

struct Scrub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The background re-verification of every stored chunk.",
        discussion: """
            Each node re-reads its chunks at its scrub rate (agadird --scrub-rate), re-hashes them, \
            quarantines a corrupt one and replaces it with a verified copy from another replica.
            """,
        subcommands: [ScrubStatus.self, ScrubStart.self, ScrubPause.self])
}

struct ScrubStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Each node's scrub: state, progress of the pass, corrupt chunks found and repaired.",
        discussion: "Exit code 0, or 1 when a node holds quarantined chunks no good copy has replaced yet.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let answer = try await adminCall(options, "scrub.status")
        let nodes = (answer as? [[String: Any]]) ?? []
        if options.json {
            printRawJSON(answer)
        } else {
            print(table(["NODE", "STATE", "PASSES", "CHECKED", "CORRUPT", "REPAIRED", "QUARANTINED", "RATE"], nodes.map { n in
                guard let s = n["scrub"] as? [String: Any] else { return ["\(n["node"] ?? "")", "unknown: \(n["error"] ?? "")", "", "", "", "", "", ""] }
                let bytes = (s["bytesChecked"] as? NSNumber)?.uint64Value ?? 0
                let rate = (s["bytesPerSecond"] as? NSNumber)?.uint64Value ?? 0
                return [
                    "\(n["node"] ?? "")", "\(s["state"] ?? "")", "\(s["passes"] ?? 0)", "\(s["chunksChecked"] ?? 0) (\(formatBytes(bytes)))",
                    "\(s["corruptFound"] ?? 0)", "\(s["repaired"] ?? 0)", "\(s["quarantined"] ?? 0)", rate == 0 ? "off" : formatRate(rate),
                ]
            }))
        }
        let quarantined = nodes.reduce(0) { $0 + ((($1["scrub"] as? [String: Any])?["quarantined"] as? Int) ?? 0) }
        if quarantined > 0 { throw ExitCode(1) }
    }
}

struct ScrubStart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a scrub pass on every node now (and lift a pause).")
    @OptionGroup var options: GlobalOptions
    func run() async throws { try await maintenanceCall(options, "scrub.start") }
}

struct ScrubPause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Pause the scrub on every node (until `scrub start`).")
    @OptionGroup var options: GlobalOptions
    func run() async throws { try await maintenanceCall(options, "scrub.pause") }
}

struct GarbageCollection: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Garbage collection of chunks no object refers to any more (after the grace period, agadird --garbage-grace).",
        subcommands: [GarbageStatus.self, GarbageStart.self])
}

struct GarbageStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Each node's garbage collection.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let answer = try await adminCall(options, "gc.status")
        if options.json {
            printRawJSON(answer)
            return
        }
        let nodes = (answer as? [[String: Any]]) ?? []
        print(table(["NODE", "STATE", "PASSES", "REFS DROPPED", "UNDECIDED", "CHUNKS RECLAIMED", "SEGMENTS COMPACTED", "FREED"], nodes.map { n in
            guard let g = n["gc"] as? [String: Any] else { return ["\(n["node"] ?? "")", "unknown: \(n["error"] ?? "")", "", "", "", "", "", ""] }
            return [
                "\(n["node"] ?? "")", "\(g["state"] ?? "")", "\(g["passes"] ?? 0)", "\(g["referencesDropped"] ?? 0)",
                "\(g["referencesUndecided"] ?? 0)", "\(g["chunksReclaimed"] ?? 0)", "\(g["segmentsCompacted"] ?? 0)",
                formatBytes((g["bytesFreed"] as? NSNumber)?.uint64Value ?? 0),
            ]
        }))
    }
}

struct GarbageStart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Run a collection pass on every node now (the grace period still applies).")
    @OptionGroup var options: GlobalOptions
    func run() async throws { try await maintenanceCall(options, "gc.start") }
}

func maintenanceCall(_ options: GlobalOptions, _ command: String) async throws {
    let answer = try await adminCall(options, command)
    if options.json {
        printRawJSON(answer)
        return
    }
    let view = (answer as? [String: Any]) ?? [:]
    let reached = (view["reached"] as? [String]) ?? []
    let unreached = (view["unreached"] as? [String]) ?? []
    print("\(command): taken by \(reached.count) node(s)" + (unreached.isEmpty ? "" : "; not reached: \(unreached.joined(separator: ", "))"))
}
