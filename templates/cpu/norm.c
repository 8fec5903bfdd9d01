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
 * RMSNorm's G groups per row are just G times the rows: [M][G][K] is
 * [M*G][K], normalized with the one gamma.
 */
#include "ops.h"
#include "quants.h" /* kgq_quantize32: the one activation quantization rule */

/* M rows of K (kgt_rmsnorm: M*G groups) */
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
                kgt_norm_apply(x + b * 32, gamma + b * 32, beta ? beta + b * 32 : NULL, buf, 32, mean, rstd);
                kgq_quantize32(buf, yq + b);
            }
        } else {
            kgt_norm_apply(x, gamma, beta, (float *)p[2] + m * K, K, mean, rstd);
        }
    }
}

KG_KERNEL void kgt_rmsnorm(void *const *p, int ith, int nth, int64_t M, int64_t K, double eps, int64_t flags,
                           int64_t G)
{
    norm_rows(p, ith, nth, M * G, K, eps, flags, 1);
}
KG_PARAM_DEFAULT(rmsnorm, G, 1);

KG_KERNEL void kgt_layernorm(void *const *p, int ith, int nth, int64_t M, int64_t K, double eps, int64_t flags)
{
    norm_rows(p, ith, nth, M, K, eps, flags, 0);
}
