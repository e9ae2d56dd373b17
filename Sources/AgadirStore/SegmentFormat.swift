import AgadirCore

/// The byte layout of segment files (documented byte by byte in docs/storage.md).
///
/// A segment is a 32-byte file header followed by chunk records back to back. Every record
/// carries its chunk id, lengths, codec and two CRC-32s, so a scanner can rebuild the index
/// from the segments alone. All integers are big-endian.
enum SegmentFormat {
    // MARK: File header

    /// "AGSEG001".
    static let fileMagic: [UInt8] = Array("AGSEG001".utf8)
    static let fileFormatVersion: UInt32 = 1
    /// magic(8) | u32 version | u64 segment number | 8 reserved zero bytes | u32 CRC-32 of bytes 0..<28.
    static let fileHeaderSize = 32

    static func fileHeader(segment: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: fileHeaderSize)
        w.raw(fileMagic)
        w.u32(fileFormatVersion)
        w.u64(segment)
        w.u64(0)
        w.u32(Checksum.crc32(w.bytes))
        return w.bytes
    }

    /// Checks a file header read from disk; returns why it is bad, or nil when it is good.
    static func fileHeaderProblem(_ bytes: [UInt8], segment: UInt64) -> String? {
        guard bytes.count == fileHeaderSize else { return "file header is truncated (\(bytes.count) bytes)" }
        guard Array(bytes[0..<8]) == fileMagic else { return "file header magic is wrong" }
        var r = ByteReader(bytes, offset: 8, errorCode: .corruptData, context: "segment header")
        do throws(AgadirError) {
            let version = try r.u32()
            let number = try r.u64()
            _ = try r.u64()
            let crc = try r.u32()
            guard crc == Checksum.crc32(Array(bytes[0..<28])) else { return "file header CRC mismatch" }
            guard version == fileFormatVersion else { return "segment format version \(version) is unknown" }
            guard number == segment else { return "file header names segment \(number)" }
            return nil
        } catch {
            return error.message
        }
    }

    // MARK: Chunk records

    /// "AGCK".
    static let recordMagic: UInt32 = 0x4147_434B
    static let recordVersion: UInt8 = 1
    /// magic u32 | u8 version | u8 codec | u16 flags | u32 rawLength | u32 storedLength
    /// | u32 CRC-32 of stored bytes | 32-byte id | u32 CRC-32 of header bytes 0..<52.
    static let recordHeaderSize = 56
    /// Largest stored length accepted from disk or from a caller: the largest raw chunk plus
    /// slack for codecs that expand incompressible data (lz4's bound is raw + raw/255 + 16).
    static let maxStoredLength = ChunkCodec.maxRawLength + ChunkCodec.maxRawLength / 128 + 1024

    /// The header and stored bytes of one record, ready to append.
    static func record(_ chunk: EncodedChunk) -> [UInt8] {
        var w = ByteWriter(capacity: recordHeaderSize + chunk.stored.count)
        w.u32(recordMagic)
        w.u8(recordVersion)
        w.u8(chunk.codec.rawValue)
        w.u16(0)
        w.u32(chunk.rawLength)
        w.u32(UInt32(clamping: chunk.stored.count))
        w.u32(chunk.checksum)
        w.chunkID(chunk.id)
        w.u32(Checksum.crc32(w.bytes))
        w.raw(chunk.stored)
        return w.bytes
    }

    /// A decoded record header, checked for internal consistency but not against the index.
    struct RecordHeader: Equatable {
        var codec: Codec
        var rawLength: UInt32
        var storedLength: UInt32
        var storedCRC: UInt32
        var id: ChunkID
    }

    /// Parses the first `recordHeaderSize` bytes of `bytes`; throws `.corruptData` saying why.
    static func parseRecordHeader(_ bytes: [UInt8]) throws(AgadirError) -> RecordHeader {
        guard bytes.count >= recordHeaderSize else {
            throw AgadirError(.corruptData, "record header is truncated (\(bytes.count) of \(recordHeaderSize) bytes)")
        }
        var r = ByteReader(bytes, errorCode: .corruptData, context: "record header")
        let magic = try r.u32("magic")
        let version = try r.u8("version")
        let codecByte = try r.u8("codec")
        let flags = try r.u16("flags")
        let rawLength = try r.u32("raw length")
        let storedLength = try r.u32("stored length")
        let storedCRC = try r.u32("stored CRC")
        let id = try r.chunkID("chunk id")
        let headerCRC = try r.u32("header CRC")
        let actualCRC = bytes.withUnsafeBytes { Checksum.crc32(UnsafeRawBufferPointer(rebasing: $0[0..<52])) }
        guard magic == recordMagic else {
            throw AgadirError(.corruptData, "record magic is 0x\(String(magic, radix: 16)), not AGCK")
        }
        guard headerCRC == actualCRC else {
            throw AgadirError(.corruptData, "record header CRC mismatch (stored \(headerCRC), computed \(actualCRC))")
        }
        guard version == recordVersion else { throw AgadirError(.corruptData, "record version \(version) is unknown") }
        guard flags == 0 else {
            throw AgadirError(.corruptData, "record flags 0x\(String(flags, radix: 16)) are unknown")
        }
        guard let codec = Codec(rawValue: codecByte) else {
            throw AgadirError(.corruptData, "record codec \(codecByte) is unknown")
        }
        guard Int(rawLength) <= ChunkCodec.maxRawLength, Int(storedLength) <= maxStoredLength else {
            throw AgadirError(.corruptData, "record claims \(rawLength) raw and \(storedLength) stored bytes")
        }
        return RecordHeader(
            codec: codec, rawLength: rawLength, storedLength: storedLength, storedCRC: storedCRC, id: id)
    }

    /// The file name of segment `number`: `seg-00000001.agseg`.
    static func fileName(_ number: UInt64) -> String {
        let digits = String(number)
        return "seg-" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits + ".agseg"
    }

    /// The largest segment number accepted from a file name or the database (2^48: a new
    /// segment per second for nine million years).
    static let maxSegmentNumber: UInt64 = 1 << 48

    /// The segment number encoded in a file name, or nil for any other file.
    static func number(fromFileName name: String) -> UInt64? {
        guard name.hasPrefix("seg-"), name.hasSuffix(".agseg") else { return nil }
        let digits = name.dropFirst(4).dropLast(6)
        guard digits.count >= 8, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        // Far below Int64.max, so `number + 1` and `Int64(number)` can never trap.
        guard let n = UInt64(digits), n <= maxSegmentNumber else { return nil }
        return n
    }
}
