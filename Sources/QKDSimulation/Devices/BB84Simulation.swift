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
        var xBasis = BernoulliMasks(probability: 1 - probabilityZ)
        for i in 0..<words {
            bits[i] = random.next()
            bases[i] = probabilityZ == 0.5 ? random.next() : xBasis.word(i, &random)
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

/// Photons that reach Bob's detector: slot and the state (basis, bit) they carry, packed a bit
/// per photon (bit i of word i >> 6 belongs to photon i; the bits past the last photon are zero).
public struct Arrivals: Sendable, Equatable {
    let slotCount: Int
    /// Strictly increasing, each below `slotCount` (rounds hold at most 2^32 slots).
    var slots: [UInt32] = []
    /// 1 = the X basis.
    var basisWords: [UInt64] = []
    var bitWords: [UInt64] = []
}

/// Per-bit Bernoulli masks, a word (64 trials) at a time: ``bernoulliWord(_:_:)`` (one random
/// word per significant bit of p, about 31 for most p) from p = 1/6 up, geometric skipping
/// below (one draw and one logarithm per event, 64 p events a word). The crossover was
/// measured with `qkd-node bench link` (1/12, 0.15, 0.2, 0.3: 0.15 and 0.2 were fastest on
/// the lossy link, 0.3 slowed the demo link's basis choice at p = 1/4 to less than half).
/// p >= 1 gives all ones and p <= 0 none, exactly.
struct BernoulliMasks {
    private let threshold: UInt32
    private let skipper: GeometricSkipper?
    private let never: Bool
    private let always: Bool
    private var nextEvent = -1  // -1: not drawn yet

    init(probability p: Double) {
        never = p <= 0
        always = p >= 1
        threshold = fraction32(p)
        skipper = p > 0 && p < 1.0 / 6 ? GeometricSkipper(probability: p) : nil
    }

    /// The mask of trials `64 w ..< 64 w + 64`; words must be asked for in order from 0.
    @inline(__always)
    mutating func word(_ w: Int, _ random: inout DeterministicRandomSource) -> UInt64 {
        if never { return 0 }
        if always { return UInt64.max }
        guard let skipper else { return bernoulliWord(threshold, &random) }
        let base = w << 6, end = base + 64
        if nextEvent < 0 { nextEvent = skipper.next(from: 0, limit: Int.max, &random) ?? Int.max }
        var mask: UInt64 = 0
        while nextEvent < end {
            mask |= UInt64(1) << UInt64(nextEvent - base)
            nextEvent = skipper.next(from: nextEvent + 1, limit: Int.max, &random) ?? Int.max
        }
        return mask
    }
}

/// Appends bits to a packed bit string (a word per 64 bits; bits past the end zero).
struct BitAppender {
    private(set) var words: [UInt64] = []
    private(set) var count = 0

    init(capacity: Int) { words.reserveCapacity((capacity + 63) >> 6) }

    /// Appends the low `n` bits of `value` (1...64; the bits above n must be zero).
    @inline(__always)
    mutating func append(_ value: UInt64, bits n: Int) {
        let shift = count & 63
        if shift == 0 {
            words.append(value)
        } else {
            words[words.count - 1] |= value << UInt64(shift)
            if shift + n > 64 { words.append(value >> UInt64(64 - shift)) }
        }
        count += n
    }

    @inline(__always)
    mutating func append(_ bit: Bool) { append(bit ? 1 : 0, bits: 1) }
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

    /// Carries photons to Bob. Each photon survives the fibre independently with the
    /// transmittance; Eve intercepts each surviving photon with the intercept fraction,
    /// measures it in a uniformly random basis and resends her result in her basis (a
    /// wrong-basis measurement gives a uniform bit). Works a word (64 slots) at a time.
    /// - Parameter photons: Alice's photons (at most 2^32 slots).
    /// - Returns: the photons that arrive.
    public mutating func transmit(_ photons: PhotonTrain) -> Arrivals {
        let n = photons.slotCount
        precondition(n <= 1 << 32, "a simulated round holds at most 2^32 slots")
        var out = Arrivals(slotCount: n)
        if transmittance >= 1 {
            out.slots = (0..<n).map { UInt32(truncatingIfNeeded: $0) }
            out.basisWords = photons.bases
            out.bitWords = photons.bits
        } else {
            var survives = BernoulliMasks(probability: transmittance)
            let expected = Int(Double(n) * transmittance * 1.05) + 64
            out.slots.reserveCapacity(expected)
            var bases = BitAppender(capacity: expected), bits = BitAppender(capacity: expected)
            for w in 0..<((n + 63) >> 6) {
                let valid = n - (w << 6) >= 64 ? UInt64.max : (UInt64(1) << UInt64(n & 63)) - 1
                var m = survives.word(w, &random) & valid
                let b = photons.bases[w], x = photons.bits[w]
                while m != 0 {
                    let j = m.trailingZeroBitCount
                    m &= m - 1
                    out.slots.append(UInt32(truncatingIfNeeded: (w << 6) + j))
                    bases.append((b >> UInt64(j)) & 1, bits: 1)
                    bits.append((x >> UInt64(j)) & 1, bits: 1)
                }
            }
            out.basisWords = bases.words
            out.bitWords = bits.words
        }
        if interceptFraction > 0 {
            var intercepted = BernoulliMasks(probability: interceptFraction)
            let count = out.slots.count
            for w in 0..<out.basisWords.count {
                let valid = count - (w << 6) >= 64 ? UInt64.max : (UInt64(1) << UInt64(count & 63)) - 1
                let m = intercepted.word(w, &random) & valid
                let eveBasis = random.next(), eveBits = random.next()
                let wrong = m & (eveBasis ^ out.basisWords[w])  // Eve measured in the other basis.
                out.bitWords[w] = (out.bitWords[w] & ~wrong) | (eveBits & wrong)
                out.basisWords[w] = (out.basisWords[w] & ~m) | (eveBasis & m)
            }
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

    /// Measures the arriving photons. Each photon meets a basis (Z with `probabilityZ`) and is
    /// detected with the detector efficiency; in the matching basis its bit flips with the
    /// misalignment, in the other basis the result is uniform. Each slot has a dark count with
    /// its probability: in a slot without a detected photon it still clicks, with a uniform
    /// bit. The output holds only what a real receiver reports. Works a word (64 photons) at a
    /// time; dark counts, which are rare, one by one.
    /// - Parameter arrivals: photons at the detector.
    /// - Returns: Bob's record.
    public mutating func detect(_ arrivals: Arrivals) -> BobRecord {
        let slotCount = arrivals.slotCount, photons = arrivals.slots.count
        let darkSkipper = GeometricSkipper(probability: darkCountProbability)
        var nextDark = darkSkipper.next(from: 0, limit: slotCount, &random) ?? Int.max
        var xBasis = BernoulliMasks(probability: 1 - probabilityZ)
        var detected = BernoulliMasks(probability: efficiency)
        var flips = BernoulliMasks(probability: misalignment)
        var out = DetectionOutput(capacity: photons + 64)
        for w in 0..<arrivals.basisWords.count {
            let base = w << 6
            let inWord = min(64, photons - base)
            let valid = inWord == 64 ? UInt64.max : (UInt64(1) << UInt64(inWord)) - 1
            let bob = xBasis.word(w, &random) & valid
            let clicks = efficiency >= 1 ? valid : detected.word(w, &random) & valid
            let flip = flips.word(w, &random)
            let uniformBits = random.next()
            let match = ~(bob ^ arrivals.basisWords[w])
            let measured = (((arrivals.bitWords[w] ^ flip) & match) | (uniformBits & ~match)) & valid
            if clicks == valid && nextDark > Int(arrivals.slots[base + inWord - 1]) {
                // Every photon of the word clicks and no dark count falls among them.
                out.pushWord(arrivals.slots[base..<(base + inWord)], bob, measured)
                continue
            }
            for j in 0..<inWord {
                let s = Int(arrivals.slots[base + j])
                while nextDark < s {
                    out.pushDark(nextDark, probabilityZ, &random)
                    nextDark = darkSkipper.next(from: nextDark + 1, limit: slotCount, &random) ?? Int.max
                }
                let dark = nextDark == s
                if dark { nextDark = darkSkipper.next(from: s + 1, limit: slotCount, &random) ?? Int.max }
                if (clicks >> UInt64(j)) & 1 == 1 {
                    out.push(s, (bob >> UInt64(j)) & 1, (measured >> UInt64(j)) & 1)
                } else if dark {
                    // The dark count still clicks, in the basis the photon met, with a uniform bit.
                    out.push(s, (bob >> UInt64(j)) & 1, random.next() & 1)
                }
            }
        }
        while nextDark < slotCount {
            out.pushDark(nextDark, probabilityZ, &random)
            nextDark = darkSkipper.next(from: nextDark + 1, limit: slotCount, &random) ?? Int.max
        }
        return BobRecord(slotCount: slotCount, slots: out.slots, bases: out.bases.words, bits: out.bits.words)
    }
}

/// Bob's detections as they are recorded: slot, basis bit and measured bit, packed. A value with
/// mutating methods, not a nested function: a nested function capturing local vars boxes them,
/// and every access then pays a dynamic exclusivity check.
private struct DetectionOutput {
    var slots: [UInt64] = []
    var bases: BitAppender
    var bits: BitAppender

    init(capacity: Int) {
        slots.reserveCapacity(capacity)
        bases = BitAppender(capacity: capacity)
        bits = BitAppender(capacity: capacity)
    }

    @inline(__always)
    mutating func push(_ slot: Int, _ basis: UInt64, _ bit: UInt64) {
        slots.append(UInt64(slot))
        bases.append(basis, bits: 1)
        bits.append(bit, bits: 1)
    }

    /// A whole word of photons that all clicked (their slots, bases and bits).
    mutating func pushWord(_ photonSlots: ArraySlice<UInt32>, _ basisBits: UInt64, _ measured: UInt64) {
        for s in photonSlots { slots.append(UInt64(s)) }
        bases.append(basisBits, bits: photonSlots.count)
        bits.append(measured, bits: photonSlots.count)
    }

    /// A dark count alone in its slot: a basis (Z with probability pZ) and a uniform bit.
    mutating func pushDark(_ slot: Int, _ probabilityZ: Double, _ random: inout DeterministicRandomSource) {
        let x: UInt64 = uniform(&random) < probabilityZ ? 0 : 1
        push(slot, x, random.next() & 1)
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
