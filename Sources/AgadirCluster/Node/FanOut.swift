import AgadirCore
import AgadirWire

/// What one request sent to several nodes gathered: each node's answer or why it has none.
public struct FanOut<Answer: Sendable>: Sendable {
    public var answers: [String: Answer] = [:]
    public var failures: [String: AgadirError] = [:]

    public init() {}

    /// Nodes that answered, sorted.
    public var reached: [String] { answers.keys.sorted() }
    /// Nodes that did not (not alive, unreachable, or an error answer), sorted.
    public var unreached: [String] { failures.keys.sorted() }

    public func result(of node: String) -> Result<Answer, AgadirError>? {
        if let a = answers[node] { return .success(a) }
        return failures[node].map { .failure($0) }
    }
}

extension ClusterNode {
    /// Nodes asked at once by one fan-out.
    public static let fanOutWidth = 8

    /// The nodes an admin command that reaches the cluster asks, sorted: every node of every
    /// live layout version (one being drained or removed still holds data), every member
    /// gossip sees alive (a node started but not assigned yet holds settings, and maybe data
    /// a layout left behind), and this node. One rule for every such command, so no two of
    /// them disagree on whom they ask.
    public func adminAudience() -> [String] {
        let snapshot = snapshot()
        return Set(snapshot.layout.live.flatMap { $0.nodes.map(\.id) }).union(snapshot.alive).union([nodeID]).sorted()
    }

    /// Asks `nodes`, `fanOutWidth` at once: this node through `local` (no network hop), the
    /// others by sending `request` (with `body`) over the peer links, each answer turned into
    /// an `Answer` by `decode`. A node gossip does not see alive is not asked (it fails with
    /// "not alive"); a peer that cannot be reached or answers an error fails with that error.
    public func fanOut<Answer: Sendable>(
        _ nodes: [String], request: PeerRequest, body: [UInt8]? = nil,
        maxResponseBytes: Int = PeerLimits.maxStructuredBodyBytes,
        local: @escaping @Sendable () async throws(AgadirError) -> Answer,
        decode: @escaping @Sendable (_ node: String, _ response: PeerResponse) throws(AgadirError) -> Answer
    ) async -> FanOut<Answer> {
        let alive = snapshot().alive
        let me = nodeID
        let links = self.links
        let ask: @Sendable (String) async -> Result<Answer, AgadirError> = { node in
            do throws(AgadirError) {
                if node == me { return .success(try await local()) }
                guard alive.contains(node) else { return .failure(AgadirError(.unavailable, "not alive")) }
                guard let links else { return .failure(AgadirError(.unavailable, "this node has no peer links")) }
                let answer = try await links.call(node, request, body: body, maxResponseBytes: maxResponseBytes)
                return .success(try decode(node, answer))
            } catch {
                return .failure(error)
            }
        }
        var out = FanOut<Answer>()
        await withTaskGroup(of: (String, Result<Answer, AgadirError>).self) { group in
            var pending = nodes[...]
            for _ in 0..<Self.fanOutWidth {
                guard let node = pending.popFirst() else { break }
                group.addTask { (node, await ask(node)) }
            }
            for await (node, result) in group {
                switch result {
                case .success(let a): out.answers[node] = a
                case .failure(let e): out.failures[node] = e
                }
                if let next = pending.popFirst() { group.addTask { (next, await ask(next)) } }
            }
        }
        return out
    }

    /// `fanOut` of a request whose answer is JSON of type `T` (NODE_STATUS, RESIDENCY_AUDIT).
    public func fanOut<T: Decodable & Sendable>(
        _ nodes: [String], request: PeerRequest, decoding type: T.Type,
        local: @escaping @Sendable () async throws(AgadirError) -> T
    ) async -> FanOut<T> {
        await fanOut(nodes, request: request, local: local) { (node, answer) throws(AgadirError) in
            try AdminJSON.decode(T.self, answer.body, "the answer of \(node) to \(request.opcode)")
        }
    }

    /// `fanOut` of a command with no answer body (REBALANCE_SET, REPAIR_START, MAINTENANCE).
    public func fanOut(
        _ nodes: [String], request: PeerRequest, body: [UInt8],
        local: @escaping @Sendable () async throws(AgadirError) -> Void
    ) async -> FanOut<Void> {
        await fanOut(nodes, request: request, body: body, maxResponseBytes: 0, local: local) {
            (_, _) throws(AgadirError) in ()
        }
    }
}
