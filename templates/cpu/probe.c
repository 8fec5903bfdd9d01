/* probe.c — the smallest template: y[i] = scale * x[i]. The tests use it to
 * check the specialization machinery itself (constants folded into the IR,
 * parameters bound at run time, .so and JIT execution); no model uses it.
 * p[0] = y f32[n], p[1] = x f32[n]. */
#include "kernel.h"

KG_KERNEL void kgt_probe(void *const *p, int ith, int nth, int64_t n, double scale)
{
    float *y = p[0];
    const float *x = p[1];
    int64_t lo, hi;
    kgt_split(n, 1, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) y[i] = (float)scale * x[i];
}
