#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import QKDCrypto

/// The simulated channel and detector as they were written before the word-at-a-time devices
/// (session 9), Alice's source included: one draw per photon for each event, per-photon arrays
/// of flags; with the same seed it gives the same records as those devices did. Kept as the
/// baseline of `qkd-node bench link` and as the source of the round fuzz target's records (its
/// pinned inputs were made with them); the link itself uses ``QuantumChannel`` and ``BobDevice``. The same physics: loss, Eve on a
/// fraction of the arriving photons, basis choice, efficiency, misalignment, dark counts.
public struct PhotonByPhotonLink: Sendable {
    /// The parameters.
    public let parameters: LinkParameters
    private var aliceRandom: DeterministicRandomSource
    private var channelRandom: DeterministicRandomSource
    private var bobRandom: DeterministicRandomSource

    /// Creates a link with the same seeding as ``BB84Link``.
    /// - Parameters:
    ///   - parameters: the physics.
    ///   - seed: the seed of the three random streams.
    public init(parameters: LinkParameters, seed: UInt64) {
        self.parameters = parameters
        aliceRandom = DeterministicRandomSource(seed: seed ^ 0xA11CE)
        channelRandom = DeterministicRandomSource(seed: seed ^ 0xC4A77E1)
        bobRandom = DeterministicRandomSource(seed: seed ^ 0xB0B)
    }

    /// Runs one round of pulses, photon by photon.
    /// - Returns: what Alice's node sees and what Bob's node sees.
    public mutating func runRound() -> (alice: AliceRecord, bob: BobRecord) {
        let (record, photons) = emit(pulses: parameters.pulsesPerRound)
        let arrivals = transmit(photons)
        return (record, detect(arrivals))
    }

    /// Alice's source as it was: one random word per significant bit of the X probability for
    /// every word of bases.
    private mutating func emit(pulses: Int) -> (record: AliceRecord, photons: PhotonTrain) {
        let probabilityZ = parameters.probabilityZ
        let words = (pulses + 63) / 64
        var bits = [UInt64](repeating: 0, count: words)
        var bases = [UInt64](repeating: 0, count: words)
        let xThreshold = fraction32(1 - probabilityZ)
        for i in 0..<words {
            bits[i] = aliceRandom.next()
            bases[i] = probabilityZ == 0.5 ? aliceRandom.next() : bernoulliWord(xThreshold, &aliceRandom)
        }
        if pulses & 63 != 0, words > 0 {
            let mask = (UInt64(1) << UInt64(pulses & 63)) - 1
            bits[words - 1] &= mask
            bases[words - 1] &= mask
        }
        return (AliceRecord(slotCount: pulses, bits: bits, bases: bases), PhotonTrain(slotCount: pulses, bits: bits, bases: bases))
    }

    private struct PhotonArrivals {
        let slotCount: Int
        var slots: [UInt64] = []
        var bases: [Bool] = []
        var bits: [Bool] = []
    }

    private mutating func transmit(_ photons: PhotonTrain) -> PhotonArrivals {
        let transmittance = parameters.channelTransmittance, interceptFraction = parameters.interceptFraction
        var out = PhotonArrivals(slotCount: photons.slotCount)
        let skipper = GeometricSkipper(probability: transmittance)
        let expected = Int(Double(photons.slotCount) * transmittance * 1.05) + 16
        out.slots.reserveCapacity(expected)
        out.bases.reserveCapacity(expected)
        out.bits.reserveCapacity(expected)
        var slot = 0
        while let s = skipper.next(from: slot, limit: photons.slotCount, &channelRandom) {
            var basis = (photons.bases[s >> 6] >> UInt64(s & 63)) & 1 == 1
            var bit = (photons.bits[s >> 6] >> UInt64(s & 63)) & 1 == 1
            if interceptFraction > 0, uniform(&channelRandom) < interceptFraction {
                let eveBasis = channelRandom.next() & 1 == 1
                if eveBasis != basis { bit = channelRandom.next() & 1 == 1 }
                basis = eveBasis
            }
            out.slots.append(UInt64(s))
            out.bases.append(basis)
            out.bits.append(bit)
            slot = s + 1
        }
        return out
    }

    private mutating func detect(_ arrivals: PhotonArrivals) -> BobRecord {
        let probabilityZ = parameters.probabilityZ, efficiency = parameters.detectorEfficiency
        let misalignment = parameters.misalignment
        let slotCount = arrivals.slotCount
        let darkSkipper = GeometricSkipper(probability: parameters.darkCountProbability)
        var random = bobRandom
        defer { bobRandom = random }
        var nextDark = darkSkipper.next(from: 0, limit: slotCount, &random) ?? Int.max
        var out = PerPhotonOutput(capacity: arrivals.slots.count + 16)
        var i = 0
        let zThreshold = probabilityZ
        while i < arrivals.slots.count || nextDark != Int.max {
            let photonSlot = i < arrivals.slots.count ? Int(arrivals.slots[i]) : Int.max
            let bobBasis = !(uniform(&random) < zThreshold)  // true = X
            if photonSlot <= nextDark {
                let s = photonSlot
                i += 1
                let dark = s == nextDark
                if dark { nextDark = darkSkipper.next(from: s + 1, limit: slotCount, &random) ?? Int.max }
                let detected = efficiency >= 1 || uniform(&random) < efficiency
                if detected {
                    var bit: Bool
                    if bobBasis == arrivals.bases[i - 1] {
                        bit = arrivals.bits[i - 1]
                        if misalignment > 0, uniform(&random) < misalignment { bit.toggle() }
                    } else {
                        bit = random.next() & 1 == 1
                    }
                    out.push(s, bobBasis, bit)
                } else if dark {
                    out.push(s, bobBasis, random.next() & 1 == 1)  // The dark count still clicks.
                }
            } else {
                let s = nextDark
                nextDark = darkSkipper.next(from: s + 1, limit: slotCount, &random) ?? Int.max
                out.push(s, bobBasis, random.next() & 1 == 1)
            }
        }
        return BobRecord(slotCount: slotCount, slots: out.slots, bases: out.bases, bits: out.bits)
    }
}

private struct PerPhotonOutput {
    var slots: [UInt64] = []
    var bases: [UInt64] = []
    var bits: [UInt64] = []
    var count = 0

    init(capacity: Int) {
        slots.reserveCapacity(capacity)
        bases.reserveCapacity((capacity + 63) >> 6)
        bits.reserveCapacity((capacity + 63) >> 6)
    }

    @inline(__always)
    mutating func push(_ slot: Int, _ basis: Bool, _ bit: Bool) {
        if count & 63 == 0 {
            bases.append(0)
            bits.append(0)
        }
        if basis { bases[count >> 6] |= UInt64(1) << UInt64(count & 63) }
        if bit { bits[count >> 6] |= UInt64(1) << UInt64(count & 63) }
        slots.append(UInt64(slot))
        count += 1
    }
}
