// FastCDC content-defined chunking: Wen Xia et al., "FastCDC: a Fast and Efficient
// Content-Defined Chunking Approach for Data Deduplication", USENIX ATC 2016.
//
// Chunk boundaries decide which chunks two objects (or two versions of one object)
// share, on every node, forever: the gear table, the masks and the cut rule below are
// part of the storage format. Tests pin them (golden values); do not change them.

// MARK: - Settings

/// Chunk size limits of the content-defined chunker.
public struct ChunkerSettings: Sendable, Hashable {
    /// No chunk but the last of an object is shorter than this, in bytes. Default 256 KiB.
    public var minSize: Int
    /// The normal (target) chunk size in bytes; must be a power of two. Default 1 MiB.
    public var avgSize: Int
    /// No chunk is longer than this, in bytes. Default 4 MiB.
    public var maxSize: Int

    public init(minSize: Int, avgSize: Int, maxSize: Int) {
        self.minSize = minSize
        self.avgSize = avgSize
        self.maxSize = maxSize
    }

    /// 256 KiB / 1 MiB / 4 MiB.
    public static let `default` = ChunkerSettings(minSize: 256 * 1024, avgSize: 1024 * 1024, maxSize: 4 * 1024 * 1024)

    /// Smallest `minSize` allowed: the width in bytes of the Gear hash window.
    public static let smallestMinSize = 64

    /// Throws `AgadirError(.invalidArgument, ...)` unless
    /// `64 <= minSize < avgSize < maxSize <= ChunkCodec.maxRawLength` and `avgSize` is a power of two.
    public func validate() throws(AgadirError) {
        let limits = "minSize \(minSize), avgSize \(avgSize), maxSize \(maxSize)"
        guard minSize >= Self.smallestMinSize else {
            throw AgadirError(
                .invalidArgument, "chunker minSize must be at least \(Self.smallestMinSize) bytes (\(limits))")
        }
        guard minSize < avgSize, avgSize < maxSize else {
            throw AgadirError(
                .invalidArgument, "chunker sizes must satisfy minSize < avgSize < maxSize (\(limits))")
        }
        guard maxSize <= ChunkCodec.maxRawLength else {
            throw AgadirError(
                .invalidArgument,
                "chunker maxSize must be at most \(ChunkCodec.maxRawLength) bytes, the codec limit (\(limits))")
        }
        guard avgSize & (avgSize - 1) == 0 else {
            throw AgadirError(.invalidArgument, "chunker avgSize must be a power of two (\(limits))")
        }
    }
}

// MARK: - Chunker

/// FastCDC with normalized chunking level 2 (Xia et al., ATC 2016).
///
/// - Gear rolling hash (§2.2, §3.1): `fp = (fp << 1) + gear[byte]`, so bit `k` of `fp`
///   depends on the last `k + 1` bytes only; a cut point is a position where
///   `fp & mask == 0`.
/// - Hash judgment with zero-padded masks (§3.2): the mask's one-bits are spread over
///   the top 48 bits of the hash, so every judgment looks at a window of up to 64 bytes.
/// - Cut-point skipping (§3.3): no cut point is judged in the first `minSize` bytes of
///   a chunk. The hash is started 64 bytes before the first judged position, so every
///   judgment sees a full window and depends on the content only.
/// - Normalized chunking level 2 (§3.4): before `avgSize` bytes the harder mask `maskS`
///   (log2(avg) + 2 bits) is used, after it the easier `maskL` (log2(avg) - 2 bits),
///   which concentrates chunk sizes around `avgSize`.
///
/// A chunk of length `L` is cut after its byte `L - 1` when `L >= minSize` and the hash
/// of the window ending at that byte has no bit of `L < avgSize ? maskS : maskL` set; a
/// chunk that reaches `maxSize` is cut there.
public struct FastCDC: Sendable {
    public let settings: ChunkerSettings
    /// The mask used for chunk lengths below `avgSize` (log2(avgSize) + 2 one-bits).
    public let maskS: UInt64
    /// The mask used for chunk lengths from `avgSize` on (log2(avgSize) - 2 one-bits, all
    /// of them also in `maskS`).
    public let maskL: UInt64

    /// Prepares a chunker; `settings` should have passed `validate()`. Out-of-range values
    /// are clamped so that the chunker stays safe: every chunk still ends up with
    /// `1 <= length <= max(maxSize, 1)`.
    public init(settings: ChunkerSettings) {
        self.settings = settings
        let bits = Self.log2(settings.avgSize)
        maskS = Self.spreadMask(bits: bits + 2)
        maskL = Self.subMask(of: maskS, bits: max(bits - 2, 1))
    }

