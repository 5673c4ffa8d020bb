import QKDCrypto
import Testing
@testable import QKDKeyPool

/// `synchronise(to:)`: agreed watermarks recorded exactly (the split reads them), served
/// offsets moved forward only, targets inside a reserved chunk served from the chunk.
@Suite struct SynchroniseTests {
    @Test func aTargetInsideTheReservedChunkServesOnFromIt() throws {
        let dir = TempDir()
        let (alice, bob) = try makePair(dir, pskBytes: 4096, configuration: .init(chunkPads: 8))
        _ = try drain(alice, .outbound, pads: 3)  // served 48, durable 128
        try alice.synchronise(to: Watermarks(outbound: 96, inbound: 0))
        #expect(alice.watermarks() == Watermarks(outbound: 128, inbound: 0), "no new reservation, no skip beyond the chunk")
        let next = try alice.reservePad(direction: .outbound, count: 1)
        #expect(next.offset == 96)
        _ = next
        let (offset, bytes) = try alice.withReservedPad(direction: .outbound) { o, b in (o, Array(b)) }
        #expect(offset == 112)
        #expect(bytes == (try bob.withInboundPad(at: 112) { Array($0) }), "the chunk's pads are the peer's inbound pads")
        #expect(try alice.status().ledger.reconciles)
        #expect(try PoolVerifier.verify(directory: alice.directory).isEmpty)
    }

    @Test func anAgreedValueBelowTheServedOffsetKeepsWhatWasConsumed() throws {
        let dir = TempDir()
        let (_, bob) = try makePair(dir, pskBytes: 4096, configuration: .init(chunkPads: 8))
        try bob.acceptInbound(through: 80)  // bob consumed the peer's Finished
        try bob.synchronise(to: Watermarks(outbound: 0, inbound: 48))
        #expect(bob.servedWatermarks().inbound == 80, "consumed pads stay consumed")
        #expect(throws: QKDError(.watermarkBackward)) { _ = try bob.inboundPad(at: 64) }
        // The agreed value is what was passed, not the served offset.
        let inbound = try #require(try bob.status().streams.first { $0.direction == .inbound })
        #expect(inbound.syncedWatermark == 48)
        #expect(try PoolVerifier.verify(directory: bob.directory).isEmpty)
    }
}
