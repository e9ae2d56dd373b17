import AgadirCore
import Testing

private let version = ObjectVersion(timestamp: HLCTimestamp(physicalMillis: 1_700_000_000_123, logical: 4), node: 77)
private let metadata = [
    MetadataEntry(name: "author", value: "Tamazight ⵣ"), MetadataEntry(name: "x-color", value: ""),
]

private func inlineManifest() -> ObjectManifest {
    let body = Array("hello agadir".utf8)
    return ObjectManifest(
        bucket: "granary", key: "photos/2026/ⴰⴳⴰⴷⵉⵔ.jpg", size: UInt64(body.count), etag: ChunkID.of(body),
        contentType: "image/jpeg", userMetadata: metadata, version: version, isTombstone: false, body: .inline(body))
}

private func chunkedManifest(chunks: Int = 5) -> ObjectManifest {
    var rng = SplitMix64(seed: 31)
    let refs = (0..<chunks).map { _ in ChunkRef(id: ChunkID.of(rng.bytes(8)), length: UInt32(rng.next() % (4 << 20))) }
    return ObjectManifest(
        bucket: "granary", key: "big.bin", size: refs.reduce(0) { $0 + UInt64($1.length) }, etag: ChunkID.of([9]),
        contentType: "application/octet-stream", userMetadata: metadata, version: version, isTombstone: false,
        body: .chunks(refs))
}

@Test func inlineManifest_withMetadata_roundTrips() throws {
    let m = inlineManifest()
    #expect(try ManifestCodec.decode(ManifestCodec.encode(m)) == m)
}

@Test func chunkedManifest_withMetadata_roundTrips() throws {
    for count in [0, 1, 5, 1000] {
        let m = chunkedManifest(chunks: count)
        #expect(try ManifestCodec.decode(ManifestCodec.encode(m)) == m)
        #expect(m.chunkRefs.count == count)
    }
}

@Test func tombstone_roundTrips() throws {
    let t = ObjectManifest.tombstone(bucket: "granary", key: "gone", version: version)
    let decoded = try ManifestCodec.decode(ManifestCodec.encode(t))
    #expect(decoded == t)
    #expect(decoded.isTombstone)
    #expect(decoded.chunkRefs.isEmpty)
}

@Test(arguments: [true, false])
func everyTruncatedPrefix_throwsCorruptData(inline: Bool) {
    let bytes = ManifestCodec.encode(inline ? inlineManifest() : chunkedManifest())
    for length in 0..<bytes.count {
        expectError(.corruptData) { () throws(AgadirError) in try ManifestCodec.decode(Array(bytes.prefix(length))) }
    }
}

@Test func trailingBytes_throwCorruptData() {
    let bytes = ManifestCodec.encode(inlineManifest())
    expectError(.corruptData) { () throws(AgadirError) in try ManifestCodec.decode(bytes + [0]) }
}

@Test func unknownFormatAndBodyKind_throwCorruptData() {
    var bytes = ManifestCodec.encode(inlineManifest())
    bytes[0] = 2
    let error = expectError(.corruptData) { () throws(AgadirError) in try ManifestCodec.decode(bytes) }
    #expect(error?.message.contains("format 2") == true)
}

@Test(arguments: [true, false])
func randomByteFlips_neverCrash_andFailOnlyWithCorruptData(inline: Bool) {
    let bytes = ManifestCodec.encode(inline ? inlineManifest() : chunkedManifest())
    var rng = SplitMix64(seed: inline ? 41 : 42)
    for _ in 0..<3000 {
        var mutated = bytes
        for _ in 0...(rng.next() % 3) {
            mutated[Int(rng.next() % UInt64(mutated.count))] ^= UInt8(1 + rng.next() % 255)
        }
        do {
            _ = try ManifestCodec.decode(mutated)
        } catch {
            #expect(error.code == .corruptData, "\(error)")
        }
    }
}

@Test func randomGarbage_neverCrashes() {
    var rng = SplitMix64(seed: 43)
    for _ in 0..<2000 {
        var garbage = rng.bytes(Int(rng.next() % 300))
        if !garbage.isEmpty { garbage[0] = ManifestCodec.formatVersion }
        do { _ = try ManifestCodec.decode(garbage) } catch { #expect(error.code == .corruptData) }
    }
}

/// The offset of the u32 chunk count in an encoded chunked manifest.
private func chunkCountOffset(_ bytes: [UInt8], chunks: Int) -> Int { bytes.count - chunks * 36 - 4 }

@Test(arguments: [UInt32(ManifestCodec.maxChunks + 1), UInt32.max, 6, 1_000_000])
func aLyingChunkCount_isRejected_beforeAnythingIsAllocated(claimed: UInt32) {
    var bytes = ManifestCodec.encode(chunkedManifest(chunks: 5))
    let at = chunkCountOffset(bytes, chunks: 5)
    #expect(Array(bytes[at..<at + 4]) == [0, 0, 0, 5])
    bytes.replaceSubrange(at..<at + 4, with: [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: claimed >> $0) })
    let error = expectError(.corruptData) { () throws(AgadirError) in try ManifestCodec.decode(bytes) }
    #expect(error?.message.contains("claims \(claimed) chunks") == true, "\(String(describing: error))")
}

@Test func anInlineBodyOverTheLimit_isRejected() {
    let big = [UInt8](repeating: 1, count: ManifestCodec.maxInlineBytes + 1)
    var m = inlineManifest()
    m.body = .inline(big)
    let encoded = ManifestCodec.encode(m)
    let error = expectError(.corruptData) { () throws(AgadirError) in try ManifestCodec.decode(encoded) }
    #expect(error?.message.contains("limit") == true)
}
