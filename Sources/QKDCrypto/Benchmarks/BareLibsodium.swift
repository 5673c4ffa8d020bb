internal import CSodium

/// Bare libsodium calls, exposed only so that benchmarks outside QKDCrypto (`qkd-node bench mac`)
/// can measure a baseline in the same run without importing CSodium (DESIGN.md: only QKDCrypto
/// imports it). Not for protocol use: the protocol authenticates through ``WegmanCarter``.
public enum BareLibsodium {
    /// Bytes of a `crypto_onetimeauth_poly1305` key (`r || s`).
    public static let poly1305KeyByteCount = 32
    /// Bytes of a Poly1305 tag.
    public static let poly1305TagByteCount = 16

    /// `crypto_onetimeauth_poly1305`: the one-shot Poly1305 tag of `message` under `key`.
    /// - Parameters:
    ///   - tag: where the 16-byte tag goes (at least 16 bytes).
    ///   - message: the bytes to authenticate.
    ///   - key: 32 bytes, `r || s`.
    @inline(__always)
    public static func poly1305Tag(_ tag: UnsafeMutableRawBufferPointer, message: UnsafeRawBufferPointer,
                                   key: UnsafeRawBufferPointer) {
        precondition(tag.count >= poly1305TagByteCount && key.count == poly1305KeyByteCount, "bad tag or key size")
        Sodium.ensureInitialized()
        _ = crypto_onetimeauth_poly1305(tag.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                        message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                        UInt64(message.count), key.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }

    /// `crypto_onetimeauth_poly1305_verify`: whether `tag` is the Poly1305 tag of `message` under
    /// `key` (constant-time compare inside libsodium).
    /// - Parameters:
    ///   - tag: the 16-byte tag.
    ///   - message: the bytes.
    ///   - key: 32 bytes, `r || s`.
    /// - Returns: true if the tag matches.
    @inline(__always)
    public static func poly1305Verify(_ tag: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer,
                                      key: UnsafeRawBufferPointer) -> Bool {
        precondition(tag.count >= poly1305TagByteCount && key.count == poly1305KeyByteCount, "bad tag or key size")
        Sodium.ensureInitialized()
        return crypto_onetimeauth_poly1305_verify(tag.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                  message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                                  UInt64(message.count),
                                                  key.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
    }
}
