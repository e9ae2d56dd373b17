/// A string compared, hashed and ordered by its UTF-8 bytes.
///
/// Object keys are byte strings (docs/protocol.md, "Keys are bytes"): `café` written with
/// the key in NFC (`63 61 66 c3 a9`) and in NFD (`63 61 66 65 cc 81`) are two objects, as
/// they are to SQLite, to the partitioner and to every client. Swift's `String` compares,
/// hashes and orders by Unicode canonical equivalence instead, so the two are *equal* as
/// `String`s: a dictionary keyed by `String` merges them, and code that trusted it lost
/// acknowledged objects (issue 13). Every collection or comparison of object keys goes
/// through this type (or `bytewiseEqual`), never through `String`'s own `==`, `<` or hash.
///
/// As a property wrapper (`@Bytewise public var key: String`) it makes the synthesized
/// `Equatable` and `Hashable` of the enclosing type byte-exact; `Codable` stays a plain
/// string.
@propertyWrapper
public struct Bytewise: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var wrappedValue: String

    public init(wrappedValue: String) { self.wrappedValue = wrappedValue }
    public init(_ value: String) { self.wrappedValue = value }

    public static func == (a: Bytewise, b: Bytewise) -> Bool { a.wrappedValue.bytewiseEqual(b.wrappedValue) }

    public static func < (a: Bytewise, b: Bytewise) -> Bool {
        a.wrappedValue.utf8.lexicographicallyPrecedes(b.wrappedValue.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        var copy = wrappedValue
        copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        hasher.combine(copy.utf8.count)
    }

    public init(from decoder: any Decoder) throws {
        wrappedValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(wrappedValue)
    }

    public var description: String { wrappedValue }
}

extension String {
    /// Equal as UTF-8 bytes (not by Unicode canonical equivalence, as `==` is).
    @inlinable
    public func bytewiseEqual(_ other: String) -> Bool {
        utf8.count == other.utf8.count && utf8.elementsEqual(other.utf8)
    }

    /// Before `other` in UTF-8 byte order: the order of listings and of the store's index.
    @inlinable
    public func bytewisePrecedes(_ other: String) -> Bool {
        utf8.lexicographicallyPrecedes(other.utf8)
    }
}
