/// The one error family that crosses module and wire boundaries.
///
/// `code` is stable and numeric: it travels in response frames (see docs/protocol.md,
/// "Error codes") and clients branch on it. `message` says what happened and, where
/// possible, what to do next.
public struct AgadirError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        // MARK: 1xx: protocol; the connection is closed after the error is sent.
        public static let malformedFrame = Code(rawValue: 100)
        public static let unsupportedVersion = Code(rawValue: 101)
        public static let unknownOpcode = Code(rawValue: 102)
        public static let frameTooLarge = Code(rawValue: 103)
        public static let headerTooLarge = Code(rawValue: 104)
        public static let duplicateRequestID = Code(rawValue: 105)
        public static let tooManyRequests = Code(rawValue: 106)
        public static let requestTimeout = Code(rawValue: 107)
        public static let idleTimeout = Code(rawValue: 108)
        /// A node-to-node connection failed its cluster-secret handshake, or a peer-only
        /// request came on a connection that has not passed it.
        public static let unauthenticated = Code(rawValue: 109)

        // MARK: 2xx: the request is wrong; fix it and retry.
        public static let invalidArgument = Code(rawValue: 200)
        public static let invalidBucketName = Code(rawValue: 201)
        public static let invalidKey = Code(rawValue: 202)
        public static let bodyLengthMismatch = Code(rawValue: 203)
        public static let checksumMismatch = Code(rawValue: 204)
        public static let rangeNotSatisfiable = Code(rawValue: 205)
        public static let metadataTooLarge = Code(rawValue: 206)
        public static let objectTooLarge = Code(rawValue: 207)
        /// The request's key is valid but has no grant for what it asks (docs/protocol.md, "Access keys").
        public static let accessDenied = Code(rawValue: 208)
        /// No access key, an unknown one, or a signature that does not match: the request is
        /// not attributed to anyone and is refused.
        public static let notAuthenticated = Code(rawValue: 209)
        /// The request was signed at a time too far from the node's clock.
        public static let requestTimeSkewed = Code(rawValue: 210)
        /// A signed request this node has already seen (same key and nonce).
        public static let replayedRequest = Code(rawValue: 211)

        // MARK: 3xx: state of the named thing.
        public static let noSuchBucket = Code(rawValue: 300)
        public static let bucketAlreadyExists = Code(rawValue: 301)
        public static let bucketNotEmpty = Code(rawValue: 302)
        public static let noSuchKey = Code(rawValue: 303)
        public static let noSuchChunk = Code(rawValue: 304)
        public static let noSuchPolicy = Code(rawValue: 305)
        public static let policyAlreadyExists = Code(rawValue: 306)
        /// `layout apply --version N` where N is not the current version + 1, or a layout
        /// change that conflicts with the staged ones.
        public static let layoutVersionConflict = Code(rawValue: 307)
        /// The layout cannot satisfy a policy (too few eligible nodes or sites).
        public static let policyUnsatisfiable = Code(rawValue: 308)
        public static let noSuchNode = Code(rawValue: 309)
        /// The node is still in a replica set of a live layout version (it may hold the only
        /// copies of some objects): drain it and wait for the rebalance before removing it.
        public static let nodeNotDrained = Code(rawValue: 310)
        /// A residency claim that no certificate backs: `layout apply` of a site label the
        /// certificates of the site's nodes do not carry, or a bucket's bytes refused to a
        /// node whose certificate does not satisfy the bucket's policy (docs/security.md,
        /// "Attested residency").
        public static let notAttested = Code(rawValue: 311)
        /// The PUT would take its bucket past its quota of bytes or objects (docs/operations.md,
        /// "Quotas"): delete objects, or raise the quota.
        public static let quotaExceeded = Code(rawValue: 312)

        // MARK: 4xx: ask another node.
        /// This node may not coordinate requests of the bucket (its site is outside the
        /// bucket's policy); the response names eligible nodes (docs/protocol.md, "Redirects").
        public static let redirect = Code(rawValue: 400)
        /// Peer only: the node is in no live layout version's replica set of the partition a
        /// write (MANIFEST_PUT, CHUNK_PUT, CHUNKS_CLAIM) belongs to: the sender's layout is
        /// older than the receiver's; it pulls the newer one (docs/consistency.md, "Layout changes").
        public static let notReplica = Code(rawValue: 401)

        // MARK: 5xx: the node failed; the request may be retried, possibly elsewhere.
        public static let internalError = Code(rawValue: 500)
        public static let ioError = Code(rawValue: 501)
        public static let corruptChunk = Code(rawValue: 502)
        public static let corruptData = Code(rawValue: 503)
        public static let shuttingDown = Code(rawValue: 504)
        public static let storageFull = Code(rawValue: 505)
        public static let unavailable = Code(rawValue: 506)
        /// Fewer replicas answered than the consistency level needs; the message says how
        /// many answered and how many were needed. Retry, or ask for a weaker level.
        public static let notEnoughReplicas = Code(rawValue: 507)

        /// Symbolic name, as written in docs/protocol.md.
        public var name: String {
            Self.names[rawValue] ?? "UNKNOWN_\(rawValue)"
        }

        public var description: String { "\(name)(\(rawValue))" }

        /// True for codes after which the server closes the connection: the 1xx codes,
        /// except REQUEST_TIMEOUT, which fails only its request.
        public var closesConnection: Bool { (100..<200).contains(rawValue) && self != .requestTimeout }

        private static let names: [UInt16: String] = [
            100: "MALFORMED_FRAME", 101: "UNSUPPORTED_VERSION", 102: "UNKNOWN_OPCODE", 103: "FRAME_TOO_LARGE",
            104: "HEADER_TOO_LARGE", 105: "DUPLICATE_REQUEST_ID", 106: "TOO_MANY_REQUESTS", 107: "REQUEST_TIMEOUT",
            108: "IDLE_TIMEOUT", 109: "UNAUTHENTICATED",
            200: "INVALID_ARGUMENT", 201: "INVALID_BUCKET_NAME", 202: "INVALID_KEY", 203: "BODY_LENGTH_MISMATCH",
            204: "CHECKSUM_MISMATCH", 205: "RANGE_NOT_SATISFIABLE", 206: "METADATA_TOO_LARGE", 207: "OBJECT_TOO_LARGE",
            208: "ACCESS_DENIED", 209: "NOT_AUTHENTICATED", 210: "REQUEST_TIME_SKEWED", 211: "REPLAYED_REQUEST",
            300: "NO_SUCH_BUCKET", 301: "BUCKET_ALREADY_EXISTS", 302: "BUCKET_NOT_EMPTY", 303: "NO_SUCH_KEY",
            304: "NO_SUCH_CHUNK", 305: "NO_SUCH_POLICY", 306: "POLICY_ALREADY_EXISTS", 307: "LAYOUT_VERSION_CONFLICT",
            308: "POLICY_UNSATISFIABLE", 309: "NO_SUCH_NODE", 310: "NODE_NOT_DRAINED", 311: "NOT_ATTESTED",
            312: "QUOTA_EXCEEDED",
            400: "REDIRECT", 401: "NOT_REPLICA",
            500: "INTERNAL_ERROR", 501: "IO_ERROR", 502: "CORRUPT_CHUNK", 503: "CORRUPT_DATA", 504: "SHUTTING_DOWN",
            505: "STORAGE_FULL", 506: "UNAVAILABLE", 507: "NOT_ENOUGH_REPLICAS",
        ]
    }

    public var code: Code
    public var message: String
    /// With `.redirect`: client endpoints (`HOST:PORT`) of nodes that may serve the request,
    /// best first. Empty otherwise.
    public var redirect: [String] = []
    /// With `.notEnoughReplicas`: how many replicas answered and how many the level needed.
    public var replicas: ReplicaCount? = nil

    /// Replicas that answered a request, against the number its consistency level needs.
    public struct ReplicaCount: Sendable, Hashable {
        public var answered: Int
        public var needed: Int
        public init(answered: Int, needed: Int) {
            self.answered = answered
            self.needed = needed
        }
    }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// A REDIRECT naming the endpoints to try instead.
    public static func redirect(_ message: String, to endpoints: [String]) -> AgadirError {
        var e = AgadirError(.redirect, message)
        e.redirect = endpoints
        return e
    }

    /// A NOT_ENOUGH_REPLICAS with its counts.
    public static func notEnoughReplicas(_ message: String, answered: Int, needed: Int) -> AgadirError {
        var e = AgadirError(.notEnoughReplicas, message)
        e.replicas = ReplicaCount(answered: answered, needed: needed)
        return e
    }

    public var description: String { "\(code.name): \(message)" }
}
