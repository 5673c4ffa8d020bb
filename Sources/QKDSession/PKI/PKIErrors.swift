public import QKDCrypto

/// Error codes of the PKI bootstrap building blocks (Spec/handshake.md section 5, error table).
extension QKDError.Code {
    /// A certificate, anchor or key file could not be read.
    public static let pkiUnreadableFile = QKDError.Code("pki.unreadable-file")
    /// A private key file is accessible to group or others (DESIGN.md invariant 5).
    public static let pkiKeyFilePermissions = QKDError.Code("pki.key-file-permissions")
    /// A file is not PEM of the expected kind (no `-----BEGIN CERTIFICATE-----`, bad base64,
    /// wrong PEM label, DER that does not parse).
    public static let pkiBadPEM = QKDError.Code("pki.bad-pem")
    /// A certificate received from the peer is not valid DER X.509, or the chain is empty or
    /// longer than ``PKILimits/maximumChainLength``.
    public static let pkiBadCertificate = QKDError.Code("pki.bad-certificate", peerMisbehaviour: true)
    /// A key or certificate uses an algorithm other than Ed25519 (RSA, ECDSA, Ed448, ...), or a
    /// private key file is encrypted.
    public static let pkiUnsupportedKey = QKDError.Code("pki.unsupported-key")
    /// The private key does not belong to the certificate it is configured with.
    public static let pkiKeyMismatch = QKDError.Code("pki.key-mismatch")
    /// The peer's chain does not lead to any configured trust anchor (or a chain that does is
    /// refused by RFC 5280 rules other than validity dates).
    public static let pkiUntrusted = QKDError.Code("pki.untrusted")
    /// A certificate in the peer's chain expired before the validation time.
    public static let pkiExpired = QKDError.Code("pki.expired")
    /// A certificate in the peer's chain is not valid yet at the validation time.
    public static let pkiNotYetValid = QKDError.Code("pki.not-yet-valid")
    /// The peer's certificate does not name the configured peer.
    public static let pkiNameMismatch = QKDError.Code("pki.name-mismatch")
    /// The ML-DSA-65 binding extension is present but malformed (Spec/handshake.md 4.4).
    public static let pkiBadMLDSABinding = QKDError.Code("pki.bad-mldsa-binding", peerMisbehaviour: true)
    /// No trust anchor is configured (an empty anchor file).
    public static let pkiNoTrustAnchors = QKDError.Code("pki.no-trust-anchors")
}

/// Named limits of the PKI code.
public enum PKILimits {
    /// The longest peer chain accepted, leaf included (Spec/handshake.md 4.2): QKD links use a
    /// private CA, so leaf + a few intermediates is ample, and the bound keeps path building cheap.
    public static let maximumChainLength = 4
    /// The largest PEM file read (Spec/handshake.md 4.1): a chain of a few certificates is a
    /// few KiB; anything far larger is not a key or certificate file.
    public static let maximumPEMFileBytes = 1 << 20
}
