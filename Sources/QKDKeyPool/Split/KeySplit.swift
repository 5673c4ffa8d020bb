#if canImport(FoundationEssentials)
public import FoundationEssentials  // UUID
#else
public import Foundation
#endif
import QKDCrypto

/// The split of one distilled key (Spec/keypool.md, "Split function"). A pure function of data
/// both sides hold identically: the policy, the key length, the link id, the round id, and each
/// link stream's *agreed level* (stream length minus the agreed watermark). It never looks at a
/// local watermark, because the two sides' local watermarks differ (reserve-ahead, crashes).
///
/// The byte ranges, in order, of a key of `L` bytes:
/// 1. top-up of ``LinkStream/aliceToBob``: `t_ab = floor16(min(max(0, target - level_ab), L))`;
/// 2. top-up of ``LinkStream/bobToAlice``: `t_ba = floor16(min(max(0, target - level_ba), L - t_ab))`;
/// 3. if the policy asks for it and 32 bytes remain: the a2b hash key (16), then the b2a hash key (16);
/// 4. `n = floor(rest / consumerKeyBytes)` consumer keys of `consumerKeyBytes` each, with ids
///    ``consumerKeyID(linkID:roundID:index:)``;
/// 5. the remainder, shorter than one consumer key, discarded (and counted in the ledger).
public struct KeySplit: Sendable, Equatable {
    /// Bytes appended to each link stream, and where they start in the key.
    public let topUp: [LinkStream: Range<Int>]
    /// Where the hash keys are, if this round starts a new epoch: a2b's 16 bytes, then b2a's.
    public let hashKeys: Range<Int>?
    /// Where each consumer key is, in order of index.
    public let consumerKeys: [Range<Int>]
    /// The discarded remainder.
    public let discarded: Range<Int>

    /// Computes the split.
    /// - Parameters:
    ///   - byteCount: the length of the distilled key.
    ///   - policy: the negotiated policy (already validated).
    ///   - agreedLevels: per link stream, length minus agreed watermark, identical on both sides.
    public init(byteCount: Int, policy: RefillPolicy, agreedLevels: [LinkStream: UInt64]) {
        precondition(byteCount >= 0)
        let target = UInt64(policy.targetLevel)
        var cursor = 0
        var topUp: [LinkStream: Range<Int>] = [:]
        for stream in LinkStream.allCases {  // a2b first, then b2a: the order is normative.
            let level = agreedLevels[stream] ?? 0
            let deficit = target > level ? Int(target - level) : 0
            var take = min(deficit, byteCount - cursor)
            take -= take % MACSuite.padByteCount
            topUp[stream] = cursor..<(cursor + take)
            cursor += take
        }
        self.topUp = topUp
        if policy.newHashKeys, byteCount - cursor >= 2 * MACSuite.hashKeyByteCount {
            hashKeys = cursor..<(cursor + 2 * MACSuite.hashKeyByteCount)
            cursor += 2 * MACSuite.hashKeyByteCount
        } else {
            hashKeys = nil
        }
        var keys: [Range<Int>] = []
        let size = policy.consumerKeyBytes
        while byteCount - cursor >= size {
            keys.append(cursor..<(cursor + size))
            cursor += size
        }
        consumerKeys = keys
        discarded = cursor..<byteCount
    }

    /// The largest index a consumer key id can carry (26 bits): with consumer keys of at least
    /// 16 bytes (``RefillPolicy/minimumConsumerKeyBytes``) that covers a round of 1 GiB
    /// (``KeyPool/maximumDistilledKeyBytes``). Spec/keypool.md, "Consumer key ids".
    public static let maximumConsumerKeyIndex = (1 << 26) - 1

    /// The link tag in every consumer key id of a link: the first 32 bits of
    /// BLAKE2b-128("QKDChannel consumer key id v1" || linkID).
    /// - Parameter linkID: the link id.
    /// - Returns: the tag.
    public static func linkTag(_ linkID: UUID) -> UInt32 {
        var h = GenericHash(outputByteCount: 16)
        h.update(Array("QKDChannel consumer key id v1".utf8))
        withUnsafeBytes(of: linkID.uuid) { h.update($0) }
        let b = h.finalize()
        return UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])
    }

    /// The deterministic id of consumer key `index` of round `roundID` on link `linkID`
    /// (Spec/keypool.md, "Consumer key ids"): an RFC 9562 version-8 UUID whose 122 free bits are
    /// `linkTag(32) || roundID(64) || index(26)`. Both sides compute the same id; within a link the
    /// id is unique and decodes back to (round, index) without a lookup table, which keeps the
    /// absorb of thousands of small keys per round cheap (no random-order id index).
    /// - Parameters:
    ///   - linkID: the link's id (shared by both sides).
    ///   - roundID: the round.
    ///   - index: the key's index in the round's split, `0...maximumConsumerKeyIndex`.
    /// - Returns: the UUID.
    public static func consumerKeyID(linkID: UUID, roundID: UInt64, index: Int) -> UUID {
        consumerKeyID(linkTag: linkTag(linkID), roundID: roundID, index: index)
    }

    static func consumerKeyID(linkTag tag: UInt32, roundID: UInt64, index: Int) -> UUID {
        precondition(index >= 0 && index <= maximumConsumerKeyIndex, "consumer key index out of range")
        // hi: tag(32) | round[63:48](16) | version 8 (4) | round[47:36](12)
        // lo: variant 0b10 (2) | round[35:0](36) | index(26)
        let hi = UInt64(tag) << 32 | (roundID >> 48) << 16 | 0x8 << 12 | (roundID >> 36 & 0xfff)
        let lo = 0b10 << 62 | (roundID & 0xf_ffff_ffff) << 26 | UInt64(index)
        // Not `UUID()` as a template: that draws random bytes (a syscall) per key.
        func b(_ w: UInt64, _ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: w >> (56 - 8 * i)) }
        return UUID(uuid: (b(hi, 0), b(hi, 1), b(hi, 2), b(hi, 3), b(hi, 4), b(hi, 5), b(hi, 6), b(hi, 7),
                           b(lo, 0), b(lo, 1), b(lo, 2), b(lo, 3), b(lo, 4), b(lo, 5), b(lo, 6), b(lo, 7)))
    }

    /// Decodes a consumer key id of this link.
    /// - Parameters:
    ///   - id: the id.
    ///   - linkTag: ``linkTag(_:)`` of this link.
    /// - Returns: the round and index, or nil if the id is not a consumer key id of this link.
    static func decodeConsumerKeyID(_ id: UUID, linkTag tag: UInt32) -> (roundID: UInt64, index: Int)? {
        var u = id.uuid
        let (hi, lo) = withUnsafeBytes(of: &u) { raw in
            (UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
             UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
        guard UInt32(hi >> 32) == tag, hi >> 12 & 0xf == 0x8, lo >> 62 == 0b10 else { return nil }
        let round = (hi >> 16 & 0xffff) << 48 | (hi & 0xfff) << 36 | (lo >> 26 & 0xf_ffff_ffff)
        return (round, Int(lo & 0x3ff_ffff))
    }
}
