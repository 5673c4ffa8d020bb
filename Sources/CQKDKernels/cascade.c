/* Cascade kernels: the round's permutation (a keyed Feistel network with cycle walking) and the
 * per-pass gather. See include/qkd_cascade_kernels.h and Spec/postprocessing.md section 5.2.
 *
 * Both maps of the permutation are computed, not shuffled: position j's index and index i's
 * position are each a short chain of arithmetic on j or i alone, so the two maps are written
 * in order, 8 lanes at a time (AVX2 where the CPU has it), with no random memory access. The
 * Rao-Sandelius shuffle it replaced (2026-11-27) made four passes over multi-MB arrays and was
 * a quarter of Cascade's time at 2^20 bits. */
#include "qkd_cascade_kernels.h"
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

/* Freed huge buffers kept for the next permutation: a fresh one costs the kernel a page fault
 * and 2 MiB of zeroing per huge page (about a tenth of Cascade's time at 2^20 bits). Only
 * public data (permutation maps and scratch) goes through here, so nothing needs wiping. At most
 * QKD_POOL_SLOTS buffers of at most QKD_POOL_MAX bytes each, QKD_POOL_TOTAL bytes in all, are
 * kept: each live engine holds two maps, and a node pair with two rounds in flight in one
 * process (the pipeline bench) has four engines, so four slots kept missing. */
#define QKD_POOL_SLOTS 16
#define QKD_POOL_MAX ((size_t)16 << 20)
#define QKD_POOL_TOTAL ((size_t)64 << 20)
static struct { void *p; size_t bytes; } pool[QKD_POOL_SLOTS];
static size_t pool_bytes;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t huge_rounded(size_t bytes) {
    const size_t huge = (size_t)1 << 21;
    return (bytes + huge - 1) & ~(huge - 1);
}

void *qkd_cascade_alloc(size_t bytes) {
    const size_t huge = (size_t)1 << 21;
    if (bytes < (huge >> 1)) return malloc(bytes ? bytes : 1);
    size_t rounded = huge_rounded(bytes);
    void *p = NULL;
    pthread_mutex_lock(&pool_lock);
    for (int i = 0; i < QKD_POOL_SLOTS; i++) {
        if (pool[i].p && pool[i].bytes == rounded) {
            p = pool[i].p;
            pool[i].p = NULL;
            pool_bytes -= rounded;
            break;
        }
    }
    pthread_mutex_unlock(&pool_lock);
    if (p) return p;
    p = aligned_alloc(huge, rounded);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p) (void)madvise(p, rounded, MADV_HUGEPAGE);  /* A hint: failure only costs speed. */
#endif
    return p;
}

void qkd_cascade_free(void *p, size_t bytes) {
    const size_t huge = (size_t)1 << 21;
    if (!p) return;
    const size_t rounded = huge_rounded(bytes);
    if (bytes >= (huge >> 1) && rounded <= QKD_POOL_MAX) {
        pthread_mutex_lock(&pool_lock);
        for (int i = 0; i < QKD_POOL_SLOTS && pool_bytes + rounded <= QKD_POOL_TOTAL; i++) {
            if (!pool[i].p) {
                pool[i].p = p;
                pool[i].bytes = rounded;
                pool_bytes += rounded;
                p = NULL;
                break;
            }
        }
        pthread_mutex_unlock(&pool_lock);
    }
    free(p);
}

typedef struct { uint64_t s0, s1, s2, s3; } xoshiro;

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman and Vigna, ACM TOMS 2021). */
static inline uint64_t xnext(xoshiro *g) {
    uint64_t result = rotl(g->s1 * 5, 7) * 9;
    uint64_t t = g->s1 << 17;
    g->s2 ^= g->s0;
    g->s3 ^= g->s1;
    g->s1 ^= g->s2;
    g->s0 ^= g->s3;
    g->s2 ^= t;
    g->s3 = rotl(g->s3, 45);
    return result;
}

