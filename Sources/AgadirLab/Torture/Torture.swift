import AgadirClient
import AgadirCore
import AgadirStore
import AgadirWire
import Foundation
import Logging

/// `agadir-lab torture`: clients run PUT, GET, DELETE and LIST over a small key space with
/// unique values while a nemesis derived from a seed injects faults; then the faults heal,
/// a repair runs, every key is read at ALL and the bucket listed, and `HistoryChecker`
/// judges the history (docs/consistency.md).
public struct Torture: Sendable {
    /// The faults the nemesis may inject, one at a time.
    public enum Fault: String, Sendable, CaseIterable {
        /// SIGKILL a node, start it again after the hold.
        case kill
        /// SIGSTOP a node, SIGCONT after the hold.
        case pause
        /// Offset a node's clock by up to ±2 s, then back to 0.
        case skew
        /// Cut one node off from the others (a third of the time one way only), then heal.
        /// Needs a lab with relays.
        case partition
        /// Delay (20-150 ms, jitter up to 30 ms) and lose (up to 5 %) what crosses between
        /// one node and the others, then clear. Needs a lab with relays.
        case link
        /// Grow the layout by one node in a Moroccan site (`Lab.add`, assign, apply): the
        /// rebalance moves partitions to it under the load. Not undone; at most 3 per run.
        case grow
        /// Drain a node grown before (`node drain`: capacity 0, its partitions move away);
        /// it keeps coordinating. Only while at least three Moroccan nodes keep capacity.
        case drain

        /// Whether the fault needs the lab's relays.
        public var needsRelays: Bool { self == .partition || self == .link }
    }

    public struct Options: Sendable {
        public var seed: UInt64 = 1
        public var duration: Duration = .seconds(60)
        public var clients = 4
        public var keys = 12
        /// Layout changes (`grow`, `drain`) only when asked for: they grow the lab.
        public var faults: [Fault] = [.kill, .pause, .skew, .partition, .link]
        /// Seconds between the end of one fault and the start of the next, and how long one lasts.
        public var quietSeconds: ClosedRange<Double> = 1...3
        public var holdSeconds: ClosedRange<Double> = 2...5
        /// How long a partition lasts: beyond the clients' timeout and the failure detector's
        /// suspicion, or a cut is only a stall (TCP holds its bytes until the heal).
        public var partitionSeconds: ClosedRange<Double> = 6...15
        /// A client gives up on an operation after this long (a paused node answers nothing).
        public var operationTimeout: Duration = .seconds(5)
        public var bucket = "torture"
        public var historyFile: String?
        /// Nodes outside the bucket's policy (a Paris node): clients and the nemesis use them
        /// too, and after the run their disks are scanned raw for any fragment of the bucket.
        public var foreignNodes: [String] = []

        public init() {}
    }

    /// What the nemesis did, in order.
    public struct FaultEvent: Sendable, CustomStringConvertible {
        public var at: Duration
        public var what: String
        public var description: String { "\(Self.seconds(at)) \(what)" }
        static func seconds(_ d: Duration) -> String {
            String(format: "%7.2fs", Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
        }
    }

    public struct Result: Sendable {
        public var report: HistoryChecker.Report
        public var faults: [FaultEvent]
        public var operations: Int
        /// Partitions a second repair pass, after the first and the final reads, still found
        /// different between replicas (0: every replica of every partition is identical).
        public var divergentPartitions: Int
        /// Violations `audit residency` reports on any node, and nodes it could not audit.
        public var residencyViolations: Int
        /// Manifests and chunks of the bucket found on the foreign nodes' disks (raw scan).
        public var foreignFragments: Int = 0

        /// True when the history and the replicas show nothing wrong.
        public var clean: Bool {
            report.anomalies.isEmpty && divergentPartitions == 0 && residencyViolations == 0 && foreignFragments == 0
        }
    }

    public let lab: Lab
    public let options: Options

    public init(lab: Lab, options: Options) {
        self.lab = lab
        self.options = options
    }

