public import QKDCrypto

/// The running universal hash of one direction of one post-processing round
/// (Spec/wire.md section 6.2, the "ping-pong" authentication of DESIGN.md).
///
/// D = "QKDChannel/1 round" || suite || direction || session id || round number (u64), and M is
/// the concatenation of every frame of that direction in the round, each from offset 0 through
/// the end of its payload, the closing frame included. The frames of a round are normally
/// round-transcript frames (key kind 2); the handshake, round 0, also absorbs the untagged hello
/// (key kind 0) before its closing Finished frame (Spec/session.md section 3). Each frame's length field makes the
/// concatenation parse one way only. The closing frame (``KeyReference/roundClose(epoch:slot:)``)
/// carries seal(digest, pad at its slot): one pad per direction per round instead of one per frame.
///
/// Non-copyable: a copy would share the running hash state.
public struct RoundTranscript: ~Copyable {
    private var hash: UniversalHash
    /// The round number bound into the domain.
    public let round: UInt64
    /// The direction of the frames absorbed.
    public let direction: Direction
    /// Frames absorbed so far.
    public private(set) var frameCount = 0
    /// Bytes of frames absorbed so far (the MAC's message length).
    public private(set) var byteCount = 0

    /// Starts the transcript of one direction of one round.
    /// - Parameters:
    ///   - hashKey: the hash key of the round's epoch; its suite selects the MAC.
    ///   - direction: the direction of the frames.
    ///   - sessionID: the session.
    ///   - round: the round number, unique within the session and direction.
    public init(hashKey: HashKey, direction: Direction, sessionID: SessionID, round: UInt64) {
        let domain = MACDomain.round(suite: hashKey.suite, direction: direction, sessionID: sessionID, round: round)
        hash = domain.withUnsafeBytes { UniversalHash(key: hashKey, domain: $0) }
        self.round = round
        self.direction = direction
    }

    /// Adds a frame of the round, in the order sent: its header and payload (not its tag). Which
    /// frames belong to a round is the session layer's rule (Spec/wire.md section 6.2); the
    /// header in M binds each frame's key reference either way.
    /// - Parameter frame: the next frame of the round in this direction.
    public mutating func absorb(_ frame: Frame) {
        frame.withAuthenticatedBytes { hash.update($0) }
        frameCount += 1
        byteCount += WireLayout.headerByteCount + frame.header.payloadLength
    }

    /// Ends the transcript.
    /// - Returns: the digest, to be sealed with the closing frame's pad (``WegmanCarter/seal(_:with:)``)
    ///   or compared with ``WegmanCarter/isValid(_:digest:pad:)``.
    public consuming func close() -> UniversalHashDigest {
        hash.finalize()
    }

    /// Absorbs the closing frame, ends the transcript and sets the frame's tag (the sender's side).
    /// - Parameters:
    ///   - frame: the closing frame (``KeyReference/roundClose(epoch:slot:)``; a precondition).
    ///   - pad: the pad at the frame's slot of the sender's outbound pad stream, never used before.
    public consuming func sealClosingFrame(_ frame: inout Frame, pad: consuming OneTimePad) {
        guard case .roundClose = frame.header.keyReference else {
            preconditionFailure("a round is closed by a frame with ROUND_CLOSE set")
        }
        absorb(frame)
        frame.tag = WegmanCarter.seal(close(), with: pad)
    }

    /// Absorbs the received closing frame, ends the transcript and checks the round's tag in
    /// constant time (the receiver's side). Borrows the pad.
    /// - Parameters:
    ///   - frame: the received closing frame.
    ///   - pad: the pad at the frame's slot of the peer's pad stream.
    /// - Returns: true only if `frame` closes a round and its tag matches every frame absorbed.
    public consuming func isValidClosingFrame(_ frame: Frame, pad: borrowing OneTimePad) -> Bool {
        guard case .roundClose = frame.header.keyReference, let tag = frame.tag else { return false }
        absorb(frame)
        return WegmanCarter.isValid(tag, digest: close(), pad: pad)
    }

    /// Like ``isValidClosingFrame(_:pad:)``, throwing on failure.
    /// - Parameters:
    ///   - frame: the received closing frame.
    ///   - pad: the pad at the frame's slot of the peer's pad stream.
    /// - Throws: ``QKDError/Code/frameAuthenticationFailed`` if the round's tag does not verify.
    public consuming func verifyClosingFrame(_ frame: Frame, pad: borrowing OneTimePad) throws {
        let round = self.round, direction = self.direction, frames = self.frameCount + 1
        guard isValidClosingFrame(frame, pad: pad) else {
            throw QKDError(.frameAuthenticationFailed, "the closing tag of round \(round) (\(direction), \(frames) frames) does not verify: a frame of the round was altered, dropped, reordered or injected")
        }
    }
}