    /// Length of the next chunk starting at the beginning of `data`.
    ///
    /// If a cut point is found (or `data.count >= maxSize`, then `maxSize`), returns it. If
    /// there is no cut point and `data.count < maxSize`: returns `nil` when `!isFinal` (the
    /// caller must supply more bytes), and `data.count` when `isFinal`. Empty data gives
    /// `nil` even when final: there are no empty chunks.
    public func boundary(in data: UnsafeRawBufferPointer, isFinal: Bool) -> Int? {
        guard let base = data.baseAddress, data.count > 0 else { return nil }
        var state = ScanState(start: scanStart)
        if let cut = scan(base.assumingMemoryBound(to: UInt8.self), count: data.count, state: &state) {
            return cut
        }
        return isFinal ? data.count : nil
    }

    // MARK: Scanning

    /// Where the hash of a chunk starts: 64 bytes before the first judged byte.
    var scanStart: Int { max(settings.minSize - Self.windowBytes, 0) }

    /// The resumable part of a scan: how many bytes of the current chunk went through
    /// the hash, and the hash.
    struct ScanState: Sendable {
        var position: Int
        var hash: UInt64 = 0
        init(start: Int) { position = start }
    }

    /// Continues the scan of a chunk whose first `count` bytes are at `bytes`; returns the
    /// chunk's length if its end is known, otherwise records the progress in `state`.
    func scan(_ bytes: UnsafePointer<UInt8>, count: Int, state: inout ScanState) -> Int? {
        let maxSize = max(settings.maxSize, 1)
        let limit = min(count, maxSize)
        let judgeFrom = max(settings.minSize, 1) - 1  // index of the byte that ends a minSize chunk
        let normalFrom = max(settings.avgSize - 1, judgeFrom)  // index of the byte that ends an avgSize chunk
        let maskS = self.maskS
        let maskL = self.maskL
        let result: Int? = Self.gearTable.withUnsafeBufferPointer { table -> Int? in
            // The table always has 256 entries; this never fails.
            guard let gear = table.baseAddress else { return nil }
            var i = state.position
            var fp = state.hash
            // §3.3: bytes before minSize are only hashed (the last 64 of them), never judged.
            let warmEnd = min(judgeFrom, limit)
            while i < warmEnd {
                fp = (fp &<< 1) &+ gear[Int(bytes[i])]
                i &+= 1
            }
            // §3.4: the harder mask below the normal size...
            let smallEnd = min(normalFrom, limit)
            while i < smallEnd {
                fp = (fp &<< 1) &+ gear[Int(bytes[i])]
                if fp & maskS == 0 { return i &+ 1 }
                i &+= 1
            }
            // ...and the easier one above it.
            while i < limit {
                fp = (fp &<< 1) &+ gear[Int(bytes[i])]
                if fp & maskL == 0 { return i &+ 1 }
                i &+= 1
            }
            state.position = i
            state.hash = fp
            return nil
        }
        if let result { return result }
        return limit == maxSize ? maxSize : nil
    }

    // MARK: Constants

    /// Bytes seen by the Gear hash: bit 63 of `fp` depends on the last 64 bytes.
    static let windowBytes = 64

    /// Seed of the SplitMix64 sequence that fills `gearTable`. Part of the storage format.
    public static let gearSeed: UInt64 = 0x4147_4144_4952_4344  // "AGADIRCD" in ASCII

    /// The 256 random 64-bit values of the Gear hash (§2.2): entry `i` is the `i + 1`-th
    /// output of SplitMix64 (Steele, Lea and Flood, OOPSLA 2014) seeded with `gearSeed`.
    /// Identical on every node and in every version.
    public static let gearTable: [UInt64] = {
        var state = gearSeed
        var table: [UInt64] = []
        table.reserveCapacity(256)
        for _ in 0..<256 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            table.append(z ^ (z >> 31))
        }
        return table
    }()

    /// A mask of `bits` one-bits spread evenly over bits 63 down to 16 (§3.2, "zero
    /// padding"): one-bit `k` (k = 0, 1, ...) is at position `63 - (k * 48) / bits`.
    /// Clamped to 1...48 bits.
    static func spreadMask(bits: Int) -> UInt64 {
        let n = min(max(bits, 1), 48)
        var mask: UInt64 = 0
        for k in 0..<n { mask |= 1 << UInt64(63 - (k * 48) / n) }
        return mask
    }

    /// `bits` of the one-bits of `mask`, spread evenly: of its one-bits numbered from the
    /// top (0, 1, ..., n - 1), those numbered `(j * n) / bits` for j = 0, 1, ...
    ///
    /// `maskL` is such a sub-mask of `maskS`, so a position that passes the hard judgment
    /// passes the easy one too: when an edit moves a position across `avgSize` (a length
    /// changes by one), a cut point there is kept, and no new one appears from below.
    static func subMask(of mask: UInt64, bits: Int) -> UInt64 {
        var positions: [Int] = []
        for bit in stride(from: 63, through: 0, by: -1) where mask & (1 << UInt64(bit)) != 0 { positions.append(bit) }
        let n = positions.count
        let m = min(max(bits, 1), n)
        var sub: UInt64 = 0
        for j in 0..<m { sub |= 1 << UInt64(positions[(j * n) / m]) }
        return sub
    }

    /// Floor of log2 of `value` for `value >= 1`; 0 for smaller values.
    static func log2(_ value: Int) -> Int {
        value <= 1 ? 0 : Int.bitWidth - 1 - value.leadingZeroBitCount
    }
}

