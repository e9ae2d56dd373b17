import AgadirCore

/// Bounds every peer enforces on what it receives. Documented in docs/protocol.md.
public struct WireLimits: Sendable, Hashable {
    /// Largest header section (the fields) of one frame, in bytes. Default 64 KiB.
    public var maxHeaderBytes: Int = 64 * 1024
    /// Most fields in one frame. Default 256.
    public var maxFieldCount: Int = 256
    /// Largest payload of one frame, in bytes. Default 1 MiB (what clients send in DATA
    /// frames); with 16 frames buffered per connection that bounds a connection's inbound
    /// memory to 16 MiB plus its request bodies' buffers.
    public var maxPayloadBytes: Int = 1024 * 1024
    /// Most requests in flight on one connection. Default 128.
    public var maxInFlightRequests: Int = 128
    /// Largest body of a LIST, LIST_BUCKETS, STAT or MEMBERS response, in bytes. Default 8 MiB.
    public var maxListingBodyBytes: Int = 8 * 1024 * 1024
    /// Most keys one LIST page may return. Default 1000.
    public var maxListLimit: Int = 1000

    public init() {}

    public static let `default` = WireLimits()
}

/// The kind of a frame (byte 5 of the fixed header).
public enum FrameKind: UInt8, Sendable, CustomStringConvertible {
    /// Opens a request stream: opcode and fields; may carry the first body bytes.
    case request = 1
    /// Opens a response stream: status, opcode echoed, fields; may carry body bytes.
    case response = 2
    /// More body bytes of an open request or response stream.
    case data = 3
    /// Ends an open stream with an error status (from either side).
    case abort = 4

    public var description: String {
        switch self {
        case .request: "REQUEST"
        case .response: "RESPONSE"
        case .data: "DATA"
        case .abort: "ABORT"
        }
    }
}

/// Operations (bytes 8-9 of the fixed header).
public enum Opcode: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case ping = 1
    case createBucket = 2
    case deleteBucket = 3
    case listBuckets = 4
    case put = 5
    case get = 6
    case head = 7
    case delete = 8
    case list = 9
    case stat = 10
    case members = 11
    case admin = 12
    case route = 13

    public var description: String {
        switch self {
        case .ping: "PING"
        case .createBucket: "CREATE_BUCKET"
        case .deleteBucket: "DELETE_BUCKET"
        case .listBuckets: "LIST_BUCKETS"
        case .put: "PUT"
        case .get: "GET"
        case .head: "HEAD"
        case .delete: "DELETE"
        case .list: "LIST"
        case .stat: "STAT"
        case .members: "MEMBERS"
        case .admin: "ADMIN"
        case .route: "ROUTE"
        }
    }
}

/// The 32-byte fixed header that starts every frame. All integers big-endian.
///
///     offset size field
///     0      4    magic "AGDR" (0x41 0x47 0x44 0x52)
///     4      1    protocol version (1)
///     5      1    kind (FrameKind)
///     6      2    flags (bit 0: END_STREAM; other bits must be zero)
///     8      2    opcode (0 in DATA and ABORT frames)
///     10     2    status (0 = OK; an error code in RESPONSE and ABORT frames)
///     12     4    header length H: bytes of fields that follow
///     16     8    request id
///     24     4    payload length P: body bytes after the fields
///     28     4    reserved, zero
public struct FrameHeader: Sendable, Hashable {
    public static let size = 32
    public static let magic: [UInt8] = [0x41, 0x47, 0x44, 0x52]
    public static let version: UInt8 = 1
    public static let endStream: UInt16 = 1

    public var kind: FrameKind
    public var flags: UInt16
    public var opcode: UInt16
    public var status: UInt16
    public var headerLength: UInt32
    public var requestID: UInt64
    public var payloadLength: UInt32

    public init(
        kind: FrameKind, flags: UInt16 = 0, opcode: UInt16 = 0, status: UInt16 = 0, headerLength: UInt32 = 0,
        requestID: UInt64, payloadLength: UInt32 = 0
    ) {
        self.kind = kind
        self.flags = flags
        self.opcode = opcode
        self.status = status
        self.headerLength = headerLength
        self.requestID = requestID
        self.payloadLength = payloadLength
    }

    public var isEndStream: Bool { flags & Self.endStream != 0 }

    public func encode(into w: inout ByteWriter) {
        w.raw(Self.magic)
        w.u8(Self.version)
        w.u8(kind.rawValue)
        w.u16(flags)
        w.u16(opcode)
        w.u16(status)
        w.u32(headerLength)
        w.u64(requestID)
        w.u32(payloadLength)
        w.u32(0)
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        encode(into: &w)
        return w.bytes
    }

    /// Parses and validates 32 bytes against `limits`. Any violation is a
    /// connection-fatal error (1xx code): the stream cannot be resynchronised.
    public static func decode(_ bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(AgadirError) -> FrameHeader {
        guard bytes.count >= size else {
            throw AgadirError(.malformedFrame, "frame header needs \(size) bytes, got \(bytes.count)")
        }
        func u16(_ o: Int) -> UInt16 { UInt16(bytes[o]) << 8 | UInt16(bytes[o + 1]) }
        func u32(_ o: Int) -> UInt32 {
            UInt32(bytes[o]) << 24 | UInt32(bytes[o + 1]) << 16 | UInt32(bytes[o + 2]) << 8 | UInt32(bytes[o + 3])
        }
        guard bytes[0] == 0x41, bytes[1] == 0x47, bytes[2] == 0x44, bytes[3] == 0x52 else {
            throw AgadirError(.malformedFrame, "bad magic: this is not an Agadir protocol stream")
        }
        guard bytes[4] == version else {
            throw AgadirError(
                .unsupportedVersion, "protocol version \(bytes[4]) is not supported; this node speaks \(version)")
        }
        guard let kind = FrameKind(rawValue: bytes[5]) else {
            throw AgadirError(.malformedFrame, "unknown frame kind \(bytes[5])")
        }
        let flags = u16(6)
        guard flags & ~endStream == 0 else {
            throw AgadirError(.malformedFrame, "unknown flag bits 0x\(String(flags, radix: 16))")
        }
        let headerLength = u32(12)
        let requestID = UInt64(u32(16)) << 32 | UInt64(u32(20))
        let payloadLength = u32(24)
        guard u32(28) == 0 else { throw AgadirError(.malformedFrame, "reserved header bytes are not zero") }
        guard headerLength <= limits.maxHeaderBytes else {
            throw AgadirError(
                .headerTooLarge, "frame fields take \(headerLength) bytes; the limit is \(limits.maxHeaderBytes)")
        }
        guard payloadLength <= limits.maxPayloadBytes else {
            throw AgadirError(
                .frameTooLarge, "frame payload of \(payloadLength) bytes; the limit is \(limits.maxPayloadBytes)")
        }
        if kind == .data || kind == .abort {
            guard u16(8) == 0 else { throw AgadirError(.malformedFrame, "\(kind) frame carries an opcode") }
        }
        // A DATA frame's fields hold at most its FRAME_SIGNATURE (a 38-byte section); the
        // receiver checks that its request asked for signed frames.
        if kind == .data, headerLength > FrameSignatures.maxDataFieldBytes {
            throw AgadirError(
                .malformedFrame,
                "DATA frame carries \(headerLength) bytes of fields; at most a FRAME_SIGNATURE "
                    + "(\(FrameSignatures.maxDataFieldBytes) bytes) may ride there")
        }
        return FrameHeader(
            kind: kind, flags: flags, opcode: u16(8), status: u16(10), headerLength: headerLength,
            requestID: requestID, payloadLength: payloadLength)
    }
}
