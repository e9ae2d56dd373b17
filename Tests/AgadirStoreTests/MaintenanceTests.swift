import AgadirCore
import Foundation
import Synchronization
import Testing

@testable import AgadirStore

// MARK: Helpers

private func nowMillis() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

/// Waits until the wall clock (in ms) has moved past `millis`, so rows written next are strictly later.
private func waitPast(_ millis: UInt64) async throws {
    for _ in 0..<200 where nowMillis() <= millis { try await Task.sleep(for: .milliseconds(2)) }
}

/// Where the index of a store (open or closed) puts a chunk, and its standalone reference count.
private func indexRow(_ dir: TempDirectory, _ id: ChunkID) throws -> (segment: UInt64, offset: Int, refs: Int64)? {
    let db = try SQLiteDatabase(path: dir.path + "/meta.sqlite", readOnly: true)
    defer { db.close() }
    return try db.firstRow(#"SELECT segment, "offset", refs FROM chunks WHERE id = ?"#, [.blob(id.bytes)]) { row in
        (UInt64(row.int64(0)), Int(row.int64(1)), row.int64(2))
    }
}

private func count(_ dir: TempDirectory, _ sql: String) throws -> Int64 {
    let db = try SQLiteDatabase(path: dir.path + "/meta.sqlite", readOnly: true)
    defer { db.close() }
    return try db.firstRow(sql) { $0.int64(0) } ?? -1
}

/// The segment files of a store's directory, by number, with their sizes.
private func segmentFiles(_ dir: TempDirectory) throws -> [UInt64: Int] {
    var out: [UInt64: Int] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: dir.path + "/chunks") {
        if let n = SegmentFormat.number(fromFileName: name) {
            out[n] = Posix.sizeOfFile(atPath: dir.path + "/chunks/" + name) ?? -1
        }
    }
    return out
}

/// Options with small segments, so a few chunks fill several.
private func smallSegments(step: Int = 64 * 1024, crash: CompactionCrashPoint? = nil) -> StoreOptions {
    var options = StoreOptions()
    options.segmentMaxBytes = 16 * 1024
    options.compactionStepBytes = step
    options.compactionCrash = crash
    return options
}

/// Stores `n` raw chunks of 3000 bytes (five per 16 KiB segment) and returns them with their bytes.
private func fill(_ store: NodeStore, _ n: Int, seed: UInt64) async throws -> [(chunk: EncodedChunk, raw: [UInt8])] {
    var out: [(chunk: EncodedChunk, raw: [UInt8])] = []
    for i in 0..<n {
        let raw = randomBytes(3000, seed: seed &+ UInt64(i))
        let chunk = try encode(raw, .raw)
        try await store.putChunk(chunk)
        out.append((chunk, raw))
    }
    return out
}

/// Shared by the readers and the compaction of a race test.
private final class RaceCounters: Sendable {
    let done = Atomic<Bool>(false)
    let failures = Atomic<Int>(0)
    let reads = Atomic<Int>(0)
}

@Suite("Maintenance: verification, quarantine, garbage, compaction")
struct MaintenanceTests {
    // MARK: Verification

    @Test("verifyChunks reports a flipped byte in a raw and in a compressed record, and every other chunk as sound")
    func verifyChunks_findsFlippedBytes_andPassesSoundChunks() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var store = try openStore(dir)
        var chunks: [EncodedChunk] = []
        for i in 0..<10 {
            let chunk =
                i % 2 == 0
                ? try encode(randomBytes(2000 + i, seed: UInt64(100 + i)), .raw)
                : try encode(compressibleBytes(20_000 + i, seed: UInt64(100 + i)), .lz4)
            try await store.putChunk(chunk)
            chunks.append(chunk)
        }
        await store.close()
        let bad: Set<ChunkID> = [chunks[2].id, chunks[5].id]
        for id in bad {
            let row = try #require(try indexRow(dir, id))
            // Inside the stored bytes: the header stays sound, the CRC-32 (and the hash) do not.
            try flipByte(path: segmentPath(dir, row.segment), at: row.offset + SegmentFormat.recordHeaderSize + 7)
        }
        store = try openStore(dir)

