import AgadirCore
import AgadirStore
import AgadirTransport
import AgadirWire
import NIOCore

// MARK: - Write targets

/// Where the pieces of a PUT go: this node's store (a standalone node) or the replicas of
/// the cluster (the coordinator). `ObjectService.put` does the streaming, chunking,
/// hashing and length checks for both.
public protocol ObjectWriteTarget: Sendable {
    /// Stores one chunk (`raw` hashes to `id`); may return before it is durable as long as
    /// `commit` makes it so before acknowledging.
    func storeChunk(_ raw: [UInt8], id: ChunkID) async throws(AgadirError)
    /// Makes the object visible: durable when it returns, with the version it was written
    /// at (a cluster write may be stamped again above a newer version, `writeManifest`).
    func commit(_ manifest: ObjectManifest) async throws(AgadirError) -> ObjectVersion
}

/// A standalone node's target: its own store, with a deferred chunk ack (the manifest's
/// group commit syncs the chunks before it).
struct LocalWriteTarget: ObjectWriteTarget {
    let store: NodeStore
    let codec: Codec

    func storeChunk(_ raw: [UInt8], id: ChunkID) async throws(AgadirError) {
        if try await store.containsChunks([id]).first == true { return }
        var engine = ChunkCodec()
        try await store.putChunk(try engine.encode(raw, preferred: codec, id: id), durability: .deferred)
    }

    func commit(_ manifest: ObjectManifest) async throws(AgadirError) -> ObjectVersion {
        try await store.putManifest(manifest)
        return manifest.version
    }
}

// MARK: - PUT

extension ObjectService {
    /// Stores one object through `target` (`ObjectBackend.beginPut`): inline when small,
    /// else chunked with FastCDC; each chunk hashed, compressed and written with at most
    /// `putChunksInFlight` chunks in memory; the manifest is committed only after every
    /// chunk is durable, so a failed or interrupted PUT is never visible. `version` is the
    /// object's version (taken when the PUT starts, so the chunks' references can name it).
    public func put(
        _ p: PutRequest, body: BodyStream?, version: ObjectVersion, target: some ObjectWriteTarget
    ) async throws(AgadirError) -> WriteResult {
        guard p.size <= config.maxObjectBytes else {
            throw AgadirError(
                .objectTooLarge, "object of \(p.size) bytes exceeds this node's limit of \(config.maxObjectBytes)")
        }
        var hasher = ObjectHasher()
        var total: UInt64 = 0
        let objectBody: ObjectBody
        if p.size <= UInt64(config.inlineThresholdBytes) {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(p.size))
            if let body {
                while let buf = try await body.next() {
                    total += UInt64(buf.readableBytes)
                    guard total <= p.size else { throw lengthMismatch(p, atLeast: total) }
                    buf.withUnsafeReadableBytes { bytes.append(contentsOf: $0) }
                }
            }
            hasher.update(bytes)
            objectBody = .inline(bytes)
        } else {
            guard let body else { throw lengthMismatch(p, atLeast: 0) }
            objectBody = .chunks(
                try await storeChunks(of: p, body: body, hasher: &hasher, total: &total, target: target))
        }
        guard total == p.size else { throw lengthMismatch(p, atLeast: total) }
        let etag = hasher.finalize()
        if let expected = p.contentSHA256, expected != etag {
            throw AgadirError(
                .checksumMismatch,
                "body of '\(p.bucket)/\(p.key)' hashes to \(etag.hex), the client announced \(expected.hex)")
        }
        let manifest = ObjectManifest(
            bucket: p.bucket, key: p.key, size: p.size, etag: etag, contentType: p.contentType,
            userMetadata: p.metadata, version: version, isTombstone: false, body: objectBody)
        let written = try await target.commit(manifest)
        logger.debug(
            "object stored", metadata: ["object": "\(p.bucket)/\(p.key)", "size": "\(p.size)", "version": "\(written)"])
        return WriteResult(etag: etag, version: written, size: p.size)
    }

    private func lengthMismatch(_ p: PutRequest, atLeast n: UInt64) -> AgadirError {
        AgadirError(
            .bodyLengthMismatch,
            "PUT of '\(p.bucket)/\(p.key)' announced \(p.size) bytes but the body had \(n < p.size ? "\(n)" : "more")")
    }

    private func storeChunks(
        of p: PutRequest, body: BodyStream, hasher: inout ObjectHasher, total: inout UInt64,
        target: some ObjectWriteTarget
    ) async throws(AgadirError) -> [ChunkRef] {
        var chunker = StreamingChunker(settings: config.chunker)
        var refs: [ChunkRef] = []
        let limit = config.putChunksInFlight
        do {
            try await withThrowingTaskGroup(of: (Int, ChunkRef).self) { group in
                var inFlight = 0
                var next = 0
                func submit(_ chunk: [UInt8]) async throws {
                    if inFlight == limit, let (i, ref) = try await group.next() {
                        refs[i] = ref
                        inFlight -= 1
                    }
                    let index = next
                    next += 1
                    refs.append(ChunkRef(id: ChunkID(w0: 0, w1: 0, w2: 0, w3: 0), length: 0))
                    inFlight += 1
                    group.addTask {
                        let id = ChunkID.of(chunk)
                        try await target.storeChunk(chunk, id: id)
                        return (index, ChunkRef(id: id, length: UInt32(chunk.count)))
                    }
                }
                while let buf = try await body.next() {
                    total += UInt64(buf.readableBytes)
                    guard total <= p.size else { throw lengthMismatch(p, atLeast: total) }
                    let chunks = buf.withUnsafeReadableBytes { raw in
                        hasher.update(raw)
                        return chunker.append(raw)
                    }
                    for c in chunks { try await submit(c) }
                }
                for c in chunker.finish() { try await submit(c) }
                while let (i, ref) = try await group.next() { refs[i] = ref }
            }
        } catch let e as AgadirError {
            throw e
        } catch {
            throw AgadirError(.internalError, "PUT of '\(p.bucket)/\(p.key)' failed: \(error)")
        }
        return refs
    }
}

