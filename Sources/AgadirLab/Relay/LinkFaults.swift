import AgadirCore

/// What the lab's relay does to what travels one way between two nodes (docs/lab.md,
/// "Network faults"). A clear fault forwards at once.
public struct LinkFault: Codable, Sendable, Hashable {
    /// Nothing gets through: datagrams are dropped, stream bytes are held (as a network
    /// that drops packets holds a TCP connection) until the cut heals.
    public var cut = false
    /// Added to every datagram and every piece of a stream.
    public var delayMillis = 0
    /// Each delay is drawn uniformly within `delayMillis ± jitterMillis` (at least 0).
    public var jitterMillis = 0
    /// Datagrams lost, in percent; on a stream, a piece "lost" arrives a retransmission
    /// timeout (`retransmitMillis`) late instead, in order, as TCP delivers it.
    public var lossPercent = 0.0

    public init(cut: Bool = false, delayMillis: Int = 0, jitterMillis: Int = 0, lossPercent: Double = 0) {
        self.cut = cut
        self.delayMillis = delayMillis
        self.jitterMillis = jitterMillis
        self.lossPercent = lossPercent
    }

    public var isClear: Bool { self == LinkFault() }

    /// The delay a stream retransmission adds.
    public static let retransmitMillis = 200
    /// Bounds: a minute of delay or jitter.
    public static let maxMillis = 60_000

    public func validate() throws(AgadirError) {
        guard (0...Self.maxMillis).contains(delayMillis), (0...Self.maxMillis).contains(jitterMillis) else {
            throw AgadirError(.invalidArgument, "delay and jitter must be within 0...\(Self.maxMillis) ms")
        }
        guard lossPercent >= 0, lossPercent <= 100 else {
            throw AgadirError(.invalidArgument, "loss must be within 0...100 %")
        }
    }

    /// Whether a datagram is dropped, given `draw` uniform in 0..<1.
    public func drops(draw: Double) -> Bool { cut || draw * 100 < lossPercent }

    /// The delay of one datagram or stream piece (ms), given `draw` uniform in 0..<1 and,
    /// for a stream, `lossDraw` (a piece lost waits for its retransmission).
    public func delay(draw: Double, lossDraw: Double = 1) -> Int {
        let spread = Double(2 * jitterMillis) * draw - Double(jitterMillis)
        var ms = max(0, delayMillis + Int(spread.rounded()))
        if lossDraw * 100 < lossPercent { ms += Self.retransmitMillis }
        return ms
    }

    /// When a stream piece read at `now` (ms) is delivered: after its delay, and never
    /// before the piece read before it (`previous`): a stream keeps its order.
    public func streamDelivery(now: Int64, previous: Int64, draw: Double, lossDraw: Double) -> Int64 {
        max(now + Int64(delay(draw: draw, lossDraw: lossDraw)), previous)
    }
}

/// The faults of a lab's links, `ROOT/faults.json`: one `LinkFault` per direction
/// (`FROM>TO`, node names); a direction not listed is clear.
public struct LabFaults: Codable, Sendable, Equatable {
    public var formatVersion = 1
    /// Counts the changes; the relay reports the one it applies (`relay-ready.json`), so a
    /// fault command returns once its change is in force.
    public var generation = 0
    public var links: [String: LinkFault] = [:]

    public init() {}

    static func key(_ from: String, _ to: String) -> String { "\(from)>\(to)" }

    public func fault(from: String, to: String) -> LinkFault { links[Self.key(from, to)] ?? LinkFault() }

    mutating func set(from: String, to: String, _ change: (inout LinkFault) -> Void) {
        var f = fault(from: from, to: to)
        change(&f)
        links[Self.key(from, to)] = f.isClear ? nil : f
    }

    /// Cuts every link from one group to another (both ways unless `oneWay`: then only
    /// from each group to the groups after it, `A | B` cutting A→B).
    public mutating func partition(_ groups: [[String]], oneWay: Bool) {
        for (i, a) in groups.enumerated() {
            for (j, b) in groups.enumerated() where i != j && (!oneWay || i < j) {
                for from in a { for to in b { set(from: from, to: to) { $0.cut = true } } }
            }
        }
    }

