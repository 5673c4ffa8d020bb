#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
internal import CSodium

/// A hash key with its domain already absorbed: the fast path for many tags under one key and
/// one domain (every per-frame tag of one direction of one session and epoch).
///
/// The digest of `M` is exactly ``UniversalHash`` over `(D, M)` (Spec/crypto.md 1.2); the
/// context only saves recomputing the `pad16(D)` prefix and, for Poly1305, the key setup, and
/// keeps the per-message state on the stack (no heap allocation per tag). The prepared state
/// depends on the hash key, so it lives in ``SecretBytes`` and the stack copy is wiped after
/// each use.
public struct MACContext: Sendable {
    /// The hash key.
    public let hashKey: HashKey
    private let domainLength: UInt64
    /// Poly1305: the libsodium state after `init(r || 0^16)` and `update(pad16(D))`.
    /// GHASH: the 16-byte accumulator after `pad16(D)`.
    private let prepared: SecretBytes

    /// Prepares a context.
    /// - Parameters:
    ///   - hashKey: the hash key; its suite selects the construction.
    ///   - domain: the domain-separation string every message will be hashed under.
    public init(hashKey: HashKey, domain: UnsafeRawBufferPointer) {
        self.hashKey = hashKey
        self.domainLength = UInt64(domain.count)
        switch hashKey.suite {
        case .poly1305OTP:
            prepared = SecretBytes(count: crypto_onetimeauth_poly1305_statebytes()) { state in
                let s = state.baseAddress!.assumingMemoryBound(to: crypto_onetimeauth_poly1305_state.self)
                Poly1305Stream.initialize(s, key: hashKey)
                Poly1305Stream.update(s, domain)
                Poly1305Stream.padToBlock(s, domain.count)
            }
        case .gf128OTP:
            var stream = GHashStream(key: hashKey)
            stream.update(domain)
            stream.padToBlock()
            var acc = stream.accumulator
            prepared = withUnsafeBytes(of: &acc) { SecretBytes(copying: $0) }
            withUnsafeMutableBytes(of: &acc) { secureZero($0) }
        }
    }

    /// Prepares a context.
    /// - Parameters:
    ///   - hashKey: the hash key.
    ///   - domain: the domain-separation string.
    public init(hashKey: HashKey, domain: some ContiguousBytes) {
        self = domain.withUnsafeBytes { MACContext(hashKey: hashKey, domain: $0) }
    }

