import AgadirCore

/// One applied layout version, as `agadir admin layout history` lists it.
public struct LayoutHistoryEntry: Sendable, Hashable, Codable {
    public var version: UInt64
    public var appliedMillis: UInt64
    public var summary: String

    public init(version: UInt64, appliedMillis: UInt64, summary: String) {
        self.version = version
        self.appliedMillis = appliedMillis
        self.summary = summary
    }
}

/// The layout versions a node acts on. Several versions are live at once while data moves
/// (ARCHITECTURE.md, "Placement and sovereignty"): writes go to the replicas of every live
/// version; reads use the oldest live version that has the policy's map, until the rebalancer
/// retires it (by acknowledgement, never by a timer).
public struct ClusterLayout: Sendable, Hashable {
    /// Ascending versions, non-empty, last = current; at most `maxLiveVersions`.
    public var live: [Layout]
    /// Newest last, at most `maxHistory` (the oldest are dropped).
    public var history: [LayoutHistoryEntry]

    public static let maxLiveVersions = 8
    public static let maxHistory = 100

    /// `live = [initial]`, no history.
    public init(initial: Layout) {
        live = [initial]
        history = []
    }

    /// Memberwise, for the codec.
    init(live: [Layout], history: [LayoutHistoryEntry]) {
        self.live = live
        self.history = history
    }

    /// The newest live version (`Layout.empty()` only if `live` was emptied by hand).
    public var current: Layout { live.last ?? .empty() }

    /// Adopts `next`, whose version must be current.version + 1 (else `.layoutVersionConflict`).
    ///
    /// When no data moves (every map the current version has is unchanged in `next`) and only
    /// the current version is live, `next` replaces it; otherwise `next` is appended, and
    /// refused with `.layoutVersionConflict` when that would make more than `maxLiveVersions`
    /// live. Version 0 has no map, so version 1 always replaces it.
    public mutating func apply(_ next: Layout, summary: String) throws(AgadirError) {
        let now = current
        guard now.version < UInt64.max, next.version == now.version + 1 else {
            throw AgadirError(
                .layoutVersionConflict,
                "layout version \(next.version) cannot be applied: the current version is \(now.version), so the "
                    + "next must be \(now.version &+ 1); plan again from version \(now.version)")
        }
        let nothingMoves = now.maps.allSatisfy { name, map in next.maps[name] == map }
        if nothingMoves, live.count == 1 {
            live[0] = next
        } else {
            guard live.count < Self.maxLiveVersions else {
                throw AgadirError(
                    .layoutVersionConflict,
                    "\(live.count) layout versions are still live; wait for the rebalance to retire old ones")
            }
            live.append(next)
        }
        let text = clipped(summary, maxBytes: PlacementLimits.maxSummaryBytes)
        history.append(LayoutHistoryEntry(version: next.version, appliedMillis: next.appliedMillis, summary: text))
        if history.count > Self.maxHistory { history.removeFirst(history.count - Self.maxHistory) }
    }

    /// Drops the live versions older than `version` (the rebalancer calls this once every
    /// partition has synced to `version`). No-op when `version` is not live.
    public mutating func retire(olderThan version: UInt64) {
        guard live.contains(where: { $0.version == version }) else { return }
        live.removeAll { $0.version < version }
    }

    /// Replica set used for reads: from the oldest live version that has the policy's map.
    public func readReplicas(policy: String, partition: Int) -> [String] {
        for layout in live where layout.maps[policy] != nil {
            return layout.replicas(policy: policy, partition: partition)
        }
        return []
    }

    /// One replica set per live version that has the policy's map, oldest first; equal sets
    /// (same nodes, same order) appear once.
    public func writeReplicaSets(policy: String, partition: Int) -> [[String]] {
        var sets: [[String]] = []
        for layout in live where layout.maps[policy] != nil {
            let set = layout.replicas(policy: policy, partition: partition)
            if !sets.contains(set) { sets.append(set) }
        }
        return sets
    }

    /// Every node in some live version's replica set of the partition: the read set in its
    /// order, then the others in order of first appearance (oldest version first, rank order).
    public func allReplicas(policy: String, partition: Int) -> [String] {
        var all = readReplicas(policy: policy, partition: partition)
        for set in writeReplicaSets(policy: policy, partition: partition) {
            for id in set where !all.contains(id) { all.append(id) }
        }
        return all
    }
}

