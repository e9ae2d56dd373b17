import AgadirClient
import AgadirCore
import AgadirWire
import ArgumentParser
import Foundation

/// `1TB`, `500G`, `2TiB`, `1048576`: decimal units (KB, MB, GB, TB, PB; K, M, G, T, P) and
/// binary ones (KiB ... PiB).
func parseCapacity(_ text: String) throws -> UInt64 {
    let t = text.trimmingCharacters(in: .whitespaces)
    if let exact = UInt64(t) { return exact }  // a byte count, exactly (no rounding through Double)
    let digits = t.prefix { $0.isNumber || $0 == "." }
    let unit = t.dropFirst(digits.count).lowercased()
    guard let number = Double(digits), number >= 0 else {
        throw ValidationError("capacity '\(text)' is not a number with a unit such as 1TB or 500GiB")
    }
    let multipliers: [String: Double] = [
        "": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12, "p": 1e15,
        "pb": 1e15,
        "kib": 1024, "mib": 1_048_576, "gib": 1_073_741_824, "tib": 1_099_511_627_776, "pib": 1_125_899_906_842_624,
    ]
    guard let m = multipliers[unit] else {
        throw ValidationError("capacity unit '\(unit)' is unknown; use KB, MB, GB, TB, PB or KiB ... PiB")
    }
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
            LayoutShow.self, LayoutAssign.self, LayoutRemove.self, LayoutSite.self, LayoutPartitions.self,
            LayoutPlan.self,
            LayoutApply.self, LayoutRevert.self, LayoutHistory.self,
        ])
}

struct LayoutShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show the current layout and the staged changes.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let view = try await admin(options, Admin.layoutShow)
        if options.json { printJSON(value: view) } else { print(Self.render(view)) }
    }

    static func render(_ v: Admin.LayoutView) -> String {
        var out: [String] = []
        out.append(
            "layout version \(v.version), \(v.partitionCount) partitions, live versions: "
                + v.liveVersions.map(String.init).joined(separator: ", "))
        if !v.sites.isEmpty {
            out.append("")
            out.append(
                table(
                    ["SITE", "LABELS"],
                    v.sites.map { s in
                        [
                            s.name,
                            s.labels.labelText,
                        ]
                    }))
        }
        if !v.nodes.isEmpty {
            out.append("")
            out.append(
                table(
                    ["NODE", "SITE", "CAPACITY", "STATE", "PARTITIONS"],
                    v.nodes.map { n in
                        let parts = n.partitions.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }
                        return [n.id, n.site, formatBytes(n.capacity), n.state, parts.joined(separator: " ")]
                    }))
        }
        if !v.policies.isEmpty {
            out.append("")
            out.append(PolicyList.render(v.policies))
        }
        out.append("")
        if v.staged.isEmpty {
            out.append("no staged changes")
        } else {
            out.append("staged changes (see `agadir admin layout plan`):")
            for s in v.staged { out.append("  \(s)") }
        }
        if let p = v.stagedPartitionCount { out.append("  partition count \(p)") }
        for w in v.warnings { out.append("warning: \(w)") }
        return out.joined(separator: "\n")
    }
}

struct LayoutAssign: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assign", abstract: "Stage a node's site and capacity (adds the node, or changes it).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Node id (as `agadir admin members` shows it).") var node: String
    @Option(name: .long, help: "Site (data centre) of the node.") var site: String
    @Option(name: .long, help: "Capacity, e.g. 4TB or 500GiB; 0 makes a gateway that stores nothing.") var capacity:
        String
    @Option(name: .long, help: "Label of the node's site, KEY=VALUE (repeatable), e.g. country=MA.") var siteLabel:
        [String] = []

    func run() async throws {
        let input = Admin.Assign(
            node: node, site: site, capacity: try parseCapacity(capacity),
            siteLabels: siteLabel.isEmpty ? nil : try parseLabels(siteLabel))
        let view = try await admin(options, Admin.layoutAssign, input)
        if options.json { printJSON(value: view) } else { print(LayoutShow.render(view)) }
    }
}

struct LayoutRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Stage the removal of a node from the layout.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Node id.") var node: String

    func run() async throws {
        let view = try await admin(options, Admin.layoutRemove, Admin.Remove(node: node))
        if options.json { printJSON(value: view) } else { print(LayoutShow.render(view)) }
    }
}

struct LayoutSite: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "site", abstract: "Stage a site's labels (they decide which policies may use it).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Site name.") var site: String
    @Option(name: .long, help: "Label KEY=VALUE (repeatable), e.g. country=MA.") var label: [String] = []

    func run() async throws {
        let view = try await admin(
            options, Admin.layoutSite, Admin.SiteLabels(site: site, labels: try parseLabels(label)))
        if options.json { printJSON(value: view) } else { print(LayoutShow.render(view)) }
    }
}

struct LayoutPartitions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "partitions", abstract: "Stage the partition count (only before the first apply; default 256).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "A power of two from 8 to 65536.") var count: Int

    func run() async throws {
        let view = try await admin(options, Admin.layoutPartitions, Admin.Partitions(count: count))
        if options.json { printJSON(value: view) } else { print(LayoutShow.render(view)) }
    }
}

