import AgadirClient
import AgadirCore
import AgadirMembership
import AgadirWire
import Foundation
import Testing

@testable import AgadirLab

/// True while a live (not zombie) process has this pid. Nodes started by an `agadir-lab`
/// command that has exited are reparented to init, which in some containers never reaps
/// them: such a zombie has ended and counts as gone.
private func pidExists(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0 || errno == EPERM else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    return !stat[close...].hasPrefix(") Z")
}

/// Brings a lab down and deletes its root, whatever the test did.
private func tearDown(_ lab: Lab) async {
    _ = try? await lab.down(timeout: .seconds(10))
    try? FileManager.default.removeItem(at: lab.root)
}

private func status(_ lab: Lab, _ name: String) throws -> LabNodeStatus {
    try #require(try lab.status().first { $0.name == name })
}

@Suite("AgadirLab: real agadird processes under one lab root", .serialized, .oneLabAtATime)
struct LabTests {
    @Test("up, status, kill, start on the same ports, pause, resume, restart, logs, down: every process ends by pid")
    func lifecycle() async throws {
        let lab = try await Lab.create(sites: ["benguerir", "casablanca", "settat"], nodesPerSite: 1)
        var seen: Set<Int32> = []
        do {
            try await lab.up(waitForConvergence: false)
            let up = try lab.status()
            #expect(up.map(\.name) == ["benguerir-1", "casablanca-1", "settat-1"])
            for node in up {
                #expect(node.state == .running, "\(node.name): \(node.state)")
                let pid = try #require(node.pid)
                seen.insert(pid)
                #expect(pidExists(pid))
                // A session of its own: a Ctrl-C in the terminal of the CLI that started it cannot reach it.
                #expect(ProcessControl.sessionID(of: pid) == pid)
                #expect(ProcessControl.sessionID(of: pid) != ProcessControl.sessionID(of: getpid()))
                #expect(node.clientEndpoint != nil && node.peerEndpoint != nil)
                let members = try await lab.members(of: node.name)
                #expect(members.contains { $0.nodeID == node.name && $0.state == "alive" }, "\(members)")
            }
            let secret = lab.root.appendingPathComponent("cluster.secret").path
            let attributes = try FileManager.default.attributesOfItem(atPath: secret)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
            #expect(
                try String(contentsOfFile: secret, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                    .count == 64)

            // kill: the process is gone and the lab says so.
            let before = try status(lab, "casablanca-1")
            try await lab.kill("casablanca-1")
            let killed = try status(lab, "casablanca-1")
            #expect(killed.state == .killed && killed.pid == nil)
            #expect(!pidExists(try #require(before.pid)))
            let again = await agadirError { try await lab.kill("casablanca-1") }
            #expect(again?.code == .invalidArgument, "killing a dead node is refused: \(String(describing: again))")

            // start: a new process on the same ports.
            try await lab.start("casablanca-1")
            let restarted = try status(lab, "casablanca-1")
            #expect(restarted.state == .running && restarted.pid != before.pid)
            #expect(restarted.clientEndpoint == before.clientEndpoint && restarted.peerEndpoint == before.peerEndpoint)
            seen.insert(try #require(restarted.pid))
            #expect(try await lab.members(of: "casablanca-1").contains { $0.nodeID == "casablanca-1" })
            let twice = await agadirError { try await lab.start("casablanca-1") }
            #expect(twice?.code == .invalidArgument)

            // pause: alive but frozen; it answers nothing until resumed.
            try await lab.pause("settat-1")
            let paused = try status(lab, "settat-1")
            #expect(paused.state == .paused)
            #expect(ProcessControl.state(of: try #require(paused.pid), marker: paused.dataDir) == .paused)
            let silent = await agadirError { _ = try await lab.members(of: "settat-1", timeout: .seconds(1)) }
            #expect(silent?.code == .unavailable, "\(String(describing: silent))")
            try await lab.resume("settat-1")
            #expect(try status(lab, "settat-1").state == .running)
            #expect(try await lab.members(of: "settat-1").contains { $0.nodeID == "settat-1" })

            // restart: graceful stop, then the same ports again.
            let old = try status(lab, "benguerir-1")
            try await lab.restart("benguerir-1")
            let new = try status(lab, "benguerir-1")
            #expect(new.state == .running && new.pid != old.pid && new.clientEndpoint == old.clientEndpoint)
            #expect(!pidExists(try #require(old.pid)))
            seen.insert(try #require(new.pid))
            #expect(
                try lab.logs("benguerir-1", lines: 200).contains("agadird stopped"), "the first run ended gracefully")

            // A root with running nodes is refused; an unknown node is named.
            let busy = await agadirError {
                _ = try await Lab.create(root: lab.root, sites: ["benguerir", "casablanca", "settat"])
            }
            #expect(busy?.message.contains("down") == true, "\(String(describing: busy))")
            let unknown = await agadirError { try await lab.stop("rabat-1") }
            #expect(unknown?.code == .noSuchKey && unknown?.message.contains("benguerir-1") == true)

            // down: every process the lab started is gone, by pid.
            let root = try await lab.down()
            #expect(root == lab.root)
            for pid in seen { #expect(!pidExists(pid), "pid \(pid) still exists after down") }
            #expect(try lab.status().allSatisfy { $0.state == .stopped && $0.pid == nil })
            #expect(
                FileManager.default.fileExists(
                    atPath: lab.root.appendingPathComponent("nodes/settat-1/data/meta.sqlite").path))

            // The stopped lab can be brought up again with its data and ports.
            let reopened = try await Lab.create(root: lab.root, sites: ["benguerir", "casablanca", "settat"])
            try await reopened.up(waitForConvergence: false)
            #expect(try reopened.status().map(\.clientEndpoint) == up.map(\.clientEndpoint))
            let other = await agadirError {
                try await reopened.down(); _ = try await Lab.create(root: lab.root, sites: ["rabat"])
            }
            #expect(other?.message.contains("--purge") == true, "\(String(describing: other))")
        } catch {
            await tearDown(lab)
            throw error
        }
        await tearDown(lab)
    }

    @Test("a one-node lab converges at once: its MEMBERS lists itself alive")
    func oneNodeConverges() async throws {
        let lab = try await Lab.create(sites: ["benguerir"], nodesPerSite: 1)
        do {
            try await lab.up(waitForConvergence: true, timeout: .seconds(20))
            try await lab.waitUntil(timeout: .seconds(10), "benguerir-1 lists itself") { views in
                views["benguerir-1"]?.contains { $0.nodeID == "benguerir-1" } == true
            }
        } catch {
            await tearDown(lab)
            throw error
        }
        await tearDown(lab)
    }

    @Test("convergence is judged per running node, and the error names what each one misses")
    func convergenceDiagnosis() {
        func member(_ id: String, _ state: String) -> MemberInfo {
            MemberInfo(
                nodeID: id, site: "s", clientAddress: "h:1", peerAddress: "h:2", incarnation: 0, state: state,
                layoutVersion: 0,
                lastContactMillisAgo: 0)
        }
        let running = ["a", "b", "c"]
        let all = [member("a", "alive"), member("b", "alive"), member("c", "alive")]
        #expect(Lab.notConverged(running: running, views: ["a": all, "b": all, "c": all]).isEmpty)
        let lagging = Lab.notConverged(
            running: running,
            views: ["a": all, "b": [member("a", "alive"), member("b", "alive"), member("c", "suspect")]])
        #expect(lagging == ["b does not see c alive", "c does not answer MEMBERS"])
    }

    @Test("seeds: none for the first node, the first node's peer on a first start, every other peer on a restart")
    func seeds() {
        func node(_ name: String, peer: Int) -> LabNode {
            LabNode(
                name: name, site: "s", labels: [:], nodeID: name, pid: 0, clientPort: peer == 0 ? 0 : peer + 1000,
                peerPort: peer,
                dataDir: "/d/\(name)", logFile: "/l", readyFile: "/r", state: .stopped)
        }
        var state = LabState(
            clusterName: "c", secretFile: "/s", extraArguments: ["--codec", "raw"], sites: ["s"], nodesPerSite: 3,
            nodes: [node("s-1", peer: 0), node("s-2", peer: 0), node("s-3", peer: 0)])
        #expect(Lab.seeds(for: 0, in: state) == [])
        state.nodes[0] = node("s-1", peer: 7001)
        #expect(Lab.seeds(for: 1, in: state) == ["127.0.0.1:7001"])
        state.nodes[1] = node("s-2", peer: 7002)
        state.nodes[2] = node("s-3", peer: 7003)
        #expect(Lab.seeds(for: 0, in: state) == ["127.0.0.1:7002", "127.0.0.1:7003"])
        let args = LabCommandLine.arguments(
            node: state.nodes[1], lab: state, clientPort: 8002, peerPort: 7002, seeds: ["x:1", "y:2"])
        #expect(
            args.starts(with: ["--data-dir", "/d/s-2", "--listen", "127.0.0.1:8002", "--peer-listen", "127.0.0.1:7002"])
        )
        #expect(args.contains("--ready-file") && args.suffix(2) == ["--codec", "raw"])
        let seedsIndex = args.firstIndex(of: "--seeds")
        #expect(seedsIndex.map { args[$0 + 1] } == "x:1,y:2")
    }

