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
}
