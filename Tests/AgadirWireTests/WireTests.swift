import AgadirCore
import AgadirTestSupport
import AgadirWire
import Testing

func decodeHeader(_ bytes: [UInt8]) throws(AgadirError) -> FrameHeader {
    let r = bytes.withUnsafeBytes { raw in
        Result { () throws(AgadirError) -> FrameHeader in try FrameHeader.decode(raw, limits: .default) }
    }
    return try r.get()
}

@Suite struct FrameHeaderTests {
    @Test func header_roundTrips_throughItsThirtyTwoBytes() throws {
        let h = FrameHeader(
            kind: .response, flags: FrameHeader.endStream, opcode: 6, status: 303, headerLength: 77,
            requestID: 0x0102_0304_0506_0708, payloadLength: 4096)
        let bytes = h.encoded()
        #expect(bytes.count == FrameHeader.size)
        #expect(Array(bytes[0..<4]) == Array("AGDR".utf8))
        let back = try decodeHeader(bytes)
        #expect(back == h)
    }

    @Test func header_withBadMagic_isMalformed() {
        var bytes = FrameHeader(kind: .request, requestID: 1).encoded()
        bytes[0] = 0x42
        #expect(throws: AgadirError(.malformedFrame, "bad magic: this is not an Agadir protocol stream")) {
            try decodeHeader(bytes)
        }
    }

    @Test func header_withUnknownVersion_isUnsupported() {
        var bytes = FrameHeader(kind: .request, requestID: 1).encoded()
        bytes[4] = 2
        do {
            _ = try decodeHeader(bytes)
            Issue.record("accepted version 2")
        } catch {
            #expect(error.code == .unsupportedVersion)
        }
    }

    @Test func header_announcingOversizedParts_isRefusedBeforeReadingThem() {
        for (h, p, code) in [
            (UInt32(70_000), UInt32(0), AgadirError.Code.headerTooLarge), (0, 5 << 20, .frameTooLarge),
        ] {
            let bytes = FrameHeader(kind: .request, headerLength: h, requestID: 1, payloadLength: p).encoded()
            do {
                _ = try decodeHeader(bytes)
                Issue.record("accepted h=\(h) p=\(p)")
            } catch {
                #expect(error.code == code)
            }
        }
    }

    @Test func header_unknownFlagsAndReservedBytes_areMalformed() {
        var a = FrameHeader(kind: .request, requestID: 1).encoded()
        a[7] = 0x02
        var b = FrameHeader(kind: .request, requestID: 1).encoded()
        b[31] = 1
        for bytes in [a, b] {
            do {
                _ = try decodeHeader(bytes)
                Issue.record("accepted")
            } catch {
                #expect(error.code == .malformedFrame)
            }
        }
    }

    @Test func randomHeaders_neverCrashTheDecoder() {
        var rng = SplitMix64(seed: 1)
        var accepted = 0
        for _ in 0..<20_000 {
            var bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if rng.next() % 2 == 0 { bytes.replaceSubrange(0..<5, with: FrameHeader.magic + [1]) }
            if (try? decodeHeader(bytes)) != nil { accepted += 1 }
        }
        #expect(accepted < 20_000)
    }
}

@Suite struct FieldsTests {
    @Test func fields_roundTrip_withEveryValueShape() throws {
        var f = Fields()
        f.set(.bucket, "photos")
        f.set(.key, "2026/agadir.jpg")
        f.set(.size, u64: 1 << 40)
        f.set(.limit, u32: 7)
        f.set(.etag, id: ChunkID.of(Array("abc".utf8)))
        f.set(.version, version: ObjectVersion(timestamp: HLCTimestamp(physicalMillis: 5, logical: 2), node: 9))
        f.setMetadata([MetadataEntry(name: "a", value: "é=1"), MetadataEntry(name: "b", value: "")])
        let back = try Fields.decode(f.encoded(), limits: .default)
        #expect(back == f)
        #expect(try back.string(.bucket) == "photos")
        #expect(try back.u64(.size) == 1 << 40)
        #expect(try back.u32(.limit) == 7)
        #expect(try back.id(.etag) == ChunkID.of(Array("abc".utf8)))
        #expect(try back.version(.version)?.node == 9)
        #expect(try back.metadata() == [MetadataEntry(name: "a", value: "é=1"), MetadataEntry(name: "b", value: "")])
    }

