import QKDCrypto

/// FuzzMAC. Input: suite bit, 16-byte hash key, 16-byte pad, domain length + domain, chunk
/// size, a bit index to flip, then the message.
/// Invariants: a key is either refused as weak (typed error) or the tag of (D, M) verifies;
/// streaming M in input-chosen pieces gives the same tag; flipping one bit of M, D or the tag
/// makes verification fail.
///
/// The bit-flip invariant holds only with overwhelming probability over a *random* hash key
/// (Spec/crypto.md 1.4), not for every key: with a structured key such as Poly1305 r = 2^43 a
/// flip whose difference is 2^128 mod p vanishes in the final mod 2^128 (pinned:
/// Fuzz/FailCases/FuzzMAC/poly1305-power-of-two-key). The key used for the bit-flip checks is
/// therefore BLAKE2b of the input key bytes, which the fuzzer cannot steer; the other
/// invariants run on the raw key.
enum MACCheck {
    static func run(_ bytes: [UInt8]) throws(FuzzInvariantViolation) -> FuzzCheck.Outcome {
        var input = FuzzInput(bytes)
        let suite: MACSuite = input.byte() & 1 == 0 ? .poly1305OTP : .gf128OTP
        let keyBytes = input.take(16) + [UInt8](repeating: 0, count: 16)
        let padBytes = input.take(16) + [UInt8](repeating: 0, count: 16)
        let domain = input.take(Int(input.byte()))
        let chunk = Int(input.byte()) + 1
        let flip = Int(input.byte()) << 8 | Int(input.byte())
        let message = input.rest()
        let key: HashKey
        do {
            key = try HashKey(suite: suite, rawRepresentation: keyBytes[0..<16])
        } catch let error as QKDError {
            return .rejected(error)
        } catch {
            throw FuzzInvariantViolation("HashKey threw an untyped error: \(error)")
        }
        func pad() -> OneTimePad { try! OneTimePad(rawRepresentation: padBytes[0..<16]) }
        func verifies(_ tag: AuthenticationTag, _ m: [UInt8], _ d: [UInt8], _ k: HashKey) -> Bool {
            WegmanCarter.isValidAuthenticationTag(tag, authenticating: m, domain: d, hashKey: k, pad: pad())
        }
        let tag = WegmanCarter.authenticationTag(for: message, domain: domain, hashKey: key, pad: pad())
        guard verifies(tag, message, domain, key) else { throw FuzzInvariantViolation("a genuine tag did not verify") }
        var hash = UniversalHash(key: key, domain: domain)
        var offset = 0
        while offset < message.count {
            let n = min(chunk, message.count - offset)
            hash.update(Array(message[offset..<offset + n]))
            offset += n
        }
        guard WegmanCarter.seal(hash.finalize(), with: pad()) == tag else {
            throw FuzzInvariantViolation("streaming in \(chunk)-byte pieces changed the tag")
        }
        // Bit flips: under a key the input cannot steer (see above).
        guard let randomKey = try? HashKey(suite: suite, rawRepresentation: GenericHash.hash([keyBytes], outputByteCount: 16)) else {
            return .accepted  // A BLAKE2b output that is weak after clamping: probability 2^-106.
        }
        let randomTag = WegmanCarter.authenticationTag(for: message, domain: domain, hashKey: randomKey, pad: pad())
        if !message.isEmpty {
            var m = message
            m[(flip >> 3) % m.count] ^= 1 << (flip & 7)
            guard !verifies(randomTag, m, domain, randomKey) else { throw FuzzInvariantViolation("a flipped message bit verified") }
        }
        if !domain.isEmpty {
            var d = domain
            d[(flip >> 3) % d.count] ^= 1 << (flip & 7)
            guard !verifies(randomTag, message, d, randomKey) else { throw FuzzInvariantViolation("a flipped domain bit verified") }
        }
        var raw = randomTag.rawRepresentation
        raw[(flip >> 3) % 16] ^= 1 << (flip & 7)
        guard !verifies(try! AuthenticationTag(rawRepresentation: raw), message, domain, randomKey) else {
            throw FuzzInvariantViolation("a flipped tag bit verified")
        }
        return .accepted
    }
}
