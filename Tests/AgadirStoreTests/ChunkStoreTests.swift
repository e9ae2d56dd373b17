import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

@Suite("Chunk store")
struct ChunkStoreTests {
    @Test("put then read returns the raw bytes for raw, lz4 and zlib chunks of varied sizes")
    func putThenRead_roundTripsEveryCodecAndSize() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        var chunks: [(EncodedChunk, [UInt8])] = []
        for (i, size) in [0, 1, 100, 4096, 65_536 + 13, 1 << 20].enumerated() {
            for codec in Codec.allCases {
                let raw = i % 2 == 0 ? compressibleBytes(size, seed: UInt64(i)) : randomBytes(size, seed: UInt64(i))
                chunks.append((try encode(raw, codec), raw))
            }
        }
        #expect(chunks.contains { $0.0.codec == .lz4 } && chunks.contains { $0.0.codec == .zlib })
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (chunk, _) in chunks { group.addTask { _ = try await store.putChunk(chunk) } }
            try await group.waitForAll()
        }
        for (chunk, raw) in chunks {
            #expect(try await store.readChunk(chunk.id) == raw)
        }
        await store.close()
    }

    @Test("putting a chunk twice stores it once: the second put returns false and stored bytes do not grow")
    func putChunk_twice_dedups() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        let chunk = try encode(compressibleBytes(10_000, seed: 7), .lz4)
        #expect(try await store.putChunk(chunk) == true)
        let before = try await store.stats()
        #expect(try await store.putChunk(chunk) == false)
        let after = try await store.stats()
        #expect(after == before)
        #expect(after.chunks == 1)
        #expect(after.storedBytes == UInt64(chunk.stored.count))
        await store.close()
    }

    @Test("the same chunk put concurrently is stored once and exactly one put reports it new")
    func putChunk_concurrentDuplicates_storeOnce() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        let chunk = try encode(randomBytes(5000, seed: 3), .raw)
        let fresh = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<20 { group.addTask { try await store.putChunk(chunk) } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(fresh == 1)
        #expect(try await store.stats().chunks == 1)
        await store.close()
    }

    @Test("containsChunks answers per id, in order")
    func containsChunks_answersPerID() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        let a = try encode(randomBytes(100, seed: 1), .raw)
        let b = try encode(randomBytes(100, seed: 2), .raw)
        try await store.putChunk(a)
        #expect(try await store.containsChunks([a.id, b.id, a.id]) == [true, false, true])
        #expect(try await store.containsChunks([]) == [])
        await store.close()
    }

    @Test("reading a chunk that was never stored throws noSuchChunk")
    func readChunk_missing_throwsNoSuchChunk() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        let id = ChunkID.of([1, 2, 3])
        let error = await agadirError { _ = try await store.readChunk(id) }
        #expect(error?.code == .noSuchChunk)
        #expect(error?.message.contains(id.hex) == true)
        await store.close()
    }

    @Test("a chunk whose stored bytes do not match its checksum is refused before anything is written")
    func putChunk_badChecksum_refused() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        var chunk = try encode(randomBytes(100, seed: 9), .raw)
        chunk.checksum ^= 1
        let error = await agadirError { try await store.putChunk(chunk) }
        #expect(error?.code == .checksumMismatch)
        var lying = try encode(randomBytes(100, seed: 9), .raw)
        lying.rawLength = 99
        #expect(await agadirError { try await store.putChunk(lying) }?.code == .bodyLengthMismatch)
        #expect(try await store.stats().chunks == 0)
        await store.close()
    }

    @Test("segments rotate at segmentMaxBytes and chunks in every segment stay readable")
    func segments_rotateAtMaxBytes() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var options = StoreOptions()
        options.segmentMaxBytes = 64 * 1024
        let store = try openStore(dir, options: options)
        let chunks = try (0..<24).map { try encode(randomBytes(10_000, seed: UInt64(100 + $0)), .raw) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for chunk in chunks { group.addTask { _ = try await store.putChunk(chunk) } }
            try await group.waitForAll()
        }
        let stats = try await store.stats()
        #expect(stats.segmentFiles >= 4)
        for chunk in chunks { #expect(try await store.readChunk(chunk.id).count == 10_000) }
        for number in 1...UInt64(stats.segmentFiles) {
            let size = try #require(Posix.sizeOfFile(atPath: segmentPath(dir, number)))
            #expect(size <= options.segmentMaxBytes)
        }
        await store.close()
    }
}
