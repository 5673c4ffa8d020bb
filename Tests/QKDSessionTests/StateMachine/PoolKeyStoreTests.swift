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
}
