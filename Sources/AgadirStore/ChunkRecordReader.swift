import AgadirCore

/// Where the index says a chunk is. Read from SQLite, so untrusted until checked.
struct ChunkLocation: Sendable, Equatable {
    var segment: UInt64
    var offset: Int
    var storedLength: Int
    var rawLength: Int
    var codec: UInt8
    var crc: UInt32
}

/// Reads one chunk record with `pread` and verifies it end to end (docs/storage.md,
/// "Verified reads"): record header CRC and fields, id in the header, stored-bytes CRC (for
/// compressed records; a raw record is covered by the SHA-256 itself),
/// bounded decoding, and the SHA-256 of the decoded bytes. Any mismatch is a `.corruptChunk`
/// naming the chunk, the segment and the offset; nothing read from disk can crash it.
enum ChunkRecordReader {
    static func read(
        _ id: ChunkID, at location: ChunkLocation, files: SegmentReadFiles,
        checked: (header: SegmentFormat.RecordHeader, stored: [UInt8])? = nil
    ) throws(AgadirError) -> [UInt8] {
        let header: SegmentFormat.RecordHeader
        let stored: [UInt8]
        if let checked {
            (header, stored) = checked
        } else {
            (header, stored) = try readChecked(id, at: location, files: files)
        }
        let corrupt = corruption(id, location)
        let raw: [UInt8]
        if header.codec == .raw {
            // Stored bytes are the chunk: the SHA-256 below checks them more strongly than the
            // CRC would (which profiled at ~20% of a large GET), so the CRC is skipped here.
            guard stored.count == Int(header.rawLength) else {
                throw corrupt("raw record holds \(stored.count) bytes but claims \(header.rawLength)")
            }
            raw = stored
        } else {
            let storedCRC = Checksum.crc32(stored)
            guard storedCRC == header.storedCRC else {
                throw corrupt("stored bytes have CRC-32 \(storedCRC), the record says \(header.storedCRC)")
            }
            var codec = ChunkCodec()
            let decoded = stored.withUnsafeBytes { buf in
                Result { () throws(AgadirError) -> [UInt8] in
                    try codec.decode(buf, codec: header.codec, rawLength: Int(header.rawLength))
                }
            }
            switch decoded {
            case .success(let bytes): raw = bytes
            case .failure(let error): throw corrupt(error.message)
            }
        }
        try ChunkVerifier.verify(raw, id: id, context: "in segment \(location.segment) at offset \(location.offset)")
        return raw
    }

    /// Verifies a record completely, as scrubbing wants: everything `read` checks, and the CRC-32 of the stored
    /// bytes for raw records too. Throws `.corruptChunk` saying what is wrong.
    static func verify(_ id: ChunkID, at location: ChunkLocation, files: SegmentReadFiles) throws(AgadirError) {
        let (header, stored) = try readChecked(id, at: location, files: files)
        let storedCRC = Checksum.crc32(stored)
        guard storedCRC == header.storedCRC else {
            throw corruption(id, location)("stored bytes have CRC-32 \(storedCRC), the record says \(header.storedCRC)")
        }
        _ = try read(id, at: location, files: files, checked: (header, stored))
    }

    /// The record as stored, for sending to another node that verifies it: header checked
    /// (CRC, fields, id, agreement with the index) and the CRC-32 of the stored bytes checked
    /// for every codec, but not decoded or hashed.
    static func readRecord(
        _ id: ChunkID, at location: ChunkLocation, files: SegmentReadFiles
    ) throws(AgadirError) -> EncodedChunk {
        let (header, stored) = try readChecked(id, at: location, files: files)
        let corrupt = corruption(id, location)
        guard header.codec != .raw || stored.count == Int(header.rawLength) else {
            throw corrupt("raw record holds \(stored.count) bytes but claims \(header.rawLength)")
        }
        let storedCRC = Checksum.crc32(stored)
        guard storedCRC == header.storedCRC else {
            throw corrupt("stored bytes have CRC-32 \(storedCRC), the record says \(header.storedCRC)")
        }
        return EncodedChunk(
            id: id, codec: header.codec, rawLength: header.rawLength, stored: stored, checksum: header.storedCRC)
    }

    private static func corruption(_ id: ChunkID, _ location: ChunkLocation) -> (String) -> AgadirError {
        { why in
            AgadirError(
                .corruptChunk,
                "chunk \(id.hex) in segment \(location.segment) at offset \(location.offset) is corrupt: \(why)")
        }
    }

    /// Reads the header and the stored bytes of the record the index points at, and checks
    /// everything short of the stored bytes themselves: index values within bounds, segment
    /// file header, record complete, header CRC and fields, the id, agreement with the index.
    private static func readChecked(
        _ id: ChunkID, at location: ChunkLocation, files: SegmentReadFiles
    ) throws(AgadirError) -> (header: SegmentFormat.RecordHeader, stored: [UInt8]) {
        let corrupt = corruption(id, location)
        guard location.offset >= SegmentFormat.fileHeaderSize, location.offset < 1 << 48,
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
        // Header and stored bytes are read separately, so a raw chunk's bytes are returned
        // as read, without another copy.
        let headerBytes = try Posix.pread(
            file.fd, count: SegmentFormat.recordHeaderSize, at: location.offset, path: file.path)
        let stored = try Posix.pread(
            file.fd, count: location.storedLength, at: location.offset + SegmentFormat.recordHeaderSize, path: file.path
        )
        guard headerBytes.count == SegmentFormat.recordHeaderSize, stored.count == location.storedLength else {
            let have = headerBytes.count + stored.count
            throw corrupt(
                "the record is truncated (\(have) of \(SegmentFormat.recordHeaderSize + location.storedLength) bytes on disk)"
            )
        }
        let header: SegmentFormat.RecordHeader
        do throws(AgadirError) {
            header = try SegmentFormat.parseRecordHeader(headerBytes)
        } catch {
            throw corrupt(error.message)
        }
        guard header.id == id else { throw corrupt("the record there holds chunk \(header.id.hex)") }
        guard Int(header.storedLength) == location.storedLength, Int(header.rawLength) == location.rawLength,
            header.codec.rawValue == location.codec, header.storedCRC == location.crc
        else {
            throw corrupt("the record header disagrees with the index")
        }
        return (header, stored)
    }
}