    @Test func fields_everyTruncation_isMalformedNotACrash() {
        var f = Fields()
        f.set(.bucket, "photos")
        f.set(.key, "k")
        let bytes = f.encoded()
        for n in 1..<bytes.count {
            #expect(throws: AgadirError.self) { try Fields.decode(Array(bytes[0..<n]), limits: .default) }
        }
    }

    @Test func fields_tooMany_isRefused() {
        var w = ByteWriter()
        w.u16(300)
        do {
            _ = try Fields.decode(w.bytes, limits: .default)
            Issue.record("accepted 300 fields")
        } catch {
            #expect(error.code == .headerTooLarge)
        }
    }

    @Test func fields_wrongWidthIntegers_areInvalidArguments() throws {
        var f = Fields()
        f.set(.size, bytes: [1, 2, 3])
        let back = try Fields.decode(f.encoded(), limits: .default)
        #expect(throws: AgadirError.self) { try back.u64(.size) }
    }
}

@Suite struct RequestTests {
    static let all: [Request] = [
        .ping, .listBuckets, .stat, .members,
        .createBucket(name: "media-2026", policy: "default"), .createBucket(name: "abc", policy: nil),
        .deleteBucket(name: "abc"),
        .put(
            PutRequest(
                bucket: "abc", key: "x/y.txt", size: 12, contentType: "text/plain",
                metadata: [MetadataEntry(name: "k", value: "v")], contentSHA256: ChunkID.of([1]))),
        .get(bucket: "abc", key: "k", range: nil),
        .get(bucket: "abc", key: "k", range: ByteRange(offset: 3, length: 9)),
        .get(bucket: "abc", key: "k", range: ByteRange(offset: 3, length: nil)),
        .head(bucket: "abc", key: "k"), .delete(bucket: "abc", key: "k"),
        .list(ListRequest(bucket: "abc", prefix: "p/", delimiter: "/", startAfter: "p/a", limit: 10)),
    ]

    @Test(arguments: all)
    func request_roundTripsThroughItsFields(_ r: Request) throws {
        let f = try Fields.decode(r.fields().encoded(), limits: .default)
        #expect(try Request.decode(opcode: r.opcode.rawValue, fields: f, limits: .default) == r)
    }

    @Test func request_withBadNames_isRefusedWithTheRightCode() {
        var f = Fields()
        f.set(.bucket, "Bad_Bucket")
        f.set(.key, "k")
        do {
            _ = try Request.decode(opcode: Opcode.head.rawValue, fields: f, limits: .default)
            Issue.record("accepted")
        } catch {
            #expect(error.code == .invalidBucketName)
        }
        var g = Fields()
        g.set(.bucket, "good")
        g.set(.key, "a\u{01}b")
        do {
            _ = try Request.decode(opcode: Opcode.head.rawValue, fields: g, limits: .default)
            Issue.record("accepted")
        } catch {
            #expect(error.code == .invalidKey)
        }
    }

    @Test func request_unknownOpcode_isRefused() {
        do {
            _ = try Request.decode(opcode: 77, fields: Fields(), limits: .default)
            Issue.record("accepted")
        } catch {
            #expect(error.code == .unknownOpcode)
        }
    }

    @Test func put_withoutSize_isAnInvalidArgument() {
        var f = Fields()
        f.set(.bucket, "abc")
        f.set(.key, "k")
        do {
            _ = try Request.decode(opcode: Opcode.put.rawValue, fields: f, limits: .default)
            Issue.record("accepted")
        } catch {
            #expect(error.code == .invalidArgument)
        }
    }

