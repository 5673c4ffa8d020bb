public import QKDCrypto

/// Per-frame Wegman-Carter tags (Spec/wire.md section 6.1) for one direction of one session
/// under one hash key.
///
/// Tag = WegmanCarter(D, M) with D = "QKDChannel/1 frame" || suite || direction || session id and
/// M = the frame from offset 0 through the end of its payload (everything but the tag). M holds
/// the header, so the tag binds the version, type, sequence number, epoch and pad slot, and the
/// hash's length block binds the lengths (DESIGN.md, "The wire").
///
/// The sender's authenticator ``seal(_:pad:)``s frames with pads it consumes; the receiver's, built
/// with the same direction, ``verify(_:pad:)``s them with pads it only borrows, so a failed
/// verification does not advance the receiver's copy of the peer's pad stream.
public struct FrameAuthenticator: Sendable {
    /// The hash key of the current epoch; its suite selects the MAC.
    public let hashKey: HashKey
    /// The direction of the frames this authenticator seals or verifies.
    public let direction: Direction
    /// The session.
    public let sessionID: SessionID
    /// The hash key with this direction's frame domain absorbed once (QKDCrypto's fast path).
    private let context: MACContext

    /// Creates an authenticator.
    /// - Parameters:
    ///   - hashKey: the hash key of the epoch the frames name.
    ///   - direction: the direction of the frames (the sender's outbound direction).
    ///   - sessionID: the session.
    public init(hashKey: HashKey, direction: Direction, sessionID: SessionID) {
        self.hashKey = hashKey
        self.direction = direction
        self.sessionID = sessionID
        self.context = MACContext(hashKey: hashKey,
                                  domain: MACDomain.frame(suite: hashKey.suite, direction: direction, sessionID: sessionID))
    }

    /// The MAC suite.
    public var suite: MACSuite { hashKey.suite }

    /// The universal-hash digest of a frame's header and payload; sealed with a pad it is the tag.
    private func digest(of frame: Frame) -> UniversalHashDigest {
        context.digest { sink in frame.withAuthenticatedBytes { sink.update($0) } }
    }

    /// Computes and sets the tag of a frame with a ``KeyReference/padSlot(epoch:slot:)`` key
    /// reference, consuming the pad of that slot.
    /// - Parameters:
    ///   - frame: the frame; its key reference must be a pad slot (a precondition).
    ///   - pad: the pad at the frame's slot of the sender's outbound pad stream, never used before.
    public func seal(_ frame: inout Frame, pad: consuming OneTimePad) {
        guard case .padSlot = frame.header.keyReference else {
            preconditionFailure("only pad-slot frames carry a per-frame tag; round frames are sealed by RoundTranscript")
        }
        frame.tag = WegmanCarter.seal(digest(of: frame), with: pad)
    }

    /// Whether a received frame's tag is valid, in constant time. Borrows the pad.
    /// - Parameters:
    ///   - frame: a decoded frame.
    ///   - pad: the pad at the frame's slot of the peer's pad stream.
    /// - Returns: true only for a pad-slot frame whose tag matches.
    public func isValidAuthenticationTag(of frame: Frame, pad: borrowing OneTimePad) -> Bool {
        guard case .padSlot = frame.header.keyReference, let tag = frame.tag else { return false }
        return WegmanCarter.isValid(tag, digest: digest(of: frame), pad: pad)
    }

    /// Verifies a received frame's tag. Borrows the pad.
    /// - Parameters:
    ///   - frame: a decoded frame.
    ///   - pad: the pad at the frame's slot of the peer's pad stream.
    /// - Throws: ``QKDError/Code/frameAuthenticationFailed`` if the frame is not a pad-slot frame
    ///   or its tag does not match.
    public func verify(_ frame: Frame, pad: borrowing OneTimePad) throws {
        guard isValidAuthenticationTag(of: frame, pad: pad) else {
            throw QKDError(.frameAuthenticationFailed, "the tag of \(direction) frame #\(frame.header.sequenceNumber) (\(frame.header.keyReference)) does not verify: the frame was altered, or the peer used another key, pad or session")
        }
    }
}
