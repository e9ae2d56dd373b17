import AgadirCore
import AgadirIdentity
import Foundation

/// The node's certificate, checked at start (docs/operations.md, "Cluster PKI").
public enum NodeCertificate {
    /// What the configured certificate attests, after checking that the CA signed it, that
    /// it is valid now, that the key is its key, and that it names `nodeID` and `site`; nil
    /// when no certificate is configured. Every refusal says which file and what to do.
    public static func load(config: NodeConfiguration, nodeID: String, site: String) throws(AgadirError)
        -> NodeIdentity?
    {
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
        try ClusterCA.checkKey(certificatePEM: certificate, privateKeyPEM: try read(config.keyFile))
        let identity: NodeIdentity
        do {
            identity = try ClusterCA.attested(certificatePEM: certificate, caCertificatePEM: try read(config.caFile))
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
        return identity
    }
}
