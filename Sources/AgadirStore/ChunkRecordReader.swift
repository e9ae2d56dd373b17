import AgadirCore

/// Where the index says a chunk is. Read from SQLite, so untrusted until checked.
struct ChunkLocation: Sendable {
    var segment: UInt64
    var offset: Int
    var storedLength: Int
    var rawLength: Int
    var codec: UInt8
    var crc: UInt32
}

/// Reads one chunk record with `pread` and verifies it end to end (docs/storage.md,
/// "Verified reads"): record header CRC and fields, id in the header, stored-bytes CRC,
/// bounded decoding, and the SHA-256 of the decoded bytes. Any mismatch is a `.corruptChunk`
/// naming the chunk, the segment and the offset; nothing read from disk can crash it.
enum ChunkRecordReader {
    static func read(
        _ id: ChunkID, at location: ChunkLocation, files: SegmentReadFiles
    ) throws(AgadirError) -> [UInt8] {
        func corrupt(_ why: String) -> AgadirError {
            AgadirError(
                .corruptChunk,
                "chunk \(id.hex) in segment \(location.segment) at offset \(location.offset) is corrupt: \(why)")
        }
        guard location.offset >= SegmentFormat.fileHeaderSize,
            (0...SegmentFormat.maxStoredLength).contains(location.storedLength),
            (0...ChunkCodec.maxRawLength).contains(location.rawLength)
        else {
            throw corrupt(
                "its index entry is impossible (stored length \(location.storedLength), raw \(location.rawLength))")
        }
        let file: SegmentReadFile
        do throws(AgadirError) {
            file = try files.file(location.segment)
        } catch {
            if error.code == .shuttingDown { throw error }
            throw corrupt("its segment file cannot be used: \(error.message)")
        }
        let total = SegmentFormat.recordHeaderSize + location.storedLength
        let bytes = try Posix.pread(file.fd, count: total, at: location.offset, path: file.path)
        guard bytes.count == total else {
            throw corrupt("the record is truncated (\(bytes.count) of \(total) bytes on disk)")
        }
        let header: SegmentFormat.RecordHeader
        do throws(AgadirError) {
            header = try SegmentFormat.parseRecordHeader(bytes)
        } catch {
            throw corrupt(error.message)
        }
        guard header.id == id else { throw corrupt("the record there holds chunk \(header.id.hex)") }
        guard Int(header.storedLength) == location.storedLength, Int(header.rawLength) == location.rawLength,
            header.codec.rawValue == location.codec, header.storedCRC == location.crc
        else {
            throw corrupt("the record header disagrees with the index")
        }
        let storedCRC = bytes.withUnsafeBytes { raw in
            Checksum.crc32(UnsafeRawBufferPointer(rebasing: raw[SegmentFormat.recordHeaderSize...]))
        }
        guard storedCRC == header.storedCRC else {
            throw corrupt("stored bytes have CRC-32 \(storedCRC), the record says \(header.storedCRC)")
        }
        var codec = ChunkCodec()
        let decoded = bytes.withUnsafeBytes { raw in
            Result { () throws(AgadirError) -> [UInt8] in
                try codec.decode(
                    UnsafeRawBufferPointer(rebasing: raw[SegmentFormat.recordHeaderSize...]), codec: header.codec,
                    rawLength: Int(header.rawLength))
            }
        }
        let raw: [UInt8]
        switch decoded {
        case .success(let bytes): raw = bytes
        case .failure(let error): throw corrupt(error.message)
        }
        let actual = ChunkID.of(raw)
        guard actual == id else { throw corrupt("its decoded bytes hash to \(actual.hex)") }
        return raw
    }
}
