/*
 * mm_amx.h — kgt_mm's prefill tile on AMX (Intel Advanced Matrix
 * Extensions, int8), over weights in the x16 layout (mm_x16.h), against
 * q8a activations: 16 activation rows x 32 weight rows (two x16 groups) per
 * call (one group after the other), for the AMX ISA level's bitcode (and native builds on a CPU with
 * AMX); absent elsewhere (KGX_AMX 0).
 *
 * Per block column (32 elements: one scale per row on both sides):
 *   tmm2  A: the 16 activation rows' 32 quants, loaded in place from the
 *         q8a rows (stride: a row's bytes)
 *   tmm3  B: a group's quants, 8 rows of 64 bytes: the x16 tile as stored
 *         (Q8_0: q + 128), or its nibbles unpacked to bytes (Q4_0, Q4_1:
 *         row i the low nibbles of vector i, row 4 + i the high ones)
 *   tmm0  C: tdpbsud (signed A x unsigned B, exact int32 sums of 32
 *         products per output), zeroed per block, stored to memory
 * then per output row, in 16-lane vectors: (C - off x.sum) converted, times
 * d_row x.d, added to the f32 accumulators (Q4_1: plus m_row x.d x.sum):
 * the arithmetic of mm_x16.h's tile, so results agree up to the order of
 * the f32 sums (none: the same order per output).
 *
 * The kernel has the AMX tile state only if the process asked for it
 * (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): the runtime does at
 * open and passes the answer as the run-time parameter `amx`
 * (KGM_RT_AMX); 0 keeps the AVX-512 tile. mm_amx_begin loads the tile
 * configuration (per call: the thread may be new), mm_amx_end releases
 * the tiles.
 *
 * AMX-BF16 (mm_tile_amxbf), float weights in x16b (F16, BF16 as bf16
 * pairs: each group's 16 steps of 64 bytes from element k are the B tile
 * of elements k..k+31 as stored), against 16 activation rows rounded to
 * bf16 once (kgx_bf16_pairs) into a buffer of 16 x K bf16 (the A tiles,
 * 64 bytes of each row): no scales, so tdpbf16ps accumulates C over all of
 * K in the tile registers (tmm4, tmm5: two groups; A tmm6, B tmm7, tmm1),
 * stored once. The same products as mm_tile_x16b's, summed in AMX's order.
 */
#ifndef KGEN_MM_AMX_H
#define KGEN_MM_AMX_H

#include "mm_x16.h"

/* AMX-BF16's bound on K: its 16 activation rows of K bf16 sit in a 64 KiB
 * buffer on the stack */
enum { KGX_AMXBF_KMAX = 2048 };

#if KGQ_X16_VNNI && defined(__AMX_TILE__) && defined(__AMX_INT8__) && !defined(KGQ_PORTABLE)
#define KGX_AMX 1

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} kgx_tilecfg;

KG_INLINE void mm_amx_begin(void)
{
    kgx_tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    c.rows[0] = 16, c.colsb[0] = 64; /* C: 16 x 16 int32 */
    c.rows[2] = 16, c.colsb[2] = 32; /* A: 16 rows x 32 int8 */
    c.rows[3] = 8, c.colsb[3] = 64;  /* B: 8 x (16 x 4 int8) */
    for (int t = 4; t < 8; t++) c.rows[t] = 16, c.colsb[t] = 64; /* bf16: C 16 x 16 f32 (4, 5), A 16 x 32 bf16 (6), */
    c.rows[1] = 16, c.colsb[1] = 64;                              /* B 16 x (16 x 2 bf16) (7, 1) */
    _tile_loadconfig(&c);
}

KG_INLINE void mm_amx_end(void) { _tile_release(); }

/* a tile's quants as AMX B rows: Q8_0 in place; Q4 unpacked into buf */
KG_INLINE const uint8_t *mm_amx_b(int wt, const uint8_t *t, uint8_t *buf)
{
    if (wt == KGT_Q8_0) return t + kgx_qoff(wt);
    KGQ_UNROLL
    for (int i = 0; i < 4; i++) {
        const kgx_u8 r = kgx_load(t + kgx_qoff(wt) + 64 * i), lo = r & 15, hi = (r >> 4) & 15;
        memcpy(buf + 64 * i, &lo, 64);
        memcpy(buf + 64 * (4 + i), &hi, 64);
    }
    return buf;
}