    @Test func list_limitOutsideBounds_isRefused() {
        var f = Request.list(ListRequest(bucket: "abc")).fields()
        f.items.removeAll { $0.tag == FieldTag.limit.rawValue }
        f.set(.limit, u32: 5000)
        #expect(throws: AgadirError.self) {
            try Request.decode(opcode: Opcode.list.rawValue, fields: f, limits: .default)
        }
    }
}

@Suite struct BodyCodecTests {
    @Test func listResult_roundTrips() throws {
        let r = ListPage(
            entries: [
                ListEntry(key: "a", size: 1, etag: ChunkID.of([1]), version: .zero, contentType: "x"),
                ListEntry(
                    key: "ب/ج", size: 1 << 33, etag: ChunkID.of([2]),
                    version: ObjectVersion(timestamp: HLCTimestamp(rawValue: 99), node: 3), contentType: ""),
            ],
            commonPrefixes: ["p/", "q/"], isTruncated: true, nextStartAfter: "q/")
        #expect(try ListPage.decode(r.encoded()) == r)
        let bytes = r.encoded()
        for n in 0..<bytes.count { #expect(throws: AgadirError.self) { try ListPage.decode(Array(bytes[0..<n])) } }
    }

    @Test func bucketList_roundTrips() throws {
        let b = [
            BucketInfo(name: "abc", policy: "default", createdMillis: 5),
            BucketInfo(name: "xyz", policy: "ma", createdMillis: 6),
        ]
        #expect(try BucketListCodec.decode(BucketListCodec.encode(b)) == b)
        var w = ByteWriter()
        w.u32(UInt32.max)
        #expect(throws: AgadirError.self) { try BucketListCodec.decode(w.bytes) }
    }

    static let members = [
        MemberInfo(
            nodeID: "benguerir-1", site: "benguerir", labels: ["country": "MA", "tier": "4"],
            clientAddress: "127.0.0.1:7480", peerAddress: "127.0.0.1:7946", incarnation: 3,
            state: MemberInfo.State.alive,
            layoutVersion: 7, lastContactMillisAgo: -1),
        MemberInfo(
            nodeID: "settat-2", site: "settat", labels: [:], clientAddress: "[::1]:9000", peerAddress: "",
            incarnation: UInt64.max, state: MemberInfo.State.suspect, layoutVersion: 0, lastContactMillisAgo: 412),
    ]

    @Test func memberList_roundTrips_andEveryTruncationIsMalformed() throws {
        #expect(try MemberListCodec.decode(MemberListCodec.encode(Self.members)) == Self.members)
        #expect(try MemberListCodec.decode(MemberListCodec.encode([])) == [])
        let bytes = try MemberListCodec.encode(Self.members)
        for n in 0..<bytes.count {
            #expect(throws: AgadirError.self) { try MemberListCodec.decode(Array(bytes[0..<n])) }
        }
        let error = try #require(throws: AgadirError.self) { try MemberListCodec.decode(bytes + [0]) }
        #expect(error.code == .malformedFrame && error.message.contains("follow the last"), "\(error)")
    }

    @Test func memberList_labelsAreWrittenSortedByName() throws {
        let one = MemberInfo(
            nodeID: "n", site: "s", labels: ["zone": "b", "country": "MA", "a": ""], clientAddress: "h:1",
            peerAddress: "h:2",
            incarnation: 0, state: "alive", layoutVersion: 0, lastContactMillisAgo: 0)
        var r = ByteReader(try MemberListCodec.encode([one]), context: "test")
        #expect(try r.u32() == 1)
        _ = try r.string16()
        _ = try r.string16()
        #expect(try r.u16() == 3)
        var names: [String] = []
        for _ in 0..<3 {
            names.append(try r.string16())
            _ = try r.string16()
        }
        #expect(names == ["a", "country", "zone"])
    }

    @Test func memberList_lyingCountsAndBadValues_areRefusedWithClearMessages() throws {
        var huge = ByteWriter()
        huge.u32(UInt32.max)
        let overclaim = try #require(throws: AgadirError.self) { try MemberListCodec.decode(huge.bytes) }
        #expect(overclaim.code == .malformedFrame && overclaim.message.contains("claims"))

        func record(labels: [(String, String)], state: String = "alive", lastContact: UInt64 = 0) -> [UInt8] {
            var w = ByteWriter()
            w.u32(1)
            w.string16("n")
            w.string16("s")
            w.u16(UInt16(labels.count))
            for (k, v) in labels {
                w.string16(k)
                w.string16(v)
            }
            w.string16("h:1")
            w.string16("h:2")
            w.u64(1)
            w.string16(state)
            w.u64(1)
            w.u64(lastContact)
            return w.bytes
        }
        #expect(try MemberListCodec.decode(record(labels: [("a", "1")])).first?.labels == ["a": "1"])
        let duplicate = try #require(throws: AgadirError.self) {
            try MemberListCodec.decode(record(labels: [("a", "1"), ("a", "2")]))
        }
        #expect(duplicate.message.contains("repeats the label 'a'"))
        let tooMany = (0..<65).map { ("k\($0)", "v") }
        #expect(throws: AgadirError.self) { try MemberListCodec.decode(record(labels: tooMany)) }
        #expect(throws: AgadirError.self) { try MemberListCodec.decode(record(labels: [], state: "")) }
        #expect(throws: AgadirError.self) {
            try MemberListCodec.decode(record(labels: [], lastContact: UInt64(bitPattern: -2)))
        }
        #expect(
            try MemberListCodec.decode(record(labels: [], lastContact: UInt64.max)).first?.lastContactMillisAgo == -1)
        var limits = WireLimits()
        limits.maxListingBodyBytes = 16
        #expect(throws: AgadirError.self) { try MemberListCodec.decode(record(labels: []), limits: limits) }
    }

    @Test func memberList_encoderRefusesWhatAReaderWouldRefuse() {
        var m = Self.members[0]
        m.labels = Dictionary(uniqueKeysWithValues: (0..<65).map { ("k\($0)", "v") })
        #expect(throws: AgadirError.self) { try MemberListCodec.encode([m]) }
        m.labels = [:]
        m.lastContactMillisAgo = -5
        #expect(throws: AgadirError.self) { try MemberListCodec.encode([m]) }
        m.lastContactMillisAgo = 0
        m.site = String(repeating: "s", count: 70_000)
        #expect(throws: AgadirError.self) { try MemberListCodec.encode([m]) }
    }

    @Test func randomMemberBodies_neverCrashTheDecoder() {
        var rng = SplitMix64(seed: 11)
        let valid = (try? MemberListCodec.encode(Self.members)) ?? []
        for _ in 0..<5000 {
            var bytes = valid
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let i = Int(rng.next() % UInt64(bytes.count))
                bytes[i] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            }
            // Whatever a mutation leaves decodable must survive a round trip unchanged.
            if let decoded = try? MemberListCodec.decode(bytes) {
                #expect((try? MemberListCodec.decode(MemberListCodec.encode(decoded))) == decoded)
            }
        }
    }

    @Test func objectInfo_roundTripsThroughFields() throws {
        let i = ObjectInfo(
            bucket: "b", key: "k", size: 10, etag: ChunkID.of([9]),
            version: ObjectVersion(timestamp: HLCTimestamp(rawValue: 7), node: 1),
            contentType: "text/plain", metadata: [MetadataEntry(name: "x", value: "y")],
            range: ByteRange(offset: 2, length: 3))
        #expect(try ObjectInfo(fields: i.fields()) == i)
    }

    @Test func byteRange_resolvesAgainstObjectSize() throws {
        #expect(try ByteRange(offset: 0, length: nil).resolve(size: 0) == (0, 0))
        #expect(try ByteRange(offset: 5, length: 100).resolve(size: 10) == (5, 5))
        #expect(try ByteRange(offset: 10, length: nil).resolve(size: 10) == (10, 0))
        #expect(throws: AgadirError.self) { try ByteRange(offset: 11, length: 1).resolve(size: 10) }
    }
}
