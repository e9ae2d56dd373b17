import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

@Suite("Schema versions 2 and 3: migration from version 1, and damaged rows")
struct SchemaMigrationTests {
    /// The statements of schema version 1, as the first release wrote them (kept here verbatim,
    /// independent of `MetadataSchema`).
    private static let version1Statements = """
        CREATE TABLE schema_version(version INTEGER NOT NULL);
        CREATE TABLE chunks(
            id BLOB PRIMARY KEY, segment INTEGER NOT NULL, "offset" INTEGER NOT NULL,
            stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL, codec INTEGER NOT NULL,
            crc INTEGER NOT NULL, refs INTEGER NOT NULL, created_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE buckets(name TEXT PRIMARY KEY, policy TEXT NOT NULL, created_ms INTEGER NOT NULL);
        CREATE TABLE objects(
            bucket TEXT NOT NULL, key BLOB NOT NULL, version_hlc INTEGER NOT NULL,
            version_node INTEGER NOT NULL, tombstone INTEGER NOT NULL, size INTEGER NOT NULL,
            manifest BLOB NOT NULL, etag BLOB NOT NULL, content_type TEXT NOT NULL,
            inline_size INTEGER NOT NULL,
            PRIMARY KEY(bucket, key)
        ) WITHOUT ROWID;
        CREATE TABLE segments(number INTEGER PRIMARY KEY, committed_len INTEGER NOT NULL);
        CREATE INDEX objects_live ON objects(bucket, key) WHERE tombstone = 0;
        INSERT INTO schema_version(version) VALUES (1);
        """

    private struct Version1Data {
        var chunk: EncodedChunk
        var raw: [UInt8]
        var chunked: ObjectManifest
        var small: ObjectManifest
        var gone: ObjectManifest
    }

