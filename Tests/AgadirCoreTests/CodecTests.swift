import AgadirCore
import Testing

/// `ChunkCodec.decode` over the buffer of `stored`, keeping the typed error.
private func decodeBuffer(
    _ codecState: inout ChunkCodec, _ stored: [UInt8], _ codec: Codec, rawLength: Int
) throws(AgadirError) -> [UInt8] {
    let result = stored.withUnsafeBytes { buf in
        Result { () throws(AgadirError) -> [UInt8] in try codecState.decode(buf, codec: codec, rawLength: rawLength) }
    }
    return try result.get()
}

// MARK: - Round trips and the 1/8 rule

private let sizes = [0, 1, 4096, 1 << 20, 4 << 20]

@Test(arguments: Codec.allCases, sizes)
func encodeThenDecode_givesTheBytesBack_forTextAndRandomData(codec: Codec, size: Int) throws {
    var codecState = ChunkCodec()
    for (kind, data) in [("text", textBytes(size, seed: 1)), ("random", randomBytes(size, seed: 2))] {
        let encoded = try codecState.encode(data, preferred: codec)
        #expect(encoded.id == ChunkID.of(data), "\(kind)")
        #expect(encoded.rawLength == UInt32(size), "\(kind)")
        #expect(encoded.checksum == Checksum.crc32(encoded.stored), "\(kind)")
        #expect(encoded.codec == codec || encoded.codec == .raw, "\(kind)")
        #expect(try codecState.decode(encoded) == data, "\(kind)")
        let viaBuffer = try decodeBuffer(&codecState, encoded.stored, encoded.codec, rawLength: size)
        #expect(viaBuffer == data, "\(kind)")
    }
}

@Test(arguments: [Codec.lz4, .zlib], [4096, 1 << 20])
func randomData_isStoredRaw_becauseCompressionDoesNotSaveAnEighth(codec: Codec, size: Int) throws {
    var codecState = ChunkCodec()
    let encoded = try codecState.encode(randomBytes(size, seed: 3), preferred: codec)
    #expect(encoded.codec == .raw)
    #expect(encoded.stored.count == size)
}

@Test(arguments: [Codec.lz4, .zlib], [4096, 1 << 20])
func text_isCompressed_andSavesAtLeastAnEighth(codec: Codec, size: Int) throws {
    var codecState = ChunkCodec()
    let encoded = try codecState.encode(textBytes(size, seed: 4), preferred: codec)
    #expect(encoded.codec == codec)
    #expect(encoded.stored.count <= size - size / 8)
}

@Test func emptyAndOneByteChunks_areStoredRaw_whateverTheCodec() throws {
    var codecState = ChunkCodec()
    for codec in Codec.allCases {
        #expect(try codecState.encode([], preferred: codec).codec == .raw)
        #expect(try codecState.encode([7], preferred: codec).codec == .raw)
    }
}

@Test func pays_meansSavingAtLeastOneEighth() {
    #expect(ChunkCodec.pays(compressed: 875, raw: 1000))
    #expect(!ChunkCodec.pays(compressed: 876, raw: 1000))
    #expect(!ChunkCodec.pays(compressed: 7, raw: 7))
    #expect(!ChunkCodec.pays(compressed: 0, raw: 0))
}

@Test func codecNames_parseAndPrint() {
    #expect(Codec(name: "LZ4") == .lz4)
    #expect(Codec(name: "deflate") == .zlib)
    #expect(Codec(name: "none") == .raw)
    #expect(Codec(name: "zstd") == nil)
    #expect(Codec.allCases.map(\.description) == ["raw", "lz4", "zlib"])
}

// MARK: - Corrupt input

/// A compressed chunk of text, and a decoder state, for the corruption tests.
private func compressedText(_ codec: Codec, size: Int = 16 * 1024) throws -> (EncodedChunk, ChunkCodec) {
    var codecState = ChunkCodec()
    let encoded = try codecState.encode(textBytes(size, seed: 5), preferred: codec)
    return (encoded, codecState)
}

/// Decodes through the buffer API: must throw `.corruptData` or give `rawLength` bytes.
private func decodeNeverCrashes(
    _ codecState: inout ChunkCodec, _ stored: [UInt8], _ codec: Codec, rawLength: Int
) -> [UInt8]? {
    do {
        let out = try decodeBuffer(&codecState, stored, codec, rawLength: rawLength)
        #expect(out.count == rawLength)
        return out
    } catch {
        #expect(error.code == .corruptData, "\(error)")
        return nil
    }
}

