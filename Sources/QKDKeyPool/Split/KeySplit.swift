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
/// 4. `n = floor(rest / consumerKeyBytes)` consumer keys of `consumerKeyBytes` each;
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

    /// The deterministic id of consumer key `index` of round `roundID` on link `linkID`:
    /// BLAKE2b-128("QKDChannel consumer key id v1" || linkID || be64(roundID) || be64(index)),
    /// with the RFC 9562 version 8 and variant bits set. Both sides compute the same id.
    /// - Parameters:
    ///   - linkID: the link's id (shared by both sides).
    ///   - roundID: the round.
    ///   - index: the key's index in the round's split.
    /// - Returns: the UUID.
    public static func consumerKeyID(linkID: UUID, roundID: UInt64, index: Int) -> UUID {
        var h = GenericHash(outputByteCount: 16)
        h.update(Array("QKDChannel consumer key id v1".utf8))
        withUnsafeBytes(of: linkID.uuid) { h.update($0) }
        h.update(bigEndian: roundID)
        h.update(bigEndian: UInt64(index))
        var b = h.finalize()
        b[6] = (b[6] & 0x0f) | 0x80  // version 8 (custom), RFC 9562 section 5.8
        b[8] = (b[8] & 0x3f) | 0x80  // variant 10
        return UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                           b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
    }
}
