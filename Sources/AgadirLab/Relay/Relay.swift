import AgadirCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// One relayed direction of the lab: node `from` reaches node `to` through the relay's
/// two ports: `dataPort` (TCP, to `to`'s client endpoint: peer links) and `gossipPort`
/// (UDP and TCP, to `to`'s peer endpoint: gossip datagrams and push-pull).
public struct LabRelayRoute: Codable, Sendable, Hashable {
    public var from: String
    public var to: String
    public var dataPort: Int
    public var gossipPort: Int
    /// The real endpoints behind them (`to`'s).
    public var dataTarget: Int
    public var gossipTarget: Int

    public var name: String { LabFaults.key(from, to) }
}

/// The faults the relay applies, read again from `faults.json` whenever it changes.
final class FaultTable: Sendable {
    private let faults = Mutex(LabFaults())
    func fault(from: String, to: String) -> LinkFault { faults.withLock { $0.fault(from: from, to: to) } }
    func replace(_ next: LabFaults) { faults.withLock { $0 = next } }
}

/// The relay process of a lab (`agadir-lab relay`, started by `Lab.up` for a lab made
/// with relays): it forwards every route of `lab.json` and applies `faults.json`; it
/// reads both twice... ten times a second and writes `relay-ready.json` once a route is bound.
public final class LabRelay: Sendable {
    let root: URL
    let group: MultiThreadedEventLoopGroup
    let table = FaultTable()
    let logger: Logger
    private let bound = Mutex<[String: [any Channel]]>([:])

    public init(root: URL, logger: Logger) {
        self.root = root
        self.logger = logger
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// Runs until the process is killed (the lab stops it with SIGTERM).
    public func run() async throws(AgadirError) {
        let store = LabStore(root: root)
        var faultsStamp: Date? = nil
        var applied = 0
        for _ in 0..<Int.max {
            let state = try store.load()
            var changed = false
            for route in state.relayRoutes ?? [] where bound.withLock({ $0[route.name] == nil }) {
                do {
                    let channels = try await bind(route)
                    bound.withLock { $0[route.name] = channels }
                    changed = true
                } catch {
                    logger.error("relay route not bound", metadata: ["route": "\(route.name)", "error": "\(error)"])
                }
            }
            let faultsFile = root.appendingPathComponent("faults.json")
            let stamp =
                (try? FileManager.default.attributesOfItem(atPath: faultsFile.path))?[.modificationDate] as? Date
            if stamp != faultsStamp {
                faultsStamp = stamp
                let faults = Lab.loadFaults(root: root)
                table.replace(faults)
                applied = faults.generation
                changed = true
            }
            if changed { try writeReady(faults: applied) }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    private func writeReady(faults: Int) throws(AgadirError) {
        let names = bound.withLock { Array($0.keys) }.sorted()
        let object: [String: Any] = ["pid": Int(getpid()), "routes": names, "faults": faults]
        do {
            let data = try JSONSerialization.data(withJSONObject: object)
            let path = root.appendingPathComponent("relay-ready.json").path
            try data.write(to: URL(fileURLWithPath: path + ".tmp"))
            guard rename(path + ".tmp", path) == 0 else { throw AgadirError(.ioError, "rename failed: errno \(errno)") }
        } catch let e as AgadirError {
            throw e
        } catch {
            throw AgadirError(.ioError, "cannot write relay-ready.json: \(error)")
        }
    }

    private func bind(_ route: LabRelayRoute) async throws -> [any Channel] {
        let forward = (route.from, route.to)
        let data = try await tcpListener(port: route.dataPort, target: route.dataTarget, link: forward)
        let gossipTCP = try await tcpListener(port: route.gossipPort, target: route.gossipTarget, link: forward)
        let gossipUDP = try await udpRelay(port: route.gossipPort, target: route.gossipTarget, link: forward)
        return [data, gossipTCP] + gossipUDP
    }

    // MARK: TCP

    private func tcpListener(port: Int, target: Int, link: (String, String)) async throws -> any Channel {
        let table = self.table
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: true)
            .childChannelInitializer { inbound in
                inbound.eventLoop.makeCompletedFuture {
                    let there = StreamPump(table: table, from: link.0, to: link.1)
                    let back = StreamPump(table: table, from: link.1, to: link.0)
                    there.partnerPump = back
                    back.partnerPump = there
                    try inbound.pipeline.syncOperations.addHandler(there)
                    let bound = NIOLoopBound(back, eventLoop: inbound.eventLoop)
                    ClientBootstrap(group: inbound.eventLoop)
                        .channelOption(.socketOption(.tcp_nodelay), value: 1)
                        .connectTimeout(.seconds(5))
                        .channelInitializer { outbound in
                            outbound.eventLoop.makeCompletedFuture {
                                try outbound.pipeline.syncOperations.addHandler(bound.value)
                            }
                        }
                        .connect(host: "127.0.0.1", port: target)
                        .whenFailure { _ in inbound.close(promise: nil) }
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
    }

    // MARK: UDP

    /// The listening socket takes datagrams from `link.0` and sends them on to the target
    /// from a socket of its own, whose answers go back to the last sender.
    private func udpRelay(port: Int, target: Int, link: (String, String)) async throws -> [any Channel] {
        let table = self.table
        let targetAddress = try SocketAddress(ipAddress: "127.0.0.1", port: target)
        let loop = group.next()
        let (up, down) = try await loop.submit {
            (
                NIOLoopBound(DatagramPump(table: table, from: link.1, to: link.0, fixedTarget: nil), eventLoop: loop),
                NIOLoopBound(
                    DatagramPump(table: table, from: link.0, to: link.1, fixedTarget: targetAddress), eventLoop: loop)
            )
        }.get()
        let upstream = try await DatagramBootstrap(group: loop)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(up.value) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let listener = try await DatagramBootstrap(group: loop)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 64 * 1024))
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(down.value) }
            }
            .bind(host: "127.0.0.1", port: port).get()
        try await loop.submit {
            down.value.out = upstream
            down.value.partner = up.value
            up.value.out = listener
            up.value.partner = down.value
        }.get()
        return [listener, upstream]
    }
}

