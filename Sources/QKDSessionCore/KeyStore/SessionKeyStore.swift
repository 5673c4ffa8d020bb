public import QKDCrypto

/// The two pool watermarks of one node (Spec/session.md section 4): the next slot of its
/// outbound pad stream it has not used, and the next slot of its inbound stream it has not
/// consumed.
public struct PoolWatermarks: Hashable, Sendable, CustomStringConvertible {
    /// The next outbound slot never handed out (everything below is used or burned).
    public var outboundNext: UInt64
    /// The next inbound slot never consumed (everything below was verified or skipped).
    public var inboundNext: UInt64

    /// Creates watermarks.
    /// - Parameters:
    ///   - outboundNext: the next unused outbound slot.
    ///   - inboundNext: the next unconsumed inbound slot.
    public init(outboundNext: UInt64, inboundNext: UInt64) {
        self.outboundNext = outboundNext
        self.inboundNext = inboundNext
    }

    /// "out 12, in 7".
    public var description: String { "out \(outboundNext), in \(inboundNext)" }
}

/// One 16-byte slot of a pool pad stream: a pad for one tag, or the hash key of an epoch.
public struct PoolSlot: Sendable {
    /// The slot index in the stream.
    public let slot: UInt64
    /// The 16 bytes, in locked memory.
    public let material: SecretBytes

    /// Creates a slot.
    /// - Parameters:
    ///   - slot: its index.
    ///   - material: exactly 16 bytes.
    public init(slot: UInt64, material: SecretBytes) {
        precondition(material.count == MACSuite.padByteCount, "a pool slot holds 16 bytes")
        self.slot = slot
        self.material = material
    }

    /// The slot as a one-time pad (consumed by one tag).
    public func pad() -> OneTimePad { makePad(material) }
}

/// The sans-IO boundary between a ``Session`` and the durable key pool (Spec/session.md
/// section 4, Spec/keypool.md): the session never touches storage itself.
///
/// Rules an implementation must keep (DESIGN.md, key pool invariants 1 and 3):
/// - ``takeOutbound()`` **durably reserves** the slot before it returns it (reserve ahead in
///   chunks; after a crash the reserved-but-unused slots are skipped, never reused).
/// - Watermarks only move forward; ``advance(to:)`` and ``consumeInbound(through:)`` never move
///   one back.
/// - ``inboundPad(at:)`` does not consume: a failed verification leaves the inbound stream as
///   it was.
///
/// A class-bound protocol: the store is shared state (a database handle in production), and
/// tests inspect the same instance the session uses.
public protocol SessionKeyStore: AnyObject {
    /// Whether the store holds pool pads at all (a pool-mode handshake needs them; a
    /// computational session switches to them once the first distilled key is in).
    var holdsPoolMaterial: Bool { get }
    /// The current watermarks.
    var watermarks: PoolWatermarks { get }
    /// Hands out the next outbound slot, durably reserved first.
    /// - Returns: the slot and its 16 bytes.
    /// - Throws: ``QKDError/Code/sessionPoolExhausted`` if the outbound stream is used up.
    func takeOutbound() throws -> PoolSlot
    /// Reads an inbound slot without consuming it.
    /// - Parameter slot: a slot at or above the inbound watermark.
    /// - Returns: its 16 bytes.
    /// - Throws: ``QKDError/Code/sessionReplay`` below the watermark (already consumed);
    ///   ``QKDError/Code/sessionPoolExhausted`` beyond the material held.
    func inboundPad(at slot: UInt64) throws -> SecretBytes
    /// Consumes inbound slots: the watermark becomes `max(watermark, slot + 1)`.
    /// - Parameter slot: the last slot consumed.
    /// - Throws: a storage error if the watermark cannot be recorded.
    func consumeInbound(through slot: UInt64) throws
    /// Moves both watermarks forward to at least `watermarks` (a resynchronisation,
    /// Spec/session.md section 4): never backward. Skipped outbound slots are durably marked
    /// used.
    /// - Parameter watermarks: the agreed starting points.
    /// - Throws: a storage error if the new watermarks cannot be recorded.
    func advance(to watermarks: PoolWatermarks) throws
}
