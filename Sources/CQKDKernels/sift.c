/*
 * Sifting kernels (Spec/postprocessing.md sections 2.3, 2.4 and 3): Golomb-Rice coding of the
 * detection positions and the word-level basis comparison of Alice and Bob.
 *
 * Each kernel body is an always-inline function instantiated twice: once for the baseline
 * x86-64 (or any other) target, once with BMI1/BMI2/POPCNT enabled (TZCNT, SHRX, PEXT,
 * POPCNT). The choice is made once at run time. PEXT is microcoded on AMD family 17h (Zen 1 and
 * 2, about 18 uops per bit of the mask), so there the BMI2 path is not taken.
 */
#include "qkd_sift_kernels.h"
#include "cpu_probe.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define QKD_SIFT_X86 1
#define QKD_BMI_TARGET __attribute__((target("bmi,bmi2,popcnt")))
#else
#define QKD_SIFT_X86 0
#define QKD_BMI_TARGET
#endif

#define QKD_INLINE static inline __attribute__((always_inline))

/* -1: not probed yet; 0 or 1 afterwards (relaxed atomics: every thread computes the same). */
static int pext_cache = -1;
static int force_portable_flag = 0;

static int probe_pext(void) {
#if QKD_SIFT_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("bmi2") || !__builtin_cpu_supports("popcnt")) return 0;
    if (__builtin_cpu_is("amdfam17h")) return 0; /* microcoded PEXT (Zen 1/2) */
    return 1;
#else
    return 0;
#endif
}

int qkd_sift_uses_pext(void) {
    if (__atomic_load_n(&force_portable_flag, __ATOMIC_RELAXED)) return 0;
    return qkd_cached_probe(&pext_cache, probe_pext);
}

void qkd_sift_force_portable(int on) { __atomic_store_n(&force_portable_flag, on ? 1 : 0, __ATOMIC_RELAXED); }

/* Trailing zeros, 64 for x = 0 (TZCNT semantics; one instruction where BMI1 is enabled). */
QKD_INLINE unsigned ctz64(uint64_t x) { return x ? (unsigned)__builtin_ctzll(x) : 64u; }

/* ---- compress (PEXT) ---- */

/* The software PEXT: a dense mask has its zero bits removed from the highest down, a sparse one
 * has its one bits gathered from the lowest up; either way a few operations per bit of the
 * rarer kind. */
QKD_INLINE uint64_t compress_portable(uint64_t value, uint64_t mask) {
    if (__builtin_popcountll(mask) >= 32) {
        uint64_t v = value & mask;
        uint64_t holes = ~mask;
        while (holes) {
            unsigned h = 63u - (unsigned)__builtin_clzll(holes);
            holes &= ~(1ull << h);
            uint64_t low = (1ull << h) - 1; /* bits below the hole stay */
            v = (v & low) | ((v >> 1) & ~low);
        }
        return v;
    }
    uint64_t v = 0;
    unsigned k = 0;
    while (mask) {
        unsigned j = (unsigned)__builtin_ctzll(mask);
        mask &= mask - 1;
        v |= ((value >> j) & 1) << k;
        k++;
    }
    return v;
}

#if QKD_SIFT_X86
QKD_BMI_TARGET static uint64_t compress_pext(uint64_t value, uint64_t mask) { return _pext_u64(value, mask); }
#endif

uint64_t qkd_sift_compress(uint64_t value, uint64_t mask) {
#if QKD_SIFT_X86
    if (qkd_sift_uses_pext()) return compress_pext(value, mask);
#endif
    return compress_portable(value, mask);
}

/* ---- bit packer: appends up to 64 bits at a time, one store per 64 bits ---- */

typedef struct {
    uint64_t *out;
    size_t stored;
    uint64_t acc;
    unsigned used; /* 0..63 */
} packer;

/* Appends the low `width` bits of v (0 <= width <= 64; bits at and above width zero). */
QKD_INLINE void packer_put(packer *p, uint64_t v, unsigned width) {
    p->acc |= v << p->used;
    unsigned f = p->used + width;
    if (f >= 64) {
        p->out[p->stored++] = p->acc;
        /* v >> (64 - used), as two shifts so that used = 0 gives 0. */
        p->acc = (v >> 1) >> (63 - p->used);
        f -= 64;
    }
    p->used = f;
}

