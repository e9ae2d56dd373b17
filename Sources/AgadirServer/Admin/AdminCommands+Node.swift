import AgadirCluster
import AgadirCore
import AgadirPlacement
import AgadirWire

// MARK: agadir admin node drain | remove (docs/rebalance.md, "Drain and remove")

extension AdminCommands {

    /// `node.drain`: the node's capacity becomes 0 in the next layout version, so its
    /// partitions move away.
    func drain(_ id: String, node: ClusterNode) async throws(AgadirError) -> Admin.PlanView {
        guard let spec = node.layout.current.node(id) else {
            throw AgadirError(
                .noSuchNode,
                "node '\(id.prefix(128))' is not in layout version \(node.layout.current.version); nothing to drain")
        }
        guard spec.isStorage else {
            throw AgadirError(
                .invalidArgument,
                "node \(id) already has capacity 0 (drained, or a gateway): watch `agadir admin rebalance status`, "
                    + "then `agadir admin node remove \(id)`")
        }
        let view = try await applyAlone(.assignNode(id: id, site: spec.site, capacity: 0), node: node, what: "drain")
        logger.notice(
            "node drained: its partitions move away", metadata: ["node": "\(id)", "version": "\(view.toVersion)"])
        return view
    }

    /// `node.remove`: the node leaves the next layout version (refused while it is in a live
    /// version's replica sets, unless `force`).
    func remove(_ id: String, force: Bool, node: ClusterNode) async throws(AgadirError) -> Admin.PlanView {
        let layout = node.layout
        guard layout.current.node(id) != nil else {
            throw AgadirError(
                .noSuchNode,
                "node '\(id.prefix(128))' is not in layout version \(layout.current.version); nothing to remove")
        }
        let holding = layout.versionsWithReplicas(on: id)
        if !force { try layout.checkRemovable(id) }
        var view = try await applyAlone(.removeNode(id: id), node: node, what: "remove")
        if !holding.isEmpty {
            let warning =
                "node \(id) was removed while in replica sets of live layout version(s) "
                + holding.map(String.init).joined(separator: ", ")
                + ": writes acknowledged only by it may be lost; the rebalance no longer waits for it once it is down"
            view.warnings = (view.warnings ?? []) + [warning]
            logger.warning("node removed by force", metadata: ["node": "\(id)", "version": "\(view.toVersion)"])
        } else {
            logger.notice("node removed", metadata: ["node": "\(id)", "version": "\(view.toVersion)"])
        }
        return view
    }

    /// Stages `change` and applies it as the next version, in one step; refused when other
    /// changes are staged (they would be applied with it). On failure nothing stays staged.
    private func applyAlone(_ change: LayoutChange, node: ClusterNode, what: String) async throws(AgadirError)
        -> Admin.PlanView
    {
        guard node.staged.changes.isEmpty, node.staged.partitionCount == nil else {
            throw AgadirError(
                .layoutVersionConflict,
                "other layout changes are staged (\(node.staged.changes.count)); apply or revert them first "
                    + "(`agadir admin layout apply` / `layout revert`), then \(what) again")
        }
        _ = try node.stage(change)
        do {
            let (next, report) = try await node.apply(version: node.layout.current.version + 1)
            var view = planView(report, node: node, next: next)
            view.changes = [change.description]
            return view
        } catch {
            try? node.revertStaged()
            throw error
        }
    }
}
