/* Cascade kernels: the round's permutation (a keyed Feistel network with cycle walking), the
 * per-pass scatter and the half masks. See include/qkd_cascade_kernels.h and
 * Spec/postprocessing.md section 5.2.
 *
 * The permutation is computed, not shuffled: index i's position is a short chain of arithmetic
 * on i alone, so the forward map is written in order, 8 lanes at a time (AVX2 where the CPU has
 * it), with no random memory access. The Rao-Sandelius shuffle it replaced (2026-11-27) made
 * four passes over multi-MB arrays and was a quarter of Cascade's time at 2^20 bits. The
 * backward map (position -> index) is not written at all (2026-11-28): the scatter and the half
 * masks read the forward map, and the engine computes the few backward entries it needs with
 * the inverse network (cascade_network.h), which saved the 4n-byte fill (1.6 ms at 2^20) and the
 * cache misses on it. */
#include "qkd_cascade_kernels.h"
#include "cascade_network.h"
#include "cpu_probe.h"
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

/* Freed huge buffers kept for the next permutation: a fresh one costs the kernel a page fault
 * and 2 MiB of zeroing per huge page (about a tenth of Cascade's time at 2^20 bits). Only
 * public data (permutation maps and scratch) goes through here, so nothing needs wiping. At most
 * QKD_POOL_SLOTS buffers of at most QKD_POOL_MAX bytes each, QKD_POOL_TOTAL bytes in all, are
 * kept: each live engine holds a map (two until the backward map went), and a node pair with
 * two rounds in flight in one process (the pipeline bench) has four engines, so four slots
 * kept missing. */
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

/* The round's permutation (Spec/postprocessing.md section 5.2): an 8-round Feistel network on
 * the mixed-radix domain 0..<2^L b, L = floor(m/2) with m = max(2, ceil(log2 n)), b =
 * ceil(n / 2^L), restricted to 0..<n by cycle walking (Black and Rogaway, "Ciphers with
 * arbitrary finite domains", CT-RSA 2002: apply the network until the value is below n; the
 * walks of a permutation of a larger domain restricted to 0..<n form a permutation of 0..<n,
 * and the inverse walks with the inverse network). The domain exceeds n by less than 2^L,
 * about sqrt(n), so almost no index walks (a power-of-two domain would make up to half of them
 * walk, just above a power of two). Round r's key and odd multiplier are the low and high
 * halves of the r-th xoshiro256** word. */
typedef qkd_cascade_network feistel;
typedef uint32_t v8u __attribute__((vector_size(32)));

FEISTEL_FN(feistel8, v8u)

/* out[j] = the walk of j (the network applied until the value is below n), for j < n. The
 * first loop applies the network once to 8 indices at a time; lanes that land at or above n
 * (fewer than 2^L of them, about sqrt(n): E is a bijection of 0..<2^L b, so at most 2^L b - n
 * indices can land at n or above) go on a list (index, value) in scratch (2 (2^L + 8) words),
 * which the second loop walks on, also 8 at a time, keeping the lanes still out of range.
 * Both loops are branch-free per lane: a lane's value is stored whether or not it is done (a
 * later step overwrites it), and the list grows by the comparison's result. PACK appends the
 * flagged lanes of two vectors to the list (8 entries written, the count returned); an
 * append at position c never passes the entries already read (c <= j, d <= k). */
