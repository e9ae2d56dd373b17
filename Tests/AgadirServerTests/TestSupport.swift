import AgadirCore
import AgadirServer
import AgadirStore
@_exported import AgadirTestSupport
import AgadirTransport
import AgadirWire
import Foundation
import Logging
import NIOCore
import Testing

/// A fresh directory for one server test.
func serverTempDirectory(_ name: String = #function) -> TempDirectory { TempDirectory(prefix: "server", name) }

/// Node logs are silent unless AGADIR_TEST_LOG is set (then everything is logged to stderr).
let quietLogger: Logger = {
    var logger = Logger(label: "agadir.server.tests")
    logger.logLevel = ProcessInfo.processInfo.environment["AGADIR_TEST_LOG"] != nil ? .trace : .critical
    return logger
}()

/// Small chunker settings and DATA frames, so multi-chunk objects stay fast in debug builds.
func smallChunkConfiguration(dataDir: String = "") -> NodeConfiguration {
    var config = NodeConfiguration()
    config.dataDir = dataDir
    config.chunkMinBytes = 16 * 1024
    config.chunkAvgBytes = 64 * 1024
    config.chunkMaxBytes = 256 * 1024
    config.dataFrameBytes = 64 * 1024
    return config
}

/// The cluster secret of in-process test nodes built without a data directory's secret.
let testClusterSecret = "0123456789abcdef0123456789abcdef"

/// The root key's principal: every admin command, every bucket.
let rootPrincipal = Principal(
    accessKey: "AKROOTTESTTESTTESTTE", name: "root", isRoot: true, admin: true, createBuckets: true, grants: [:])

/// A `ResponseSink` that keeps every frame it is given.
final class CollectingSink: ResponseSink {
    private let collected = Locked<[Frame]>([])

    func send(_ frame: Frame) async throws { collected.withLock { $0.append(frame) } }

    var frames: [Frame] { collected.value }
}

/// An `ObjectService` over a `NodeStore` in a temporary directory.
final class ServiceHarness: Sendable {
    let dir: TempDirectory
    let store: NodeStore
    let service: ObjectService
    let access: AccessControl
    let config: NodeConfiguration
    private let nextID = Locked<UInt64>(1)
    /// Who the harness's requests come from (the service is called directly, past the
    /// endpoint's authentication): the root key unless a test sets another.
    let caller = Locked(Caller(principal: rootPrincipal, address: "127.0.0.1:1"))

    init(
        config: NodeConfiguration = smallChunkConfiguration(), membersProvider: (@Sendable () -> [MemberInfo])? = nil,
        name: String = #function
    ) throws {
        dir = serverTempDirectory(name)
        var config = config
        config.dataDir = dir.path
        let (codec, _, _) = try config.validate()
        store = try NodeStore.open(directory: dir.path, logger: quietLogger)
        access = try AccessControl(store: store, clusterName: "test", secrets: [testClusterSecret])
        service = ObjectService(
            store: store, nodeID: "test-node", config: config, codec: codec, logger: quietLogger, access: access,
            membersProvider: membersProvider)
        self.config = config
    }

    func close() async {
        await store.close()
        dir.cleanup()
    }

    /// Sends `request` to the service and returns every frame of its answer. Like a
    /// connection, the request is first encoded to fields and decoded (which validates
    /// names and sorts metadata). A `body` is fed through a `BodyStream` in `pieceBytes`
    /// pieces by a concurrent producer.
    func exchange(_ original: Request, body: [UInt8]? = nil, pieceBytes: Int = 48 * 1024) async -> [Frame] {
        let id = nextID.withLock { n in
            defer { n += 1 }
            return n
        }
        let request: Request
        do {
            request = try Request.decode(
                opcode: original.opcode.rawValue, fields: original.fields(), limits: config.wireLimits)
        } catch {
            return [.error(id: id, opcode: original.opcode.rawValue, error, responseStarted: false)]
        }
        let sink = CollectingSink()
        guard let body else {
            await service.handle(id: id, request: request, caller: caller.value, body: nil, sink: sink)
            return sink.frames
        }
        let stream = BodyStream(capacityBytes: 256 * 1024)
        let service = self.service
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var offset = 0
                while offset < body.count {
                    let n = min(pieceBytes, body.count - offset)
                    await stream.send(ByteBuffer(bytes: body[offset..<offset + n]))
                    offset += n
                }
                stream.finish()
            }
            let caller = self.caller.value
            group.addTask { await service.handle(id: id, request: request, caller: caller, body: stream, sink: sink) }
        }
        return sink.frames
    }

    @discardableResult
    func createBucket(_ name: String) async throws -> Frame {
        let frames = await exchange(.createBucket(name: name, policy: nil))
        let frame = try #require(frames.first)
        #expect(frames.count == 1 && frame.header.status == 0, "CREATE_BUCKET \(name): \(frames.map(\.header))")
        return frame
    }

    func put(_ bucket: String, _ key: String, _ body: [UInt8], sha: ChunkID? = nil) async throws -> WriteResult {
        let frames = await exchange(
            .put(PutRequest(bucket: bucket, key: key, size: UInt64(body.count), contentSHA256: sha)), body: body)
        let answer = try #require(frames.first)
        if let error = answer.error { throw error }
        return try WriteResult(fields: answer.fields)
    }
}

/// A response's head frame and body, checked against the framing rules: END_STREAM on
/// the last frame only, DATA frames only after a RESPONSE without END_STREAM.
struct ReassembledResponse {
    let head: Frame
    let body: [UInt8]
    let dataFrames: Int

    init(_ frames: [Frame], sourceLocation: SourceLocation = #_sourceLocation) throws {
        head = try #require(frames.first, sourceLocation: sourceLocation)
        #expect(head.header.kind == .response, sourceLocation: sourceLocation)
        var body = Array(head.payload.readableBytesView)
        for (i, frame) in frames.enumerated() {
            let isLast = i == frames.count - 1
            #expect(
                frame.isEndStream == isLast, "frame \(i) of \(frames.count): END_STREAM \(frame.isEndStream)",
                sourceLocation: sourceLocation)
            if i > 0 {
                #expect(
                    frame.header.kind == .data, "frame \(i) is \(frame.header.kind)", sourceLocation: sourceLocation)
                #expect(frame.requestID == head.requestID, sourceLocation: sourceLocation)
                body += frame.payload.readableBytesView
            }
        }
        self.body = body
        dataFrames = frames.count - 1
    }
}
