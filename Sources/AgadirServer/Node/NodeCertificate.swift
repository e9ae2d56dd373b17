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
    /// The contents of the node's certificate, key, CA and revocation files, as read.
    public struct Files: Sendable, Equatable {
        var certificatePEM: String
        var keyPEM: String
        var caPEM: String
        /// "" when no revocation list is configured.
        var revocations: String
    }

    /// The node's files, read and checked.
    public struct Loaded: Sendable, Equatable {
        public var identity: NodeIdentity
        var files: Files
        /// Serials the cluster's revocation list names (empty when none is configured).
        var revoked: Set<String>
    }

    /// What the configured certificate attests, after checking that the CA signed it, that
    /// it is valid now and not revoked, that the key is its key, and that it names `nodeID`
    /// and `site`; nil when no certificate is configured. Every refusal says which file and
    /// what to do.
    public static func load(config: NodeConfiguration, nodeID: String, site: String) throws(AgadirError) -> Loaded? {
        guard let files = try read(config) else { return nil }
        return try check(files, config: config, nodeID: nodeID, site: site)
    }

    /// The configured files' contents; nil when none is configured.
    static func read(_ config: NodeConfiguration) throws(AgadirError) -> Files? {
        let paths = [config.certFile, config.keyFile, config.caFile]
        if paths.allSatisfy(\.isEmpty) { return nil }
        guard paths.allSatisfy({ !$0.isEmpty }) else {
            throw AgadirError(
                .invalidArgument, "give certFile, keyFile and caFile together (agadir admin cert issue makes them)")
        }
        func read(_ path: String) throws(AgadirError) -> String {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw AgadirError(.invalidArgument, "cannot read \(path)")
            }
            return String(decoding: data, as: UTF8.self)
        }
        return Files(
            certificatePEM: try read(config.certFile), keyPEM: try read(config.keyFile), caPEM: try read(config.caFile),
            revocations: config.revocationFile.isEmpty ? "" : try read(config.revocationFile))
    }

    /// `load`'s checks of files already read.
    static func check(_ files: Files, config: NodeConfiguration, nodeID: String, site: String) throws(AgadirError)
        -> Loaded
    {
        let (certificate, ca) = (files.certificatePEM, files.caPEM)
        try ClusterCA.checkKey(certificatePEM: certificate, privateKeyPEM: files.keyPEM)
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
                revoked = Set(try RevocationList.verified(json: files.revocations, caCertificatePEM: ca).serials)
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
        return Loaded(identity: identity, files: files, revoked: revoked)
    }
}

extension NodeCertificate.Loaded {
    var attestation: Attestation { Attestation(site: identity.site, labels: identity.labels) }

    func contexts() throws(AgadirError) -> NodeTLS.Contexts {
        try NodeTLS.Contexts(certificatePEM: files.certificatePEM, keyPEM: files.keyPEM, caPEM: files.caPEM)
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
        self.seen = Locked(loaded.files)
    }

    func run() async throws {
        let interval = Duration.seconds(max(1, config.certReloadSeconds))
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: interval)
            if Task.isShuttingDownGracefully { break }
            reloadIfChanged()
        }
    }

    /// The files last read, adopted or refused: unchanged files are not checked again.
    private let seen: Locked<NodeCertificate.Files>

    /// Reads the files again; when they changed and pass the checks, adopts them.
    @discardableResult
    func reloadIfChanged() -> Bool {
        // A file being replaced may be missing for a moment: the next round reads it.
        guard let files = try? NodeCertificate.read(config), files != seen.value else { return false }
        seen.withLock { $0 = files }
        let loaded: NodeCertificate.Loaded
        do {
            loaded = try NodeCertificate.check(files, config: config, nodeID: nodeID, site: site)
        } catch {
            logger.error(
                "certificate files changed but fail the checks; keeping the ones in use",
                metadata: ["error": "\(error.message)"])
            return false
        }
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
        logger.notice(
            "certificate reloaded: new connections use it",
            metadata: [
                "serial": "\(loaded.identity.serial)", "site": "\(loaded.identity.site)",
                "labels": "\(loaded.identity.labels.labelText)",
            ])
        return true
    }
}
