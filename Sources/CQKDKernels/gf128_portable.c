/*
 * Portable constant-time GF(2^128) multiplication for GHASH, after BearSSL's ghash_ctmul64
 * (T. Pornin, BearSSL src/hash/ghash_ctmul64.c, 2016; bearssl.org/constanttime.html):
 *
 * - a 64x64 carry-less multiply is done with ordinary integer multiplies of masked operands
 *   whose set bits are at least 4 positions apart ("holes"), so the carries of the integer
 *   products never reach a bit we keep;
 * - only the low 64 bits of each product are computed; the high half comes from the same
 *   routine on the bit-reversed operands (rev(x) * rev(y) = rev(x * y) >> 1);
 * - three such 128-bit products per 128x128 multiply (Karatsuba), then the modular reduction
 *   with shifts and XORs.
 *
 * No branch and no memory index depends on secret data. Integer multiplication is constant-time
 * on x86_64 and on the 64-bit ARM cores we target (not on some small microcontrollers).
 */
#include "gf128_internal.h"

/* Low 64 bits of the carry-less product of x and y. Each operand is split into four masks of
 * every fourth bit; an integer product of two such masks has, at each position, a sum of at
 * most 16 one-bit terms, whose carries only land on positions of other classes (or beyond bit
 * 63), which the final masks discard. */
static inline uint64_t clmul64_lo(uint64_t x, uint64_t y) {
    const uint64_t m0 = UINT64_C(0x1111111111111111);
    const uint64_t m1 = UINT64_C(0x2222222222222222);
    const uint64_t m2 = UINT64_C(0x4444444444444444);
    const uint64_t m3 = UINT64_C(0x8888888888888888);
    uint64_t x0 = x & m0, x1 = x & m1, x2 = x & m2, x3 = x & m3;
    uint64_t y0 = y & m0, y1 = y & m1, y2 = y & m2, y3 = y & m3;
    uint64_t z0 = (x0 * y0) ^ (x1 * y3) ^ (x2 * y2) ^ (x3 * y1);
    uint64_t z1 = (x0 * y1) ^ (x1 * y0) ^ (x2 * y3) ^ (x3 * y2);
    uint64_t z2 = (x0 * y2) ^ (x1 * y1) ^ (x2 * y0) ^ (x3 * y3);
    uint64_t z3 = (x0 * y3) ^ (x1 * y2) ^ (x2 * y1) ^ (x3 * y0);
    return (z0 & m0) | (z1 & m1) | (z2 & m2) | (z3 & m3);
}

/* Bit reversal of a 64-bit word (swap networks: constant time). */
static inline uint64_t rev64(uint64_t x) {
    x = ((x & UINT64_C(0x5555555555555555)) << 1) | ((x >> 1) & UINT64_C(0x5555555555555555));
    x = ((x & UINT64_C(0x3333333333333333)) << 2) | ((x >> 2) & UINT64_C(0x3333333333333333));
    x = ((x & UINT64_C(0x0F0F0F0F0F0F0F0F)) << 4) | ((x >> 4) & UINT64_C(0x0F0F0F0F0F0F0F0F));
    return __builtin_bswap64(x);
}

__attribute__((noinline)) void qkd_burn_stack(void) {
    volatile uint64_t area[64]; /* 512 bytes: more than the portable multiply's frame */
    for (int i = 0; i < 64; i++) area[i] = 0;
}

void qkd_gf128_portable_prepare(uint64_t g[6], qkd_u128 G) {
    g[0] = G.lo;
    g[1] = G.hi;
    g[2] = G.lo ^ G.hi;
    g[3] = rev64(G.lo);
    g[4] = rev64(G.hi);
    g[5] = g[3] ^ g[4];
}

qkd_u128 qkd_gf128_portable_mul_pre(qkd_u128 x, const uint64_t g[6]) {
    uint64_t x0 = x.lo, x1 = x.hi, x2 = x0 ^ x1;
    uint64_t x0r = rev64(x0), x1r = rev64(x1), x2r = x0r ^ x1r;

    /* Karatsuba: (x1:x0)(g1:g0) = x1g1 << 128 ^ (x2g2 ^ x0g0 ^ x1g1) << 64 ^ x0g0. */
    uint64_t lo0 = clmul64_lo(x0, g[0]);
    uint64_t lo1 = clmul64_lo(x1, g[1]);
    uint64_t lo2 = clmul64_lo(x2, g[2]);
    uint64_t hi0 = rev64(clmul64_lo(x0r, g[3])) >> 1;
    uint64_t hi1 = rev64(clmul64_lo(x1r, g[4])) >> 1;
    uint64_t hi2 = rev64(clmul64_lo(x2r, g[5])) >> 1;
    lo2 ^= lo0 ^ lo1;
    hi2 ^= hi0 ^ hi1;

    /* The 256-bit product v3:v2:v1:v0. Because G carries the factor a^-1, bit 255 - k holds the
     * coefficient of a^k: v3:v2 are degrees 0..127, v1:v0 degrees 128..255. */
    uint64_t v0 = lo0;
    uint64_t v1 = hi0 ^ lo2;
    uint64_t v2 = lo1 ^ hi2;
    uint64_t v3 = hi1;

    /* Reduction by a^128 = a^7 + a^2 + a + 1: in the reflected domain, multiplying by a^j is a
     * right shift by j, so a^128 * c folds to c ^ c>>1 ^ c>>2 ^ c>>7. Fold v0 (degrees 192..255)
     * into v2:v1, then v1 (degrees 128..191) into v3:v2. */
    v2 ^= v0 ^ (v0 >> 1) ^ (v0 >> 2) ^ (v0 >> 7);
    v1 ^= (v0 << 63) ^ (v0 << 62) ^ (v0 << 57);
    v3 ^= v1 ^ (v1 >> 1) ^ (v1 >> 2) ^ (v1 >> 7);
    v2 ^= (v1 << 63) ^ (v1 << 62) ^ (v1 << 57);

    qkd_u128 r = {v2, v3};
    return r;
}

void qkd_gf128_mul_portable(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]) {
    uint64_t g[6];
    qkd_gf128_portable_prepare(g, qkd_mul_inv_a(qkd_load_block(b)));
    qkd_u128 r = qkd_gf128_portable_mul_pre(qkd_load_block(a), g);
    qkd_wipe(g, sizeof g);
    qkd_store_block(out, r);
    qkd_burn_stack();
}

void qkd_ghash_blocks_portable(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks) {
    qkd_u128 y = qkd_load_block(acc);
    for (size_t i = 0; i < nblocks; i++) {
        qkd_u128 b = qkd_load_block(blocks + 16 * i);
        y.lo ^= b.lo;
        y.hi ^= b.hi;
        y = qkd_gf128_portable_mul_pre(y, key->portable);
    }
    qkd_store_block(acc, y);
    qkd_burn_stack();
}
