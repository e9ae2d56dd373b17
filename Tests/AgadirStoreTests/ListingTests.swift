import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

@Suite("Listing")
struct ListingTests {
    private func fill(_ store: NodeStore, bucket: String, keys: [String]) async throws {
        try await store.createBucket(bucketInfo(bucket))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for key in keys {
                group.addTask {
                    _ = try await store.putManifest(
                        inlineManifest(bucket: bucket, key: key, body: Array(key.utf8), at: version(1)))
                }
            }
            try await group.waitForAll()
        }
    }

    /// What a complete listing must return, computed the obvious way.
    private func model(
        keys: [String], prefix: String, delimiter: String?
    ) -> (entries: [String], prefixes: [String]) {
        let sorted = Set(keys).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        var entries: [String] = []
        var prefixes: [String] = []
        for key in sorted where key.utf8.starts(with: prefix.utf8) {
            let rest = Array(key.utf8.dropFirst(prefix.utf8.count))
            if let d = delimiter, let end = ObjectListing.firstEnd(of: Array(d.utf8), in: rest, from: 0) {
                let common = prefix + String(decoding: rest[..<end], as: UTF8.self)
                if prefixes.last != common { prefixes.append(common) }
            } else {
                entries.append(key)
            }
        }
        return (entries, prefixes)
    }

    /// Pages through a whole listing, checking per-page invariants.
    private func listAll(
        _ store: NodeStore, bucket: String, prefix: String, delimiter: String?, limit: Int
    ) async throws -> (entries: [String], prefixes: [String], pages: Int) {
        var entries: [String] = []
        var prefixes: [String] = []
        var startAfter: String? = nil
        for page in 1...10_000 {
            let result = try await store.list(
                bucket: bucket, prefix: prefix, delimiter: delimiter, startAfter: startAfter, limit: limit)
            #expect(result.entries.count + result.commonPrefixes.count <= limit)
            entries += result.entries.map(\.key)
            prefixes += result.commonPrefixes
            guard result.isTruncated else {
                #expect(result.nextStartAfter == nil)
                return (entries, prefixes, page)
            }
            #expect(result.entries.count + result.commonPrefixes.count == limit)
            guard let next = result.nextStartAfter else {
                Issue.record("a truncated page has no nextStartAfter")
                break
            }
            startAfter = next
        }
        Issue.record("listing did not end")
        return (entries, prefixes, 0)
    }

    @Test("prefix and delimiter roll keys up into common prefixes, each listed once and sorted")
    func list_prefixAndDelimiter() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        let keys = ["a.txt", "photos/2024/x.jpg", "photos/2024/y.jpg", "photos/2025/z.jpg", "photos/p.jpg", "zz"]
        try await fill(store, bucket: "tree", keys: keys)
        let top = try await store.list(bucket: "tree", prefix: "", delimiter: "/", startAfter: nil, limit: 100)
        #expect(top.entries.map(\.key) == ["a.txt", "zz"])
        #expect(top.commonPrefixes == ["photos/"])
        #expect(!top.isTruncated && top.nextStartAfter == nil)
        let photos = try await store.list(
            bucket: "tree", prefix: "photos/", delimiter: "/", startAfter: nil, limit: 100)
        #expect(photos.entries.map(\.key) == ["photos/p.jpg"])
        #expect(photos.commonPrefixes == ["photos/2024/", "photos/2025/"])
        let flat = try await store.list(
            bucket: "tree", prefix: "photos/2024", delimiter: nil, startAfter: nil, limit: 1)
        #expect(flat.entries.map(\.key) == ["photos/2024/x.jpg"])
        #expect(flat.isTruncated && flat.nextStartAfter == "photos/2024/x.jpg")
        let entry = try #require(top.entries.first)
        #expect(entry.size == 5 && entry.contentType == "text/plain" && entry.version == version(1))
        #expect(entry.etag == ChunkID.of(Array("a.txt".utf8)))
        // start-after a common prefix skips everything under it.
        let after = try await store.list(bucket: "tree", prefix: "", delimiter: "/", startAfter: "photos/", limit: 100)
        #expect(after.entries.map(\.key) == ["zz"] && after.commonPrefixes.isEmpty)
        #expect(
            await agadirError {
                _ = try await store.list(bucket: "tree", prefix: "", delimiter: nil, startAfter: nil, limit: 0)
            }?.code == .invalidArgument)
        await store.close()
    }

    @Test("paging 1000 random unicode keys with limit 7 returns every key exactly once, in byte order")
    func list_pagination_returnsEveryKeyOnce() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        var rng = SplitMix64(seed: 2024)
        let alphabet = ["a", "b", "z", "0", "-", "/", "é", "日", "本", "😀", "ß", "~"]
        var keys = Set<String>()
        for _ in 0..<5000 where keys.count < 1000 {
            let length = Int(rng.next() % 10) + 1
            keys.insert((0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }.joined())
        }
        #expect(keys.count == 1000)
        let all = Array(keys)
        try await fill(store, bucket: "random", keys: all)
        // Hide some keys behind tombstones: they must never appear.
        let hidden = Array(all.prefix(50))
        for key in hidden {
            try await store.putManifest(.tombstone(bucket: "random", key: key, version: version(2)))
        }
        let live = Array(all.dropFirst(50))
        let cases: [(String, String?)] = [("", nil), ("", "/"), ("a", nil), ("a", "/"), ("日", "本"), ("", "😀")]
        for (prefix, delimiter) in cases {
            let expected = model(keys: live, prefix: prefix, delimiter: delimiter)
            let got = try await listAll(store, bucket: "random", prefix: prefix, delimiter: delimiter, limit: 7)
            #expect(got.entries == expected.entries, "prefix '\(prefix)' delimiter '\(delimiter ?? "nil")'")
            #expect(got.prefixes == expected.prefixes, "prefix '\(prefix)' delimiter '\(delimiter ?? "nil")'")
            #expect(Set(got.prefixes).count == got.prefixes.count, "a common prefix came back on two pages")
        }
        await store.close()
    }

    @Test("a rolled-up common prefix counts once against the limit and the next page resumes after it")
    func list_commonPrefix_isSkippedByRange() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        let deep = (0..<300).map { "deep/\($0)" }
        try await fill(store, bucket: "skip", keys: deep + ["a", "z"])
        let page = try await store.list(bucket: "skip", prefix: "", delimiter: "/", startAfter: nil, limit: 2)
        #expect(page.entries.map(\.key) == ["a"])
        #expect(page.commonPrefixes == ["deep/"])
        #expect(page.isTruncated && page.nextStartAfter == "deep/")
        let next = try await store.list(bucket: "skip", prefix: "", delimiter: "/", startAfter: "deep/", limit: 2)
        #expect(next.entries.map(\.key) == ["z"] && next.commonPrefixes.isEmpty && !next.isTruncated)
        await store.close()
    }
}
