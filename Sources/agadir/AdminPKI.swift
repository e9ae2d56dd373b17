import AgadirCore
import AgadirIdentity
import ArgumentParser
import Foundation

// MARK: - agadir admin ca / cert (offline: they read and write files, never a node)

struct CACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca", abstract: "The cluster's certificate authority (docs/operations.md, \"Cluster PKI\").",
        subcommands: [CAInit.self])
}

struct CAInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a cluster CA in DIR: ca.crt (give it to every node) and ca.key (keep it offline).",
        discussion: "Refuses a DIR that already holds a CA. Works offline: no node is contacted.")
    @Argument(help: "Directory for ca.crt and ca.key (created, mode 0700).") var dir: String
    @Option(name: .long, help: "The cluster's name (the nodes' clusterName).") var cluster = "agadir"
    @Option(name: .long, help: "Lifetime in days.") var days = ClusterCA.defaultCADays

    func run() throws {
        let crt = (dir as NSString).appendingPathComponent("ca.crt")
        let key = (dir as NSString).appendingPathComponent("ca.key")
        for path in [crt, key] where FileManager.default.fileExists(atPath: path) {
            stderr("agadir: \(path) exists; a CA is created once (remove the directory to start over)")
            throw ExitCode(3)
        }
        do {
            try FileManager.default.createDirectory(
                atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            stderr("agadir: cannot create \(dir): \(error)")
            throw ExitCode(Exit.localFile)
        }
        let ca = try pki { () throws(AgadirError) in try ClusterCA.create(clusterName: cluster, days: days) }
        try write(ca.privateKeyPEM, to: key, mode: 0o600)
        try write(ca.certificatePEM, to: crt, mode: 0o644)
        print("cluster CA of '\(cluster)' created, valid \(days) days")
        print("  \(crt)  give it to every node (--ca-file)")
        print("  \(key)  keep it offline: it is what makes a node eligible for data")
    }
}

struct CertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cert", abstract: "Node certificates: issue and inspect.",
        subcommands: [CertIssue.self, CertShow.self, CertRevoke.self])
}

struct CertIssue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue",
        abstract: "Issue a node certificate binding its node id, its site and its residency labels.",
        discussion: """
            Writes NODE.crt and NODE.key into --out. Issue again before the certificate expires \
            (default 90 days) to renew it. Works offline with the CA directory.
            """)
    @Option(name: .long, help: "The CA directory (ca.crt, ca.key).") var ca: String
    @Option(name: .long, help: "The node id.") var node: String
    @Option(name: .long, help: "The node's site.") var site: String
    @Option(name: .long, help: "A residency label KEY=VALUE (repeatable), e.g. country=MA.") var label: [String] = []
    @Option(name: .long, help: "A DNS name or IP address the node is reached at (repeatable).") var host: [String] = []
    @Option(name: .long, help: "Lifetime in days.") var days = ClusterCA.defaultNodeDays
    @Option(name: .long, help: "Directory for NODE.crt and NODE.key (default: the current one).") var out = "."

    func run() throws {
        var labels: [String: String] = [:]
        for l in label {
            guard let eq = l.firstIndex(of: "="), eq != l.startIndex else {
                throw ValidationError("--label '\(l)' must be KEY=VALUE")
            }
            labels[String(l[..<eq])] = String(l[l.index(after: eq)...])
        }
        let caCert = try read((ca as NSString).appendingPathComponent("ca.crt"))
        let caKey = try read((ca as NSString).appendingPathComponent("ca.key"))
        let identity = NodeIdentity(nodeID: node, site: site, labels: labels)
        let issued = try pki { () throws(AgadirError) in
            try ClusterCA.issue(
                identity, hosts: host, caCertificatePEM: caCert, caPrivateKeyPEM: caKey, days: days)
        }
        let crt = (out as NSString).appendingPathComponent("\(node).crt")
        let key = (out as NSString).appendingPathComponent("\(node).key")
        try write(issued.privateKeyPEM, to: key, mode: 0o600)
        try write(issued.certificatePEM, to: crt, mode: 0o644)
        let shown = labels.labelText
        print("certificate of \(node) (site \(site)\(shown.isEmpty ? "" : ", labels \(shown)")), valid \(days) days")
        print("  \(crt)\n  \(key)  (mode 0600; copy both to the node)")
    }
}

struct CertShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "What a node certificate attests; with --ca, whether this CA signed it.")
    @Argument(help: "The certificate (PEM).") var file: String
    @Option(name: .long, help: "The CA directory: check the signature and the validity too.") var ca: String?
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() throws {
        let pem = try read(file)
        let identity = try pki { () throws(AgadirError) in
            if let ca {
                return try ClusterCA.attested(
                    certificatePEM: pem, caCertificatePEM: try read((ca as NSString).appendingPathComponent("ca.crt")))
            }
            return try ClusterCA.identity(certificatePEM: pem)
        }
        if json {
            printJSON(value: identity)
        } else {
            let labels = identity.labels.labelText
            print(
                "node \(identity.nodeID), site \(identity.site), labels \(labels.isEmpty ? "none" : labels), serial \(identity.serial)"
            )
            if ca != nil { print("signed by the cluster CA and valid now") }
        }
    }
}

struct CertRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Add certificate serials to the cluster's revocation list, signed by the CA.",
        discussion: """
            Reads --out when it exists (its serials are kept), adds --serial (as `cert show` prints \
            it, or --cert FILE), signs, and writes it back. Copy the file to every node's \
            revocationFile: nodes read it again within certReloadSeconds, refuse peers with a \
            revoked certificate and close the links they have with them.
            """)
    @Option(name: .long, help: "The CA directory (ca.crt, ca.key).") var ca: String
    @Option(name: .long, help: "A certificate serial to revoke, hex (repeatable).") var serial: [String] = []
    @Option(name: .long, help: "A certificate file to revoke (repeatable).") var cert: [String] = []
    @Option(name: .long, help: "The revocation list (default: CA/revocations.json).") var out: String?

    func run() throws {
        let caCert = try read((ca as NSString).appendingPathComponent("ca.crt"))
        let caKey = try read((ca as NSString).appendingPathComponent("ca.key"))
        let path = out ?? (ca as NSString).appendingPathComponent("revocations.json")
        let list = try pki { () throws(AgadirError) in
            var serials = serial
            for file in cert { serials.append(try ClusterCA.identity(certificatePEM: try read(file)).serial) }
            let previous =
                FileManager.default.fileExists(atPath: path)
                ? try RevocationList.verified(json: try read(path), caCertificatePEM: caCert) : nil
            return try RevocationList.sign(
                serials: serials, previous: previous, caCertificatePEM: caCert, caPrivateKeyPEM: caKey)
        }
        try write(try pki { () throws(AgadirError) in try list.encoded() }, to: path, mode: 0o644)
        print("\(path): \(list.serials.count) revoked serial(s), signed by the cluster CA; copy it to every node")
    }
}

/// Runs a PKI step, mapping its error to a message and an exit code.
private func pki<T>(_ body: () throws(AgadirError) -> T) throws -> T {
    do {
        return try body()
    } catch {
        stderr("agadir: \(error.message) [\(error.code.name)]")
        throw ExitCode(Exit.code(for: error))
    }
}

private func read(_ path: String) throws(AgadirError) -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw AgadirError(.invalidArgument, "cannot read \(path)")
    }
    return String(decoding: data, as: UTF8.self)
}

private func write(_ text: String, to path: String, mode: Int) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
    else {
        stderr("agadir: cannot write \(path)")
        throw ExitCode(Exit.localFile)
    }
}
