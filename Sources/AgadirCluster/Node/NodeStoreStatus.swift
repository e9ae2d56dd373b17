import AgadirCore
import AgadirStore
import AgadirWire
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// MARK: A node's store, as NODE_STATUS reports it

extension ClusterNode {
    /// This node's store figures; the index counts are those of the last refresh (at most
    /// `catalogSyncInterval` old), the file sizes and hints are read now.
    func storeStatus() async -> NodeStoreStatus? {
        var stats = statsCache.withLock { $0 }
        if stats == nil {
            stats = try? await store.stats()
            if let stats { statsCache.withLock { $0 = stats } }
        }
        guard let stats else { return nil }
        let dir = store.directory
        var metadata: UInt64 = 0
        for name in ["meta.sqlite", "meta.sqlite-wal", "meta.sqlite-shm"] {
            let attributes = try? FileManager.default.attributesOfItem(
                atPath: (dir as NSString).appendingPathComponent(name))
            metadata += (attributes?[.size] as? NSNumber)?.uint64Value ?? 0
        }
        var fsFree: UInt64? = nil
        var fsTotal: UInt64? = nil
        var fs = statvfs()
        if statvfs(dir, &fs) == 0 {
            fsFree = UInt64(fs.f_bavail) &* UInt64(fs.f_frsize)
            fsTotal = UInt64(fs.f_blocks) &* UInt64(fs.f_frsize)
        }
        var hints: [String: Int] = [:]
        for (target, count) in (try? await store.hintTargets()) ?? [] { hints[target] = count }
        return NodeStoreStatus(
            usedBytes: stats.segmentBytes + metadata, segmentBytes: stats.segmentBytes, metadataBytes: metadata,
            fsFreeBytes: fsFree, fsTotalBytes: fsTotal, hintsPending: hints.values.reduce(0, +), hintsByTarget: hints,
            chunks: stats.chunks, objects: stats.objects)
    }
}
