import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

@Suite("Replica manifests, replica listings and inventories")
struct ReplicaTests {
    /// A manifest of `bucket/key` at `v`: a tombstone, or chunks that need not be stored here.
    private func replica(_ bucket: String, _ key: String, _ v: ObjectVersion, tombstone: Bool) -> ObjectManifest {
        if tombstone { return .tombstone(bucket: bucket, key: key, version: v) }
        let chunk = ChunkRef(id: ChunkID.of(Array("\(key)@\(v)".utf8)), length: 4096)
        return ObjectManifest(
            bucket: bucket, key: key, size: 4096, etag: ChunkID.of(Array("etag \(key)@\(v)".utf8)),
            contentType: "type/\(v.node)", userMetadata: [], version: v, isTombstone: false, body: .chunks([chunk]))
    }

    @Test("putReplicaManifest: over random version permutations the outcome is LWW at every step and ends with the max")
    func putReplicaManifest_lastWriterWins_overRandomPermutations() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        var rng = SplitMix64(seed: 0xA6AD_1201)
        for trial in 0..<25 {
            let key = "trial-\(trial)"
            var versions = Set<ObjectVersion>()
            // Few timestamps and nodes: ties on the HLC are frequent and broken by the node.
            while versions.count < rng.int(2...7) {
                versions.insert(version(UInt64(rng.int(1...4)), node: UInt64(rng.int(1...3))))
            }
            let manifests = versions.shuffled(using: &rng).map {
                replica("no-such-bucket-row", key, $0, tombstone: rng.next() % 3 == 0)
            }
            var newest: ObjectVersion? = nil
            for m in manifests {
                let outcome = try await store.putReplicaManifest(m)
                if let current = newest, !(m.version > current) {
                    #expect(outcome == .superseded(current: current))
                } else {
                    #expect(outcome == .applied(replaced: newest))
                    newest = m.version
                }
            }
            let winner = try #require(manifests.max { $0.version < $1.version })
            #expect(try await store.manifest(bucket: "no-such-bucket-row", key: key) == winner)
        }
        // The same permutations submitted concurrently (shared group commits) end the same way.
        let manifests = (1...40).map {
            replica("concurrent", "k", version(UInt64($0 % 9), node: UInt64($0)), tombstone: false)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for m in manifests.shuffled(using: &rng) { group.addTask { _ = try await store.putReplicaManifest(m) } }
            try await group.waitForAll()
        }
        #expect(try await store.manifest(bucket: "concurrent", key: "k") == manifests.max { $0.version < $1.version })
        #expect(try await store.bucket("no-such-bucket-row") == nil, "no bucket row is created")
        await store.close()
    }

    @Test("putReplicaManifest never moves chunks.refs: not for its chunks, not for the version it replaces")
    func putReplicaManifest_leavesReferenceCountsAlone() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("mixed"))
        let a = try encode(randomBytes(1000, seed: 1), .raw)
        let b = try encode(randomBytes(3000, seed: 2), .raw)
        try await store.putChunk(a)
        try await store.putChunk(b)
        try await store.putManifest(chunkManifest(bucket: "mixed", key: "x", chunks: [a, a], at: version(1)))
        #expect(try await store.stats().referencedRawBytes == 2000)
        // A replica that replaces a counted manifest, listing held chunks: nothing moves.
        let newer = chunkManifest(bucket: "mixed", key: "x", chunks: [b], at: version(2))
        #expect(try await store.putReplicaManifest(newer) == .applied(replaced: version(1)))
        #expect(try await store.stats().referencedRawBytes == 2000)
        #expect(
            try await store.putReplicaManifest(.tombstone(bucket: "mixed", key: "x", version: version(3)))
                == .applied(replaced: version(2)))
        #expect(
            try await store.putReplicaManifest(chunkManifest(bucket: "mixed", key: "y", chunks: [b], at: version(1)))
                == .applied(replaced: nil))
        #expect(try await store.stats().referencedRawBytes == 2000)
        // Same validation as putManifest.
        #expect(
            await agadirError {
                try await store.putReplicaManifest(inlineManifest(bucket: "mixed", key: "", body: [], at: version(9)))
            }?.code == .invalidKey)
        #expect(
            await agadirError {
                try await store.putReplicaManifest(
                    inlineManifest(bucket: "Bad Name", key: "k", body: [], at: version(9)))
            }?.code == .invalidBucketName)
        await store.close()
    }

    @Test("replicaList pages through a model bucket with tombstones, prefixes and start-after points")
    func replicaList_matchesModel() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        var rng = SplitMix64(seed: 0x11_57)
        let parts = ["a", "a/", "ab", "b/", "b/c", "é", "z", "/", "\u{7e}", "\u{10FFFF}"]
        var model: [String: ObjectManifest] = [:]
        for _ in 0..<400 {
            let key = (0..<rng.int(1...4)).map { _ in parts[rng.int(0...(parts.count - 1))] }.joined()
            let m = replica("listed", key, version(UInt64(rng.int(1...50)), node: 1), tombstone: rng.next() % 4 == 0)
            if let old = model[key], !(m.version > old.version) { continue }
            model[key] = m
            _ = try await store.putReplicaManifest(m)
        }
        try await store.putReplicaManifest(replica("other", "a", version(1), tombstone: false))  // not listed
        #expect(model.values.contains { $0.isTombstone } && model.values.contains { !$0.isTombstone })

        func expected(prefix: String, startAfter: String?) -> [ReplicaListEntry] {
            model.values
                .filter { m in
                    m.key.utf8.starts(with: prefix.utf8) && (startAfter.map { bytesPrecede($0, m.key) } ?? true)
                }
                .sorted { bytesPrecede($0.key, $1.key) }
                .map {
                    ReplicaListEntry(
                        key: $0.key, version: $0.version, isTombstone: $0.isTombstone, size: $0.size, etag: $0.etag,
                        contentType: $0.contentType)
                }
        }
        let keys = model.keys.sorted(by: bytesPrecede)
        for prefix in ["", "a", "a/", "b/c", "é", "\u{10FFFF}", "q", "zz"] {
            for startAfter in [nil, "", "a", "a/a", "b", keys[keys.count / 2], "\u{10FFFF}\u{10FFFF}"] {
                for limit in [1, 7, 10_000] {
                    var listed: [ReplicaListEntry] = []
                    var cursor = startAfter
                    while true {
                        let page = try await store.replicaList(
                            bucket: "listed", prefix: prefix, startAfter: cursor, limit: limit)
                        #expect(page.count <= limit)
                        listed += page
                        guard page.count == limit, let last = page.last else { break }
                        cursor = last.key
                    }
                    #expect(
                        listed == expected(prefix: prefix, startAfter: startAfter), "\(prefix) \(startAfter ?? "-")")
                }
            }
        }
        #expect(try await store.replicaList(bucket: "unknown", prefix: "", startAfter: nil, limit: 5).isEmpty)
        for limit in [0, NodeStore.maxPageSize + 1] {
            #expect(
                await agadirError {
                    _ = try await store.replicaList(bucket: "listed", prefix: "", startAfter: nil, limit: limit)
                }?.code == .invalidArgument)
        }
        await store.close()
    }

    @Test("manifestInventory pages through every manifest of every bucket, tombstones included, in (bucket, key) order")
    func manifestInventory_pagesThroughEverything() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        try await store.createBucket(bucketInfo("standalone"))
        var expected: [(bucket: String, key: String, version: ObjectVersion, isTombstone: Bool)] = []
        for (b, bucket) in ["bucket-b", "bucket-a", "bucket-a.x", "standalone"].enumerated() {
            for k in 0..<(5 + 3 * b) {
                let key = k % 3 == 0 ? "dir/\(k)" : "k\(k)é"
                let m = replica(bucket, key, version(UInt64(k + 1), node: UInt64(b)), tombstone: k % 4 == 1)
                if bucket == "standalone" {
                    try await store.putManifest(
                        m.isTombstone ? m : inlineManifest(bucket: bucket, key: key, body: [1], at: m.version))
                } else {
                    try await store.putReplicaManifest(m)
                }
                expected.append((bucket, key, m.version, m.isTombstone))
            }
        }
        expected.sort { $0.bucket != $1.bucket ? bytesPrecede($0.bucket, $1.bucket) : bytesPrecede($0.key, $1.key) }
        var seen: [(bucket: String, key: String, version: ObjectVersion, isTombstone: Bool)] = []
        var after: (bucket: String, key: String)? = nil
        var pages = 0
        while true {
            let page = try await store.manifestInventory(after: after, limit: 4)
            pages += 1
            seen += page
            guard let last = page.last, page.count == 4 else { break }
            after = (last.bucket, last.key)
        }
        #expect(seen.count == expected.count && pages == expected.count / 4 + 1)
        #expect(seen.map(\.bucket) == expected.map(\.bucket))
        #expect(seen.map(\.key) == expected.map(\.key))
        #expect(seen.map(\.version) == expected.map(\.version))
        #expect(seen.map(\.isTombstone) == expected.map(\.isTombstone))
        #expect(
            await agadirError { _ = try await store.manifestInventory(after: nil, limit: 0) }?.code == .invalidArgument)
        await store.close()
    }

    @Test("chunkInventory pages by id and gives each chunk its distinct sorted buckets, [] when unattributed")
    func chunkInventory_pagesWithBuckets() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        var expected: [ChunkID: (storedBytes: UInt64, buckets: Set<String>)] = [:]
        let buckets = ["zulu", "alpha", "mike"]
        for i in 0..<23 {
            let chunk = try encode(compressibleBytes(500 + 37 * i, seed: UInt64(i)), i % 2 == 0 ? .lz4 : .raw)
            var recorded = Set<String>()
            if i % 5 == 4 {
                try await store.putChunk(chunk)  // no reference: unattributed
            } else {
                for j in 0...(i % 3) {
                    let bucket = buckets[(i + j) % 3]
                    try await store.putChunk(chunk, reference: reference(bucket, "k\(i)", version(UInt64(j + 1))))
                    try await store.putChunk(chunk, reference: reference(bucket, "other\(i)", version(1)))
                    recorded.insert(bucket)
                }
            }
            expected[chunk.id] = (UInt64(chunk.stored.count), recorded)
        }
        var seen: [(id: ChunkID, storedBytes: UInt64, buckets: [String])] = []
        var after: ChunkID? = nil
        while true {
            let page = try await store.chunkInventory(after: after, limit: 5)
            seen += page
            guard let last = page.last, page.count == 5 else { break }
            after = last.id
        }
        #expect(seen.map(\.id) == expected.keys.sorted())
        for entry in seen {
            #expect(entry.storedBytes == expected[entry.id]?.storedBytes)
            #expect(entry.buckets == expected[entry.id]?.buckets.sorted())
        }
        #expect(seen.filter { $0.buckets.isEmpty }.count == 4)
        await store.close()
    }
}
