import AgadirCore
import AgadirMembership
import AgadirWire
import Logging
import NIOCore
import NIOPosix

/// The gossip shell's moving parts: the `Membership` state machine, its timer, the UDP
/// socket, the TCP listener and the push-pull connections.
///
/// **Threading.** Everything here is confined to one event loop, `loop`: the UDP and TCP
/// channels (listener, accepted and outgoing connections) are all registered on it, so
/// every input (a datagram, a push-pull request or reply, the timer) arrives on the
/// thread that owns the state machine, in order, without locks or hops. Gossip is a few
/// small messages per second, far below what one loop handles; the only blocking work,
/// writing `gossip-state.json` with fsync and resolving host names, runs on
/// the node's I/O pool (`threadPool`) and reports back to the loop. Other threads see the state
/// through `snapshot` only (a copy under a lock, refreshed after every call into the
/// state machine).
///
/// **Timer.** One scheduled task at `membership.nextDeadline`; after every call into the
/// state machine it is left alone when the deadline did not move, else cancelled and
/// replaced.
final class GossipEngine {
    let loop: any EventLoop
    let nodeID: String
    let settings: MembershipSettings
    let keyring: Keyring
    let stateFile: GossipStateFile
    let logger: Logger
    let clock: GossipClock
    let snapshot: Locked<GossipSnapshot>
    let limits: GossipServiceLimits
    /// Blocking work (the state file, name lookups) runs here: the node's I/O pool.
    let threadPool: NIOThreadPool
    /// FOR TESTS ONLY: the lab's relays (`AddressMap`); every address sent to goes through it.
    let routes: AddressMap

    private var membership: Membership?
    private var rng = SystemRandomNumberGenerator()
    /// Refuses gossip sent outside the replay window or received before.
    private var replay = GossipReplayGuard()
    private var phase = Phase.starting
    private var udp: (any Channel)?
    private var listener: (any Channel)?
    /// Open push-pull connections, inbound and outbound, closed with the engine.
    private var connections: [ObjectIdentifier: any Channel] = [:]
    private var inboundCount = 0
    private var outboundCount = 0
    private var timer: Scheduled<Void>?
    private var timerDeadline: MonotonicTime?
    private var addresses: [String: Resolution] = [:]
    private var counters = GossipCounters()
    private var lastLogged: [String: (at: NIODeadline, suppressed: Int)] = [:]
    /// Incarnation writes, chained so they land in order.
    private var persisting: EventLoopFuture<Void>
    /// Completed when the sockets are closed and the last incarnation is on disk.
    let closed: EventLoopPromise<Void>

    private enum Phase { case starting, running, leaving, closed }

    /// A peer address, as far as sending datagrams to it goes.
    private enum Resolution {
        case resolved(SocketAddress, until: NIODeadline?)
        /// A host name being resolved; datagrams for it wait here (a few at most).
        case resolving([[UInt8]])
        case failed(until: NIODeadline)
    }

    init(
        loop: any EventLoop, nodeID: String, settings: MembershipSettings, keyring: Keyring, stateFile: GossipStateFile,
        clock: GossipClock, snapshot: Locked<GossipSnapshot>, limits: GossipServiceLimits, threadPool: NIOThreadPool,
        routes: AddressMap = AddressMap(), logger: Logger
    ) {
        self.routes = routes
        self.threadPool = threadPool
        self.loop = loop
        self.nodeID = nodeID
        self.settings = settings
        self.keyring = keyring
        self.stateFile = stateFile
        self.clock = clock
        self.snapshot = snapshot
        self.limits = limits
        self.logger = logger
        persisting = loop.makeSucceededVoidFuture()
        closed = loop.makePromise(of: Void.self)
    }

    // MARK: Life cycle

    /// Starts the state machine once both sockets are bound.
    func start(myself: Member, seeds: [String], udp: any Channel, listener: any Channel) {
        guard phase == .starting else {
            // Shut down while binding: nothing to announce.
            udp.close(promise: nil)
            listener.close(promise: nil)
            return
        }
        self.udp = udp
        self.listener = listener
        phase = .running
        let now = clock.now()
        var m = Membership(myself: myself, seeds: seeds, settings: settings, now: now)
        let directives = m.start(now: now, rng: &rng)
        membership = m
        carryOut(directives, full: true)
        logger.info(
            "gossip started",
            metadata: [
                "peer": "\(myself.peerAddress)", "client": "\(myself.clientAddress)", "site": "\(myself.site)",
                "incarnation": "\(myself.incarnation)", "seeds": "\(seeds)",
            ])
    }

