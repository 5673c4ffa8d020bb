#if canImport(FoundationEssentials)
import FoundationEssentials  // ContiguousBytes
#else
import Foundation
#endif
internal import CSodium

/// The ChaCha20 keystream (RFC 8439, IETF variant: 96-bit nonce, 32-bit block counter) with a
/// zero nonce, read at any byte offset: libsodium's `crypto_stream_chacha20_ietf_xor_ic`.
///
/// This is the epoch-0 **bootstrap stream** of Spec/session.md section 5.3: each direction's
/// stream is keyed with its own HKDF output and used once per session, so the zero nonce never
/// repeats under a key. Bytes `[0, 16)` are the epoch-0 hash key, slot `i >= 1` is bytes
/// `[16 i, 16 i + 16)`. Computational security only. The bytes are those of
/// ``KeyDerivation/chacha20KeyStream(key:byteOffset:count:)``; ``withBytes(at:count:_:)`` lends
/// them from a wiped scratch buffer instead of a locked allocation, which matters when a tag
/// needs one 16-byte read (locking memory costs four system calls).
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
