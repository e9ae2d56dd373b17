import AgadirCore
import AgadirWire
import Foundation
import Testing

/// Runs the `agadir` CLI as a script would, by its exit code and output.
struct CLI {
    let endpoint: String
    /// The credentials file the CLI signs with (AGADIR_CREDENTIALS); nil: none.
    let credentials: String?
    /// The cluster CA for TLS (AGADIR_CA_FILE), when the credentials file does not name it.
    var caFile: String? = nil

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// `run` on a thread of its own: an async test must not hold one of the few threads of
    /// the cooperative pool while the CLI runs (a `repair --wait` takes seconds; on 2 cores
    /// that starved the other tests into timeouts).
    func runDetached(_ args: [String], stdin: Data? = nil) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Swift.Result { try self.run(args, stdin: stdin) }) }.start()
        }
    }

    func run(_ args: [String], stdin: Data? = nil) throws -> Result {
        let p = Process()
        p.executableURL = NodeProcess.binDir.appendingPathComponent("agadir")
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["AGADIR_ENDPOINT"] = endpoint
        env["AGADIR_CREDENTIALS"] = credentials
        env["AGADIR_ACCESS_KEY"] = nil
        env["AGADIR_CA_FILE"] = caFile
        p.environment = env
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try input.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(
            status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
            stderr: String(decoding: e, as: UTF8.self))
    }
}