        var checks: [ChunkCheck] = []
        var after: ChunkID? = nil
        for _ in 0..<20 {
            let page = try await store.verifyChunks(after: after, limit: 3, maxBytes: 1 << 30)
            checks += page
            guard let last = page.last, page.count == 3 else { break }
            after = last.id
        }
        #expect(checks.map(\.id) == chunks.map(\.id).sorted(), "every chunk once, in id order")
        for check in checks {
            let chunk = try #require(chunks.first { $0.id == check.id })
            #expect(check.storedBytes == UInt64(chunk.stored.count))
            if bad.contains(check.id) {
                #expect(check.problem?.contains("CRC-32") == true, "\(check.problem ?? "nil")")
            } else {
                #expect(check.problem == nil, "\(check.problem ?? "")")
            }
        }
        // maxBytes stops the page after the chunk that reaches it, but always returns one.
        #expect(try await store.verifyChunks(after: nil, limit: 10, maxBytes: 1).count == 1)
        let firstTwo = checks.prefix(2).reduce(0) { $0 + Int($1.storedBytes) }
        #expect(try await store.verifyChunks(after: nil, limit: 10, maxBytes: firstTwo).count == 2)
        await #expect(throws: AgadirError.self) { try await store.verifyChunks(after: nil, limit: 0, maxBytes: 1) }
        await store.close()
    }

    // MARK: Quarantine

    @Test("a quarantined chunk is hidden from every read path, keeps its references and count, and comes back")
    func quarantine_hidesChunk_keepsReferences_andPutChunkRestoresIt() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var store = try openStore(dir)
        try await store.createBucket(bucketInfo("bkt"))
        let raw = randomBytes(5000, seed: 7)
        let chunk = try encode(raw, .raw)
        let other = try encode(randomBytes(4000, seed: 8), .raw)
        let r = reference("bkt", "k", version(3))
        try await store.putChunk(chunk, reference: r)
        try await store.putChunk(other)
        try await store.putManifest(chunkManifest(bucket: "bkt", key: "k", chunks: [chunk, chunk], at: version(3)))
        #expect(try indexRow(dir, chunk.id)?.refs == 2)

        #expect(try await store.quarantineChunk(chunk.id, reason: "sha-256 mismatch in segment 1"))
        #expect(try await store.quarantineChunk(chunk.id, reason: "again") == false, "already quarantined")
        #expect(try await store.quarantineChunk(ChunkID.of([1, 2, 3]), reason: "absent") == false)

        #expect(try await store.containsChunks([chunk.id, other.id]) == [false, true])
        await #expect { try await store.readChunk(chunk.id) } throws: { ($0 as? AgadirError)?.code == .noSuchChunk }
        await #expect { try await store.readChunkRecord(chunk.id) } throws: {
            ($0 as? AgadirError)?.code == .noSuchChunk
        }
        #expect(try await store.partitionChunks(w0From: 0, below: nil, after: nil, limit: 10).map(\.id) == [other.id])
        #expect(try await store.chunkInventory(after: nil, limit: 10).map(\.id) == [other.id])
        #expect(try await store.claimChunks([chunk.id], reference: reference("bkt", "k2", version(4))) == [false])
        #expect(try await store.verifyChunks(after: nil, limit: 10, maxBytes: 1 << 20).map(\.id) == [other.id])
        let listing = chunkManifest(bucket: "bkt", key: "x", chunks: [chunk], at: version(5))
        await #expect { try await store.putManifest(listing) } throws: { ($0 as? AgadirError)?.code == .noSuchChunk }

        let listed = try await store.quarantinedChunks(limit: 10)
        #expect(listed.count == 1)
        #expect(listed.first?.id == chunk.id)
        #expect(listed.first?.reason == "sha-256 mismatch in segment 1")
        #expect(listed.first?.references == [r], "its chunk_refs rows stay")
        #expect((listed.first?.quarantinedMillis ?? 0) + 60_000 > nowMillis())
        #expect(try await store.quarantinedChunkCount() == 1)
        let stats = try await store.stats()
        #expect(stats.quarantinedChunks == 1 && stats.chunks == 1)
        #expect(try await store.unreferencedChunks(storedBefore: .max, after: nil, limit: 10) == [other.id])

        // Durable: it is still quarantined after a reopen.
        await store.close()
        store = try openStore(dir)
        #expect(try await store.quarantinedChunkCount() == 1)
        #expect(try await store.containsChunks([chunk.id]) == [false])

        // Storing the good bytes again brings it back with its saved count, and the quarantine row goes.
        #expect(try await store.putChunk(chunk) == true, "appended anew")
        #expect(try await store.readChunk(chunk.id) == raw)
        #expect(try await store.quarantinedChunkCount() == 0)
        #expect(try indexRow(dir, chunk.id)?.refs == 2, "chunks.refs restored")
        #expect(try await store.stats().quarantinedChunks == 0)
        await store.close()
    }

    @Test("a manifest replaced while its chunk is quarantined lowers the saved count the chunk comes back with")
    func quarantine_releasedReferences_lowerTheSavedCount() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("bkt"))
        let chunk = try encode(randomBytes(3000, seed: 9), .raw)
        try await store.putChunk(chunk)
        try await store.putManifest(chunkManifest(bucket: "bkt", key: "k", chunks: [chunk], at: version(1)))
        #expect(try await store.quarantineChunk(chunk.id, reason: "bad"))
        try await store.putManifest(.tombstone(bucket: "bkt", key: "k", version: version(2)))
        try await store.putChunk(chunk, reference: reference("bkt", "k", version(1)))
        #expect(try indexRow(dir, chunk.id)?.refs == 0)
        #expect(try await store.quarantinedChunkCount() == 0)
        await store.close()
    }

    // MARK: Garbage

    @Test("chunkReferences lists rows older than the cutoff in key order, page by page; deletes respect the cutoff")
    func chunkReferences_andDeletes_respectTheCutoff() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        var old: [(chunk: ChunkID, reference: ChunkReference)] = []
        for i in 0..<4 {
            let chunk = try encode(randomBytes(100 + i, seed: UInt64(20 + i)), .raw)
            for key in ["a", "b"] {
                let r = reference("bkt", key, version(UInt64(i + 1)))
                try await store.putChunk(chunk, reference: r)
                old.append((chunk.id, r))
            }
        }
        let stored = try chunkReferenceRows(dir)
        let cutoff = nowMillis() + 1
        try await waitPast(cutoff)
        let late = try encode(randomBytes(300, seed: 30), .raw)
        let lateReference = reference("bkt", "late", version(9))
        try await store.putChunk(late, reference: lateReference)

        var listed: [(chunk: ChunkID, reference: ChunkReference, createdMillis: UInt64)] = []
        var after: (chunk: ChunkID, reference: ChunkReference)? = nil
        for _ in 0..<20 {
            let page = try await store.chunkReferences(createdBefore: cutoff, after: after, limit: 3)
            listed += page
            guard let last = page.last, page.count == 3 else { break }
            after = (last.chunk, last.reference)
        }
        #expect(listed.map(\.chunk) == stored.map(\.chunk), "the old rows, in (chunk, bucket, key, version) order")
        #expect(listed.map(\.reference) == stored.map(\.reference))
        #expect(listed.allSatisfy { $0.createdMillis < cutoff })
        #expect(try await store.chunkReferences(createdBefore: .max, after: nil, limit: 100).count == 9)

        // A claim refreshes one old row's time: it is then too recent to delete.
        let refreshed = try #require(old.first)
        #expect(try await store.claimChunks([refreshed.chunk], reference: refreshed.reference) == [true])
        let all = old + [(late.id, lateReference)]
        #expect(try await store.deleteChunkReferences(all, createdBefore: cutoff) == 7)
        let remaining = try chunkReferenceRows(dir)
        #expect(Set(remaining.map(\.reference)) == [refreshed.reference, lateReference])
        #expect(try await store.deleteChunkReferences(all, createdBefore: .max) == 2)
        #expect(try chunkReferenceRows(dir).isEmpty)
        await store.close()
    }

    @Test("unreferencedChunks lists only chunks with neither chunk_refs rows nor refs, stored before the cutoff")
    func unreferencedChunks_listsOnlyUnownedChunksStoredBeforeTheCutoff() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("bkt"))
        var garbage: [ChunkID] = []
        for i in 0..<5 {
            let c = try encode(randomBytes(200, seed: UInt64(40 + i)), .raw)
            try await store.putChunk(c)
            garbage.append(c.id)
        }
        let referenced = try encode(randomBytes(200, seed: 50), .raw)
        try await store.putChunk(referenced, reference: reference("bkt", "r", version(1)))
        let counted = try encode(randomBytes(200, seed: 51), .raw)
        try await store.putChunk(counted)
        try await store.putManifest(chunkManifest(bucket: "bkt", key: "c", chunks: [counted], at: version(1)))
        let cutoff = nowMillis() + 1
        try await waitPast(cutoff)
        let recent = try encode(randomBytes(200, seed: 52), .raw)
        try await store.putChunk(recent)

        var listed: [ChunkID] = []
        var after: ChunkID? = nil
        for _ in 0..<10 {
            let page = try await store.unreferencedChunks(storedBefore: cutoff, after: after, limit: 2)
            listed += page
            guard let last = page.last, page.count == 2 else { break }
            after = last
        }
        #expect(listed == garbage.sorted())
        #expect(
            try await store.unreferencedChunks(storedBefore: .max, after: nil, limit: 100)
                == (garbage + [recent.id]).sorted())
        #expect(try await store.dropChunks(listed, referencedBefore: cutoff).count == 5)
        #expect(try await store.unreferencedChunks(storedBefore: cutoff, after: nil, limit: 100).isEmpty)
        await store.close()
    }

    @Test("standalone: after a delete, the object's chunk has refs 0 and no chunk_refs: garbage after the cutoff only")
    func standalone_deletedObjectsChunk_isGarbageAfterTheCutoff() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("photos"))
        let before = nowMillis()
        try await waitPast(before)
        let chunk = try encode(compressibleBytes(50_000, seed: 60), .lz4)
        try await store.putChunk(chunk, durability: .deferred)
        try await store.putManifest(chunkManifest(bucket: "photos", key: "cat.jpg", chunks: [chunk], at: version(1)))
        #expect(try await store.unreferencedChunks(storedBefore: .max, after: nil, limit: 10).isEmpty, "refs 1")
        try await store.putManifest(.tombstone(bucket: "photos", key: "cat.jpg", version: version(2)))
        #expect(try indexRow(dir, chunk.id)?.refs == 0)
        #expect(try await store.unreferencedChunks(storedBefore: before, after: nil, limit: 10).isEmpty, "too recent")
        let cutoff = nowMillis() + 1
        try await waitPast(cutoff)
        #expect(try await store.unreferencedChunks(storedBefore: cutoff, after: nil, limit: 10) == [chunk.id])
        #expect(try await store.dropChunks([chunk.id], referencedBefore: cutoff) == [chunk.id])
        await store.close()
    }

    // MARK: Compaction

    @Test("compaction after dropping most chunks frees disk space; every other chunk reads back; reopen is clean")
    func compaction_freesSpace_keepsEveryLiveChunk_andReopensCleanly() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var store = try openStore(dir, options: smallSegments(step: 8 * 1024))
        let all = try await fill(store, 40, seed: 1000)
        let segmentsBefore = try segmentFiles(dir)
        #expect(segmentsBefore.count >= 7)
        // Keep every fifth chunk; segment 1 loses all of its chunks.
        let firstSegment = try all.filter { try indexRow(dir, $0.chunk.id)?.segment == 1 }.map(\.chunk.id)
        #expect(!firstSegment.isEmpty)
        let kept = all.enumerated().filter { $0.offset % 5 == 2 && !firstSegment.contains($0.element.chunk.id) }
            .map(\.element)
        let dropped = all.filter { c in !kept.contains { $0.chunk.id == c.chunk.id } }.map(\.chunk.id)
        #expect(try await store.dropChunks(dropped, referencedBefore: .max).count == dropped.count)

        let usage = try await store.segmentUsage()
        #expect(usage.filter(\.isActive).count == 1)
        #expect(usage.map { UInt64($0.segment) }.sorted() == segmentsBefore.keys.sorted())
        let live = kept.reduce(UInt64(0)) { $0 + UInt64(SegmentFormat.recordHeaderSize + $1.chunk.stored.count) }
        #expect(usage.reduce(0) { $0 + $1.liveBytes } == live, "live bytes count the indexed records with headers")
        #expect(usage.first { $0.segment == 1 }?.liveBytes == 0)

        let statsBefore = try await store.stats()
        let result = try await store.compactSegments(liveFraction: 0.5, maxSegments: 100)
        let statsAfter = try await store.stats()
        #expect(result.segmentsCompacted >= segmentsBefore.count - 2, "all but the active and the newest recorded")
        #expect(result.bytesFreed > result.bytesCopied)
        var onDisk = try segmentFiles(dir)
        // Copies that fill a segment start a new one: each new file adds its 32-byte header.
        let newFiles = onDisk.keys.filter { $0 > (segmentsBefore.keys.max() ?? 0) }.count
        #expect(
            statsAfter.segmentBytes
                == statsBefore.segmentBytes + result.bytesCopied + UInt64(newFiles * SegmentFormat.fileHeaderSize)
                - result.bytesFreed)
        #expect(UInt64(onDisk.values.reduce(0, +)) == statsAfter.segmentBytes)
        #expect(onDisk[1] == nil, "the segment with no live record is gone")
        #expect(statsAfter.chunks == kept.count && statsAfter.storedBytes == statsBefore.storedBytes)
        for (chunk, raw) in kept { #expect(try await store.readChunk(chunk.id) == raw) }
        // Later passes may compact the segment that was active during the first; they come to rest.
        var passes = 0
        while passes < 5, try await store.compactSegments(liveFraction: 0.5, maxSegments: 100) != CompactionResult() {
            passes += 1
        }
        #expect(passes < 5, "compaction comes to rest")
        let usage2 = try await store.segmentUsage()
        let newest = usage2.filter { !$0.isActive }.map(\.segment).max() ?? 0
        for u in usage2 where !u.isActive && u.segment < newest {
            #expect(Double(u.liveBytes) >= 0.5 * Double(u.fileBytes) && u.liveBytes > 0, "\(u)")
        }
        onDisk = try segmentFiles(dir)

        await store.close()
        store = try openStore(dir, options: smallSegments())
        let reopened = try segmentFiles(dir)
        #expect(reopened == onDisk, "a reopen neither truncates nor deletes anything more")
        #expect(try count(dir, "SELECT COUNT(*) FROM retired_segments") == 0)
        for (chunk, raw) in kept {
            #expect(try await store.readChunk(chunk.id) == raw)
            #expect(try await store.readChunkRecord(chunk.id) == chunk)
        }
        let checks = try await store.verifyChunks(after: nil, limit: 100, maxBytes: 1 << 30)
        #expect(checks.count == kept.count && checks.allSatisfy { $0.problem == nil })
        // Writes go on after the copies, and survive another reopen.
        let more = try await fill(store, 3, seed: 5000)
        await store.close()
        store = try openStore(dir)
        for (chunk, raw) in kept + more { #expect(try await store.readChunk(chunk.id) == raw) }
        await store.close()
    }

    @Test("a crash between the copies and the index commit leaves the old records in use, and the copies cut off")
    func compaction_crashBeforeIndexCommit_keepsOldRecords() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var store = try openStore(dir, options: smallSegments(crash: .beforeIndexCommit))
        let all = try await fill(store, 20, seed: 2000)
        let kept = all.enumerated().filter { $0.offset % 4 == 0 }.map(\.element)
        let dropped = all.filter { c in !kept.contains { $0.chunk.id == c.chunk.id } }.map(\.chunk.id)
        #expect(try await store.dropChunks(dropped, referencedBefore: .max).count == dropped.count)
        let filesBefore = try segmentFiles(dir)
        let placesBefore = try kept.map { try indexRow(dir, $0.chunk.id)?.segment }

        await #expect(throws: AgadirError.self) { try await store.compactSegments(liveFraction: 0.9, maxSegments: 10) }
        await store.close()

        store = try openStore(dir, options: smallSegments())
        #expect(try segmentFiles(dir) == filesBefore, "the copies past the committed length are cut off")
        #expect(try kept.map { try indexRow(dir, $0.chunk.id)?.segment } == placesBefore)
        for (chunk, raw) in kept { #expect(try await store.readChunk(chunk.id) == raw) }
        let result = try await store.compactSegments(liveFraction: 0.9, maxSegments: 10)
        #expect(result.segmentsCompacted > 0 && result.bytesFreed > 0)
        for (chunk, raw) in kept { #expect(try await store.readChunk(chunk.id) == raw) }
        await store.close()
    }

    @Test("a crash between the index commit and the file's deletion: the reopen deletes the file")
    func compaction_crashBeforeFileRemoval_reopenDeletesTheFile() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var store = try openStore(dir, options: smallSegments(crash: .beforeFileRemoval))
        let all = try await fill(store, 20, seed: 3000)
        let kept = all.enumerated().filter { $0.offset % 4 == 1 }.map(\.element)
        let dropped = all.filter { c in !kept.contains { $0.chunk.id == c.chunk.id } }.map(\.chunk.id)
        #expect(try await store.dropChunks(dropped, referencedBefore: .max).count == dropped.count)
        let filesBefore = try segmentFiles(dir)

        let result = try await store.compactSegments(liveFraction: 0.9, maxSegments: 10)
        #expect(result.segmentsCompacted > 0 && result.bytesCopied > 0 && result.bytesFreed == 0)
        let retired = try count(dir, "SELECT COUNT(*) FROM retired_segments")
        #expect(retired == Int64(result.segmentsCompacted))
        for (chunk, raw) in kept { #expect(try await store.readChunk(chunk.id) == raw, "read at the new places") }
        #expect(try segmentFiles(dir).keys.count >= filesBefore.keys.count, "the old files are still there")
        await store.close()

        store = try openStore(dir)
        let after = try segmentFiles(dir)
        #expect(
            after.count == filesBefore.count + (after.keys.max() ?? 0 > filesBefore.keys.max() ?? 0 ? 1 : 0)
                - result.segmentsCompacted, "the retired files are deleted on open")
        #expect(try count(dir, "SELECT COUNT(*) FROM retired_segments") == 0)
        let used = Set(try kept.compactMap { try indexRow(dir, $0.chunk.id)?.segment })
        #expect(used.isSubset(of: Set(after.keys)))
        for (chunk, raw) in kept { #expect(try await store.readChunk(chunk.id) == raw) }
        await store.close()
    }

    @Test("readers racing a compaction never fail and always get the right bytes")
    func compaction_concurrentReaders_neverFail() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir, options: smallSegments(step: 4 * 1024))
        let all = try await fill(store, 60, seed: 4000)
        let kept = all.enumerated().filter { $0.offset % 3 == 0 }.map(\.element)
        let dropped = all.filter { c in !kept.contains { $0.chunk.id == c.chunk.id } }.map(\.chunk.id)
        #expect(try await store.dropChunks(dropped, referencedBefore: .max).count == dropped.count)
        let race = RaceCounters()
        let result = try await withThrowingTaskGroup(of: CompactionResult?.self) { group in
            for reader in 0..<4 {
                group.addTask {
                    var i = reader
                    for _ in 0..<20_000 {
                        if race.done.load(ordering: .sequentiallyConsistent), i > 2 * kept.count { break }
                        let (chunk, raw) = kept[i % kept.count]
                        do {
                            let ok =
                                reader % 2 == 0
                                ? try await store.readChunk(chunk.id) == raw
                                : try await store.readChunkRecord(chunk.id) == chunk
                            if !ok { race.failures.add(1, ordering: .sequentiallyConsistent) }
                        } catch {
                            race.failures.add(1, ordering: .sequentiallyConsistent)
                        }
                        race.reads.add(1, ordering: .sequentiallyConsistent)
                        i += 1
                    }
                    return nil
                }
            }
            group.addTask {
                defer { race.done.store(true, ordering: .sequentiallyConsistent) }
                return try await store.compactSegments(liveFraction: 0.9, maxSegments: 100)
            }
            var result: CompactionResult?
            for try await r in group where r != nil { result = r }
            return result
        }
        #expect(race.failures.load(ordering: .sequentiallyConsistent) == 0)
        #expect(race.reads.load(ordering: .sequentiallyConsistent) > 0)
        #expect((result?.segmentsCompacted ?? 0) > 3)
        for (chunk, raw) in kept { #expect(try await store.readChunk(chunk.id) == raw) }
        await store.close()
    }

    @Test("a read that looked a chunk up before compaction removed its segment reads it again at the new place")
    func compaction_readAtRemovedSegment_looksUpAgainOnce() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir, options: smallSegments())
        let all = try await fill(store, 20, seed: 4500)
        let (chunk, raw) = all[1]
        let dropped = all.filter { $0.chunk.id != chunk.id }.map(\.chunk.id)
        #expect(try await store.dropChunks(dropped, referencedBefore: .max).count == dropped.count)
        let lookup = { () throws(AgadirError) -> ChunkLocation in
            try store.readers.withConnection { db throws(AgadirError) in try NodeStore.location(of: chunk.id, in: db) }
        }
        let stale = try lookup()
        #expect(try await store.readChunk(chunk.id) == raw, "caches the old segment's descriptor")
        let result = try await store.compactSegments(liveFraction: 0.5, maxSegments: 100)
        #expect(result.segmentsCompacted >= 1)
        let current = try lookup()
        #expect(current.segment != stale.segment)
        #expect(Posix.sizeOfFile(atPath: segmentPath(dir, stale.segment)) == nil, "the old file is gone")
        #expect(throws: AgadirError.self) { try store.readFiles.file(stale.segment) }
        #expect { try ChunkRecordReader.read(chunk.id, at: stale, files: store.readFiles) } throws: {
            ($0 as? AgadirError)?.code == .corruptChunk
        }
        var answers = [current, stale]  // the first lookup answers the place from before the compaction
        var lookups = 0
        let read = try NodeStore.readIndexed(
            lookup: { () throws(AgadirError) -> ChunkLocation in
                lookups += 1
                return answers.popLast() ?? current
            },
            { location throws(AgadirError) in
                try ChunkRecordReader.read(chunk.id, at: location, files: store.readFiles)
            })
        #expect(read == raw && lookups == 2)
        await store.close()
    }

    @Test("compaction arguments are checked; a store with one segment has nothing to compact")
    func compaction_arguments_andNothingToDo() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        _ = try await fill(store, 3, seed: 6000)
        await #expect(throws: AgadirError.self) { try await store.compactSegments(liveFraction: 1.5, maxSegments: 1) }
        await #expect(throws: AgadirError.self) { try await store.compactSegments(liveFraction: .nan, maxSegments: 1) }
        #expect(try await store.compactSegments(liveFraction: 1, maxSegments: 10) == CompactionResult())
        #expect(try await store.segmentUsage().map(\.isActive) == [true])
        await store.close()
    }

    @Test("StoreStats carries quarantinedChunks in JSON, and reads it as 0 from a node that does not send it")
    func storeStats_quarantinedChunks_isOptionalInJSON() throws {
        let stats = StoreStats(chunks: 3, quarantinedChunks: 2)
        let json = try JSONEncoder().encode(stats)
        #expect(try JSONDecoder().decode(StoreStats.self, from: json) == stats)
        var object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(object["quarantinedChunks"] as? Int == 2)
        object["quarantinedChunks"] = nil
        let older = try JSONDecoder().decode(StoreStats.self, from: try JSONSerialization.data(withJSONObject: object))
        #expect(older.quarantinedChunks == 0 && older.chunks == 3)
    }

    // MARK: Schema

    @Test("a version-3 database is migrated to the current version on open, its chunks readable and quarantinable")
    func version3Database_isMigratedToVersion4() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var store = try openStore(dir)
        let raw = randomBytes(4000, seed: 70)
        let chunk = try encode(raw, .raw)
        try await store.putChunk(chunk)
        await store.close()
        try withMetadata(dir) { db in
            try db.execute(
                """
                DROP TABLE quarantine; DROP TABLE retired_segments; DROP INDEX chunks_segment;
                DROP TABLE access_keys; DROP TRIGGER objects_usage_insert; DROP TRIGGER objects_usage_delete;
                DROP TRIGGER objects_usage_update; DROP TABLE bucket_usage;
                ALTER TABLE buckets DROP COLUMN max_bytes; ALTER TABLE buckets DROP COLUMN max_objects;
                ALTER TABLE buckets DROP COLUMN gen_hlc; ALTER TABLE buckets DROP COLUMN gen_node;
                UPDATE schema_version SET version = 3;
                """)
        }
        store = try openStore(dir)
        #expect(try count(dir, "SELECT version FROM schema_version") == MetadataSchema.currentVersion)
        #expect(try count(dir, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'chunks_segment'") == 1)
        #expect(try count(dir, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'access_keys'") == 1)
        #expect(try count(dir, "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'objects_usage_%'") == 3)
        #expect(try await store.readChunk(chunk.id) == raw)
        #expect(try await store.quarantineChunk(chunk.id, reason: "test"))
        #expect(try await store.quarantinedChunkCount() == 1)
        await store.close()
    }
}
