import AgadirCore
import AgadirWire
import NIOCore

/// One decoded frame: fixed header, fields and payload (a slice of the receive buffer,
/// never copied on the way in).
public struct Frame: Sendable {
    public var header: FrameHeader
    public var fields: Fields
    public var payload: ByteBuffer

    public init(header: FrameHeader, fields: Fields = Fields(), payload: ByteBuffer = ByteBuffer()) {
        self.header = header
        self.fields = fields
        self.payload = payload
    }

    public var requestID: UInt64 { header.requestID }
    public var isEndStream: Bool { header.isEndStream }

    // MARK: Builders

    public static func request(
        id: UInt64, opcode: Opcode, fields: Fields, payload: ByteBuffer = ByteBuffer(), end: Bool
    ) -> Frame {
        Frame(
            header: FrameHeader(
                kind: .request, flags: end ? FrameHeader.endStream : 0, opcode: opcode.rawValue, requestID: id),
            fields: fields, payload: payload)
    }

    public static func response(
        id: UInt64, opcode: UInt16, fields: Fields = Fields(), payload: ByteBuffer = ByteBuffer(), end: Bool
    ) -> Frame {
        Frame(
            header: FrameHeader(kind: .response, flags: end ? FrameHeader.endStream : 0, opcode: opcode, requestID: id),
            fields: fields, payload: payload)
    }

    /// An error answer: a RESPONSE with the error status (and END_STREAM) when no
    /// response was started, else an ABORT that ends the started stream.
    public static func error(id: UInt64, opcode: UInt16, _ error: AgadirError, responseStarted: Bool) -> Frame {
        var f = Fields()
        // At most 4096 bytes, cut on a character boundary (the field holds at most 65535).
        var message = Substring(error.message)
        while message.utf8.count > 4096 { message = message.dropLast() }
        f.set(.message, String(message))
        for endpoint in error.redirect.prefix(16) { f.set(.address, endpoint) }
        if let r = error.replicas {
            f.set(.answered, u32: UInt32(clamping: r.answered))
            f.set(.needed, u32: UInt32(clamping: r.needed))
        }
        let kind: FrameKind = responseStarted ? .abort : .response
        return Frame(
            header: FrameHeader(
                kind: kind, flags: FrameHeader.endStream, opcode: responseStarted ? 0 : opcode,
                status: error.code.rawValue, requestID: id),
            fields: f)
    }

    public static func data(id: UInt64, payload: ByteBuffer, end: Bool) -> Frame {
        Frame(header: FrameHeader(kind: .data, flags: end ? FrameHeader.endStream : 0, requestID: id), payload: payload)
    }

    /// The error carried by a RESPONSE or ABORT frame with a non-zero status.
    public var error: AgadirError? {
        guard header.status != 0 else { return nil }
        let message = (try? fields.string(.message)) ?? nil
        var error = AgadirError(AgadirError.Code(rawValue: header.status), message ?? "no message")
        error.redirect = ((try? fields.strings(.address)) ?? []).prefix(16).map { $0 }
        if let answered = (try? fields.u32(.answered)) ?? nil, let needed = (try? fields.u32(.needed)) ?? nil {
            error.replicas = AgadirError.ReplicaCount(answered: Int(answered), needed: Int(needed))
        }
        return error
    }
}