QKD_INLINE size_t packer_finish(packer *p) {
    if (p->used) p->out[p->stored] = p->acc;
    return p->stored * 64 + p->used;
}

/* ---- Rice encoder ---- */

size_t qkd_rice_encode_capacity(size_t count, uint64_t last, unsigned r) {
    if (count == 0) return 1;
    uint64_t bits = (uint64_t)count * (r + 1) + ((last + 1) >> r);
    return (size_t)(bits / 64) + 3;
}

QKD_INLINE size_t rice_encode_body(const uint64_t *slots, size_t count, unsigned r, uint64_t *out, size_t capacity) {
    if (count == 0) return 0;
    uint64_t last = slots[count - 1];
    if (r > 62 || last >= (1ull << 62) || capacity < qkd_rice_encode_capacity(count, last, r)) return SIZE_MAX;
    const uint64_t low_mask = (1ull << r) - 1;
    uint64_t *o = out;
    uint64_t acc = 0;
    unsigned used = 0;
    uint64_t previous = 0; /* slot[i-1] + 1 */
    /* Stores the accumulator after every code (o always has room: the capacity is the bound of
     * the stream plus slack), and advances o when it filled up: no branch on the fill level.
     * width <= 63, so used + width <= 126. */
#define QKD_PUT(code, width)                                                                        \
    do {                                                                                           \
        uint64_t c_ = (code);                                                                      \
        unsigned f_ = used + (width);                                                              \
        acc |= c_ << used;                                                                         \
        *o = acc;                                                                                  \
        uint64_t spill_ = f_ >> 6;                                                                 \
        o += spill_;                                                                               \
        uint64_t carry_ = (c_ >> 1) >> (63 - used);                                                \
        acc = spill_ ? carry_ : acc;                                                               \
        used = f_ & 63;                                                                            \
    } while (0)
    for (size_t i = 0; i < count; i++) {
        uint64_t s = slots[i];
        /* Every slot up to `last` and above the previous one: then the gaps sum to at most
         * last + 1 and the stream stays within the capacity checked above. */
        if (__builtin_expect(s < previous || s > last, 0)) return SIZE_MAX;
        uint64_t gap = s - previous;
        previous = s + 1;
        uint64_t q = gap >> r;
        if (__builtin_expect(q < 63 - r, 1)) {
            /* One write of q + 1 + r <= 63 bits: q ones, a zero, the low r bits. */
            uint64_t code = ((1ull << q) - 1) | ((gap & low_mask) << (q + 1));
            QKD_PUT(code, (unsigned)q + 1 + r);
        } else {
            while (q >= 63) {
                QKD_PUT(~0ull >> 1, 63);
                q -= 63;
            }
            QKD_PUT((1ull << q) - 1, (unsigned)q + 1); /* q ones and a zero, q <= 62 */
            if (r) QKD_PUT(gap & low_mask, r);
        }
    }
#undef QKD_PUT
    /* The last partial word (zeros above `used`): after a spill its bits are not stored yet. */
    if (used) *o = acc;
    return (size_t)(o - out) * 64 + used;
}

static size_t rice_encode_generic(const uint64_t *s, size_t n, unsigned r, uint64_t *out, size_t cap) {
    return rice_encode_body(s, n, r, out, cap);
}
#if QKD_SIFT_X86
QKD_BMI_TARGET static size_t rice_encode_bmi(const uint64_t *s, size_t n, unsigned r, uint64_t *out, size_t cap) {
    return rice_encode_body(s, n, r, out, cap);
}
#endif

/* BMI1/BMI2 present (TZCNT, SHRX); independent of the PEXT speed question. */
static int bmi_cache = -1;
static int probe_bmi(void) {
#if QKD_SIFT_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
#else
    return 0;
#endif
}
static int uses_bmi(void) {
    if (__atomic_load_n(&force_portable_flag, __ATOMIC_RELAXED)) return 0;
    return qkd_cached_probe(&bmi_cache, probe_bmi);
}

