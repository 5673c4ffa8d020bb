public import QKDCrypto
public import QKDWire

/// A pre-shared key for `psk-kdf` mode (Spec/session.md section 5.1).
public struct PreSharedKey: Sendable {
    /// The 16-byte id sent in the ClientHello.
    public let id: [UInt8]
    /// The secret.
    public let secret: SecretBytes

    /// Creates a PSK.
    /// - Parameters:
    ///   - id: 16 bytes.
    ///   - secret: the key (any length; at least 16 bytes is sensible).
    public init(id: [UInt8], secret: SecretBytes) {
        precondition(id.count == HandshakeLimits.pskIDByteCount, "a PSK id is 16 bytes")
        self.id = id
        self.secret = secret
    }
}

/// The role of a node: Alice initiates, Bob responds (Spec/session.md section 1).
public enum SessionRole: Sendable {
    /// The initiator; sends in direction 0.
    case alice
    /// The responder; sends in direction 1.
    case bob

    /// The direction this node sends in.
    public var outbound: Direction { self == .alice ? .aliceToBob : .bobToAlice }
}

/// Whether the session's keys are computational or information-theoretic (Spec/session.md
/// section 2).
public enum SecurityLevel: Sendable, Hashable, CustomStringConvertible {
    /// At least one direction runs on a bootstrap (HKDF/ChaCha20) epoch.
    case computational
    /// Both directions run on pool epochs.
    case informationTheoretic

    /// "computational" or "information-theoretic".
    public var description: String { self == .computational ? "computational" : "information-theoretic" }
}

/// The configuration of a ``Session`` (defaults as in Spec/session.md).
public struct SessionConfiguration: Sendable {
    /// Alice or Bob.
    public var role: SessionRole
    /// Alice: the mode she asks for.
    public var mode: HandshakeMode
    /// Bob: the modes he accepts.
    public var acceptedModes: Set<HandshakeMode>
    /// MAC suites, in preference order (Alice's order decides).
    public var suites: [MACSuite]
    /// Granularities supported.
    public var granularities: Granularities
    /// The 16-byte id of the pair of pools; both nodes must agree.
    public var linkID: [UInt8]
    /// The encoded split policy; both nodes must agree byte for byte.
    public var splitPolicy: [UInt8]
    /// PSKs: Alice uses the first in `psk-kdf` mode; Bob looks them up by id.
    public var preSharedKeys: [PreSharedKey]
    /// Largest watermark claim accepted beyond the local value, in slots (Spec/session.md
    /// section 4, default 65536): a tampered hello cannot burn more of the pool.
    public var maxResyncSkip: UInt64 = 65_536
    /// Largest outbound skip Alice makes *before* any peer tag verified, in slots
    /// (Spec/session.md section 4.1, default 4096, the key pool's default reservation chunk).
    /// Only needed when both nodes restarted and each one's durable inbound watermark (reserved
    /// in chunks) lies beyond the peer's outbound one; every other resume skips only after the
    /// peer's Finished verified. It bounds what a forged hello can burn in that case; 0 turns
    /// the case into `session.pool-desync`. Set it at least to the peer pool's
    /// `KeyPool.Configuration.chunkPads`.
    public var maxPreAuthSkip: UInt64 = 4096
    /// Verification failures (bad tags, replays, gaps) tolerated before the session closes
    /// (Spec/session.md section 6, default 8).
    public var maxAuthenticationFailures = 8
    /// Tags under one epoch before the sender rotates (Spec/session.md section 2, default 2^20).
    public var rotateAfterTags: UInt64 = 1 << 20
    /// Frames still accepted under the old epoch after a rotation request (default 16).
    public var rotateGrace = 16
    /// Nanoseconds the handshake may take, measured with the `now` values given (default 10 s).
    public var handshakeTimeout: UInt64 = 10_000_000_000
    /// The frame size limit.
    public var frameLimits: FrameLimits = .default

    /// Creates a configuration.
    /// - Parameters:
    ///   - role: Alice or Bob.
    ///   - mode: Alice's mode (ignored for Bob).
    ///   - acceptedModes: Bob's accepted modes (default pool and psk-kdf).
    ///   - suites: suites in preference order (default poly1305-otp, gf128-otp).
    ///   - granularities: supported granularities (default both).
    ///   - linkID: 16 bytes.
    ///   - splitPolicy: the encoded split policy.
    ///   - preSharedKeys: PSKs for psk-kdf mode.
    public init(role: SessionRole, mode: HandshakeMode = .pool, acceptedModes: Set<HandshakeMode> = [.pool, .pskKDF],
                suites: [MACSuite] = [.poly1305OTP, .gf128OTP], granularities: Granularities = .all,
                linkID: [UInt8], splitPolicy: [UInt8] = [], preSharedKeys: [PreSharedKey] = []) {
        precondition(linkID.count == HandshakeLimits.linkIDByteCount, "a link id is 16 bytes")
        precondition(!suites.isEmpty, "configure at least one MAC suite")
        precondition(!granularities.isEmpty, "configure at least one granularity")
        self.role = role
        self.mode = mode
        self.acceptedModes = acceptedModes
        self.suites = suites
        self.granularities = granularities
        self.linkID = linkID
        self.splitPolicy = splitPolicy
        self.preSharedKeys = preSharedKeys
    }
}
