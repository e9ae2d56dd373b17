import AgadirCore
import AgadirTransport
import AgadirWire
import NIOCore
import Synchronization

/// The connections a client keeps to one node: opened lazily, reused, the least busy
/// chosen for each request; a closed one is replaced on next use.
final class ConnectionPool: Sendable {
    let host: String
    let port: Int
    let configuration: ClientConfiguration
    private let slots: Mutex<[ClientConnection?]>
    private let next = Atomic<Int>(0)
    private let connecting = Mutex<[Int: Task<ClientConnection, any Error>]>([:])

    init(host: String, port: Int, configuration: ClientConfiguration) {
        self.host = host
        self.port = port
        self.configuration = configuration
        self.slots = Mutex(Array(repeating: nil, count: max(1, configuration.connections)))
    }

    func close() {
        let conns = slots.withLock { p in
            defer { for i in p.indices { p[i] = nil } }
            return p.compactMap { $0 }
        }
        for c in conns { c.close() }
    }

    func connection() async throws(AgadirError) -> ClientConnection {
        let count = slots.withLock { $0.count }
        // Prefer the least busy open connection; open a slot that is empty or dead.
        let start = next.wrappingAdd(1, ordering: .relaxed).oldValue
        let pick: (Int, ClientConnection?) = slots.withLock { p in
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

    private func open(slot: Int) async throws(AgadirError) -> ClientConnection {
        let cfg = configuration
        let (host, port) = (self.host, self.port)
        let task: Task<ClientConnection, any Error> = connecting.withLock { m in
            if let t = m[slot] { return t }
            let t = Task { () async throws -> ClientConnection in
                try await ClientConnection.connect(
                    host: host, port: port, limits: cfg.limits, bodyBufferBytes: cfg.bodyBufferBytes,
                    connectTimeout: .seconds(cfg.connectTimeoutSeconds))
            }
            m[slot] = t
            return t
        }
        let result = await task.result
        connecting.withLock { _ = $0.removeValue(forKey: slot) }
        switch result {
        case .success(let c):
            slots.withLock { p in
                if p[slot] == nil || p[slot]?.isClosed == true { p[slot] = c }
            }
            return c
        case .failure(let e as AgadirError):
            throw e
        case .failure(let e):
            throw AgadirError(.unavailable, "cannot connect to \(host):\(port): \(e)")
        }
    }
}
