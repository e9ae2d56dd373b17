import AgadirCore
import Crypto
import Foundation

/// An access key and its secret: what a client signs requests with.
public struct Credentials: Sendable, Hashable {
    public var accessKey: String
    public var secretKey: String
    /// The cluster CA's certificate (PEM file) to check the nodes' TLS certificates with,
    /// when the file names one (`ca_file = ...`): the nodes of a cluster with certificates
    /// speak TLS only.
    public var caFile: String?

    public init(accessKey: String, secretKey: String, caFile: String? = nil) {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.caFile = caFile
    }

    /// Reads a credentials file: lines `access_key = ...` and `secret_key = ...`, and
    /// optionally `ca_file = ...`; blank lines, `#` comments and `[section]` lines are
    /// ignored (an AWS-style file with one profile reads as well, through
    /// `aws_access_key_id` and `aws_secret_access_key`).
    public static func parse(_ text: String, source: String) throws(AgadirError) -> Credentials {
        var values: [String: String] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("[") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw AgadirError(.invalidArgument, "\(source): line '\(line)' is not `name = value`")
            }
            let name = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            values[name] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        guard let key = values["access_key"] ?? values["aws_access_key_id"], !key.isEmpty,
            let secret = values["secret_key"] ?? values["aws_secret_access_key"], !secret.isEmpty
        else {
            throw AgadirError(.invalidArgument, "\(source) must give access_key and secret_key")
        }
        return Credentials(
            accessKey: key, secretKey: secret, caFile: values["ca_file"].flatMap { $0.isEmpty ? nil : $0 })
    }

    /// The root key of a cluster secret: id `AKROOT` and 14 base32 characters, secret 64
    /// hex digits, both HKDF-SHA256 of the secret (salt: the cluster name). Every node of a
    /// cluster derives it without storing it; rotating the cluster secret rotates it.
    public static func root(clusterName: String, secret: String) -> Credentials {
        func derive(_ info: String) -> [UInt8] {
            HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: Array(secret.utf8)), salt: Array(clusterName.utf8),
                info: Array(info.utf8), outputByteCount: 32
            ).withUnsafeBytes { Array($0) }
        }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)
        let idBytes = derive("agadir root key id v1").prefix(14).map { alphabet[Int($0 % 32)] }
        return Credentials(
            accessKey: "AKROOT" + String(decoding: idBytes, as: UTF8.self),
            secretKey: Hex.encode(derive("agadir root key secret v1")))
    }

    /// The file text `parse` reads back.
    public func fileText(comment: String) -> String {
        "# \(comment)\naccess_key = \(accessKey)\nsecret_key = \(secretKey)\n"
            + (caFile.map { "ca_file = \($0)\n" } ?? "")
    }
}

/// Request signatures of the native protocol (docs/protocol.md, "Signed requests").
///
/// A signed REQUEST carries ACCESS_KEY, SIGNED_AT (ms since the Unix epoch, the client's
/// clock), REQUEST_NONCE (16 random bytes, fresh for every request) and SIGNATURE:
/// HMAC-SHA256 keyed by the secret's UTF-8 bytes over the canonical request:
///
///     "AGADIR1-HMAC-SHA256" 0x0A
///     u16 opcode
///     u32 number of fields that follow
///     every field of the REQUEST except SIGNATURE, stably sorted by tag:
///         u16 tag | u32 value length | value
///
/// The body is covered through CONTENT_SHA256, a field like the others, which the node
/// checks against the body it receives.
public enum RequestSigning {
    public static let algorithm = "AGADIR1-HMAC-SHA256"
    public static let nonceBytes = 16
    public static let signatureBytes = 32

    /// What the authentication fields of a request claim, before any check.
    public struct Claim: Sendable, Hashable {
        public var accessKey: String
        public var signedAtMillis: UInt64
        public var nonce: [UInt8]
        public var signature: [UInt8]
    }

    /// The bytes the signature covers.
    public static func canonical(opcode: UInt16, fields: Fields) -> [UInt8] {
        let signed = fields.items.enumerated()
            .filter { $0.element.tag != FieldTag.signature.rawValue }
            .sorted { ($0.element.tag, $0.offset) < ($1.element.tag, $1.offset) }
            .map(\.element)
        var w = ByteWriter(capacity: 64 + signed.reduce(0) { $0 + 6 + $1.value.count })
        w.raw(algorithm.utf8)
        w.u8(0x0A)
        w.u16(opcode)
        w.u32(UInt32(signed.count))
        for f in signed {
            w.u16(f.tag)
            w.u32(UInt32(f.value.count))
            w.raw(f.value)
        }
        return w.bytes
    }