/* ---- r = 0: the stream is the complement of the slot bitmap ----
 * With r = 0 a code is g one bits and a zero, so stream bit t is 0 exactly when slot t was
 * detected, up to the last detection (t = s[count-1]). The encoder parameter of section 2.3 is
 * 0 when detections are dense (D/N > ln 2 / 2, about 0.35), and both directions then work a
 * word at a time instead of a code at a time: the same stream, about three times faster. */
static int rice_generic_flag = 0;
void qkd_rice_force_generic(int on) { __atomic_store_n(&rice_generic_flag, on ? 1 : 0, __ATOMIC_RELAXED); }
static int rice_unary_fast(void) { return !__atomic_load_n(&rice_generic_flag, __ATOMIC_RELAXED); }

static size_t rice_encode_unary(const uint64_t *slots, size_t count, uint64_t *out, size_t capacity) {
    if (count == 0) return 0;
    uint64_t last = slots[count - 1];
    if (last >= (1ull << 62) || capacity < qkd_rice_encode_capacity(count, last, 0)) return SIZE_MAX;
    size_t cur = 0;          /* the word being built */
    uint64_t acc = ~0ull;    /* ones: slots without a detection */
    uint64_t previous = 0;   /* slot[i-1] + 1 */
    for (size_t i = 0; i < count; i++) {
        uint64_t s = slots[i];
        /* As the generic encoder: each slot above the one before it and at most `last`, so the
         * writes stay below word (last >> 6) < capacity. */
        if (__builtin_expect(s < previous || s > last, 0)) return SIZE_MAX;
        previous = s + 1;
        size_t w = (size_t)(s >> 6);
        while (cur < w) {
            out[cur++] = acc;
            acc = ~0ull;
        }
        acc &= ~(1ull << (s & 63));
    }
    uint64_t total = last + 1;
    if (total & 63) acc &= (1ull << (total & 63)) - 1; /* zeros past the stream */
    out[cur] = acc;
    return (size_t)total;
}

/* ---- where a decoder puts the slots ----
 * Either into an array (qkd_rice_decode), or straight into Alice's sifting
 * (qkd_rice_decode_sift_alice): each slot's basis and bit are gathered as it is decoded, so the
 * slots are never written out and read back. At 2^24 slots and p = 0.08 that array is 10 MB
 * (about 2.3 ms of memory traffic here, against 3-4 ms of decoding); in a C harness, best of 20,
 * the fused kernel took 5-8% less time than decoding then sifting at p = 0.08 and 15-25% less
 * at p = 0.4, where the gather is most of the work. The decoders are
 * always-inline bodies instantiated per sink (`sift` is a constant), so the array path is the
 * plain store it always was. */
typedef uint64_t (*compress_fn)(uint64_t value, uint64_t mask);

typedef struct {
    uint64_t *out;                               /* the slots (array sink) */
    const uint64_t *alice_bases, *alice_bits;    /* ceil(slot_count / 64) words each */
    const uint64_t *bob_bases;                   /* ceil(count / 64) words */
    size_t slot_words;
    uint64_t *matches;
    packer key, test;
    uint64_t ab, at; /* Alice's basis and bit at the current word's detections */
} slot_sink;

/* The 64 detections of word w (valid: which of them exist) are gathered: compare the bases,
 * append the matched key and test bits (qkd_sift_alice and the one-pass decoder). */
QKD_INLINE void sink_flush(slot_sink *k, size_t w, uint64_t valid, compress_fn compress) {
    uint64_t match = ~(k->ab ^ k->bob_bases[w]) & valid;
    uint64_t z = match & ~k->ab, x = match & k->ab;
    packer_put(&k->key, compress(k->at, z), (unsigned)__builtin_popcountll(z));
    packer_put(&k->test, compress(k->at, x), (unsigned)__builtin_popcountll(x));
    k->matches[w] = match;
    k->ab = 0;
    k->at = 0;
}

/* Detection i is at `slot`. The batch loop of rice_decode_body checks its slots against the
 * slot count after the batch, so an out-of-range slot can arrive here: its gather reads word 0
 * instead (no read outside Alice's arrays), and the decoder then fails the stream, whose
 * outputs the caller drops. */