/// One direction of a relayed TCP connection: bytes read from its channel wait in order
/// for their delivery time (and for a cut to heal), then are written to the partner's.
final class StreamPump: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let table: FaultTable
    let from: String
    let to: String
    weak var partnerPump: StreamPump?
    var channel: (any Channel)?
    private var queue: [(at: Int64, bytes: ByteBuffer)] = []
    private var head = 0
    private var queuedBytes = 0
    private var lastDelivery: Int64 = 0
    private var scheduled = false
    private var ended = false
    private var rng = SystemRandomNumberGenerator()

    /// Held bytes above which the pump stops reading (and below which it reads again).
    static let highWater = 4 << 20
    static let lowWater = 1 << 20

    init(table: FaultTable, from: String, to: String) {
        self.table = table
        self.from = from
        self.to = to
    }

    static func nowMillis() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000) }

    func handlerAdded(context: ChannelHandlerContext) { channel = context.channel }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        let fault = table.fault(from: from, to: to)
        let at = fault.streamDelivery(
            now: Self.nowMillis(), previous: lastDelivery, draw: Double.random(in: 0..<1, using: &rng),
            lossDraw: Double.random(in: 0..<1, using: &rng))
        lastDelivery = at
        queue.append((at, bytes))
        queuedBytes += bytes.readableBytes
        if queuedBytes > Self.highWater { context.channel.setOption(.autoRead, value: false).whenComplete { _ in } }
        pump(loop: context.eventLoop)
    }

    func channelInactive(context: ChannelHandlerContext) {
        ended = true
        pump(loop: context.eventLoop)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }

    /// Delivers what is due; when the queue is empty and this side ended, closes the other.
    func pump(loop: any EventLoop) {
        let cut = table.fault(from: from, to: to).cut
        let now = Self.nowMillis()
        if !cut, let out = partnerPump?.channel, out.isActive {
            var wrote = false
            while head < queue.count, queue[head].at <= now {
                out.write(queue[head].bytes, promise: nil)
                queuedBytes -= queue[head].bytes.readableBytes
                head += 1
                wrote = true
            }
            if wrote { out.flush() }
            if head > 64, head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            if queuedBytes < Self.lowWater, let channel, channel.isActive {
                channel.setOption(.autoRead, value: true).whenComplete { _ in }
            }
        }
        if head >= queue.count {
            queue.removeAll()
            head = 0
            if ended { partnerPump?.channel?.close(promise: nil) }
            return
        }
        guard !scheduled else { return }
        scheduled = true
        let wait = cut || partnerPump?.channel?.isActive != true ? 20 : max(0, queue[head].at - now)
        loop.assumeIsolated().scheduleTask(in: .milliseconds(wait)) {
            self.scheduled = false
            self.pump(loop: loop)
        }
    }
}

/// One direction of a relayed UDP path: datagrams are dropped (cut, loss) or sent on after
/// their delay through `out`, to `fixedTarget` or, for answers, to the last sender the
/// partner saw.
final class DatagramPump: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let table: FaultTable
    let from: String
    let to: String
    let fixedTarget: SocketAddress?
    var out: (any Channel)?
    weak var partner: DatagramPump?
    var lastSender: SocketAddress?
    private var rng = SystemRandomNumberGenerator()

    init(table: FaultTable, from: String, to: String, fixedTarget: SocketAddress?) {
        self.table = table
        self.from = from
        self.to = to
        self.fixedTarget = fixedTarget
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        lastSender = envelope.remoteAddress
        let fault = table.fault(from: from, to: to)
        guard !fault.drops(draw: Double.random(in: 0..<1, using: &rng)) else { return }
        guard let target = fixedTarget ?? partner?.lastSender, let out else { return }
        let delay = fault.delay(draw: Double.random(in: 0..<1, using: &rng))
        let message = AddressedEnvelope(remoteAddress: target, data: envelope.data)
        if delay == 0 {
            out.writeAndFlush(message, promise: nil)
        } else {
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(delay))) {
                out.writeAndFlush(message, promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}
