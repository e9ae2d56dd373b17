import AgadirCore

// Buckets (docs/operations.md, "Quotas"): the input and answer of `bucket.quota`.
extension Admin {
    public static let bucketQuota = AdminCommand<QuotaChange, QuotaView>("bucket.quota")

    /// Sets a bucket's limits: nil leaves one as it is, 0 removes it. Both nil: only shows.
    public struct QuotaChange: Codable, Sendable {
        public var bucket: String
        public var maxBytes: UInt64?
        public var maxObjects: UInt64?

        public init(bucket: String, maxBytes: UInt64? = nil, maxObjects: UInt64? = nil) {
            self.bucket = bucket
            self.maxBytes = maxBytes
            self.maxObjects = maxObjects
        }
    }

    /// A bucket's quota (0 = no limit) and its usage across the cluster: the live objects and
    /// bytes its nodes hold, divided by the replication factor; `nodesAnswered` of
    /// `nodesAsked` reported (fewer: the figures are low).
    public struct QuotaView: Codable, Sendable {
        public var bucket: String
        public var policy: String
        public var maxBytes: UInt64
        public var maxObjects: UInt64
        public var objects: UInt64
        public var bytes: UInt64
        public var nodesAnswered: Int
        public var nodesAsked: Int

        public init(
            bucket: String, policy: String, maxBytes: UInt64, maxObjects: UInt64, objects: UInt64, bytes: UInt64,
            nodesAnswered: Int, nodesAsked: Int
        ) {
            self.bucket = bucket
            self.policy = policy
            self.maxBytes = maxBytes
            self.maxObjects = maxObjects
            self.objects = objects
            self.bytes = bytes
            self.nodesAnswered = nodesAnswered
            self.nodesAsked = nodesAsked
        }
    }
}
