// swift-tools-version:6.1
//
// QKDChannel: the classical side of a QKD link. Layers (top depends on bottom), see README.md:
//   qkd-node (CLI) -> QKDKeyPool -> QKDWire -> QKDCrypto -> CSodium / CQKDKernels
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "QKDChannel",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "QKDCrypto", targets: ["QKDCrypto"]),
        .library(name: "QKDWire", targets: ["QKDWire"]),
        .library(name: "QKDSession", targets: ["QKDSession"]),
        .library(name: "QKDKeyPool", targets: ["QKDKeyPool"]),
        .library(name: "QKDPostProcessing", targets: ["QKDPostProcessing"]),
        .library(name: "QKDSimulation", targets: ["QKDSimulation"]),
        .library(name: "QKDTransport", targets: ["QKDTransport"]),
        // The fuzz targets' per-input logic, shared by Fuzz/ and the regression tests.
        .library(name: "QKDFuzzChecks", targets: ["QKDFuzzChecks"]),
        .library(name: "QKDNode", targets: ["QKDNode"]),
        .executable(name: "qkd-node", targets: ["qkd-node"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    ],
    targets: [
        // libsodium, found with pkg-config. Only QKDCrypto imports it (`internal import CSodium`).
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        // Hot kernels in C: GF(2^128) multiplication and GHASH with runtime CPU dispatch
        // (PCLMULQDQ) and a portable constant-time fallback. Only QKDCrypto imports it.
        // GNU MP, found with pkg-config: the integer product of privacy amplification
        // (Spec/postprocessing.md section 7). Only CQKDKernels' pp_mas.c uses it.
        .systemLibrary(
            name: "CGMP",
            pkgConfig: "gmp",
            providers: [.apt(["libgmp-dev"])]
        ),
        .target(name: "CQKDKernels", dependencies: ["CGMP"]),
        .target(
            name: "QKDCrypto",
            dependencies: ["CSodium", "CQKDKernels", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "QKDWire",
            dependencies: ["QKDCrypto"],
            swiftSettings: strictSettings
        ),
        // The sans-IO session state machine (Spec/session.md, Spec/handshake.md): handshake and
        // authenticated channel; PKI/ holds certificate loading and validation.
        .target(
            name: "QKDSession",
            dependencies: [
                "QKDCrypto", "QKDWire", "QKDKeyPool",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "QKDKeyPool",
            dependencies: ["QKDCrypto", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "QKDPostProcessing",
            dependencies: ["QKDCrypto", "QKDWire", "CQKDKernels"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "QKDSimulation",
            dependencies: ["QKDCrypto"],
            swiftSettings: strictSettings
        ),
        // The C ABI of hardware transport plugins (include/qkd_transport_plugin.h), loaded with
        // dlopen by QKDTransport. Only QKDTransport imports it.
        .target(name: "CQKDTransportPlugin"),
        // Byte transports (Spec/transport.md): in-memory pair, TCP/Unix (SwiftNIO), serial tty,
        // exec'd bridge, dlopen'd C plugins. The only library module with sockets.
        .target(
            name: "QKDTransport",
            dependencies: [
                "QKDCrypto", "CQKDTransportPlugin",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // The embedding API: one link's transport, session, post-processing and pool, run
        // continuously (handshake, rounds, reconnect and resume), with events, swift-log and
        // swift-metrics.
        .target(
            name: "QKDNode",
            dependencies: [
                "QKDCrypto", "QKDWire", "QKDSession", "QKDKeyPool", "QKDPostProcessing", "QKDSimulation", "QKDTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "X509", package: "swift-certificates"),  // the node's own certificate name (NodePKI)
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "qkd-node",
            dependencies: [
                "QKDCrypto", "QKDWire", "QKDKeyPool", "QKDPostProcessing", "QKDSimulation", "QKDSession", "QKDNode", "QKDTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRDB", package: "GRDB.swift"),  // bench pool's raw-SQLite baseline
                .product(name: "Metrics", package: "swift-metrics"),  // bench pipeline --tcp reads the node's pad counter
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "QKDFuzzChecks",
            dependencies: ["QKDCrypto", "QKDWire", "QKDPostProcessing", "QKDKeyPool", "QKDSession", "QKDSimulation", "QKDNode"],
            swiftSettings: strictSettings
        ),
        // Shared test helpers: the vector loader, package paths, in-memory pairs.
        .target(
            name: "QKDTestSupport",
            dependencies: ["QKDCrypto"],
            path: "Tests/QKDTestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "QKDCryptoTests",
            dependencies: ["QKDCrypto", "QKDTestSupport", "CQKDKernels"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "QKDWireTests",
            dependencies: ["QKDWire", "QKDCrypto", "QKDTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "QKDSessionTests",
            dependencies: ["QKDFuzzChecks", "QKDSession", "QKDKeyPool", "QKDWire", "QKDCrypto", "QKDTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "QKDKeyPoolTests",
            dependencies: ["QKDKeyPool", "QKDCrypto", "QKDTestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "QKDFuzzRegressionTests",
            dependencies: ["QKDFuzzChecks", "QKDSession", "QKDCrypto", "QKDTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "QKDTransportTests",
            dependencies: ["QKDTransport", "QKDCrypto", "QKDTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "QKDNodeTests",
            dependencies: [
                "QKDNode", "QKDSession", "QKDKeyPool", "QKDCrypto", "QKDSimulation", "QKDPostProcessing", "QKDTransport", "QKDTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "QKDPostProcessingTests",
            dependencies: ["QKDPostProcessing", "QKDSimulation", "QKDCrypto", "QKDTestSupport"],
            swiftSettings: strictSettings
        ),
    ]
)
