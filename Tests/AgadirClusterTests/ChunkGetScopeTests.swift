import AgadirCore
import AgadirStore
import AgadirTestSupport
import Foundation
import Testing

@testable import AgadirCluster

/// CHUNK_GET serves a chunk only for a bucket that references it (issue 12, "Bounds"): a
/// peer that knows (or guesses) a chunk id cannot read it through another bucket.
@Suite("CHUNK_GET is scoped to the buckets that reference the chunk")
struct ChunkGetScopeTests {
    @Test func aChunk_isServedForItsBucket_andRefusedForAnother() async throws {
        let dir = TempDirectory(prefix: "chunkget")
        defer { dir.cleanup() }
        let store = try NodeStore.open(directory: dir.path, logger: quiet)
        let data = randomBytes(50_000, seed: 12)
        let chunk = try CoordinatorTests.chunk(data)
        let version = ObjectVersion(timestamp: HLCTimestamp(physicalMillis: 1, logical: 0), node: 1)
        try await store.putChunk(chunk, reference: ChunkReference(bucket: "ma-secrets", key: "k", version: version))
        let replica = LocalReplica(nodeID: "benguerir-1", store: store)

        #expect(try await replica.getChunk(chunk.id, bucket: "ma-secrets").id == chunk.id)
        let refused = await agadirError { _ = try await replica.getChunk(chunk.id, bucket: "world-open") }
        #expect(refused?.code == .noSuchChunk, "\(String(describing: refused))")
        #expect(refused?.message.contains("not referenced by bucket 'world-open'") == true)
        // A bucket that claims the chunk later (dedup) may read it.
        _ = try await store.claimChunks(
            [chunk.id], reference: ChunkReference(bucket: "world-open", key: "x", version: version))
        #expect(try await replica.getChunk(chunk.id, bucket: "world-open").id == chunk.id)
        await store.close()
    }
}