// MARK: - Streaming

/// Streaming front-end of `FastCDC`: feed bytes of any size in any pieces, get complete
/// chunks out, in order. The chunks are exactly those `FastCDC.boundary` gives on the
/// whole input at once.
///
/// Holds at most `maxSize` bytes between calls (always less than `maxSize` after
/// `append`): large appends are chunked in place and only their tail is copied. Every
/// byte is hashed once and copied into the internal buffer at most once (plus amortized
/// compaction), so the work is linear in the input, whatever the piece sizes.
public struct StreamingChunker: Sendable {
    private let chunker: FastCDC
    /// Bytes of the pending chunk are `buffer[start...]`.
    private var buffer: [UInt8] = []
    private var start = 0
    /// Progress of the scan over the pending chunk.
    private var state: FastCDC.ScanState

    public init(settings: ChunkerSettings) {
        chunker = FastCDC(settings: settings)
        state = FastCDC.ScanState(start: chunker.scanStart)
    }

    /// Bytes received but not yet returned in a chunk.
    public var bufferedByteCount: Int { buffer.count - start }

    /// Adds `bytes` to the stream; returns the chunks that are now complete, in order.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        guard var input = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count > 0 else {
            return chunks
        }
        var left = bytes.count
        let maxSize = max(chunker.settings.maxSize, 1)
        while left > 0 {
            if bufferedByteCount == 0 {
                // Nothing pending: chunk the input where it lies, keep only its tail.
                while left > 0, let cut = chunker.scan(input, count: left, state: &state) {
                    chunks.append([UInt8](UnsafeBufferPointer(start: input, count: cut)))
                    input += cut
                    left -= cut
                    state = FastCDC.ScanState(start: chunker.scanStart)
                }
                buffer.removeAll(keepingCapacity: true)
                start = 0
                buffer.append(contentsOf: UnsafeBufferPointer(start: input, count: left))
                left = 0
            } else {
                // Top the pending chunk up to at most maxSize bytes, then look for its end.
                let take = min(left, maxSize - bufferedByteCount)
                buffer.append(contentsOf: UnsafeBufferPointer(start: input, count: take))
                input += take
                left -= take
                emitBuffered(into: &chunks)
            }
        }
        return chunks
    }

    /// Adds `bytes` to the stream; returns the chunks that are now complete, in order.
    public mutating func append(_ bytes: [UInt8]) -> [[UInt8]] {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Ends the stream: returns the remaining chunk(s), `[]` when nothing is buffered.
    /// The chunker is then empty and may start a new stream.
    public mutating func finish() -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        emitBuffered(into: &chunks)
        if bufferedByteCount > 0 { chunks.append(Array(buffer[start...])) }
        buffer.removeAll()
        start = 0
        state = FastCDC.ScanState(start: chunker.scanStart)
        return chunks
    }

    /// Cuts every complete chunk off the buffer, then compacts it if more than half of it
    /// is spent.
    private mutating func emitBuffered(into chunks: inout [[UInt8]]) {
        while bufferedByteCount > 0 {
            let pending = bufferedByteCount
            let cut = buffer.withUnsafeBufferPointer { all -> Int? in
                guard let base = all.baseAddress else { return nil }
                return chunker.scan(base + start, count: pending, state: &state)
            }
            guard let cut else { break }
            chunks.append(Array(buffer[start..<start + cut]))
            start += cut
            state = FastCDC.ScanState(start: chunker.scanStart)
        }
        if start > 0, start >= buffer.count - start {
            buffer.removeSubrange(0..<start)
            start = 0
        }
    }
}
