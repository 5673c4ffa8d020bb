import Foundation
import QKDCrypto
@testable import QKDKeyPool
#if canImport(Glibc)
import Glibc
#endif

/// A private temporary directory (0700), removed when the value is released.
final class TempDir: @unchecked Sendable {
    let path: String
    init() {
        var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("qkd-pool-test-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
        chmod(path, 0o700)
    }
    func sub(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Deterministic key material for tests.
func testSecret(_ count: Int, seed: UInt64) -> SecretBytes {
    var random = DeterministicRandomSource(seed: seed)
    return SecretBytes(randomCount: count, using: &random)
}

func testPSK(_ count: Int, seed: UInt64) throws -> PSKFile {
    var random = DeterministicRandomSource(seed: seed)
    return try PSKFile.generate(byteCount: count, using: &random)
}

/// Alice's and Bob's pools, both seeded from the same PSK.
func makePair(_ dir: TempDir, pskBytes: Int = 4096, seed: UInt64 = 1,
              configuration: KeyPool.Configuration = .init()) throws -> (alice: KeyPool, bob: KeyPool) {
    let psk = try testPSK(pskBytes, seed: seed)
    let alice = try KeyPool.create(directory: dir.sub("alice"), role: .alice, linkID: psk.id, configuration: configuration)
    let bob = try KeyPool.create(directory: dir.sub("bob"), role: .bob, linkID: psk.id, configuration: configuration)
    try alice.importPSK(psk)
    try bob.importPSK(psk)
    return (alice, bob)
}

/// Every remaining pad of `direction`, one reservation at a time, as plain bytes (tests only).
func drain(_ pool: KeyPool, _ direction: Direction, pads: Int) throws -> [UInt8] {
    var out: [UInt8] = []
    for _ in 0..<pads {
        let r = try pool.reservePad(direction: direction, count: 1)
        r.bytes.withUnsafeBytes { out.append(contentsOf: $0) }
    }
    return out
}

/// The `qkd-node` binary that `swift build` / `swift test` put next to the test bundle.
///
/// Order: `$QKD_NODE_BINARY`; then the directories above the running test executable
/// (`/proc/self/exe` on Linux, `Bundle.main` elsewhere), which covers the default `.build`
/// and any `--scratch-path`; then `<package>/.build/debug`.
enum QKDNodeBinary {
    static func locate() -> String? {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["QKD_NODE_BINARY"], fm.isExecutableFile(atPath: env) { return env }
        var starts: [URL] = []
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") { starts.append(URL(fileURLWithPath: exe)) }
        if let exe = Bundle.main.executableURL { starts.append(exe) }
        starts.append(Bundle.main.bundleURL)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") { starts.append(bundle.bundleURL) }
        for start in starts {
            var dir = start.deletingLastPathComponent()
            for _ in 0..<5 {
                let candidate = dir.appendingPathComponent("qkd-node").path
                if fm.isExecutableFile(atPath: candidate) { return candidate }
                dir.deleteLastPathComponent()
            }
        }
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        let fallback = root.appendingPathComponent(".build/debug/qkd-node").path
        return fm.isExecutableFile(atPath: fallback) ? fallback : nil
    }

    /// Runs the binary to completion.
    static func run(_ binary: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
