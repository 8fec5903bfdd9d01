/*
 * mm.c — kgt_mm, the matrix product with fused epilogues (see products.h
 * for the contract). Structure, inner to outer:
 *
 *   mm_tile_q8 / mm_tile_f32   MT activation rows x R weight rows over all
 *   (mm_tile_fw: float weights on 512-bit targets, 4 x 4 of 16 lanes)
 *                              of K: each weight chunk is decoded once and
 *                              used for MT rows; MT*R independent
 *                              accumulators (in registers: MT and R are
 *                              constants and the loops fully unrolled);
 *                              the q8 tile goes by groups of 8 chunks
 *                              (mm_group_q8, quants_q8.h). MT <= 4.
 *   mm_tile_x16*               the x16 layouts' tiles (mm_x16.h): MT rows
 *                              x 16 or 32 channels, MT <= 8
 *   mm_block                   R-row steps over a chunk of up to 32 output
 *                              channels (`nc`: 32, or 16); row indices past the chunk's end are
 *                              clamped to its last row (recomputed, dropped)
 *   mm_typed                   blocks of activation rows (about `mb`
 *                              bytes, default 256 KiB, kept in L2); in each,
 *                              this thread's channels in chunks of `nc`
 *                              (32 or 16), each for the block's rows in
 *                              tiles of `mt` rows (4, 6 or 8; the rest of
 *                              a block: the smallest tile that holds it,
 *                              rows past it clamped; a last single row:
 *                              the 1-row tile), then the epilogue
 *   kgt_mm                     one mm_typed per (type, activation mode)
 */
#include "ops.h" /* kgt_vgelu_erf (the GELU epilogue; clang only) */
#include "products.h"
#include "mm_amx.h"
#include "quants_q8.h"

enum { MM_MT = KGX_MT, MM_NC = 32 }; /* the most rows per tile (mm_x16.h), channels per chunk */

/* The tiles compiled. Every always-inlined tile size is another copy of
 * every type's code: four tripled GCC's compile time (15 minutes for one
 * file) and took clang with ASan past 20 minutes for mm.c alone. So:
 *   clang (the bitcode; the native build)   tiles of 1, 4, 6 and 8 rows;
 *   GCC (the tests' portable builds)        1 and 8, other counts of rows
 *                                           as a tile of 8;
 *   clang with sanitizers (native)          1 and 4, 5-8 rows as two
 *                                           tiles of 4 (GCC's sanitized
 *                                           builds run the 8-row tiles).
 * The same arithmetic per row throughout; rows past the count are
 * recomputed and dropped. */
#if defined(__clang__) && defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define MM_TILES 14
#endif
#endif
#if !defined(MM_TILES) && defined(__clang__)
#define MM_TILES 1468
#elif !defined(MM_TILES)
#define MM_TILES 18
#endif

typedef struct {
    const uint8_t *w[2]; /* W, W_up */
    const uint8_t *x;
    int64_t wrow, xrow;  /* bytes per row */
    int64_t M, K;
    int64_t layout;      /* KGT_LAYOUT_*: of W and W_up */
    int64_t pf;          /* x16: software prefetch this many bytes ahead (0: none) */
} mm_args;

/* chunk c0+c of W rows w[r] against activation rows x[m] (q8a); hd[r]:
 * the header of row r's block (K-quants) */
KG_INLINE void mm_chunk_q8(int wt, int MT, int R, const uint8_t *const w[4], const uint8_t *const x[4], int64_t c0,
                           int c, const float T[4][4][8], const kgq_q8hdr hd[4], kgq_f32x8 acc[4][4])
{
    const int64_t bb = kgq_blk_bytes(wt);
    const int kq = kgq_subs(wt) > 1;
    kgq_wq q[4];
    KGQ_UNROLL
    for (int r = 0; r < R; r++) q[r] = kgq_q8_quants(wt, w[r] + (kq ? c0 / 8 : c0 + c) * bb, kq ? c : 0, &hd[r]);
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        const kgt_q8a *xb = (const kgt_q8a *)(const void *)x[m] + c0 + c;
        KGQ_UNROLL
        for (int r = 0; r < R; r++) kgq_acc_chunk(&acc[m][r], kgq_dot32(wt, &q[r], xb), T[m][r][c]);
    }
}

