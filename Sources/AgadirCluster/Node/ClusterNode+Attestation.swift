import AgadirCore
import AgadirPlacement
import AgadirWire

extension ClusterNode {
    /// What this node's and its peers' certificates attest (nothing required without links).
    public var attestations: Attestations? { links?.attestations }

    /// The residency check of every request about to leave for `node` (the peer links'
    /// send guard): a request that carries a bucket's bytes or object names (CHUNKS_CLAIM,
    /// CHUNK_PUT, MANIFEST_PUT, HINT_PUT) goes only to a node whose certificate attests a
    /// site and labels the bucket's policy allows. Every send path (quorum writes, read
    /// repair, hints parked and delivered, rebalance and repair copies) goes through the
    /// links, so this one check covers them all. Nothing to check without certificates.
    func checkReceiver(_ node: String, _ request: PeerRequest) async throws(AgadirError) {
        guard let attestations, attestations.required else { return }
        let bucket: String
        switch request {
        case .chunksClaim(let reference), .chunkPut(let reference, _): bucket = reference.bucket
        case .manifestPut(let b, _), .hintPut(_, let b, _, _, _): bucket = b
        default: return
        }
        guard let record = try await bucketRecord(bucket) else {
            throw AgadirError(
                .notAttested,
                "refused to send \(request.opcode) of bucket '\(bucket)' to \(node): the bucket is unknown here, so its policy cannot be checked"
            )
        }
        guard let policy = Coordinator.policyNamed(record.policy, in: layout) else {
            throw AgadirError(
                .notAttested,
                "refused to send \(request.opcode) of bucket '\(bucket)' to \(node): policy '\(record.policy)' is not in this node's layout"
            )
        }
        if let why = attestations.refusal(node, for: policy) {
            logger.error(
                "refused to send a bucket's data to a node its certificate does not make eligible",
                metadata: ["node": "\(node)", "bucket": "\(bucket)", "request": "\(request.opcode)", "why": "\(why)"])
            throw AgadirError(.notAttested, "refused to send \(request.opcode) of bucket '\(bucket)': \(why)")
        }
    }

    /// Nil when `peer` may read data of `policy` by what its certificate attests; otherwise
    /// why not (the replica side's check before it answers a peer with a bucket's data).
    public func attestedRefusal(_ peer: String, for policy: Policy) -> String? {
        attestations?.refusal(peer, for: policy)
    }
}

extension ClusterNode {
    /// `layout apply`'s check (docs/security.md, "Attested residency"): every node of `next`
    /// must sit in the site its certificate attests, and its site's labels must all be
    /// attested by that certificate. A node whose certificate this node has not seen yet is
    /// linked to now; one that cannot be reached passes only when the layout claims about it
    /// what `previous` already did. NOT_ATTESTED names the first claim no certificate backs,
    /// and nothing is applied. Nothing to check without certificates.
    func checkAttested(_ next: Layout, previous: Layout) async throws(AgadirError) {
        guard let attestations, attestations.required, let links else { return }
        for node in next.nodes.sorted(by: { $0.id < $1.id }) {
            if attestations.of(node.id) == nil, node.id != nodeID {
                do throws(AgadirError) {
                    try await links.connect(to: node.id)
                } catch {
                    let before = previous.node(node.id)
                    let unchanged =
                        before?.site == node.site && previous.siteLabels(node.site) == next.siteLabels(node.site)
                    if unchanged { continue }
                    throw AgadirError(
                        .notAttested,
                        "cannot check node \(node.id)'s certificate (\(error.message)), and this layout changes its "
                            + "site or its site's labels: start the node first, or leave its site as it is")
                }
            }
            guard let attested = attestations.of(node.id) else {
                throw AgadirError(.notAttested, "node \(node.id) presented no certificate, so nothing attests its site")
            }
            if let gap = next.attestationGap(node: node.id, attested: attested) {
                logger.warning("layout refused: a residency claim no certificate backs", metadata: ["why": "\(gap)"])
                throw AgadirError(
                    .notAttested,
                    "\(gap); nothing was applied. Labels decide where data may go, so they must come from the "
                        + "certificates: issue the site's nodes certificates with the label (agadir admin cert issue "
                        + "--label), or drop it (agadir admin layout revert)")
            }
        }
    }
}
