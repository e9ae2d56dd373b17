import AgadirCore

/// What a node certificate attests: the node's id, its site and its residency labels.
public struct NodeIdentity: Sendable, Hashable, Codable {
    public var nodeID: String
    public var site: String
    public var labels: [String: String]
    /// The certificate's serial number, lowercase hex ("" when not read from a certificate).
    public var serial: String

    public init(nodeID: String, site: String, labels: [String: String] = [:], serial: String = "") {
        self.nodeID = nodeID
        self.site = site
        self.labels = labels
        self.serial = serial
    }
}
