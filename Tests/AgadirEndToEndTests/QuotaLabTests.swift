import AgadirClient
import AgadirCore
import AgadirLab
import AgadirWire
import Foundation
import Testing

/// Quotas per bucket on real processes (docs/operations.md, "Quotas"): a limit set through
/// one node holds through every node; deleting makes room again.
@Suite("Quotas per bucket on a three-site lab", .serialized, .oneLabAtATime)
struct QuotaLabTests {
    /// Longer than a coordinator reuses a bucket's usage (`Coordinator.quotaUsageMaxAge`, 2 s):
    /// after it, every node sees the writes made through the others.
    static let usageAge = Duration.milliseconds(2_600)

    @Test(
        "the (n+1)-th object and the byte past the limit are refused through every node; an overwrite at the limit is not; deleting makes room"
    )
    func quotas_holdThroughEveryNode() async throws {
        try await withThreeSiteLab { lab in
            let names = ["benguerir-1", "casablanca-1", "settat-1"]
            let clients = try names.map { try lab.client(for: $0) }
            defer { for c in clients { Task { await c.close() } } }
            let settat = try #require(try lab.status().first { $0.name == "settat-1" }?.clientEndpoint)
            let cli = CLI(endpoint: settat, credentials: lab.credentialsFile)
            func quota(_ args: [String]) async throws -> Admin.QuotaView {
                let r = try await cli.runDetached(["admin", "bucket", "quota", "capped", "--json"] + args)
                #expect(r.status == 0, "\(r.stderr)")
                return try Admin.bucketQuota.decode(output: Array(r.stdout.utf8))
            }
            try await clients[0].createBucket("capped", policy: "ma")
            try await clients[0].createBucket("free", policy: "ma")
            let body = [UInt8](repeating: 0x61, count: 4096)

            // Three objects, one through each node; the fourth is refused by all three.
            let set = try await quota(["--max-objects", "3"])
            #expect(set.maxObjects == 3 && set.maxBytes == 0 && set.objects == 0, "\(set)")
            for (i, c) in clients.enumerated() { try await c.put(bucket: "capped", key: "o\(i)", data: body) }
            try await Task.sleep(for: Self.usageAge)
            for (i, c) in clients.enumerated() {
                let refused = await agadirError { try await c.put(bucket: "capped", key: "extra-\(i)", data: body) }
                #expect(refused?.code == .quotaExceeded, "\(names[i]): \(String(describing: refused))")
            }
            let shown = try await quota([])
            #expect(shown.objects == 3 && shown.bytes == 3 * 4096 && shown.nodesAnswered == 3, "\(shown)")
            // The CLI says so with its exit code.
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("quota-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: file) }
            try Data(body).write(to: file)
            let put = try await cli.runDetached(["put", file.path, "capped/by-cli"])
            #expect(put.status == 12 && put.stderr.contains("QUOTA_EXCEEDED"), "\(put.status) \(put.stderr)")
            // Replacing an object at the limit adds no object.
            try await clients[1].put(bucket: "capped", key: "o0", data: body)
            // A bucket without a quota is not concerned.
            try await clients[2].put(bucket: "free", key: "any", data: body)

            // A delete makes room, seen through another node once its usage is refreshed.
            _ = try await clients[0].delete(bucket: "capped", key: "o0")
            var admitted = false
            for _ in 0..<40 where !admitted {
                let e = await agadirError {
                    try await clients[1].put(bucket: "capped", key: "after-delete", data: body)
                }
                if e == nil {
                    admitted = true
                } else {
                    #expect(e?.code == .quotaExceeded, "\(String(describing: e))")
                    try await Task.sleep(for: .milliseconds(250))
                }
            }
            #expect(admitted, "the PUT after a delete was refused for 10 s")

            // Bytes: 3 objects of 4096 bytes, then exactly up to the limit, then one byte more.
            let bytes = try await quota(["--max-objects", "0", "--max-bytes", "40000"])
            #expect(bytes.maxObjects == 0 && bytes.maxBytes == 40_000, "\(bytes)")
            try await clients[2].put(
                bucket: "capped", key: "fill", data: [UInt8](repeating: 0x62, count: 40_000 - 3 * 4096))
            try await Task.sleep(for: Self.usageAge)
            for (i, c) in clients.enumerated() {
                let refused = await agadirError { try await c.put(bucket: "capped", key: "byte-\(i)", data: [1]) }
                #expect(refused?.code == .quotaExceeded, "\(names[i]): \(String(describing: refused))")
            }
            // Removing the limit lets writes through at once.
            let none = try await quota(["--max-bytes", "0"])
            #expect(none.maxBytes == 0 && none.maxObjects == 0 && none.bytes == 40_000, "\(none)")
            try await clients[0].put(bucket: "capped", key: "unlimited", data: body)
        }
    }
}
