import AgadirCore

// MARK: Rebalance, repair, scrub, GC and cluster status admin commands: inputs and answers

extension Admin {
    /// `rebalance.set` input: only the fields given change.
    public struct RebalanceChange: Codable, Sendable {
        public var intraSiteBytesPerSecond: UInt64?
        public var interSiteBytesPerSecond: UInt64?
        public var paused: Bool?

        public init(intraSiteBytesPerSecond: UInt64? = nil, interSiteBytesPerSecond: UInt64? = nil, paused: Bool? = nil)
        {
            self.intraSiteBytesPerSecond = intraSiteBytesPerSecond
            self.interSiteBytesPerSecond = interSiteBytesPerSecond
            self.paused = paused
        }
    }

    /// `rebalance.set` answer.
    public struct RebalanceSetView: Codable, Sendable {
        public var settings: RebalanceSettings
        /// Members that took the settings now; the others learn them from a peer later.
        public var reached: [String]
        public var unreached: [String]

        public init(settings: RebalanceSettings, reached: [String], unreached: [String]) {
            self.settings = settings
            self.reached = reached
            self.unreached = unreached
        }
    }

    /// One node's line of `rebalance.status`.
    public struct RebalanceNodeView: Codable, Sendable {
        public var node: String
        public var status: NodeRebalanceStatus?
        public var error: String?

        public init(node: String, status: NodeRebalanceStatus? = nil, error: String? = nil) {
            self.node = node
            self.status = status
            self.error = error
        }
    }

    /// `rebalance.status` answer: every node of the layout, and the sums.
    public struct RebalanceView: Codable, Sendable {
        public var layoutVersion: UInt64
        public var liveVersions: [UInt64]
        public var nodes: [RebalanceNodeView]
        public var partitionsTotal: Int
        public var partitionsDone: Int
        public var bytesMoved: UInt64
        public var bytesLeftEstimate: UInt64?
        public var rateBytesPerSecond: UInt64
        public var etaSeconds: UInt64?
        /// True when one version is live and every node has dropped what it no longer owns.
        public var complete: Bool
        public var settings: RebalanceSettings

        public init(
            layoutVersion: UInt64, liveVersions: [UInt64], nodes: [RebalanceNodeView], partitionsTotal: Int,
            partitionsDone: Int, bytesMoved: UInt64, bytesLeftEstimate: UInt64? = nil, rateBytesPerSecond: UInt64,
            etaSeconds: UInt64? = nil, complete: Bool, settings: RebalanceSettings
        ) {
            self.layoutVersion = layoutVersion
            self.liveVersions = liveVersions
            self.nodes = nodes
            self.partitionsTotal = partitionsTotal
            self.partitionsDone = partitionsDone
            self.bytesMoved = bytesMoved
            self.bytesLeftEstimate = bytesLeftEstimate
            self.rateBytesPerSecond = rateBytesPerSecond
            self.etaSeconds = etaSeconds
            self.complete = complete
            self.settings = settings
        }
    }

    /// `repair.start` input.
    public struct RepairRequest: Codable, Sendable {
        public var bucket: String?
        public var partition: Int?

        public init(bucket: String? = nil, partition: Int? = nil) {
            self.bucket = bucket
            self.partition = partition
        }
    }

    /// `repair.start` answer.
    public struct RepairStartView: Codable, Sendable {
        public var scope: RepairScope
        public var reached: [String]
        public var unreached: [String]

        public init(scope: RepairScope, reached: [String], unreached: [String]) {
            self.scope = scope
            self.reached = reached
            self.unreached = unreached
        }
    }

    public struct RepairNodeView: Codable, Sendable {
        public var node: String
        public var repair: RepairProgress?
        public var error: String?

        public init(node: String, repair: RepairProgress? = nil, error: String? = nil) {
            self.node = node
            self.repair = repair
            self.error = error
        }
    }

    /// `scrub.start|pause` and `gc.start` answers.
    public struct MaintenanceView: Codable, Sendable {
        public var task: String
        public var action: String
        public var reached: [String]
        public var unreached: [String]

        public init(task: String, action: String, reached: [String], unreached: [String]) {
            self.task = task
            self.action = action
            self.reached = reached
            self.unreached = unreached
        }
    }

    public struct ScrubNodeView: Codable, Sendable {
        public var node: String
        public var scrub: ScrubProgress?
        public var error: String?

        public init(node: String, scrub: ScrubProgress? = nil, error: String? = nil) {
            self.node = node
            self.scrub = scrub
            self.error = error
        }
    }

    public struct GarbageNodeView: Codable, Sendable {
        public var node: String
        public var gc: GarbageProgress?
        public var error: String?

