import AgadirCore
import AgadirIdentity
import Foundation

/// The lab's cluster CA (`ROOT/pki`) and the certificates it issues to the lab's nodes, as
/// an operator would with `agadir admin ca init` and `agadir admin cert issue`.
struct LabPKI {
    let caFile: String
    /// `ROOT/pki/revocations.json`: the cluster's revocation list (empty at first), read by
    /// every node (`agadir admin cert revoke --ca ROOT/pki` adds to it).
    let revocationFile: String
    let caKeyFile: String
    let caPEM: String
    let caKeyPEM: String

    static func create(root: URL, clusterName: String) throws(AgadirError) -> LabPKI {
        let dir = root.appendingPathComponent("pki")
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        } catch {
            throw AgadirError(.ioError, "cannot create \(dir.path): \(error)")
        }
        let (certificate, key) = try ClusterCA.create(clusterName: clusterName)
        let pki = LabPKI(
            caFile: dir.appendingPathComponent("ca.crt").path,
            revocationFile: dir.appendingPathComponent("revocations.json").path,
            caKeyFile: dir.appendingPathComponent("ca.key").path, caPEM: certificate, caKeyPEM: key)
        try write(certificate, to: pki.caFile, mode: 0o644)
        try write(key, to: pki.caKeyFile, mode: 0o600)
        let none = try RevocationList.sign(serials: [], caCertificatePEM: certificate, caPrivateKeyPEM: key)
        try write(try none.encoded(), to: pki.revocationFile, mode: 0o644)
        return pki
    }

    /// The CA of an existing lab root (`create` made it).
    static func open(root: URL) throws(AgadirError) -> LabPKI {
        let dir = root.appendingPathComponent("pki")
        let caFile = dir.appendingPathComponent("ca.crt").path
        let caKeyFile = dir.appendingPathComponent("ca.key").path
        guard let ca = FileManager.default.contents(atPath: caFile),
            let key = FileManager.default.contents(atPath: caKeyFile)
        else { throw AgadirError(.ioError, "the lab's CA (\(caFile), \(caKeyFile)) cannot be read") }
        return LabPKI(
            caFile: caFile, revocationFile: dir.appendingPathComponent("revocations.json").path, caKeyFile: caKeyFile,
            caPEM: String(decoding: ca, as: UTF8.self), caKeyPEM: String(decoding: key, as: UTF8.self))
    }

    /// Issues the certificate of node `node` (loopback host names) into `dir`; returns the
    /// certificate's and the key's paths.
    func issue(node: String, site: String, labels: [String: String], dir: URL) throws(AgadirError) -> (String, String) {
        let (certificate, key) = try ClusterCA.issue(
            NodeIdentity(nodeID: node, site: site, labels: labels), hosts: ["127.0.0.1", "::1", "localhost"],
            caCertificatePEM: caPEM, caPrivateKeyPEM: caKeyPEM)
        let certFile = dir.appendingPathComponent("node.crt").path
        let keyFile = dir.appendingPathComponent("node.key").path
        try Self.write(certificate, to: certFile, mode: 0o644)
        try Self.write(key, to: keyFile, mode: 0o600)
        return (certFile, keyFile)
    }

    /// Writes `text` to a new file `path` with permissions `mode` (keys and credentials 0600).
    static func write(_ text: String, to path: String, mode: Int) throws(AgadirError) {
        guard
            FileManager.default.createFile(
                atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
        else { throw AgadirError(.ioError, "cannot write \(path)") }
    }
}
