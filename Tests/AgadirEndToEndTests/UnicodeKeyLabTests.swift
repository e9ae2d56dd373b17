import AgadirClient
import AgadirCore
import AgadirLab
import AgadirWire
import Foundation
import Testing

/// Object keys are bytes (docs/protocol.md, "Keys are bytes"). Issue 13's first anomaly:
/// `uni/café` written in NFC and in NFD, both acknowledged, listed as one key, and after two
/// garbage-collection passes one of them unreadable (its chunk references were judged dead
/// with the other spelling's version, because the collector's cache compared keys as Swift
/// `String`s, which are equal under canonical equivalence).
@Suite("Unicode keys on the lab: NFC and NFD spellings are two objects", .serialized, .oneLabAtATime)
struct UnicodeKeyLabTests {
    static let nfc = "caf\u{e9}"
    static let nfd = "cafe\u{301}"

    @Test("both spellings are listed, survive two collection passes past the grace period, and read back whole")
    func nfcAndNfdKeys_surviveGarbageCollection() async throws {
        #expect(Self.nfc == Self.nfd, "the premise: Swift's String calls the two spellings equal")
        #expect(Array(Self.nfc.utf8) != Array(Self.nfd.utf8))
        let lab = try await Lab.create(
            sites: ["benguerir", "casablanca", "settat"], nodesPerSite: 1,
            extraArguments: ["--garbage-grace", "3", "--garbage-interval", "3600"])
        try await withLab(lab) {
            try await lab.up(waitForConvergence: true, timeout: .seconds(90))
            _ = try await lab.applyLayout(
                policies: [LabPolicy(name: "ma", replicationFactor: 3, sites: "country=MA", minSites: 2)],
                partitionCount: 16)
            let client = try lab.client(for: "benguerir-1")
            try await client.createBucket("uni", policy: "ma")
            // Not a [String: ...] dictionary: its literal would trap on the "duplicate" key.
            let objects = [
                (key: Self.nfc, data: randomBytes(300_000, seed: 1301)),
                (key: Self.nfd, data: randomBytes(300_000, seed: 1302)),
            ]
            for o in objects { _ = try await client.put(bucket: "uni", key: o.key, data: o.data) }
            // Through every node: the merged cluster listing holds both keys, as bytes.
            for node in try lab.status().map(\.name) {
                let c = try lab.client(for: node)
                let page = try await c.list(
                    ListRequest(bucket: "uni", prefix: "", delimiter: nil, startAfter: nil, limit: 100))
                await c.close()
                #expect(
                    page.entries.map { Array($0.key.utf8) } == [Array(Self.nfd.utf8), Array(Self.nfc.utf8)],
                    "listing via \(node)")
            }
            let endpoint = try #require(try lab.status().first?.clientEndpoint)
            let cli = CLI(endpoint: endpoint, credentials: lab.credentialsFile)
            let ls = try await cli.runDetached(["ls", "uni/", "--json"])
            #expect(ls.status == 0, "\(ls.stderr)")
            let listed =
                (try JSONSerialization.jsonObject(with: Data(ls.stdout.utf8)) as? [String: Any])?["objects"]
                as? [[String: Any]]
            #expect(listed?.count == 2, "agadir ls uni/: \(ls.stdout)")

            // Past the grace period, two collection passes on every node.
            try await Task.sleep(for: .seconds(4))
            for round in 1...2 { try await runCollectionPass(cli, lab: lab, atLeast: round) }
            let status = try await cli.runDetached(["admin", "gc", "status", "--json"])
            for n in try Admin.gcStatus.decode(output: Array(status.stdout.utf8)) {
                #expect(n.gc?.referencesDropped == 0, "\(n.node) dropped references of live objects: \(status.stdout)")
            }
            // Both objects read back whole through every node.
            for node in try lab.status().map(\.name) {
                let c = try lab.client(for: node)
                for o in objects {
                    let data = try await c.get(bucket: "uni", key: o.key).1
                    #expect(data == o.data, "\(Array(o.key.utf8)) via \(node)")
                }
                await c.close()
            }
            await client.close()
        }
    }

    /// Starts a pass on every node and waits until each has finished at least `atLeast` passes.
    private func runCollectionPass(_ cli: CLI, lab: Lab, atLeast: Int) async throws {
        let started = try await cli.runDetached(["admin", "gc", "start"])
        try #require(started.status == 0, "\(started.stderr)")
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        var last = ""
        while clock.now < deadline {
            let status = try await cli.runDetached(["admin", "gc", "status", "--json"])
            last = status.stdout
            let nodes = (try? Admin.gcStatus.decode(output: Array(status.stdout.utf8))) ?? []
            let done =
                nodes.count == 3 && nodes.allSatisfy { ($0.gc?.passes ?? 0) >= atLeast && $0.gc?.state == "idle" }
            if done { return }
            try await Task.sleep(for: .milliseconds(300))
        }
        Issue.record("garbage collection pass \(atLeast) did not finish on every node within 60 s: \(last)")
    }
}
