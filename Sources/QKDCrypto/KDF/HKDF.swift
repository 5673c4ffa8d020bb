#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
internal import CSodium

/// HKDF with HMAC-SHA256 (RFC 5869), over libsodium's `crypto_auth_hmacsha256`.
///
/// libsodium 1.0.18 (the Debian/Ubuntu version this package builds against) has no HKDF of its
/// own (`crypto_kdf_hkdf_sha256_*` arrived in 1.0.19), so the two steps are written here on top
/// of its HMAC, exactly as RFC 5869 section 2 defines them. Checked against the SHA-256 test
/// cases of RFC 5869 Appendix A (`Spec/vectors/hkdf-rfc5869.json`).
///
/// Used by the computational bootstrap modes of the session (Spec/session.md section 5):
/// its output keys are computational, never information-theoretic.
public enum HKDF {
    /// Bytes of a pseudorandom key (the HMAC-SHA256 output length, `HashLen` in RFC 5869).
    public static let pseudorandomKeyByteCount = 32
    /// The most bytes one expansion can produce: 255 * HashLen (RFC 5869 section 2.3).
    public static let maximumOutputByteCount = 255 * pseudorandomKeyByteCount

    /// HKDF-Extract (RFC 5869 section 2.2): `PRK = HMAC-SHA256(key = salt, message = ikm)`.
    /// - Parameters:
    ///   - salt: the salt; empty means `HashLen` zero bytes (HMAC pads the key with zeros, so an
    ///     empty key and 32 zero bytes give the same result).
    ///   - inputKeyMaterial: the secret input (a PSK, a shared secret).
    /// - Returns: the 32-byte pseudorandom key, in locked memory.
    public static func extract(salt: some ContiguousBytes, inputKeyMaterial: some ContiguousBytes) -> SecretBytes {
        salt.withUnsafeBytes { s in
            inputKeyMaterial.withUnsafeBytes { ikm in
                SecretBytes(count: pseudorandomKeyByteCount) { out in hmac(key: s, parts: [ikm], into: out) }
            }
        }
    }

    /// HKDF-Extract with secret input key material held in ``SecretBytes``.
    /// - Parameters:
    ///   - salt: the salt.
    ///   - inputKeyMaterial: the secret input.
    /// - Returns: the 32-byte pseudorandom key.
    public static func extract(salt: some ContiguousBytes, inputKeyMaterial: SecretBytes) -> SecretBytes {
        inputKeyMaterial.withUnsafeBytes { ikm in
            salt.withUnsafeBytes { s in
                SecretBytes(count: pseudorandomKeyByteCount) { out in hmac(key: s, parts: [ikm], into: out) }
            }
        }
    }

    /// HKDF-Expand (RFC 5869 section 2.3): `T(i) = HMAC(PRK, T(i-1) || info || i)`, output the
    /// first `outputByteCount` bytes of `T(1) || T(2) || ...`.
    /// - Parameters:
    ///   - pseudorandomKey: a PRK of at least 32 bytes (usually from ``extract(salt:inputKeyMaterial:)-(_,SecretBytes)``).
    ///   - info: context and application specific information (labels, transcript hashes).
    ///   - outputByteCount: 0 to ``maximumOutputByteCount`` bytes.
    /// - Returns: the output keying material, in locked memory.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` for a PRK shorter than 32 bytes or an output
    ///   length out of range.
    public static func expand(pseudorandomKey: SecretBytes, info: some ContiguousBytes, outputByteCount: Int) throws -> SecretBytes {
        guard pseudorandomKey.count >= pseudorandomKeyByteCount else {
            throw QKDError(.invalidKeyLength, "an HKDF pseudorandom key has at least \(pseudorandomKeyByteCount) bytes (RFC 5869 section 2.3), got \(pseudorandomKey.count)")
        }
        guard outputByteCount >= 0, outputByteCount <= maximumOutputByteCount else {
            throw QKDError(.invalidKeyLength, "HKDF-SHA256 produces at most \(maximumOutputByteCount) bytes (RFC 5869 section 2.3), \(outputByteCount) were asked for")
        }
        return pseudorandomKey.withUnsafeBytes { prk in
            info.withUnsafeBytes { infoBytes in
                SecretBytes(count: outputByteCount) { out in
                    var previous = [UInt8](repeating: 0, count: pseudorandomKeyByteCount)
                    var previousCount = 0
                    var block = [UInt8](repeating: 0, count: pseudorandomKeyByteCount)
                    var written = 0
                    var counter: UInt8 = 1
                    while written < outputByteCount {
                        previous.withUnsafeBytes { prev in
                            withUnsafeBytes(of: &counter) { c in
                                block.withUnsafeMutableBytes { b in
                                    hmac(key: prk, parts: [UnsafeRawBufferPointer(rebasing: prev[0..<previousCount]), infoBytes, c], into: b)
                                }
                            }
                        }
                        let n = min(pseudorandomKeyByteCount, outputByteCount - written)
                        block.withUnsafeBytes { b in
                            UnsafeMutableRawBufferPointer(rebasing: out[written..<written + n]).copyMemory(from: UnsafeRawBufferPointer(rebasing: b[0..<n]))
                        }
                        swap(&previous, &block)
                        previousCount = pseudorandomKeyByteCount
                        written += n
                        counter &+= 1
                    }
                    secureZero(&previous)
                    secureZero(&block)
                }
            }
        }
    }