@Test(arguments: [Codec.lz4, .zlib])
func flippedBytes_inAStoredChunk_failItsChecksum_andNeverCrashTheDecoder(codec: Codec) throws {
    var (encoded, codecState) = try compressedText(codec)
    #expect(encoded.codec == codec)
    var rng = SplitMix64(seed: 0xBAD)
    for round in 0..<2000 {
        var mutated = encoded
        for _ in 0...(rng.next() % 4) {
            let at = Int(rng.next() % UInt64(mutated.stored.count))
            mutated.stored[at] ^= UInt8(1 + rng.next() % 255)
        }
        let error = expectError(.corruptData) { () throws(AgadirError) in try codecState.decode(mutated) }
        #expect(error?.message.contains("CRC-32") == true, "round \(round)")
        _ = decodeNeverCrashes(&codecState, mutated.stored, codec, rawLength: Int(encoded.rawLength))
    }
}

@Test(arguments: [Codec.lz4, .zlib])
func truncatedChunks_atEveryLength_throwCorruptData(codec: Codec) throws {
    var (encoded, codecState) = try compressedText(codec, size: 4096)
    for length in 0..<encoded.stored.count {
        expectError(.corruptData) { () throws(AgadirError) in
            let truncated = Array(encoded.stored.prefix(length))
            return try decodeBuffer(&codecState, truncated, codec, rawLength: Int(encoded.rawLength))
        }
    }
}

@Test(arguments: [Codec.lz4, .zlib])
func extendedChunks_withTrailingBytes_throwCorruptData(codec: Codec) throws {
    var (encoded, codecState) = try compressedText(codec, size: 4096)
    var rng = SplitMix64(seed: 0xE7)
    for extra in 1...64 {
        let stored = encoded.stored + rng.bytes(extra)
        expectError(.corruptData) { () throws(AgadirError) in
            try decodeBuffer(&codecState, stored, codec, rawLength: Int(encoded.rawLength))
        }
    }
}

@Test(arguments: [Codec.lz4, .zlib])
func randomGarbage_neverCrashesTheDecoder_andAlmostAlwaysThrowsCorruptData(codec: Codec) {
    var codecState = ChunkCodec()
    var rng = SplitMix64(seed: 0x6A4BA6E)
    var decoded = 0
    let rounds = 3000
    for _ in 0..<rounds {
        let garbage = rng.bytes(Int(rng.next() % 3000))
        let rawLength = Int(rng.next() % 20_000)
        if decodeNeverCrashes(&codecState, garbage, codec, rawLength: rawLength) != nil { decoded += 1 }
    }
    #expect(decoded * 100 < rounds, "\(decoded) of \(rounds) garbage inputs decoded")
}

@Test(arguments: Codec.allCases)
func aLyingRawLength_isRejected(codec: Codec) throws {
    var codecState = ChunkCodec()
    let data = textBytes(10_000, seed: 6)
    var encoded = try codecState.encode(data, preferred: codec)
    #expect(encoded.codec == codec)
    for lie in [ChunkCodec.maxRawLength + 1, Int(UInt32.max), data.count - 1, data.count + 1, 0, -1] {
        expectError(.corruptData) { () throws(AgadirError) in
            try decodeBuffer(&codecState, encoded.stored, codec, rawLength: lie)
        }
    }
    encoded.rawLength = UInt32(ChunkCodec.maxRawLength + 1)
    let error = expectError(.corruptData) { () throws(AgadirError) in try codecState.decode(encoded) }
    #expect(error?.message.contains("limit") == true)
}

// MARK: - Checksums and verification

@Test func crc32_ofTheStandardCheckString_is0xCBF43926() {
    #expect(Checksum.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
    #expect(Checksum.crc32([]) == 0)
}

@Test func crc32_canBeComputedInPieces_bySeedingWithThePreviousValue() {
    let data = randomBytes(10_000, seed: 8)
    let first = data.withUnsafeBytes { Checksum.crc32(UnsafeRawBufferPointer(rebasing: $0[..<3333])) }
    let whole = data.withUnsafeBytes { Checksum.crc32(UnsafeRawBufferPointer(rebasing: $0[3333...]), seed: first) }
    #expect(whole == Checksum.crc32(data))
}

@Test func chunkVerifier_acceptsTheRightBytes_andNamesTheChunkWhenTheyAreWrong() throws {
    let data = textBytes(1000, seed: 9)
    let id = ChunkID.of(data)
    try ChunkVerifier.verify(data, id: id)
    var corrupt = data
    corrupt[500] ^= 1
    let error = expectError(.corruptChunk) { () throws(AgadirError) in
        try ChunkVerifier.verify(corrupt, id: id, context: "read from node n2")
    }
    #expect(error?.message.contains(id.hex) == true)
    #expect(error?.message.contains(ChunkID.of(corrupt).hex) == true)
    #expect(error?.message.contains("node n2") == true)
}
