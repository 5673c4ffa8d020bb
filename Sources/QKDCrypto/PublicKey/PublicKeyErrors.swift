extension QKDError.Code {
    /// A public key, signature, key share or ciphertext had the wrong length or could not be
    /// parsed (Spec/handshake.md section 2).
    public static let invalidPublicKey = QKDError.Code("crypto.invalid-public-key", peerMisbehaviour: true)
    /// An X25519 key agreement produced the all-zero shared secret: the peer sent a low-order
    /// point (RFC 7748 section 6.1 recommends this check). Spec/handshake.md section 2.2.
    public static let zeroSharedSecret = QKDError.Code("crypto.zero-shared-secret", peerMisbehaviour: true)
    /// The ML-KEM or ML-DSA implementation (swift-crypto) refused an operation, e.g. a malformed
    /// encapsulation key. Spec/handshake.md sections 2.3 and 2.4.
    public static let postQuantumFailure = QKDError.Code("crypto.post-quantum-failure", peerMisbehaviour: true)
    /// The responder chose a key agreement the initiator did not offer, or sent fields that do
    /// not belong to the chosen one (Spec/handshake.md 2.3).
    public static let keyAgreementNotOffered = QKDError.Code("crypto.key-agreement-not-offered", peerMisbehaviour: true)
    /// A key derivation was asked for more output than HKDF-SHA256 can give (255 * 32 bytes,
    /// RFC 5869 section 2.3).
    public static let kdfOutputTooLong = QKDError.Code("crypto.kdf-output-too-long")
}
