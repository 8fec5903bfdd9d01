/*
 * layout.c — the weight layouts' rewriting (layout.h).
 *
 * x16 (templates/cpu/mm_x16.h has the full description): 16 rows at a time,
 * per block column a tile of the 16 f16 scales (Q4_1, Q5_1: then the 16
 * mins), Q5_0's and Q5_1's fifth bits as 64-bit masks, one per quant
 * vector, and the quants as 64-byte vectors whose 4-byte word n is row n's
 * quant word i (IQ4_NL's nibbles as Q4_0's), Q8_0's quants offset by 128
 * to unsigned; Q4_K's tiles: d, dmin, the scale bytes as 12 planes of 16,
 * the 32 quant words of each row (Q5_K's: the same with its fifth bits as
 * masks before the quants; IQ4_XS's: d, its 6 scale bytes as planes, its
 * 32 quant words; Q6_K's, Q3_K's, Q2_K's: d (Q2_K: dmin), their scale
 * bytes as planes, their quant words); the float types: element k of the 16
 * rows side by side, k = 0..K-1.
 *
 * x16b (F16, BF16; K even): 16 rows at a time, per pair of elements
 * (2j, 2j + 1) the 16 rows' pairs side by side as bf16 (F16 rounded to
 * nearest even): word n of step j = row n's elements 2j (low half), 2j + 1.
 */
#include "layout.h"

#include "templates/cpu/kernel.h"

#include <string.h>

static const char *const names[] = {[KGT_LAYOUT_ROWS] = "rows", [KGT_LAYOUT_X16] = "x16"};

