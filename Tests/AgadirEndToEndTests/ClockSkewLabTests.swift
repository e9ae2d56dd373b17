import AgadirClient
import AgadirCore
import AgadirLab
import AgadirWire
import Foundation
import Testing

/// Clocks on real processes (docs/consistency.md, "Clocks"): versions follow the hybrid
/// logical clock every peer exchange merges, not the wall clocks.
@Suite("Clock skew on a three-site lab", .serialized, .oneLabAtATime)
struct ClockSkewLabTests {
    /// Waits until `name`'s PING reports its clock offset by about `millis`.
    static func waitForOffset(_ lab: Lab, _ name: String, _ millis: Int64, client: AgadirClient) async throws {
        for _ in 0..<40 {
            let ping = try await client.ping()
            let off = Int64(ping.timeMillis) - Int64(WallTime.millis())
            if abs(off - millis) < 400 { return }
            try await Task.sleep(for: .milliseconds(250))
        }
        Issue.record("\(name)'s clock never showed an offset of \(millis) ms")
    }

    @Test(
        "a delete coordinated by a node whose clock is 3 s slow, just after a PUT elsewhere, deletes (the HLC merged on the read)"
    )
    func deleteOnASlowNode_isNotLost() async throws {
        try await withThreeSiteLab { lab in
            let fast = try lab.client(for: "benguerir-1")
            let slow = try lab.client(for: "settat-1")
            defer {
                Task {
                    await fast.close()
                    await slow.close()
                }
            }
            try await fast.createBucket("clocks", policy: "ma")
            try lab.skew("settat-1", millis: -3000)
            try await Self.waitForOffset(lab, "settat-1", -3000, client: slow)
            for i in 0..<5 {
                let key = "k\(i)"
                let put = try await fast.put(bucket: "clocks", key: key, data: Array("v\(i)".utf8))
                let deleted = try await slow.delete(bucket: "clocks", key: key)
                #expect(deleted.version > put.version, "\(key): the delete's version is older than the PUT it follows")
                let read = await agadirError { _ = try await fast.get(bucket: "clocks", key: key) }
                #expect(
                    read?.code == .noSuchKey, "\(key): the acknowledged delete was lost: \(String(describing: read))")
            }
            try lab.skew("settat-1", millis: 0)
        }
    }

    @Test(
        "a node whose clock is 8 s ahead is refused by its peers (REQUEST_TIME_SKEWED), and does not drag their clocks")
    func nodeFarAhead_isRefused() async throws {
        try await withThreeSiteLab { lab in
            let honest = try lab.client(for: "benguerir-1")
            let ahead = try lab.client(for: "casablanca-1")
            defer {
                Task {
                    await honest.close()
                    await ahead.close()
                }
            }
            try await honest.createBucket("ahead", policy: "ma")
            try lab.skew("casablanca-1", millis: 8000)
            try await Self.waitForOffset(lab, "casablanca-1", 8000, client: ahead)
            let refused = await agadirError { try await ahead.put(bucket: "ahead", key: "k", data: [1, 2, 3]) }
            #expect(refused?.code == .notEnoughReplicas, "\(String(describing: refused))")
            #expect(refused?.message.contains("ahead") == true, "\(String(describing: refused?.message))")
            let put = try await honest.put(bucket: "ahead", key: "k", data: [4, 5, 6])
            let now = WallTime.millis()
            #expect(put.version.timestamp.physicalMillis < now + 2000, "the honest nodes' clocks were dragged ahead")
            try lab.skew("casablanca-1", millis: 0)
        }
    }
}
