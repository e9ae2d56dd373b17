import AgadirTransport
import NIOCore

/// Closes a connection on which no whole frame was received or sent for `timeout`. Bytes
/// alone do not count: a client that trickles one byte at a time (a slow-loris) is closed
/// like an idle one, instead of keeping its slot for ever (issue 12, "Bounds"). Sits after
/// the frame decoder and encoder, so it sees frames both ways.
///
/// Also closes a connection that stays unwritable for `writeStall`: its client does not
/// read the answers (the socket's buffers are full), and the answers waiting to be written
/// hold memory (and response budget) other clients need.
final class FrameIdleHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame
    typealias OutboundIn = Frame
    typealias OutboundOut = Frame

    let timeout: TimeAmount
    let writeStall: TimeAmount
    private var lastFrame = NIODeadline.now()
    private var check: Scheduled<Void>?
    private var stallCheck: Scheduled<Void>?

    init(timeout: TimeAmount, writeStall: TimeAmount) {
        self.timeout = timeout
        self.writeStall = writeStall
    }

    func handlerAdded(context: ChannelHandlerContext) {
        lastFrame = .now()
        schedule(context, in: timeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        stallCheck?.cancel()
        stallCheck = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        stallCheck?.cancel()
        stallCheck = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stallCheck?.cancel()
            stallCheck = nil
        } else if stallCheck == nil {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            stallCheck = context.eventLoop.scheduleTask(in: writeStall) {
                let context = loopBound.value
                if !context.channel.isWritable { context.close(promise: nil) }
            }
        }
        context.fireChannelWritabilityChanged()
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
