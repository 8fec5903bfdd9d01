/*
 * ops.cuh — the row kernels: RMSNorm (optionally quantizing its output),
 * activation quantization, embedding lookup, RoPE with the KV-cache append
 * (and LayerNorm, the CPU's kgt_layernorm).
 * Pointers and semantics as the CPU templates (templates/cpu/ops.h and
 * products.h); launches as gen/cuda.c sets them: one block per token row
 * (grid.x = M, M1: M is 1), except rope_kv (grid (n_head + n_head_kv, M)).
 * Double parameters (eps, RoPE base and scale) are template parameters as
 * their IEEE-754 bits.
 */
#ifndef KGC_OPS_CUH
#define KGC_OPS_CUH

#include "common.cuh"

namespace kgc {

enum { ROW_THREADS = 128 };

/* RMSNorm (RMS 1) and LayerNorm (RMS 0): p[0] X f32[M][K], p[1] gamma
 * f32[K], p[2] Y f32[M][K] (may be X) or q8a[M][K/32] (NORM_OUT_Q8), p[3]
 * beta f32[K] (LayerNorm with NORM_BIAS). y = (x - mean) * rstd * gamma
 * (+ beta); RMSNorm: mean 0, rstd = 1/sqrt(mean(x^2) + eps); LayerNorm:
 * the mean, and the biased variance summed as (x - mean)^2 (two passes,
 * as the CPU: no cancellation). */
template <int RMS, int M1, int K, int FLAGS, u64 EPS>
__global__ void __launch_bounds__(ROW_THREADS) norm(args a)
{
    const i64 m = blockIdx.x;
    const float *x = (const float *)a.p[0] + m * K, *g = (const float *)a.p[1];
    const float *b = !RMS && (FLAGS & NORM_BIAS) ? (const float *)a.p[3] : nullptr;
    float mean = 0.0f;
    if (!RMS) {
        float s = 0.0f;
        for (int k = threadIdx.x; k < K; k += ROW_THREADS) s += x[k];
        mean = block_sum<ROW_THREADS>(s) / (float)K;
    }
    float ss = 0.0f;
    for (int k = threadIdx.x; k < K; k += ROW_THREADS) ss += (x[k] - mean) * (x[k] - mean);
    ss = block_sum<ROW_THREADS>(ss);
    const float rstd = 1.0f / sqrtf(ss / (float)K + (float)__longlong_as_double((i64)EPS));
    if (FLAGS & NORM_OUT_Q8) {
        const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
        for (int c = warp; c < K / 32; c += ROW_THREADS / 32) {
            const int k = 32 * c + lane;
            quantize32_warp((x[k] - mean) * rstd * g[k] + (b ? b[k] : 0.0f), (q8a *)a.p[2] + m * (K / 32) + c);
        }
    } else {
        float *y = (float *)a.p[2] + m * K;
        for (int k = threadIdx.x; k < K; k += ROW_THREADS) y[k] = (x[k] - mean) * rstd * g[k] + (b ? b[k] : 0.0f);
    }
}

/* p[0] X f32[M][K] -> p[1] q8a[M][K/32] */
template <int M1, int K> __global__ void __launch_bounds__(ROW_THREADS) quantize(args a)
{
    const i64 m = blockIdx.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int b = warp; b < K / 32; b += ROW_THREADS / 32)
        quantize32_warp(((const float *)a.p[0])[m * K + 32 * b + lane], (q8a *)a.p[1] + m * (K / 32) + b);
}

/* p[0] table [rows][K] of WT, p[1] ids int32[M], p[2] out f32[M][K] */
template <int WT, int M1, int K> __global__ void __launch_bounds__(ROW_THREADS) embed(args a)
{
    const i64 m = blockIdx.x;
    const u8 *row = (const u8 *)a.p[0] + (i64)((const i32 *)a.p[1])[m] * row_bytes<WT>(K);
    float *y = (float *)a.p[2] + m * K;
    if constexpr (!is_quant(WT)) {
        for (int k = threadIdx.x; k < K; k += ROW_THREADS) y[k] = felem<WT>(row, k);
    } else {
        for (int c = threadIdx.x; c < K / 32; c += ROW_THREADS) {
            chunk w;
            load_chunk<WT>(row, c, w);
#pragma unroll
            for (int e = 0; e < 32; e++) y[32 * c + e] = chunk_elem(w, e);
        }
    }
}

/* RoPE + KV append for a fused Q/K/V product (templates/cpu/ops.h
 * kgt_rope_kv): p[0] QKV f32[M][NH + 2 NHKV][HD], p[1] positions int32[M],
 * p[2] Q out f32[M][NH][HD], p[3] K cache, p[4] V cache ([NHKV][n_ctx][HD]
 * of CT: F16 or F32; n_ctx = rt[RT_NCTX]); row pos clamped to the cache.
 * Block (head, token), head < NH a query head, else a KV head (whose V
 * row it copies too); thread i turns pair i by pos * scale * base^(-2i/NROT)
 * (angle, sine and cosine in double, as the CPU). */
template <int HD> struct rope_shape { enum { threads = HD / 2 <= 32 ? 32 : (HD / 2 + 31) / 32 * 32 }; };

template <int M1, int NH, int NHKV, int HD, int NROT, int MODE, u64 BASE, u64 SCALE, int CT>
__global__ void __launch_bounds__(rope_shape<HD>::threads) rope_kv(args a)
{
    constexpr int NT = rope_shape<HD>::threads;
    const int h = blockIdx.x, m = blockIdx.y, t = threadIdx.x;
    const i64 n_ctx = a.rt[RT_NCTX];
    const int pos = ((const i32 *)a.p[1])[m];
    const float *src = (const float *)a.p[0] + (i64)m * (NH + 2 * NHKV) * HD + (i64)h * HD;
    float *dst;
    const i64 at = pos < 0 ? 0 : pos >= n_ctx ? n_ctx - 1 : pos;
    const int kv = h - NH;
    u8 *kd = 0;
    if (h < NH) dst = (float *)a.p[2] + ((i64)m * NH + h) * HD;
    else kd = (u8 *)a.p[3] + ((i64)kv * n_ctx + at) * HD * (CT == F16 ? 2 : 4);
    auto put = [&](int d, float v) {
        if (h < NH) dst[d] = v;
        else if (CT == F16) ((u16 *)kd)[d] = to_f16(v);
        else ((float *)kd)[d] = v;
    };
    if (t < NROT / 2) {
        const double theta = (double)pos * __longlong_as_double((i64)SCALE) *
                             pow(__longlong_as_double((i64)BASE), -2.0 * (double)t / (double)NROT);
        const float c = (float)cos(theta), s = (float)sin(theta);
        const int i0 = MODE == ROPE_NEOX ? t : 2 * t, i1 = MODE == ROPE_NEOX ? t + NROT / 2 : 2 * t + 1;
        const float x0 = src[i0], x1 = src[i1];
        put(i0, x0 * c - x1 * s);
        put(i1, x0 * s + x1 * c);
    }
    for (int d = NROT + t; d < HD; d += NT) put(d, src[d]);
    if (h >= NH) {
        const float *v = (const float *)a.p[0] + (i64)m * (NH + 2 * NHKV) * HD + (i64)(NH + NHKV + kv) * HD;
        u8 *vd = (u8 *)a.p[4] + ((i64)kv * n_ctx + at) * HD * (CT == F16 ? 2 : 4);
        for (int d = t; d < HD; d += NT) {
            if (CT == F16) ((u16 *)vd)[d] = to_f16(v[d]);
            else ((float *)vd)[d] = v[d];
        }
    }
}

} // namespace kgc

#endif