    /// A data directory as a version-1 node left it: one segment with one chunk, a bucket, a
    /// chunked object referencing it, an inline object and a tombstone.
    private func makeVersion1Directory(_ dir: TempDirectory, extraStatements: String = "") throws -> Version1Data {
        try FileManager.default.createDirectory(atPath: dir.path + "/chunks", withIntermediateDirectories: true)
        let raw = compressibleBytes(30_000, seed: 42)
        let chunk = try encode(raw, .lz4)
        let record = SegmentFormat.record(chunk)
        let segment = SegmentFormat.fileHeader(segment: 1) + record
        #expect(FileManager.default.createFile(atPath: segmentPath(dir, 1), contents: Data(segment)))
        let data = Version1Data(
            chunk: chunk, raw: raw,
            chunked: chunkManifest(bucket: "legacy", key: "dir/big", chunks: [chunk], at: version(5)),
            small: inlineManifest(bucket: "legacy", key: "small", body: [1, 2, 3], at: version(6)),
            gone: .tombstone(bucket: "legacy", key: "gone", version: version(7)))
        try withMetadata(dir) { db in
            _ = try db.firstRow("PRAGMA journal_mode=WAL") { $0.text(0) }
            try db.execute(Self.version1Statements + extraStatements)
            try db.run(
                "INSERT INTO buckets(name, policy, created_ms) VALUES ('legacy', 'default', 1700000000000)")
            try db.run(
                """
                INSERT INTO chunks(id, segment, "offset", stored_len, raw_len, codec, crc, refs, created_ms)
                VALUES (?, 1, 32, ?, ?, ?, ?, 1, 1700000000000)
                """,
                [
                    .blob(chunk.id.bytes), .int(Int64(chunk.stored.count)), .int(Int64(chunk.rawLength)),
                    .int(Int64(chunk.codec.rawValue)), .int(Int64(chunk.checksum)),
                ])
            try db.run("INSERT INTO segments(number, committed_len) VALUES (1, ?)", [.int(Int64(segment.count))])
            for m in [data.chunked, data.small, data.gone] {
                let inline: Int64
                if case .inline(let body) = m.body { inline = Int64(body.count) } else { inline = 0 }
                try db.run(
                    """
                    INSERT INTO objects(bucket, key, version_hlc, version_node, tombstone, size, manifest, etag,
                    content_type, inline_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [
                        .text(m.bucket), .blob(Array(m.key.utf8)), .int(Int64(m.version.timestamp.rawValue)),
                        .int(Int64(m.version.node)), .int(m.isTombstone ? 1 : 0), .int(Int64(m.size)),
                        .blob(ManifestCodec.encode(m)), .blob(m.etag.bytes), .text(m.contentType), .int(inline),
                    ])
            }
        }
        return data
    }

    private func schemaVersions(_ dir: TempDirectory) throws -> [Int64] {
        try withMetadata(dir) { db in
            var versions: [Int64] = []
            try db.forEachRow("SELECT version FROM schema_version") { row in
                versions.append(row.int64(0))
                return true
            }
            return versions
        }
    }

    @Test("a version-1 database is migrated on open: old data stays readable, the store writable, all of it durable")
    func version1Database_isMigratedInPlace() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let old = try makeVersion1Directory(dir)
        #expect(try schemaVersions(dir) == [1])

        var store = try openStore(dir)
        #expect(
            try await store.bucket("legacy")
                == BucketInfo(name: "legacy", policy: "default", createdMillis: 1_700_000_000_000))
        #expect(
            try await store.bucketCatalog() == [
                BucketRecord(
                    name: "legacy", policy: "default", createdMillis: 1_700_000_000_000, version: .zero, deleted: false)
            ])
        #expect(try await store.manifest(bucket: "legacy", key: "dir/big") == old.chunked)
        #expect(try await store.manifest(bucket: "legacy", key: "gone") == old.gone)
        #expect(try await store.readChunk(old.chunk.id) == old.raw)
        #expect(try await store.readChunkRecord(old.chunk.id) == old.chunk)
        let page = try await store.list(bucket: "legacy", prefix: "", delimiter: "/", startAfter: nil, limit: 10)
        #expect(page.entries.map(\.key) == ["small"] && page.commonPrefixes == ["dir/"])
        #expect(
            try await store.replicaList(bucket: "legacy", prefix: "", startAfter: nil, limit: 10).map(\.key)
                == ["dir/big", "gone", "small"])
        let stats = try await store.stats()
        #expect(stats.buckets == 1 && stats.objects == 2 && stats.referencedRawBytes == 30_000)
        // Version 6: the usage table was filled from the live objects (the tombstone not counted).
        #expect(try await store.bucketUsage("legacy") == BucketUsage(objects: 2, bytes: old.chunked.size + 3))
        #expect(try await store.chunkInventory(after: nil, limit: 10).map(\.buckets) == [[]], "v1 chunks: unattributed")
        // Version 3: the key hashes of the old rows were filled in by the migration.
        let byHash = try await store.manifests(keyHashes: 0, below: 1 << 32, after: nil, limit: 10)
        #expect(Set(byHash.map(\.manifest.key)) == ["dir/big", "gone", "small"])
        #expect(byHash.allSatisfy { $0.keyHash == KeyHash.of(bucket: $0.manifest.bucket, key: $0.manifest.key) })
        #expect(byHash.map(\.keyHash) == byHash.map(\.keyHash).sorted())

        // Writable: every kind of write, old and new.
        let fresh = try encode(randomBytes(2000, seed: 8), .raw)
        try await store.putChunk(fresh, reference: reference("legacy", "new", version(8)))
        #expect(
            try await store.claimChunks([old.chunk.id], reference: reference("legacy", "dir/big", version(5))) == [true]
        )
        try await store.putManifest(
            chunkManifest(bucket: "legacy", key: "new", chunks: [fresh, old.chunk], at: version(8)))
        try await store.createBucket(bucketInfo("second"))
        #expect(
            try await store.mergeBucketRecord(
                BucketRecord(name: "third", policy: "p", createdMillis: 5, version: version(9), deleted: false)) == true
        )
        let hint = try await store.putHint(
            target: "node-2", bucket: "legacy", payload: .chunk(fresh.id, reference("legacy", "new", version(8))),
            createdMillis: 1)
        await store.close()
        #expect(try schemaVersions(dir) == [MetadataSchema.currentVersion])

        store = try openStore(dir)
        #expect(try await store.stats().referencedRawBytes == 2 * 30_000 + 2000)
        #expect(try await store.listBuckets().map(\.name) == ["legacy", "second", "third"])
        #expect(try await store.manifest(bucket: "legacy", key: "new")?.chunkRefs.count == 2)
        #expect(try await store.hints(for: "node-2", limit: 5).map(\.id) == [hint])
        let inventory = try await store.chunkInventory(after: nil, limit: 10)
        #expect(inventory.allSatisfy { $0.buckets == ["legacy"] } && inventory.count == 2)
        #expect(try await store.readChunk(old.chunk.id) == old.raw)
        #expect(try await store.manifests(keyHashes: 0, below: 1 << 32, after: nil, limit: 10).count == 4)
        await store.close()
        #expect(try schemaVersions(dir) == [MetadataSchema.currentVersion])
    }

    @Test("a migration that fails leaves the version-1 database exactly as it was")
    func failedMigration_changesNothing() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        // A table in the way makes the migration's CREATE TABLE fail half-way.
        _ = try makeVersion1Directory(dir, extraStatements: "CREATE TABLE hints(x INTEGER);")
        let error = await agadirError { _ = try openStore(dir) }
        #expect(error?.code == .ioError && error?.message.contains("hints") == true)
        #expect(try schemaVersions(dir) == [1])
        let columns = try withMetadata(dir) { db in
            var names: [String] = []
            try db.forEachRow("SELECT name FROM pragma_table_info('buckets')") { row in
                names.append(row.text(0))
                return true
            }
            return names
        }
        #expect(columns == ["name", "policy", "created_ms"], "the ALTER TABLEs were rolled back")
    }

    @Test("damaged rows are corruptData naming the table and the row, never a crash")
    func damagedRows_areCorruptData() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        var store = try openStore(dir)
        let chunk = try encode(randomBytes(100, seed: 1), .raw)
        try await store.putChunk(chunk, reference: reference("bucket-a", "k", version(1)))
        try await store.putReplicaManifest(inlineManifest(bucket: "bucket-a", key: "k", body: [1], at: version(1)))
        #expect(
            try await store.mergeBucketRecord(
                BucketRecord(name: "bucket-a", policy: "p", createdMillis: 1, version: version(1), deleted: false)))
        let hint = try await store.putHint(
            target: "n", bucket: "bucket-a", payload: .chunk(chunk.id, reference("bucket-a", "k", version(1))),
            createdMillis: 1)
        await store.close()

        func expectCorrupt(_ what: String, _ read: () async throws -> Void) async {
            let error = await agadirError(read)
            #expect(error?.code == .corruptData, "\(what): \(String(describing: error))")
            #expect(error?.message.contains(what) == true, "\(what): \(String(describing: error))")
        }
        try withMetadata(dir) { db in
            try db.run("UPDATE objects SET tombstone = 7")
            try db.run("UPDATE buckets SET deleted = 2")
            try db.run("UPDATE hints SET reference = x'01'")
            try db.run("UPDATE chunk_refs SET bucket = CAST(x'ff' AS TEXT)")
        }
        store = try openStore(dir)
        await expectCorrupt("table objects, row 'bucket-a/k'") {
            _ = try await store.replicaList(bucket: "bucket-a", prefix: "", startAfter: nil, limit: 5)
        }
        await expectCorrupt("table objects, row 'bucket-a/k'") {
            _ = try await store.manifestInventory(after: nil, limit: 5)
        }
        await expectCorrupt("table buckets, row 'bucket-a'") { _ = try await store.bucketCatalog() }
        await expectCorrupt("table hints, row id \(hint)") { _ = try await store.hints(for: "n", limit: 5) }
        await expectCorrupt("table chunk_refs") { _ = try await store.chunkInventory(after: nil, limit: 5) }
        await store.close()

        try withMetadata(dir) { db in
            try db.run("UPDATE objects SET tombstone = 0, etag = x'00'")
            try db.run("UPDATE hints SET kind = 9")
            try db.run("UPDATE chunks SET stored_len = -5")
        }
        store = try openStore(dir)
        await expectCorrupt("etag") {
            _ = try await store.replicaList(bucket: "bucket-a", prefix: "", startAfter: nil, limit: 5)
        }
        await expectCorrupt("kind 9") { _ = try await store.hints(for: "n", limit: 5) }
        await expectCorrupt("table chunks, row \(chunk.id.hex)") {
            _ = try await store.chunkInventory(after: nil, limit: 5)
        }
        await store.close()
    }
}