QKD_INLINE void sink_put(slot_sink *k, int sift, size_t i, uint64_t slot, compress_fn compress) {
    if (!sift) {
        k->out[i] = slot;
        return;
    }
    size_t sw = (size_t)(slot >> 6);
    sw = sw < k->slot_words ? sw : 0;
    unsigned sh = (unsigned)(slot & 63), j = (unsigned)(i & 63);
    k->ab |= ((k->alice_bases[sw] >> sh) & 1) << j;
    k->at |= ((k->alice_bits[sw] >> sh) & 1) << j;
    if (j == 63) sink_flush(k, i >> 6, ~0ull, compress);
}

QKD_INLINE int rice_decode_unary_body(const uint64_t *w, uint64_t total, size_t count, uint64_t slot_count,
                                      slot_sink *sink, int sift, compress_fn compress, uint64_t *bad_slot) {
    size_t i = 0;
    uint64_t last = 0;
    const size_t words = (size_t)((total + 63) >> 6);
    for (size_t k = 0; k < words && i < count; k++) {
        uint64_t z = ~w[k];
        if (k == words - 1 && (total & 63)) z &= (1ull << (total & 63)) - 1;
        while (z) {
            uint64_t slot = ((uint64_t)k << 6) + (uint64_t)__builtin_ctzll(z);
            if (__builtin_expect(slot >= slot_count, 0)) {
                *bad_slot = slot;
                return QKD_RICE_OUT_OF_RANGE;
            }
            sink_put(sink, sift, i++, slot, compress);
            last = slot;
            if (i == count) break;
            z &= z - 1;
        }
    }
    uint64_t next = i ? last + 1 : 0; /* where the next code starts */
    if (i < count) {
        /* The stream ends inside a code: its run of ones. As the generic decoder: a run longer
         * than the slot count is a slot out of range, a shorter one a truncated stream. */
        if (total - next > slot_count) {
            *bad_slot = total;
            return QKD_RICE_OUT_OF_RANGE;
        }
        return QKD_RICE_TRUNCATED;
    }
    return next == total ? QKD_RICE_OK : QKD_RICE_LEFTOVER;
}

static int rice_decode_unary(const uint64_t *w, uint64_t total, size_t count, uint64_t slot_count, uint64_t *out,
                             uint64_t *bad_slot) {
    slot_sink sink = {.out = out};
    return rice_decode_unary_body(w, total, count, slot_count, &sink, 0, compress_portable, bad_slot);
}

size_t qkd_rice_encode(const uint64_t *slots, size_t count, unsigned r, uint64_t *out, size_t capacity) {
    if (r == 0 && rice_unary_fast()) return rice_encode_unary(slots, count, out, capacity);
#if QKD_SIFT_X86
    if (uses_bmi()) return rice_encode_bmi(slots, count, r, out, capacity);
#endif
    return rice_encode_generic(slots, count, r, out, capacity);
}

/* ---- Rice decoder ---- */

