/* Cascade's per-step bookkeeping (Spec/postprocessing.md sections 5.2 and 5.3): the open
 * searches, the per-block odd flags, the sub-block parity cache, the corrected-bit map, and the
 * step itself (apply replies, settle, compact) plus the parities of a step's queries. See
 * include/qkd_cascade_kernels.h for the contract.
 *
 * This is a port of the Swift CascadeEngine's loops, operation for operation: the order in which
 * searches are walked, opened and dropped decides the queries, and CascadeTranscriptTests pins
 * the bitmaps both sides exchange. Everything held here is public (block odd flags, error
 * parities, corrected positions all follow from the exchanged bitmaps); the key bits stay in the
 * caller's buffers, which this file reads (parities) and, for Bob, flips at positions given by
 * the public replies. No branch or address here depends on a key bit.
 */
#include "qkd_cascade_kernels.h"
#include "cascade_network.h"
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define QKD_HAVE_MMAP 1
#else
#define QKD_HAVE_MMAP 0
#endif

/* How many searches ahead the loops prefetch: each search's cache words and map entries sit at
 * random places in arrays larger than L2, and one search at a time would wait for each miss in
 * turn (tens of thousands per step). */
#define PREFETCH_DISTANCE 12

/* An open binary search (24 bytes: tens of thousands stay in L2). `node` is the heap index of
 * the current range in its block's bisection tree (root 1, children 2i and 2i + 1). */
typedef struct {
    int32_t pass, block;
    uint32_t lower, upper, node;
    uint32_t live;
} search_t;

typedef struct { uint32_t pass, block; } touched_t;

typedef struct {
    size_t size;        /* top-level block size k */
    size_t count;       /* blocks: ceil(n / k) */
    size_t offset;      /* index of block 0 in `blocks` */
    int shift;          /* log2 k if k is a power of two, else -1 */
    int cache_shift;    /* log2 of the node stride of one block in the parity cache */
    size_t rotation;    /* r_p (0 for pass 0) */
    uint64_t *plane;    /* pairs of words (known, error parity); NULL until a reply caches one */
    uint8_t plane_mapped; /* the plane came from mmap (see alloc_plane) */
    size_t plane_words; /* words of one half of the plane (the plane holds 2 * plane_words) */
    const uint64_t *half_mask; /* 2-block pass not built: bit x set iff forward[x] < k */
    uint8_t opened;     /* start_pass done */
    uint8_t built;      /* the caller holds the pass's key in its order */
    uint8_t known;      /* some sub-block parity of this pass is cached */
    uint8_t needs_build; /* a search is open and the pass is not built */
} pass_t;

typedef struct { size_t k; uint64_t *bits; } mask_t;

struct qkd_cascade_engine {
    size_t n;
    int bob;
    size_t passes;
    size_t started;     /* passes whose top-level replies were applied: flips reach these */
    pass_t *pass;
    size_t total_blocks;
    /* Per pass and block: bit 31 set if the block is known to hold an odd number of errors;
     * bits 0-30 its open search's index + 1, or 0. One word, so a flip touches one place per
     * pass (the two used to be separate arrays: two random misses). */
    uint32_t *blocks;
    search_t *searches;
    size_t nsearch, search_cap;
    /* The searches open when the step's replies were applied: settle's first walk over them
     * needs no cache descent (see settle). */
    size_t replied;
    /* The searches (indices, in list order) that the step's replies narrowed to one bit: the
     * only ones settle's first walk has anything to do for (see settle). */
    uint32_t *cand;
    size_t ncand;
    touched_t *touched;
    size_t ntouched, touched_cap;
    uint64_t *corrected;
    size_t corrected_words;
    const uint32_t *forward; /* borrowed (the caller keeps it alive); NULL before pass 1 */
    qkd_cascade_network network; /* for the backward entries (key_bit) */
    mask_t *masks;      /* one per distinct block size of 2-block passes; at most `passes` */
    size_t nmasks;
    size_t corrections;
};

/* The parity cache of a pass of at most two blocks (blocks of n/2: 2^(log2 k + 2) nodes) is
 * large and almost empty: a few searches touch a few pages. Fresh anonymous pages are zero and
 * cost only when touched; calloc would take such a block from the heap and clear all of it.
 * Dense planes (many blocks, most of them searched) come from calloc. */
#define SPARSE_PLANE_BYTES ((size_t)256 << 10)

static int alloc_plane(pass_t *P) {
    size_t bytes = 2 * P->plane_words * sizeof(uint64_t);
#if QKD_HAVE_MMAP
    if (P->count <= 2 && bytes >= SPARSE_PLANE_BYTES) {
        void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return -1;
        P->plane = m;
        P->plane_mapped = 1;
        return 0;
    }
#endif
    P->plane = calloc(2 * P->plane_words, sizeof(uint64_t));
    P->plane_mapped = 0;
    return P->plane ? 0 : -1;
}