@Suite("The agadir CLI, as scripts use it", .serialized)
struct CLITests {
    @Test("mb, put, get, head, ls, rm, rb and stat work and exit with the documented codes")
    func cliRoundTripAndExitCodes() throws {
        let node = try NodeProcess()
        defer { node.cleanUp() }
        try node.start()
        let cli = CLI(endpoint: node.endpoint, credentials: node.credentialsFile.path)
        let dir = node.dataDir.deletingLastPathComponent()
        var rng = SplitMix64(seed: 5)
        let data = Data(rng.bytes(3 << 20))
        let src = dir.appendingPathComponent("src.bin")
        try data.write(to: src)

        #expect(try cli.run(["mb", "cli-bucket"]).status == 0)
        #expect(try cli.run(["mb", "cli-bucket"]).status == 3, "exists")
        #expect(try cli.run(["mb", "Bad_Name"]).status == 4, "invalid name")
        let put = try cli.run(["put", src.path, "cli-bucket/dir/file.bin", "--json", "-m", "owner=amina"])
        #expect(put.status == 0, "\(put.stderr)")
        #expect(put.stdout.contains(ChunkID.of(Array(data)).hex))
        let piped = try cli.run(["put", "-", "cli-bucket/piped.txt"], stdin: Data("from stdin\n".utf8))
        #expect(piped.status == 0, "\(piped.stderr)")

        let dst = dir.appendingPathComponent("dst.bin")
        #expect(try cli.run(["get", "cli-bucket/dir/file.bin", dst.path]).status == 0)
        #expect(try Data(contentsOf: dst) == data)
        let cat = try cli.run(["get", "cli-bucket/piped.txt"])
        #expect(cat.status == 0 && cat.stdout == "from stdin\n")
        let ranged = try cli.run(["get", "cli-bucket/piped.txt", "-", "--range", "5-9"])
        #expect(ranged.stdout == "stdin")

        let head = try cli.run(["head", "cli-bucket/dir/file.bin", "--json"])
        #expect(head.status == 0)
        #expect(head.stdout.contains("\"owner\" : \"amina\""))
        let ls = try cli.run(["ls", "cli-bucket"])
        #expect(ls.stdout.contains("dir/") && ls.stdout.contains("piped.txt"))
        let lsr = try cli.run(["ls", "cli-bucket", "--recursive", "--json"])
        #expect(lsr.stdout.contains("dir/file.bin"))
        #expect(try cli.run(["stat", "--json"]).stdout.contains("\"dedupRatio\""))

        #expect(try cli.run(["get", "cli-bucket/missing", dst.path]).status == 2, "no such key")
        #expect(try cli.run(["ls", "no-such-bucket"]).status == 2, "no such bucket")
        #expect(try cli.run(["rb", "cli-bucket"]).status == 3, "not empty")
        #expect(try cli.run(["rm", "cli-bucket/dir/file.bin"]).status == 0)
        #expect(try cli.run(["rm", "cli-bucket/piped.txt"]).status == 0)
        #expect(try cli.run(["rb", "cli-bucket"]).status == 0)
        #expect(
            try cli.run(["put", dir.appendingPathComponent("absent").path, "b-b-b/k"]).status == 7, "local file error")
        #expect(try cli.run(["get", "x"]).status == 64, "usage")
        #expect(try CLI(endpoint: "127.0.0.1:1", credentials: nil).run(["ping"]).status == 5, "unreachable")
    }

    @Test(
        "admin members shows the node alone, with its client and peer endpoints, as a table and as JSON; an unreachable node exits 5"
    )
    func adminMembers() throws {
        let node = try NodeProcess(extraArguments: ["--node-id", "cli-members-node"])
        defer { node.cleanUp() }
        try node.start()
        let cli = CLI(endpoint: node.endpoint, credentials: node.credentialsFile.path)

        let table = try cli.run(["admin", "members"])
        #expect(table.status == 0, "\(table.stderr)")
        let lines = table.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 2, "\(table.stdout)")
        let columns = lines.first?.split(separator: " ", omittingEmptySubsequences: true).map(String.init) ?? []
        #expect(columns == ["NODE", "SITE", "STATE", "INCARNATION", "CLIENT", "PEER", "LAST", "CONTACT"])
        let cells = lines.last?.split(separator: " ", omittingEmptySubsequences: true).map(String.init) ?? []
        // The node's gossip endpoint, bound on a free port like its client endpoint.
        let peer = cells.count == 7 ? cells[5] : ""
        #expect(peer.hasPrefix("127.0.0.1:") && peer != node.endpoint, "\(table.stdout)")
        #expect(cells == ["cli-members-node", "default", "alive", "0", node.endpoint, peer, "-"], "\(table.stdout)")

        let json = try cli.run(["admin", "members", "--json"])
        #expect(json.status == 0, "\(json.stderr)")
        let members = try JSONDecoder().decode([MemberInfo].self, from: Data(json.stdout.utf8))
        #expect(
            members == [
                MemberInfo(
                    nodeID: "cli-members-node", site: "default", labels: [:], clientAddress: node.endpoint,
                    peerAddress: peer,
                    incarnation: 0, state: "alive", layoutVersion: 0, lastContactMillisAgo: -1)
            ])
        #expect(json.stdout.contains("\"lastContactMillisAgo\" : -1"), "keys are the struct's property names")
        #expect(
            try CLI(endpoint: "127.0.0.1:1", credentials: nil).run(["admin", "members"]).status == 5, "unreachable")
    }

    @Test("a PUT whose body stalls fails with REQUEST_TIMEOUT; a config file sets the timeout")
    func stalledUploadTimesOut() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "agadir-cfg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: base) }
        let config = base.appendingPathComponent("agadird.json")
        try Data(#"{ "requestTimeoutSeconds": 1 }"#.utf8).write(to: config)
        let node = try NodeProcess(extraArguments: ["--config", config.path])
        defer { node.cleanUp() }
        try node.start()
        #expect(
            try CLI(endpoint: node.endpoint, credentials: node.credentialsFile.path).run(["mb", "slow"]).status == 0)

        let sock = try RawSocket(endpoint: node.endpoint)
        defer { sock.closeSocket() }
        let put = Request.put(PutRequest(bucket: "slow", key: "k", size: 1 << 20))
        var signed = put.fields()
        RequestSigning.sign(opcode: Opcode.put.rawValue, fields: &signed, credentials: try node.rootCredentials())
        let fields = signed.encoded()
        var header = FrameHeader(
            kind: .request, opcode: Opcode.put.rawValue, headerLength: UInt32(fields.count), requestID: 7)
        header.flags = 0
        sock.send(header.encoded() + fields)
        var reply: [UInt8] = []
        let deadline = Date().addingTimeInterval(10)
        while reply.count < FrameHeader.size, Date() < deadline { reply += sock.receive(max: 4096) }
        #expect(reply.count >= FrameHeader.size, "an answer arrived")
        if reply.count >= FrameHeader.size {
            let h = try reply.withUnsafeBytes { raw in
                try Result { () throws(AgadirError) -> FrameHeader in try FrameHeader.decode(raw, limits: .default) }
                    .get()
            }
            #expect(h.status == AgadirError.Code.requestTimeout.rawValue)
            #expect(h.requestID == 7)
        }
    }

    @Test("--print-config shows the resolved configuration; bad settings are refused with exit 2")
    func printConfigAndValidation() throws {
        let p = Process()
        p.executableURL = NodeProcess.binDir.appendingPathComponent("agadird")
        p.arguments = ["--print-config", "--listen", "127.0.0.1:9999", "--codec", "zlib"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(text.contains("\"listen\" : \"127.0.0.1:9999\""))
        #expect(text.contains("\"codec\" : \"zlib\""))
        let bad = Process()
        bad.executableURL = NodeProcess.binDir.appendingPathComponent("agadird")
        bad.arguments = ["--print-config", "--codec", "brotli"]
        bad.standardError = Pipe()
        try bad.run()
        bad.waitUntilExit()
        #expect(bad.terminationStatus == 2)
    }

    @Test(
        "admin ca init and cert issue work offline: a Moroccan node certificate that cert show attests, and a second init refused"
    )
    func pkiCommands_workOffline() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(
            "agadir-pki-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: base) }
        let ca = base.appendingPathComponent("ca").path
        let cli = CLI(endpoint: "127.0.0.1:1", credentials: nil)  // no node is contacted
        let made = try cli.run(["admin", "ca", "init", ca, "--cluster", "sovereign"])
        #expect(made.status == 0, "\(made.stderr)")
        let keyMode = try FileManager.default.attributesOfItem(atPath: ca + "/ca.key")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        #expect(try cli.run(["admin", "ca", "init", ca]).status == 3, "a second init must refuse")
        let issued = try cli.run([
            "admin", "cert", "issue", "--ca", ca, "--node", "benguerir-1", "--site", "benguerir", "--label",
            "country=MA",
            "--host", "127.0.0.1", "--out", base.path,
        ])
        #expect(issued.status == 0, "\(issued.stderr)")
        let shown = try cli.run(["admin", "cert", "show", base.path + "/benguerir-1.crt", "--ca", ca, "--json"])
        #expect(shown.status == 0, "\(shown.stderr)")
        #expect(
            shown.stdout.contains("\"nodeID\" : \"benguerir-1\"") && shown.stdout.contains("\"country\" : \"MA\""),
            "\(shown.stdout)")
        // Another CA does not attest it.
        let other = base.appendingPathComponent("other").path
        #expect(try cli.run(["admin", "ca", "init", other, "--cluster", "sovereign"]).status == 0)
        let refused = try cli.run(["admin", "cert", "show", base.path + "/benguerir-1.crt", "--ca", other])
        #expect(refused.status == 11 && refused.stderr.contains("not signed"), "\(refused.stderr)")
    }
}