struct LayoutPlan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what applying the staged changes would move, or which policy they cannot satisfy.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let plan = try await admin(options, Admin.layoutPlan)
        if options.json { printJSON(value: plan) } else { print(Self.render(plan)) }
    }

    static func render(_ p: Admin.PlanView) -> String {
        var out = ["layout version \(p.fromVersion) -> \(p.toVersion): \(p.totalPartitionsMoved) partitions move"]
        if !p.policies.isEmpty {
            out.append("")
            out.append(
                table(
                    ["POLICY", "PARTITIONS MOVED", "REPLICAS MOVED"],
                    p.policies.map {
                        [$0.policy, "\($0.partitionsMoved)", "\($0.replicasMoved)"]
                    }))
        }
        out.append("")
        if p.links.isEmpty {
            out.append("no data crosses a link")
        } else {
            out.append(
                table(
                    ["FROM SITE", "TO SITE", "ESTIMATED BYTES"],
                    p.links.map { [$0.from, $0.to, formatBytes($0.bytes)] }))
        }
        if let layout = p.layout {
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
    @Option(name: .long, help: "The version to create: the current version + 1 (a stale number is refused).")
    var version: UInt64

    func run() async throws {
        let plan = try await admin(options, Admin.layoutApply, Admin.Apply(version: version))
        if options.json {
            printJSON(value: plan)
        } else {
            print("applied layout version \(version)")
            print(LayoutPlan.render(plan))
        }
    }
}

struct LayoutRevert: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revert", abstract: "Discard the staged changes.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let view = try await admin(options, Admin.layoutRevert)
        if options.json { printJSON(value: view) } else { print(LayoutShow.render(view)) }
    }
}

struct LayoutHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "List the applied layout versions.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let history = try await admin(options, Admin.layoutHistory)
        if options.json {
            printJSON(value: history)
            return
        }
        let rows = history.map { h in ["\(h.version)", isoDate(millis: h.appliedMillis), h.summary] }
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
    @Option(name: .long, help: "Eligible sites: any, a label selector such as country=MA, or sites=a,b.") var sites =
        "any"
    @Option(name: .long, help: "Minimum distinct sites per partition.") var minSites: Int = 1
    @Option(name: .long, help: "Default read consistency.") var read = "QUORUM"
    @Option(name: .long, help: "Default write consistency.") var write = "QUORUM"
    @Option(name: .long, help: "Codec: lz4, zlib or raw.") var codec = "lz4"
    @Flag(name: .long, help: "Apply at once as the next layout version (when nothing else is staged).") var apply =
        false

    func run() async throws {
        let input = Admin.PolicySpec(
            name: name, replicationFactor: rf, sites: sites, minSites: minSites, read: read, write: write, codec: codec,
            apply: apply)
        let answer = try await admin(options, Admin.policyCreate, input)
        if options.json {
            printJSON(value: answer)
            return
        }
        switch answer {
        case .applied(let plan):
            print("policy \(name) created and applied")
            print(LayoutPlan.render(plan))
        case .staged(let layout):
            print("policy \(name) staged; apply it with `agadir admin layout apply`")
            print(LayoutShow.render(layout))
        }
    }
}

struct PolicyList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List the policies of the current layout.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let list = try await admin(options, Admin.policyList)
        if options.json { printJSON(value: list) } else { print(Self.render(list)) }
    }

    static func render(_ policies: [Admin.PolicyView]) -> String {
        table(
            ["POLICY", "RF", "SITES", "MIN SITES", "READ", "WRITE", "CODEC", "ELIGIBLE NODES", "ELIGIBLE SITES"],
            policies.map { p in
                [
                    p.name, "\(p.replicationFactor)", p.sites, "\(p.minSites)", p.read, p.write, p.codec,
                    "\(p.eligibleNodes)",
                    p.eligibleSites.joined(separator: ","),
                ]
            })
    }
}

struct PolicyShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one policy.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Policy name.") var name: String

    func run() async throws {
        let p = try await admin(options, Admin.policyShow, Admin.Name(name: name))
        if options.json { printJSON(value: p) } else { print(PolicyList.render([p])) }
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
        discussion:
            "Exit code 0 when every node was audited and nothing is misplaced, 9 when something is, 1 when a node could not be audited."
    )
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let nodes = try await admin(options, Admin.auditResidency)
        let violations = nodes.reduce(0) { $0 + $1.violationCount }
        let failed = nodes.filter { $0.error != nil }
        if options.json {
            printJSON(value: nodes)
        } else {
            print(
                table(
                    ["NODE", "SITE", "LABELS", "MANIFESTS", "CHUNKS", "HINTS", "UNATTRIBUTED", "VIOLATIONS"],
                    nodes.map { n in
                        [
                            n.node, n.site, n.attestedLabels == nil ? "not attested" : "attested", "\(n.manifests)",
                            "\(n.chunks)", "\(n.hints)", "\(n.unattributedChunks)",
                            n.error.map { "not audited: \($0)" } ?? "\(n.violationCount)",
                        ]
                    }))
            for n in nodes {
                for v in n.violations {
                    if v.kind == "label" {
                        print("VIOLATION on \(n.node): \(v.reason)")
                        continue
                    }
                    let what =
                        v.key.map { "object \(v.bucket)/\($0)" } ?? v.chunk.map { "chunk \($0) of bucket \(v.bucket)" }
                        ?? "hint for bucket \(v.bucket)"
                    print("VIOLATION on \(n.node): \(v.kind) \(what) (policy \(v.policy)): \(v.reason)")
                }
            }
            print(
                violations == 0
                    ? "no data outside its policy's sites" : "\(violations) item(s) outside their policy's sites")
        }
        if violations > 0 { throw ExitCode(9) }
        if !failed.isEmpty { throw ExitCode(1) }
    }
}