static void free_plane(pass_t *P) {
    if (!P->plane) return;
#if QKD_HAVE_MMAP
    if (P->plane_mapped) {
        munmap(P->plane, 2 * P->plane_words * sizeof(uint64_t));
        P->plane = NULL;
        return;
    }
#endif
    free(P->plane);
    P->plane = NULL;
}

#define ODD ((uint32_t)1 << 31)
/* The open search of a block slot, or -1. */
static inline int64_t slot_search(uint32_t v) { return (int64_t)(v & ~ODD) - 1; }
static inline void slot_set_search(uint32_t *v, size_t i) { *v = (*v & ODD) | (uint32_t)(i + 1); }
static inline void slot_clear_search(uint32_t *v) { *v &= ODD; }

static int stride_shift(size_t k) {
    return (k <= 1 ? 0 : 64 - __builtin_clzll((unsigned long long)(k - 1))) + 1;
}

qkd_cascade_engine *qkd_cascade_engine_create(size_t n, int bob, const size_t *block_sizes, size_t passes) {
    if (passes == 0 || passes > 127 || n >= ((size_t)1 << 31)) return NULL;
    qkd_cascade_engine *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->n = n;
    e->bob = bob ? 1 : 0;
    e->passes = passes;
    e->pass = calloc(passes, sizeof *e->pass);
    e->masks = calloc(passes, sizeof *e->masks);
    if (!e->pass || !e->masks) goto fail;
    size_t total = 0;
    for (size_t p = 0; p < passes; p++) {
        pass_t *P = &e->pass[p];
        size_t k = block_sizes[p] ? block_sizes[p] : 1;
        P->size = k;
        P->count = (n + k - 1) / k;
        P->offset = total;
        P->shift = (k & (k - 1)) == 0 ? __builtin_ctzll((unsigned long long)k) : -1;
        P->cache_shift = stride_shift(k);
        total += P->count;
    }
    e->total_blocks = total;
    e->blocks = calloc(total ? total : 1, sizeof(uint32_t));
    e->corrected_words = (n + 63) >> 6;
    e->corrected = calloc(e->corrected_words ? e->corrected_words : 1, sizeof(uint64_t));
    e->search_cap = 256;
    e->searches = malloc(e->search_cap * sizeof(search_t));
    e->cand = malloc(e->search_cap * sizeof(uint32_t));
    e->touched_cap = 256;
    e->touched = malloc(e->touched_cap * sizeof(touched_t));
    if (!e->blocks || !e->corrected || !e->searches || !e->cand || !e->touched) goto fail;
    return e;
fail:
    qkd_cascade_engine_free(e);
    return NULL;
}

void qkd_cascade_engine_free(qkd_cascade_engine *e) {
    if (!e) return;
    if (e->pass) for (size_t p = 0; p < e->passes; p++) free_plane(&e->pass[p]);
    if (e->masks) for (size_t i = 0; i < e->nmasks; i++) free(e->masks[i].bits);
    free(e->pass);
    free(e->masks);
    free(e->blocks);
    free(e->corrected);
    free(e->searches);
    free(e->cand);
    free(e->touched);
    free(e);
}

static void *dup_bytes(const void *src, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (p && bytes) memcpy(p, src, bytes);
    return p;
}

qkd_cascade_engine *qkd_cascade_engine_clone(const qkd_cascade_engine *s) {
    qkd_cascade_engine *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    *e = *s;
    e->pass = NULL; e->masks = NULL; e->blocks = NULL;
    e->searches = NULL; e->cand = NULL; e->touched = NULL; e->corrected = NULL;
    e->pass = dup_bytes(s->pass, s->passes * sizeof *s->pass);
    e->masks = calloc(s->passes, sizeof *s->masks);
    if (!e->pass || !e->masks) { free(e->pass); free(e->masks); free(e); return NULL; }
    for (size_t p = 0; p < s->passes; p++) { e->pass[p].plane = NULL; e->pass[p].half_mask = NULL; }
    e->nmasks = 0;
    for (size_t i = 0; i < s->nmasks; i++) {
        e->masks[i].k = s->masks[i].k;
        e->masks[i].bits = dup_bytes(s->masks[i].bits, ((s->n + 63) >> 6) * sizeof(uint64_t));
        e->nmasks = i + 1;
        if (!e->masks[i].bits) goto fail;
    }
    for (size_t p = 0; p < s->passes; p++) {
        const pass_t *S = &s->pass[p];
        pass_t *P = &e->pass[p];
        if (S->plane) {
            P->plane = dup_bytes(S->plane, 2 * S->plane_words * sizeof(uint64_t));
            P->plane_mapped = 0;
            if (!P->plane) goto fail;
        }
        for (size_t i = 0; i < s->nmasks; i++) {
            if (S->half_mask == s->masks[i].bits) P->half_mask = e->masks[i].bits;
        }
    }
    e->blocks = dup_bytes(s->blocks, (s->total_blocks ? s->total_blocks : 1) * sizeof(uint32_t));
    e->corrected = dup_bytes(s->corrected, (s->corrected_words ? s->corrected_words : 1) * sizeof(uint64_t));
    e->searches = dup_bytes(s->searches, s->search_cap * sizeof(search_t));
    e->cand = dup_bytes(s->cand, s->search_cap * sizeof(uint32_t));
    e->touched = dup_bytes(s->touched, s->touched_cap * sizeof(touched_t));
    if (!e->blocks || !e->corrected || !e->searches || !e->cand || !e->touched) goto fail;
    return e;
fail:
    qkd_cascade_engine_free(e);
    return NULL;
}

