import AgadirTransport
import NIOCore

/// Closes a connection on which no whole frame was received or sent for `timeout`. Bytes
/// alone do not count: a client that trickles one byte at a time (a slow-loris) is closed
/// like an idle one, instead of keeping its slot for ever (issue 12, "Bounds"). Sits after
/// the frame decoder and encoder, so it sees frames both ways.
final class FrameIdleHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame
    typealias OutboundIn = Frame
    typealias OutboundOut = Frame

    let timeout: TimeAmount
    private var lastFrame = NIODeadline.now()
    private var check: Scheduled<Void>?

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) {
        lastFrame = .now()
        schedule(context, in: timeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastFrame = .now()
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastFrame = .now()
        context.write(data, promise: promise)
    }

    private func schedule(_ context: ChannelHandlerContext, in delay: TimeAmount) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = loopBound.value
            handler.fire(context)
        }
    }

    private func fire(_ context: ChannelHandlerContext) {
        let idleFor = NIODeadline.now() - lastFrame
        if idleFor >= timeout {
            check = nil
            context.close(promise: nil)
        } else {
            schedule(context, in: timeout - idleFor)
        }
    }
}
