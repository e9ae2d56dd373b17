import AgadirClient
import AgadirCore
import AgadirLab
import AgadirPlacement
import AgadirStore
import AgadirWire
import Foundation
import Logging
import Synchronization
import Testing

extension LoadedLab {
    /// Adds benguerir-3 and applies version 2; returns the plan's estimate of the bytes to move.
    func grow() async throws -> UInt64 {
        try await lab.start("benguerir-3")
        try await Self.waitAlive(lab, Self.nodes + ["benguerir-3"])
        try await assign("benguerir-3")
        let plan = try await call(Admin.layoutPlan)
        let estimate = plan.links.reduce(UInt64(0)) { $0 + $1.bytes }
        _ = try await call(Admin.layoutApply, Admin.Apply(version: 2))
        return estimate
    }

    /// Every object reads back through `names`; only version 2 is live; after stopping the
    /// nodes, each store holds exactly what version 2 names.
    func expectReadableAndHeldOnlyByVersion2(via names: [String]) async throws {
        try await expectEveryObjectReadable(objects, via: names)
        let cluster = try layoutOnDisk()
        #expect(cluster.live.map(\.version) == [2])
        try await expectHeldExactlyWhereTheLayoutSays(cluster.current, keys: Set(objects.keys))
    }
}

@Suite("Rebalance on the lab: growth, restarts in the middle", .serialized, .oneLabAtATime)
struct RebalanceLabTests {
    @Test(
        "a six-node, three-site cluster grows by one node while an application writes and reads; data ends exactly where the new layout says"
    )
    func growBySeventhNode() async throws {
        var grow = try await LoadedLab(objects: 360, seed: 41, bucket: "grow", nodesPerSite: 3)
        do {
            let app = LabApplication(bucket: "grow")
            let estimate = try await grow.grow()
            #expect(estimate > 0)
            let names = LoadedLab.nodes + ["benguerir-3"]
            let objects = grow.objects
            let lab = grow.lab
            let running = Task { await app.run(lab, names: names, reading: objects, seed: 7) }
            let view = try await grow.waitComplete(timeout: .seconds(180))
            app.stop()
            await running.value
            #expect(app.failures.withLock { $0 }.isEmpty, "\(app.failures.withLock { $0.prefix(5) })")
            #expect(app.operations.withLock { $0 } > 10)
            let moved = view?.bytesMoved ?? 0
            #expect(moved > 0)
            #expect(Double(moved) <= 1.2 * Double(estimate), "moved \(moved) bytes, the plan estimated \(estimate)")
            print(
                "rebalance growth: moved \(moved) bytes, plan estimate \(estimate) (\(String(format: "%.2f", Double(moved) / Double(max(estimate, 1))))x)"
            )
            // Every object, old and new, reads back through the new node and an old one.
            for (key, data) in app.written.withLock({ $0 }) { grow.objects[key] = data }
            try await grow.expectReadableAndHeldOnlyByVersion2(via: ["benguerir-3", "settat-2"])
        } catch {
            await grow.tearDown()
            throw error
        }
        await grow.tearDown()
    }

    @Test(
        "nodes killed and restarted in the middle of a throttled rebalance: it resumes and completes with nothing lost")
    func killAndRestartMidRebalance() async throws {
        let grow = try await LoadedLab(objects: 240, seed: 43, bucket: "grow", nodesPerSite: 3)
        do {
            // Slow enough to be caught in the middle.
            try await grow.call(
                Admin.rebalanceSet,
                Admin.RebalanceChange(intraSiteBytesPerSecond: 1_000_000, interSiteBytesPerSecond: 1_000_000))
            _ = try await grow.grow()
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(120)
            // Killed once the new node has a third of its partitions, so that starting over
            // would show: it would find those chunks already held and claim them again.
            func newcomer() async throws -> NodeRebalanceStatus? {
                try await grow.call(Admin.rebalanceStatus).nodes.first { $0.node == "benguerir-3" }?.status
            }
            var copying = false
            while clock.now < deadline, !copying {
                let status = try await newcomer()
                copying = (status?.partitionsDone ?? 0) * 3 >= max(1, status?.partitionsTotal ?? 0)
                if !copying { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(copying, "the new node never got a third of its partitions")
            // The new node and a source die mid-copy (SIGKILL), and come back.
            let before = try #require(try await newcomer())
            try await grow.lab.kill("benguerir-3")
            try await grow.lab.kill("casablanca-1")
            try await Task.sleep(for: .seconds(2))
            let stalled = try await grow.call(Admin.rebalanceStatus)
            #expect(!stalled.complete)
            try await grow.lab.start("casablanca-1")
            try await grow.lab.start("benguerir-3")
            try await LoadedLab.waitAlive(grow.lab, LoadedLab.nodes + ["benguerir-3"])
            // It resumes: the partitions it had and the bytes it had moved are still counted
            // (a restart from scratch would show none done and nothing moved).
            let after = try #require(try await newcomer())
            #expect(
                after.partitionsDone >= before.partitionsDone && after.moved.bytes >= before.moved.bytes,
                "before the kill \(before.partitionsDone) partitions, \(before.moved.bytes) bytes; after the restart \(after.partitionsDone), \(after.moved.bytes)"
            )
            try await grow.call(
                Admin.rebalanceSet, Admin.RebalanceChange(intraSiteBytesPerSecond: 0, interSiteBytesPerSecond: 0))
            _ = try await grow.waitComplete(timeout: .seconds(180))
            try await grow.expectReadableAndHeldOnlyByVersion2(via: ["benguerir-3", "casablanca-1"])
        } catch {
            await grow.tearDown()
            throw error
        }
        await grow.tearDown()
    }
}
