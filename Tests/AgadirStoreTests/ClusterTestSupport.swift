import AgadirCore
import Foundation
import Testing

@testable import AgadirStore

// Helpers of the tests of the store's cluster additions.

func reference(_ bucket: String, _ key: String, _ v: ObjectVersion) -> ChunkReference {
    ChunkReference(bucket: bucket, key: key, version: v)
}

/// Byte order of UTF-8 keys, the order of the store's key columns.
func bytesPrecede(_ a: String, _ b: String) -> Bool {
    Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
}

/// The `chunk_refs` rows of a closed store, sorted, as (chunk, bucket, key, version).
func chunkReferenceRows(_ dir: TempDirectory) throws -> [(chunk: ChunkID, reference: ChunkReference)] {
    let db = try SQLiteDatabase(path: dir.path + "/meta.sqlite", readOnly: true)
    defer { db.close() }
    var rows: [(chunk: ChunkID, reference: ChunkReference)] = []
    try db.forEachRow(
        "SELECT chunk, bucket, key, version_hlc, version_node FROM chunk_refs ORDER BY chunk, bucket, key, version_hlc"
    ) { row in
        if let id = ChunkID(bytes: row.blob(0)) {
            let v = ObjectVersion(
                timestamp: HLCTimestamp(rawValue: UInt64(bitPattern: row.int64(3))),
                node: UInt64(bitPattern: row.int64(4)))
            rows.append((id, reference(row.text(1), String(decoding: row.blob(2), as: UTF8.self), v)))
        }
        return true
    }
    return rows
}

/// Runs statements on the metadata database of a closed store (to damage or inspect it).
func withMetadata<T>(_ dir: TempDirectory, _ body: (SQLiteDatabase) throws -> T) throws -> T {
    let db = try SQLiteDatabase(path: dir.path + "/meta.sqlite", readOnly: false)
    defer { db.close() }
    return try body(db)
}

extension SplitMix64 {
    /// A value in `range`, uniform enough for tests.
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
}
