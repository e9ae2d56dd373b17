/// The replay defence of signed requests and of gossip, as pure logic (time is an input).
///
/// A request is accepted only when it was signed within `skewMillis` of the node's clock
/// and its (access key, nonce) has not been seen. Seen nonces are kept until they leave
/// the window; at most `capacity` of them: beyond, the oldest is forgotten and its key's
/// *floor* rises to its signing time, so that key's requests signed at or before the floor
/// are refused from then on. Either way a replay is never accepted; under a flood of one
/// key's requests the window of that key narrows instead of memory growing.
public struct ReplayWindow: Sendable {
    public let skewMillis: UInt64
    public let capacity: Int

    struct Seen: Hashable {
        var key: String
        var nonce: [UInt8]
    }

    private var seen: [Seen: UInt64] = [:]
    /// Arrival order (for expiry and eviction); `head` is the oldest still present.
    private var order: [(seen: Seen, at: UInt64)] = []
    private var head = 0
    private var floors: [String: UInt64] = [:]

    /// Defaults: AWS's 15 minutes each side; 262,144 nonces.
    public init(skewMillis: UInt64 = 15 * 60 * 1000, capacity: Int = 1 << 18) {
        self.skewMillis = skewMillis
        self.capacity = max(1, capacity)
    }

    /// Nonces remembered now.
    public var count: Int { seen.count }

    /// Accepts the request, remembering its nonce, or says why not.
    public mutating func admit(accessKey: String, nonce: [UInt8], signedAtMillis at: UInt64, nowMillis now: UInt64)
        -> Result<Void, AgadirError>
    {
        if at < now, now - at > skewMillis {
            return .failure(
                AgadirError(
                    .requestTimeSkewed,
                    "request signed at \(at) ms, \((now - at) / 1000) s before this node's clock (\(now) ms); "
                        + "more than \(skewMillis / 1000) s apart: sign again, and keep the client's clock in time (NTP)"
                ))
        }
        if at > now, at - now > skewMillis {
            return .failure(
                AgadirError(
                    .requestTimeSkewed,
                    "request signed at \(at) ms, \((at - now) / 1000) s after this node's clock (\(now) ms); "
                        + "more than \(skewMillis / 1000) s apart: keep the client's clock in time (NTP)"))
        }
        expire(now: now)
        let entry = Seen(key: accessKey, nonce: nonce)
        if seen[entry] != nil {
            return .failure(
                AgadirError(
                    .replayedRequest,
                    "this signed request was already received (same key and nonce); sign each request anew"))
        }
        if let floor = floors[accessKey], at <= floor {
            return .failure(
                AgadirError(
                    .replayedRequest,
                    "request signed at \(at) ms, not after \(floor) ms, the oldest time this node still remembers "
                        + "for key \(accessKey) (its replay memory is full); sign again"))
        }
        seen[entry] = at
        order.append((entry, at))
        if seen.count > capacity { evictOldest() }
        compact()
        return .success(())
    }

    /// Forgets nonces signed before the window (they would be refused as stale anyway).
    private mutating func expire(now: UInt64) {
        while head < order.count, order[head].at + skewMillis < now {
            seen[order[head].seen] = nil
            head += 1
        }
        if floors.count > capacity {
            floors = floors.filter { $0.value + skewMillis >= now }
        }
    }

    private mutating func evictOldest() {
        guard head < order.count else { return }
        let (entry, at) = order[head]
        seen[entry] = nil
        floors[entry.key] = max(floors[entry.key] ?? 0, at)
        head += 1
    }

    private mutating func compact() {
        if head > 1024, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}
