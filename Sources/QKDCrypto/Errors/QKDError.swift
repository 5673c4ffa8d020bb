/// The one error type of QKDChannel.
///
/// Every layer throws `QKDError`. The ``code`` says what went wrong and is what callers match on;
/// the detail is a human-readable sentence that says what happened and what to do about it.
/// Equality and hashing compare the code only, so tests and callers can write
/// `#expect(throws: QKDError(.frameOversize))` or `catch let e where e.code == .frameOversize`.
///
/// Codes are an extensible set (like `NIOSSHError` and swift-certificates' `CertificateError`):
/// each module adds its own codes in an extension of ``QKDError/Code``.
public struct QKDError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable machine-readable identifier such as `wire.oversize`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The stable identifier, `<layer>.<what>`. It appears in logs, alerts and JSON output.
        public let identifier: String
        /// Whether the error is the peer's fault (malformed or hostile input on the wire), as
        /// opposed to a local problem (configuration, storage, exhausted key).
        public let isPeerMisbehaviour: Bool

        /// Creates a code.
        /// - Parameters:
        ///   - identifier: `<layer>.<what>`, unique across the package.
        ///   - isPeerMisbehaviour: true if only a misbehaving or hostile peer can cause it.
        public init(_ identifier: String, peerMisbehaviour: Bool = false) {
            self.identifier = identifier
            self.isPeerMisbehaviour = peerMisbehaviour
        }

        public var description: String { identifier }

        public static func == (lhs: Code, rhs: Code) -> Bool { lhs.identifier == rhs.identifier }
        public func hash(into hasher: inout Hasher) { hasher.combine(identifier) }
    }

    /// What went wrong.
    public var code: Code
    /// What happened and what to do, for a human. Never contains key material.
    public private(set) var detail: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: what went wrong.
    ///   - detail: a sentence for a human: what happened, and what to do.
    public init(_ code: Code, _ detail: String = "") {
        self.code = code
        self.detail = detail
    }

    /// "`code`: detail".
    public var description: String { detail.isEmpty ? code.identifier : "\(code.identifier): \(detail)" }

    public static func == (lhs: QKDError, rhs: QKDError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}

extension QKDError.Code {
    /// A key, pad or seed had the wrong length.
    public static let invalidKeyLength = QKDError.Code("crypto.invalid-key-length")
    /// A hash key that is zero (for Poly1305, after clamping): it would give every message the
    /// same tag.
    public static let weakHashKey = QKDError.Code("crypto.weak-hash-key")
    /// libsodium could not be initialised.
    public static let sodiumUnavailable = QKDError.Code("crypto.sodium-unavailable")
    /// A known-answer or self test failed: the build or the CPU computes wrong results.
    public static let selfTestFailed = QKDError.Code("crypto.self-test-failed")
    /// An unknown MAC suite identifier.
    public static let unknownSuite = QKDError.Code("crypto.unknown-suite", peerMisbehaviour: true)
}
