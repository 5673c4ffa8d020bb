public import QKDCrypto

/// Error codes of the session layer (Spec/session.md section 7). Codes marked as peer
/// misbehaviour can only come from malformed, hostile or out-of-step bytes on the wire.
extension QKDError.Code {
    /// The session was closed (gracefully, or by an earlier error): no more calls are possible.
    public static let sessionClosed = QKDError.Code("session.closed")
    /// No protocol version in common (Spec/session.md section 3).
    public static let sessionVersionMismatch = QKDError.Code("session.version-mismatch", peerMisbehaviour: true)
    /// No MAC suite or authentication granularity in common.
    public static let sessionNoCommonSuite = QKDError.Code("session.no-common-suite", peerMisbehaviour: true)
    /// The peer asked for a handshake mode this node does not accept.
    public static let sessionUnsupportedMode = QKDError.Code("session.unsupported-mode", peerMisbehaviour: true)
    /// The ClientHello names a link (pair of pools) this node does not serve.
    public static let sessionUnknownLink = QKDError.Code("session.unknown-link", peerMisbehaviour: true)
    /// The two nodes are configured with different key split policies.
    public static let sessionPolicyMismatch = QKDError.Code("session.policy-mismatch", peerMisbehaviour: true)
    /// The PSK id in the ClientHello is not configured here.
    public static let sessionUnknownPSK = QKDError.Code("session.unknown-psk", peerMisbehaviour: true)
    /// A certificate chain or signature was refused (PKI mode).
    public static let sessionBadCertificate = QKDError.Code("session.bad-certificate", peerMisbehaviour: true)
    /// A handshake Finished tag, a round's closing tag, or too many frame tags did not verify.
    public static let sessionAuthenticationFailed = QKDError.Code("session.authentication-failed", peerMisbehaviour: true)
    /// The pools' watermarks are too far apart, or a slot is out of the acceptable window.
    public static let sessionPoolDesync = QKDError.Code("session.pool-desync", peerMisbehaviour: true)
    /// The key pool has no pad left for this direction. Local: wait for QKD to refill it.
    public static let sessionPoolExhausted = QKDError.Code("session.pool-exhausted")
    /// A message not allowed in the current state.
    public static let sessionUnexpectedMessage = QKDError.Code("session.unexpected-message", peerMisbehaviour: true)
    /// A handshake message does not decode (Spec/session.md section 3).
    public static let sessionMalformedHandshake = QKDError.Code("session.malformed-handshake", peerMisbehaviour: true)
    /// An alert or control message does not decode (Spec/session.md sections 6 and 7).
    public static let sessionMalformedControl = QKDError.Code("session.malformed-control", peerMisbehaviour: true)
    /// The handshake did not finish within `handshakeTimeout`.
    public static let sessionTimeout = QKDError.Code("session.timeout")
    /// A bug or broken local state; never the peer's fault.
    public static let sessionInternalError = QKDError.Code("session.internal-error")
    /// A frame's sequence number is lower than expected: a replay or reordering (dropped, counted).
    public static let sessionReplay = QKDError.Code("session.replay", peerMisbehaviour: true)
    /// A frame's sequence number is higher than expected: a frame was lost or withheld (dropped, counted).
    public static let sessionGap = QKDError.Code("session.gap", peerMisbehaviour: true)
    /// A frame names an epoch that is not the receiver's current one for its direction.
    public static let sessionBadEpoch = QKDError.Code("session.bad-epoch", peerMisbehaviour: true)
    /// The peer kept using an epoch after a rotation request beyond `rotateGrace` frames.
    public static let sessionRotationOverdue = QKDError.Code("session.rotation-overdue", peerMisbehaviour: true)
}