    @Test("a pid whose command line does not name the data directory is never signalled")
    func recycledPidIsNotSignalled() {
        // This test process is alive, but it is not an agadird of that directory.
        #expect(ProcessControl.state(of: getpid(), marker: "/no/such/agadir/data") == .gone)
        #expect(!ProcessControl.signal(getpid(), SIGTERM, marker: "/no/such/agadir/data"))
        #expect(ProcessControl.state(of: 0, marker: "x") == .gone)
    }

    // MARK: The agadir-lab command

    struct LabCLI {
        let root: URL

        func run(_ args: [String]) throws -> CLI.Result {
            let p = Process()
            p.executableURL = NodeProcess.binDir.appendingPathComponent("agadir-lab")
            // --root right after the subcommand: anything after `--` goes to agadird.
            p.arguments = Array(args.prefix(1)) + ["--root", root.path] + args.dropFirst()
            var env = ProcessInfo.processInfo.environment
            env["AGADIR_LAB_ROOT"] = root.path
            p.environment = env
            let out = Pipe()
            let err = Pipe()
            p.standardOutput = out
            p.standardError = err
            try p.run()
            let o = out.fileHandleForReading.readDataToEndOfFile()
            let e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return CLI.Result(
                status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                stderr: String(decoding: e, as: UTF8.self))
        }

