import AgadirCore
import Testing

@Test func sha256_knownAnswers_forEmptyAndAbc() {
    #expect(ChunkID.of([UInt8]()).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    #expect(ChunkID.of(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
    #expect(ChunkID.of(long).hex == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
}

@Test func hex_roundTrips_andParsesEitherCase() throws {
    var rng = SplitMix64(seed: 21)
    for _ in 0..<100 {
        let id = ChunkID.of(rng.bytes(Int(rng.next() % 100)))
        #expect(id.hex.count == 64)
        #expect(ChunkID(hex: id.hex) == id)
        #expect(ChunkID(hex: id.hex.uppercased()) == id)
        #expect(ChunkID(bytes: id.bytes) == id)
        #expect(id.description == id.hex)
    }
}

@Test func hex_rejectsWrongLengthsAndNonHexCharacters() {
    let good = ChunkID.of([1, 2, 3]).hex
    #expect(ChunkID(hex: "") == nil)
    #expect(ChunkID(hex: String(good.dropLast())) == nil)
    #expect(ChunkID(hex: good + "0") == nil)
    #expect(ChunkID(hex: "g" + good.dropFirst()) == nil)
    #expect(ChunkID(hex: " " + good.dropFirst()) == nil)
    #expect(ChunkID(bytes: [UInt8](repeating: 0, count: 31)) == nil)
    #expect(ChunkID(bytes: [UInt8](repeating: 0, count: 33)) == nil)
}

@Test func ordering_isByTheBigEndianBytes() {
    var rng = SplitMix64(seed: 22)
    let ids = (0..<200).map { _ in ChunkID(w0: rng.next() % 4, w1: rng.next() % 4, w2: rng.next() % 4, w3: rng.next()) }
    let sortedByID = ids.sorted()
    let sortedByBytes = ids.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
    #expect(sortedByID == sortedByBytes)
    let a = ChunkID(w0: 1, w1: 0, w2: 0, w3: 0)
    let b = ChunkID(w0: 0, w1: .max, w2: .max, w3: .max)
    #expect(b < a)
    #expect(a.prefix64 == 1)
    #expect(a.bytes == [0, 0, 0, 0, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 24))
}

@Test func objectHasher_fedInPieces_equalsTheOneShotHash() {
    var rng = SplitMix64(seed: 23)
    let data = rng.bytes(100_000)
    for _ in 0..<20 {
        var hasher = ObjectHasher()
        var offset = 0
        while offset < data.count {
            let end = min(data.count, offset + Int(rng.next() % 10_000))
            if rng.next() % 2 == 0 {
                hasher.update(Array(data[offset..<end]))
            } else {
                data.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[offset..<end])) }
            }
            offset = end
        }
        #expect(hasher.finalize() == ChunkID.of(data))
    }
    #expect(ObjectHasher().finalize() == ChunkID.of([UInt8]()))
}

@Test func hexEncoding_isLowerCase() {
    #expect(Hex.encode([0x00, 0xAB, 0xFF, 0x10]) == "00abff10")
    #expect(Hex.encode([UInt8]()) == "")
}
