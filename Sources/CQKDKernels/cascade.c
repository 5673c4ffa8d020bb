/* Cascade kernels: the Rao-Sandelius permutation and the per-pass gather. See
 * include/qkd_cascade_kernels.h and Spec/postprocessing.md section 5.2.
 *
 * The permutation is the same one the earlier Swift code drew (CascadeTranscriptTests pins the
 * exchanged bitmaps); this version writes one array fewer: the bucket ids are replayed from a
 * copy of the generator a second time for the forward map instead of storing every index's
 * pre-shuffle slot. */
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

static inline uint64_t mulhi(uint64_t a, uint64_t b) {
    return (uint64_t)(((unsigned __int128)a * b) >> 64);
}

/* Fisher-Yates on l[0..c), then the in-bucket composition: back[pos] = m[l[pos]] and
 * m[l[pos]] = base + pos (m becomes the inverse: slot -> position). */
static inline void shuffle_bucket(xoshiro *g, uint32_t *l, uint32_t *back, uint32_t *m, size_t c,
                                  uint32_t base) {
    /* The bucket's slice of m was written long ago (in L3 at best) and is read below in random
     * order: fetch it in order now, while the shuffle runs. */
    for (size_t k = 0; k < c; k += 16) __builtin_prefetch(m + k, 1, 3);
    for (size_t k = 0; k < c; k++) l[k] = (uint32_t)k;
    for (size_t i = c - 1; i > 0 && c > 1; i--) {
        size_t j = (size_t)mulhi(xnext(g), (uint64_t)i + 1);
        uint32_t t = l[i];
        l[i] = l[j];
        l[j] = t;
    }
    for (size_t pos = 0; pos < c; pos++) {
        uint32_t k = l[pos];
        back[pos] = m[k];
        m[k] = base + (uint32_t)pos;
    }
}

int qkd_cascade_permutation(uint32_t *backward, uint32_t *forward, size_t n, uint64_t s[4]) {
    xoshiro g = { s[0], s[1], s[2], s[3] };
    if (n == 0) return 0;
    if (n < (1u << 16)) {
        /* One bucket: m is the identity, so m can be forward itself. */
        uint32_t *l = malloc(n * sizeof(uint32_t));
        if (!l) return -1;
        for (size_t i = 0; i < n; i++) forward[i] = (uint32_t)i;
        shuffle_bucket(&g, l, backward, forward, n, 0);
        free(l);
        s[0] = g.s0; s[1] = g.s1; s[2] = g.s2; s[3] = g.s3;
        return 0;
    }
    size_t counts[256] = {0}, st[256];
    const xoshiro replay = g;
    /* Pass 1: bucket sizes. */
    {
        size_t i = 0;
        uint32_t c4[4][256];
        memset(c4, 0, sizeof c4);
        for (; i + 8 <= n; i += 8) {
            uint64_t r = xnext(&g);
            c4[0][r & 255]++; c4[1][(r >> 8) & 255]++; c4[2][(r >> 16) & 255]++; c4[3][(r >> 24) & 255]++;
            c4[0][(r >> 32) & 255]++; c4[1][(r >> 40) & 255]++; c4[2][(r >> 48) & 255]++; c4[3][r >> 56]++;
        }
        if (i < n) {
            uint64_t r = xnext(&g);
            for (; i < n; i++, r >>= 8) c4[0][r & 255]++;
        }
        for (int b = 0; b < 256; b++) counts[b] = (size_t)c4[0][b] + c4[1][b] + c4[2][b] + c4[3][b];
    }
    size_t maxCount = 0;
    st[0] = 0;
    for (int b = 0; b < 256; b++) {
        if (b > 0) st[b] = st[b - 1] + counts[b - 1];
        if (counts[b] > maxCount) maxCount = counts[b];
    }
    uint32_t *m = qkd_cascade_alloc(n * sizeof(uint32_t));
    uint32_t *l = malloc((maxCount ? maxCount : 1) * sizeof(uint32_t));
    if (!m || !l) { qkd_cascade_free(m, n * sizeof(uint32_t)); free(l); return -1; }
    /* Pass 2: each index into its bucket (256 sequential write streams). */
    {
        xoshiro ids = replay;
        size_t pos[256];
        memcpy(pos, st, sizeof pos);
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t r = xnext(&ids);
            for (int k = 0; k < 8; k++, r >>= 8) {
                /* 256 write streams are more than the hardware prefetcher follows. */
                size_t p = pos[r & 255]++;
                __builtin_prefetch(m + p + 32, 1, 3);
                m[p] = (uint32_t)(i + k);
            }
        }
        if (i < n) {
            uint64_t r = xnext(&ids);
            for (; i < n; i++, r >>= 8) m[pos[r & 255]++] = (uint32_t)i;
        }
    }
    /* Pass 3: shuffle each bucket (the generator continues after the count pass's words). */
    for (int b = 0; b < 256; b++) {
        shuffle_bucket(&g, l, backward + st[b], m + st[b], counts[b], (uint32_t)st[b]);
    }
    /* Pass 4: forward[i] = inverse[slot of i], replaying the bucket ids (256 read streams). */
    {
        xoshiro ids = replay;
        size_t pos[256];
        memcpy(pos, st, sizeof pos);
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t r = xnext(&ids);
            for (int k = 0; k < 8; k++, r >>= 8) {
                size_t p = pos[r & 255]++;
                __builtin_prefetch(m + p + 32, 0, 3);
                forward[i + k] = m[p];
            }
        }
        if (i < n) {
            uint64_t r = xnext(&ids);
            for (; i < n; i++, r >>= 8) forward[i] = m[pos[r & 255]++];
        }
    }
    free(l);
    qkd_cascade_free(m, n * sizeof(uint32_t));
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