        func status() throws -> [LabNodeStatus] {
            let r = try run(["status", "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            return try JSONDecoder().decode([LabNodeStatus].self, from: Data(r.stdout.utf8))
        }
    }

    @Test(
        "agadir-lab up returns while its nodes run on; status, kill, stop, start, down --purge work across invocations")
    func commandLine() async throws {
        let root = Lab.temporaryRoot()
        let cli = LabCLI(root: root)
        do {
            try commandLineSteps(cli, root: root)
        } catch {
            if let lab = try? Lab.open(root: root) { await tearDown(lab) }
            throw error
        }
        if let lab = try? Lab.open(root: root) { await tearDown(lab) }
    }

    func commandLineSteps(_ cli: LabCLI, root: URL) throws {
        let up = try cli.run([
            "up", "--sites", "benguerir,settat", "--nodes-per-site", "1", "--no-wait", "--", "--codec", "raw",
        ])
        #expect(up.status == 0, "\(up.stderr)")
        #expect(up.stdout.contains("benguerir-1") && up.stdout.contains("settat-1"))
        let nodes = try cli.status()
        #expect(nodes.count == 2 && nodes.allSatisfy { $0.state == .running })
        let pids = nodes.compactMap(\.pid)
        #expect(pids.count == 2 && pids.allSatisfy(pidExists), "the nodes outlive the command that started them")
        // The root key the lab prints is the one every node derived from the cluster secret.
        let printed = try #require(nodes.first?.credentialsFile)
        #expect(up.stdout.contains("AGADIR_CREDENTIALS=\(printed)"), "\(up.stdout)")
        for node in nodes {
            #expect(
                try Credentials.read(printed) == Credentials.read(node.dataDir + "/root.credentials"),
                "\(node.name)'s root key differs from the lab's")
        }
        #expect(
            try String(contentsOfFile: "/proc/\(pids[0])/cmdline", encoding: .utf8).contains("raw"),
            "extra arguments reach agadird")

        #expect(try cli.run(["up", "--sites", "benguerir,settat", "--nodes-per-site", "1", "--no-wait"]).status == 1)
        #expect(try cli.run(["kill", "nowhere-1"]).status == 2)
        #expect(try cli.run(["kill", "settat-1"]).status == 0)
        #expect(try cli.status().first { $0.name == "settat-1" }?.state == .killed)
        let logs = try cli.run(["logs", "benguerir-1", "--lines", "5"])
        #expect(logs.status == 0 && logs.stdout.contains("ready") && logs.stderr.contains("agadird.log"))
        #expect(try cli.run(["stop"]).status == 0)
        #expect(try cli.status().allSatisfy { $0.pid == nil })
        #expect(pids.allSatisfy { !pidExists($0) })
        let start = try cli.run(["start"])
        #expect(start.status == 0, "\(start.stderr)")
        let again = try cli.status()
        #expect(again.allSatisfy { $0.state == .running } && again.map(\.clientEndpoint) == nodes.map(\.clientEndpoint))
        let down = try cli.run(["down", "--purge"])
        #expect(down.status == 0, "\(down.stderr)")
        #expect(again.compactMap(\.pid).allSatisfy { !pidExists($0) })
        #expect(!FileManager.default.fileExists(atPath: root.path))
    }

