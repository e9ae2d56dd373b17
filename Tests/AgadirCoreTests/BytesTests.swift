import AgadirCore
import Testing

@Test func writerAndReader_roundTripEveryFieldType_bigEndian() throws {
    var w = ByteWriter()
    w.u8(0xAB)
    w.u16(0x1234)
    w.u32(0xDEAD_BEEF)
    w.u64(0x0102_0304_0506_0708)
    w.bytes16([1, 2, 3])
    w.bytes32([4, 5])
    w.string16("ⴰⴳⴰⴷⵉⵔ")
    let id = ChunkID.of([1])
    w.chunkID(id)
    #expect(Array(w.bytes.prefix(7)) == [0xAB, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF])
    var r = ByteReader(w.bytes, context: "test")
    #expect(try r.u8() == 0xAB)
    #expect(try r.u16() == 0x1234)
    #expect(try r.u32() == 0xDEAD_BEEF)
    #expect(try r.u64() == 0x0102_0304_0506_0708)
    #expect(try r.bytes16() == [1, 2, 3])
    #expect(try r.bytes32(max: 10) == [4, 5])
    #expect(try r.string16() == "ⴰⴳⴰⴷⵉⵔ")
    #expect(try r.chunkID() == id)
    #expect(r.isAtEnd)
    #expect(r.remaining == 0)
}

@Test func reader_neverReadsPastTheEnd_andSaysWhatWasTruncated() throws {
    var r = ByteReader([1, 2, 3], errorCode: .corruptData, context: "thing")
    let error = expectError(.corruptData) { () throws(AgadirError) in try r.u32("the count") }
    #expect(error?.message.contains("thing") == true)
    #expect(error?.message.contains("the count") == true)
    #expect(r.offset == 0, "a failed read consumes nothing")
    expectError(.corruptData) { () throws(AgadirError) in try r.u64() }
    expectError(.corruptData) { () throws(AgadirError) in try r.raw(4) }
    expectError(.corruptData) { () throws(AgadirError) in try r.raw(-1) }
    #expect(try r.u16() == 0x0102)
    #expect(try r.u8() == 3)
    expectError(.corruptData) { () throws(AgadirError) in try r.u8() }
    expectError(.corruptData) { () throws(AgadirError) in try r.chunkID() }
}

@Test func reader_usesMalformedFrameByDefault() {
    var r = ByteReader([], context: "frame")
    expectError(.malformedFrame) { () throws(AgadirError) in try r.u8() }
}

@Test func reader_rejectsLengthPrefixesThatLieOrExceedTheLimit() {
    var short = ByteReader([0, 5, 1, 2], context: "t")
    expectError(.malformedFrame) { () throws(AgadirError) in try short.bytes16() }
    var big = ByteReader([0xFF, 0xFF, 0xFF, 0xFF], context: "t")
    let error = expectError(.malformedFrame) { () throws(AgadirError) in try big.bytes32("body", max: 1 << 20) }
    #expect(error?.message.contains("limit") == true)
    var notUTF8 = ByteReader([0, 2, 0xC3, 0x28], context: "t")
    expectError(.malformedFrame) { () throws(AgadirError) in try notUTF8.string16() }
}

@Test func reader_atEveryOffsetOfRandomInput_throwsOrReadsWithinBounds() {
    var rng = SplitMix64(seed: 51)
    for _ in 0..<500 {
        let bytes = rng.bytes(Int(rng.next() % 40))
        var r = ByteReader(bytes, context: "fuzz")
        for _ in 0..<10 {
            let before = r.offset
            do {
                switch rng.next() % 6 {
                case 0: _ = try r.u8()
                case 1: _ = try r.u16()
                case 2: _ = try r.u32()
                case 3: _ = try r.u64()
                case 4: _ = try r.bytes16()
                default: _ = try r.bytes32(max: 16)
                }
            } catch {
                #expect(error.code == .malformedFrame)
                #expect(r.offset <= bytes.count)
                _ = before
            }
            #expect(r.offset <= bytes.count)
        }
    }
}