    /// Runs the whole torture on a lab that is up with a layout applied.
    public func run(log: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Result {
        let nodes = try lab.state().nodes.map(\.name)
        guard !nodes.isEmpty else { throw HistoryError(message: "the lab has no nodes") }
        let admin = try lab.client(for: nodes[0])
        defer { Task { await admin.close() } }
        let policy = try await admin.admin(Admin.policyList).map(\.name).contains("ma") ? "ma" : "global"
        do throws(AgadirError) {
            try await admin.createBucket(options.bucket, policy: policy)
        } catch {
            if error.code != .bucketAlreadyExists { throw error }
        }
        let recorder = try HistoryRecorder(file: options.historyFile)
        let deadline = ContinuousClock.now + options.duration
        log(
            "torture: seed \(options.seed), \(options.clients) clients, \(options.keys) keys, faults \(options.faults.map(\.rawValue)), \(options.duration)"
        )

        let nemesisTask = Task {
            await self.nemesis(nodes: nodes, until: deadline, recorder: recorder, admin: admin, log: log)
        }
        await withTaskGroup(of: Void.self) { group in
            for process in 0..<options.clients {
                group.addTask { await self.client(process, nodes: nodes, until: deadline, recorder: recorder) }
            }
        }
        let faults = await nemesisTask.value
        log("torture: clients done; healing every node")
        try await heal(nodes)
        try await repair(admin, log: log)
        // The final state: every key read at ALL, the bucket listed at ALL, through one node.
        let finalFrom = recorder.now()
        try await finalReads(nodes[0], recorder: recorder)
        let history = recorder.close()
        let report = HistoryChecker().check(history, finalFrom: finalFrom)
        let (divergent, violations) = try await checkReplicas(admin, log: log)
        let fragments = try await scanForeignDisks(log: log)
        return Result(
            report: report, faults: faults, operations: history.filter { $0.kind == .invoke }.count,
            divergentPartitions: divergent, residencyViolations: violations, foreignFragments: fragments)
    }

    /// Stops each foreign node and reads its store directly: every manifest and every chunk
    /// referenced by the torture's bucket found there is a fragment where the policy forbids it.
    public func scanForeignDisks(log: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Int {
        var found = 0
        var logger = Logger(label: "agadir.lab.torture.scan")
        logger.logLevel = .critical
        for name in options.foreignNodes {
            guard let node = try lab.state().nodes.first(where: { $0.name == name }) else { continue }
            try await lab.stop(name)
            let store = try NodeStore.open(directory: node.dataDir, logger: logger)
            var manifests = 0
            var chunks = 0
            do {
                var after: (bucket: String, key: String)? = nil
                for _ in 0..<10_000 {
                    let page = try await store.manifestInventory(after: after, limit: 1000)
                    manifests += page.filter { $0.bucket == options.bucket }.count
                    guard page.count == 1000, let last = page.last else { break }
                    after = (last.bucket, last.key)
                }
                var afterChunk: ChunkID? = nil
                for _ in 0..<10_000 {
                    let page = try await store.chunkInventory(after: afterChunk, limit: 1000)
                    chunks += page.filter { $0.buckets.contains(options.bucket) }.count
                    guard page.count == 1000, let last = page.last else { break }
                    afterChunk = last.id
                }
            } catch {
                await store.close()
                throw error
            }
            await store.close()
            log("torture: raw scan of \(name): \(manifests) manifest(s), \(chunks) chunk(s) of '\(options.bucket)'")
            found += manifests + chunks
        }
        return found
    }

    // MARK: Clients

    private func client(
        _ process: Int, nodes: [String], until deadline: ContinuousClock.Instant, recorder: HistoryRecorder
    )
        async
    {
        var rng = SplitMix64Generator(seed: options.seed &* 1_000_003 &+ UInt64(process))
        var clients: [String: AgadirClient] = [:]
        var seq = 0
        while ContinuousClock.now < deadline {
            let node = nodes[Int.random(in: 0..<nodes.count, using: &rng)]
            let key = "k\(Int.random(in: 0..<options.keys, using: &rng))"
            let roll = Int.random(in: 0..<100, using: &rng)
            let c: AgadirClient
            if let existing = clients[node] {
                c = existing
            } else if let made = try? lab.client(for: node) {
                clients[node] = made
                c = made
            } else {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            let bucket = options.bucket
            let timedOut: Bool
            switch roll {
            case 0..<45:
                seq += 1
                let value = "p\(process)-\(seq)"
                timedOut = await recorder.run(
                    process: process, f: .put, key: key, value: value, node: node, timeout: options.operationTimeout
                ) {
                    () throws(AgadirError) -> HistoryRecorder.Outcome in
                    let r = try await c.put(bucket: bucket, key: key, data: Array(value.utf8), consistency: .quorum)
                    return (nil, nil, r.version.description)
                }
            case 45..<80:
                timedOut = await recorder.run(
                    process: process, f: .get, key: key, node: node, timeout: options.operationTimeout
                ) {
                    () throws(AgadirError) -> HistoryRecorder.Outcome in
                    do throws(AgadirError) {
                        let (info, data) = try await c.get(bucket: bucket, key: key, consistency: .quorum)
                        return (String(decoding: data, as: UTF8.self), nil, info.version.description)
                    } catch  where error.code == .noSuchKey {
                        return (nil, nil, nil)
                    }
                }
            case 80..<92:
                timedOut = await recorder.run(
                    process: process, f: .delete, key: key, node: node, timeout: options.operationTimeout
                ) {
                    () throws(AgadirError) -> HistoryRecorder.Outcome in
                    do throws(AgadirError) {
                        let r = try await c.delete(bucket: bucket, key: key, consistency: .quorum)
                        return (nil, nil, r.version.description)
                    } catch  where error.code == .noSuchKey {
                        return (nil, nil, nil)  // nothing to delete: as good as a delete
                    }
                }
            default:
                timedOut = await recorder.run(
                    process: process, f: .list, key: nil, node: node, timeout: options.operationTimeout
                ) {
                    () throws(AgadirError) -> HistoryRecorder.Outcome in
                    let page = try await c.list(ListRequest(bucket: bucket, limit: 1000), consistency: .quorum)
                    return (nil, page.entries.map(\.key), nil)
                }
            }
            if timedOut, let stuck = clients.removeValue(forKey: node) {
                // Its connection waits on a node that answers nothing: drop it, take a new one.
                Task { await stuck.close() }
            }
        }
        for c in clients.values { await c.close() }
    }

    // MARK: Nemesis

    private func nemesis(
        nodes initial: [String], until deadline: ContinuousClock.Instant, recorder: HistoryRecorder,
        admin: AgadirClient, log: @escaping @Sendable (String) -> Void
    ) async -> [FaultEvent] {
        var nodes = initial
        var grown: [String] = []
        var drained: Set<String> = []
        var bag: [Fault] = []
        var rng = SplitMix64Generator(seed: options.seed)
        var events: [FaultEvent] = []
        let start = ContinuousClock.now
        func note(_ what: String) {
            let e = FaultEvent(at: ContinuousClock.now - start, what: what)
            events.append(e)
            log("nemesis \(e)")
        }
        guard !options.faults.isEmpty else { return events }
        while ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(Int(Double.random(in: options.quietSeconds, using: &rng) * 1000)))
            guard ContinuousClock.now < deadline else { break }
            // Every kind once, in a seeded order, before any comes again: a short run still
            // injects each fault asked for.
            if bag.isEmpty { bag = options.faults.shuffled(using: &rng) }
            let fault = bag.removeFirst()
            let node = nodes[Int.random(in: 0..<nodes.count, using: &rng)]
            let hold = Duration.milliseconds(Int(Double.random(in: options.holdSeconds, using: &rng) * 1000))
            do {
                switch fault {
                case .kill:
                    note("kill \(node)")
                    try await lab.kill(node)
                    try? await Task.sleep(for: hold)
                    note("start \(node)")
                    try await lab.start(node)
                case .pause:
                    note("pause \(node)")
                    try await lab.pause(node)
                    try? await Task.sleep(for: hold)
                    note("resume \(node)")
                    try await lab.resume(node)
                case .skew:
                    let ms = Int64.random(in: -2000...2000, using: &rng)
                    note("skew \(node) \(ms) ms")
                    try lab.skew(node, millis: ms)
                    try? await Task.sleep(for: hold)
                    note("skew \(node) 0 ms")
                    try lab.skew(node, millis: 0)
                case .partition:
                    let others = nodes.filter { $0 != node }
                    let way = Int.random(in: 0..<6, using: &rng)
                    let groups = way == 1 ? [others, [node]] : [[node], others]
                    let oneWay = way < 2
                    note(
                        "partition \(groups.map { $0.joined(separator: ",") }.joined(separator: oneWay ? " -> " : " | "))"
                    )
                    try await lab.partition(groups, oneWay: oneWay)
                    try? await Task.sleep(
                        for: .milliseconds(Int(Double.random(in: options.partitionSeconds, using: &rng) * 1000)))
                    note("heal")
                    try await lab.heal()
                case .link:
                    let others = nodes.filter { $0 != node }
                    let fault = LinkFault(
                        delayMillis: Int.random(in: 20...150, using: &rng),
                        jitterMillis: Int.random(in: 0...30, using: &rng),
                        lossPercent: Double(Int.random(in: 0...50, using: &rng)) / 10)
                    note(
                        "link \(node) <-> \(others.joined(separator: ",")) delay \(fault.delayMillis)±\(fault.jitterMillis) ms loss \(fault.lossPercent) %"
                    )
                    try await lab.link([node], others, fault: fault)
                    try? await Task.sleep(for: hold)
                    note("link \(node) clear")
                    try await lab.link([node], others, fault: LinkFault())
                case .grow:
                    guard grown.count < 3 else { continue }
                    let sites = try lab.state().nodes.filter { !options.foreignNodes.contains($0.name) }.map(\.site)
                    let site = sites[Int.random(in: 0..<sites.count, using: &rng)]
                    note("grow: a node in \(site)")
                    let name = try await lab.add(site: site)
                    nodes.append(name)
                    grown.append(name)
                    // The layout apply checks its certificate: the admin node must know it.
                    try await lab.waitUntil(timeout: .seconds(30), "every node sees \(name) alive") { views in
                        views.values.allSatisfy { $0.contains { $0.nodeID == name && $0.state == "alive" } }
                    }
                    try await changeLayout(admin) { () throws(AgadirError) in
                        _ = try await admin.admin(
                            Admin.layoutAssign, Admin.Assign(node: name, site: site, capacity: 1_000_000_000_000))
                        let shown = try await admin.admin(Admin.layoutShow)
                        _ = try await admin.admin(Admin.layoutApply, Admin.Apply(version: shown.version + 1))
                    }
                    note("grow: \(name) assigned")
                case .drain:
                    let candidates = grown.filter { !drained.contains($0) }
                    guard let name = candidates.first else { continue }
                    note("drain \(name)")
                    try await changeLayout(admin) { () throws(AgadirError) in
                        _ = try await admin.admin(Admin.nodeDrain, Admin.NodeRef(node: name))
                    }
                    drained.insert(name)
                }
            } catch {
                note("nemesis error (\(fault.rawValue)): \(error)")
            }
        }
        return events
    }

    /// After a repair pass: partitions whose replicas still differ (an anti-entropy pass
    /// over the bucket compares every partition's digests across its replicas, and counts
    /// those it had to repair or could not check) and the residency audit's violations.
    public func checkReplicas(
        _ admin: AgadirClient, log: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> (divergentPartitions: Int, residencyViolations: Int) {
        let pass = try await repair(admin, log: log)
        let divergent = pass.reduce(0) {
            $0 + ($1.repair?.partitionsRepaired ?? 0) + ($1.repair?.partitionsIncomplete ?? 0)
        }
        let audits = try await admin.admin(Admin.auditResidency)
        let violations = audits.reduce(0) { $0 + $1.violationCount + ($1.error == nil ? 0 : 1) }
        log("torture: a repair pass found \(divergent) partition(s) to repair; residency violations \(violations)")
        return (divergent, violations)
    }

    /// A layout change through `admin`, after dropping whatever an earlier attempt left staged.
    private func changeLayout(_ admin: AgadirClient, _ body: () async throws(AgadirError) -> Void)
        async throws(AgadirError)
    {
        _ = try await admin.admin(Admin.layoutRevert)
        try await body()
    }

    /// Every node running, unpaused, its clock back, and the cluster converged.
    private func heal(_ nodes: [String]) async throws {
        if try lab.state().relays == true { try await lab.clearFaults() }
        for status in try lab.status() {
            try? lab.skew(status.name, millis: 0)
            switch status.state {
            case .paused: try await lab.resume(status.name)
            case .running: break
            default: try await lab.start(status.name)
            }
        }
        try await lab.waitConverged(timeout: .seconds(90))
        guard options.faults.contains(.grow) || options.faults.contains(.drain) else { return }
        // A layout change still moving data: wait for the rebalance (the checks compare
        // replicas of one layout version).
        let admin = try lab.client(for: nodes[0])
        defer { Task { await admin.close() } }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(300)
        while clock.now < deadline {
            if (try? await admin.admin(Admin.rebalanceStatus))?.complete == true { return }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw HistoryError(message: "the rebalance after the nemesis's layout changes did not complete within 300 s")
    }

    /// An anti-entropy pass on every node, waited for; each node's record of it.
    @discardableResult
    private func repair(_ admin: AgadirClient, log: @escaping @Sendable (String) -> Void) async throws
        -> [Admin.RepairNodeView]
    {
        func passes(_ status: [Admin.RepairNodeView]) -> [String: Int] {
            var out: [String: Int] = [:]
            for n in status { if let r = n.repair { out[n.node] = r.passes } }
            return out
        }
        func passes() async throws -> [String: Int] { passes(try await admin.admin(Admin.repairStatus)) }
        let request = Admin.RepairRequest(bucket: options.bucket, partition: nil)
        var before = try await passes()
        var started = try await admin.admin(Admin.repairStart, request)
        // A node just restarted may not have its peer links yet: ask again until every node took it.
        for _ in 0..<30 where !started.unreached.isEmpty {
            log("torture: repair not started on \(started.unreached) yet; again in 1 s")
            try await Task.sleep(for: .seconds(1))
            before = try await passes()
            started = try await admin.admin(Admin.repairStart, request)
        }
        guard started.unreached.isEmpty else {
            throw HistoryError(message: "the repair could not start on \(started.unreached)")
        }
        let deadline = ContinuousClock.now + .seconds(180)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(500))
            let status = try await admin.admin(Admin.repairStatus)
            let now = passes(status)
            if started.reached.allSatisfy({ (now[$0] ?? 0) > (before[$0] ?? 0) }) {
                log("torture: repair done on \(started.reached.count) node(s)")
                return status
            }
        }
        throw HistoryError(message: "the repair after the faults did not finish within 180 s")
    }

    private func finalReads(_ node: String, recorder: HistoryRecorder) async throws {
        let c = try lab.client(for: node)
        defer { Task { await c.close() } }
        let bucket = options.bucket
        for k in 0..<options.keys {
            let key = "k\(k)"
            _ = await recorder.run(process: -2, f: .get, key: key, node: node, timeout: .seconds(30)) {
                () throws(AgadirError) -> HistoryRecorder.Outcome in
                do throws(AgadirError) {
                    let (info, data) = try await c.get(bucket: bucket, key: key, consistency: .all)
                    return (String(decoding: data, as: UTF8.self), nil, info.version.description)
                } catch  where error.code == .noSuchKey {
                    return (nil, nil, nil)
                }
            }
        }
        _ = await recorder.run(process: -2, f: .list, key: nil, node: node, timeout: .seconds(30)) {
            () throws(AgadirError) -> HistoryRecorder.Outcome in
            let page = try await c.list(ListRequest(bucket: bucket, limit: 1000), consistency: .all)
            return (nil, page.entries.map(\.key), nil)
        }
    }
}

/// Records a history, in memory and as JSON lines in a file if given.
final class HistoryRecorder: Sendable {
    /// What an operation returned: the value read, the keys listed, the version answered.
    typealias Outcome = (value: String?, keys: [String]?, version: String?)
    private let start = ContinuousClock.now
    private let state = Locked<(ops: [HistoryOp], next: Int)>(([], 0))
    private let file: FileHandle?

