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

@Test func chunkRange_isExactlyThePrefixesOfItsPartition_atEveryBoundary() {
    for count in [1, 3, 8, 256, 1000] {
        var expectedLo: UInt64 = 0
        for partition in 0..<count {
            let (lo, hi) = Partitioner.chunkRange(partition: partition, count: count)
            #expect(lo == expectedLo, "ranges are contiguous: count \(count), partition \(partition)")
            #expect(Partitioner.partition(prefix: lo, count: count) == partition)
            if lo > 0 { #expect(Partitioner.partition(prefix: lo - 1, count: count) == partition - 1) }
            if let hi {
                #expect(hi > lo)
                #expect(Partitioner.partition(prefix: hi - 1, count: count) == partition)
                #expect(Partitioner.partition(prefix: hi, count: count) == partition + 1)
                expectedLo = hi
            } else {
                #expect(partition == count - 1, "only the last partition runs to the end of the id space")
                #expect(Partitioner.partition(prefix: .max, count: count) == partition)
            }
        }
    }
    // Powers of two: the ranges are the top bits.
    #expect(Partitioner.chunkRange(partition: 0xAB, count: 256) == (0xAB00_0000_0000_0000, 0xAC00_0000_0000_0000))
    #expect(Partitioner.chunkRange(partition: 0, count: 1) == (0, nil))
    // 2^64 / 3 = 6148914691236517205.33...: the ceiling.
    #expect(Partitioner.chunkRange(partition: 1, count: 3) == (6_148_914_691_236_517_206, 12_297_829_382_473_034_411))
}

@Test func chunkRange_containsAPrefixExactlyWhenPartitionSaysSo_forRandomPrefixesAndCounts() {
    var rng = SplitMix64(seed: 34)
    for _ in 0..<2000 {
        let count = 1 + Int(rng.next() % 5000)
        let w0 = rng.next()
        let partition = Partitioner.partition(prefix: w0, count: count)
        let (lo, hi) = Partitioner.chunkRange(partition: partition, count: count)
        #expect(w0 >= lo && (hi.map { w0 < $0 } ?? true), "w0 \(w0), count \(count)")
        // Its neighbours do not contain it.
        if partition > 0, let neighbourHi = Partitioner.chunkRange(partition: partition - 1, count: count).hi {
            #expect(w0 >= neighbourHi)
        }
        if partition + 1 < count { #expect(w0 < Partitioner.chunkRange(partition: partition + 1, count: count).lo) }
    }
}

@Test func chunkRange_outsideThePartitions_isEmpty_andCountsBelowOneAreOnePartition() {
    for (lo, hi) in [
        Partitioner.chunkRange(partition: -1, count: 8), Partitioner.chunkRange(partition: 8, count: 8),
        Partitioner.chunkRange(partition: 1, count: 0),
    ] {
        #expect(hi == lo, "an empty range")
    }
    for count in [-3, 0] { #expect(Partitioner.chunkRange(partition: 0, count: count) == (0, nil)) }
}