/* chunks c0..c0+nc-1 of W rows w[r] against activation rows x[m] (q8a),
 * into acc[m][r]: nc = 8 (a group, c0 a multiple of 8) or 1. The same
 * bytes `pf` further on (the next tile's rows) are prefetched: the tile's
 * rows are short interleaved streams (a 2048-element Q4_0 row is 18 cache
 * lines), which the hardware prefetchers pick up too late. */
KG_INLINE void mm_group_q8(int wt, int MT, int R, const uint8_t *const w[4], const uint8_t *const x[4], int64_t c0,
                           int nc, int64_t pf, kgq_f32x8 acc[4][4])
{
    const int64_t bb = kgq_blk_bytes(wt);
    const int kq = kgq_subs(wt) > 1; /* K-quant: the group is one block */
    const int64_t gb = kq ? bb : nc * bb, g0 = (kq ? c0 / 8 : c0) * bb; /* the group's bytes in a row */
    KGQ_UNROLL
    for (int r = 0; r < R; r++)
        for (int64_t o = 0; o < gb + 63; o += 64) /* integer arithmetic: may point past the matrix */
            __builtin_prefetch((const void *)((uintptr_t)w[r] + (uintptr_t)(g0 + pf + o)));
    /* T[m][r][c]: the float factor of chunk c0+c's integer dot; in memory
     * (indexed by the loop's c), so that each use is a broadcast load */
    float T[4][4][8];
    kgq_q8hdr hd[4];
    kgq_f32x8 dx[4], xs[4], xh[4];
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) kgq_xscales(wt, (const kgt_q8a *)(const void *)x[m] + c0, nc, &dx[m], &xs[m], &xh[m]);
    KGQ_UNROLL
    for (int r = 0; r < R; r++) {
        const kgq_ws ws = kgq_wscales(wt, w[r], c0, nc);
        hd[r] = kgq_q8_header(wt, w[r] + g0);
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) {
            const kgq_f32x8 t = ws.s * dx[m];
            memcpy(T[m][r], &t, sizeof t);
            if (kgq_has_min(wt)) acc[m][r] += ws.m * xs[m];
            if (kgq_half_min(wt)) acc[m][r] += ws.mh * xh[m]; /* Q2_K: the first 16's min */
        }
    }
    /* the chunk loop stays rolled, so T is indexed by a variable and read
     * by broadcast loads; K-quants unroll by 4 (Q6_K's, Q3_K's and Q2_K's
     * bit positions repeat every 4 chunks) */
    if (kq) {
        KGQ_UNROLL4
        for (int c = 0; c < nc; c++) mm_chunk_q8(wt, MT, R, w, x, c0, c, T, hd, acc);
    } else {
        KGQ_NOUNROLL
        for (int c = 0; c < nc; c++) mm_chunk_q8(wt, MT, R, w, x, c0, c, T, hd, acc);
    }
}

/* out[m][r] = W row w[r] . activation row x[m] (q8a blocks); pf: see
 * mm_group_q8 */
KG_INLINE void mm_tile_q8(int wt, int MT, int R, const uint8_t *const w[4], const uint8_t *const x[4], int64_t K,
                          int64_t pf, float out[4][4])
{
    kgq_f32x8 acc[4][4];
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        KGQ_UNROLL
        for (int r = 0; r < R; r++) acc[m][r] = (kgq_f32x8){0};
    }
    const int64_t nch = K / 32;
    int64_t c0 = 0;
    for (; c0 + 8 <= nch; c0 += 8) mm_group_q8(wt, MT, R, w, x, c0, 8, pf, acc);
    for (; c0 < nch; c0++) mm_group_q8(wt, MT, R, w, x, c0, 1, pf, acc); /* 32-element types' last < 8 blocks */
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        KGQ_UNROLL
        for (int r = 0; r < R; r++) out[m][r] = kgq_hsum8(&acc[m][r]);
    }
}

