import AgadirCore
import Foundation
import Testing

/// SplitMix64 (Steele, Lea and Flood, OOPSLA 2014): a tiny, fast, seeded generator, so
/// every randomized test and simulation replays exactly from its seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` pseudo-random bytes: the generator's words, little-endian.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { buf in
            var i = 0
            while i + 8 <= count {
                buf.storeBytes(of: next().littleEndian, toByteOffset: i, as: UInt64.self)
                i += 8
            }
            if i < count {
                var last = next()
                while i < count {
                    buf[i] = UInt8(truncatingIfNeeded: last)
                    last >>= 8
                    i += 1
                }
            }
        }
        return out
    }
}

/// A fresh directory under the temporary directory, removed by `cleanup()`.
public struct TempDirectory: Sendable {
    public let path: String

    public init(prefix: String, _ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("agadir-\(prefix)-\(safe.prefix(40))-\(UUID().uuidString)").path
    }

    /// A directory at `path` (which should not exist yet).
    public init(path: String) { self.path = path }

    public func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

public struct TimedOut: Error, CustomStringConvertible {
    public let seconds: Double
    public var description: String { "timed out after \(seconds) s" }
}

/// Runs `body` in its own task and returns its result, or throws `TimedOut` after
/// `seconds` even if `body` never returns (a hung continuation cannot hang the test).
/// Whichever finishes first cancels the other.
public func withTimeout<T: Sendable>(
    _ seconds: Double, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let waiter = Locked<CheckedContinuation<T, any Error>?>(nil)
    let work = Locked<Task<Void, Never>?>(nil)
    @Sendable func take() -> CheckedContinuation<T, any Error>? {
        waiter.withLock { w in
            defer { w = nil }
            return w
        }
    }
    return try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        waiter.withLock { $0 = c }
        let timer = Task {
            // Cancelled means the work finished first.
            guard (try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))) != nil, let c = take() else {
                return
            }
            work.withLock { $0 }?.cancel()
            c.resume(throwing: TimedOut(seconds: seconds))
        }
        work.withLock {
            $0 = Task {
                let result: Result<T, any Error>
                do { result = .success(try await body()) } catch { result = .failure(error) }
                timer.cancel()
                take()?.resume(with: result)
            }
        }
    }
}

/// `count` pseudo-random (incompressible) bytes from a SplitMix64 seeded with `seed`.
public func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    return rng.bytes(count)
}

/// Runs `body` and returns the AgadirError it threw, or nil (any other error becomes an
/// INTERNAL_ERROR naming it, so a test's expectation on the code fails visibly).
public func agadirError(_ body: () async throws -> Void) async -> AgadirError? {
    do {
        try await body()
        return nil
    } catch let error as AgadirError {
        return error
    } catch {
        return AgadirError(.internalError, "unexpected error \(error)")
    }
}

/// Runs `body` and checks that it throws an `AgadirError` with `code`; returns the error.
@discardableResult
public func expectError<T>(
    _ code: AgadirError.Code, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws(AgadirError) -> T
) -> AgadirError? {
    do {
        _ = try body()
        Issue.record("expected \(code), but nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    }
}

/// Runs `executable` with `arguments` to its end; its exit status and its standard output
/// and error together. The output is read before waiting, so a full pipe cannot block it.
public func runProcess(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, text)
}
