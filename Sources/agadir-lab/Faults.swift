import AgadirCore
import AgadirLab
import ArgumentParser
import Foundation
import Logging

struct Partition: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cut the links between groups of nodes or sites: `partition benguerir,casablanca '|' settat`.",
        discussion: """
            Groups are separated by |, their items (node names or site names) by commas. Every \
            link between two groups is cut both ways, or with --one-way only from each group to \
            the groups after it (`A | B` cuts A→B). Cut datagrams are lost; cut TCP bytes wait \
            in the relay until `heal`. Needs a lab made with --relays. Takes effect within 100 ms.
            """)
    @OptionGroup var root: RootOption
    @Flag(name: .long, help: "Cut only from each group to the groups after it.") var oneWay = false
    @Argument(help: "The groups, e.g. benguerir,casablanca '|' settat.") var groups: [String]

    func run() async throws {
        try await reporting {
            let lab = try Lab.open(root: root.url)
            let parsed = try PartitionSpec.parse(groups, nodes: try lab.nodeSites())
            try await lab.partition(parsed, oneWay: oneWay)
            print(
                "partitioned: " + parsed.map { $0.joined(separator: ",") }.joined(separator: oneWay ? " → " : " | "))
        }
    }
}

struct Heal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "End every partition (link delays and losses stay; `link A B --clear` ends those).")
    @OptionGroup var root: RootOption

    func run() async throws {
        try await reporting {
            try await Lab.open(root: root.url).heal()
            print("healed")
        }
    }
}

struct LinkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link",
        abstract: "Degrade the links between two sites or nodes, both ways: delay, jitter, loss.",
        discussion: """
            `agadir-lab link benguerir casablanca --delay 30ms --jitter 5ms --loss 1%` applies to \
            every link between a node of the first and a node of the second, for peer links and \
            gossip. A lost datagram is dropped; a lost piece of a TCP stream arrives 200 ms late \
            (a retransmission). --clear puts the links back. Needs a lab made with --relays.
            """)
    @OptionGroup var root: RootOption
    @Argument(help: "A site or a node.") var a: String
    @Argument(help: "Another site or node.") var b: String
    @Option(name: .long, help: "Added to everything, e.g. 30ms (default 0).") var delay = "0ms"
    @Option(name: .long, help: "Each delay drawn within ±this, e.g. 5ms (default 0).") var jitter = "0ms"
    @Option(name: .long, help: "Lost, in percent, e.g. 1% (default 0).") var loss = "0%"
    @Flag(name: .long, help: "Put the links back (no delay, no loss).") var clear = false

    func run() async throws {
        try await reporting {
            let lab = try Lab.open(root: root.url)
            let nodes = try lab.nodeSites()
            let fault =
                clear
                ? LinkFault()
                : LinkFault(
                    delayMillis: try PartitionSpec.millis(delay), jitterMillis: try PartitionSpec.millis(jitter),
                    lossPercent: try PartitionSpec.percent(loss))
            try await lab.link(
                try PartitionSpec.expand(a, nodes: nodes), try PartitionSpec.expand(b, nodes: nodes), fault: fault)
            print(
                clear
                    ? "\(a) <-> \(b): clear"
                    : "\(a) <-> \(b): delay \(fault.delayMillis) ms ± \(fault.jitterMillis) ms, loss \(fault.lossPercent) %"
            )
        }
    }
}

struct Faults: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the network faults in force, one direction per line.")
    @OptionGroup var root: RootOption

    func run() async throws {
        try await reporting {
            let lines = try Lab.open(root: root.url).faults().summary
            print(lines.isEmpty ? "no faults" : lines.joined(separator: "\n"))
        }
    }
}

struct RelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay", abstract: "The lab's relay process (started by `up` for a lab made with --relays).",
        shouldDisplay: false)
    @OptionGroup var root: RootOption

    func run() async throws {
        var logger = Logger(label: "agadir.lab.relay")
        logger.logLevel = .info
        let relay = LabRelay(root: try Lab.open(root: root.url).root, logger: logger)
        try await reporting { try await relay.run() }
    }
}