/* out[m][r] = W row w[r] . activation row x[m] (f32) */
KG_INLINE void mm_tile_f32(int wt, int MT, int R, const uint8_t *const w[4], const uint8_t *const x[4], int64_t K,
                           float out[4][4])
{
    kgq_f32x8 acc[4][4];
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        KGQ_UNROLL
        for (int r = 0; r < R; r++) acc[m][r] = (kgq_f32x8){0};
    }
    const int64_t blk = kgq_blk(wt), nb = K / blk, bb = kgq_blk_bytes(wt);
    const int subs = kgq_subs(wt);
    for (int64_t ib = 0; ib < nb; ib++) {
        kgq_blk_t h[4];
        KGQ_UNROLL
        for (int r = 0; r < R; r++) h[r] = kgq_block(wt, w[r] + ib * bb);
        KGQ_UNROLL
        for (int s = 0; s < subs; s++) {
            kgq_f32x8 wv[4][4];
            KGQ_UNROLL
            for (int r = 0; r < R; r++) kgq_deq32(wt, &h[r], s, wv[r]);
            KGQ_UNROLL
            for (int m = 0; m < MT; m++) {
                kgq_f32x8 xv[4];
                memcpy(xv, x[m] + 4 * (ib * blk + 32 * s), sizeof xv);
                KGQ_UNROLL
                for (int r = 0; r < R; r++)
                    acc[m][r] += (wv[r][0] * xv[0] + wv[r][1] * xv[1]) + (wv[r][2] * xv[2] + wv[r][3] * xv[3]);
            }
        }
    }
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        KGQ_UNROLL
        for (int r = 0; r < R; r++) {
            float t = 0.0f; /* float types: K past the last whole chunk */
            for (int64_t e = nb * blk; e < K; e++) {
                float xe;
                memcpy(&xe, x[m] + 4 * e, 4);
                t += kgq_w1(wt, w[r], e) * xe;
            }
            out[m][r] = kgq_hsum8(&acc[m][r]) + t;
        }
    }
}

/* ── float weights (F32, F16, BF16) against f32 rows, 512-bit targets: a
 * 4 x 4 tile of 16-lane fused multiply-adds (16 accumulators, 4 weight
 * vectors and one activation vector: 21 of the 32 registers); K past the
 * last whole vector in scalar. Elsewhere mm_tile_f32. */
#if defined(KG_ISA_AVX512)
#define MMF_WIDE 1
typedef float mmf_v __attribute__((vector_size(64)));
typedef uint16_t mmf_h __attribute__((vector_size(32)));
typedef uint32_t mmf_u __attribute__((vector_size(64)));
typedef _Float16 mmf_f16 __attribute__((vector_size(32)));

KG_INLINE mmf_v mmf_load(int wt, const uint8_t *p)
{
    mmf_v v;
    mmf_h h;
    if (wt == KGT_F32) return memcpy(&v, p, sizeof v), v;
    memcpy(&h, p, sizeof h);
    if (wt == KGT_BF16) return (mmf_v)(__builtin_convertvector(h, mmf_u) << 16);
    return __builtin_convertvector((mmf_f16)h, mmf_v); /* F16: vcvtph2ps */
}

/* the lane sums of a[0..3] at once: pairs of lanes, then pairs of pairs
 * interleaved across the four, then the four 128-bit quarters */
KG_INLINE void mmf_hsum4(const mmf_v a[4], float out[4])
{
    typedef float f4 __attribute__((vector_size(16)));
    mmf_v s01 = __builtin_shufflevector(a[0], a[1], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30) +
                __builtin_shufflevector(a[0], a[1], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
    mmf_v s23 = __builtin_shufflevector(a[2], a[3], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30) +
                __builtin_shufflevector(a[2], a[3], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
    mmf_v t = __builtin_shufflevector(s01, s23, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29) +
              __builtin_shufflevector(s01, s23, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    f4 r = (__builtin_shufflevector(t, t, 0, 1, 2, 3) + __builtin_shufflevector(t, t, 4, 5, 6, 7)) +
           (__builtin_shufflevector(t, t, 8, 9, 10, 11) + __builtin_shufflevector(t, t, 12, 13, 14, 15));
    memcpy(out, &r, sizeof r);
}

KG_INLINE int mmf_type(int wt) { return wt == KGT_F32 || wt == KGT_F16 || wt == KGT_BF16; }

KG_INLINE void mm_tile_fw(int wt, int MT, const uint8_t *const w[4], const uint8_t *const x[4], int64_t K,
                          float out[4][4])
{
    mmf_v acc[4][4];
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        KGQ_UNROLL
        for (int r = 0; r < 4; r++) acc[m][r] = (mmf_v){0};
    }
    const int64_t es = wt == KGT_F32 ? 4 : 2, nk = K / 16 * 16;
    for (int64_t k = 0; k < nk; k += 16) {
        mmf_v wv[4];
        KGQ_UNROLL
        for (int r = 0; r < 4; r++) wv[r] = mmf_load(wt, w[r] + k * es);
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) {
            mmf_v xv;
            memcpy(&xv, x[m] + 4 * k, sizeof xv);
            KGQ_UNROLL
            for (int r = 0; r < 4; r++) acc[m][r] += wv[r] * xv;
        }
    }
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        mmf_hsum4(acc[m], out[m]);
        for (int r = 0; r < 4 && nk < K; r++) {
            float t = 0.0f;
            for (int64_t e = nk; e < K; e++) {
                float xe;
                memcpy(&xe, x[m] + 4 * e, 4);
                t += kgq_w1(wt, w[r], e) * xe;
            }
            out[m][r] += t;
        }
    }
}
#else
#define MMF_WIDE 0
#endif

