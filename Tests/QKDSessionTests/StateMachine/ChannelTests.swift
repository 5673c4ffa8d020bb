import QKDCrypto
import QKDWire
import Testing
@testable import QKDSession

/// The authenticated channel (Spec/session.md section 6): sequence numbers, bad tags counted
/// and bounded, rotation after a failure, rounds released only after both closing tags, and
/// resume after a crash without pad reuse.
@Suite struct ChannelTests {
    static func established(_ pair: inout Pair) {
        pair.start()
        pair.drive()
        precondition(pair.alice.isEstablished && pair.bob.isEstablished, "handshake failed: \(pair.aliceErrors) \(pair.bobErrors)")
    }

    static func dropped(_ events: [SessionAction]) -> [QKDError.Code] {
        events.compactMap { if case .frameDropped(let e) = $0 { return e.code } else { return nil } }
    }

    static func roundEvents(_ events: [SessionAction]) -> [String] {
        events.compactMap {
            switch $0 {
            case .roundAuthenticated(let r): "ok \(r)"
            case .roundFailed(let r, _): "failed \(r)"
            default: nil
            }
        }
    }

    /// Strictly increasing inbound consumption, no outbound slot twice, and every consumed
    /// inbound slot was handed out by the peer.
    static func checkPads(_ a: InMemoryKeyStore, _ b: InMemoryKeyStore) {
        #expect(!a.reusedAnOutboundSlot && !b.reusedAnOutboundSlot)
        #expect(zip(a.consumedInbound, a.consumedInbound.dropFirst()).allSatisfy { $0 < $1 })
        #expect(zip(b.consumedInbound, b.consumedInbound.dropFirst()).allSatisfy { $0 < $1 })
        #expect(Set(b.consumedInbound).isSubset(of: a.handedOut))
        #expect(Set(a.consumedInbound).isSubset(of: b.handedOut))
    }

    @Test func replayedFrameIsDroppedAndTheChannelGoesOn() {
        var pair = Fixture.poolPair()
        Self.established(&pair)
        pair.adversary = RewriteFrame(frameIndex: 4) { [$0, $0] }  // Alice's first data frame, twice
        pair.onAlice { try $0.send([1]) }
        pair.onAlice { try $0.send([2]) }
        pair.drive()
        #expect(Pair.delivered(pair.bobEvents) == [[1], [2]])
        #expect(Self.dropped(pair.bobEvents) == [.sessionReplay])
        #expect(pair.bob.authenticationFailures == 1)
    }

    /// Spec/session.md section 4: a pool slot more than maxResyncSkip beyond the inbound
    /// watermark is refused before any pad is read, and nothing is consumed.
    @Test func slotFarBeyondTheWatermarkIsRefused() {
        var pair = Fixture.poolPair()
        Self.established(&pair)
        let consumed = pair.bobStore.consumedInbound
        pair.adversary = FlipOneBit(frameIndex: 4, bit: 22 * 8)  // slot field byte 22 (big-endian): slot + 2^40
        pair.onAlice { try $0.send([1]) }
        pair.drive()
        #expect(Self.dropped(pair.bobEvents) == [.sessionPoolDesync])
        #expect(pair.bobStore.consumedInbound == consumed)
    }

    @Test func poolReadyWithoutPoolMaterialIsATypedErrorAndTheSessionStaysOpen() {
        var pair = Fixture.pskPair()
        Self.established(&pair)
        pair.onAlice { try $0.poolReady() }
        #expect(pair.aliceErrors == [QKDError(.sessionPoolExhausted)])
        pair.onAlice { try $0.send([1]) }
        pair.drive()
        #expect(Pair.delivered(pair.bobEvents) == [[1]])
    }

    /// An exhausted pool is fatal for the sender; with no pad left its alert goes out
    /// unauthenticated, which the peer reports but cannot act on (Spec/session.md section 6).
    @Test func poolExhaustionClosesTheSender() {
        var pair = Fixture.poolPair(stores: Fixture.stores(seed: 8, slots: 5))
        Self.established(&pair)  // slots 0 and 1 of each direction
        for i in 0..<3 { pair.onAlice { try $0.send([UInt8(i)]) } }  // slots 2, 3, 4
        pair.onAlice { try $0.send([9]) }
        pair.drive()
        #expect(pair.aliceErrors == [QKDError(.sessionPoolExhausted)])
        #expect(Pair.delivered(pair.bobEvents) == [[0], [1], [2]])
        #expect(pair.bobEvents.contains { if case .alertReceived(.poolExhausted, authenticated: false) = $0 { true } else { false } })
        Self.checkPads(pair.aliceStore, pair.bobStore)
    }

