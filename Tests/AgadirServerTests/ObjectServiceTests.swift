import AgadirCore
import AgadirServer
import AgadirStore
import AgadirTransport
import AgadirWire
import Foundation
import NIOCore
import Testing

@Suite("Object service, driven directly")
struct ObjectServiceTests {
    // MARK: PUT and GET

    @Test("a PUT of at most 4096 bytes is stored inline and a GET returns it in the RESPONSE payload")
    func put_small_isInline_andGetReturnsItInOneFrame() async throws {
        let h = try ServiceHarness()
        try await h.createBucket("photos")
        let body = Array("hello, agadir".utf8) + randomBytes(4096 - 13, seed: 1)
        let written = try await h.put("photos", "a.txt", body)
        #expect(written.size == 4096)
        #expect(written.etag == ChunkID.of(body))

        let manifest = try #require(try await h.store.manifest(bucket: "photos", key: "a.txt"))
        #expect(manifest.body == .inline(body))

        let frames = await h.exchange(.get(bucket: "photos", key: "a.txt", range: nil))
        let got = try ReassembledResponse(frames)
        #expect(got.head.header.status == 0)
        #expect(got.dataFrames == 0)
        #expect(got.body == body)
        let info = try ObjectInfo(fields: got.head.fields)
        #expect(info.size == 4096 && info.etag == written.etag && info.version == written.version)
        await h.close()
    }

    @Test("a 3 MiB PUT is chunked, and a GET streams exactly its bytes in DATA frames with END_STREAM on the last")
    func put_large_isChunked_andGetReassemblesExactBytes() async throws {
        let h = try ServiceHarness()
        try await h.createBucket("big")
        let body = randomBytes(3 << 20, seed: 2)
        let written = try await h.put("big", "blob", body)
        #expect(written.etag == ChunkID.of(body))

        let manifest = try #require(try await h.store.manifest(bucket: "big", key: "blob"))
        #expect(manifest.chunkRefs.count > 3, "chunks: \(manifest.chunkRefs.count)")
        #expect(manifest.chunkRefs.allSatisfy { $0.length <= 256 * 1024 })

        let got = try ReassembledResponse(await h.exchange(.get(bucket: "big", key: "blob", range: nil)))
        #expect(got.head.payload.readableBytes == 0)
        #expect(got.dataFrames >= (3 << 20) / h.config.dataFrameBytes)
        #expect(got.body.count == body.count)
        #expect(got.body == body)
        #expect(try ObjectInfo(fields: got.head.fields).range == nil)
        await h.close()
    }

    @Test(
        "a ranged GET returns exactly the asked bytes, clamped to the end, and echoes the resolved RANGE",
        arguments: [
            (0, 1), (1, 100), (65_535, 200_000), (1_000_000, 1_048_576), ((3 << 20) - 10, 1_000), (3 << 20, 5),
        ] as [(Int, Int)])
    func get_range_returnsExactSlice(offset: Int, length: Int) async throws {
        let h = try ServiceHarness()
        try await h.createBucket("big")
        let body = randomBytes(3 << 20, seed: 3)
        _ = try await h.put("big", "blob", body)

        let range = ByteRange(offset: UInt64(offset), length: UInt64(length))
        let got = try ReassembledResponse(await h.exchange(.get(bucket: "big", key: "blob", range: range)))
        let end = min(offset + length, body.count)
        #expect(got.body == Array(body[offset..<end]))
        let info = try ObjectInfo(fields: got.head.fields)
        #expect(info.size == UInt64(body.count))
        #expect(info.range == ByteRange(offset: UInt64(offset), length: UInt64(end - offset)))
        await h.close()
    }

    @Test("a ranged GET of an inline object slices it; a range past the end is RANGE_NOT_SATISFIABLE")
    func get_rangeOfInlineObject() async throws {
        let h = try ServiceHarness()
        try await h.createBucket("small")
        let body = Array("0123456789".utf8)
        _ = try await h.put("small", "digits", body)

        let got = try ReassembledResponse(
            await h.exchange(.get(bucket: "small", key: "digits", range: ByteRange(offset: 3, length: nil))))
        #expect(got.body == Array("3456789".utf8))

        let past = await h.exchange(.get(bucket: "small", key: "digits", range: ByteRange(offset: 11, length: 1)))
        #expect(past.count == 1)
        #expect(past.first?.error?.code == .rangeNotSatisfiable)
        #expect(past.first?.isEndStream == true)
        await h.close()
    }

