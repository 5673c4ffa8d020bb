import Foundation
import QKDCrypto
import QKDKeyPool
import QKDWire
import Testing
@testable import QKDSession
#if canImport(Glibc)
import Glibc
#endif

/// A private temporary directory (0700), removed when released.
final class TempDirectory: @unchecked Sendable {
    let path: String
    init() {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent("qkd-session-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }
    func sub(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Two real, durable pools (``KeyPool`` behind ``PoolKeyStore``), both seeded from one PSK.
struct TwoPools {
    static let configuration = KeyPool.Configuration(chunkPads: 4, lowWaterBytes: 0)
    let dir: TempDirectory
    var alice: PoolKeyStore
    var bob: PoolKeyStore

    init(pskBytes: Int = 16_384, seed: UInt64 = 77) throws {
        dir = TempDirectory()
        var random = DeterministicRandomSource(seed: seed)
        let psk = try PSKFile.generate(byteCount: pskBytes, using: &random)
        let a = try KeyPool.create(directory: dir.sub("alice"), role: .alice, linkID: psk.id, configuration: Self.configuration)
        let b = try KeyPool.create(directory: dir.sub("bob"), role: .bob, linkID: psk.id, configuration: Self.configuration)
        _ = try a.importPSK(psk)
        _ = try b.importPSK(psk)
        alice = PoolKeyStore(pool: a)
        bob = PoolKeyStore(pool: b)
    }

    /// Closes and reopens both pools (a restart of both processes).
    mutating func reopen() throws {
        alice.pool.close()
        bob.pool.close()
        alice = PoolKeyStore(pool: try KeyPool.open(directory: dir.sub("alice"), configuration: Self.configuration))
        bob = PoolKeyStore(pool: try KeyPool.open(directory: dir.sub("bob"), configuration: Self.configuration))
    }

    func close() {
        alice.pool.close()
        bob.pool.close()
    }
}

/// Every handshake mode and resume over two real pools (Spec/session.md section 4,
/// Spec/keypool.md): the session's slots are the durable pool's pads, Alice's outbound slot is
/// Bob's inbound slot byte for byte, and across sessions and restarts no slot is handed out
/// twice and nothing is consumed that the peer did not hand out.
@Suite struct TwoPoolTests {
    /// Pool slots one side handed out (outbound `padUsed`) and consumed (inbound `padUsed`).
    struct Ledger {
        var aliceOut: [UInt64] = []
        var bobOut: [UInt64] = []
        var aliceIn: [UInt64] = []
        var bobIn: [UInt64] = []

        mutating func record(_ pair: Pair) {
            for case .padUsed(let d, let slot) in pair.aliceEvents {
                if d == .aliceToBob { aliceOut.append(slot) } else { aliceIn.append(slot) }
            }
            for case .padUsed(let d, let slot) in pair.bobEvents {
                if d == .bobToAlice { bobOut.append(slot) } else { bobIn.append(slot) }
            }
        }

        func check() {
            #expect(Set(aliceOut).count == aliceOut.count, "Alice handed a slot out twice: \(aliceOut)")
            #expect(Set(bobOut).count == bobOut.count, "Bob handed a slot out twice: \(bobOut)")
            #expect(Set(bobIn).isSubset(of: aliceOut) && Set(aliceIn).isSubset(of: bobOut))
        }
    }

    static func exchange(_ pair: inout Pair, _ tag: UInt8) async {
        for i in 0..<9 as Range<UInt8> {  // past rotateAfterTags = 4: key slots from the pool too
            pair.onAlice { try $0.send([tag, i]) }
            pair.onBob { try $0.send([tag, i, 1]) }
        }
        await pair.settle()
        #expect(Pair.delivered(pair.bobEvents) == (0..<9).map { [tag, $0] })
        #expect(Pair.delivered(pair.aliceEvents) == (0..<9).map { [tag, $0, 1] })
    }

    static func tweak(_ c: inout SessionConfiguration) { c.rotateAfterTags = 4 }

    func poolPair(_ pools: TwoPools, seed: UInt64) -> Pair {
        var alice = SessionConfiguration(role: .alice, mode: .pool, linkID: Fixture.linkID, splitPolicy: Fixture.policy)
        var bob = SessionConfiguration(role: .bob, acceptedModes: [.pool, .pskKDF, .pki], linkID: Fixture.linkID, splitPolicy: Fixture.policy)
        Self.tweak(&alice)
        Self.tweak(&bob)
        return Pair(alice: alice, bob: bob, aliceStore: pools.alice, bobStore: pools.bob, seed: seed)
    }

    func pskPair(_ pools: TwoPools, seed: UInt64) -> Pair {
        var alice = SessionConfiguration(role: .alice, mode: .pskKDF, linkID: Fixture.linkID, splitPolicy: Fixture.policy, preSharedKeys: [Fixture.psk(9)])
        var bob = SessionConfiguration(role: .bob, linkID: Fixture.linkID, splitPolicy: Fixture.policy, preSharedKeys: [Fixture.psk(9)])
        Self.tweak(&alice)
        Self.tweak(&bob)
        return Pair(alice: alice, bob: bob, aliceStore: pools.alice, bobStore: pools.bob, seed: seed)
    }

    func pkiPair(_ pools: TwoPools, seed: UInt64) throws -> Pair {
        let (alice, bob) = try X509SessionTests.sides(try X509SessionTests.testPKI())
        return X509SessionTests.pair(alice, bob, seed: seed, stores: (pools.alice, pools.bob))
    }

    @Test(arguments: ["pool", "psk-kdf", "pki"])
    func everyModeThenResumesOverTwoRealPools(mode: String) async throws {
        var pools = try TwoPools()
        defer { pools.close() }
        var ledger = Ledger()
        var first = mode == "pool" ? poolPair(pools, seed: 1) : mode == "psk-kdf" ? pskPair(pools, seed: 1) : try pkiPair(pools, seed: 1)
        first.start()
        await first.settle()
        #expect(first.aliceErrors.isEmpty && first.bobErrors.isEmpty, "\(first.aliceErrors) \(first.bobErrors)")
        let open = first.alice.isEstablished && first.bob.isEstablished
        #expect(open)
        if mode == "pool" {
            #expect(first.alice.securityLevel == .informationTheoretic)
        } else {
            #expect(first.alice.securityLevel == .computational)
            first.onAlice { try $0.poolReady() }
            first.onBob { try $0.poolReady() }
            await first.settle()
            #expect(first.alice.securityLevel == .informationTheoretic && first.bob.securityLevel == .informationTheoretic)
        }
        await Self.exchange(&first, 1)
        first.onAlice { try $0.close() }
        await first.settle()
        ledger.record(first)
        #expect(!ledger.aliceOut.isEmpty && !ledger.bobOut.isEmpty)

        // Resume in the same processes, then after both restart (pools closed and reopened).
        for (index, restart) in [false, true].enumerated() {
            if restart { try pools.reopen() }
            var again = poolPair(pools, seed: 10 + UInt64(index))
            again.start()
            await again.settle()
            #expect(again.aliceErrors.isEmpty && again.bobErrors.isEmpty, "\(again.aliceErrors) \(again.bobErrors)")
            #expect(again.alice.securityLevel == .informationTheoretic && again.bob.securityLevel == .informationTheoretic)
            await Self.exchange(&again, 2 + UInt8(index))
            again.onBob { try $0.close() }
            await again.settle()
            ledger.record(again)
        }
        ledger.check()
        #expect(try PoolVerifier.verify(directory: pools.dir.sub("alice")).isEmpty)
        #expect(try PoolVerifier.verify(directory: pools.dir.sub("bob")).isEmpty)
    }

    /// A handshake tampered in flight over real pools: Bob consumes nothing, Alice's burned
    /// slots are skipped by the next resume, which succeeds.
    @Test func tamperedResumeBurnsButNeverReuses() async throws {
        let pools = try TwoPools()
        defer { pools.close() }
        var ledger = Ledger()
        var pair = poolPair(pools, seed: 3)
        pair.adversary = FlipOneBit(frameIndex: 2, bit: 300)  // Alice's Finished
        pair.start()
        await pair.settle()
        let open = pair.alice.isEstablished || pair.bob.isEstablished
        #expect(!open)
        ledger.record(pair)
        #expect(ledger.bobIn.isEmpty && ledger.bobOut.isEmpty)
        var again = poolPair(pools, seed: 4)
        again.start()
        await again.settle()
        let reopened = again.alice.isEstablished && again.bob.isEstablished
        #expect(reopened)
        ledger.record(again)
        ledger.check()
        #expect(ledger.aliceOut.count == 4)
    }

    /// In-process crashes at random points (both pools closed and reopened mid-handshake or
    /// mid-traffic: served offsets fall back to the durable, chunk-rounded watermarks, which then
    /// differ between the directions), each followed by a resume that must succeed and carry
    /// traffic both ways. Regression: a resume used to jump a direction's inbound watermark to
    /// its durable chunk end, burning the slots the peer had just agreed to use.
    @Test func resumeAfterRandomCrashPointsAlwaysWorks() async throws {
        var pools = try TwoPools(pskBytes: 65_536)
        defer { pools.close() }
        var random = DeterministicRandomSource(seed: 404)
        var ledger = Ledger()
        for round in 0..<40 {
            var pair = poolPair(pools, seed: 1000 + UInt64(round))
            pair.start()
            let crashAfter = Int.random(in: 0..<40, using: &random)
            var steps = 0
            // Drive a handshake and traffic, but stop ("crash") after a random number of steps.
            while steps < crashAfter && pair.step() { steps += 1 }
            if pair.alice.isEstablished && pair.bob.isEstablished {
                for i in 0..<UInt8.random(in: 0..<7, using: &random) {
                    pair.onAlice { try $0.send([i]) }
                    if Bool.random(using: &random) { pair.onBob { try $0.send([i, i]) } }
                }
                for _ in 0..<Int.random(in: 0..<30, using: &random) { pair.step() }
            }
            #expect(pair.aliceErrors.isEmpty && pair.bobErrors.isEmpty, "round \(round): \(pair.aliceErrors) \(pair.bobErrors)")
            ledger.record(pair)
            try pools.reopen()
            // The resume after the crash completes and carries data both ways.
            var again = poolPair(pools, seed: 5000 + UInt64(round))
            again.start()
            await again.settle()
            let open = again.alice.isEstablished && again.bob.isEstablished
            #expect(open, "round \(round): \(again.aliceErrors) \(again.bobErrors)")
            await Self.exchange(&again, UInt8(round))
            #expect(again.aliceErrors.isEmpty && again.bobErrors.isEmpty, "round \(round): \(again.aliceErrors) \(again.bobErrors)")
            ledger.record(again)
            if Bool.random(using: &random) { try pools.reopen() }
        }
        ledger.check()
        #expect(try PoolVerifier.verify(directory: pools.dir.sub("alice")).isEmpty)
        #expect(try PoolVerifier.verify(directory: pools.dir.sub("bob")).isEmpty)
    }
}
