import AgadirCore
import AgadirPlacement
import Logging
import Synchronization

/// What the coordinator knows of the cluster at one instant: the layout's live versions,
/// who is alive, where each node listens. Taken once per request, so one request sees one
/// consistent view.
public struct ClusterSnapshot: Sendable {
    public var nodeID: String
    /// This node's site (its site in the layout, else its configured one).
    public var site: String
    public var layout: ClusterLayout
    /// Members alive right now (this node included).
    public var alive: Set<String>
    /// Client endpoint (`HOST:PORT`) of each known member.
    public var endpoints: [String: String]

    public init(nodeID: String, site: String, layout: ClusterLayout, alive: Set<String>, endpoints: [String: String]) {
        self.nodeID = nodeID
        self.site = site
        self.layout = layout
        self.alive = alive
        self.endpoints = endpoints
    }

    /// The site of `node` in the newest live layout version that has it ("" if none).
    public func site(of node: String) -> String {
        for layout in self.layout.live.reversed() {
            if let n = layout.node(node) { return n.site }
        }
        return node == nodeID ? site : ""
    }

    /// Nodes in order of preference for reads: this node, then its site, then the others,
    /// alive ones first; stable otherwise.
    public func byProximity(_ nodes: [String]) -> [String] {
        func rank(_ n: String) -> Int {
            if n == nodeID { return 0 }
            let alive = self.alive.contains(n) ? 0 : 2
            return 1 + alive + (site(of: n) == site ? 0 : 1)
        }
        return nodes.enumerated().sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }.map(
            \.element)
    }
}

/// The coordinator's view of the node it runs on.
public protocol ClusterContext: Sendable {
    func snapshot() -> ClusterSnapshot
    /// The replica client for `node` (the local store for this node).
    func replica(_ node: String) -> any ReplicaClient
    /// The catalog record of a bucket (nil when unknown).
    func bucketRecord(_ name: String) async throws(AgadirError) -> BucketRecord?
    /// A new version from this node's hybrid logical clock.
    func nextVersion() -> ObjectVersion
    /// Pulls a newer layout if a member announces one (a peer this node does not know yet
    /// may be in it); returns once done or failed.
    func refreshLayout() async
    /// Nil when `node` may hold data of `policy` by what its certificate attests, or when
    /// the cluster runs without certificates; otherwise why not (docs/security.md).
    func attestedRefusal(_ node: String, for policy: Policy) -> String?
}

extension ClusterContext {
    /// Contexts without certificates (tests' fakes) attest nothing and refuse nothing.
    public func attestedRefusal(_ node: String, for policy: Policy) -> String? { nil }
}

/// Counters of the coordinator's background work, for tests and status.
public struct CoordinatorCounters: Sendable, Hashable {
    public var hintsParked = 0
    public var hintsFailed = 0
    public var readRepairs = 0
    public var readRepairFailures = 0
    public var lateWriteFailures = 0
    /// Writes stamped again because a replica held a newer version (`writeManifest`).
    public var restamps = 0
}

/// Runs a bucket's requests across its replicas (docs/cluster.md, "Coordinator"): quorum
/// writes of chunks and manifests, newest-wins reads with read repair, hinted handoff for
/// replicas that are down, merged listings, and the sovereignty checks before any byte of
/// a bucket is sent to a node.
public final class Coordinator: Sendable {
    public let context: any ClusterContext
    let logger: Logger
    /// Where read repairs and late hint parking run once the request has answered.
    public let background: BackgroundTasks
    private let countersBox = Mutex(CoordinatorCounters())
    /// The usage of buckets with a quota, as this coordinator last saw it.
    let quotaUsage = QuotaUsage(maxAge: Coordinator.quotaUsageMaxAge)

    /// `background` owns the work requests leave behind; the node runs it as a service (in
    /// tests a coordinator gets one of its own).
    /// How long a read waits for the replicas it asked first before asking the others too.
    public let speculativeReadDelay: Duration

    public init(
        context: any ClusterContext, logger: Logger, background: BackgroundTasks? = nil,
        speculativeReadDelay: Duration = Coordinator.defaultSpeculativeReadDelay
    ) {
        self.speculativeReadDelay = speculativeReadDelay
        self.context = context
        self.logger = logger
        self.background = background ?? BackgroundTasks(logger: logger)
    }

    public var counters: CoordinatorCounters { countersBox.withLock { $0 } }

