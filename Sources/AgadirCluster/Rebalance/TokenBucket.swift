/// A token bucket of bytes per second: how long a transfer of n bytes must wait to keep
/// a rate (docs/rebalance.md, "Throttles"). Pure: the caller passes the time, in
/// nanoseconds from any fixed origin, and does the waiting.
public struct TokenBucket: Sendable, Hashable {
    /// Bytes per second; 0 means unlimited.
    public private(set) var rate: UInt64
    /// Most bytes that may go at once after an idle time.
    public private(set) var burst: UInt64
    /// Tokens at `updated` (negative: bytes taken ahead of the rate, still to be waited for).
    private var tokens: Double
    private var updated: UInt64

    /// `burst` defaults to a quarter of a second at `rate` (at least 1 MiB).
    public init(rate: UInt64, burst: UInt64? = nil, now: UInt64) {
        self.rate = rate
        self.burst = burst ?? Self.defaultBurst(rate)
        self.tokens = Double(self.burst)
        self.updated = now
    }

    static func defaultBurst(_ rate: UInt64) -> UInt64 { max(rate / 4, 1 << 20) }

    /// Changes the rate; the tokens saved so far are kept up to the new burst.
    public mutating func setRate(_ rate: UInt64, now: UInt64) {
        refill(now)
        self.rate = rate
        burst = Self.defaultBurst(rate)
        tokens = min(tokens, Double(burst))
    }

    /// Takes `bytes` and returns how long to wait, in nanoseconds, before sending them:
    /// 0 while tokens last, else the time the rate needs to earn the deficit.
    public mutating func take(_ bytes: UInt64, now: UInt64) -> UInt64 {
        guard rate > 0 else { return 0 }
        refill(now)
        tokens -= Double(bytes)
        guard tokens < 0 else { return 0 }
        return UInt64((-tokens / Double(rate) * 1e9).rounded(.up))
    }

    private mutating func refill(_ now: UInt64) {
        guard now > updated else { return }
        if rate > 0 {
            tokens = min(Double(burst), tokens + Double(now - updated) / 1e9 * Double(rate))
        }
        updated = now
    }
}
