import AgadirClient
import AgadirCore
import AgadirWire
import ArgumentParser
import Foundation

@main
struct Agadir: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agadir",
        abstract: "Command-line client of the Agadir object store.",
        discussion: """
            The node is taken from --endpoint HOST:PORT, else AGADIR_ENDPOINT, else 127.0.0.1:7480.
            `agadir admin members` lists the cluster's members as the node sees them.
            Exit codes: 0 ok, 1 node or internal error, 2 not found, 3 conflict (exists / not empty / stale layout version),
            4 invalid request, 5 node unreachable, 6 data integrity error, 7 local file error,
            8 not enough replicas for the consistency level, 9 residency violation found (audit),
            10 cluster degraded (`admin status`), 64 usage.
            """,
        subcommands: [
            MakeBucket.self, RemoveBucket.self, Put.self, Get.self, Head.self, Remove.self, List.self, Stat.self,
            Ping.self, AdminGroup.self,
        ])
}

// MARK: - Shared options and plumbing

struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Node endpoint HOST:PORT (default: $AGADIR_ENDPOINT or 127.0.0.1:7480).")
    var endpoint: String?

    @Flag(name: .long, help: "Print machine-readable JSON on stdout.")
    var json = false

    @Option(
        name: .long,
        help: "Consistency level: ONE, QUORUM, LOCAL_QUORUM, EACH_QUORUM or ALL (default: the bucket's policy).")
    var consistency: String?

    @Option(
        name: .long,
        help:
            "Credentials file (access_key = ..., secret_key = ...). Default: $AGADIR_ACCESS_KEY with $AGADIR_SECRET_KEY, else the file $AGADIR_CREDENTIALS names, else ~/.agadir/credentials."
    )
    var credentials: String?

    @Option(
        name: .long,
        help:
            "The cluster CA's certificate (PEM) for TLS to nodes with certificates. Default: $AGADIR_CA_FILE, else ca_file of the credentials file."
    )
    var caFile: String?

    /// The CA file TLS checks nodes against: `--ca-file`, `AGADIR_CA_FILE`, the credentials'
    /// `ca_file`; nil: clear text.
    func resolvedCAFile(_ credentials: Credentials?) -> String? {
        caFile ?? ProcessInfo.processInfo.environment["AGADIR_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
            ?? credentials?.caFile
    }

    /// The client configuration of these options: credentials and TLS.
    func clientConfiguration() throws(AgadirError) -> ClientConfiguration {
        var configuration = ClientConfiguration()
        configuration.credentials = try resolvedCredentials()
        if let file = resolvedCAFile(configuration.credentials) { try configuration.trustCA(file: file) }
        return configuration
    }

    /// The key requests are signed with: `--credentials`, else the environment.
    func resolvedCredentials() throws(AgadirError) -> Credentials? {
        if let credentials { return try Credentials.read(credentials) }
        return try Credentials.fromEnvironment()
    }

    func level() throws -> ConsistencyLevel? {
        guard let consistency else { return nil }
        guard let l = ConsistencyLevel(name: consistency) else {
            throw ValidationError("--consistency \(consistency) is not ONE, QUORUM, LOCAL_QUORUM, EACH_QUORUM or ALL")
        }
        return l
    }

    var resolvedEndpoint: String {
        endpoint ?? ProcessInfo.processInfo.environment["AGADIR_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "127.0.0.1:7480"
    }
}

/// Exit codes scripts can rely on (also in docs/operations.md).
enum Exit {
    static func code(for error: AgadirError) -> Int32 {
        switch error.code {
        case .noSuchBucket, .noSuchKey, .noSuchChunk, .noSuchPolicy, .noSuchNode: 2
        case .bucketAlreadyExists, .bucketNotEmpty, .policyAlreadyExists, .layoutVersionConflict, .nodeNotDrained: 3
        case .notEnoughReplicas: 8
        case .accessDenied, .notAuthenticated, .requestTimeSkewed, .replayedRequest: 11
        case .notAttested: 9
        case .quotaExceeded: 12
        case .policyUnsatisfiable: 4
        case .unavailable, .shuttingDown: 5
        case .corruptChunk, .corruptData, .checksumMismatch: 6
        default: (200..<300).contains(error.code.rawValue) ? 4 : 1
        }
    }
    static let localFile: Int32 = 7
    /// `agadir admin status`: the cluster answered but is degraded.
    static let degraded: Int32 = 10
}

struct LocalFileError: Error {
    let message: String
}

func stderr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// Runs `body` with a client; maps errors to messages on stderr and exit codes.
func withClient(_ options: GlobalOptions, _ body: (AgadirClient) async throws -> Void) async throws {
    do {
        let client = try AgadirClient(
            endpoint: options.resolvedEndpoint, configuration: try options.clientConfiguration())
        do {
            try await body(client)
        } catch {
            await client.close()
            throw error
        }
        await client.close()
    } catch let e as AgadirError {
        stderr("agadir: \(e.message) [\(e.code.name)]")
        if let r = e.replicas { stderr("agadir: \(r.answered) replica(s) answered, \(r.needed) needed") }
        if !e.redirect.isEmpty { stderr("agadir: try \(e.redirect.joined(separator: ", "))") }
        throw ExitCode(Exit.code(for: e))
    } catch let e as LocalFileError {
        stderr("agadir: \(e.message)")
        throw ExitCode(Exit.localFile)
    }
}

/// Splits `bucket/key`; the key may contain further slashes.
func splitPath(_ s: String, keyRequired: Bool) throws -> (String, String) {
    let parts = s.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
    let bucket = String(parts[0])
    let key = parts.count > 1 ? String(parts[1]) : ""
    if keyRequired, key.isEmpty { throw ValidationError("'\(s)' must be BUCKET/KEY") }
    return (bucket, key)
}

func isoDate(millis: UInt64) -> String {
    let f = ISO8601DateFormatter()
    return f.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
}

/// A progress line on stderr, only when stderr is a terminal.
final class Progress {
    let total: UInt64
    let label: String
    let enabled: Bool
    var done: UInt64 = 0
    let start = Date()
    var lastDraw = Date.distantPast

    init(total: UInt64, label: String) {
        self.total = total
        self.label = label
        self.enabled = isatty(STDERR_FILENO) == 1 && total >= 1 << 20
    }

    func advance(_ n: Int) {
        done += UInt64(n)
        guard enabled, Date().timeIntervalSince(lastDraw) > 0.1 || done == total else { return }
        lastDraw = Date()
        let frac = total == 0 ? 1 : Double(done) / Double(total)
        let width = 30
        let filled = Int(frac * Double(width))
        let rate = Double(done) / max(Date().timeIntervalSince(start), 0.001) / 1_048_576
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        FileHandle.standardError.write(
            Data(String(format: "\r%@ [%@] %3.0f%% %.1f MiB/s", label, bar, frac * 100, rate).utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

// MARK: - Buckets

struct MakeBucket: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mb", abstract: "Create a bucket.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Bucket name: 3-63 characters of a-z, 0-9, '-' and '.'.") var bucket: String
    @Option(name: .long, help: "Placement policy (fixed at creation).") var policy: String?

    func run() async throws {
        try await withClient(options) { client in
            try await client.createBucket(bucket, policy: policy)
            if options.json {
                printJSON(value: CLIOutput.BucketCreated(bucket: bucket))
            } else {
                print("created bucket \(bucket)")
            }
        }
    }
}

struct RemoveBucket: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rb", abstract: "Delete an empty bucket.")
    @OptionGroup var options: GlobalOptions
    @Argument var bucket: String

    func run() async throws {
        try await withClient(options) { client in
            try await client.deleteBucket(bucket)
            if options.json {
                printJSON(value: CLIOutput.BucketDeleted(bucket: bucket))
            } else {
                print("deleted bucket \(bucket)")
            }
        }
    }
}

// MARK: - Objects

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Upload a file (or - for stdin) as BUCKET/KEY.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "File to upload, or - for standard input.") var file: String
    @Argument(help: "BUCKET/KEY") var path: String
    @Option(name: .long, help: "Content type.") var contentType = "application/octet-stream"
    @Option(name: [.customShort("m"), .long], help: "User metadata NAME=VALUE (repeatable).") var meta: [String] = []

    func run() async throws {
        let (bucket, key) = try splitPath(path, keyRequired: true)
        var metadata: [MetadataEntry] = []
        for m in meta {
            guard let eq = m.firstIndex(of: "=") else { throw ValidationError("metadata '\(m)' must be NAME=VALUE") }
            metadata.append(MetadataEntry(name: String(m[..<eq]), value: String(m[m.index(after: eq)...])))
        }
        try await withClient(options) { client in
            let (handle, size, cleanup) = try openSource(file)
            defer { cleanup() }
            // The client signs each DATA frame of the body (docs/protocol.md, "Signed bodies"),
            // so the signature covers it without a read pass to hash it first.
            let progress = Progress(total: size, label: "put \(key)")
            let request = PutRequest(
                bucket: bucket, key: key, size: size, contentType: contentType, metadata: metadata)
            let result = try await client.put(request, consistency: try options.level()) {
                (send: (ArraySlice<UInt8>) async throws(AgadirError) -> Void) throws(AgadirError) in
                // From the start, also when a redirect makes the client send the body again.
                do {
                    try handle.seek(toOffset: 0)
                } catch {
                    throw AgadirError(.invalidArgument, "cannot rewind \(file): \(error)")
                }
                var sent: UInt64 = 0
                while sent < size {
                    let data: Data
                    do {
                        data = try handle.read(upToCount: 1 << 20) ?? Data()
                    } catch {
                        throw AgadirError(.invalidArgument, "reading \(file) failed: \(error)")
                    }
                    if data.isEmpty {
                        throw AgadirError(
                            .bodyLengthMismatch, "\(file) shrank while uploading (\(sent) of \(size) bytes)")
                    }
                    sent += UInt64(data.count)
                    try await send(ArraySlice(data))
                    progress.advance(data.count)
                }
            }
            progress.finish()
            if options.json {
                printJSON(value: CLIOutput.Uploaded(bucket: bucket, key: key, result))
            } else {
                print("\(bucket)/\(key) \(result.size) bytes etag \(result.etag?.hex ?? "")")
            }
        }
    }

    /// A readable handle and its exact size; stdin is spooled to a temporary file first
    /// because the protocol announces the size before the body.
    func openSource(_ file: String) throws -> (FileHandle, UInt64, () -> Void) {
        if file == "-" {
            let tmp = FileManager.default.temporaryDirectory.appendingPathComponent(
                "agadir-put-\(getpid())-\(UUID().uuidString)")
            guard FileManager.default.createFile(atPath: tmp.path, contents: nil),
                let out = try? FileHandle(forWritingTo: tmp)
            else {
                throw LocalFileError(message: "cannot create a temporary file to spool standard input")
            }
            var size: UInt64 = 0
            while let data = try? FileHandle.standardInput.read(upToCount: 1 << 20), !data.isEmpty {
                out.write(data)
                size += UInt64(data.count)
            }
            try? out.close()
            guard let handle = FileHandle(forReadingAtPath: tmp.path) else {
                throw LocalFileError(message: "cannot reopen the spooled standard input")
            }
            return (
                handle, size,
                {
                    try? handle.close(); try? FileManager.default.removeItem(at: tmp)
                }
            )
        }
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: file),
            (attrs[.type] as? FileAttributeType) == .typeRegular, let size = (attrs[.size] as? NSNumber)?.uint64Value,
            let handle = FileHandle(forReadingAtPath: file)
        else {
            throw LocalFileError(message: "cannot read \(file): not a readable regular file")
        }
        return (handle, size, { try? handle.close() })
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Download BUCKET/KEY to a file or stdout.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "BUCKET/KEY") var path: String
    @Argument(help: "Destination file, or - (default) for standard output.") var destination: String = "-"
    @Option(name: .long, help: "Byte range OFFSET-END (inclusive end, as HTTP) or OFFSET- to the end.") var range:
        String?

    func run() async throws {
        let (bucket, key) = try splitPath(path, keyRequired: true)
        let byteRange = try range.map(parseRange)
        try await withClient(options) { client in
            let download = try await client.download(
                bucket: bucket, key: key, range: byteRange, consistency: try options.level())
            let expected = download.info.range?.length ?? download.info.size
            let toStdout = destination == "-"
            let tmp = toStdout ? "" : destination + ".agadir-partial-\(getpid())"
            let out: FileHandle
            if toStdout {
                out = FileHandle.standardOutput
            } else {
                guard FileManager.default.createFile(atPath: tmp, contents: nil),
                    let h = FileHandle(forWritingAtPath: tmp)
                else {
                    download.body.abandon()
                    throw LocalFileError(message: "cannot create \(tmp)")
                }
                out = h
            }
            var hasher = ObjectHasher()
            var received: UInt64 = 0
            let progress = Progress(total: expected, label: "get \(key)")
            do {
                while let buf = try await download.body.next() {
                    buf.withUnsafeReadableBytes { raw in
                        hasher.update(raw)
                        out.write(Data(raw))
                    }
                    received += UInt64(buf.readableBytes)
                    progress.advance(buf.readableBytes)
                }
                progress.finish()
                guard received == expected else {
                    throw AgadirError(
                        .bodyLengthMismatch, "received \(received) of \(expected) bytes of \(bucket)/\(key)")
                }
                if byteRange == nil, hasher.finalize() != download.info.etag {
                    throw AgadirError(
                        .checksumMismatch, "\(bucket)/\(key) does not match its ETag \(download.info.etag.hex)")
                }
                if !toStdout {
                    try? out.synchronize()
                    try? out.close()
                    guard rename(tmp, destination) == 0 else {
                        throw LocalFileError(message: "cannot move the download into \(destination): errno \(errno)")
                    }
                }
            } catch {
                if !toStdout {
                    try? out.close()
                    try? FileManager.default.removeItem(atPath: tmp)
                }
                throw error
            }
            if options.json && !toStdout { printJSON(value: CLIOutput.ObjectView(download.info)) }
        }
    }

    func parseRange(_ s: String) throws -> ByteRange {
        let parts = s.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let start = UInt64(parts[0]) else {
            throw ValidationError("range must be OFFSET-END or OFFSET-")
        }
        if parts[1].isEmpty { return ByteRange(offset: start, length: nil) }
        guard let end = UInt64(parts[1]), end >= start else { throw ValidationError("range end must be >= its start") }
        return ByteRange(offset: start, length: end - start + 1)
    }
}