void qkd_cascade_engine_set_permutation(qkd_cascade_engine *e, const uint32_t *forward, const qkd_cascade_network *network) {
    e->forward = forward;
    e->network = *network;
}

int qkd_cascade_engine_start_pass(qkd_cascade_engine *e, size_t pass, size_t rotation) {
    if (pass >= e->passes || e->pass[pass].opened) return -2;
    pass_t *P = &e->pass[pass];
    P->rotation = rotation;
    P->built = pass == 0;
    size_t bits = P->count << P->cache_shift;
    P->plane_words = (bits + 63) >> 6;
    if (P->plane_words == 0) P->plane_words = 1;
    if (pass > 0 && P->count == 2 && e->forward) {
        const uint64_t *mask = NULL;
        for (size_t i = 0; i < e->nmasks; i++) if (e->masks[i].k == P->size) mask = e->masks[i].bits;
        if (!mask) {
            uint64_t *bits = malloc(((e->n + 63) >> 6) * sizeof(uint64_t));
            if (!bits) return -1;
            /* Bit x: rotated key bit x lands in block 0, forward[x] < k (k < n: two blocks). */
            qkd_cascade_mask_below(bits, e->forward, e->n, (uint32_t)P->size);
            e->masks[e->nmasks].k = P->size;
            e->masks[e->nmasks].bits = bits;
            e->nmasks++;
            mask = bits;
        }
        P->half_mask = mask;
    }
    P->opened = 1;
    return 0;
}

int qkd_cascade_engine_needs_build(const qkd_cascade_engine *e, size_t pass) {
    return pass < e->passes && e->pass[pass].needs_build;
}

void qkd_cascade_engine_mark_built(qkd_cascade_engine *e, size_t pass) {
    if (pass >= e->passes) return;
    e->pass[pass].built = 1;
    e->pass[pass].needs_build = 0;
}

size_t qkd_cascade_engine_search_count(const qkd_cascade_engine *e) { return e->nsearch; }
size_t qkd_cascade_engine_started(const qkd_cascade_engine *e) { return e->started; }
size_t qkd_cascade_engine_corrections(const qkd_cascade_engine *e) { return e->corrections; }

/* Parity (0 or 1) of bits [lower, upper) of w, lower < upper. */
static inline uint64_t range_parity(const uint64_t *w, size_t lower, size_t upper) {
    size_t first = lower >> 6, last = (upper - 1) >> 6;
    uint64_t low = ~(uint64_t)0 << (lower & 63);
    uint64_t high = ~(uint64_t)0 >> (63 - ((upper - 1) & 63));
    if (first == last) return (uint64_t)__builtin_parityll(w[first] & low & high);
    uint64_t acc = (w[first] & low) ^ (w[last] & high);
    for (size_t i = first + 1; i < last; i++) acc ^= w[i];
    return (uint64_t)__builtin_parityll(acc);
}

/* len (1..64) bits of src from bit off; off + len <= the bits src holds. */
static inline uint64_t load_bits(const uint64_t *src, size_t off, size_t len) {
    size_t sh = off & 63;
    uint64_t v = src[off >> 6] >> sh;
    if (sh != 0 && sh + len > 64) v |= src[(off >> 6) + 1] << (64 - sh);
    return len < 64 ? v & (((uint64_t)1 << len) - 1) : v;
}

