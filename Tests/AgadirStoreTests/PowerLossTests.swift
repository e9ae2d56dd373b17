import AgadirCore
import Foundation
import Glibc
import Testing

@testable import AgadirStore

/// A seeded sequence of store writes, and what each acknowledgement promises.
struct PowerLossWorkload {
    enum Step {
        case createBucket(String)
        /// The PUT path: the chunks written deferred, then the manifest (its answer is the acknowledgement).
        case putObject(ObjectManifest, chunks: [EncodedChunk])
        case putChunk(EncodedChunk)
        /// Chunks no manifest references dropped, then segments compacted (moves records, removes files).
        case dropAndCompact
    }

    /// What an acknowledged step promises to find after any later power cut.
    enum Promise: CustomStringConvertible {
        case bucket(String)
        /// The key holds this version or a newer one the workload wrote.
        case object(bucket: String, key: String, atLeast: ObjectVersion)
        case chunk(ChunkID)

        var description: String {
            switch self {
            case .bucket(let name): return "bucket \(name)"
            case .object(let bucket, let key, let version): return "\(bucket)/\(key) at \(version) or newer"
            case .chunk(let id): return "chunk \(id.hex.prefix(12))"
            }
        }
    }

    var steps: [Step] = []
    /// Every manifest written, by bucket, key and version; and every chunk's raw bytes.
    var manifests: [String: ObjectManifest] = [:]
    var chunkBytes: [ChunkID: [UInt8]] = [:]
    /// Chunks written on their own (no manifest references them): never dropped, they are promised.
    var standaloneChunks: Set<ChunkID> = []

    static func manifestKey(_ bucket: String, _ key: String, _ version: ObjectVersion) -> String {
        "\(bucket)/\(key)@\(version.timestamp.rawValue).\(version.node)"
    }

    init(seed: UInt64, steps count: Int) throws {
        var rng = SplitMix64(seed: seed)
        var clock: UInt64 = 1_000
        var keys: [(String, String)] = []
        steps = [.createBucket("bkt0"), .createBucket("bkt1")]
        for i in 0..<count {
            clock += 1
            let v = version(clock)
            let roll = rng.next() % 10
            if i % 9 == 8 {
                steps.append(.dropAndCompact)
            } else if roll < 5 || keys.isEmpty {
                // A new key, or a new version of an old one, with 1-3 chunks of 1-9 KiB.
                let (bucket, key) =
                    roll < 3 || keys.isEmpty
                    ? ("bkt\(rng.next() % 2)", "k\(i)") : keys[Int(rng.next() % UInt64(keys.count))]
                var chunks: [EncodedChunk] = []
                for _ in 0..<(1 + Int(rng.next() % 3)) {
                    let raw = randomBytes(1024 + Int(rng.next() % 8192), seed: rng.next())
                    let chunk = try encode(raw, .raw)
                    chunkBytes[chunk.id] = raw
                    chunks.append(chunk)
                }
                let m = chunkManifest(bucket: bucket, key: key, chunks: chunks, at: v)
                manifests[Self.manifestKey(bucket, key, v)] = m
                steps.append(.putObject(m, chunks: chunks))
                if !keys.contains(where: { $0 == (bucket, key) }) { keys.append((bucket, key)) }
            } else if roll < 7 {
                let (bucket, key) = keys[Int(rng.next() % UInt64(keys.count))]
                let m = inlineManifest(bucket: bucket, key: key, body: Array("inline \(i)".utf8), at: v)
                manifests[Self.manifestKey(bucket, key, v)] = m
                steps.append(.putObject(m, chunks: []))
            } else if roll < 8 {
                let (bucket, key) = keys[Int(rng.next() % UInt64(keys.count))]
                let m = ObjectManifest.tombstone(bucket: bucket, key: key, version: v)
                manifests[Self.manifestKey(bucket, key, v)] = m
                steps.append(.putObject(m, chunks: []))
            } else {
                let raw = randomBytes(512 + Int(rng.next() % 4096), seed: rng.next())
                let chunk = try encode(raw, .raw)
                chunkBytes[chunk.id] = raw
                standaloneChunks.insert(chunk.id)
                steps.append(.putChunk(chunk))
            }
        }
    }

