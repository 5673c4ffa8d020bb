#if canImport(FoundationEssentials)
public import FoundationEssentials  // ContiguousBytes
#else
public import Foundation
#endif
/// Wegman-Carter authentication: tag = seal(UniversalHash_key(domain, message), pad).
///
/// - `poly1305-otp`: tag = (digest + s) mod 2^128, little-endian (RFC 8439 section 2.5);
/// - `gf128-otp`: tag = digest XOR s.
///
/// Information-theoretically secure as long as every pad is used once and is uniformly random
/// and secret (Wegman and Carter 1981; with a recycled hash key, Portmann 2014). Spec/crypto.md.
public enum WegmanCarter {
    /// Computes the tag of `message` under `hashKey` and the one-time `pad`, which it consumes.
    /// - Parameters:
    ///   - message: the bytes to authenticate.
    ///   - domain: the domain-separation prefix; the verifier must use the same.
    ///   - hashKey: the recycled hash key; its suite selects the construction.
    ///   - pad: a fresh 16-byte pad, never used before and never to be used again.
    /// - Returns: the 16-byte tag.
    public static func authenticationTag(
        for message: UnsafeRawBufferPointer, domain: UnsafeRawBufferPointer, hashKey: HashKey,
        pad: consuming OneTimePad
    ) -> AuthenticationTag {
        seal(MACContext.oneShotDigest(key: hashKey, domain: domain, message: message), with: pad)
    }

    /// Computes the tag of `message`; see ``authenticationTag(for:domain:hashKey:pad:)``.
    /// - Parameters:
    ///   - message: the bytes to authenticate.
    ///   - domain: the domain-separation prefix.
    ///   - hashKey: the recycled hash key.
    ///   - pad: a fresh pad, consumed.
    /// - Returns: the tag.
    public static func authenticationTag(
        for message: some ContiguousBytes, domain: some ContiguousBytes, hashKey: HashKey,
        pad: consuming OneTimePad
    ) -> AuthenticationTag {
        message.withUnsafeBytes { m in
            domain.withUnsafeBytes { d in MACContext.oneShotDigest(key: hashKey, domain: d, message: m) }
        }.sealed(with: pad)
    }

    /// Checks a received tag in constant time. Borrows the pad: a failed verification does not
    /// use it up (DESIGN.md: a failed verification never advances the peer's pad stream).
    /// - Parameters:
    ///   - tag: the received tag.
    ///   - message: the received bytes.
    ///   - domain: the domain-separation prefix the sender must have used.
    ///   - hashKey: the hash key.
    ///   - pad: the pad the sender must have used.
    /// - Returns: true only if the tag matches; a different message, length, domain, key or pad
    ///   gives false except with the suite's forgery probability.
    public static func isValidAuthenticationTag(
        _ tag: AuthenticationTag, authenticating message: UnsafeRawBufferPointer,
        domain: UnsafeRawBufferPointer, hashKey: HashKey, pad: borrowing OneTimePad
    ) -> Bool {
        isValid(tag, digest: MACContext.oneShotDigest(key: hashKey, domain: domain, message: message), pad: pad)
    }

    /// Checks a received tag; see ``isValidAuthenticationTag(_:authenticating:domain:hashKey:pad:)``.
    /// - Parameters:
    ///   - tag: the received tag.
    ///   - message: the received bytes.
    ///   - domain: the domain-separation prefix.
    ///   - hashKey: the hash key.
    ///   - pad: the pad, borrowed.
    /// - Returns: true only if the tag matches.
    public static func isValidAuthenticationTag(
        _ tag: AuthenticationTag, authenticating message: some ContiguousBytes,
        domain: some ContiguousBytes, hashKey: HashKey, pad: borrowing OneTimePad
    ) -> Bool {
        let digest = message.withUnsafeBytes { m in
            domain.withUnsafeBytes { d in MACContext.oneShotDigest(key: hashKey, domain: d, message: m) }
        }
        return isValid(tag, digest: digest, pad: pad)
    }

    /// Encrypts a digest with a one-time pad, consuming the pad.
    /// - Parameters:
    ///   - digest: a finished ``UniversalHash``.
    ///   - pad: a fresh pad.
    /// - Returns: the tag.
    public static func seal(_ digest: UniversalHashDigest, with pad: consuming OneTimePad) -> AuthenticationTag {
        sealBorrowing(digest, pad)
    }

    /// Compares `tag` with the seal of `digest` under `pad`, in constant time, without consuming
    /// the pad (used to check round-transcript tags).
    /// - Parameters:
    ///   - tag: the received tag.
    ///   - digest: the locally computed digest.
    ///   - pad: the expected pad, borrowed.
    /// - Returns: true if they match.
    public static func isValid(_ tag: AuthenticationTag, digest: UniversalHashDigest, pad: borrowing OneTimePad) -> Bool {
        sealBorrowing(digest, pad) == tag
    }

    fileprivate static func sealBorrowing(_ digest: UniversalHashDigest, _ pad: borrowing OneTimePad) -> AuthenticationTag {
        switch digest.suite {
        case .poly1305OTP:
            // 128-bit little-endian addition mod 2^128; words are in memory order.
            let d0 = UInt64(littleEndian: digest.word0), d1 = UInt64(littleEndian: digest.word1)
            let s0 = UInt64(littleEndian: pad.word0), s1 = UInt64(littleEndian: pad.word1)
            let (low, carry) = d0.addingReportingOverflow(s0)
            let high = d1 &+ s1 &+ (carry ? 1 : 0)
            return AuthenticationTag(words: low.littleEndian, high.littleEndian)
        case .gf128OTP:
            return AuthenticationTag(words: digest.word0 ^ pad.word0, digest.word1 ^ pad.word1)
        }
    }
}

extension UniversalHashDigest {
    fileprivate consuming func sealed(with pad: consuming OneTimePad) -> AuthenticationTag {
        WegmanCarter.seal(self, with: pad)
    }
}