    @Test func withheldFrameIsAGap() {
        var pair = Fixture.poolPair()
        Self.established(&pair)
        pair.adversary = RewriteFrame(frameIndex: 4) { _ in [] }
        pair.onAlice { try $0.send([1]) }
        pair.onAlice { try $0.send([2]) }
        pair.drive()
        #expect(Pair.delivered(pair.bobEvents).isEmpty)
        #expect(Self.dropped(pair.bobEvents) == [.sessionGap])
    }

    /// A forged frame with the expected sequence number is dropped and counted, its pad is not
    /// consumed, Bob asks for a rotation and Alice rotates; the genuine frame still arrives.
    @Test(arguments: [false, true])
    func forgeryTriggersARotation(psk: Bool) {
        var pair = psk ? Fixture.pskPair() : Fixture.poolPair()
        Self.established(&pair)
        let consumedBefore = pair.bobStore.consumedInbound
        pair.adversary = RewriteFrame(frameIndex: 4) { frame in
            var forged = frame
            forged[forged.count - 1] ^= 1  // wrong tag
            return [forged, frame]
        }
        pair.onAlice { try $0.send([7, 7]) }
        pair.drive()
        #expect(Pair.delivered(pair.bobEvents) == [[7, 7]])
        #expect(Self.dropped(pair.bobEvents) == [.frameAuthenticationFailed])
        let base: UInt32 = psk ? 0 : 1
        let epochs = (pair.alice.epochs!, pair.bob.epochs!)
        #expect(epochs.0.outbound == base + 1 && epochs.1.inbound == base + 1)
        #expect(pair.bobStore.consumedInbound.count == consumedBefore.count + (psk ? 0 : 3))  // Rotate pad, new key slot, data pad
        pair.onAlice { try $0.send([8]) }
        pair.drive()
        #expect(Pair.delivered(pair.bobEvents) == [[7, 7], [8]])
        Self.checkPads(pair.aliceStore, pair.bobStore)
    }

    /// Spec/session.md section 6: at maxAuthenticationFailures the receiver closes with an
    /// authenticated alert, which closes the sender too.
    @Test func failuresAreBounded() {
        var pair = Fixture.poolPair()
        Self.established(&pair)
        pair.adversary = RewriteFrame(frameIndex: 4) { frame in
            var forged = frame
            forged[forged.count - 1] ^= 1
            return Array(repeating: forged, count: 8)
        }
        pair.onAlice { try $0.send([1]) }
        pair.drive()
        #expect(pair.bobErrors == [QKDError(.sessionAuthenticationFailed)])
        #expect(pair.aliceErrors == [QKDError(.sessionAuthenticationFailed)])
        #expect(pair.aliceEvents.contains { if case .alertReceived(.authenticationFailed, authenticated: true) = $0 { true } else { false } })
        #expect(throws: QKDError(.sessionAuthenticationFailed)) { try pair.bob.send([1]) }  // poisoned
    }

    @Test func unauthenticatedAlertAfterTheHandshakeDoesNotClose() throws {
        var pair = Fixture.poolPair()
        Self.established(&pair)
        let forged = try FrameEncoder().encode(Frame(type: .alert, sequenceNumber: 2, keyReference: .none,
                                                     payload: Alert(code: .poolDesync, message: "forged").encoded))
        pair.onBob { try $0.receive(forged, now: 0) }
        pair.onAlice { try $0.send([5]) }
        pair.drive()
        #expect(pair.bobEvents.contains { if case .alertReceived(.poolDesync, authenticated: false) = $0 { true } else { false } })
        #expect(Pair.delivered(pair.bobEvents) == [[5]])
        let open = pair.bob.isEstablished
        #expect(open)
    }

    @Test func gracefulClose() {
        var pair = Fixture.poolPair()
        Self.established(&pair)
        pair.onAlice { try $0.close() }
        pair.drive()
        #expect(pair.bobEvents.contains { if case .closed(nil) = $0 { true } else { false } })
        #expect(pair.aliceErrors.isEmpty && pair.bobErrors.isEmpty)
        #expect(throws: QKDError(.sessionClosed)) { try pair.bob.send([1]) }
    }

    /// Rotation on the tag-count policy (Spec/session.md section 2).
    @Test func rotatesAfterTheConfiguredTagCount() {
        var pair = Fixture.poolPair { $0.rotateAfterTags = 3 }
        Self.established(&pair)
        for i in 0..<10 { pair.onAlice { try $0.send([UInt8(i)]) } }
        pair.drive()
        #expect(Pair.delivered(pair.bobEvents).count == 10)
        let epochs = pair.bob.epochs!
        #expect(epochs.inbound >= 4)
        Self.checkPads(pair.aliceStore, pair.bobStore)
    }

    // MARK: Rounds