    /// Extract then expand (RFC 5869 section 2).
    /// - Parameters:
    ///   - inputKeyMaterial: the secret input.
    ///   - salt: the salt.
    ///   - info: context information.
    ///   - outputByteCount: 0 to ``maximumOutputByteCount`` bytes.
    /// - Returns: the output keying material.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` for an output length out of range.
    public static func deriveKey(inputKeyMaterial: SecretBytes, salt: some ContiguousBytes, info: some ContiguousBytes,
                                 outputByteCount: Int) throws -> SecretBytes {
        try expand(pseudorandomKey: extract(salt: salt, inputKeyMaterial: inputKeyMaterial), info: info,
                   outputByteCount: outputByteCount)
    }

    /// HMAC-SHA256 of the concatenation of `parts` under `key`, written to the first 32 bytes of `out`.
    private static func hmac(key: UnsafeRawBufferPointer, parts: [UnsafeRawBufferPointer], into out: UnsafeMutableRawBufferPointer) {
        Sodium.ensureInitialized()
        let state = UnsafeMutablePointer<crypto_auth_hmacsha256_state>.allocate(capacity: 1)
        defer {
            sodium_memzero(state, MemoryLayout<crypto_auth_hmacsha256_state>.size)
            state.deallocate()
        }
        var empty: UInt8 = 0  // an empty key (RFC 5869: salt not provided) still needs a valid pointer
        if let base = key.baseAddress, key.count > 0 {
            _ = crypto_auth_hmacsha256_init(state, base.assumingMemoryBound(to: UInt8.self), key.count)
        } else {
            _ = crypto_auth_hmacsha256_init(state, &empty, 0)
        }
        for part in parts where part.count > 0 {
            _ = crypto_auth_hmacsha256_update(state, part.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(part.count))
        }
        _ = crypto_auth_hmacsha256_final(state, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }
}

/// The ChaCha20 keystream (RFC 8439, IETF variant: 96-bit nonce, 32-bit block counter) with a
/// zero nonce, read at any byte offset: libsodium's `crypto_stream_chacha20_ietf_xor_ic`.
///
/// This is the epoch-0 **bootstrap stream** of Spec/session.md section 5.3: each direction's
/// stream is keyed with its own HKDF output and used once per session, so the zero nonce never
/// repeats under a key. Bytes `[0, 16)` are the epoch-0 hash key, slot `i >= 1` is bytes
/// `[16 i, 16 i + 16)`. Computational security only.
public struct ChaCha20KeyStream: Sendable {
    /// Bytes of a key.
    public static let keyByteCount = 32
    /// The stream is 2^32 blocks of 64 bytes under one nonce (RFC 8439 section 2.4).
    public static let maximumByteCount: UInt64 = (1 << 32) * 64

    private let key: SecretBytes

