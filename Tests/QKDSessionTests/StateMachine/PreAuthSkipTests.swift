import QKDCrypto
import QKDKeyPool
import QKDWire
import Testing
@testable import QKDSession

extension TwoPools {
    /// Closes and reopens Alice's pool only (a restart of Alice's process).
    mutating func reopenAlice() throws {
        alice.pool.close()
        alice = PoolKeyStore(pool: try KeyPool.open(directory: dir.sub("alice"), configuration: Self.configuration))
    }

    /// Closes and reopens Bob's pool only.
    mutating func reopenBob() throws {
        bob.pool.close()
        bob = PoolKeyStore(pool: try KeyPool.open(directory: dir.sub("bob"), configuration: Self.configuration))
    }
}

/// Spec/session.md section 4.1: a pool-mode hello is unauthenticated until the peer's Finished
/// verifies, so no watermark moves on its word before then. A forged or corrupted hello costs
/// each node at most the slots of its own Finished (and of one authenticated alert): no skip of
/// its outbound stream, nothing inbound. Over two real durable pools (``PoolKeyStore``).
@Suite struct PreAuthSkipTests {
    /// Pool slots one side handed out and consumed in one attempt.
    struct Used {
        var aliceOut: [UInt64] = []
        var aliceIn: [UInt64] = []
        var bobOut: [UInt64] = []
        var bobIn: [UInt64] = []

        init(_ pair: Pair) {
            for case .padUsed(let d, let slot) in pair.aliceEvents {
                if d == .aliceToBob { aliceOut.append(slot) } else { aliceIn.append(slot) }
            }
            for case .padUsed(let d, let slot) in pair.bobEvents {
                if d == .bobToAlice { bobOut.append(slot) } else { bobIn.append(slot) }
            }
        }
    }

    /// Rewrites the pool watermarks of a hello frame (ClientHello or ServerHello); the frame is
    /// re-encoded, so it stays well formed and only the watermark changes.
    static func rewriteWatermarks(_ bytes: [UInt8], _ change: (inout PoolWatermarks) -> Void) -> [UInt8] {
        var decoder = FrameDecoder()
        decoder.append(bytes)
        let frame = try! decoder.nextFrame()!
        var payload: [UInt8] = []
        switch try! HandshakeMessage(decoding: frame.payload) {
        case .clientHello(var hello):
            guard case .pool(var w) = hello.body else { preconditionFailure("not a pool hello") }
            change(&w)
            hello.body = .pool(w)
            hello.encode(into: &payload)
        case .serverHello(var hello):
            guard case .pool(var w) = hello.body else { preconditionFailure("not a pool hello") }
            change(&w)
            hello.body = .pool(w)
            hello.encode(into: &payload)
        case .finished:
            preconditionFailure("not a hello")
        }
        let rewritten = Frame(type: frame.header.type, sequenceNumber: frame.header.sequenceNumber,
                              keyReference: frame.header.keyReference, payload: payload)
        return try! FrameEncoder().encode(rewritten)
    }

    static func poolPair(_ pools: TwoPools, seed: UInt64) -> Pair {
        var alice = SessionConfiguration(role: .alice, mode: .pool, linkID: Fixture.linkID, splitPolicy: Fixture.policy)
        var bob = SessionConfiguration(role: .bob, acceptedModes: [.pool], linkID: Fixture.linkID, splitPolicy: Fixture.policy)
        TwoPoolTests.tweak(&alice)
        TwoPoolTests.tweak(&bob)
        return Pair(alice: alice, bob: bob, aliceStore: pools.alice, bobStore: pools.bob, seed: seed)
    }

    /// An honest session with traffic both ways, closed by Alice.
    static func honestSession(_ pools: TwoPools, seed: UInt64, tag: UInt8, ledger: inout TwoPoolTests.Ledger) async {
        var pair = poolPair(pools, seed: seed)
        pair.start()
        await pair.settle()
        #expect(pair.alice.isEstablished && pair.bob.isEstablished, "\(pair.aliceErrors) \(pair.bobErrors)")
        await TwoPoolTests.exchange(&pair, tag)
        pair.onAlice { try $0.close() }
        await pair.settle()
        #expect(pair.aliceErrors.isEmpty && pair.bobErrors.isEmpty, "\(pair.aliceErrors) \(pair.bobErrors)")
        ledger.record(pair)
    }

