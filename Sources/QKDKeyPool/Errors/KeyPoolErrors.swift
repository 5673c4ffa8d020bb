public import QKDCrypto

/// The key pool's error codes (Spec/keypool.md, "Errors"). None of them is peer misbehaviour:
/// every one is a local condition (storage, configuration, exhausted material) or a session
/// that drives the pool out of order.
extension QKDError.Code {
    /// A pad stream has fewer unreserved bytes than requested. Nothing was reserved.
    public static let poolExhausted = QKDError.Code("keypool.exhausted")
    /// The round id was absorbed before; the second absorb credited nothing.
    public static let roundAlreadyAbsorbed = QKDError.Code("keypool.round-already-absorbed")
    /// `advance(to:)` was asked to move a watermark backward. Nothing moved.
    public static let watermarkBackward = QKDError.Code("keypool.watermark-backward")
    /// `advance(to:)` was asked to move a watermark past the end of its stream. Nothing moved.
    public static let watermarkBeyondStream = QKDError.Code("keypool.watermark-beyond-stream")
    /// The state directory, database or PSK file is readable or writable by group or others,
    /// or owned by another user.
    public static let insecurePermissions = QKDError.Code("keypool.insecure-permissions")
    /// The database file is corrupt, truncated or not a key pool.
    public static let storageCorrupt = QKDError.Code("keypool.storage-corrupt")
    /// Any other storage failure (disk full, I/O error, locked).
    public static let storageFailure = QKDError.Code("keypool.storage-failure")
    /// No pool exists in the state directory.
    public static let poolNotFound = QKDError.Code("keypool.not-found")
    /// A pool already exists in the state directory.
    public static let poolExists = QKDError.Code("keypool.exists")
    /// A PSK with this id or digest was imported before. Nothing was imported.
    public static let pskAlreadyImported = QKDError.Code("keypool.psk-already-imported")
    /// A consumer key id is unknown, or the key is not available (delivered or discarded).
    public static let consumerKeyUnavailable = QKDError.Code("keypool.consumer-key-unavailable")
    /// A refill policy is inconsistent (negative sizes, zero consumer key size, ...).
    public static let invalidPolicy = QKDError.Code("keypool.invalid-policy")
    /// An offline check found a broken invariant (Spec/keypool.md, "Invariants").
    public static let invariantViolated = QKDError.Code("keypool.invariant-violated")

    /// A PSK file ends before its declared content.
    public static let pskTruncated = QKDError.Code("psk.truncated")
    /// A PSK file does not start with the magic `QKDPSK`.
    public static let pskBadMagic = QKDError.Code("psk.bad-magic")
    /// A PSK file has a format version this build does not read.
    public static let pskUnsupportedVersion = QKDError.Code("psk.unsupported-version")
    /// A PSK file's reserved header byte is not zero.
    public static let pskReservedNonZero = QKDError.Code("psk.reserved-nonzero")
    /// A PSK file declares fewer key bytes than the minimum.
    public static let pskTooSmall = QKDError.Code("psk.too-small")
    /// A PSK file declares more key bytes than the maximum.
    public static let pskTooLarge = QKDError.Code("psk.too-large")
    /// A PSK file has bytes after its checksum.
    public static let pskTrailingBytes = QKDError.Code("psk.trailing-bytes")
    /// A PSK file's BLAKE2b checksum does not match its content.
    public static let pskChecksumMismatch = QKDError.Code("psk.checksum-mismatch")
}