/// Splits the byte stream into frames, enforcing `WireLimits` before buffering: a frame
/// that announces an oversized header or payload is refused as soon as its 32-byte
/// header arrives, so a lying peer cannot make this node allocate.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame

    public let limits: WireLimits
    static let allocator = ByteBufferAllocator()

    public init(limits: WireLimits) { self.limits = limits }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.next(from: &buffer, limits: limits) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if seenEOF, buffer.readableBytes > 0 {
            let n = buffer.readableBytes
            buffer.moveReaderIndex(forwardBy: n)
            throw AgadirError(.malformedFrame, "the stream ended inside a frame (\(n) bytes of an incomplete frame)")
        }
        return .needMoreData
    }

    /// Takes one complete frame off the front of `buffer`, or returns nil (and consumes
    /// nothing) when more bytes are needed. Throws a 1xx `AgadirError` on bad input.
    /// The frame's payload owns its storage (it is not a slice of `buffer`).
    public static func next(from buffer: inout ByteBuffer, limits: WireLimits) throws(AgadirError) -> Frame? {
        guard buffer.readableBytes >= FrameHeader.size else { return nil }
        let decoded = buffer.withUnsafeReadableBytes { raw in
            Result { () throws(AgadirError) -> FrameHeader in
                try FrameHeader.decode(UnsafeRawBufferPointer(rebasing: raw.prefix(FrameHeader.size)), limits: limits)
            }
        }
        let header = try decoded.get()
        let h = Int(header.headerLength)
        let p = Int(header.payloadLength)
        guard buffer.readableBytes >= FrameHeader.size + h + p else { return nil }
        buffer.moveReaderIndex(forwardBy: FrameHeader.size)
        guard let fieldBytes = buffer.readBytes(length: h), var slice = buffer.readSlice(length: p) else {
            throw AgadirError(.internalError, "frame decoder lost bytes it had counted")
        }
        // Copy the payload out rather than keep a slice: a slice shares the receive
        // buffer's storage, and the next append to or compaction of that buffer would then
        // copy all of it (copy-on-write) into freshly allocated pages, which profiled at
        // ~20% of a large PUT's CPU. One memcpy into an exact-size buffer is cheaper.
        var payload = ByteBuffer()
        if p > 0 {
            payload = Self.allocator.buffer(capacity: p)
            payload.writeBuffer(&slice)
        }
        return Frame(header: header, fields: try Fields.decode(fieldBytes, limits: limits), payload: payload)
    }
}

/// Writes frames: header and fields in one small buffer, the payload as its own buffer
/// (no copy) unless it is small enough to join them.
public final class FrameEncoder: ChannelOutboundHandler, Sendable {
    public typealias OutboundIn = Frame
    public typealias OutboundOut = ByteBuffer

    /// Payloads up to this size are copied next to the header to save a write.
    static let coalesceLimit = 16 * 1024

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = Self.unwrapOutboundIn(data)
        var out = context.channel.allocator.buffer(
            capacity: FrameHeader.size + 64
                + (frame.payload.readableBytes <= Self.coalesceLimit ? frame.payload.readableBytes : 0))
        Self.encodeHead(frame, into: &out)
        if frame.payload.readableBytes <= Self.coalesceLimit {
            var payload = frame.payload
            out.writeBuffer(&payload)
            context.write(Self.wrapOutboundOut(out), promise: promise)
        } else {
            context.write(Self.wrapOutboundOut(out), promise: nil)
            context.write(Self.wrapOutboundOut(frame.payload), promise: promise)
        }
    }

    /// Writes the fixed header and the fields of `frame` (not its payload).
    public static func encodeHead(_ frame: Frame, into out: inout ByteBuffer) {
        let fields = frame.fields.items.isEmpty ? [] : frame.fields.encoded()
        var header = frame.header
        header.headerLength = UInt32(fields.count)
        header.payloadLength = UInt32(frame.payload.readableBytes)
        out.writeBytes(header.encoded())
        out.writeBytes(fields)
    }

    /// The whole frame as bytes (tests, tools).
    public static func encode(_ frame: Frame) -> [UInt8] {
        var out = ByteBuffer()
        encodeHead(frame, into: &out)
        var payload = frame.payload
        out.writeBuffer(&payload)
        return Array(out.readableBytesView)
    }
}

/// Where a request handler sends its answer. Implemented over a connection's outbound
/// writer; tests may collect frames instead.
public protocol ResponseSink: Sendable {
    func send(_ frame: Frame) async throws
    /// The budget answers' decoded bytes are taken from before they are read, so answers
    /// a client does not read hold bounded memory; nil: unbounded (in-process sinks).
    var responseBudget: ResponseBudget? { get }
}

extension ResponseSink {
    public var responseBudget: ResponseBudget? { nil }
}