/* Whether a tile takes both 16-row groups of a chunk of 32 at once. AVX2:
 * a tile's sums in registers are one group of 16 rows (MT x 2 ymm; two
 * groups, MT x 4 ymm of 16, spill), so the second group is a tile of its
 * own (mm_x16_second), into y[m][16..31]. Measured on the 2-core EPYC VM
 * (README, Performance): SmolLM2-shaped F16 prefill 2.5x, Q4_0 decode
 * 1.5x; but F16 decode (MT 1: 4 sums) ran 10% faster with both groups */
KG_INLINE int mm_x16_both(int wt, int MT, int layout, int64_t nc)
{
    return nc > 16 && (!KGX_AVX2 || layout == KGT_LAYOUT_X16B || (MT == 1 && kgx_ftype(wt)));
}

/* y's values so far stored and y kept in memory, so that the tiles after
 * this point do not hold the earlier tiles' results in registers (they
 * did: F16 prefill's second group spilled 6 of its 8 sums in its k loop) */
#define MM_FLUSH(y) __asm__ volatile("" : : "r"(y) : "memory")

KG_INLINE void mm_x16_second(int wt, int MT, const uint8_t *wg1, const uint8_t *const xr[MM_MT], const mm_args *a,
                             float y[MM_MT][MM_NC])
{
    const uint8_t *w1[2] = {wg1, wg1};
    float y2[MM_MT][MM_NC];
    MM_FLUSH(y);
    if (kgx_ftype(wt)) mm_tile_x16f(wt, MT, 1, w1, xr, a->K, a->pf, y2);
    else mm_tile_x16(wt, MT, 1, w1, xr, a->K, a->pf, y2);
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) memcpy(y[m] + 16, y2[m], 16 * sizeof(float));
}

/* mm_block over rows-layout weights (and the float types' rows), MT <= 4 */
KG_INLINE void mm_block_rows(int wt, int act, int MT, const mm_args *a, int g, int64_t m0, int64_t n0, int64_t nc,
                             float y[][MM_NC])
{
#if MMF_WIDE
    const int wide = act != KGT_ACT_Q8 && mmf_type(wt);
#else
    const int wide = 0;
#endif
    const int R = MT == 1 || wide ? 4 : 2;
    const uint8_t *xr[4];
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) xr[m] = a->x + (m0 + m < a->M ? m0 + m : a->M - 1) * a->xrow;
    for (int64_t j = 0; j < nc; j += R) {
        const uint8_t *wr[4];
        float out[4][4];
        KGQ_UNROLL
        for (int r = 0; r < R; r++) wr[r] = a->w[g] + (n0 + (j + r < nc ? j + r : nc - 1)) * a->wrow;
        if (act == KGT_ACT_Q8) mm_tile_q8(wt, MT, R, wr, xr, a->K, R * a->wrow, out);
#if MMF_WIDE
        else if (wide) mm_tile_fw(wt, MT, wr, xr, a->K, out);
#endif
        else mm_tile_f32(wt, MT, R, wr, xr, a->K, out);
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) {
            KGQ_UNROLL
            for (int r = 0; r < R; r++)
                if (j + r < nc) y[m][j + r] = out[m][r];
        }
    }
}

/* y[m][j] = (W or W_up, by g) row n0+j . X row m0+m, j < nc, m < MT (1,
 * 2, 4, 6 or 8; rows past M are row M-1's, recomputed and dropped) */
