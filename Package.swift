// swift-tools-version:6.0
import PackageDescription

// Agadir: a distributed object store for sovereign, multi-site deployments.
// The module graph is the architecture (see docs/architecture.md): pure logic at the
// bottom (AgadirCore, AgadirWire), the shells that touch disks and sockets on top.

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "agadir",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "AgadirClient", targets: ["AgadirClient"]),
        .executable(name: "agadird", targets: ["agadird"]),
        .executable(name: "agadir", targets: ["agadir"]),
        .executable(name: "agadir-bench", targets: ["agadir-bench"]),
        .library(name: "AgadirLab", targets: ["AgadirLab"]),
        .executable(name: "agadir-lab", targets: ["agadir-lab"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // MARK: C libraries from the system (Debian: zlib1g-dev, liblz4-dev, libsqlite3-dev)
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        // MARK: Pure logic
        .target(
            name: "AgadirCore",
            dependencies: [
                "CZlib", "CLZ4",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "AgadirWire",
            dependencies: ["AgadirCore", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // SWIM + Lifeguard membership as a pure state machine, its message codec and keyring.
        .target(
            name: "AgadirMembership",
            dependencies: ["AgadirCore", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // The cluster's PKI: the CA, node certificates that bind a node id, its site and its
        // residency labels, and reading them back (docs/security.md, "Cluster PKI").
        .target(
            name: "AgadirIdentity",
            dependencies: [
                "AgadirCore",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // Layout, policies, partitioning and the deterministic partition planner (docs/placement.md).
        .target(name: "AgadirPlacement", dependencies: ["AgadirCore"], swiftSettings: strict),
        // Drives many real `Membership` instances with simulated time, loss, latency and faults.
        .target(name: "AgadirSimulation", dependencies: ["AgadirMembership", "AgadirCore"], swiftSettings: strict),
        // NIO framing for AgadirWire and TLS, shared by the server, the client and the peer links.
        .target(
            name: "AgadirTransport",
            dependencies: [
                "AgadirWire", "AgadirCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // MARK: Shells
        // The UDP/TCP shell of AgadirMembership (as SWIMNIOExample sits apart from SWIM).
        .target(
            name: "AgadirGossip",
            dependencies: [
                "AgadirCore", "AgadirMembership", "AgadirWire", "AgadirStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "AgadirStore",
            dependencies: [
                "AgadirCore", "CSQLite",
                .product(name: "Logging", package: "swift-log"),
                // NIOThreadPool: the bounded pool of the store's blocking I/O.
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "AgadirServer",
            dependencies: [
                "AgadirCore", "AgadirWire", "AgadirStore", "AgadirTransport", "AgadirMembership", "AgadirGossip",
                "AgadirCluster", "AgadirPlacement", "AgadirIdentity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "AgadirClient",
            dependencies: [
                "AgadirCore", "AgadirWire", "AgadirTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // The cluster: peer links, coordinator (quorums, hints, read repair), node layout state and the
        // maintenance workers (rebalance, anti-entropy, scrub, GC), each in a folder of its own.
        .target(
            name: "AgadirCluster",
            dependencies: [
                "AgadirCore", "AgadirWire", "AgadirTransport", "AgadirStore", "AgadirMembership", "AgadirGossip",
                "AgadirPlacement", "AgadirIdentity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // Multi-node local harness: real agadird processes on loopback (docs/operations.md, "Local lab").
        .target(
            name: "AgadirLab",
            dependencies: [
                "AgadirClient", "AgadirWire", "AgadirCore", "AgadirIdentity", "AgadirStore",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // MARK: Executables
        .executableTarget(
            name: "agadird",
            dependencies: [
                "AgadirServer", "AgadirCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "agadir",
            dependencies: [
                "AgadirClient", "AgadirCore", "AgadirIdentity",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "agadir-lab",
            dependencies: [
                "AgadirLab", "AgadirClient", "AgadirWire", "AgadirCore", "AgadirSimulation", "AgadirMembership",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "agadir-bench",
            dependencies: [
                "AgadirLab", "AgadirClient", "AgadirCore", "AgadirIdentity",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),

        // MARK: Tests
        // Seeded randomness, temporary directories and timeouts shared by every test target.
        .target(name: "AgadirTestSupport", dependencies: ["AgadirCore"], path: "Tests/AgadirTestSupport"),
        .testTarget(name: "AgadirCoreTests", dependencies: ["AgadirTestSupport", "AgadirCore"]),
        .testTarget(name: "AgadirLabTests", dependencies: ["AgadirTestSupport", "AgadirLab"]),
        .testTarget(
            name: "AgadirMembershipTests", dependencies: ["AgadirTestSupport", "AgadirMembership", "AgadirCore"]),
        .testTarget(
            name: "AgadirPlacementTests", dependencies: ["AgadirTestSupport", "AgadirPlacement", "AgadirCore"]),
        .testTarget(name: "AgadirWireTests", dependencies: ["AgadirTestSupport", "AgadirWire", "AgadirCore"]),
        .testTarget(name: "AgadirIdentityTests", dependencies: ["AgadirTestSupport", "AgadirIdentity", "AgadirCore"]),
        .testTarget(
            name: "AgadirTransportTests",
            dependencies: [
                "AgadirTestSupport",
                "AgadirTransport", "AgadirWire", "AgadirCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "AgadirSimulationTests",
            dependencies: ["AgadirTestSupport", "AgadirSimulation", "AgadirMembership", "AgadirCore"]
        ),
        // Tests only: a SQLite VFS that reports every write and sync to the simulated disk of the power-loss tests.
        .target(name: "CSimulatedVFS", dependencies: ["CSQLite"], path: "Tests/CSimulatedVFS"),
        .testTarget(
            name: "AgadirStoreTests", dependencies: ["AgadirTestSupport", "AgadirStore", "AgadirCore", "CSimulatedVFS"]),
        .testTarget(
            name: "AgadirServerTests",
            dependencies: [
                "AgadirTestSupport",
                "AgadirServer", "AgadirStore", "AgadirWire", "AgadirCore", "AgadirClient", "AgadirMembership",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "AgadirClusterTests",
            dependencies: [
                "AgadirTestSupport", "AgadirCluster", "AgadirServer", "AgadirStore", "AgadirWire", "AgadirCore",
                "AgadirClient",
                "AgadirPlacement",
                "AgadirMembership", "AgadirTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "AgadirGossipTests",
            dependencies: [
                "AgadirTestSupport", "AgadirGossip", "AgadirMembership", "AgadirWire", "AgadirCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "AgadirClientTests", dependencies: ["AgadirTestSupport", "AgadirClient", "AgadirWire", "AgadirCore"]),
        .testTarget(
            name: "AgadirEndToEndTests",
            dependencies: [
                "AgadirTestSupport", "AgadirMembership", "AgadirCluster", "AgadirIdentity",
                "AgadirLab", "AgadirClient", "AgadirWire", "AgadirCore", "AgadirPlacement", "AgadirStore",
                "AgadirTransport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // A Python client written from docs/protocol.md alone; a test runs it against a node.
            exclude: ["PythonClient"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
