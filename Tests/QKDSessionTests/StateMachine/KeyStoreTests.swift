import QKDCrypto
import QKDWire
import Testing
@testable import QKDSession

/// The in-memory key store: linked material, reserve-before-use in chunks, crashes waste but
/// never reuse, watermarks only move forward (DESIGN.md key pool invariants 1 and 3).
@Suite struct KeyStoreTests {
    static func bytes(_ s: SecretBytes) -> [UInt8] { s.withUnsafeBytes { Array($0) } }

    @Test func pairIsLinked() throws {
        let (a, b) = Fixture.stores(seed: 1, slots: 64)
        for _ in 0..<5 {
            let (slot, bytes) = try a.takeOutbound { ($0, Array($1)) }
            #expect(bytes == (try b.inboundPad(at: slot) { Array($0) }))
        }
        let (slot, bytes) = try b.takeOutbound { ($0, Array($1)) }
        #expect(bytes == (try a.inboundPad(at: slot) { Array($0) }))
        #expect(bytes.count == 16)
        #expect(a.holdsPoolMaterial && !InMemoryKeyStore.empty().holdsPoolMaterial)
    }

    @Test func reservesInChunksAndACrashSkipsTheRest() throws {
        let (a, _) = Fixture.stores(seed: 2, slots: 100, chunk: 8)
        for _ in 0..<3 { _ = try a.takeOutbound { s, _ in s } }
        #expect(a.durableOutboundReserved == 8 && a.reservationCount == 1)
        a.simulateCrash()
        #expect(a.watermarks.outboundNext == 8)
        #expect(try a.takeOutbound { s, _ in s } == 8)
        #expect(a.handedOut == [0, 1, 2, 8] && !a.reusedAnOutboundSlot)
    }

    @Test func watermarksOnlyMoveForward() throws {
        let (a, _) = Fixture.stores(seed: 3, slots: 100)
        try a.advance(to: PoolWatermarks(outboundNext: 10, inboundNext: 20))
        try a.advance(to: PoolWatermarks(outboundNext: 5, inboundNext: 5))
        #expect(a.watermarks == PoolWatermarks(outboundNext: 10, inboundNext: 20))
        try a.consumeInbound(through: 3)
        #expect(a.watermarks.inboundNext == 20)
        #expect(throws: QKDError(.sessionReplay)) { try a.inboundPad(at: 19) { _ in } }
        // Skipped outbound slots are durably burned: a crash cannot bring them back.
        a.simulateCrash()
        #expect(try a.takeOutbound { s, _ in s } == 10)
    }

    @Test func exhaustionIsTyped() throws {
        let (a, _) = Fixture.stores(seed: 4, slots: 2)
        _ = try a.takeOutbound { s, _ in s }
        _ = try a.takeOutbound { s, _ in s }
        #expect(throws: QKDError(.sessionPoolExhausted)) { try a.takeOutbound { s, _ in s } }
        #expect(throws: QKDError(.sessionPoolExhausted)) { try a.inboundPad(at: 2) { _ in } }
    }
}
