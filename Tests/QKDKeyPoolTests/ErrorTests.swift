import Foundation
import QKDCrypto
import Testing
@testable import QKDKeyPool
#if canImport(Glibc)
import Glibc
#endif

/// Spec/keypool.md, "Errors": each failure is typed, says what to do, and neither loses nor
/// duplicates material.
@Suite struct ErrorTests {
    @Test func exhaustionIsTypedAndLosesNothing() throws {
        let dir = TempDir()
        let (alice, _) = try makePair(dir, pskBytes: 32 + 2 * 48)  // 3 pads per stream.
        let first = try alice.reservePad(direction: .outbound, count: 1)
        let error = try #require(throws: QKDError.self) { try alice.reservePad(direction: .outbound, count: 3) }
        #expect(error.code == .poolExhausted)
        #expect(error.detail.contains("32 bytes left"))
        // The two remaining pads are still there, in order, once each.
        let rest = try alice.reservePad(direction: .outbound, count: 2)
        #expect(first.offset == 0 && rest.offset == 16)
        #expect(throws: QKDError(.poolExhausted)) { _ = try alice.reserveOnePad(direction: .outbound) }
        #expect(try alice.status().ledger.reconciles)
        #expect(try PoolVerifier.verify(directory: alice.directory).isEmpty)
    }

    @Test func starvingIsRaisedOncePerCrossing() throws {
        let dir = TempDir()
        let (alice, _) = try makePair(dir, pskBytes: 32 + 2 * 320, configuration: .init(chunkPads: 4, lowWaterBytes: 128))
        #expect(alice.nextEvent() == nil)
        _ = try drain(alice, .outbound, pads: 12)  // 320 - 192 = 128 left: not below.
        #expect(alice.nextEvent() == nil)
        _ = try drain(alice, .outbound, pads: 1)
        #expect(alice.nextEvent() == .starving(direction: .outbound, remainingBytes: 112))
        _ = try drain(alice, .outbound, pads: 2)
        #expect(alice.nextEvent() == nil)  // Once per crossing.
        // A refill lifts it above the threshold; the next crossing raises again.
        let policy = RefillPolicy(padBytesPerRound: 256, roundsAhead: 1, reserveBytes: 0, consumerKeyBytes: 32)
        try alice.advance(to: alice.watermarks())  // The resynchronisation that precedes an absorb.
        #expect(alice.watermarks().outbound == 256)
        try alice.absorbDistilledKey(roundID: 1, bytes: testSecret(1024, seed: 1), policy: policy)
        #expect(alice.nextEvent() == nil)
        _ = try drain(alice, .outbound, pads: 10)
        guard case .starving(.outbound, _)? = alice.nextEvent() else { Issue.record("expected starving"); return }
    }