    init(file path: String?) throws {
        if let path {
            guard FileManager.default.createFile(atPath: path, contents: nil),
                let h = FileHandle(forWritingAtPath: path)
            else {
                throw HistoryError(message: "cannot write the history to \(path)")
            }
            file = h
        } else {
            file = nil
        }
    }

    func now() -> UInt64 {
        let d = ContinuousClock.now - start
        return UInt64(d.components.seconds) * 1_000_000_000 + UInt64(d.components.attoseconds / 1_000_000_000)
    }

    private func append(_ op: HistoryOp) {
        state.withLock { $0.ops.append(op) }
        file?.write(Data((HistoryFile.encode(op) + "\n").utf8))
    }

    /// Runs one operation: records its invocation, then `ok` with what `body` returns (value
    /// read, keys listed, version), `fail` with the error it throws, or `info` when it does
    /// not end within `timeout` (it is left running). Returns true on a timeout.
    func run(
        process: Int, f: HistoryOp.Function, key: String?, value: String? = nil, node: String, timeout: Duration,
        _ body: @escaping @Sendable () async throws(AgadirError) -> Outcome
    ) async -> Bool {
        let index = state.withLock { s -> Int in
            s.next += 1
            return s.next
        }
        append(
            HistoryOp(
                process: process, index: index, kind: .invoke, f: f, key: key, value: value, node: node, time: now()))
        let outcome = Locked<Swift.Result<Outcome, AgadirError>?>(nil)
        let done = AsyncStream<Void>.makeStream()
        let task = Task {
            let r: Swift.Result<Outcome, AgadirError>
            do throws(AgadirError) {
                r = .success(try await body())
            } catch {
                r = .failure(error)
            }
            outcome.withLock { $0 = r }
            done.continuation.yield()
            done.continuation.finish()
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            done.continuation.finish()
        }
        for await _ in done.stream { break }
        timer.cancel()
        _ = task
        let time = now()
        switch outcome.withLock({ $0 }) {
        case .success(let got)?:
            append(
                HistoryOp(
                    process: process, index: index, kind: .ok, f: f, key: key, value: f == .get ? got.value : value,
                    keys: got.keys, version: got.version, node: node, time: time))
            return false
        case .failure(let error)?:
            append(
                HistoryOp(
                    process: process, index: index, kind: .fail, f: f, key: key, value: value, node: node, time: time,
                    error: "\(error.code.name): \(error.message)"))
            return false
        case nil:
            append(
                HistoryOp(
                    process: process, index: index, kind: .info, f: f, key: key, value: value, node: node, time: time,
                    error: "no answer within \(timeout)"))
            return true
        }
    }

    func close() -> [HistoryOp] {
        try? file?.close()
        return state.withLock { $0.ops }
    }
}

/// SplitMix64, seeded: the nemesis and the clients draw from it, so a seed replays the
/// same choices (the timing of a real cluster still varies).
struct SplitMix64Generator: RandomNumberGenerator, Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
