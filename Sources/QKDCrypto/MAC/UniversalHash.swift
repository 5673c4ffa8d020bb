#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
internal import CSodium
internal import CQKDKernels

/// The 16-byte output of a ``UniversalHash`` before the one-time pad is applied.
///
/// A digest is secret-dependent (it reveals information about the hash key) and must never be
/// sent as is: ``WegmanCarter/seal(_:with:)`` turns it into a tag with a fresh pad.
public struct UniversalHashDigest: Sendable {
    var word0: UInt64
    var word1: UInt64
    /// The suite that made the digest.
    public let suite: MACSuite
}

/// A streaming universal hash with domain separation and an explicit length block
/// (Spec/crypto.md, "Hash input").
///
/// For domain D and message M the hashed string is
/// `pad16(D) || pad16(M) || lengths`, where `pad16` appends zero bytes up to a multiple of 16 and
/// `lengths` is one 16-byte block:
/// - `poly1305-otp`: `le64(len(D) bytes) || le64(len(M) bytes)`, exactly RFC 8439 section 2.8's
///   AEAD MAC input with D as the AAD and M as the ciphertext;
/// - `gf128-otp`: `be64(len(D) bits) || be64(len(M) bits)`, exactly GCM's GHASH(H, A = D, C = M).
///
/// So published vectors (RFC 8439 2.8.2, the GCM specification's GHASH values) check the whole
/// construction, length block and all. The length block is what stops leading or trailing zero
/// blocks from going unnoticed.
///
/// The message may be fed in pieces of any size: the digest depends only on the concatenation.
public struct UniversalHash {
    private enum Backend {
        case poly1305(Poly1305Stream)
        case ghash(GHashStream)
    }

    private var backend: Backend
    private let domainLength: UInt64
    private var messageLength: UInt64 = 0
    /// The suite.
    public let suite: MACSuite

    /// Starts a hash.
    /// - Parameters:
    ///   - key: the hash key; its suite selects the hash.
    ///   - domain: the domain-separation prefix (protocol label, direction, session id, ...).
    public init(key: HashKey, domain: UnsafeRawBufferPointer) {
        suite = key.suite
        domainLength = UInt64(domain.count)
        switch key.suite {
        case .poly1305OTP:
            let stream = Poly1305Stream(key: key)
            stream.update(domain)
            stream.padToBlock(Int(domainLength))
            backend = .poly1305(stream)
        case .gf128OTP:
            var stream = GHashStream(key: key)
            stream.update(domain)
            stream.padToBlock()
            backend = .ghash(stream)
        }
    }

    /// Starts a hash.
    /// - Parameters:
    ///   - key: the hash key; its suite selects the hash.
    ///   - domain: the domain-separation prefix.
    public init(key: HashKey, domain: some ContiguousBytes) {
        self = domain.withUnsafeBytes { UniversalHash(key: key, domain: $0) }
    }

    /// Feeds message bytes.
    /// - Parameter bytes: the next piece of the message.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        messageLength &+= UInt64(bytes.count)
        switch backend {
        case .poly1305(let stream):
            stream.update(bytes)  // The state is a class: no copy.
        case .ghash(var stream):
            backend = .ghash(GHashStream.placeholder)  // Keep `stream` uniquely referenced.
            stream.update(bytes)
            backend = .ghash(stream)
        }
    }

    /// Feeds message bytes.
    /// - Parameter bytes: the next piece of the message.
    public mutating func update(_ bytes: some ContiguousBytes) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Finishes the hash: pads the message, appends the length block, and returns the digest.
    /// - Returns: the digest, to be sealed with a fresh pad.
    public consuming func finalize() -> UniversalHashDigest {
        switch backend {
        case .poly1305(let stream):
            stream.padToBlock(Int(messageLength & 15))
            var lengths = (domainLength.littleEndian, messageLength.littleEndian)
            withUnsafeBytes(of: &lengths) { stream.update($0) }
            let (w0, w1) = stream.finish()
            return UniversalHashDigest(word0: w0, word1: w1, suite: suite)
        case .ghash(var stream):
            stream.padToBlock()
            var lengths = ((domainLength &* 8).bigEndian, (messageLength &* 8).bigEndian)
            withUnsafeBytes(of: &lengths) { stream.update($0) }
            let (w0, w1) = stream.finish()
            return UniversalHashDigest(word0: w0, word1: w1, suite: suite)
        }
    }
}

/// libsodium's incremental Poly1305 with key `r || 0^16`, so that the output is the bare
/// polynomial value mod 2^128; the pad `s` is added afterwards (``WegmanCarter/seal(_:with:)``).
/// That equals `crypto_onetimeauth_poly1305` with key `r || s` (RFC 8439 section 2.5:
/// tag = (acc + s) mod 2^128), which a test checks.
struct Poly1305Stream {
    private final class State {
        let pointer: UnsafeMutableRawPointer
        init() {
            pointer = UnsafeMutableRawPointer.allocate(
                byteCount: crypto_onetimeauth_poly1305_statebytes(), alignment: 64)
        }
        deinit {
            sodium_memzero(pointer, crypto_onetimeauth_poly1305_statebytes())
            pointer.deallocate()
        }
        var state: UnsafeMutablePointer<crypto_onetimeauth_poly1305_state> {
            pointer.assumingMemoryBound(to: crypto_onetimeauth_poly1305_state.self)
        }
    }

