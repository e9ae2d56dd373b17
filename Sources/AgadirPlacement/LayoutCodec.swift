import AgadirCore

/// Versioned, bounded binary encoding of a `Layout` (docs/placement.md, "Encoding").
///
/// All integers big-endian; `str8` is a u8 byte count then that many bytes of UTF-8.
///
///     4    magic "AGLY"
///     u8   format version = 1
///     u64  layout version
///     u32  partition count P            power of two, 8...65536
///     u64  applied at, ms since epoch
///     u16  site count                   <= 1024, names strictly ascending
///          str8 name, u8 label count (<= 32), label count × (str8 key, str8 value), keys ascending
///     u16  node count                   <= 4096, ids strictly ascending
///          str8 id, u16 site index, u64 capacity
///     u16  policy count                 1...256, names strictly ascending, "default" among them
///          str8 name, u8 RF, u8 min sites, u8 read consistency, u8 write consistency, u8 codec,
///          u8 selector label count, × (str8 key, str8 value), u16 selector site count, × str8 site
///     u16  map count                    0 at version 0, else one per policy, in policy order
///          u16 policy index, u8 RF, P × RF × u16 node index (rank order)
///
/// `decode` checks everything it reads, including that every map is valid for its policy:
/// RF distinct nodes per partition, each with capacity on an eligible site, on at least min
/// sites. A layout that decodes can be used as is.
public enum LayoutCodec {
    static let magic: [UInt8] = Array("AGLY".utf8)
    static let formatVersion: UInt8 = 1

    /// Encodes a valid layout (as `Planner` builds them). Arrays are written sorted; strings and
    /// counts beyond the limits are clipped, which `decode` then refuses.
    public static func encode(_ layout: Layout) -> [UInt8] {
        // Partitions written per map: the layout's count, clamped so that a hand-built invalid
        // layout still encodes (decode then refuses it) instead of trapping.
        let partitions = min(max(0, layout.partitionCount), PlacementLimits.partitionCounts.upperBound)
        var w = ByteWriter(capacity: 1024 + min(layout.maps.count, PlacementLimits.maxPolicies) * partitions * 6)
        w.raw(magic)
        w.u8(formatVersion)
        w.u64(layout.version)
        w.u32(UInt32(clamping: layout.partitionCount))
        w.u64(layout.appliedMillis)

        let sites = layout.sites.sorted { $0.name < $1.name }
        var siteIndex: [String: Int] = [:]
        for (i, site) in sites.enumerated() where siteIndex[site.name] == nil { siteIndex[site.name] = i }
        w.u16(UInt16(clamping: sites.count))
        for site in sites.prefix(Int(UInt16.max)) {
            str8(&w, site.name)
            labels(&w, site.labels)
        }

        let nodes = layout.nodes.sorted { $0.id < $1.id }
        var nodeIndex: [String: Int] = [:]
        for (i, node) in nodes.enumerated() where nodeIndex[node.id] == nil { nodeIndex[node.id] = i }
        w.u16(UInt16(clamping: nodes.count))
        for node in nodes.prefix(Int(UInt16.max)) {
            str8(&w, node.id)
            w.u16(UInt16(clamping: siteIndex[node.site] ?? Int(UInt16.max)))
            w.u64(node.capacity)
        }

        let policies = layout.policies.sorted { $0.name < $1.name }
        w.u16(UInt16(clamping: policies.count))
        for policy in policies.prefix(Int(UInt16.max)) {
            str8(&w, policy.name)
            w.u8(UInt8(clamping: policy.replicationFactor))
            w.u8(UInt8(clamping: policy.minSites))
            w.u8(policy.readConsistency.rawValue)
            w.u8(policy.writeConsistency.rawValue)
            w.u8(policy.codec.rawValue)
            labels(&w, policy.selector.labels)
            w.u16(UInt16(clamping: policy.selector.sites.count))
            for site in policy.selector.sites.sorted().prefix(Int(UInt16.max)) { str8(&w, site) }
        }

        let mapped = policies.enumerated().filter { layout.maps[$0.element.name] != nil }
        w.u16(UInt16(clamping: mapped.count))
        for (index, policy) in mapped.prefix(Int(UInt16.max)) {
            let replicas = layout.maps[policy.name]?.replicas ?? []
            // Clamped so that a hand-built, invalid layout still encodes (and is refused on decode).
            let rf = min(max(0, policy.replicationFactor), Int(UInt8.max))
            w.u16(UInt16(clamping: index))
            w.u8(UInt8(clamping: rf))
            for p in 0..<partitions {
                let set = p < replicas.count ? replicas[p] : []
                for r in 0..<rf {
                    let id = r < set.count ? set[r] : ""
                    w.u16(UInt16(clamping: nodeIndex[id] ?? Int(UInt16.max)))
                }
            }
        }
        return w.bytes
    }

