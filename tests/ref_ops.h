/*
 * ref_ops.h — scalar double-precision references for the non-product kernel
 * templates (templates/cpu/ops.h), used by tests/test_kernels_ops.c and
 * tests/test_kernels_enc.c (the encoder's).
 * Straight from the definitions; nothing shared with the templates. Inputs
 * are the f32 (or f16-decoded) values the kernels see, outputs are double.
 */
#ifndef KGEN_REF_OPS_H
#define KGEN_REF_OPS_H

#include <stdint.h>

/* y = x / sqrt(mean(x²) + eps) * g, rows of K */
void ref_rmsnorm(const float *x, const float *g, double *y, int64_t M, int64_t K, double eps);
/* y = (x - mean) / sqrt(var + eps) * g (+ b when b is not NULL), var biased */
void ref_layernorm(const float *x, const float *g, const float *b, double *y, int64_t M, int64_t K, double eps);
/* RoPE of x[M][n_head][head_dim] into y; mode 0 adjacent pairs, 2 halves;
 * ff: NULL, or frequency factors f32[n_rot/2] (pair i's angle divided by ff[i]) */
void ref_rope(const float *x, const int32_t *pos, double *y, int64_t M, int64_t n_head, int64_t head_dim,
              int64_t n_rot, int64_t mode, double base, double freq_scale, const float *ff);
/* y = softmax(scale * x) per row of N */
void ref_softmax(const float *x, double *y, int64_t M, int64_t N, double scale);
/* Causal GQA attention: token i of M (position p = pos0 + i) attends to
 * cache positions 0..p (window > 0: only those > p - window); scores
 * q·k * scale (scale 0: 1/sqrt(D)); q/out [M][n_head][D], k/v
 * [n_head_kv][n_ctx][D]. */
void ref_attn(const float *q, const double *k, const double *v, double *out, int64_t M, int64_t n_head,
              int64_t n_head_kv, int64_t D, int64_t n_ctx, int64_t pos0, double scale, int64_t window);
/* y = cap tanh(x / cap) */
void ref_softcap(const float *x, double *y, int64_t n, double cap);
/* silu(x) = x sigmoid(x); gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³))) */
void ref_silu(const float *x, double *y, int64_t n);
void ref_gelu(const float *x, double *y, int64_t n);
/* the exact GELU 0.5 x (1 + erf(x / sqrt 2)), libm's erf in double */
void ref_gelu_erf(const float *x, double *y, int64_t n);
/* Encoder attention over B sequences of L rows: qkv [B*L][3 nh hd] (q of
 * every head, then k, then v), lens[b] valid rows (clamped to [0, L]);
 * row i < len of sequence b, head h: softmax_j<len(scale q_i·k_j) v_j
 * (scale 0: 1/sqrt(hd)); padded rows 0. out [B*L][nh hd]. */
void ref_attn_enc(const float *qkv, const int32_t *lens, double *out, int64_t B, int64_t L, int64_t nh, int64_t hd,
                  double scale);
/* Pooling of x [B*L][K] over each sequence's valid rows (lens clamped to
 * [0, L]): mode 0 mean, 1 row 0, 2 max, 3 sum / sqrt(len); norm: then
 * y / max(||y||, 1e-12); len 0: zeros. out [B][K]. */
void ref_pool(const float *x, const int32_t *lens, double *out, int64_t B, int64_t L, int64_t K, int mode, int norm);
/* IEEE binary16 bits -> value, from the definition */
double ref_f16_value(uint16_t h);

#endif