// MARK: - GET

extension ObjectService {
    /// Streams an object (or a range of it): the RESPONSE frame with the object's fields,
    /// then DATA frames, reading up to `getChunksReadAhead` chunks ahead; `read` returns
    /// each chunk verified (this node's store, or the cluster's replicas) before a byte of it
    /// is sent.
    public func get(
        manifest m: ObjectManifest, range: ByteRange?, id: UInt64, sink: any ResponseSink, started: inout Bool,
        read: @escaping @Sendable (ChunkID) async throws(AgadirError) -> [UInt8]
    ) async throws {
        let (offset, length) = try (range ?? ByteRange(offset: 0, length: nil)).resolve(size: m.size)
        var info = ObjectInfo(manifest: m)
        if range != nil { info.range = ByteRange(offset: offset, length: length) }
        let opcode = Opcode.get.rawValue
        switch m.body {
        case .inline(let bytes):
            guard UInt64(bytes.count) == m.size else {
                throw AgadirError(
                    .corruptData,
                    "manifest of '\(m.bucket)/\(m.key)' holds \(bytes.count) inline bytes but says \(m.size)")
            }
            let lo = Int(offset)
            let slice = bytes[lo..<lo + Int(length)]
            try await sink.send(
                .response(id: id, opcode: opcode, fields: info.fields(), payload: ByteBuffer(bytes: slice), end: true))
        case .chunks(let refs):
            try await sink.send(.response(id: id, opcode: opcode, fields: info.fields(), end: length == 0))
            started = true
            if length == 0 { return }
            try await streamChunks(refs, offset: offset, length: length, id: id, sink: sink, read: read)
        }
    }

    private func streamChunks(
        _ refs: [ChunkRef], offset: UInt64, length: UInt64, id: UInt64, sink: any ResponseSink,
        read: @escaping @Sendable (ChunkID) async throws(AgadirError) -> [UInt8]
    ) async throws {
        // The chunks overlapping [offset, offset + length), with the slice of each to send.
        var wanted: [(ref: ChunkRef, lo: Int, hi: Int)] = []
        var start: UInt64 = 0
        let end = offset + length
        for ref in refs {
            let chunkEnd = start + UInt64(ref.length)
            if chunkEnd > offset, start < end {
                let lo = Int(max(offset, start) - start)
                let hi = Int(min(end, chunkEnd) - start)
                wanted.append((ref, lo, hi))
            }
            if chunkEnd >= end { break }
            start = chunkEnd
        }
        var remaining = length
        let window = config.getChunksReadAhead + 1
        let frameBytes = config.dataFrameBytes
        // Each chunk's bytes are taken from the response budget before it is read and given
        // back once sent: the chunk being sent waits for its share (this GET then holds
        // nothing else, so waiting cannot deadlock), read-ahead happens only when the budget
        // has room at once (docs/architecture.md, "Memory held by answers").
        let budget = sink.responseBudget
        var held: [Int: Int] = [:]  // chunk index → bytes taken from the budget
        defer { for bytes in held.values { budget?.release(bytes) } }
        try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
            var ready: [Int: [UInt8]] = [:]
            var launched = 0
            for i in 0..<wanted.count {
                while launched < wanted.count, launched < i + window {
                    let index = launched
                    let chunkID = wanted[index].ref.id
                    let bytes = Int(wanted[index].ref.length)
                    if let budget {
                        if index == i {
                            try await budget.acquire(bytes)
                        } else if !budget.tryAcquire(bytes) {
                            break
                        }
                        held[index] = bytes
                    }
                    group.addTask { (index, try await read(chunkID)) }
                    launched += 1
                }
                while ready[i] == nil, let (j, bytes) = try await group.next() { ready[j] = bytes }
                guard let bytes = ready.removeValue(forKey: i) else {
                    throw AgadirError(.internalError, "chunk \(wanted[i].ref.id.hex) was not read")
                }
                let w = wanted[i]
                guard bytes.count == Int(w.ref.length) else {
                    throw AgadirError(
                        .corruptChunk,
                        "chunk \(w.ref.id.hex) has \(bytes.count) bytes, the manifest says \(w.ref.length)")
                }
                var pos = w.lo
                while pos < w.hi {
                    let n = min(frameBytes, w.hi - pos)
                    remaining -= UInt64(n)
                    try await sink.send(
                        .data(id: id, payload: ByteBuffer(bytes: bytes[pos..<pos + n]), end: remaining == 0))
                    pos += n
                }
                if let budget, let bytes = held.removeValue(forKey: i) { budget.release(bytes) }
            }
            guard remaining == 0 else {
                throw AgadirError(
                    .corruptData, "the manifest's chunks cover \(length - remaining) of the \(length) bytes asked")
            }
        }
    }
}
