import AgadirCore

/// Whether the replicas that answered satisfy a consistency level (pure).
///
/// `replicas` is one replica set (one layout version's list for a partition);
/// `answered` the nodes of it that acknowledged a write or answered a read; `site` maps a
/// node to its site; `coordinatorSite` is the site of the node running the request.
public struct Quorum: Sendable, Hashable {
    public var level: ConsistencyLevel
    public var replicas: [String]
    public var coordinatorSite: String

    public init(level: ConsistencyLevel, replicas: [String], coordinatorSite: String) {
        self.level = level
        self.replicas = replicas
        self.coordinatorSite = coordinatorSite
    }

    /// The outcome: satisfied or not, and the counts to report (`answered` of `needed`,
    /// counted over the group that decides: the whole set, the local site, or the site
    /// that falls shortest for EACH_QUORUM).
    public struct Outcome: Sendable, Hashable {
        public var satisfied: Bool
        public var answered: Int
        public var needed: Int
        /// For messages: "QUORUM of 3 replicas", "LOCAL_QUORUM in benguerir", ...
        public var scope: String
    }

    public func evaluate(answered: Set<String>, site: (String) -> String) -> Outcome {
        let members = Self.distinct(replicas)
        let got = members.filter { answered.contains($0) }.count
        switch level {
        case .one:
            return Outcome(
                satisfied: got >= min(1, members.count), answered: got, needed: min(1, members.count),
                scope: "ONE of \(members.count) replicas")
        case .all:
            return Outcome(
                satisfied: got == members.count, answered: got, needed: members.count,
                scope: "ALL \(members.count) replicas")
        case .quorum:
            let need = ConsistencyLevel.majority(of: members.count)
            return Outcome(
                satisfied: got >= need, answered: got, needed: need, scope: "QUORUM of \(members.count) replicas")
        case .localQuorum:
            let local = members.filter { site($0) == coordinatorSite }
            if local.isEmpty {
                // No replica in the coordinator's site: a quorum of the whole set.
                let need = ConsistencyLevel.majority(of: members.count)
                return Outcome(
                    satisfied: got >= need, answered: got, needed: need,
                    scope: "LOCAL_QUORUM (no replica in \(coordinatorSite), so QUORUM of \(members.count))")
            }
            let gotLocal = local.filter { answered.contains($0) }.count
            let need = ConsistencyLevel.majority(of: local.count)
            return Outcome(
                satisfied: gotLocal >= need, answered: gotLocal, needed: need,
                scope: "LOCAL_QUORUM of \(local.count) replicas in \(coordinatorSite)")
        case .eachQuorum:
            var sites: [String] = []
            for m in members where !sites.contains(site(m)) { sites.append(site(m)) }
            var worst: Outcome?
            for s in sites {
                let inSite = members.filter { site($0) == s }
                let gotSite = inSite.filter { answered.contains($0) }.count
                let need = ConsistencyLevel.majority(of: inSite.count)
                let o = Outcome(
                    satisfied: gotSite >= need, answered: gotSite, needed: need,
                    scope: "EACH_QUORUM: \(inSite.count) replicas in \(s)")
                if !o.satisfied, worst == nil || worst?.satisfied == true { worst = o }
            }
            return worst
                ?? Outcome(satisfied: true, answered: got, needed: got, scope: "EACH_QUORUM over \(sites.count) sites")
        }
    }

    /// Every node of `sets` once, in order of first appearance.
    public static func distinct(_ nodes: [String]) -> [String] {
        var seen = Set<String>()
        return nodes.filter { seen.insert($0).inserted }
    }

    /// The outcome over several replica sets (one per live layout version): satisfied when
    /// every set is; the reported counts are those of the first set that falls short.
    public static func evaluate(
        level: ConsistencyLevel, sets: [[String]], coordinatorSite: String, answered: Set<String>,
        site: (String) -> String
    ) -> Outcome {
        var last = Outcome(satisfied: true, answered: 0, needed: 0, scope: "no replicas")
        for set in sets {
            let o = Quorum(level: level, replicas: set, coordinatorSite: coordinatorSite).evaluate(
                answered: answered, site: site)
            if !o.satisfied { return o }
            last = o
        }
        return last
    }
}
