/*
 * pool.c — kgt_pool: a sentence vector per sequence from an encoder's
 * last hidden states (mean, CLS, max, or sentence-transformers' mean /
 * sqrt(len)), optionally L2-normalized. Contract in ops.h.
 *
 * Each output element is a reduction over one column of the sequence's
 * valid rows, in row order, so the columns are independent and splitting
 * them between threads (when B < nth and the rows need no norm) changes no
 * result.
 */
#include "ops.h"

/* columns [k0, k1) of sequence b's vector into y (the output row) */
KG_INLINE void pool_cols(const float *X, float *y, int64_t len, int64_t K, int64_t k0, int64_t k1, int64_t mode)
{
    if (len == 0) {
        memset(y + k0, 0, (size_t)(k1 - k0) * sizeof(float));
        return;
    }
    if (mode == KGT_POOL_CLS) {
        memcpy(y + k0, X + k0, (size_t)(k1 - k0) * sizeof(float));
        return;
    }
    const float div = mode == KGT_POOL_MEAN_SQRT ? __builtin_sqrtf((float)len) : (float)len;
    int64_t k = k0;
    for (; k < k1; k += KGT_VF) {
        const int64_t n = k1 - k < KGT_VF ? k1 - k : KGT_VF;
        kgt_vf a = n == KGT_VF ? kgt_vload(X + k) : kgt_vload_part(X + k, n, 0.0f);
        for (int64_t i = 1; i < len; i++) {
            const kgt_vf x = n == KGT_VF ? kgt_vload(X + i * K + k) : kgt_vload_part(X + i * K + k, n, 0.0f);
            a = mode == KGT_POOL_MAX ? kgt_vmax(a, x) : a + x;
        }
        if (mode != KGT_POOL_MAX) a = a / div;
        if (n == KGT_VF) kgt_vstore(y + k, a);
        else kgt_vstore_part(y + k, n, a);
    }
}

KG_KERNEL void kgt_pool(void *const *p, int ith, int nth, int64_t B, int64_t L, int64_t K, int64_t mode, int64_t norm)
{
    const float *X = p[0];
    const int32_t *lens = p[1];
    float *Y = p[2];
    const int64_t CW = 64, nck = !norm && B < nth ? (K + CW - 1) / CW : 1, cw = nck > 1 ? CW : K;
    int64_t lo, hi;
    kgt_split(B * nck, 1, ith, nth, &lo, &hi);
    for (int64_t u = lo; u < hi; u++) {
        const int64_t b = u / nck, k0 = u % nck * cw, k1 = k0 + cw < K ? k0 + cw : K;
        const int64_t len = lens[b] < 0 ? 0 : lens[b] > L ? L : lens[b];
        float *y = Y + b * K;
        pool_cols(X + b * L * K, y, len, K, k0, k1, mode);
        if (norm) {
            const float nrm = __builtin_sqrtf(kgt_sumsq_centered(y, K, 0.0f));
            kgt_scale(y, K, 1.0f / (nrm > 1e-12f ? nrm : 1e-12f));
        }
    }
}
KG_PARAM_DEFAULT(pool, mode, KGT_POOL_MEAN);
KG_PARAM_DEFAULT(pool, norm, 0);