    /// Runs step `i`; the promise its acknowledgement makes, if any.
    func run(_ i: Int, on store: NodeStore) async throws(AgadirError) -> Promise? {
        switch steps[i] {
        case .createBucket(let name):
            try await store.createBucket(bucketInfo(name))
            return .bucket(name)
        case .putObject(let m, let chunks):
            for chunk in chunks { try await store.putChunk(chunk, durability: .deferred) }
            _ = try await store.putManifest(m)
            return .object(bucket: m.bucket, key: m.key, atLeast: m.version)
        case .putChunk(let chunk):
            try await store.putChunk(chunk)
            return .chunk(chunk.id)
        case .dropAndCompact:
            let unreferenced = try await store.unreferencedChunks(storedBefore: UInt64.max, after: nil, limit: 1000)
            _ = try await store.dropChunks(
                unreferenced.filter { !standaloneChunks.contains($0) }, referencedBefore: UInt64.max)
            _ = try await store.compactSegments(liveFraction: 0.95, maxSegments: 4)
            return nil
        }
    }

    /// Why `promise` does not hold in `store`, or nil when it does.
    func broken(_ promise: Promise, in store: NodeStore) async -> String? {
        do throws(AgadirError) {
            switch promise {
            case .bucket(let name):
                return try await store.bucket(name) == nil ? "the bucket is gone" : nil
            case .chunk(let id):
                let bytes = try await store.readChunk(id)
                return bytes == chunkBytes[id] ? nil : "the chunk reads back different bytes"
            case .object(let bucket, let key, let atLeast):
                guard let found = try await store.manifest(bucket: bucket, key: key) else {
                    return "the object is gone"
                }
                guard found.version >= atLeast else { return "an older version \(found.version) is back" }
                guard let written = manifests[Self.manifestKey(bucket, key, found.version)], written == found else {
                    return "version \(found.version) is not one that was written, or differs"
                }
                if case .chunks(let refs) = found.body {
                    for ref in refs where try await store.readChunk(ref.id) != chunkBytes[ref.id] {
                        return "chunk \(ref.id.hex.prefix(12)) reads back different bytes"
                    }
                }
                return nil
            }
        } catch {
            return "reading failed: \(error)"
        }
    }
}

/// A fresh, existing directory for one power-loss test; in memory (/dev/shm) where there is
/// one, since each simulated cut opens a store whose real fsyncs would only cost time.
func powerLossDirectory(_ name: String) throws -> TempDirectory {
    var isDirectory: ObjCBool = false
    let dir =
        FileManager.default.fileExists(atPath: "/dev/shm", isDirectory: &isDirectory) && isDirectory.boolValue
        ? TempDirectory(
            path:
                "/dev/shm/agadir-\(name.filter { $0.isLetter || $0.isNumber || $0 == "-" })-\(UUID().uuidString.prefix(8))"
        ) : storeTempDirectory(name)
    try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
    return dir
}

/// Options that keep each store small and quick to open: small segments, so that a few writes
/// create several of them (each creation a directory entry that must be synced).
func powerLossOptions(_ disk: SimulatedDisk?) -> StoreOptions {
    var options = StoreOptions()
    options.segmentMaxBytes = 16 * 1024
    options.readerCount = 1
    options.ioThreads = 1
    if let disk { options.fileSystem = disk }
    return options
}

/// The acknowledged promises of a run, each with the number of disk events seen when it was acknowledged.
struct AcknowledgedRun {
    var promises: [(promise: PowerLossWorkload.Promise, atEvent: Int, startedAtEvent: Int)] = []
    var totalEvents = 0
}

/// Runs the whole workload on a store on `disk`, sequentially, and closes it.
func runAcknowledged(_ workload: PowerLossWorkload, disk: SimulatedDisk, store storePath: String) async throws
    -> AcknowledgedRun
{
    var run = AcknowledgedRun()
    let store = try NodeStore.open(directory: storePath, options: powerLossOptions(disk), logger: quietLogger)
    for i in workload.steps.indices {
        let started = disk.eventCount
        if let promise = try await workload.run(i, on: store) {
            run.promises.append((promise, disk.eventCount, started))
        }
    }
    await store.close()
    disk.detach()
    run.totalEvents = disk.eventCount
    return run
}