    /// Ends every cut; link degradations stay (`link ... --clear` ends those).
    public mutating func heal() {
        for key in links.keys { links[key]?.cut = false }
        links = links.filter { !$0.value.isClear }
    }

    /// Sets delay, jitter and loss on every link between the two groups, both ways (cuts
    /// stay as they are).
    public mutating func degrade(between a: [String], and b: [String], like fault: LinkFault) {
        for x in a {
            for y in b where x != y {
                for (from, to) in [(x, y), (y, x)] {
                    set(from: from, to: to) {
                        $0.delayMillis = fault.delayMillis
                        $0.jitterMillis = fault.jitterMillis
                        $0.lossPercent = fault.lossPercent
                    }
                }
            }
        }
    }

    /// Every direction that is not clear, sorted, as `FROM>TO: ...` lines.
    public var summary: [String] {
        links.keys.sorted().compactMap { key in
            guard let f = links[key] else { return nil }
            var parts: [String] = []
            if f.cut { parts.append("cut") }
            if f.delayMillis > 0 || f.jitterMillis > 0 { parts.append("delay \(f.delayMillis)±\(f.jitterMillis) ms") }
            if f.lossPercent > 0 { parts.append("loss \(f.lossPercent) %") }
            return "\(key): \(parts.joined(separator: ", "))"
        }
    }
}

/// `agadir-lab partition A,B | C`: groups of nodes, each item a node or a site (all its nodes).
public enum PartitionSpec {
    /// Parses the words of a partition (`|` separates groups, `,` or spaces the items of a
    /// group). At least two groups, none empty, no node in two groups.
    public static func parse(_ words: [String], nodes: [(name: String, site: String)]) throws(AgadirError)
        -> [[String]]
    {
        let text = words.joined(separator: " ")
        let groups = text.split(separator: "|", omittingEmptySubsequences: false).map { group in
            group.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
        }
        guard groups.count >= 2, groups.allSatisfy({ !$0.isEmpty }) else {
            throw AgadirError(
                .invalidArgument,
                "a partition needs at least two groups separated by `|`, e.g. `benguerir,casablanca | settat`")
        }
        var seen: Set<String> = []
        var out: [[String]] = []
        for group in groups {
            var members: [String] = []
            for item in group {
                let expanded = try expand(item, nodes: nodes)
                for node in expanded where !members.contains(node) {
                    guard !seen.contains(node) else {
                        throw AgadirError(.invalidArgument, "node \(node) is in two groups of the partition")
                    }
                    members.append(node)
                    seen.insert(node)
                }
            }
            out.append(members)
        }
        return out
    }

    /// A node name, or a site's nodes.
    public static func expand(_ item: String, nodes: [(name: String, site: String)]) throws(AgadirError) -> [String] {
        if nodes.contains(where: { $0.name == item }) { return [item] }
        let inSite = nodes.filter { $0.site == item }.map(\.name)
        guard !inSite.isEmpty else {
            throw AgadirError(
                .invalidArgument,
                "'\(item)' is neither a node nor a site of this lab (nodes: \(nodes.map(\.name).joined(separator: ", ")))"
            )
        }
        return inSite
    }

    /// Parses `30ms`, `2s`, `500` (ms).
    public static func millis(_ text: String) throws(AgadirError) -> Int {
        let t = text.lowercased()
        let (digits, scale): (Substring, Int) =
            t.hasSuffix("ms") ? (t.dropLast(2), 1) : t.hasSuffix("s") ? (t.dropLast(1), 1000) : (Substring(t), 1)
        guard let v = Int(digits), v >= 0, v <= LinkFault.maxMillis / scale else {
            throw AgadirError(.invalidArgument, "'\(text)' is not a duration such as 30ms or 2s (at most 60 s)")
        }
        return v * scale
    }

    /// Parses `1%`, `0.5%`, `2`.
    public static func percent(_ text: String) throws(AgadirError) -> Double {
        let t = text.hasSuffix("%") ? String(text.dropLast()) : text
        guard let v = Double(t), v >= 0, v <= 100 else {
            throw AgadirError(.invalidArgument, "'\(text)' is not a percentage such as 1% (0 to 100)")
        }
        return v
    }
}
