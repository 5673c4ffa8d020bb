/*
 * PCLMULQDQ kernels for GHASH (x86_64 only). Compiled for baseline x86-64 except the functions
 * marked QKD_CLMUL_TARGET, which the dispatcher (gf128.c) only calls after checking the CPU.
 *
 * Method: Gueron and Kounavis, "Intel Carry-Less Multiplication Instruction and its Usage for
 * Computing the GCM Mode" (Intel white paper, 2010, rev. 2.02 2014):
 * - blocks are byte-reversed (PSHUFB) so a field element is the reflected 128-bit integer;
 * - each 128x128 product is three PCLMULQDQ (Karatsuba);
 * - the key holds H^i * a^-1 (see qkd_mul_inv_a), so products need no 1-bit shift;
 * - aggregated reduction: for 8 blocks X1..X8 and accumulator Y,
 *     Y' = (Y + X1) H^8 + X2 H^7 + ... + X8 H,
 *   the eight 256-bit products are XORed unreduced and reduced once;
 * - the reduction is two PCLMULQDQ by the constant 0xC2000000_00000000 (Montgomery reduction
 *   in the bit-reflected domain, see karatsuba_reduce).
 */
#include "gf128_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define QKD_CLMUL_TARGET __attribute__((target("pclmul,sse2,ssse3,sse4.1")))

/* Byte reversal of a 16-byte block: GCM bytes -> reflected integer, and back. */
QKD_CLMUL_TARGET static inline __m128i bswap128(__m128i x) {
    const __m128i mask = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm_shuffle_epi8(x, mask);
}

QKD_CLMUL_TARGET static inline __m128i load_block(const uint8_t *p) {
    return bswap128(_mm_loadu_si128((const __m128i *)(const void *)p));
}

QKD_CLMUL_TARGET static inline void store_block(uint8_t *p, __m128i x) {
    _mm_storeu_si128((__m128i *)(void *)p, bswap128(x));
}

QKD_CLMUL_TARGET static inline __m128i load_power(const qkd_ghash_key *key, int i) {
    return _mm_loadu_si128((const __m128i *)(const void *)key->clmul[i]);
}

QKD_CLMUL_TARGET static inline __m128i load_kara(const qkd_ghash_key *key, int i) {
    return _mm_loadu_si128((const __m128i *)(const void *)key->clmul_kara[i]);
}

/* Accumulates the Karatsuba partial products of x * h into lo, hi, mid (unreduced). hk's low
 * qword is h.lo ^ h.hi. */
QKD_CLMUL_TARGET static inline void mul_acc(__m128i x, __m128i h, __m128i hk,
                                            __m128i *lo, __m128i *hi, __m128i *mid) {
    __m128i xk = _mm_xor_si128(x, _mm_shuffle_epi32(x, 0x4e));
    *lo = _mm_xor_si128(*lo, _mm_clmulepi64_si128(x, h, 0x00));
    *hi = _mm_xor_si128(*hi, _mm_clmulepi64_si128(x, h, 0x11));
    *mid = _mm_xor_si128(*mid, _mm_clmulepi64_si128(xk, hk, 0x00));
}

/* Turns Karatsuba parts into the 256-bit product hi:lo and reduces it. Read as ordinary
 * polynomials in x (bit i = x^i), reflected GCM elements live in the POLYVAL field modulo
 * Q = x^128 + x^127 + x^126 + x^121 + 1, and the GHASH product is a Montgomery product
 * (RFC 8452, Appendix A; the a^-1 pre-shift of the key is its mulX_POLYVAL). The reduction is
 * T = T * x^-128 mod Q in two 64-bit Montgomery steps T = (T + T0 * Q) / x^64: T0 * (x^127 +
 * x^126 + x^121) / x^64 is one PCLMULQDQ of the low qword by 0xC2000000_00000000, and the x^128
 * and 1 terms of Q are a qword swap. Same as OpenSSL's and Go's GHASH. */
QKD_CLMUL_TARGET static inline __m128i karatsuba_reduce(__m128i lo, __m128i hi, __m128i mid) {
    const __m128i poly = _mm_set_epi64x((long long)UINT64_C(0xC200000000000000), 1);
    mid = _mm_xor_si128(mid, _mm_xor_si128(lo, hi));
    lo = _mm_xor_si128(lo, _mm_slli_si128(mid, 8));
    hi = _mm_xor_si128(hi, _mm_srli_si128(mid, 8));
    __m128i t = _mm_clmulepi64_si128(lo, poly, 0x10);
    lo = _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), t);
    t = _mm_clmulepi64_si128(lo, poly, 0x10);
    lo = _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), t);
    return _mm_xor_si128(lo, hi);
}

QKD_CLMUL_TARGET void qkd_gf128_mul_clmul(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]) {
    qkd_u128 g = qkd_mul_inv_a(qkd_load_block(b));
    __m128i h = _mm_set_epi64x((long long)g.hi, (long long)g.lo);
    __m128i hk = _mm_cvtsi64_si128((long long)(g.lo ^ g.hi));
    __m128i x = load_block(a);
    __m128i lo = _mm_setzero_si128(), hi = _mm_setzero_si128(), mid = _mm_setzero_si128();
    mul_acc(x, h, hk, &lo, &hi, &mid);
    store_block(out, karatsuba_reduce(lo, hi, mid));
    qkd_wipe(&g, sizeof g);
}

/* Index in key->clmul of the multiplier of block j in an aggregated group of n blocks: H^(n-j)
 * (the first block, which carries the accumulator, gets the highest power). */
#define POWER_INDEX(n, j) (QKD_GHASH_POWERS - (n) + (j))