    /// Changes the layout version in this node's record (a new incarnation spreads it).
    func updateLayoutVersion(_ version: UInt64) {
        guard phase == .running, var m = membership, m.myself.layoutVersion != version else { return }
        let directives = m.updateMyself(now: clock.now()) { $0.layoutVersion = version }
        membership = m
        carryOut(directives, full: true)
    }

    /// Graceful leave: announce it, keep gossiping for `leavePropagation`, then close.
    func leave() {
        guard phase == .running else {
            if phase == .starting { close() }
            return
        }
        phase = .leaving
        let directives = membership?.leave(now: clock.now()) ?? []
        logger.info("leaving the cluster", metadata: ["propagation": "\(settings.leavePropagation)"])
        carryOut(directives, full: true)
        loop.assumeIsolated().scheduleTask(in: .nanoseconds(settings.leavePropagation.nanoseconds)) { self.close() }
    }

    /// Closes every socket; `closed` completes once they are closed and the incarnation written.
    func close() {
        guard phase != .closed else { return }
        phase = .closed
        timer?.cancel()
        timer = nil
        var done: [EventLoopFuture<Void>] = [persisting]
        for channel in [udp, listener].compactMap({ $0 }) + Array(connections.values) {
            channel.close(promise: nil)
            done.append(channel.closeFuture)
        }
        publish(full: true)
        EventLoopFuture.andAllComplete(done, on: loop).cascade(to: closed)
    }

    // MARK: Inputs

    /// One datagram from the UDP socket.
    func received(datagram: ByteBuffer, from remote: SocketAddress) {
        guard datagram.readableBytes <= limits.maxDatagramBytes else {
            return dropped("datagram oversized", detail: "\(datagram.readableBytes) bytes from \(remote)")
        }
        guard phase == .running || phase == .leaving else {
            return dropped("datagram while not running", detail: "from \(remote)")
        }
        let plaintext: [UInt8]
        do throws(GossipRejection) {
            let opened = try keyring.open(Array(datagram.readableBytesView), channel: .datagram)
            try replay.admit(opened, source: "\(remote)", nowMillis: WallTime.millis())
            plaintext = opened.plaintext
        } catch {
            return dropped("datagram unauthenticated (\(error.name))", detail: "from \(remote)")
        }
        let packet: Packet
        do {
            packet = try GossipCodec.decode(plaintext)
        } catch {
            return dropped("datagram malformed", detail: "from \(remote): \(error.message)")
        }
        guard packet.sender != nodeID else {
            return dropped("datagram from self", detail: "from \(remote)")
        }
        counters.datagramsReceived += 1
        let directives = membership?.receive(packet, now: clock.now(), rng: &rng) ?? []
        carryOut(directives, full: false, touched: packet.sender)
    }

    /// Whether one more inbound push-pull connection may be served; counts it if so.
    func admitInbound(_ channel: any Channel) -> Bool {
        guard phase == .running || phase == .leaving else { return false }
        guard inboundCount < limits.maxInboundConnections else {
            dropped("stream refused: too many connections", detail: "limit \(limits.maxInboundConnections)")
            return false
        }
        inboundCount += 1
        track(channel) { $0.inboundCount -= 1 }
        return true
    }

    /// One inbound push-pull request; returns the sealed answer, or nil to drop it.
    func answerPushPull(_ sealed: [UInt8]) -> [UInt8]? {
        guard phase == .running || phase == .leaving else { return nil }
        let plaintext: [UInt8]
        do throws(GossipRejection) {
            let opened = try keyring.open(sealed, channel: .stream)
            try replay.admit(opened, source: "stream", nowMillis: WallTime.millis())
            plaintext = opened.plaintext
        } catch {
            dropped("stream unauthenticated (\(error.name))", detail: "push-pull of \(sealed.count) bytes")
            return nil
        }
        let state: PushPullState
        do {
            state = try GossipCodec.decodePushPull(plaintext, maxMembers: settings.maxMembers)
        } catch {
            dropped("stream malformed", detail: error.message)
            return nil
        }
        guard state.sender != nodeID else {
            dropped("stream from self", detail: "push-pull")
            return nil
        }
        guard let answer = membership?.receivePushPull(state, now: clock.now(), rng: &rng) else { return nil }
        counters.pushPullsServed += 1
        carryOut(answer.directives, full: true)
        let sealedReply = seal(GossipCodec.encode(answer.reply), channel: .stream)
        guard sealedReply.count <= GossipLimits.maxStreamFrameBytes else {
            logger.error("push-pull answer too large; not sent", metadata: ["bytes": "\(sealedReply.count)"])
            return nil
        }
        return sealedReply
    }

