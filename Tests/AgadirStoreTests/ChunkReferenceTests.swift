import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

@Suite("Chunk references, claims and raw chunk records")
struct ChunkReferenceTests {
    @Test("putChunk(reference:) stores the chunk and its reference in one group commit; both survive a reopen")
    func putChunkWithReference_recordsReferenceInTheSameCommit() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let chunk = try encode(compressibleBytes(20_000, seed: 1), .lz4)
        let first = reference("photos", "cat.jpg", version(10))
        let second = reference("backups", "cat.jpg", version(11, node: 2))
        var store = try openStore(dir)
        let before = store.writerCounters
        #expect(try await store.putChunk(chunk, reference: first) == true)
        #expect(store.writerCounters.commitCount == before.commitCount + 1, "bytes and reference share one commit")
        #expect(try await store.putChunk(chunk, reference: second) == false, "already held: reference only")
        #expect(try await store.putChunk(chunk, reference: second) == false, "recording twice is harmless")
        let stats = try await store.stats()
        #expect(stats.chunks == 1 && stats.referencedRawBytes == 0, "cluster references are not chunks.refs")
        await store.close()

        let rows = try chunkReferenceRows(dir)
        #expect(rows.map(\.chunk) == [chunk.id, chunk.id])
        #expect(rows.map(\.reference) == [second, first])  // sorted by bucket
        store = try openStore(dir)
        #expect(try await store.readChunk(chunk.id).count == 20_000)
        let inventory = try await store.chunkInventory(after: nil, limit: 10)
        #expect(inventory.count == 1 && inventory.first?.buckets == ["backups", "photos"])
        await store.close()
    }

    @Test("the same chunk put concurrently with twenty references is stored once and records all twenty")
    func putChunkWithReference_concurrentDuplicates_recordEveryReference() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        let chunk = try encode(randomBytes(5000, seed: 3), .raw)
        let fresh = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<20 {
                group.addTask { try await store.putChunk(chunk, reference: reference("dup", "k\(i)", version(1))) }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(fresh == 1)
        await store.close()
        let keys = Set(try chunkReferenceRows(dir).map(\.reference.key))
        #expect(keys == Set((0..<20).map { "k\($0)" }))
    }

    @Test("putChunk(reference:) makes the checks of putChunk and refuses bad references, recording nothing")
    func putChunkWithReference_refusesInconsistentChunksAndBadReferences() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        var chunk = try encode(randomBytes(1000, seed: 4), .raw)
        let good = reference("bucket", "key", version(1))
        var lying = chunk
        lying.checksum ^= 1
        #expect(await agadirError { try await store.putChunk(lying, reference: good) }?.code == .checksumMismatch)
        #expect(
            await agadirError {
                try await store.putChunk(chunk, reference: reference("No_Such", "key", version(1)))
            }?.code == .invalidBucketName)
        #expect(
            await agadirError {
                try await store.putChunk(chunk, reference: reference("bucket", "", version(1)))
            }?.code == .invalidKey)
        chunk.rawLength += 1
        #expect(await agadirError { try await store.putChunk(chunk, reference: good) }?.code == .bodyLengthMismatch)
        #expect(try await store.stats().chunks == 0)
        await store.close()
        #expect(try chunkReferenceRows(dir).isEmpty)
    }

    @Test("claimChunks answers in order, records the reference only on held chunks, and writes nothing on all misses")
    func claimChunks_mixOfHeldAndMissing() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        let a = try encode(randomBytes(700, seed: 5), .raw)
        let b = try encode(compressibleBytes(9000, seed: 6), .zlib)
        let missing = ChunkID.of(Array("not stored".utf8))
        try await store.putChunk(a)
        try await store.putChunk(b)
        let claim = reference("claims", "object", version(7, node: 3))
        #expect(
            try await store.claimChunks([a.id, missing, b.id, a.id], reference: claim) == [true, false, true, true])

        let before = store.writerCounters
        #expect(try await store.claimChunks([missing, missing], reference: claim) == [false, false])
        #expect(try await store.claimChunks([], reference: claim) == [])
        #expect(store.writerCounters == before, "misses are answered without a group commit")

        let tooMany = [ChunkID](repeating: a.id, count: NodeStore.maxClaimIDs + 1)
        let error = await agadirError { _ = try await store.claimChunks(tooMany, reference: claim) }
        #expect(error?.code == .invalidArgument && error?.message.contains("\(NodeStore.maxClaimIDs)") == true)
        #expect(
            await agadirError {
                _ = try await store.claimChunks([a.id], reference: reference("x", "k", version(1)))
            }?.code == .invalidBucketName)
        await store.close()

        let rows = try chunkReferenceRows(dir)
        #expect(Set(rows.map(\.chunk)) == [a.id, b.id])
        #expect(rows.allSatisfy { $0.reference == claim })
    }

    @Test("readChunkRecord returns exactly what putChunk stored, for every codec, before and after a reopen")
    func readChunkRecord_roundTrip() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var chunks: [EncodedChunk] = []
        for (i, size) in [0, 1, 3000, 70_000].enumerated() {
            for codec in Codec.allCases {  // distinct bytes per codec: one id, one stored form
                chunks.append(try encode(compressibleBytes(size, seed: UInt64(i * 10) + UInt64(codec.rawValue)), codec))
            }
        }
        chunks.append(try encode(randomBytes(50_000, seed: 9), .lz4))  // falls back to raw
        #expect(Set(chunks.map(\.codec)) == Set(Codec.allCases))
        var store = try openStore(dir)
        for chunk in chunks { try await store.putChunk(chunk, reference: reference("rec", "k", version(1))) }
        for chunk in chunks { #expect(try await store.readChunkRecord(chunk.id) == chunk) }
        await store.close()
        store = try openStore(dir)
        for chunk in chunks { #expect(try await store.readChunkRecord(chunk.id) == chunk) }
        let absent = ChunkID.of([1, 2, 3])
        let error = await agadirError { _ = try await store.readChunkRecord(absent) }
        #expect(error?.code == .noSuchChunk && error?.message.contains(absent.hex) == true)
        await store.close()
    }

    @Test("readChunkRecord finds a flipped stored byte (raw and compressed) or header byte: corruptChunk naming it")
    func readChunkRecord_corruptRecord_isCorruptChunk() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let chunks = [
            try encode(randomBytes(4000, seed: 10), .raw), try encode(compressibleBytes(4000, seed: 11), .lz4),
            try encode(compressibleBytes(4000, seed: 12), .zlib), try encode(randomBytes(4000, seed: 13), .raw),
        ]
        var store = try openStore(dir)
        for chunk in chunks { try await store.putChunk(chunk) }  // sequential: known offsets
        await store.close()
        var offsets: [Int] = []
        var offset = SegmentFormat.fileHeaderSize
        for chunk in chunks {
            offsets.append(offset)
            offset += SegmentFormat.recordHeaderSize + chunk.stored.count
        }
        for i in 0..<3 { try flipByte(path: segmentPath(dir, 1), at: offsets[i] + SegmentFormat.recordHeaderSize + 7) }

        store = try openStore(dir)
        for i in 0..<3 {
            let error = await agadirError { _ = try await store.readChunkRecord(chunks[i].id) }
            #expect(error?.code == .corruptChunk)
            #expect(error?.message.contains(chunks[i].id.hex) == true)
            #expect(error?.message.contains("segment 1 at offset \(offsets[i])") == true)
            #expect(error?.message.contains("CRC-32") == true)
        }
        #expect(try await store.readChunkRecord(chunks[3].id) == chunks[3])
        await store.close()

        try flipByte(path: segmentPath(dir, 1), at: offsets[3] + 20)  // the id in the header
        store = try openStore(dir)
        let error = await agadirError { _ = try await store.readChunkRecord(chunks[3].id) }
        #expect(error?.code == .corruptChunk && error?.message.contains("header") == true)
        await store.close()
    }
}