QKD_INLINE int rice_decode_body(const uint64_t *w, uint64_t total, size_t count, unsigned r, uint64_t slot_count,
                                slot_sink *sink, int sift, compress_fn compress, uint64_t *bad_slot) {
    if (r > 62 || slot_count > (1ull << 62)) return QKD_RICE_OUT_OF_RANGE;
    const uint64_t low_mask = (1ull << r) - 1;
    uint64_t position = 0;
    uint64_t next = 0; /* slot[i-1] + 1 */
    size_t i = 0;
    while (i < count) {
        if (position + 64 <= total) {
            /* Batch: the 64 bits at `position` in a register; take every code wholly inside
             * them. The loop-carried chain is not, tzcnt, shift. Word wi + 1 exists when the
             * shift is nonzero because bit position + 63 < total. */
            uint64_t wi = position >> 6;
            unsigned shift = (unsigned)(position & 63);
            uint64_t window = w[wi] >> shift;
            if (shift) window |= w[wi + 1] << (64 - shift);
            unsigned avail = 64;
            uint64_t slot = next;
            while (i < count) {
                unsigned ones = ctz64(~window);
                unsigned length = ones + 1 + r;
                if (length > avail) break;
                /* Shift counts reduced mod 64 (one SHRX each): ones + 1 = 64 only if r = 0, when
                 * low_mask = 0; length = 64 leaves avail = 0, so the stale window is never used
                 * again (the next code's length exceeds avail and ends the batch). */
                uint64_t low = (window >> ((ones + 1) & 63)) & low_mask;
                window >>= length & 63;
                avail -= length;
                slot = next + (((uint64_t)ones << r) | low);
                sink_put(sink, sift, i++, slot, compress);
                next = slot + 1;
            }
            /* Slots increase, so checking the last of the batch checks them all; a batch adds
             * less than 2^63 + 64 (a code of length L adds below 2^(L-1) + 1) to a value
             * <= 2^62, so nothing wrapped. */
            if (next > slot_count) {
                *bad_slot = slot;
                return QKD_RICE_OUT_OF_RANGE;
            }
            position += 64 - avail;
            if (avail < 64) continue;
        }
        /* One code that does not fit a full window (a long unary part, or the stream's end),
         * read piece by piece with every check. */
        uint64_t q = 0;
        for (;;) {
            if (position >= total) return QKD_RICE_TRUNCATED;
            unsigned shift = (unsigned)(position & 63);
            uint64_t word = w[position >> 6] >> shift;
            uint64_t available = 64 - shift;
            if (total - position < available) available = total - position;
            unsigned ones = ctz64(~word);
            if (ones < available) {
                q += ones;
                position += ones + 1;
                break;
            }
            q += available;
            position += available;
            if (q > slot_count) {
                *bad_slot = next + q;
                return QKD_RICE_OUT_OF_RANGE;
            }
        }
        if (position + r > total) return QKD_RICE_TRUNCATED;
        uint64_t low = 0;
        if (r) {
            unsigned shift = (unsigned)(position & 63);
            low = w[position >> 6] >> shift;
            if (shift + r > 64) low |= w[(position >> 6) + 1] << (64 - shift);
            low &= low_mask;
            position += r;
        }
        if (q > (slot_count >> r)) {
            *bad_slot = next + q;
            return QKD_RICE_OUT_OF_RANGE;
        }
        uint64_t slot = next + ((q << r) | low);
        if (slot < next || slot >= slot_count) {
            *bad_slot = slot;
            return QKD_RICE_OUT_OF_RANGE;
        }
        sink_put(sink, sift, i++, slot, compress);
        next = slot + 1;
    }
    return position == total ? QKD_RICE_OK : QKD_RICE_LEFTOVER;
}

static int rice_decode_generic(const uint64_t *w, uint64_t total, size_t count, unsigned r, uint64_t n,
                               uint64_t *out, uint64_t *bad) {
    slot_sink sink = {.out = out};
    return rice_decode_body(w, total, count, r, n, &sink, 0, compress_portable, bad);
}
#if QKD_SIFT_X86
QKD_BMI_TARGET static int rice_decode_bmi(const uint64_t *w, uint64_t total, size_t count, unsigned r, uint64_t n,
                                          uint64_t *out, uint64_t *bad) {
    slot_sink sink = {.out = out};
    return rice_decode_body(w, total, count, r, n, &sink, 0, compress_portable, bad);
}
#endif

int qkd_rice_decode(const uint64_t *words, uint64_t total_bits, size_t count, unsigned r, uint64_t slot_count,
                    uint64_t *out, uint64_t *bad_slot) {
    if (r == 0 && slot_count <= (1ull << 62) && rice_unary_fast())
        return rice_decode_unary(words, total_bits, count, slot_count, out, bad_slot);
    *bad_slot = 0;
#if QKD_SIFT_X86
    if (uses_bmi()) return rice_decode_bmi(words, total_bits, count, r, slot_count, out, bad_slot);
#endif
    return rice_decode_generic(words, total_bits, count, r, slot_count, out, bad_slot);
}

/* The decoders with Alice's sifting as the sink: one instance per decoder path and compress.
 * Each works on a local copy of the sink, so that its accumulators live in registers (through
 * the pointer they were a load and a store per detection). */