uint64_t qkd_cascade_engine_half_parities(const qkd_cascade_engine *e, size_t pass, const uint64_t *key) {
    const pass_t *P = &e->pass[pass];
    size_t n = e->n, words = (n + 63) >> 6, r = P->rotation;
    uint64_t all = 0, first = 0;
    for (size_t i = 0; i < words; i++) all ^= key[i];
    uint64_t pa = (uint64_t)__builtin_parityll(all);
    if (P->count <= 1 || !P->half_mask) return pa;
    /* Word i of the rotated key: bit x is key bit (x + r) mod n. No copy of the key is made. */
    const uint64_t *m = P->half_mask;
    for (size_t i = 0; i < words; i++) {
        size_t x0 = i << 6, len = n - x0 < 64 ? n - x0 : 64, s = x0 + r;
        uint64_t v;
        if (s >= n) {
            v = load_bits(key, s - n, len);
        } else if (s + len <= n) {
            v = load_bits(key, s, len);
        } else {
            size_t a = n - s;
            v = load_bits(key, s, a) | (load_bits(key, 0, len - a) << a);
        }
        first ^= v & m[i];
    }
    uint64_t p0 = (uint64_t)__builtin_parityll(first);
    return p0 | ((p0 ^ pa) << 1);
}

void qkd_cascade_engine_top_parities(const qkd_cascade_engine *e, size_t pass, const uint64_t *key, uint64_t *out) {
    const pass_t *P = &e->pass[pass];
    size_t n = e->n, k = P->size;
    memset(out, 0, ((P->count + 63) >> 6) * sizeof(uint64_t));
    if (P->shift >= 0 && P->shift <= 6) {
        /* Blocks of k = 2^s <= 64 bits tile the words: fold each word so that bit j k holds the
         * parity of bits [j k, j k + k), then pick those bits (64 / k per word, never straddling
         * an output word). Bits past n are zero, so the short last block needs nothing more. */
        size_t words = (n + 63) >> 6, per = (size_t)64 >> P->shift;
        for (size_t i = 0; i < words; i++) {
            uint64_t x = key[i];
            for (size_t t = 1; t < k; t <<= 1) x ^= x >> t;
            uint64_t bits = 0;
            for (size_t j = 0; j < per; j++) bits |= ((x >> (j * k)) & 1) << j;
            size_t b = i * per;
            if (b < P->count) out[b >> 6] |= bits << (b & 63);
        }
        if (P->count & 63) out[P->count >> 6] &= ((uint64_t)1 << (P->count & 63)) - 1;
        return;
    }
    for (size_t b = 0; b < P->count; b++) {
        size_t hi = (b + 1) * k < n ? (b + 1) * k : n;
        out[b >> 6] |= range_parity(key, b * k, hi) << (b & 63);
    }
}

int qkd_cascade_engine_bisect_parities(const qkd_cascade_engine *e, const uint64_t *const *keys, uint64_t *out) {
    size_t count = e->nsearch;
    const search_t *sp = e->searches;
    for (size_t p = 0; p < e->passes; p++) {
        if (e->pass[p].opened && e->pass[p].needs_build) return -2;
    }
    memset(out, 0, ((count + 63) >> 6) * sizeof(uint64_t));
    for (size_t i = 0; i < count; i++) {
        if (i + PREFETCH_DISTANCE < count) {
            const search_t *t = &sp[i + PREFETCH_DISTANCE];
            const uint64_t *k = keys[t->pass];
            if (k) qkd_cascade_prefetch(k + (t->lower >> 6));
        }
        const search_t *s = &sp[i];
        const uint64_t *k = keys[s->pass];
        if (!k) return -2;
        size_t mid = s->lower + (s->upper - s->lower) / 2;
        uint64_t parity = s->lower < mid ? range_parity(k, s->lower, mid) : 0;
        out[i >> 6] |= parity << (i & 63);
    }
    return 0;
}

/* ---- the step ---- */

static inline uint64_t *cache_words(const pass_t *P, size_t index) { return P->plane + 2 * (index >> 6); }

static inline size_t cache_base(const pass_t *P, size_t block) { return block << P->cache_shift; }

/* The reply bits and the error positions are random: the steps below are written without
 * branches on them (a mispredicted branch per search per step cost more than the work). */
static inline void cache_set(const pass_t *P, size_t index, int value) {
    uint64_t *w = cache_words(P, index), m = (uint64_t)1 << (index & 63);
    w[0] |= m;
    w[1] = (w[1] & ~m) | (m & (0 - (uint64_t)(value != 0)));
}

static inline void descend(search_t *s, int left_odd) {
    uint32_t lo = s->lower, hi = s->upper, mid = lo + (hi - lo) / 2;
    uint32_t right = (uint32_t)(left_odd == 0), mask = 0u - right;
    s->lower = (lo & ~mask) | (mid & mask);
    s->upper = (mid & ~mask) | (hi & mask);
    s->node = 2 * s->node + right;
}

static inline size_t block_of(const pass_t *P, size_t position) {
    return P->shift >= 0 ? position >> P->shift : position / P->size;
}

