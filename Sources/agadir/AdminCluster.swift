import AgadirClient
import AgadirCore
import AgadirWire
import ArgumentParser
import Foundation

// MARK: - Plumbing for admin commands (JSON in, JSON out)

/// Runs an ADMIN command and returns its parsed JSON answer; prints the raw JSON with --json.
func adminCall(_ options: GlobalOptions, _ command: String, _ input: [String: Any] = [:]) async throws -> Any {
    var answer: [UInt8] = []
    try await withClient(options) { client in
        let body = try JSONSerialization.data(withJSONObject: input, options: [.sortedKeys])
        answer = try await client.admin(command, input: Array(body))
    }
    guard let parsed = try? JSONSerialization.jsonObject(with: Data(answer)) else {
        stderr("agadir: the node's answer to \(command) is not JSON")
        throw ExitCode(1)
    }
    return parsed
}

func printRawJSON(_ object: Any) {
    if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]) {
        print(String(decoding: data, as: UTF8.self))
    }
}

/// A table with a header row, columns padded to the widest cell.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max() ?? 0 }
    return ([header] + rows).map { row in
        row.indices.map { c in c == row.count - 1 ? row[c] : row[c].padding(toLength: widths[c], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n")
}

/// `1TB`, `500G`, `2TiB`, `1048576`: decimal units (KB, MB, GB, TB, PB; K, M, G, T, P) and
/// binary ones (KiB ... PiB).
func parseCapacity(_ text: String) throws -> UInt64 {
    let t = text.trimmingCharacters(in: .whitespaces)
    let digits = t.prefix { $0.isNumber || $0 == "." }
    let unit = t.dropFirst(digits.count).lowercased()
    guard let number = Double(digits), number >= 0 else { throw ValidationError("capacity '\(text)' is not a number with a unit such as 1TB or 500GiB") }
    let multipliers: [String: Double] = [
        "": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12, "p": 1e15, "pb": 1e15,
        "kib": 1024, "mib": 1_048_576, "gib": 1_073_741_824, "tib": 1_099_511_627_776, "pib": 1_125_899_906_842_624,
    ]
    guard let m = multipliers[unit] else { throw ValidationError("capacity unit '\(unit)' is unknown; use KB, MB, GB, TB, PB or KiB ... PiB") }
    let bytes = number * m
    guard bytes < 1.8e19 else { throw ValidationError("capacity '\(text)' is too large") }
    return UInt64(bytes)
}

func formatBytes(_ n: UInt64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB"]
    var v = Double(n)
    var i = 0
    while v >= 1000, i < units.count - 1 {
        v /= 1000
        i += 1
    }
    return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
}

func parseLabels(_ items: [String]) throws -> [String: String] {
    var out: [String: String] = [:]
    for item in items {
        let parts = item.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("label '\(item)' must be KEY=VALUE") }
        out[String(parts[0])] = String(parts[1])
    }
    return out
}

// MARK: - agadir admin layout

struct Layout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show and change the cluster layout (sites, nodes, capacities, partition maps).",
        discussion: """
            Changes are staged on the node you talk to; `plan` shows what they would move and `apply --version N`
            commits them as layout version N (the current version + 1), which gossip spreads to every node.
            Stage, plan and apply through the same node.
            """,
        subcommands: [
            LayoutShow.self, LayoutAssign.self, LayoutRemove.self, LayoutSite.self, LayoutPartitions.self, LayoutPlan.self,
            LayoutApply.self, LayoutRevert.self, LayoutHistory.self,
        ])
}

struct LayoutShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show the current layout and the staged changes.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let view = try await adminCall(options, "layout.show")
        if options.json { printRawJSON(view) } else { print(Self.render(view)) }
    }

    static func render(_ any: Any) -> String {
        guard let v = any as? [String: Any] else { return "\(any)" }
        var out: [String] = []
        let live = (v["liveVersions"] as? [Any])?.map { "\($0)" }.joined(separator: ", ") ?? ""
        out.append("layout version \(v["version"] ?? 0), \(v["partitionCount"] ?? 0) partitions, live versions: \(live)")
        let sites = (v["sites"] as? [[String: Any]]) ?? []
        if !sites.isEmpty {
            out.append("")
            out.append(table(["SITE", "LABELS"], sites.map { s in
                let labels = (s["labels"] as? [String: String] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                return ["\(s["name"] ?? "")", labels.joined(separator: ",")]
            }))
        }
        let nodes = (v["nodes"] as? [[String: Any]]) ?? []
        if !nodes.isEmpty {
            out.append("")
            out.append(table(["NODE", "SITE", "CAPACITY", "STATE", "PARTITIONS"], nodes.map { n in
                let parts = (n["partitions"] as? [String: Int] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }
                return [
                    "\(n["id"] ?? "")", "\(n["site"] ?? "")", formatBytes((n["capacity"] as? NSNumber)?.uint64Value ?? 0),
                    "\(n["state"] ?? "")", parts.joined(separator: " "),
                ]
            }))
        }
        let policies = (v["policies"] as? [[String: Any]]) ?? []
        if !policies.isEmpty {
            out.append("")
            out.append(PolicyList.render(policies))
        }
        let staged = (v["staged"] as? [String]) ?? []
        out.append("")
        if staged.isEmpty {
            out.append("no staged changes")
        } else {
            out.append("staged changes (see `agadir admin layout plan`):")
            for s in staged { out.append("  \(s)") }
        }
        if let p = v["stagedPartitionCount"] { out.append("  partition count \(p)") }
        for w in (v["warnings"] as? [String]) ?? [] { out.append("warning: \(w)") }
        return out.joined(separator: "\n")
    }
}

