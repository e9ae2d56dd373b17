import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

@Suite("Durability, recovery and corruption")
struct DurabilityTests {
    @Test("200 concurrent chunk and manifest writes all complete, are readable, and share group commits")
    func concurrentWrites_areGroupCommitted() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("burst"))
        let before = store.writerCounters
        let chunks = try (0..<100).map { try encode(randomBytes(2048, seed: UInt64(1000 + $0)), .raw) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, chunk) in chunks.enumerated() {
                group.addTask { _ = try await store.putChunk(chunk) }
                group.addTask {
                    let m = inlineManifest(bucket: "burst", key: "k\(i)", body: Array("v\(i)".utf8), at: version(10))
                    _ = try await store.putManifest(m)
                }
            }
            try await group.waitForAll()
        }
        let after = store.writerCounters
        let operations = after.operationCount - before.operationCount
        let commits = after.commitCount - before.commitCount
        #expect(operations == 200)
        #expect(commits < operations / 4, "\(commits) commits for \(operations) operations")
        for (i, chunk) in chunks.enumerated() {
            #expect(try await store.readChunk(chunk.id).count == 2048)
            let m = try await store.manifest(bucket: "burst", key: "k\(i)")
            #expect(m?.body == .inline(Array("v\(i)".utf8)))
        }
        await store.close()
    }

    @Test("after close and reopen everything is readable and stats are identical")
    func reopen_afterClose_keepsEverything() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let chunks = try (0..<10).map { try encode(compressibleBytes(3000 + $0, seed: UInt64($0)), .lz4) }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("keep"))
        for chunk in chunks { try await store.putChunk(chunk) }
        try await store.putManifest(chunkManifest(bucket: "keep", key: "obj", chunks: chunks, at: version(5)))
        try await store.putManifest(inlineManifest(bucket: "keep", key: "small", body: [1, 2, 3], at: version(5)))
        let stats = try await store.stats()
        await store.close()
        await store.close()  // idempotent
        #expect(await agadirError { _ = try await store.stats() }?.code == .shuttingDown)

        let reopened = try openStore(dir)
        #expect(try await reopened.stats() == stats)
        for chunk in chunks { #expect(ChunkID.of(try await reopened.readChunk(chunk.id)) == chunk.id) }
        #expect(try await reopened.manifest(bucket: "keep", key: "obj")?.chunkRefs.count == 10)
        #expect(try await reopened.listBuckets() == [bucketInfo("keep")])
        await reopened.close()
    }

    @Test("garbage and a torn record after the last acknowledged record are truncated on open; new writes work")
    func recovery_truncatesUnacknowledgedTail() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let chunks = try (0..<5).map { try encode(randomBytes(1000, seed: UInt64(50 + $0)), .raw) }
        var store = try openStore(dir)
        for chunk in chunks { try await store.putChunk(chunk) }
        let stats = try await store.stats()
        await store.close()

        // As if a crash hit mid-append: half a record, then junk.
        let path = segmentPath(dir, 1)
        let torn = SegmentFormat.record(try encode(randomBytes(500, seed: 99), .raw))
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Array(torn.prefix(300)) + randomBytes(777, seed: 5))
        try handle.close()
        #expect(Posix.sizeOfFile(atPath: path) == Int(stats.segmentBytes) + 1077)

        store = try openStore(dir)
        #expect(try await store.stats() == stats)
        for chunk in chunks { #expect(try await store.readChunk(chunk.id).count == 1000) }
        let fresh = try encode(randomBytes(1234, seed: 77), .raw)
        #expect(try await store.putChunk(fresh) == true)
        await store.close()

        store = try openStore(dir)
        #expect(try await store.readChunk(fresh.id).count == 1234)
        for chunk in chunks { #expect(try await store.readChunk(chunk.id).count == 1000) }
        await store.close()
    }

    @Test("a segment file that no commit recorded is removed on open")
    func recovery_removesUnrecordedSegment() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var store = try openStore(dir)
        let chunk = try encode(randomBytes(100, seed: 1), .raw)
        try await store.putChunk(chunk)
        await store.close()
        let orphan = segmentPath(dir, 2)
        #expect(FileManager.default.createFile(atPath: orphan, contents: Data(SegmentFormat.fileHeader(segment: 2))))
        store = try openStore(dir)
        #expect(!FileManager.default.fileExists(atPath: orphan))
        #expect(try await store.readChunk(chunk.id).count == 100)
        await store.close()
    }

    @Test("segments are never deleted when the metadata database records none (a lost or replaced database)")
    func recovery_keepsSegments_whenTheDatabaseRecordsNone() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var store = try openStore(dir)
        let chunk = try encode(randomBytes(5000, seed: 2), .raw)
        try await store.putChunk(chunk)
        await store.close()
        let segment = segmentPath(dir, 1)
        let size = try FileManager.default.attributesOfItem(atPath: segment)[.size] as? Int
        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.removeItem(atPath: dir.path + "/meta.sqlite" + suffix)
        }
        store = try openStore(dir)
        #expect(
            try FileManager.default.attributesOfItem(atPath: segment)[.size] as? Int == size, "segment 1 kept whole")
        let other = try encode(randomBytes(300, seed: 3), .raw)
        try await store.putChunk(other)
        #expect(try await store.readChunk(other.id).count == 300, "new writes go to a new segment")
        #expect(FileManager.default.fileExists(atPath: segmentPath(dir, 2)))
        await store.close()
    }

    @Test("a flipped byte in stored bytes or in a record header is a corruptChunk naming the chunk; others still read")
    func corruption_isDetectedAndConfined() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let chunks = try (0..<3).map { try encode(compressibleBytes(4000, seed: UInt64(10 + $0)), .lz4) }
        var store = try openStore(dir)
        for chunk in chunks { try await store.putChunk(chunk) }  // sequential: known offsets
        await store.close()

        let first = SegmentFormat.fileHeaderSize
        let second = first + SegmentFormat.recordHeaderSize + chunks[0].stored.count
        try flipByte(path: segmentPath(dir, 1), at: first + SegmentFormat.recordHeaderSize + 10)  // stored bytes
        try flipByte(path: segmentPath(dir, 1), at: second + 9)  // inside the header (raw length)

        store = try openStore(dir)
        let e0 = await agadirError { _ = try await store.readChunk(chunks[0].id) }
        #expect(e0?.code == .corruptChunk)
        #expect(e0?.message.contains(chunks[0].id.hex) == true)
        #expect(e0?.message.contains("segment 1 at offset \(first)") == true)
        let e1 = await agadirError { _ = try await store.readChunk(chunks[1].id) }
        #expect(e1?.code == .corruptChunk)
        #expect(e1?.message.contains(chunks[1].id.hex) == true)
        #expect(e1?.message.contains("header") == true)
        #expect(try await store.readChunk(chunks[2].id).count == 4000)
        await store.close()
    }

    @Test("a second open of a directory that is open fails with a clear error")
    func secondOpen_whileOpen_fails() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        #expect(
            throws: AgadirError(
                .ioError, "data directory \(dir.path) is in use by another process (lock held on \(dir.path)/LOCK)")
        ) {
            _ = try openStore(dir)
        }
        await store.close()
        let again = try openStore(dir)  // the lock goes with close
        await again.close()
    }

    @Test("a metadata database with a newer schema version is refused")
    func open_newerSchema_refused() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        try await openStore(dir).close()
        let db = try SQLiteDatabase(path: dir.path + "/meta.sqlite", readOnly: false)
        try db.run("UPDATE schema_version SET version = 99")
        db.close()
        let error = await agadirError { _ = try openStore(dir) }
        #expect(error?.code == .ioError)
        #expect(error?.message.contains("schema version 99") == true)
    }

    @Test("writes after close fail with shuttingDown")
    func writes_afterClose_fail() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        await store.close()
        let error = await agadirError { try await store.putChunk(encode([1], .raw)) }
        #expect(error?.code == .shuttingDown)
    }
}