    /// HMAC-SHA256 of `canonical` keyed by `secret`.
    public static func signature(_ canonical: [UInt8], secret: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: canonical, using: SymmetricKey(data: Array(secret.utf8))))
    }

    /// Adds ACCESS_KEY, SIGNED_AT, REQUEST_NONCE and SIGNATURE to `fields` (which must not
    /// hold them yet).
    public static func sign(
        opcode: UInt16, fields: inout Fields, credentials: Credentials, signedAtMillis: UInt64, nonce: [UInt8]
    ) {
        fields.set(.accessKey, credentials.accessKey)
        fields.set(.signedAt, u64: signedAtMillis)
        fields.set(.requestNonce, bytes: nonce)
        fields.set(
            .signature, bytes: signature(canonical(opcode: opcode, fields: fields), secret: credentials.secretKey))
    }

    /// Signs with the system clock and a random nonce.
    public static func sign(opcode: UInt16, fields: inout Fields, credentials: Credentials) {
        var rng = SystemRandomNumberGenerator()
        let nonce = (0..<nonceBytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
        sign(
            opcode: opcode, fields: &fields, credentials: credentials, signedAtMillis: WallTime.millis(), nonce: nonce)
    }

    /// The claim of a request, nil when it carries no ACCESS_KEY; `.notAuthenticated` when
    /// the other authentication fields are missing or malformed.
    public static func claim(_ fields: Fields) throws(AgadirError) -> Claim? {
        guard let key = fields.first(.accessKey) else { return nil }
        func refuse(_ why: String) -> AgadirError {
            AgadirError(.notAuthenticated, "\(why); sign every request as docs/protocol.md, \"Signed requests\" says")
        }
        guard !key.isEmpty, key.count <= 128 else { throw refuse("ACCESS_KEY must be 1-128 bytes") }
        guard let at = fields.first(.signedAt), at.count == 8 else { throw refuse("SIGNED_AT (u64 ms) is missing") }
        guard let nonce = fields.first(.requestNonce), nonce.count == nonceBytes else {
            throw refuse("REQUEST_NONCE (\(nonceBytes) bytes) is missing")
        }
        guard let sig = fields.first(.signature), sig.count == signatureBytes else {
            throw refuse("SIGNATURE (\(signatureBytes) bytes) is missing")
        }
        let millis = at.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Claim(
            accessKey: String(decoding: key, as: UTF8.self), signedAtMillis: millis, nonce: nonce, signature: sig)
    }

    /// True when `claim.signature` is the signature of the request under `secret`
    /// (compared in constant time).
    public static func verify(_ claim: Claim, opcode: UInt16, fields: Fields, secret: String) -> Bool {
        equalInConstantTime(signature(canonical(opcode: opcode, fields: fields), secret: secret), claim.signature)
    }

    /// Compares two MACs without a timing that depends on where they differ.
    static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for (x, y) in zip(a, b) { diff |= x ^ y }
        return diff == 0
    }
}

/// Milliseconds since the Unix epoch from the system clock.
public enum WallTime {
    public static func millis() -> UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1000)) }
}

/// Chained signatures of a body streamed in DATA frames (docs/protocol.md, "Signed
/// bodies"): a PUT whose body is not hashed up front carries BODY_SIGNING = 1 in its
/// signed fields, and each DATA frame of its body carries a FRAME_SIGNATURE:
///
///     HMAC-SHA256(secret, "AGADIR1-FRAME" 0x0A
///                         | previous signature (32 bytes; the REQUEST's SIGNATURE first)
///                         | u64 frame index (1 for the first DATA frame)
///                         | u8 1 when the frame has END_STREAM, else 0
///                         | SHA-256 of the frame's payload (32 bytes))
///
/// Each signature covers every byte before it, the order of the frames and the end of the
/// stream, so an on-path attacker can neither change, reorder, drop nor cut the body short.
/// The chaining is the one of SigV4's `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`; the S3 gateway
/// keeps its own string to sign and seed.
public struct FrameSignatures: Sendable {
    public static let algorithm = "AGADIR1-FRAME"
    /// The fields section of a DATA frame holding one FRAME_SIGNATURE: count, tag, length, value.
    public static let maxDataFieldBytes = 2 + 4 + RequestSigning.signatureBytes

    private let key: SymmetricKey
    /// The signature the next frame chains from.
    public private(set) var previous: [UInt8]
    /// Frames signed (or verified) so far.
    public private(set) var frames: UInt64 = 0
    /// True once the frame with END_STREAM was signed or verified.
    public private(set) var ended = false

    /// A chain under `secret` seeded by the REQUEST's SIGNATURE.
    public init(secret: String, requestSignature: [UInt8]) {
        self.key = SymmetricKey(data: Array(secret.utf8))
        self.previous = requestSignature
    }

    private func signature(payload: UnsafeRawBufferPointer, index: UInt64, end: Bool) -> [UInt8] {
        var w = ByteWriter(capacity: 96)
        w.raw(Self.algorithm.utf8)
        w.u8(0x0A)
        w.raw(previous)
        w.u64(index)
        w.u8(end ? 1 : 0)
        w.raw(Array(SHA256.hash(data: payload)))
        return Array(HMAC<SHA256>.authenticationCode(for: w.bytes, using: key))
    }

    /// The FRAME_SIGNATURE of the next frame, whose payload is `payload`.
    public mutating func sign(payload: UnsafeRawBufferPointer, end: Bool) -> [UInt8] {
        frames += 1
        let s = signature(payload: payload, index: frames, end: end)
        previous = s
        ended = end
        return s
    }

    /// Checks the next frame's `signature` (compared in constant time); on success the chain
    /// advances, on failure it stays where it was.
    public mutating func verify(_ signature: [UInt8]?, payload: UnsafeRawBufferPointer, end: Bool) -> Bool {
        guard !ended, let signature else { return false }
        let expected = self.signature(payload: payload, index: frames + 1, end: end)
        guard RequestSigning.equalInConstantTime(expected, signature) else { return false }
        frames += 1
        previous = signature
        ended = end
        return true
    }
}
