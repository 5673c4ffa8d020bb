/// Access to ``Arrivals`` for a simulated quantum link between two processes
/// (Spec/quantum-link.md): Alice's process runs her device and the channel model, serialises
/// the photons that reach Bob's detector, and Bob's process rebuilds them to run his detector.
extension Arrivals {
    /// Photons at Bob's detector, rebuilt from the quantum link, packed as the pulse frame
    /// carries them (no copy per photon).
    /// - Parameters:
    ///   - slotCount: slots in the round (at most 2^32).
    ///   - slots: the slots a photon reached the detector in, strictly increasing, below `slotCount`.
    ///   - basisWords: bit i of word i >> 6 is the basis photon i carries (1 = X); bits past the
    ///     last photon zero.
    ///   - bitWords: the bit each photon carries, packed the same way.
    public init(roundSlotCount slotCount: Int, slots: [UInt32], basisWords: [UInt64], bitWords: [UInt64]) {
        let words = (slots.count + 63) >> 6
        precondition(slotCount >= 0 && slotCount <= 1 << 32, "a simulated round holds at most 2^32 slots")
        precondition(basisWords.count == words && bitWords.count == words, "one basis and bit per photon, 64 to a word")
        if slots.count & 63 != 0, words > 0 {
            let tail = ~((UInt64(1) << UInt64(slots.count & 63)) - 1)
            precondition(basisWords[words - 1] & tail == 0 && bitWords[words - 1] & tail == 0, "bits past the last photon are zero")
        }
        self.init(slotCount: slotCount, slots: slots, basisWords: basisWords, bitWords: bitWords)
    }

    /// Photons at Bob's detector from one value per photon (tests and tools).
    /// - Parameters:
    ///   - slotCount: slots in the round (at most 2^32).
    ///   - slots: the slots a photon reached the detector in, strictly increasing, below `slotCount`.
    ///   - bases: the basis each photon carries (true = X).
    ///   - bits: the bit each photon carries.
    public init(roundSlotCount slotCount: Int, photonSlots slots: [UInt64], photonBases bases: [Bool], photonBits bits: [Bool]) {
        precondition(slots.count == bases.count && bases.count == bits.count, "one basis and bit per photon")
        precondition(slotCount >= 0 && slotCount <= 1 << 32, "a simulated round holds at most 2^32 slots")
        var b = BitAppender(capacity: bases.count), x = BitAppender(capacity: bits.count)
        for i in bases.indices {
            b.append(bases[i])
            x.append(bits[i])
        }
        self.init(slotCount: slotCount, slots: slots.map { UInt32($0) }, basisWords: b.words, bitWords: x.words)
    }

    /// Slots in the round.
    public var roundSlotCount: Int { slotCount }
    /// Photons that arrived.
    public var photonCount: Int { slots.count }
    /// The slots a photon arrived in, strictly increasing.
    public var packedSlots: [UInt32] { slots }
    /// The basis each photon carries (bit i of word i >> 6; 1 = X).
    public var packedBases: [UInt64] { basisWords }
    /// The bit each photon carries, packed the same way.
    public var packedBits: [UInt64] { bitWords }
    /// The slots a photon arrived in, strictly increasing, one value each.
    public var photonSlots: [UInt64] { slots.map { UInt64($0) } }
    /// The basis each photon carries (true = X), one value each.
    public var photonBases: [Bool] { (0..<slots.count).map { (basisWords[$0 >> 6] >> UInt64($0 & 63)) & 1 == 1 } }
    /// The bit each photon carries, one value each.
    public var photonBits: [Bool] { (0..<slots.count).map { (bitWords[$0 >> 6] >> UInt64($0 & 63)) & 1 == 1 } }
}