/// The alert codes on the wire (Spec/session.md section 7): `u8 code, vec16 message`.
public enum AlertCode: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// The sender closes the session on purpose.
    case closeNotify = 1
    /// No protocol version in common.
    case versionMismatch = 2
    /// No MAC suite or granularity in common.
    case noCommonSuite = 3
    /// The PSK id is unknown.
    case unknownPSK = 4
    /// A certificate or signature was refused.
    case badCertificate = 5
    /// Too many tags failed, or a round's closing tag failed.
    case authenticationFailed = 6
    /// The handshake Finished did not verify: the transcript was changed in flight.
    case downgradeOrTamper = 7
    /// The pools' watermarks cannot be reconciled.
    case poolDesync = 8
    /// No pad left.
    case poolExhausted = 9
    /// A message not allowed in the current state.
    case unexpectedMessage = 10
    /// A message or frame that does not decode.
    case malformed = 11
    /// The handshake took too long.
    case timeout = 12
    /// A local bug.
    case internalError = 13
    /// The handshake mode is not accepted.
    case unsupportedMode = 14
    /// The link id is unknown.
    case unknownLink = 15
    /// The split policies differ.
    case policyMismatch = 16

    /// The alert's name as in Spec/session.md section 7.
    public var description: String {
        switch self {
        case .closeNotify: "close-notify"
        case .versionMismatch: "version-mismatch"
        case .noCommonSuite: "no-common-suite"
        case .unknownPSK: "unknown-psk"
        case .badCertificate: "bad-certificate"
        case .authenticationFailed: "authentication-failed"
        case .downgradeOrTamper: "downgrade-or-tamper"
        case .poolDesync: "pool-desync"
        case .poolExhausted: "pool-exhausted"
        case .unexpectedMessage: "unexpected-message"
        case .malformed: "malformed"
        case .timeout: "timeout"
        case .internalError: "internal-error"
        case .unsupportedMode: "unsupported-mode"
        case .unknownLink: "unknown-link"
        case .policyMismatch: "policy-mismatch"
        }
    }

    /// The error a receiver of this alert closes with (Spec/session.md section 7).
    public var error: QKDError.Code {
        switch self {
        case .closeNotify: .sessionClosed
        case .versionMismatch: .sessionVersionMismatch
        case .noCommonSuite: .sessionNoCommonSuite
        case .unknownPSK: .sessionUnknownPSK
        case .badCertificate: .sessionBadCertificate
        case .authenticationFailed, .downgradeOrTamper: .sessionAuthenticationFailed
        case .poolDesync: .sessionPoolDesync
        case .poolExhausted: .sessionPoolExhausted
        case .unexpectedMessage: .sessionUnexpectedMessage
        case .malformed: .sessionMalformedHandshake
        case .timeout: .sessionTimeout
        case .internalError: .sessionInternalError
        case .unsupportedMode: .sessionUnsupportedMode
        case .unknownLink: .sessionUnknownLink
        case .policyMismatch: .sessionPolicyMismatch
        }
    }

    /// The alert a node sends when it closes with `error` (Spec/session.md section 7).
    /// - Parameter error: the error that closes the session.
    /// - Returns: the matching alert; `internal-error` for codes of other layers, `malformed`
    ///   for frame decoding errors.
    public static func forError(_ error: QKDError.Code) -> AlertCode {
        switch error {
        case .sessionClosed: .closeNotify
        case .sessionVersionMismatch: .versionMismatch
        case .sessionNoCommonSuite: .noCommonSuite
        case .sessionUnknownPSK: .unknownPSK
        case .sessionBadCertificate: .badCertificate
        case .sessionAuthenticationFailed: .authenticationFailed
        case .sessionPoolDesync: .poolDesync
        case .sessionPoolExhausted: .poolExhausted
        case .sessionUnexpectedMessage: .unexpectedMessage
        case .sessionMalformedHandshake, .sessionMalformedControl: .malformed
        case .sessionTimeout: .timeout
        case .sessionUnsupportedMode: .unsupportedMode
        case .sessionUnknownLink: .unknownLink
        case .sessionPolicyMismatch: .policyMismatch
        case .unknownSuite: .noCommonSuite
        default:
            error.identifier.hasPrefix("wire.") ? .malformed : .internalError
        }
    }
}
