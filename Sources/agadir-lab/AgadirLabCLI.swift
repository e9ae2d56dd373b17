import AgadirCore
import AgadirLab
import ArgumentParser
import Dispatch
import Foundation

@main
struct AgadirLabCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agadir-lab",
        abstract: "Run a multi-node Agadir cluster of real agadird processes on this machine.",
        discussion: """
            The lab lives in one directory: --root, else $AGADIR_LAB_ROOT, else ./.agadir-lab. Nodes are \
            named <site>-<n> and keep running after the command returns; every command finds them again \
            through ROOT/lab.json. agadird is looked up in $AGADIR_BIN_DIR, else next to this executable.
            Exit codes: 0 ok, 1 failure, 2 no such node, 64 usage.
            """,
        subcommands: [
            Up.self, Status.self, Add.self, Kill.self, Stop.self, Start.self, Restart.self, Pause.self, Resume.self,
            Skew.self, Partition.self, Heal.self, LinkCommand.self, Faults.self, RelayCommand.self,
            Logs.self, Down.self, Run.self, Simulate.self, TortureCommand.self,
        ])
}

// MARK: - Shared options and plumbing

struct RootOption: ParsableArguments {
    @Option(name: .long, help: "Lab root directory (default: $AGADIR_LAB_ROOT, else ./.agadir-lab).")
    var root: String?

    var url: URL {
        let env = ProcessInfo.processInfo.environment["AGADIR_LAB_ROOT"].flatMap { $0.isEmpty ? nil : $0 }
        return URL(fileURLWithPath: root ?? env ?? ".agadir-lab").standardizedFileURL
    }
}

func stderr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// Runs `body`; an AgadirError becomes a message on stderr and exit 1 (2 for an unknown node).
func reporting(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let e as AgadirError {
        stderr("agadir-lab: \(e.message)")
        throw ExitCode(e.code == .noSuchKey ? 2 : 1)
    }
}

func printJSON<T: Encodable>(_ value: T) {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: (try? enc.encode(value)) ?? Data("null".utf8), as: UTF8.self))
}

func statusTable(_ nodes: [LabNodeStatus]) -> String {
    let header = ["NODE", "SITE", "STATE", "PID", "CLIENT", "PEER", "DATA"]
    let rows = nodes.map { n in
        [
            n.name, n.site, n.state.rawValue, n.pid.map(String.init) ?? "-", n.clientEndpoint ?? "-",
            n.peerEndpoint ?? "-", n.dataDir,
        ]
    }
    let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max() ?? 0 }
    return ([header] + rows).map { row in
        row.indices.map { c in
            c == row.count - 1 ? row[c] : row[c].padding(toLength: widths[c], withPad: " ", startingAt: 0)
        }
        .joined(separator: "  ")
    }.joined(separator: "\n")
}

func parseSites(_ s: String) -> [String] {
    s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
}

func parseLabels(_ labels: [String]) throws -> [String: String] {
    var out: [String: String] = [:]
    for l in labels {
        guard let eq = l.firstIndex(of: "="), eq != l.startIndex else {
            throw ValidationError("label '\(l)' must be KEY=VALUE")
        }
        out[String(l[..<eq])] = String(l[l.index(after: eq)...])
    }
    return out
}

/// Options shared by `up` and `run`.
struct TopologyOptions: ParsableArguments {
    @Option(name: .long, help: "Sites, comma-separated (default benguerir,casablanca,settat,paris).")
    var sites = (Lab.defaultSites + ["paris"]).joined(separator: ",")
    @Option(name: .long, help: "Nodes in each site (default 2).") var nodesPerSite = 2
    @Option(name: .long, help: "Cluster name (default agadir-lab).") var clusterName = "agadir-lab"
    @Option(name: .long, help: "Site label KEY=VALUE given to every node (repeatable).") var label: [String] = []
    @Flag(name: .long, help: "Return once every node is ready, without waiting for gossip to converge.") var noWait =
        false
    @Option(name: .long, help: "Seconds to wait for convergence (default 60).") var timeout = 60
    @Flag(
        name: .long,
        help:
            "Do not apply a layout (the nodes stay standalone until `agadir admin layout apply`); --no-wait implies it."
    )
    var noLayout = false
    @Flag(
        name: .long,
        help:
            "No cluster CA and no certificates: nodes speak clear text and the layout's labels are not attested (for comparisons only)."
    )
    var plaintext = false
    @Flag(
        name: .long,
        help:
            "Put a relay on every path between two nodes, so that `partition`, `heal` and `link` can cut and degrade them (a new lab only)."
    )
    var relays = false
    @Argument(parsing: .postTerminator, help: "Extra agadird arguments, after --.") var extra: [String] = []
}