struct Head: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show an object's size, ETag, version and metadata.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "BUCKET/KEY") var path: String

    func run() async throws {
        let (bucket, key) = try splitPath(path, keyRequired: true)
        try await withClient(options) { client in
            let i = try await client.head(bucket: bucket, key: key, consistency: try options.level())
            if options.json {
                printJSON(value: CLIOutput.ObjectView(i))
            } else {
                print("bucket:        \(i.bucket)\nkey:           \(i.key)\nsize:          \(i.size)")
                print("etag:          \(i.etag.hex)\nversion:       \(i.version)\ncontent-type:  \(i.contentType)")
                print("last-modified: \(isoDate(millis: i.version.timestamp.physicalMillis))")
                for m in i.metadata { print("meta:          \(m.name)=\(m.value)") }
            }
        }
    }
}

struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete an object.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "BUCKET/KEY") var path: String

    func run() async throws {
        let (bucket, key) = try splitPath(path, keyRequired: true)
        try await withClient(options) { client in
            let r = try await client.delete(bucket: bucket, key: key, consistency: try options.level())
            if options.json {
                printJSON(value: CLIOutput.ObjectDeleted(bucket: bucket, key: key, version: r.version.description))
            } else {
                print("deleted \(bucket)/\(key)")
            }
        }
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List buckets, or the objects of BUCKET[/PREFIX] (folders by '/').")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "BUCKET[/PREFIX]; omit to list buckets.") var path: String?
    @Flag(name: [.short, .long], help: "List every key under the prefix, without rolling up folders.") var recursive =
        false
    @Option(name: .long, help: "Start after this key.") var startAfter: String?
    @Option(name: .long, help: "Stop after this many entries (default: all).") var limit: Int?

    func run() async throws {
        try await withClient(options) { client in
            guard let path else {
                let buckets = try await client.listBuckets()
                if options.json {
                    printJSON(value: buckets.map(CLIOutput.Bucket.init))
                } else {
                    for b in buckets { print("\(isoDate(millis: b.createdMillis))  \(b.name)  (policy \(b.policy))") }
                }
                return
            }
            let (bucket, prefix) = try splitPath(path, keyRequired: false)
            var after = startAfter
            var objects: [ListEntry] = []
            var prefixes: [String] = []
            let cap = limit ?? Int.max
            while objects.count + prefixes.count < cap {
                let page = try await client.list(
                    ListRequest(
                        bucket: bucket, prefix: prefix, delimiter: recursive ? nil : "/", startAfter: after,
                        limit: min(1000, cap - objects.count - prefixes.count)), consistency: try options.level())
                objects += page.entries
                prefixes += page.commonPrefixes
                guard page.isTruncated, let next = page.nextStartAfter else { break }
                after = next
            }
            if options.json {
                printJSON(
                    value: CLIOutput.Listing(
                        bucket: bucket, prefix: prefix, commonPrefixes: prefixes,
                        objects: objects.map(CLIOutput.ListedObject.init)))
            } else {
                for p in prefixes { print("                          DIR  \(p)") }
                for o in objects {
                    print(
                        "\(isoDate(millis: o.version.timestamp.physicalMillis))  \(String(o.size).leftPad(12))  \(o.key)"
                    )
                }
            }
        }
    }
}

