#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import QKDCrypto

/// Uniform double in [0, 1) from 53 random bits.
@inline(__always)
func uniform(_ r: inout DeterministicRandomSource) -> Double {
    Double(r.next() >> 11) * 0x1p-53
}

/// A word whose bits are independently 1 with probability `p` (to 2^-32 precision).
///
/// Binary-expansion trick: for p = 0.b1 b2 ... b32, start from 0 and for i = 32 down to 1 set
/// `w = b_i ? (w | u) : (w & u)` with a fresh uniform word u; each bit ends up 1 with
/// probability exactly sum b_i 2^-i. One word of randomness per significant bit, 64 slots at once.
@inline(__always)
func bernoulliWord(_ threshold: UInt32, _ r: inout DeterministicRandomSource) -> UInt64 {
    if threshold == 0 { return 0 }
    var w: UInt64 = 0
    // From the least significant set bit b_i up to b_1: the leading zero bits matter too (each
    // one ANDs, halving the probability).
    var bit = threshold.trailingZeroBitCount
    while bit < 32 {
        let u = r.next()
        w = (threshold >> UInt32(bit)) & 1 == 1 ? (w | u) : (w & u)
        bit += 1
    }
    return w
}

/// p as a 32-bit binary fraction (p = 1 maps to all ones, an error of 2^-32).
func fraction32(_ p: Double) -> UInt32 {
    if p >= 1 { return UInt32.max }
    if p <= 0 { return 0 }
    return UInt32(min((p * 0x1p32).rounded(), Double(UInt32.max)))
}

/// Slot gaps of a Bernoulli(p) process by geometric skipping: the next event is
/// `floor(ln U / ln(1 - p))` slots after the previous one.
struct GeometricSkipper {
    private let logQ: Double
    private let always: Bool
    private let never: Bool
    init(probability p: Double) {
        always = p >= 1
        never = p <= 0
        logQ = (always || never) ? 0 : log1p(-p)
    }
    /// The next event slot at or after `from`, or nil if beyond `limit`.
    @inline(__always)
    func next(from: Int, limit: Int, _ r: inout DeterministicRandomSource) -> Int? {
        if never { return nil }
        if always { return from < limit ? from : nil }
        let u = 1 - uniform(&r)  // (0, 1]
        let gap = log(u) / logQ
        guard gap < Double(limit - from) else { return nil }
        let slot = from + Int(gap)
        return slot < limit ? slot : nil
    }
}

/// Alice's device: a single-photon BB84 source with its own seeded random generator.
public struct AliceDevice: Sendable {
    private var random: DeterministicRandomSource
    /// The basis bias.
    public let probabilityZ: Double

    /// Creates a device.
    /// - Parameters:
    ///   - probabilityZ: probability of the Z basis.
    ///   - seed: the device's random seed.
    public init(probabilityZ: Double, seed: UInt64) {
        self.probabilityZ = probabilityZ
        random = DeterministicRandomSource(seed: seed ^ 0xA11CE)
    }

    /// Prepares `pulses` states: a uniform bit and a basis per slot.
    /// - Parameter pulses: slots.
    /// - Returns: Alice's record and the photons sent into the channel (which only the
    ///   channel sees).
    public mutating func emit(pulses: Int) -> (record: AliceRecord, photons: PhotonTrain) {
        let words = (pulses + 63) / 64
        var bits = [UInt64](repeating: 0, count: words)
        var bases = [UInt64](repeating: 0, count: words)
        let xThreshold = fraction32(1 - probabilityZ)
        for i in 0..<words {
            bits[i] = random.next()
            bases[i] = probabilityZ == 0.5 ? random.next() : bernoulliWord(xThreshold, &random)
        }
        if pulses & 63 != 0, words > 0 {
            let mask = (UInt64(1) << UInt64(pulses & 63)) - 1
            bits[words - 1] &= mask
            bases[words - 1] &= mask
        }
        let record = AliceRecord(slotCount: pulses, bits: bits, bases: bases)
        return (record, PhotonTrain(slotCount: pulses, bits: bits, bases: bases))
    }
}

/// The quantum states Alice sent, one per slot. Only the channel reads it.
public struct PhotonTrain: Sendable {
    let slotCount: Int
    let bits: [UInt64]
    let bases: [UInt64]
}

/// Photons that reach Bob's detector: slot and the state (basis, bit) they carry.
public struct Arrivals: Sendable {
    let slotCount: Int
    var slots: [UInt64] = []
    var bases: [Bool] = []
    var bits: [Bool] = []
}

/// The quantum channel: loss and an intercept-resend eavesdropper.
public struct QuantumChannel: Sendable {
    private var random: DeterministicRandomSource
    /// Transmittance 0...1.
    public let transmittance: Double
    /// Fraction of pulses Eve intercepts.
    public let interceptFraction: Double

