/// Runs one expensive piece of work at a time for any number of callers: callers that
/// arrive while it runs share its result, and a result younger than `reuseWithin` is
/// given again without running the work (how `audit residency`, a scan of a node's whole
/// store, is rate-limited).
public actor SingleFlight<Value: Sendable> {
    private var running: Task<Result<Value, AgadirError>, Never>?
    private var last: (value: Value, at: ContinuousClock.Instant)?

    public init() {}

    public func run(
        reuseWithin: Duration, _ work: @escaping @Sendable () async throws(AgadirError) -> Value
    ) async throws(AgadirError) -> Value {
        if let last, ContinuousClock.now - last.at < reuseWithin { return last.value }
        if let running { return try await running.value.get() }
        let task = Task { () -> Result<Value, AgadirError> in
            do throws(AgadirError) {
                return .success(try await work())
            } catch {
                return .failure(error)
            }
        }
        running = task
        let result = await task.value
        running = nil
        if case .success(let value) = result { last = (value, .now) }
        return try result.get()
    }
}
