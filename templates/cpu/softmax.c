/*
 * softmax.c — row softmax in place: x = softmax(scale * x), max-subtracted.
 * Contract in ops.h. Three passes over the row (max, exponentiate and sum,
 * normalize), with the helpers attention uses too.
 */
#include "ops.h"

KG_KERNEL void kgt_softmax(void *const *p, int ith, int nth, int64_t M, int64_t N, double scale)
{
    float *X = p[0];
    const float s = (float)scale;
    int64_t lo, hi;
    kgt_split(M, 1, ith, nth, &lo, &hi);
    for (int64_t m = lo; m < hi; m++) {
        float *x = X + m * N;
        float sum = kgt_exp_sum(x, N, s, kgt_max_scaled(x, N, s));
        kgt_scale(x, N, 1.0f / sum);
    }
}
