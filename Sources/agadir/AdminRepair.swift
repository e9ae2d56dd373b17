import AgadirClient
import AgadirCore
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
        func passes(_ answer: Any) -> [String: Int] {
            var out: [String: Int] = [:]
            for n in (answer as? [[String: Any]]) ?? [] {
                if let id = n["node"] as? String, let r = n["repair"] as? [String: Any] { out[id] = (r["passes"] as? Int) ?? 0 }
            }
            return out
        }
        let before = wait ? passes(try await adminCall(options, "repair.status")) : [:]
        var input: [String: Any] = [:]
        if let bucket { input["bucket"] = bucket }
        if let partition { input["partition"] = partition }
        let answer = try await adminCall(options, "repair.start", input)
        let view = (answer as? [String: Any]) ?? [:]
        let reached = (view["reached"] as? [String]) ?? []
        let unreached = (view["unreached"] as? [String]) ?? []
        if !options.json {
            print("repair started on \(reached.count) node(s)" + (unreached.isEmpty ? "" : "; not reached: \(unreached.joined(separator: ", "))"))
        }
        guard wait else {
            if options.json { printRawJSON(answer) }
            return
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int(timeout * 1000))
        while clock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
            let status = try await adminCall(options, "repair.status")
            let now = passes(status)
            if reached.allSatisfy({ (now[$0] ?? 0) > (before[$0] ?? 0) }) {
                if options.json { printRawJSON(status) } else { print(RepairStatus.render(status)) }
                let incomplete = ((status as? [[String: Any]]) ?? []).reduce(0) {
                    $0 + ((($1["repair"] as? [String: Any])?["partitionsIncomplete"] as? Int) ?? 0)
                }
                if incomplete > 0 || !unreached.isEmpty { throw ExitCode(1) }
                return
            }
        }
        stderr("agadir: the repair did not finish within \(Int(timeout)) s; see `agadir admin repair status`")
        throw ExitCode(1)
    }
}

struct RepairStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Each node's last or running anti-entropy pass.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let answer = try await adminCall(options, "repair.status")
        if options.json { printRawJSON(answer) } else { print(Self.render(answer)) }
    }

    static func render(_ answer: Any) -> String {
        var rows: [[String]] = []
        for n in (answer as? [[String: Any]]) ?? [] {
            let id = "\(n["node"] ?? "")"
            guard let r = n["repair"] as? [String: Any] else {
                rows.append([id, "unknown: \(n["error"] ?? "")", "", "", "", "", "", ""])
                continue
            }
            let copied = "\(r["manifestsCopied"] ?? 0) manifests, \(r["chunksCopied"] ?? 0) chunks"
            let unreachable = ((r["unreachable"] as? [String]) ?? []).joined(separator: ",")
            rows.append([
                id, "\(r["state"] ?? "")", "\(r["passes"] ?? 0)", "\(r["partitionsChecked"] ?? 0)/\(r["partitionsTotal"] ?? 0)",
                "\(r["partitionsRepaired"] ?? 0)", copied, "\(r["tombstonesPurged"] ?? 0)",
                unreachable.isEmpty ? ((r["lastError"] as? String) ?? "") : "unreachable: \(unreachable)",
            ])
        }
        return table(["NODE", "STATE", "PASSES", "CHECKED", "REPAIRED", "COPIED", "PURGED", "NOTE"], rows)
    }
}