    @Test("agadir-lab run stops every node by pid on SIGINT and says where the data is")
    func runStopsOnSIGINT() async throws {
        let root = Lab.temporaryRoot()
        defer { try? FileManager.default.removeItem(at: root) }
        let p = Process()
        p.executableURL = NodeProcess.binDir.appendingPathComponent("agadir-lab")
        p.arguments = ["run", "--root", root.path, "--sites", "benguerir,settat", "--nodes-per-site", "1", "--no-wait"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        var pids: [Int32] = []
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        while clock.now < deadline, p.isRunning {
            // The block is printed once every node is up.
            if let nodes = try? Lab.open(root: root).status(), nodes.count == 2,
                nodes.allSatisfy({ $0.state == .running })
            {
                pids = nodes.compactMap(\.pid)
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(pids.count == 2, "run started both nodes")
        try await Task.sleep(for: .milliseconds(300))  // let it reach its wait for signals
        kill(p.processIdentifier, SIGINT)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        #expect(text.contains("AGADIR_ENDPOINT=") && text.contains("admin members"), "\(text)")
        #expect(text.contains("the data is in \(root.path)"), "\(text)")
        for pid in pids { #expect(!pidExists(pid), "pid \(pid) survived the lab's shutdown") }
    }

    // MARK: Needing gossip (AgadirMembership)

    @Test("3 sites x 2 nodes converge: every node lists all six alive, with their sites")
    func sixNodesConverge() async throws {
        let lab = try await Lab.create(sites: Lab.defaultSites, nodesPerSite: 2)
        do {
            try await lab.up(waitForConvergence: true, timeout: .seconds(60))
            let views = try await lab.membershipViews()
            #expect(views.count == 6)
            for (name, view) in views {
                #expect(view.count == 6, "\(name) sees \(view.map(\.nodeID))")
                #expect(
                    view.allSatisfy { $0.state == "alive" && $0.nodeID.hasPrefix($0.site + "-") }, "\(name): \(view)")
                #expect(view.allSatisfy { !$0.peerAddress.isEmpty && $0.peerAddress != $0.clientAddress })
            }
        } catch {
            await tearDown(lab)
            throw error
        }
        await tearDown(lab)
    }

    @Test(
        "3 sites x 2 nodes: a killed node is dead at every other node within the bound the LAN settings predict, then alive again after a restart"
    )
    func killedNodeIsDeclaredDeadWithinTheBoundThenRejoins() async throws {
        let lab = try await Lab.create(sites: Lab.defaultSites, nodesPerSite: 2)
        let bound = MembershipSettings.lan.worstCaseTimeToDead(members: 6)
        do {
            try await lab.up(waitForConvergence: true, timeout: .seconds(60))
            let clock = ContinuousClock()
            let killedAt = clock.now
            try await lab.kill("settat-1")
            var firstSuspected: Duration?
            var allDead: Duration?
            // Polled every 100 ms, at most bound + 10 s.
            while allDead == nil, clock.now - killedAt < bound + .seconds(10) {
                let views = try await lab.membershipViews(timeout: .seconds(2))
                let verdicts = views.values.compactMap { $0.first { $0.nodeID == "settat-1" }?.state }
                if firstSuspected == nil, verdicts.contains(where: { $0 != "alive" }) {
                    firstSuspected = clock.now - killedAt
                }
                if views.count == 5, verdicts.count == 5, verdicts.allSatisfy({ $0 == "dead" }) {
                    allDead = clock.now - killedAt
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            let dead = try #require(allDead, "settat-1 was not dead everywhere within \(bound) + 10 s")
            print(
                "lab: settat-1 killed; first suspected after \(firstSuspected ?? .zero), dead at all 5 others after \(dead) (bound \(bound))"
            )
            #expect(dead <= bound)
            // A restart on the same ports comes back at a higher incarnation and is alive everywhere.
            try await lab.start("settat-1")
            try await lab.waitConverged(timeout: .seconds(60))
        } catch {
            await tearDown(lab)
            throw error
        }
        await tearDown(lab)
    }

    @Test(
        "a node paused for less than its suspicion timeout may be suspected but is never declared dead, and is alive everywhere after"
    )
    func pausedNodeShorterThanSuspicionIsNotDeclaredDead() async throws {
        let lab = try await Lab.create(sites: ["benguerir", "casablanca"], nodesPerSite: 2)
        // casablanca-2 probes casablanca-1 with LAN timing (a 1 s round); the suspicion then
        // lasts at least α × max(1, log10 4) × 1 s = 3 s (LAN), 6 s (WAN) before a verdict, so
        // no verdict before 4 s after the pause began; pause 2.5 s.
        do {
            try await lab.up(waitForConvergence: true, timeout: .seconds(60))
            let clock = ContinuousClock()
            try await lab.pause("casablanca-1")
            let pausedAt = clock.now
            var seen: Set<String> = []
            while clock.now - pausedAt < .milliseconds(2500) {
                let views = try await lab.membershipViews(timeout: .milliseconds(500))
                for view in views.values {
                    if let m = view.first(where: { $0.nodeID == "casablanca-1" }) { seen.insert(m.state) }
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            try await lab.resume("casablanca-1")
            let resumedAt = clock.now
            while clock.now - resumedAt < .seconds(8) {
                let views = try await lab.membershipViews(timeout: .seconds(2))
                for view in views.values {
                    if let m = view.first(where: { $0.nodeID == "casablanca-1" }) { seen.insert(m.state) }
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            print("lab: casablanca-1 paused 2.5 s; states seen at the others: \(seen.sorted())")
            #expect(!seen.contains("dead"))
            try await lab.waitConverged(timeout: .seconds(30))
        } catch {
            await tearDown(lab)
            throw error
        }
        await tearDown(lab)
    }

    @Test("a node presenting the wrong cluster secret never joins, and the cluster never lists it")
    func wrongSecretNeverJoins() async throws {
        let lab = try await Lab.create(sites: ["benguerir", "casablanca"], nodesPerSite: 1)
        let dir = TempDirectory(prefix: "intruder")
        defer { dir.cleanup() }
        do {
            try await lab.up(waitForConvergence: true, timeout: .seconds(60))
            let seeds = try lab.status().compactMap(\.peerEndpoint)
            try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
            let wrong = URL(fileURLWithPath: dir.path).appendingPathComponent("wrong.secret")
            try Data("0123456789abcdef0123456789abcdef-not-the-lab-secret\n".utf8).write(to: wrong)
            let intruder = try NodeProcess(
                extraArguments: [
                    "--node-id", "intruder", "--site", "benguerir", "--seeds", seeds.joined(separator: ","),
                    "--cluster-name", try lab.state().clusterName, "--cluster-secret-file", wrong.path,
                ])
            defer { intruder.stop(signal: SIGKILL) }
            try intruder.start()
            // Wait for the event itself: the intruder's join through a seed refused (its log
            // says so); the bound only catches a hang.
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(60)
            var refused = false
            while !refused, clock.now < deadline {
                let log = (try? String(contentsOf: intruder.logFile, encoding: .utf8)) ?? ""
                refused = log.contains("cannot join the cluster through this seed")
                if !refused { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(refused, "the intruder never tried to join")
            let views = try await lab.membershipViews()
            #expect(views.count == 2)
            for (name, view) in views {
                #expect(!view.contains { $0.nodeID == "intruder" }, "\(name) lists the intruder")
            }
            let client = try intruder.client()
            let itsView = try await client.members()
            await client.close()
            #expect(itsView.map(\.nodeID) == ["intruder"])
            intruder.stop(signal: SIGKILL)
            intruder.cleanUp()
        } catch {
            await tearDown(lab)
            throw error
        }
        await tearDown(lab)
    }

    @Test("a restarted node rejoins through its seeds (the other nodes' peer endpoints)")
    func restartedNodeRejoins() async throws {
        let lab = try await Lab.create(sites: ["benguerir", "settat"], nodesPerSite: 2)
        do {
            try await lab.up(waitForConvergence: true, timeout: .seconds(60))
            try await lab.restart("benguerir-1")
            try await lab.waitConverged(timeout: .seconds(60))
            let members = try await lab.members(of: "benguerir-1")
            #expect(Set(members.map(\.nodeID)) == ["benguerir-1", "benguerir-2", "settat-1", "settat-2"])
        } catch {
            await tearDown(lab)
            throw error
        }
        await tearDown(lab)
    }
}
