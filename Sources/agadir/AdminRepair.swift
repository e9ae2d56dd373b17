import AgadirClient
import AgadirCore
import AgadirWire
import ArgumentParser
import Foundation

// MARK: - agadir admin repair

struct Repair: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Anti-entropy: compare the replicas of each partition and copy what differs.",
        subcommands: [RepairStart.self, RepairStatus.self], defaultSubcommand: RepairStart.self)
}

struct RepairStart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start a pass on every node now (all partitions, one bucket's policy, or one partition).",
        discussion: """
            Each node compares every partition it holds with the other replicas and pulls missing or \
            older manifests and missing chunks; delete markers older than the grace period are purged \
            where every replica agrees. With --wait, returns when every node has finished (exit 0), or \
            exit 1 when some partition could not be compared with all its replicas.
            """)
    @OptionGroup var options: GlobalOptions
    @Option(name: .long, help: "Only the partitions of this bucket's policy.") var bucket: String?
    @Option(name: .long, help: "Only this partition number.") var partition: Int?
    @Flag(name: .long, help: "Wait until every node has finished the pass.") var wait = false
    @Option(name: .long, help: "Seconds to wait at most with --wait.") var timeout: Double = 3600

    func run() async throws {
        guard timeout > 0, timeout <= 86_400 else { throw ValidationError("--timeout must be 1 to 86400 seconds") }
        func passes(_ nodes: [Admin.RepairNodeView]) -> [String: Int] {
            var out: [String: Int] = [:]
            for n in nodes { if let r = n.repair { out[n.node] = r.passes } }
            return out
        }
        let before = wait ? passes(try await admin(options, Admin.repairStatus)) : [:]
        let view = try await admin(
            options, Admin.repairStart, Admin.RepairRequest(bucket: bucket, partition: partition))
        if !options.json {
            print(
                "repair started on \(view.reached.count) node(s)"
                    + (view.unreached.isEmpty ? "" : "; not reached: \(view.unreached.joined(separator: ", "))"))
        }
        guard wait else {
            if options.json { printJSON(value: view) }
            return
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int(timeout * 1000))
        while clock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
            let status = try await admin(options, Admin.repairStatus)
            let now = passes(status)
            if view.reached.allSatisfy({ (now[$0] ?? 0) > (before[$0] ?? 0) }) {
                if options.json { printJSON(value: status) } else { print(RepairStatus.render(status)) }
                let incomplete = status.reduce(0) { $0 + ($1.repair?.partitionsIncomplete ?? 0) }
                if incomplete > 0 || !view.unreached.isEmpty { throw ExitCode(1) }
                return
            }
        }
        stderr("agadir: the repair did not finish within \(Int(timeout)) s; see `agadir admin repair status`")
        throw ExitCode(1)
    }
}

struct RepairStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Each node's last or running anti-entropy pass.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let status = try await admin(options, Admin.repairStatus)
        if options.json { printJSON(value: status) } else { print(Self.render(status)) }
    }

    static func render(_ nodes: [Admin.RepairNodeView]) -> String {
        var rows: [[String]] = []
        for n in nodes {
            guard let r = n.repair else {
                rows.append([n.node, "unknown: \(n.error ?? "")", "", "", "", "", "", ""])
                continue
            }
            let copied = "\(r.manifestsCopied) manifests, \(r.chunksCopied) chunks"
            let unreachable = r.unreachable.joined(separator: ",")
            rows.append([
                n.node, r.state, "\(r.passes)", "\(r.partitionsChecked)/\(r.partitionsTotal)",
                "\(r.partitionsRepaired)", copied,
                "\(r.tombstonesPurged)", unreachable.isEmpty ? (r.lastError ?? "") : "unreachable: \(unreachable)",
            ])
        }
        return table(["NODE", "STATE", "PASSES", "CHECKED", "REPAIRED", "COPIED", "PURGED", "NOTE"], rows)
    }
}
