import AgadirMembership

/// How fast something spread: times (from `startedAt`) at which 50 %, 99 %, 99.99 % and
/// all of the live members (the population, see each use) were in the wanted state.
public struct Convergence: Sendable, Hashable {
    /// When the measured change happened, from the start of the run.
    public var startedAt: Duration
    public var toHalf: Duration?
    public var to99: Duration?
    /// The figure the aims quote: `ceil(0.9999 × population)` members.
    public var to9999: Duration?
    public var toAll: Duration?
    /// Members in the wanted state at the end of the run, and the population then.
    public var reachedAtEnd: Int
    public var populationAtEnd: Int

    public init(
        startedAt: Duration, toHalf: Duration? = nil, to99: Duration? = nil, to9999: Duration? = nil,
        toAll: Duration? = nil, reachedAtEnd: Int = 0, populationAtEnd: Int = 0
    ) {
        self.startedAt = startedAt
        self.toHalf = toHalf
        self.to99 = to99
        self.to9999 = to9999
        self.toAll = toAll
        self.reachedAtEnd = reachedAtEnd
        self.populationAtEnd = populationAtEnd
    }
}

/// What a run measured. Equal configurations give equal reports (and identical text).
public struct SimulationReport: Sendable, Hashable {
    public var configuration: SimulationConfiguration
    /// Simulated time covered and events run; `truncated` when `maxEvents` stopped the run.
    public var simulatedTime: Duration
    public var eventsProcessed: Int
    public var truncated: Bool

    // MARK: Traffic (sent from the end of the warm-up to the end of the run)
    /// Datagrams sent, and of them lost (loss model), blocked (partition), sent to a
    /// stopped member or to an unknown address.
    public var datagramsSent: Int
    public var datagramBytes: Int
    public var datagramsLost: Int
    public var datagramsBlocked: Int
    public var datagramsToStopped: Int
    /// Push-pull requests and replies (each one message), their bytes, and failed exchanges.
    public var pushPullMessages: Int
    public var pushPullBytes: Int
    public var pushPullsFailed: Int
    /// Per member and per second of the measured window, datagrams + push-pull.
    public var messagesPerSecondPerMember: Double
    public var bytesPerSecondPerMember: Double

    // MARK: Scenario outcomes
    /// Crash: first member to suspect (or declare dead) the victim, after the crash.
    public var firstDetection: Duration?
    /// Crash: live members (victim excluded) holding the victim dead.
    public var crashKnownDead: Convergence?
    /// Restart: live members (the new instance included) holding it alive at its new incarnation.
    public var restartAlive: Convergence?
    /// Update: live members seeing the updater's new `layoutVersion` (updater included).
    public var update: Convergence?
    /// Leave: live members (leaver excluded) holding the leaver `left`.
    public var leave: Convergence?
    /// Join mode: live members whose active count equals the live count (from time 0).
    public var join: Convergence?
    /// After a partition heals: same criterion as `join`, from the end of the partition.
    public var partitionHeal: Convergence?

    // MARK: Accuracy
    /// Distinct live, never-crashed members declared dead by someone (outside partitions).
    public var falsePositives: Int
    /// Every such declaration (observer, subject).
    public var falseDeathDeclarations: Int
    /// Times a live, never-crashed member was moved to suspect by someone, and how many
    /// distinct members that was.
    public var healthySuspicions: Int
    public var healthyMembersSuspected: Int
    /// Dead verdicts between members on different sides of an active or past partition.
    public var partitionVerdicts: Int
    /// The starved member: times it was suspected, times declared dead.
    public var starvedSuspicions: Int
    public var starvedDeclaredDead: Int
    public var refutations: Int
    /// Protocol counters summed over every instance that ran.
    public var totals: ProtocolTotals
    /// Crash: first ping sent to the victim after the crash (detection adds the probe
    /// timeout and the indirect round to it).
    public var firstProbeOfVictim: Duration?
    /// Crash: some member already suspected the victim (a loss-induced suspicion) when it
    /// crashed, so `firstDetection` may be that older suspicion spreading.
    public var victimSuspectedAtCrash: Bool
    /// Highest Lifeguard local health multiplier seen anywhere, and outside the starved member.
    public var maxLocalHealth: Int
    public var maxLocalHealthExcludingStarved: Int
    /// Up to 5 false death declarations, for diagnosis.
    public var falsePositiveExamples: [String]
    /// At the end: (observer, subject) pairs of running members where the observer does
    /// not hold the subject alive or suspect.
    public var finalWrongViews: Int
    /// Ticks after which `nextDeadline` had not moved past `now` (should be 0).
    public var stalledDeadlines: Int