#define QKD_SIFT_DECODER(NAME, TARGET, CALL)                                                        \
    TARGET static int NAME(const uint64_t *w, uint64_t total, size_t count, unsigned r, uint64_t n,   \
                           slot_sink *sink, uint64_t *bad) {                                        \
        slot_sink k = *sink;                                                                       \
        (void)r;                                                                                   \
        int status = CALL;                                                                         \
        *sink = k;                                                                                 \
        return status;                                                                             \
    }
QKD_SIFT_DECODER(sift_unary_portable, , rice_decode_unary_body(w, total, count, n, &k, 1, compress_portable, bad))
QKD_SIFT_DECODER(sift_rice_portable, , rice_decode_body(w, total, count, r, n, &k, 1, compress_portable, bad))
#if QKD_SIFT_X86
QKD_SIFT_DECODER(sift_unary_pext, QKD_BMI_TARGET, rice_decode_unary_body(w, total, count, n, &k, 1, compress_pext, bad))
QKD_SIFT_DECODER(sift_rice_bmi, QKD_BMI_TARGET, rice_decode_body(w, total, count, r, n, &k, 1, compress_portable, bad))
QKD_SIFT_DECODER(sift_rice_pext, QKD_BMI_TARGET, rice_decode_body(w, total, count, r, n, &k, 1, compress_pext, bad))
#endif
#undef QKD_SIFT_DECODER

int qkd_rice_decode_sift_alice(const uint64_t *words, uint64_t total_bits, size_t count, unsigned r,
                               uint64_t slot_count, const uint64_t *alice_bases, const uint64_t *alice_bits,
                               const uint64_t *bob_bases, uint64_t *matches, uint64_t *key, size_t *key_count,
                               uint64_t *test, size_t *test_count, uint64_t *bad_slot) {
    slot_sink k = {.alice_bases = alice_bases, .alice_bits = alice_bits, .bob_bases = bob_bases,
                   .slot_words = (size_t)((slot_count + 63) >> 6), .matches = matches,
                   .key = {key, 0, 0, 0}, .test = {test, 0, 0, 0}};
    *bad_slot = 0;
    int status;
    int pext = qkd_sift_uses_pext();
    (void)pext;
    if (r == 0 && slot_count <= (1ull << 62) && rice_unary_fast()) {
#if QKD_SIFT_X86
        if (pext) status = sift_unary_pext(words, total_bits, count, 0, slot_count, &k, bad_slot);
        else
#endif
            status = sift_unary_portable(words, total_bits, count, 0, slot_count, &k, bad_slot);
    } else {
#if QKD_SIFT_X86
        if (uses_bmi()) status = pext ? sift_rice_pext(words, total_bits, count, r, slot_count, &k, bad_slot)
                                      : sift_rice_bmi(words, total_bits, count, r, slot_count, &k, bad_slot);
        else
#endif
            status = sift_rice_portable(words, total_bits, count, r, slot_count, &k, bad_slot);
    }
    if (status != QKD_RICE_OK) return status;
    /* The last, partial word of detections. */
    if (count & 63) {
#if QKD_SIFT_X86
        if (pext) sink_flush(&k, count >> 6, (1ull << (count & 63)) - 1, compress_pext);
        else
#endif
            sink_flush(&k, count >> 6, (1ull << (count & 63)) - 1, compress_portable);
    }
    *key_count = packer_finish(&k.key);
    *test_count = packer_finish(&k.test);
    return QKD_RICE_OK;
}

/* ---- sifting ---- */

/* Alice: gather her basis and bit at 64 detections, then compare bases a word at a time and
 * append key bits (matched Z) and test bits (matched X) by compressing the word (sink_flush, as
 * the one-pass decoder does). */