        public init(node: String, gc: GarbageProgress? = nil, error: String? = nil) {
            self.node = node
            self.gc = gc
            self.error = error
        }
    }

    /// One node of `cluster.status`.
    public struct StatusNodeView: Codable, Sendable {
        public var node: String
        public var site: String
        /// alive, suspect, dead, left (gossip), or unknown.
        public var state: String
        /// In the current layout version (false for a member not assigned yet, or a node
        /// removed but still in an older live version).
        public var inLayout: Bool
        /// Layout capacity in bytes (0 for a gateway); nil when not in the current version.
        public var capacity: UInt64?
        /// Partition replicas the node holds in the current version, all policies together.
        public var partitions: Int
        public var usedBytes: UInt64?
        /// Capacity minus used (nil for a gateway or when the status is unknown).
        public var freeBytes: UInt64?
        public var fsFreeBytes: UInt64?
        public var hintsPending: Int?
        public var chunks: Int?
        public var objects: Int?
        /// The node's rebalance state (idle, copying, ...).
        public var rebalance: String?
        /// Its anti-entropy: state and passes done.
        public var repair: String?
        /// Its scrub: state, chunks checked in the pass, corrupt found, quarantined now.
        public var scrub: String?
        public var quarantinedChunks: Int?
        /// Its garbage collection: chunks reclaimed, bytes freed.
        public var gc: String?
        /// Why the node's status is not known.
        public var error: String?

        public init(
            node: String, site: String, state: String, inLayout: Bool, capacity: UInt64? = nil, partitions: Int,
            usedBytes: UInt64? = nil, freeBytes: UInt64? = nil, fsFreeBytes: UInt64? = nil, hintsPending: Int? = nil,
            chunks: Int? = nil, objects: Int? = nil, rebalance: String? = nil, repair: String? = nil,
            scrub: String? = nil, quarantinedChunks: Int? = nil, gc: String? = nil, error: String? = nil
        ) {
            self.node = node
            self.site = site
            self.state = state
            self.inLayout = inLayout
            self.capacity = capacity
            self.partitions = partitions
            self.usedBytes = usedBytes
            self.freeBytes = freeBytes
            self.fsFreeBytes = fsFreeBytes
            self.hintsPending = hintsPending
            self.chunks = chunks
            self.objects = objects
            self.rebalance = rebalance
            self.repair = repair
            self.scrub = scrub
            self.quarantinedChunks = quarantinedChunks
            self.gc = gc
            self.error = error
        }
    }

    /// The rebalance in a few figures (the whole view is `rebalance.status`).
    public struct RebalanceSummary: Codable, Sendable {
        public var liveVersions: [UInt64]
        public var complete: Bool
        public var partitionsTotal: Int
        public var partitionsDone: Int
        public var bytesMoved: UInt64
        public var bytesLeftEstimate: UInt64?
        public var rateBytesPerSecond: UInt64
        public var etaSeconds: UInt64?

        public init(
            liveVersions: [UInt64], complete: Bool, partitionsTotal: Int, partitionsDone: Int, bytesMoved: UInt64,
            bytesLeftEstimate: UInt64? = nil, rateBytesPerSecond: UInt64, etaSeconds: UInt64? = nil
        ) {
            self.liveVersions = liveVersions
            self.complete = complete
            self.partitionsTotal = partitionsTotal
            self.partitionsDone = partitionsDone
            self.bytesMoved = bytesMoved
            self.bytesLeftEstimate = bytesLeftEstimate
            self.rateBytesPerSecond = rateBytesPerSecond
            self.etaSeconds = etaSeconds
        }
    }

    /// `cluster.status` answer.
    public struct ClusterStatusView: Codable, Sendable {
        /// The node that answered.
        public var node: String
        public var layoutVersion: UInt64
        public var liveVersions: [UInt64]
        /// True when `reasons` is empty.
        public var healthy: Bool
        /// Why the cluster is degraded, one sentence each.
        public var reasons: [String]
        /// Sorted by site, then node.
        public var nodes: [StatusNodeView]
        /// Per policy, the partitions of the current version with a replica not alive.
        public var underReplicated: [UnderReplication]
        public var rebalance: RebalanceSummary
        public var hintsPending: Int

        public init(
            node: String, layoutVersion: UInt64, liveVersions: [UInt64], healthy: Bool, reasons: [String],
            nodes: [StatusNodeView], underReplicated: [UnderReplication], rebalance: RebalanceSummary, hintsPending: Int
        ) {
            self.node = node
            self.layoutVersion = layoutVersion
            self.liveVersions = liveVersions
            self.healthy = healthy
            self.reasons = reasons
            self.nodes = nodes
            self.underReplicated = underReplicated
            self.rebalance = rebalance
            self.hintsPending = hintsPending
        }
    }
}
