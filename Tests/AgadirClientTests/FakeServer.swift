import AgadirCore
@_exported import AgadirTestSupport
import AgadirWire
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

struct FakeServerFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One frame as the fake server read it.
struct ReceivedFrame {
    let header: FrameHeader
    let fields: Fields
    let payload: [UInt8]
}

/// The accepted side of one connection to the fake server: blocking reads and writes
/// of whole frames, every read bounded by a receive timeout.
struct FakeConnection {
    let fd: Int32

    func readExactly(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out.withUnsafeMutableBytes { buffer in
                buffer.baseAddress.map { recv(fd, $0 + got, count - got, 0) } ?? -1
            }
            guard n > 0 else {
                throw FakeServerFailure("read \(got) of \(count) bytes, then recv returned \(n) (errno \(errno))")
            }
            got += n
        }
        return out
    }

    /// The next frame of the script. A ROUTE request (the client asks where a bucket's
    /// requests go before its first one) is answered here, "serve it yourself", and skipped:
    /// the scripts are about framing, not routing.
    func readFrame() throws -> ReceivedFrame {
        for _ in 0..<16 {
            let frame = try readAnyFrame()
            guard frame.header.kind == .request, frame.header.opcode == Opcode.route.rawValue else { return frame }
            let route = RouteResult(policy: "default", mayCoordinate: true, endpoints: [])
            try send(
                .response, id: frame.header.requestID, opcode: Opcode.route.rawValue, end: true, fields: route.fields())
        }
        throw FakeServerFailure("16 ROUTE requests in a row")
    }

    func readAnyFrame() throws -> ReceivedFrame {
        let head = try readExactly(FrameHeader.size)
        let header = try head.withUnsafeBytes { try FrameHeader.decode($0, limits: .default) }
        let fieldBytes = try readExactly(Int(header.headerLength))
        let payload = try readExactly(Int(header.payloadLength))
        return ReceivedFrame(header: header, fields: try Fields.decode(fieldBytes, limits: .default), payload: payload)
    }

    func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw FakeServerFailure("send returned \(n) (errno \(errno))") }
            sent += n
        }
    }

    /// Writes one frame built by hand from AgadirWire's header and fields encoders.
    func send(
        _ kind: FrameKind, id: UInt64, opcode: UInt16 = 0, status: UInt16 = 0, end: Bool,
        fields: Fields = Fields(), payload: [UInt8] = []
    ) throws {
        let fieldBytes = fields.items.isEmpty ? [] : fields.encoded()
        let header = FrameHeader(
            kind: kind, flags: end ? FrameHeader.endStream : 0, opcode: opcode, status: status,
            headerLength: UInt32(fieldBytes.count), requestID: id, payloadLength: UInt32(payload.count))
        try write(header.encoded() + fieldBytes + payload)
    }

    /// Waits (bounded by the receive timeout) until the client closes its side.
    func awaitPeerClose() {
        var byte: UInt8 = 0
        for _ in 0..<1_000 where recv(fd, &byte, 1, 0) > 0 {}
    }
}

/// A one-connection protocol server on 127.0.0.1 written with POSIX sockets: a thread
/// accepts one connection and runs `script` on it, then closes it. Every wait is
/// bounded: accept gives up after `acceptTimeout`, reads after `readTimeout`.
final class FakeServer: Sendable {
    let port: Int
    private let listenFD: Int32
    private let finished = DispatchSemaphore(value: 0)
    private let stopRequested = Locked(false)
    private let errors = Locked<[String]>([])

    init(
        acceptTimeout: Double = 60, readTimeout: Int = 30,
        script: @escaping @Sendable (FakeConnection) throws -> Void
    ) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FakeServerFailure("socket() failed: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard let port = bindLoopback(fd), listen(fd, 4) == 0 else {
            close(fd)
            throw FakeServerFailure("cannot listen on 127.0.0.1: errno \(errno)")
        }
        self.port = port
        listenFD = fd
        let thread = Thread { [self] in
            defer { finished.signal() }
            let deadline = Date().addingTimeInterval(acceptTimeout)
            var conn: Int32 = -1
            while conn < 0, !stopRequested.value, Date() < deadline {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 50) > 0 { conn = accept(fd, nil, nil) }
            }
            guard conn >= 0 else {
                if !stopRequested.value { errors.withLock { $0.append("no client connected") } }
                return
            }
            var tv = timeval(tv_sec: readTimeout, tv_usec: 0)
            setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            do {
                try script(FakeConnection(fd: conn))
            } catch {
                errors.withLock { $0.append("\(error)") }
            }
            close(conn)
        }
        thread.name = "fake-agadir-server"
        thread.start()
    }

    var endpoint: String { "127.0.0.1:\(port)" }

    /// Waits (at most 10 s) for the script to end, closes the listening socket and
    /// returns what went wrong on the server side.
    /// The wait runs on a thread of its own, never blocking the cooperative pool.
    func stop() async -> [String] {
        stopRequested.withLock { $0 = true }
        let finished = self.finished
        let outcome = await withCheckedContinuation { (c: CheckedContinuation<DispatchTimeoutResult, Never>) in
            Thread { c.resume(returning: finished.wait(timeout: .now() + 60)) }.start()
        }
        if outcome == .timedOut {
            errors.withLock { $0.append("the fake server did not finish within 10 s") }
        }
        close(listenFD)
        return errors.value
    }
}

/// Binds `fd` to 127.0.0.1 on a free port and returns the port.
func bindLoopback(_ fd: Int32) -> Int? {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { return nil }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    guard named == 0 else { return nil }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A loopback port that was free a moment ago and has nobody listening on it.
func closedPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw FakeServerFailure("socket() failed") }
    defer { close(fd) }
    guard let port = bindLoopback(fd) else { throw FakeServerFailure("bind failed: errno \(errno)") }
    return port
}