struct LayoutAssign: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assign", abstract: "Stage a node's site and capacity (adds the node, or changes it).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Node id (as `agadir admin members` shows it).") var node: String
    @Option(name: .long, help: "Site (data centre) of the node.") var site: String
    @Option(name: .long, help: "Capacity, e.g. 4TB or 500GiB; 0 makes a gateway that stores nothing.") var capacity: String
    @Option(name: .long, help: "Label of the node's site, KEY=VALUE (repeatable), e.g. country=MA.") var siteLabel: [String] = []

    func run() async throws {
        var input: [String: Any] = ["node": node, "site": site, "capacity": try parseCapacity(capacity)]
        if !siteLabel.isEmpty { input["siteLabels"] = try parseLabels(siteLabel) }
        let view = try await adminCall(options, "layout.assign", input)
        if options.json { printRawJSON(view) } else { print(LayoutShow.render(view)) }
    }
}

struct LayoutRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Stage the removal of a node from the layout.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Node id.") var node: String

    func run() async throws {
        let view = try await adminCall(options, "layout.remove", ["node": node])
        if options.json { printRawJSON(view) } else { print(LayoutShow.render(view)) }
    }
}

struct LayoutSite: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "site", abstract: "Stage a site's labels (they decide which policies may use it).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Site name.") var site: String
    @Option(name: .long, help: "Label KEY=VALUE (repeatable), e.g. country=MA.") var label: [String] = []

    func run() async throws {
        let view = try await adminCall(options, "layout.site", ["site": site, "labels": try parseLabels(label)])
        if options.json { printRawJSON(view) } else { print(LayoutShow.render(view)) }
    }
}

struct LayoutPartitions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "partitions", abstract: "Stage the partition count (only before the first apply; default 256).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "A power of two from 8 to 65536.") var count: Int

    func run() async throws {
        let view = try await adminCall(options, "layout.partitions", ["count": count])
        if options.json { printRawJSON(view) } else { print(LayoutShow.render(view)) }
    }
}

struct LayoutPlan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Show what applying the staged changes would move, or which policy they cannot satisfy.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let plan = try await adminCall(options, "layout.plan")
        if options.json { printRawJSON(plan) } else { print(Self.render(plan)) }
    }

    static func render(_ any: Any) -> String {
        guard let p = any as? [String: Any] else { return "\(any)" }
        var out = ["layout version \(p["fromVersion"] ?? 0) -> \(p["toVersion"] ?? 0): \(p["totalPartitionsMoved"] ?? 0) partitions move"]
        let policies = (p["policies"] as? [[String: Any]]) ?? []
        if !policies.isEmpty {
            out.append("")
            out.append(table(["POLICY", "PARTITIONS MOVED", "REPLICAS MOVED"], policies.map {
                ["\($0["policy"] ?? "")", "\($0["partitionsMoved"] ?? 0)", "\($0["replicasMoved"] ?? 0)"]
            }))
        }
        let links = (p["links"] as? [[String: Any]]) ?? []
        out.append("")
        if links.isEmpty {
            out.append("no data crosses a link")
        } else {
            out.append(table(["FROM SITE", "TO SITE", "ESTIMATED BYTES"], links.map {
                ["\($0["from"] ?? "")", "\($0["to"] ?? "")", formatBytes(($0["bytes"] as? NSNumber)?.uint64Value ?? 0)]
            }))
        }
        if let layout = p["layout"] {
            out.append("")
            out.append(LayoutShow.render(layout))
        }
        return out.joined(separator: "\n")
    }
}

struct LayoutApply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply", abstract: "Commit the staged changes as layout version N (the current version + 1).")
    @OptionGroup var options: GlobalOptions
    @Option(name: .long, help: "The version to create: the current version + 1 (a stale number is refused).") var version: UInt64

    func run() async throws {
        let plan = try await adminCall(options, "layout.apply", ["version": version])
        if options.json { printRawJSON(plan) } else {
            print("applied layout version \(version)")
            print(LayoutPlan.render(plan))
        }
    }
}

struct LayoutRevert: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revert", abstract: "Discard the staged changes.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let view = try await adminCall(options, "layout.revert")
        if options.json { printRawJSON(view) } else { print(LayoutShow.render(view)) }
    }
}

struct LayoutHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "List the applied layout versions.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let history = try await adminCall(options, "layout.history")
        if options.json { printRawJSON(history); return }
        let rows = ((history as? [[String: Any]]) ?? []).map { h in
            ["\(h["version"] ?? 0)", isoDate(millis: (h["appliedMillis"] as? NSNumber)?.uint64Value ?? 0), "\(h["summary"] ?? "")"]
        }
        print(rows.isEmpty ? "no layout applied yet" : table(["VERSION", "APPLIED", "CHANGES"], rows))
    }
}

