import AgadirLab
import AgadirTestSupport
import Testing

/// The checker of `agadir-lab torture` must be able to fail: each kind of anomaly is
/// planted into a history and must be reported; histories a single correct register could
/// produce must pass.
@Suite("The torture history checker")
struct HistoryCheckerTests {
    /// Builds histories: `op` records an invocation at `from` and its completion at `to`.
    struct Builder {
        var ops: [HistoryOp] = []
        var next = 0

        mutating func op(
            _ f: HistoryOp.Function, _ key: String?, from: UInt64, to: UInt64?, process: Int = 0,
            kind: HistoryOp.Kind = .ok,
            value: String? = nil, read: String? = nil, keys: [String]? = nil, version: String? = nil
        ) {
            next += 1
            ops.append(
                HistoryOp(process: process, index: next, kind: .invoke, f: f, key: key, value: value, time: from))
            if let to {
                ops.append(
                    HistoryOp(
                        process: process, index: next, kind: kind, f: f, key: key,
                        value: f == .get ? read : value, keys: keys, version: version, time: to))
            }
        }
    }

    func kinds(_ b: Builder, finalFrom: UInt64 = .max) -> [HistoryChecker.Anomaly.Kind] {
        HistoryChecker().check(b.ops, finalFrom: finalFrom).anomalies.map(\.kind)
    }

    @Test("a stale read, a resurrection, a phantom and a lost write are each reported, with an excerpt")
    func plantedAnomalies_areReported() {
        var stale = Builder()
        stale.op(.put, "k", from: 0, to: 10, value: "v1")
        stale.op(.put, "k", from: 20, to: 30, value: "v2")
        stale.op(.get, "k", from: 40, to: 50, read: "v1")
        #expect(kinds(stale) == [.staleRead])
        let report = HistoryChecker().check(stale.ops, finalFrom: .max)
        #expect(report.anomalies.first?.excerpt.map(\.time) == [0, 10, 20, 30, 40, 50])

        var resurrection = Builder()
        resurrection.op(.put, "k", from: 0, to: 10, value: "v1")
        resurrection.op(.delete, "k", from: 20, to: 30)
        resurrection.op(.get, "k", from: 40, to: 50, read: "v1")
        #expect(kinds(resurrection) == [.resurrection])

        var phantom = Builder()
        phantom.op(.get, "k", from: 0, to: 10, read: "never-written")
        #expect(kinds(phantom) == [.phantomRead])

        var lost = Builder()
        lost.op(.put, "k", from: 0, to: 10, value: "v1")
        lost.op(.get, "k", from: 100, to: 110, read: nil)
        #expect(kinds(lost, finalFrom: 100) == [.lostWrite])

        var lostOverwrite = Builder()
        lostOverwrite.op(.put, "k", from: 0, to: 10, value: "v1")
        lostOverwrite.op(.put, "k", from: 20, to: 30, value: "v2", version: nil)
        lostOverwrite.op(.get, "k", from: 100, to: 110, read: "v1")
        #expect(kinds(lostOverwrite, finalFrom: 100) == [.lostWrite])
    }

    @Test("a read going back to an older version, and a final listing that differs, are reported")
    func monotonicityAndListing_areChecked() {
        var b = Builder()
        b.op(.put, "k", from: 0, to: 10, value: "v1")
        b.op(.put, "k", from: 0, to: 12, process: 1, value: "v2")
        b.op(.get, "k", from: 20, to: 30, process: 2, read: "v2", version: "0002")
        b.op(.get, "k", from: 40, to: 50, process: 2, read: "v1", version: "0001")
        #expect(kinds(b) == [.nonMonotonicRead])

        var l = Builder()
        l.op(.put, "a", from: 0, to: 10, value: "va")
        l.op(.put, "b", from: 0, to: 10, value: "vb")
        l.op(.get, "a", from: 100, to: 101, read: "va")
        l.op(.get, "b", from: 100, to: 101, read: "vb")
        l.op(.list, nil, from: 102, to: 103, keys: ["a"])
        #expect(kinds(l, finalFrom: 100) == [.listing])
    }