/* The 8-block loop and the aggregated tail; y is the reflected accumulator. */
QKD_CLMUL_TARGET static inline __m128i ghash_clmul_core(__m128i y, const qkd_ghash_key *key,
                                                        const uint8_t *blocks, size_t nblocks) {
    while (nblocks >= 8) {
        /* The powers are read from the key inside the loop (memory operands, L1 hits) rather
         * than hoisted into 16 registers, which would spill key material to the stack. The
         * empty asm hides the pointer's loop invariance from the optimiser. */
        __asm__("" : "+r"(key));
        __m128i lo = _mm_setzero_si128(), hi = _mm_setzero_si128(), mid = _mm_setzero_si128();
        mul_acc(_mm_xor_si128(y, load_block(blocks)), load_power(key, POWER_INDEX(8, 0)),
                load_kara(key, POWER_INDEX(8, 0)), &lo, &hi, &mid);
        for (int j = 1; j < 8; j++) {
            mul_acc(load_block(blocks + 16 * j), load_power(key, POWER_INDEX(8, j)),
                    load_kara(key, POWER_INDEX(8, j)), &lo, &hi, &mid);
        }
        y = karatsuba_reduce(lo, hi, mid);
        blocks += 128;
        nblocks -= 8;
    }
    if (nblocks > 0) {
        /* Tail of 1..7 blocks: the same aggregation with H^n..H^1 and one reduction. */
        __m128i lo = _mm_setzero_si128(), hi = _mm_setzero_si128(), mid = _mm_setzero_si128();
        for (size_t j = 0; j < nblocks; j++) {
            __m128i x = load_block(blocks + 16 * j);
            if (j == 0) x = _mm_xor_si128(x, y);
            int p = POWER_INDEX((int)nblocks, (int)j);
            mul_acc(x, load_power(key, p), load_kara(key, p), &lo, &hi, &mid);
        }
        y = karatsuba_reduce(lo, hi, mid);
    }
    return y;
}

QKD_CLMUL_TARGET void qkd_ghash_blocks_clmul(uint8_t acc[16], const qkd_ghash_key *key,
                                             const uint8_t *blocks, size_t nblocks) {
    store_block(acc, ghash_clmul_core(load_block(acc), key, blocks, nblocks));
}

/*
 * 256-bit VPCLMULQDQ (AVX2 encoding): each YMM register holds two consecutive blocks, one per
 * 128-bit lane, and VPCLMULQDQ multiplies both lanes at once. 16 blocks per iteration
 * (H^16..H^1, eight YMM products, each three VPCLMULQDQ by Karatsuba), the two lanes of the
 * unreduced sums are XORed together, and one 128-bit reduction follows. The remaining 0..15
 * blocks go through the 128-bit core.
 */
#define QKD_VPCLMUL_TARGET __attribute__((target("pclmul,sse2,ssse3,sse4.1,avx,avx2,vpclmulqdq")))

QKD_VPCLMUL_TARGET static inline __m256i load_block_pair(const uint8_t *p) {
    const __m256i mask = _mm256_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                         0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(const void *)p), mask);
}

QKD_VPCLMUL_TARGET static inline void mul_acc_pair(__m256i x, const qkd_ghash_key *key, int i,
                                                   __m256i *lo, __m256i *hi, __m256i *mid) {
    const __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)key->clmul[i]);
    const __m256i hk = _mm256_loadu_si256((const __m256i *)(const void *)key->clmul_kara[i]);
    __m256i xk = _mm256_xor_si256(x, _mm256_shuffle_epi32(x, 0x4e));
    *lo = _mm256_xor_si256(*lo, _mm256_clmulepi64_epi128(x, h, 0x00));
    *hi = _mm256_xor_si256(*hi, _mm256_clmulepi64_epi128(x, h, 0x11));
    *mid = _mm256_xor_si256(*mid, _mm256_clmulepi64_epi128(xk, hk, 0x00));
}

QKD_VPCLMUL_TARGET static inline __m128i fold_lanes(__m256i x) {
    return _mm_xor_si128(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
}

QKD_VPCLMUL_TARGET void qkd_ghash_blocks_vpclmul(uint8_t acc[16], const qkd_ghash_key *key,
                                                 const uint8_t *blocks, size_t nblocks) {
    __m128i y = load_block(acc);
    while (nblocks >= 16) {
        __asm__("" : "+r"(key)); /* as in ghash_clmul_core: no hoisted, spilled key material */
        __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256(), mid = _mm256_setzero_si256();
        /* The accumulator joins block 0, in the low lane. */
        __m256i x0 = _mm256_xor_si256(load_block_pair(blocks), _mm256_zextsi128_si256(y));
        mul_acc_pair(x0, key, POWER_INDEX(16, 0), &lo, &hi, &mid);
        for (int j = 2; j < 16; j += 2) {
            mul_acc_pair(load_block_pair(blocks + 16 * j), key, POWER_INDEX(16, j), &lo, &hi, &mid);
        }
        y = karatsuba_reduce(fold_lanes(lo), fold_lanes(hi), fold_lanes(mid));
        blocks += 256;
        nblocks -= 16;
    }
    store_block(acc, ghash_clmul_core(y, key, blocks, nblocks));
}

#else /* not x86_64: no PCLMULQDQ; keep the symbols, computing the portable result. */

void qkd_gf128_mul_clmul(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]) {
    qkd_gf128_mul_portable(out, a, b);
}

void qkd_ghash_blocks_clmul(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks) {
    qkd_ghash_blocks_portable(acc, key, blocks, nblocks);
}

void qkd_ghash_blocks_vpclmul(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks) {
    qkd_ghash_blocks_portable(acc, key, blocks, nblocks);
}

#endif
