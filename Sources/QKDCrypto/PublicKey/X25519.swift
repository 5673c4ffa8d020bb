#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
internal import CSodium

/// X25519 Diffie-Hellman (RFC 7748 section 6.1) through libsodium's `crypto_scalarmult`.
///
/// The API follows swift-crypto's `Curve25519.KeyAgreement`. The shared secret is returned as
/// ``SecretBytes`` and must go through a KDF (``KeyDerivation``) before use: the raw X25519
/// output is not uniformly random. Spec/handshake.md section 2.2.
public enum X25519 {
    /// Bytes in a private scalar and in a public u-coordinate (RFC 7748 section 5).
    public static let keyByteCount = 32

    /// An X25519 private key: a 32-byte scalar in ``SecretBytes``. Clamping (RFC 7748 section 5,
    /// `decodeScalar25519`) happens inside libsodium, so any 32 bytes are a valid key.
    public struct PrivateKey: Sendable, CustomStringConvertible {
        private let scalar: SecretBytes
        /// The public key (`X25519(k, 9)`).
        public let publicKey: PublicKey

        /// Generates a key from 32 bytes drawn from `random` (DESIGN.md, "Sans-IO core").
        /// - Parameter random: the source of the scalar.
        public init(using random: inout some RandomSource) {
            self.init(scalar: SecretBytes(randomCount: X25519.keyByteCount, using: &random))
        }

        /// Creates a key from its 32-byte scalar (as RFC 7748 section 6.1 lists them).
        /// - Parameter rawRepresentation: exactly 32 bytes.
        /// - Throws: ``QKDError/Code/invalidKeyLength`` for any other length.
        public init(rawRepresentation: some ContiguousBytes) throws {
            let n = rawRepresentation.withUnsafeBytes { $0.count }
            guard n == X25519.keyByteCount else {
                throw QKDError(.invalidKeyLength, "an X25519 private key must be \(X25519.keyByteCount) bytes, got \(n)")
            }
            self.init(scalar: SecretBytes(copying: rawRepresentation))
        }

        private init(scalar: SecretBytes) {
            Sodium.ensureInitialized()
            var pub = [UInt8](repeating: 0, count: X25519.keyByteCount)
            scalar.withUnsafeBytes { k in
                let rc = crypto_scalarmult_base(&pub, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                precondition(rc == 0, "crypto_scalarmult_base failed")
            }
            self.scalar = scalar
            self.publicKey = PublicKey(checkedBytes: pub)
        }

        /// The 32-byte scalar. It is secret.
        public var rawRepresentation: SecretBytes { scalar.slice(0..<scalar.count) }

        /// Computes the shared secret `X25519(k, peer)` (RFC 7748 section 6.1).
        /// - Parameter peer: the other side's public key.
        /// - Returns: the 32-byte shared secret. Feed it to a KDF; never use it directly as a key.
        /// - Throws: ``QKDError/Code/zeroSharedSecret`` if the result is all zeros, which happens
        ///   exactly when the peer sent a point of small order (RFC 7748 section 6.1, "check
        ///   that the output is not the all-zero value"; libsodium returns -1 and the check is
        ///   constant-time).
        public func sharedSecretFromKeyAgreement(with peer: PublicKey) throws -> SecretBytes {
            var zero = false
            let secret = SecretBytes(count: X25519.keyByteCount) { out in
                scalar.withUnsafeBytes { k in
                    zero = crypto_scalarmult(
                        out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        k.baseAddress!.assumingMemoryBound(to: UInt8.self), peer.rawRepresentation) != 0
                }
            }
            if zero {
                throw QKDError(.zeroSharedSecret, "the peer's X25519 public key is a point of small order (the shared secret would be zero); the peer is misbehaving, the handshake is aborted")
            }
            return secret
        }

        /// "X25519.PrivateKey(public: <hex>)": never the secret.
        public var description: String { "X25519.PrivateKey(public: \(Hex.encode(publicKey.rawRepresentation)))" }
    }

    /// An X25519 public key: a 32-byte little-endian u-coordinate.
    public struct PublicKey: Sendable, Hashable, CustomStringConvertible {
        /// The 32-byte u-coordinate as received (libsodium masks the top bit, RFC 7748 section 5).
        public let rawRepresentation: [UInt8]

        fileprivate init(checkedBytes: [UInt8]) { self.rawRepresentation = checkedBytes }

        /// Creates a public key from 32 bytes. Small-order points are accepted here and refused
        /// by ``PrivateKey/sharedSecretFromKeyAgreement(with:)``.
        /// - Parameter rawRepresentation: exactly 32 bytes.
        /// - Throws: ``QKDError/Code/invalidPublicKey`` for any other length.
        public init(rawRepresentation: some ContiguousBytes) throws {
            let bytes = rawRepresentation.withUnsafeBytes { [UInt8]($0) }
            guard bytes.count == X25519.keyByteCount else {
                throw QKDError(.invalidPublicKey, "an X25519 public key must be \(X25519.keyByteCount) bytes, got \(bytes.count)")
            }
            self.rawRepresentation = bytes
        }

        /// "X25519.PublicKey(<hex>)".
        public var description: String { "X25519.PublicKey(\(Hex.encode(rawRepresentation)))" }
    }
}