KG_INLINE void mm_block(int wt, int act, int MT, const mm_args *a, int g, int64_t m0, int64_t n0, int64_t nc,
                        float y[MM_MT][MM_NC])
{
    if (a->layout == KGT_LAYOUT_X16 && act == KGT_ACT_Q8 && kgx_type(wt)) { /* nc: 16 or 32, n0 % 16 = 0 */
        const int64_t gb = 16 * a->wrow;
        const uint8_t *wg[2] = {a->w[g] + n0 / 16 * gb, a->w[g] + (n0 / 16 + 1) * gb}, *xr[MM_MT];
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) xr[m] = a->x + (m0 + m < a->M ? m0 + m : a->M - 1) * a->xrow;
#if KGX_AVX2
        if (MT > 2 && (kgq_blk(wt) == 32 || wt == KGT_Q4_K || wt == KGT_Q5_K)) { /* half groups (mm_x16_avx2.h) */
            for (int v = 0; v < (nc > 16 ? 2 : 1); v++)
                for (int hh = 0; hh < 2; hh++) {
                    if (kgq_blk(wt) == 32) mm_tile_x16_half(wt, MT, wg[v], xr, a->K, hh, y, 16 * v + 8 * hh);
                    else mm_tile_x16k_half(wt, MT, wg[v], xr, a->K, hh, y, 16 * v + 8 * hh);
                    MM_FLUSH(y);
                }
            return;
        }
#endif
        const int both = mm_x16_both(wt, MT, a->layout, nc);
        if (both) mm_tile_x16(wt, MT, 2, wg, xr, a->K, a->pf, y);
        else mm_tile_x16(wt, MT, 1, wg, xr, a->K, a->pf, y);
        if (nc > 16 && !both) mm_x16_second(wt, MT, wg[1], xr, a, y);
        return;
    }
    if (a->layout != KGT_LAYOUT_ROWS && act == KGT_ACT_F32 && kgx_ftype(wt)) { /* x16, x16b (F16, BF16) */
        const int64_t gb = 16 * a->wrow;
        const uint8_t *wg[2] = {a->w[g] + n0 / 16 * gb, a->w[g] + (n0 / 16 + 1) * gb}, *xr[MM_MT];
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) xr[m] = a->x + (m0 + m < a->M ? m0 + m : a->M - 1) * a->xrow;
        const int both = mm_x16_both(wt, MT, a->layout, nc);
        if (a->layout == KGT_LAYOUT_X16B && both) mm_tile_x16b(MT, 2, wg, xr, a->K, a->pf, y);
        else if (a->layout == KGT_LAYOUT_X16B) mm_tile_x16b(MT, 1, wg, xr, a->K, a->pf, y);
        else if (both) mm_tile_x16f(wt, MT, 2, wg, xr, a->K, a->pf, y);
        else mm_tile_x16f(wt, MT, 1, wg, xr, a->K, a->pf, y);
        if (nc > 16 && !both) mm_x16_second(wt, MT, wg[1], xr, a, y); /* x16 only: x16b's both is nc > 16 */
        return;
    }
    if (MT > 4) { /* the rows layout's tiles hold 4 rows: two tiles */
        mm_block_rows(wt, act, 4, a, g, m0, n0, nc, y);
        mm_block_rows(wt, act, MT - 4, a, g, m0 + 4, n0, nc, y + 4);
    } else {
        mm_block_rows(wt, act, MT, a, g, m0, n0, nc, y);
    }
}

/* the epilogue for rows m0..m0+mt-1, channels n0..n0+nc-1; Y and resid
 * rows ldy apart */