    public var probeInterval: Duration { configuration.settings.probeInterval }
}

/// The `MembershipStats` counters the report sums over every instance.
public struct ProtocolTotals: Sendable, Hashable {
    public var probesSent = 0
    public var probesFailed = 0
    public var indirectProbesSent = 0
    public var nacksSent = 0
    public var suspicionsStarted = 0
    public var suspicionConfirmations = 0
    public var declaredDead = 0
    public var refutations = 0
    public var pushPullsStarted = 0
    public var pushPullsFailed = 0

    public init() {}

    mutating func add(_ s: MembershipStats) {
        probesSent += s.probesSent
        probesFailed += s.probesFailed
        indirectProbesSent += s.indirectProbesSent
        nacksSent += s.nacksSent
        suspicionsStarted += s.suspicionsStarted
        suspicionConfirmations += s.suspicionConfirmations
        declaredDead += s.declaredDead
        refutations += s.refutations
        pushPullsStarted += s.pushPullsStarted
        pushPullsFailed += s.pushPullsFailed
    }
}

// MARK: - Rendering

extension SimulationReport {
    /// A readable multi-line report.
    public var text: String {
        let c = configuration
        var lines: [String] = []
        lines.append("Agadir membership simulation")
        lines.append(
            "  \(c.members) members, \(c.sites) site(s), preset \(c.preset.rawValue), loss \(percent(c.loss)), "
                + "latency \(ms(c.latency.base)) ± \(ms(c.latency.jitter)), seed \(c.seed)")
        lines.append(
            "  \(seconds(simulatedTime)) simulated, warm-up \(seconds(c.warmUp)), \(eventsProcessed) events"
                + (truncated ? " (TRUNCATED by maxEvents)" : ""))
        lines.append("Failure detection")
        if let crash = c.crash {
            lines.append("  crash of member \(crash.member) at \(seconds(crash.at))")
            lines.append("    first probe of victim  \(opt(firstProbeOfVictim))")
            lines.append("    first detection        \(detection)")
            if let k = crashKnownDead { lines.append("    every member knows     \(convergenceLine(k))") }
        } else {
            lines.append("  no crash scheduled")
        }
        if let r = restartAlive { lines.append("  restart: alive again    \(convergenceLine(r))") }
        if let l = leave { lines.append("  leave: known left       \(convergenceLine(l))") }
        lines.append("Dissemination")
        if let u = update {
            lines.append("  update reaches 50 %     \(opt(u.toHalf))")
            lines.append("  update reaches 99 %     \(opt(u.to99))")
            lines.append("  update reaches 99.99 %  \(opt(u.to9999))  (\(u.reachedAtEnd)/\(u.populationAtEnd) at end)")
        } else {
            lines.append("  no update scheduled")
        }
        if let j = join { lines.append("  join: full view        \(convergenceLine(j))") }
        if let h = partitionHeal { lines.append("  after partition heals  \(convergenceLine(h))") }
        lines.append("Accuracy")
        lines.append("  false positives        \(falsePositives) member(s), \(falseDeathDeclarations) declaration(s)")
        lines.append("  healthy suspicions     \(healthySuspicions) (\(healthyMembersSuspected) distinct member(s))")
        if c.partition != nil { lines.append("  verdicts across the partition \(partitionVerdicts)") }
        if let s = c.starvation {
            lines.append(
                "  starved member \(s.member) (\(seconds(s.until - s.from))): suspected \(starvedSuspicions) time(s), "
                    + "declared dead \(starvedDeclaredDead) time(s)")
        }
        lines.append("  refutations            \(refutations)")
        let t = totals
        lines.append(
            "  protocol totals        probes \(t.probesSent), failed \(t.probesFailed), "
                + "indirect \(t.indirectProbesSent), "
                + "nacks \(t.nacksSent), suspicions \(t.suspicionsStarted), confirmations \(t.suspicionConfirmations), "
                + "declared dead \(t.declaredDead), push-pulls \(t.pushPullsStarted) (failed \(t.pushPullsFailed))")
        lines.append(
            "  max local health       \(maxLocalHealth) (\(maxLocalHealthExcludingStarved) outside the starved member)")
        lines.append("  wrong views at end     \(finalWrongViews)")
        for e in falsePositiveExamples { lines.append("    \(e)") }
        lines.append("Traffic per member (after warm-up)")
        lines.append(
            "  \(fixed(messagesPerSecondPerMember, 2)) messages/s, \(fixed(bytesPerSecondPerMember, 0)) bytes/s "
                + "(datagrams \(datagramsSent), \(datagramBytes) B; "
                + "push-pull messages \(pushPullMessages), \(pushPullBytes) B)")
        lines.append(
            "  datagrams lost \(datagramsLost), blocked by partition \(datagramsBlocked), to stopped members "
                + "\(datagramsToStopped); push-pulls failed \(pushPullsFailed)")
        if stalledDeadlines > 0 { lines.append("  WARNING: \(stalledDeadlines) tick(s) left nextDeadline in the past") }
        return lines.joined(separator: "\n")
    }

