import QKDCrypto
import QKDWire
import Testing
@testable import QKDSession

/// Spec/session.md sections 3 to 5: every mode completes against itself, drip-fed or not, and
/// the keys agree (data flows both ways afterwards).
@Suite struct HandshakeTests {
    static func established(_ events: [SessionAction]) -> SecurityLevel? {
        for case .established(let level) in events { return level }
        return nil
    }

    static func exchange(_ pair: inout Pair) {
        pair.onAlice { try $0.send(Array("hello bob".utf8)) }
        pair.onBob { try $0.send(Array("hello alice".utf8)) }
        pair.drive()
    }

    @Test(arguments: [MACSuite.poly1305OTP, .gf128OTP], [false, true])
    func poolModeCompletes(suite: MACSuite, drip: Bool) throws {
        var pair = Fixture.poolPair(suites: [suite])
        pair.drip = drip
        pair.start()
        pair.drive()
        #expect(pair.aliceErrors.isEmpty && pair.bobErrors.isEmpty)
        #expect(Self.established(pair.aliceEvents) == .informationTheoretic)
        #expect(Self.established(pair.bobEvents) == .informationTheoretic)
        #expect(pair.alice.sessionID == pair.bob.sessionID)
        let epochs = (pair.alice.epochs!, pair.bob.epochs!)
        #expect(epochs.0 == (1, 1) && epochs.1 == (1, 1))
        Self.exchange(&pair)
        #expect(Pair.delivered(pair.bobEvents) == [Array("hello bob".utf8)])
        #expect(Pair.delivered(pair.aliceEvents) == [Array("hello alice".utf8)])
        // Key slots 0 and the Finished pad 1 in each direction, then one data pad each.
        #expect(pair.aliceStore.handedOut == [0, 1, 2])
        #expect(pair.bobStore.handedOut.prefix(2) == [0, 1])
        #expect(pair.aliceStore.watermarks.inboundNext == pair.bobStore.watermarks.outboundNext)
    }

    @Test(arguments: [MACSuite.poly1305OTP, .gf128OTP], [false, true])
    func pskKDFCompletes(suite: MACSuite, drip: Bool) throws {
        var pair = Fixture.pskPair(suites: [suite])
        pair.drip = drip
        pair.start()
        pair.drive()
        #expect(pair.aliceErrors.isEmpty && pair.bobErrors.isEmpty)
        #expect(Self.established(pair.aliceEvents) == .computational)
        #expect(Self.established(pair.bobEvents) == .computational)
        #expect(pair.alice.epochs! == (0, 0))
        Self.exchange(&pair)
        #expect(Pair.delivered(pair.bobEvents) == [Array("hello bob".utf8)])
        #expect(Pair.delivered(pair.aliceEvents) == [Array("hello alice".utf8)])
        // The pool is not touched by a computational handshake.
        #expect(pair.aliceStore.handedOut.isEmpty && pair.bobStore.handedOut.isEmpty)
    }

    /// Spec/session.md section 2, "Switch to information-theoretic".
    @Test func pskKDFSwitchesToPoolEpochs() throws {
        var pair = Fixture.pskPair(withPool: true)
        pair.start()
        pair.drive()
        #expect(pair.alice.securityLevel == .computational)
        pair.onAlice { try $0.poolReady() }
        pair.drive()
        #expect(pair.alice.securityLevel == .computational)  // Bob's direction is still bootstrap
        pair.onBob { try $0.poolReady() }
        pair.drive()
        #expect(pair.alice.securityLevel == .informationTheoretic)
        #expect(pair.bob.securityLevel == .informationTheoretic)
        #expect(pair.alice.epochs! == (1, 1))
        #expect(pair.aliceEvents.contains { if case .securityLevelChanged(.informationTheoretic) = $0 { true } else { false } })
        Self.exchange(&pair)
        #expect(Pair.delivered(pair.bobEvents) == [Array("hello bob".utf8)])
        #expect(pair.aliceErrors.isEmpty && pair.bobErrors.isEmpty)
    }

    @Test func wrongPSKIsRejected() {
        var pair = Fixture.pskPair(alicePSK: Fixture.psk(1), bobPSK: Fixture.psk(2))
        pair.start()
        pair.drive()
        #expect(pair.bobErrors == [QKDError(.sessionAuthenticationFailed)])
        #expect(pair.aliceErrors == [QKDError(.sessionAuthenticationFailed)])
        #expect(pair.aliceEvents.contains { if case .alertReceived(.downgradeOrTamper, _) = $0 { true } else { false } })
        let open = pair.alice.isEstablished || pair.bob.isEstablished
        #expect(!open)
    }