    /// One handshake through `adversary`, then both handshake deadlines fire (a tampered hello
    /// can leave both nodes waiting for the other's Finished). Checks the exact cost: neither
    /// side is established, both end with a typed error, nothing inbound is consumed, and each
    /// outbound watermark moved by exactly the slots that node handed out for its own Finished
    /// (and one authenticated alert), contiguous from where it was: no skip.
    static func tamperedAttempt(_ pools: TwoPools, adversary: any Adversary, seed: UInt64, label: String,
                                ledger: inout TwoPoolTests.Ledger) async {
        let aliceBefore = pools.alice.watermarks
        let bobBefore = pools.bob.watermarks
        var pair = poolPair(pools, seed: seed)
        pair.adversary = adversary
        pair.start()
        await pair.settle()
        let late = pair.now &+ 20_000_000_000
        if !pair.alice.isClosed { pair.onAlice { try $0.handleTimeout(now: late) } }
        if !pair.bob.isClosed { pair.onBob { try $0.handleTimeout(now: late) } }
        await pair.settle()
        ledger.record(pair)
        let used = Used(pair)
        let established = pair.alice.isEstablished || pair.bob.isEstablished
        #expect(!established, "\(label): a tampered hello established a session")
        #expect(!pair.aliceErrors.isEmpty && !pair.bobErrors.isEmpty, "\(label): both sides end with a typed error")
        #expect(used.aliceIn.isEmpty && used.bobIn.isEmpty, "\(label): inbound consumed \(used.aliceIn) \(used.bobIn)")
        #expect(used.aliceOut.count <= 3 && used.bobOut.count <= 3, "\(label): \(used.aliceOut) \(used.bobOut)")
        #expect(used.aliceOut == Array(aliceBefore.outboundNext..<aliceBefore.outboundNext + UInt64(used.aliceOut.count)), "\(label): Alice skipped: \(aliceBefore) then \(used.aliceOut)")
        #expect(used.bobOut == Array(bobBefore.outboundNext..<bobBefore.outboundNext + UInt64(used.bobOut.count)), "\(label): Bob skipped: \(bobBefore) then \(used.bobOut)")
        let aliceAfter = pools.alice.watermarks
        let bobAfter = pools.bob.watermarks
        #expect(aliceAfter == PoolWatermarks(outboundNext: aliceBefore.outboundNext + UInt64(used.aliceOut.count), inboundNext: aliceBefore.inboundNext),
                "\(label): Alice's watermarks \(aliceBefore) -> \(aliceAfter), own slots \(used.aliceOut)")
        #expect(bobAfter == PoolWatermarks(outboundNext: bobBefore.outboundNext + UInt64(used.bobOut.count), inboundNext: bobBefore.inboundNext),
                "\(label): Bob's watermarks \(bobBefore) -> \(bobAfter), own slots \(used.bobOut)")
    }

    /// Each watermark field of each hello raised by 1, 1000 and 65,536 slots (the last is the
    /// whole resync bound): a typed error, no skip on either side, and an honest resume works
    /// afterwards without reusing a slot. The old rule (both sides advance to the claimed
    /// maximum before any tag verified) burned 1000 slots of Alice's stream for the ServerHello
    /// inbound case.
    @Test func rewrittenHelloWatermarksMoveNothing() async throws {
        let pools = try TwoPools(pskBytes: 262_144)
        defer { pools.close() }
        var ledger = TwoPoolTests.Ledger()
        await Self.honestSession(pools, seed: 1, tag: 1, ledger: &ledger)
        var seed: UInt64 = 100
        for frameIndex in [0, 1] {  // ClientHello, ServerHello
            for field in ["outbound", "inbound"] {
                for delta: UInt64 in [1, 1000, 65_536] {
                    let adversary = RewriteFrame(frameIndex: frameIndex) { frame in
                        [Self.rewriteWatermarks(frame) { w in
                            if field == "outbound" { w.outboundNext += delta } else { w.inboundNext += delta }
                        }]
                    }
                    seed += 1
                    await Self.tamperedAttempt(pools, adversary: adversary, seed: seed,
                                               label: "\(frameIndex == 0 ? "ClientHello" : "ServerHello") \(field) +\(delta)", ledger: &ledger)
                }
            }
        }
        await Self.honestSession(pools, seed: 2, tag: 2, ledger: &ledger)
        ledger.check()
        #expect(try PoolVerifier.verify(directory: pools.dir.sub("alice")).isEmpty)
        #expect(try PoolVerifier.verify(directory: pools.dir.sub("bob")).isEmpty)
    }

    /// Every single bit flip of the pool-mode ClientHello and ServerHello frames (header and
    /// payload): the same exact-cost checks per flip, then an honest resume.
    @Test func everyBitFlipOfAPoolHelloMovesNothing() async throws {
        let pools = try TwoPools(pskBytes: 524_288)
        defer { pools.close() }
        var ledger = TwoPoolTests.Ledger()
        await Self.honestSession(pools, seed: 1, tag: 1, ledger: &ledger)
        // The hello frames' sizes (fixed: the watermarks are u64 fields), from an honest
        // handshake over in-memory stores: frame 0 is the ClientHello, frame 1 the ServerHello.
        var random = DeterministicRandomSource(seed: 5)
        let stores = InMemoryKeyStore.pair(slotsPerDirection: 64, random: &random)
        var probe = Self.poolPair(pools, seed: 7)
        probe = Pair(alice: probe.alice.configuration, bob: probe.bob.configuration, aliceStore: stores.alice, bobStore: stores.bob, seed: 7)
        probe.start()
        probe.drive()
        let clientHello = probe.aliceEvents.compactMap { if case .transmit(let b) = $0 { b } else { nil } }.first
        let serverHello = probe.bobEvents.compactMap { if case .transmit(let b) = $0 { b } else { nil } }.first
        let sizes = [try #require(clientHello).count, try #require(serverHello).count]
        var seed: UInt64 = 1000
        for frameIndex in [0, 1] {
            for bit in 0..<(sizes[frameIndex] * 8) {
                seed += 1
                await Self.tamperedAttempt(pools, adversary: FlipOneBit(frameIndex: frameIndex, bit: bit), seed: seed,
                                           label: "frame \(frameIndex) bit \(bit)", ledger: &ledger)
            }
        }
        await Self.honestSession(pools, seed: 3, tag: 3, ledger: &ledger)
        ledger.check()
        #expect(try PoolVerifier.verify(directory: pools.dir.sub("alice")).isEmpty)
        #expect(try PoolVerifier.verify(directory: pools.dir.sub("bob")).isEmpty)
    }

    /// Sends single payloads Alice to Bob until Bob's durable inbound watermark (reserved in
    /// chunks) lies beyond what Alice has used: a restart of Bob then leaves his inbound
    /// watermark ahead of Alice's outbound one.
    static func sessionLeavingBobsInboundChunkAhead(_ pools: TwoPools, ledger: inout TwoPoolTests.Ledger) async throws {
        var pair = poolPair(pools, seed: 50)
        pair.start()
        await pair.settle()
        try #require(pair.alice.isEstablished && pair.bob.isEstablished)
        var i: UInt8 = 0
        while pools.bob.pool.watermarks().inbound / 16 <= pools.alice.watermarks.outboundNext {
            i += 1
            try #require(i < 20, "Bob's durable inbound watermark never got ahead of Alice's outbound one")
            pair.onAlice { try $0.send([i]) }
            await pair.settle()
        }
        ledger.record(pair)
    }

    /// A resume after Bob restarted with his inbound watermark (durable, chunk-rounded) ahead
    /// of Alice's outbound one: only Alice's Finished would need a skip, so Bob sends his
    /// Finished first, from his own watermark, and Alice skips only after it verified. Then a
    /// restart of Alice (her inbound ahead of Bob's outbound: the usual order, Bob skips after
    /// Alice's Finished verified), then of both (possibly both ahead: Alice's bounded skip).
    @Test func resumeWithOneSideAheadAfterARestartConverges() async throws {
        var pools = try TwoPools(pskBytes: 65_536)
        defer { pools.close() }
        var ledger = TwoPoolTests.Ledger()
        try await Self.sessionLeavingBobsInboundChunkAhead(pools, ledger: &ledger)
        try pools.reopenBob()
        let aliceOut = pools.alice.watermarks.outboundNext
        let bobIn = pools.bob.watermarks.inboundNext
        try #require(bobIn > aliceOut)

        var resumed = Self.poolPair(pools, seed: 60)
        resumed.start()
        await resumed.settle()
        #expect(resumed.alice.isEstablished && resumed.bob.isEstablished, "\(resumed.aliceErrors) \(resumed.bobErrors)")
        // Bob went first: his Finished slot before any inbound slot, and Alice's Finished at
        // Bob's inbound watermark (her skip, after Bob's Finished verified).
        let firstBob = resumed.bobEvents.firstIndex { if case .padUsed(.bobToAlice, _) = $0 { true } else { false } }
        let firstBobIn = resumed.bobEvents.firstIndex { if case .padUsed(.aliceToBob, _) = $0 { true } else { false } }
        #expect(firstBob != nil && firstBobIn != nil && firstBob! < firstBobIn!)
        let aliceFinished = resumed.aliceEvents.compactMap { if case .padUsed(.aliceToBob, let s) = $0 { s } else { nil } }.first
        #expect(aliceFinished == bobIn)
        await TwoPoolTests.exchange(&resumed, 7)
        resumed.onBob { try $0.close() }
        await resumed.settle()
        ledger.record(resumed)

        for restart in ["alice", "both"] {
            if restart == "alice" { try pools.reopenAlice() } else { try pools.reopen() }
            var again = Self.poolPair(pools, seed: restart == "alice" ? 61 : 62)
            again.start()
            await again.settle()
            #expect(again.alice.isEstablished && again.bob.isEstablished, "\(restart): \(again.aliceErrors) \(again.bobErrors)")
            await TwoPoolTests.exchange(&again, 8)
            again.onAlice { try $0.close() }
            await again.settle()
            ledger.record(again)
        }
        ledger.check()
        #expect(try PoolVerifier.verify(directory: pools.dir.sub("alice")).isEmpty)
        #expect(try PoolVerifier.verify(directory: pools.dir.sub("bob")).isEmpty)
    }

    /// One side's inbound lagging: Bob's last frames are dropped, so Alice never consumed them;
    /// the resume skips Alice's inbound stream to Bob's outbound watermark only after Bob's
    /// Finished verified, and both pools record the same agreed starts.
    @Test func resumeWithAliceInboundLaggingConverges() async throws {
        let pools = try TwoPools(pskBytes: 65_536)
        defer { pools.close() }
        var ledger = TwoPoolTests.Ledger()
        var pair = Self.poolPair(pools, seed: 70)
        pair.start()
        await pair.settle()
        try #require(pair.alice.isEstablished && pair.bob.isEstablished)
        let cut = pair.frameCount
        pair.adversary = RewriteFrame(frameIndex: cut) { _ in [] }
        pair.onBob { try $0.send([1, 2, 3]) }
        await pair.settle()
        ledger.record(pair)
        try #require(pools.alice.watermarks.inboundNext < pools.bob.watermarks.outboundNext)
        var again = Self.poolPair(pools, seed: 71)
        again.start()
        await again.settle()
        #expect(again.alice.isEstablished && again.bob.isEstablished, "\(again.aliceErrors) \(again.bobErrors)")
        await TwoPoolTests.exchange(&again, 9)
        ledger.record(again)
        ledger.check()
    }

    /// Both inbound watermarks ahead of the peer's outbound ones (what a restart of both does
    /// when each inbound reservation chunk ran ahead; made here by accepting inbound pads
    /// directly): neither Finished can go first without a skip. With `maxPreAuthSkip = 0`
    /// Alice refuses (`session.pool-desync`) and nothing moves; with the default she skips
    /// her outbound stream to Bob's inbound watermark (3 slots) first, and the resume works.
    @Test func bothInboundWatermarksAheadUseTheBoundedPreAuthSkip() async throws {
        let pools = try TwoPools(pskBytes: 65_536)
        defer { pools.close() }
        var ledger = TwoPoolTests.Ledger()
        await Self.honestSession(pools, seed: 80, tag: 1, ledger: &ledger)
        try pools.bob.pool.acceptInbound(through: (pools.alice.watermarks.outboundNext + 3) * 16)
        try pools.alice.pool.acceptInbound(through: (pools.bob.watermarks.outboundNext + 3) * 16)
        let aliceBefore = pools.alice.watermarks
        let bobBefore = pools.bob.watermarks

        var refused = Self.poolPair(pools, seed: 81)
        var strict = refused.alice.configuration
        strict.maxPreAuthSkip = 0
        refused = Pair(alice: strict, bob: refused.bob.configuration, aliceStore: pools.alice, bobStore: pools.bob, seed: 81)
        refused.start()
        await refused.settle()
        #expect(refused.aliceErrors.first?.code == .sessionPoolDesync, "\(refused.aliceErrors)")
        #expect(!refused.alice.isEstablished && !refused.bob.isEstablished && !refused.bobErrors.isEmpty)
        #expect(pools.alice.watermarks == aliceBefore && pools.bob.watermarks == bobBefore)
        ledger.record(refused)

        var resumed = Self.poolPair(pools, seed: 82)
        resumed.start()
        await resumed.settle()
        #expect(resumed.alice.isEstablished && resumed.bob.isEstablished, "\(resumed.aliceErrors) \(resumed.bobErrors)")
        let aliceFinished = resumed.aliceEvents.compactMap { if case .padUsed(.aliceToBob, let s) = $0 { s } else { nil } }.first
        #expect(aliceFinished == bobBefore.inboundNext && bobBefore.inboundNext == aliceBefore.outboundNext + 3)
        await TwoPoolTests.exchange(&resumed, 2)
        ledger.record(resumed)
        ledger.check()
        #expect(try PoolVerifier.verify(directory: pools.dir.sub("alice")).isEmpty)
        #expect(try PoolVerifier.verify(directory: pools.dir.sub("bob")).isEmpty)
    }
}