/// Opens the store a power cut after `events` events would leave, and lists the promises
/// acknowledged by then that it breaks.
func brokenPromises(
    _ workload: PowerLossWorkload, _ run: AcknowledgedRun, disk: SimulatedDisk, atEvent events: Int,
    _ mode: PowerLoss, scratch: String
) async throws -> [String] {
    try? FileManager.default.removeItem(atPath: scratch)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    try disk.materialize(atEvent: events, mode, into: scratch)
    let store: NodeStore
    do {
        store = try NodeStore.open(directory: scratch, options: powerLossOptions(nil), logger: quietLogger)
    } catch {
        return ["the store does not open after a power cut at event \(events) (\(mode)): \(error)"]
    }
    var broken: [String] = []
    for entry in run.promises where entry.atEvent <= events {
        if let why = await workload.broken(entry.promise, in: store) {
            broken.append("cut at event \(events) of \(run.totalEvents) (\(mode)): \(entry.promise): \(why)")
        }
    }
    await store.close()
    return broken
}

@Suite("Power loss: a simulated disk that forgets what was not synced", .serialized)
struct PowerLossTests {
    @Test(
        "every acknowledged write survives a power cut at every point of a seeded workload",
        arguments: [PowerLoss.dropUnsynced, .tornPrefix(seed: 41)])
    func everyCutPoint(mode: PowerLoss) async throws {
        let dir = try powerLossDirectory("powerloss-every-\(mode)")
        defer { dir.cleanup() }
        let workload = try PowerLossWorkload(seed: 17, steps: 36)
        let disk = try SimulatedDisk(root: dir.path + "/store")
        let run = try await runAcknowledged(workload, disk: disk, store: dir.path + "/store")
        #expect(run.promises.count >= 30)
        #expect(disk.events.contains { if case .syncDirectory = $0 { return true } else { return false } })
        var broken: [String] = []
        for events in 0...run.totalEvents {
            let cutMode: PowerLoss
            switch mode {
            case .dropUnsynced: cutMode = mode
            case .tornPrefix(let seed): cutMode = .tornPrefix(seed: seed &+ UInt64(events))
            }
            broken += try await brokenPromises(
                workload, run, disk: disk, atEvent: events, cutMode, scratch: dir.path + "/cut")
            if broken.count > 20 { break }
        }
        #expect(broken.isEmpty, "\(broken.count) broken promises:\n\(broken.prefix(20).joined(separator: "\n"))")
    }

    @Test("no acknowledgement precedes the sync that covers it")
    func noAcknowledgementBeforeItsSync() async throws {
        let dir = try powerLossDirectory("powerloss-ack")
        defer { dir.cleanup() }
        let workload = try PowerLossWorkload(seed: 5, steps: 30)
        let disk = try SimulatedDisk(root: dir.path + "/store")
        let run = try await runAcknowledged(workload, disk: disk, store: dir.path + "/store")
        var unsynced: [String] = []
        var discriminating = 0
        for entry in run.promises {
            // At the acknowledgement, what it promises is on the disk even if the power goes now.
            unsynced += try await brokenPromises(
                workload, AcknowledgedRun(promises: [entry], totalEvents: run.totalEvents), disk: disk,
                atEvent: entry.atEvent, .dropUnsynced, scratch: dir.path + "/cut")
            // And before the step began it was not: the check above can fail.
            let before = try await brokenPromises(
                workload, AcknowledgedRun(promises: [(entry.promise, 0, 0)], totalEvents: run.totalEvents),
                disk: disk, atEvent: entry.startedAtEvent, .dropUnsynced, scratch: dir.path + "/cut")
            if !before.isEmpty { discriminating += 1 }
        }
        #expect(unsynced.isEmpty, "acknowledged before synced:\n\(unsynced.joined(separator: "\n"))")
        #expect(run.promises.count >= 25)
        // New buckets, keys and chunks were absent before their step (overwrites may find an older version).
        #expect(discriminating >= run.promises.count / 2, "\(discriminating) of \(run.promises.count)")
    }

