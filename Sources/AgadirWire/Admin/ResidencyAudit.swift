/// One node's answer to `agadir admin audit residency` (docs/operations.md): what it
/// stores, and everything it stores outside the sites of the bucket's policy.
public struct ResidencyAudit: Codable, Sendable, Hashable {
    public struct Violation: Codable, Sendable, Hashable {
        /// `manifest`, `chunk` or `hint`.
        public var kind: String
        public var bucket: String
        public var key: String?
        public var chunk: String?
        public var policy: String
        public var reason: String

        public init(kind: String, bucket: String, key: String?, chunk: String?, policy: String, reason: String) {
            self.kind = kind
            self.bucket = bucket
            self.key = key
            self.chunk = chunk
            self.policy = policy
            self.reason = reason
        }
    }

    public var node: String
    public var site: String
    public var layoutVersion: UInt64
    public var manifests = 0
    public var chunks = 0
    public var hints = 0
    /// Chunks with no recorded object (left by an interrupted PUT); not attributable.
    public var unattributedChunks = 0
    /// Manifests and chunks this node holds that no live layout version names it for
    /// (left by a rebalance still in progress, or not dropped yet).
    public var misplacedManifests = 0
    public var misplacedChunks = 0
    public var violationCount = 0
    /// The first `maxListed` violations.
    public var violations: [Violation] = []
    /// Set when the audit could not finish (the node's part is then unknown).
    public var error: String?
    /// The labels this node's certificate attests; nil when it runs without a certificate
    /// (its site's labels are then the layout's word alone).
    public var attestedLabels: [String: String]?

    public static let maxListed = 1000

    public init(node: String, site: String, layoutVersion: UInt64, error: String? = nil) {
        self.node = node
        self.site = site
        self.layoutVersion = layoutVersion
        self.error = error
    }

    public mutating func add(_ v: Violation) {
        violationCount += 1
        if violations.count < Self.maxListed { violations.append(v) }
    }
}
