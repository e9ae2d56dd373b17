import AgadirCore

/// Builds one LIST page from keys fed in UTF-8 byte order, with the semantics of a
/// single node's listing (docs/protocol.md, LIST): PREFIX, DELIMITER roll-ups counted once,
/// START_AFTER (a common prefix given as START_AFTER skips every key under it), and a page
/// that is truncated only when something follows its LIMIT-th item. Pure.
public struct ListPager: Sendable {
    let prefix: [UInt8]
    let delimiter: [UInt8]?
    let limit: Int
    /// Keys under this common prefix are skipped (already rolled up, or START_AFTER).
    private var skipUnder: [UInt8]?
    public private(set) var entries: [ListEntry] = []
    public private(set) var prefixes: [String] = []
    private var last: [UInt8] = []
    /// Decided: an item exists after the LIMIT-th.
    public private(set) var truncated = false

    public init(prefix: String, delimiter: String?, startAfter: String?, limit: Int) {
        self.prefix = Array(prefix.utf8)
        self.delimiter = delimiter.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        self.limit = max(1, limit)
        if let startAfter, let d = self.delimiter {
            let s = Array(startAfter.utf8)
            if s.starts(with: self.prefix), let end = Self.firstEnd(of: d, in: s, from: self.prefix.count),
                end == s.count
            {
                skipUnder = s
            }
        }
    }

    /// Feeds the next live key (greater than every key fed before). Returns true once the
    /// page is decided (full, and another item follows).
    public mutating func feed(_ e: ReplicaListEntry) -> Bool {
        if truncated { return true }
        let key = Array(e.key.utf8)
        guard key.starts(with: prefix) else { return false }
        if let s = skipUnder, key.starts(with: s) { return false }
        var common: [UInt8]? = nil
        if let d = delimiter, let end = Self.firstEnd(of: d, in: key, from: prefix.count) {
            common = Array(key[..<end])
        }
        if entries.count + prefixes.count == limit {
            truncated = true
            return true
        }
        if let common {
            prefixes.append(String(decoding: common, as: UTF8.self))
            last = common
            skipUnder = common
        } else {
            entries.append(
                ListEntry(key: e.key, size: e.size, etag: e.etag, version: e.version, contentType: e.contentType))
            last = key
        }
        return false
    }

    public var page: ListPage {
        ListPage(
            entries: entries, commonPrefixes: prefixes, isTruncated: truncated,
            nextStartAfter: truncated ? String(decoding: last, as: UTF8.self) : nil)
    }

    /// The index just past the first occurrence of `needle` in `haystack` at or after `from`.
    static func firstEnd(of needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, from >= 0, haystack.count - from >= needle.count else { return nil }
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
