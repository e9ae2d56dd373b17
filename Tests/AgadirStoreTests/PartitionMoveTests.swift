import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

@Suite("Partition moves: chunks of an id range, dropping manifests and chunks")
struct PartitionMoveTests {
    // MARK: Reading a chunk partition

    @Test("id ranges cut anywhere cover every stored chunk exactly once, in id order, page by page")
    func partitionChunks_rangesCoverEveryChunkOnce() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        var rng = SplitMix64(seed: 51)
        var stored: [ChunkID: (bytes: Int, references: Set<ChunkReference>)] = [:]
        for i in 0..<240 {
            let chunk = try encode(rng.bytes(16 + Int(rng.next() % 200)), .raw)
            var references: Set<ChunkReference> = []
            switch i % 3 {
            case 0:
                try await store.putChunk(chunk)  // no reference: unattributed
            case 1:
                let r = reference("alpha", "k\(i)", version(UInt64(i + 1)))
                try await store.putChunk(chunk, reference: r)
                references = [r]
            default:
                let r1 = reference("beta", "k\(i)", version(UInt64(i + 1)))
                let r2 = reference("alpha", "k\(i)", version(UInt64(i + 1), node: 2))
                try await store.putChunk(chunk, reference: r1)
                #expect(try await store.claimChunks([chunk.id], reference: r2) == [true])
                references = [r1, r2]
            }
            stored[chunk.id] = (chunk.stored.count, references)
        }
        let sortedIDs = stored.keys.sorted()
        for cuts in [0, 2, 7, 63] {
            // Cut points: random ones, and some exactly at (and just after) a stored chunk's w0.
            var points: Set<UInt64> = []
            for j in 0..<cuts {
                let atChunk = sortedIDs[Int(rng.next() % UInt64(sortedIDs.count))].w0
                points.insert(j % 2 == 0 ? rng.next() : j % 4 == 1 ? atChunk : atChunk &+ 1)
            }
            points.remove(0)
            let bounds = [UInt64(0)] + points.sorted()
            var seen: [ChunkID] = []
            for (n, lo) in bounds.enumerated() {
                let hi: UInt64? = n + 1 < bounds.count ? bounds[n + 1] : nil
                var after: ChunkID? = nil
                var pages = 0
                while true {
                    let page = try await store.partitionChunks(w0From: lo, below: hi, after: after, limit: 9)
                    pages += 1
                    for chunk in page {
                        #expect(chunk.id.w0 >= lo && (hi.map { chunk.id.w0 < $0 } ?? true))
                        if let after { #expect(chunk.id > after, "strictly after the cursor, in id order") }
                        after = chunk.id
                        seen.append(chunk.id)
                        let expected = try #require(stored[chunk.id])
                        #expect(chunk.storedBytes == UInt64(expected.bytes))
                        #expect(Set(chunk.references) == expected.references)
                        #expect((chunk.newestReferenceMillis > 0) == !expected.references.isEmpty)
                    }
                    if page.count < 9 || pages > 100 { break }
                }
            }
            #expect(seen == sortedIDs, "\(bounds.count) ranges: every chunk once, in id order")
        }
        await store.close()
    }

    @Test("a chunk's references come in (bucket, key, version) order, at most 64, with the newest time of them all")
    func partitionChunks_referencesAreOrderedAndBounded() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        let chunk = try encode(randomBytes(3000, seed: 52), .raw)
        var all: [ChunkReference] = []
        for i in 0..<70 {
            let bucket = i % 2 == 0 ? "zeta" : "eta"
            all.append(reference(bucket, "key-\(69 - i)", version(UInt64(100 + i % 3), node: UInt64(i % 5))))
        }
        try await store.putChunk(chunk, reference: all[0])
        let beforeLast = UInt64(Date().timeIntervalSince1970 * 1000)
        for r in all.dropFirst() { #expect(try await store.claimChunks([chunk.id], reference: r) == [true]) }
        let page = try await store.partitionChunks(w0From: 0, below: nil, after: nil, limit: 10)
        let got = try #require(page.first)
        #expect(page.count == 1 && got.id == chunk.id)
        let expected = all.sorted {
            let a = (Array($0.bucket.utf8), Array($0.key.utf8)), b = (Array($1.bucket.utf8), Array($1.key.utf8))
            if a.0 != b.0 { return a.0.lexicographicallyPrecedes(b.0) }
            if a.1 != b.1 { return a.1.lexicographicallyPrecedes(b.1) }
            return $0.version < $1.version
        }
        #expect(got.references.count == NodeStore.maxReferencesPerChunk)
        #expect(got.references == Array(expected.prefix(NodeStore.maxReferencesPerChunk)))
        #expect(got.newestReferenceMillis >= beforeLast, "the newest of all 70, not of the 64 returned")
        await store.close()
    }

