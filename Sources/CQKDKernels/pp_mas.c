/* Privacy amplification with Dietzfelbinger's multiply-add-shift hash, computed with GNU MP's
 * integer multiplication. See include/qkd_pp_kernels.h and Spec/postprocessing.md section 7.
 *
 * h_{a,b}(x) = floor( ((a x + b) mod 2^W) / 2^(n-1) ),  W = n + l - 1,
 * x < 2^n, a and b uniform in [0, 2^W): strongly universal onto [0, 2^l).
 *
 * Only the low W bits of a x are needed. With x = x_lo + 2^(64 h) x_hi they are the low W bits
 * of a x_lo + 2^(64 h) (a mod 2^(W - 64 h)) x_hi: two products whose areas are equal for the h
 * chosen below (about 16% less work than the full product at l = n/2), and independent, so a
 * second thread can compute one of them. */
#include "qkd_pp_kernels.h"
#include <gmp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

_Static_assert(sizeof(mp_limb_t) == sizeof(uint64_t), "GMP limbs must be 64-bit words");

typedef struct {
    mp_limb_t *r;
    const mp_limb_t *a;
    size_t an;
    const mp_limb_t *b;
    size_t bn;
} pp_mul_job;

/* r[0 .. an+bn) = a * b; mpn_mul wants the longer operand first and both non-empty. */
static void pp_mul(mp_limb_t *r, const mp_limb_t *a, size_t an, const mp_limb_t *b, size_t bn) {
    if (an == 0 || bn == 0) {
        memset(r, 0, (an + bn) * sizeof(mp_limb_t));
    } else if (an >= bn) {
        mpn_mul(r, a, (mp_size_t)an, b, (mp_size_t)bn);
    } else {
        mpn_mul(r, b, (mp_size_t)bn, a, (mp_size_t)an);
    }
}

static void *pp_mul_thread(void *arg) {
    pp_mul_job *j = (pp_mul_job *)arg;
    pp_mul(j->r, j->a, j->an, j->b, j->bn);
    return NULL;
}

/* The split h (in limbs) with wl * h = (wl - h) (xl - h): both products have the same area. */
static size_t pp_split(size_t wl, size_t xl) {
    if (xl < 2) return xl;
    double w = (double)wl, x = (double)xl;
    double s = 2 * w + x;
    double h = (s - sqrt(s * s - 4 * w * x)) / 2;
    size_t hi = (size_t)h;
    if (hi < 1) hi = 1;
    if (hi >= xl) hi = xl - 1;
    return hi;
}

int qkd_pp_mas_hash(uint64_t *out, size_t out_bits, const uint64_t *a, const uint64_t *b,
                    const uint64_t *x, size_t n_bits, int threads) {
    if (out_bits == 0 || n_bits == 0) return -2;
    const size_t w_bits = n_bits + out_bits - 1;
    const size_t wl = (w_bits + 63) / 64, xl = (n_bits + 63) / 64, ol = (out_bits + 63) / 64;
    const size_t h = pp_split(wl, xl);
    mp_limb_t *p1 = malloc((wl + h) * sizeof(mp_limb_t));
    if (!p1) return -1;
    mp_limb_t *p2 = NULL;
    size_t al = 0;
    pthread_t thread;
    int threaded = 0;
    pp_mul_job job;
    if (h < xl) {
        al = wl - h; /* >= xl - h >= 1 because w_bits >= n_bits */
        p2 = malloc((al + xl - h) * sizeof(mp_limb_t));
        if (!p2) { free(p1); return -1; }
        job = (pp_mul_job){p2, (const mp_limb_t *)a, al, (const mp_limb_t *)x + h, xl - h};
        if (threads >= 2 && pthread_create(&thread, NULL, pp_mul_thread, &job) == 0) {
            threaded = 1;
        } else {
            pp_mul_thread(&job);
        }
    }
    pp_mul(p1, (const mp_limb_t *)a, wl, (const mp_limb_t *)x, h);
    if (p2) {
        if (threaded) pthread_join(thread, NULL);
        /* Carries out of limb wl - 1 are dropped: arithmetic mod 2^(64 wl). */
        mpn_add_n(p1 + h, p1 + h, p2, (mp_size_t)al);
    }
    mpn_add_n(p1, p1, (const mp_limb_t *)b, (mp_size_t)wl);
    if (w_bits & 63) p1[wl - 1] &= (~(mp_limb_t)0) >> (64 - (w_bits & 63));
    /* Bits n-1 .. n-1+l of the sum. */
    const size_t s = (n_bits - 1) >> 6, off = (n_bits - 1) & 63;
    for (size_t j = 0; j < ol; j++) {
        uint64_t lo = p1[s + j];
        uint64_t hi = s + j + 1 < wl ? p1[s + j + 1] : 0;
        out[j] = off ? (lo >> off) | (hi << (64 - off)) : lo;
    }
    if (out_bits & 63) out[ol - 1] &= (~(uint64_t)0) >> (64 - (out_bits & 63));
    /* The products hold key-dependent values: wipe before release. */
    memset(p1, 0, (wl + h) * sizeof(mp_limb_t));
    __asm__ __volatile__("" : : "r"(p1) : "memory");
    free(p1);
    if (p2) {
        memset(p2, 0, (al + xl - h) * sizeof(mp_limb_t));
        __asm__ __volatile__("" : : "r"(p2) : "memory");
        free(p2);
    }
    return 0;
}

int qkd_pp_mul_baseline(uint64_t *r, const uint64_t *a, size_t an, const uint64_t *b, size_t bn) {
    pp_mul((mp_limb_t *)r, (const mp_limb_t *)a, an, (const mp_limb_t *)b, bn);
    return 0;
}
