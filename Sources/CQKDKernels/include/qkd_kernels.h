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
 * constant-time path. Neither branches nor indexes memory on secret data.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of precomputed powers of H kept in a key (aggregated reduction, Gueron and Kounavis). */
#define QKD_GHASH_POWERS 8

/* A GHASH key: H and its powers H^1..H^8, in the layout the kernels want. Wipe it when done. */
typedef struct qkd_ghash_key {
    uint64_t h[QKD_GHASH_POWERS][2]; /* h[i] = H^(i+1), as (hi, lo) big-endian-loaded words */
    uint64_t hk[QKD_GHASH_POWERS];   /* Karatsuba helper words for the PCLMUL path: hi ^ lo */
} qkd_ghash_key;

/* 1 if the CPU has PCLMULQDQ and SSE4.1 (the fast path is used), else 0. */
int qkd_cpu_has_clmul(void);

/* Force the portable path (1) or restore automatic dispatch (0). For tests and benchmarks. */
void qkd_kernels_force_portable(int force);

/* out = a * b in GF(2^128), GHASH convention. out may alias a or b. Dispatching. */
void qkd_gf128_mul(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]);
/* The two implementations behind qkd_gf128_mul, exposed so tests can check one against the other. */
void qkd_gf128_mul_portable(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]);
/* Precondition: qkd_cpu_has_clmul() == 1. */
void qkd_gf128_mul_clmul(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]);

/* Fill key from H (16 bytes). */
void qkd_ghash_key_init(qkd_ghash_key *key, const uint8_t h[16]);

/* For each of the nblocks 16-byte blocks B: acc = (acc XOR B) * H. Dispatching. */
void qkd_ghash_blocks(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks);
void qkd_ghash_blocks_portable(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks);
/* Precondition: qkd_cpu_has_clmul() == 1. */
void qkd_ghash_blocks_clmul(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks);

#ifdef __cplusplus
}
#endif
#endif
