#ifndef QKD_PP_KERNELS_H
#define QKD_PP_KERNELS_H
/*
 * Post-processing kernels for QKDChannel (Spec/postprocessing.md section 7): carry-less
 * polynomial multiplication over GF(2)[z] for Toeplitz privacy amplification.
 *
 * Bit order: coefficient i of a polynomial is bit (i & 63) of word (i >> 6), words in
 * ascending order, the same layout as the Swift BitVector.
 *
 * Every entry point dispatches at run time: PCLMULQDQ where the CPU has it, else a portable
 * 64x64 carry-less multiply. Neither path branches on data.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if the PCLMULQDQ path is in use. */
int qkd_pp_has_clmul(void);

/* Force the portable path (1) or restore automatic dispatch (0). For tests and benchmarks. */
void qkd_pp_force_portable(int force);

/* r[0 .. na+nb) = a[0 .. na) * b[0 .. nb) over GF(2)[z]. r must not alias a or b.
 * Karatsuba over a schoolbook base case. Returns 0, or -1 if scratch memory ran out. */
int qkd_pp_gf2x_mul(uint64_t *r, const uint64_t *a, size_t na, const uint64_t *b, size_t nb);

/* Toeplitz hash: out = T x where T is the out_bits x n_bits Toeplitz matrix with
 * T[i][j] = seed[i - j + n_bits - 1], and seed holds n_bits + out_bits - 1 bits.
 * Equivalently out bit i = coefficient (n_bits - 1 + i) of seed(z) * x(z).
 * out receives ceil(out_bits / 64) words with bits past out_bits cleared.
 * Returns 0, or -1 if memory ran out. */
int qkd_pp_toeplitz(uint64_t *out, size_t out_bits, const uint64_t *seed, const uint64_t *x, size_t n_bits);

/* The same product computed bit by bit, one row of T at a time with word-wide AND and parity.
 * The reference for tests and the baseline for `qkd-node bench amplify`. */
void qkd_pp_toeplitz_naive(uint64_t *out, size_t out_bits, const uint64_t *seed, const uint64_t *x, size_t n_bits);

/* Parity (0 or 1) of words[0 .. n). Uses POPCNT where available. */
uint64_t qkd_pp_parity(const uint64_t *words, size_t n);

#ifdef __cplusplus
}
#endif
#endif
