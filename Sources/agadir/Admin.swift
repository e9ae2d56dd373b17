import AgadirClient
import AgadirCore
import AgadirWire
import ArgumentParser
import Foundation

// MARK: - agadir admin

/// `agadir admin`: every subcommand sends typed records of the admin schema (AgadirWire's
/// `Admin`) through `admin(_:_:_:)`. A new command that reaches every node is one entry in
/// `Admin` (the schema), one case in the server's `AdminCommands.run` (usually a fan-out),
/// and one subcommand here.
struct AdminGroup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Cluster administration.",
        subcommands: [
            Members.self, ClusterStatusCommand.self, Layout.self, PolicyCommand.self, Node.self, Audit.self,
            Rebalance.self, Repair.self,
            Scrub.self, GarbageCollection.self, Workers.self, KeyCommand.self, CACommand.self, CertCommand.self,
            BucketAdminCommand.self,
        ])
}

struct Workers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Every node's background workers: state (busy, throttled, idle, paused, done, failed), phase, progress, last error.",
        discussion: "Exit code 0, or 1 when a worker has failed or a node's workers could not be read.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let nodes = try await admin(options, Admin.workersList)
        if options.json {
            printJSON(value: nodes)
        } else {
            var rows: [[String]] = []
            for n in nodes {
                guard let workers = n.workers else {
                    rows.append([n.node, "", "unknown: \(n.error ?? "no workers reported")", "", "", ""])
                    continue
                }
                for w in workers {
                    rows.append([n.node, w.name, w.state.rawValue, w.phase ?? "", w.progress ?? "", w.lastError ?? ""])
                }
            }
            print(table(["NODE", "WORKER", "STATE", "PHASE", "PROGRESS", "LAST ERROR"], rows))
        }
        if nodes.contains(where: { n in n.workers == nil || (n.workers ?? []).contains { $0.state == .failed } }) {
            throw ExitCode(1)
        }
    }
}

// MARK: - Plumbing for admin commands (typed records of the admin schema, AgadirWire's `Admin`)

/// Runs `command` on the node of `options` and returns its typed answer.
func admin<Input, Output>(_ options: GlobalOptions, _ command: AdminCommand<Input, Output>, _ input: Input) async throws
    -> Output
{
    var answer: Output? = nil
    try await withClient(options) { client in answer = try await client.admin(command, input) }
    guard let answer else { throw ExitCode(1) }
    return answer
}

/// `admin` for a command without input.
func admin<Output>(_ options: GlobalOptions, _ command: AdminCommand<Admin.Empty, Output>) async throws -> Output {
    try await admin(options, command, Admin.Empty())
}

/// Prints an admin answer as the schema encodes it (`--json`): sorted keys, pretty unless
/// `pretty` is false (one object per line).
func printJSON(value: some Encodable, pretty: Bool = true) {
    if let bytes = try? AdminJSON.encode(value, pretty: pretty) { print(String(decoding: bytes, as: UTF8.self)) }
}

/// A table with a header row, columns padded to the widest cell.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max() ?? 0 }
    return ([header] + rows).map { row in
        row.indices.map { c in
            c == row.count - 1 ? row[c] : row[c].padding(toLength: widths[c], withPad: " ", startingAt: 0)
        }
        .joined(separator: "  ")
    }.joined(separator: "\n")
}
