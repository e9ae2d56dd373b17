import AgadirCore
import AgadirPlacement

/// The decisions of the rebalance (docs/rebalance.md), as pure functions of what the node
/// knows: its layout, its saved progress, and what the other nodes answered. `Rebalancer`
/// gathers the facts and carries out the decision; the tests drive these directly.
public enum RebalanceDecisions {
    /// What one round of a node's rebalance does.
    public enum Action: Equatable, Sendable {
        /// No layout applied yet: nothing.
        case none
        /// Several versions are live and this node lacks partitions of the newest: copy them.
        case receive
        /// This node has every partition of the newest version: retire the older versions
        /// once every storage node of the newest one has too.
        case retire
        /// One version is live, and this node has not said it holds all of it: say so.
        case markSynced
        /// One version is live: drop what this node no longer owns, once every node has
        /// retired the older versions.
        case drop
        /// One version live, nothing left to drop.
        case idle
    }

    /// The action of a round, from the number of live versions, the newest version, and the
    /// versions this node has synced (received all of) and dropped (the leftovers of).
    public static func action(liveVersions: Int, current: UInt64, synced: UInt64, dropped: UInt64) -> Action {
        guard current >= 1 else { return .none }
        if liveVersions > 1 { return synced < current ? .receive : .retire }
        if synced < current { return .markSynced }
        return dropped < current ? .drop : .idle
    }

    /// The key under which the progress of one (partition, kind, source) step is saved.
    public static func stepKey(_ t: PartitionTransfer, manifests: Bool, source: String) -> String {
        "\(t.policy)/\(t.partition)/\(manifests ? "manifests" : "chunks")/\(source)"
    }

    /// A partition is received when, from every source not `removed`, both its manifests and
    /// its chunks are done.
    public static func isReceived(_ t: PartitionTransfer, done: Set<String>, removed: Set<String>) -> Bool {
        t.sources.allSatisfy { s in
            removed.contains(s)
                || (done.contains(stepKey(t, manifests: true, source: s))
                    && done.contains(stepKey(t, manifests: false, source: s)))
        }
    }

    /// True for a source that is in no node list of the current version *and* not alive: it
    /// was removed by force and is not waited for. A source in the layout, or alive, is.
    public static func isRemoved(_ source: String, in cluster: ClusterLayout, alive: Set<String>) -> Bool {
        cluster.current.node(source) == nil && !alive.contains(source)
    }

    /// Whether copying may start now.
    public enum CopyGate: Equatable, Sendable {
        /// Alive members still on an older version: a write coordinated under it alone may be
        /// on its way.
        case waitFor([String])
        /// Every alive member has the version, but for less than `settle`.
        case settling
        case go
    }

    /// Copying starts once every alive member announces the newest version (`lagging` is
    /// empty) and `settle` has passed since that was first seen (`adoptedFor`, nil when it
    /// is seen now for the first time).
    public static func copyGate(lagging: [String], adoptedFor: Duration?, settle: Duration) -> CopyGate {
        guard lagging.isEmpty else { return .waitFor(lagging.sorted()) }
        guard let adoptedFor, adoptedFor >= settle else { return .settling }
        return .go
    }

    /// The storage nodes of `version` that have not confirmed it (`synced` below it, or no
    /// answer): the older versions retire only when this is empty, never by a timer.
    public static func notYetSynced(_ storage: [String], synced: [String: UInt64], version: UInt64) -> [String] {
        storage.filter { (synced[$0] ?? 0) < version }.sorted()
    }

    /// The nodes of the layout that still have an older version live (or did not answer):
    /// data is dropped only when this is empty, since until then a node may still read from
    /// the old replica sets.
    public static func notYetRetired(_ members: [String], oldestLive: [String: UInt64], version: UInt64) -> [String] {
        members.filter { (oldestLive[$0] ?? 0) < version }.sorted()
    }
}
