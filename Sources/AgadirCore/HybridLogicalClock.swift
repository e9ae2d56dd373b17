/// A hybrid logical clock timestamp (Kulkarni et al., "Logical Physical Clocks", 2014).
///
/// Packed in 64 bits: the upper 48 bits are wall-clock milliseconds since the Unix
/// epoch (good until the year 10889), the lower 16 bits a logical counter that orders
/// events inside one millisecond. Comparing the raw values compares the timestamps.
public struct HLCTimestamp: RawRepresentable, Comparable, Hashable, Sendable, CustomStringConvertible {
    public static let logicalBits: UInt64 = 16
    public static let logicalMask: UInt64 = (1 << logicalBits) - 1
    public static let maxPhysical: UInt64 = (1 << (64 - logicalBits)) - 1

    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(physicalMillis: UInt64, logical: UInt16) {
        rawValue = (min(physicalMillis, Self.maxPhysical) << Self.logicalBits) | UInt64(logical)
    }

    public var physicalMillis: UInt64 { rawValue >> Self.logicalBits }
    public var logical: UInt16 { UInt16(truncatingIfNeeded: rawValue & Self.logicalMask) }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "\(physicalMillis).\(logical)" }
}

/// The clock itself: a pure value that takes the wall clock as an input, so tests and
/// simulations drive it deterministically.
public struct HybridLogicalClock: Sendable {
    public private(set) var last: HLCTimestamp

    public init(last: HLCTimestamp = HLCTimestamp(rawValue: 0)) { self.last = last }

    /// A timestamp for a local event (send or write) at wall time `wallMillis`.
    ///
    /// Strictly greater than every timestamp this clock returned or observed before.
    /// When the logical counter of a millisecond is exhausted, the clock borrows the next
    /// millisecond rather than wrapping.
    public mutating func now(wallMillis: UInt64) -> HLCTimestamp {
        let wall = min(wallMillis, HLCTimestamp.maxPhysical)
        if wall > last.physicalMillis {
            last = HLCTimestamp(physicalMillis: wall, logical: 0)
        } else {
            last = HLCTimestamp(rawValue: last.rawValue &+ 1 == 0 ? last.rawValue : last.rawValue + 1)
        }
        return last
    }

    /// Merges a timestamp received from another node, then returns a local timestamp
    /// greater than both.
    public mutating func observe(_ remote: HLCTimestamp, wallMillis: UInt64) -> HLCTimestamp {
        if remote > last { last = remote }
        return now(wallMillis: wallMillis)
    }
}

/// The version of an object: HLC timestamp, ties broken by the writing node's tag.
/// Last writer wins: the greater version is the newer one.
public struct ObjectVersion: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var timestamp: HLCTimestamp
    /// A 64-bit tag of the node that wrote this version (stable per node).
    public var node: UInt64

    public init(timestamp: HLCTimestamp, node: UInt64) {
        self.timestamp = timestamp
        self.node = node
    }

    public static let zero = ObjectVersion(timestamp: HLCTimestamp(rawValue: 0), node: 0)

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.timestamp.rawValue, lhs.node) < (rhs.timestamp.rawValue, rhs.node)
    }

    /// `"<hlc>-<node>"`, both as 16 hex digits: sortable and printable.
    public var description: String {
        Hex.encode(withUnsafeBytes(of: timestamp.rawValue.bigEndian) { Array($0) }) + "-"
            + Hex.encode(withUnsafeBytes(of: node.bigEndian) { Array($0) })
    }
}

/// A node's hybrid logical clock, shared by everything on the node that stamps versions
/// or talks to peers: every version comes from `now()`, and every peer request and answer
/// carries the sender's clock, which the receiver merges (`observe`), so a version written
/// after a node heard of another is newer than it, whatever the wall clocks say
/// (docs/consistency.md, "Clocks").
public final class NodeClock: Sendable {
    /// A peer clock further ahead of this node's wall clock than this is refused.
    public let maxSkewMillis: UInt64
    private let wall: @Sendable () -> UInt64
    private let offset: Locked<Int64>
    private let hlc = Locked(HybridLogicalClock())

    /// `wall` is the system's clock in ms since the Unix epoch; `offsetMillis` is added to it
    /// (for tests of clock skew only).
    public init(maxSkewMillis: UInt64, offsetMillis: Int64 = 0, wall: @escaping @Sendable () -> UInt64) {
        self.maxSkewMillis = maxSkewMillis
        self.wall = wall
        self.offset = Locked(offsetMillis)
    }

    /// The offset added to the wall clock (for tests of clock skew only).
    public var offsetMillis: Int64 {
        get { offset.withLock { $0 } }
        set { offset.withLock { $0 = newValue } }
    }

    /// This node's wall clock, offset included, in ms since the Unix epoch.
    public func wallMillis() -> UInt64 {
        let w = Int64(clamping: wall())
        return UInt64(clamping: max(0, w &+ offset.withLock { $0 }))
    }

    /// A timestamp for a local event, greater than every one taken or observed before.
    public func now() -> HLCTimestamp {
        let w = wallMillis()
        return hlc.withLock { $0.now(wallMillis: w) }
    }

    /// The newest timestamp taken or observed, without taking a new one.
    public var last: HLCTimestamp { hlc.withLock { $0.last } }

    /// Merges a timestamp received from `peer`. One more than `maxSkewMillis` ahead of this
    /// node's wall clock is refused (REQUEST_TIME_SKEWED) and leaves the clock as it was:
    /// a node with a clock far ahead would otherwise win every last-writer-wins race, and
    /// drag every other node's clock with it.
    public func observe(_ remote: HLCTimestamp, from peer: String) throws(AgadirError) {
        let w = wallMillis()
        guard remote.physicalMillis <= w &+ maxSkewMillis else {
            throw AgadirError(
                .requestTimeSkewed,
                "the clock of \(peer) is \(remote.physicalMillis - w) ms ahead of this node's, more than the "
                    + "\(maxSkewMillis) ms allowed (maxClockSkewMillis); fix the clocks (NTP) of both nodes")
        }
        hlc.withLock { _ = $0.observe(remote, wallMillis: w) }
    }
}
