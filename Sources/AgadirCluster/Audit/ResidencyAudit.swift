import AgadirCore
import AgadirPlacement
import AgadirStore
import AgadirWire

extension ClusterNode {
    /// Audits this node's store against the layout and the bucket catalog. One scan runs at
    /// a time (callers meanwhile share it) and a scan younger than
    /// `ClusterNodeSettings.auditReuse` is answered again: however often it is asked, the
    /// audit costs a node at most one scan at a time.
    public func residencyAudit() async throws(AgadirError) -> ResidencyAudit {
        try await auditFlight.run(reuseWithin: settings.auditReuse) { () throws(AgadirError) in
            try await self.scanResidency()
        }
    }

    func scanResidency() async throws(AgadirError) -> ResidencyAudit {
        let snapshot = self.snapshot()
        var audit = ResidencyAudit(node: nodeID, site: snapshot.site, layoutVersion: snapshot.layout.current.version)
        // The layout's labels of this node's site must be ones its certificate attests: a
        // site relabelled by an admin command alone is a violation, not an eligibility.
        if let own = attestations?.own {
            let attested = own.labels
            audit.attestedLabels = attested
            for (k, v) in own.unattested(snapshot.layout.current.siteLabels(snapshot.site)) {
                audit.add(
                    .init(
                        kind: "label", bucket: "", key: nil, chunk: nil, policy: "",
                        reason:
                            "the layout labels site '\(snapshot.site)' \(k)=\(v), which this node's certificate does not attest"
                            + (attested[k].map { " (it attests \(k)=\($0))" } ?? "")))
            }
        }
        let catalog = try await store.bucketCatalog()
        var policyOf: [String: String] = [:]
        for r in catalog { policyOf[r.name] = r.policy }
        /// Nil when this node may hold the bucket's bytes; else why not.
        func refusal(_ bucket: String) -> (policy: String, reason: String)? {
            guard let name = policyOf[bucket] else { return ("?", "the bucket is not in this node's catalog") }
            guard let policy = Coordinator.policyNamed(name, in: snapshot.layout) else {
                return (name, "the policy is not in this node's layout")
            }
            if snapshot.layout.live.contains(where: { $0.isEligible(site: snapshot.site, for: policy) }) { return nil }
            return (name, "site '\(snapshot.site)' is outside the policy's sites (\(policy.selector))")
        }
        let page = 10_000
        var after: (bucket: String, key: String)? = nil
        while true {
            let items = try await store.manifestInventory(after: after, limit: page)
            for m in items {
                audit.manifests += 1
                if let r = refusal(m.bucket) {
                    audit.add(
                        .init(
                            kind: "manifest", bucket: m.bucket, key: m.key, chunk: nil, policy: r.policy,
                            reason: r.reason))
                }
            }
            guard items.count == page, let last = items.last else { break }
            after = (last.bucket, last.key)
        }
        var afterChunk: ChunkID? = nil
        while true {
            let items = try await store.chunkInventory(after: afterChunk, limit: page)
            for c in items {
                audit.chunks += 1
                if c.buckets.isEmpty {
                    audit.unattributedChunks += 1
                    continue
                }
                // A chunk shared by buckets of several policies may live where any of them may.
                let refusals = c.buckets.map { ($0, refusal($0)) }
                if refusals.allSatisfy({ $0.1 != nil }), let first = refusals.first, let r = first.1 {
                    audit.add(
                        .init(
                            kind: "chunk", bucket: first.0, key: nil, chunk: c.id.hex, policy: r.policy,
                            reason: r.reason))
                }
            }
            guard items.count == page, let last = items.last else { break }
            afterChunk = last.id
        }
        for (target, _) in try await store.hintTargets() {
            for hint in try await store.hints(for: target, limit: page) {
                audit.hints += 1
                if let r = refusal(hint.bucket) {
                    audit.add(
                        .init(
                            kind: "hint", bucket: hint.bucket, key: nil, chunk: nil, policy: r.policy, reason: r.reason)
                    )
                }
            }
        }
        let misplaced = try await misplaced(drop: false, chunkReferencesBefore: 0)
        audit.misplacedManifests = misplaced.manifests
        audit.misplacedChunks = misplaced.chunks
        return audit
    }
}
