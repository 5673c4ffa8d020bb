public import QKDCrypto
internal import CQKDKernels

/// Privacy amplification with Dietzfelbinger's multiply-add-shift hash (Spec/postprocessing.md
/// section 7):
///
///     h_{a,b}(x) = floor( ((a x + b) mod 2^W) / 2^(n-1) ),   W = n + ℓ - 1,
///
/// for the n-bit key x read as an integer (bit i has weight 2^i) and a, b uniform in [0, 2^W).
/// The family is strongly universal (2-independent) from [0, 2^n) onto [0, 2^ℓ) (Dietzfelbinger,
/// "Universal hashing and k-wise independent random variables via integer arithmetic without
/// primes", STACS 1996; Thorup, "High speed hashing for integers and strings", 2015, the
/// multiply-add-shift scheme; the proof is written out in the Spec), so for x != x' the
/// collision probability is exactly 2^-ℓ: universal₂ as the leftover hash lemma of Tomamichel,
/// Lim, Gisin and Renner (2012) requires, with no δ term.
///
/// The seed (a, b) is 2W true random bits that Alice draws from her round's `RandomSource` and
/// sends in the clear: a universal family needs a public seed independent of the key, not a
/// secret one. Nothing is expanded by a pseudo-random generator.
///
/// The product is GNU MP's `mpn_mul` (C kernel `pp_mas.c`).
public enum MultiplyAddShiftHash {
    /// W = n + ℓ - 1, the bit length of each of a and b.
    /// - Parameters:
    ///   - inputBits: n >= 1.
    ///   - outputBits: ℓ >= 1.
    /// - Returns: W.
    public static func seedBits(inputBits n: Int, outputBits l: Int) -> Int { n + l - 1 }

    /// Computes h_{a,b}(x).
    /// - Parameters:
    ///   - input: x, n >= 1 bits.
    ///   - multiplier: a, W bits.
    ///   - addend: b, W bits.
    ///   - outputBits: ℓ >= 1.
    ///   - threads: 1, or 2 to compute one of the two partial products on a second thread.
    /// - Returns: ℓ bits.
    public static func hash(_ input: BitVector, multiplier: BitVector, addend: BitVector, outputBits: Int,
                            threads: Int = 1) -> BitVector {
        precondition(input.count >= 1 && outputBits >= 1, "privacy amplification needs n >= 1 and l >= 1")
        let w = seedBits(inputBits: input.count, outputBits: outputBits)
        precondition(multiplier.count == w && addend.count == w, "multiply-add-shift seeds must have n + l - 1 bits")
        var out = [UInt64](repeating: 0, count: (outputBits + 63) >> 6)
        let status = out.withUnsafeMutableBufferPointer { o in
            multiplier.words.withUnsafeBufferPointer { a in
                addend.words.withUnsafeBufferPointer { b in
                    input.words.withUnsafeBufferPointer { x in
                        qkd_pp_mas_hash(o.baseAddress!, outputBits, a.baseAddress!, b.baseAddress!, x.baseAddress!,
                                        input.count, Int32(threads))
                    }
                }
            }
        }
        precondition(status == 0, "out of memory in privacy amplification")
        return BitVector(words: out, count: outputBits)
    }

    /// Draws a seed (a, b) of W bits each from `random`.
    /// - Parameters:
    ///   - inputBits: n.
    ///   - outputBits: ℓ.
    ///   - random: the round's randomness (true random bits in a deployment).
    /// - Returns: a and b.
    public static func drawSeed(inputBits n: Int, outputBits l: Int,
                                random: inout some RandomSource) -> (multiplier: BitVector, addend: BitVector) {
        let w = seedBits(inputBits: n, outputBits: l)
        func draw() -> BitVector {
            var words = [UInt64](repeating: 0, count: (w + 63) >> 6)
            words.withUnsafeMutableBytes { random.fill($0) }
            for i in words.indices { words[i] = UInt64(littleEndian: words[i]) }
            return BitVector(words: words, count: w)
        }
        let a = draw()
        return (a, draw())
    }

    /// The bare GMP product of a W-bit and an n-bit integer (benchmark baseline).
    /// - Parameters:
    ///   - a: W bits.
    ///   - x: n bits.
    /// - Returns: the low word of the product (so the work cannot be optimised away).
    public static func bareProduct(_ a: BitVector, _ x: BitVector) -> UInt64 {
        var r = [UInt64](repeating: 0, count: a.words.count + x.words.count)
        r.withUnsafeMutableBufferPointer { rp in
            a.words.withUnsafeBufferPointer { ap in
                x.words.withUnsafeBufferPointer { xp in
                    _ = qkd_pp_mul_baseline(rp.baseAddress!, ap.baseAddress!, ap.count, xp.baseAddress!, xp.count)
                }
            }
        }
        return r.first ?? 0
    }
}
