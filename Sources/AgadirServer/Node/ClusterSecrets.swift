import AgadirCore
import AgadirMembership
import AgadirStore
import Foundation
import Logging

/// The cluster secret and the extra secrets accepted during a rotation, read from files.
public enum ClusterSecrets {
    /// Bytes of a generated secret (written as hex).
    static let generatedBytes = 32

    /// Reads the secret files into a keyring. With no `clusterSecretFile` configured, uses
    /// `<dataDir>/cluster.secret`, creating it once (mode 0600) when missing.
    public static func keyring(config: NodeConfiguration, logger: Logger) throws(AgadirError) -> Keyring {
        try Keyring(clusterName: config.clusterName, secrets: try secrets(config: config, logger: logger))
    }

    /// The authenticator of peer links: the same secrets as gossip, other keys.
    public static func peerAuthenticator(config: NodeConfiguration, logger: Logger) throws(AgadirError)
        -> PeerAuthenticator
    {
        try PeerAuthenticator(clusterName: config.clusterName, secrets: try secrets(config: config, logger: logger))
    }

    /// The cluster secrets, primary first (`DATA/cluster.secret` is created when none is configured).
    static func secrets(config: NodeConfiguration, logger: Logger) throws(AgadirError) -> [String] {
        var primary = config.clusterSecretFile
        if primary.isEmpty {
            primary = (config.dataDir as NSString).appendingPathComponent("cluster.secret")
            if !FileManager.default.fileExists(atPath: primary) {
                var rng = SystemRandomNumberGenerator()
                let secret = Hex.encode((0..<generatedBytes).map { _ in UInt8.random(in: 0...255, using: &rng) })
                try AtomicFile.save(Array((secret + "\n").utf8), to: primary, mode: 0o600)
                logger.notice(
                    "created a cluster secret; copy it to the other nodes' --cluster-secret-file",
                    metadata: ["path": "\(primary)"])
            }
        }
        var secrets = [try read(primary, setting: "clusterSecretFile", logger: logger)]
        for path in config.clusterSecretsAccepted {
            secrets.append(try read(path, setting: "clusterSecretsAccepted", logger: logger))
        }
        return secrets
    }

    /// The first line of `path`, trimmed; refuses a missing or empty file.
    static func read(_ path: String, setting: String, logger: Logger) throws(AgadirError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgadirError(
                .invalidArgument,
                "cannot read the cluster secret file \(path) (\(setting)); copy it from a node of the cluster, "
                    + "or leave clusterSecretFile empty to generate one in the data directory")
        }
        let text = String(decoding: data, as: UTF8.self)
        let secret = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard !secret.isEmpty else {
            throw AgadirError(
                .invalidArgument,
                "the cluster secret file \(path) (\(setting)) is empty; copy it from a node of the cluster")
        }
        var st = stat()
        if stat(path, &st) == 0, st.st_mode & 0o077 != 0 {
            logger.warning(
                "the cluster secret file is readable by other users; chmod 600 it",
                metadata: ["path": "\(path)", "mode": "\(String(st.st_mode & 0o777, radix: 8))"])
        }
        return secret
    }
}