KG_INLINE void mm_epilogue(void *const *p, int64_t flags, int64_t ldy, int64_t m0, int64_t mt, int64_t n0, int64_t nc,
                           float y[2][MM_MT][MM_NC])
{
    const float *bias = flags & KGT_EPI_BIAS ? p[3] : NULL;
    const float *res = flags & KGT_EPI_RESIDUAL ? p[4] : NULL; /* may be Y: read before written */
    for (int64_t m = 0; m < mt; m++) {
        float v[MM_NC];
        memcpy(v, y[0][m], sizeof v);
        if (flags & (KGT_EPI_SWIGLU | KGT_EPI_GEGLU)) { /* silu(g) or tanh GELU(g), times u */
            const int geglu = (flags & KGT_EPI_GEGLU) != 0;
#if defined(__clang__)
            int64_t j = 0;
            for (; j + KGT_VF <= nc; j += KGT_VF) {
                const kgt_vf g = kgt_vload(v + j);
                kgt_vstore(v + j, (geglu ? kgt_vgelu(g) : kgt_vsilu(g)) * kgt_vload(y[1][m] + j));
            }
            if (j < nc) {
                const kgt_vf g = kgt_vload_part(v + j, nc - j, 0.0f);
                kgt_vstore_part(v + j, nc - j, (geglu ? kgt_vgelu(g) : kgt_vsilu(g)) * kgt_vload_part(y[1][m] + j, nc - j, 0.0f));
            }
#else /* the tests' portable GCC builds: libm's expf (kgt_vgelu's formula: x / (1 + e^(-2u))) */
            for (int64_t j = 0; j < nc; j++) {
                const float g = v[j], t = geglu ? g * (1.5957691216057308f + 0.0713548162726009f * g * g) : g;
                v[j] = g / (1.0f + expf(-t)) * y[1][m][j];
            }
#endif
        }
        if (flags & KGT_EPI_BIAS)
            for (int64_t j = 0; j < nc; j++) v[j] += bias[n0 + j];
        if (flags & KGT_EPI_GELU) { /* exact GELU, a vector at a time */
#if defined(__clang__)
            int64_t j = 0;
            for (; j + KGT_VF <= nc; j += KGT_VF) kgt_vstore(v + j, kgt_vgelu_erf(kgt_vload(v + j)));
            if (j < nc) kgt_vstore_part(v + j, nc - j, kgt_vgelu_erf(kgt_vload_part(v + j, nc - j, 0.0f)));
#else /* the tests' portable builds by GCC, which does not see ops.h's vector helpers: libm's erff */
            for (int64_t j = 0; j < nc; j++) v[j] = 0.5f * v[j] * (1.0f + erff(v[j] * 0.70710678118654752f));
#endif
        }
        if (flags & KGT_EPI_RESIDUAL)
            for (int64_t j = 0; j < nc; j++) v[j] += res[(m0 + m) * ldy + n0 + j];
        if (flags & KGT_EPI_OUT_Q8) /* nc = 32: N and the thread's share are multiples of 32 */
            kgq_quantize32(v, (kgt_q8a *)p[2] + (m0 + m) * (ldy / 32) + n0 / 32);
        else if (nc == MM_NC) /* a whole chunk: a fixed-size copy, inlined */
            memcpy((float *)p[2] + (m0 + m) * ldy + n0, v, MM_NC * sizeof(float));
        else
            memcpy((float *)p[2] + (m0 + m) * ldy + n0, v, (size_t)nc * sizeof(float));
    }
}

#if KGX_AMX
/* the epilogue of 16 rows from m0, MM_MT at a time */
KG_INLINE void mm_epilogue16(void *const *p, int ng, int64_t flags, int64_t ldy, int64_t m0, int64_t n0, int64_t nc,
                             float y16[2][16][32])
{
    _Static_assert(16 % MM_MT == 0, "16 rows are whole tiles");
    for (int i = 0; i < 16 / MM_MT; i++) {
        float y[2][MM_MT][MM_NC];
        for (int g = 0; g < ng; g++) memcpy(y[g], y16[g][MM_MT * i], sizeof y[g]);
        mm_epilogue(p, flags, ldy, m0 + MM_MT * i, MM_MT, n0, nc, y);
    }
}

/* rows m0..m0+15 of the chunk n0..n0+nc-1 on AMX (mm_amx.h), then the
 * epilogue 4 rows at a time */
KG_INLINE void mm_rows16_amx(int wt, const mm_args *a, void *const *p, int ng, int64_t flags, int64_t ldy, int64_t m0,
                             int64_t n0, int64_t nc)
{
    float y16[2][16][32];
    const int64_t gb = 16 * a->wrow;
    for (int g = 0; g < ng; g++) {
        const uint8_t *wg[2] = {a->w[g] + n0 / 16 * gb, a->w[g] + (n0 / 16 + 1) * gb};
        if (nc > 16) mm_tile_amx(wt, 2, wg, a->x + m0 * a->xrow, a->xrow, a->K, y16[g]);
        else mm_tile_amx(wt, 1, wg, a->x + m0 * a->xrow, a->xrow, a->K, y16[g]);
    }
    mm_epilogue16(p, ng, flags, ldy, m0, n0, nc, y16);
}
#endif

