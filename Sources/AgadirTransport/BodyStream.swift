import AgadirCore
import NIOCore
import Synchronization

/// A bounded, single-consumer stream of body bytes with backpressure: `send` suspends
/// while `capacityBytes` are buffered, which stops the connection's reader, which stops
/// reading the socket. That is how a body of any size passes through bounded memory.
///
/// When the consumer goes away (`abandon()`), further sends are dropped at once so
/// the connection keeps flowing for the other requests.
public final class BodyStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer

    private struct State {
        var buffers: [ByteBuffer] = []
        var head = 0
        var bufferedBytes = 0
        var finished = false
        var failure: AgadirError?
        var abandoned = false
        var consumer: CheckedContinuation<Void, Never>?
        var producer: CheckedContinuation<Void, Never>?
        /// Bytes ever sent; a watchdog compares snapshots to detect a stalled producer.
        var totalSent = 0
    }

    public let capacityBytes: Int
    private let state: Mutex<State>

    public init(capacityBytes: Int) {
        self.capacityBytes = capacityBytes
        self.state = Mutex(State())
    }

    /// A stream that already holds all of its bytes and has ended.
    public init(completeWith buffer: ByteBuffer) {
        self.capacityBytes = Swift.max(1, buffer.readableBytes)
        var s = State()
        if buffer.readableBytes > 0 {
            s.buffers = [buffer]
            s.bufferedBytes = buffer.readableBytes
        }
        s.finished = true
        self.state = Mutex(s)
    }

    /// Appends `buffer`; suspends while the stream is full. Never throws: after
    /// `abandon()` or `finish` the bytes are dropped.
    public func send(_ buffer: ByteBuffer) async {
        let wake: CheckedContinuation<Void, Never>? = state.withLock { s in
            guard !s.abandoned, !s.finished else { return nil }
            s.buffers.append(buffer)
            s.bufferedBytes += buffer.readableBytes
            s.totalSent += buffer.readableBytes + 1
            defer { s.consumer = nil }
            return s.consumer
        }
        wake?.resume()
        await waitForRoom()
    }

    private func waitForRoom() async {
        while true {
            let full = state.withLock { s in !s.abandoned && !s.finished && s.bufferedBytes >= capacityBytes }
            if !full || Task.isCancelled { return }
            // A cancelled producer (its connection is going away) stops waiting: the stream
            // is abandoned, which also releases the consumer.
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { s -> Bool in
                        if s.abandoned || s.finished || s.bufferedBytes < capacityBytes { return true }
                        s.producer = c
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            } onCancel: {
                self.abandon()
            }
        }
    }

    /// True once the stream ended or its consumer left.
    public var isClosed: Bool { state.withLock { $0.finished || $0.abandoned } }

    /// Fails the stream with `error` when no bytes arrived during a whole `interval` while
    /// nothing was buffered (so a stall is caught between one and two intervals after it
    /// starts); returns when the stream ends or the calling task is cancelled.
    public func watch(interval: Duration, error: AgadirError) async {
        var last = -1
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            let (closed, sent, starved) = state.withLock { s in
                (s.finished || s.abandoned, s.totalSent, s.bufferedBytes == 0)
            }
            if closed { return }
            // Stalled means the producer sent nothing while the consumer had nothing to read.
            if sent == last, starved {
                finish(error: error)
                return
            }
            last = sent
        }
    }

    /// Ends the stream, successfully or with `error`.
    public func finish(error: AgadirError? = nil) {
        let (c, p) = state.withLock { s -> (CheckedContinuation<Void, Never>?, CheckedContinuation<Void, Never>?) in
            if !s.finished {
                s.finished = true
                s.failure = error
            }
            defer {
                s.consumer = nil
                s.producer = nil
            }
            return (s.consumer, s.producer)
        }
        c?.resume()
        p?.resume()
    }

    /// The consumer will read no more: drop buffered and future bytes, release the producer.
    public func abandon() {
        let (c, p) = state.withLock { s -> (CheckedContinuation<Void, Never>?, CheckedContinuation<Void, Never>?) in
            s.abandoned = true
            s.buffers.removeAll()
            s.head = 0
            s.bufferedBytes = 0
            defer {
                s.consumer = nil
                s.producer = nil
            }
            return (s.consumer, s.producer)
        }
        c?.resume()
        p?.resume()
    }

    /// The next buffer, nil at a clean end; throws the error given to `finish`.
    public func next() async throws(AgadirError) -> ByteBuffer? {
        while true {
            enum Step { case value(ByteBuffer, CheckedContinuation<Void, Never>?), end, fail(AgadirError), wait }
            let step: Step = state.withLock { s in
                if s.head < s.buffers.count {
                    let b = s.buffers[s.head]
                    s.head += 1
                    if s.head == s.buffers.count {
                        s.buffers.removeAll(keepingCapacity: true)
                        s.head = 0
                    }
                    s.bufferedBytes -= b.readableBytes
                    var wake: CheckedContinuation<Void, Never>? = nil
                    if s.bufferedBytes < capacityBytes {
                        wake = s.producer
                        s.producer = nil
                    }
                    return .value(b, wake)
                }
                if s.abandoned { return .end }
                if s.finished { return s.failure.map { .fail($0) } ?? .end }
                return .wait
            }
            switch step {
            case .value(let b, let wake):
                wake?.resume()
                return b
            case .end:
                return nil
            case .fail(let e):
                throw e
            case .wait:
                if Task.isCancelled { throw AgadirError(.unavailable, "reading the body was cancelled") }
                // A cancelled consumer ends the stream with an error instead of waiting forever.
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                        let resumeNow = state.withLock { s -> Bool in
                            if s.head < s.buffers.count || s.finished || s.abandoned { return true }
                            s.consumer = c
                            return false
                        }
                        if resumeNow { c.resume() }
                    }
                } onCancel: {
                    self.finish(error: AgadirError(.unavailable, "reading the body was cancelled"))
                }
            }
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: BodyStream
        public mutating func next() async throws -> ByteBuffer? { try await stream.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: self) }
}
