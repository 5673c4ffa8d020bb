#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
internal import CSodium
internal import CQKDKernels

/// A recycled universal-hash key: Poly1305's `r` or GF(2^128)'s `H`, 16 bytes.
///
/// Portmann (2014) shows the hash key may be reused across many tags provided every tag is
/// encrypted with a fresh pad; the key pool rotates it per epoch and after any verification
/// failure. For `gf128-otp` the powers H^1..H^16 are precomputed once here, in locked memory.
public struct HashKey: Sendable, CustomStringConvertible {
    /// The suite this key belongs to.
    public let suite: MACSuite
    let raw: SecretBytes
    /// For gf128-otp: a `qkd_ghash_key` (H and its powers), in locked memory. Nil for Poly1305.
    let ghashKey: SecretBytes?

    /// Creates a hash key from its 16 raw bytes.
    /// - Parameters:
    ///   - suite: the suite the key is for.
    ///   - rawRepresentation: exactly 16 bytes.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` for any other length;
    ///   ``QKDError/Code/weakHashKey`` for a zero key.
    public init(suite: MACSuite, rawRepresentation: some ContiguousBytes) throws {
        let count = rawRepresentation.withUnsafeBytes { $0.count }
        guard count == MACSuite.hashKeyByteCount else {
            throw QKDError(.invalidKeyLength, "a \(suite) hash key is \(MACSuite.hashKeyByteCount) bytes, got \(count)")
        }
        try self.init(suite: suite, secret: SecretBytes(copying: rawRepresentation))
    }

    /// Creates a hash key from 16 secret bytes without copying them out of locked memory.
    /// - Parameters:
    ///   - suite: the suite the key is for.
    ///   - secret: exactly 16 bytes.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` for any other length;
    ///   ``QKDError/Code/weakHashKey`` for a zero key.
    public init(suite: MACSuite, secret: SecretBytes) throws {
        guard secret.count == MACSuite.hashKeyByteCount else {
            throw QKDError(.invalidKeyLength, "a \(suite) hash key is \(MACSuite.hashKeyByteCount) bytes, got \(secret.count)")
        }
        guard !HashKey.isWeak(suite: suite, secret) else {
            throw QKDError(.weakHashKey, "the \(suite) hash key is zero (after Poly1305 clamping), which would make every message hash to the same value; the key source is broken or exhausted")
        }
        self.init(suite: suite, checkedSecret: secret)
    }

    /// A zero hash key (for Poly1305: zero after clamping r) makes the hash constant, so every
    /// message would get the same tag. Found by the FuzzMAC target; Spec/crypto.md 1.1.
    static func isWeak(suite: MACSuite, _ secret: SecretBytes) -> Bool {
        secret.withUnsafeBytes { bytes in
            var low = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
            var high = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            if suite == .poly1305OTP {
                // RFC 8439 2.5: r &= 0x0ffffffc0ffffffc0ffffffc0fffffff (little-endian).
                low &= UInt64(0x0fff_fffc_0fff_ffff).littleEndian
                high &= UInt64(0x0fff_fffc_0fff_fffc).littleEndian
            }
            return (low | high) == 0
        }
    }

