// swift-tools-version:6.1
//
// libFuzzer targets for QKDChannel. Build and run with ./run.sh TARGET [SECONDS]; see README.md.
// Every target is an executable whose entry point calls LLVMFuzzerRunDriver (FuzzSupport).
import PackageDescription

let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
    ("FuzzMAC", []),
    ("FuzzFrameDecoder", []),
    ("FuzzPostProcessingMessages", []),
    ("FuzzPSKFile", []),
    ("FuzzCertificateChain", []),
    ("FuzzHandshakeResponder", []),
    ("FuzzHandshakeInitiator", []),
    ("FuzzSessionPair", []),
    ("FuzzPostProcessingRound", []),
    ("FuzzPulseFrame", []),
]

let package = Package(
    name: "QKDChannelFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "QKDChannel", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "QKDFuzzChecks", package: "QKDChannel")]),
    ] + fuzzTargets.map { target in
        .executableTarget(name: target.name, dependencies: ["FuzzSupport"] + target.dependencies)
    }
)
