/*
 * products.h — the product templates: matrix products over GGUF weights,
 * activation quantization, embedding lookup. Conventions: kernel.h.
 *
 * Weight types: every type include/kgen_types.h marks kernels = 1 (F32,
 * F16, BF16 and GGUF's block types), GGUF layout: a matrix is N rows (output channels) of
 * K elements (ne[0] = K contiguous), each row a whole number of blocks.
 * Pointers need no alignment beyond their element type's (GGUF blocks are
 * 2-byte aligned at best).
 */
#ifndef KGEN_PRODUCTS_H
#define KGEN_PRODUCTS_H

#include "kernel.h"

/* Y[M][N] = X[M][K] . W[N][K]^T, then the epilogue.
 *
 *   p[0] W      N rows of K elements of type `wtype`
 *   p[1] X      act KGT_ACT_F32: f32[M][K];
 *               act KGT_ACT_Q8:  kgt_q8a[M][K/32] (from kgt_quantize)
 *   p[2] Y      f32[M][ldy], or with KGT_EPI_OUT_Q8 kgt_q8a[M][ldy/32]:
 *               row m's N outputs at Y + m ldy (ldy = 0: N). A product can
 *               so write a column slice of a wider tensor (p[2] pointing at
 *               the slice's first column), e.g. Q, K and V of different
 *               weight types into one QKV row.
 *   p[3] bias   f32[N]            (read only with KGT_EPI_BIAS)
 *   p[4] resid  f32[M][ldy]       (read only with KGT_EPI_RESIDUAL; may be Y)
 *   p[5] W_up   like W            (read only with KGT_EPI_SWIGLU or KGT_EPI_GEGLU)
 *
 * layout: KGT_LAYOUT_ROWS (the default): W and W_up as above;
 * KGT_LAYOUT_X16: both rewritten into groups of 16 rows (mm_x16.h), for
 * the types gen/layout.c lists (act Q8; float types act F32) and N a
 * multiple of 16 only.
 * KGT_LAYOUT_X16B: F16, BF16 (act F32, N a multiple of 16, K even) as
 * bf16 pairs, multiplied against the activations rounded to bf16.
 * amx (a run-time value: may the thread use AMX tiles?): with X16, rows in
 * blocks of 16 go through mm_amx.h's tile where it is compiled in (the AMX
 * ISA level); ignored elsewhere. Same results up to f32 rounding.
 * pf (bytes, 0: none): with X16 and one activation row (decode), each
 * weight tile's lines are prefetched this far ahead; the same results.
 * mb (bytes): activation rows are taken in blocks of about this many
 * bytes (at least 16 rows), each kept in L2 while the thread's channels
 * pass over it; the same results.
 * nc (16 or 32; OUT_Q8: always 32): output channels per chunk, each
 * chunk's weights used for every row of a block; the same results.
 * mt (4, 6 or 8; others read as 4): activation rows per tile, each
 * weight vector decoded once for them (the x16 tiles hold up to 8; rows
 * layout tiles hold 4, so 6 or 8 run as two); the same results.
 *
 * Valid combinations (the generator refuses others; the template assumes
 * them): float weight types with act F32 only; quantized types with either;
 * ldy 0 or >= N (a multiple of 32 with OUT_Q8); layout X16 as above.
 * K: any for float types; a whole number of blocks for the quantized ones
 * (32 or 256 elements). KGT_EPI_OUT_Q8 needs N a multiple of 32.
 *
 * Epilogue, in this order: g = (W x) or, with SWIGLU, silu(W x) * (W_up x)
 * (GEGLU: gelu(W x) * (W_up x), kgt_vgelu's tanh GELU)
 * where silu(v) = v / (1 + e^-v); g += bias[n]; with GELU g = 0.5 g (1 +
 * erf(g / sqrt 2)) (the exact GELU, ops.h's kgt_vgelu_erf: BERT's
 * intermediate product); g += resid[m][n]; store g as f32, or quantize
 * each 32 outputs of a row to a q8a block (OUT_Q8).
 *
 * Threads split the N output channels (in multiples of 16, or 32 with
 * OUT_Q8, so no two threads write one cache line or block). Within its
 * share a thread walks chunks of 32 channels and, for each, tiles of `mt`
 * activation rows x 16 weight rows (x16; rows layout: 4 x 2, M = 1: 1 x
 * 4), so each weight block is decoded once per tile.
 *
 * Accuracy: act F32 accumulates in f32 with 8-lane partial sums; act Q8
 * computes each 32-element chunk's dot exactly in int32 and accumulates
 * the scaled chunks, and the min/offset terms (scale x activation sum), in
 * f32 (quants_q8.h). */
void kgt_mm(void *const *p, int ith, int nth, int64_t wtype, int64_t act, int64_t M, int64_t N, int64_t K,
            int64_t flags, int64_t ldy, int64_t layout, int64_t amx, int64_t pf, int64_t mb, int64_t nc, int64_t mt);

/* p[0] X f32[M][K] -> p[1] kgt_q8a[M][K/32], K a multiple of 32, X finite.
 * Per 32 values: d = amax/127, q = rint(x * (127/amax)) (nearest, ties to
 * even; q in [-127, 127]), sum = sum of q; a block with amax < 2^-120
 * (all zeros, say) gives d = 0, q = 0. */
void kgt_quantize(void *const *p, int ith, int nth, int64_t M, int64_t K);

/* p[0] table (rows of K elements of `wtype`), p[1] token ids int32_t[M],
 * p[2] out f32[M][K]: out[m] = dequantized table row ids[m] * scale (in
 * f32: the row's values times (float)scale; Gemma's sqrt(n_embd); scale
 * defaults to 1, which multiplies nothing). The ids are not checked (the
 * caller bounds them by the table's row count).
 * Encoders (BERT): pos_len > 0 adds two tables of pos_type (KGT_F32, the
 * default, KGT_F16 or KGT_BF16): p[3] positions [>= pos_len][K] and p[4]
 * one token-type row [K]: out[m] = (scale W[ids[m]] + T) + P[m % pos_len]
 * in f32, in that order (Hugging Face's BertEmbeddings'): row m is
 * position m % pos_len of its sequence (sequences of pos_len rows back to
 * back). pos_len 0 (the default): p[3] and p[4] are not read. Threads
 * split the M rows. layout KGT_LAYOUT_X16 (X16B): the table is in kgt_mm's
 * x16 (x16b) layout (a table the output product shares); rows the default. */
void kgt_embed(void *const *p, int ith, int nth, int64_t wtype, int64_t M, int64_t K, double scale, int64_t pos_len,
               int64_t pos_type, int64_t layout);

#endif
