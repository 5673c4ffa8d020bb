/// What Alice's node knows after a round of pulses: her bit and basis for every slot.
///
/// Bit-packed: slot `i` lives in word `i >> 6` at position `i & 63`. Basis bit 1 = X
/// (diagonal), 0 = Z (rectilinear). Bits past ``slotCount`` are zero.
public struct AliceRecord: Sendable, Equatable {
    /// The number of slots (pulses).
    public var slotCount: Int
    /// Alice's encoded bit per slot.
    public var bits: [UInt64]
    /// Alice's basis per slot (1 = X).
    public var bases: [UInt64]

    /// Creates a record.
    /// - Parameters:
    ///   - slotCount: slots.
    ///   - bits: `ceil(slotCount / 64)` words.
    ///   - bases: `ceil(slotCount / 64)` words.
    public init(slotCount: Int, bits: [UInt64], bases: [UInt64]) {
        precondition(bits.count == (slotCount + 63) / 64 && bases.count == bits.count, "one word per 64 slots")
        self.slotCount = slotCount
        self.bits = bits
        self.bases = bases
    }
}

/// What Bob's node knows after a round: for each detected slot only its index, the basis Bob
/// measured in and the bit he got (Spec/detections.md section 1). Nothing about Alice's choices
/// or about which detections were dark counts.
public struct BobRecord: Sendable, Equatable {
    /// The number of slots (pulses) in the round.
    public var slotCount: Int
    /// Detected slots, strictly increasing.
    public var slots: [UInt64]
    /// Bob's basis per detection (1 = X), packed, in detection order.
    public var bases: [UInt64]
    /// Bob's measured bit per detection, packed, in detection order.
    public var bits: [UInt64]

    /// The number of detections.
    public var detectionCount: Int { slots.count }

    /// Creates a record.
    /// - Parameters:
    ///   - slotCount: slots.
    ///   - slots: strictly increasing detected slots.
    ///   - bases: packed bases, one bit per detection.
    ///   - bits: packed bits, one bit per detection.
    public init(slotCount: Int, slots: [UInt64], bases: [UInt64], bits: [UInt64]) {
        precondition(bases.count == (slots.count + 63) / 64 && bits.count == bases.count, "one bit per detection")
        self.slotCount = slotCount
        self.slots = slots
        self.bases = bases
        self.bits = bits
    }
}
