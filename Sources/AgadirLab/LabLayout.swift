import AgadirClient
import AgadirCore
import AgadirWire
import Foundation

/// A policy the lab creates with its layout.
public struct LabPolicy: Sendable, Hashable {
    public var name: String
    public var replicationFactor: Int
    /// Selector text: `any`, `country=MA`, `sites=a,b`.
    public var sites: String
    public var minSites: Int

    public init(name: String, replicationFactor: Int, sites: String, minSites: Int) {
        self.name = name
        self.replicationFactor = replicationFactor
        self.sites = sites
        self.minSites = minSites
    }
}

extension Lab {
    /// Labels of the sites the lab knows by name (the demonstration's Moroccan sites and Paris).
    public static let knownSiteLabels: [String: [String: String]] = [
        "benguerir": ["country": "MA"], "casablanca": ["country": "MA"], "settat": ["country": "MA"],
        "rabat": ["country": "MA"], "agadir": ["country": "MA"], "paris": ["country": "FR"],
    ]

    /// The policies `agadir-lab up` creates: `ma` (RF 3 on Moroccan sites, at least two of
    /// them) when the lab has two Moroccan sites or more, and `global` (RF 3 anywhere); with
    /// fewer nodes the replication factors shrink to what the lab can hold.
    public static func defaultPolicies(sites: [String], nodesPerSite: Int = 2) -> [LabPolicy] {
        var out: [LabPolicy] = []
        let moroccan = sites.filter { knownSiteLabels[$0]?["country"] == "MA" }
        if moroccan.count >= 2 {
            out.append(
                LabPolicy(
                    name: "ma", replicationFactor: min(3, moroccan.count * nodesPerSite), sites: "country=MA",
                    minSites: 2))
        }
        out.append(
            LabPolicy(name: "global", replicationFactor: min(3, sites.count * nodesPerSite), sites: "any", minSites: 1))
        return out
    }

    /// The layout version the node `name` holds (from its gossip record).
    public func layoutVersion(of name: String) async throws(AgadirError) -> UInt64 {
        let node = try state().nodes.first { $0.name == name }
        let members = try await members(of: name)
        return members.first { $0.nodeID == node?.nodeID }?.layoutVersion ?? 0
    }

    /// Assigns every node of the lab to its site with `capacity` bytes, labels the sites it
    /// knows (`knownSiteLabels`, overridden by `siteLabels`), creates `policies`, and
    /// applies the result as the next layout version through the first running node; then
    /// waits until every running node holds that version. Returns the version.
    @discardableResult
    public func applyLayout(
        capacity: UInt64 = 1_000_000_000_000, siteLabels: [String: [String: String]] = [:],
        policies: [LabPolicy]? = nil,
        partitionCount: Int? = nil, timeout: Duration = .seconds(60)
    ) async throws(AgadirError) -> UInt64 {
        let state = try state()
        let running = try status().filter { $0.state == .running }.map(\.name)
        guard let first = running.first else {
            throw AgadirError(.unavailable, "no node of the lab is running; `agadir-lab up` first")
        }
        let client = try client(for: first)
        defer { Task { await client.close() } }
        _ = try await client.admin(Admin.layoutRevert)
        if let partitionCount {
            _ = try await client.admin(Admin.layoutPartitions, Admin.Partitions(count: partitionCount))
        }
        for node in state.nodes {
            let labels = siteLabels[node.site] ?? Self.knownSiteLabels[node.site]
            _ = try await client.admin(
                Admin.layoutAssign,
                Admin.Assign(node: node.nodeID, site: node.site, capacity: capacity, siteLabels: labels))
        }
        let shown = try await client.admin(Admin.layoutShow)
        let existing = Set(shown.policies.map(\.name))
        for p in policies ?? Self.defaultPolicies(sites: state.sites, nodesPerSite: state.nodesPerSite)
        where !existing.contains(p.name) {
            _ = try await client.admin(
                Admin.policyCreate,
                Admin.PolicySpec(
                    name: p.name, replicationFactor: p.replicationFactor, sites: p.sites, minSites: p.minSites))
        }
        let version = shown.version + 1
        _ = try await client.admin(Admin.layoutApply, Admin.Apply(version: version))
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var behind: [String] = running
        repeat {
            var lagging: [String] = []
            for name in running where (try? await layoutVersion(of: name)) ?? 0 < version { lagging.append(name) }
            behind = lagging
            if behind.isEmpty { return version }
            try? await Task.sleep(for: .milliseconds(200))
        } while clock.now < deadline
        throw AgadirError(
            .unavailable, "layout version \(version) did not reach \(behind.joined(separator: ", ")) within \(timeout)")
    }
}
