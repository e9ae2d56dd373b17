import AgadirCore
import AgadirTransport
import AgadirWire
import NIOCore

/// In front of the TLS handler of a node with certificates: a connection whose first byte
/// is not a TLS handshake record (0x16) is a client speaking the protocol in clear. It gets
/// one connection-level error frame, in clear, that says what to do, and is closed; a TLS
/// client passes through (the handler removes itself).
final class PlaintextRefusal: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let handshakeRecord: UInt8 = 0x16

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        guard first != Self.handshakeRecord else {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        let refusal = AgadirError(
            .unauthenticated,
            "this node requires TLS on its client port: give the client the cluster CA (agadir --ca-file, "
                + "AGADIR_CA_FILE, or ca_file in the credentials file)")
        let frame = Frame.error(id: 0, opcode: 0, refusal, responseStarted: false)
        var out = context.channel.allocator.buffer(capacity: 256)
        FrameEncoder.encodeHead(frame, into: &out)
        let channel = context.channel
        context.writeAndFlush(NIOAny(out)).whenComplete { _ in channel.close(promise: nil) }
    }
}
