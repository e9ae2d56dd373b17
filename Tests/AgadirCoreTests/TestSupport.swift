import AgadirCore
@_exported import AgadirTestSupport
import Testing

/// Compressible, text-like bytes: words from a small vocabulary, chosen pseudo-randomly.
func textBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    let words = [
        "agadir", "granary", "cell", "family", "store", "wall", "rule", "village", "barley", "key", "door",
        "chunk", "replica", "site", "the", "of", "and", "a", "in", "is",
    ].map { Array(($0 + " ").utf8) }
    var rng = SplitMix64(seed: seed)
    var out: [UInt8] = []
    out.reserveCapacity(count + 16)
    while out.count < count {
        out.append(contentsOf: words[Int(rng.next() % UInt64(words.count))])
        if rng.next() % 12 == 0 { out.append(UInt8(ascii: "\n")) }
    }
    return Array(out.prefix(count))
}