    @Test func doubleAbsorbCreditsNothing() throws {
        let dir = TempDir()
        let (alice, _) = try makePair(dir)
        let policy = RefillPolicy(consumerKeyBytes: 32)
        try alice.absorbDistilledKey(roundID: 7, bytes: testSecret(20_000, seed: 7), policy: policy)
        let before = try alice.status()
        let error = try #require(throws: QKDError.self) {
            try alice.absorbDistilledKey(roundID: 7, bytes: testSecret(20_000, seed: 8), policy: policy)
        }
        #expect(error.code == .roundAlreadyAbsorbed && error.detail.contains("round 7"))
        let after = try alice.status()
        #expect(before == after)
        #expect(try PoolVerifier.verify(directory: alice.directory).isEmpty)
    }

    @Test func backwardAndOverlongAdvancesMoveNothing() throws {
        let dir = TempDir()
        let (alice, _) = try makePair(dir, pskBytes: 4096, configuration: .init(chunkPads: 4))
        _ = try drain(alice, .outbound, pads: 5)  // durable outbound watermark: 8 pads.
        let w = alice.watermarks()
        #expect(w == Watermarks(outbound: 128, inbound: 0))
        let error = try #require(throws: QKDError.self) { try alice.advance(to: Watermarks(outbound: 64, inbound: 32)) }
        #expect(error.code == .watermarkBackward && error.detail.contains("backward"))
        #expect(throws: QKDError(.watermarkBeyondStream)) { try alice.advance(to: Watermarks(outbound: 128, inbound: 1 << 40)) }
        #expect(alice.watermarks() == w)
        // Serving continues where it was: pad 5 comes next, not a reused one.
        #expect(try alice.reservePad(direction: .outbound, count: 1).offset == 80)
        // A forward advance skips, and is ledgered as skipped.
        try alice.advance(to: Watermarks(outbound: 256, inbound: 32))
        #expect(try alice.reservePad(direction: .outbound, count: 1).offset == 256)
        let ledger = try alice.status().ledger
        #expect(ledger.padSkipped["a2b"] == 128 && ledger.padSkipped["b2a"] == 32 && ledger.reconciles)
        #expect(try PoolVerifier.verify(directory: alice.directory).isEmpty)
    }

    @Test func corruptedDatabaseIsRefused() throws {
        let dir = TempDir()
        let psk = try testPSK(4096, seed: 2)
        let pool = try KeyPool.create(directory: dir.sub("p"), role: .alice, linkID: psk.id)
        try pool.importPSK(psk)
        pool.close()
        let path = StateDirectory.databasePath(dir.sub("p"))
        let fd = open(path, O_WRONLY)
        _ = pwrite(fd, Array("this is garbage!".utf8), 16, 0)
        close(fd)
        let error = try #require(throws: QKDError.self) { try KeyPool.open(directory: dir.sub("p")) }
        #expect(error.code == .storageCorrupt && error.detail.contains("corrupt"))
        #expect(throws: QKDError(.storageCorrupt)) { try PoolVerifier.verify(directory: dir.sub("p")) }
    }

    @Test func truncatedDatabaseIsRefused() throws {
        let dir = TempDir()
        let psk = try testPSK(400_000, seed: 3)
        let pool = try KeyPool.create(directory: dir.sub("p"), role: .alice, linkID: psk.id)
        try pool.importPSK(psk)
        pool.close()
        let path = StateDirectory.databasePath(dir.sub("p"))
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(truncate(path, off_t(size / 2)) == 0)
        let error = try #require(throws: QKDError.self) {
            let reopened = try KeyPool.open(directory: dir.sub("p"))
            _ = try drain(reopened, .outbound, pads: 400_000 / 32)  // If open passed, reading must fail.
        }
        #expect(error.code == .storageCorrupt)
        #expect(throws: QKDError(.storageCorrupt)) { try PoolVerifier.verify(directory: dir.sub("p")) }
    }

    @Test func wrongPermissionsAreRefusedAndNothingChanges() throws {
        let dir = TempDir()
        let (alice, _) = try makePair(dir)
        _ = try drain(alice, .outbound, pads: 3)
        let w = alice.watermarks()
        alice.close()
        let state = dir.sub("alice")
        chmod(state, 0o750)
        let error = try #require(throws: QKDError.self) { try KeyPool.open(directory: state) }
        #expect(error.code == .insecurePermissions && error.detail.contains("chmod 700"))
        #expect(throws: QKDError(.insecurePermissions)) { try PoolVerifier.verify(directory: state) }
        chmod(state, 0o700)
        let db = StateDirectory.databasePath(state)
        chmod(db, 0o644)
        #expect(throws: QKDError(.insecurePermissions)) { try KeyPool.open(directory: state) }
        chmod(db, 0o600)
        let reopened = try KeyPool.open(directory: state)
        #expect(reopened.watermarks() == w)
        // Files created by the pool are private whatever the umask.
        var st = stat()
        stat(state, &st); #expect(st.st_mode & 0o777 == 0o700)
        stat(db, &st); #expect(st.st_mode & 0o777 == 0o600)
        if stat(db + "-wal", &st) == 0 { #expect(st.st_mode & 0o777 == 0o600) }
        #expect(throws: QKDError(.poolExists)) { try KeyPool.create(directory: state, role: .bob, linkID: UUID()) }
        #expect(throws: QKDError(.poolNotFound)) { try KeyPool.open(directory: dir.sub("missing")) }
    }
}