    @Test(arguments: [false, true])
    func roundIsReleasedOnlyAfterBothClosingTags(psk: Bool) {
        var pair = psk ? Fixture.pskPair() : Fixture.poolPair()
        Self.established(&pair)
        pair.onAlice { try $0.beginRound(1) }
        for i in 0..<3 { pair.onAlice { try $0.send([UInt8(i), 1]) } }
        pair.onAlice { try $0.closeRound() }
        pair.drive()
        // Bob got Alice's frames provisionally and verified her closing tag, but his own
        // direction of round 1 is not closed: nobody may release the round yet.
        let bobRound = pair.bobEvents.compactMap { if case .deliver(let p, 1?) = $0 { return p } else { return nil } }
        #expect(bobRound == [[0, 1], [1, 1], [2, 1]])
        #expect(Self.roundEvents(pair.aliceEvents).isEmpty && Self.roundEvents(pair.bobEvents).isEmpty)
        pair.onBob { try $0.beginRound(1) }
        pair.onBob { try $0.send([9]) }
        pair.drive()
        #expect(Self.roundEvents(pair.aliceEvents).isEmpty && Self.roundEvents(pair.bobEvents).isEmpty)
        pair.onBob { try $0.closeRound() }
        pair.drive()
        #expect(Self.roundEvents(pair.aliceEvents) == ["ok 1"])
        #expect(Self.roundEvents(pair.bobEvents) == ["ok 1"])
        // One closing pad per direction (plus one confirmation each), however many frames.
        if !psk { Self.checkPads(pair.aliceStore, pair.bobStore) }
        #expect(pair.aliceErrors.isEmpty && pair.bobErrors.isEmpty)
    }

    /// A round frame changed in flight makes the round fail; it is never authenticated on
    /// either side, and the channel goes on (the next round works).
    @Test func tamperedRoundFrameFailsTheRound() {
        var pair = Fixture.poolPair()
        Self.established(&pair)
        // Frames 4 (begin), 5, 6 (data), 7 (close) from Alice: flip a payload bit of frame 6.
        pair.adversary = FlipOneBit(frameIndex: 6, bit: 32 * 8)
        pair.onAlice { try $0.beginRound(1) }
        pair.onAlice { try $0.send([1, 1]) }
        pair.onAlice { try $0.send([2, 2]) }
        pair.onAlice { try $0.closeRound() }
        pair.onBob { try $0.beginRound(1) }
        pair.onBob { try $0.send([3]) }
        pair.onBob { try $0.closeRound() }
        pair.drive()
        #expect(Self.roundEvents(pair.bobEvents) == ["failed 1"])
        #expect(Self.roundEvents(pair.aliceEvents).isEmpty)
        // The next round goes through.
        pair.onAlice { try $0.beginRound(2) }
        pair.onAlice { try $0.send([4]) }
        pair.onAlice { try $0.closeRound() }
        pair.onBob { try $0.beginRound(2) }
        pair.onBob { try $0.closeRound() }
        pair.drive()
        #expect(Self.roundEvents(pair.bobEvents) == ["failed 1", "ok 2"])
        #expect(Self.roundEvents(pair.aliceEvents) == ["ok 2"])
        Self.checkPads(pair.aliceStore, pair.bobStore)
    }

    // MARK: Crash and resume (Spec/session.md section 4)

    static func traffic(_ pair: inout Pair, _ n: Int) {
        for i in 0..<n {
            pair.onAlice { try $0.send([UInt8(i)]) }
            pair.onBob { try $0.send([UInt8(i), 0]) }
        }
        pair.drive()
    }

    @Test(arguments: [true, false])
    func resumeAfterACrashNeverReusesAPad(crashAlice: Bool) {
        let stores = Fixture.stores(seed: 30, chunk: 8)
        var first = Fixture.poolPair(seed: 30, stores: stores)
        Self.established(&first)
        Self.traffic(&first, 5)
        // The crashed side loses its in-memory cursor; the other side just loses the connection.
        (crashAlice ? stores.0 : stores.1).simulateCrash()
        var second = Fixture.poolPair(seed: 31, stores: stores)
        Self.established(&second)
        Self.traffic(&second, 5)
        #expect(Pair.delivered(second.bobEvents).count == 5 && Pair.delivered(second.aliceEvents).count == 5)
        Self.checkPads(stores.0, stores.1)
        // The crashed side restarted at its durable reservation: slots were skipped, not reused.
        let crashed = crashAlice ? stores.0 : stores.1
        #expect(crashed.handedOut.contains(8) && !crashed.handedOut.contains(7))
        // And once more, crashing in the middle of a handshake (after Alice's Finished).
        var third = Fixture.poolPair(seed: 32, stores: stores)
        third.start()
        for _ in 0..<3 { third.step() }
        stores.0.simulateCrash()
        var fourth = Fixture.poolPair(seed: 33, stores: stores)
        Self.established(&fourth)
        Self.traffic(&fourth, 2)
        #expect(Pair.delivered(fourth.bobEvents).count == 2)
        Self.checkPads(stores.0, stores.1)
    }
}