    @Test("concurrent writes, writes that failed and reads overlapping writes are not anomalies")
    func legalHistories_pass() {
        var b = Builder()
        b.op(.put, "k", from: 0, to: 10, value: "v1")
        b.op(.put, "k", from: 5, to: 15, process: 1, value: "v2")  // concurrent with v1
        b.op(.get, "k", from: 20, to: 30, read: "v1")  // either may have won
        b.op(.put, "k", from: 40, to: 50, process: 1, kind: .fail, value: "v3")  // may surface later
        b.op(.get, "k", from: 60, to: 70, read: "v3")
        b.op(.put, "k", from: 80, to: nil, process: 3, value: "v4")  // never answered
        b.op(.get, "k", from: 200, to: 210, read: "v4")
        b.op(.delete, "k", from: 300, to: 310)
        b.op(.get, "k", from: 305, to: 306, read: "v4")  // overlaps the delete
        b.op(.get, "k", from: 400, to: 410, read: nil)
        b.op(.list, nil, from: 411, to: 412, keys: [])
        #expect(kinds(b, finalFrom: 400) == [])
    }

    @Test("histories of a correct register pass; one stale read planted into each is found")
    func randomRegisterHistories_passUntilPlanted() {
        var rng = SplitMix64(seed: 0x70E7_0E)
        for round in 0..<100 {
            // A single correct register per key: each operation takes effect at one instant
            // inside its interval, in the order of those instants.
            var b = Builder()
            var events: [(at: UInt64, run: (inout [String: String], inout Builder) -> Void)] = []
            var value = 0
            for _ in 0..<40 {
                let key = "k\(Int.random(in: 0...2, using: &rng))"
                let start = UInt64.random(in: 0...10_000, using: &rng)
                let length = UInt64.random(in: 1...300, using: &rng)
                let at = start + UInt64.random(in: 0...length, using: &rng)
                let process = Int.random(in: 0...5, using: &rng)
                switch Int.random(in: 0...3, using: &rng) {
                case 0, 1:
                    value += 1
                    let v = "v\(value)"
                    events.append(
                        (
                            at,
                            { reg, b in
                                reg[key] = v
                                b.op(.put, key, from: start, to: start + length, process: process, value: v)
                            }
                        ))
                case 2:
                    events.append(
                        (
                            at,
                            { reg, b in
                                reg[key] = nil
                                b.op(.delete, key, from: start, to: start + length, process: process)
                            }
                        ))
                default:
                    events.append(
                        (
                            at,
                            { reg, b in
                                b.op(.get, key, from: start, to: start + length, process: process, read: reg[key])
                            }
                        ))
                }
            }
            var register: [String: String] = [:]
            for e in events.sorted(by: { $0.at < $1.at }) { e.run(&register, &b) }
            b.ops.sort { $0.time < $1.time }
            #expect(kinds(b) == [], "round \(round): a correct register's history was flagged")

            // Plant: after everything, read the value of a put that a later acknowledged write overwrote.
            let invokedAt = Dictionary(
                b.ops.filter { $0.kind == .invoke }.map { ($0.index, $0.time) }, uniquingKeysWith: { a, _ in a })
            let acked = b.ops.filter { $0.kind == .ok && ($0.f == .put || $0.f == .delete) }
            // A put acknowledged before another write of its key began: that one overwrote it.
            guard
                let victim = acked.first(where: { p in
                    p.f == .put && acked.contains { w in w.key == p.key && (invokedAt[w.index] ?? 0) > p.time }
                })
            else { continue }
            b.op(.get, victim.key, from: 20_000, to: 20_001, read: victim.value)
            let found = kinds(b)
            #expect(
                found == [.staleRead] || found == [.resurrection], "round \(round): planted read not found: \(found)")
        }
    }
}
