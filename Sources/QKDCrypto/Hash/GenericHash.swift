#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
internal import CSodium

/// BLAKE2b (RFC 7693) through libsodium's `crypto_generichash`, for public derivations:
/// identifiers (consumer key UUIDs, Spec/keypool.md "Consumer key ids") and integrity digests
/// (PSK files, Spec/keypool.md "PSK file format"). Not a MAC for the authenticated channel:
/// that is ``WegmanCarter``.
public struct GenericHash: ~Copyable {
    /// The smallest output length BLAKE2b allows (`crypto_generichash_BYTES_MIN`).
    public static let minimumOutputByteCount = 16
    /// The largest output length BLAKE2b allows (`crypto_generichash_BYTES_MAX`).
    public static let maximumOutputByteCount = 64
    /// The largest key BLAKE2b allows (`crypto_generichash_KEYBYTES_MAX`).
    public static let maximumKeyByteCount = 64

    // crypto_generichash_state is 64-byte aligned and opaque to Swift: keep it on the heap.
    private let state: OpaquePointer
    private let stateByteCount: Int
    private let outputByteCount: Int

    /// Starts a hash.
    /// - Parameters:
    ///   - outputByteCount: 16...64 bytes.
    ///   - key: an optional key of at most 64 bytes (empty for an unkeyed hash).
    public init(outputByteCount: Int, key: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        precondition((Self.minimumOutputByteCount...Self.maximumOutputByteCount).contains(outputByteCount),
                     "BLAKE2b output must be 16...64 bytes")
        precondition(key.count <= Self.maximumKeyByteCount, "BLAKE2b key must be at most 64 bytes")
        Sodium.ensureInitialized()
        self.outputByteCount = outputByteCount
        stateByteCount = crypto_generichash_statebytes()
        let raw = UnsafeMutableRawPointer.allocate(byteCount: stateByteCount, alignment: 64)
        state = OpaquePointer(raw)
        _ = crypto_generichash_init(state, key.baseAddress?.assumingMemoryBound(to: UInt8.self), key.count, outputByteCount)
    }

    /// Feeds bytes.
    /// - Parameter bytes: the next piece of the message.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        _ = crypto_generichash_update(state, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
    }

    /// Feeds bytes.
    /// - Parameter bytes: the next piece of the message.
    public mutating func update(_ bytes: some ContiguousBytes) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Feeds an unsigned integer as 8 big-endian bytes (for length-unambiguous encodings).
    /// - Parameter value: the integer.
    public mutating func update(bigEndian value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { update($0) }
    }

    /// Finishes the hash; consuming, so it can only be called once. The state is wiped and freed.
    /// - Returns: `outputByteCount` bytes.
    public consuming func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: outputByteCount)
        _ = crypto_generichash_final(state, &out, outputByteCount)
        return out
    }

    deinit {
        let raw = UnsafeMutableRawPointer(state)
        secureZero(UnsafeMutableRawBufferPointer(start: raw, count: stateByteCount))
        raw.deallocate()
    }

    /// One-shot BLAKE2b of the concatenation of `parts`.
    /// - Parameters:
    ///   - parts: the message, in pieces.
    ///   - outputByteCount: 16...64 bytes; 32 by default.
    /// - Returns: the digest.
    public static func hash(_ parts: [[UInt8]], outputByteCount: Int = 32) -> [UInt8] {
        var h = GenericHash(outputByteCount: outputByteCount)
        for part in parts { h.update(part) }
        return h.finalize()
    }
}
