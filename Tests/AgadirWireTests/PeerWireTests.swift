import AgadirCore
import AgadirTestSupport
import AgadirWire
import Testing

@Suite struct PeerWireTests {
    static let version = ObjectVersion(timestamp: HLCTimestamp(rawValue: 0x0102_0304_0506_0708), node: 42)
    static let reference = ChunkReference(bucket: "photos", key: "a/b.jpg", version: version)
    static let chunk = ChunkID.of(Array("chunk".utf8))

    static let every: [PeerRequest] = [
        .hello(nodeID: "benguerir-1", nonce: Array(repeating: 7, count: 32)),
        .auth(proof: Array(repeating: 9, count: 32)),
        .chunksClaim(reference),
        .chunkPut(reference, chunk: chunk),
        .chunkGet(chunk: chunk, bucket: "photos"),
        .manifestPut(bucket: "photos", key: "k"),
        .manifestGet(bucket: "photos", key: "k"),
        .replicaList(bucket: "photos", prefix: "a/", startAfter: "a/b", limit: 500),
        .replicaList(bucket: "photos", prefix: "", startAfter: nil, limit: 1),
        .hintPut(target: "paris-1", bucket: "photos", kind: .chunk, reference: reference, chunk: chunk),
        .hintPut(target: "paris-1", bucket: "photos", kind: .manifest, reference: nil, chunk: nil),
        .layoutGet, .catalogGet, .catalogPut, .residencyAudit,
        .partitionManifests(policy: "ma", partition: 17, after: nil, limit: 1000),
        .partitionManifests(
            policy: "ma", partition: 0, after: ManifestCursor(keyHash: 0xdead_beef, bucket: "photos", key: "k/1"),
            limit: 3),
        .partitionChunks(policy: "global", partition: 255, after: nil, limit: 1),
        .partitionChunks(policy: "global", partition: 3, after: chunk, limit: 64),
        .nodeStatus, .rebalanceSet,
        .partitionDigest(policy: "ma", partition: 9, tombstonesBefore: 1_700_000_000_000), .repairStart, .maintenance,
        .accessKeysGet, .accessKeysPut, .bucketUsage(bucket: "photos"),
    ]

    @Test func everyPeerRequest_roundTripsThroughItsFields() throws {
        for request in Self.every {
            let encoded = request.fields().encoded()
            let fields = try Fields.decode(encoded, limits: .default)
            let back = try PeerRequest.decode(opcode: request.opcode.rawValue, fields: fields)
            #expect(back == request)
            #expect(request.opcode.rawValue >= PeerOpcode.first)
        }
        #expect(Set(Self.every.map(\.opcode)) == Set(PeerOpcode.allCases))
    }

