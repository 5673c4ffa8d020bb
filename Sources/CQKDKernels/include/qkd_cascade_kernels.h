#ifndef QKD_CASCADE_KERNELS_H
#define QKD_CASCADE_KERNELS_H
/*
 * Cascade kernels for QKDChannel (Spec/postprocessing.md section 5). The permutation is public
 * data; the scatter reads key bits but neither branches nor indexes memory on them (addresses
 * come from the public permutation only).
 *
 * Bit order: bit i of a bit string is bit (i & 63) of word (i >> 6): the Swift BitVector layout.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The keyed network of a round's permutation (public data), as qkd_cascade_permutation derives
 * it: round keys and odd multipliers, n, and the split of a word into lo (lowBits = L bits,
 * lowMask = 2^L - 1) and hi (< highCount = b), with the hash shifts 32 - L and 32 - H. Enough
 * to compute any entry of either map on its own. */
#define QKD_CASCADE_ROUNDS 8
typedef struct {
    uint32_t key[QKD_CASCADE_ROUNDS], mul[QKD_CASCADE_ROUNDS];
    uint32_t n, lowMask, highCount;
    uint32_t lowBits, lowShift, highShift;
} qkd_cascade_network;

/* The round's permutation of 0..<n (Spec/postprocessing.md section 5.2): eight words u_0..u_7 of
 * xoshiro256** with state s[0..3] (advanced in place by those eight words) key an 8-round Feistel
 * network E on 0..<2^L b, where m = max(2, ceil(log2 n)), L = floor(m/2), b = ceil(n / 2^L),
 * H = max(1, ceil(log2 b)); a word x is lo = x mod 2^L, hi = floor(x / 2^L). Round r (key
 * k = u_r mod 2^32, multiplier c = (u_r >> 32) | 1, products mod 2^32) does, for even r,
 * t = ((lo ^ k) c) >> (32 - H), t = t mod b, hi = (hi + t) mod b; for odd r,
 * lo ^= ((hi ^ k) c) >> (32 - L). forward[i] = E applied to i, repeatedly until the value is
 * below n (cycle walking): n words. *network receives the network (for qkd_cascade_backward).
 * n < 2^32. Returns 0, or -1 if scratch memory ran out or n >= 2^32 (outputs then undefined). */
int qkd_cascade_permutation(uint32_t *forward, size_t n, uint64_t s[4], qkd_cascade_network *network);

/* backward[j] for j < n: E's inverse (rounds in reverse order, hi = (hi - t) mod b) applied until
 * the value is below n, so that backward[forward[i]] = i. No map is kept for it: the engine needs
 * a few tens of thousands of entries per round at 2^20 bits, and computing one (8-14 ns) costs
 * less than writing all n of them (1.5 ms at 2^20) and missing the cache on the few read. */
uint32_t qkd_cascade_backward(const qkd_cascade_network *network, uint32_t j);

/* Tests: nonzero makes qkd_cascade_permutation and qkd_cascade_mask_below use their portable
 * loops even where AVX2 is available (the same results; process-wide). */
void qkd_cascade_force_generic(int on);

/* Memory for the permutation's map and scratch (public data only): for 1 MiB or more, 2 MiB
 * aligned and marked for transparent huge pages (madvise), so that a fresh multi-MB map costs a
 * few page faults instead of one per 4 KiB page and random lookups miss the TLB less; up to
 * 16 freed buffers of up to 16 MiB each, 64 MiB in all, are kept for reuse (process-wide,
 * locked), which saves the kernel's zeroing. Contents are not cleared. Release with qkd_cascade_free and the same size.
 * Returns NULL if memory ran out. */
void *qkd_cascade_alloc(size_t bytes);
void qkd_cascade_free(void *p, size_t bytes);

/* out bit forward[i] = bit i of key, for i < n: a pass's key in its order (position j holds key
 * bit backward[j]). out holds ceil(n / 64) words and is fully written (bits past n cleared). */
void qkd_cascade_scatter(uint64_t *out, const uint64_t *key, const uint32_t *forward, size_t n);

/* out bit x = 1 iff forward[x] < k, for x < n: the half mask of a two-block pass (the rotated key
 * bits that land in block 0). out holds ceil(n / 64) words, fully written (bits past n cleared). */
void qkd_cascade_mask_below(uint64_t *out, const uint32_t *forward, size_t n, uint32_t k);

/* A software prefetch (read, keep in all levels): Cascade's bookkeeping walks searches in list
 * order while each one's data sits at a random place in a multi-MB map; asking for the data of
 * a search a few places ahead overlaps those misses. A hint only: never faults. */
