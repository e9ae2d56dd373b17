import AgadirClient
import AgadirCore
import AgadirWire
import ArgumentParser
import Foundation

// MARK: - agadir admin node

struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drain a node (its partitions move away) and remove it from the layout.",
        discussion: """
            Decommissioning: `node drain ID`, wait for `agadir admin rebalance status` to say complete, \
            `node remove ID`, then stop the node. Each command applies the next layout version at once, \
            so nothing else may be staged.
            """,
        subcommands: [NodeDrain.self, NodeRemove.self])
}

struct NodeDrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract:
            "Set the node's capacity to 0 and apply the next layout version: its partitions move to the other nodes.",
        discussion: """
            The node keeps serving (it stays a source of its partitions until the old layout version retires). \
            Refused with exit code 3 when other layout changes are staged, 2 when the node is not in the layout, \
            4 when it already has capacity 0.
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Node id (as `agadir admin layout show` lists it).") var node: String

    func run() async throws {
        let plan = try await admin(options, Admin.nodeDrain, Admin.NodeRef(node: node))
        if options.json {
            printJSON(value: plan)
            return
        }
        print(
            "node \(node) drained: layout version \(plan.toVersion) applied with capacity 0 for it; its partitions move away."
        )
        print("Watch `agadir admin rebalance status`; once it says complete, `agadir admin node remove \(node)`.")
        print("")
        print(LayoutPlan.render(plan))
    }
}

struct NodeRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove a drained node from the layout (applies the next layout version).",
        discussion: """
            Refused with exit code 3 (NODE_NOT_DRAINED) while the node is in a replica set of a live layout \
            version: it may hold the only copies of some objects. Drain it first and wait for \
            `agadir admin rebalance status` to say complete. --force removes it anyway, for a node lost for good: \
            writes acknowledged only by it may be lost.
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Node id.") var node: String
    @Flag(name: .long, help: "Remove the node even if it may hold the only copies of some objects.") var force = false

    func run() async throws {
        let plan = try await admin(options, Admin.nodeRemove, Admin.NodeRemoval(node: node, force: force))
        let warnings = plan.warnings ?? []
        for w in warnings { stderr("agadir: WARNING: \(w)") }
        if force, warnings.isEmpty {
            stderr("agadir: --force was not needed: node \(node) was in no replica set of a live layout version")
        }
        if options.json {
            printJSON(value: plan)
            return
        }
        print(
            "node \(node) removed: layout version \(plan.toVersion) applied; the node may be stopped once `agadir admin rebalance status` says complete."
        )
        print("")
        print(LayoutPlan.render(plan))
    }
}

// MARK: - agadir admin status

struct ClusterStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "One view of the cluster: nodes by site, space, under-replicated partitions, rebalance, hints.",
        discussion: """
            Exit code 0 when the cluster is healthy, 10 when it is degraded (a layout node not alive, a partition \
            with a replica not alive, more than one live layout version, hints pending, or a node's status \
            unreadable); the reasons are printed (JSON: `reasons`).
            """)
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let view = try await admin(options, Admin.clusterStatus)
        if options.json { printJSON(value: view) } else { print(Self.render(view)) }
        if !view.healthy { throw ExitCode(Exit.degraded) }
    }

    static func render(_ view: Admin.ClusterStatusView) -> String {
        func bytes(_ v: UInt64?) -> String { v.map(formatBytes) ?? "-" }
        let live = view.liveVersions.map(String.init).joined(separator: ", ")
        var lines = ["layout version \(view.layoutVersion), live versions: \(live) (answered by \(view.node))"]
        var rows: [[String]] = []
        var lastSite: String? = nil
        for n in view.nodes {
            let note: String
            if let error = n.error {
                note = "status unknown: \(error)"
            } else if !n.inLayout {
                note = "not in the current layout"
            } else if n.capacity == 0 {
                note = "gateway (capacity 0)"
            } else {
                note = ""
            }
            rows.append([
                n.site == lastSite ? "" : n.site, n.node, n.state, bytes(n.capacity), bytes(n.usedBytes),
                bytes(n.freeBytes),
                bytes(n.fsFreeBytes), "\(n.partitions)", n.hintsPending.map { "\($0)" } ?? "-", n.rebalance ?? "-",
                note,
            ])
            lastSite = n.site
        }
        lines.append(
            table(
                [
                    "SITE", "NODE", "STATE", "CAPACITY", "USED", "FREE", "FS FREE", "PARTITIONS", "HINTS", "REBALANCE",
                    "NOTE",
                ], rows))
        if view.underReplicated.isEmpty {
            lines.append("under-replicated partitions: none")
        } else {
            for u in view.underReplicated {
                lines.append(
                    "under-replicated: policy \(u.policy) (RF \(u.replicationFactor)): \(u.partitions) partition(s), "
                        + "\(u.belowQuorum) below quorum, \(u.unavailable) with no replica alive; replicas down: "
                        + u.nodesDown.joined(separator: ", "))
            }
        }
        let r = view.rebalance
        if r.complete {
            lines.append("rebalance: complete")
        } else {
            let left = r.bytesLeftEstimate.map(formatBytes) ?? "unknown"
            lines.append(
                "rebalance: in progress, \(r.partitionsDone)/\(r.partitionsTotal) partitions, about \(left) left, "
                    + "ETA \(formatSeconds(r.etaSeconds)) (details: `agadir admin rebalance status`)")
        }
        lines.append("hints pending: \(view.hintsPending)")
        if view.healthy {
            lines.append("cluster healthy")
        } else {
            lines.append("cluster DEGRADED:")
            for reason in view.reasons { lines.append("  - \(reason)") }
        }
        return lines.joined(separator: "\n")
    }
}
