import AgadirCore
import AgadirWire
import CLZ4
import Crypto
import Foundation

/// Measures the limits of this machine that Agadir's figures are compared against:
/// loopback TCP, sequential write with fsync, small synchronous writes, SHA-256 and LZ4
/// on one core. Each runs for a fixed amount of work, single-threaded.
enum MachineLimits {
    struct Figures {
        var loopbackMiBps = 0.0
        var seqWriteFsyncMiBps = 0.0
        var syncWrites4KiBPerSec = 0.0
        var sha256MiBps = 0.0
        var lz4CompressTextMiBps = 0.0
        var lz4CompressRandomMiBps = 0.0
        var lz4DecompressTextMiBps = 0.0
        /// Signatures of a GET request (canonical request + HMAC-SHA256) per second, one core.
        var requestSignaturesPerSec = 0.0
        /// AES-256-GCM sealing of 16 KiB records (TLS 1.3 record size; TLS here negotiates AES-128-GCM), one core.
        var aesGCMMiBps = 0.0
    }

    static func measure(scratchDir: String, quick: Bool, log: (String) -> Void) -> Figures {
        var f = Figures()
        let random = BenchData.random(64 << 20, seed: 1)
        let text = BenchData.text(64 << 20, seed: 2)
        log("measuring SHA-256")
        f.sha256MiBps = timeMiBps(bytes: random.count * (quick ? 2 : 8)) {
            for _ in 0..<(quick ? 2 : 8) { _ = random.withUnsafeBytes { SHA256.hash(data: $0) } }
        }
        log("measuring AES-256-GCM")
        let key = SymmetricKey(size: .bits256)
        let records = quick ? 1024 : 8192
        f.aesGCMMiBps = timeMiBps(bytes: records * 16384) {
            for i in 0..<records {
                let offset = (i * 16384) % (random.count - 16384)
                _ = try? AES.GCM.seal(random[offset..<offset + 16384], using: key)
            }
        }
        log("measuring LZ4")
        var engine = LZ4Bench()
        f.lz4CompressTextMiBps = timeMiBps(bytes: text.count * 2) { for _ in 0..<2 { engine.compress(text) } }
        f.lz4CompressRandomMiBps = timeMiBps(bytes: random.count * 4) { for _ in 0..<4 { engine.compress(random) } }
        let compressed = engine.compressedCopy(text)
        f.lz4DecompressTextMiBps = timeMiBps(bytes: text.count * 4) {
            for _ in 0..<4 { engine.decompress(compressed, rawLength: text.count) }
        }
        log("measuring request signing")
        f.requestSignaturesPerSec = signatures(count: quick ? 20_000 : 200_000)
        log("measuring loopback TCP")
        f.loopbackMiBps = loopback(bytes: quick ? 1 << 30 : 4 << 30)
        log("measuring sequential write + fsync")
        f.seqWriteFsyncMiBps = sequentialWrite(dir: scratchDir, bytes: quick ? 256 << 20 : 1 << 30, block: random)
        log("measuring 4 KiB write + fdatasync")
        f.syncWrites4KiBPerSec = syncWrites(dir: scratchDir, count: quick ? 100 : 400)
        return f
    }

    /// Signs `count` GET requests as the client does (fresh nonce and time each).
    static func signatures(count: Int) -> Double {
        let credentials = Credentials(accessKey: "AKBENCHBENCHBENCHBEN", secretKey: String(repeating: "f", count: 64))
        let fields = Request.get(bucket: "bench-bucket", key: "incompressible/4096/c16/r0/1234", range: nil).fields()
        var sink = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<count {
            var f = fields
            RequestSigning.sign(opcode: Opcode.get.rawValue, fields: &f, credentials: credentials)
            sink &+= Int(f.items.last?.value.first ?? 0)
        }
        let secs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return sink == -1 ? 0 : Double(count) / max(secs, 1e-9)
    }

    static func timeMiBps(bytes: Int, _ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        let secs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Double(bytes) / 1_048_576 / max(secs, 1e-9)
    }