/* The round's permutation (Spec/postprocessing.md section 5.2): a 6-round unbalanced Feistel
 * network on m-bit words, m = max(2, ceil(log2 n)), split into a low part of floor(m/2) bits
 * and a high part of the rest, restricted to 0..<n by cycle walking (Black and Rogaway,
 * "Ciphers with arbitrary finite domains", CT-RSA 2002: apply the network until the value is
 * below n; the walks of a permutation of 0..<2^m restricted to 0..<n form a permutation of
 * 0..<n, and the inverse walks with the inverse network). Round r's key and odd multiplier are
 * the low and high halves of the r-th xoshiro256** word. */
#define QKD_FEISTEL_ROUNDS 6

typedef struct {
    uint32_t key[QKD_FEISTEL_ROUNDS], mul[QKD_FEISTEL_ROUNDS];
    uint32_t n, lowMask;
    unsigned lowBits, lowShift, highShift;
} feistel;

typedef uint32_t v8u __attribute__((vector_size(32)));

/* The network on one word (or 8 lanes): even rounds xor a hash of the low part into the high
 * part, odd rounds a hash of the high part into the low part; the hash of v in round r is the
 * top bits of the 32-bit product (v ^ key[r]) * mul[r] (mul odd). The inverse runs the rounds
 * backwards (each round is its own inverse). */
#define FEISTEL_ROUND(lo, hi, f, r)                                                               \
    do {                                                                                          \
        if ((r) & 1) lo ^= ((hi ^ (f)->key[r]) * (f)->mul[r]) >> (f)->lowShift;                   \
        else hi ^= ((lo ^ (f)->key[r]) * (f)->mul[r]) >> (f)->highShift;                          \
    } while (0)

#define FEISTEL_FN(name, T)                                                                       \
    static inline __attribute__((always_inline)) void name(const feistel *f, T *x, int inverse) { \
        T lo = *x & f->lowMask, hi = *x >> f->lowBits;                                            \
        if (!inverse) {                                                                           \
            _Pragma("unroll") for (int r = 0; r < QKD_FEISTEL_ROUNDS; r++) FEISTEL_ROUND(lo, hi, f, r); \
        } else {                                                                                  \
            _Pragma("unroll") for (int r = QKD_FEISTEL_ROUNDS - 1; r >= 0; r--) FEISTEL_ROUND(lo, hi, f, r); \
        }                                                                                         \
        *x = (hi << f->lowBits) | lo;                                                             \
    }

FEISTEL_FN(feistel1p, uint32_t)
FEISTEL_FN(feistel8, v8u)

static inline __attribute__((always_inline)) uint32_t feistel1(const feistel *f, uint32_t x, int inverse) {
    feistel1p(f, &x, inverse);
    return x;
}

/* out[j] = the walk of j (the network applied until the value is below n), for j < n. The
 * vector loop applies the network once; lanes that land at or above n are listed in scratch
 * and walked on (a list that shrinks: half the domain at worst, so about two steps each). */
#define FILL_BODY(f, out, inverse, scratch)                                                      \
    do {                                                                                          \
        const uint32_t n_ = (f)->n;                                                               \
        size_t j_ = 0, c_ = 0;                                                                    \
        const v8u lane_ = {0, 1, 2, 3, 4, 5, 6, 7};                                               \
        const v8u limit_ = {n_, n_, n_, n_, n_, n_, n_, n_};                                      \
        for (; j_ + 8 <= n_; j_ += 8) {                                                           \
            v8u x_ = lane_ + (uint32_t)j_;                                                        \
            feistel8(f, &x_, inverse);                                                                                              \
            memcpy((out) + j_, &x_, sizeof x_);                                                   \
            v8u over_ = (v8u)(x_ >= limit_);                                                      \
            if (__builtin_reduce_or(over_))                                                                             \
                for (int l_ = 0; l_ < 8; l_++) { (scratch)[c_] = (uint32_t)(j_ + l_); c_ += over_[l_] & 1; } \
        }                                                                                         \
        for (; j_ < n_; j_++) {                                                                   \
            (out)[j_] = feistel1(f, (uint32_t)j_, inverse);                                       \
            (scratch)[c_] = (uint32_t)j_;                                                         \
            c_ += (out)[j_] >= n_;                                                                \
        }                                                                                         \
        while (c_ > 0) {                                                                          \
            size_t d_ = 0;                                                                        \
            for (size_t k_ = 0; k_ < c_; k_++) {                                                  \
                uint32_t i_ = (scratch)[k_];                                                      \
                uint32_t y_ = feistel1(f, (out)[i_], inverse);                                    \
                (out)[i_] = y_;                                                                   \
                (scratch)[d_] = i_;                                                               \
                d_ += y_ >= n_;                                                                   \
            }                                                                                     \
            c_ = d_;                                                                              \
        }                                                                                         \
    } while (0)