/* The key bit at `position` of started pass p: backward[position] by the inverse network. */
static inline size_t key_bit(const qkd_cascade_engine *e, size_t p, size_t position) {
    if (p == 0 || !e->forward) return position;
    size_t i = (size_t)network_backward(&e->network, (uint32_t)position) + e->pass[p].rotation;
    return i >= e->n ? i - e->n : i;
}

/* The rotated index x of key bit `bit` in pass p: its position is forward[x]. */
static inline size_t rotated_index(const qkd_cascade_engine *e, size_t p, size_t bit) {
    size_t r = e->pass[p].rotation;
    return bit >= r ? bit - r : bit + e->n - r;
}

static int open_search(qkd_cascade_engine *e, size_t p, size_t b, size_t lower, size_t upper) {
    if (e->nsearch == e->search_cap) {
        size_t cap = e->search_cap * 2;
        search_t *grown = realloc(e->searches, cap * sizeof(search_t));
        if (!grown) return -1;
        e->searches = grown;
        uint32_t *cand = realloc(e->cand, cap * sizeof(uint32_t));
        if (!cand) return -1;
        e->cand = cand;
        e->search_cap = cap;
    }

    pass_t *P = &e->pass[p];
    slot_set_search(&e->blocks[P->offset + b], e->nsearch);
    e->searches[e->nsearch++] = (search_t){ (int32_t)p, (int32_t)b, (uint32_t)lower, (uint32_t)upper, 1, 1 };
    if (!P->built) P->needs_build = 1;
    return 0;
}

/* Moves search s down its block's tree while the left half's error parity is cached. */
static inline void advance_from_cache(const qkd_cascade_engine *e, search_t *s) {
    const pass_t *P = &e->pass[s->pass];
    if (!P->known) return;
    size_t base = cache_base(P, (size_t)s->block);
    while (s->upper - s->lower > 1) {
        size_t index = base + 2 * (size_t)s->node;
        const uint64_t *w = cache_words(P, index);
        uint64_t m = (uint64_t)1 << (index & 63);
        if (!(w[0] & m)) break;
        descend(s, (w[1] & m) != 0);
    }
}

/* Toggles the cached error parity of every cached sub-block of block b of pass P that contains
 * `position`; cached sub-blocks form paths from the root, so the walk stops at the first one
 * not cached. */
static inline void toggle_known(const qkd_cascade_engine *e, const pass_t *P, size_t b, size_t position) {
    if (!P->known) return;
    size_t k = P->size, lower = b * k, upper = (b + 1) * k < e->n ? (b + 1) * k : e->n, node = 1;
    size_t base = cache_base(P, b);
    while (upper - lower > 1) {
        size_t mid = lower + (upper - lower) / 2;
        size_t right = (size_t)(position >= mid), mask = (size_t)0 - right;
        lower = (lower & ~mask) | (mid & mask);
        upper = (mid & ~mask) | (upper & mask);
        node = 2 * node + right;
        size_t index = base + node;
        uint64_t *w = cache_words(P, index), m = (uint64_t)1 << (index & 63);
        if (!(w[0] & m)) return;
        w[1] ^= m;
    }
}

#define NO_POSITION ((size_t)-1)

/* Flips key bit `bit` (Bob's built pass keys; Alice mirrors the bookkeeping) and toggles the
 * error parity of its block in every started pass. */
static int flip(qkd_cascade_engine *e, size_t bit, uint64_t *const *keys) {
    size_t started = e->started;
    size_t pos[128], blk[128];
    e->corrections++;
    if (e->ntouched + started > e->touched_cap) {
        size_t cap = e->touched_cap * 2;
        while (cap < e->ntouched + started) cap *= 2;
        touched_t *grown = realloc(e->touched, cap * sizeof(touched_t));
        if (!grown) return -1;
        e->touched = grown;
        e->touched_cap = cap;
    }
    /* First find every pass's block and ask for its words at once (independent misses
     * overlap), then update. A pass of two blocks not built yet (most late passes) finds the
     * block in the half mask (n bits, near the core) instead of the 4n-byte forward map; its
     * position is needed only if the block has a search or the pass has cached parities. */
    for (size_t p = 0; p < started; p++) {
        const pass_t *P = &e->pass[p];
        size_t position, b;
        if (p == 0 || !e->forward) {
            position = bit;
            b = block_of(P, position);
        } else if (P->built || !(P->count == 1 || (P->count == 2 && P->half_mask))) {
            position = e->forward[rotated_index(e, p, bit)];
            b = block_of(P, position);
        } else {
            size_t x = rotated_index(e, p, bit);
            b = P->count == 1 ? 0 : (size_t)(((P->half_mask[x >> 6] >> (x & 63)) & 1) ^ 1);
            position = (P->known || slot_search(e->blocks[P->offset + b]) >= 0) ? e->forward[x] : NO_POSITION;
        }
        pos[p] = position;
        blk[p] = b;
        if (P->built && keys && keys[p]) qkd_cascade_prefetch(keys[p] + (position >> 6));
        if (P->known) qkd_cascade_prefetch(cache_words(P, cache_base(P, b) + 2));
        qkd_cascade_prefetch(e->blocks + P->offset + b);
    }
    for (size_t p = 0; p < started; p++) {
        const pass_t *P = &e->pass[p];
        size_t position = pos[p], b = blk[p], flat = P->offset + b;
        if (e->bob && P->built && keys && keys[p]) keys[p][position >> 6] ^= (uint64_t)1 << (position & 63);
        uint32_t *slot = &e->blocks[flat];
        *slot ^= ODD;
        if (position != NO_POSITION) toggle_known(e, P, b, position);
        int64_t si = slot_search(*slot);
        if (si >= 0) {
            search_t *s = &e->searches[si];
            if (s->live && position >= s->lower && position < s->upper) {
                s->live = 0;  /* Its range now holds an even number of errors. */
                slot_clear_search(slot);
            }
        }
        e->touched[e->ntouched++] = (touched_t){ (uint32_t)p, (uint32_t)b };
    }
    return 0;
}

