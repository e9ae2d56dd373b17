import AgadirCluster
import AgadirTestSupport
import Testing

@Suite struct TokenBucketTests {
    @Test func aRateIsKept_overAnyPatternOfTakes_withinOneBurst() {
        var rng = SplitMix64(seed: 5)
        for rate: UInt64 in [1 << 20, 50_000_000, 200_000_000] {
            var bucket = TokenBucket(rate: rate, now: 0)
            var now: UInt64 = 0
            var sent: UInt64 = 0
            for _ in 0..<2000 {
                let bytes = rng.next() % (4 << 20) + 1
                let wait = bucket.take(bytes, now: now)
                now += wait  // the caller waits, then sends
                sent += bytes
                // Idle gaps now and then.
                if rng.next() % 10 == 0 { now += rng.next() % 200_000_000 }
                let allowed = Double(now) / 1e9 * Double(rate) + Double(bucket.burst)
                #expect(Double(sent) <= allowed + Double(rate) / 1e9 + 1, "rate \(rate): \(sent) bytes by \(now) ns")
            }
            // And it is not slower than the rate: the waits add up to the deficit only.
            #expect(Double(sent) >= Double(now) / 1e9 * Double(rate) * 0.5, "rate \(rate) throttled too hard")
        }
    }

    @Test func zeroIsUnlimited_andARateChangeTakesEffect() {
        var bucket = TokenBucket(rate: 0, now: 0)
        #expect(bucket.take(1 << 40, now: 0) == 0)
        bucket.setRate(1_000_000, now: 0)
        _ = bucket.take(bucket.burst, now: 0)  // empty it
        #expect(bucket.take(1_000_000, now: 0) == 1_000_000_000)  // one second at 1 MB/s
        bucket.setRate(0, now: 0)
        #expect(bucket.take(1 << 30, now: 1) == 0)
    }
}
