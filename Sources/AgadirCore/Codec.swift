import CLZ4
import CZlib

/// How a chunk's bytes are stored. The raw value is written on disk and on the wire.
public enum Codec: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case raw = 0
    case lz4 = 1
    case zlib = 2

    public init?(name: String) {
        switch name.lowercased() {
        case "raw", "none": self = .raw
        case "lz4": self = .lz4
        case "zlib", "deflate": self = .zlib
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .raw: "raw"
        case .lz4: "lz4"
        case .zlib: "zlib"
        }
    }

    public var description: String { name }
}

/// A chunk ready to be stored: what the chunk record on disk holds.
public struct EncodedChunk: Sendable, Hashable {
    /// SHA-256 of the uncompressed bytes.
    public var id: ChunkID
    /// The codec actually used (`raw` when compression did not pay).
    public var codec: Codec
    /// Length of the uncompressed bytes.
    public var rawLength: UInt32
    /// The bytes as stored.
    public var stored: [UInt8]
    /// CRC-32 (IEEE, as zlib's `crc32`) of `stored`.
    public var checksum: UInt32

    public init(id: ChunkID, codec: Codec, rawLength: UInt32, stored: [UInt8], checksum: UInt32) {
        self.id = id
        self.codec = codec
        self.rawLength = rawLength
        self.stored = stored
        self.checksum = checksum
    }
}

