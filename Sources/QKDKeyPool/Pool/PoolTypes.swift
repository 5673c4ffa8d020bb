#if canImport(FoundationEssentials)
public import FoundationEssentials  // UUID
#else
public import Foundation
#endif
public import QKDCrypto

/// Pads handed out by ``KeyPool/reservePad(direction:count:)``: `count` consecutive 16-byte
/// pads starting at byte ``offset`` of the direction's stream, already durably marked spent.
public struct PadReservation: Sendable, CustomStringConvertible {
    /// The stream the pads come from.
    public let direction: Direction
    /// Byte offset of the first pad in the stream (a multiple of 16). Frames carry it so the
    /// peer checks with the same pad.
    public let offset: UInt64
    /// The pad bytes, `16 * count` of them, in locked memory.
    public let bytes: SecretBytes

    /// How many pads.
    public var count: Int { bytes.count / MACSuite.padByteCount }

    /// Pad `index` (0..<count) as a one-time pad value.
    /// - Parameter index: which pad.
    /// - Returns: the pad, consumed by the tag it makes.
    public func pad(_ index: Int) -> OneTimePad {
        precondition(index >= 0 && index < count, "pad index out of range")
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: MACSuite.padByteCount, alignment: 8)
        defer { secureZero(scratch); scratch.deallocate() }
        bytes.withUnsafeBytes { source in
            scratch.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[(index * MACSuite.padByteCount)..<((index + 1) * MACSuite.padByteCount)]))
        }
        return OneTimePad(UnsafeRawBufferPointer(scratch), offset: 0)
    }

    /// Stream offset of pad `index`.
    /// - Parameter index: which pad.
    /// - Returns: `offset + 16 * index`.
    public func offset(ofPad index: Int) -> UInt64 { offset + UInt64(index * MACSuite.padByteCount) }

    /// Never shows the bytes.
    public var description: String { "PadReservation(\(direction), offset \(offset), \(count) pads)" }
}

/// One pad from ``KeyPool/reserveOnePad(direction:)``: the allocation-free path for per-frame tags.
public struct ReservedPad: ~Copyable, Sendable {
    /// Byte offset of the pad in its stream.
    public let offset: UInt64
    /// The pad; consuming it into a tag is the only use.
    public var pad: OneTimePad

    /// Gives up the pad (to consume it into a tag); read ``offset`` first.
    /// - Returns: the pad.
    public consuming func takePad() -> OneTimePad { pad }
}

/// A consumer key delivered by the pool.
public struct ConsumerKey: Sendable, CustomStringConvertible {
    /// The id, identical on both sides (``KeySplit/consumerKeyID(linkID:roundID:index:)``).
    public let id: UUID
    /// The round that produced it.
    public let roundID: UInt64
    /// Its index in the round's split.
    public let index: Int
    /// The key, in locked memory.
    public let bytes: SecretBytes

    /// Never shows the bytes.
    public var description: String { "ConsumerKey(\(id.uuidString.lowercased()), \(bytes.count) bytes)" }
}

/// A hash key and its epoch (Spec/keypool.md, "Hash-key epochs").
public struct HashKeyEpoch: Sendable, CustomStringConvertible {
    /// The epoch number, identical on both sides.
    public let epoch: Int
    /// The key (suite and bytes).
    public let key: HashKey
    /// Tags recorded with ``KeyPool/recordHashKeyUses(direction:epoch:count:)``.
    public let uses: Int

    /// Never shows the key.
    public var description: String { "HashKeyEpoch(\(epoch), \(key.suite), \(uses) uses)" }
}

/// What one absorb did with a distilled key.
public struct AbsorbSummary: Sendable, Equatable, Codable {
    /// Bytes appended to the outbound stream.
    public let outboundTopUp: Int
    /// Bytes appended to the inbound stream.
    public let inboundTopUp: Int
    /// The new epoch, if the round started one.
    public let newEpoch: Int?
    /// The consumer key ids, in index order.
    public let consumerKeyIDs: [UUID]
    /// Bytes discarded (a remainder shorter than one consumer key).
    public let discarded: Int
}

/// Ledger totals in bytes (Spec/keypool.md, "Ledger"). ``reconciles`` checks the identities.
public struct LedgerTotals: Sendable, Equatable, Codable {
    /// Everything that entered the pool.
    public var produced: Int = 0
    /// Appended to the a2b and b2a streams.
    public var toPadStream: [String: Int] = [:]
    /// Became hash keys.
    public var toHashKeys: Int = 0
    /// Became consumer keys.
    public var toConsumer: Int = 0
    /// Split remainders.
    public var discardedAtSplit: Int = 0
    /// Pads durably reserved (used by tags or wasted by a crash), per link stream.
    public var padReserved: [String: Int] = [:]
    /// Pads skipped by resynchronisation, per link stream.
    public var padSkipped: [String: Int] = [:]
    /// Consumer bytes delivered.
    public var delivered: Int = 0
    /// Consumer bytes discarded.
    public var consumerDiscarded: Int = 0

    /// Pad bytes not yet reserved, per link stream.
    public var padRemaining: [String: Int] {
        var out: [String: Int] = [:]
        for s in LinkStream.allCases {
            out[s.rawValue] = (toPadStream[s.rawValue] ?? 0) - (padReserved[s.rawValue] ?? 0) - (padSkipped[s.rawValue] ?? 0)
        }
        return out
    }

    /// Consumer bytes still available.
    public var consumerAvailable: Int { toConsumer - delivered - consumerDiscarded }

    /// Everything that left the pool for good: used by tags (or wasted), delivered, discarded.
    public var spent: Int {
        padReserved.values.reduce(0, +) + padSkipped.values.reduce(0, +) + delivered + consumerDiscarded + discardedAtSplit
    }

    /// Whether `produced = spent + pad remaining + hash keys + consumer available`, and no
    /// bucket is negative. (DESIGN.md invariant 4.)
    public var reconciles: Bool {
        let remaining = padRemaining.values
        return remaining.allSatisfy { $0 >= 0 } && consumerAvailable >= 0
            && produced == toPadStream.values.reduce(0, +) + toHashKeys + toConsumer + discardedAtSplit
            && produced == spent + remaining.reduce(0, +) + toHashKeys + consumerAvailable
    }
}

/// One stream's levels, for ``PoolStatus``.
public struct StreamStatus: Sendable, Equatable, Codable {
    /// outbound or inbound.
    public let direction: Direction
    /// a2b or b2a.
    public let linkStream: LinkStream
    /// Bytes ever appended.
    public let length: UInt64
    /// Durable watermark.
    public let durableWatermark: UInt64
    /// Next offset this process serves (equals the durable watermark in a fresh process).
    public let servedOffset: UInt64
    /// Watermark agreed with the peer at the last resynchronisation.
    public let syncedWatermark: UInt64
    /// Bytes that can still be served: `length - servedOffset`.
    public let remaining: UInt64
}

/// A pool's levels, watermarks and ledger totals. Never key bytes.
public struct PoolStatus: Sendable, Equatable, Codable {
    /// This node's role.
    public let role: Role
    /// The link id.
    public let linkID: UUID
    /// Both streams.
    public let streams: [StreamStatus]
    /// Consumer keys per state.
    public let consumerKeys: [String: Int]
    /// The newest hash-key epoch, if any.
    public let hashKeyEpoch: Int?
    /// Rounds absorbed.
    public let roundsAbsorbed: Int
    /// PSKs imported.
    public let pskImported: Int
    /// The ledger.
    public let ledger: LedgerTotals
}