/* The settle loop's prefetch pipeline. A search that ends on one bit makes a chain of
 * dependent misses: its cache nodes (to descend), then (after the key bit under its last
 * position, computed with the inverse network: no load) per started pass the forward map entry
 * (to find the bit's position), and from that the pass key word, the cache words of its block
 * and the block's search slot. Each stage runs a few searches ahead of the next, so that the
 * loads of one stage find the data the previous one asked for. The stages only predict (a
 * search may still be ended by an earlier flip): they read and prefetch, never write the
 * engine; resolve takes the key bit from the ring when the prediction holds. */
#define STAGE_NODES 12   /* the search's next cache node */
#define STAGE_DESCEND 9  /* descend on a copy through cached nodes */
#define STAGE_BIT 6      /* the key bit: its corrected word, forward entries, pass 0's words */
#define STAGE_PASSES 3   /* positions in the built passes: key words, cache words, slots */
#define RING 16

typedef struct { size_t bit; uint32_t pass, lower; uint8_t state; } peek_t; /* 0 none, 1 lower, 2 bit */

static inline void prefetch_nodes(const qkd_cascade_engine *e, size_t i) {
    if (i < e->replied) return;  /* It will not descend (see settle). */
    const search_t *t = &e->searches[i];
    if (!t->live || t->upper - t->lower == 1) return;
    const pass_t *P = &e->pass[t->pass];
    if (P->known) qkd_cascade_prefetch(cache_words(P, cache_base(P, (size_t)t->block) + 2 * (size_t)t->node));
}

/* The cache words a flip at `position` of block b of pass P walks: the root's pair and the
 * deepest level's pair (the levels between lie in between: pairs grow with the depth). */
static inline void prefetch_block(const qkd_cascade_engine *e, const pass_t *P, size_t b, size_t position,
                                  uint64_t *const *keys, size_t p) {
    if (P->built && keys && keys[p]) qkd_cascade_prefetch(keys[p] + (position >> 6));
    if (P->known) {
        size_t base = cache_base(P, b);
        qkd_cascade_prefetch(cache_words(P, base + 2));
        size_t leaf = base + ((size_t)1 << (P->cache_shift - 1)) + (position - b * P->size);
        if (P->cache_shift > 6) qkd_cascade_prefetch(cache_words(P, leaf));
    }
    qkd_cascade_prefetch(e->blocks + P->offset + b);
}

static inline void stage_descend(const qkd_cascade_engine *e, size_t i, peek_t *k) {
    k->state = 0;
    const search_t *t = &e->searches[i];
    if (!t->live) return;
    search_t copy = *t;
    if (i >= e->replied) advance_from_cache(e, &copy);
    if (copy.upper - copy.lower != 1) return;
    k->pass = (uint32_t)copy.pass;
    k->lower = copy.lower;
    k->state = 1;
}

static inline void stage_bit(const qkd_cascade_engine *e, peek_t *k, uint64_t *const *keys) {
    if (k->state != 1) return;
    size_t bit = key_bit(e, k->pass, k->lower);
    k->bit = bit;
    k->state = 2;
    qkd_cascade_prefetch(e->corrected + (bit >> 6));
    if (e->started > 0) {
        const pass_t *P = &e->pass[0];
        prefetch_block(e, P, block_of(P, bit), bit, keys, 0);
    }
    if (!e->forward) return;
    for (size_t p = 1; p < e->started; p++) {
        const pass_t *P = &e->pass[p];
        size_t x = rotated_index(e, p, bit);
        if (P->built || !(P->count == 1 || (P->count == 2 && P->half_mask))) qkd_cascade_prefetch(e->forward + x);
        else if (P->count == 2) qkd_cascade_prefetch(P->half_mask + (x >> 6));
    }
}

