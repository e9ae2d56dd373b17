import AgadirCore
import AgadirMembership
import NIOCore

// Framing for the gossip sockets. The handlers only cut bytes into messages and pass
// them to the `GossipEngine` (or, for an outbound exchange, to a promise); everything
// they do runs on the engine's event loop.

/// Push-pull stream frames (`GossipCodec.streamFrame`: a u32 big-endian length, then the
/// sealed message). A length above `GossipLimits.maxStreamFrameBytes` is refused from the
/// prefix alone, before any of the body is buffered.
struct StreamFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    /// The length prefix was refused (`GossipCodec.streamFrameLength`).
    struct Refused: Error, CustomStringConvertible {
        let error: AgadirError
        var description: String { error.message }
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let prefix = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        let length: Int
        do {
            length = try GossipCodec.streamFrameLength(prefix)
        } catch {
            throw Refused(error: error)
        }
        guard buffer.readableBytes >= 4 + length else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        guard let message = buffer.readSlice(length: length) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(message))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        try decode(context: context, buffer: &buffer)
    }

    /// `sealed` as a stream frame, ready to write.
    static func frame(_ sealed: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: GossipCodec.streamFrame(sealed)) }
}

/// The UDP socket's only handler: every datagram goes to the engine.
final class GossipDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let engine: GossipEngine

    init(engine: GossipEngine) { self.engine = engine }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        engine.received(datagram: envelope.data, from: envelope.remoteAddress)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP errors and the like: one datagram's fate, never the socket's.
        engine.logger.trace("gossip UDP socket error", metadata: ["error": "\(error)"])
    }
}

/// Serves one inbound push-pull: reads one message, hands it to the engine, writes the
/// answer and closes. The connection is closed after `timeout` whatever happens.
final class PushPullServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let engine: GossipEngine
    let timeout: TimeAmount
    private var answered = false
    private var timer: Scheduled<Void>?

    init(engine: GossipEngine, timeout: TimeAmount) {
        self.engine = engine
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let engine = self.engine
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            engine.dropped("stream timed out", detail: "no complete push-pull within the exchange timeout")
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) { timer?.cancel() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        answered = true
        let message = unwrapInboundIn(data)
        let channel = context.channel
        guard let reply = engine.answerPushPull(Array(message.readableBytesView)) else {
            channel.close(promise: nil)
            return
        }
        timer?.cancel()
        let frame = StreamFrameDecoder.frame(reply)
        // Close once the answer is written; the timer still bounds a peer that never reads it.
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { channel.close(promise: nil) }
        context.writeAndFlush(wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in channel.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is StreamFrameDecoder.Refused {
            engine.dropped("stream oversized", detail: "\(error)")
        } else if !answered {
            engine.dropped("stream failed", detail: "\(error)")
        }
        context.close(promise: nil)
    }
}

/// Client side of one push-pull: writes the request once connected, completes `reply`
/// with the first message read, and fails it if the connection ends first.
final class PushPullClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let request: ByteBuffer
    let reply: EventLoopPromise<ByteBuffer>

    struct ClosedEarly: Error, CustomStringConvertible {
        var description: String { "the peer closed the connection before answering" }
    }

    init(request: ByteBuffer, reply: EventLoopPromise<ByteBuffer>) {
        self.request = request
        self.reply = reply
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(request), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reply.succeed(unwrapInboundIn(data))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        reply.fail(ClosedEarly())
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        reply.fail(error)
        context.close(promise: nil)
    }
}