    @Test func unknownPSKIsRejected() {
        var pair = Fixture.pskPair(alicePSK: Fixture.psk(1, id: 1), bobPSK: Fixture.psk(1, id: 2))
        pair.start()
        pair.drive()
        #expect(pair.bobErrors == [QKDError(.sessionUnknownPSK)])
        #expect(pair.aliceErrors == [QKDError(.sessionUnknownPSK)])
    }

    @Test func mismatchedConfigurationsAreTypedErrors() {
        var noSuite = Fixture.poolPair { if $0.role == .bob { $0.suites = [.gf128OTP] } else { $0.suites = [.poly1305OTP] } }
        noSuite.start(); noSuite.drive()
        #expect(noSuite.bobErrors == [QKDError(.sessionNoCommonSuite)] && noSuite.aliceErrors == [QKDError(.sessionNoCommonSuite)])

        var link = Fixture.poolPair { if $0.role == .bob { $0.linkID = [UInt8](repeating: 1, count: 16) } }
        link.start(); link.drive()
        #expect(link.bobErrors == [QKDError(.sessionUnknownLink)] && link.aliceErrors == [QKDError(.sessionUnknownLink)])

        var policy = Fixture.poolPair { if $0.role == .bob { $0.splitPolicy = [9] } }
        policy.start(); policy.drive()
        #expect(policy.bobErrors == [QKDError(.sessionPolicyMismatch)])

        var mode = Fixture.poolPair { if $0.role == .bob { $0.acceptedModes = [.pskKDF] } }
        mode.start(); mode.drive()
        #expect(mode.bobErrors == [QKDError(.sessionUnsupportedMode)] && mode.aliceErrors == [QKDError(.sessionUnsupportedMode)])

        var granularity = Fixture.poolPair { $0.granularities = $0.role == .bob ? .perRound : .perFrame }
        granularity.start(); granularity.drive()
        #expect(granularity.bobErrors == [QKDError(.sessionNoCommonSuite)])
    }

    /// Spec/session.md section 4.1: a watermark claim beyond maxResyncSkip is refused.
    @Test func poolDesyncBeyondTheSkipBoundIsRefused() throws {
        let (a, b) = Fixture.stores(seed: 3, slots: 200_000)
        try a.advance(to: PoolWatermarks(outboundNext: 70_000, inboundNext: 0))
        var pair = Fixture.poolPair(stores: (a, b))
        pair.start()
        pair.drive()
        #expect(pair.bobErrors == [QKDError(.sessionPoolDesync)])
        #expect(pair.aliceErrors == [QKDError(.sessionPoolDesync)])
        #expect(b.consumedInbound.isEmpty && b.handedOut.isEmpty)
    }

    /// Within the bound, both sides advance to the maximum (Spec/session.md section 4.1).
    @Test func watermarksAgreeOnTheMaximum() throws {
        let (a, b) = Fixture.stores(seed: 4)
        try a.advance(to: PoolWatermarks(outboundNext: 10, inboundNext: 3))
        try b.advance(to: PoolWatermarks(outboundNext: 7, inboundNext: 2))
        var pair = Fixture.poolPair(stores: (a, b))
        pair.start()
        pair.drive()
        let open = pair.alice.isEstablished && pair.bob.isEstablished
        #expect(open)
        #expect(a.handedOut == [10, 11])  // max(10, 2)
        #expect(b.handedOut == [7, 8])    // max(7, 3)
        #expect(b.consumedInbound.contains(11) && a.consumedInbound.contains(8))
    }

    @Test func handshakeTimesOut() {
        var pair = Fixture.poolPair()
        pair.start()
        _ = pair.alice.nextAction()  // the ClientHello is lost
        #expect(pair.alice.nextDeadline == 10_000_000_000)
        pair.onAlice { try $0.handleTimeout(now: 9_999_999_999) }
        #expect(pair.aliceErrors.isEmpty)
        pair.onAlice { try $0.handleTimeout(now: 10_000_000_000) }
        #expect(pair.aliceErrors == [QKDError(.sessionTimeout)])
        // Poisoned: every later call throws the same error.
        #expect(throws: QKDError(.sessionTimeout)) { try pair.alice.receive([1, 2, 3], now: 1) }
    }
}
