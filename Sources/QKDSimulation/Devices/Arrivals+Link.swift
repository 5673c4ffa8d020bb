/// Access to ``Arrivals`` for a simulated quantum link between two processes
/// (Spec/quantum-link.md): Alice's process runs her device and the channel model, serialises
/// the photons that reach Bob's detector, and Bob's process rebuilds them to run his detector.
extension Arrivals {
    /// Photons at Bob's detector, rebuilt from the quantum link.
    /// - Parameters:
    ///   - slotCount: slots in the round.
    ///   - slots: the slots a photon reached the detector in, strictly increasing, below `slotCount`.
    ///   - bases: the basis each photon carries (true = X).
    ///   - bits: the bit each photon carries.
    public init(roundSlotCount slotCount: Int, photonSlots slots: [UInt64], photonBases bases: [Bool], photonBits bits: [Bool]) {
        precondition(slots.count == bases.count && bases.count == bits.count, "one basis and bit per photon")
        self.init(slotCount: slotCount, slots: slots, bases: bases, bits: bits)
    }

    /// Slots in the round.
    public var roundSlotCount: Int { slotCount }
    /// The slots a photon arrived in, strictly increasing.
    public var photonSlots: [UInt64] { slots }
    /// The basis each photon carries (true = X).
    public var photonBases: [Bool] { bases }
    /// The bit each photon carries.
    public var photonBits: [Bool] { bits }
}
