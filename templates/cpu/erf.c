/*
 * erf.c — the exact (erf) GELU as an elementwise template, for graphs that
 * do not fuse it into the product before it (KGT_EPI_GELU), and erf
 * itself (kgt_verf, whose accuracy the tests measure through it).
 * Contracts in ops.h. Threads split the elements in 64-float chunks;
 * the output may alias the input.
 */
#include "ops.h"

KG_INLINE void erf_map(const float *x, float *y, int ith, int nth, int64_t n, int gelu)
{
    int64_t lo, hi, i;
    kgt_split(n, 64, ith, nth, &lo, &hi);
    for (i = lo; i + KGT_VF <= hi; i += KGT_VF) {
        const kgt_vf v = kgt_vload(x + i);
        kgt_vstore(y + i, gelu ? kgt_vgelu_erf(v) : kgt_verf(v));
    }
    if (i < hi) {
        const kgt_vf v = kgt_vload_part(x + i, hi - i, 0.0f);
        kgt_vstore_part(y + i, hi - i, gelu ? kgt_vgelu_erf(v) : kgt_verf(v));
    }
}

KG_KERNEL void kgt_gelu_erf(void *const *p, int ith, int nth, int64_t n) { erf_map(p[0], p[1], ith, nth, n, 1); }

KG_KERNEL void kgt_erf(void *const *p, int ith, int nth, int64_t n) { erf_map(p[0], p[1], ith, nth, n, 0); }
