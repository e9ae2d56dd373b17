import AgadirCore

/// The decisions of the garbage collector (docs/rebalance.md, "Garbage collection"), as
/// pure functions.
public enum GarbageDecisions {
    /// What one replica holds of an object.
    public enum Held: Sendable, Hashable {
        case none
        case version(ObjectVersion, tombstone: Bool)

        var version: ObjectVersion? {
            if case .version(let v, _) = self { return v }
            return nil
        }
    }

    public enum Verdict: Sendable, Hashable {
        /// The reference's version is the object's live version: the chunk is in use.
        case live
        /// The reference's version can never be the object's newest again: drop it.
        case dead
        /// Not enough replicas answered to know: keep the reference for a later pass.
        case undecided
    }

    /// Whether a chunk reference (its object version `reference`) is still used, from what
    /// the replicas of the object's manifest partition answered (`sets`: one replica set per
    /// live layout version).
    ///
    /// Every replica answered: the reference lives only when the newest version among them
    /// is that version and not a delete marker (a reference newer than every manifest is a
    /// PUT that failed; the reference grace keeps those of PUTs in flight).
    ///
    /// Some replica did not answer (down): the reference is dead when, in every set, a
    /// majority holds a version strictly newer than it. Such a version was written to a
    /// majority of each set, so it cannot be lost while a majority survives, and no replica
    /// (the silent one included) can make the reference's version the newest again: when
    /// the silent replica comes back, read repair and anti-entropy give it the newer
    /// version, and delete markers are purged only once every replica holds them. Anything
    /// less (a newer version on a minority, or none anywhere) stays undecided: the silent
    /// replica may hold the reference's version as the only trace of it.
    public static func reference(
        _ reference: ObjectVersion, sets: [[String]], answers: [String: Held]
    ) -> Verdict {
        let nodes = Set(sets.joined())
        guard !nodes.isEmpty else { return .undecided }
        if nodes.allSatisfy({ answers[$0] != nil }) {
            var newest: (version: ObjectVersion, tombstone: Bool)? = nil
            for node in nodes {
                if case .version(let v, let tombstone) = answers[node], newest.map({ v > $0.version }) ?? true {
                    newest = (v, tombstone)
                }
            }
            guard let newest, !newest.tombstone, newest.version == reference else { return .dead }
            return .live
        }
        for set in sets {
            let newer = set.filter { node in answers[node]?.version.map { $0 > reference } ?? false }.count
            if newer < set.count / 2 + 1 { return .undecided }
        }
        return .dead
    }
}