static inline void qkd_cascade_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

/* ---- Cascade's per-step bookkeeping (cascade_step.c; Spec/postprocessing.md 5.2, 5.3) ----
 *
 * One engine per side: the open binary searches (in list order), per pass and block whether it
 * is known to hold an odd number of errors, the sub-block error-parity cache, the bits corrected
 * so far. All of it is public (it follows from the exchanged bitmaps). The key bits stay in the
 * caller's buffers: `keys[p]` is this side's key in pass p's order (NULL for a pass the caller
 * has not built), read for parities and, for Bob, flipped in place by a step. The permutation's
 * forward map is borrowed: the caller keeps it alive as long as the engine (and its clones).
 *
 * Status codes: 0 success; QKD_CASCADE_CORRECTED_TWICE (a bit would be corrected a second time:
 * the peer's parities contradict each other; *bad_bit says which); QKD_CASCADE_WRONG_COUNT; -1
 * out of memory; -2 misuse (wrong order of calls). After a nonzero status the engine is only
 * fit to be freed. */
#define QKD_CASCADE_CORRECTED_TWICE 1
#define QKD_CASCADE_WRONG_COUNT 2

typedef struct qkd_cascade_engine qkd_cascade_engine;

/* n < 2^31 bits; 1 to 127 passes with top-level block sizes block_sizes[p] >= 1; bob != 0 for
 * the side whose key the corrections flip. NULL if memory ran out or the arguments are out of
 * range. */
qkd_cascade_engine *qkd_cascade_engine_create(size_t n, int bob, const size_t *block_sizes, size_t passes);
/* A deep copy (the forward map stays shared: it is read only). NULL if memory ran out. */
qkd_cascade_engine *qkd_cascade_engine_clone(const qkd_cascade_engine *e);
void qkd_cascade_engine_free(qkd_cascade_engine *e);
/* The round's permutation (its forward map, n entries, and its network, copied), before pass 1
 * starts. */
void qkd_cascade_engine_set_permutation(qkd_cascade_engine *e, const uint32_t *forward, const qkd_cascade_network *network);
/* Starts pass `pass` (in order, pass 0 first) with rotation r_p (0 for pass 0). Pass 0 counts as
 * built; a later pass is built once the caller calls mark_built. A pass >= 1 of two blocks gets
 * its half mask (bit x set iff forward[x] < k). 0, -1 (memory) or -2 (misuse). */
int qkd_cascade_engine_start_pass(qkd_cascade_engine *e, size_t pass, size_t rotation);
/* 1 if a search is open in `pass` and the caller has not built its key yet. */
int qkd_cascade_engine_needs_build(const qkd_cascade_engine *e, size_t pass);
void qkd_cascade_engine_mark_built(qkd_cascade_engine *e, size_t pass);
size_t qkd_cascade_engine_search_count(const qkd_cascade_engine *e);
/* Passes whose top-level replies were applied. */
size_t qkd_cascade_engine_started(const qkd_cascade_engine *e);
/* Bits corrected (Bob) or mirrored as corrected (Alice). */
size_t qkd_cascade_engine_corrections(const qkd_cascade_engine *e);
/* The top-level parities of a started pass of at most two blocks from the key in pass 0 order
 * (no copy of the key is made): bit 0 block 0, bit 1 block 1. */
uint64_t qkd_cascade_engine_half_parities(const qkd_cascade_engine *e, size_t pass, const uint64_t *key);
/* The top-level parities of a started pass from its key in pass order: ceil(count / 64) words. */
void qkd_cascade_engine_top_parities(const qkd_cascade_engine *e, size_t pass, const uint64_t *key, uint64_t *out);
/* The parity of the left half of every open search, in list order: ceil(searches / 64) words.
 * Every pass with a search must be built (keys[p] non-NULL). 0 or -2. */
int qkd_cascade_engine_bisect_parities(const qkd_cascade_engine *e, const uint64_t *const *keys, uint64_t *out);
/* Applies one step's replies (`count` bits) and settles: new_pass >= 0 for the top-level
 * replies of that pass, -1 for bisection replies. Then resolves searches, flips, back-tracks
 * and compacts the search list. Status as above. */
int qkd_cascade_engine_apply(qkd_cascade_engine *e, long new_pass, const uint64_t *replies, size_t count,
                             uint64_t *const *keys, size_t *bad_bit);

#ifdef __cplusplus
}
#endif
#endif
