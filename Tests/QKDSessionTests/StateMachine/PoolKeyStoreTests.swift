import Foundation
import QKDCrypto
import QKDKeyPool
import Testing
@testable import QKDSession

/// ``PoolKeyStore``: the durable pool behind the session's slot interface. Alice's outbound
/// slots are Bob's inbound slots byte for byte; a restart (close and reopen) skips the rest of
/// a reserved chunk and never hands a slot out twice; replays and exhaustion map to the
/// session's typed errors.
@Suite struct PoolKeyStoreTests {
    final class Dir: @unchecked Sendable {
        let path: String
        init() {
            path = (NSTemporaryDirectory() as NSString).appendingPathComponent("qkd-poolstore-\(UUID().uuidString)")
            try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        func sub(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    static let config = KeyPool.Configuration(chunkPads: 8, lowWaterBytes: 0)

    static func pair(_ dir: Dir, pskBytes: Int = 4096) throws -> (PoolKeyStore, PoolKeyStore) {
        var random = DeterministicRandomSource(seed: 42)
        let psk = try PSKFile.generate(byteCount: pskBytes, using: &random)
        let alice = try KeyPool.create(directory: dir.sub("alice"), role: .alice, linkID: psk.id, configuration: config)
        let bob = try KeyPool.create(directory: dir.sub("bob"), role: .bob, linkID: psk.id, configuration: config)
        try alice.importPSK(psk)
        try bob.importPSK(psk)
        return (PoolKeyStore(pool: alice), PoolKeyStore(pool: bob))
    }

    @Test func slotsAreLinkedAcrossTheTwoPools() throws {
        let dir = Dir()
        let (a, b) = try Self.pair(dir)
        #expect(a.holdsPoolMaterial && b.holdsPoolMaterial)
        for expected in 0..<20 as Range<UInt64> {
            let (slot, bytes) = try a.takeOutbound { ($0, Array($1)) }
            #expect(slot == expected)
            #expect(bytes == (try b.inboundPad(at: slot) { Array($0) }))
        }
        let (slot, bytes) = try b.takeOutbound { ($0, Array($1)) }
        #expect(bytes == (try a.inboundPad(at: slot) { Array($0) }))
        #expect(a.watermarks == PoolWatermarks(outboundNext: 20, inboundNext: 0))
    }

    @Test func inboundIsLentUntilConsumedThenAReplayIsTyped() throws {
        let dir = Dir()
        let (_, b) = try Self.pair(dir)
        let first = try b.inboundPad(at: 3) { Array($0) }
        #expect(first == (try b.inboundPad(at: 3) { Array($0) }), "lending does not consume")
        try b.consumeInbound(through: 3)
        #expect(b.watermarks.inboundNext == 4)
        #expect(throws: QKDError(.sessionReplay)) { try b.inboundPad(at: 3) { _ in } }
        try b.consumeInbound(through: 1)  // behind the watermark: no-op, never backward
        #expect(b.watermarks.inboundNext == 4)
    }

    @Test func aRestartSkipsTheReservedChunkAndNeverReusesASlot() throws {
        let dir = Dir()
        let (a, b) = try Self.pair(dir)
        var seen: [UInt64: [UInt8]] = [:]
        for _ in 0..<3 {
            let (slot, bytes) = try a.takeOutbound { ($0, Array($1)) }
            seen[slot] = bytes
        }
        a.pool.close()
        let reopened = PoolKeyStore(pool: try KeyPool.open(directory: dir.sub("alice"), configuration: Self.config))
        #expect(reopened.watermarks.outboundNext == 8, "restart begins at the durable chunk end")
        let (slot, bytes) = try reopened.takeOutbound { ($0, Array($1)) }
        #expect(slot == 8 && seen[slot] == nil)
        #expect(bytes == (try b.inboundPad(at: 8) { Array($0) }))
    }

    @Test func advanceOnlyMovesForwardAndBurnsDurably() throws {
        let dir = Dir()
        let (a, _) = try Self.pair(dir)
        try a.advance(to: PoolWatermarks(outboundNext: 30, inboundNext: 12))
        #expect(a.watermarks == PoolWatermarks(outboundNext: 30, inboundNext: 12))
        try a.advance(to: PoolWatermarks(outboundNext: 2, inboundNext: 2))
        #expect(a.watermarks == PoolWatermarks(outboundNext: 30, inboundNext: 12))
        #expect(throws: QKDError(.sessionReplay)) { try a.inboundPad(at: 11) { _ in } }
        a.pool.close()
        let reopened = PoolKeyStore(pool: try KeyPool.open(directory: dir.sub("alice"), configuration: Self.config))
        #expect(try reopened.takeOutbound { s, _ in s } >= 30)
    }

    @Test func exhaustionAndDesyncAreTyped() throws {
        let dir = Dir()
        // A 4096-byte PSK splits into two 2048-byte streams: 128 slots each.
        let (a, b) = try Self.pair(dir)
        let slots = a.pool.streamLengths().outbound / 16
        #expect(throws: QKDError(.sessionPoolDesync)) { try a.advance(to: PoolWatermarks(outboundNext: slots + 1, inboundNext: 0)) }
        try a.advance(to: PoolWatermarks(outboundNext: slots - 1, inboundNext: 0))
        _ = try a.takeOutbound { s, _ in s }
        #expect(!a.holdsPoolMaterial)
        #expect(throws: QKDError(.sessionPoolExhausted)) { try a.takeOutbound { s, _ in s } }
        #expect(throws: QKDError(.sessionPoolExhausted)) { try b.inboundPad(at: b.pool.streamLengths().inbound / 16) { _ in } }
    }

    // MARK: - Sessions over two real pools

    /// Shuttles transmitted bytes between two sessions until both are quiet; returns the
    /// payloads each side had delivered.
    static func settle(_ alice: inout Session, _ bob: inout Session) throws -> (alice: [[UInt8]], bob: [[UInt8]]) {
        var delivered: ([[UInt8]], [[UInt8]]) = ([], [])
        var moved = true
        while moved {
            moved = false
            while let action = alice.nextAction() {
                if case .transmit(let bytes) = action { try bob.receive(bytes, now: 0); moved = true }
                if case .deliver(let payload, _) = action { delivered.0.append(payload) }
            }
            while let action = bob.nextAction() {
                if case .transmit(let bytes) = action { try alice.receive(bytes, now: 0); moved = true }
                if case .deliver(let payload, _) = action { delivered.1.append(payload) }
            }
        }
        return delivered
    }

    static func sessions(_ a: PoolKeyStore, _ b: PoolKeyStore, seed: UInt64) throws -> (Session, Session) {
        let link = [UInt8](repeating: 0x42, count: 16)
        var alice = Session(configuration: SessionConfiguration(role: .alice, mode: .pool, linkID: link, splitPolicy: [1, 0, 32]),
                            keyStore: a, random: DeterministicRandomSource(seed: seed))
        var bob = Session(configuration: SessionConfiguration(role: .bob, linkID: link, splitPolicy: [1, 0, 32]),
                          keyStore: b, random: DeterministicRandomSource(seed: seed + 1))
        try alice.start(now: 0)
        _ = try settle(&alice, &bob)
        #expect(alice.isEstablished && bob.isEstablished)
        return (alice, bob)
    }

    static func consumerKeys(_ pool: KeyPool) throws -> [[UInt8]] {
        try pool.deliverConsumerKeys(count: 4).map { $0.bytes.withUnsafeBytes { Array($0) } }
    }

    /// The split of a distilled key reads the pool's agreed watermarks; the session's
    /// handshake must leave both pools with the same ones even when one side has a partly
    /// used reservation chunk and the other restarted. Otherwise the two sides would file the
    /// same distilled key into different streams and consumer keys.
    @Test func handshakesOverRealPoolsKeepTheSplitIdenticalAcrossRestarts() throws {
        let dir = Dir()
        var (a, b) = try Self.pair(dir, pskBytes: 4096)  // levels below the top-up target: the split reads them
        // Alice used a few pads in an earlier process run; Bob restarted after reserving.
        for _ in 0..<3 { _ = try a.takeOutbound { s, _ in s } }
        _ = try b.takeOutbound { s, _ in s }
        b.pool.close()
        b = PoolKeyStore(pool: try KeyPool.open(directory: dir.sub("bob"), configuration: Self.config))

        let policy = RefillPolicy(padBytesPerRound: 1024, roundsAhead: 4, reserveBytes: 4096, consumerKeyBytes: 32)
        for round in 1...3 as ClosedRange<UInt64> {
            var (alice, bob) = try Self.sessions(a, b, seed: round * 10)
            for i in 0..<5 { try alice.send([UInt8(i), 1, 2, 3]); try bob.send([UInt8(i), 9]) }
            let delivered = try Self.settle(&alice, &bob)
            #expect(delivered.alice.count == 5 && delivered.bob.count == 5)
            #expect(a.pool.watermarks() != Watermarks(outbound: 0, inbound: 0))
            // One distilled key, absorbed on both sides.
            var random = DeterministicRandomSource(seed: round)
            let key = SecretBytes(randomCount: 8192, using: &random)
            let sa = try a.pool.absorbDistilledKey(roundID: round, bytes: key, policy: policy)
            let sb = try b.pool.absorbDistilledKey(roundID: round, bytes: key, policy: policy)
            #expect(sa.outboundTopUp == sb.inboundTopUp && sa.inboundTopUp == sb.outboundTopUp)
            #expect(sa.consumerKeyIDs == sb.consumerKeyIDs)
            #expect(try Self.consumerKeys(a.pool) == (try Self.consumerKeys(b.pool)))
            // A restart of Alice between rounds.
            if round == 2 {
                a.pool.close()
                a = PoolKeyStore(pool: try KeyPool.open(directory: dir.sub("alice"), configuration: Self.config))
            }
        }
        #expect(try PoolVerifier.verify(directory: dir.sub("alice")).isEmpty)
        #expect(try PoolVerifier.verify(directory: dir.sub("bob")).isEmpty)
    }
}