// MARK: - agadir admin policy

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Placement policies: replication, eligible sites, consistency, codec.",
        subcommands: [PolicyCreate.self, PolicyList.self, PolicyShow.self])
}

struct PolicyCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Stage a new policy (policies are immutable once applied).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Policy name (1-63 of a-z, 0-9, '-').") var name: String
    @Option(name: .long, help: "Replication factor (1-7).") var rf: Int = 3
    @Option(name: .long, help: "Eligible sites: any, a label selector such as country=MA, or sites=a,b.") var sites = "any"
    @Option(name: .long, help: "Minimum distinct sites per partition.") var minSites: Int = 1
    @Option(name: .long, help: "Default read consistency.") var read = "QUORUM"
    @Option(name: .long, help: "Default write consistency.") var write = "QUORUM"
    @Option(name: .long, help: "Codec: lz4, zlib or raw.") var codec = "lz4"
    @Flag(name: .long, help: "Apply at once as the next layout version (when nothing else is staged).") var apply = false

    func run() async throws {
        let input: [String: Any] = [
            "name": name, "replicationFactor": rf, "sites": sites, "minSites": minSites, "read": read, "write": write,
            "codec": codec, "apply": apply,
        ]
        let answer = try await adminCall(options, "policy.create", input)
        if options.json { printRawJSON(answer); return }
        print(apply ? "policy \(name) created and applied" : "policy \(name) staged; apply it with `agadir admin layout apply`")
        print(apply ? LayoutPlan.render(answer) : LayoutShow.render(answer))
    }
}

struct PolicyList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the policies of the current layout.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let list = try await adminCall(options, "policy.list")
        if options.json { printRawJSON(list) } else { print(Self.render((list as? [[String: Any]]) ?? [])) }
    }

    static func render(_ policies: [[String: Any]]) -> String {
        table(["POLICY", "RF", "SITES", "MIN SITES", "READ", "WRITE", "CODEC", "ELIGIBLE NODES", "ELIGIBLE SITES"], policies.map { p in
            [
                "\(p["name"] ?? "")", "\(p["replicationFactor"] ?? "")", "\(p["sites"] ?? "")", "\(p["minSites"] ?? "")",
                "\(p["read"] ?? "")", "\(p["write"] ?? "")", "\(p["codec"] ?? "")", "\(p["eligibleNodes"] ?? "")",
                ((p["eligibleSites"] as? [String]) ?? []).joined(separator: ","),
            ]
        })
    }
}

struct PolicyShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one policy.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Policy name.") var name: String

    func run() async throws {
        let p = try await adminCall(options, "policy.show", ["name": name])
        if options.json { printRawJSON(p) } else { print(PolicyList.render([(p as? [String: Any]) ?? [:]])) }
    }
}

// MARK: - agadir admin audit

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Audits of the cluster.", subcommands: [AuditResidency.self])
}

struct AuditResidency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "residency",
        abstract: "Ask every node what it stores and report anything found outside its policy's sites.",
        discussion: "Exit code 0 when every node was audited and nothing is misplaced, 9 when something is, 1 when a node could not be audited.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let answer = try await adminCall(options, "audit.residency")
        let nodes = (answer as? [[String: Any]]) ?? []
        let violations = nodes.reduce(0) { $0 + (($1["violationCount"] as? Int) ?? 0) }
        let failed = nodes.filter { $0["error"] != nil }
        if options.json {
            printRawJSON(answer)
        } else {
            print(table(["NODE", "SITE", "MANIFESTS", "CHUNKS", "HINTS", "UNATTRIBUTED", "VIOLATIONS"], nodes.map { n in
                [
                    "\(n["node"] ?? "")", "\(n["site"] ?? "")", "\(n["manifests"] ?? 0)", "\(n["chunks"] ?? 0)", "\(n["hints"] ?? 0)",
                    "\(n["unattributedChunks"] ?? 0)", n["error"].map { "not audited: \($0)" } ?? "\(n["violationCount"] ?? 0)",
                ]
            }))
            for n in nodes {
                for v in (n["violations"] as? [[String: Any]]) ?? [] {
                    let what = (v["key"] as? String).map { "object \(v["bucket"] ?? "")/\($0)" }
                        ?? (v["chunk"] as? String).map { "chunk \($0) of bucket \(v["bucket"] ?? "")" } ?? "hint for bucket \(v["bucket"] ?? "")"
                    print("VIOLATION on \(n["node"] ?? ""): \(v["kind"] ?? "") \(what) (policy \(v["policy"] ?? "")): \(v["reason"] ?? "")")
                }
            }
            print(violations == 0 ? "no data outside its policy's sites" : "\(violations) item(s) outside their policy's sites")
        }
        if violations > 0 { throw ExitCode(9) }
        if !failed.isEmpty { throw ExitCode(1) }
    }
}
