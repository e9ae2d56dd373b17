import AgadirClient
import AgadirCore
import AgadirLab
import AgadirStore
import AgadirWire
import Foundation
import Logging
import Testing

/// Issue 17: the residency audit is seen to report something. Violations are planted
/// straight into the store of the stopped Paris node: a Moroccan bucket's manifest and a
/// chunk written for it, and a chunk of no object.
@Suite("The residency audit names planted violations", .serialized, .oneLabAtATime)
struct ResidencyAuditLabTests {
    static func audit(_ lab: Lab) async throws -> (status: Int32, audits: [ResidencyAudit], text: String) {
        let endpoint = try #require(try lab.status().first { $0.name == "benguerir-1" }?.clientEndpoint)
        let cli = CLI(endpoint: endpoint, credentials: lab.credentialsFile)
        let json = try await cli.runDetached(["admin", "audit", "residency", "--json"])
        let audits = (try? Admin.auditResidency.decode(output: Array(json.stdout.utf8))) ?? []
        let table = try await cli.runDetached(["admin", "audit", "residency"])
        return (json.status, audits, table.stdout + table.stderr)
    }

    @Test("a Moroccan bucket's manifest and chunk planted on the Paris disk are named, counted, and the audit exits 9")
    func plantedViolations_areNamed() async throws {
        try await TortureSmokeTests.withForeignLab { lab in
            let client = try lab.client(for: "benguerir-1")
            defer { Task { await client.close() } }
            try await client.createBucket("sov", policy: "ma")
            let data = randomBytes(200_000, seed: 77)
            _ = try await client.put(bucket: "sov", key: "k", data: data, consistency: .all)
            let clean = try await Self.audit(lab)
            #expect(clean.status == 0, "\(clean.text)")
            #expect(clean.audits.count == 4 && clean.audits.allSatisfy { $0.violationCount == 0 && $0.error == nil })

            var logger = Logger(label: "planting")
            logger.logLevel = .critical
            // On Paris: the object's manifest, a chunk written for it, and a chunk of no object.
            try await lab.stop("paris-1")
            let parisDir = try #require(try lab.status().first { $0.name == "paris-1" }?.dataDir)
            var engine = ChunkCodec()
            let chunk = try engine.encode(Array("resident bytes".utf8), preferred: .lz4)
            let orphan = try engine.encode(Array("nobody's bytes".utf8), preferred: .lz4)
            let version = ObjectVersion(timestamp: HLCTimestamp(rawValue: 1 << 40), node: 7)
            let paris = try NodeStore.open(directory: parisDir, logger: logger)
            _ = try await paris.putChunk(chunk, reference: ChunkReference(bucket: "sov", key: "k", version: version))
            try await paris.putChunk(orphan)
            _ = try await paris.putReplicaManifest(
                ObjectManifest(
                    bucket: "sov", key: "k", size: 14, etag: ChunkID.of(Array("resident bytes".utf8)),
                    contentType: "x", userMetadata: [], version: version, isTombstone: false,
                    body: .chunks([ChunkRef(id: chunk.id, length: 14)])))
            await paris.close()
            try await lab.start("paris-1")
            try await lab.waitConverged(timeout: .seconds(60))

            let found = try await Self.audit(lab)
            #expect(found.status == 9, "\(found.text)")
            let parisAudit = try #require(found.audits.first { $0.node == "paris-1" })
            #expect(parisAudit.violationCount == 2, "\(parisAudit)")
            #expect(Set(parisAudit.violations.map(\.kind)) == ["manifest", "chunk"])
            #expect(parisAudit.violations.allSatisfy { $0.bucket == "sov" && $0.policy == "ma" })
            #expect(parisAudit.violations.contains { $0.kind == "chunk" && $0.chunk == chunk.id.hex })
            #expect(parisAudit.unattributedChunks == 1)
            #expect(found.text.contains("paris-1") && found.text.contains("sov"))
            // Paris holds them for no live layout version either: counted as misplaced too (the
            // orphan chunk, of no object, is neither).
            #expect(parisAudit.misplacedManifests == 1 && parisAudit.misplacedChunks == 1, "\(parisAudit)")
            for node in ["benguerir-1", "casablanca-1", "settat-1"] {
                let audit = try #require(found.audits.first { $0.node == node })
                #expect(audit.violationCount == 0 && audit.misplacedManifests == 0 && audit.unattributedChunks == 0)
            }
        }
    }
}
