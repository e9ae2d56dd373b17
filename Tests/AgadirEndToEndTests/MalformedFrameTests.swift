import AgadirClient
import AgadirCore
import AgadirWire
import Foundation
import Testing

/// A blocking loopback socket for sending raw bytes, with a receive timeout.
struct RawSocket {
    let fd: Int32

    /// `source`: the local address to connect from (any 127.x.y.z works on loopback).
    init(endpoint: String, source: String? = nil) throws {
        let parts = endpoint.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else {
            throw AgadirError(.invalidArgument, "endpoint \(endpoint)")
        }
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw AgadirError(.ioError, "socket() failed") }
        var tv = timeval(tv_sec: 0, tv_usec: 300_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else {
                close(fd)
                throw AgadirError(.unavailable, "bind to \(source) failed: errno \(errno)")
            }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw AgadirError(.unavailable, "connect failed: errno \(errno)")
        }
    }

    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// Reads until EOF, timeout or `max` bytes.
    func receive(max: Int = 1 << 16) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while out.count < max {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    func closeSocket() { close(fd) }

    /// True once the node has closed its side (a read gives EOF or a reset), false while the
    /// connection is open and silent (nothing to read now; does not wait).
    func closedByNode() -> Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
        if n == 0 { return true }
        if n < 0 { return errno != EAGAIN && errno != EWOULDBLOCK }
        return false
    }

    func finishSending() { shutdown(fd, Int32(SHUT_WR)) }

    /// Waits (at most `seconds`, a bound that only catches a node that never closes) until
    /// the node has closed its side; true if it did.
    func waitClosedByNode(seconds: Double = 5) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if closedByNode() { return true }
            usleep(5_000)
        } while Date() < deadline
        return false
    }
}

@Suite("Malformed frames never hurt the node", .serialized)
struct MalformedFrameTests {
    /// One malformed frame (or byte soup) of a random family.
    static func malformedFrame(_ rng: inout SplitMix64) -> [UInt8] {
        func header(kind: UInt8 = 1, opcode: UInt16 = 1, h: UInt32 = 0, p: UInt32 = 0, version: UInt8 = 1) -> [UInt8] {
            var w = ByteWriter()
            w.raw(FrameHeader.magic)
            w.u8(version)
            w.u8(kind)
            w.u16(0)
            w.u16(opcode)
            w.u16(0)
            w.u32(h)
            w.u64(rng.next() % 1000)
            w.u32(p)
            w.u32(0)
            return w.bytes
        }
        switch rng.next() % 12 {
        case 0:  // random bytes
            return rng.bytes(Int(rng.next() % 200))
        case 1:  // lying header length, truncated
            return header(h: 5000, p: 0) + rng.bytes(10)
        case 2:  // oversized header
            return header(h: UInt32.max, p: 0)
        case 3:  // oversized payload
            return header(p: 0x7fff_ffff)
        case 4:  // unknown opcode
            return header(opcode: 999)
        case 5:  // unknown kind
            return header(kind: UInt8(5 + rng.next() % 250))
        case 6:  // huge field count
            var f = ByteWriter()
            f.u16(60000)
            f.raw(rng.bytes(20))
            return header(h: UInt32(f.bytes.count)) + f.bytes
        case 7:  // bad version
            return header(version: UInt8(2 + rng.next() % 200))
        case 8:  // DATA for a request nobody opened
            return header(kind: 3, opcode: 0, p: 4) + [1, 2, 3, 4]
        case 9:  // fields whose lengths lie
            var f = ByteWriter()
            f.u16(3)
            f.u16(1)
            f.u16(400)
            f.raw(rng.bytes(12))
            return header(h: UInt32(f.bytes.count)) + f.bytes
        case 10:  // PUT whose body is longer than announced, with bad names
            var fields = Fields()
            fields.set(.bucket, "ok-bucket")
            fields.set(.key, String(repeating: "k", count: Int(rng.next() % 2000)))
            fields.set(.size, u64: 3)
            let fb = fields.encoded()
            return header(opcode: Opcode.put.rawValue, h: UInt32(fb.count), p: 64) + fb + rng.bytes(64)
        default:  // a valid header followed by a random mutation of itself
            var h = header(opcode: UInt16(1 + rng.next() % 10))
            let i = Int(rng.next() % UInt64(h.count))
            h[i] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            return h
        }
    }

    @Test("thousands of malformed frames: each bad connection closes, others and stored objects are unaffected")
    func malformedFramesAreIsolated() async throws {
        let node = try NodeProcess()
        defer { node.cleanUp() }
        try node.start()
        let client = try node.client(connections: 1)
        try await client.createBucket("fuzz")
        var rng = SplitMix64(seed: 2024)
        var objects: [String: [UInt8]] = [:]
        for (i, size) in [10, 4096, 300_000, 2 << 20].enumerated() {
            let data = rng.bytes(size)
            objects["obj\(i)"] = data
            try await client.put(bucket: "fuzz", key: "obj\(i)", data: data)
        }

        // Bounded by count; the deadline only catches a hang (no claim on speed).
        let rounds = 1500
        let hang = Date().addingTimeInterval(900)
        var sent = 0
        var answeredWithError = 0
        var leftOpen: [Int] = []
        for round in 0..<rounds where Date() < hang {
            let sock = try RawSocket(endpoint: node.endpoint)
            let frame = Self.malformedFrame(&rng)
            sock.send(frame)
            if round % 2 == 0 { sock.send(Self.malformedFrame(&rng)) }
            let halfClosed = round % 10 != 0
            if halfClosed { sock.finishSending() }  // else the node must answer or wait for more by itself
            let reply = sock.receive()
            let answered = reply.count >= FrameHeader.size
            if answered { answeredWithError += 1 }
            // The error's code says whether the connection is closed (1xx but REQUEST_TIMEOUT);
            // a well-framed request with bad content gets a 2xx and the connection stays.
            let status = answered ? UInt16(reply[10]) << 8 | UInt16(reply[11]) : 0
            let closing = AgadirError.Code(rawValue: status).closesConnection
            // The node closes a connection whose frame it refused with a closing error, and one
            // whose client finished sending; only a frame still incomplete, or refused with a
            // 2xx, on an open connection may wait for more bytes.
            if (halfClosed || closing) && !sock.waitClosedByNode() { leftOpen.append(round) }
            sock.closeSocket()
            sent += 1
            if round % 500 == 0 {
                // The long-lived healthy connection keeps working throughout.
                _ = try await client.ping()
            }
        }
        #expect(sent == rounds, "the node hung: \(sent) of \(rounds) rounds in 15 minutes")
        #expect(
            leftOpen.isEmpty, "the node kept \(leftOpen.count) bad connections open, e.g. rounds \(leftOpen.prefix(5))")
        #expect(answeredWithError > sent / 4, "most bad frames get an error frame before the close")
        #expect(node.isRunning, "the node survived")
        _ = try await client.ping()
        for (key, data) in objects {
            let (_, back) = try await client.get(bucket: "fuzz", key: key)
            #expect(back == data, "\(key) intact after the fuzzing")
        }
        await client.close()
    }
}
