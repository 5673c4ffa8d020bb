public import QKDCrypto

extension QKDError.Code {
    /// A post-processing message could not be decoded: truncated, trailing bytes, a length over
    /// its limit, a non-canonical bitmap, or a field out of range (Spec/postprocessing.md section 2).
    public static let ppMalformed = QKDError.Code("pp.malformed", peerMisbehaviour: true)
    /// A post-processing message carried an unknown version or type byte.
    public static let ppUnknownType = QKDError.Code("pp.unknown-type", peerMisbehaviour: true)
    /// A message arrived that the round's state does not allow now (Spec/postprocessing.md section 3).
    public static let ppUnexpectedMessage = QKDError.Code("pp.unexpected-message", peerMisbehaviour: true)
    /// A message named a different round id than the round it was given to.
    public static let ppRoundMismatch = QKDError.Code("pp.round-mismatch", peerMisbehaviour: true)
    /// A message was well formed but disagrees with what both sides already share: a count
    /// that does not match, a final length that differs from the locally computed one.
    public static let ppInconsistent = QKDError.Code("pp.inconsistent", peerMisbehaviour: true)
    /// The round was driven after it had already failed (a poisoned machine repeats its error).
    public static let ppInvalidConfiguration = QKDError.Code("pp.invalid-configuration")
}
