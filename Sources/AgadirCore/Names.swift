/// Rules for bucket names and object keys, checked by the server on every request and
/// by the client before sending.
public enum Names {
    /// Longest object key, in UTF-8 bytes.
    public static let maxKeyBytes = 1024

    /// Bucket names: 3 to 63 characters of `a-z`, `0-9`, `-` and `.`, starting and ending
    /// with a letter or digit, no `..`, and not shaped like an IPv4 address (as S3).
    public static func validateBucket(_ name: String) throws(AgadirError) {
        let u = Array(name.utf8)
        func fail(_ why: String) -> AgadirError {
            AgadirError(
                .invalidBucketName,
                "bucket name '\(name.prefix(80))' \(why); use 3-63 characters of a-z, 0-9, '-' and '.'")
        }
        guard (3...63).contains(u.count) else { throw fail("has \(u.count) characters") }
        for c in u {
            let ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2e
            guard ok else { throw fail("contains a character that is not allowed") }
        }
        let alnum: (UInt8) -> Bool = { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) }
        guard let first = u.first, let last = u.last, alnum(first), alnum(last) else {
            throw fail("must start and end with a letter or digit")
        }
        // Bytes, not String searches: every request checks its bucket name, often twice.
        var dots = 0
        var onlyDigitsAndDots = true
        for i in u.indices {
            if u[i] == 0x2e {
                dots += 1
                if i > 0, u[i - 1] == 0x2e { throw fail("contains '..'") }
            } else if !(u[i] >= 0x30 && u[i] <= 0x39) {
                onlyDigitsAndDots = false
            }
        }
        // Four dot-separated groups of digits (no group is empty: no '..', no dot at an end).
        if dots == 3, onlyDigitsAndDots { throw fail("looks like an IP address") }
    }

    /// Object keys: 1 to 1024 bytes of valid UTF-8 with no control characters (U+0000 to
    /// U+001F and U+007F), so keys print safely and sort by bytes.
    public static func validateKey(_ key: String) throws(AgadirError) {
        let n = key.utf8.count
        guard n >= 1, n <= maxKeyBytes else {
            throw AgadirError(.invalidKey, "object key has \(n) bytes; keys take 1 to \(maxKeyBytes) bytes of UTF-8")
        }
        for c in key.utf8 where c < 0x20 || c == 0x7f {
            throw AgadirError(.invalidKey, "object key contains the control byte 0x\(String(c, radix: 16)); remove it")
        }
    }
}

extension Dictionary where Key == String, Value == String {
    /// Labels as they are shown everywhere: `k=v` pairs sorted by key, comma-separated.
    public var labelText: String {
        sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}