    /// Decodes and validates; `.corruptData` saying what is wrong.
    public static func decode(_ bytes: [UInt8]) throws(AgadirError) -> Layout {
        var r = ByteReader(bytes, errorCode: .corruptData, context: "layout")
        let layout = try decode(&r)
        guard r.isAtEnd else { throw corrupt("\(r.remaining) bytes follow the end of the layout") }
        return layout
    }

    static func corrupt(_ why: String) -> AgadirError { AgadirError(.corruptData, "layout: \(why)") }

    static func decode(_ r: inout ByteReader) throws(AgadirError) -> Layout {
        guard Array(try r.raw(4, "magic")) == magic else { throw corrupt("bad magic (not a layout)") }
        let format = try r.u8("format version")
        guard format == formatVersion else {
            throw corrupt("format version \(format) is not supported (this build reads \(formatVersion))")
        }
        let version = try r.u64("version")
        let partitionCount = Int(try r.u32("partition count"))
        guard PlacementLimits.isValidPartitionCount(partitionCount) else {
            throw corrupt("partition count \(partitionCount) is not a power of two in 8...65536")
        }
        let appliedMillis = try r.u64("applied time")

        let siteCount = Int(try r.u16("site count"))
        guard siteCount <= PlacementLimits.maxSites else {
            throw corrupt("\(siteCount) sites; at most \(PlacementLimits.maxSites)")
        }
        var sites: [SiteSpec] = []
        sites.reserveCapacity(siteCount)
        for _ in 0..<siteCount {
            let name = try str8(&r, "site name")
            try PlacementNames.validateSite(name, code: .corruptData)
            if let last = sites.last, !(last.name < name) {
                throw corrupt("sites are not in ascending order at '\(name)'")
            }
            let siteLabels = try labels(&r, owner: "site '\(name)'")
            sites.append(SiteSpec(name: name, labels: siteLabels))
        }

        let nodeCount = Int(try r.u16("node count"))
        guard nodeCount <= PlacementLimits.maxNodes else {
            throw corrupt("\(nodeCount) nodes; at most \(PlacementLimits.maxNodes)")
        }
        var nodes: [NodeSpec] = []
        nodes.reserveCapacity(nodeCount)
        var nodeSite: [Int] = []
        for _ in 0..<nodeCount {
            let id = try str8(&r, "node id")
            try PlacementNames.validateNodeID(id, code: .corruptData)
            if let last = nodes.last, !(last.id < id) { throw corrupt("nodes are not in ascending order at '\(id)'") }
            let site = Int(try r.u16("site of node '\(id)'"))
            guard site < sites.count else { throw corrupt("node '\(id)' names site #\(site) of \(sites.count)") }
            nodes.append(NodeSpec(id: id, site: sites[site].name, capacity: try r.u64("capacity of node '\(id)'")))
            nodeSite.append(site)
        }

        let policyCount = Int(try r.u16("policy count"))
        guard (1...PlacementLimits.maxPolicies).contains(policyCount) else {
            throw corrupt("\(policyCount) policies; 1...\(PlacementLimits.maxPolicies) expected")
        }
        var policies: [Policy] = []
        policies.reserveCapacity(policyCount)
        for _ in 0..<policyCount {
            let policy = try decodePolicy(&r)
            if let last = policies.last, !(last.name < policy.name) {
                throw corrupt("policies are not in ascending order at '\(policy.name)'")
            }
            policies.append(policy)
        }
        guard policies.contains(where: { $0.name == Policy.defaultName }) else {
            throw corrupt("the built-in policy 'default' is missing")
        }

        let mapCount = Int(try r.u16("map count"))
        let expectedMaps = version == 0 ? 0 : policies.count
        guard mapCount == expectedMaps else {
            throw corrupt("\(mapCount) partition maps for \(policies.count) policies at version \(version)")
        }
        var maps: [String: PartitionMap] = [:]
        for m in 0..<mapCount {
            let index = Int(try r.u16("policy of map"))
            guard index == m else { throw corrupt("map #\(m) is for policy #\(index); maps follow policy order") }
            let policy = policies[index]
            let rf = Int(try r.u8("replication factor of map '\(policy.name)'"))
            guard rf == policy.replicationFactor else {
                throw corrupt(
                    "map of policy '\(policy.name)' has \(rf) replicas per partition, the policy "
                        + "\(policy.replicationFactor)")
            }
            // Precomputed per node: may hold this policy's data.
            let allowed = (0..<nodes.count).map { i in
                nodes[i].isStorage
                    && policy.selector.matches(site: nodes[i].site, siteLabels: sites[nodeSite[i]].labels)
            }
            var replicas: [[String]] = []
            replicas.reserveCapacity(partitionCount)
            var set = [Int](repeating: 0, count: rf)
            for p in 0..<partitionCount {
                for k in 0..<rf {
                    let i = Int(try r.u16("replica of partition \(p) of '\(policy.name)'"))
                    guard i < nodes.count else {
                        throw corrupt("partition \(p) of policy '\(policy.name)' names node #\(i) of \(nodes.count)")
                    }
                    guard allowed[i] else {
                        throw corrupt(
                            "partition \(p) of policy '\(policy.name)' is placed on node '\(nodes[i].id)', which is "
                                + "not eligible (site '\(nodes[i].site)', capacity \(nodes[i].capacity))")
                    }
                    guard !set[..<k].contains(i) else {
                        throw corrupt("partition \(p) of policy '\(policy.name)' names node '\(nodes[i].id)' twice")
                    }
                    set[k] = i
                }
                var distinctSites: [Int] = []
                for i in set where !distinctSites.contains(nodeSite[i]) { distinctSites.append(nodeSite[i]) }
                guard distinctSites.count >= policy.minSites else {
                    throw corrupt(
                        "partition \(p) of policy '\(policy.name)' spans \(plural(distinctSites.count, "site")); "
                            + "the policy needs \(policy.minSites)")
                }
                replicas.append(set.map { nodes[$0].id })
            }
            maps[policy.name] = PartitionMap(policy: policy.name, replicas: replicas)
        }
        return Layout(
            version: version, partitionCount: partitionCount, sites: sites, nodes: nodes, policies: policies,
            maps: maps, appliedMillis: appliedMillis)
    }

