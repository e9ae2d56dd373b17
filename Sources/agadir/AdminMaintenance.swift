import AgadirClient
import AgadirCore
import AgadirWire
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
        commandName: "status",
        abstract: "Each node's scrub: state, progress of the pass, corrupt chunks found and repaired.",
        discussion: "Exit code 0, or 1 when a node holds quarantined chunks no good copy has replaced yet.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let nodes = try await admin(options, Admin.scrubStatus)
        if options.json {
            printJSON(value: nodes)
        } else {
            print(
                table(
                    ["NODE", "STATE", "PASSES", "CHECKED", "CORRUPT", "REPAIRED", "QUARANTINED", "RATE"],
                    nodes.map { n in
                        guard let s = n.scrub else {
                            return [n.node, "unknown: \(n.error ?? "")", "", "", "", "", "", ""]
                        }
                        return [
                            n.node, s.state, "\(s.passes)", "\(s.chunksChecked) (\(formatBytes(s.bytesChecked)))",
                            "\(s.corruptFound)",
                            "\(s.repaired)", "\(s.quarantined)",
                            s.bytesPerSecond == 0 ? "off" : formatRate(UInt64(max(0, s.bytesPerSecond))),
                        ]
                    }))
        }
        let quarantined = nodes.reduce(0) { $0 + ($1.scrub?.quarantined ?? 0) }
        if quarantined > 0 { throw ExitCode(1) }
    }
}

struct ScrubStart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Start a scrub pass on every node now (and lift a pause).")
    @OptionGroup var options: GlobalOptions
    func run() async throws { try await maintenanceCall(options, Admin.scrubStart) }
}

struct ScrubPause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Pause the scrub on every node (until `scrub start`).")
    @OptionGroup var options: GlobalOptions
    func run() async throws { try await maintenanceCall(options, Admin.scrubPause) }
}

struct GarbageCollection: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract:
            "Garbage collection of chunks no object refers to any more (after the grace period, agadird --garbage-grace).",
        subcommands: [GarbageStatus.self, GarbageStart.self])
}

struct GarbageStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Each node's garbage collection.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let nodes = try await admin(options, Admin.gcStatus)
        if options.json {
            printJSON(value: nodes)
            return
        }
        print(
            table(
                [
                    "NODE", "STATE", "PASSES", "REFS DROPPED", "UNDECIDED", "CHUNKS RECLAIMED", "SEGMENTS COMPACTED",
                    "FREED",
                ],
                nodes.map { n in
                    guard let g = n.gc else { return [n.node, "unknown: \(n.error ?? "")", "", "", "", "", "", ""] }
                    return [
                        n.node, g.state, "\(g.passes)", "\(g.referencesDropped)", "\(g.referencesUndecided)",
                        "\(g.chunksReclaimed)",
                        "\(g.segmentsCompacted)", formatBytes(g.bytesFreed),
                    ]
                }))
    }
}

struct GarbageStart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Run a collection pass on every node now (the grace period still applies).")
    @OptionGroup var options: GlobalOptions
    func run() async throws { try await maintenanceCall(options, Admin.gcStart) }
}

func maintenanceCall(_ options: GlobalOptions, _ command: AdminCommand<Admin.Empty, Admin.MaintenanceView>) async throws
{
    let view = try await admin(options, command)
    if options.json {
        printJSON(value: view)
        return
    }
    print(
        "\(command.name): taken by \(view.reached.count) node(s)"
            + (view.unreached.isEmpty ? "" : "; not reached: \(view.unreached.joined(separator: ", "))"))
}