struct Stat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the node's storage statistics.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        try await withClient(options) { client in
            let s = try await client.stat()
            if options.json {
                printJSON(value: s)
            } else {
                print("buckets:            \(s.buckets)\nobjects:            \(s.objects)")
                print("logical bytes:      \(s.logicalBytes)\ninline bytes:       \(s.inlineBytes)")
                print("chunks:             \(s.chunks)\nunique raw bytes:   \(s.uniqueRawBytes)")
                print(
                    "stored bytes:       \(s.storedBytes)\nsegment files:      \(s.segmentFiles) (\(s.segmentBytes) bytes)"
                )
                print(
                    String(
                        format: "dedup ratio:        %.3f\ncompression ratio:  %.3f", s.dedupRatio, s.compressionRatio))
            }
        }
    }
}

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that a node answers.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        try await withClient(options) { client in
            let start = Date()
            let p = try await client.ping()
            let ms = Date().timeIntervalSince(start) * 1000
            if options.json {
                printJSON(value: CLIOutput.Pong(node: p.nodeID, version: p.serverVersion, rttMillis: ms))
            } else {
                print(String(format: "%@ (%@) answered in %.2f ms", p.nodeID, p.serverVersion, ms))
            }
        }
    }
}

// MARK: - Administration

struct Members: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the cluster's members as the node sees them (sorted by site, then node id).")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        try await withClient(options) { client in
            let members = try await client.members().sorted { ($0.site, $0.nodeID) < ($1.site, $1.nodeID) }
            if options.json {
                printJSON(value: members)
            } else {
                print(Self.table(members))
            }
        }
    }

    /// Columns NODE, SITE, STATE, INCARNATION, CLIENT, PEER, LAST CONTACT, padded to the widest cell.
    static func table(_ members: [MemberInfo]) -> String {
        let header = ["NODE", "SITE", "STATE", "INCARNATION", "CLIENT", "PEER", "LAST CONTACT"]
        let rows = members.map { m in
            [
                m.nodeID, m.site, m.state, String(m.incarnation), m.clientAddress,
                m.peerAddress.isEmpty ? "-" : m.peerAddress,
                lastContact(m.lastContactMillisAgo),
            ]
        }
        return agadir.table(header, rows)
    }

    /// `-` for never (or the answering node itself), else `0.4s ago`, `12s ago`, `4m12s ago`, `2h03m ago`.
    static func lastContact(_ millis: Int64) -> String {
        guard millis >= 0 else { return "-" }
        let seconds = millis / 1000
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        switch millis {
        case ..<10_000: return "\(millis / 1000).\(millis % 1000 / 100)s ago"
        case ..<60_000: return "\(seconds)s ago"
        case ..<3_600_000: return "\(seconds / 60)m\(two(seconds % 60))s ago"
        default: return "\(seconds / 3600)h\(two(seconds % 3600 / 60))m ago"
        }
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
