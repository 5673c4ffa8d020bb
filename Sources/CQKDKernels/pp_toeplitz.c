/* Carry-less polynomial multiplication and Toeplitz hashing for privacy amplification.
 * See include/qkd_pp_kernels.h and Spec/postprocessing.md section 7. */
#include "qkd_pp_kernels.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QKD_PP_X86 1
#endif

static int pp_force_portable = 0;

int qkd_pp_has_clmul(void) {
#ifdef QKD_PP_X86
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
    }
    return cached && !pp_force_portable;
#else
    return 0;
#endif
}

void qkd_pp_force_portable(int force) { pp_force_portable = force; }

/* ---- 64x64 -> 128 carry-less multiply ---- */

/* Portable: 4-bit windows of a, with the top 3 bits of b handled separately so the table
 * entries do not overflow. Constant time: no branch on data. */
static inline void clmul64_portable(uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi) {
    uint64_t u[16];
    const uint64_t b0 = b & 0x1fffffffffffffffULL; /* low 61 bits */
    u[0] = 0;
    u[1] = b0;
    for (int i = 2; i < 16; i += 2) {
        u[i] = u[i >> 1] << 1;
        u[i + 1] = u[i] ^ b0;
    }
    uint64_t l = 0, h = 0;
    for (int i = 60; i >= 0; i -= 4) {
        uint64_t t = u[(a >> i) & 15];
        l ^= t << i;
        if (i) h ^= t >> (64 - i);
    }
    /* Top 3 bits of b: add a << (61 + j) for each set bit j of b >> 61, masked. */
    for (int j = 0; j < 3; j++) {
        uint64_t m = (uint64_t)0 - ((b >> (61 + j)) & 1);
        int s = 61 + j;
        l ^= (a << s) & m;
        h ^= (a >> (64 - s)) & m;
    }
    *lo = l;
    *hi = h;
}

/* Schoolbook base case: r[0 .. 2n) = a * b, n words each. */
static void base_portable(uint64_t *r, const uint64_t *a, const uint64_t *b, size_t n) {
    memset(r, 0, 2 * n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            uint64_t lo, hi;
            clmul64_portable(a[i], b[j], &lo, &hi);
            r[i + j] ^= lo;
            r[i + j + 1] ^= hi;
        }
    }
}

#ifdef QKD_PP_X86
__attribute__((target("pclmul,sse4.1")))
static void base_clmul(uint64_t *r, const uint64_t *a, const uint64_t *b, size_t n) {
    /* Accumulate 128-bit partial products in registers, column by column. */
    __m128i carry = _mm_setzero_si128();
    for (size_t k = 0; k < 2 * n - 1; k++) {
        __m128i acc = carry;
        size_t lo = k + 1 > n ? k + 1 - n : 0;
        size_t hi = k < n - 1 ? k : n - 1;
        for (size_t i = lo; i <= hi; i++) {
            __m128i x = _mm_cvtsi64_si128((long long)a[i]);
            __m128i y = _mm_cvtsi64_si128((long long)b[k - i]);
            acc = _mm_xor_si128(acc, _mm_clmulepi64_si128(x, y, 0x00));
        }
        r[k] = (uint64_t)_mm_cvtsi128_si64(acc);
        carry = _mm_srli_si128(acc, 8);
    }
    r[2 * n - 1] = (uint64_t)_mm_cvtsi128_si64(carry);
}
#endif

typedef void (*base_fn)(uint64_t *, const uint64_t *, const uint64_t *, size_t);

#ifndef KARATSUBA_THRESHOLD
#define KARATSUBA_THRESHOLD 8
#endif

/* r[0 .. 2n) = a * b (n words each). scratch holds at least 4n + 4 * log2(n) + 64 words. */
static void karatsuba(uint64_t *r, const uint64_t *a, const uint64_t *b, size_t n, uint64_t *scratch, base_fn base) {
    if (n <= KARATSUBA_THRESHOLD) {
        base(r, a, b, n);
        return;
    }
    size_t m = n / 2, h = n - m; /* a = a0 + z^(64m) a1, a0: m words, a1: h >= m words */
    uint64_t *sa = scratch, *sb = scratch + h, *p1 = scratch + 2 * h, *next = scratch + 4 * h;
    for (size_t i = 0; i < h; i++) {
        sa[i] = a[m + i] ^ (i < m ? a[i] : 0);
        sb[i] = b[m + i] ^ (i < m ? b[i] : 0);
    }
    karatsuba(p1, sa, sb, h, next, base);
    karatsuba(r, a, b, m, next, base);
    karatsuba(r + 2 * m, a + m, b + m, h, next, base);
    for (size_t i = 0; i < 2 * m; i++) p1[i] ^= r[i];
    for (size_t i = 0; i < 2 * h; i++) p1[i] ^= r[2 * m + i];
    for (size_t i = 0; i < 2 * h; i++) r[m + i] ^= p1[i];
}

