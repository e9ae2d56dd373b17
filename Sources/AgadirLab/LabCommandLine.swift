import Foundation

/// The agadird command line of a lab node: the one place that knows which flags the lab
/// passes (docs/operations.md, "Local lab").
enum LabCommandLine {
    /// How long the lab waits for a node's ready file after starting it.
    static let readyTimeout: Duration = .seconds(30)

    /// Where `Lab.skew` writes a node's clock offset (ms), next to its data directory.
    static func clockOffsetFile(_ node: LabNode) -> String {
        (node.dataDir as NSString).deletingLastPathComponent + "/clock-offset-ms"
    }

    /// Where the lab writes a node's address map (its relays), next to its data directory.
    static func addressMapFile(_ node: LabNode) -> String {
        (node.dataDir as NSString).deletingLastPathComponent + "/address-map"
    }

    static func arguments(
        node: LabNode, lab: LabState, clientPort: Int, peerPort: Int, seeds: [String], logLevel: String = "info"
    ) -> [String] {
        var args = [
            "--data-dir", node.dataDir,
            "--listen", "127.0.0.1:\(clientPort)",
            "--peer-listen", "127.0.0.1:\(peerPort)",
            "--node-id", node.nodeID,
            "--site", node.site,
        ]
        for (key, value) in node.labels.sorted(by: { $0.key < $1.key }) { args += ["--label", "\(key)=\(value)"] }
        if !seeds.isEmpty { args += ["--seeds", seeds.joined(separator: ",")] }
        if let ca = lab.caFile, let cert = node.certFile, let key = node.keyFile {
            args += ["--cert-file", cert, "--key-file", key, "--ca-file", ca]
            // Certificates and revocations are read again every 2 s (60 s in production).
            if let revocations = lab.revocationFile { args += ["--revocation-file", revocations] }
            args += ["--cert-reload-seconds", "2"]
        }
        args += [
            "--cluster-name", lab.clusterName,
            "--cluster-secret-file", lab.secretFile,
            "--gossip-preset", "lan",
            "--log-level", logLevel,
            "--ready-file", node.readyFile,
            // FOR TESTS ONLY: `agadir-lab skew` writes the node's clock offset here.
            "--testing-clock-offset-file", clockOffsetFile(node),
        ]
        // FOR TESTS ONLY: the relays this node dials its peers through.
        if lab.relays == true { args += ["--testing-address-map-file", addressMapFile(node)] }
        return args + lab.extraArguments
    }
}
