import AgadirCore

/// Maps chunks and manifests to partitions. Pure functions of their input: every node computes
/// the same partition for the same id, key and partition count.
public enum Partitioner {
    /// Partition of a chunk: the top log2(count) bits of the chunk id's first 8 bytes
    /// (big-endian, i.e. `id.w0`).
    ///
    /// Computed as `floor(w0 * count / 2^64)`, which equals the top bits for a power of two and
    /// stays in `0..<count` for any other positive count; 0 for a count below 1.
    public static func partition(of chunk: ChunkID, count: Int) -> Int {
        partition(prefix: chunk.w0, count: count)
    }

    /// Partition of a manifest: top bits of SHA-256(UTF-8 bucket, 0x00, UTF-8 key) (first 8 bytes
    /// big-endian). The 0x00 separator cannot occur in a bucket name, so ("a", "bc") and
    /// ("ab", "c") hash differently.
    public static func partition(bucket: String, key: String, count: Int) -> Int {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(bucket.utf8.count + 1 + key.utf8.count)
        bytes.append(contentsOf: bucket.utf8)
        bytes.append(0)
        bytes.append(contentsOf: key.utf8)
        return partition(prefix: ChunkID.of(bytes).w0, count: count)
    }

    /// `floor(prefix * count / 2^64)`.
    public static func partition(prefix: UInt64, count: Int) -> Int {
        guard count > 1 else { return 0 }
        return Int(prefix.multipliedFullWidth(by: UInt64(count)).high)
    }

    /// The chunk ids of partition `partition` of `count`: those whose w0 is in lo ..< hi (hi nil for the last
    /// partition). Exactly the w0 values with `partition(prefix: w0, count:) == partition`, for any count >= 1
    /// (a count below 1 is one partition, as in `partition(prefix:count:)`). A partition outside `0..<count`
    /// holds no id: its range is empty (`lo == hi`).
    ///
    /// `floor(w0 * count / 2^64) == p` exactly when `p * 2^64 <= w0 * count < (p + 1) * 2^64`, so
    /// `lo = ceil(p * 2^64 / count)`, computed with full-width arithmetic, and `hi` is the `lo` of `p + 1`.
    public static func chunkRange(partition: Int, count: Int) -> (lo: UInt64, hi: UInt64?) {
        let count = max(count, 1)
        guard partition >= 0 else { return (0, 0) }
        guard partition < count else { return (.max, .max) }
        let lo = lowestPrefix(of: partition, count: count)
        return (lo, partition + 1 == count ? nil : lowestPrefix(of: partition + 1, count: count))
    }

    /// `ceil(p * 2^64 / count)` for `0 <= p < count`: the smallest w0 of partition p. Below 2^64, since
    /// `p / count <= 1 - 1/count` and `1/count > 2^-64`.
    private static func lowestPrefix(of p: Int, count: Int) -> UInt64 {
        let (quotient, remainder) = UInt64(count).dividingFullWidth((high: UInt64(p), low: 0))
        return remainder == 0 ? quotient : quotient + 1
    }
}
