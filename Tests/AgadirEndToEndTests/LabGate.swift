import Testing

/// One lab at a time in this test process: the suites that start whole clusters run one
/// test after another even across suites, so on a 2-core machine they do not starve each
/// other (and the other tests) into timeouts.
actor LabGate {
    static let shared = LabGate()
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        guard busy else {
            busy = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    }
}

/// `@Suite(.oneLabAtATime)`: every test of the suite holds the `LabGate` while it runs.
struct OneLabAtATime: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        guard testCase != nil else {
            try await function()
            return
        }
        await LabGate.shared.acquire()
        do {
            try await function()
        } catch {
            await LabGate.shared.release()
            throw error
        }
        await LabGate.shared.release()
    }
}

extension Trait where Self == OneLabAtATime {
    static var oneLabAtATime: Self { OneLabAtATime() }
}