/// Binary encoding of a `ClusterLayout`: what a node persists and sends to a peer that is
/// behind.
///
///     4    magic "AGCL"
///     u8   format version = 1
///     u8   live count                 1...8, versions strictly ascending
///          u32 length, that many bytes of LayoutCodec
///     u16  history count              <= 100, versions strictly ascending
///          u64 version, u64 applied at (ms), u16 length + UTF-8 summary (<= 1024 bytes)
public enum ClusterLayoutCodec {
    static let magic: [UInt8] = Array("AGCL".utf8)
    static let formatVersion: UInt8 = 1

    public static func encode(_ cluster: ClusterLayout) -> [UInt8] {
        var w = ByteWriter()
        w.raw(magic)
        w.u8(formatVersion)
        let live = cluster.live.prefix(ClusterLayout.maxLiveVersions)
        w.u8(UInt8(live.count))
        for layout in live { w.bytes32(LayoutCodec.encode(layout)) }
        let history = cluster.history.suffix(ClusterLayout.maxHistory)
        w.u16(UInt16(history.count))
        for entry in history {
            w.u64(entry.version)
            w.u64(entry.appliedMillis)
            w.bytes16(Array(clipped(entry.summary, maxBytes: PlacementLimits.maxSummaryBytes).utf8))
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(AgadirError) -> ClusterLayout {
        func corrupt(_ why: String) -> AgadirError { AgadirError(.corruptData, "cluster layout: \(why)") }
        var r = ByteReader(bytes, errorCode: .corruptData, context: "cluster layout")
        guard Array(try r.raw(4, "magic")) == magic else { throw corrupt("bad magic (not a cluster layout)") }
        let format = try r.u8("format version")
        guard format == formatVersion else {
            throw corrupt("format version \(format) is not supported (this build reads \(formatVersion))")
        }
        let liveCount = Int(try r.u8("live count"))
        guard (1...ClusterLayout.maxLiveVersions).contains(liveCount) else {
            throw corrupt("\(liveCount) live versions; 1...\(ClusterLayout.maxLiveVersions) expected")
        }
        var live: [Layout] = []
        for n in 0..<liveCount {
            let encoded = try r.bytes32("live layout \(n + 1)", max: r.remaining)
            let layout: Layout
            do { layout = try LayoutCodec.decode(encoded) } catch {
                throw corrupt("live layout \(n + 1): \(error.message)")
            }
            if let last = live.last {
                guard last.version < layout.version else {
                    throw corrupt("live versions are not ascending (\(layout.version) after \(last.version))")
                }
                guard last.version == 0 || last.partitionCount == layout.partitionCount else {
                    throw corrupt(
                        "live versions \(last.version) and \(layout.version) have different partition counts")
                }
            }
            live.append(layout)
        }
        let historyCount = Int(try r.u16("history count"))
        guard historyCount <= ClusterLayout.maxHistory else {
            throw corrupt("\(historyCount) history entries; at most \(ClusterLayout.maxHistory)")
        }
        var history: [LayoutHistoryEntry] = []
        for _ in 0..<historyCount {
            let version = try r.u64("history version")
            let applied = try r.u64("history time")
            let text = try r.bytes16("history summary")
            guard text.count <= PlacementLimits.maxSummaryBytes else {
                throw corrupt("a history summary has \(text.count) bytes; at most \(PlacementLimits.maxSummaryBytes)")
            }
            guard let summary = String(validating: text, as: UTF8.self) else {
                throw corrupt("the summary of version \(version) is not valid UTF-8")
            }
            if let last = history.last, !(last.version < version) {
                throw corrupt("history versions are not ascending (\(version) after \(last.version))")
            }
            history.append(LayoutHistoryEntry(version: version, appliedMillis: applied, summary: summary))
        }
        guard r.isAtEnd else { throw corrupt("\(r.remaining) bytes follow the end") }
        return ClusterLayout(live: live, history: history)
    }
}

/// `text` if it fits in `maxBytes` of UTF-8, else its longest prefix of whole characters that
/// fits with "..." appended.
func clipped(_ text: String, maxBytes: Int) -> String {
    guard text.utf8.count > maxBytes else { return text }
    var out = String.UnicodeScalarView()
    var used = 0
    for scalar in text.unicodeScalars {
        let width = UTF8.width(scalar)
        guard used + width <= maxBytes - 3 else { break }
        out.append(scalar)
        used += width
    }
    return String(out) + "..."
}
