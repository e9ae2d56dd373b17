import AgadirCore
import AgadirPlacement
import Testing

@Test func chunkPartition_isTheTopBitsOfTheFirstWord() {
    let id = ChunkID(w0: 0xABCD_0000_0000_0001, w1: 1, w2: 2, w3: 3)
    #expect(Partitioner.partition(of: id, count: 256) == 0xAB)
    #expect(Partitioner.partition(of: id, count: 65536) == 0xABCD)
    #expect(Partitioner.partition(of: id, count: 8) == 0xAB >> 5)
    #expect(Partitioner.partition(of: ChunkID(w0: 0, w1: 0, w2: 0, w3: 0), count: 256) == 0)
    #expect(Partitioner.partition(of: ChunkID(w0: .max, w1: 0, w2: 0, w3: 0), count: 256) == 255)
    var rng = SplitMix64(seed: 31)
    for _ in 0..<1000 {
        let w0 = rng.next()
        for bits in 3...16 {
            let expected = Int(w0 >> UInt64(64 - bits))
            #expect(Partitioner.partition(of: ChunkID(w0: w0, w1: 0, w2: 0, w3: 0), count: 1 << bits) == expected)
        }
    }
}

@Test func partition_staysInRange_forAnyCount_andIsZeroForCountsBelowTwo() {
    var rng = SplitMix64(seed: 32)
    for count in [-5, 0, 1] { #expect(Partitioner.partition(prefix: rng.next(), count: count) == 0) }
    for count in [3, 7, 100, 1000] {
        for _ in 0..<100 { #expect((0..<count).contains(Partitioner.partition(prefix: rng.next(), count: count))) }
        #expect(Partitioner.partition(prefix: .max, count: count) == count - 1)
    }
}

@Test func manifestPartition_hashesBucketZeroKey_andPinnedValuesNeverChange() {
    // Pinned once: changing the function would strand every stored manifest.
    #expect(Partitioner.partition(bucket: "photos", key: "2026/holiday.jpg", count: 256) == 104)
    #expect(Partitioner.partition(bucket: "ledger", key: "a", count: 65536) == 35967)
    #expect(Partitioner.partition(bucket: "b-1", key: "ⴰⴳⴰⴷⵉⵔ/κλειδί", count: 1024) == 374)
    // The same as hashing the bytes by hand.
    let bytes = Array("photos".utf8) + [0] + Array("2026/holiday.jpg".utf8)
    #expect(
        Partitioner.partition(bucket: "photos", key: "2026/holiday.jpg", count: 256)
            == Partitioner.partition(of: ChunkID.of(bytes), count: 256))
    // The separator keeps ("ab", "c") and ("a", "bc") apart.
    let split = (0..<64).map { Partitioner.partition(bucket: "ab\($0)", key: "c", count: 65536) }
    let moved = (0..<64).map { Partitioner.partition(bucket: "a", key: "b\($0)c", count: 65536) }
    #expect(split != moved)
}

@Test func partitions_areUniform_over256kRandomChunkIDs() {
    var rng = SplitMix64(seed: 33)
    var chunkBins = [Int](repeating: 0, count: 256)
    let n = 256 * 1024
    for _ in 0..<n {
        chunkBins[Partitioner.partition(of: ChunkID(w0: rng.next(), w1: 0, w2: 0, w3: 0), count: 256)] += 1
    }
    let mean = Double(n) / 256
    #expect(chunkBins.allSatisfy { Double($0) >= 0.5 * mean && Double($0) <= 1.5 * mean })
    // Binomial: sigma = 32 around 1024; 0.8x-1.2x is over 6 sigma.
    #expect(chunkBins.allSatisfy { Double($0) >= 0.8 * mean && Double($0) <= 1.2 * mean }, "\(chunkBins.min() ?? 0)")
}

@Test func manifestPartitions_areUniform_overRandomKeys() {
    var rng = SplitMix64(seed: 34)
    var bins = [Int](repeating: 0, count: 256)
    let n = 64 * 1024
    for i in 0..<n {
        bins[Partitioner.partition(bucket: "bucket\(i % 7)", key: "key-\(rng.next())", count: 256)] += 1
    }
    let mean = Double(n) / 256
    #expect(bins.allSatisfy { Double($0) >= 0.5 * mean && Double($0) <= 1.5 * mean })
}

@Test func manifestPartitions_areRangesOfTheStoresKeyHash() {
    var rng = SplitMix64(seed: 17)
    for _ in 0..<2000 {
        let bucket = "bucket-\(rng.next() % 50)"
        let key = "k/\(rng.next())"
        let hash = KeyHash.of(bucket: bucket, key: key)
        for bits in [3, 6, 8, 12, 16] {
            let count = 1 << bits
            let p = Partitioner.partition(bucket: bucket, key: key, count: count)
            #expect(p == Int(hash >> UInt32(32 - bits)))
            let (lo, hi) = KeyHash.range(partition: p, count: count)
            #expect(UInt64(hash) >= UInt64(lo) && UInt64(hash) < hi)
        }
    }
}
