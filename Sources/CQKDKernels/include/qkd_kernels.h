#ifndef QKD_KERNELS_H
#define QKD_KERNELS_H
/*
 * Hot kernels for QKDChannel. Only QKDCrypto imports this module.
 *
 * GF(2^128) arithmetic uses the GHASH convention of the GCM specification (McGrew and Viega,
 * 2005; NIST SP 800-38D): a 16-byte string X = x_0 x_1 ... x_127 (x_0 is the most significant
 * bit of byte 0) is the polynomial x_0 + x_1 a + ... + x_127 a^127 modulo
 * a^128 + a^7 + a^2 + a + 1. Published GHASH vectors therefore check these functions directly.
 *
 * Every function has a carry-less-multiply path (PCLMULQDQ, chosen at run time) and a portable
 * constant-time path. Neither branches nor indexes memory on secret data. The bit-serial
 * reference (qkd_gf128_mul_reference) exists for tests only.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of precomputed powers of H kept in a key (aggregated reduction, Gueron and Kounavis):
 * the PCLMULQDQ path folds 8 blocks per reduction (H^1..H^8), the VPCLMULQDQ path 16. */
#define QKD_GHASH_POWERS 16

/*
 * A GHASH key: H and its powers H^1..H^16, in the layouts the kernels want. The fields are
 * private to the kernels (callers only need sizeof and pointers). It holds key material: keep
 * it in locked memory and wipe it when done.
 *
 * Every element below is the "reflected" 128-bit integer of a field element: the 16 GCM bytes
 * read big-endian, so x_0 is bit 127 and x_127 is bit 0 (equivalently, the bytes reversed and
 * read little-endian, which is what PSHUFB + MOVDQU give). Words are stored (lo, hi).
 */
typedef struct qkd_ghash_key {
    /* clmul[i] = H^(16-i) * a^-1 (reflected): descending powers, so that consecutive blocks of
     * an aggregated group find their multipliers at consecutive addresses (block j of a group
     * of n gets H^(n-j)). The factor a^-1 is H shifted left by one bit and reduced: the
     * PCLMULQDQ product of a reflected block with it needs no 1-bit fix-up shift (OpenSSL's
     * gcm_init_clmul; RFC 8452 Appendix A's mulX_POLYVAL). */
    uint64_t clmul[QKD_GHASH_POWERS][2];
    /* Karatsuba helpers: clmul_kara[i] = (clmul[i][0] ^ clmul[i][1], 0), 16 bytes each so a
     * 32-byte load gives the helpers of two consecutive powers, one per 128-bit lane. */
    uint64_t clmul_kara[QKD_GHASH_POWERS][2];
    /* Portable path (BearSSL-style ctmul64): G = H * a^-1 (reflected) as (lo, hi, lo ^ hi), and
     * the same three words bit-reversed, for the high halves of the 64x64 products. */
    uint64_t portable[6];
} qkd_ghash_key;

/* 1 if the CPU has PCLMULQDQ and SSE4.1 (the fast path is used), else 0. Cached after the
 * first call. Always 0 on non-x86_64 builds. */
int qkd_cpu_has_clmul(void);

/* 1 if the CPU also has VPCLMULQDQ and AVX2 (the 256-bit path is used), else 0. Cached. */
int qkd_cpu_has_vpclmul(void);

/* Force the portable path (1) or restore automatic dispatch (0). For tests and benchmarks. */
void qkd_kernels_force_portable(int force);

/* 1 if the dispatching functions currently take a carry-less-multiply path (PCLMULQDQ or
 * VPCLMULQDQ), else 0. */
int qkd_kernels_using_clmul(void);

/* out = a * b in GF(2^128), GHASH convention. out may alias a or b. Dispatching. */
void qkd_gf128_mul(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]);
/* The two implementations behind qkd_gf128_mul, exposed so tests can check one against the other. */
void qkd_gf128_mul_portable(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]);
/* Precondition: qkd_cpu_has_clmul() == 1. (On non-x86_64 builds it computes the portable result.) */
void qkd_gf128_mul_clmul(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]);
/* The GCM specification's bit-serial Algorithm 1. Slow; for tests only. out may alias a or b. */
void qkd_gf128_mul_reference(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]);

/* Fill key from H (16 bytes). */
void qkd_ghash_key_init(qkd_ghash_key *key, const uint8_t h[16]);

/* For each of the nblocks 16-byte blocks B: acc = (acc XOR B) * H. Dispatching: VPCLMULQDQ,
 * else PCLMULQDQ, else portable. acc is in GCM byte order before and after. */
void qkd_ghash_blocks(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks);
void qkd_ghash_blocks_portable(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks);
/* 128-bit PCLMULQDQ, 8 blocks per reduction. Precondition: qkd_cpu_has_clmul() == 1. (On
 * non-x86_64 builds it computes the portable result.) */
void qkd_ghash_blocks_clmul(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks);
/* The same with 256-bit VPCLMULQDQ, 16 blocks per reduction; the dispatcher's choice when the
 * CPU has it. Precondition: qkd_cpu_has_vpclmul() == 1. (On non-x86_64 builds it computes the
 * portable result.) */
void qkd_ghash_blocks_vpclmul(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks);

#ifdef __cplusplus
}
#endif
#endif
