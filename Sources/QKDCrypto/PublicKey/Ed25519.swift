#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
internal import CSodium

/// Ed25519 signatures (RFC 8032 section 5.1, "PureEdDSA") through libsodium's
/// `crypto_sign_detached` / `crypto_sign_verify_detached`.
///
/// The API follows swift-crypto's `Curve25519.Signing`: ``PrivateKey`` is a 32-byte seed
/// (`rawRepresentation`), ``PublicKey`` is the 32-byte encoded point, a signature is 64 bytes.
/// Used for the transcript signatures of the PKI bootstrap (Spec/handshake.md section 2.1).
public enum Ed25519 {
    /// Bytes in a private key seed (RFC 8032 section 5.1.5).
    public static let seedByteCount = 32
    /// Bytes in an encoded public key (RFC 8032 section 5.1.2).
    public static let publicKeyByteCount = 32
    /// Bytes in a signature, R || S (RFC 8032 section 5.1.6).
    public static let signatureByteCount = 64

    /// An Ed25519 private key: the 32-byte seed, and libsodium's expanded 64-byte secret key,
    /// both held in ``SecretBytes`` (locked, wiped on release, never printed).
    public struct PrivateKey: Sendable, CustomStringConvertible {
        /// libsodium's secret key: seed || public key (64 bytes).
        private let expanded: SecretBytes
        /// The public key that verifies this key's signatures.
        public let publicKey: PublicKey

        /// Generates a key from a seed drawn from `random` (`crypto_sign_seed_keypair`), so key
        /// generation follows the injected randomness (DESIGN.md, "Sans-IO core").
        /// - Parameter random: the source of the 32-byte seed.
        public init(using random: inout some RandomSource) {
            let seed = SecretBytes(randomCount: Ed25519.seedByteCount, using: &random)
            self.init(seed: seed)
        }

        /// Creates a key from its 32-byte seed, the format of swift-crypto's
        /// `Curve25519.Signing.PrivateKey.rawRepresentation` and of the PKCS#8 `CurvePrivateKey`
        /// that `openssl genpkey -algorithm ed25519` writes (RFC 8410 section 7).
        /// - Parameter rawRepresentation: exactly 32 bytes.
        /// - Throws: ``QKDError/Code/invalidKeyLength`` for any other length.
        public init(rawRepresentation: some ContiguousBytes) throws {
            let n = rawRepresentation.withUnsafeBytes { $0.count }
            guard n == Ed25519.seedByteCount else {
                throw QKDError(.invalidKeyLength, "an Ed25519 private key (seed) must be \(Ed25519.seedByteCount) bytes, got \(n)")
            }
            self.init(seed: SecretBytes(copying: rawRepresentation))
        }

        private init(seed: SecretBytes) {
            Sodium.ensureInitialized()
            var publicBytes = [UInt8](repeating: 0, count: Ed25519.publicKeyByteCount)
            let expanded = SecretBytes(count: 64) { sk in  // crypto_sign_SECRETKEYBYTES: seed || public key
                seed.withUnsafeBytes { s in
                    let rc = crypto_sign_seed_keypair(
                        &publicBytes, sk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        s.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    precondition(rc == 0, "crypto_sign_seed_keypair cannot fail")
                }
            }
            self.expanded = expanded
            self.publicKey = PublicKey(checkedBytes: publicBytes)
        }

        /// The 32-byte seed. It is secret: keep it in ``SecretBytes`` and wipe any copy.
        public var rawRepresentation: SecretBytes { expanded.slice(0..<Ed25519.seedByteCount) }

        /// Signs `data` (deterministic: RFC 8032 signatures need no randomness).
        /// - Parameter data: the message, e.g. the transcript-signature input of
        ///   Spec/handshake.md section 3.3.
        /// - Returns: the 64-byte signature.
        public func signature(for data: some ContiguousBytes) -> [UInt8] {
            var sig = [UInt8](repeating: 0, count: Ed25519.signatureByteCount)
            data.withUnsafeBytes { raw in
                withMessagePointer(raw) { m, n in
                    expanded.withUnsafeBytes { sk in
                        let rc = crypto_sign_detached(&sig, nil, m, UInt64(n), sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                        precondition(rc == 0, "crypto_sign_detached cannot fail")
                    }
                }
            }
            return sig
        }

        /// "Ed25519.PrivateKey(public: <hex>)": never the secret.
        public var description: String { "Ed25519.PrivateKey(public: \(Hex.encode(publicKey.rawRepresentation)))" }
    }

    /// An Ed25519 public key (the 32-byte encoding of RFC 8032 section 5.1.2).
    public struct PublicKey: Sendable, Hashable, CustomStringConvertible {
        /// The 32-byte encoded point.
        public let rawRepresentation: [UInt8]

        fileprivate init(checkedBytes: [UInt8]) { self.rawRepresentation = checkedBytes }

        /// Creates a public key from its 32-byte encoding. Points that are not canonical or of
        /// small order are not refused here; ``isValidSignature(_:for:)`` refuses them
        /// (libsodium's verification rejects small-order keys and non-canonical encodings).
        /// - Parameter rawRepresentation: exactly 32 bytes.
        /// - Throws: ``QKDError/Code/invalidPublicKey`` for any other length.
        public init(rawRepresentation: some ContiguousBytes) throws {
            let bytes = rawRepresentation.withUnsafeBytes { [UInt8]($0) }
            guard bytes.count == Ed25519.publicKeyByteCount else {
                throw QKDError(.invalidPublicKey, "an Ed25519 public key must be \(Ed25519.publicKeyByteCount) bytes, got \(bytes.count)")
            }
            self.rawRepresentation = bytes
        }

        /// Verifies a signature (`crypto_sign_verify_detached`, which also rejects
        /// non-canonical S and small-order R or A). Time depends only on public values.
        /// - Parameters:
        ///   - signature: the 64-byte signature; any other length is simply invalid.
        ///   - data: the signed message.
        /// - Returns: true if the signature is valid for `data` under this key.
        public func isValidSignature(_ signature: some ContiguousBytes, for data: some ContiguousBytes) -> Bool {
            Sodium.ensureInitialized()
            return signature.withUnsafeBytes { s in
                guard s.count == Ed25519.signatureByteCount else { return false }
                return data.withUnsafeBytes { raw in
                    withMessagePointer(raw) { m, n in
                        crypto_sign_verify_detached(
                            s.baseAddress!.assumingMemoryBound(to: UInt8.self), m, UInt64(n), rawRepresentation) == 0
                    }
                }
            }
        }

        /// "Ed25519.PublicKey(<hex>)".
        public var description: String { "Ed25519.PublicKey(\(Hex.encode(rawRepresentation)))" }
    }
}

/// Calls `body` with a non-null pointer to the message bytes: libsodium wants a valid pointer
/// even for an empty message (RFC 8032 test 1 signs the empty string).
func withMessagePointer<R>(_ m: UnsafeRawBufferPointer, _ body: (UnsafePointer<UInt8>, Int) -> R) -> R {
    if let base = m.baseAddress, m.count > 0 {
        return body(base.assumingMemoryBound(to: UInt8.self), m.count)
    }
    var zero: UInt8 = 0
    return withUnsafePointer(to: &zero) { body($0, 0) }
}
