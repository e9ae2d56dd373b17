import AgadirCore
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

/// The TLS contexts of Agadir's connections (docs/security.md, "TLS"). Every side speaks
/// TLS 1.3 only and trusts the cluster CA alone, never the system's roots.
package enum TLSContexts {
    /// A node's client port: its certificate; a dialer's certificate is optional (clients
    /// authenticate by signing their requests), but one that is presented must chain to the
    /// cluster CA, and peer links present theirs.
    package static func server(certificatePEM: String, keyPEM: String, caPEM: String) throws(AgadirError)
        -> NIOSSLContext
    {
        try make("the node's TLS server context") {
            var c = TLSConfiguration.makeServerConfiguration(
                certificateChain: [.certificate(try certificate(certificatePEM))],
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem)))
            c.certificateVerification = .optionalVerification
            c.trustRoots = .certificates([try certificate(caPEM)])
            c.minimumTLSVersion = .tlsv13
            return c
        }
    }

    /// A node dialing a peer: presents its certificate and checks the peer's against the
    /// cluster CA. Host names are not checked: the caller checks the node id the
    /// certificate names (a node's address may change, its id does not).
    package static func peer(certificatePEM: String, keyPEM: String, caPEM: String) throws(AgadirError)
        -> NIOSSLContext
    {
        try make("the node's TLS peer context") {
            var c = TLSConfiguration.makeClientConfiguration()
            c.certificateChain = [.certificate(try certificate(certificatePEM))]
            c.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem))
            c.certificateVerification = .noHostnameVerification
            c.trustRoots = .certificates([try certificate(caPEM)])
            c.minimumTLSVersion = .tlsv13
            return c
        }
    }

    /// A client dialing a node: the node's certificate must chain to the cluster CA and name
    /// the host dialed (a DNS name or an IP address of the certificate).
    package static func client(caPEM: String) throws(AgadirError) -> NIOSSLContext {
        try make("the client's TLS context") {
            var c = TLSConfiguration.makeClientConfiguration()
            c.certificateVerification = .fullVerification
            c.trustRoots = .certificates([try certificate(caPEM)])
            c.minimumTLSVersion = .tlsv13
            return c
        }
    }

    static func certificate(_ pem: String) throws -> NIOSSLCertificate {
        try NIOSSLCertificate(bytes: Array(pem.utf8), format: .pem)
    }

    private static func make(_ what: String, _ configure: () throws -> TLSConfiguration) throws(AgadirError)
        -> NIOSSLContext
    {
        do {
            return try NIOSSLContext(configuration: try configure())
        } catch {
            throw AgadirError(
                .invalidArgument,
                "cannot build \(what): \(error); check the certificate, key and CA files (agadir admin cert show)")
        }
    }
}

/// How a connection dials with TLS: the context says what is checked (`TLSContexts`).
package struct DialTLS: Sendable {
    package var context: NIOSSLContext

    package init(context: NIOSSLContext) { self.context = context }

    /// The server name to send: a DNS name; nil for an IP address (SNI carries no
    /// addresses; NIOSSL then checks the certificate's IP addresses against the socket's).
    func serverHostname(_ host: String) -> String? {
        let isIP = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        return isIP ? nil : host
    }
}

/// The certificate the other end of a TLS channel presented, in DER; nil without TLS or
/// when it presented none. Valid once the handshake is done (after the first frame).
package func peerCertificateDER(of channel: any Channel) async -> [UInt8]? {
    guard let certificate = try? await channel.nioSSL_peerCertificate().get() else { return nil }
    return try? certificate.toDERBytes()
}

/// Completes `done` when the TLS handshake of its channel completes, fails it with the
/// handshake's error or when the channel closes first.
final class TLSHandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let done: EventLoopPromise<Void>
    private var settled = false

    init(done: EventLoopPromise<Void>) { self.done = done }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event, !settled {
            settled = true
            done.succeed(())
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !settled {
            settled = true
            done.fail(error)
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !settled {
            settled = true
            done.fail(ChannelError.ioOnClosedChannel)
        }
        context.fireChannelInactive()
    }

    /// A channel whose connect failed is torn down without ever being active: the promise
    /// must still be settled.
    func handlerRemoved(context: ChannelHandlerContext) {
        if !settled {
            settled = true
            done.fail(ChannelError.ioOnClosedChannel)
        }
    }
}

/// The TLS material of a node, replaced when its files change (certificates reload without
/// a restart): new connections use the new contexts, open ones keep theirs.
package final class NodeTLS: Sendable {
    package struct Contexts: Sendable {
        package var server: NIOSSLContext
        package var peer: NIOSSLContext
        /// The cluster CA, to check the certificates peers present.
        package var caPEM: String

        package init(server: NIOSSLContext, peer: NIOSSLContext, caPEM: String) {
            self.server = server
            self.peer = peer
            self.caPEM = caPEM
        }

        /// Contexts from a node's PEM files' contents.
        package init(certificatePEM: String, keyPEM: String, caPEM: String) throws(AgadirError) {
            self.server = try TLSContexts.server(certificatePEM: certificatePEM, keyPEM: keyPEM, caPEM: caPEM)
            self.peer = try TLSContexts.peer(certificatePEM: certificatePEM, keyPEM: keyPEM, caPEM: caPEM)
            self.caPEM = caPEM
        }
    }

    private let state: Mutex<Contexts>

    package init(_ contexts: Contexts) { self.state = Mutex(contexts) }

    package var current: Contexts { state.withLock { $0 } }

    package func replace(_ contexts: Contexts) { state.withLock { $0 = contexts } }
}
