import AgadirClient
import AgadirCore
import AgadirWire
import Foundation

/// PUTs with the body covered by the signature (CONTENT_SHA256, hashed on the client) against
/// PUTs whose body is not (the headers are signed either way: the node accepts nothing
/// unsigned), in the same run, alternating so drift hits both alike (docs/benchmarks.md).
struct SigningComparison {
    let endpoint: String
    let credentials: Credentials
    let quick: Bool
    let repeats: Int
    let log: @Sendable (String) -> Void

    struct Row {
        var size: Int
        var concurrency: Int
        var unsigned: WorkloadResult
        var signed: WorkloadResult
    }

    func client(signPayloads: Bool) throws -> AgadirClient {
        var c = ClientConfiguration()
        c.connections = 4
        c.credentials = credentials
        c.signPayloads = signPayloads
        return try AgadirClient(endpoint: endpoint, configuration: c)
    }

    func run() async throws -> [Row] {
        let off = try client(signPayloads: false)
        let on = try client(signPayloads: true)
        defer {
            Task {
                await off.close()
                await on.close()
            }
        }
        let plans: [(Int, Int, Int)] = [
            (4096, 16, quick ? 500 : 4000), (1 << 20, 16, quick ? 64 : 512), (64 << 20, 4, quick ? 4 : 16),
        ]
        var rows: [Row] = []
        for (size, c, ops) in plans {
            var offRuns: [WorkloadResult] = []
            var onRuns: [WorkloadResult] = []
            for r in 0..<repeats {
                for (signed, client) in [(false, off), (true, on)] {
                    let runner = try WorkloadRunner(
                        clients: [client], quick: quick, only: [size], repeats: 1, log: log)
                    let bucket = "sign-\(runner.run)-\(size)-\(r)-\(signed ? "on" : "off")"
                    try await client.createBucket(bucket)
                    let base = BenchData.random(size, seed: 21)
                    let result = try await runner.measure(
                        op: signed ? "PUT signed body" : "PUT unsigned body", size: size, concurrency: c, ops: ops,
                        data: "incompressible"
                    ) { i in
                        let body =
                            size >= 64 * 1024
                            ? BenchData.stamp(base, index: i, run: runner.run) : runner.stampSmall(base, i)
                        try await client.put(bucket: bucket, key: "\(r)/\(i)", data: body)
                    }
                    log(runner.line(result))
                    if signed { onRuns.append(result) } else { offRuns.append(result) }
                }
            }
            func median(_ runs: [WorkloadResult]) -> WorkloadResult {
                runs.sorted { $0.opsPerSecond < $1.opsPerSecond }[runs.count / 2]
            }
            rows.append(Row(size: size, concurrency: c, unsigned: median(offRuns), signed: median(onRuns)))
        }
        return rows
    }

    static func markdown(_ rows: [Row]) -> String {
        var s = "\n### Payload signing: PUT with the body's SHA-256 in the signature against without, same run\n\n"
        s += "| object | concurrency | unsigned body MiB/s | signed body MiB/s | change | p99 ms unsigned / signed |\n"
        s += "| --- | --- | --- | --- | --- | --- |\n"
        for r in rows {
            let change = (r.signed.mibPerSecond / max(r.unsigned.mibPerSecond, 1e-9) - 1) * 100
            s += String(
                format: "| %@ | %d | %.1f | %.1f | %+.1f %% | %.2f / %.2f |\n", Report.size(r.size), r.concurrency,
                r.unsigned.mibPerSecond, r.signed.mibPerSecond, change, r.unsigned.p99Millis, r.signed.p99Millis)
        }
        return s
    }
}
