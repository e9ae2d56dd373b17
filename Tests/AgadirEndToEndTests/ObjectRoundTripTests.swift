import AgadirClient
import AgadirCore
import AgadirWire
import Foundation
import Testing

@Suite("A real agadird process stores and serves objects", .serialized)
struct ObjectRoundTripTests {
    @Test("objects of 0 B, 1 B, 4 KiB, 1 MiB and 200 MiB round-trip with matching SHA-256")
    func objectsOfEverySizeRoundTrip() async throws {
        let node = try NodeProcess()
        defer { node.cleanUp() }
        try node.start()
        let client = try node.client()
        try await client.createBucket("sizes")
        var rng = SplitMix64(seed: 42)
        for size in [0, 1, 4096, 4097, 1 << 20, 200 << 20] {
            let data = rng.bytes(size)
            let key = "object-\(size)"
            let put = try await client.put(bucket: "sizes", key: key, data: data)
            #expect(put.etag == ChunkID.of(data), "ETag of \(size) bytes")
            let (info, back) = try await client.get(bucket: "sizes", key: key)
            #expect(info.size == UInt64(size))
            #expect(back.count == size)
            #expect(ChunkID.of(back) == ChunkID.of(data), "SHA-256 of \(size) bytes read back")
        }
        await client.close()
    }

    @Test("storing the same 64 MiB twice under two keys adds almost no stored bytes")
    func duplicateObjectsAreDeduplicated() async throws {
        let node = try NodeProcess()
        defer { node.cleanUp() }
        try node.start()
        let client = try node.client()
        try await client.createBucket("dedup")
        var rng = SplitMix64(seed: 7)
        let data = rng.bytes(64 << 20)
        try await client.put(bucket: "dedup", key: "first", data: data)
        let after1 = try await client.stat()
        try await client.put(bucket: "dedup", key: "second", data: data)
        let after2 = try await client.stat()
        #expect(after2.storedBytes == after1.storedBytes, "no chunk stored twice")
        #expect(after2.chunks == after1.chunks)
        #expect(after2.logicalBytes == 2 * after1.logicalBytes)
        #expect(after2.dedupRatio > 1.99)
        let (_, back) = try await client.get(bucket: "dedup", key: "second")
        #expect(ChunkID.of(back) == ChunkID.of(data))
        await client.close()
    }

    @Test("a one-byte edit in the middle of a 64 MiB object re-stores at most 2 chunks")
    func oneByteEditRestoresAtMostTwoChunks() async throws {
        let node = try NodeProcess()
        defer { node.cleanUp() }
        try node.start()
        let client = try node.client()
        try await client.createBucket("edits")
        var rng = SplitMix64(seed: 99)
        var data = rng.bytes(64 << 20)
        try await client.put(bucket: "edits", key: "v1", data: data)
        let before = try await client.stat()
        data.insert(0x5A, at: data.count / 2)
        try await client.put(bucket: "edits", key: "v2", data: data)
        let after = try await client.stat()
        #expect(after.chunks - before.chunks <= 2, "new chunks: \(after.chunks - before.chunks)")
        #expect(after.chunks - before.chunks >= 1)
        let (_, back) = try await client.get(bucket: "edits", key: "v2")
        #expect(ChunkID.of(back) == ChunkID.of(data))
        await client.close()
    }

    @Test("byte ranges, HEAD, metadata, DELETE and LIST behave as documented")
    func rangesHeadDeleteAndList() async throws {
        let node = try NodeProcess()
        defer { node.cleanUp() }
        try node.start()
        let client = try node.client()
        try await client.createBucket("misc")
        var rng = SplitMix64(seed: 3)
        let big = rng.bytes(3 << 20 + 12345)
        try await client.put(
            bucket: "misc", key: "dir/big.bin", data: big, contentType: "application/x-test",
            metadata: [MetadataEntry(name: "owner", value: "amina")])
        for (offset, length) in [(0, 1), (1 << 20 - 3, 10), (UInt64(big.count) - 5, 5), (0, UInt64(big.count))]
            as [(UInt64, UInt64)]
        {
            let (info, part) = try await client.get(
                bucket: "misc", key: "dir/big.bin", range: ByteRange(offset: offset, length: length))
            #expect(Array(big[Int(offset)..<Int(offset + length)]) == part)
            #expect(info.range?.offset == offset)
        }
        let tail = try await client.get(bucket: "misc", key: "dir/big.bin", range: ByteRange(offset: 100, length: nil))
            .1
        #expect(tail == Array(big[100...]))
        await #expect(throws: AgadirError.self) {
            _ = try await client.get(
                bucket: "misc", key: "dir/big.bin", range: ByteRange(offset: UInt64(big.count) + 1, length: 1))
        }
        let head = try await client.head(bucket: "misc", key: "dir/big.bin")
        #expect(head.contentType == "application/x-test")
        #expect(head.metadata == [MetadataEntry(name: "owner", value: "amina")])
        #expect(head.size == UInt64(big.count))

        for i in 0..<25 {
            try await client.put(bucket: "misc", key: String(format: "k%03d", i), data: Array("v\(i)".utf8))
        }
        var keys: [String] = []
        var after: String? = nil
        for _ in 0..<20 {
            let page = try await client.list(ListRequest(bucket: "misc", prefix: "k", startAfter: after, limit: 7))
            keys += page.entries.map(\.key)
            guard page.isTruncated else { break }
            after = page.nextStartAfter
        }
        #expect(keys == (0..<25).map { String(format: "k%03d", $0) })
        let folders = try await client.list(ListRequest(bucket: "misc", delimiter: "/"))
        #expect(folders.commonPrefixes == ["dir/"])

        try await client.delete(bucket: "misc", key: "k000")
        do {
            _ = try await client.head(bucket: "misc", key: "k000")
            Issue.record("deleted object still visible")
        } catch {
            #expect(error.code == .noSuchKey)
        }
        do {
            try await client.deleteBucket("misc")
            Issue.record("non-empty bucket deleted")
        } catch {
            #expect(error.code == .bucketNotEmpty)
        }
        do {
            _ = try await client.head(bucket: "nope", key: "x")
            Issue.record("missing bucket answered")
        } catch {
            #expect(error.code == .noSuchBucket)
        }
        await client.close()
    }
}
