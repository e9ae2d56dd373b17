import AgadirCore

/// One page of a bucket listing, S3 ListObjectsV2 style, computed with range queries on the
/// `(bucket, key)` primary key: a page costs at most one query per common prefix it returns
/// plus one, each bounded by `LIMIT`, whatever the size of the bucket.
///
/// Keys are compared as UTF-8 bytes (SQLite compares BLOBs with memcmp). A rolled-up common
/// prefix is skipped with a range query starting at its byte-successor, so the keys under it
/// are never read.
enum ObjectListing {
    static let maxLimit = 1000

    static func page(
        _ db: SQLiteDatabase, bucket: String, prefix: String, delimiter: String?, startAfter: String?, limit: Int
    ) throws(AgadirError) -> ListPage {
        let limit = min(limit, maxLimit)
        let p = Array(prefix.utf8)
        let d: [UInt8]? = delimiter.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        let upper = successor(p)

        var lower = p
        var inclusive = true
        if let startAfter {
            let s = Array(startAfter.utf8)
            if !s.lexicographicallyPrecedes(p) {
                lower = s
                inclusive = false
                // When start-after is itself a common prefix, nothing under it may come back.
                if let d, s.starts(with: p), let end = firstEnd(of: d, in: s, from: p.count), end == s.count {
                    guard let next = successor(s) else {
                        return ListPage(entries: [], commonPrefixes: [], isTruncated: false, nextStartAfter: nil)
                    }
                    lower = next
                    inclusive = true
                }
            }
        }

        var entries: [ListEntry] = []
        var prefixes: [String] = []
        var last: [UInt8] = []
        var truncated = false
        var exhausted = false
        // Each pass either ends the page or emits one common prefix, so limit + 1 passes suffice.
        for _ in 0...limit {
            var restart = false
            let want = limit - entries.count - prefixes.count + 1
            // The partial index holds live rows only: tombstones are never read (the planner
            // would pick the primary key, having no statistics on how many rows are tombstones).
            var sql = "SELECT key, size, version_hlc, version_node, etag, content_type "
            sql += "FROM objects INDEXED BY objects_live "
            sql += inclusive ? "WHERE bucket = ? AND key >= ? " : "WHERE bucket = ? AND key > ? "
            var values: [SQLiteValue] = [.text(bucket), .blob(lower)]
            if let upper {
                sql += "AND key < ? "
                values.append(.blob(upper))
            }
            sql += "AND tombstone = 0 ORDER BY key LIMIT ?"
            values.append(.int(Int64(want)))
            try db.forEachRow(sql, values) { row throws(AgadirError) -> Bool in
                let key = row.blob(0)
                if entries.count + prefixes.count == limit {
                    truncated = true
                    return false
                }
                if let d, let end = firstEnd(of: d, in: key, from: p.count) {
                    let common = Array(key[..<end])
                    prefixes.append(String(decoding: common, as: UTF8.self))
                    last = common
                    if let next = successor(common) {
                        lower = next
                        inclusive = true
                        restart = true
                    } else {
                        exhausted = true
                    }
                    return false
                }
                guard let etag = ChunkID(bytes: row.blob(4)) else {
                    throw AgadirError(.corruptData, "listing of '\(bucket)': object row has a malformed etag")
                }
                entries.append(
                    ListEntry(
                        key: String(decoding: key, as: UTF8.self), size: UInt64(bitPattern: row.int64(1)),
                        etag: etag,
                        version: ObjectVersion(
                            timestamp: HLCTimestamp(rawValue: UInt64(bitPattern: row.int64(2))),
                            node: UInt64(bitPattern: row.int64(3))),
                        contentType: row.text(5)))
                last = key
                lower = key
                inclusive = false
                return true
            }
            if truncated || exhausted || !restart { break }
        }
        return ListPage(
            entries: entries, commonPrefixes: prefixes, isTruncated: truncated,
            nextStartAfter: truncated ? String(decoding: last, as: UTF8.self) : nil)
    }

    /// The smallest byte string greater than every string that starts with `bytes`; nil when
    /// there is none (empty, or all 0xFF).
    static func successor(_ bytes: [UInt8]) -> [UInt8]? {
        var out = bytes
        while let lastByte = out.last {
            if lastByte < 0xFF {
                out[out.count - 1] = lastByte + 1
                return out
            }
            out.removeLast()
        }
        return nil
    }

    /// The index just past the first occurrence of `needle` in `haystack` at or after `from`.
    static func firstEnd(of needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, haystack.count - from >= needle.count, from >= 0 else { return nil }
        var i = from
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0], haystack[i..<(i + needle.count)].elementsEqual(needle) {
                return i + needle.count
            }
            i += 1
        }
        return nil
    }
}
