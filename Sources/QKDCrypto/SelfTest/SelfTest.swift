internal import CQKDKernels

/// Power-on self test: a few known answers compiled into the binary, so a deployed node can
/// check its build and CPU without the repository's vector files (`qkd-node selftest`).
/// The full vector sets live in Spec/vectors/ and run in the test suite.
public enum SelfTest {
    /// One check's outcome.
    public struct Result: Sendable {
        /// What was checked, e.g. "RFC 8439 2.8.2 AEAD MAC (poly1305-otp)".
        public let name: String
        /// Whether the computed value matched.
        public let passed: Bool
    }

    /// The GF(2^128) implementation in use: "vpclmulqdq", "pclmulqdq" or "portable".
    public static var gf128Implementation: String {
        if qkd_kernels_using_clmul() == 0 { return "portable" }
        return qkd_cpu_has_vpclmul() == 1 ? "vpclmulqdq" : "pclmulqdq"
    }

    /// Runs every check.
    /// - Returns: one result per check, in order.
    public static func run() -> [Result] {
        var results: [Result] = []
        func check(_ name: String, _ body: () throws -> Bool) {
            results.append(Result(name: name, passed: (try? body()) ?? false))
        }
        // RFC 8439 section 2.5.2 through our split: digest with r, then + s.
        check("RFC 8439 2.5.2 Poly1305 (digest + pad)") {
            let key = Hex.decode("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")!
            let message = Array("Cryptographic Forum Research Group".utf8)
            let hashKey = try HashKey(suite: .poly1305OTP, rawRepresentation: key[0..<16])
            let stream = Poly1305Stream(key: hashKey)
            message.withUnsafeBytes { stream.update($0) }
            let (w0, w1) = stream.finish()
            let tag = WegmanCarter.seal(UniversalHashDigest(word0: w0, word1: w1, suite: .poly1305OTP),
                                        with: try OneTimePad(rawRepresentation: key[16..<32]))
            return tag.description == "a8061dc1305136c6c22b8baf0c0127a9"
        }
        // RFC 8439 section 2.8.2: the AEAD MAC input is exactly poly1305-otp with domain = AAD.
        check("RFC 8439 2.8.2 AEAD MAC layout (poly1305-otp)") {
            let key = Hex.decode("7bac2b252db447af09b67a55a4e955840ae1d6731075d9eb2a9375783ed553ff")!
            let aad = Hex.decode("50515253c0c1c2c3c4c5c6c7")!
            let ciphertext = Hex.decode("""
                d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b\
                1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc\
                3ff4def08e4b7a9de576d26586cec64b6116
                """)!
            let tag = WegmanCarter.authenticationTag(
                for: ciphertext, domain: aad, hashKey: try HashKey(suite: .poly1305OTP, rawRepresentation: key[0..<16]),
                pad: try OneTimePad(rawRepresentation: key[16..<32]))
            return tag.description == "1ae10b594f09e26a7e902ecbd0600691"
        }
        // GCM specification (McGrew and Viega 2005), test case 2: GHASH(H, {}, C), zero pad.
        check("GCM spec test case 2 GHASH (gf128-otp)") {
            let h = Hex.decode("66e94bd4ef8a2c3b884cfa59ca342b2e")!
            let c = Hex.decode("0388dace60b6a392f328c2b971b2fe78")!
            let tag = WegmanCarter.authenticationTag(
                for: c, domain: [UInt8](), hashKey: try HashKey(suite: .gf128OTP, rawRepresentation: h),
                pad: try OneTimePad(rawRepresentation: [UInt8](repeating: 0, count: 16)))
            return tag.description == "f38cbb1ad69223dcc3457ae5b6b0f885"
        }
        // The dispatching and portable GF(2^128) paths against the bit-serial reference.
        check("GF(2^128) \(gf128Implementation) and portable paths agree with the reference (4096 products)") {
            var random = DeterministicRandomSource(seed: 2026)
            for _ in 0..<4096 {
                let a = random.bytes(count: 16), b = random.bytes(count: 16)
                var fast = [UInt8](repeating: 0, count: 16), slow = fast, reference = fast
                qkd_gf128_mul(&fast, a, b)
                qkd_gf128_mul_portable(&slow, a, b)
                qkd_gf128_mul_reference(&reference, a, b)
                if fast != reference || slow != reference { return false }
            }
            return true
        }
        // Multi-block GHASH (the aggregated-reduction kernels) against block-by-block reference.
        check("GHASH \(gf128Implementation) multi-block kernel agrees with the reference (0-40 blocks)") {
            var random = DeterministicRandomSource(seed: 2027)
            let key = HashKey.random(suite: .gf128OTP, using: &random)
            let h = key.raw.withUnsafeBytes { [UInt8]($0) }
            for blocks in 0...40 {
                let data = random.bytes(count: 16 * blocks)
                var fast = [UInt8](repeating: 0, count: 16), slow = fast
                key.ghashKey!.withUnsafeBytes { table in
                    qkd_ghash_blocks(&fast, table.baseAddress!.assumingMemoryBound(to: qkd_ghash_key.self), data, blocks)
                }
                for b in 0..<blocks {
                    for j in 0..<16 { slow[j] ^= data[16 * b + j] }
                    qkd_gf128_mul_reference(&slow, slow, h)
                }
                if fast != slow { return false }
            }
            return true
        }
        // Verification must reject a one-bit change.
        check("A flipped bit is rejected (both suites)") {
            var random = DeterministicRandomSource(seed: 7)
            for suite in MACSuite.allCases {
                let key = HashKey.random(suite: suite, using: &random)
                let pad = random.bytes(count: 16)
                var message = random.bytes(count: 64)
                let tag = WegmanCarter.authenticationTag(for: message, domain: [1, 2, 3], hashKey: key,
                                                         pad: try OneTimePad(rawRepresentation: pad))
                message[17] ^= 0x10
                if WegmanCarter.isValidAuthenticationTag(tag, authenticating: message, domain: [1, 2, 3], hashKey: key,
                                                         pad: try OneTimePad(rawRepresentation: pad)) { return false }
            }
            return true
        }
        return results
    }
}
