/*
 * embed.c — kgt_embed: the embedding lookup, one dequantized table row per
 * token, times the f32 rounding of `scale`, plus (encoders, pos_len > 0)
 * the token-type row and the row's position-table row (contract in
 * products.h; the formats are quants.h's).
 */
#include "mm_x16.h"
#include "products.h"
#include "quants.h"

/* element k of a row of `type` (KGT_F32, KGT_F16 or KGT_BF16) */
KG_INLINE float embed_elem(const void *row, int64_t k, int64_t type)
{
    if (type == KGT_F16) return kgt_f16_to_f32(((const kgt_f16 *)row)[k]);
    if (type == KGT_BF16) return kgt_bf16_to_f32(((const uint16_t *)row)[k]);
    return ((const float *)row)[k];
}

KG_INLINE void embed_rows(int wt, void *const *p, int64_t lo, int64_t hi, int64_t K, float scale, int64_t pos_len,
                          int64_t pos_type, int64_t layout)
{
    const uint8_t *table = p[0];
    const int32_t *ids = p[1];
    float *out = p[2];
    const int64_t rb = kgq_row_bytes(wt, K), pb = K * (pos_type == KGT_F32 ? 4 : 2);
    for (int64_t m = lo; m < hi; m++) {
        float *y = out + m * K;
        if (layout == KGT_LAYOUT_X16 && kgx_ftype(wt)) { /* element k of row r: step k of its group */
            const uint8_t *g = table + (int64_t)ids[m] / 16 * 16 * rb;
            const int64_t es = wt == KGT_F32 ? 4 : 2, n = ids[m] % 16;
            for (int64_t k = 0; k < K; k++) y[k] = embed_elem(g + (16 * k + n) * es, 0, wt);
        } else if (layout == KGT_LAYOUT_X16B) { /* element k of row r: half k & 1 of word r % 16 of step k / 2 */
            const uint8_t *g = table + (int64_t)ids[m] / 16 * 16 * rb;
            const int64_t n = ids[m] % 16;
            for (int64_t k = 0; k < K; k++) y[k] = embed_elem(g + 4 * (16 * (k / 2) + n) + 2 * (k & 1), 0, KGT_BF16);
        } else if (layout == KGT_LAYOUT_X16 && kgx_type(wt))
            for (int64_t b = 0; b < K / kgq_blk(wt); b++) { /* each block rebuilt from its tile */
                uint8_t blk[256];
                kgx_block(wt, table, rb, ids[m], b, blk);
                kgq_dequant_row(wt, blk, kgq_blk(wt), y + kgq_blk(wt) * b);
            }
        else
            kgq_dequant_row(wt, table + (int64_t)ids[m] * rb, K, y);
        if (scale != 1.0f)
            for (int64_t k = 0; k < K; k++) y[k] *= scale;
        if (pos_len > 0) { /* (y + T) + P, as Hugging Face's BertEmbeddings adds them */
            const uint8_t *P = (const uint8_t *)p[3] + (m % pos_len) * pb;
            for (int64_t k = 0; k < K; k++) y[k] = (y[k] + embed_elem(p[4], k, pos_type)) + embed_elem(P, k, pos_type);
        }
    }
}

KG_KERNEL void kgt_embed(void *const *p, int ith, int nth, int64_t wtype, int64_t M, int64_t K, double scale,
                         int64_t pos_len, int64_t pos_type, int64_t layout)
{
    int64_t lo, hi;
    kgt_split(M, 1, ith, nth, &lo, &hi);
    KGQ_DISPATCH(wtype, embed_rows, p, lo, hi, K, (float)scale, pos_len, pos_type, layout)
}
KG_PARAM_DEFAULT_F(embed, scale, 1.0);
KG_PARAM_DEFAULT(embed, pos_len, 0);
KG_PARAM_DEFAULT(embed, pos_type, KGT_F32);
KG_PARAM_DEFAULT(embed, layout, KGT_LAYOUT_ROWS);