static size_t scratch_words(size_t n) { return 4 * n + 64 * 8 + 64; }

/* r[0 .. na+nb) ^= a * b for na <= nb: cut b into chunks of na words; a last, shorter chunk is
 * multiplied recursively (cutting a in turn), never padded to a full chunk. */
static int mul_unbalanced(uint64_t *r, const uint64_t *a, size_t na, const uint64_t *b, size_t nb,
                          uint64_t *scratch, uint64_t *prod, base_fn base) {
    size_t off = 0;
    for (; off + na <= nb; off += na) {
        karatsuba(prod, a, b + off, na, scratch, base);
        for (size_t i = 0; i < 2 * na; i++) r[off + i] ^= prod[i];
    }
    size_t rest = nb - off;
    if (rest == 0) return 0;
    /* b's tail (rest < na words) times a: swap roles so the shorter operand leads. */
    return mul_unbalanced(r + off, b + off, rest, a, na, scratch, prod, base);
}

int qkd_pp_gf2x_mul(uint64_t *r, const uint64_t *a, size_t na, const uint64_t *b, size_t nb) {
    memset(r, 0, (na + nb) * sizeof(uint64_t));
    if (na == 0 || nb == 0) return 0;
    base_fn base = base_portable;
#ifdef QKD_PP_X86
    if (qkd_pp_has_clmul()) base = base_clmul;
#endif
    if (na > nb) {
        const uint64_t *t = a; a = b; b = t;
        size_t tn = na; na = nb; nb = tn;
    }
    uint64_t *scratch = malloc(scratch_words(na) * sizeof(uint64_t));
    uint64_t *prod = malloc(2 * na * sizeof(uint64_t));
    if (!scratch || !prod) {
        free(scratch); free(prod);
        return -1;
    }
    int status = mul_unbalanced(r, a, na, b, nb, scratch, prod, base);
    free(scratch); free(prod);
    return status;
}

int qkd_pp_toeplitz(uint64_t *out, size_t out_bits, const uint64_t *seed, const uint64_t *x, size_t n_bits) {
    size_t out_words = (out_bits + 63) / 64;
    if (out_bits == 0) return 0;
    size_t seed_bits = n_bits + out_bits - 1;
    size_t ns = (seed_bits + 63) / 64, nx = (n_bits + 63) / 64;
    uint64_t *prod = malloc((ns + nx + 1) * sizeof(uint64_t));
    if (!prod) return -1;
    prod[ns + nx] = 0;
    if (qkd_pp_gf2x_mul(prod, seed, ns, x, nx) != 0) { free(prod); return -1; }
    /* Extract bits n_bits - 1 .. n_bits - 2 + out_bits. */
    size_t start = n_bits - 1, w = start / 64, s = start % 64;
    for (size_t i = 0; i < out_words; i++) {
        uint64_t lo = prod[w + i];
        uint64_t hi = (w + i + 1 < ns + nx + 1) ? prod[w + i + 1] : 0;
        out[i] = s ? (lo >> s) | (hi << (64 - s)) : lo;
    }
    if (out_bits % 64) out[out_words - 1] &= (((uint64_t)1) << (out_bits % 64)) - 1;
    memset(prod, 0, (ns + nx + 1) * sizeof(uint64_t)); /* The product depends on the key. */
    free(prod);
    return 0;
}

static inline uint64_t get_bit(const uint64_t *v, size_t i) { return (v[i >> 6] >> (i & 63)) & 1; }

void qkd_pp_toeplitz_naive(uint64_t *out, size_t out_bits, const uint64_t *seed, const uint64_t *x, size_t n_bits) {
    size_t out_words = (out_bits + 63) / 64;
    memset(out, 0, out_words * sizeof(uint64_t));
    for (size_t i = 0; i < out_bits; i++) {
        uint64_t acc = 0;
        /* Row i: T[i][j] = seed[i - j + n - 1], j = 0 .. n-1. */
        for (size_t j = 0; j < n_bits; j++) acc ^= get_bit(seed, i + n_bits - 1 - j) & get_bit(x, j);
        out[i >> 6] |= acc << (i & 63);
    }
}

uint64_t qkd_pp_parity(const uint64_t *w, size_t n) {
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++) acc ^= w[i];
    acc ^= acc >> 32; acc ^= acc >> 16; acc ^= acc >> 8; acc ^= acc >> 4; acc ^= acc >> 2; acc ^= acc >> 1;
    return acc & 1;
}