static inline void stage_passes(const qkd_cascade_engine *e, const peek_t *k, uint64_t *const *keys) {
    if (k->state != 2 || !e->forward) return;
    for (size_t p = 1; p < e->started; p++) {
        const pass_t *P = &e->pass[p];
        if (!(P->built || !(P->count == 1 || (P->count == 2 && P->half_mask)))) continue;
        size_t position = e->forward[rotated_index(e, p, k->bit)];
        prefetch_block(e, P, block_of(P, position), position, keys, p);
    }
}

/* Ends search s, which has narrowed to one bit: that bit is an error. `k` is the search's ring
 * slot: if its stages predicted this position, its key bit is already computed (the bit
 * depends on the pass and the position alone). */
static inline int resolve(qkd_cascade_engine *e, search_t *s, const peek_t *k, uint64_t *const *keys,
                          size_t *bad_bit) {
    s->live = 0;
    size_t p = (size_t)s->pass;
    slot_clear_search(&e->blocks[e->pass[p].offset + (size_t)s->block]);
    size_t bit = k->state == 2 && k->pass == p && k->lower == s->lower ? k->bit : key_bit(e, p, s->lower);
    /* Honest replies make every correction fix a real error, so no bit is flipped twice; a
     * second flip means the peer's parities contradict each other. */
    uint64_t m = (uint64_t)1 << (bit & 63);
    if (e->corrected[bit >> 6] & m) {
        *bad_bit = bit;
        return QKD_CASCADE_CORRECTED_TWICE;
    }
    e->corrected[bit >> 6] |= m;
    return flip(e, bit, keys) != 0 ? -1 : 0;
}

#define SLOT(c) (&ring[(c) & (RING - 1)])

/* Resolves every search that has narrowed to one bit, flips that bit, and opens searches on
 * blocks that became odd, until nothing changes (Spec/postprocessing.md section 5.3).
 *
 * The protocol walks the whole list in order. In the first walk only the searches the replies
 * narrowed to one bit (`cand`) act: a search that has just had its reply cannot descend
 * through the cache (it sat at node P because P's left child was not cached, the reply took it
 * to a child C of P, and any earlier search through C would have cached P's children; a new
 * pass has no cache; flips never add entries), and flips only end searches, which they find
 * through the block slots. So the first walk visits `cand` alone, in the same order; searches
 * opened during settle are walked in full. */
static int settle(qkd_cascade_engine *e, uint64_t *const *keys, size_t *bad_bit) {
    peek_t ring[RING];
    size_t nc = e->ncand;
    const uint32_t *cand = e->cand;
    for (size_t c = 0; c < nc && c < STAGE_DESCEND; c++) stage_descend(e, cand[c], SLOT(c));
    for (size_t c = 0; c < nc && c < STAGE_BIT; c++) stage_bit(e, SLOT(c), keys);
    for (size_t c = 0; c < nc && c < STAGE_PASSES; c++) stage_passes(e, SLOT(c), keys);
    for (size_t c = 0; c < nc; c++) {
        if (c + STAGE_DESCEND < nc) stage_descend(e, cand[c + STAGE_DESCEND], SLOT(c + STAGE_DESCEND));
        if (c + STAGE_BIT < nc) stage_bit(e, SLOT(c + STAGE_BIT), keys);
        if (c + STAGE_PASSES < nc) stage_passes(e, SLOT(c + STAGE_PASSES), keys);
        search_t *s = &e->searches[cand[c]];
        if (s->live && s->upper - s->lower == 1) {
            int status = resolve(e, s, SLOT(c), keys, bad_bit);
            if (status != 0) return status;
        }
    }
    size_t index = e->nsearch;
    for (;;) {
        /* Searches before `index` need no second look: cache entries are only added when
         * replies are applied, and a flip toggles only nodes containing the flipped bit, which
         * ends every search whose range holds it. So only the searches opened now can move. */
        size_t first_new = e->nsearch;
        int opened = 0;
        for (size_t t = 0; t < e->ntouched; t++) {
            size_t p = e->touched[t].pass, b = e->touched[t].block;
            const pass_t *P = &e->pass[p];
            size_t flat = P->offset + b;
            if ((e->blocks[flat] & ODD) && slot_search(e->blocks[flat]) < 0) {
                size_t k = P->size, hi = (b + 1) * k < e->n ? (b + 1) * k : e->n;
                if (open_search(e, p, b, b * k, hi) != 0) return -1;
                opened = 1;
            }
        }
        e->ntouched = 0;
        if (!opened) return 0;
        index = first_new;
        /* Prime the pipeline for the first searches of this walk. */
        for (size_t i = index; i < e->nsearch && i < index + STAGE_DESCEND; i++) stage_descend(e, i, SLOT(i));
        for (size_t i = index; i < e->nsearch && i < index + STAGE_BIT; i++) stage_bit(e, SLOT(i), keys);
        for (size_t i = index; i < e->nsearch && i < index + STAGE_PASSES; i++) stage_passes(e, SLOT(i), keys);
        while (index < e->nsearch) {
            size_t ns = e->nsearch;
            if (index + STAGE_NODES < ns) prefetch_nodes(e, index + STAGE_NODES);
            if (index + STAGE_DESCEND < ns) stage_descend(e, index + STAGE_DESCEND, SLOT(index + STAGE_DESCEND));
            if (index + STAGE_BIT < ns) stage_bit(e, SLOT(index + STAGE_BIT), keys);
            if (index + STAGE_PASSES < ns) stage_passes(e, SLOT(index + STAGE_PASSES), keys);
            search_t *s = &e->searches[index];
            if (s->live) advance_from_cache(e, s);
            if (s->live && s->upper - s->lower == 1) {
                int status = resolve(e, s, SLOT(index), keys, bad_bit);
                if (status != 0) return status;
            }
            index++;
        }
    }
}

