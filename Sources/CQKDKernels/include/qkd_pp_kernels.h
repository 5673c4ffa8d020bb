#ifndef QKD_PP_KERNELS_H
#define QKD_PP_KERNELS_H
/*
 * Post-processing kernels for QKDChannel (Spec/postprocessing.md): the integer product of
 * privacy amplification (section 7) on GNU MP.
 *
 * Bit order: bit i of a bit string (and the coefficient of 2^i of the integer it denotes) is bit
 * (i & 63) of word (i >> 6), words in ascending order: the Swift BitVector layout, and GMP's
 * limb order on 64-bit hosts.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Privacy amplification (Spec/postprocessing.md section 7), Dietzfelbinger's multiply-add-shift
 * hash with GNU MP: out = floor(((a x + b) mod 2^W) / 2^(n_bits - 1)), W = n_bits + out_bits - 1,
 * as integers with bit i in word i >> 6 at position i & 63 (GMP's limb order on 64-bit hosts).
 * a and b hold ceil(W / 64) words with bits past W zero; x holds ceil(n_bits / 64) words with
 * bits past n_bits zero; out receives ceil(out_bits / 64) words, bits past out_bits cleared.
 * threads >= 2 computes one of the two partial products on a second thread.
 * Scratch holding key-dependent values is zeroed before it is freed. GMP's multiplication is not
 * constant time (Toom-Cook branches on operand comparisons); see the Spec.
 * Returns 0, -1 if memory ran out, -2 if n_bits or out_bits is 0. */
int qkd_pp_mas_hash(uint64_t *out, size_t out_bits, const uint64_t *a, const uint64_t *b,
                    const uint64_t *x, size_t n_bits, int threads);

/* r[0 .. an+bn) = a[0 .. an) * b[0 .. bn) with GMP's mpn_mul (the benchmark baseline). */
int qkd_pp_mul_baseline(uint64_t *r, const uint64_t *a, size_t an, const uint64_t *b, size_t bn);

#ifdef __cplusplus
}
#endif
#endif
