/* Run-time CPU dispatch shared by the kernels. Private to CQKDKernels. */
#ifndef QKD_CPU_PROBE_H
#define QKD_CPU_PROBE_H

/* The result of probe(), computed once per process and kept in *cache (-1: not probed yet;
 * 0 or 1 afterwards). Relaxed atomics: every thread computes the same value, so a race only
 * probes twice. */
static inline int qkd_cached_probe(int *cache, int (*probe)(void)) {
    int v = __atomic_load_n(cache, __ATOMIC_RELAXED);
    if (v < 0) {
        v = probe() ? 1 : 0;
        __atomic_store_n(cache, v, __ATOMIC_RELAXED);
    }
    return v;
}

#endif