__attribute__((target("avx2"))) static void fill_avx2(const feistel *fp, uint32_t *out, int inverse, uint32_t *scratch) {
    const feistel local = *fp, *f = &local;  /* No aliasing with out: the keys stay in registers. */
    if (inverse) FILL_BODY(f, out, 1, scratch);
    else FILL_BODY(f, out, 0, scratch);
}
static void fill_generic(const feistel *fp, uint32_t *out, int inverse, uint32_t *scratch) {
    const feistel local = *fp, *f = &local;
    if (inverse) FILL_BODY(f, out, 1, scratch);
    else FILL_BODY(f, out, 0, scratch);
}

static int permutation_generic_flag = 0;
void qkd_cascade_permutation_force_generic(int on) {
    __atomic_store_n(&permutation_generic_flag, on ? 1 : 0, __ATOMIC_RELAXED);
}

static int has_avx2(void) {
    static int cached = -1;
    if (__atomic_load_n(&permutation_generic_flag, __ATOMIC_RELAXED)) return 0;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

int qkd_cascade_permutation(uint32_t *backward, uint32_t *forward, size_t n, uint64_t s[4]) {
    xoshiro g = { s[0], s[1], s[2], s[3] };
    if (n == 0) return 0;
    if (n > UINT32_MAX) return -1;
    feistel f;
    unsigned m = 2;
    while (m < 32 && ((uint64_t)1 << m) < n) m++;
    f.n = (uint32_t)n;
    f.lowBits = m / 2;
    f.lowMask = ((uint32_t)1 << f.lowBits) - 1;
    f.lowShift = 32 - f.lowBits;
    f.highShift = 32 - (m - f.lowBits);
    for (int r = 0; r < QKD_FEISTEL_ROUNDS; r++) {
        uint64_t u = xnext(&g);
        f.key[r] = (uint32_t)u;
        f.mul[r] = (uint32_t)(u >> 32) | 1;
    }
    uint32_t *scratch = qkd_cascade_alloc(n * sizeof(uint32_t));
    if (!scratch) return -1;
    if (has_avx2()) {
        fill_avx2(&f, forward, 0, scratch);
        fill_avx2(&f, backward, 1, scratch);
    } else {
        fill_generic(&f, forward, 0, scratch);
        fill_generic(&f, backward, 1, scratch);
    }
    qkd_cascade_free(scratch, n * sizeof(uint32_t));
    s[0] = g.s0; s[1] = g.s1; s[2] = g.s2; s[3] = g.s3;
    return 0;
}

void qkd_cascade_gather(uint64_t *out, const uint64_t *key, const uint32_t *backward, size_t n) {
    size_t j = 0;
    for (; j + 64 <= n; j += 64) {
        uint64_t acc = 0;
        const uint32_t *b = backward + j;
        for (int t = 0; t < 64; t++) {
            uint32_t src = b[t];
            acc |= ((key[src >> 6] >> (src & 63)) & 1) << t;
        }
        out[j >> 6] = acc;
    }
    if (j < n) {
        uint64_t acc = 0;
        for (size_t t = 0; j + t < n; t++) {
            uint32_t src = backward[j + t];
            acc |= ((key[src >> 6] >> (src & 63)) & 1) << t;
        }
        out[j >> 6] = acc;
    }
}
