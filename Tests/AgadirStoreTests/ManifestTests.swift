import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

@Suite("Manifests, buckets and reference counts")
struct ManifestTests {
    @Test("last writer wins: an older version is superseded, a newer one applied")
    func putManifest_lastWriterWins() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("lww"))
        let v5 = inlineManifest(bucket: "lww", key: "k", body: [5], at: version(5))
        #expect(try await store.putManifest(v5) == .applied(replaced: nil))
        let v3 = inlineManifest(bucket: "lww", key: "k", body: [3], at: version(3))
        #expect(try await store.putManifest(v3) == .superseded(current: version(5)))
        #expect(try await store.putManifest(v5) == .superseded(current: version(5)))
        let v5b = inlineManifest(bucket: "lww", key: "k", body: [6], at: version(5, node: 2))  // tie: node breaks it
        #expect(try await store.putManifest(v5b) == .applied(replaced: version(5)))
        #expect(try await store.manifest(bucket: "lww", key: "k") == v5b)
        #expect(try await store.manifest(bucket: "lww", key: "absent") == nil)
        await store.close()
    }

    @Test("a tombstone hides the object from listings but manifest() still returns it")
    func tombstone_hidesFromList() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("tomb"))
        try await store.putManifest(inlineManifest(bucket: "tomb", key: "a", body: [1], at: version(1)))
        try await store.putManifest(inlineManifest(bucket: "tomb", key: "b", body: [2, 2], at: version(1)))
        #expect(
            try await store.putManifest(.tombstone(bucket: "tomb", key: "a", version: version(2)))
                == .applied(replaced: version(1)))
        let page = try await store.list(bucket: "tomb", prefix: "", delimiter: nil, startAfter: nil, limit: 10)
        #expect(page.entries.map(\.key) == ["b"])
        #expect(try await store.manifest(bucket: "tomb", key: "a")?.isTombstone == true)
        let stats = try await store.stats()
        #expect(stats.objects == 1 && stats.logicalBytes == 2 && stats.inlineBytes == 2)
        await store.close()
    }

    @Test("reference counts follow manifests: up on put (with multiplicity), down on replace and tombstone")
    func refcounts_followManifests() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("refs"))
        let a = try encode(randomBytes(1000, seed: 1), .raw)
        let b = try encode(randomBytes(3000, seed: 2), .raw)
        try await store.putChunk(a)
        try await store.putChunk(b)
        #expect(try await store.stats().referencedRawBytes == 0)
        try await store.putManifest(chunkManifest(bucket: "refs", key: "x", chunks: [a, a, b], at: version(1)))
        #expect(try await store.stats().referencedRawBytes == 5000)
        try await store.putManifest(chunkManifest(bucket: "refs", key: "y", chunks: [b], at: version(1)))
        #expect(try await store.stats().referencedRawBytes == 8000)
        try await store.putManifest(chunkManifest(bucket: "refs", key: "x", chunks: [a], at: version(2)))
        #expect(try await store.stats().referencedRawBytes == 4000)
        try await store.putManifest(.tombstone(bucket: "refs", key: "y", version: version(2)))
        #expect(try await store.stats().referencedRawBytes == 1000)
        // A superseded manifest changes nothing.
        try await store.putManifest(chunkManifest(bucket: "refs", key: "x", chunks: [b, b], at: version(1)))
        let stats = try await store.stats()
        #expect(stats.referencedRawBytes == 1000)
        #expect(stats.chunks == 2)  // unreferenced chunks stay for GC
        await store.close()
    }

    @Test("a manifest referencing a chunk that is not stored is rejected and changes nothing")
    func putManifest_missingChunk_rejected() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("miss"))
        let present = try encode(randomBytes(100, seed: 1), .raw)
        let absent = try encode(randomBytes(100, seed: 2), .raw)
        try await store.putChunk(present)
        let m = chunkManifest(bucket: "miss", key: "k", chunks: [present, absent], at: version(1))
        let error = await agadirError { try await store.putManifest(m) }
        #expect(error?.code == .noSuchChunk)
        #expect(error?.message.contains("chunk \(absent.id.hex)") == true)
        #expect(try await store.manifest(bucket: "miss", key: "k") == nil)
        #expect(try await store.stats().referencedRawBytes == 0)  // the savepoint undid the first increment
        await store.close()
    }

    @Test("a failing operation fails alone: its batch companions still succeed")
    func batch_failingOperation_failsAlone() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("ok-bucket"))
        let outcomes = await withTaskGroup(of: AgadirError.Code?.self) { group in
            for i in 0..<40 {
                group.addTask {
                    let bucket = i % 2 == 0 ? "ok-bucket" : "no-bucket"
                    return await agadirError {
                        let m = inlineManifest(bucket: bucket, key: "k\(i)", body: [1], at: version(1))
                        try await store.putManifest(m)
                    }?.code
                }
            }
            return await group.reduce(into: [AgadirError.Code?]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 == nil }.count == 20)
        #expect(outcomes.filter { $0 == .noSuchBucket }.count == 20)
        #expect(try await store.stats().objects == 20)
        await store.close()
    }

    @Test("bucket lifecycle: duplicate create refused, non-empty delete refused, empty delete succeeds")
    func buckets_lifecycle() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("zeta"))
        try await store.createBucket(bucketInfo("alpha"))
        #expect(await agadirError { try await store.createBucket(bucketInfo("alpha")) }?.code == .bucketAlreadyExists)
        #expect(try await store.listBuckets().map(\.name) == ["alpha", "zeta"])
        #expect(try await store.bucket("alpha") == bucketInfo("alpha"))
        #expect(try await store.bucket("nope") == nil)
        #expect(await agadirError { try await store.deleteBucket("nope") }?.code == .noSuchBucket)

        let chunk = try encode(randomBytes(500, seed: 4), .raw)
        try await store.putChunk(chunk)
        try await store.putManifest(chunkManifest(bucket: "alpha", key: "k", chunks: [chunk], at: version(1)))
        #expect(await agadirError { try await store.deleteBucket("alpha") }?.code == .bucketNotEmpty)
        try await store.putManifest(.tombstone(bucket: "alpha", key: "k", version: version(2)))
        try await store.deleteBucket("alpha")
        #expect(try await store.listBuckets().map(\.name) == ["zeta"])
        #expect(
            await agadirError {
                _ = try await store.list(bucket: "alpha", prefix: "", delimiter: nil, startAfter: nil, limit: 5)
            }?.code == .noSuchBucket)
        #expect(
            await agadirError {
                try await store.putManifest(inlineManifest(bucket: "alpha", key: "k", body: [], at: version(3)))
            }?.code == .noSuchBucket)
        // Re-created, the bucket does not resurrect the old tombstone.
        try await store.createBucket(bucketInfo("alpha"))
        #expect(try await store.manifest(bucket: "alpha", key: "k") == nil)
        let stats = try await store.stats()
        #expect(stats.referencedRawBytes == 0 && stats.objects == 0 && stats.buckets == 2)
        await store.close()
    }

    @Test("stats report dedup and compression ratios of a known workload")
    func stats_ratiosOfKnownWorkload() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("ratios"))
        let text = try encode(compressibleBytes(64 * 1024, seed: 1), .lz4)
        let noise = try encode(randomBytes(64 * 1024, seed: 2), .lz4)
        #expect(text.codec == .lz4 && noise.codec == .raw)
        try await store.putChunk(text)
        try await store.putChunk(noise)
        // Three objects, four references to 128 KiB of unique chunks: 256 KiB referenced.
        try await store.putManifest(chunkManifest(bucket: "ratios", key: "a", chunks: [text, noise], at: version(1)))
        try await store.putManifest(chunkManifest(bucket: "ratios", key: "b", chunks: [text], at: version(1)))
        try await store.putManifest(chunkManifest(bucket: "ratios", key: "c", chunks: [noise], at: version(1)))
        let stats = try await store.stats()
        let stored = UInt64(text.stored.count + noise.stored.count)
        #expect(stats.uniqueRawBytes == 128 * 1024)
        #expect(stats.referencedRawBytes == 256 * 1024)
        #expect(stats.dedupRatio == 2.0)
        #expect(stats.storedBytes == stored)
        #expect(stats.compressionRatio == Double(128 * 1024) / Double(stored))
        #expect(stats.compressionRatio > 1.5)
        #expect(stats.logicalBytes == 256 * 1024 && stats.objects == 3 && stats.inlineBytes == 0)
        #expect(stats.segmentFiles == 1)
        let overhead = UInt64(SegmentFormat.fileHeaderSize + 2 * SegmentFormat.recordHeaderSize)
        #expect(stats.segmentBytes == overhead + stored)
        let empty = StoreStats()
        #expect(empty.dedupRatio == 1 && empty.compressionRatio == 1)
        await store.close()
    }
}
