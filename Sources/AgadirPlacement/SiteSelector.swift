import AgadirCore

/// Which sites a policy may place data on: every label must match (AND), and when `sites`
/// is non-empty the site must also be one of them.
///
/// Text form (`init(parsing:)`, `description`): `any`, or clauses separated by `;` where a
/// clause is either `sites=NAME,NAME,...` or `KEY=VALUE,KEY=VALUE,...`:
/// `country=MA`, `country=MA,tier=4`, `sites=benguerir,casablanca`, `sites=a,b;country=MA`.
public struct SiteSelector: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Labels the site must carry with exactly these values.
    public var labels: [String: String]
    /// When non-empty, the site name must be one of these (sorted, without duplicates).
    public var sites: [String]

    /// No labels, no sites: every site matches.
    public static let any = SiteSelector()

    public init(labels: [String: String] = [:], sites: [String] = []) {
        self.labels = labels
        self.sites = Array(Set(sites)).sorted()
    }

    /// Parses the text form; throws `.invalidArgument` saying what is wrong and how to write it.
    public init(parsing text: String) throws(AgadirError) {
        let help =
            "write 'any', 'country=MA', 'country=MA,tier=4', 'sites=benguerir,casablanca' or 'sites=a,b;country=MA'"
        func fail(_ why: String) -> AgadirError {
            AgadirError(.invalidArgument, "selector \(PlacementNames.quoted(text)): \(why); \(help)")
        }
        let trimmed = text.trimmingSpaces
        guard !trimmed.isEmpty else { throw fail("it is empty") }
        if trimmed.lowercased() == "any" {
            self = .any
            return
        }
        var labels: [String: String] = [:]
        var sites: [String]? = nil
        for rawClause in trimmed.split(separator: ";", omittingEmptySubsequences: false) {
            let clause = String(rawClause).trimmingSpaces
            guard !clause.isEmpty else { throw fail("it has an empty clause between ';'") }
            if clause.lowercased() == "any" { throw fail("'any' cannot be combined with other clauses") }
            if let eq = clause.firstIndex(of: "="), clause[..<eq].trimmingSpaces == "sites" {
                guard sites == nil else { throw fail("'sites=' is given twice") }
                var list: [String] = []
                for raw in clause[clause.index(after: eq)...].split(separator: ",", omittingEmptySubsequences: false) {
                    let name = String(raw).trimmingSpaces
                    guard !name.isEmpty else { throw fail("the site list has an empty name") }
                    do { try PlacementNames.validateSite(name) } catch { throw fail(error.message) }
                    list.append(name)
                }
                sites = list
                continue
            }
            for rawPair in clause.split(separator: ",", omittingEmptySubsequences: false) {
                let pair = String(rawPair).trimmingSpaces
                guard let eq = pair.firstIndex(of: "=") else {
                    throw fail("\(PlacementNames.quoted(pair)) is not KEY=VALUE")
                }
                let key = pair[..<eq].trimmingSpaces
                let value = pair[pair.index(after: eq)...].trimmingSpaces
                if key == "sites" {
                    throw fail("'sites=' must be a clause of its own, separated from labels by ';'")
                }
                do { try PlacementNames.validateLabel(key: key, value: value) } catch { throw fail(error.message) }
                if let old = labels[key], old != value {
                    throw fail("label '\(key)' is given twice with different values")
                }
                labels[key] = value
            }
        }
        self.init(labels: labels, sites: sites ?? [])
        do { try validate() } catch { throw fail(error.message) }
    }

    /// True when `site`, carrying `siteLabels`, is eligible.
    public func matches(site: String, siteLabels: [String: String]) -> Bool {
        if !sites.isEmpty, !sites.contains(site) { return false }
        for (key, value) in labels where siteLabels[key] != value { return false }
        return true
    }

    /// Canonical text that `init(parsing:)` accepts back: `any`, or `sites=...` first, then
    /// the labels sorted by key.
    public var description: String {
        var clauses: [String] = []
        if !sites.isEmpty { clauses.append("sites=" + sites.sorted().joined(separator: ",")) }
        if !labels.isEmpty {
            clauses.append(labels.labelText)
        }
        return clauses.isEmpty ? "any" : clauses.joined(separator: ";")
    }

    /// Checks names, values and counts; `.invalidArgument` naming the bad part.
    public func validate() throws(AgadirError) {
        try PlacementNames.validateLabels(labels, owner: "selector")
        guard sites.count <= PlacementLimits.maxSites else {
            throw AgadirError(
                .invalidArgument, "selector names \(sites.count) sites; at most \(PlacementLimits.maxSites) are allowed"
            )
        }
        for site in sites { try PlacementNames.validateSite(site) }
    }

    // MARK: Codable (normalizes the site list as `init(labels:sites:)` does)

    private enum CodingKeys: String, CodingKey { case labels, sites }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            labels: try c.decodeIfPresent([String: String].self, forKey: .labels) ?? [:],
            sites: try c.decodeIfPresent([String].self, forKey: .sites) ?? [])
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(labels, forKey: .labels)
        try c.encode(sites, forKey: .sites)
    }
}

extension StringProtocol {
    /// Without leading and trailing whitespace (no Foundation).
    var trimmingSpaces: String {
        guard let first = firstIndex(where: { !$0.isWhitespace }),
            let last = lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(self[first...last])
    }
}