    func count(_ update: (inout CoordinatorCounters) -> Void) { countersBox.withLock { update(&$0) } }

    // MARK: Resolving a bucket

    /// The bucket's policy and a snapshot, or the error the client needs: NO_SUCH_BUCKET,
    /// NO_SUCH_POLICY, or REDIRECT when this node's site is outside the policy.
    public func resolve(bucket: String) async throws(AgadirError) -> ResolvedBucket {
        let resolved = try await lookUp(bucket: bucket)
        let (policy, snapshot) = (resolved.policy, resolved.snapshot)
        guard snapshot.layout.current.isEligible(site: snapshot.site, for: policy) else {
            throw AgadirError.redirect(
                "bucket '\(bucket)' (policy '\(policy.name)', sites \(policy.selector)) may not be served from site "
                    + "'\(snapshot.site)'; send its requests to a node in an eligible site",
                to: Self.eligibleEndpoints(policy: policy, snapshot: snapshot))
        }
        return resolved
    }

    /// The bucket's record and policy and a snapshot, from any node (no eligibility check):
    /// NO_SUCH_BUCKET, or NO_SUCH_POLICY while the layout that has it is still spreading.
    func lookUp(bucket: String) async throws(AgadirError) -> ResolvedBucket {
        guard let record = try await context.bucketRecord(bucket), !record.deleted else {
            throw AgadirError(.noSuchBucket, "bucket '\(bucket)' does not exist; create it with `agadir mb \(bucket)`")
        }
        let snapshot = context.snapshot()
        guard let policy = Self.policyNamed(record.policy, in: snapshot.layout) else {
            throw AgadirError(
                .noSuchPolicy,
                "bucket '\(bucket)' uses policy '\(record.policy)', which this node's layout (version "
                    + "\(snapshot.layout.current.version)) does not have yet; retry once the layout has spread")
        }
        return ResolvedBucket(record: record, policy: policy, snapshot: snapshot)
    }

    /// A policy by name in the newest live version that has it.
    public static func policyNamed(_ name: String, in layout: ClusterLayout) -> Policy? {
        for l in layout.live.reversed() {
            if let p = l.policy(name) { return p }
        }
        return nil
    }

    /// Client endpoints of alive nodes eligible for `policy`: the layout's storage nodes
    /// first (same site as this node first), then gateways in eligible sites.
    public static func eligibleEndpoints(policy: Policy, snapshot: ClusterSnapshot) -> [String] {
        let layout = snapshot.layout.current
        let nodes = layout.nodes.filter {
            layout.isEligible(site: $0.site, for: policy) && snapshot.alive.contains($0.id)
        }
        let ordered = nodes.sorted { a, b in
            (a.capacity == 0 ? 1 : 0, a.site == snapshot.site ? 0 : 1, a.site, a.id)
                < (b.capacity == 0 ? 1 : 0, b.site == snapshot.site ? 0 : 1, b.site, b.id)
        }
        return ordered.compactMap { snapshot.endpoints[$0.id] }
    }

    // MARK: Sovereignty guard

    /// The second check of sovereignty: before any byte of a bucket goes to `node`, the
    /// node must be eligible for the bucket's policy in a live layout version that places
    /// data there. A failure here is a bug (the planner already refuses such placements),
    /// so it is logged as an error and the send refused.
    func checkEligible(_ node: String, policy: Policy, snapshot: ClusterSnapshot, what: String) throws(AgadirError) {
        if node == snapshot.nodeID, snapshot.layout.current.isEligible(site: snapshot.site, for: policy) { return }
        for layout in snapshot.layout.live.reversed() where layout.policy(policy.name) != nil {
            if layout.isEligible(node: node, for: policy) { return }
        }
        logger.error(
            "refused to send outside a policy's sites",
            metadata: ["node": "\(node)", "policy": "\(policy.name)", "what": "\(what)"])
        throw AgadirError(
            .internalError,
            "refused to send \(what) to node \(node): it is not eligible for policy '\(policy.name)' (\(policy.selector))"
        )
    }

    // MARK: Fan-out

