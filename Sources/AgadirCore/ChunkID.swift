import Crypto

/// The identity of a chunk: the SHA-256 of its *uncompressed* bytes.
///
/// Stored as four big-endian words so that hashing and comparison are cheap; `bytes`
/// and `hex` give the canonical 32-byte and 64-character forms.
public struct ChunkID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let byteCount = 32

    public var w0: UInt64
    public var w1: UInt64
    public var w2: UInt64
    public var w3: UInt64

    public init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        (self.w0, self.w1, self.w2, self.w3) = (w0, w1, w2, w3)
    }

    /// Builds an id from exactly 32 bytes; `nil` for any other length.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        guard bytes.count == Self.byteCount else { return nil }
        var words: [UInt64] = [0, 0, 0, 0]
        for (i, b) in bytes.enumerated() { words[i / 8] = words[i / 8] << 8 | UInt64(b) }
        self.init(w0: words[0], w1: words[1], w2: words[2], w3: words[3])
    }

    /// Parses 64 hexadecimal characters (either case); `nil` otherwise.
    public init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(32)
        var i = 0
        while i < 64 {
            guard let hi = Self.nibble(utf8[i]), let lo = Self.nibble(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        self.init(bytes: out)
    }

    /// The SHA-256 of `data`.
    public static func of(_ data: UnsafeRawBufferPointer) -> ChunkID {
        ChunkID(digest: SHA256.hash(data: data))
    }

    /// The SHA-256 of `data`.
    public static func of(_ data: [UInt8]) -> ChunkID {
        data.withUnsafeBytes { ChunkID.of($0) }
    }

    public init(digest: SHA256.Digest) {
        var words: [UInt64] = [0, 0, 0, 0]
        var i = 0
        digest.withUnsafeBytes { raw in
            for b in raw {
                words[i / 8] = words[i / 8] << 8 | UInt64(b)
                i += 1
            }
        }
        self.init(w0: words[0], w1: words[1], w2: words[2], w3: words[3])
    }

    /// The 32 canonical bytes (big-endian words).
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(32)
        for w in [w0, w1, w2, w3] {
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: w >> UInt64(shift)))
            }
        }
        return out
    }

    /// Lower-case hexadecimal, 64 characters.
    public var hex: String { Hex.encode(bytes) }

    public var description: String { hex }

    /// The first 64 bits, for placement and sharding.
    public var prefix64: UInt64 { w0 }

    public static func < (lhs: ChunkID, rhs: ChunkID) -> Bool {
        (lhs.w0, lhs.w1, lhs.w2, lhs.w3) < (rhs.w0, rhs.w1, rhs.w2, rhs.w3)
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// Lower-case hexadecimal encoding.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Incremental SHA-256 for whole objects (the ETag).
public struct ObjectHasher: Sendable {
    private var hasher = SHA256()

    public init() {}

    public mutating func update(_ data: UnsafeRawBufferPointer) { hasher.update(bufferPointer: data) }

    public mutating func update(_ data: [UInt8]) { data.withUnsafeBytes { hasher.update(bufferPointer: $0) } }

    public func finalize() -> ChunkID { ChunkID(digest: hasher.finalize()) }
}