    @Test func peerRequests_withMissingOrBadFields_areRefused() {
        #expect(throws: AgadirError.self) { try PeerRequest.decode(opcode: 63, fields: Fields()) }
        #expect(throws: AgadirError.self) {
            try PeerRequest.decode(opcode: PeerOpcode.chunkPut.rawValue, fields: Fields())
        }
        var shortNonce = Fields()
        shortNonce.set(.nodeID, "n1")
        shortNonce.set(.cluster, "c")
        shortNonce.set(.nonce, bytes: [1, 2, 3])
        #expect(throws: AgadirError.self) {
            try PeerRequest.decode(opcode: PeerOpcode.hello.rawValue, fields: shortNonce)
        }
        var badNode = Fields()
        badNode.set(.nodeID, "bad node id")
        badNode.set(.cluster, "c")
        badNode.set(.nonce, bytes: Array(repeating: 0, count: 32))
        #expect(throws: AgadirError.self) { try PeerRequest.decode(opcode: PeerOpcode.hello.rawValue, fields: badNode) }
        var bigLimit = PeerRequest.replicaList(bucket: "b", prefix: "", startAfter: nil, limit: 1).fields()
        bigLimit.items.removeAll { $0.tag == FieldTag.limit.rawValue }
        bigLimit.set(.limit, u32: UInt32(PeerLimits.maxReplicaListEntries + 1))
        #expect(throws: AgadirError.self) {
            try PeerRequest.decode(opcode: PeerOpcode.replicaList.rawValue, fields: bigLimit)
        }
        var badKind = Fields()
        badKind.set(.targetNode, "n1")
        badKind.set(.bucket, "b")
        badKind.set(.hintKind, u8: 9)
        #expect(throws: AgadirError.self) {
            try PeerRequest.decode(opcode: PeerOpcode.hintPut.rawValue, fields: badKind)
        }
        // Partition pages: POLICY and PARTITION are required, LIMIT and PARTITION bounded.
        let page = PeerRequest.partitionChunks(policy: "ma", partition: 1, after: nil, limit: 10).fields()
        for tag in [FieldTag.policy, .partition] {
            var missing = page
            missing.items.removeAll { $0.tag == tag.rawValue }
            #expect(throws: AgadirError.self) {
                try PeerRequest.decode(opcode: PeerOpcode.partitionChunks.rawValue, fields: missing)
            }
        }
        for (tag, value) in [
            (FieldTag.limit, UInt32(PeerLimits.maxPartitionPageEntries + 1)), (.limit, 0),
            (.partition, PeerLimits.maxPartitions),
        ] {
            var bad = page
            bad.items.removeAll { $0.tag == tag.rawValue }
            bad.set(tag, u32: value)
            #expect(throws: AgadirError.self) {
                try PeerRequest.decode(opcode: PeerOpcode.partitionManifests.rawValue, fields: bad)
            }
        }
    }

    @Test func partitionPages_roundTrip_andRefuseTruncationAndBadCounts() throws {
        var rng = SplitMix64(seed: 12)
        let version = ObjectVersion(timestamp: HLCTimestamp(rawValue: 99), node: 5)
        let manifests = (0..<12).map { i in
            i % 4 == 0
                ? ObjectManifest.tombstone(bucket: "photos", key: "t\(i)", version: version)
                : ObjectManifest(
                    bucket: "photos", key: "k\(i)", size: 3, etag: ChunkID.of([UInt8(i)]), contentType: "x",
                    userMetadata: [],
                    version: version, isTombstone: false, body: .inline(rng.bytes(3)))
        }
        for next in [nil, ManifestCursor(keyHash: 7, bucket: "photos", key: "k11")] {
            let page = ManifestPage(manifests: manifests, next: next)
            let bytes = ManifestPageCodec.encode(page)
            #expect(try ManifestPageCodec.decode(bytes) == page)
            for n in stride(from: 0, to: bytes.count, by: 3) {
                #expect(throws: AgadirError.self) { try ManifestPageCodec.decode(Array(bytes.prefix(n))) }
            }
            #expect(throws: AgadirError.self) { try ManifestPageCodec.decode(bytes + [0]) }
        }
        let refs = (0..<3).map { ChunkReference(bucket: "photos", key: "k\($0)", version: version) }
        let chunks = (0..<9).map { i in
            PartitionChunkEntry(
                id: ChunkID.of([UInt8(i)]), storedBytes: UInt64(i) * 1000, references: Array(refs.prefix(i % 3 + 1)))
        }
        for next in [nil, Self.chunk] {
            let page = ChunkPage(chunks: chunks, next: next)
            let bytes = ChunkPageCodec.encode(page)
            #expect(try ChunkPageCodec.decode(bytes) == page)
            for n in stride(from: 0, to: bytes.count, by: 5) {
                #expect(throws: AgadirError.self) { try ChunkPageCodec.decode(Array(bytes.prefix(n))) }
            }
        }
        // A chunk with no reference, a flag other than 0/1, a count over the bound: refused.
        let noRef = ChunkPageCodec.encode(
            ChunkPage(chunks: [PartitionChunkEntry(id: Self.chunk, storedBytes: 1, references: [])], next: nil))
        #expect(throws: AgadirError.self) { try ChunkPageCodec.decode(noRef) }
        #expect(throws: AgadirError.self) { try ChunkPageCodec.decode([2, 0, 0, 0, 0]) }
        #expect(throws: AgadirError.self) { try ManifestPageCodec.decode([0, 0xff, 0xff, 0xff, 0xff]) }
        let summary = PartitionSummary(
            manifests: ChunkID.of([1]), manifestCount: 12, chunks: ChunkID.of([2]), chunkCount: 30)
        let summaryBytes = PartitionSummaryCodec.encode(summary)
        #expect(try PartitionSummaryCodec.decode(summaryBytes) == summary)
        for n in 0..<summaryBytes.count {
            #expect(throws: AgadirError.self) { try PartitionSummaryCodec.decode(Array(summaryBytes.prefix(n))) }
        }
    }

    @Test func bodyCodecs_roundTrip_andRefuseEveryTruncation() throws {
        var rng = SplitMix64(seed: 11)
        let ids = (0..<20).map { _ in ChunkID.of(rng.bytes(8)) }
        #expect(try ChunkIDListCodec.decode(ChunkIDListCodec.encode(ids)) == ids)
        #expect(throws: AgadirError.self) { try ChunkIDListCodec.decode([1, 2, 3]) }
        #expect(throws: AgadirError.self) { try ChunkIDListCodec.decode(ChunkIDListCodec.encode(ids), max: 19) }

        let encoded = EncodedChunk(id: Self.chunk, codec: .lz4, rawLength: 100, stored: rng.bytes(60), checksum: 77)
        let chunkBytes = EncodedChunkCodec.encode(encoded)
        #expect(try EncodedChunkCodec.decode(chunkBytes, id: Self.chunk) == encoded)
        for n in 0..<EncodedChunkCodec.headerBytes {
            #expect(throws: AgadirError.self) {
                try EncodedChunkCodec.decode(Array(chunkBytes.prefix(n)), id: Self.chunk)
            }
        }

        var entries: [ReplicaListEntry] = []
        for i in 0..<30 {
            let version = ObjectVersion(timestamp: HLCTimestamp(rawValue: UInt64(i)), node: 3)
            let etag = ChunkID.of([UInt8(i)])
            entries.append(
                ReplicaListEntry(
                    key: "k\(i)", version: version, isTombstone: i % 3 == 0, size: UInt64(i) * 100, etag: etag,
                    contentType: "text/plain"))
        }
        let listBytes = ReplicaListCodec.encode(entries)
        #expect(try ReplicaListCodec.decode(listBytes) == entries)
        for n in stride(from: 0, to: listBytes.count, by: 7) {
            #expect(throws: AgadirError.self) { try ReplicaListCodec.decode(Array(listBytes.prefix(n))) }
        }

        var records: [BucketRecord] = []
        for i in 0..<10 {
            let version = ObjectVersion(timestamp: HLCTimestamp(rawValue: UInt64(i) * 7), node: 1)
            let policy = i % 2 == 0 ? "ma" : "global"
            records.append(
                BucketRecord(
                    name: "bucket-\(i)", policy: policy, createdMillis: UInt64(i), version: version, deleted: i == 3,
                    maxBytes: i % 3 == 1 ? UInt64(i) << 30 : 0, maxObjects: i == 4 ? 1_000 : 0))
        }
        let recordBytes = BucketRecordCodec.encode(records)
        #expect(try BucketRecordCodec.decode(recordBytes) == records)
        for n in stride(from: 0, to: recordBytes.count, by: 5) {
            #expect(throws: AgadirError.self) { try BucketRecordCodec.decode(Array(recordBytes.prefix(n))) }
        }
    }

    @Test("a bucket record without a quota encodes as before quotas existed; unknown flags are refused")
    func bucketRecord_withoutQuota_keepsTheOldEncoding() throws {
        let plain = BucketRecord(
            name: "photos", policy: "ma", createdMillis: 5,
            version: ObjectVersion(timestamp: HLCTimestamp(rawValue: 9), node: 2),
            deleted: true)
        var old = ByteWriter(capacity: 64)  // the encoding of the release before quotas
        old.u32(1)
        old.string16("photos")
        old.string16("ma")
        old.u64(5)
        old.u64(9)
        old.u64(2)
        old.u8(1)
        #expect(BucketRecordCodec.encode([plain]) == old.bytes)
        var limited = plain
        limited.maxObjects = 7
        let encoded = BucketRecordCodec.encode([limited])
        #expect(encoded.count == old.bytes.count + 16)
        #expect(try BucketRecordCodec.decode(encoded) == [limited])
        var unknown = old.bytes
        unknown[unknown.count - 1] = 4
        #expect(throws: AgadirError.self) { try BucketRecordCodec.decode(unknown) }
    }

    @Test func requestOptions_andRoute_roundTrip() throws {
        for level in ConsistencyLevel.allCases {
            var f = Fields()
            RequestOptions(consistency: level).apply(to: &f)
            #expect(try RequestOptions.decode(try Fields.decode(f.encoded(), limits: .default)).consistency == level)
            #expect(ConsistencyLevel(name: level.description) == level)
        }
        #expect(try RequestOptions.decode(Fields()) == .none)
        var bad = Fields()
        bad.set(.consistency, u8: 9)
        #expect(throws: AgadirError.self) { try RequestOptions.decode(bad) }
        #expect(ConsistencyLevel(name: "local-quorum") == .localQuorum)

        let route = RouteResult(policy: "ma", mayCoordinate: false, endpoints: ["127.0.0.1:7001", "[::1]:7002"])
        #expect(try RouteResult(fields: try Fields.decode(route.fields().encoded(), limits: .default)) == route)

        for request: Request in [.route(bucket: "photos"), .admin(command: "layout.show")] {
            let back = try Request.decode(
                opcode: request.opcode.rawValue,
                fields: try Fields.decode(request.fields().encoded(), limits: .default),
                limits: .default)
            #expect(back == request)
        }
        var badCommand = Fields()
        badCommand.set(.command, "Layout Show")
        #expect(throws: AgadirError.self) {
            try Request.decode(opcode: Opcode.admin.rawValue, fields: badCommand, limits: .default)
        }
    }
}
