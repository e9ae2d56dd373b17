import AgadirCore

/// Bounds of the layout document, checked when a layout is built (`StagedChanges.resolve`,
/// `Policy.validate`) and again when one is decoded (`LayoutCodec.decode`).
///
/// Strings are counted in UTF-8 bytes.
public enum PlacementLimits {
    /// Most nodes (storage and gateway) in one layout.
    public static let maxNodes = 4096
    /// Most sites in one layout.
    public static let maxSites = 1024
    /// Most policies in one layout, "default" included.
    public static let maxPolicies = 256
    /// Most labels on one site, and in one selector.
    public static let maxLabels = 32
    /// Longest string of any kind in the layout document (the encoding's `str8`).
    public static let maxStringBytes = 255
    /// Longest node id (as gossip, `GossipLimits.maxNodeIDBytes`).
    public static let maxNodeIDBytes = 128
    /// Longest site name (as gossip, `GossipLimits.maxSiteBytes`).
    public static let maxSiteBytes = 64
    /// Longest label key (as gossip).
    public static let maxLabelKeyBytes = 64
    /// Longest label value.
    public static let maxLabelValueBytes = 255
    /// Largest replication factor a policy may ask for.
    public static let maxReplicationFactor = 7
    /// Partition counts are powers of two in this range.
    public static let partitionCounts = 8...65536
    /// Partition count of a new cluster unless the first staged changes say otherwise.
    public static let defaultPartitionCount = 256
    /// Longest summary of a layout history entry.
    public static let maxSummaryBytes = 1024

    /// True for a power of two in `partitionCounts`.
    public static func isValidPartitionCount(_ n: Int) -> Bool {
        partitionCounts.contains(n) && n & (n - 1) == 0
    }
}

/// Character rules for the identifiers of the layout, shared with `agadird`'s configuration:
/// node ids, site names and label keys are ASCII letters, digits, '-', '_' and '.'.
enum PlacementNames {
    static func isNameByte(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x5f
            || c == 0x2e
    }

    static func isName(_ s: String, max: Int) -> Bool {
        let n = s.utf8.count
        return n >= 1 && n <= max && s.utf8.allSatisfy(isNameByte)
    }

    static func quoted(_ s: String) -> String {
        s.utf8.count <= 80 ? "'\(s)'" : "'\(s.prefix(60))…'"
    }

    static func validateNodeID(_ id: String, code: AgadirError.Code = .invalidArgument) throws(AgadirError) {
        guard isName(id, max: PlacementLimits.maxNodeIDBytes) else {
            throw AgadirError(
                code,
                "node id \(quoted(id)) must be 1-\(PlacementLimits.maxNodeIDBytes) letters, digits, '-', '_' or '.'")
        }
    }

    static func validateSite(_ site: String, code: AgadirError.Code = .invalidArgument) throws(AgadirError) {
        guard isName(site, max: PlacementLimits.maxSiteBytes) else {
            throw AgadirError(
                code,
                "site name \(quoted(site)) must be 1-\(PlacementLimits.maxSiteBytes) letters, digits, '-', '_' or '.'")
        }
    }

    static func validateLabel(key: String, value: String, code: AgadirError.Code = .invalidArgument)
        throws(AgadirError)
    {
        guard isName(key, max: PlacementLimits.maxLabelKeyBytes) else {
            throw AgadirError(
                code,
                "label key \(quoted(key)) must be 1-\(PlacementLimits.maxLabelKeyBytes) letters, digits, "
                    + "'-', '_' or '.'")
        }
        let n = value.utf8.count
        let forbidden = value.unicodeScalars.contains { s in
            s.value < 0x20 || s.value == 0x7f || s == "," || s == ";" || s == "="
        }
        let padded = value.first?.isWhitespace == true || value.last?.isWhitespace == true
        guard n >= 1, n <= PlacementLimits.maxLabelValueBytes, !forbidden, !padded else {
            throw AgadirError(
                code,
                "value \(quoted(value)) of label '\(key)' must be 1-\(PlacementLimits.maxLabelValueBytes) bytes "
                    + "without ',', ';', '=', control characters or surrounding spaces")
        }
    }

    static func validateLabels(_ labels: [String: String], owner: String, code: AgadirError.Code = .invalidArgument)
        throws(AgadirError)
    {
        guard labels.count <= PlacementLimits.maxLabels else {
            throw AgadirError(
                code, "\(owner) has \(labels.count) labels; at most \(PlacementLimits.maxLabels) are allowed")
        }
        // Sorted so that the first bad label reported is the same on every node.
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) {
            try validateLabel(key: key, value: value, code: code)
        }
    }
}

/// "1 node", "2 nodes".
func plural(_ n: Int, _ word: String) -> String { n == 1 ? "1 \(word)" : "\(n) \(word)s" }
