import AgadirLab
import Foundation
import Testing

/// The Python client of `PythonClient/`, written from docs/protocol.md alone, against a
/// lab: one node in each of benguerir, casablanca and settat (policy `ma`: RF 3, so each
/// holds every object) and one in Paris, outside the policy. `cluster_conformance.py`
/// runs in phases; between them this test causes the faults: it stops replicas, then
/// damages every copy of a later chunk of an object on disk.
@Suite("A Python client written from docs/protocol.md alone, against a lab", .serialized, .oneLabAtATime)
struct ProtocolConformanceLabTests {
    static let eligible = ["benguerir-1", "casablanca-1", "settat-1"]

    @Test(
        "ROUTE, REDIRECT, every CONSISTENCY level, NOT_ENOUGH_REPLICAS with replicas stopped, ABORT CORRUPT_CHUNK mid-GET"
    )
    func pythonClientOnALab() async throws {
        try await withThreeSiteLab(extraSites: ["paris"]) { lab in
            let nodes = try lab.status()
            func endpoint(_ name: String) throws -> String {
                try #require(nodes.first { $0.name == name }?.clientEndpoint)
            }
            let eligible = try Self.eligible.map { "\($0)=\(try endpoint($0))" }.joined(separator: ",")
            let state = lab.root.appendingPathComponent("python-cluster-state.json")
            let common = [
                "--credentials", lab.credentialsFile, "--bucket", "py-cluster", "--policy", "ma", "--state", state.path,
                "--coordinator", "benguerir-1", "--eligible", eligible, "--foreign",
                "paris-1=\(try endpoint("paris-1"))",
            ]
            func phase(_ name: String, down: [String] = []) async throws {
                let (status, text) = try await Self.runScript(
                    ["--phase", name, "--down", down.joined(separator: ",")] + common)
                #expect(status == 0, "cluster_conformance.py --phase \(name) failed:\n\(text)")
                #expect(text.contains(" passed, 0 failed"), "phase \(name):\n\(text.suffix(3000))")
                print("cluster_conformance.py --phase \(name):\n\(text)")
            }

            try await phase("healthy")
            try await lab.stop("settat-1")
            try await phase("one-down", down: ["settat-1"])
            try await lab.stop("casablanca-1")
            try await phase("two-down", down: ["settat-1", "casablanca-1"])

            // Every copy of the chunk holding the sample (near the end of a multi-chunk
            // object, so not its first chunk) gets one byte flipped, nodes stopped.
            try await lab.stop("benguerir-1")
            let described = try JSONSerialization.jsonObject(with: Data(contentsOf: state)) as? [String: Any]
            let sampleHex = try #require(described?["sample_hex"] as? String)
            let sample = try #require(Self.bytes(hex: sampleHex))
            for name in Self.eligible {
                let dir = try #require(nodes.first { $0.name == name }?.dataDir) + "/chunks"
                var flipped = 0
                for file in try FileManager.default.contentsOfDirectory(atPath: dir) {
                    let url = URL(fileURLWithPath: dir + "/" + file)
                    var contents = try Data(contentsOf: url)
                    guard let range = contents.range(of: sample) else { continue }
                    contents[range.lowerBound + 7] ^= 0x01
                    try contents.write(to: url)
                    flipped += 1
                }
                try #require(flipped == 1, "the sample was found \(flipped) times in \(name)'s segments")
            }
            for name in Self.eligible { try await lab.start(name) }
            try await lab.waitConverged(timeout: .seconds(60))
            try await phase("corrupt")
        }
    }

    static func bytes(hex: String) -> Data? {
        var out = Data()
        var it = hex.utf8.makeIterator()
        while let hi = it.next() {
            guard let lo = it.next(), let h = UInt8(String(decoding: [hi, lo], as: UTF8.self), radix: 16) else {
                return nil
            }
            out.append(h)
        }
        return out
    }

    /// Runs `cluster_conformance.py` with `arguments` on a thread of its own; its exit
    /// status and output. The script bounds every socket operation with a timeout, so it ends.
    static func runScript(_ arguments: [String]) async throws -> (Int32, String) {
        let script = ProtocolConformanceTests.scriptDirectory.appendingPathComponent("cluster_conformance.py").path
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Swift.Result { try runProcess("/usr/bin/env", ["python3", script] + arguments) })
            }.start()
        }
    }
}
