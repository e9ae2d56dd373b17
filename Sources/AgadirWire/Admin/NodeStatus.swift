import AgadirCore

// MARK: What a node reports of itself (NODE_STATUS) and the settings nodes pass on to each other

/// Throttles and pause of the rebalance, the same on every node: the newest change wins
/// (by `changedMillis`, then `changedBy`), and nodes pass it on to each other.
public struct RebalanceSettings: Codable, Sendable, Hashable {
    /// Bytes per second this node pulls from nodes of its own site; 0 is unlimited.
    public var intraSiteBytesPerSecond: UInt64 = 200_000_000
    /// Bytes per second this node pulls from nodes of other sites; 0 is unlimited.
    public var interSiteBytesPerSecond: UInt64 = 50_000_000
    public var paused = false
    /// When the settings were changed (ms since the epoch) and on which node.
    public var changedMillis: UInt64 = 0
    public var changedBy = ""

    public init() {}

    public func isNewer(than other: RebalanceSettings) -> Bool {
        (changedMillis, changedBy) > (other.changedMillis, other.changedBy)
    }
}

/// A node's rebalance, as NODE_STATUS and `agadir admin rebalance status` show it.
public struct NodeRebalanceStatus: Codable, Sendable, Hashable {
    public var node: String
    public var site: String
    public var layoutVersion: UInt64
    public var liveVersions: [UInt64]
    /// Newest version this node has received all its partitions for.
    public var syncedVersion: UInt64
    /// Newest version whose data this node no longer owns was dropped for.
    public var droppedVersion: UInt64
    /// idle, waiting (for every member to adopt the layout), copying, paused, blocked (a
    /// source is not reachable), synced (waiting for the other nodes), dropping.
    public var state: String
    public var partitionsTotal: Int
    public var partitionsDone: Int
    public var moved: CopyTally
    /// Bytes still to move, from the bytes per partition moved so far (nil before the first).
    public var bytesLeftEstimate: UInt64?
    public var rateBytesPerSecond: UInt64
    public var etaSeconds: UInt64?
    public var manifestsDropped: Int
    public var chunksDropped: Int
    public var settings: RebalanceSettings
    public var lastError: String?
    /// Sources this node waits for (not alive).
    public var waitingFor: [String]
    /// Sources not waited for: removed from the current layout version (by `node remove
    /// --force`) and not alive. Writes acknowledged only by them may be lost. Absent in the
    /// answers of older nodes.
    public var skippedSources: [String]?

    public init(
        node: String, site: String, layoutVersion: UInt64, liveVersions: [UInt64], syncedVersion: UInt64,
        droppedVersion: UInt64, state: String, partitionsTotal: Int, partitionsDone: Int, moved: CopyTally,
        bytesLeftEstimate: UInt64? = nil, rateBytesPerSecond: UInt64, etaSeconds: UInt64? = nil, manifestsDropped: Int,
        chunksDropped: Int, settings: RebalanceSettings, lastError: String? = nil, waitingFor: [String],
        skippedSources: [String]? = nil
    ) {
        self.node = node
        self.site = site
        self.layoutVersion = layoutVersion
        self.liveVersions = liveVersions
        self.syncedVersion = syncedVersion
        self.droppedVersion = droppedVersion
        self.state = state
        self.partitionsTotal = partitionsTotal
        self.partitionsDone = partitionsDone
        self.moved = moved
        self.bytesLeftEstimate = bytesLeftEstimate
        self.rateBytesPerSecond = rateBytesPerSecond
        self.etaSeconds = etaSeconds
        self.manifestsDropped = manifestsDropped
        self.chunksDropped = chunksDropped
        self.settings = settings
        self.lastError = lastError
        self.waitingFor = waitingFor
        self.skippedSources = skippedSources
    }
}

/// What NODE_STATUS answers (JSON): the node's rebalance, its store and, later, repair and
/// scrub. Every section is optional, so the answers of older and newer nodes decode.
public struct NodeStatus: Codable, Sendable {
    public var node: String
    public var rebalance: NodeRebalanceStatus?
    public var repair: RepairProgress?
    public var scrub: ScrubProgress?
    public var gc: GarbageProgress?
    public var store: NodeStoreStatus?
    /// The node's background workers (absent in the answers of older nodes).
    public var workers: [WorkerInfo]?

    public init(
        node: String, rebalance: NodeRebalanceStatus? = nil, repair: RepairProgress? = nil, scrub: ScrubProgress? = nil,
        gc: GarbageProgress? = nil, store: NodeStoreStatus? = nil
    ) {
        self.node = node
        self.rebalance = rebalance
        self.repair = repair
        self.scrub = scrub
        self.gc = gc
        self.store = store
    }
}

/// What copying moved: manifests applied and chunks fetched (bytes as they travelled).
public struct CopyTally: Sendable, Hashable, Codable {
    public var manifests = 0
    public var manifestBytes: UInt64 = 0
    public var chunks = 0
    public var chunkBytes: UInt64 = 0
    /// Chunks the source listed that this node already held (only their references were recorded).
    public var chunksAlreadyHeld = 0

    public init() {}

    public var bytes: UInt64 { manifestBytes + chunkBytes }

