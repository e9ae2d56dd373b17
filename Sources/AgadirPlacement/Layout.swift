import AgadirCore

/// A site (data centre) and its labels (`country=MA`, `tier=4`).
public struct SiteSpec: Sendable, Hashable, Codable {
    public var name: String
    public var labels: [String: String]

    public init(name: String, labels: [String: String] = [:]) {
        self.name = name
        self.labels = labels
    }
}

/// A node as the layout knows it: where it is and how many bytes it may hold.
public struct NodeSpec: Sendable, Hashable, Codable {
    /// Node id: 1-128 letters, digits, '-', '_' or '.' ("benguerir-1", or a hex string).
    public var id: String
    public var site: String
    /// Bytes. 0 = gateway: stores nothing, may coordinate requests of eligible buckets.
    public var capacity: UInt64

    public init(id: String, site: String, capacity: UInt64) {
        self.id = id
        self.site = site
        self.capacity = capacity
    }

    /// True for a node that holds replicas (capacity > 0).
    public var isStorage: Bool { capacity > 0 }
}

/// One policy's partition map: for every partition, the ordered replica node ids (rank 0 first).
public struct PartitionMap: Sendable, Hashable {
    public var policy: String
    /// `[partition][rank]` -> node id.
    public var replicas: [[String]]

    public init(policy: String, replicas: [[String]]) {
        self.policy = policy
        self.replicas = replicas
    }
}

/// The admin-controlled, versioned layout: sites, nodes, policies, and the partition map of
/// every policy derived from them by `Planner`.
///
/// `sites`, `nodes` and `policies` are kept sorted (by name, id, name): the lookups below
/// search them by bisection. `Planner` and `LayoutCodec` always produce sorted layouts.
public struct Layout: Sendable, Hashable {
    /// 0 = nothing applied yet.
    public var version: UInt64
    /// Power of two in 8...65536, fixed when version 1 is applied.
    public var partitionCount: Int
    public var sites: [SiteSpec]
    public var nodes: [NodeSpec]
    /// Always contains "default".
    public var policies: [Policy]
    /// One map per policy, keyed by policy name (none before version 1).
    public var maps: [String: PartitionMap]
    /// Wall clock of the apply, milliseconds since the Unix epoch, as given by the caller.
    public var appliedMillis: UInt64

    public init(
        version: UInt64, partitionCount: Int, sites: [SiteSpec], nodes: [NodeSpec], policies: [Policy],
        maps: [String: PartitionMap], appliedMillis: UInt64
    ) {
        self.version = version
        self.partitionCount = partitionCount
        self.sites = sites.sorted { $0.name < $1.name }
        self.nodes = nodes.sorted { $0.id < $1.id }
        self.policies = policies.sorted { $0.name < $1.name }
        self.maps = maps
        self.appliedMillis = appliedMillis
    }

    /// Version 0: no site, no node, the built-in default policy, no map.
    public static func empty(partitionCount: Int = PlacementLimits.defaultPartitionCount) -> Layout {
        Layout(
            version: 0, partitionCount: partitionCount, sites: [], nodes: [],
            policies: [.builtInDefault(storageNodes: 0)], maps: [:], appliedMillis: 0)
    }

    public func node(_ id: String) -> NodeSpec? {
        Self.bisect(nodes, id, key: \.id).map { nodes[$0] }
    }

    public func site(_ name: String) -> SiteSpec? {
        Self.bisect(sites, name, key: \.name).map { sites[$0] }
    }

    public func policy(_ name: String) -> Policy? {
        Self.bisect(policies, name, key: \.name).map { policies[$0] }
    }

    /// The site's labels; `[:]` for an unknown site.
    public func siteLabels(_ site: String) -> [String: String] {
        self.site(site)?.labels ?? [:]
    }

    public func isEligible(site: String, for policy: Policy) -> Bool {
        policy.selector.matches(site: site, siteLabels: siteLabels(site))
    }

    /// The node is in the layout and its site is eligible (capacity does not matter: an eligible
    /// gateway may coordinate).
    public func isEligible(node id: String, for policy: Policy) -> Bool {
        guard let node = node(id) else { return false }
        return isEligible(site: node.site, for: policy)
    }

    /// The ordered replicas of a partition; `[]` for an unknown policy or partition.
    public func replicas(policy: String, partition: Int) -> [String] {
        guard let map = maps[policy], partition >= 0, partition < map.replicas.count else { return [] }
        return map.replicas[partition]
    }

    /// Nodes that may hold the policy's replicas: capacity > 0 on an eligible site, sorted by id.
    public func eligibleNodes(for policy: Policy) -> [NodeSpec] {
        nodes.filter { $0.isStorage && isEligible(site: $0.site, for: policy) }.sorted { $0.id < $1.id }
    }

    private static func bisect<T>(_ array: [T], _ target: String, key: KeyPath<T, String>) -> Int? {
        var lo = 0
        var hi = array.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if array[mid][keyPath: key] < target { lo = mid + 1 } else { hi = mid }
        }
        return lo < array.count && array[lo][keyPath: key] == target ? lo : nil
    }
}
