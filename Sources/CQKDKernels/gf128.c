/* GF(2^128) kernels. PLACEHOLDER: reference bit-serial implementation (GCM spec, Algorithm 1).
 * Replaced by the PCLMULQDQ and constant-time portable kernels. */
#include "qkd_kernels.h"
#include <string.h>

static int force_portable = 0;
int qkd_cpu_has_clmul(void) { return 0; }
void qkd_kernels_force_portable(int force) { force_portable = force; }

void qkd_gf128_mul_portable(uint8_t out[16], const uint8_t x[16], const uint8_t y[16]) {
    uint8_t z[16] = {0}, v[16];
    memcpy(v, y, 16);
    for (int i = 0; i < 128; i++) {
        uint8_t bit = (uint8_t)-((x[i >> 3] >> (7 - (i & 7))) & 1);
        for (int j = 0; j < 16; j++) z[j] ^= v[j] & bit;
        uint8_t lsb = (uint8_t)-(v[15] & 1);
        for (int j = 15; j > 0; j--) v[j] = (uint8_t)((v[j] >> 1) | (v[j - 1] << 7));
        v[0] >>= 1;
        v[0] ^= 0xe1 & lsb;
    }
    memcpy(out, z, 16);
}
void qkd_gf128_mul_clmul(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]) { qkd_gf128_mul_portable(out, a, b); }
void qkd_gf128_mul(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]) { qkd_gf128_mul_portable(out, a, b); }

void qkd_ghash_key_init(qkd_ghash_key *key, const uint8_t h[16]) {
    memset(key, 0, sizeof *key);
    uint8_t p[16];
    memcpy(p, h, 16);
    for (int i = 0; i < QKD_GHASH_POWERS; i++) {
        uint64_t hi = 0, lo = 0;
        for (int j = 0; j < 8; j++) { hi = (hi << 8) | p[j]; lo = (lo << 8) | p[8 + j]; }
        key->h[i][0] = hi; key->h[i][1] = lo; key->hk[i] = hi ^ lo;
        qkd_gf128_mul_portable(p, p, h);
    }
}
static void load_h(uint8_t h[16], const qkd_ghash_key *key) {
    for (int j = 0; j < 8; j++) { h[j] = (uint8_t)(key->h[0][0] >> (56 - 8 * j)); h[8 + j] = (uint8_t)(key->h[0][1] >> (56 - 8 * j)); }
}
void qkd_ghash_blocks_portable(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks) {
    uint8_t h[16];
    load_h(h, key);
    for (size_t b = 0; b < nblocks; b++) {
        for (int j = 0; j < 16; j++) acc[j] ^= blocks[16 * b + j];
        qkd_gf128_mul_portable(acc, acc, h);
    }
}
void qkd_ghash_blocks_clmul(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks) { qkd_ghash_blocks_portable(acc, key, blocks, nblocks); }
void qkd_ghash_blocks(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks) { qkd_ghash_blocks_portable(acc, key, blocks, nblocks); }
