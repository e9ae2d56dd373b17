/// Checks a torture history against what Agadir promises (docs/consistency.md): pure, no
/// I/O, so a planted anomaly can be shown to be caught.
///
/// Per key, writes (PUT of a unique value, DELETE) and reads are intervals of time, from
/// invocation to completion; an acknowledged write took effect inside its interval, a
/// failed or unanswered one may have taken effect at any time after it began (a failed
/// Agadir write may still surface later). A read may return the value of a write W (a
/// DELETE, or the key never written: absent) only if W began before the read ended and no
/// acknowledged write began after W ended and ended before the read began (W was then
/// certainly overwritten). Anomalies:
///
/// - **stale read**: a read returned a value certainly overwritten before it began;
/// - **resurrection**: the same, where what overwrote it was a DELETE;
/// - **lost write**: the final read (after the faults healed) returned such a value;
/// - **phantom read**: a read returned a value no client wrote;
/// - **non-monotonic read**: a client read an older version than it had read before;
/// - **listing**: the final listing differs from the keys the final reads found.
public struct HistoryChecker: Sendable {
    public struct Anomaly: Sendable, Hashable, CustomStringConvertible {
        public enum Kind: String, Sendable, CaseIterable {
            case staleRead = "stale read"
            case resurrection
            case lostWrite = "lost write"
            case phantomRead = "phantom read"
            case nonMonotonicRead = "non-monotonic read"
            case listing
        }
        public var kind: Kind
        public var key: String
        public var explanation: String
        /// The shortest part of the history that shows it, in time order.
        public var excerpt: [HistoryOp]

        public var description: String { "\(kind.rawValue) on '\(key)': \(explanation)" }
    }

    public struct Report: Sendable {
        public var anomalies: [Anomaly]
        /// Operations by function and outcome, e.g. `put ok`.
        public var counts: [String: Int]
        public var keys: Int
    }

    /// One operation: its invocation and completion joined.
    struct Op {
        var invoke: HistoryOp
        var done: HistoryOp?
        var start: UInt64 { invoke.time }
        /// When it certainly ended; never for one not acknowledged (it may surface later).
        var end: UInt64 { done.map { $0.kind == .ok ? $0.time : .max } ?? .max }
        var ok: Bool { done?.kind == .ok }
    }

    struct Write {
        var op: Op
        /// nil: a DELETE (or the key never written).
        var value: String?
    }

    public init() {}

    /// Checks `history`; `finalFrom` is the time from which reads and listings are the final
    /// ones (taken after the faults healed and a repair completed).
    public func check(_ history: [HistoryOp], finalFrom: UInt64) -> Report {
        var ops: [Int: Op] = [:]
        var counts: [String: Int] = [:]
        for h in history {
            if h.kind == .invoke {
                ops[h.index] = Op(invoke: h, done: nil)
            } else {
                ops[h.index]?.done = h
                counts["\(h.f.rawValue) \(h.kind.rawValue)", default: 0] += 1
            }
        }
        let all = ops.values.sorted { $0.start < $1.start }
        var writes: [String: [Write]] = [:]
        var reads: [String: [Op]] = [:]
        var finalList: Op? = nil
        for op in all {
            switch op.invoke.f {
            case .put: if let k = op.invoke.key { writes[k, default: []].append(Write(op: op, value: op.invoke.value)) }
            case .delete: if let k = op.invoke.key { writes[k, default: []].append(Write(op: op, value: nil)) }
            case .get: if let k = op.invoke.key, op.ok { reads[k, default: []].append(op) }
            case .list: if op.ok, op.start >= finalFrom { finalList = op }
            }
        }
        var anomalies: [Anomaly] = []
        var finalPresent: Set<String> = []
        var finalChecked: Set<String> = []
        for key in Set(writes.keys).union(reads.keys).sorted() {
            let keyWrites = writes[key] ?? []
            let index = SupersedeIndex(keyWrites)
            for read in reads[key] ?? [] {
                guard let got = read.done else { continue }
                let final = read.start >= finalFrom
                if final {
                    finalChecked.insert(key)
                    if got.value != nil { finalPresent.insert(key) }
                }
                if let anomaly = judge(
                    read: read, value: got.value, key: key, writes: keyWrites, index: index, final: final)
                {
                    anomalies.append(anomaly)
                }
            }
            anomalies += monotonic(reads[key] ?? [], key: key)
        }
        if let list = finalList, let listed = list.done?.keys {
            let shown = Set(listed)
            let missing = finalPresent.subtracting(shown).sorted()
            let extra = shown.subtracting(finalPresent).filter { finalChecked.contains($0) }.sorted()
            if !missing.isEmpty || !extra.isEmpty {
                anomalies.append(
                    Anomaly(
                        kind: .listing, key: (missing + extra).first ?? "",
                        explanation:
                            "the final listing lacks \(missing) and shows \(extra), which the final reads found absent",
                        excerpt: [list.invoke] + (list.done.map { [$0] } ?? [])))
            }
        }
        return Report(anomalies: anomalies, counts: counts, keys: Set(writes.keys).union(reads.keys).count)
    }