    /// One TCP stream over 127.0.0.1 with 1 MiB writes; the reader runs on a thread.
    static func loopback(bytes: Int) -> Double {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { return 0 }
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(listener, sa, len) == 0 && listen(listener, 1) == 0 && getsockname(listener, sa, &len) == 0
            }
        }
        guard ok else { return 0 }
        let port = addr.sin_port
        let reader = Thread {
            let c = accept(listener, nil, nil)
            guard c >= 0 else { return }
            var buf = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = buf.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
                if n <= 0 { break }
            }
            close(c)
        }
        reader.start()
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var peer = sockaddr_in()
        peer.sin_family = sa_family_t(AF_INET)
        peer.sin_port = port
        peer.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(s)
            return 0
        }
        let block = [UInt8](repeating: 0x61, count: 1 << 20)
        let mibps = timeMiBps(bytes: bytes) {
            var sent = 0
            while sent < bytes {
                let n = block.withUnsafeBytes { write(s, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                sent += n
            }
        }
        close(s)
        return mibps
    }

    /// Writes `bytes` sequentially in 1 MiB blocks, then fsync; the time includes the fsync.
    static func sequentialWrite(dir: String, bytes: Int, block: [UInt8]) -> Double {
        let path = (dir as NSString).appendingPathComponent("agadir-bench-seq-\(getpid())")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return 0 }
        defer {
            close(fd)
            unlink(path)
        }
        return timeMiBps(bytes: bytes) {
            var written = 0
            while written < bytes {
                let n = block.withUnsafeBytes { write(fd, $0.baseAddress, min(1 << 20, bytes - written)) }
                if n <= 0 { break }
                written += n
            }
            fsync(fd)
        }
    }

    /// 4 KiB appends, each followed by fdatasync: the cost of one synchronous small write.
    static func syncWrites(dir: String, count: Int) -> Double {
        let path = (dir as NSString).appendingPathComponent("agadir-bench-sync-\(getpid())")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return 0 }
        defer {
            close(fd)
            unlink(path)
        }
        let block = [UInt8](repeating: 7, count: 4096)
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<count {
            _ = block.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            fdatasync(fd)
        }
        let secs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Double(count) / max(secs, 1e-9)
    }
}

/// LZ4 with a reused output buffer (a fresh zeroed buffer per call costs ~30%).
struct LZ4Bench {
    var out: [UInt8] = []

    mutating func compress(_ input: [UInt8]) {
        let bound = Int(LZ4_compressBound(Int32(input.count)))
        if out.count < bound { out = [UInt8](repeating: 0, count: bound) }
        _ = input.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                LZ4_compress_default(
                    src.baseAddress?.assumingMemoryBound(to: CChar.self),
                    dst.baseAddress?.assumingMemoryBound(to: CChar.self),
                    Int32(input.count), Int32(bound))
            }
        }
    }

    mutating func compressedCopy(_ input: [UInt8]) -> [UInt8] {
        let bound = Int(LZ4_compressBound(Int32(input.count)))
        var dst = [UInt8](repeating: 0, count: bound)
        let n = input.withUnsafeBytes { src in
            dst.withUnsafeMutableBytes { d in
                LZ4_compress_default(
                    src.baseAddress?.assumingMemoryBound(to: CChar.self),
                    d.baseAddress?.assumingMemoryBound(to: CChar.self),
                    Int32(input.count), Int32(bound))
            }
        }
        return Array(dst.prefix(Int(max(0, n))))
    }

    mutating func decompress(_ input: [UInt8], rawLength: Int) {
        if out.count < rawLength { out = [UInt8](repeating: 0, count: rawLength) }
        _ = input.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                LZ4_decompress_safe(
                    src.baseAddress?.assumingMemoryBound(to: CChar.self),
                    dst.baseAddress?.assumingMemoryBound(to: CChar.self),
                    Int32(input.count), Int32(rawLength))
            }
        }
    }
}

/// Benchmark payloads: incompressible (SplitMix64) and text-like (ratio about 3 with lz4).
enum BenchData {
    static func random(_ n: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        var out = [UInt8](repeating: 0, count: n)
        out.withUnsafeMutableBytes { raw in
            var i = 0
            while i + 8 <= n {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                raw.storeBytes(of: z ^ (z >> 31), toByteOffset: i, as: UInt64.self)
                i += 8
            }
        }
        return out
    }

    static func text(_ n: Int, seed: UInt64) -> [UInt8] {
        let words = [
            "agadir", "granary", "benguerir", "casablanca", "settat", "chunk", "replica", "quorum", "sovereign",
            "storage",
            "the", "of", "and", "a", "to", "in", "is", "that", "for", "it", "object", "bucket", "manifest", "version",
        ].map { Array($0.utf8) }
        var state = seed
        var out: [UInt8] = []
        out.reserveCapacity(n + 16)
        while out.count < n {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let r = Int(truncatingIfNeeded: state >> 33)
            out += words[r % words.count]
            out.append(r % 13 == 0 ? 0x0a : 0x20)
            if r % 7 == 0 { out += Array(String(r % 100_000).utf8) }
        }
        return Array(out.prefix(n))
    }

    /// Makes `base` unique for object `index` by stamping the index every 64 KiB, so no
    /// two benchmark objects share a chunk (dedup would flatter the figures).
    static func stamp(_ base: [UInt8], index: Int, run: UInt64) -> [UInt8] {
        var copy = base
        copy.withUnsafeMutableBytes { raw in
            var off = 0
            while off + 16 <= raw.count {
                raw.storeBytesUnaligned(UInt64(index), off)
                raw.storeBytesUnaligned(run, off + 8)
                off += 64 * 1024
            }
        }
        return copy
    }
}

extension UnsafeMutableRawBufferPointer {
    fileprivate func storeBytesUnaligned(_ v: UInt64, _ offset: Int) {
        for i in 0..<8 { self[offset + i] = UInt8(truncatingIfNeeded: v >> UInt64(8 * i)) }
    }
}
