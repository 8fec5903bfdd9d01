/*
 * ref_kernels.h — plain scalar references for the product templates' tests
 * (tests/test_kernels_mm.c). Written from the format definitions (GGUF's
 * block layouts, read byte by byte at their offsets; IEEE half by its
 * definition), sharing no code with templates/cpu/quants.h; only the type
 * ids, flags and the kgt_q8a struct (kgen's own format) come from kernel.h.
 * Checked against llama.cpp's Python dequantizers on real tensors
 * (tests/ref/dequant.py).
 */
#ifndef KGEN_REF_KERNELS_H
#define KGEN_REF_KERNELS_H

#include <stdint.h>

#include "templates/cpu/kernel.h"

float ref_f16(uint16_t h);  /* IEEE binary16 -> float, by definition */
float ref_bf16(uint16_t h);


int ref_type_known(int type);                 /* one of the 15 weight types */
int64_t ref_block_elems(int type);            /* 1 for float types          */
int64_t ref_row_bytes(int type, int64_t K);

/* y[0..K) = row of `type` (K a whole number of blocks) */
void ref_dequant_row(int type, const void *row, int64_t K, float *y);

/* kgen's q8a: per 32 values d = amax/127, q = rint(x * (127/amax)), sum */
void ref_quantize_q8a(const float *x, int64_t K, kgt_q8a *y);
void ref_dequant_q8a(const kgt_q8a *x, int64_t K, float *y);

/* Y[M][N] = epilogue(X . W^T) in double, W and W_up as dequantized floats
 * [N][K], X [M][K]; flags as kgt_mm's except OUT_Q8 (the caller quantizes).
 * Epilogue order: swiglu, + bias, + residual. wup/bias/res may be NULL when
 * their flag is off. If mag is not NULL it gets each output's magnitude
 * for error scaling: sum_k |w x| (+ |bias| + |res|), through swiglu to
 * first order: |silu(g)| sum|w_up x| + 1.1 |u| sum|w x|. */
void ref_mm(const float *W, const float *Wup, const float *X, const float *bias, const float *res, int64_t M,
            int64_t N, int64_t K, int flags, double *Y, double *mag);

/* The activation-quantization bound for act Q8: with X the f32 activations
 * and Xq their q8a dequantization, Yl = the ref_mm result for X and, per
 * output, B >= |y(Xq) - y(X)| in exact arithmetic: sum_k |w| |x - xq|
 * (bg), through swiglu 1.1 bg (|u| + bu) + |silu(g)| bu (|silu'| <= 1.1).
 * Bias and residual do not change. */
void ref_mm_q8_bound(const float *W, const float *Wup, const float *X, const float *Xq, const float *bias,
                     const float *res, int64_t M, int64_t N, int64_t K, int flags, double *Yl, double *B);

#endif