#if KGX_AMXBF
/* rows m0..m0+15 on AMX-BF16 (mm_amx.h), every chunk n0 of lo..hi: the
 * rows rounded to bf16 once, then each chunk's two groups */
KG_INLINE void mm_rows16_amxbf(const mm_args *a, void *const *p, int ng, int64_t flags, int64_t ldy, int64_t m0,
                               int64_t lo, int64_t hi)
{
    _Alignas(64) uint32_t ab[16 * (KGX_AMXBF_KMAX / 2)];
    for (int m = 0; m < 16; m++)
        for (int64_t k = 0; k < a->K; k += 32) kgx_bf16_pairs(a->x + (m0 + m) * a->xrow + 4 * k, 32, ab + m * a->K / 2 + k / 2);
    const int64_t gb = 16 * a->wrow;
    for (int64_t n0 = lo; n0 < hi; n0 += MM_NC) {
        const int64_t nc = hi - n0 < MM_NC ? hi - n0 : MM_NC;
        float y16[2][16][32];
        for (int g = 0; g < ng; g++) {
            const uint8_t *wg[2] = {a->w[g] + n0 / 16 * gb, a->w[g] + (n0 / 16 + 1) * gb};
            if (nc > 16) mm_tile_amxbf(2, wg, ab, a->K, y16[g]);
            else mm_tile_amxbf(1, wg, ab, a->K, y16[g]);
        }
        mm_epilogue16(p, ng, flags, ldy, m0, n0, nc, y16);
    }
}
#endif

KG_INLINE void mm_typed(int wt, int act, void *const *p, int ith, int nth, int64_t M, int64_t N, int64_t K,
                        int64_t flags, int64_t ldy, int64_t layout, int64_t amx, int64_t pf, int64_t mb, int64_t nc_,
                        int64_t mt)
{
    const mm_args a = {
        {p[0], flags & (KGT_EPI_SWIGLU | KGT_EPI_GEGLU) ? p[5] : NULL},
        p[1],
        kgq_row_bytes(wt, K),
        act == KGT_ACT_Q8 ? K / 32 * (int64_t)sizeof(kgt_q8a) : K * (int64_t)sizeof(float),
        M,
        K,
        layout,
        pf,
    };
    const int ng = flags & (KGT_EPI_SWIGLU | KGT_EPI_GEGLU) ? 2 : 1;
    int64_t lo, hi;
    kgt_split(N, flags & KGT_EPI_OUT_Q8 ? 32 : 16, ith, nth, &lo, &hi);
    /* activation rows in blocks of about `mb` bytes (kept in L2 while this
     * thread's channels pass over them; mb is in rows from here on); in
     * each, AMX-BF16's blocks of 16 rows over all of them, then chunks of
     * 32 channels, then (int8 AMX's blocks of 16 rows and) tiles of 4 rows */
    mb = mb / (a.xrow > 0 ? a.xrow : 1) / 16 * 16;
    mb = mb < 16 ? 16 : mb;
    /* channels per chunk: 16 or 32 (OUT_Q8: 32, whole q8 blocks) */
    const int64_t cs = flags & KGT_EPI_OUT_Q8 || nc_ != 16 ? MM_NC : 16;
    /* activation rows per tile: 4, 6 or 8 */
    mt = mt == 6 || mt == 8 ? mt : 4;
#if KGX_AMX
    /* int8 (x16, 32-element blocks) or bf16 (x16b, K a multiple of 32 up to the A buffer's bound) */
    const int amxbf = KGX_AMXBF && amx && layout == KGT_LAYOUT_X16B && act == KGT_ACT_F32 && M >= 16 &&
                      K % 32 == 0 && K <= KGX_AMXBF_KMAX;
    amx = amx && layout == KGT_LAYOUT_X16 && act == KGT_ACT_Q8 && kgx_type32(wt) && M >= 16;
    if (amx || amxbf) mm_amx_begin();
#else
    (void)amx;
#endif
    for (int64_t b0 = 0; b0 < M; b0 += mb) {
        const int64_t b1 = M - b0 < mb ? M : b0 + mb;
        int64_t r0 = b0; /* the block's rows left after AMX-BF16's blocks of 16 */
#if KGX_AMXBF
        if (amxbf)
            for (; r0 + 16 <= b1; r0 += 16) mm_rows16_amxbf(&a, p, ng, flags, ldy ? ldy : N, r0, lo, hi);
#endif
        for (int64_t n0 = lo; n0 < hi; n0 += cs) {
            const int64_t nc = hi - n0 < cs ? hi - n0 : cs;
            int64_t m0 = r0;
#if KGX_AMX
            if (amx)
                for (; m0 + 16 <= b1; m0 += 16) mm_rows16_amx(wt, &a, p, ng, flags, ldy ? ldy : N, m0, n0, nc);
#endif
            for (; m0 < b1; m0 += mt) {
                const int64_t rows = b1 - m0 < mt ? b1 - m0 : mt;
                float y[2][MM_MT][MM_NC];
                for (int g = 0; g < ng; g++) { /* the smallest tile that holds the rows */
                    if (rows == 1) {
                        mm_block(wt, act, 1, &a, g, m0, n0, nc, y[g]);
                    } else if (MM_TILES == 14) { /* one call site: one copy of the tile */
                        for (int64_t h = 0; h < rows; h += 4) mm_block(wt, act, 4, &a, g, m0 + h, n0, nc, y[g] + h);
                    } else if (MM_TILES == 1468 && rows <= 4) {
                        mm_block(wt, act, 4, &a, g, m0, n0, nc, y[g]);
                    } else if (MM_TILES == 1468 && rows <= 6) {
                        mm_block(wt, act, 6, &a, g, m0, n0, nc, y[g]);
                    } else {
                        mm_block(wt, act, 8, &a, g, m0, n0, nc, y[g]);
                    }
                }
                mm_epilogue(p, flags, ldy ? ldy : N, m0, rows, n0, nc, y);
            }
        }
    }
#if KGX_AMX
    if (amx || amxbf) mm_amx_end();
#endif
}

