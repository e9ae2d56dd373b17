import AgadirCore
import AgadirMembership
import AgadirStore
import Foundation
import Logging

/// The gossip part of `NodeConfiguration`, validated and resolved (`validateGossip()`).
public struct GossipConfiguration: Sendable {
    public var settings: MembershipSettings
    /// Where the UDP socket and the TCP listener bind (port 0: the kernel picks one).
    public var peerHost: String
    public var peerPort: Int
    public var seeds: [String]
    public var site: String
    public var labels: [String: String]
    /// Empty: announce the bound address.
    public var advertiseClient: String
    public var advertisePeer: String
    public var clusterName: String

    public init(
        settings: MembershipSettings, peerHost: String, peerPort: Int, seeds: [String] = [], site: String = "default",
        labels: [String: String] = [:], advertiseClient: String = "", advertisePeer: String = "",
        clusterName: String = "agadir"
    ) {
        self.settings = settings
        self.peerHost = peerHost
        self.peerPort = peerPort
        self.seeds = seeds
        self.site = site
        self.labels = labels
        self.advertiseClient = advertiseClient
        self.advertisePeer = advertisePeer
        self.clusterName = clusterName
    }
}

/// `<dataDir>/gossip-state.json`: the last incarnation this node announced, so a restart
/// announces a higher one and out-numbers whatever the cluster remembers of it.
struct GossipStateFile: Sendable {
    let path: String

    init(dataDir: String) { path = (dataDir as NSString).appendingPathComponent("gossip-state.json") }

    private struct Content: Codable { var incarnation: UInt64 }

    /// Nil when the file does not exist (a new node).
    func read() throws(AgadirError) -> Incarnation? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let content = try? JSONDecoder().decode(Content.self, from: data),
            let value = Incarnation(content.incarnation)
        else {
            throw AgadirError(
                .ioError,
                "\(path) is not a valid gossip state ({\"incarnation\": N}); restore it, or remove it "
                    + "(the node then starts at incarnation 0 and refutes older records of itself)")
        }
        return value
    }

    func write(_ incarnation: Incarnation) throws(AgadirError) {
        try AtomicFile.save(Array("{\"incarnation\": \(incarnation.value)}\n".utf8), to: path)
    }
}