#define QKD_SIFT_ALICE_BODY(COMPRESS)                                                              \
    slot_sink k = {.bob_bases = bob_bases, .matches = matches, .key = {kw, 0, 0, 0}, .test = {tw, 0, 0, 0}}; \
    size_t full = d >> 6;                                                                          \
    for (size_t w = 0; w <= full; w++) {                                                           \
        size_t base = w << 6;                                                                      \
        size_t n = w < full ? 64 : d - base;                                                       \
        if (n == 0) break;                                                                         \
        const uint64_t *p = pos + base;                                                            \
        for (size_t j = 0; j < n; j++) {                                                           \
            uint64_t s = p[j];                                                                     \
            if (__builtin_expect(s >= slot_count, 0)) return -1;                                   \
            unsigned sh = (unsigned)(s & 63);                                                      \
            k.ab |= ((alice_bases[s >> 6] >> sh) & 1) << j;                                        \
            k.at |= ((alice_bits[s >> 6] >> sh) & 1) << j;                                         \
        }                                                                                          \
        sink_flush(&k, w, n == 64 ? ~0ull : (1ull << n) - 1, COMPRESS);                            \
    }                                                                                              \
    *key_count = packer_finish(&k.key);                                                            \
    *test_count = packer_finish(&k.test);                                                          \
    return 0;

static int sift_alice_portable(const uint64_t *pos, size_t d, uint64_t slot_count, const uint64_t *alice_bases, const uint64_t *alice_bits,
                                const uint64_t *bob_bases, uint64_t *matches, uint64_t *kw, size_t *key_count,
                                uint64_t *tw, size_t *test_count) {
    QKD_SIFT_ALICE_BODY(compress_portable)
}

#if QKD_SIFT_X86
QKD_BMI_TARGET static int sift_alice_pext(const uint64_t *pos, size_t d, uint64_t slot_count, const uint64_t *alice_bases,
                                           const uint64_t *alice_bits, const uint64_t *bob_bases, uint64_t *matches,
                                           uint64_t *kw, size_t *key_count, uint64_t *tw, size_t *test_count) {
    QKD_SIFT_ALICE_BODY(compress_pext)
}
#endif

int qkd_sift_alice(const uint64_t *pos, size_t d, uint64_t slot_count, const uint64_t *alice_bases,
                   const uint64_t *alice_bits, const uint64_t *bob_bases, uint64_t *matches, uint64_t *key,
                   size_t *key_count, uint64_t *test, size_t *test_count) {
#if QKD_SIFT_X86
    if (qkd_sift_uses_pext())
        return sift_alice_pext(pos, d, slot_count, alice_bases, alice_bits, bob_bases, matches, key, key_count, test,
                               test_count);
#endif
    return sift_alice_portable(pos, d, slot_count, alice_bases, alice_bits, bob_bases, matches, key, key_count, test,
                               test_count);
}

#define QKD_SIFT_BOB_BODY(COMPRESS)                                                                \
    packer key = {kw, 0, 0, 0}, test = {tw, 0, 0, 0};                                              \
    for (size_t w = 0; w < words; w++) {                                                           \
        uint64_t z = matches[w] & ~bases[w], x = matches[w] & bases[w], b = bits[w];               \
        packer_put(&key, COMPRESS(b, z), (unsigned)__builtin_popcountll(z));                       \
        packer_put(&test, COMPRESS(b, x), (unsigned)__builtin_popcountll(x));                      \
    }                                                                                              \
    *key_count = packer_finish(&key);                                                              \
    *test_count = packer_finish(&test);

static void sift_bob_portable(const uint64_t *matches, const uint64_t *bases, const uint64_t *bits, size_t words,
                              uint64_t *kw, size_t *key_count, uint64_t *tw, size_t *test_count) {
    QKD_SIFT_BOB_BODY(compress_portable)
}

#if QKD_SIFT_X86
QKD_BMI_TARGET static void sift_bob_pext(const uint64_t *matches, const uint64_t *bases, const uint64_t *bits,
                                         size_t words, uint64_t *kw, size_t *key_count, uint64_t *tw,
                                         size_t *test_count) {
    QKD_SIFT_BOB_BODY(_pext_u64)
}
#endif

void qkd_sift_bob(const uint64_t *matches, const uint64_t *bases, const uint64_t *bits, size_t words,
                  uint64_t *key, size_t *key_count, uint64_t *test, size_t *test_count) {
#if QKD_SIFT_X86
    if (qkd_sift_uses_pext()) {
        sift_bob_pext(matches, bases, bits, words, key, key_count, test, test_count);
        return;
    }
#endif
    sift_bob_portable(matches, bases, bits, words, key, key_count, test, test_count);
}