    /// Creates a channel.
    /// - Parameters:
    ///   - transmittance: probability a photon survives the fibre.
    ///   - interceptFraction: fraction of pulses Eve measures and resends.
    ///   - seed: the channel's (and Eve's) random seed.
    public init(transmittance: Double, interceptFraction: Double, seed: UInt64) {
        self.transmittance = transmittance
        self.interceptFraction = interceptFraction
        random = DeterministicRandomSource(seed: seed ^ 0xC4A77E1)
    }

    /// Carries photons to Bob. Eve measures an intercepted photon in a uniformly random basis
    /// and resends her result in her basis; a wrong-basis measurement gives a uniform bit.
    /// - Parameter photons: Alice's photons.
    /// - Returns: the photons that arrive.
    public mutating func transmit(_ photons: PhotonTrain) -> Arrivals {
        var out = Arrivals(slotCount: photons.slotCount)
        let skipper = GeometricSkipper(probability: transmittance)
        let expected = Int(Double(photons.slotCount) * transmittance * 1.05) + 16
        out.slots.reserveCapacity(expected)
        out.bases.reserveCapacity(expected)
        out.bits.reserveCapacity(expected)
        var slot = 0
        while let s = skipper.next(from: slot, limit: photons.slotCount, &random) {
            var basis = (photons.bases[s >> 6] >> UInt64(s & 63)) & 1 == 1
            var bit = (photons.bits[s >> 6] >> UInt64(s & 63)) & 1 == 1
            if interceptFraction > 0, uniform(&random) < interceptFraction {
                let eveBasis = random.next() & 1 == 1
                if eveBasis != basis { bit = random.next() & 1 == 1 }
                basis = eveBasis
            }
            out.slots.append(UInt64(s))
            out.bases.append(basis)
            out.bits.append(bit)
            slot = s + 1
        }
        return out
    }
}

/// Bob's device: passive basis choice, detector efficiency, dark counts and misalignment.
public struct BobDevice: Sendable {
    private var random: DeterministicRandomSource
    /// Probability of measuring in Z.
    public let probabilityZ: Double
    /// Detector efficiency.
    public let efficiency: Double
    /// Dark-count probability per slot.
    public let darkCountProbability: Double
    /// Bit-flip probability in the matching basis.
    public let misalignment: Double

    /// Creates a device.
    /// - Parameters:
    ///   - probabilityZ: basis bias.
    ///   - efficiency: detector efficiency.
    ///   - darkCountProbability: per slot.
    ///   - misalignment: error probability.
    ///   - seed: the device's seed.
    public init(probabilityZ: Double, efficiency: Double, darkCountProbability: Double, misalignment: Double, seed: UInt64) {
        self.probabilityZ = probabilityZ
        self.efficiency = efficiency
        self.darkCountProbability = darkCountProbability
        self.misalignment = misalignment
        random = DeterministicRandomSource(seed: seed ^ 0xB0B)
    }

    /// Measures the arriving photons. A photon is detected with the detector efficiency; a dark
    /// count in a slot without a detected photon gives a uniform bit. The output holds only what
    /// a real receiver reports.
    /// - Parameter arrivals: photons at the detector.
    /// - Returns: Bob's record.
    public mutating func detect(_ arrivals: Arrivals) -> BobRecord {
        let slotCount = arrivals.slotCount
        let darkSkipper = GeometricSkipper(probability: darkCountProbability)
        var nextDark = darkSkipper.next(from: 0, limit: slotCount, &random) ?? Int.max
        // A value with a mutating method, not a nested function: a nested function capturing
        // local vars boxes them, and every access then paid a dynamic exclusivity check (about
        // a tenth of a two-process demo's CPU time).
        var out = DetectionBuilder(capacity: arrivals.slots.count + 16)
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

/// Bob's detections as they are recorded: slot, basis bit and measured bit, packed.
private struct DetectionBuilder {
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

/// A whole simulated link: Alice, the channel (with Eve) and Bob, each with its own random
/// stream derived from one seed, so every run is reproducible.
public struct BB84Link: Sendable {
    /// The parameters.
    public let parameters: LinkParameters
    private var alice: AliceDevice
    private var channel: QuantumChannel
    private var bob: BobDevice

    /// Creates a link.
    /// - Parameters:
    ///   - parameters: the physics.
    ///   - seed: the seed of all three random streams.
    public init(parameters: LinkParameters, seed: UInt64) {
        self.parameters = parameters
        alice = AliceDevice(probabilityZ: parameters.probabilityZ, seed: seed)
        channel = QuantumChannel(transmittance: parameters.channelTransmittance,
                                 interceptFraction: parameters.interceptFraction, seed: seed)
        bob = BobDevice(probabilityZ: parameters.probabilityZ, efficiency: parameters.detectorEfficiency,
                        darkCountProbability: parameters.darkCountProbability,
                        misalignment: parameters.misalignment, seed: seed)
    }

    /// Runs one round of pulses.
    /// - Returns: what Alice's node sees and what Bob's node sees.
    public mutating func runRound() -> (alice: AliceRecord, bob: BobRecord) {
        let (record, photons) = alice.emit(pulses: parameters.pulsesPerRound)
        let arrivals = channel.transmit(photons)
        return (record, bob.detect(arrivals))
    }
}
