import AgadirClient
import AgadirCore
import AgadirWire
import ArgumentParser
import Foundation

// MARK: - agadir admin key

struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Access keys: who may send requests, and to which buckets (docs/operations.md, \"Access keys\").",
        subcommands: [KeyCreate.self, KeyList.self, KeyRemove.self, KeyGrantCommand.self])
}

struct KeyCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a key; its secret is printed once and never stored in clear.",
        discussion: "With --output FILE the credentials go to FILE (mode 0600), ready for --credentials.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "A name for people (1-64 characters).") var name: String
    @Flag(name: .customLong("admin"), help: "Every admin command and every bucket.") var isAdmin = false
    @Flag(name: .long, help: "May create buckets (and owns those it creates).") var createBuckets = false
    @Option(name: .long, help: "Write the credentials to this file (mode 0600) instead of printing the secret.")
    var output: String?

    func run() async throws {
        let created = try await admin(
            options, Admin.keyCreate, Admin.KeySpec(name: name, admin: isAdmin, createBuckets: createBuckets))
        if let output {
            let text = Credentials(accessKey: created.accessKey, secretKey: created.secretKey).fileText(
                comment: "Agadir access key '\(name)'")
            guard
                FileManager.default.createFile(
                    atPath: output, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
            else {
                stderr("agadir: cannot write \(output)")
                throw ExitCode(Exit.localFile)
            }
        }
        if options.json {
            printJSON(value: created)
        } else {
            print("access key  \(created.accessKey)")
            if let output {
                print("secret key  written to \(output)")
            } else {
                print("secret key  \(created.secretKey)")
                print("(shown once: keep it now; the cluster stores it sealed)")
            }
        }
    }
}

struct KeyList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List the access keys and their grants.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let keys = try await admin(options, Admin.keyList)
        if options.json {
            printJSON(value: keys)
            return
        }
        var rows: [[String]] = []
        for k in keys {
            let rights = [k.root ? "root" : nil, k.admin ? "admin" : nil, k.createBuckets ? "create-buckets" : nil]
                .compactMap { $0 }.joined(separator: ",")
            let grants = k.grants.map { g in
                let r = [g.read ? "r" : "", g.write ? "w" : "", g.owner ? "o" : ""].joined()
                return "\(g.bucket):\(r)" + (g.current ? "" : "(stale)")
            }.joined(separator: " ")
            rows.append([k.accessKey, k.name, rights, grants])
        }
        print(table(["ACCESS KEY", "NAME", "RIGHTS", "GRANTS (r read, w write, o owner)"], rows))
    }
}

struct KeyRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove a key: every node refuses its requests from then on.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The access key id.") var accessKey: String

    func run() async throws {
        let view = try await admin(options, Admin.keyRemove, Admin.KeyRef(accessKey: accessKey))
        if options.json { printJSON(value: view) } else { print("removed \(view.accessKey) (\(view.name))") }
    }
}

struct KeyGrantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grant",
        abstract: "Set a key's rights on a bucket to exactly the ones given (none removes the grant).",
        discussion: """
            RIGHTS is a comma-separated list of read, write, owner, or none. read: GET, HEAD, LIST; \
            write: PUT, DELETE; owner: DELETE_BUCKET and both others. A grant holds for the bucket \
            that exists now: deleted and created again, the bucket needs a new grant.
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The access key id.") var accessKey: String
    @Argument(help: "The bucket.") var bucket: String
    @Argument(help: "read, write, owner (comma-separated), or none.") var rights: String

    func run() async throws {
        let parts = Set(rights.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
        let unknown = parts.subtracting(["read", "write", "owner", "none"])
        guard unknown.isEmpty, !parts.isEmpty, !(parts.contains("none") && parts.count > 1) else {
            throw ValidationError("RIGHTS must be read, write and/or owner, comma-separated, or none; not '\(rights)'")
        }
        let view = try await admin(
            options, Admin.keyGrant,
            Admin.KeyGrant(
                accessKey: accessKey, bucket: bucket, read: parts.contains("read"), write: parts.contains("write"),
                owner: parts.contains("owner")))
        if options.json {
            printJSON(value: view)
        } else {
            let g = view.grants.first { $0.bucket == bucket }
            let now =
                g.map { g in
                    [g.read ? "read" : nil, g.write ? "write" : nil, g.owner ? "owner" : nil].compactMap { $0 }
                } ?? []
            print("\(view.accessKey) on \(bucket): \(now.isEmpty ? "no rights" : now.joined(separator: ", "))")
        }
    }
}
