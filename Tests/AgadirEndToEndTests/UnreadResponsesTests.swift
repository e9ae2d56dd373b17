import AgadirClient
import AgadirCore
import AgadirLab
import AgadirTransport
import AgadirWire
import Foundation
import Testing

/// Clients that ask and never read (docs/security.md, "Bounds"): the node's memory stays
/// bounded, other clients are served, and a connection whose answers stall is closed.
@Suite("Responses nobody reads", .serialized)
struct UnreadResponsesTests {
    /// The resident set of a process, bytes (`VmRSS` of /proc/PID/status).
    static func residentBytes(_ pid: pid_t) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        let kib = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kib * 1024
    }

    /// `count` signed GET frames of `bucket/key`, ids 1...count.
    static func getFrames(_ count: Int, bucket: String, key: String, credentials: Credentials) -> [UInt8] {
        var out: [UInt8] = []
        for id in 1...count {
            var fields = Request.get(bucket: bucket, key: key, range: nil).fields()
            RequestSigning.sign(opcode: Opcode.get.rawValue, fields: &fields, credentials: credentials)
            out += FrameEncoder.encode(.request(id: UInt64(id), opcode: .get, fields: fields, end: true))
        }
        return out
    }

    /// The documented bound (docs/operations.md, "Memory"): what the unread answers of the
    /// connections may hold on top of the node's resident set before them.
    static let boundBytes = 256 << 20

    @Test("8 connections holding 128 unread GETs of a 64 MiB object keep the node's memory bounded and serving")
    func unreadGets_keepMemoryBounded_andOthersServed() async throws {
        let node = try NodeProcess(logLevel: "warning")
        defer { node.cleanUp() }
        try node.start()
        let credentials = try node.rootCredentials()
        let client = try node.client()
        try await client.createBucket("big")
        let object = randomBytes(64 << 20, seed: 64)
        try await client.put(bucket: "big", key: "o", data: object)
        // One full read first, so the baseline includes what any GET warms up (caches, pools).
        #expect(try await client.get(bucket: "big", key: "o").1.count == object.count)
        try await Task.sleep(for: .seconds(1))
        let baseline = Self.residentBytes(node.pid)

        let frames = Self.getFrames(128, bucket: "big", key: "o", credentials: credentials)
        var sockets: [RawSocket] = []
        defer { for s in sockets { s.closeSocket() } }
        for _ in 0..<8 {
            let s = try RawSocket(endpoint: node.endpoint)
            s.send(frames)
            sockets.append(s)
        }
        // Sample while the node fills what it may, and check another client is served meanwhile.
        var peak = baseline
        let clock = ContinuousClock()
        let until = clock.now + .seconds(8)
        var served = 0
        while clock.now < until {
            peak = max(peak, Self.residentBytes(node.pid))
            let (info, bytes) = try await client.get(bucket: "big", key: "o")
            if bytes == object && info.size == UInt64(object.count) { served += 1 }
            peak = max(peak, Self.residentBytes(node.pid))
            try await Task.sleep(for: .milliseconds(200))
        }
        await client.close()
        let grown = peak - baseline
        print("unread GETs: baseline \(baseline >> 20) MiB, peak \(peak >> 20) MiB, grown \(grown >> 20) MiB")
        #expect(served >= 1, "no GET of another client completed while the unread ones were held")
        #expect(
            grown < Self.boundBytes,
            "resident set grew by \(grown >> 20) MiB (baseline \(baseline >> 20) MiB), over the \(Self.boundBytes >> 20) MiB bound"
        )
        #expect(node.isRunning)
    }

    @Test("a connection whose answers stall (the client never reads) is closed after writeStallSeconds")
    func stalledAnswers_closeTheConnection() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "agadir-stall-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: base) }
        let config = base.appendingPathComponent("agadird.json")
        try Data(#"{ "writeStallSeconds": 2 }"#.utf8).write(to: config)
        let node = try NodeProcess(extraArguments: ["--config", config.path], logLevel: "warning")
        defer { node.cleanUp() }
        try node.start()
        let client = try node.client()
        try await client.createBucket("big")
        try await client.put(bucket: "big", key: "o", data: randomBytes(32 << 20, seed: 32))
        await client.close()

        let stalled = try RawSocket(endpoint: node.endpoint)
        defer { stalled.closeSocket() }
        stalled.send(Self.getFrames(4, bucket: "big", key: "o", credentials: try node.rootCredentials()))
        // Never read for a while: the node's writes fill the socket buffers and stall.
        try await Task.sleep(for: .seconds(6))
        // Now drain: the node must have closed the connection (EOF after what was buffered).
        var total = 0
        var closed = false
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while clock.now < deadline {
            if stalled.closedByNode() {
                closed = true
                break
            }
            total += stalled.receive(max: 8 << 20).count
        }
        #expect(closed, "the connection was still open after \(total) bytes")
        #expect(total < 4 * (32 << 20), "the node sent every answer (\(total) bytes): nothing stalled")
    }
}
