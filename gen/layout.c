/*
 * layout.c — the weight layouts' rewriting (layout.h).
 *
 * x16 (templates/cpu/mm_x16.h has the full description): 16 rows at a time,
 * per block column a tile of the 16 f16 scales (Q4_1: then the 16 mins)
 * and the quants as 64-byte vectors whose 4-byte word n is row n's quant
 * word i, Q8_0's quants offset by 128 to unsigned; Q4_K's tiles: d, dmin,
 * the scale bytes as 12 planes of 16, the 32 quant words of each row; the
 * float types: element k of the 16 rows side by side, k = 0..K-1.
 */
#include "layout.h"

#include "templates/cpu/kernel.h"

#include <string.h>

static const char *const names[] = {[KGT_LAYOUT_ROWS] = "rows", [KGT_LAYOUT_X16] = "x16"};

int gen_layout_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

bool gen_layout_fits(int layout, int type, int64_t N, int64_t K)
{
    if (layout == KGT_LAYOUT_ROWS) return true;
    if (layout != KGT_LAYOUT_X16) return false;
    if (type == KGT_Q4_K) return N > 0 && N % 16 == 0 && K > 0 && K % 256 == 0;
    if (type == KGT_F32 || type == KGT_F16 || type == KGT_BF16) return N > 0 && N % 16 == 0 && K > 0;
    return (type == KGT_Q4_0 || type == KGT_Q4_1 || type == KGT_Q8_0) && N > 0 && N % 16 == 0 && K > 0 && K % 32 == 0;
}

int gen_layout_group(int layout) { return layout == KGT_LAYOUT_X16 ? 16 : 1; }

void gen_layout_write(int layout, int type, int64_t K, const uint8_t *const *rows, uint64_t row_bytes, uint8_t *out)
{
    if (layout != KGT_LAYOUT_X16) {
        memcpy(out, rows[0], row_bytes);
        return;
    }
    if (type == KGT_F32 || type == KGT_F16 || type == KGT_BF16) { /* element k of the 16 rows side by side */
        const int es = type == KGT_F32 ? 4 : 2;
        for (int64_t k = 0; k < K; k++)
            for (int n = 0; n < 16; n++) memcpy(out + (16 * k + n) * es, rows[n] + k * es, (size_t)es);
        return;
    }
    if (type == KGT_Q4_K) { /* d[16], dmin[16], 12 planes of scale bytes, quant words */
        for (int64_t b = 0; b < K / 256; b++) {
            uint8_t *t = out + b * 16 * KGT_SIZE_Q4_K;
            for (int n = 0; n < 16; n++) {
                const uint8_t *blk = rows[n] + b * KGT_SIZE_Q4_K;
                memcpy(t + 2 * n, blk, 2);
                memcpy(t + 32 + 2 * n, blk + 2, 2);
                for (int j = 0; j < 12; j++) t[64 + 16 * j + n] = blk[4 + j];
                for (int w = 0; w < 32; w++) memcpy(t + 256 + 64 * w + 4 * n, blk + 16 + 4 * w, 4);
            }
        }
        return;
    }
    const int64_t bb = type == KGT_Q4_0 ? KGT_SIZE_Q4_0 : type == KGT_Q4_1 ? KGT_SIZE_Q4_1 : KGT_SIZE_Q8_0;
    const int hdr = type == KGT_Q4_1 ? 4 : 2;        /* d (and m) before the quants in a block */
    const int nq = type == KGT_Q8_0 ? 32 : 16;       /* quant bytes per block */
    const uint8_t flip = type == KGT_Q8_0 ? 0x80 : 0; /* int8 -> unsigned q + 128 */
    for (int64_t b = 0; b < K / 32; b++) {
        uint8_t *t = out + b * 16 * bb;
        const int qo = type == KGT_Q4_1 ? 64 : 32;
        for (int n = 0; n < 16; n++) {
            const uint8_t *blk = rows[n] + b * bb;
            memcpy(t + 2 * n, blk, 2);
            if (type == KGT_Q4_1) memcpy(t + 32 + 2 * n, blk + 2, 2);
            for (int i = 0; i < nq / 4; i++)
                for (int j = 0; j < 4; j++) t[qo + 64 * i + 4 * n + j] = (uint8_t)(blk[hdr + 4 * i + j] ^ flip);
        }
    }
}
