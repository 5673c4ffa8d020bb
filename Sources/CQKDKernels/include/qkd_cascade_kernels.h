#ifndef QKD_CASCADE_KERNELS_H
#define QKD_CASCADE_KERNELS_H
/*
 * Cascade kernels for QKDChannel (Spec/postprocessing.md section 5). The permutation is public
 * data; the gather reads key bits but neither branches nor indexes memory on them (addresses
 * come from the public permutation only).
 *
 * Bit order: bit i of a bit string is bit (i & 63) of word (i >> 6): the Swift BitVector layout.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The round's permutation of 0..<n (Spec/postprocessing.md section 5.2) drawn by the
 * Rao-Sandelius method from xoshiro256** with state s[0..3] (advanced in place): with
 * n >= 2^16, 256 buckets, the bucket of index i being byte (i & 7) of stream word i >> 3; else
 * one bucket. Buckets are concatenated in index order and each is shuffled by Fisher-Yates,
 * j = floor(u (i + 1) / 2^64) for i = c - 1 down to 1. backward[j] = the index at position j,
 * forward[i] = the position of index i (n words each). n < 2^32.
 * Returns 0, or -1 if scratch memory ran out (outputs and state then undefined). */
int qkd_cascade_permutation(uint32_t *backward, uint32_t *forward, size_t n, uint64_t s[4]);

/* Memory for the permutation's maps and scratch (public data only): for 1 MiB or more, 2 MiB
 * aligned and marked for transparent huge pages (madvise), so that a fresh multi-MB map costs a
 * few page faults instead of one per 4 KiB page and random lookups miss the TLB less; up to
 * 16 freed buffers of up to 16 MiB each, 64 MiB in all, are kept for reuse (process-wide,
 * locked), which saves the kernel's zeroing. Contents are not cleared. Release with qkd_cascade_free and the same size.
 * Returns NULL if memory ran out. */
void *qkd_cascade_alloc(size_t bytes);
void qkd_cascade_free(void *p, size_t bytes);

/* out[j >> 6] bit (j & 63) = bit backward[j] of key, for j < n: a pass's key in its order.
 * out holds ceil(n / 64) words and is fully written (bits past n cleared). */
void qkd_cascade_gather(uint64_t *out, const uint64_t *key, const uint32_t *backward, size_t n);

/* A software prefetch (read, keep in all levels): Cascade's bookkeeping walks searches in list
 * order while each one's data sits at a random place in a multi-MB map; asking for the data of
 * a search a few places ahead overlaps those misses. A hint only: never faults. */
static inline void qkd_cascade_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#ifdef __cplusplus
}
#endif
#endif
