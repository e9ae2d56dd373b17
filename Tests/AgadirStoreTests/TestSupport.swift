import AgadirCore
@_exported import AgadirTestSupport
import Foundation
import Logging
import Testing

@testable import AgadirStore

/// A fresh directory for one store test.
func storeTempDirectory(_ name: String = #function) -> TempDirectory { TempDirectory(prefix: "store", name) }

let quietLogger: Logger = {
    var logger = Logger(label: "agadir.store.tests")
    logger.logLevel = .critical
    return logger
}()

func openStore(_ dir: TempDirectory, options: StoreOptions = StoreOptions()) throws -> NodeStore {
    try NodeStore.open(directory: dir.path, options: options, logger: quietLogger)
}

/// Text-like bytes that compress well.
func compressibleBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    let words = ["agadir ", "granary ", "benguerir ", "casablanca ", "settat ", "chunk ", "store "]
    var out: [UInt8] = []
    out.reserveCapacity(count + 16)
    while out.count < count { out.append(contentsOf: words[Int(rng.next() % UInt64(words.count))].utf8) }
    return Array(out.prefix(count))
}

func encode(_ raw: [UInt8], _ codec: Codec) throws -> EncodedChunk {
    var c = ChunkCodec()
    return try c.encode(raw, preferred: codec)
}

func version(_ t: UInt64, node: UInt64 = 1) -> ObjectVersion {
    ObjectVersion(timestamp: HLCTimestamp(physicalMillis: t, logical: 0), node: node)
}

func inlineManifest(bucket: String, key: String, body: [UInt8], at v: ObjectVersion) -> ObjectManifest {
    ObjectManifest(
        bucket: bucket, key: key, size: UInt64(body.count), etag: ChunkID.of(body), contentType: "text/plain",
        userMetadata: [], version: v, isTombstone: false, body: .inline(body))
}

func chunkManifest(bucket: String, key: String, chunks: [EncodedChunk], at v: ObjectVersion) -> ObjectManifest {
    let size = chunks.reduce(UInt64(0)) { $0 + UInt64($1.rawLength) }
    return ObjectManifest(
        bucket: bucket, key: key, size: size, etag: ChunkID.of(Array("etag-\(key)".utf8)),
        contentType: "application/octet-stream", userMetadata: [], version: v, isTombstone: false,
        body: .chunks(chunks.map { ChunkRef(id: $0.id, length: $0.rawLength) }))
}

func bucketInfo(_ name: String) -> BucketInfo {
    BucketInfo(name: name, policy: "default", createdMillis: 1_700_000_000_000)
}

/// Flips one byte of a file in place.
func flipByte(path: String, at offset: Int) throws {
    let handle = try #require(FileHandle(forUpdatingAtPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: UInt64(offset))
    let old = try #require(try handle.read(upToCount: 1)?.first)
    try handle.seek(toOffset: UInt64(offset))
    try handle.write(contentsOf: [old ^ 0x5A])
}

func segmentPath(_ dir: TempDirectory, _ number: UInt64) -> String {
    dir.path + "/chunks/" + SegmentFormat.fileName(number)
}