    // MARK: Dropping manifests

    @Test("dropManifests deletes a row only at the given version, and leaves chunks.refs alone")
    func dropManifests_keepsRowsWhoseVersionChanged() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.putReplicaManifest(inlineManifest(bucket: "moved", key: "a", body: [1], at: version(10)))
        try await store.putReplicaManifest(inlineManifest(bucket: "moved", key: "b", body: [2], at: version(10)))
        try await store.putReplicaManifest(.tombstone(bucket: "moved", key: "c", version: version(10)))
        // A newer write of b arrives after the page was listed.
        try await store.putReplicaManifest(inlineManifest(bucket: "moved", key: "b", body: [3], at: version(11)))
        // A standalone manifest counts its chunk in chunks.refs.
        try await store.createBucket(bucketInfo("local"))
        let chunk = try encode(randomBytes(4000, seed: 53), .raw)
        try await store.putChunk(chunk)
        try await store.putManifest(chunkManifest(bucket: "local", key: "x", chunks: [chunk], at: version(10)))
        #expect(try await store.stats().referencedRawBytes == 4000)

        let dropped = try await store.dropManifests([
            ("moved", "a", version(10)), ("moved", "b", version(10)), ("moved", "c", version(10)),
            ("moved", "a", version(10)), ("moved", "nothing", version(10)), ("local", "x", version(10)),
        ])
        #expect(dropped == 3, "a, the tombstone c and x; b is newer; a twice counts once")
        let left = try await store.manifestInventory(after: nil, limit: 100)
        #expect(left.map { "\($0.bucket)/\($0.key)@\($0.version == version(11))" } == ["moved/b@true"])
        let stats = try await store.stats()
        #expect(stats.objects == 1)
        #expect(stats.referencedRawBytes == 4000, "replica semantics: chunks.refs is not touched")
        #expect(try await store.dropManifests([]) == 0)
        await store.close()
    }

    // MARK: Dropping chunks

    @Test("dropChunks drops chunks referenced and stored before the cutoff, keeps recent ones, once each")
    func dropChunks_keepsRecentlyReferencedOrStoredChunks() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        var rng = SplitMix64(seed: 54)
        let old = try encode(rng.bytes(5000), .raw)  // referenced before the cutoff
        let bare = try encode(rng.bytes(700), .raw)  // no reference, stored before the cutoff
        let reclaimed = try encode(rng.bytes(800), .raw)  // stored before, claimed after the cutoff
        let recent = try encode(rng.bytes(900), .raw)  // referenced after the cutoff
        let fresh = try encode(rng.bytes(600), .raw)  // no reference, stored after the cutoff
        try await store.putChunk(old, reference: reference("bkt", "old", version(1)))
        try await store.putChunk(bare)
        try await store.putChunk(reclaimed, reference: reference("bkt", "reclaimed", version(1)))
        try await Task.sleep(for: .milliseconds(20))
        let cutoff = UInt64(Date().timeIntervalSince1970 * 1000)
        try await Task.sleep(for: .milliseconds(20))
        let claim = reference("bkt", "reclaimed", version(2))
        #expect(try await store.claimChunks([reclaimed.id], reference: claim) == [true])
        try await store.putChunk(recent, reference: reference("bkt", "recent", version(1)))
        try await store.putChunk(fresh)
        let before = try await store.stats()
        #expect(before.chunks == 5)

        let missing = ChunkID.of(Array("never stored".utf8))
        let dropped = try await store.dropChunks(
            [old.id, recent.id, bare.id, missing, reclaimed.id, fresh.id, old.id], referencedBefore: cutoff)
        #expect(dropped == [old.id, bare.id])

        for gone in [old.id, bare.id] {
            #expect(await agadirError { _ = try await store.readChunkRecord(gone) }?.code == .noSuchChunk)
            #expect(await agadirError { _ = try await store.readChunk(gone) }?.code == .noSuchChunk)
        }
        #expect(try await store.containsChunks([old.id, bare.id, recent.id]) == [false, false, true])
        let inventory = try await store.chunkInventory(after: nil, limit: 100).map(\.id)
        #expect(Set(inventory) == [reclaimed.id, recent.id, fresh.id])
        let after = try await store.stats()
        #expect(after.chunks == 3)
        #expect(after.storedBytes == before.storedBytes - 5700)
        #expect(after.segmentBytes == before.segmentBytes, "the bytes stay in their segment until compaction")
        #expect(try await store.readChunk(recent.id) == recent.stored)
        // A cutoff later than everything drops the rest; dropping again finds nothing.
        let rest = try await store.dropChunks([reclaimed.id, recent.id, fresh.id], referencedBefore: .max)
        #expect(rest == [reclaimed.id, recent.id, fresh.id])
        #expect(try await store.dropChunks([old.id, recent.id], referencedBefore: .max) == [])
        #expect(try await store.stats().chunks == 0)
        await store.close()
        #expect(try chunkReferenceRows(dir).isEmpty, "the references went with their chunks")
    }

    @Test("a dropped chunk can be stored again, is read back, and both survive a reopen")
    func dropChunks_thenPutChunkAgain_storesAndReadsTheBytes() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let raw = compressibleBytes(30_000, seed: 55)
        let chunk = try encode(raw, .lz4)
        var store = try openStore(dir)
        try await store.putChunk(chunk, reference: reference("bkt", "first", version(1)))
        #expect(try await store.dropChunks([chunk.id], referencedBefore: .max) == [chunk.id])
        #expect(await agadirError { _ = try await store.readChunkRecord(chunk.id) }?.code == .noSuchChunk)
        let second = reference("bkt", "second", version(2))
        #expect(try await store.putChunk(chunk, reference: second) == true, "newly stored, not found held")
        #expect(try await store.readChunk(chunk.id) == raw)
        #expect(try await store.readChunkRecord(chunk.id) == chunk)
        let listed = try await store.partitionChunks(w0From: 0, below: nil, after: nil, limit: 10)
        #expect(listed.map(\.references) == [[second]], "only the reference recorded after the drop")
        // Without a reference too.
        #expect(try await store.dropChunks([chunk.id], referencedBefore: .max) == [chunk.id])
        #expect(try await store.putChunk(chunk) == true)
        await store.close()

        store = try openStore(dir)
        #expect(try await store.readChunk(chunk.id) == raw)
        let stats = try await store.stats()
        #expect(stats.chunks == 1 && stats.storedBytes == UInt64(chunk.stored.count))
        #expect(stats.segmentBytes > 3 * UInt64(chunk.stored.count), "three records, two of them dead space")
        await store.close()
    }

    @Test("dropChunks keeps a chunk a standalone manifest counts and a chunk a pending hint names")
    func dropChunks_keepsChunksOfStandaloneManifestsAndPendingHints() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("local"))
        let counted = try encode(randomBytes(1000, seed: 56), .raw)
        try await store.putChunk(counted)
        try await store.putManifest(chunkManifest(bucket: "local", key: "x", chunks: [counted], at: version(1)))
        let hinted = try encode(randomBytes(1100, seed: 57), .raw)
        let r = reference("photos", "cat", version(1))
        try await store.putChunk(hinted, reference: r)
        let hint = try await store.putHint(
            target: "node-b", bucket: "photos", payload: .chunk(hinted.id, r), createdMillis: 1)

        #expect(try await store.dropChunks([counted.id, hinted.id], referencedBefore: .max) == [])
        #expect(try await store.readChunk(counted.id) == counted.stored)
        #expect(try await store.readChunkRecord(hinted.id) == hinted)
        // Once the hint is delivered and the manifest replaced, both may go.
        try await store.deleteHints([hint])
        try await store.putManifest(.tombstone(bucket: "local", key: "x", version: version(2)))
        let dropped = try await store.dropChunks([counted.id, hinted.id], referencedBefore: .max)
        #expect(dropped == [counted.id, hinted.id])
        await store.close()
    }

    @Test("a chunk written in the same group commit as a drop of it is kept: that write was answered 'held'")
    func dropChunks_sameBatchAsAPutOfTheChunk_keepsIt() throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        try FileManager.default.createDirectory(atPath: dir.path + "/chunks", withIntermediateDirectories: true)
        let db = try SQLiteDatabase(path: dir.path + "/meta.sqlite", readOnly: false)
        _ = try MetadataSchema.prepareWriter(db)
        let writer = GroupCommitWriter(
            db: db, chunksDirectory: dir.path + "/chunks", options: StoreOptions(), logger: quietLogger,
            readFiles: SegmentReadFiles(chunksDirectory: dir.path + "/chunks"), active: nil, nextSegmentNumber: 1)
        defer {
            // Closes the segment and the database.
            let queue = WriteQueue()
            queue.requestStop(waiter: nil)
            writer.run(queue: queue)
        }
        let chunk = try encode(randomBytes(2000, seed: 58), .raw)
        let first = writer.commit([.putChunk(chunk, .durable)])
        guard case .success(.chunk(stored: true)) = first.first else { Issue.record("first put: \(first)"); return }

        let batch = writer.commit([.dropChunks([chunk.id], referencedBefore: .max), .putChunk(chunk, .durable)])
        guard batch.count == 2, case .success(.droppedChunks(let dropped)) = batch[0],
            case .success(.chunk(stored: let stored)) = batch[1]
        else {
            Issue.record("same batch: \(batch)")
            return
        }
        #expect(dropped == [] && stored == false)
        let later = writer.commit([.dropChunks([chunk.id], referencedBefore: .max)])
        guard case .success(.droppedChunks(let droppedLater)) = later.first else { Issue.record("\(later)"); return }
        #expect(droppedLater == [chunk.id], "in a batch of its own the drop goes ahead")
    }

    // MARK: Bounds

    @Test("limits, reversed ranges and oversized drops are refused; empty ones are answered without a write")
    func partitionMoveAPIs_refuseOutOfBoundsArguments() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        let chunk = try encode(randomBytes(100, seed: 59), .raw)
        try await store.putChunk(chunk)
        for limit in [0, -1, NodeStore.maxPageSize + 1] {
            let error = await agadirError {
                _ = try await store.partitionChunks(w0From: 0, below: nil, after: nil, limit: limit)
            }
            #expect(error?.code == .invalidArgument, "limit \(limit)")
        }
        #expect(
            await agadirError { _ = try await store.partitionChunks(w0From: 10, below: 9, after: nil, limit: 1) }?.code
                == .invalidArgument)
        #expect(try await store.partitionChunks(w0From: chunk.id.w0, below: chunk.id.w0, after: nil, limit: 5).isEmpty)
        let all = try await store.partitionChunks(w0From: 0, below: nil, after: nil, limit: NodeStore.maxPageSize)
        #expect(all.count == 1)
        #expect(try await store.partitionChunks(w0From: 0, below: nil, after: chunk.id, limit: 5).isEmpty)
        let w0 = chunk.id.w0
        let just = try await store.partitionChunks(w0From: w0, below: w0 < .max ? w0 + 1 : nil, after: nil, limit: 5)
        #expect(just.map(\.id) == [chunk.id], "lo is inclusive, hi exclusive")
        if w0 < .max {
            #expect(try await store.partitionChunks(w0From: w0 + 1, below: nil, after: nil, limit: 5).isEmpty)
            #expect(try await store.partitionChunks(w0From: 0, below: w0, after: nil, limit: 5).isEmpty)
        }

        let manyManifests = (0...NodeStore.maxPageSize).map { (bucket: "b", key: "k\($0)", version: version(1)) }
        #expect(await agadirError { _ = try await store.dropManifests(manyManifests) }?.code == .invalidArgument)
        let manyIDs = [ChunkID](repeating: chunk.id, count: NodeStore.maxPageSize + 1)
        let refused = await agadirError { _ = try await store.dropChunks(manyIDs, referencedBefore: .max) }
        #expect(refused?.code == .invalidArgument)
        let commits = store.writerCounters.commitCount
        #expect(try await store.dropChunks([], referencedBefore: .max) == [])
        #expect(try await store.dropManifests([]) == 0)
        #expect(store.writerCounters.commitCount == commits, "nothing to drop, nothing written")
        #expect(try await store.containsChunks([chunk.id]) == [true], "the refused drop dropped nothing")
        await store.close()
    }
}