#define FILL_BODY(f, out, scratch, PACK)                                                         \
    do {                                                                                          \
        const uint32_t n_ = (f)->n;                                                               \
        uint32_t *idx_ = (scratch), *val_ = (scratch) + (f)->lowMask + 1 + 8;                     \
        size_t j_ = 0, c_ = 0;                                                                    \
        const v8u lane_ = {0, 1, 2, 3, 4, 5, 6, 7};                                               \
        const v8u limit_ = {n_, n_, n_, n_, n_, n_, n_, n_};                                      \
        for (; j_ + 8 <= n_; j_ += 8) {                                                           \
            v8u x_ = lane_ + (uint32_t)j_;                                                        \
            feistel8(f, &x_, 0);                                                                  \
            memcpy((out) + j_, &x_, sizeof x_);                                                   \
            v8u over_ = (v8u)(x_ >= limit_);                                                      \
            if (__builtin_reduce_or(over_)) {                                                     \
                v8u i8_ = lane_ + (uint32_t)j_;                                                   \
                c_ += PACK(idx_ + c_, val_ + c_, i8_, x_, over_);                                 \
            }                                                                                     \
        }                                                                                         \
        for (; j_ < n_; j_++) {                                                                   \
            uint32_t y_ = feistel1(f, (uint32_t)j_, 0);                                           \
            (out)[j_] = y_;                                                                       \
            idx_[c_] = (uint32_t)j_;                                                              \
            val_[c_] = y_;                                                                        \
            c_ += y_ >= n_;                                                                       \
        }                                                                                         \
        while (c_ > 0) {                                                                          \
            size_t d_ = 0, k_ = 0;                                                                \
            for (; k_ + 8 <= c_; k_ += 8) {                                                       \
                v8u x_, i8_;                                                                      \
                memcpy(&x_, val_ + k_, sizeof x_);                                                \
                memcpy(&i8_, idx_ + k_, sizeof i8_);                                              \
                feistel8(f, &x_, 0);                                                              \
                v8u over_ = (v8u)(x_ >= limit_);                                                  \
                for (int l_ = 0; l_ < 8; l_++) (out)[i8_[l_]] = x_[l_];                           \
                d_ += PACK(idx_ + d_, val_ + d_, i8_, x_, over_);                                 \
            }                                                                                     \
            for (; k_ < c_; k_++) {                                                               \
                uint32_t i_ = idx_[k_], y_ = feistel1(f, val_[k_], 0);                            \
                (out)[i_] = y_;                                                                   \
                idx_[d_] = i_;                                                                    \
                val_[d_] = y_;                                                                    \
                d_ += y_ >= n_;                                                                   \
            }                                                                                     \
            c_ = d_;                                                                              \
        }                                                                                         \
    } while (0)

/* Appends the lanes of i8 and x whose mask lane is set to idx and val, in lane order (8
 * entries are written; the caller advances by the returned count). */
static inline __attribute__((always_inline)) size_t pack_generic(uint32_t *idx, uint32_t *val, const v8u *i8,
                                                                 const v8u *x, const v8u *mask) {
    size_t c = 0;
    for (int l = 0; l < 8; l++) {
        idx[c] = (*i8)[l];
        val[c] = (*x)[l];
        c += (*mask)[l] & 1;
    }
    return c;
}

#if defined(__x86_64__)
/* The same with AVX2: the mask's 8 sign bits pick a row of lane indices (left-packed), and
 * one permute per vector moves the kept lanes to the front. */
static uint64_t pack_table[256];
static pthread_once_t pack_once = PTHREAD_ONCE_INIT;
static void pack_table_init(void) {
    for (int m = 0; m < 256; m++) {
        uint64_t row = 0;
        int c = 0;
        for (int l = 0; l < 8; l++)
            if (m & (1 << l)) row |= (uint64_t)l << (8 * c++);
        pack_table[m] = row;
    }
}

__attribute__((target("avx2"))) static inline __attribute__((always_inline)) size_t
pack_avx2(uint32_t *idx, uint32_t *val, const v8u *i8, const v8u *x, const v8u *mask) {
    __m256i m = (__m256i)*mask;
    unsigned bits = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(m));
    __m256i order = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)pack_table[bits]));
    _mm256_storeu_si256((__m256i *)idx, _mm256_permutevar8x32_epi32((__m256i)*i8, order));
    _mm256_storeu_si256((__m256i *)val, _mm256_permutevar8x32_epi32((__m256i)*x, order));
    return (size_t)__builtin_popcount(bits);
}

#endif

#define PACK_GENERIC(idx, val, i8, x, mask) pack_generic(idx, val, &(i8), &(x), &(mask))

#if defined(__x86_64__)
#define PACK_AVX2(idx, val, i8, x, mask) pack_avx2(idx, val, &(i8), &(x), &(mask))

__attribute__((target("avx2"))) static void fill_avx2(const feistel *fp, uint32_t *out, uint32_t *scratch) {
    const feistel local = *fp, *f = &local;  /* No aliasing with out: the keys stay in registers. */
    FILL_BODY(f, out, scratch, PACK_AVX2);
}
#endif

static void fill_generic(const feistel *fp, uint32_t *out, uint32_t *scratch) {
    const feistel local = *fp, *f = &local;
    FILL_BODY(f, out, scratch, PACK_GENERIC);
}

static int cascade_generic_flag = 0;
void qkd_cascade_force_generic(int on) {
    __atomic_store_n(&cascade_generic_flag, on ? 1 : 0, __ATOMIC_RELAXED);
}

#if defined(__x86_64__)
static int avx2_cache = -1;
static int probe_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
static int has_avx2(void) {
    if (__atomic_load_n(&cascade_generic_flag, __ATOMIC_RELAXED)) return 0;
    return qkd_cached_probe(&avx2_cache, probe_avx2);
}
#endif