/* y[m][16 v + n] = row n of group w[v] . activation row x + m xrow (q8a),
 * m < 16, v < NV: one group at a time, its 16 x 16 f32 sums in registers;
 * Q4's B rows are unpacked one block ahead (double-buffered), so a tile
 * load never waits on the stores just made */
KG_INLINE void mm_tile_amx(int wt, int NV, const uint8_t *const w[2], const uint8_t *x, int64_t xrow, int64_t K,
                           float y[16][32])
{
    const int64_t nb = K / 32, tb = kgx_tile_bytes(wt);
    const int32_t off = wt == KGT_Q4_0 ? 8 : wt == KGT_Q8_0 ? 128 : 0;
    _Alignas(64) int32_t c[2][16][16];
    _Alignas(64) uint8_t buf[2][512];
    for (int v = 0; v < NV; v++) {
        kgx_f32 acc[16];
        KGQ_UNROLL
        for (int m = 0; m < 16; m++) acc[m] = (kgx_f32){0};
        const uint8_t *bq = mm_amx_b(wt, w[v], buf[0]);
        /* block b's products go to c[b & 1] while block b - 1's, stored an
         * iteration ago, are scaled: a vector load never waits on a tile store */
        for (int64_t b = 0; b <= nb; b++) {
            if (b < nb) {
                _tile_zero(0);
                _tile_loadd(2, x + b * (int64_t)sizeof(kgt_q8a) + offsetof(kgt_q8a, qs), xrow);
                _tile_loadd(3, bq, 64);
                _tile_dpbsud(0, 2, 3);
                _tile_stored(0, c[b & 1], 64);
                if (b + 1 < nb) bq = mm_amx_b(wt, w[v] + (b + 1) * tb, buf[(b + 1) & 1]);
            }
            if (b == 0) continue;
            const int64_t pb = b - 1;
            const uint8_t *t = w[v] + pb * tb;
            const kgx_f32 dw = kgx_f16x16(t), mw = wt == KGT_Q4_1 ? kgx_f16x16(t + 32) : (kgx_f32){0};
            KGQ_UNROLL
            for (int m = 0; m < 16; m++) {
                const kgt_q8a *xb = (const kgt_q8a *)(const void *)(x + m * xrow) + pb;
                kgx_i32 ci;
                memcpy(&ci, c[pb & 1][m], sizeof ci);
                acc[m] += __builtin_convertvector(ci - off * xb->sum, kgx_f32) * (dw * xb->d);
                if (wt == KGT_Q4_1) acc[m] += mw * (xb->d * (float)xb->sum);
            }
        }
        KGQ_UNROLL
        for (int m = 0; m < 16; m++) memcpy(y[m] + 16 * v, &acc[m], sizeof acc[m]);
    }
}

#if KGX_BF16 && defined(__AMX_BF16__)
#define KGX_AMXBF 1

/* y[m][16 v + n] = row n of group w[v] (x16b) . row m of a (16 rows of K
 * bf16 pairs, K a multiple of 32), m < 16, v < NV */
KG_INLINE void mm_tile_amxbf(int NV, const uint8_t *const w[2], const uint32_t *a, int64_t K, float y[16][32])
{
    _tile_zero(4);
    if (NV > 1) _tile_zero(5);
    for (int64_t k = 0; k < K; k += 32) {
        _tile_loadd(6, a + k / 2, 2 * K);
        _tile_loadd(7, w[0] + 32 * k, 64);
        _tile_dpbf16ps(4, 6, 7);
        if (NV > 1) {
            _tile_loadd(1, w[1] + 32 * k, 64);
            _tile_dpbf16ps(5, 6, 1);
        }
    }
    _tile_stored(4, y[0], 128);
    if (NV > 1) _tile_stored(5, y[0] + 16, 128);
}
#else
#define KGX_AMXBF 0
#endif
#else
#define KGX_AMX 0
#define KGX_AMXBF 0
#endif

#endif