/* Drops ended searches, keeping the order, and points block slots at the moved ones (a live
 * search's entry already holds its index). */
static void compact(qkd_cascade_engine *e) {
    size_t kept = 0;
    search_t *sp = e->searches;
    for (size_t i = 0; i < e->nsearch; i++) {
        if (!sp[i].live) continue;
        if (kept != i) {
            sp[kept] = sp[i];
            slot_set_search(&e->blocks[e->pass[sp[i].pass].offset + (size_t)sp[i].block], kept);
        }
        kept++;
    }
    e->nsearch = kept;
}

int qkd_cascade_engine_apply(qkd_cascade_engine *e, long new_pass, const uint64_t *replies, size_t count,
                             uint64_t *const *keys, size_t *bad_bit) {
    e->ncand = 0;
    if (new_pass >= 0) {
        size_t p = (size_t)new_pass;
        if (p >= e->passes || !e->pass[p].opened || p != e->started || e->nsearch != 0) return -2;
        pass_t *P = &e->pass[p];
        if (count != P->count) return QKD_CASCADE_WRONG_COUNT;
        size_t k = P->size;
        for (size_t w = 0; w < (count + 63) >> 6; w++) {
            /* The odd blocks in order, by their set bits (no branch per block). */
            for (uint64_t x = replies[w]; x; x &= x - 1) {
                size_t b = (w << 6) + (size_t)__builtin_ctzll(x);
                if (b >= count) break;
                e->blocks[P->offset + b] |= ODD;
                size_t hi = (b + 1) * k < e->n ? (b + 1) * k : e->n;
                if (open_search(e, p, b, b * k, hi) != 0) return -1;
                if (hi - b * k == 1) e->cand[e->ncand++] = (uint32_t)(e->nsearch - 1);
            }
        }
        /* The next pass starts only when this one's searches are done. */
        e->started = p + 1;
    } else {
        if (count != e->nsearch) return QKD_CASCADE_WRONG_COUNT;
        search_t *sp = e->searches;
        for (size_t i = 0; i < count; i++) {
            if (i + PREFETCH_DISTANCE < count) {
                const search_t *t = &sp[i + PREFETCH_DISTANCE];
                const pass_t *T = &e->pass[t->pass];
                if (T->plane) qkd_cascade_prefetch(cache_words(T, cache_base(T, (size_t)t->block) + 2 * (size_t)t->node));
            }
            search_t *s = &sp[i];
            pass_t *P = &e->pass[s->pass];
            /* The search's range holds an odd number of errors, so the right half's error
             * parity is the complement of the left half's: both are now known. */
            size_t left = cache_base(P, (size_t)s->block) + 2 * (size_t)s->node;
            int left_odd = (int)((replies[i >> 6] >> (i & 63)) & 1);
            if (!P->known) {
                /* The plane is made when the pass's first parity is cached: most late passes
                 * never see a search. */
                if (alloc_plane(P) != 0) return -1;
                P->known = 1;
            }
            cache_set(P, left, left_odd);
            cache_set(P, left + 1, !left_odd);
            descend(s, left_odd);
            if (s->upper - s->lower == 1) e->cand[e->ncand++] = (uint32_t)i;
        }
    }
    e->replied = e->nsearch;
    int status = settle(e, keys, bad_bit);
    if (status != 0) return status;
    compact(e);
    return 0;
}