int gen_layout_parse(const char *name) /* x16b is no knob value: the ftile knob's choice within x16 */
{
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

/* The x16 tile's parts, per type (mm_x16.h): nf f16 fields (d; dmin, m)
 * at the tile's start (16 of each side by side; from block byte fo), np
 * header bytes after them as planes of 16 (from block byte po), Q5's
 * fifth bits (qh: at block byte qh, 0 none) as 64-bit masks, then the
 * quant words from block byte qs, nw of them per row */
typedef struct {
    int nf, fo, np, po, qh, qs, nw;
} x16_parts;

static bool x16_parts_of(int type, x16_parts *g)
{
    switch (type) {
    case KGT_Q4_0: case KGT_IQ4_NL: *g = (x16_parts){1, 0, 0, 2, 0, 2, 4}; return true;
    case KGT_Q4_1: *g = (x16_parts){2, 0, 0, 4, 0, 4, 4}; return true;
    case KGT_Q8_0: *g = (x16_parts){1, 0, 0, 2, 0, 2, 8}; return true;
    case KGT_Q5_0: *g = (x16_parts){1, 0, 0, 2, 2, 6, 4}; return true;
    case KGT_Q5_1: *g = (x16_parts){2, 0, 0, 4, 4, 8, 4}; return true;
    case KGT_Q4_K: *g = (x16_parts){2, 0, 12, 4, 0, 16, 32}; return true;
    case KGT_IQ4_XS: *g = (x16_parts){1, 0, 6, 2, 0, 8, 32}; return true;
    case KGT_Q5_K: *g = (x16_parts){2, 0, 12, 4, 16, 48, 32}; return true;
    case KGT_Q6_K: *g = (x16_parts){1, 208, 16, 192, 0, 0, 48}; return true; /* ql, qh */
    case KGT_Q3_K: *g = (x16_parts){1, 108, 12, 96, 0, 0, 24}; return true;  /* hmask, qs */
    case KGT_Q2_K: *g = (x16_parts){2, 80, 16, 0, 0, 16, 16}; return true;
    default: return false;
    }
}

bool gen_layout_float(int type) { return type == KGT_F32 || type == KGT_F16 || type == KGT_BF16; }

bool gen_layout_fits(int layout, int type, int64_t N, int64_t K)
{
    x16_parts g;
    if (layout == KGT_LAYOUT_ROWS) return true;
    if (layout == KGT_LAYOUT_X16B) return (type == KGT_F16 || type == KGT_BF16) && N > 0 && N % 16 == 0 && K > 0 && K % 2 == 0;
    if (layout != KGT_LAYOUT_X16 || N <= 0 || N % 16 || K <= 0) return false;
    if (gen_layout_float(type)) return true;
    if (!x16_parts_of(type, &g)) return false;
    return K % (g.np ? 256 : 32) == 0; /* the K-quants (and only they) have planes */
}

int gen_layout_group(int layout) { return layout == KGT_LAYOUT_ROWS ? 1 : 16; }

/* bits 4n..4n+3 of the 64-bit little-endian mask at m |= the 4 bits v */
static void mask_put(uint8_t *m, int n, unsigned v) { m[n / 2] |= (uint8_t)((v & 15) << 4 * (n & 1)); }

/* one tile (x16_parts): the 16 rows' blocks blk[n] rewritten into t */
static void write_tile(int type, const x16_parts *g, const uint8_t *const blk[16], uint8_t *t)
{
    const int mo = 32 * g->nf + 16 * g->np; /* the masks' offset in the tile */
    const int nm = g->qh ? 2 * g->nw : 0;                    /* masks */
    const int qo = mo + 8 * nm;                              /* the quants' */
    const uint8_t flip = type == KGT_Q8_0 ? 0x80 : 0;        /* int8 -> unsigned q + 128 */
    memset(t + mo, 0, (size_t)(8 * nm));
    for (int n = 0; n < 16; n++) {
        const uint8_t *b = blk[n];
        for (int f = 0; f < g->nf; f++) memcpy(t + 32 * f + 2 * n, b + g->fo + 2 * f, 2);
        for (int j = 0; j < g->np; j++) t[32 * g->nf + 16 * j + n] = b[g->po + j];
        if (g->qh && g->nw == 4) { /* Q5_0, Q5_1: mask (i, h) = bits 16h + 4i .. +3 of qh */
            const uint32_t qh = (uint32_t)b[g->qh] | (uint32_t)b[g->qh + 1] << 8 | (uint32_t)b[g->qh + 2] << 16 |
                                (uint32_t)b[g->qh + 3] << 24;
            for (int i = 0; i < 4; i++)
                for (int h = 0; h < 2; h++) mask_put(t + mo + 8 * (2 * i + h), n, qh >> (16 * h + 4 * i));
        } else if (g->qh) { /* Q5_K: mask (w = 8p + i, h) = bit 2p + h of qh[4i .. 4i + 3] */
            for (int w = 0; w < 32; w++)
                for (int h = 0; h < 2; h++) {
                    unsigned v = 0;
                    for (int j = 0; j < 4; j++)
                        v |= (unsigned)(b[g->qh + 4 * (w % 8) + j] >> (2 * (w / 8) + h) & 1) << j;
                    mask_put(t + mo + 8 * (2 * w + h), n, v);
                }
        }
        for (int w = 0; w < g->nw; w++)
            for (int j = 0; j < 4; j++) t[qo + 64 * w + 4 * n + j] = (uint8_t)(b[g->qs + 4 * w + j] ^ flip);
    }
}

/* f16 bits -> bf16 bits, rounded to nearest even (exact in f32 first) */
static uint16_t f16_to_bf16(uint16_t h)
{
    const unsigned e = h >> 10 & 31, m = h & 1023, s = (unsigned)(h >> 15) << 31;
    uint32_t u;
    if (e == 31) u = s | 0x7f800000u | m << 13 | (m ? 0x400000u : 0); /* inf, quiet NaN */
    else if (e) u = s | (e + 112) << 23 | m << 13;
    else if (!m) u = s;
    else { /* subnormal: m 2^-24, normalized */
        int sh = 0;
        while (!(m << sh & 1024)) sh++;
        u = s | (uint32_t)(113 - sh) << 23 | (m << sh & 1023) << 13;
    }
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(u >> 16); /* NaN: kept quiet */
    return (uint16_t)((u + 0x7fffu + (u >> 16 & 1)) >> 16);
}

/* x16b: word n of step j = row n's elements 2j, 2j + 1 as bf16 */
static void write_x16b(int type, int64_t K, const uint8_t *const *rows, uint8_t *out)
{
    for (int64_t k = 0; k < K; k++)
        for (int n = 0; n < 16; n++) {
            uint16_t h;
            memcpy(&h, rows[n] + 2 * k, 2);
            if (type == KGT_F16) h = f16_to_bf16(h);
            memcpy(out + 4 * (16 * (k / 2) + n) + 2 * (k & 1), &h, 2);
        }
}

void gen_layout_write(int layout, int type, int64_t K, const uint8_t *const *rows, uint64_t row_bytes, uint8_t *out)
{
    x16_parts g;
    if (layout == KGT_LAYOUT_ROWS) {
        memcpy(out, rows[0], row_bytes);
        return;
    }
    if (layout == KGT_LAYOUT_X16B) {
        write_x16b(type, K, rows, out);
        return;
    }
    if (gen_layout_float(type)) { /* element k of the 16 rows side by side */
        const int es = type == KGT_F32 ? 4 : 2;
        for (int64_t k = 0; k < K; k++)
            for (int n = 0; n < 16; n++) memcpy(out + (16 * k + n) * es, rows[n] + k * es, (size_t)es);
        return;
    }
    if (!x16_parts_of(type, &g)) return; /* not reached: gen_layout_fits */
    const int64_t be = g.np ? 256 : 32, bb = (int64_t)row_bytes / (K / be);
    for (int64_t b = 0; b < K / be; b++) {
        const uint8_t *blk[16];
        for (int n = 0; n < 16; n++) blk[n] = rows[n] + b * bb;
        write_tile(type, &g, blk, out + b * 16 * bb);
    }
}
