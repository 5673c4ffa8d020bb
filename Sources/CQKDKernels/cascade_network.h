/* The round's Feistel network (Spec/postprocessing.md section 5.2), private to CQKDKernels:
 * cascade.c writes the forward map with it, 8 lanes at a time, and cascade_step.c walks the
 * inverse for the few positions a step needs (the key bit under a search that ends). */
#ifndef QKD_CASCADE_NETWORK_H
#define QKD_CASCADE_NETWORK_H
#include "qkd_cascade_kernels.h"

/* The network on one word (or 8 lanes). A word x < 2^L b is split into lo = x mod 2^L and
 * hi = floor(x / 2^L) < b. Even rounds add a hash of lo to hi mod b, odd rounds xor a hash of
 * hi into lo; the hash of v in round r is the top bits of the 32-bit product (v ^ key[r]) *
 * mul[r] (mul odd): H bits for hi (reduced mod b by one conditional subtraction, since
 * b > 2^(H-1)), L bits for lo. The inverse runs the rounds backwards, subtracting mod b.
 * Unsigned min does the conditional subtractions without branches: min(t, t - b) is t mod b
 * for t < 2b. */
#define FEISTEL_ROUND(lo, hi, f, r, inverse)                                                      \
    do {                                                                                          \
        if ((r) & 1) {                                                                            \
            lo ^= ((hi ^ (f)->key[r]) * (f)->mul[r]) >> (f)->lowShift;                            \
        } else {                                                                                  \
            __typeof__(hi) t_ = ((lo ^ (f)->key[r]) * (f)->mul[r]) >> (f)->highShift;             \
            t_ = __builtin_elementwise_min(t_, t_ - (f)->highCount);                              \
            if (!(inverse)) {                                                                     \
                hi += t_;                                                                         \
                hi = __builtin_elementwise_min(hi, hi - (f)->highCount);                          \
            } else {                                                                              \
                hi -= t_;                                                                         \
                hi = __builtin_elementwise_min(hi, hi + (f)->highCount);                          \
            }                                                                                     \
        }                                                                                         \
    } while (0)

#define FEISTEL_FN(name, T)                                                                       \
    static inline __attribute__((always_inline)) void name(const qkd_cascade_network *f, T *x, int inverse) { \
        T lo = *x & f->lowMask, hi = *x >> f->lowBits;                                            \
        if (!inverse) {                                                                           \
            _Pragma("unroll") for (int r = 0; r < QKD_CASCADE_ROUNDS; r++) FEISTEL_ROUND(lo, hi, f, r, 0); \
        } else {                                                                                  \
            _Pragma("unroll") for (int r = QKD_CASCADE_ROUNDS - 1; r >= 0; r--) FEISTEL_ROUND(lo, hi, f, r, 1); \
        }                                                                                         \
        *x = (hi << f->lowBits) | lo;                                                             \
    }

FEISTEL_FN(feistel1p, uint32_t)

static inline __attribute__((always_inline)) uint32_t feistel1(const qkd_cascade_network *f, uint32_t x, int inverse) {
    feistel1p(f, &x, inverse);
    return x;
}

/* backward[j] (j < n): the walk of j under E^-1. The inverse of a walk is a walk: if
 * forward[i] = E^t(i) with E(i), .., E^(t-1)(i) >= n, then E^-1 applied to j = E^t(i) passes
 * through the same out-of-range values back to i, the first value below n. Arithmetic only:
 * 8-14 ns (C harness), no memory access but the network's 80 bytes. */
static inline uint32_t network_backward(const qkd_cascade_network *f, uint32_t j) {
    uint32_t y = feistel1(f, j, 1);
    while (y >= f->n) y = feistel1(f, y, 1);
    return y;
}

#endif