    @Test("HEAD answers the object's fields in one END_STREAM frame without a body")
    func head_returnsFieldsOnly() async throws {
        let h = try ServiceHarness()
        try await h.createBucket("docs")
        let body = randomBytes(70_000, seed: 4)
        let put = PutRequest(
            bucket: "docs", key: "report.pdf", size: UInt64(body.count), contentType: "application/pdf",
            metadata: [MetadataEntry(name: "owner", value: "amina"), MetadataEntry(name: "dept", value: "ops")])
        let putFrames = await h.exchange(.put(put), body: body)
        let written = try WriteResult(fields: try #require(putFrames.first).fields)

        let frames = await h.exchange(.head(bucket: "docs", key: "report.pdf"))
        #expect(frames.count == 1)
        let head = try #require(frames.first)
        #expect(head.header.status == 0 && head.isEndStream && head.payload.readableBytes == 0)
        #expect(head.header.opcode == Opcode.head.rawValue)
        let info = try ObjectInfo(fields: head.fields)
        #expect(info.bucket == "docs" && info.key == "report.pdf")
        #expect(info.size == 70_000)
        #expect(info.etag == ChunkID.of(body))
        #expect(info.version == written.version)
        #expect(info.contentType == "application/pdf")
        #expect(
            info.metadata == [MetadataEntry(name: "dept", value: "ops"), MetadataEntry(name: "owner", value: "amina")])
        #expect(info.range == nil)
        await h.close()
    }

    // MARK: DELETE

