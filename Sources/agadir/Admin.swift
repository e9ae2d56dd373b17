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
            Members.self, ClusterStatusCommand.self, Layout.self, PolicyCommand.self, Node.self, Audit.self, Rebalance.self, Repair.self,
            Scrub.self, GarbageCollection.self,
        ])
}

// MARK: - Plumbing for admin commands (typed records of the admin schema, AgadirWire's `Admin`)

/// Runs `command` on the node of `options` and returns its typed answer.
func admin<Input, Output>(_ options: GlobalOptions, _ command: AdminCommand<Input, Output>, _ input: Input) async throws -> Output {
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
        row.indices.map { c in c == row.count - 1 ? row[c] : row[c].padding(toLength: widths[c], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n")
}