/// Applies the lab's layout (every node at 1 TB, known site labels, the default policies)
/// when the nodes hold none yet, unless --no-layout.
func applyLayoutIfNeeded(_ lab: Lab, _ topology: TopologyOptions) async throws {
    guard !topology.noLayout, !topology.noWait,
        let first = try lab.status().first(where: { $0.state == .running })?.name
    else { return }
    guard try await lab.layoutVersion(of: first) == 0 else { return }
    let version = try await lab.applyLayout()
    let policies = Lab.defaultPolicies(sites: parseSites(topology.sites), nodesPerSite: topology.nodesPerSite).map {
        "\($0.name) (RF \($0.replicationFactor), \($0.sites))"
    }
    print("layout version \(version) applied; policies: default, \(policies.joined(separator: ", "))")
}

// MARK: - Commands

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create the lab if needed, start every node, and wait until they all see each other alive.")
    @OptionGroup var root: RootOption
    @OptionGroup var topology: TopologyOptions

    func run() async throws {
        let labels = try parseLabels(topology.label)
        try await reporting {
            let lab = try await Lab.create(
                root: root.url, sites: parseSites(topology.sites), nodesPerSite: topology.nodesPerSite,
                clusterName: topology.clusterName, labels: labels, extraArguments: topology.extra,
                plaintext: topology.plaintext, relays: topology.relays)
            try await lab.up(waitForConvergence: !topology.noWait, timeout: .seconds(topology.timeout))
            print(statusTable(try lab.status()))
            print(topology.noWait ? "lab is up in \(lab.root.path)" : "lab is up and converged in \(lab.root.path)")
            print("root key: export AGADIR_CREDENTIALS=\(lab.credentialsFile)")
            if let ca = try lab.state().caFile {
                print("TLS: every node has a certificate of the lab's CA \(ca) (the credentials file names it)")
            }
            try await applyLayoutIfNeeded(lab, topology)
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show every node: state (checked live), pid, endpoints, data.")
    @OptionGroup var root: RootOption
    @Flag(name: .long, help: "Print a JSON array.") var json = false

    func run() async throws {
        try await reporting {
            let nodes = try Lab.open(root: root.url).status()
            if json { printJSON(nodes) } else { print(statusTable(nodes)) }
        }
    }
}

struct Kill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "SIGKILL a node (as a power cut would).")
    @OptionGroup var root: RootOption
    @Argument(help: "Node name, e.g. benguerir-1.") var node: String

    func run() async throws {
        try await reporting {
            try await Lab.open(root: root.url).kill(node)
            print("killed \(node)")
        }
    }
}

struct Stop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop a node gracefully (SIGTERM, then SIGKILL after --timeout), or every node.")
    @OptionGroup var root: RootOption
    @Argument(help: "Node name; omit to stop every node.") var node: String?
    @Option(name: .long, help: "Seconds before SIGKILL (default 30).") var timeout = 30

    func run() async throws {
        try await reporting {
            let lab = try Lab.open(root: root.url)
            if let node {
                try await lab.stop(node, timeout: .seconds(timeout))
                print("stopped \(node)")
            } else {
                try await lab.stopAll(timeout: .seconds(timeout))
                print("stopped every node")
            }
        }
    }
}

struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a node (on its previous ports), or every node that is not running.")
    @OptionGroup var root: RootOption
    @Argument(help: "Node name; omit to start every node that is not running.") var node: String?

    func run() async throws {
        try await reporting {
            let lab = try Lab.open(root: root.url)
            if let node { try await lab.start(node) } else { try await lab.startAll() }
            print(statusTable(try lab.status()))
        }
    }
}