    /// Runs `work` for every node at once; returns when `enough` holds for the nodes that
    /// succeeded, or when every call has ended. Calls still running then go on in the
    /// background and report to `late`.
    static func gather<T: Sendable>(
        _ nodes: [String], work: @escaping @Sendable (String) async -> Result<T, AgadirError>,
        enough: @escaping @Sendable ([String: T]) -> Bool,
        late: @escaping @Sendable (String, Result<T, AgadirError>) -> Void = { _, _ in }
    ) async -> (successes: [String: T], failures: [String: AgadirError]) {
        await gather(nodes, delayed: [], after: .zero, work: work, enough: enough, late: late)
    }

    /// `gather`, where the nodes in `delayed` are only asked after `delay` and only if
    /// `enough` does not hold by then (speculative requests); once it holds, their waits are
    /// cancelled and they are not asked at all.
    static func gather<T: Sendable>(
        _ nodes: [String], delayed: Set<String>, after delay: Duration,
        work: @escaping @Sendable (String) async -> Result<T, AgadirError>,
        enough: @escaping @Sendable ([String: T]) -> Bool,
        late: @escaping @Sendable (String, Result<T, AgadirError>) -> Void = { _, _ in }
    ) async -> (successes: [String: T], failures: [String: AgadirError]) {
        let gathering = Gathering<T>(pending: nodes.count, enough: enough, late: late)
        if nodes.isEmpty { return ([:], [:]) }
        for node in nodes where !delayed.contains(node) {
            Task { gathering.finished(node, await work(node)) }
        }
        for node in nodes where delayed.contains(node) {
            gathering.addDelayed(
                Task {
                    let skipped = Gathering<T>.notAsked
                    do {
                        try await Task.sleep(for: delay)
                    } catch {
                        gathering.finished(node, .failure(skipped))
                        return
                    }
                    if gathering.isDone {
                        gathering.finished(node, .failure(skipped))
                        return
                    }
                    gathering.finished(node, await work(node))
                })
        }
        return await gathering.wait()
    }
}

/// The shared state of one `Coordinator.gather`.
final class Gathering<T: Sendable>: Sendable {
    /// The outcome of a speculative request that was not needed.
    static var notAsked: AgadirError { AgadirError(.unavailable, "not asked: the level was met without it") }

    private struct State {
        var successes: [String: T] = [:]
        var failures: [String: AgadirError] = [:]
        var pending: Int
        var done = false
        var waiter: CheckedContinuation<Void, Never>?
        var delayed: [Task<Void, Never>] = []
    }
    private let state: Mutex<State>
    private let enough: @Sendable ([String: T]) -> Bool
    private let late: @Sendable (String, Result<T, AgadirError>) -> Void

    init(
        pending: Int, enough: @escaping @Sendable ([String: T]) -> Bool,
        late: @escaping @Sendable (String, Result<T, AgadirError>) -> Void
    ) {
        self.state = Mutex(State(pending: pending))
        self.enough = enough
        self.late = late
    }

    var isDone: Bool { state.withLock { $0.done } }

    /// A speculative request waiting for its delay; cancelled once the gathering is done.
    func addDelayed(_ task: Task<Void, Never>) {
        let cancelNow = state.withLock { s -> Bool in
            if s.done { return true }
            s.delayed.append(task)
            return false
        }
        if cancelNow { task.cancel() }
    }

    func finished(_ node: String, _ result: Result<T, AgadirError>) {
        let enough = self.enough
        let (isLate, waiter, delayed) = state.withLock {
            s -> (Bool, CheckedContinuation<Void, Never>?, [Task<Void, Never>]) in
            s.pending -= 1
            if s.done { return (true, nil, []) }
            switch result {
            case .success(let v): s.successes[node] = v
            case .failure(let e): s.failures[node] = e
            }
            guard s.pending == 0 || enough(s.successes) else { return (false, nil, []) }
            s.done = true
            defer {
                s.waiter = nil
                s.delayed = []
            }
            return (false, s.waiter, s.delayed)
        }
        if isLate {
            if case .failure(let e) = result, e == Self.notAsked {} else { late(node, result) }
        }
        for t in delayed { t.cancel() }
        waiter?.resume()
    }

    func wait() async -> (successes: [String: T], failures: [String: AgadirError]) {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                if s.done { return true }
                s.waiter = c
                return false
            }
            if resumeNow { c.resume() }
        }
        return state.withLock { ($0.successes, $0.failures) }
    }
}

/// A bucket whose requests this node may coordinate.
public struct ResolvedBucket: Sendable {
    public var record: BucketRecord
    public var policy: Policy
    public var snapshot: ClusterSnapshot
}
