import AgadirClient
import AgadirCore
import AgadirLab
import AgadirPlacement
import AgadirWire
import Foundation
import Testing

/// Connection bounds of the client endpoint (issue 12, "Bounds"), on a real node: a host
/// that opens sockets by the hundred gets its per-address share and no more, and a socket
/// that trickles single bytes is closed like an idle one.
@Suite("Connection bounds on a real node", .serialized)
struct ConnectionBoundsTests {
    /// A node with small bounds: 16 connections per address, frames idle after `idle` seconds.
    private func boundedNode(idle: Int) throws -> (NodeProcess, URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("agadir-bounds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let config = dir.appendingPathComponent("config.json")
        try Data(#"{"maxConnectionsPerAddress": 16, "idleTimeoutSeconds": \#(idle)}"#.utf8).write(to: config)
        return (try NodeProcess(extraArguments: ["--config", config.path]), dir)
    }

    @Test(
        "200 idle sockets from one address: 16 are admitted, the rest closed at once; a client on another address works"
    )
    func oneAddressGetsItsShare_andOthersAreServed() async throws {
        let (node, configDir) = try boundedNode(idle: 120)
        defer {
            node.cleanUp()
            try? FileManager.default.removeItem(at: configDir)
        }
        try node.start()
        var flood: [RawSocket] = []
        defer { for s in flood { s.closeSocket() } }
        for _ in 0..<200 { flood.append(try RawSocket(endpoint: node.endpoint, source: "127.0.0.5")) }
        // Refused sockets are closed by the node at once; admitted ones stay open (and silent,
        // well within the 120 s idle timeout). Polled: a loaded machine closes them a little later.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        var open = flood.count
        while clock.now < deadline {
            open = flood.filter { !$0.closedByNode() }.count
            if open <= 16 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(open == 16, "\(open) of 200 sockets from 127.0.0.5 still open")

        let client = try node.client(connections: 2)
        _ = try await client.ping()
        try await client.createBucket("bounds")
        let data = randomBytes(100_000, seed: 77)
        try await client.put(bucket: "bounds", key: "k", data: data)
        #expect(try await client.get(bucket: "bounds", key: "k").1 == data)
        await client.close()
    }

    @Test("a socket that sends one byte every 300 ms never completes a frame and is closed after the idle timeout")
    func aByteTrickle_doesNotKeepTheConnection() async throws {
        let (node, configDir) = try boundedNode(idle: 2)
        defer {
            node.cleanUp()
            try? FileManager.default.removeItem(at: configDir)
        }
        try node.start()
        let trickle = try RawSocket(endpoint: node.endpoint, source: "127.0.0.6")
        defer { trickle.closeSocket() }
        // The start of a valid frame header, one byte at a time, for at most 30 s.
        let header = Array("AGDR".utf8) + [UInt8](repeating: 0, count: 28)
        let clock = ContinuousClock()
        let started = clock.now
        var closed = false
        var sent = 0
        while !closed, clock.now - started < .seconds(30) {
            trickle.send([header[sent % header.count]])
            sent += 1
            try await Task.sleep(for: .milliseconds(300))
            closed = trickle.closedByNode()
        }
        #expect(closed, "the node kept a connection that sent \(sent) single bytes over 30 s")
        #expect(sent < header.count, "the frame was never completed: \(sent) bytes sent")
    }

    @Test("staged layout changes are bounded: the 1001st is refused with a clear error until they are reverted")
    func stagedChanges_areBounded() async throws {
        let node = try NodeProcess(logLevel: "warning")
        defer { node.cleanUp() }
        try node.start()
        let client = try node.client()
        for i in 0..<StagedChanges.maxChanges {
            _ = try await client.admin(
                Admin.layoutAssign, Admin.Assign(node: "n-\(i)", site: "s-\(i % 7)", capacity: 1 << 40))
        }
        let refused = await agadirError {
            _ = try await client.admin(Admin.layoutAssign, Admin.Assign(node: "one-more", site: "s", capacity: 1))
        }
        #expect(
            refused?.code == .invalidArgument && refused?.message.contains("staged") == true,
            "\(String(describing: refused))")
        _ = try await client.admin(Admin.layoutRevert, Admin.Empty())
        _ = try await client.admin(Admin.layoutAssign, Admin.Assign(node: "one-more", site: "s", capacity: 1))
        await client.close()
    }
}