    @Test("concurrent writers with the power cut at a random point: every write acknowledged survives")
    func concurrentWritersLivePowerCut() async throws {
        var acknowledgedInAll = 0
        var refusedInAll = 0
        for seed in UInt64(1)...4 {
            let dir = try powerLossDirectory("powerloss-live-\(seed)")
            defer { dir.cleanup() }
            let workload = try PowerLossWorkload(seed: 100 + seed, steps: 24)
            let disk = try SimulatedDisk(root: dir.path + "/store")
            let store = try NodeStore.open(
                directory: dir.path + "/store", options: powerLossOptions(disk), logger: quietLogger)
            // The buckets first, then every other step at once (group commits of several writers).
            _ = try await workload.run(0, on: store)
            _ = try await workload.run(1, on: store)
            let opened = disk.eventCount
            var rng = SplitMix64(seed: seed)
            disk.cutPower(afterEvents: opened + 5 + Int(rng.next() % 60))
            let outcomes = await withTaskGroup(of: PowerLossWorkload.Promise?.self) { group in
                for i in 2..<workload.steps.count {
                    if case .dropAndCompact = workload.steps[i] { continue }
                    group.addTask { try? await workload.run(i, on: store) }
                }
                var outcomes: [PowerLossWorkload.Promise?] = []
                for await promise in group { outcomes.append(promise) }
                return outcomes
            }
            let acknowledged = outcomes.compactMap { $0 }
            acknowledgedInAll += acknowledged.count
            refusedInAll += outcomes.count - acknowledged.count
            await store.close()
            disk.detach()
            let cut = disk.eventCount
            let run = AcknowledgedRun(
                promises: acknowledged.map { ($0, cut, cut) }
                    + [(.bucket("bkt0"), opened, 0), (.bucket("bkt1"), opened, 0)], totalEvents: cut)
            let broken = try await brokenPromises(
                workload, run, disk: disk, atEvent: cut, .dropUnsynced, scratch: dir.path + "/cut")
            #expect(broken.isEmpty, "seed \(seed): \(broken.joined(separator: "\n"))")
            let torn = try await brokenPromises(
                workload, run, disk: disk, atEvent: cut, .tornPrefix(seed: seed), scratch: dir.path + "/cut")
            #expect(torn.isEmpty, "seed \(seed): \(torn.joined(separator: "\n"))")
        }
        // The cut fell among the writes: some were acknowledged before it, some refused after it.
        #expect(acknowledgedInAll > 0 && refusedInAll > 0, "\(acknowledgedInAll) acknowledged, \(refusedInAll) refused")
    }
}

@Suite("A failing disk: failed syncs, a full disk and I/O errors", .serialized)
struct DiskFaultTests {
    /// A store on a simulated disk with the first `steps` steps of a workload acknowledged.
    struct Fixture {
        let dir: TempDirectory
        let disk: SimulatedDisk
        let store: NodeStore
        let workload: PowerLossWorkload
        var promises: [PowerLossWorkload.Promise] = []

        init(_ name: String, steps: Int) async throws {
            dir = try powerLossDirectory(name)
            disk = try SimulatedDisk(root: dir.path + "/store")
            store = try NodeStore.open(
                directory: dir.path + "/store", options: powerLossOptions(disk), logger: quietLogger)
            workload = try PowerLossWorkload(seed: 23, steps: 40)
            for i in 0..<steps {
                if let promise = try await workload.run(i, on: store) { promises.append(promise) }
            }
        }

        /// Step `i`'s error, or nil when it was acknowledged (then its promise is kept).
        mutating func attempt(_ i: Int) async -> AgadirError? {
            do throws(AgadirError) {
                if let promise = try await workload.run(i, on: store) { promises.append(promise) }
                return nil
            } catch {
                return error
            }
        }

        /// Closes the store, cuts the power (unsynced writes dropped), reopens: the promises it breaks.
        func brokenAfterPowerLoss() async throws -> [String] {
            await store.close()
            disk.detach()
            let run = AcknowledgedRun(
                promises: promises.map { ($0, 0, 0) }, totalEvents: disk.eventCount)
            return try await brokenPromises(
                workload, run, disk: disk, atEvent: disk.eventCount, .dropUnsynced, scratch: dir.path + "/cut")
        }
    }

