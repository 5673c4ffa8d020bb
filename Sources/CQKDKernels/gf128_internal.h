/* Helpers shared by the GF(2^128) kernels. Private to CQKDKernels. */
#ifndef QKD_GF128_INTERNAL_H
#define QKD_GF128_INTERNAL_H
#include "qkd_kernels.h"
#include <string.h>

/* A field element as the reflected 128-bit integer described in qkd_kernels.h: the 16 GCM
 * bytes read big-endian, split into 64-bit halves. */
typedef struct {
    uint64_t lo;
    uint64_t hi;
} qkd_u128;

static inline uint64_t qkd_load_be64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return v;
#else
    return __builtin_bswap64(v);
#endif
}

static inline void qkd_store_be64(uint8_t *p, uint64_t v) {
#if !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

static inline qkd_u128 qkd_load_block(const uint8_t b[16]) {
    qkd_u128 r = {qkd_load_be64(b + 8), qkd_load_be64(b)};
    return r;
}

static inline void qkd_store_block(uint8_t b[16], qkd_u128 v) {
    qkd_store_be64(b, v.hi);
    qkd_store_be64(b + 8, v.lo);
}

/*
 * x * a^-1 mod P in the reflected representation: a left shift by one bit, and if a bit falls
 * off the top, XOR a^-1 = a^127 + a^6 + a + 1 (since a * (a^127 + a^6 + a + 1) = P + 1), whose
 * reflected form is 0xC2000000000000000000000000000001. Constant time: the carry becomes a mask.
 *
 * Why: the carry-less product of two reflected 128-bit integers is the reflected product shifted
 * right by one bit (bit 254 - k holds coefficient k). Multiplying by a precomputed H * a^-1
 * instead of H puts coefficient k at bit 255 - k, so no 256-bit shift is needed per product.
 * This is the precomputation of OpenSSL's gcm_init_clmul, and RFC 8452 (Appendix A) names it
 * mulX_POLYVAL when it relates GHASH to POLYVAL.
 */
static inline qkd_u128 qkd_mul_inv_a(qkd_u128 x) {
    uint64_t carry = (uint64_t)0 - (x.hi >> 63);
    qkd_u128 r;
    r.hi = (x.hi << 1) | (x.lo >> 63);
    r.lo = x.lo << 1;
    r.hi ^= carry & UINT64_C(0xC200000000000000);
    r.lo ^= carry & UINT64_C(1);
    return r;
}

/* Wipes n bytes in a way the compiler cannot drop. */
static inline void qkd_wipe(void *p, size_t n) {
    volatile uint8_t *v = (volatile uint8_t *)p;
    while (n--) *v++ = 0;
}

#define QKD_INTERNAL __attribute__((visibility("hidden")))

/* Portable constant-time core (gf128_portable.c). g = (G.lo, G.hi, G.lo ^ G.hi, rev64 of each),
 * with G = H * a^-1 reflected, as in qkd_ghash_key.portable. Returns x * H. */
QKD_INTERNAL qkd_u128 qkd_gf128_portable_mul_pre(qkd_u128 x, const uint64_t g[6]);
/* Fills g[6] from G. */
QKD_INTERNAL void qkd_gf128_portable_prepare(uint64_t g[6], qkd_u128 G);

/* Overwrites 512 bytes of stack below the caller's frame, where the frames of the
 * functions it just called lay: the portable multiply spills key- and state-derived words
 * there (64-bit code has too few registers for it), and they should not outlive the call
 * (DESIGN.md: key material is wiped when released). Call it once per public call, not per block. */
QKD_INTERNAL void qkd_burn_stack(void);

#endif
