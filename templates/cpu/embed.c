/*
 * embed.c — kgt_embed: the embedding lookup, one dequantized table row per
 * token, times the f32 rounding of `scale` (contract in products.h; the
 * formats are quants.h's).
 */
#include "products.h"
#include "quants.h"

KG_INLINE void embed_rows(int wt, const uint8_t *table, const int32_t *ids, float *out, int64_t lo, int64_t hi,
                          int64_t K, float scale)
{
    const int64_t rb = kgq_row_bytes(wt, K);
    for (int64_t m = lo; m < hi; m++) {
        float *y = out + m * K;
        kgq_dequant_row(wt, table + (int64_t)ids[m] * rb, K, y);
        if (scale != 1.0f)
            for (int64_t k = 0; k < K; k++) y[k] *= scale;
    }
}

KG_KERNEL void kgt_embed(void *const *p, int ith, int nth, int64_t wtype, int64_t M, int64_t K, double scale)
{
    int64_t lo, hi;
    kgt_split(M, 1, ith, nth, &lo, &hi);
    KGQ_DISPATCH(wtype, embed_rows, p[0], p[1], p[2], lo, hi, K, (float)scale)
}
KG_PARAM_DEFAULT_F(embed, scale, 1.0);
