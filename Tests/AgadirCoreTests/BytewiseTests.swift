import AgadirCore
import Foundation
import Testing

/// Keys are bytes (docs/protocol.md, "Keys are bytes"): the two spellings of `café` (NFC
/// and NFD) and other canonically equivalent pairs are different keys everywhere.
@Suite("Bytewise keys")
struct BytewiseTests {
    static let pairs: [(String, String)] = [
        ("caf\u{e9}", "cafe\u{301}"),  // é precomposed / e + combining acute
        ("\u{212b}", "\u{c5}"),  // ANGSTROM SIGN / LATIN CAPITAL A WITH RING
        ("\u{1e69}", "s\u{323}\u{307}"),  // ṩ / s + dot below + dot above
        ("a\u{301}\u{323}", "a\u{323}\u{301}"),  // combining marks in two orders
        ("\u{ac00}", "\u{1100}\u{1161}"),  // Hangul syllable / conjoining jamo
    ]

    @Test func canonicallyEquivalentSpellings_areEqualStrings_butDifferentBytewiseKeys() {
        for (a, b) in Self.pairs {
            #expect(a == b, "premise: Swift's String equates \(Array(a.utf8)) and \(Array(b.utf8))")
            #expect(!a.bytewiseEqual(b))
            #expect(Bytewise(a) != Bytewise(b))
            #expect(Set([Bytewise(a), Bytewise(b)]).count == 2)
            var d: [Bytewise: Int] = [:]
            d[Bytewise(a)] = 1
            d[Bytewise(b)] = 2
            #expect(d.count == 2 && d[Bytewise(a)] == 1 && d[Bytewise(b)] == 2)
            #expect(Bytewise(a) < Bytewise(b) || Bytewise(b) < Bytewise(a))
        }
    }

    @Test func order_isUTF8ByteOrder_notSwiftsStringOrder() {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [String] = ["a", "b", "é", "e\u{301}", "\u{ff}", "\u{10000}", "~", "Z", "\u{7f}"]
        for _ in 0..<500 {
            let keys = (0..<8).map { _ in
                (0..<Int.random(in: 1...4, using: &rng)).map { _ in alphabet.randomElement(using: &rng) ?? "" }.joined()
            }
            let sorted = keys.map { Bytewise($0) }.sorted().map { Array($0.wrappedValue.utf8) }
            let expected = keys.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) }
            #expect(sorted == expected)
        }
    }

    @Test func equalBytes_hashEqually() {
        let a = "photos/2026/ⴰⴳⴰⴷⵉⵔ"
        let b = String(decoding: Array(a.utf8), as: UTF8.self)
        #expect(Bytewise(a) == Bytewise(b))
        #expect(Set([Bytewise(a), Bytewise(b)]).count == 1)
    }

    @Test func recordsHoldingKeys_compareTheirKeysAsBytes() {
        let (nfc, nfd) = Self.pairs[0]
        let v = ObjectVersion(timestamp: HLCTimestamp(physicalMillis: 1, logical: 0), node: 1)
        #expect(ChunkReference(bucket: "b", key: nfc, version: v) != ChunkReference(bucket: "b", key: nfd, version: v))
        #expect(
            Set([ChunkReference(bucket: "b", key: nfc, version: v), ChunkReference(bucket: "b", key: nfd, version: v)])
                .count == 2)
        let e = ChunkID.of([UInt8]())
        #expect(
            ReplicaListEntry(key: nfc, version: v, isTombstone: false, size: 0, etag: e, contentType: "")
                != ReplicaListEntry(key: nfd, version: v, isTombstone: false, size: 0, etag: e, contentType: ""))
        #expect(
            ObjectManifest.tombstone(bucket: "b", key: nfc, version: v)
                != ObjectManifest.tombstone(bucket: "b", key: nfd, version: v))
        #expect(MetadataEntry(name: nfc, value: "x") != MetadataEntry(name: nfd, value: "x"))
    }

    @Test func userMetadataNames_areSortedAndDeduplicatedAsBytes() throws {
        let (nfc, nfd) = Self.pairs[0]
        let normalized = try MetadataEntry.normalize([
            MetadataEntry(name: nfc, value: "1"), MetadataEntry(name: nfd, value: "2"),
            MetadataEntry(name: "Z", value: "3"),
        ])
        #expect(normalized.map { Array($0.name.utf8) } == [Array("Z".utf8), Array(nfd.utf8), Array(nfc.utf8)])
        #expect(throws: AgadirError.self) {
            try MetadataEntry.normalize([MetadataEntry(name: nfc, value: "1"), MetadataEntry(name: nfc, value: "2")])
        }
    }

    @Test func codable_isAPlainString() throws {
        struct Holder: Codable, Equatable { @Bytewise var key: String }
        let data = try JSONEncoder().encode(Holder(key: "cafe\u{301}"))
        #expect(String(decoding: data, as: UTF8.self) == #"{"key":"cafe\#u{301}"}"#)
        let back = try JSONDecoder().decode(Holder.self, from: data)
        #expect(back.key.bytewiseEqual("cafe\u{301}"))
        #expect(back != Holder(key: "caf\u{e9}"))
    }
}