/* A test build may compile some weight types only: KGT_MM_TYPES(wt) is
 * nonzero for those (tests/kernels_portable_b.c); wt is a constant in each
 * case of the dispatch, so the others' code is never generated. */
#ifndef KGT_MM_TYPES
#define KGT_MM_TYPES(wt) 1
#endif

KG_INLINE void mm_act(int wt, void *const *p, int ith, int nth, int64_t act, int64_t M, int64_t N, int64_t K,
                      int64_t flags, int64_t ldy, int64_t layout, int64_t amx, int64_t pf, int64_t mb, int64_t nc,
                      int64_t mt)
{
    if (!KGT_MM_TYPES(wt)) return;
    if (act == KGT_ACT_Q8 && kgq_is_quant(wt)) mm_typed(wt, KGT_ACT_Q8, p, ith, nth, M, N, K, flags, ldy, layout, amx, pf, mb, nc, mt);
    else if (kgx_ftype(wt)) mm_typed(wt, KGT_ACT_F32, p, ith, nth, M, N, K, flags, ldy, layout, amx, pf, mb, nc, mt);
    else mm_typed(wt, KGT_ACT_F32, p, ith, nth, M, N, K, flags, ldy, KGT_LAYOUT_ROWS, 0, 0, mb, nc, mt);
}

KG_PARAM_DEFAULT(mm, ldy, 0);
KG_PARAM_DEFAULT(mm, layout, KGT_LAYOUT_ROWS);
KG_PARAM_DEFAULT(mm, amx, 0);
KG_PARAM_DEFAULT(mm, pf, 0);
KG_PARAM_DEFAULT(mm, mb, 262144);
KG_PARAM_DEFAULT(mm, nc, 32);
KG_PARAM_DEFAULT(mm, mt, 4);

KG_KERNEL void kgt_mm(void *const *p, int ith, int nth, int64_t wtype, int64_t act, int64_t M, int64_t N, int64_t K,
                      int64_t flags, int64_t ldy, int64_t layout, int64_t amx, int64_t pf, int64_t mb, int64_t nc,
                      int64_t mt)
{
    KGQ_DISPATCH(wtype, mm_act, p, ith, nth, act, M, N, K, flags, ldy, layout, amx, pf, mb, nc, mt)
}
