import AgadirCore

// MARK: Layout, policy and node admin commands: inputs and answers

extension Admin {
    public struct Empty: Codable, Sendable {
        public init() {}
    }

    public struct Assign: Codable, Sendable {
        public var node: String
        public var site: String
        public var capacity: UInt64
        public var siteLabels: [String: String]?

        public init(node: String, site: String, capacity: UInt64, siteLabels: [String: String]? = nil) {
            self.node = node
            self.site = site
            self.capacity = capacity
            self.siteLabels = siteLabels
        }
    }

    public struct Remove: Codable, Sendable {
        public var node: String

        public init(node: String) {
            self.node = node
        }
    }

    public struct SiteLabels: Codable, Sendable {
        public var site: String
        public var labels: [String: String]

        public init(site: String, labels: [String: String]) {
            self.site = site
            self.labels = labels
        }
    }

    public struct Partitions: Codable, Sendable {
        public var count: Int

        public init(count: Int) {
            self.count = count
        }
    }

    public struct Apply: Codable, Sendable {
        public var version: UInt64

        public init(version: UInt64) {
            self.version = version
        }
    }

    public struct PolicySpec: Codable, Sendable {
        public var name: String
        public var replicationFactor: Int
        /// Selector text: `any`, `country=MA`, `sites=a,b`.
        public var sites: String
        public var minSites: Int
        public var read: String?
        public var write: String?
        public var codec: String?
        /// Apply at once as the next layout version (only when nothing else is staged).
        public var apply: Bool?

        public init(
            name: String, replicationFactor: Int, sites: String, minSites: Int, read: String? = nil,
            write: String? = nil, codec: String? = nil, apply: Bool? = nil
        ) {
            self.name = name
            self.replicationFactor = replicationFactor
            self.sites = sites
            self.minSites = minSites
            self.read = read
            self.write = write
            self.codec = codec
            self.apply = apply
        }
    }

    public struct Name: Codable, Sendable {
        public var name: String

        public init(name: String) {
            self.name = name
        }
    }

    public struct SiteView: Codable, Sendable, Hashable {
        public var name: String
        public var labels: [String: String]

        public init(name: String, labels: [String: String]) {
            self.name = name
            self.labels = labels
        }
    }

    public struct NodeView: Codable, Sendable, Hashable {
        public var id: String
        public var site: String
        public var capacity: UInt64
        /// Partition replicas this node holds per policy.
        public var partitions: [String: Int]
        /// From gossip: alive/suspect/dead/left, or `unknown`.
        public var state: String
        /// Layout version the node announces in gossip.
        public var announcedVersion: UInt64?

        public init(
            id: String, site: String, capacity: UInt64, partitions: [String: Int], state: String,
            announcedVersion: UInt64? = nil
        ) {
            self.id = id
            self.site = site
            self.capacity = capacity
            self.partitions = partitions
            self.state = state
            self.announcedVersion = announcedVersion
        }
    }

    public struct PolicyView: Codable, Sendable, Hashable {
        public var name: String
        public var replicationFactor: Int
        public var sites: String
        public var minSites: Int
        public var read: String
        public var write: String
        public var codec: String
        /// Storage nodes and sites the policy may use in the current layout.
        public var eligibleNodes: Int
        public var eligibleSites: [String]

        public init(
            name: String, replicationFactor: Int, sites: String, minSites: Int, read: String, write: String,
            codec: String, eligibleNodes: Int, eligibleSites: [String]
        ) {
            self.name = name
            self.replicationFactor = replicationFactor
            self.sites = sites
            self.minSites = minSites
            self.read = read
            self.write = write
            self.codec = codec
            self.eligibleNodes = eligibleNodes
            self.eligibleSites = eligibleSites
        }
    }

    public struct LayoutView: Codable, Sendable {
        public var version: UInt64
        public var partitionCount: Int
        public var liveVersions: [UInt64]
        public var appliedMillis: UInt64
        public var sites: [SiteView]
        public var nodes: [NodeView]
        public var policies: [PolicyView]
        public var staged: [String]
        public var stagedPartitionCount: Int?
        /// Members whose configured site differs from the layout's.
        public var warnings: [String]

        public init(
            version: UInt64, partitionCount: Int, liveVersions: [UInt64], appliedMillis: UInt64, sites: [SiteView],
            nodes: [NodeView], policies: [PolicyView], staged: [String], stagedPartitionCount: Int? = nil,
            warnings: [String]
        ) {
            self.version = version
            self.partitionCount = partitionCount
            self.liveVersions = liveVersions
            self.appliedMillis = appliedMillis
            self.sites = sites
            self.nodes = nodes
            self.policies = policies
            self.staged = staged
            self.stagedPartitionCount = stagedPartitionCount
            self.warnings = warnings
        }
    }

    public struct LinkView: Codable, Sendable, Hashable {
        public var from: String
        public var to: String
        public var bytes: UInt64

        public init(from: String, to: String, bytes: UInt64) {
            self.from = from
            self.to = to
            self.bytes = bytes
        }
    }

    public struct PolicyPlanView: Codable, Sendable, Hashable {
        public var policy: String
        public var partitionsMoved: Int
        public var replicasMoved: Int
        public var replicasBefore: [String: Int]
        public var replicasAfter: [String: Int]
        public var links: [LinkView]

        public init(
            policy: String, partitionsMoved: Int, replicasMoved: Int, replicasBefore: [String: Int],
            replicasAfter: [String: Int], links: [LinkView]
        ) {
            self.policy = policy
            self.partitionsMoved = partitionsMoved
            self.replicasMoved = replicasMoved
            self.replicasBefore = replicasBefore
            self.replicasAfter = replicasAfter
            self.links = links
        }
    }

    public struct PlanView: Codable, Sendable {
        public var fromVersion: UInt64
        public var toVersion: UInt64
        public var totalPartitionsMoved: Int
        public var links: [LinkView]
        public var policies: [PolicyPlanView]
        public var changes: [String]
        public var layout: LayoutView?
        /// What the operator must know about this change (`node.remove` by force).
        public var warnings: [String]? = nil

        public init(
            fromVersion: UInt64, toVersion: UInt64, totalPartitionsMoved: Int, links: [LinkView],
            policies: [PolicyPlanView], changes: [String], layout: LayoutView? = nil, warnings: [String]? = nil
        ) {
            self.fromVersion = fromVersion
            self.toVersion = toVersion
            self.totalPartitionsMoved = totalPartitionsMoved
            self.links = links
            self.policies = policies
            self.changes = changes
            self.layout = layout
            self.warnings = warnings
        }
    }

    public struct HistoryView: Codable, Sendable, Hashable {
        public var version: UInt64
        public var appliedMillis: UInt64
        public var summary: String

        public init(version: UInt64, appliedMillis: UInt64, summary: String) {
            self.version = version
            self.appliedMillis = appliedMillis
            self.summary = summary
        }
    }

    /// `node.drain` input.
    public struct NodeRef: Codable, Sendable {
        public var node: String

        public init(node: String) {
            self.node = node
        }
    }

    /// `node.remove` input.
    public struct NodeRemoval: Codable, Sendable {
        public var node: String
        /// Remove even while the node is in a live version's replica sets.
        public var force: Bool?

        public init(node: String, force: Bool? = nil) {
            self.node = node
            self.force = force
        }
    }
}
