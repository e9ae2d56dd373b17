import AgadirMembership
import AgadirSimulation
import ArgumentParser

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// `agadir-lab simulate`: runs the real membership state machine on a simulated network.
struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulate SWIM + Lifeguard membership: failure detection, dissemination, false positives, traffic.",
        discussion: """
            Members start knowing each other (steady state). After the warm-up one member crashes, 5 s later \
            another announces an update (layoutVersion + 1), and 10 s after the warm-up the --starve-member \
            (if any) processes nothing for --starve-seconds. Same options and seed, same report. \
            Build with -c release for large clusters.
            """)

    @Option(help: "Number of members.") var members = 1000
    @Option(help: "Probability that a datagram is lost, 0...1 (push-pull, over TCP, is never lossy).")
    var loss = 0.0
    @Option(help: "Seed of every random choice.") var seed: UInt64 = 7
    @Option(help: "Membership settings preset: lan or wan.") var preset: PresetOption = .lan
    @Option(help: "Number of sites (member i is in site i % sites).") var sites = 1
    @Option(name: .customLong("latency-ms"), help: "One-way latency inside a site, ms.") var latencyMs = 1.0
    @Option(name: .customLong("jitter-ms"), help: "Uniform jitter, ± ms, inside a site.") var jitterMs = 0.5
    @Option(name: .customLong("inter-site-latency-ms"), help: "One-way latency between sites, ms.")
    var interSiteLatencyMs = 20.0
    @Option(name: .customLong("inter-site-jitter-ms"), help: "Uniform jitter, ± ms, between sites.")
    var interSiteJitterMs = 2.0
    @Option(help: "Simulated seconds.") var duration = 60.0
    @Option(help: "Seconds before the crash; traffic is counted after it.") var warmUp = 10.0
    @Flag(help: "Do not crash a member.") var noCrash = false
    @Option(help: "Member starved of CPU 10 s after the warm-up (default: none).") var starveMember: Int?
    @Option(help: "Length of the starvation, seconds.") var starveSeconds = 5.0
    @Flag(help: "Run the grid (--table-members × --table-loss) and print a Markdown table.") var table = false
    @Option(help: "Cluster sizes of the grid, comma-separated.") var tableMembers = "100,1000,5000"
    @Option(help: "Loss rates of the grid, comma-separated.") var tableLoss = "0,0.1,0.3"

    func validate() throws {
        guard duration > 0, warmUp >= 0, warmUp < duration else {
            throw ValidationError("need 0 <= --warm-up < --duration")
        }
        guard latencyMs >= 0, jitterMs >= 0, interSiteLatencyMs >= 0, interSiteJitterMs >= 0 else {
            throw ValidationError("latencies and jitters must not be negative")
        }
        guard starveSeconds > 0 else { throw ValidationError("--starve-seconds must be positive") }
        if table {
            _ = try grid()
        }
    }

    func run() throws {
        if table {
            let (sizes, losses) = try grid()
            // Rows go out as each run ends (large runs take minutes).
            emit(tableCaption)
            emit(SimulationReport.tableHeader)
            for size in sizes {
                for l in losses {
                    let (report, wall) = try runOne(members: size, loss: l)
                    note("\(size) members, loss \(l): \(fmt(wall)) s wall, \(report.eventsProcessed) events")
                    emit(report.tableRow)
                }
            }
        } else {
            let (report, wall) = try runOne(members: members, loss: loss)
            print(report.text)
            print("(\(fmt(wall)) s of wall time)")
        }
    }

    private var tableCaption: String {
        let starve = starveMember.map { ", member \($0) starved for \(fmt(starveSeconds)) s" } ?? ""
        return "Preset \(preset.rawValue), \(sites) site(s), latency \(fmt(latencyMs)) ± \(fmt(jitterMs)) ms, "
            + "\(fmt(duration)) s simulated, warm-up \(fmt(warmUp)) s, seed \(seed)\(starve). "
            + "Intervals = probe intervals; † = the victim was already (falsely) suspected when it crashed; "
            + "false positives = members (declarations)."
    }

    private func grid() throws -> ([Int], [Double]) {
        let sizes = tableMembers.split(separator: ",").compactMap { Int($0.filter { $0 != " " }) }
        let losses = tableLoss.split(separator: ",").compactMap { Double($0.filter { $0 != " " }) }
        guard !sizes.isEmpty, !losses.isEmpty else {
            throw ValidationError("--table-members and --table-loss need comma-separated numbers")
        }
        return (sizes, losses)
    }

    private func configuration(members: Int, loss: Double) -> SimulationConfiguration {
        let warm = Duration.milliseconds(Int64((warmUp * 1000).rounded()))
        var c = SimulationConfiguration(
            members: members, seed: seed, preset: preset.preset, sites: sites, loss: loss,
            latency: .init(base: ms(latencyMs), jitter: ms(jitterMs)),
            interSiteLatency: .init(base: ms(interSiteLatencyMs), jitter: ms(interSiteJitterMs)),
            duration: .milliseconds(Int64((duration * 1000).rounded())), warmUp: warm)
        // The crashed member and the updater are fixed, away from member 0 (a seed).
        if !noCrash { c.crash = .init(member: members - 1, at: warm) }
        c.update = .init(member: 1, at: warm + .seconds(5))
        if let s = starveMember {
            let from = warm + .seconds(10)
            c.starvation = .init(member: s, from: from, until: from + ms(starveSeconds * 1000))
        }
        return c
    }

    private func runOne(members: Int, loss: Double) throws -> (SimulationReport, Double) {
        let c = configuration(members: members, loss: loss)
        if let problem = c.validate() { throw ValidationError(problem) }
        let clock = ContinuousClock()
        let start = clock.now
        let report = try Simulator.run(c)
        let elapsed = clock.now - start
        return (report, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    private func ms(_ x: Double) -> Duration { .nanoseconds(Int64((x * 1e6).rounded())) }

    private func fmt(_ x: Double) -> String {
        let r = (x * 100).rounded() / 100
        return r == r.rounded() ? String(Int(r)) : String(r)
    }

    /// Progress on standard error, so that standard output holds only the report.
    private func note(_ s: String) {
        writeLine("simulate: \(s)", to: 2)
    }

    /// A line on standard output, unbuffered.
    private func emit(_ s: String) {
        writeLine(s, to: 1)
    }

    private func writeLine(_ s: String, to fd: Int32) {
        let bytes = Array((s + "\n").utf8)
        var offset = 0
        var attempts = 0
        while offset < bytes.count, attempts < 1000 {
            attempts += 1
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress?.advanced(by: offset), bytes.count - offset) }
            if n > 0 { offset += n } else if n < 0, errno != EINTR { return }
        }
    }
}

enum PresetOption: String, CaseIterable, ExpressibleByArgument {
    case lan, wan

    var preset: SimulationConfiguration.Preset {
        switch self {
        case .lan: .lan
        case .wan: .wan
        }
    }
}
