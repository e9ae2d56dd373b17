/// A value published once (a bound address, or nil when binding failed) and awaited by
/// any number of tasks; later publications are ignored.
public final class Once<Value: Sendable>: Sendable {
    private struct State: Sendable {
        var value: Value?
        var waiters: [CheckedContinuation<Value, Never>] = []
    }

    private let state = Locked(State())

    public init() {}

    /// The value, waiting until it is published.
    public func wait() async -> Value {
        await withCheckedContinuation { (c: CheckedContinuation<Value, Never>) in
            let ready: Value? = state.withLock { s in
                if let v = s.value { return v }
                s.waiters.append(c)
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }

    public func publish(_ value: Value) {
        let waiters: [CheckedContinuation<Value, Never>] = state.withLock { s in
            guard s.value == nil else { return [] }
            s.value = value
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.resume(returning: value) }
    }
}
