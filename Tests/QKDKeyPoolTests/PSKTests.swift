import Foundation
import QKDCrypto
import Testing
@testable import QKDKeyPool

/// Spec/keypool.md, "PSK file format" and "PSK import".
@Suite struct PSKTests {
    func encoded(_ psk: PSKFile) -> [UInt8] {
        var out: [UInt8] = []
        psk.encode(into: &out)
        return out
    }

    /// The BLAKE2b helper the checksum and link tags use, against RFC 7693's "abc" (values from
    /// Python's hashlib.blake2b, which implements RFC 7693), fed in pieces.
    @Test func genericHashMatchesBLAKE2b() {
        #expect(Hex.encode(GenericHash.hash([Array("a".utf8), [], Array("bc".utf8)])) == "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319")
        #expect(Hex.encode(GenericHash.hash([Array("abc".utf8)], outputByteCount: 16)) == "cf4ab791c62b8d2b2109c90275287816")
    }

    @Test func roundTripsRandomFiles() throws {
        for seed in UInt64(0)..<20 {
            let psk = try testPSK(64 + Int(seed) * 97, seed: seed)
            let back = try PSKFile(decoding: encoded(psk))
            #expect(back.id == psk.id && back.key == psk.key && back.checksum == psk.checksum)
            #expect(!back.description.contains(Hex.encode(psk.key.withUnsafeBytes { Array($0.prefix(8)) })))
        }
    }

    @Test(arguments: [
        ("empty", QKDError.Code.pskTruncated),
        ("not a PSK", .pskBadMagic),
        ("short header", .pskTruncated),
        ("version 2", .pskUnsupportedVersion),
        ("reserved byte", .pskReservedNonZero),
        ("length too small", .pskTooSmall),
        ("length too large", .pskTooLarge),
        ("missing last byte", .pskTruncated),
        ("missing checksum", .pskTruncated),
        ("trailing byte", .pskTrailingBytes),
        ("flipped key bit", .pskChecksumMismatch),
        ("flipped checksum bit", .pskChecksumMismatch),
        ("flipped id bit", .pskChecksumMismatch),
    ])
    func malformedFilesGiveTypedErrors(name: String, code: QKDError.Code) throws {
        var b = encoded(try testPSK(200, seed: 3))
        switch name {
        case "empty": b = []
        case "not a PSK": b = Array("-----BEGIN PRIVATE KEY-----".utf8)
        case "short header": b = Array(b.prefix(20))
        case "version 2": b[6] = 2
        case "reserved byte": b[7] = 1
        case "length too small": b[31] = 10; b[30] = 0
        case "length too large": b[27] = 0x01  // 2^32 + ...
        case "missing last byte": b.removeLast()
        case "missing checksum": b.removeLast(32)
        case "trailing byte": b.append(0)
        case "flipped key bit": b[40] ^= 1
        case "flipped checksum bit": b[b.count - 1] ^= 0x80
        case "flipped id bit": b[9] ^= 4
        default: Issue.record("unknown case \(name)")
        }
        let error = try #require(throws: QKDError.self) { try PSKFile(decoding: b) }
        #expect(error.code == code, "\(name): \(error)")
        #expect(!error.detail.isEmpty)
    }

    @Test func importSplitsByRoleAndRefusesASecondImport() throws {
        let dir = TempDir()
        let psk = try testPSK(1000, seed: 9)
        let alice = try KeyPool.create(directory: dir.sub("a"), role: .alice, linkID: psk.id)
        let bob = try KeyPool.create(directory: dir.sub("b"), role: .bob, linkID: psk.id)
        let a = try alice.importPSK(psk)
        let b = try bob.importPSK(psk)
        let split = PSKSplit(byteCount: 1000)
        #expect(a.outbound == split.streams[.aliceToBob]!.count && a.outbound == b.inbound && a.inbound == b.outbound)
        // The a2b stream is the PSK's bytes 32..<32+h on both sides.
        let expected = psk.key.withUnsafeBytes { Array($0[split.streams[.aliceToBob]!]) }
        #expect(try drain(alice, .outbound, pads: a.outbound / 16) == expected)
        #expect(try drain(bob, .inbound, pads: b.inbound / 16) == expected)

        let before = try alice.status()
        #expect(throws: QKDError(.pskAlreadyImported)) { try alice.importPSK(psk) }
        // The same file re-read (same id, same checksum) is refused too.
        #expect(throws: QKDError(.pskAlreadyImported)) { try alice.importPSK(try PSKFile(decoding: encoded(psk))) }
        let after = try alice.status()
        #expect(before.ledger == after.ledger && before.streams == after.streams)
        // A different PSK is accepted and extends the streams.
        try alice.importPSK(try testPSK(1000, seed: 10))
        #expect(try alice.status().pskImported == 2)
        #expect(try PoolVerifier.verify(directory: alice.directory).isEmpty)
    }
}
