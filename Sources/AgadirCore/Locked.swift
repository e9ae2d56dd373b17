import Synchronization

/// A value behind a mutex, as a reference so escaping closures and tasks can share it
/// (`Mutex` itself is non-copyable and cannot be captured by them).
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    public init(_ value: Value) { mutex = Mutex(value) }

    @discardableResult
    public func withLock<R>(_ body: (inout sending Value) throws -> sending R) rethrows -> sending R {
        try mutex.withLock(body)
    }

    public var value: Value { mutex.withLock { $0 } }
}
