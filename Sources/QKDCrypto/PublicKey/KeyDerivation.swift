#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
internal import Crypto

/// HKDF-SHA256 (RFC 5869) and SHA-256, through swift-crypto, for the bootstrap key schedule
/// (Spec/handshake.md section 3). Outputs that are keys come back as ``SecretBytes``.
///
/// swift-crypto copies the input keying material into its own `SymmetricKey`, whose storage it
/// zeroes on release; the copy we hand it is wiped by us.
public enum KeyDerivation {
    /// The largest HKDF-SHA256 output: 255 blocks of 32 bytes (RFC 5869 section 2.3).
    public static let maximumOutputByteCount = 255 * 32

    /// HKDF-Extract then HKDF-Expand with SHA-256 (RFC 5869 section 2).
    /// - Parameters:
    ///   - inputKeyMaterial: the secret input (e.g. a key-agreement output).
    ///   - salt: public salt; Spec/handshake.md uses the transcript hash here.
    ///   - info: context and label, e.g. `"QKDChannel v1 bootstrap hash key c2s"`.
    ///   - outputByteCount: 1 ... ``maximumOutputByteCount``.
    /// - Returns: the output keying material.
    /// - Throws: ``QKDError/Code/kdfOutputTooLong`` if `outputByteCount` is out of range.
    public static func hkdfSHA256(
        inputKeyMaterial: SecretBytes, salt: some ContiguousBytes, info: some ContiguousBytes, outputByteCount: Int
    ) throws -> SecretBytes {
        let prk = extract(inputKeyMaterial: inputKeyMaterial, salt: salt)
        return try expand(pseudoRandomKey: prk, info: info, outputByteCount: outputByteCount)
    }

    /// HKDF-Extract with SHA-256 (RFC 5869 section 2.2): `PRK = HMAC-SHA256(salt, IKM)`.
    /// - Parameters:
    ///   - inputKeyMaterial: the secret input.
    ///   - salt: public salt (an empty salt means 32 zero bytes, as the RFC says).
    /// - Returns: the 32-byte pseudorandom key.
    public static func extract(inputKeyMaterial: SecretBytes, salt: some ContiguousBytes) -> SecretBytes {
        let saltBytes = salt.withUnsafeBytes { [UInt8]($0) }
        let key = inputKeyMaterial.withUnsafeBytes { SymmetricKey(data: $0) }
        let prk = HKDF<SHA256>.extract(inputKeyMaterial: key, salt: saltBytes)
        return prk.withUnsafeBytes { SecretBytes(copying: $0) }
    }

    /// HKDF-Expand with SHA-256 (RFC 5869 section 2.3).
    /// - Parameters:
    ///   - pseudoRandomKey: at least 32 bytes, normally the output of ``extract(inputKeyMaterial:salt:)``.
    ///   - info: context and label.
    ///   - outputByteCount: 1 ... ``maximumOutputByteCount``.
    /// - Returns: the output keying material.
    /// - Throws: ``QKDError/Code/kdfOutputTooLong`` if `outputByteCount` is out of range,
    ///   ``QKDError/Code/invalidKeyLength`` if the key is shorter than 32 bytes.
    public static func expand(
        pseudoRandomKey: SecretBytes, info: some ContiguousBytes, outputByteCount: Int
    ) throws -> SecretBytes {
        guard outputByteCount > 0, outputByteCount <= maximumOutputByteCount else {
            throw QKDError(.kdfOutputTooLong, "HKDF-SHA256 can give 1 to \(maximumOutputByteCount) bytes, \(outputByteCount) were asked for; split the request with distinct info labels")
        }
        guard pseudoRandomKey.count >= 32 else {
            throw QKDError(.invalidKeyLength, "an HKDF-SHA256 pseudorandom key must be at least 32 bytes, got \(pseudoRandomKey.count)")
        }
        let infoBytes = info.withUnsafeBytes { [UInt8]($0) }
        let okm = pseudoRandomKey.withUnsafeBytes { prk in
            HKDF<SHA256>.expand(pseudoRandomKey: prk, info: infoBytes, outputByteCount: outputByteCount)
        }
        return okm.withUnsafeBytes { SecretBytes(copying: $0) }
    }

    /// SHA-256 of `data` (FIPS 180-4), for transcript hashes and for binding long public values.
    /// - Parameter data: the bytes to hash.
    /// - Returns: the 32-byte digest.
    public static func sha256(_ data: some ContiguousBytes) -> [UInt8] {
        var hasher = SHA256()
        data.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return Array(hasher.finalize())
    }
}

/// A running SHA-256 over the handshake transcript (Spec/handshake.md section 3.1): the session
/// appends every handshake message as sent or received and reads the hash at each step.
/// Copying the value forks the hash, so reading a snapshot does not end the transcript.
public struct TranscriptHash: Sendable {
    private var hasher = SHA256()

    /// Starts an empty transcript.
    public init() {}

    /// Appends bytes to the transcript.
    /// - Parameter data: the bytes, e.g. one encoded handshake message.
    public mutating func append(_ data: some ContiguousBytes) {
        data.withUnsafeBytes { hasher.update(bufferPointer: $0) }
    }

    /// The hash of everything appended so far; the transcript can go on afterwards.
    public var current: [UInt8] { Array(hasher.finalize()) }
}