    /// Header of the Markdown table `tableRow` fills.
    public static let tableHeader = """
        | members | loss | first detection s (intervals) | all know dead s | update 99.99 % s | false positives \
        | healthy suspicions | starved member dead | msgs/s/member | bytes/s/member | max local health |
        | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
        """

    /// One Markdown table row.
    public var tableRow: String {
        let c = configuration
        let all =
            crashKnownDead.map { k in
                k.toAll.map { seconds(number: $0) }
                    ?? "> \(seconds(number: simulatedTime - k.startedAt)) (\(k.reachedAtEnd)/\(k.populationAtEnd))"
            } ?? "–"
        let upd = update.map { u in u.to9999.map { seconds(number: $0) } ?? "not reached" } ?? "–"
        let starved = c.starvation == nil ? "–" : (starvedDeclaredDead > 0 ? "yes (\(starvedDeclaredDead))" : "no")
        let cells = [
            String(c.members), percent(c.loss), detectionCell, all, upd,
            "\(falsePositives) (\(falseDeathDeclarations))", String(healthySuspicions), starved,
            fixed(messagesPerSecondPerMember, 1), fixed(bytesPerSecondPerMember, 0), String(maxLocalHealth),
        ]
        return "| " + cells.joined(separator: " | ") + " |"
    }

    private var detection: String {
        guard let d = firstDetection else { return "none" }
        let note = victimSuspectedAtCrash ? ", victim already suspected at the crash" : ""
        return "\(seconds(d)) (\(fixed(d / probeInterval, 2)) probe intervals\(note))"
    }

    private var detectionCell: String {
        guard let d = firstDetection else { return "none" }
        return "\(seconds(number: d)) (\(fixed(d / probeInterval, 2)))" + (victimSuspectedAtCrash ? " †" : "")
    }

    private func convergenceLine(_ c: Convergence) -> String {
        let steps = "50 %: \(opt(c.toHalf)), 99 %: \(opt(c.to99)), 99.99 %: \(opt(c.to9999))"
        if let all = c.toAll { return "\(seconds(all)) (\(steps))" }
        return "not within the run: \(c.reachedAtEnd)/\(c.populationAtEnd) at end (\(steps))"
    }

    private func opt(_ d: Duration?) -> String { d.map { seconds($0) } ?? "not reached" }
}

// MARK: - Number formatting (no Foundation: same text on every platform)

func seconds(_ d: Duration) -> String { seconds(number: d) + " s" }

func seconds(number d: Duration) -> String { fixed(Double(d.nanoseconds) / 1e9, 3) }

func ms(_ d: Duration) -> String { fixed(Double(d.nanoseconds) / 1e6, 2) + " ms" }

func percent(_ x: Double) -> String { fixed(x * 100, 1) + " %" }

/// `x` with `digits` decimals, rounded half away from zero.
func fixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return x.isNaN ? "nan" : (x < 0 ? "-inf" : "inf") }
    var scale = 1.0
    for _ in 0..<max(0, min(digits, 9)) { scale *= 10 }
    let scaled = (abs(x) * scale).rounded()
    guard scaled < 9e18 else { return x < 0 ? "-huge" : "huge" }
    let n = Int64(scaled)
    let whole = n / Int64(scale)
    let frac = n % Int64(scale)
    var s = (x < 0 && n != 0 ? "-" : "") + String(whole)
    if digits > 0 {
        let f = String(frac)
        s += "." + String(repeating: "0", count: max(0, digits - f.count)) + f
    }
    return s
}
