public import QKDCrypto

/// An in-memory ``SessionKeyStore`` for tests, the fuzzer and benchmarks.
///
/// ``pair(slotsPerDirection:reservationChunk:random:)`` builds Alice's and Bob's stores from the
/// same random pad material: Alice's outbound stream is Bob's inbound stream byte for byte, and
/// the other way round. Each store **records** every slot it ever handed out and every inbound
/// slot the session consumed, across simulated crashes, so a test can prove that no slot is
/// used twice (DESIGN.md, key pool invariant 1).
///
/// Reservation works like the durable pool's: outbound slots are reserved in chunks of
/// ``reservationChunk``; ``simulateCrash()`` loses the in-memory cursor and restarts from the
/// durable reservation watermark (waste, never reuse).
public final class InMemoryKeyStore: SessionKeyStore {
    private let outboundMaterial: SecretBytes
    private let inboundMaterial: SecretBytes
    /// Slots reserved per durable write.
    public let reservationChunk: UInt64

    private var outboundNext: UInt64 = 0
    private var inboundNext: UInt64 = 0
    /// The durable reservation watermark: every outbound slot below it may have been handed out.
    public private(set) var durableOutboundReserved: UInt64 = 0
    /// Every outbound slot ever handed out, in order, crashes included.
    public private(set) var handedOut: [UInt64] = []
    /// Every inbound slot passed to ``consumeInbound(through:)``, in order.
    public private(set) var consumedInbound: [UInt64] = []
    /// How many durable reservations (chunk writes) were made.
    public private(set) var reservationCount = 0
    /// How many crashes were simulated.
    public private(set) var crashCount = 0

    /// Creates a store from its two streams.
    /// - Parameters:
    ///   - outbound: the outbound pad stream (a multiple of 16 bytes).
    ///   - inbound: the inbound pad stream (a multiple of 16 bytes).
    ///   - reservationChunk: slots reserved per durable write, at least 1.
    public init(outbound: SecretBytes, inbound: SecretBytes, reservationChunk: UInt64 = 64) {
        precondition(outbound.count % MACSuite.padByteCount == 0 && inbound.count % MACSuite.padByteCount == 0,
                     "pad streams hold whole 16-byte slots")
        precondition(reservationChunk >= 1, "reserve at least one slot at a time")
        self.outboundMaterial = outbound
        self.inboundMaterial = inbound
        self.reservationChunk = reservationChunk
    }

    /// An empty store (no pool material yet), for computational modes before QKD key exists.
    /// - Returns: the store.
    public static func empty() -> InMemoryKeyStore {
        InMemoryKeyStore(outbound: SecretBytes(count: 0) { _ in }, inbound: SecretBytes(count: 0) { _ in })
    }

    /// Two linked stores: `alice.outbound == bob.inbound` and `bob.outbound == alice.inbound`.
    /// - Parameters:
    ///   - slotsPerDirection: 16-byte slots in each direction's stream.
    ///   - reservationChunk: slots reserved per durable write.
    ///   - random: the source of the pad material.
    /// - Returns: Alice's and Bob's stores.
    public static func pair(slotsPerDirection: Int, reservationChunk: UInt64 = 64,
                            random: inout some RandomSource) -> (alice: InMemoryKeyStore, bob: InMemoryKeyStore) {
        let aliceToBob = SecretBytes(randomCount: slotsPerDirection * MACSuite.padByteCount, using: &random)
        let bobToAlice = SecretBytes(randomCount: slotsPerDirection * MACSuite.padByteCount, using: &random)
        return (InMemoryKeyStore(outbound: aliceToBob, inbound: bobToAlice, reservationChunk: reservationChunk),
                InMemoryKeyStore(outbound: bobToAlice, inbound: aliceToBob, reservationChunk: reservationChunk))
    }

    private var outboundCapacity: UInt64 { UInt64(outboundMaterial.count / MACSuite.padByteCount) }
    private var inboundCapacity: UInt64 { UInt64(inboundMaterial.count / MACSuite.padByteCount) }

    /// True if both streams hold material.
    public var holdsPoolMaterial: Bool { outboundCapacity > 0 && inboundCapacity > 0 }

    /// The in-memory watermarks (a crash moves the outbound one up to the reservation).
    public var watermarks: PoolWatermarks { PoolWatermarks(outboundNext: outboundNext, inboundNext: inboundNext) }

    /// Reserves a chunk first when the cursor reaches the durable watermark, then hands out the
    /// next slot and records it.
    /// - Parameter body: receives the slot and its 16 bytes.
    /// - Returns: what `body` returns.
    /// - Throws: ``QKDError/Code/sessionPoolExhausted`` when the stream is used up.
    public func takeOutbound<R>(_ body: (_ slot: UInt64, _ bytes: UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard outboundNext < outboundCapacity else {
            throw QKDError(.sessionPoolExhausted, "the outbound pad stream is used up (\(outboundCapacity) slots); run QKD rounds to refill the pool")
        }
        if outboundNext >= durableOutboundReserved {
            // The "durable write" happens before the slot leaves this function.
            durableOutboundReserved = min(outboundNext + reservationChunk, outboundCapacity)
            reservationCount += 1
        }
        let slot = outboundNext
        outboundNext += 1
        handedOut.append(slot)
        return try outboundMaterial.withUnsafeBytes { try body(slot, UnsafeRawBufferPointer(rebasing: $0[Int(slot) * 16..<Int(slot) * 16 + 16])) }
    }

    /// Lends an inbound slot's bytes without consuming it.
    /// - Parameters:
    ///   - slot: the slot.
    ///   - body: receives the 16 bytes.
    /// - Returns: what `body` returns.
    /// - Throws: ``QKDError/Code/sessionReplay`` below the watermark;
    ///   ``QKDError/Code/sessionPoolExhausted`` beyond the material.
    public func inboundPad<R>(at slot: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard slot >= inboundNext else {
            throw QKDError(.sessionReplay, "inbound slot \(slot) was already consumed (watermark \(inboundNext))")
        }
        guard slot < inboundCapacity else {
            throw QKDError(.sessionPoolExhausted, "inbound slot \(slot) is beyond the \(inboundCapacity) slots of the pool")
        }
        return try inboundMaterial.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[Int(slot) * 16..<Int(slot) * 16 + 16])) }
    }

    /// Consumes inbound slots through `slot` and records the call.
    /// - Parameter slot: the last slot consumed.
    public func consumeInbound(through slot: UInt64) throws {
        consumedInbound.append(slot)
        inboundNext = max(inboundNext, slot + 1)
    }

    /// Moves the watermarks forward; skipped outbound slots are durably reserved (burned).
    /// - Parameter target: the watermarks to reach.
    public func advance(to target: PoolWatermarks) throws {
        outboundNext = max(outboundNext, target.outboundNext)
        durableOutboundReserved = max(durableOutboundReserved, outboundNext)
        inboundNext = max(inboundNext, target.inboundNext)
    }

    /// Simulates a crash and restart: the in-memory outbound cursor is lost and restarts at the
    /// durable reservation watermark. The records survive (they are the test's ground truth).
    public func simulateCrash() {
        outboundNext = durableOutboundReserved
        crashCount += 1
    }

    /// Whether any outbound slot was handed out twice (must always be false).
    public var reusedAnOutboundSlot: Bool { Set(handedOut).count != handedOut.count }
}