    /// The next steps of the workload that write (an object or a chunk), from `start`.
    static func writingSteps(_ workload: PowerLossWorkload, from start: Int) -> [Int] {
        (start..<workload.steps.count).filter { i in
            switch workload.steps[i] {
            case .putObject(let m, let chunks): return !chunks.isEmpty && !m.isTombstone
            case .putChunk: return true
            default: return false
            }
        }
    }

    @Test(
        "a failed fsync fails the write and every later one until the store is reopened; nothing acknowledged is lost",
        arguments: ["segment", "metadata WAL"])
    func failedSyncPoisonsTheWriter(file: String) async throws {
        var f = try await Fixture("fsync-\(file)", steps: 12)
        defer { f.dir.cleanup() }
        let steps = Self.writingSteps(f.workload, from: 12)
        let segment = file == "segment"
        let isTarget: @Sendable (String) -> Bool = { path in
            segment ? path.contains("/chunks/") : path.hasSuffix("-wal")
        }
        f.disk.setFault { event in
            if case .sync(let path) = event, isTarget(path) { return EIO }
            return nil
        }
        let failed = await f.attempt(steps[0])
        #expect(failed?.code == .ioError, "\(String(describing: failed))")
        #expect(f.disk.faultedEvents.contains { $0.isSync && isTarget($0.path) })
        // The disk works again, but what the kernel dropped cannot be known: the writer refuses.
        f.disk.setFault(nil)
        for i in steps[1...3] {
            let refused = await f.attempt(i)
            #expect(
                refused?.code == .ioError && refused?.message.contains("refused") == true,
                "\(String(describing: refused))")
        }
        let broken = try await f.brokenAfterPowerLoss()
        #expect(broken.isEmpty, "\(broken.joined(separator: "\n"))")
        // Reopened (recovered), the store writes again.
        try f.disk.materialize(atEvent: f.disk.eventCount, .dropUnsynced, into: f.dir.path + "/reopened")
        let store = try NodeStore.open(
            directory: f.dir.path + "/reopened", options: powerLossOptions(nil), logger: quietLogger)
        try await store.createBucket(bucketInfo("again"))
        #expect(try await store.bucket("again") != nil)
        await store.close()
    }

    @Test("a full disk gives storageFull and loses nothing acknowledged; segment writes resume once space returns")
    func fullDisk() async throws {
        var f = try await Fixture("full", steps: 12)
        defer { f.dir.cleanup() }
        let steps = Self.writingSteps(f.workload, from: 12)
        f.disk.setFault { event in
            if case .write(let path, _, _) = event, path.contains("/chunks/") { return ENOSPC }
            return nil
        }
        for i in steps[0...1] {
            let full = await f.attempt(i)
            #expect(full?.code == .storageFull, "\(String(describing: full))")
        }
        // Space comes back: nothing was synced wrongly, so the writer goes on without a restart.
        f.disk.setFault(nil)
        for i in steps[2...4] {
            let error = await f.attempt(i)
            #expect(error == nil, "\(String(describing: error))")
        }
        // The metadata database's disk fills: storageFull too, and the writer stops until a reopen.
        f.disk.setFault { event in
            if case .write(let path, _, _) = event, path.hasSuffix("-wal") { return ENOSPC }
            return nil
        }
        let metadataFull = await f.attempt(steps[5])
        #expect(metadataFull?.code == .storageFull, "\(String(describing: metadataFull))")
        f.disk.setFault(nil)
        let broken = try await f.brokenAfterPowerLoss()
        #expect(broken.isEmpty, "\(broken.joined(separator: "\n"))")
    }

    @Test("an I/O error on a segment write fails that write alone and loses nothing acknowledged")
    func writeError() async throws {
        var f = try await Fixture("eio", steps: 12)
        defer { f.dir.cleanup() }
        let steps = Self.writingSteps(f.workload, from: 12)
        f.disk.setFault { event in
            if case .write(let path, _, _) = event, path.contains("/chunks/") { return EIO }
            return nil
        }
        let failed = await f.attempt(steps[0])
        #expect(failed?.code == .ioError, "\(String(describing: failed))")
        f.disk.setFault(nil)
        for i in steps[1...3] {
            let error = await f.attempt(i)
            #expect(error == nil, "\(String(describing: error))")
        }
        let broken = try await f.brokenAfterPowerLoss()
        #expect(broken.isEmpty, "\(broken.joined(separator: "\n"))")
    }
}
