import AgadirCore
import AgadirTestSupport
import Testing

@testable import AgadirStore

@Suite("Manifests of a partition, by key-hash range")
struct PartitionReadTests {
    @Test("the partitions' ranges cover every manifest exactly once, in key-hash order, page by page")
    func partitionRanges_coverEveryManifestOnce() async throws {
        let dir = storeTempDirectory()
        defer { dir.cleanup() }
        let store = try openStore(dir)
        var rng = SplitMix64(seed: 31)
        var written: Set<String> = []
        for i in 0..<300 {
            let bucket = ["alpha", "beta", "gamma"][Int(rng.next() % 3)]
            let key = "key-\(i)-\(rng.next() % 1000)"
            let m =
                i % 7 == 0
                ? ObjectManifest.tombstone(bucket: bucket, key: key, version: version(UInt64(i + 1)))
                : inlineManifest(bucket: bucket, key: key, body: [UInt8(i & 0xff)], at: version(UInt64(i + 1)))
            try await store.putReplicaManifest(m)
            written.insert("\(bucket)/\(key)")
        }
        for count in [8, 64] {
            var seen: [String] = []
            for partition in 0..<count {
                let (lo, hi) = KeyHash.range(partition: partition, count: count)
                var after: (keyHash: UInt32, bucket: String, key: String)? = nil
                var previous: UInt32? = nil
                for _ in 0..<100 {
                    let page = try await store.manifests(keyHashes: lo, below: hi, after: after, limit: 7)
                    for (hash, m) in page {
                        #expect(UInt64(hash) >= UInt64(lo) && UInt64(hash) < hi)
                        #expect(hash == KeyHash.of(bucket: m.bucket, key: m.key))
                        if let previous { #expect(hash >= previous) }
                        previous = hash
                        seen.append("\(m.bucket)/\(m.key)")
                    }
                    guard page.count == 7, let last = page.last else { break }
                    after = (last.keyHash, last.manifest.bucket, last.manifest.key)
                }
            }
            #expect(seen.count == written.count && Set(seen) == written, "\(count) partitions")
        }
        // A later version replaces the row and keeps its key hash.
        let any = try #require(written.first?.split(separator: "/", maxSplits: 1).map(String.init))
        try await store.putReplicaManifest(inlineManifest(bucket: any[0], key: any[1], body: [9], at: version(10_000)))
        let all = try await store.manifests(keyHashes: 0, below: 1 << 32, after: nil, limit: 10_000)
        #expect(all.count == written.count)
        #expect(
            all.first { $0.manifest.bucket == any[0] && $0.manifest.key == any[1] }?.manifest.version == version(10_000)
        )
        let refused = await agadirError {
            _ = try await store.manifests(keyHashes: 0, below: 1 << 32, after: nil, limit: 0)
        }
        #expect(refused?.code == .invalidArgument)
        await store.close()
    }
}
