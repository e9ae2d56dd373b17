import AgadirCore

/// A placement policy: how many replicas, on which sites, spread over how many sites, and the
/// default consistency levels and codec of the buckets bound to it.
public struct Policy: Sendable, Hashable, Codable {
    /// Same rules as bucket names (`Names.validateBucket`); "default" is the built-in policy.
    public var name: String
    /// Replicas of every chunk and manifest, 1...7.
    public var replicationFactor: Int
    /// Eligible sites: the policy's data never leaves them.
    public var selector: SiteSelector
    /// Distinct sites every partition's replicas must span, 1...replicationFactor.
    public var minSites: Int
    public var readConsistency: ConsistencyLevel
    public var writeConsistency: ConsistencyLevel
    /// Codec new chunks of the policy's buckets are compressed with.
    public var codec: Codec

    /// Name of the built-in policy every layout has.
    public static let defaultName = "default"

    public init(
        name: String, replicationFactor: Int, selector: SiteSelector, minSites: Int,
        readConsistency: ConsistencyLevel, writeConsistency: ConsistencyLevel, codec: Codec
    ) {
        self.name = name
        self.replicationFactor = replicationFactor
        self.selector = selector
        self.minSites = minSites
        self.readConsistency = readConsistency
        self.writeConsistency = writeConsistency
        self.codec = codec
    }

    /// 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit.
    public static func isValidName(_ name: String) -> Bool {
        let b = Array(name.utf8)
        func alnum(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) }
        guard (1...63).contains(b.count), let first = b.first, let last = b.last, alnum(first), alnum(last) else {
            return false
        }
        return b.allSatisfy { alnum($0) || $0 == 0x2D }
    }

    /// Checks every field; `.invalidArgument` naming the field and the allowed values.
    public func validate() throws(AgadirError) {
        func fail(_ why: String) -> AgadirError { AgadirError(.invalidArgument, "policy '\(name.prefix(80))': \(why)") }
        guard Self.isValidName(name) else {
            throw AgadirError(
                .invalidArgument,
                "policy name \(PlacementNames.quoted(name)) is invalid: policy names take 1-63 characters of a-z, 0-9 "
                    + "and '-', starting and ending with a letter or digit (for example 'ma' or 'eu-west')")
        }
        let maxRF = PlacementLimits.maxReplicationFactor
        guard (1...maxRF).contains(replicationFactor) else {
            throw fail("replicationFactor is \(replicationFactor); it must be 1...\(maxRF)")
        }
        guard (1...replicationFactor).contains(minSites) else {
            throw fail("minSites is \(minSites); it must be 1...replicationFactor (\(replicationFactor))")
        }
        do { try selector.validate() } catch { throw fail("selector: \(error.message)") }
        if !selector.sites.isEmpty, selector.sites.count < minSites {
            throw fail(
                "minSites is \(minSites) but the selector allows only \(plural(selector.sites.count, "site")) "
                    + "(\(selector.sites.joined(separator: ", ")))")
        }
    }

    /// The built-in policy every layout has: RF = min(3, number of storage nodes) but at least
    /// 1, any site, minSites 1, QUORUM/QUORUM, lz4.
    public static func builtInDefault(storageNodes: Int) -> Policy {
        Policy(
            name: defaultName, replicationFactor: max(1, min(3, storageNodes)), selector: .any, minSites: 1,
            readConsistency: .quorum, writeConsistency: .quorum, codec: .lz4)
    }

    // MARK: Codable (the codec travels by name: `Codec` itself is not Codable)

    private enum CodingKeys: String, CodingKey {
        case name, replicationFactor, selector, minSites, readConsistency, writeConsistency, codec
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let codecName = try c.decode(String.self, forKey: .codec)
        guard let codec = Codec(name: codecName) else {
            throw DecodingError.dataCorruptedError(
                forKey: .codec, in: c, debugDescription: "unknown codec '\(codecName)'; use raw, lz4 or zlib")
        }
        self.init(
            name: try c.decode(String.self, forKey: .name),
            replicationFactor: try c.decode(Int.self, forKey: .replicationFactor),
            selector: try c.decode(SiteSelector.self, forKey: .selector),
            minSites: try c.decode(Int.self, forKey: .minSites),
            readConsistency: try c.decode(ConsistencyLevel.self, forKey: .readConsistency),
            writeConsistency: try c.decode(ConsistencyLevel.self, forKey: .writeConsistency),
            codec: codec)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(replicationFactor, forKey: .replicationFactor)
        try c.encode(selector, forKey: .selector)
        try c.encode(minSites, forKey: .minSites)
        try c.encode(readConsistency, forKey: .readConsistency)
        try c.encode(writeConsistency, forKey: .writeConsistency)
        try c.encode(codec.name, forKey: .codec)
    }
}
