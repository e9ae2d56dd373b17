import AgadirCore

/// One staged edit of the layout.
public enum LayoutChange: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Adds the node, or updates its site and capacity (capacity 0 = gateway).
    case assignNode(id: String, site: String, capacity: UInt64)
    case removeNode(id: String)
    /// Replaces the site's labels (creating the site if needed).
    case setSiteLabels(site: String, labels: [String: String])
    /// Adds a policy; policies are never changed or removed (buckets are bound to them).
    case addPolicy(Policy)

    public var description: String {
        switch self {
        case .assignNode(let id, let site, let capacity):
            capacity == 0
                ? "assign node \(id) to site \(site) as a gateway"
                : "assign node \(id) to site \(site) with capacity \(capacity) bytes"
        case .removeNode(let id):
            "remove node \(id)"
        case .setSiteLabels(let site, let labels):
            "set labels of site \(site) to \(labels.isEmpty ? "none" : labels.labelText)"
        case .addPolicy(let policy):
            "add policy \(policy.name) (RF \(policy.replicationFactor), \(policy.selector), "
                + "min sites \(policy.minSites))"
        }
    }
}

/// The changes an administrator has staged on top of the current layout, not yet planned.
public struct StagedChanges: Sendable, Hashable, Codable {
    public var changes: [LayoutChange]
    /// Most changes staged at once (each `stage` resolves them all on the layout).
    public static let maxChanges = 1000
    /// May be set only while the layout version is 0 (the partition count is fixed by version 1).
    public var partitionCount: Int?

    public init(changes: [LayoutChange] = [], partitionCount: Int? = nil) {
        self.changes = changes
        self.partitionCount = partitionCount
    }

    /// The partition count the next layout will have.
    public func partitionCount(on layout: Layout) throws(AgadirError) -> Int {
        guard let wanted = partitionCount, wanted != layout.partitionCount else { return layout.partitionCount }
        guard layout.version == 0 else {
            throw AgadirError(
                .invalidArgument,
                "the partition count is fixed at \(layout.partitionCount) since layout version 1; "
                    + "it cannot become \(wanted)")
        }
        guard PlacementLimits.isValidPartitionCount(wanted) else {
            throw AgadirError(
                .invalidArgument,
                "partition count \(wanted) must be a power of two in \(PlacementLimits.partitionCounts.lowerBound)"
                    + "...\(PlacementLimits.partitionCounts.upperBound)")
        }
        return wanted
    }

    /// The sites, nodes and policies after applying the changes in order to `layout` (each
    /// sorted, "default" rebuilt for the resulting number of storage nodes).
    ///
    /// Errors: removing an unknown node (.noSuchNode), adding a policy that exists
    /// (.policyAlreadyExists), invalid values or limits exceeded (.invalidArgument). A site that
    /// has no node left and no labels disappears.
    public func resolve(on layout: Layout) throws(AgadirError) -> (
        sites: [SiteSpec], nodes: [NodeSpec], policies: [Policy]
    ) {
        _ = try partitionCount(on: layout)
        var siteLabels: [String: [String: String]] = [:]
        for site in layout.sites { siteLabels[site.name] = site.labels }
        var nodes: [String: NodeSpec] = [:]
        for node in layout.nodes { nodes[node.id] = node }
        var policies: [String: Policy] = [:]
        for policy in layout.policies { policies[policy.name] = policy }

        for (index, change) in changes.enumerated() {
            let at = "staged change \(index + 1) (\(change))"
            switch change {
            case .assignNode(let id, let site, let capacity):
                do {
                    try PlacementNames.validateNodeID(id)
                    try PlacementNames.validateSite(site)
                } catch {
                    throw AgadirError(error.code, "\(at): \(error.message)")
                }
                nodes[id] = NodeSpec(id: id, site: site, capacity: capacity)
            case .removeNode(let id):
                guard nodes.removeValue(forKey: id) != nil else {
                    throw AgadirError(
                        .noSuchNode, "\(at): node '\(id.prefix(128))' is not in the layout; nothing to remove")
                }
            case .setSiteLabels(let site, let labels):
                do {
                    try PlacementNames.validateSite(site)
                    try PlacementNames.validateLabels(labels, owner: "site '\(site)'")
                } catch {
                    throw AgadirError(error.code, "\(at): \(error.message)")
                }
                siteLabels[site] = labels
            case .addPolicy(let policy):
                guard policy.name != Policy.defaultName, policies[policy.name] == nil else {
                    throw AgadirError(
                        .policyAlreadyExists,
                        "\(at): policy '\(policy.name)' already exists; policies cannot be changed, add one with "
                            + "another name")
                }
                do { try policy.validate() } catch { throw AgadirError(error.code, "\(at): \(error.message)") }
                policies[policy.name] = policy
            }
        }

        let nodeList = nodes.values.sorted { $0.id < $1.id }
        let siteNames = Set(nodeList.map(\.site)).union(siteLabels.filter { !$0.value.isEmpty }.keys)
        let sites = siteNames.sorted().map { SiteSpec(name: $0, labels: siteLabels[$0] ?? [:]) }
        policies[Policy.defaultName] = .builtInDefault(storageNodes: nodeList.count { $0.isStorage })
        let policyList = policies.values.sorted { $0.name < $1.name }

        guard nodeList.count <= PlacementLimits.maxNodes else {
            throw AgadirError(
                .invalidArgument, "the layout would have \(nodeList.count) nodes; at most \(PlacementLimits.maxNodes)")
        }
        guard sites.count <= PlacementLimits.maxSites else {
            throw AgadirError(
                .invalidArgument, "the layout would have \(sites.count) sites; at most \(PlacementLimits.maxSites)")
        }
        guard policyList.count <= PlacementLimits.maxPolicies else {
            throw AgadirError(
                .invalidArgument,
                "the layout would have \(policyList.count) policies; at most \(PlacementLimits.maxPolicies)")
        }
        return (sites, nodeList, policyList)
    }
}
