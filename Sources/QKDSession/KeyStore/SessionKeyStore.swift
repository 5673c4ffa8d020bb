import QKDCrypto

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
    /// Hands out the next outbound slot, durably reserved first, and lends its 16 bytes to
    /// `body` in place (no copy, no allocation: the pad stream stays in the store's locked
    /// memory).
    /// - Parameter body: receives the slot index and its 16 bytes; the pointer must not escape.
    /// - Returns: what `body` returns.
    /// - Throws: ``QKDError/Code/sessionPoolExhausted`` if the outbound stream is used up;
    ///   what `body` throws (the slot stays used).
    func takeOutbound<R>(_ body: (_ slot: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> R) throws -> R
    /// Lends the 16 bytes of an inbound slot to `body` without consuming the slot.
    /// - Parameters:
    ///   - slot: a slot at or above the inbound watermark.
    ///   - body: receives the 16 bytes; the pointer must not escape.
    /// - Returns: what `body` returns.
    /// - Throws: ``QKDError/Code/sessionReplay`` below the watermark (already consumed);
    ///   ``QKDError/Code/sessionPoolExhausted`` beyond the material held.
    func inboundPad<R>(at slot: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R
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
