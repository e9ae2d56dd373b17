/// Appends big-endian integers and length-prefixed fields to a byte array.
///
/// Used by every binary format of Agadir (wire headers, manifests, chunk records), so
/// all of them share one notion of byte order: big-endian, like network order.
public struct ByteWriter: Sendable {
    public var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }

    public mutating func u16(_ v: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    public mutating func u32(_ v: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(shift)))
        }
    }

    public mutating func u64(_ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift)))
        }
    }

    public mutating func raw<C: Collection>(_ v: C) where C.Element == UInt8 { bytes.append(contentsOf: v) }

    /// A u16 length then the bytes; the caller guarantees `v.count <= 65535`.
    public mutating func bytes16<C: Collection>(_ v: C) where C.Element == UInt8 {
        u16(UInt16(clamping: v.count))
        bytes.append(contentsOf: v.prefix(Int(UInt16.max)))
    }

    /// A u32 length then the bytes.
    public mutating func bytes32<C: Collection>(_ v: C) where C.Element == UInt8 {
        u32(UInt32(clamping: v.count))
        bytes.append(contentsOf: v)
    }

    public mutating func string16(_ s: String) { bytes16(Array(s.utf8)) }

    public mutating func chunkID(_ id: ChunkID) {
        u64(id.w0)
        u64(id.w1)
        u64(id.w2)
        u64(id.w3)
    }
}

/// Reads what `ByteWriter` wrote, never past the end: every read is bounds-checked and
/// a short or lying input is a thrown `AgadirError` (code chosen by the caller).
public struct ByteReader {
    public let bytes: [UInt8]
    public private(set) var offset: Int
    private let errorCode: AgadirError.Code
    private let context: String

    public init(_ bytes: [UInt8], offset: Int = 0, errorCode: AgadirError.Code = .malformedFrame, context: String) {
        self.bytes = bytes
        self.offset = offset
        self.errorCode = errorCode
        self.context = context
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset == bytes.count }

    private mutating func need(_ n: Int, _ what: String) throws(AgadirError) {
        guard n >= 0, remaining >= n else {
            throw AgadirError(
                errorCode, "\(context): truncated while reading \(what) (need \(n) bytes, have \(remaining))")
        }
    }

    public mutating func u8(_ what: String = "u8") throws(AgadirError) -> UInt8 {
        try need(1, what)
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u16(_ what: String = "u16") throws(AgadirError) -> UInt16 {
        try need(2, what)
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    public mutating func u32(_ what: String = "u32") throws(AgadirError) -> UInt32 {
        try need(4, what)
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(bytes[offset + i]) }
        offset += 4
        return v
    }

    public mutating func u64(_ what: String = "u64") throws(AgadirError) -> UInt64 {
        try need(8, what)
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(bytes[offset + i]) }
        offset += 8
        return v
    }

    public mutating func raw(_ n: Int, _ what: String = "bytes") throws(AgadirError) -> ArraySlice<UInt8> {
        try need(n, what)
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    public mutating func bytes16(_ what: String = "bytes16") throws(AgadirError) -> [UInt8] {
        let n = Int(try u16("length of \(what)"))
        return Array(try raw(n, what))
    }

    public mutating func bytes32(_ what: String = "bytes32", max: Int) throws(AgadirError) -> [UInt8] {
        let n = Int(try u32("length of \(what)"))
        guard n <= max else { throw AgadirError(errorCode, "\(context): \(what) claims \(n) bytes, limit \(max)") }
        return Array(try raw(n, what))
    }

    public mutating func string16(_ what: String = "string") throws(AgadirError) -> String {
        let b = try bytes16(what)
        guard let s = String(validating: b, as: UTF8.self) else {
            throw AgadirError(errorCode, "\(context): \(what) is not valid UTF-8")
        }
        return s
    }

    public mutating func chunkID(_ what: String = "chunk id") throws(AgadirError) -> ChunkID {
        ChunkID(w0: try u64(what), w1: try u64(what), w2: try u64(what), w3: try u64(what))
    }
}