    private let state = State()

    init(key: HashKey) {
        Poly1305Stream.initialize(state.state, key: key)
    }

    func update(_ bytes: UnsafeRawBufferPointer) { Poly1305Stream.update(state.state, bytes) }
    func padToBlock(_ fedSinceBoundary: Int) { Poly1305Stream.padToBlock(state.state, fedSinceBoundary) }
    func finish() -> (UInt64, UInt64) { Poly1305Stream.finish(state.state) }

    // The operations on a state wherever it lives (heap for streams, stack for MACContext).

    /// `crypto_onetimeauth_poly1305_init` with key `r || 0^16`; the key copy is wiped.
    static func initialize(_ state: UnsafeMutablePointer<crypto_onetimeauth_poly1305_state>, key: HashKey) {
        Sodium.ensureInitialized()
        var fullKey = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &fullKey) { k in
            key.raw.withUnsafeBytes { r in k.copyMemory(from: r) }
            _ = crypto_onetimeauth_poly1305_init(state, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            sodium_memzero(k.baseAddress!, k.count)
        }
    }

    static func update(_ state: UnsafeMutablePointer<crypto_onetimeauth_poly1305_state>, _ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        _ = crypto_onetimeauth_poly1305_update(state, base.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
    }

    /// Appends zeros up to the next multiple of 16, given how many bytes were fed since the last
    /// block boundary (mod 16 is enough).
    static func padToBlock(_ state: UnsafeMutablePointer<crypto_onetimeauth_poly1305_state>, _ fedSinceBoundary: Int) {
        let rem = fedSinceBoundary & 15
        guard rem != 0 else { return }
        let zeros: (UInt64, UInt64) = (0, 0)
        withUnsafeBytes(of: zeros) { update(state, UnsafeRawBufferPointer(rebasing: $0[0..<(16 - rem)])) }
    }

    static func finish(_ state: UnsafeMutablePointer<crypto_onetimeauth_poly1305_state>) -> (UInt64, UInt64) {
        var out = (UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &out) {
            _ = crypto_onetimeauth_poly1305_final(state, $0.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return out
    }
}

/// GHASH over a stream of bytes of any chunking: full blocks go straight to the C kernel, a
/// partial block waits in `partial`.
struct GHashStream {
    static let placeholder = GHashStream()

    private let key: SecretBytes?
    private var acc: (UInt64, UInt64) = (0, 0)
    private var partial: (UInt64, UInt64) = (0, 0)
    private var partialCount = 0

    private init() { key = nil }

    init(key: HashKey) {
        self.key = key.ghashKey!
    }

    /// Resumes from an accumulator at a block boundary (a ``MACContext``'s prepared domain).
    init(key: HashKey, accumulator: (UInt64, UInt64)) {
        self.key = key.ghashKey!
        self.acc = accumulator
    }

    /// The accumulator; meaningful at a block boundary (after ``padToBlock()``).
    var accumulator: (UInt64, UInt64) { acc }

    private func blocks(_ acc: inout (UInt64, UInt64), _ data: UnsafeRawPointer, _ count: Int) {
        key!.withUnsafeBytes { table in
            withUnsafeMutableBytes(of: &acc) { a in
                qkd_ghash_blocks(a.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                 table.baseAddress!.assumingMemoryBound(to: qkd_ghash_key.self),
                                 data.assumingMemoryBound(to: UInt8.self), count)
            }
        }
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var base = bytes.baseAddress, bytes.count > 0 else { return }
        var remaining = bytes.count
        if partialCount > 0 {
            let take = min(16 - partialCount, remaining)
            withUnsafeMutableBytes(of: &partial) { p in
                (p.baseAddress! + partialCount).copyMemory(from: base, byteCount: take)
            }
            partialCount += take
            base += take
            remaining -= take
            if partialCount == 16 {
                var block = partial
                withUnsafeBytes(of: &block) { blocks(&acc, $0.baseAddress!, 1) }
                partial = (0, 0)
                partialCount = 0
            }
        }
        let full = remaining / 16
        if full > 0 {
            blocks(&acc, base, full)
            base += full * 16
            remaining -= full * 16
        }
        if remaining > 0 {
            withUnsafeMutableBytes(of: &partial) { p in p.baseAddress!.copyMemory(from: base, byteCount: remaining) }
            partialCount = remaining
        }
    }

    mutating func padToBlock() {
        guard partialCount > 0 else { return }
        var block = partial  // Bytes after partialCount are zero.
        withUnsafeBytes(of: &block) { blocks(&acc, $0.baseAddress!, 1) }
        partial = (0, 0)
        partialCount = 0
    }

    mutating func finish() -> (UInt64, UInt64) {
        let out = acc
        acc = (0, 0)
        return out
    }
}
