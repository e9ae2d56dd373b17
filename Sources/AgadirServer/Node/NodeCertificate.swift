import AgadirCluster
import AgadirCore
import AgadirIdentity
import AgadirPlacement
import AgadirTransport
import Foundation
import Logging
import ServiceLifecycle

/// The node's certificate, checked at start and whenever its files change (docs/operations.md,
/// "Cluster PKI").
public enum NodeCertificate {
    /// The node's PEM files, read and checked.
    public struct Loaded: Sendable, Equatable {
        public var identity: NodeIdentity
        var certificatePEM: String
        var keyPEM: String
        var caPEM: String
        /// Serials the cluster's revocation list names (empty when none is configured).
        var revoked: Set<String>
    }

    /// What the configured certificate attests, after checking that the CA signed it, that
    /// it is valid now, that the key is its key, and that it names `nodeID` and `site`; nil
    /// when no certificate is configured. Every refusal says which file and what to do.
    public static func load(config: NodeConfiguration, nodeID: String, site: String) throws(AgadirError) -> Loaded? {
        let files = [config.certFile, config.keyFile, config.caFile]
        if files.allSatisfy(\.isEmpty) { return nil }
        guard files.allSatisfy({ !$0.isEmpty }) else {
            throw AgadirError(
                .invalidArgument, "give certFile, keyFile and caFile together (agadir admin cert issue makes them)")
        }
        func read(_ path: String) throws(AgadirError) -> String {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw AgadirError(.invalidArgument, "cannot read \(path)")
            }
            return String(decoding: data, as: UTF8.self)
        }
        let certificate = try read(config.certFile)
        let key = try read(config.keyFile)
        let ca = try read(config.caFile)
        try ClusterCA.checkKey(certificatePEM: certificate, privateKeyPEM: key)
        let identity: NodeIdentity
        do {
            identity = try ClusterCA.attested(certificatePEM: certificate, caCertificatePEM: ca)
        } catch {
            throw AgadirError(error.code, "\(config.certFile): \(error.message)")
        }
        guard identity.nodeID == nodeID else {
            throw AgadirError(
                .notAuthenticated,
                "\(config.certFile) attests node '\(identity.nodeID)', not this node '\(nodeID)': a node cannot claim "
                    + "another node's id; issue its own certificate (agadir admin cert issue --node \(nodeID))")
        }
        guard identity.site == site else {
            throw AgadirError(
                .notAuthenticated,
                "\(config.certFile) attests site '\(identity.site)', but this node is configured in site '\(site)'; "
                    + "fix --site or issue a certificate for the right site")
        }
        var revoked: Set<String> = []
        if !config.revocationFile.isEmpty {
            do {
                revoked = Set(
                    try RevocationList.verified(json: try read(config.revocationFile), caCertificatePEM: ca).serials)
            } catch {
                throw AgadirError(error.code, "\(config.revocationFile): \(error.message)")
            }
        }
        guard !revoked.contains(identity.serial) else {
            throw AgadirError(
                .notAuthenticated,
                "\(config.certFile) (serial \(identity.serial)) is revoked by \(config.revocationFile): issue this node "
                    + "a new certificate (agadir admin cert issue --node \(nodeID))")
        }
        return Loaded(identity: identity, certificatePEM: certificate, keyPEM: key, caPEM: ca, revoked: revoked)
    }
}

extension NodeCertificate.Loaded {
    var attestation: Attestation { Attestation(site: identity.site, labels: identity.labels) }

    func contexts() throws(AgadirError) -> NodeTLS.Contexts {
        try NodeTLS.Contexts(certificatePEM: certificatePEM, keyPEM: keyPEM, caPEM: caPEM)
    }
}

/// Reloads the node's certificate, key and CA when their files change, without a restart
/// (docs/operations.md, "Rotating certificates"): new connections use the new ones, open
/// links keep theirs. A file that fails the start-up checks is refused with an error in the
/// log, and the node goes on with what it had.
final class CertificateReloader: Service, Sendable {
    let config: NodeConfiguration
    let nodeID: String
    let site: String
    let tls: NodeTLS
    let attestations: Attestations
    let logger: Logger
    /// Called with the revoked serials when the revocation list changed: links with a
    /// revoked peer are closed (new ones are refused at their handshake).
    let revocationsChanged: @Sendable (Set<String>) -> Void
    /// Called when this node's own certificate changed: its peer links are closed, so the
    /// peers see the new certificate (and what it attests) when they link again.
    let certificateChanged: @Sendable () -> Void
    private let last: Locked<NodeCertificate.Loaded>

    init(
        config: NodeConfiguration, nodeID: String, site: String, loaded: NodeCertificate.Loaded, tls: NodeTLS,
        attestations: Attestations, logger: Logger, revocationsChanged: @escaping @Sendable (Set<String>) -> Void,
        certificateChanged: @escaping @Sendable () -> Void
    ) {
        self.revocationsChanged = revocationsChanged
        self.certificateChanged = certificateChanged
        self.config = config
        self.nodeID = nodeID
        self.site = site
        self.tls = tls
        self.attestations = attestations
        self.logger = logger
        self.last = Locked(loaded)
    }

    func run() async throws {
        let interval = Duration.seconds(max(1, config.certReloadSeconds))
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: interval)
            if Task.isShuttingDownGracefully { break }
            reloadIfChanged()
        }
    }

    /// Reads the files again; adopts them when they changed and pass the checks.
    @discardableResult
    func reloadIfChanged() -> Bool {
        let loaded: NodeCertificate.Loaded
        do {
            guard let l = try NodeCertificate.load(config: config, nodeID: nodeID, site: site) else { return false }
            loaded = l
        } catch {
            logger.error(
                "certificate files changed but fail the checks; keeping the ones in use",
                metadata: ["error": "\(error.message)"])
            return false
        }
        guard loaded != last.value else { return false }
        do {
            tls.replace(try loaded.contexts())
        } catch {
            logger.error(
                "certificate files changed but do not load; keeping the ones in use",
                metadata: ["error": "\(error.message)"])
            return false
        }
        attestations.replaceOwn(loaded.attestation, revokedSerials: loaded.revoked)
        let previous = last.withLock { l in
            defer { l = loaded }
            return l
        }
        if previous.identity != loaded.identity {
            logger.notice("own certificate changed: peer links are closed so that peers see the new one")
            certificateChanged()
        }
        if previous.revoked != loaded.revoked {
            logger.notice(
                "revocation list changed: links with revoked peers are closed",
                metadata: ["revoked": "\(loaded.revoked.count)"])
            revocationsChanged(loaded.revoked)
        }
        let labels = loaded.identity.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        logger.notice(
            "certificate reloaded: new connections use it",
            metadata: [
                "serial": "\(loaded.identity.serial)", "site": "\(loaded.identity.site)",
                "labels": "\(labels.joined(separator: ","))",
            ])
        return true
    }
}