    public mutating func add(_ other: CopyTally) {
        manifests += other.manifests
        manifestBytes += other.manifestBytes
        chunks += other.chunks
        chunkBytes += other.chunkBytes
        chunksAlreadyHeld += other.chunksAlreadyHeld
    }
}

/// What an anti-entropy pass covers: every partition of this node, or one policy, or one partition.
public struct RepairScope: Codable, Sendable, Hashable, CustomStringConvertible {
    public var policy: String?
    public var partition: Int?

    public init(policy: String? = nil, partition: Int? = nil) {
        self.policy = policy
        self.partition = partition
    }

    public var description: String {
        switch (policy, partition) {
        case (nil, nil): "all partitions"
        case (let p?, nil): "policy \(p)"
        case (nil, let n?): "partition \(n)"
        case (let p?, let n?): "policy \(p), partition \(n)"
        }
    }
}

/// A node's anti-entropy, as NODE_STATUS and `agadir admin repair status` show it.
public struct RepairProgress: Codable, Sendable, Hashable {
    /// idle, running, waiting (a rebalance is in progress: it runs once one version is live).
    public var state = "idle"
    public var scope = RepairScope()
    public var passes = 0
    public var startedMillis: UInt64?
    public var finishedMillis: UInt64?
    public var partitionsTotal = 0
    public var partitionsChecked = 0
    /// Partitions where a replica differed and data was copied.
    public var partitionsRepaired = 0
    /// Partitions skipped because a replica could not be asked (their purge waits too).
    public var partitionsIncomplete = 0
    public var manifestsCopied = 0
    public var chunksCopied = 0
    public var bytesCopied: UInt64 = 0
    public var tombstonesPurged = 0
    public var unreachable: [String] = []
    public var lastError: String?

    public init() {}
}

/// A node's scrub, as NODE_STATUS and `agadir admin scrub status` show it.
public struct ScrubProgress: Codable, Sendable, Hashable {
    /// idle, running, paused.
    public var state = "idle"
    public var passes = 0
    public var startedMillis: UInt64?
    public var finishedMillis: UInt64?
    /// In the running (or last) pass.
    public var chunksChecked = 0
    public var bytesChecked: UInt64 = 0
    /// Since the node started: corrupt chunks found, and those replaced by a good copy.
    public var corruptFound = 0
    public var repaired = 0
    /// Chunks in quarantine now (found bad, no good copy stored yet).
    public var quarantined = 0
    public var bytesPerSecond = 0
    public var lastError: String?

    public init() {}
}

/// A node's garbage collection, as NODE_STATUS and `agadir admin gc status` show it.
public struct GarbageProgress: Codable, Sendable, Hashable {
    /// idle or running.
    public var state = "idle"
    public var passes = 0
    public var startedMillis: UInt64?
    public var finishedMillis: UInt64?
    /// Since the node started.
    public var referencesChecked = 0
    public var referencesDropped = 0
    /// References kept because their object could not be read at level ALL (a replica down).
    public var referencesUndecided = 0
    public var chunksReclaimed = 0
    public var bytesFreed: UInt64 = 0
    public var segmentsCompacted = 0
    /// Deletion records of buckets forgotten after the catalog grace (absent from older nodes).
    public var bucketsPurged: Int?
    /// Manifests a deleted bucket, or an earlier bucket of a name created again, left here
    /// and purged (absent from older nodes).
    public var manifestsPurged: Int?
    public var lastError: String?

    public init() {}
}

/// What a node's data directory holds and has room for (the `store` section of NODE_STATUS).
/// The counts come from the store figures the node refreshes every 10 s.
public struct NodeStoreStatus: Codable, Sendable, Hashable {
    /// Bytes on disk: segment files plus the metadata database (`meta.sqlite` and its WAL).
    public var usedBytes: UInt64
    public var segmentBytes: UInt64
    public var metadataBytes: UInt64
    /// Free and total bytes of the file system holding the data directory (statvfs; nil if
    /// it could not be read).
    public var fsFreeBytes: UInt64?
    public var fsTotalBytes: UInt64?
    /// Hints parked on this node, in total and per target node.
    public var hintsPending: Int
    public var hintsByTarget: [String: Int]
    public var chunks: Int
    /// Live objects (tombstones not counted).
    public var objects: Int

    public init(
        usedBytes: UInt64, segmentBytes: UInt64, metadataBytes: UInt64, fsFreeBytes: UInt64? = nil,
        fsTotalBytes: UInt64? = nil, hintsPending: Int, hintsByTarget: [String: Int], chunks: Int, objects: Int
    ) {
        self.usedBytes = usedBytes
        self.segmentBytes = segmentBytes
        self.metadataBytes = metadataBytes
        self.fsFreeBytes = fsFreeBytes
        self.fsTotalBytes = fsTotalBytes
        self.hintsPending = hintsPending
        self.hintsByTarget = hintsByTarget
        self.chunks = chunks
        self.objects = objects
    }
}

/// MAINTENANCE: `{"task": "scrub" | "gc", "action": "start" | "pause"}`.
public struct MaintenanceRequest: Codable, Sendable {
    public var task: String
    public var action: String

    public init(task: String, action: String) {
        self.task = task
        self.action = action
    }
}