    /// Creates the stream of a key.
    /// - Parameter key: exactly 32 secret bytes.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` for any other length.
    public init(key: SecretBytes) throws {
        guard key.count == Self.keyByteCount else {
            throw QKDError(.invalidKeyLength, "a ChaCha20 key is \(Self.keyByteCount) bytes, got \(key.count)")
        }
        Sodium.ensureInitialized()
        self.key = key
    }

    /// Lends the `count` keystream bytes starting at byte `offset` to `body` from a scratch
    /// buffer that is wiped afterwards (no locked allocation: for short-lived per-tag reads).
    /// - Parameters:
    ///   - offset: the first byte's offset in the stream.
    ///   - count: how many bytes; `offset + count` must not exceed ``maximumByteCount``.
    ///   - body: reads the bytes; the pointer must not escape.
    /// - Returns: what `body` returns.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` if the range runs past the end of the
    ///   stream; what `body` throws.
    public func withBytes<R>(at offset: UInt64, count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard count >= 0, offset <= Self.maximumByteCount, UInt64(count) <= Self.maximumByteCount - offset else {
            throw QKDError(.invalidKeyLength, "the ChaCha20 bootstrap stream has \(Self.maximumByteCount) bytes; bytes \(offset)..+\(count) are past its end: rotate to a pool epoch")
        }
        let skip = Int(offset % 64)
        var scratch = [UInt8](repeating: 0, count: skip + count)
        defer { secureZero(&scratch) }
        fillKeystream(&scratch, firstBlock: offset / 64)
        return try scratch.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[skip...])) }
    }

    /// Overwrites `buffer` with the keystream from the start of block `firstBlock`.
    private func fillKeystream(_ buffer: inout [UInt8], firstBlock: UInt64) {
        guard !buffer.isEmpty else { return }
        let nonce = [UInt8](repeating: 0, count: 12)
        for i in buffer.indices { buffer[i] = 0 }
        key.withUnsafeBytes { k in
            buffer.withUnsafeMutableBufferPointer { s in
                _ = crypto_stream_chacha20_ietf_xor_ic(s.baseAddress!, s.baseAddress!, UInt64(s.count), nonce,
                                                       UInt32(firstBlock), k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
    }

    /// The `count` keystream bytes starting at byte `offset`.
    /// - Parameters:
    ///   - offset: the first byte's offset in the stream.
    ///   - count: how many bytes; `offset + count` must not exceed ``maximumByteCount``.
    /// - Returns: the bytes, in locked memory.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` if the range runs past the end of the stream.
    public func bytes(at offset: UInt64, count: Int) throws -> SecretBytes {
        guard count >= 0, offset <= Self.maximumByteCount, UInt64(count) <= Self.maximumByteCount - offset else {
            throw QKDError(.invalidKeyLength, "the ChaCha20 bootstrap stream has \(Self.maximumByteCount) bytes; bytes \(offset)..+\(count) are past its end: rotate to a pool epoch")
        }
        let firstBlock = offset / 64
        let skip = Int(offset % 64)
        let total = skip + count
        return SecretBytes(count: count) { out in
            guard count > 0 else { return }
            var scratch = [UInt8](repeating: 0, count: total)
            let nonce = [UInt8](repeating: 0, count: 12)
            key.withUnsafeBytes { k in
                scratch.withUnsafeMutableBufferPointer { s in
                    _ = crypto_stream_chacha20_ietf_xor_ic(s.baseAddress!, s.baseAddress!, UInt64(total), nonce,
                                                           UInt32(firstBlock), k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            scratch.withUnsafeBytes { s in out.copyMemory(from: UnsafeRawBufferPointer(rebasing: s[skip..<total])) }
            secureZero(&scratch)
        }
    }
}

/// BLAKE2b-256 (libsodium `crypto_generichash`, RFC 7693) of a byte string: the transcript hash
/// and session-id derivation of Spec/session.md section 3.
public enum BLAKE2b256 {
    /// Bytes of the digest.
    public static let byteCount = 32

    /// Hashes `message`.
    /// - Parameter message: the bytes.
    /// - Returns: the 32-byte digest.
    public static func hash(_ message: some ContiguousBytes) -> [UInt8] {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: byteCount)
        message.withUnsafeBytes { m in
            _ = crypto_generichash(&out, byteCount, m.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(m.count), nil, 0)
        }
        return out
    }
}
