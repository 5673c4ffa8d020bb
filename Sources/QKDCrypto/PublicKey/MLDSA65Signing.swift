#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
internal import Crypto

/// ML-DSA-65 signatures (FIPS 204, security category 3) through swift-crypto's `MLDSA65`: the
/// optional post-quantum second transcript signature of the hybrid PKI bootstrap
/// (Spec/handshake.md sections 2.4 and 4.4).
///
/// Randomness: key generation draws its 32-byte seed (FIPS 204 Algorithm 6, `xi`) from the
/// injected ``RandomSource``. Signing is the *hedged* variant (FIPS 204 Algorithm 2), whose
/// 32-byte `rnd` swift-crypto draws from its own generator (BoringSSL `RAND_bytes`); swift-crypto
/// 4.5 exposes no way to inject it. Signatures are therefore not reproducible; verification is.
public enum MLDSA65Signing {
    /// Bytes in a private key seed (FIPS 204 section 4, `xi`).
    public static let seedByteCount = 32
    /// Bytes in an encoded public key (FIPS 204 Table 2, ML-DSA-65).
    public static let publicKeyByteCount = 1952
    /// Bytes in a signature (FIPS 204 Table 2, ML-DSA-65).
    public static let signatureByteCount = 3309
    /// The FIPS 204 context string for QKDChannel transcript signatures (at most 255 bytes,
    /// FIPS 204 section 5.2): domain separation from any other use of the same key.
    public static let transcriptContext = Array("QKDChannel/1 transcript".utf8)

    /// An ML-DSA-65 private key, kept as its seed in ``SecretBytes``.
    public struct PrivateKey: Sendable, CustomStringConvertible {
        private let seed: SecretBytes
        private let key: MLDSA65.PrivateKey
        /// The public key.
        public let publicKey: PublicKey

        /// Generates a key from a 32-byte seed drawn from `random`.
        /// - Parameter random: the seed source.
        /// - Throws: ``QKDError/Code/postQuantumFailure`` if swift-crypto refuses (it should not).
        public init(using random: inout some RandomSource) throws {
            try self.init(seed: SecretBytes(randomCount: MLDSA65Signing.seedByteCount, using: &random))
        }

        /// Creates a key from its 32-byte seed (swift-crypto's `seedRepresentation`).
        /// - Parameter seedRepresentation: exactly 32 bytes.
        /// - Throws: ``QKDError/Code/invalidKeyLength`` for any other length.
        public init(seedRepresentation: some ContiguousBytes) throws {
            let n = seedRepresentation.withUnsafeBytes { $0.count }
            guard n == MLDSA65Signing.seedByteCount else {
                throw QKDError(.invalidKeyLength, "an ML-DSA-65 seed must be \(MLDSA65Signing.seedByteCount) bytes, got \(n)")
            }
            try self.init(seed: SecretBytes(copying: seedRepresentation))
        }

        private init(seed: SecretBytes) throws {
            do {
                let key = try seed.withUnsafeBytes { try MLDSA65.PrivateKey(seedRepresentation: $0, publicKey: nil) }
                self.seed = seed
                self.key = key
                self.publicKey = PublicKey(key.publicKey)
            } catch {
                throw QKDError(.postQuantumFailure, "swift-crypto could not create an ML-DSA-65 key from its seed: \(error)")
            }
        }

        /// The 32-byte seed. It is secret.
        public var seedRepresentation: SecretBytes { seed.slice(0..<seed.count) }

        /// Signs `data` with the FIPS 204 context `context` (hedged signing, see the type's note
        /// on randomness).
        /// - Parameters:
        ///   - data: the message.
        ///   - context: the FIPS 204 context, at most 255 bytes; defaults to ``transcriptContext``.
        /// - Returns: the 3309-byte signature.
        /// - Throws: ``QKDError/Code/postQuantumFailure`` if swift-crypto fails to sign.
        public func signature(for data: some ContiguousBytes, context: [UInt8] = MLDSA65Signing.transcriptContext) throws -> [UInt8] {
            let message = data.withUnsafeBytes { [UInt8]($0) }
            do {
                return Array(try key.signature(for: message, context: context))
            } catch {
                throw QKDError(.postQuantumFailure, "ML-DSA-65 signing failed: \(error)")
            }
        }

        /// "MLDSA65Signing.PrivateKey": never the secret.
        public var description: String { "MLDSA65Signing.PrivateKey" }
    }

    /// An ML-DSA-65 public key (1952 bytes, FIPS 204 `pkEncode`).
    public struct PublicKey: Sendable, Hashable, CustomStringConvertible {
        private let key: MLDSA65.PublicKey
        /// The 1952-byte encoding.
        public let rawRepresentation: [UInt8]

        fileprivate init(_ key: MLDSA65.PublicKey) {
            self.key = key
            self.rawRepresentation = Array(key.rawRepresentation)
        }

        /// Parses a public key.
        /// - Parameter rawRepresentation: the 1952-byte encoding.
        /// - Throws: ``QKDError/Code/invalidPublicKey`` for a wrong length or an encoding
        ///   swift-crypto refuses.
        public init(rawRepresentation: some ContiguousBytes) throws {
            let bytes = rawRepresentation.withUnsafeBytes { [UInt8]($0) }
            guard bytes.count == MLDSA65Signing.publicKeyByteCount else {
                throw QKDError(.invalidPublicKey, "an ML-DSA-65 public key must be \(MLDSA65Signing.publicKeyByteCount) bytes, got \(bytes.count)")
            }
            do {
                self.key = try MLDSA65.PublicKey(rawRepresentation: bytes)
            } catch {
                throw QKDError(.invalidPublicKey, "the ML-DSA-65 public key could not be parsed: \(error)")
            }
            self.rawRepresentation = bytes
        }

        /// Verifies a signature.
        /// - Parameters:
        ///   - signature: the signature; a wrong length is simply invalid.
        ///   - data: the signed message.
        ///   - context: the FIPS 204 context used when signing.
        /// - Returns: true if valid.
        public func isValidSignature(
            _ signature: some ContiguousBytes, for data: some ContiguousBytes,
            context: [UInt8] = MLDSA65Signing.transcriptContext
        ) -> Bool {
            let sig = signature.withUnsafeBytes { [UInt8]($0) }
            guard sig.count == MLDSA65Signing.signatureByteCount else { return false }
            let message = data.withUnsafeBytes { [UInt8]($0) }
            return key.isValidSignature(sig, for: message, context: context)
        }

        public static func == (lhs: PublicKey, rhs: PublicKey) -> Bool { lhs.rawRepresentation == rhs.rawRepresentation }
        public func hash(into hasher: inout Hasher) { hasher.combine(rawRepresentation) }

        /// "MLDSA65Signing.PublicKey(sha256: <hex prefix>)".
        public var description: String {
            "MLDSA65Signing.PublicKey(sha256: \(Hex.encode(KeyDerivation.sha256(rawRepresentation).prefix(8))))"
        }
    }
}
