#ifndef QKD_SIFT_KERNELS_H
#define QKD_SIFT_KERNELS_H
/*
 * Sifting kernels for QKDChannel (Spec/postprocessing.md sections 2.3, 2.4 and 3): the
 * Golomb-Rice coder of detection positions and the word-level basis comparison of both roles.
 *
 * Bit order: bit i of a bit string is bit (i & 63) of word (i >> 6), words ascending (the Swift
 * BitVector layout; on a little-endian host also the LSB-first byte layout of the wire bitmaps).
 *
 * The sifting loops compress bits under a mask; with BMI2 (and a fast PEXT, i.e. not AMD Zen 1/2
 * where PEXT is microcoded) they use PEXT, otherwise a portable loop. The choice is made once at
 * run time; qkd_sift_force_portable(1) selects the portable path so tests can check both.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes of qkd_rice_decode. */
#define QKD_RICE_OK 0           /* decoded */
#define QKD_RICE_TRUNCATED 1    /* the stream ends inside a code */
#define QKD_RICE_OUT_OF_RANGE 2 /* a slot is not below the slot count */
#define QKD_RICE_LEFTOVER 3     /* bits are left after the last code */

/* Upper bound, in 64-bit words, of the output of qkd_rice_encode for `count` strictly
 * increasing slots whose last is `last`: count (r + 1) + (last + 1) >> r bits, plus two words
 * of slack (the encoder stores a whole word ahead). */
size_t qkd_rice_encode_capacity(size_t count, uint64_t last, unsigned r);

/* Golomb-Rice encodes the gaps of `count` slots (section 2.3): g = s[i] - s[i-1] - 1 with
 * s[-1] = -1, written as g >> r one bits, a zero bit, then the low r bits of g, least
 * significant first. r <= 62, every slot below 2^62. out holds `capacity` words (at least
 * qkd_rice_encode_capacity); bits past the returned length are zero in the words written
 * (ceil(bits / 64) of them).
 * Returns the stream length in bits, or SIZE_MAX if a slot is not above the one before it or
 * capacity is too small (nothing sensible was written). */
size_t qkd_rice_encode(const uint64_t *slots, size_t count, unsigned r, uint64_t *out, size_t capacity);

/* Decodes exactly `count` slots from the `total_bits`-bit stream in `words` (ceil(total_bits /
 * 64) words, bits past total_bits zero), checking that every slot is below slot_count
 * (<= 2^62), that no code runs past the end, and that no bits are left over. r <= 62.
 * out receives `count` slots. Reads nothing outside words[0 .. ceil(total_bits / 64)).
 * Returns a QKD_RICE_* status; *bad_slot receives the offending slot for OUT_OF_RANGE. */
int qkd_rice_decode(const uint64_t *words, uint64_t total_bits, size_t count, unsigned r,
                    uint64_t slot_count, uint64_t *out, uint64_t *bad_slot);

/* qkd_rice_decode with Alice's sifting (qkd_sift_alice) fused in: the decoded slots go
 * straight into the gather of her basis and bit and are not stored. Accepts exactly the streams
 * qkd_rice_decode accepts and returns the same status; on QKD_RICE_OK, matches, key, test and
 * the counts are what qkd_sift_alice gives for the decoded slots, otherwise they are unspecified
 * (the caller drops them; key and test may hold Alice's bits). *bad_slot as qkd_rice_decode.
 * Buffer sizes as qkd_sift_alice with d = count; bob_bases holds ceil(count / 64) words. */
int qkd_rice_decode_sift_alice(const uint64_t *words, uint64_t total_bits, size_t count, unsigned r,
                               uint64_t slot_count, const uint64_t *alice_bases, const uint64_t *alice_bits,
                               const uint64_t *bob_bases, uint64_t *matches, uint64_t *key, size_t *key_count,
                               uint64_t *test, size_t *test_count, uint64_t *bad_slot);
/* Alice's side of sifting (section 3.1): for detection i at slot pos[i], gathers her basis and
 * bit, sets matches bit i if her basis equals bob_bases bit i, appends her bit to key (matched
 * Z, basis 0) or test (matched X, basis 1), in detection order.
 * alice_bases and alice_bits hold ceil(slot_count / 64) words; a pos[i] >= slot_count stops the
 * loop before it is read (returns -1, outputs unspecified). matches holds ceil(d / 64) words
 * (bits past d cleared); key and test hold ceil(d / 64) + 1 words each. Writes the key and test
 * bit counts and returns 0. */
int qkd_sift_alice(const uint64_t *pos, size_t d, uint64_t slot_count, const uint64_t *alice_bases,
                   const uint64_t *alice_bits, const uint64_t *bob_bases, uint64_t *matches, uint64_t *key,
                   size_t *key_count, uint64_t *test, size_t *test_count);

/* Bob's side of sifting (section 3.2): over `words` words of the match bitmap, his bases and
 * his bits (bits past the detection count zero in matches), appends bits[i] to key where
 * matched and Z (basis 0), to test where matched and X. key and test hold words + 1 words. */
void qkd_sift_bob(const uint64_t *matches, const uint64_t *bases, const uint64_t *bits, size_t words,
                  uint64_t *key, size_t *key_count, uint64_t *test, size_t *test_count);

/* The bits of value at the one bits of mask, packed towards bit 0 (PEXT), by the dispatched
 * path; exposed for tests. */
uint64_t qkd_sift_compress(uint64_t value, uint64_t mask);

/* 1: the sifting loops use PEXT (BMI2 present and fast). */
int qkd_sift_uses_pext(void);

/* Nonzero: force the portable path (tests); 0: back to run-time detection. */
void qkd_sift_force_portable(int on);

/* Nonzero: code r = 0 streams a code at a time like every other parameter (tests compare the
 * word-at-a-time path against it); 0: the word-at-a-time path (default). */
void qkd_rice_force_generic(int on);

#ifdef __cplusplus
}
#endif
#endif