    /// Counts a dropped input and logs it at debug, at most once per reason every 10 s
    /// (`detail` is only built then: a flood costs a counter increment per datagram).
    func dropped(_ reason: String, detail: @autoclosure () -> String) {
        counters.drops[reason, default: 0] += 1
        publishCounters()
        if let suppressed = rateLimited(reason) {
            logger.debug(
                "gossip input dropped",
                metadata: ["reason": "\(reason)", "detail": "\(detail())", "suppressed": "\(suppressed)"])
        }
    }

    // MARK: The timer

    private func fire() {
        timer = nil
        timerDeadline = nil
        guard phase == .running || phase == .leaving else { return }
        let directives = membership?.tick(now: clock.now(), rng: &rng) ?? []
        carryOut(directives, full: true)
    }

    private func rearm() {
        guard phase == .running || phase == .leaving, let deadline = membership?.nextDeadline else { return }
        if timer != nil, timerDeadline == deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        // Never sooner than 1 ms from now: a deadline that does not move cannot spin the loop.
        let at = max(clock.deadline(of: deadline), .now() + .milliseconds(1))
        timer = loop.assumeIsolated().scheduleTask(deadline: at) { self.fire() }
    }

    // MARK: Directives

    /// Carries out what the state machine asked, re-arms the timer and refreshes the
    /// snapshot (`full`: the member list too; else only `touched`'s last contact).
    private func carryOut(_ directives: [Directive], full: Bool, touched: String? = nil) {
        var full = full
        for directive in directives {
            switch directive {
            case .send(let packet, let address):
                send(seal(GossipCodec.encode(packet), channel: .datagram), to: address)
            case .pushPull(let state, let address):
                pushPull(state, to: address)
            case .changed(let change):
                full = true
                let from = change.previous.map { "\($0)" } ?? "new"
                let m = change.member
                counters.transitions["\(from)→\(m.status)", default: 0] += 1
                logger.info(
                    "member \(m.nodeID) (site \(m.site), peer \(m.peerAddress)) \(from)→\(m.status)",
                    metadata: ["member": "\(m.nodeID)", "incarnation": "\(m.incarnation)"])
            case .persistIncarnation(let incarnation):
                full = true
                persist(incarnation)
            }
        }
        rearm()
        publish(full: full, touched: touched)
    }