int qkd_cascade_permutation(uint32_t *forward, size_t n, uint64_t s[4], qkd_cascade_network *network) {
    xoshiro g = { s[0], s[1], s[2], s[3] };
    memset(network, 0, sizeof *network);
    if (n == 0) return 0;
    if (n > UINT32_MAX) return -1;
    feistel f;
    unsigned m = 2;
    while (m < 32 && ((uint64_t)1 << m) < n) m++;
    f.n = (uint32_t)n;
    f.lowBits = m / 2;
    f.lowMask = ((uint32_t)1 << f.lowBits) - 1;
    f.lowShift = 32 - f.lowBits;
    f.highCount = (uint32_t)((n + f.lowMask) >> f.lowBits);  /* b = ceil(n / 2^L) >= 1 */
    unsigned h = 1;
    while (((uint64_t)1 << h) < f.highCount) h++;             /* H = max(1, ceil(log2 b)) */
    f.highShift = 32 - h;
    for (int r = 0; r < QKD_CASCADE_ROUNDS; r++) {
        uint64_t u = xnext(&g);
        f.key[r] = (uint32_t)u;
        f.mul[r] = (uint32_t)(u >> 32) | 1;
    }
    /* The walk lists: fewer than 2^L entries each (see FILL_BODY), plus the 8 a PACK writes. */
    const size_t list = (size_t)f.lowMask + 1 + 8;
    uint32_t *scratch = malloc(2 * list * sizeof(uint32_t));
    if (!scratch) return -1;
#if defined(__x86_64__)
    if (has_avx2()) {
        pthread_once(&pack_once, pack_table_init);
        fill_avx2(&f, forward, scratch);
    } else
#endif
    {
        fill_generic(&f, forward, scratch);
    }
    free(scratch);
    *network = f;
    s[0] = g.s0; s[1] = g.s1; s[2] = g.s2; s[3] = g.s3;
    return 0;
}

uint32_t qkd_cascade_backward(const qkd_cascade_network *network, uint32_t j) {
    return network_backward(network, j);
}

/* A bit lands anywhere in the 128 KiB output (at 2^20 bits), which stays in L2; the forward map
 * and the key are read in order. There is no AVX2 scatter, so this takes about 1.4 times as
 * long as the AVX2 gather through the backward map it replaced (C harness: 0.9-1.2 against
 * 0.65-1.1 ms at 2^20 bits), but that map cost 1.5-1.6 ms to write per round, more than the
 * two or three builds of a round lose here. */
void qkd_cascade_scatter(uint64_t *out, const uint64_t *key, const uint32_t *forward, size_t n) {
    memset(out, 0, ((n + 63) >> 6) * sizeof(uint64_t));
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint64_t bits = key[i >> 6];
        const uint32_t *f = forward + i;
        for (int t = 0; t < 64; t++) {
            uint32_t x = f[t];
            out[x >> 6] |= ((bits >> t) & 1) << (x & 63);
        }
    }
    for (; i < n; i++) {
        uint32_t x = forward[i];
        out[x >> 6] |= ((key[i >> 6] >> (i & 63)) & 1) << (x & 63);
    }
}

static void mask_below_generic(uint64_t *out, const uint32_t *forward, size_t n, uint32_t k) {
    memset(out, 0, ((n + 63) >> 6) * sizeof(uint64_t));
    for (size_t x = 0; x < n; x++) out[x >> 6] |= (uint64_t)(forward[x] < k) << (x & 63);
}

#if defined(__x86_64__)
/* 8 entries per step: x < k as max(x, k - 1) == k - 1 (AVX2 has no unsigned compare), the 8
 * lanes' results as the sign bits of one movemask. */
__attribute__((target("avx2"))) static void mask_below_avx2(uint64_t *out, const uint32_t *forward, size_t n, uint32_t k) {
    if (k == 0) {
        memset(out, 0, ((n + 63) >> 6) * sizeof(uint64_t));
        return;
    }
    const __m256i top = _mm256_set1_epi32((int)(k - 1));
    size_t x = 0;
    for (; x + 64 <= n; x += 64) {
        uint64_t acc = 0;
        for (int t = 0; t < 64; t += 8) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(forward + x + t));
            __m256i below = _mm256_cmpeq_epi32(_mm256_max_epu32(v, top), top);
            acc |= (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(below)) << t;
        }
        out[x >> 6] = acc;
    }
    if (x < n) mask_below_generic(out + (x >> 6), forward + x, n - x, k);
}
#endif

void qkd_cascade_mask_below(uint64_t *out, const uint32_t *forward, size_t n, uint32_t k) {
#if defined(__x86_64__)
    if (has_avx2()) {
        mask_below_avx2(out, forward, n, k);
        return;
    }
#endif
    mask_below_generic(out, forward, n, k);
}
