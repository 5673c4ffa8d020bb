import QKDCrypto
import QKDWire
import Testing
@testable import QKDSession

/// Tampering with the handshake (Spec/session.md section 3): every single bit flip of every
/// handshake frame is rejected with a typed error; a downgrade of the suite list in flight is
/// detected; and no side consumes a pad the other did not use.
@Suite struct TamperTests {
    enum Mode: String, CaseIterable, Sendable { case pool, pskKDF, pki }

    static func makePair(_ mode: Mode, seed: UInt64 = 21) -> Pair {
        switch mode {
        case .pool: Fixture.poolPair(seed: seed)
        case .pskKDF: Fixture.pskPair(seed: seed)
        case .pki: Fixture.pkiPair(seed: seed)
        }
    }

    /// Runs to quiet, lets every deadline pass, and runs to quiet again.
    static func settle(_ pair: inout Pair) async {
        await pair.settle()
        if !pair.alice.isClosed { pair.onAlice { try $0.handleTimeout(now: .max) } }
        if !pair.bob.isClosed { pair.onBob { try $0.handleTimeout(now: .max) } }
        await pair.settle()
    }

    /// Sizes of the four handshake frames (ClientHello, ServerHello, Alice's and Bob's
    /// Finished) in an honest run with the same seed.
    static func handshakeFrameSizes(_ mode: Mode) async -> [Int] {
        var probe = makePair(mode)
        probe.adversary = RecordingWire()
        probe.start()
        await probe.settle()
        precondition(probe.alice.isEstablished && probe.bob.isEstablished)
        return (probe.adversary as! RecordingWire).frames.prefix(4).map(\.count)
    }

    /// Every consumed inbound slot was handed out by the peer, and no slot was handed out twice.
    static func checkPads(_ pair: Pair) {
        #expect(!pair.aliceStore.reusedAnOutboundSlot && !pair.bobStore.reusedAnOutboundSlot)
        #expect(Set(pair.bobStore.consumedInbound).isSubset(of: pair.aliceStore.handedOut))
        #expect(Set(pair.aliceStore.consumedInbound).isSubset(of: pair.bobStore.handedOut))
    }

    @Test(arguments: Mode.allCases, 0..<4)
    func everyBitFlipOfEveryHandshakeFrameIsRejected(mode: Mode, frame: Int) async throws {
        let size = await Self.handshakeFrameSizes(mode)[frame]
        for bit in 0..<(size * 8) {
            var pair = Self.makePair(mode)
            pair.adversary = FlipOneBit(frameIndex: frame, bit: bit)
            pair.start()
            await Self.settle(&pair)
            // Nobody ends up with an open session, and both sides saw a typed error.
            let aliceOpen = pair.alice.isEstablished, bobOpen = pair.bob.isEstablished
            let aliceError = pair.alice.error, bobError = pair.bob.error
            #expect(!aliceOpen, "frame \(frame) bit \(bit): Alice established")
            #expect(!bobOpen, "frame \(frame) bit \(bit): Bob still established")
            #expect(aliceError != nil && bobError != nil, "frame \(frame) bit \(bit): \(String(describing: aliceError)) / \(String(describing: bobError))")
            #expect(!pair.aliceEvents.contains { if case .deliver = $0 { true } else { false } })
            Self.checkPads(pair)
            if frame < 3 {
                // Before Bob's Finished, Bob never accepts anything: he consumed nothing.
                #expect(pair.bobStore.consumedInbound.isEmpty || frame == 3)
                #expect(!pair.bobEvents.contains { if case .established = $0 { true } else { false } }, "frame \(frame) bit \(bit)")
            }
        }
    }

    /// The suite list [poly1305-otp, gf128-otp] is reordered in flight so that Bob picks the
    /// weaker-bound suite: the Finished tags disagree, both sides fail with a typed error, Bob
    /// consumes nothing, and a later resume absorbs the slots Alice burned.
    @Test(arguments: [Mode.pool, .pskKDF])
    func suiteDowngradeInFlightIsDetected(mode: Mode) async throws {
        var pair = Self.makePair(mode)
        pair.adversary = RewriteFrame(frameIndex: 0) { frame in
            var f = frame
            // ClientHello payload at offset 32: type, vec8 versions [1], vec8 suites [1, 2].
            precondition(f[35] == 2 && f[36] == 1 && f[37] == 2)
            f[36] = 2
            f[37] = 1
            return [f]
        }
        pair.start()
        await Self.settle(&pair)
        #expect(pair.bobErrors == [QKDError(.sessionAuthenticationFailed)])
        #expect(pair.aliceErrors == [QKDError(.sessionAuthenticationFailed)])
        #expect(pair.aliceEvents.contains { if case .alertReceived(.downgradeOrTamper, _) = $0 { true } else { false } })
        #expect(pair.bobStore.consumedInbound.isEmpty && pair.bobStore.handedOut.isEmpty)
        #expect(pair.aliceStore.consumedInbound.isEmpty)
        #expect(pair.aliceStore.handedOut == (mode == .pool ? [0, 1] : []))  // burned, never accepted
        Self.checkPads(pair)

        // A later connection over the same stores works and never reuses a slot.
        var again = mode == .pool ? Fixture.poolPair(seed: 22, stores: (pair.aliceStore, pair.bobStore)) : Fixture.pskPair(seed: 22)
        again.start()
        again.drive()
        let bothOpen = again.alice.isEstablished && again.bob.isEstablished
        #expect(bothOpen)
        if mode == .pool {
            #expect(again.aliceStore.handedOut == [0, 1, 2, 3])
            Self.checkPads(again)
        }
    }
}

/// Records every frame and delivers it unchanged.
struct RecordingWire: Adversary {
    var frames: [[UInt8]] = []
    mutating func intercept(_ frame: [UInt8], direction: Direction, index: Int) -> [[UInt8]] {
        frames.append(frame)
        return [frame]
    }
}
