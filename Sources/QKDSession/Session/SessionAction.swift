public import QKDCrypto
public import QKDWire

/// What the embedding program must do next: the output of a ``Session``, read with
/// ``Session/nextAction()`` until it returns nil (STYLE.md, "Outputs are action enums").
public enum SessionAction: Sendable {
    /// Send these bytes to the peer, in order.
    case transmit([UInt8])
    /// A payload arrived. `round` is set for frames of a round: such a payload is provisional
    /// until ``roundAuthenticated(_:)`` for that round (nothing derived from it may be released
    /// before).
    case deliver(payload: [UInt8], round: UInt64?)
    /// The handshake finished.
    case established(SecurityLevel)
    /// The security level changed (a switch to pool epochs).
    case securityLevelChanged(SecurityLevel)
    /// Both directions' closing tags of the round verified: its key may be released.
    case roundAuthenticated(UInt64)
    /// The round's closing tag did not verify (or the round was abandoned): discard it.
    case roundFailed(UInt64, QKDError)
    /// A pool pad slot was used: outbound when this node sent a tag or key with it, inbound when
    /// it consumed the peer's slot after a successful verification.
    case padUsed(direction: Direction, slot: UInt64)
    /// This node sent an alert.
    case alertSent(AlertCode)
    /// An alert arrived; `authenticated` is false for an unauthenticated (key kind 0) alert.
    case alertReceived(AlertCode, authenticated: Bool)
    /// A received frame was dropped and counted (bad tag, replay, gap, bad epoch).
    case frameDropped(QKDError)
    /// PKI mode: validate the peer's certificate chain (asynchronously, outside the session), then
    /// call ``Session/peerValidated(_:now:)`` with ``PeerValidationRequest/run()``'s result.
    /// The handshake pauses until then (Spec/handshake.md section 6); the handshake deadline
    /// still runs.
    case validatePeer(PeerValidationRequest)
    /// The session is closed: nil for a graceful close, else the error.
    case closed(QKDError?)
}
