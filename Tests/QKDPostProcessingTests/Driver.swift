import QKDCrypto
@testable import QKDPostProcessing
import QKDSimulation

/// Both roles over an in-memory pipe of encoded bytes, with an optional tamper hook on every
/// message (STYLE.md, "Tests": two machines in memory with an adversary in between).
struct Pair {
    var alice: AliceRound
    var bob: BobRound
    /// Every encoded message Alice sent, in order.
    var aliceSent: [[UInt8]] = []
    var bobSent: [[UInt8]] = []
    var aliceOutcome: Outcome?
    var bobOutcome: Outcome?

    enum Outcome {
        case key(RoundResult)
        case aborted(AbortReason, RoundSummary)
        case error(QKDError)
    }

    init(roundID: UInt64 = 7, configuration: PostProcessingConfiguration = .init(), alice a: AliceRecord, bob b: BobRecord,
         seed: UInt64) {
        alice = AliceRound(roundID: roundID, configuration: configuration,
                           bits: BitVector(words: a.bits, count: a.slotCount),
                           bases: BitVector(words: a.bases, count: a.slotCount),
                           random: DeterministicRandomSource(seed: seed &+ 1000))
        bob = BobRound(roundID: roundID, configuration: configuration, slotCount: UInt64(b.slotCount),
                       positions: b.slots, bases: BitVector(words: b.bases, count: b.detectionCount),
                       bits: BitVector(words: b.bits, count: b.detectionCount))
    }

    /// Runs until both sides stop. `tamper` sees (fromAlice, index, bytes) and returns the bytes to deliver.
    mutating func run(tamper: ((Bool, Int, [UInt8]) -> [UInt8]?)? = nil) {
        var progress = true
        while progress {
            progress = false
            while let action = bob.nextAction() {
                progress = true
                switch action {
                case .send(let m):
                    var bytes = m.encoded(roundID: bob.roundID)
                    bobSent.append(bytes)
                    if let t = tamper { guard let b = t(false, bobSent.count - 1, bytes) else { continue }; bytes = b }
                    if aliceOutcome == nil {
                        do { try alice.receive(bytes: bytes) } catch let e as QKDError { aliceOutcome = .error(e) } catch {}
                    }
                case .finished(let r): bobOutcome = .key(r)
                case .aborted(let r, let s): bobOutcome = .aborted(r, s)
                }
            }
            while let action = alice.nextAction() {
                progress = true
                switch action {
                case .send(let m):
                    var bytes = m.encoded(roundID: alice.roundID)
                    aliceSent.append(bytes)
                    if let t = tamper { guard let b = t(true, aliceSent.count - 1, bytes) else { continue }; bytes = b }
                    if bobOutcome == nil {
                        do { try bob.receive(bytes: bytes) } catch let e as QKDError { bobOutcome = .error(e) } catch {}
                    }
                case .finished(let r): aliceOutcome = .key(r)
                case .aborted(let r, let s): aliceOutcome = .aborted(r, s)
                }
            }
        }
    }
}

func simulate(qber: Double, pulses: Int, seed: UInt64, probabilityZ: Double = 0.5, intercept: Double = 0,
              lossDB: Double = 0, dark: Double = 0) -> (AliceRecord, BobRecord) {
    var link = BB84Link(parameters: LinkParameters(pulsesPerRound: pulses, probabilityZ: probabilityZ, channelLossDB: lossDB,
                                                   detectorEfficiency: 1, darkCountProbability: dark,
                                                   misalignment: qber, interceptFraction: intercept), seed: seed)
    return link.runRound()
}
