import AgadirCore
import AgadirWire
import Synchronization

/// The node's cluster upkeep as a worker (`cluster-sync`): every `syncInterval` it pulls a
/// newer layout from a peer and delivers parked hints; every `catalogSyncInterval` it pulls
/// the bucket catalog from a peer and refreshes the store figures.
public final class ClusterSyncWorker: Worker, Sendable {
    let node: ClusterNode
    private let lastCatalogSync = Mutex<ContinuousClock.Instant>(.now)
    private let rounds = Mutex<Int>(0)

    public init(node: ClusterNode) { self.node = node }

    public var name: String { "cluster-sync" }

    public func step() async -> WorkerStep {
        await node.syncLayout()
        await node.deliverHints()
        let now = ContinuousClock.now
        let catalogDue = lastCatalogSync.withLock { last in
            guard now - last >= node.settings.catalogSyncInterval else { return false }
            last = now
            return true
        }
        if catalogDue {
            await node.syncCatalog()
            if let stats = try? await node.store.stats() { node.statsCache.withLock { $0 = stats } }
        }
        rounds.withLock { $0 += 1 }
        return .idle(node.settings.syncInterval)
    }

    public func report() -> (phase: String?, progress: String?) {
        let layout = node.layout
        return (nil, "layout \(layout.current.version) (\(layout.live.count) live), \(rounds.withLock { $0 }) round(s)")
    }
}
