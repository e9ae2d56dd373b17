/// What a node's certificate attests, as placement needs it: the node's site and its
/// residency labels (docs/security.md, "Attested residency"). In a cluster with
/// certificates, a node may hold a bucket's bytes only when the layout places them there
/// *and* its attestation satisfies the bucket's policy: the layout alone (a mutable admin
/// field) can never make a site eligible.
public struct Attestation: Sendable, Hashable, Codable {
    public var site: String
    public var labels: [String: String]

    public init(site: String, labels: [String: String] = [:]) {
        self.site = site
        self.labels = labels
    }

    /// True when the attested site and labels satisfy `policy`'s selector.
    public func permits(_ policy: Policy) -> Bool {
        policy.selector.matches(site: site, siteLabels: labels)
    }

    /// The labels of `layoutLabels` this attestation does not carry with the same value,
    /// sorted by key.
    public func unattested(_ layoutLabels: [String: String]) -> [(key: String, value: String)] {
        layoutLabels.filter { labels[$0.key] != $0.value }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

extension Layout {
    /// Why the layout's claims about `node` go beyond what its certificate attests (a site
    /// other than the attested one, or a site label it does not carry); nil when they do not.
    public func attestationGap(node id: String, attested: Attestation) -> String? {
        guard let node = node(id) else { return nil }
        if node.site != attested.site {
            return
                "the layout puts node \(id) in site '\(node.site)', but its certificate attests site '\(attested.site)'"
        }
        let missing = attested.unattested(siteLabels(node.site))
        guard !missing.isEmpty else { return nil }
        let text = missing.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        return
            "site '\(node.site)' carries \(text) in the layout, but the certificate of its node \(id) does not attest it"
    }
}
