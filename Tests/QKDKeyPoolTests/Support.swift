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

