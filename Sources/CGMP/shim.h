#ifndef QKD_CGMP_SHIM_H
#define QKD_CGMP_SHIM_H
// GNU MP (Debian package libgmp-dev): the integer multiplication behind privacy amplification
// (Spec/postprocessing.md section 7). Only CQKDKernels' pp_mas.c uses it.
#include <gmp.h>
#endif
