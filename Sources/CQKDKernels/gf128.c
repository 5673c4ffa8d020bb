/*
 * GF(2^128) dispatch, key setup and the bit-serial reference.
 *
 * The fast path (gf128_clmul.c) needs PCLMULQDQ and SSE4.1; the CPU is checked once at run time
 * and the answer cached. qkd_kernels_force_portable(1) sends the dispatching functions to the
 * constant-time portable path (gf128_portable.c), so tests and benchmarks can measure both.
 */
#include "gf128_internal.h"
#include "cpu_probe.h"

/* -1: not probed yet; 0 or 1 afterwards. Relaxed atomics: every thread computes the same value. */
static int cpu_has_clmul_cache = -1;
static int cpu_has_vpclmul_cache = -1;
static int force_portable_flag = 0;

static int probe_clmul(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1") ? 1 : 0;
#else
    return 0;
#endif
}

static int probe_vpclmul(void) {
#if defined(__x86_64__)
    /* compiler-rt and libgcc only report AVX features when the OS saves YMM state (XGETBV). */
    return probe_clmul() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("vpclmulqdq") ? 1 : 0;
#else
    return 0;
#endif
}

int qkd_cpu_has_vpclmul(void) { return qkd_cached_probe(&cpu_has_vpclmul_cache, probe_vpclmul); }

int qkd_cpu_has_clmul(void) { return qkd_cached_probe(&cpu_has_clmul_cache, probe_clmul); }

void qkd_kernels_force_portable(int force) {
    __atomic_store_n(&force_portable_flag, force ? 1 : 0, __ATOMIC_RELAXED);
}

int qkd_kernels_using_clmul(void) {
    return !__atomic_load_n(&force_portable_flag, __ATOMIC_RELAXED) && qkd_cpu_has_clmul();
}

void qkd_gf128_mul(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]) {
    if (qkd_kernels_using_clmul()) {
        qkd_gf128_mul_clmul(out, a, b);
    } else {
        qkd_gf128_mul_portable(out, a, b);
    }
}

void qkd_ghash_blocks(uint8_t acc[16], const qkd_ghash_key *key, const uint8_t *blocks, size_t nblocks) {
    if (!qkd_kernels_using_clmul()) {
        qkd_ghash_blocks_portable(acc, key, blocks, nblocks);
    } else if (qkd_cpu_has_vpclmul()) {
        qkd_ghash_blocks_vpclmul(acc, key, blocks, nblocks);
    } else {
        qkd_ghash_blocks_clmul(acc, key, blocks, nblocks);
    }
}

/* GCM specification (McGrew and Viega 2005, section 2.5; SP 800-38D Algorithm 1), bit by bit:
 * Z = 0, V = b; for i = 0..127: if x_i then Z ^= V; V = V * a (a right shift in GCM bit order,
 * XOR R = 0xE1 || 0^120 when the bit shifted out was set). Masks instead of branches, though
 * this function is for tests only. */
void qkd_gf128_mul_reference(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]) {
    uint8_t z[16] = {0}, v[16], x[16];
    memcpy(v, b, 16);
    memcpy(x, a, 16);
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

void qkd_ghash_key_init(qkd_ghash_key *key, const uint8_t h[16]) {
    memset(key, 0, sizeof *key);
    /* Powers with the portable (constant-time) multiply, then each stored in both layouts. */
    uint64_t g1[6];
    qkd_u128 h1 = qkd_load_block(h);
    qkd_gf128_portable_prepare(g1, qkd_mul_inv_a(h1));
    qkd_u128 p = h1;
    for (int k = 1; k <= QKD_GHASH_POWERS; k++) {
        qkd_u128 g = qkd_mul_inv_a(p); /* H^k * a^-1, stored at index QKD_GHASH_POWERS - k */
        key->clmul[QKD_GHASH_POWERS - k][0] = g.lo;
        key->clmul[QKD_GHASH_POWERS - k][1] = g.hi;
        key->clmul_kara[QKD_GHASH_POWERS - k][0] = g.lo ^ g.hi;
        if (k == 1) qkd_gf128_portable_prepare(key->portable, g);
        p = qkd_gf128_portable_mul_pre(p, g1);
        qkd_wipe(&g, sizeof g);
    }
    qkd_wipe(g1, sizeof g1);
    qkd_wipe(&h1, sizeof h1);
    qkd_wipe(&p, sizeof p);
    qkd_burn_stack();
}
