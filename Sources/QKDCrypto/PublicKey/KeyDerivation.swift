#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
internal import Crypto
internal import CSodium

/// HKDF-SHA256 (RFC 5869) and SHA-256 through swift-crypto, BLAKE2b-256 and the ChaCha20
/// keystream through libsodium: the primitives of the bootstrap key schedule (Spec/session.md
/// 5.1 and 5.3, Spec/handshake.md 3). Outputs that are keys come back as ``SecretBytes``.
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
    ///   - info: context and label, e.g. `"QKDChannel/1 psk-kdf" || transcript hash`.
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

    /// SHA-256 of `data` (FIPS 180-4), for binding long public values in the combiner (2.3).
    /// - Parameter data: the bytes to hash.
    /// - Returns: the 32-byte digest.
    public static func sha256(_ data: some ContiguousBytes) -> [UInt8] {
        var hasher = SHA256()
        data.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return Array(hasher.finalize())
    }

    /// BLAKE2b-256 of `data` (RFC 7693, unkeyed, 32-byte output; libsodium
    /// `crypto_generichash`): the transcript hash of Spec/session.md 3.
    /// - Parameter data: the bytes to hash.
    /// - Returns: the 32-byte digest.
    public static func blake2b256(_ data: some ContiguousBytes) -> [UInt8] {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: 32)
        data.withUnsafeBytes { raw in
            withMessagePointer(raw) { m, n in
                _ = crypto_generichash(&out, 32, m, UInt64(n), nil, 0)
            }
        }
        return out
    }

    /// Bytes addressable in one IETF ChaCha20 stream: 2^32 blocks of 64 bytes (RFC 8439 2.4).
    public static let chacha20StreamByteCount: UInt64 = 1 << 38

    /// A window of the IETF ChaCha20 keystream (RFC 8439 2.4) with a 32-byte key and the all-zero
    /// 96-bit nonce, from `byteOffset` on (libsodium `crypto_stream_chacha20_ietf_xor_ic`):
    /// the bootstrap streams of Spec/session.md 5.3. Random access, so a pad slot can be read
    /// without producing the stream before it.
    /// - Parameters:
    ///   - key: 32 bytes; each key must serve one stream only (nonce fixed at zero).
    ///   - byteOffset: where the window starts.
    ///   - count: bytes wanted.
    /// - Returns: the keystream bytes.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` for a key that is not 32 bytes;
    ///   ``QKDError/Code/kdfOutputTooLong`` if the window passes ``chacha20StreamByteCount``.
    public static func chacha20KeyStream(key: SecretBytes, byteOffset: UInt64, count: Int) throws -> SecretBytes {
        guard key.count == 32 else {
            throw QKDError(.invalidKeyLength, "a ChaCha20 key is 32 bytes, got \(key.count)")
        }
        guard count >= 0, byteOffset <= chacha20StreamByteCount, UInt64(count) <= chacha20StreamByteCount - byteOffset else {
            throw QKDError(.kdfOutputTooLong, "a ChaCha20 stream holds \(chacha20StreamByteCount) bytes; bytes \(byteOffset) ..< \(byteOffset) + \(count) were asked for")
        }
        Sodium.ensureInitialized()
        let skip = Int(byteOffset % 64)
        let firstBlock = UInt32(truncatingIfNeeded: byteOffset / 64)
        let window = SecretBytes(count: skip + count) { buffer in
            guard buffer.count > 0 else { return }
            let nonce = [UInt8](repeating: 0, count: 12)
            let p = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
            key.withUnsafeBytes { k in
                // The buffer starts zeroed; XOR with the keystream in place gives the keystream.
                _ = crypto_stream_chacha20_ietf_xor_ic(p, p, UInt64(buffer.count), nonce, firstBlock,
                                                       k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return skip == 0 ? window : window.slice(skip..<(skip + count))
    }
}

/// The running transcript hash of Spec/session.md 3: BLAKE2b-256 over every handshake message
/// appended so far. It keeps the transcript bytes (a handshake is a few KiB, bounded by the
/// frame limits) and hashes on demand, so a snapshot never ends the transcript.
public struct TranscriptHash: Sendable {
    private var bytes: [UInt8] = []

    /// Starts an empty transcript.
    public init() {}

    /// Appends bytes to the transcript.
    /// - Parameter data: the bytes, e.g. one encoded handshake message.
    public mutating func append(_ data: some ContiguousBytes) {
        data.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }

    /// BLAKE2b-256 of everything appended so far; the transcript can go on afterwards.
    public var current: [UInt8] { KeyDerivation.blake2b256(bytes) }
}