    private static func decodePolicy(_ r: inout ByteReader) throws(AgadirError) -> Policy {
        let name = try str8(&r, "policy name")
        let rf = Int(try r.u8("replication factor of '\(name)'"))
        let minSites = Int(try r.u8("min sites of '\(name)'"))
        let readRaw = try r.u8("read consistency of '\(name)'")
        let writeRaw = try r.u8("write consistency of '\(name)'")
        let codecRaw = try r.u8("codec of '\(name)'")
        guard let read = ConsistencyLevel(rawValue: readRaw), let write = ConsistencyLevel(rawValue: writeRaw) else {
            throw corrupt("policy '\(name)' has unknown consistency levels \(readRaw)/\(writeRaw)")
        }
        guard let codec = Codec(rawValue: codecRaw) else {
            throw corrupt("policy '\(name)' has unknown codec \(codecRaw)")
        }
        let selectorLabels = try labels(&r, owner: "selector of '\(name)'")
        let siteCount = Int(try r.u16("selector site count of '\(name)'"))
        guard siteCount <= PlacementLimits.maxSites else {
            throw corrupt("selector of '\(name)' names \(siteCount) sites; at most \(PlacementLimits.maxSites)")
        }
        var selectorSites: [String] = []
        for _ in 0..<siteCount {
            let site = try str8(&r, "selector site of '\(name)'")
            if let last = selectorSites.last, !(last < site) {
                throw corrupt("selector sites of '\(name)' are not in ascending order at '\(site)'")
            }
            selectorSites.append(site)
        }
        let policy = Policy(
            name: name, replicationFactor: rf, selector: SiteSelector(labels: selectorLabels, sites: selectorSites),
            minSites: minSites, readConsistency: read, writeConsistency: write, codec: codec)
        do { try policy.validate() } catch { throw corrupt(error.message) }
        return policy
    }

    // MARK: Fields

    static func str8(_ w: inout ByteWriter, _ s: String) {
        let bytes = Array(s.utf8.prefix(PlacementLimits.maxStringBytes))
        w.u8(UInt8(bytes.count))
        w.raw(bytes)
    }

    static func str8(_ r: inout ByteReader, _ what: String) throws(AgadirError) -> String {
        let n = Int(try r.u8("length of \(what)"))
        let bytes = try r.raw(n, what)
        guard let s = String(validating: bytes, as: UTF8.self) else { throw corrupt("\(what) is not valid UTF-8") }
        return s
    }

    private static func labels(_ w: inout ByteWriter, _ labels: [String: String]) {
        let sorted = labels.sorted { $0.key < $1.key }.prefix(Int(UInt8.max))
        w.u8(UInt8(sorted.count))
        for (key, value) in sorted {
            str8(&w, key)
            str8(&w, value)
        }
    }

    private static func labels(_ r: inout ByteReader, owner: String) throws(AgadirError) -> [String: String] {
        let count = Int(try r.u8("label count of \(owner)"))
        guard count <= PlacementLimits.maxLabels else {
            throw corrupt("\(owner) has \(count) labels; at most \(PlacementLimits.maxLabels)")
        }
        var labels: [String: String] = [:]
        var lastKey: String? = nil
        for _ in 0..<count {
            let key = try str8(&r, "label key of \(owner)")
            let value = try str8(&r, "label value of \(owner)")
            if let lastKey, !(lastKey < key) {
                throw corrupt("labels of \(owner) are not in ascending order at '\(key)'")
            }
            try PlacementNames.validateLabel(key: key, value: value, code: .corruptData)
            labels[key] = value
            lastKey = key
        }
        return labels
    }
}
