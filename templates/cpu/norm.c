/*
 * norm.c — RMSNorm and LayerNorm over rows, optionally fused with the
 * quantization of the result to kgt_q8a blocks (the activation input of the
 * next int8 product), by quants.h's kgq_quantize32, the same rule as the
 * unfused quantization. Contracts in ops.h.
 *
 * Both are y = (x - mean) * rstd * gamma (+ beta), with mean = 0 and
 * rstd = 1/sqrt(mean(x²) + eps) for RMSNorm, so one row function serves
 * both. Statistics accumulate in f32 with vector partial sums; LayerNorm's
 * variance is the two-pass sum of (x - mean)², which does not cancel.
 */
#include "ops.h"
#include "quants.h" /* kgq_quantize32: the one activation quantization rule */

/* y[0..n) = (x[0..n) - mean) * rstd * gamma (+ beta); y may alias x.
 * Without beta the term added is -0.0f, which the compiler drops (x + -0 is
 * x exactly), so one expression serves both. */
KG_INLINE void norm_apply(const float *x, const float *gamma, const float *beta, float *y, int64_t n, float mean,
                          float rstd)
{
    const kgt_vf vm = kgt_vsplat(mean), vr = kgt_vsplat(rstd), nz = kgt_vsplat(-0.0f);
    int64_t i = 0;
    for (; i + KGT_VF <= n; i += KGT_VF)
        kgt_vstore(y + i, (kgt_vload(x + i) - vm) * vr * kgt_vload(gamma + i) + (beta ? kgt_vload(beta + i) : nz));
    if (i < n) {
        int64_t r = n - i;
        kgt_vf b = beta ? kgt_vload_part(beta + i, r, 0.0f) : nz;
        kgt_vstore_part(y + i, r, (kgt_vload_part(x + i, r, 0.0f) - vm) * vr * kgt_vload_part(gamma + i, r, 0.0f) + b);
    }
}

KG_INLINE void norm_rows(void *const *p, int ith, int nth, int64_t M, int64_t K, double eps, int64_t flags, int rms)
{
    const float *X = p[0], *gamma = p[1];
    const float *beta = !rms && (flags & KGT_NORM_BIAS) ? (const float *)p[3] : NULL;
    int64_t lo, hi;
    kgt_split(M, 1, ith, nth, &lo, &hi);
    for (int64_t m = lo; m < hi; m++) {
        const float *x = X + m * K;
        float mean = rms ? 0.0f : kgt_sum(x, K) / (float)K;
        float var = kgt_sumsq_centered(x, K, mean) / (float)K;
        float rstd = 1.0f / __builtin_sqrtf(var + (float)eps);
        if (flags & KGT_NORM_OUT_Q8) {
            /* one block at a time through a stack buffer: same arithmetic
             * as the f32 output, then quantized */
            kgt_q8a *yq = (kgt_q8a *)p[2] + m * (K / 32);
            float buf[32];
            for (int64_t b = 0; b < K / 32; b++) {
                norm_apply(x + b * 32, gamma + b * 32, beta ? beta + b * 32 : NULL, buf, 32, mean, rstd);
                kgq_quantize32(buf, yq + b);
            }
        } else {
            norm_apply(x, gamma, beta, (float *)p[2] + m * K, K, mean, rstd);
        }
    }
}

KG_KERNEL void kgt_rmsnorm(void *const *p, int ith, int nth, int64_t M, int64_t K, double eps, int64_t flags)
{
    norm_rows(p, ith, nth, M, K, eps, flags, 1);
}

KG_KERNEL void kgt_layernorm(void *const *p, int ith, int nth, int64_t M, int64_t K, double eps, int64_t flags)
{
    norm_rows(p, ith, nth, M, K, eps, flags, 0);
}
