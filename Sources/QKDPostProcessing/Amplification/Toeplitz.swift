import QKDCrypto
internal import CQKDKernels

/// Privacy amplification with a random Toeplitz matrix (Spec/postprocessing.md section 7).
///
/// The family {T_s} of ℓ x n Toeplitz matrices over GF(2), with s uniform on n + ℓ - 1 bits,
/// is 2-universal: for x != x', Pr_s[T_s x = T_s x'] = 2^-ℓ (Krawczyk 1994, Mansour, Nisan and
/// Tiwari 1993). With the leftover hash lemma (Renner 2005; Tomamichel et al. 2011) the output
/// is ε-close to uniform for Eve when ℓ is given by ``FiniteKey/secretLength``.
///
/// T_s x is the middle of the polynomial product s(z) x(z) (bit i of the output is coefficient
/// n - 1 + i), computed by the C kernel with Karatsuba over PCLMULQDQ.
public enum ToeplitzHash {
    /// Expands a 32-byte seed into the n + ℓ - 1 Toeplitz seed bits with the deterministic
    /// stream of QKDCrypto (BLAKE2b-keyed ChaCha20 blocks, see `DeterministicRandomSource`).
    /// - Parameters:
    ///   - seed: 32 bytes, sent in the verification message.
    ///   - bitCount: n + ℓ - 1.
    /// - Returns: the seed bits.
    /// - Throws: ``QKDError/Code/invalidKeyLength`` if the seed is not 32 bytes.
    public static func expandSeed(_ seed: [UInt8], bitCount: Int) throws -> BitVector {
        var stream = try DeterministicRandomSource(seed: seed)
        var words = [UInt64](repeating: 0, count: (bitCount + 63) >> 6)
        words.withUnsafeMutableBytes { stream.fill($0) }
        for i in words.indices { words[i] = UInt64(littleEndian: words[i]) }
        return BitVector(words: words, count: bitCount)
    }

    /// Computes T_s x.
    /// - Parameters:
    ///   - input: x, n bits.
    ///   - seed: s, n + ℓ - 1 bits.
    ///   - outputBits: ℓ.
    /// - Returns: ℓ bits.
    public static func hash(_ input: BitVector, seed: BitVector, outputBits: Int) -> BitVector {
        precondition(outputBits >= 0 && (outputBits == 0 || seed.count == input.count + outputBits - 1),
                     "Toeplitz seed must have n + l - 1 bits")
        guard outputBits > 0, input.count > 0 else { return BitVector(count: outputBits) }
        var out = [UInt64](repeating: 0, count: (outputBits + 63) >> 6)
        let status = out.withUnsafeMutableBufferPointer { o in
            seed.words.withUnsafeBufferPointer { s in
                input.words.withUnsafeBufferPointer { x in
                    qkd_pp_toeplitz(o.baseAddress!, outputBits, s.baseAddress!, x.baseAddress!, input.count)
                }
            }
        }
        precondition(status == 0, "out of memory in Toeplitz hashing")
        return BitVector(words: out, count: outputBits)
    }

    /// The same product, row by row (reference and benchmark baseline).
    /// - Parameters:
    ///   - input: x.
    ///   - seed: s.
    ///   - outputBits: ℓ.
    /// - Returns: ℓ bits.
    public static func naiveHash(_ input: BitVector, seed: BitVector, outputBits: Int) -> BitVector {
        guard outputBits > 0, input.count > 0 else { return BitVector(count: outputBits) }
        var out = [UInt64](repeating: 0, count: (outputBits + 63) >> 6)
        out.withUnsafeMutableBufferPointer { o in
            seed.words.withUnsafeBufferPointer { s in
                input.words.withUnsafeBufferPointer { x in
                    qkd_pp_toeplitz_naive(o.baseAddress!, outputBits, s.baseAddress!, x.baseAddress!, input.count)
                }
            }
        }
        return BitVector(words: out, count: outputBits)
    }

    /// Whether the carry-less-multiply path is in use.
    public static var usesCarrylessMultiply: Bool { qkd_pp_has_clmul() != 0 }

    /// Forces the portable kernel (tests and benchmarks).
    /// - Parameter force: true for the portable path.
    public static func forcePortable(_ force: Bool) { qkd_pp_force_portable(force ? 1 : 0) }
}