    /// No weak-key check: for the RFC 8439 vectors with r = 0 and for keys already checked.
    init(suite: MACSuite, checkedSecret secret: SecretBytes) {
        self.suite = suite
        self.raw = secret
        switch suite {
        case .poly1305OTP:
            self.ghashKey = nil
        case .gf128OTP:
            self.ghashKey = SecretBytes(count: MemoryLayout<qkd_ghash_key>.size) { table in
                secret.withUnsafeBytes { h in
                    qkd_ghash_key_init(table.baseAddress!.assumingMemoryBound(to: qkd_ghash_key.self),
                                       h.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
    }

    /// Draws a fresh hash key. For tests and for PSK-less simulation; in production the key
    /// pool supplies hash keys from distilled key.
    /// - Parameters:
    ///   - suite: the suite.
    ///   - random: the source.
    /// - Returns: the key.
    public static func random(suite: MACSuite, using random: inout some RandomSource) -> HashKey {
        while true {
            let secret = SecretBytes(randomCount: MACSuite.hashKeyByteCount, using: &random)
            if !isWeak(suite: suite, secret) { return HashKey(suite: suite, checkedSecret: secret) }
        }
    }

    /// "HashKey(poly1305-otp)": never the bytes.
    public var description: String { "HashKey(\(suite))" }
}

/// A 16-byte one-time pad (`s`) for exactly one tag.
///
/// Non-copyable: ``WegmanCarter/authenticationTag(for:domain:hashKey:pad:)`` consumes it, so the
/// type system refuses a second tag with the same pad value in the same program. (Its durable
/// uniqueness across crashes is the key pool's job: DESIGN.md invariant 1.) Verification only
/// borrows a pad, because a failed verification must not consume the peer's pad stream.
public struct OneTimePad: ~Copyable, Sendable {
    // The 16 bytes in memory order.
    var word0: UInt64
    var word1: UInt64

    /// Creates a pad from 16 bytes.
    /// - Parameter rawRepresentation: exactly 16 bytes.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` for any other length.
    public init(rawRepresentation: some ContiguousBytes) throws {
        let pad = try rawRepresentation.withUnsafeBytes { bytes -> (UInt64, UInt64) in
            guard bytes.count == MACSuite.padByteCount else {
                throw QKDError(.invalidKeyLength, "a one-time pad is \(MACSuite.padByteCount) bytes, got \(bytes.count)")
            }
            return (bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                    bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        word0 = pad.0
        word1 = pad.1
    }

    /// Creates a pad from the 16 bytes at `offset` in `source` (typically a reserved chunk of a
    /// pad stream in locked memory), without an intermediate copy.
    /// - Parameters:
    ///   - source: the pad stream bytes.
    ///   - offset: a byte offset with `offset + 16 <= source.count`.
    public init(_ source: UnsafeRawBufferPointer, offset: Int) {
        precondition(offset >= 0 && offset + MACSuite.padByteCount <= source.count, "pad out of range")
        word0 = source.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        word1 = source.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)
    }

    /// Draws a pad. For tests and benchmarks; in production pads come from the key pool.
    /// - Parameter random: the source.
    /// - Returns: the pad.
    public static func random(using random: inout some RandomSource) -> OneTimePad {
        var bytes = (UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &bytes) { random.fill($0) }
        return OneTimePad(words: bytes.0, bytes.1)
    }

    init(words w0: UInt64, _ w1: UInt64) {
        word0 = w0
        word1 = w1
    }
}

/// A 16-byte authentication tag as it travels on the wire.
///
/// Tags are public once sent; comparison is still constant-time, because a verifier compares a
/// received tag against the expected one.
public struct AuthenticationTag: Sendable, Equatable, CustomStringConvertible {
    var word0: UInt64
    var word1: UInt64

    /// Creates a tag from 16 bytes.
    /// - Parameter rawRepresentation: exactly 16 bytes.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` for any other length.
    public init(rawRepresentation: some ContiguousBytes) throws {
        let words = try rawRepresentation.withUnsafeBytes { bytes -> (UInt64, UInt64) in
            guard bytes.count == MACSuite.tagByteCount else {
                throw QKDError(.invalidKeyLength, "an authentication tag is \(MACSuite.tagByteCount) bytes, got \(bytes.count)")
            }
            return (bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                    bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        word0 = words.0
        word1 = words.1
    }

    /// Reads a tag from the 16 bytes at `offset` in `source`.
    /// - Parameters:
    ///   - source: a buffer.
    ///   - offset: a byte offset with `offset + 16 <= source.count`.
    public init(_ source: UnsafeRawBufferPointer, offset: Int) {
        precondition(offset >= 0 && offset + MACSuite.tagByteCount <= source.count, "tag out of range")
        word0 = source.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        word1 = source.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)
    }

    init(words w0: UInt64, _ w1: UInt64) {
        word0 = w0
        word1 = w1
    }

    /// The 16 bytes.
    public var rawRepresentation: [UInt8] {
        withUnsafeBytes { [UInt8]($0) }
    }

    /// Calls `body` with the 16 bytes.
    /// - Parameter body: reads the bytes.
    /// - Returns: what `body` returns.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var words = (word0, word1)
        return try Swift.withUnsafeBytes(of: &words, body)
    }

    /// Writes the 16 bytes at `offset` of `destination`.
    /// - Parameters:
    ///   - destination: a buffer.
    ///   - offset: a byte offset with `offset + 16 <= destination.count`.
    public func write(to destination: UnsafeMutableRawBufferPointer, offset: Int) {
        precondition(offset >= 0 && offset + MACSuite.tagByteCount <= destination.count, "tag out of range")
        destination.storeBytes(of: word0, toByteOffset: offset, as: UInt64.self)
        destination.storeBytes(of: word1, toByteOffset: offset + 8, as: UInt64.self)
    }

    /// Constant-time: the time does not depend on where the tags differ.
    public static func == (lhs: AuthenticationTag, rhs: AuthenticationTag) -> Bool {
        var a = (lhs.word0, lhs.word1)
        var b = (rhs.word0, rhs.word1)
        return Swift.withUnsafeBytes(of: &a) { pa in
            Swift.withUnsafeBytes(of: &b) { pb in constantTimeEqual(pa, pb) }
        }
    }

    /// The tag in lower-case hex. Tags are public.
    public var description: String {
        Hex.encode(rawRepresentation)
    }
}
