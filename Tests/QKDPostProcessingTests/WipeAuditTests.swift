import Testing
import QKDCrypto
@testable import QKDPostProcessing
import QKDSimulation

/// Key material is wiped when released (DESIGN.md). A `BitVector` wipe that runs while another
/// copy shares the words zeroes a fresh copy (copy on write) and leaves the key in the shared
/// buffer, so these tests count, on the test's own thread, the wipes that reached a copy
/// (``WipeAudit``) over honest, tampered, aborted and discarded rounds: none may.
@Suite struct WipeAuditTests {
    /// The detector itself: a wipe of a shared copy is counted, and value semantics hold.
    @Test func aWipeOfASharedCopyIsCounted() {
        var a = BitVector(count: 130)
        a[129] = true
        let b = a
        let misses = WipeAudit.missesOnThisThread
        a.wipe()
        #expect(WipeAudit.missesOnThisThread == misses + 1)
        #expect(b[129])
        let wipes = WipeAudit.wipesOnThisThread
        var c = BitVector(words: b.words.map { $0 }, count: b.count)  // Its own buffer.
        c.wipe()
        #expect(WipeAudit.wipesOnThisThread == wipes + 1)
        #expect(WipeAudit.missesOnThisThread == misses + 1)
    }

    @Test(arguments: [(0.01, UInt64(1)), (0.03, UInt64(2)), (0.06, UInt64(3))])
    func honestRoundsWipeOnlyTheirOwnBuffers(qber: Double, seed: UInt64) throws {
        let misses = WipeAudit.missesOnThisThread, wipes = WipeAudit.wipesOnThisThread
        var pair = ownedPair(simulate(qber: qber, pulses: 80_000, seed: seed, probabilityZ: 0.75), seed: seed)
        pair.run()
        guard case .key(let ka) = pair.aliceOutcome, case .key(let kb) = pair.bobOutcome else {
            Issue.record("the round did not finish with a key")
            return
        }
        #expect(ka.key == kb.key)
        #expect(WipeAudit.missesOnThisThread == misses, "a wipe reached a copy: the key stayed in a shared buffer")
        // Both raw keys, the sifted keys, the pass copies and the reconciled keys were wiped.
        #expect(WipeAudit.wipesOnThisThread >= wipes + 6)
    }

    /// A flipped byte in any message, either direction: the round fails or aborts, and no wipe on
    /// the way reaches a copy.
    @Test(arguments: [false, true])
    func tamperedRoundsWipeOnlyTheirOwnBuffers(fromAlice: Bool) throws {
        let (a, b) = simulate(qber: 0.03, pulses: 60_000, seed: 9, probabilityZ: 0.75)  // Records copied per run.
        var honest = Pair(alice: a, bob: b, seed: 9)
        honest.run()
        let count = fromAlice ? honest.aliceSent.count : honest.bobSent.count
        #expect(count > 4)
        for index in Array(0..<min(count, 8)) + [count - 2, count - 1] where index >= 0 {
            let misses = WipeAudit.missesOnThisThread
            var pair = ownedPair((a, b), seed: 9)
            pair.run { from, i, bytes in
                guard from == fromAlice, i == index else { return bytes }
                var t = bytes
                t[t.count - 1] ^= 0x01
                return t
            }
            // Both sides may finish (a flipped bit of the amplification seed passes verification
            // and gives different keys): post-processing runs over the authenticated channel,
            // whose round tag then fails (Spec/session.md 6), so neither key is ever released.
            #expect(WipeAudit.missesOnThisThread == misses, "message \(index) tampered: a wipe reached a copy")
        }
    }

    /// A round dropped mid-Cascade (the node does this when the link fails): `discard()` wipes the
    /// engines' buffers themselves, and the machines refuse later messages.
    @Test func discardMidCascadeWipesTheEngines() throws {
        var pair = ownedPair(simulate(qber: 0.03, pulses: 60_000, seed: 5, probabilityZ: 0.75), seed: 5)
        var lastFromAlice: [UInt8]?
        var steps = 0
        while pair.bob.reconcilingKeyAddress == nil || steps < 6 {
            var moved = false
            while let action = pair.bob.nextAction() {
                moved = true
                if case .send(let m) = action { try pair.alice.receive(bytes: m.encoded(roundID: pair.alice.roundID)) }
            }
            while let action = pair.alice.nextAction() {
                moved = true
                if case .send(let m) = action {
                    lastFromAlice = m.encoded(roundID: pair.bob.roundID)
                    try pair.bob.receive(bytes: lastFromAlice!)
                    if pair.bob.reconcilingKeyAddress != nil { steps += 1 }
                }
            }
            try #require(moved, "the round stopped before Cascade")
        }
        let misses = WipeAudit.missesOnThisThread, wipes = WipeAudit.wipesOnThisThread
        pair.alice.discard()
        pair.bob.discard()
        #expect(WipeAudit.missesOnThisThread == misses)
        // Each engine holds at least its key (pass 0).
        #expect(WipeAudit.wipesOnThisThread >= wipes + 2)
        #expect(pair.bob.reconcilingKeyAddress == nil)
        #expect(pair.alice.nextAction() == nil && pair.bob.nextAction() == nil)
        #expect(throws: QKDError(.ppUnexpectedMessage)) { try pair.bob.receive(bytes: lastFromAlice!) }
    }
}

/// Records whose bit arrays share nothing with the caller's: the machines wipe the raw bits
/// they were given, and a caller that still held the same arrays would make that wipe reach a
/// copy (the node's records go out of scope when the round starts).
private func ownedPair(_ records: (AliceRecord, BobRecord), seed: UInt64) -> Pair {
    var (a, b) = records
    a.bits = a.bits.map { $0 }
    b.bits = b.bits.map { $0 }
    return Pair(alice: a, bob: b, seed: seed)
}
