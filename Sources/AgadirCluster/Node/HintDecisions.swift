import AgadirCore
import AgadirPlacement
import AgadirStore

/// What hint delivery does with one parked hint (pure: `ClusterNode.deliverHints` supplies the
/// bucket's record and the layout).
enum HintDecisions {
    enum Disposition: Equatable {
        /// Send it to the target, under this policy.
        case deliver(policy: String)
        /// Delete it undelivered: the target would refuse it, and what it carries must not come back
        /// (a deleted or earlier bucket's), or the partition moved away from the target.
        case drop
        /// Keep it undelivered and say so: the target is not eligible for the bucket's policy, or the
        /// bucket or its policy is unknown here. Never sent: residency is checked before any byte leaves.
        case withhold(String)
    }

    /// `record`: the bucket's catalog record here, if any. `layoutUpToDate`: no member announced a
    /// newer layout than `layout` (a partition that seems to have left the target may only have
    /// moved in a layout this node has not seen yet).
    static func disposition(
        of payload: HintPayload, for target: String, record: BucketRecord?, layout: ClusterLayout,
        layoutUpToDate: Bool
    ) -> Disposition {
        guard let record else { return .withhold("the bucket is not in this node's catalog") }
        if record.deleted || record.predates(ClusterNode.version(of: payload)) { return .drop }
        guard let policy = Coordinator.policyNamed(record.policy, in: layout) else {
            return .withhold("policy '\(record.policy)' is not in this node's layout")
        }
        guard layout.live.contains(where: { $0.isEligible(node: target, for: policy) }) else {
            return .withhold("the target is not eligible for policy '\(policy.name)'")
        }
        if layoutUpToDate, !ClusterNode.holds(target, payload, policy: policy.name, in: layout) { return .drop }
        return .deliver(policy: policy.name)
    }
}
