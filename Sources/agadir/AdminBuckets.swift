import AgadirCore
import AgadirWire
import ArgumentParser

// MARK: - agadir admin bucket

struct BucketAdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bucket", abstract: "Bucket settings that need an admin key: quotas.",
        subcommands: [BucketQuota.self])
}

struct BucketQuota: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quota",
        abstract: "Show or set a bucket's quota of bytes and objects, with its usage across the cluster.",
        discussion: """
            A PUT that would take the bucket past a limit is refused with QUOTA_EXCEEDED (exit 12) \
            before its body is sent. 0 removes a limit; an option not given leaves it as it is. \
            Usage is what the bucket's nodes hold divided by the replication factor; each node \
            refreshes it every 2 s, so concurrent writers through several nodes may pass a limit \
            by what they write in that time (docs/operations.md, "Quotas").
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The bucket.") var bucket: String
    @Option(name: .long, help: "Most bytes of live objects (logical sizes): 10GB, 500MiB, 1048576; 0 = no limit.")
    var maxBytes: String?
    @Option(name: .long, help: "Most live objects; 0 = no limit.") var maxObjects: UInt64?

    func run() async throws {
        let change = Admin.QuotaChange(
            bucket: bucket, maxBytes: try maxBytes.map(parseCapacity), maxObjects: maxObjects)
        let view = try await admin(options, Admin.bucketQuota, change)
        if options.json {
            printJSON(value: view)
            return
        }
        func limit(_ n: UInt64, _ text: String) -> String { n == 0 ? "none" : text }
        print("bucket   \(view.bucket) (policy \(view.policy))")
        print("objects  \(view.objects) of \(limit(view.maxObjects, "\(view.maxObjects)"))")
        print("bytes    \(formatBytes(view.bytes)) of \(limit(view.maxBytes, formatBytes(view.maxBytes)))")
        if view.nodesAnswered < view.nodesAsked {
            print("(\(view.nodesAnswered) of \(view.nodesAsked) nodes answered: the usage shown is low)")
        }
    }
}