    /// The digest of a message given in one or more pieces.
    /// - Parameter feed: passes the message's pieces, in order, to the sink.
    /// - Returns: the digest of `(D, concatenation of the pieces)`.
    public func digest(_ feed: (inout MACMessageSink) -> Void) -> UniversalHashDigest {
        switch hashKey.suite {
        case .poly1305OTP:
            let stateBytes = crypto_onetimeauth_poly1305_statebytes()
            return withUnsafeTemporaryAllocation(byteCount: stateBytes, alignment: 16) { buffer in
                let state = buffer.baseAddress!.assumingMemoryBound(to: crypto_onetimeauth_poly1305_state.self)
                prepared.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: stateBytes) }
                var sink = MACMessageSink(poly1305: state)
                feed(&sink)
                let length = sink.length
                Poly1305Stream.padToBlock(state, Int(length & 15))
                var lengths = (domainLength.littleEndian, length.littleEndian)
                withUnsafeBytes(of: &lengths) { Poly1305Stream.update(state, $0) }
                let (w0, w1) = Poly1305Stream.finish(state)
                sodium_memzero(buffer.baseAddress!, stateBytes)
                return UniversalHashDigest(word0: w0, word1: w1, suite: .poly1305OTP)
            }
        case .gf128OTP:
            let acc = prepared.withUnsafeBytes {
                ($0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            }
            var sink = MACMessageSink(ghash: GHashStream(key: hashKey, accumulator: acc))
            feed(&sink)
            return sink.finishGHash(domainLength: domainLength)
        }
    }

    /// The digest of `(domain, message)` without a prepared context: stack state, no heap
    /// allocation, nothing locked (for one-off tags; ``WegmanCarter``'s one-shot functions).
    static func oneShotDigest(key: HashKey, domain: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) -> UniversalHashDigest {
        switch key.suite {
        case .poly1305OTP:
            let stateBytes = crypto_onetimeauth_poly1305_statebytes()
            return withUnsafeTemporaryAllocation(byteCount: stateBytes, alignment: 16) { buffer in
                let state = buffer.baseAddress!.assumingMemoryBound(to: crypto_onetimeauth_poly1305_state.self)
                Poly1305Stream.initialize(state, key: key)
                Poly1305Stream.update(state, domain)
                Poly1305Stream.padToBlock(state, domain.count)
                Poly1305Stream.update(state, message)
                Poly1305Stream.padToBlock(state, message.count)
                var lengths = (UInt64(domain.count).littleEndian, UInt64(message.count).littleEndian)
                withUnsafeBytes(of: &lengths) { Poly1305Stream.update(state, $0) }
                let (w0, w1) = Poly1305Stream.finish(state)
                sodium_memzero(buffer.baseAddress!, stateBytes)
                return UniversalHashDigest(word0: w0, word1: w1, suite: .poly1305OTP)
            }
        case .gf128OTP:
            var stream = GHashStream(key: key)
            stream.update(domain)
            stream.padToBlock()
            var sink = MACMessageSink(ghash: stream)
            sink.update(message)
            return sink.finishGHash(domainLength: UInt64(domain.count))
        }
    }

    /// The digest of one message.
    /// - Parameter message: the bytes.
    /// - Returns: the digest of `(D, message)`.
    public func digest(of message: UnsafeRawBufferPointer) -> UniversalHashDigest {
        digest { $0.update(message) }
    }

    /// The tag of one message, consuming the pad.
    /// - Parameters:
    ///   - message: the bytes.
    ///   - pad: a fresh pad.
    /// - Returns: the tag.
    public func authenticationTag(for message: UnsafeRawBufferPointer, pad: consuming OneTimePad) -> AuthenticationTag {
        WegmanCarter.seal(digest(of: message), with: pad)
    }

    /// Whether a tag is valid for one message, in constant time. Borrows the pad.
    /// - Parameters:
    ///   - tag: the received tag.
    ///   - message: the received bytes.
    ///   - pad: the pad the sender must have used.
    /// - Returns: true only if the tag matches.
    public func isValidAuthenticationTag(_ tag: AuthenticationTag, authenticating message: UnsafeRawBufferPointer,
                                         pad: borrowing OneTimePad) -> Bool {
        WegmanCarter.isValid(tag, digest: digest(of: message), pad: pad)
    }
}

/// Receives the pieces of a message inside ``MACContext/digest(_:)``.
public struct MACMessageSink: ~Copyable {
    private let poly1305: UnsafeMutablePointer<crypto_onetimeauth_poly1305_state>?
    private var ghash: GHashStream
    /// Bytes fed so far.
    public private(set) var length: UInt64 = 0

    init(poly1305 state: UnsafeMutablePointer<crypto_onetimeauth_poly1305_state>) {
        poly1305 = state
        ghash = GHashStream.placeholder
    }

    init(ghash stream: GHashStream) {
        poly1305 = nil
        ghash = stream
    }

    /// Feeds the next piece of the message.
    /// - Parameter bytes: the piece.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        length &+= UInt64(bytes.count)
        if let poly1305 {
            Poly1305Stream.update(poly1305, bytes)
        } else {
            ghash.update(bytes)
        }
    }

    consuming func finishGHash(domainLength: UInt64) -> UniversalHashDigest {
        ghash.padToBlock()
        var lengths = ((domainLength &* 8).bigEndian, (length &* 8).bigEndian)
        withUnsafeBytes(of: &lengths) { ghash.update($0) }
        let (w0, w1) = ghash.finish()
        return UniversalHashDigest(word0: w0, word1: w1, suite: .gf128OTP)
    }
}
