import Testing
import QKDCrypto
@testable import QKDPostProcessing
import QKDSimulation

/// The round state machines must not copy the Cascade engine on each step (copy on write of its
/// arrays would cost a memmove of every permuted key and parity plane per round trip).
@Suite struct RoundCopyTests {
    @Test func bobsEngineKeyStaysInPlaceAcrossCascadeSteps() throws {
        let (a, b) = simulate(qber: 0.03, pulses: 60_000, seed: 11, probabilityZ: 0.75)
        var pair = Pair(alice: a, bob: b, seed: 3)
        var addresses = Set<UInt>()
        var stepsWhileReconciling = 0
        var progress = true
        while progress {
            progress = false
            while let action = pair.bob.nextAction() {
                progress = true
                if case .send(let m) = action { try pair.alice.receive(bytes: m.encoded(roundID: pair.alice.roundID)) }
                if case .finished(let r) = action { pair.bobOutcome = .key(r) }
            }
            while let action = pair.alice.nextAction() {
                progress = true
                switch action {
                case .send(let m):
                    try pair.bob.receive(bytes: m.encoded(roundID: pair.bob.roundID))
                    if let address = pair.bob.reconcilingKeyAddress {
                        addresses.insert(address)
                        stepsWhileReconciling += 1
                    }
                case .finished(let r): pair.aliceOutcome = .key(r)
                case .aborted: Issue.record("the round aborted")
                }
            }
        }
        guard case .key(let ka) = pair.aliceOutcome, case .key(let kb) = pair.bobOutcome else {
            Issue.record("the round did not finish with a key")
            return
        }
        #expect(ka.key == kb.key)
        // Bob corrected errors, so his key buffer was written during the steps; with a copy per
        // step each write would land in a fresh buffer.
        #expect(kb.summary.correctedErrors > 0)
        #expect(stepsWhileReconciling > 10)
        #expect(addresses.count == 1, "Bob's engine key moved \(addresses.count - 1) times over \(stepsWhileReconciling) steps")
    }
}

/// Amplification runs inside `nextAction()` (Alice ahead of Bob's verification result, Bob after
/// handing his out). A driver that takes one action at a time from each side, so that Bob's
/// result reaches Alice before she is asked for her next action, must give the same keys and
/// summaries as a driver that drains each side.
@Suite struct RoundDriverOrderTests {
    @Test func oneActionAtATimeGivesTheSameKeysAsDraining() throws {
        let (a, b) = simulate(qber: 0.03, pulses: 60_000, seed: 12, probabilityZ: 0.75)
        var drained = Pair(alice: a, bob: b, seed: 4)
        drained.run()
        var lazy = Pair(alice: a, bob: b, seed: 4)
        var aliceResult: RoundResult?, bobResult: RoundResult?
        var progress = true
        while progress {
            progress = false
            if let action = lazy.bob.nextAction() {
                progress = true
                switch action {
                case .send(let m): try lazy.alice.receive(bytes: m.encoded(roundID: lazy.alice.roundID))
                case .finished(let r): bobResult = r
                case .aborted: Issue.record("Bob aborted")
                }
            }
            if let action = lazy.alice.nextAction() {
                progress = true
                switch action {
                case .send(let m): try lazy.bob.receive(bytes: m.encoded(roundID: lazy.bob.roundID))
                case .finished(let r): aliceResult = r
                case .aborted: Issue.record("Alice aborted")
                }
            }
        }
        guard case .key(let ka) = drained.aliceOutcome, case .key(let kb) = drained.bobOutcome else {
            Issue.record("the drained round did not finish with a key")
            return
        }
        let la = try #require(aliceResult), lb = try #require(bobResult)
        #expect(la.key == lb.key)
        #expect(la.key == ka.key && lb.key == kb.key)
        #expect(la.summary == ka.summary && lb.summary == kb.summary)
    }
}
