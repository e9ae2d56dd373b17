import AgadirCore

/// What a node certificate attests: the node's id, its site and its residency labels.
public struct NodeIdentity: Sendable, Hashable, Codable {
    public var nodeID: String
    public var site: String
    public var labels: [String: String]

    public init(nodeID: String, site: String, labels: [String: String] = [:]) {
        self.nodeID = nodeID
        self.site = site
        self.labels = labels
    }
}