struct Restart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop then start a node on the same ports.")
    @OptionGroup var root: RootOption
    @Argument(help: "Node name.") var node: String

    func run() async throws {
        try await reporting {
            let lab = try Lab.open(root: root.url)
            try await lab.restart(node)
            print(statusTable(try lab.status().filter { $0.name == node }))
        }
    }
}

struct Pause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Freeze a node with SIGSTOP (alive, but it answers nothing).")
    @OptionGroup var root: RootOption
    @Argument(help: "Node name.") var node: String

    func run() async throws {
        try await reporting {
            try await Lab.open(root: root.url).pause(node)
            print("paused \(node)")
        }
    }
}

struct Add: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Grow the lab by one node in SITE (a new site too), as an operator adds a machine.",
        discussion: """
            The node gets the next free name <site>-<n> and a certificate from the lab's CA \
            attesting its site (and the labels the lab knows for it, with --label over them), \
            starts and joins through the other nodes. It holds nothing until a layout assigns \
            it: agadir admin layout assign NODE --site SITE --capacity 1TB, then layout apply.
            """)
    @OptionGroup var root: RootOption
    @Option(name: .long, help: "The site of the new node.") var site: String
    @Option(name: .long, help: "A certificate label KEY=VALUE over the site's known ones (repeatable).")
    var label: [String] = []

    func run() async throws {
        let labels = try parseLabels(label)
        try await reporting {
            let lab = try Lab.open(root: root.url)
            let name = try await lab.add(site: site, labels: labels)
            try await lab.waitConverged(timeout: .seconds(60))
            print("added \(name) (site \(site)); it holds no data until a layout assigns it:")
            print("  agadir admin layout assign \(name) --site \(site) --capacity 1TB && agadir admin layout apply")
        }
    }
}

struct Skew: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "FOR TESTS: offset a running node's clock (+2s, -500ms, 0 to undo).",
        discussion: """
            The node stamps every version with its clock offset by this much, and its PING \
            reports it; peers refuse a clock more than maxClockSkewMillis (5 s) ahead of \
            theirs. Takes effect within a second.
            """)
    @OptionGroup var root: RootOption
    @Argument(help: "Node name.") var node: String
    @Argument(help: "Offset: a signed number with ms or s, e.g. +2s, -1500ms, 0.") var offset: String

    /// `+2s`, `-1500ms`, `0`, `250ms` as milliseconds.
    static func parse(_ text: String) throws -> Int64 {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        let (digits, scale): (Substring, Double) =
            t.hasSuffix("ms") ? (t.dropLast(2), 1) : t.hasSuffix("s") ? (t.dropLast(1), 1000) : (Substring(t), 1)
        guard let value = Double(digits), value.isFinite, abs(value * scale) <= 86_400_000 else {
            throw ValidationError("offset '\(text)' is not a signed duration like +2s or -500ms (at most a day)")
        }
        return Int64((value * scale).rounded())
    }

    func run() async throws {
        let millis = try Self.parse(offset)
        try await reporting {
            try Lab.open(root: root.url).skew(node, millis: millis)
            print("\(node) clock offset \(millis) ms")
        }
    }
}

struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a paused node (SIGCONT).")
    @OptionGroup var root: RootOption
    @Argument(help: "Node name.") var node: String

    func run() async throws {
        try await reporting {
            try await Lab.open(root: root.url).resume(node)
            print("resumed \(node)")
        }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the end of a node's log (its path is on stderr).")
    @OptionGroup var root: RootOption
    @Argument(help: "Node name.") var node: String
    @Option(name: .long, help: "Lines to print (default 50).") var lines = 50
    @Flag(name: .long, help: "Keep printing what the node appends, until Ctrl-C.") var follow = false

    func run() async throws {
        try await reporting {
            let lab = try Lab.open(root: root.url)
            let path = try lab.logPath(node)
            stderr("==> \(path) <==")
            let text = try lab.logs(node, lines: lines)
            if !text.isEmpty { print(text) }
            guard follow, let handle = FileHandle(forReadingAtPath: path) else { return }
            defer { try? handle.close() }
            var offset = (try? handle.seekToEnd()) ?? 0
            while true {
                try? await Task.sleep(for: .milliseconds(200))
                let size =
                    (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value ?? offset
                if size < offset { offset = 0 }  // the log was truncated
                guard size > offset else { continue }
                try? handle.seek(toOffset: offset)
                let data = (try? handle.read(upToCount: Int(min(size - offset, 1 << 20)))) ?? Data()
                offset += UInt64(data.count)
                FileHandle.standardOutput.write(data)
            }
        }
    }
}

struct Down: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop every node (by pid); print where the data is, or delete it with --purge.")
    @OptionGroup var root: RootOption
    @Flag(name: .long, help: "Delete the lab root after stopping the nodes.") var purge = false

    func run() async throws {
        try await reporting {
            let lab = try Lab.open(root: root.url)
            let dir = try await lab.down()
            if purge {
                do {
                    try FileManager.default.removeItem(at: dir)
                } catch {
                    throw AgadirError(.ioError, "cannot delete \(dir.path): \(error)")
                }
                print("every node stopped; deleted \(dir.path)")
            } else {
                print("every node stopped; the data is in \(dir.path)/nodes/*/data (logs next to it)")
            }
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Start a lab in the foreground (a fresh root unless --root), print how to reach it, stop it on Ctrl-C.")
    @Option(name: .long, help: "Lab root (default: a fresh temporary directory).") var root: String?
    @OptionGroup var topology: TopologyOptions

    func run() async throws {
        // Ignore the default actions first, then observe the signals: Ctrl-C must stop the
        // nodes (which run in sessions of their own, out of the terminal's reach), not kill us.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let (signals, continuation) = AsyncStream.makeStream(of: Int32.self)
        let sources = [SIGINT, SIGTERM].map { sig in
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { continuation.yield(sig) }
            source.resume()
            return source
        }
        defer { for s in sources { s.cancel() } }

        let labels = try parseLabels(topology.label)
        try await reporting {
            let lab = try await Lab.create(
                root: root.map { URL(fileURLWithPath: $0) } ?? Lab.temporaryRoot(), sites: parseSites(topology.sites),
                nodesPerSite: topology.nodesPerSite, clusterName: topology.clusterName, labels: labels,
                extraArguments: topology.extra, plaintext: topology.plaintext, relays: topology.relays)
            do {
                try await lab.up(waitForConvergence: !topology.noWait, timeout: .seconds(topology.timeout))
                try await applyLayoutIfNeeded(lab, topology)
            } catch {
                stderr("agadir-lab: \((error as? AgadirError)?.message ?? "\(error)"); stopping the nodes")
                _ = try? await lab.down()
                throw error
            }
            let nodes = try lab.status()
            print(statusTable(nodes))
            let first = nodes.first?.clientEndpoint ?? "127.0.0.1:7480"
            let bin = (try? AgadirBinaries.directory().path).map { $0 + "/" } ?? ""
            print(
                """

                The lab runs in \(lab.root.path). Reach it from another terminal with:
                  export AGADIR_ENDPOINT=\(first)
                  export AGADIR_CREDENTIALS=\(lab.credentialsFile)   # the root key\((try? lab.state().caFile).flatMap { $0 }.map { " and the CA (\($0))" } ?? "")
                  \(bin)agadir mb photos --policy \(Lab.defaultPolicies(sites: parseSites(topology.sites), nodesPerSite: topology.nodesPerSite).first?.name ?? "default")
                  \(bin)agadir put ./file.jpg photos/file.jpg
                  \(bin)agadir admin members
                  \(bin)agadir admin layout show
                  \(bin)agadir admin audit residency
                  \(bin)agadir-lab status --root \(lab.root.path)
                Ctrl-C stops every node.
                """)
            fflush(nil)  // the block must show before we wait, even when piped
            var iterator = signals.makeAsyncIterator()
            let sig = await iterator.next() ?? SIGTERM
            stderr("agadir-lab: \(sig == SIGINT ? "SIGINT" : "SIGTERM") received, stopping every node")
            let dir = try await lab.down()
            print("every node stopped; the data is in \(dir.path)/nodes/*/data")
        }
    }
}