    /// `plaintext` sealed with the wall clock and a fresh random nonce.
    private func seal(_ plaintext: [UInt8], channel: GossipChannel) -> [UInt8] {
        let nonce = (0..<Keyring.nonceBytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return keyring.seal(plaintext, channel: channel, sentAtMillis: WallTime.millis(), nonce: nonce)
    }

    private func send(_ sealed: [UInt8], to peer: String) {
        guard let udp, phase != .closed else { return }
        let address = routes.route(peer)
        switch addresses[address] {
        case .resolved(let target, let until) where until.map({ $0 > .now() }) ?? true:
            var buffer = udp.allocator.buffer(capacity: sealed.count)
            buffer.writeBytes(sealed)
            counters.datagramsSent += 1
            let written = loop.makePromise(of: Void.self)
            written.futureResult.assumeIsolated().whenFailure { error in
                self.counters.sendFailures += 1
                if let suppressed = self.rateLimited("send failed") {
                    self.logger.debug(
                        "gossip datagram not sent",
                        metadata: ["to": "\(address)", "error": "\(error)", "suppressed": "\(suppressed)"])
                }
            }
            udp.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: buffer), promise: written)
        case .resolving(var waiting):
            if waiting.count < 8 {
                waiting.append(sealed)
                addresses[address] = .resolving(waiting)
            } else {
                counters.sendFailures += 1
            }
        case .failed(let until) where until > .now():
            counters.sendFailures += 1
        default:
            resolve(address, first: sealed)
        }
    }

    /// IP literals resolve at once; host names on the thread pool (getaddrinfo blocks),
    /// kept 60 s (a failure 5 s).
    private func resolve(_ address: String, first sealed: [UInt8]) {
        if addresses.count >= limits.maxCachedAddresses { addresses.removeAll() }
        let host: String
        let port: Int
        do {
            (host, port) = try Endpoint.parse(address)
        } catch {
            addresses[address] = .failed(until: .distantFuture)
            counters.sendFailures += 1
            logger.warning("a member announced an unusable peer address", metadata: ["address": "\(address)"])
            return
        }
        if let ip = try? SocketAddress(ipAddress: host, port: port) {
            addresses[address] = .resolved(ip, until: nil)
            send(sealed, to: address)
            return
        }
        addresses[address] = .resolving([sealed])
        threadPool.runIfActive(eventLoop: loop) {
            try SocketAddress.makeAddressResolvingHost(host, port: port)
        }.assumeIsolated().whenComplete { result in
            guard case .resolving(let waiting) = self.addresses[address] else { return }
            switch result {
            case .success(let target):
                self.addresses[address] = .resolved(target, until: .now() + .seconds(60))
                for sealed in waiting { self.send(sealed, to: address) }
            case .failure(let error):
                self.addresses[address] = .failed(until: .now() + .seconds(5))
                self.counters.sendFailures += waiting.count
                if let suppressed = self.rateLimited("resolve \(address)") {
                    self.logger.warning(
                        "cannot resolve a peer address",
                        metadata: ["address": "\(address)", "error": "\(error)", "suppressed": "\(suppressed)"])
                }
            }
        }
    }

    /// TCP exchange: connect (bounded), send our state, read the peer's, all within the
    /// exchange timeout; the result goes back into the state machine.
    private func pushPull(_ state: PushPullState, to peer: String) {
        guard phase == .running else { return }
        let address = routes.route(peer)
        counters.pushPullsStarted += 1
        let sealed = seal(GossipCodec.encode(state), channel: .stream)
        let endpoint: (host: String, port: Int)
        do {
            endpoint = try Endpoint.parse(address)
        } catch {
            return pushPullFinished(.failure(error), address: address)
        }
        guard outboundCount < limits.maxOutboundConnections, sealed.count <= GossipLimits.maxStreamFrameBytes else {
            let reason =
                outboundCount >= limits.maxOutboundConnections
                ? "too many exchanges in flight" : "our state is too large"
            return pushPullFinished(.failure(AgadirError(.unavailable, reason)), address: address)
        }
        outboundCount += 1
        let reply = loop.makePromise(of: ByteBuffer.self)
        let timeout = loop.assumeIsolated().scheduleTask(in: limits.exchangeTimeout) {
            reply.fail(AgadirError(.unavailable, "no answer within \(self.limits.exchangeTimeout)"))
        }
        let request = StreamFrameDecoder.frame(sealed)
        ClientBootstrap(group: loop)
            .connectTimeout(limits.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(StreamFrameDecoder()),
                        PushPullClientHandler(request: request, reply: reply),
                    ])
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    self.track(channel) { _ in }
                    reply.futureResult.whenComplete { _ in channel.close(promise: nil) }
                case .failure(let error):
                    reply.fail(error)
                }
            }
        reply.futureResult.assumeIsolated().whenComplete { result in
            timeout.cancel()
            self.outboundCount -= 1
            self.pushPullFinished(result.map { Array($0.readableBytesView) }, address: address)
        }
    }

    private func pushPullFinished(_ result: Result<[UInt8], any Error>, address: String) {
        guard phase == .running || phase == .leaving, membership != nil else { return }
        let now = clock.now()
        var failure: String
        switch result {
        case .success(let sealed):
            do throws(GossipRejection) {
                let opened = try keyring.open(sealed, channel: .stream)
                try replay.admit(opened, source: "stream", nowMillis: WallTime.millis())
                let plaintext = opened.plaintext
                do {
                    let state = try GossipCodec.decodePushPull(plaintext, maxMembers: settings.maxMembers)
                    let joinedBefore = membership?.hasJoined ?? true
                    counters.pushPullsSucceeded += 1
                    let directives = membership?.pushPullReplied(state, from: address, now: now, rng: &rng) ?? []
                    if !joinedBefore, membership?.hasJoined == true {
                        logger.info(
                            "joined the cluster",
                            metadata: ["through": "\(address)", "members": "\(state.members.count)"])
                    }
                    carryOut(directives, full: true)
                    return
                } catch {
                    failure = "malformed answer: \(error.message)"
                    dropped("stream malformed", detail: "push-pull answer from \(address)")
                }
            } catch {
                failure = "unauthenticated answer (\(error)); is the cluster secret the same on both nodes?"
                dropped("stream unauthenticated (\(error.name))", detail: "push-pull answer from \(address)")
            }
        case .failure(let error):
            failure = "\(error)"
        }
        counters.pushPullsFailed += 1
        let directives = membership?.pushPullFailed(address: address, now: now) ?? []
        if membership?.hasJoined == false {
            if let suppressed = rateLimited("join") {
                logger.warning(
                    """
                    cannot join the cluster through this seed yet; retrying. Check the seed's address, that its peer \
                    port is open for TCP and UDP, and that both nodes have the same cluster name and secret
                    """,
                    metadata: ["seed": "\(address)", "error": "\(failure)", "suppressed": "\(suppressed)"])
            }
        } else {
            logger.debug("push-pull failed", metadata: ["peer": "\(address)", "error": "\(failure)"])
        }
        carryOut(directives, full: false)
    }

    private func persist(_ incarnation: Incarnation) {
        let file = stateFile
        let loop = self.loop
        let threadPool = self.threadPool
        let written = persisting.flatMap {
            threadPool.runIfActive(eventLoop: loop) { try file.write(incarnation) }
        }
        written.assumeIsolated().whenComplete { result in
            switch result {
            case .success:
                self.counters.incarnationWrites += 1
            case .failure(let error):
                self.counters.incarnationWriteFailures += 1
                self.logger.error(
                    "cannot record the incarnation; a restart may take longer to be believed alive",
                    metadata: ["incarnation": "\(incarnation)", "error": "\(error)"])
            }
            self.publishCounters()
        }
        persisting = written.recover { _ in }
    }

    // MARK: Bookkeeping

    private func track(_ channel: any Channel, onClose: @escaping (GossipEngine) -> Void) {
        let id = ObjectIdentifier(channel)
        connections[id] = channel
        channel.closeFuture.assumeIsolated().whenComplete { _ in
            self.connections[id] = nil
            onClose(self)
        }
        if phase == .closed { channel.close(promise: nil) }
    }

    /// Nil when `key` was logged less than 10 s ago; else how many were not logged since.
    private func rateLimited(_ key: String) -> Int? {
        let now = NIODeadline.now()
        if let last = lastLogged[key], now - last.at < .seconds(10) {
            lastLogged[key] = (last.at, last.suppressed + 1)
            return nil
        }
        if lastLogged.count >= 256 { lastLogged.removeAll() }
        let suppressed = lastLogged[key]?.suppressed ?? 0
        lastLogged[key] = (now, 0)
        return suppressed
    }

    private func publishCounters() {
        let counters = self.counters
        snapshot.withLock { $0.counters = counters }
    }

    private func publish(full: Bool, touched: String? = nil) {
        guard let m = membership else { return publishCounters() }
        let counters = self.counters
        let stats = m.stats
        let health = m.localHealth
        if full {
            let members = m.members
            var lastContact: [String: MonotonicTime] = [:]
            for member in members {
                if let t = m.lastContact(of: member.nodeID) { lastContact[member.nodeID] = t }
            }
            snapshot.withLock { s in
                s.members = members
                s.lastContact = lastContact
                s.stats = stats
                s.localHealth = health
                s.counters = counters
            }
        } else {
            let contact = touched.flatMap { id in m.lastContact(of: id).map { (id: id, at: $0) } }
            snapshot.withLock { s in
                if let contact { s.lastContact[contact.id] = contact.at }
                s.stats = stats
                s.localHealth = health
                s.counters = counters
            }
        }
    }
}

