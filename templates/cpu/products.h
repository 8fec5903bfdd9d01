/*
 * products.h — the product templates: matrix products over GGUF weights,
 * activation quantization, embedding lookup. Conventions: kernel.h.
 *
 * Weight types: KGT_F32, KGT_F16, KGT_BF16, KGT_Q8_0, KGT_Q4_0, KGT_Q4_1,
 * KGT_Q4_K, KGT_Q6_K, GGUF layout: a matrix is N rows (output channels) of
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
 *   p[2] Y      f32[M][N], or with KGT_EPI_OUT_Q8 kgt_q8a[M][N/32]
 *   p[3] bias   f32[N]            (read only with KGT_EPI_BIAS)
 *   p[4] resid  f32[M][N]         (read only with KGT_EPI_RESIDUAL; may be Y)
 *   p[5] W_up   like W            (read only with KGT_EPI_SWIGLU)
 *
 * Valid combinations (the generator refuses others; the template assumes
 * them): float weight types with act F32 only; quantized types with either.
 * K: any for float types; a multiple of 32 for Q4_0/Q4_1/Q8_0 and of 256
 * for Q4_K/Q6_K. KGT_EPI_OUT_Q8 needs N a multiple of 32.
 *
 * Epilogue, in this order: g = (W x) or, with SWIGLU, silu(W x) * (W_up x)
 * where silu(v) = v / (1 + e^-v); g += bias[n]; g += resid[m][n]; store g
 * as f32, or quantize each 32 outputs of a row to a q8a block (OUT_Q8).
 *
 * Threads split the N output channels (in multiples of 16, or 32 with
 * OUT_Q8, so no two threads write one cache line or block). Within its
 * share a thread walks chunks of 32 channels and, for each, tiles of 4
 * activation rows x 2 weight rows (M = 1: 1 x 4), so each weight block is
 * decoded once per 4 activation rows.
 *
 * Accuracy: act F32 accumulates in f32 with 8-lane partial sums; act Q8
 * computes each 32-element chunk's dot exactly in int32 and accumulates
 * the scaled chunks, and the min/offset terms (scale x activation sum), in
 * f32 (quants_q8.h). */
void kgt_mm(void *const *p, int ith, int nth, int64_t wtype, int64_t act, int64_t M, int64_t N, int64_t K,
            int64_t flags);

/* p[0] X f32[M][K] -> p[1] kgt_q8a[M][K/32], K a multiple of 32, X finite.
 * Per 32 values: d = amax/127, q = rint(x * (127/amax)) (nearest, ties to
 * even; q in [-127, 127]), sum = sum of q; a block with amax < 2^-120
 * (all zeros, say) gives d = 0, q = 0. */
void kgt_quantize(void *const *p, int ith, int nth, int64_t M, int64_t K);

/* p[0] table (rows of K elements of `wtype`), p[1] token ids int32_t[M],
 * p[2] out f32[M][K]: out[m] = dequantized table row ids[m]. The ids are
 * not checked (the caller bounds them by the table's row count). */
void kgt_embed(void *const *p, int ith, int nth, int64_t wtype, int64_t M, int64_t K);

#endif
