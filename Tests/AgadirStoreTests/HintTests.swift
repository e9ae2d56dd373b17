import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

@Suite("Hints")
struct HintTests {
    @Test("hints are parked durably, listed per target oldest first, counted per target, and deleted")
    func hints_putListCountDelete() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var store = try openStore(dir)
        let chunk = try encode(compressibleBytes(6000, seed: 1), .zlib)
        let ref = reference("photos", "cat.jpg", version(3, node: 2))
        try await store.putChunk(chunk, reference: ref)
        let manifest = chunkManifest(bucket: "photos", key: "cat.jpg", chunks: [chunk], at: version(3, node: 2))
        let tombstone = ObjectManifest.tombstone(bucket: "photos", key: "dog.jpg", version: version(4))

        let h1 = try await store.putHint(
            target: "node-b", bucket: "photos", payload: .chunk(chunk.id, ref), createdMillis: 10)
        let h2 = try await store.putHint(
            target: "node-c", bucket: "photos", payload: .manifest(manifest), createdMillis: 11)
        let h3 = try await store.putHint(
            target: "node-b", bucket: "photos", payload: .manifest(tombstone), createdMillis: 12)
        #expect(h1 < h2 && h2 < h3)
        await store.close()

        store = try openStore(dir)
        #expect(
            try await store.hints(for: "node-b", limit: 10) == [
                StoredHint(
                    id: h1, target: "node-b", bucket: "photos", payload: .chunk(chunk.id, ref), createdMillis: 10),
                StoredHint(
                    id: h3, target: "node-b", bucket: "photos", payload: .manifest(tombstone), createdMillis: 12),
            ])
        #expect(try await store.hints(for: "node-b", limit: 1).map(\.id) == [h1])
        #expect(try await store.hints(for: "node-c", limit: 10).map(\.payload) == [.manifest(manifest)])
        #expect(try await store.hints(for: "node-z", limit: 10).isEmpty)
        var targets = try await store.hintTargets()
        #expect(targets.map(\.target) == ["node-b", "node-c"] && targets.map(\.count) == [2, 1])

        try await store.deleteHints([h1, h2, 999])
        try await store.deleteHints([])
        targets = try await store.hintTargets()
        #expect(targets.map(\.target) == ["node-b"] && targets.map(\.count) == [1])
        await store.close()

        store = try openStore(dir)
        #expect(try await store.hints(for: "node-b", limit: 10).map(\.id) == [h3])
        let h4 = try await store.putHint(
            target: "node-c", bucket: "photos", payload: .manifest(manifest), createdMillis: 13)
        #expect(h4 > h3, "ids are never reused")
        await store.close()
    }

    @Test("at most maxHints are pending: beyond it storageFull, also for concurrent puts and after a reopen")
    func putHint_beyondTheBound_isStorageFull() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var options = StoreOptions()
        options.maxHints = 5
        let first = try openStore(dir, options: options)
        let payload = HintPayload.manifest(.tombstone(bucket: "b-1", key: "k", version: version(1)))
        let outcomes = await withTaskGroup(of: AgadirError.Code?.self) { group in
            for _ in 0..<12 {
                group.addTask {
                    await agadirError {
                        _ = try await first.putHint(target: "down", bucket: "b-1", payload: payload, createdMillis: 1)
                    }?.code
                }
            }
            return await group.reduce(into: [AgadirError.Code?]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 == nil }.count == 5)
        #expect(outcomes.filter { $0 == .storageFull }.count == 7)
        let error = await agadirError {
            _ = try await first.putHint(target: "other", bucket: "b-1", payload: payload, createdMillis: 1)
        }
        #expect(error?.code == .storageFull && error?.message.contains("maxHints = 5") == true)
        await first.close()

        let store = try openStore(dir, options: options)  // the count is read back from the table
        #expect(
            await agadirError {
                _ = try await store.putHint(target: "down", bucket: "b-1", payload: payload, createdMillis: 1)
            }?.code == .storageFull)
        let pending = try await store.hints(for: "down", limit: 10)
        #expect(pending.count == 5)
        try await store.deleteHints(pending.prefix(2).map(\.id))
        _ = try await store.putHint(target: "down", bucket: "b-1", payload: payload, createdMillis: 2)
        _ = try await store.putHint(target: "down", bucket: "b-1", payload: payload, createdMillis: 2)
        #expect(
            await agadirError {
                _ = try await store.putHint(target: "down", bucket: "b-1", payload: payload, createdMillis: 3)
            }?.code == .storageFull)
        #expect(try await store.hintTargets().map(\.count) == [5])
        await store.close()
    }

    @Test("putHint refuses a chunk it does not hold, a bucket that is not the payload's, and bad targets and limits")
    func putHint_validates() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        let ref = reference("bucket-a", "k", version(1))
        let absent = ChunkID.of([9])
        let error = await agadirError {
            _ = try await store.putHint(target: "n", bucket: "bucket-a", payload: .chunk(absent, ref), createdMillis: 0)
        }
        #expect(error?.code == .noSuchChunk && error?.message.contains(absent.hex) == true)
        let tombstone = HintPayload.manifest(.tombstone(bucket: "bucket-a", key: "k", version: version(1)))
        #expect(
            await agadirError {
                _ = try await store.putHint(target: "n", bucket: "bucket-b", payload: tombstone, createdMillis: 0)
            }?.code == .invalidArgument)
        for target in ["", "tab\there", String(repeating: "n", count: NodeStore.maxHintTargetBytes + 1)] {
            #expect(
                await agadirError {
                    _ = try await store.putHint(
                        target: target, bucket: "bucket-a", payload: tombstone, createdMillis: 0)
                }?.code == .invalidArgument)
        }
        #expect(await agadirError { _ = try await store.hints(for: "n", limit: 0) }?.code == .invalidArgument)
        #expect(
            await agadirError {
                try await store.deleteHints([Int64](repeating: 1, count: NodeStore.maxPageSize + 1))
            }?.code == .invalidArgument)
        #expect(try await store.hintTargets().isEmpty)
        await store.close()
    }
}