/// Monotonic time since the service was created, as the state machine counts it.
struct GossipClock: Sendable {
    let origin = NIODeadline.now()

    func now() -> MonotonicTime { MonotonicTime(nanoseconds: (NIODeadline.now() - origin).nanoseconds) }

    func deadline(of t: MonotonicTime) -> NIODeadline { origin + .nanoseconds(max(0, t.nanoseconds)) }
}

/// Bounds of the gossip shell (the codec's own are `GossipLimits`: stream frames at most
/// 16 MiB + 26 bytes, refused from their length prefix).
public struct GossipServiceLimits: Sendable {
    /// Largest datagram read, bytes: the largest `maxPacketBytes` any member may use.
    /// The receive buffer (64 KiB) holds any UDP payload, so nothing is cut silently.
    public var maxDatagramBytes = 65_000
    /// Push-pull connections served at once; more are closed at once. Default 16.
    public var maxInboundConnections = 16
    /// Push-pull exchanges started at once; more fail at once. Default 16.
    public var maxOutboundConnections = 16
    /// TCP connect timeout of a push-pull. Default 2 s.
    public var connectTimeout: TimeAmount = .seconds(2)
    /// Whole push-pull exchange, either side. Default 5 s.
    public var exchangeTimeout: TimeAmount = .seconds(5)
    /// Peer addresses whose resolution is remembered; the cache restarts empty beyond. Default 4096.
    public var maxCachedAddresses = 4096

    public init() {}
}
