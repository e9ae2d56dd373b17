import AgadirCore

/// What a background worker is doing, as `agadir admin workers` shows it.
public enum WorkerState: String, Codable, Sendable, Hashable, CaseIterable {
    /// Working, and steps again at once.
    case busy
    /// Working, held back by its rate (scrub, rebalance throttles).
    case throttled
    /// Nothing to do until its next check.
    case idle
    /// Paused by an operator.
    case paused
    /// Finished for good (the runner ended).
    case done
    /// Its last step failed (`lastError`); it retries after a pause.
    case failed
}

/// One background worker of a node: its typed state, the phase of its own state machine
/// (the rebalance's `copying`, the scrub's `running`, ...), a line of progress, and its
/// last error.
public struct WorkerInfo: Codable, Sendable, Hashable {
    /// `cluster-sync`, `rebalance`, `anti-entropy`, `scrub`, `gc`.
    public var name: String
    public var state: WorkerState
    /// The worker's own phase, when it has one.
    public var phase: String?
    public var progress: String?
    public var lastError: String?
    /// Steps run since the node started.
    public var steps: Int
    /// When the last step ended (ms since the epoch), nil before the first.
    public var lastStepMillis: UInt64?

    public init(
        name: String, state: WorkerState, phase: String? = nil, progress: String? = nil, lastError: String? = nil,
        steps: Int = 0,
        lastStepMillis: UInt64? = nil
    ) {
        self.name = name
        self.state = state
        self.phase = phase
        self.progress = progress
        self.lastError = lastError
        self.steps = steps
        self.lastStepMillis = lastStepMillis
    }
}
