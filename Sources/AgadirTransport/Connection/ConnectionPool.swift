import AgadirCore
import Synchronization

/// The connections kept to one endpoint: opened lazily by `connect`, reused, the least
/// busy chosen for each request; a closed one is replaced on next use. The client library
/// keeps one per node it talks to; the peer links keep one per peer, whose `connect` also
/// runs the cluster handshake.
package final class ConnectionPool: Sendable {
    /// `HOST:PORT` the connections go to.
    package let endpoint: String
    private let connect: @Sendable () async throws(AgadirError) -> ClientConnection
    private let slots: Mutex<[ClientConnection?]>
    private let next = Atomic<Int>(0)
    private let connecting = Mutex<[Int: Task<ClientConnection, any Error>]>([:])

    /// `size` connections at most (at least one).
    package init(
        endpoint: String, size: Int, connect: @escaping @Sendable () async throws(AgadirError) -> ClientConnection
    ) {
        self.endpoint = endpoint
        self.connect = connect
        self.slots = Mutex(Array(repeating: nil, count: max(1, size)))
    }

    /// Connections open now (for tests and status).
    package var openCount: Int { slots.withLock { $0.filter { $0.map { !$0.isClosed } ?? false }.count } }

    /// Closes every connection; requests in flight on them fail with UNAVAILABLE.
    package func close() {
        let conns = slots.withLock { p in
            defer { for i in p.indices { p[i] = nil } }
            return p.compactMap { $0 }
        }
        for c in conns { c.close() }
    }

    /// The least busy open connection, or a new one in an empty or dead slot.
    package func connection() async throws(AgadirError) -> ClientConnection {
        let start = next.wrappingAdd(1, ordering: .relaxed).oldValue
        let pick: (Int, ClientConnection?) = slots.withLock { p in
            let count = p.count
            var best: (Int, ClientConnection?) = (start % count, nil)
            var bestLoad = Int.max
            for k in 0..<count {
                let i = (start + k) % count
                guard let c = p[i], !c.isClosed else { return (i, nil) }
                let load = c.inFlight
                if load < bestLoad {
                    best = (i, c)
                    bestLoad = load
                }
            }
            return best
        }
        if let c = pick.1 { return c }
        return try await open(slot: pick.0)
    }

    /// Opens slot `slot`; callers that ask for the same slot meanwhile share one attempt.
    private func open(slot: Int) async throws(AgadirError) -> ClientConnection {
        let connect = self.connect
        let task: Task<ClientConnection, any Error> = connecting.withLock { m in
            if let t = m[slot] { return t }
            let t = Task { () async throws -> ClientConnection in try await connect() }
            m[slot] = t
            return t
        }
        let result = await task.result
        connecting.withLock { _ = $0.removeValue(forKey: slot) }
        switch result {
        case .success(let c):
            // A live connection already in the slot (another caller's) wins; ours is closed.
            let kept: ClientConnection = slots.withLock { p in
                if let existing = p[slot], existing !== c, !existing.isClosed { return existing }
                p[slot] = c
                return c
            }
            if kept !== c { c.close() }
            return kept
        case .failure(let e as AgadirError):
            throw e
        case .failure(let e):
            throw AgadirError(.unavailable, "cannot connect to \(endpoint): \(e)")
        }
    }
}
