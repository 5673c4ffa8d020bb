public import QKDCrypto

/// Error codes of the frame layer (Spec/wire.md section 5, "Decoding and errors").
///
/// A decoding error means the byte stream is no longer in sync with the peer's framing, so it
/// poisons the ``FrameDecoder``: every later call throws the same error. The codes marked as peer
/// misbehaviour can only come from malformed or hostile bytes on the wire.
extension QKDError.Code {
    /// The version byte is not 1 (Spec/wire.md section 5, check 3).
    public static let frameBadVersion = QKDError.Code("wire.bad-version", peerMisbehaviour: true)
    /// The type byte is not a known ``FrameType`` (check 4).
    public static let frameUnknownType = QKDError.Code("wire.unknown-type", peerMisbehaviour: true)
    /// A reserved bit of the flags byte is set (check 5).
    public static let frameReservedBitsSet = QKDError.Code("wire.reserved-bits-set", peerMisbehaviour: true)
    /// The key-kind byte is not 0, 1 or 2 (check 6).
    public static let frameUnknownKeyKind = QKDError.Code("wire.unknown-key-kind", peerMisbehaviour: true)
    /// The key kind, the ROUND_CLOSE flag, the epoch and the pad slot contradict each other (check 7).
    public static let frameKeyReferenceMismatch = QKDError.Code("wire.key-reference-mismatch", peerMisbehaviour: true)
    /// The frame is larger than the decoder's limit (check 2); detected from the length field alone.
    public static let frameOversize = QKDError.Code("wire.oversize", peerMisbehaviour: true)
    /// The frame ends before its header, payload or tag does, or the stream ended inside a frame
    /// (checks 1 and 8, and ``FrameDecoder/finish()``).
    public static let frameTruncated = QKDError.Code("wire.truncated", peerMisbehaviour: true)
    /// Bytes follow the tag (or the payload of an untagged frame) inside the frame (check 8).
    public static let frameTrailingGarbage = QKDError.Code("wire.trailing-garbage", peerMisbehaviour: true)
    /// The frame carries a 16-byte tag its key reference does not call for, or lacks one it does
    /// (check 8).
    public static let frameTagLengthMismatch = QKDError.Code("wire.tag-length-mismatch", peerMisbehaviour: true)
    /// A frame's or a round's tag did not verify (Spec/wire.md section 6). Does not poison the
    /// decoder: the framing is intact; the session counts and bounds these failures.
    public static let frameAuthenticationFailed = QKDError.Code("wire.authentication-failed", peerMisbehaviour: true)
    /// A local payload does not fit in one frame under the encoder's limit. Split it.
    public static let framePayloadTooLarge = QKDError.Code("wire.payload-too-large")
    /// A configured frame limit is outside what Spec/wire.md section 4 allows.
    public static let frameInvalidLimit = QKDError.Code("wire.invalid-limit")
    /// A session identifier does not have exactly 16 bytes.
    public static let invalidSessionID = QKDError.Code("wire.invalid-session-id")
}
