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