    /// For each write, whether an acknowledged write certainly followed it before a time:
    /// acknowledged writes sorted by start, with the earliest end among those starting later.
    struct SupersedeIndex {
        /// Starts of the acknowledged writes, in order.
        var starts: [UInt64] = []
        /// From each position on: the earliest end, and the write that has it.
        var minEndFrom: [UInt64] = [.max]
        var earliestEnding: [Op?] = [nil]

        init(_ writes: [Write]) {
            let acked = writes.filter(\.op.ok).sorted { $0.op.start < $1.op.start }
            starts = acked.map(\.op.start)
            minEndFrom = Array(repeating: .max, count: acked.count + 1)
            earliestEnding = Array(repeating: nil, count: acked.count + 1)
            for i in stride(from: acked.count - 1, through: 0, by: -1) {
                if acked[i].op.end < minEndFrom[i + 1] {
                    minEndFrom[i] = acked[i].op.end
                    earliestEnding[i] = acked[i].op
                } else {
                    minEndFrom[i] = minEndFrom[i + 1]
                    earliestEnding[i] = earliestEnding[i + 1]
                }
            }
        }

        /// The acknowledged write that began after `end` (at or after it, `inclusive`: the
        /// key's absence before any write ends at 0, before every operation) and ended before
        /// `before`, if any.
        func overwriter(after end: UInt64, before: UInt64, inclusive: Bool = false) -> Op? {
            guard end < .max else { return nil }
            var lo = 0
            var hi = starts.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if starts[mid] > end || (inclusive && starts[mid] == end) { hi = mid } else { lo = mid + 1 }
            }
            guard lo < starts.count, minEndFrom[lo] < before else { return nil }
            return earliestEnding[lo]
        }
    }

    private func judge(
        read: Op, value: String?, key: String, writes: [Write], index: SupersedeIndex, final: Bool
    ) -> Anomaly? {
        let readEnd = read.done?.time ?? .max
        // Before any write, the key is absent: as if deleted, acknowledged at time 0.
        let initial = Write(
            op: Op(
                invoke: HistoryOp(process: -1, index: -1, kind: .invoke, f: .delete, key: key, time: 0),
                done: HistoryOp(process: -1, index: -1, kind: .ok, f: .delete, key: key, time: 0)),
            value: nil)
        let candidates = (value == nil ? [initial] : []) + writes.filter { $0.value == value }
        if value != nil, candidates.isEmpty {
            return Anomaly(
                kind: .phantomRead, key: key, explanation: "read '\(value ?? "")', which no client wrote",
                excerpt: [read.invoke] + (read.done.map { [$0] } ?? []))
        }
        var blocked: (write: Write, by: Op)? = nil
        for w in candidates where w.op.start < readEnd {
            guard let by = index.overwriter(after: w.op.end, before: read.start, inclusive: w.op.invoke.process < 0)
            else { return nil }
            if w.op.start >= (blocked?.write.op.start ?? 0) { blocked = (w, by) }
        }
        guard let (w, by) = blocked else {
            // Every write of that value began after the read ended.
            return Anomaly(
                kind: .phantomRead, key: key, explanation: "read '\(value ?? "absent")' before any write of it began",
                excerpt: [read.invoke] + (read.done.map { [$0] } ?? []))
        }
        let kind: Anomaly.Kind =
            final ? .lostWrite : (by.invoke.f == .delete && value != nil ? .resurrection : .staleRead)
        let excerpt = ([w.op, by, read].flatMap { [$0.invoke] + ($0.done.map { [$0] } ?? []) })
            .filter { $0.process >= 0 }.sorted { $0.time < $1.time }
        let what = value.map { "'\($0)'" } ?? "absent"
        return Anomaly(
            kind: kind, key: key,
            explanation: final
                ? "the final read found \(what), but \(by.invoke.f.rawValue) #\(by.invoke.index) was acknowledged after it and is gone"
                : "read \(what) after \(by.invoke.f.rawValue) #\(by.invoke.index) had certainly overwritten it",
            excerpt: excerpt)
    }

    /// A client's reads of a key never go back to an older version.
    private func monotonic(_ reads: [Op], key: String) -> [Anomaly] {
        var last: [Int: Op] = [:]
        var out: [Anomaly] = []
        for read in reads.sorted(by: { $0.start < $1.start }) {
            guard let done = read.done, let version = done.version else { continue }
            let process = read.invoke.process
            if let before = last[process], let seen = before.done?.version, version < seen {
                out.append(
                    Anomaly(
                        kind: .nonMonotonicRead, key: key,
                        explanation: "client \(process) read version \(version) after reading \(seen)",
                        excerpt: [before.invoke, before.done, read.invoke, read.done].compactMap { $0 }))
            }
            if last[process]?.done?.version.map({ version >= $0 }) ?? true { last[process] = read }
        }
        return out
    }
}
