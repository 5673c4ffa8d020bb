import QKDCrypto
public import QKDKeyPool

/// The durable ``SessionKeyStore``: a ``QKDKeyPool/KeyPool`` (SQLite, reserve-before-use) seen
/// through the session's slot interface (Spec/session.md section 4, Spec/keypool.md).
///
/// A session slot is a 16-byte pad; slot `s` is the pool's stream byte offset `16 s`. The pool
/// keeps its own guarantees (DESIGN.md key pool invariants 1 and 3): an outbound pad is
/// durably reserved before its bytes reach the session, an inbound pad is only lent (never
/// consumed) until ``consumeInbound(through:)``, and watermarks only move forward. After a
/// crash a reopened pool starts at its durable watermarks, so pads reserved by the dead
/// process are skipped, never reused.
///
/// ``watermarks`` reports the pool's **served** offsets (what this process has handed out or
/// consumed), rounded up to whole slots. The peer advances to at least these on resume.
public final class PoolKeyStore: SessionKeyStore, Sendable {
    /// The pool behind the store.
    public let pool: KeyPool

    /// Wraps an open pool.
    /// - Parameter pool: the link's pool; the store does not close it.
    public init(pool: KeyPool) {
        self.pool = pool
    }

    private static let slotBytes = UInt64(MACSuite.padByteCount)

    /// True if both streams hold at least one unserved pad.
    public var holdsPoolMaterial: Bool {
        let served = pool.servedWatermarks()
        let length = pool.streamLengths()
        return length.outbound >= served.outbound + Self.slotBytes && length.inbound >= served.inbound + Self.slotBytes
    }

    /// The served offsets in slots (rounded up: a partial slot is never handed out).
    public var watermarks: PoolWatermarks {
        let served = pool.servedWatermarks()
        return PoolWatermarks(outboundNext: Self.slots(ceilingOf: served.outbound),
                              inboundNext: Self.slots(ceilingOf: served.inbound))
    }

    private static func slots(ceilingOf bytes: UInt64) -> UInt64 {
        bytes / slotBytes + (bytes % slotBytes == 0 ? 0 : 1)
    }

    /// Reserves the next outbound pad durably and lends its bytes to `body`.
    /// - Parameter body: receives the slot and its 16 bytes.
    /// - Returns: what `body` returns.
    /// - Throws: ``QKDError/Code/sessionPoolExhausted`` when the outbound stream is used up; a
    ///   pool storage error; or what `body` throws (the slot stays used).
    public func takeOutbound<R>(_ body: (_ slot: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> R) throws -> R {
        do {
            return try pool.withReservedPad(direction: .outbound) { offset, bytes in
                guard offset % Self.slotBytes == 0 else {
                    throw QKDError(.storageCorrupt, "the outbound pad stream served offset \(offset), which is not a whole 16-byte slot; run `qkd-node pool verify`")
                }
                return try body(offset / Self.slotBytes, bytes)
            }
        } catch let error as QKDError where error.code == .poolExhausted {
            throw QKDError(.sessionPoolExhausted, "the outbound pad stream is used up: \(error.detail)")
        }
    }

    /// Lends an inbound slot's bytes without consuming it.
    /// - Parameters:
    ///   - slot: the slot the frame names.
    ///   - body: receives the 16 bytes.
    /// - Returns: what `body` returns.
    /// - Throws: ``QKDError/Code/sessionReplay`` below the inbound watermark,
    ///   ``QKDError/Code/sessionPoolExhausted`` beyond the stream, a storage error, or what
    ///   `body` throws.
    public func inboundPad<R>(at slot: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard slot < UInt64.max / Self.slotBytes else {
            throw QKDError(.sessionPoolExhausted, "inbound slot \(slot) is beyond any pad stream")
        }
        do {
            return try pool.withInboundPad(at: slot * Self.slotBytes, body)
        } catch let error as QKDError where error.code == .watermarkBackward {
            throw QKDError(.sessionReplay, "inbound slot \(slot) was already consumed: \(error.detail)")
        } catch let error as QKDError where error.code == .poolExhausted {
            throw QKDError(.sessionPoolExhausted, "inbound slot \(slot): \(error.detail)")
        }
    }

    /// Consumes inbound slots through `slot` (a no-op if they already are).
    /// - Parameter slot: the last slot consumed.
    /// - Throws: ``QKDError/Code/sessionPoolExhausted`` beyond the stream, or a storage error.
    public func consumeInbound(through slot: UInt64) throws {
        guard slot < UInt64.max / Self.slotBytes - 1 else {
            throw QKDError(.sessionPoolExhausted, "inbound slot \(slot) is beyond any pad stream")
        }
        let target = (slot + 1) * Self.slotBytes
        guard target > pool.servedWatermarks().inbound else { return }
        do {
            try pool.acceptInbound(through: target)
        } catch let error as QKDError where error.code == .poolExhausted {
            throw QKDError(.sessionPoolExhausted, "inbound slot \(slot): \(error.detail)")
        }
    }

    /// Records `target` as the pool's agreed (`synced`) watermarks, which the split of every
    /// later distilled key reads (Spec/keypool.md sections 4 and 5), and moves the served
    /// offsets forward to it where they are behind (never backward: pads consumed since the
    /// agreement stay consumed). The session calls this once per handshake with the starts
    /// both sides agreed on, only after the peer's Finished verified, so both pools record the
    /// same values (``KeyPool/synchronise(to:)``, Spec/session.md section 4.1). (One exception:
    /// when both nodes' inbound watermarks are ahead, Alice calls it once more before, to skip
    /// her outbound stream by at most `maxPreAuthSkip` slots.)
    /// - Parameter target: the agreed starting points in slots.
    /// - Throws: ``QKDError/Code/sessionPoolDesync`` if a target lies beyond the stream (the
    ///   peer holds material this node lacks); a storage error.
    public func advance(to target: PoolWatermarks) throws {
        let limit = UInt64.max / Self.slotBytes
        guard target.outboundNext <= limit, target.inboundNext <= limit else {
            throw QKDError(.sessionPoolDesync, "watermarks \(target) are beyond any pad stream")
        }
        let goal = Watermarks(outbound: target.outboundNext * Self.slotBytes, inbound: target.inboundNext * Self.slotBytes)
        do {
            try pool.synchronise(to: goal)
        } catch let error as QKDError where error.code == .watermarkBeyondStream {
            throw QKDError(.sessionPoolDesync, "cannot advance to \(target): \(error.detail)")
        }
    }

}