    @Test("after DELETE, GET and HEAD answer NO_SUCH_KEY and a second DELETE does too")
    func delete_thenGet_isNoSuchKey() async throws {
        let h = try ServiceHarness()
        try await h.createBucket("tmp")
        let written = try await h.put("tmp", "gone", Array("bye".utf8))

        let deleted = await h.exchange(.delete(bucket: "tmp", key: "gone"))
        #expect(deleted.count == 1)
        let marker = try WriteResult(fields: try #require(deleted.first).fields)
        #expect(marker.size == 0)
        #expect(marker.version > written.version)

        for request in [
            Request.get(bucket: "tmp", key: "gone", range: nil), .head(bucket: "tmp", key: "gone"),
            .delete(bucket: "tmp", key: "gone"),
        ] {
            let frames = await h.exchange(request)
            #expect(frames.count == 1)
            let frame = try #require(frames.first)
            #expect(frame.header.kind == .response && frame.isEndStream)
            #expect(frame.header.opcode == request.opcode.rawValue)
            #expect(frame.error?.code == .noSuchKey, "\(request.opcode): \(String(describing: frame.error))")
            #expect(frame.error?.message.contains("tmp/gone") == true)
        }
        await h.close()
    }

    // MARK: Failed PUTs leave no trace

    @Test(
        "a PUT body shorter or longer than SIZE fails with BODY_LENGTH_MISMATCH and the old version stays readable",
        arguments: [(10, 9), (10, 11), (100_000, 99_999), (100_000, 100_001), (3_000, 5_000), (200_000, 0)]
            as [(Int, Int)])
    func put_wrongLength_isRefused_andOldVersionStays(announced: Int, sent: Int) async throws {
        let h = try ServiceHarness()
        try await h.createBucket("bkt-one")
        let old = randomBytes(5_000, seed: 5)
        let oldWrite = try await h.put("bkt-one", "k", old)

        let frames = await h.exchange(
            .put(PutRequest(bucket: "bkt-one", key: "k", size: UInt64(announced))), body: randomBytes(sent, seed: 6))
        #expect(frames.count == 1)
        #expect(frames.first?.error?.code == .bodyLengthMismatch, "\(String(describing: frames.first?.error))")

        let got = try ReassembledResponse(await h.exchange(.get(bucket: "bkt-one", key: "k", range: nil)))
        #expect(got.body == old)
        #expect(try ObjectInfo(fields: got.head.fields).version == oldWrite.version)
        await h.close()
    }

    @Test(
        "a PUT whose body does not hash to CONTENT_SHA256 fails with CHECKSUM_MISMATCH and stores nothing visible",
        arguments: [100, 500_000])
    func put_wrongChecksum_isRefused_andNothingVisible(size: Int) async throws {
        let h = try ServiceHarness()
        try await h.createBucket("bkt-two")
        let body = randomBytes(size, seed: 7)
        let wrong = ChunkID.of(body + [0])
        do {
            _ = try await h.put("bkt-two", "k", body, sha: wrong)
            Issue.record("PUT with a wrong CONTENT_SHA256 succeeded")
        } catch let error as AgadirError {
            #expect(error.code == .checksumMismatch)
        }
        #expect(try await h.store.manifest(bucket: "bkt-two", key: "k") == nil)
        let head = await h.exchange(.head(bucket: "bkt-two", key: "k"))
        #expect(head.first?.error?.code == .noSuchKey)
        let list = try ReassembledResponse(await h.exchange(.list(ListRequest(bucket: "bkt-two"))))
        #expect(try ListPage.decode(list.body).entries.isEmpty)

        // The right checksum is accepted.
        let written = try await h.put("bkt-two", "k", body, sha: ChunkID.of(body))
        #expect(written.etag == ChunkID.of(body))
        await h.close()
    }

    @Test("a PUT to a bucket that does not exist fails with NO_SUCH_BUCKET, even with a large body")
    func put_missingBucket_isNoSuchBucket() async throws {
        let h = try ServiceHarness()
        for size in [10, 2 << 20] {
            let frames = await h.exchange(
                .put(PutRequest(bucket: "nowhere", key: "k", size: UInt64(size))), body: randomBytes(size, seed: 8))
            #expect(frames.count == 1)
            #expect(frames.first?.error?.code == .noSuchBucket)
            #expect(frames.first?.error?.message.contains("nowhere") == true)
        }
        await h.close()
    }

    @Test("versions returned by successive PUTs and DELETEs of one key strictly increase")
    func versions_strictlyIncrease() async throws {
        let h = try ServiceHarness()
        try await h.createBucket("ver")
        var versions: [ObjectVersion] = []
        for i in 0..<20 {
            versions.append(try await h.put("ver", "k", Array("v\(i)".utf8)).version)
        }
        let deleted = await h.exchange(.delete(bucket: "ver", key: "k"))
        versions.append(try WriteResult(fields: try #require(deleted.first).fields).version)
        versions.append(try await h.put("ver", "k", [1]).version)
        for (a, b) in zip(versions, versions.dropFirst()) { #expect(a < b, "\(a) then \(b)") }
        #expect(Set(versions.map(\.node)).count == 1)
        await h.close()
    }

    // MARK: Buckets, LIST, STAT

    @Test("CREATE_BUCKET with an unknown policy is refused with INVALID_ARGUMENT and creates nothing")
    func createBucket_unknownPolicy_isRefused() async throws {
        let h = try ServiceHarness()
        let frames = await h.exchange(.createBucket(name: "geo", policy: "three-sites"))
        #expect(frames.count == 1)
        #expect(frames.first?.error?.code == .invalidArgument)
        #expect(frames.first?.error?.message.contains("three-sites") == true)
        #expect(try await h.store.bucket("geo") == nil)

        let explicit = await h.exchange(.createBucket(name: "geo", policy: "default"))
        #expect(explicit.first?.header.status == 0)
        let again = await h.exchange(.createBucket(name: "geo", policy: nil))
        #expect(again.first?.error?.code == .bucketAlreadyExists)
        await h.close()
    }

    @Test("LIST_BUCKETS body decodes to the created buckets with their policy")
    func listBuckets_decodes() async throws {
        let h = try ServiceHarness()
        try await h.createBucket("beta")
        try await h.createBucket("alpha")
        let got = try ReassembledResponse(await h.exchange(.listBuckets))
        let buckets = try BucketListCodec.decode(got.body)
        #expect(buckets.map(\.name).sorted() == ["alpha", "beta"])
        #expect(buckets.allSatisfy { $0.policy == "default" })
        await h.close()
    }

    @Test("LIST body decodes with ListPage.decode: keys in byte order, common prefixes, truncation")
    func list_bodyDecodes() async throws {
        let h = try ServiceHarness()
        try await h.createBucket("lst")
        for key in ["b.txt", "a/1", "a/2", "c.txt", "a.txt"] {
            _ = try await h.put("lst", key, Array(key.utf8))
        }

        let all = try ReassembledResponse(await h.exchange(.list(ListRequest(bucket: "lst"))))
        let page = try ListPage.decode(all.body)
        #expect(page.entries.map(\.key) == ["a.txt", "a/1", "a/2", "b.txt", "c.txt"])
        #expect(page.entries.first?.size == 5)
        #expect(page.entries.first?.etag == ChunkID.of(Array("a.txt".utf8)))
        #expect(page.isTruncated == false)

        let rolled = try ReassembledResponse(
            await h.exchange(.list(ListRequest(bucket: "lst", delimiter: "/", limit: 2))))
        let first = try ListPage.decode(rolled.body)
        #expect(first.entries.map(\.key) == ["a.txt"])
        #expect(first.commonPrefixes == ["a/"])
        #expect(first.isTruncated)
        let next = try #require(first.nextStartAfter)

        let rest = try ReassembledResponse(
            await h.exchange(.list(ListRequest(bucket: "lst", delimiter: "/", startAfter: next, limit: 2))))
        let second = try ListPage.decode(rest.body)
        #expect(second.entries.map(\.key) == ["b.txt", "c.txt"])
        #expect(second.commonPrefixes.isEmpty)

        let missing = await h.exchange(.list(ListRequest(bucket: "nope")))
        #expect(missing.first?.error?.code == .noSuchBucket)
        await h.close()
    }

    @Test("STAT body is a JSON object with every documented key, counting live objects")
    func stat_isDocumentedJSON() async throws {
        let h = try ServiceHarness()
        try await h.createBucket("stats")
        _ = try await h.put("stats", "small", Array("tiny".utf8))
        _ = try await h.put("stats", "large", randomBytes(300_000, seed: 9))
        _ = try await h.put("stats", "deleted", Array("x".utf8))
        _ = await h.exchange(.delete(bucket: "stats", key: "deleted"))

        let got = try ReassembledResponse(await h.exchange(.stat))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(got.body)) as? [String: Any])
        let documented = [
            "buckets", "objects", "logicalBytes", "inlineBytes", "chunks", "uniqueRawBytes", "referencedRawBytes",
            "storedBytes", "segmentFiles", "segmentBytes", "dedupRatio", "compressionRatio",
        ]
        for key in documented {
            #expect(json[key] is NSNumber, "STAT lacks numeric '\(key)': \(json)")
        }
        #expect((json["buckets"] as? NSNumber)?.intValue == 1)
        #expect((json["objects"] as? NSNumber)?.intValue == 2)
        #expect((json["logicalBytes"] as? NSNumber)?.intValue == 300_004)
        #expect((json["inlineBytes"] as? NSNumber)?.intValue == 4)
        #expect((json["uniqueRawBytes"] as? NSNumber)?.intValue == 300_000)
        await h.close()
    }

    @Test("PING answers the node id, server version and a current clock")
    func ping_answersIdentity() async throws {
        let h = try ServiceHarness()
        let before = UInt64(Date().timeIntervalSince1970 * 1000)
        let frames = await h.exchange(.ping)
        #expect(frames.count == 1 && frames.first?.isEndStream == true)
        let ping = try PingResult(fields: try #require(frames.first).fields)
        #expect(ping.nodeID == "test-node")
        #expect(ping.serverVersion == ObjectService.serverVersion)
        #expect(ping.timeMillis >= before && ping.timeMillis < before + 60_000)
        await h.close()
    }

    // MARK: MEMBERS

    @Test("MEMBERS without a membership layer answers one record: this node, alive, at its bound client endpoint")
    func members_withoutProvider_describesThisNodeAlone() async throws {
        let h = try ServiceHarness()
        let before = try MemberListCodec.decode(try ReassembledResponse(await h.exchange(Request.members)).body)
        #expect(before.map(\.clientAddress) == [h.config.listen], "the configured endpoint until the server is bound")
        h.service.clientEndpointBound("127.0.0.1:41234")
        let got = try ReassembledResponse(await h.exchange(Request.members))
        #expect(got.head.header.status == 0 && got.dataFrames == 0)
        let members = try MemberListCodec.decode(got.body)
        #expect(
            members == [
                MemberInfo(
                    nodeID: "test-node", site: "default", labels: [:], clientAddress: "127.0.0.1:41234",
                    peerAddress: "",
                    incarnation: 0, state: "alive", layoutVersion: 0, lastContactMillisAgo: -1)
            ])
        await h.close()
    }

    @Test("MEMBERS answers what the provider gives, in DATA frames when the body is larger than one frame")
    func members_withProvider_answersItsList() async throws {
        var many: [MemberInfo] = []
        for i in 0..<2000 {
            let site = i % 2 == 0 ? "benguerir" : "settat"
            let state = i % 7 == 0 ? MemberInfo.State.suspect : MemberInfo.State.alive
            let host = "10.0.0.\(i % 250)"
            many.append(
                MemberInfo(
                    nodeID: "node-\(i)", site: site, labels: ["country": "MA"], clientAddress: host + ":7480",
                    peerAddress: host + ":7946", incarnation: UInt64(i), state: state, layoutVersion: 2,
                    lastContactMillisAgo: Int64(i)))
        }
        let list = many
        let h = try ServiceHarness(membersProvider: { list })
        let got = try ReassembledResponse(await h.exchange(Request.members))
        #expect(got.dataFrames >= 2, "2000 records exceed one 64 KiB frame")
        #expect(try MemberListCodec.decode(got.body) == many)
        await h.close()
    }

    @Test("MEMBERS refuses with INTERNAL_ERROR a provider's list that breaks the protocol's bounds")
    func members_providerBreakingBounds_isAnInternalError() async throws {
        let bad = MemberInfo(
            nodeID: "n", site: "s", labels: Dictionary(uniqueKeysWithValues: (0..<100).map { ("k\($0)", "v") }),
            clientAddress: "h:1", peerAddress: "h:2", incarnation: 0, state: "alive", layoutVersion: 0,
            lastContactMillisAgo: 0)
        let h = try ServiceHarness(membersProvider: { [bad] })
        let frames = await h.exchange(Request.members)
        #expect(frames.count == 1 && frames.first?.error?.code == .internalError)
        #expect(frames.first?.error?.message.contains("labels") == true)
        await h.close()
    }
}