public enum Checksum {
    /// CRC-32 (IEEE 802.3 polynomial) through zlib.
    public static func crc32(_ data: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        var crc = UInt(seed)
        var base = data.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var left = data.count
        while left > 0, let p = base {
            let n = min(left, Int(UInt32.max))
            crc = CZlib.crc32(crc, p, UInt32(n))
            base = p + n
            left -= n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    public static func crc32(_ data: [UInt8]) -> UInt32 { data.withUnsafeBytes { crc32($0) } }
}

/// Compresses and decompresses chunks, reusing its scratch buffers between calls.
///
/// Not thread-safe: give each task its own. Every decompression is bounded by the
/// claimed raw length, which is itself bounded by `maxRawLength`: corrupt, truncated or
/// lying input is an `AgadirError(.corruptData)`, never a crash or a large allocation.
public struct ChunkCodec {
    /// Largest chunk any codec will produce or accept (4x the largest default chunk).
    public static let maxRawLength = 16 * 1024 * 1024
    /// Bytes of a chunk that are lz4-compressed to decide whether zlib is worth running.
    public static let zlibSampleBytes = 64 * 1024
    /// zlib level used for `.zlib` (1 = fastest; see MACHINE.md for the speed ladder).
    public var zlibLevel: Int32 = 1

    private var lz4State: [UInt8]
    private var scratch: [UInt8] = []

    public init() {
        lz4State = []  // allocated by the first compression: decoding needs none
    }

    /// True when `compressed` bytes are worth keeping instead of `raw` bytes: they save
    /// at least one eighth.
    public static func pays(compressed: Int, raw: Int) -> Bool {
        compressed <= raw - raw / 8 && compressed < raw
    }

    /// Hashes `raw` (unless `id` is given), compresses it with `preferred`, and falls back
    /// to `.raw` when compression saves less than one eighth.
    ///
    /// Throws `.invalidArgument` for a chunk longer than `maxRawLength`: `decode` refuses
    /// anything longer, so such a chunk could be stored but never read back.
    public mutating func encode(
        _ raw: UnsafeRawBufferPointer, preferred: Codec, id: ChunkID? = nil
    ) throws(AgadirError) -> EncodedChunk {
        guard raw.count <= Self.maxRawLength else {
            throw AgadirError(
                .invalidArgument,
                "chunk of \(raw.count) bytes is longer than the largest chunk, \(Self.maxRawLength) bytes")
        }
        let chunkID = id ?? ChunkID.of(raw)
        var codec = preferred
        var stored: [UInt8]? = nil
        if raw.count == 0 { codec = .raw }
        switch codec {
        case .raw:
            break
        case .lz4:
            stored = compressLZ4(raw)
        case .zlib:
            // zlib runs at ~45 MB/s on incompressible data; ask lz4 about a sample first.
            let sample = UnsafeRawBufferPointer(rebasing: raw.prefix(Self.zlibSampleBytes))
            if let s = compressLZ4(sample), Self.pays(compressed: s.count, raw: sample.count) {
                stored = compressZlib(raw)
            }
        }
        if let stored, Self.pays(compressed: stored.count, raw: raw.count) {
            return EncodedChunk(
                id: chunkID, codec: codec, rawLength: UInt32(raw.count), stored: stored,
                checksum: stored.withUnsafeBytes { Checksum.crc32($0) })
        }
        let bytes = [UInt8](raw)
        return EncodedChunk(
            id: chunkID, codec: .raw, rawLength: UInt32(raw.count), stored: bytes,
            checksum: Checksum.crc32(raw))
    }

    public mutating func encode(_ raw: [UInt8], preferred: Codec, id: ChunkID? = nil) throws(AgadirError)
        -> EncodedChunk
    {
        let result = raw.withUnsafeBytes { buf in
            Result { () throws(AgadirError) -> EncodedChunk in try encode(buf, preferred: preferred, id: id) }
        }
        return try result.get()
    }

    /// Returns the uncompressed bytes of `stored`, which must decode to exactly
    /// `rawLength` bytes. Does not check hashes; `ChunkVerifier` does.
    public mutating func decode(
        _ stored: UnsafeRawBufferPointer, codec: Codec, rawLength: Int
    ) throws(AgadirError) -> [UInt8] {
        guard rawLength >= 0, rawLength <= Self.maxRawLength else {
            throw AgadirError(.corruptData, "chunk claims \(rawLength) raw bytes; the limit is \(Self.maxRawLength)")
        }
        switch codec {
        case .raw:
            guard stored.count == rawLength else {
                throw AgadirError(.corruptData, "raw chunk holds \(stored.count) bytes but claims \(rawLength)")
            }
            return [UInt8](stored)
        case .lz4:
            guard stored.count <= Int(Int32.max), let src = stored.baseAddress else {
                throw AgadirError(.corruptData, "lz4 chunk of \(stored.count) bytes cannot be decoded")
            }
            var out = [UInt8](repeating: 0, count: rawLength)
            let n = out.withUnsafeMutableBytes { dst -> Int32 in
                LZ4_decompress_safe(
                    src.assumingMemoryBound(to: CChar.self), dst.baseAddress?.assumingMemoryBound(to: CChar.self),
                    Int32(stored.count), Int32(rawLength))
            }
            guard n == Int32(rawLength) else {
                let got = n < 0 ? "garbage" : "\(n) bytes"
                throw AgadirError(.corruptData, "lz4 chunk decodes to \(got) instead of \(rawLength)")
            }
            return out
        case .zlib:
            guard let src = stored.baseAddress else {
                throw AgadirError(.corruptData, "zlib chunk is empty")
            }
            var out = [UInt8](repeating: 0, count: max(rawLength, 1))
            var destLen = uLongf(rawLength)
            var srcLen = uLong(stored.count)
            let rc = out.withUnsafeMutableBytes { dst -> Int32 in
                uncompress2(
                    dst.baseAddress?.assumingMemoryBound(to: Bytef.self), &destLen,
                    src.assumingMemoryBound(to: Bytef.self), &srcLen)
            }
            guard rc == Z_OK, Int(destLen) == rawLength, Int(srcLen) == stored.count else {
                throw AgadirError(
                    .corruptData,
                    "zlib chunk does not decode to \(rawLength) bytes "
                        + "(zlib status \(rc), \(destLen) bytes out, \(srcLen) of \(stored.count) in)")
            }
            if rawLength == 0 { out.removeAll() }
            return out
        }
    }

    /// Checks `chunk.checksum` against the stored bytes, then decodes them.
    ///
    /// The checksum is what catches corruption that still decodes: a flipped byte in an lz4
    /// literal or in a raw chunk gives bytes of the right length but the wrong content.
    public mutating func decode(_ chunk: EncodedChunk) throws(AgadirError) -> [UInt8] {
        let actual = Checksum.crc32(chunk.stored)
        guard actual == chunk.checksum else {
            throw AgadirError(
                .corruptData,
                "\(chunk.codec) chunk \(chunk.id.hex) fails its CRC-32 (stored \(Self.hex32(chunk.checksum)), "
                    + "computed \(Self.hex32(actual)))")
        }
        let result = chunk.stored.withUnsafeBytes { buf in
            Result { () throws(AgadirError) -> [UInt8] in
                try decode(buf, codec: chunk.codec, rawLength: Int(chunk.rawLength))
            }
        }
        return try result.get()
    }

    private static func hex32(_ v: UInt32) -> String {
        Hex.encode([UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)])
    }

    // MARK: Compressors

    private mutating func compressLZ4(_ raw: UnsafeRawBufferPointer) -> [UInt8]? {
        guard let src = raw.baseAddress, raw.count <= Self.maxRawLength else { return nil }
        let bound = Int(LZ4_compressBound(Int32(raw.count)))
        if scratch.count < bound { scratch = [UInt8](repeating: 0, count: bound) }
        if lz4State.isEmpty { lz4State = [UInt8](repeating: 0, count: Int(LZ4_sizeofState())) }
        let n = lz4State.withUnsafeMutableBytes { state in
            scratch.withUnsafeMutableBytes { dst in
                LZ4_compress_fast_extState(
                    state.baseAddress, src.assumingMemoryBound(to: CChar.self),
                    dst.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(raw.count), Int32(bound), 1)
            }
        }
        guard n > 0 else { return nil }
        return Array(scratch[0..<Int(n)])
    }

    private mutating func compressZlib(_ raw: UnsafeRawBufferPointer) -> [UInt8]? {
        guard let src = raw.baseAddress else { return nil }
        let bound = Int(compressBound(uLong(raw.count)))
        if scratch.count < bound { scratch = [UInt8](repeating: 0, count: bound) }
        var destLen = uLongf(bound)
        let level = zlibLevel
        let rc = scratch.withUnsafeMutableBytes { dst in
            compress2(
                dst.baseAddress?.assumingMemoryBound(to: Bytef.self), &destLen,
                src.assumingMemoryBound(to: Bytef.self), uLong(raw.count), level)
        }
        guard rc == Z_OK else { return nil }
        return Array(scratch[0..<Int(destLen)])
    }
}

/// Checks a chunk read back from storage or from the network.
public enum ChunkVerifier {
    /// Throws `.corruptChunk` naming `id` unless `raw` hashes to `id`. `context` says where
    /// the bytes came from and is placed after the id: "chunk <id> in segment 3 at offset
    /// 32 is corrupt: its bytes hash to <other>".
    public static func verify(
        _ raw: [UInt8], id: ChunkID, context: @autoclosure () -> String = ""
    ) throws(AgadirError) {
        let actual = ChunkID.of(raw)
        guard actual == id else {
            let place = context()
            throw AgadirError(
                .corruptChunk,
                "chunk \(id.hex)\(place.isEmpty ? "" : " " + place) is corrupt: its bytes hash to \(actual.hex)")
        }
    }
}
