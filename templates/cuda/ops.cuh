/*
 * ops.cuh — the row kernels: RMSNorm (optionally quantizing its output),
 * activation quantization, embedding lookup (with an encoder's position
 * and token-type rows), an encoder's pooling, RoPE (alone, and with the
 * KV-cache append), the KV-cache append, the elementwise add and gated
 * activations (and LayerNorm, the CPU's kgt_layernorm).
 * Pointers and semantics as the CPU templates (templates/cpu/ops.h and
 * products.h); launches as gen/cuda.c's gen_cuda_shape sets them (the one
 * place; a template parameter NT is its thread count): one block per token
 * row (grid.x = M, M1: M is 1) for the row kernels (RMSNorm of G groups per
 * row: a block per group, grid.x = G M); one per sequence for pool; grid (heads, M) for rope, kv_store
 * and rope_kv; (segments of a row, M) for ew and softcap.
 * Double parameters (eps, RoPE base and scale, embedding scale, softcap)
 * are template parameters as their IEEE-754 bits. Parameter names follow
 * the CPU templates' (FF: ff, QKNORM: qk_norm, SCALE: scale, CAP: cap).
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
 * as the CPU: no cancellation). kgt_rmsnorm's G groups of a row are rows
 * of their own here ([M][G][K] is [M G][K]): G only sets the grid. */
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

/* p[0] table [rows][K] of WT, p[1] ids int32[M], p[2] out f32[M][K]: the
 * row times (float)SCALE (1.0: nothing multiplied). Encoders (POSLEN > 0,
 * kgt_embed's pos_len; PT its pos_type, F32, F16 or BF16): plus p[4] the
 * token-type row [K] and row m % POSLEN of p[3] the position table, as
 * (y + T) + P, each element as it is stored. */
template <int WT, int M1, int K, u64 SCALE, int POSLEN = 0, int PT = F32>
__global__ void __launch_bounds__(ROW_THREADS) embed(args a)
{
    constexpr bool scaled = SCALE != 0x3ff0000000000000ull; /* 1.0 */
    const float sc = (float)__longlong_as_double((i64)SCALE);
    const i64 m = blockIdx.x;
    const u8 *row = (const u8 *)a.p[0] + (i64)((const i32 *)a.p[1])[m] * row_bytes<WT>(K);
    float *y = (float *)a.p[2] + m * K;
    const u8 *P = POSLEN > 0 ? (const u8 *)a.p[3] + (m % (POSLEN > 0 ? POSLEN : 1)) * (i64)K * (PT == F32 ? 4 : 2) : nullptr;
    const u8 *T = (const u8 *)a.p[4];
    auto add = [&](int k, float v) { return POSLEN > 0 ? (v + felem<PT>(T, k)) + felem<PT>(P, k) : v; };
    if constexpr (!is_quant(WT)) {
        for (int k = threadIdx.x; k < K; k += ROW_THREADS) y[k] = add(k, scaled ? felem<WT>(row, k) * sc : felem<WT>(row, k));
    } else {
        for (int c = threadIdx.x; c < K / 32; c += ROW_THREADS) {
            chunk w;
            load_chunk<WT>(row, c, w);
#pragma unroll
            for (int e = 0; e < 32; e++) y[32 * c + e] = add(32 * c + e, scaled ? chunk_elem(w, e) * sc : chunk_elem(w, e));
        }
    }
}

/* kgt_pool: p[0] X f32[B L][K], p[1] lengths int32[B] (clamped to [0, L]),
 * p[2] out f32[B][K]; MODE POOL_MEAN / CLS / MAX / MEAN_SQRT, NORM 1: the
 * row L2-normalized (y / max(||y||, 1e-12)). A block per sequence
 * (grid.x = B); thread t owns columns t, t + ROW_THREADS, ... and sums its
 * column over the valid rows in row order, as the CPU. */
template <int L, int K, int MODE, int NORM> __global__ void __launch_bounds__(ROW_THREADS) pool(args a)
{
    const int b = blockIdx.x, lr = ((const i32 *)a.p[1])[b], len = lr < 0 ? 0 : lr > L ? L : lr;
    const float *X = (const float *)a.p[0] + (i64)b * L * K;
    float *y = (float *)a.p[2] + (i64)b * K;
    const float div = MODE == POOL_MEAN_SQRT ? sqrtf((float)len) : (float)len;
    float ss = 0.0f;
    for (int k = threadIdx.x; k < K; k += ROW_THREADS) {
        float v = 0.0f;
        if (len > 0) {
            v = X[k];
            if (MODE != POOL_CLS) {
                for (int i = 1; i < len; i++) v = MODE == POOL_MAX ? fmaxf(v, X[(i64)i * K + k]) : v + X[(i64)i * K + k];
                if (MODE != POOL_MAX) v = v / div;
            }
        }
        y[k] = v;
        ss += v * v;
    }
    if (NORM) {
        const float r = 1.0f / fmaxf(sqrtf(block_sum<ROW_THREADS>(ss)), 1e-12f);
        for (int k = threadIdx.x; k < K; k += ROW_THREADS) y[k] *= r;
    }
}

/* ─────────────── RoPE and the KV-cache append ───────────────
 *
 * Pair i of a head turns by theta = (pos * scale) * f_i, f_i =
 * base^(-2i/NROT) as the CPU computes it (templates/cpu/rope.c): step =
 * base^(-2/NROT), f_i a running product of steps restarted (from
 * step^c0) every CH pairs — kgt_rope's chunks of 64, none for kgt_rope_kv
 * — so the angles are the CPU's; angle, sine and cosine in double; ff:
 * the frequency factors (theta / ff[i]), or nullptr. */
template <int CH>
__device__ __forceinline__ void rope_angle(int pos, int i, double base, double scale, int nrot, const float *ff,
                                           float &c, float &s)
{
    const double step = pow(base, -2.0 / (double)nrot);
    const int c0 = i / CH * CH;
    double f = c0 ? pow(step, (double)c0) : 1.0;
    for (int k = c0; k < i; k++) f *= step;
    const double theta = ff ? (double)pos * scale * f / (double)ff[i] : (double)pos * scale * f;
    c = (float)cos(theta);
    s = (float)sin(theta);
}

/* dims i0, i1 of pair i: adjacent (ROPE_NORM) or halves (ROPE_NEOX) */
template <int MODE, int NROT> __device__ __forceinline__ int rope_i0(int i) { return MODE == ROPE_NEOX ? i : 2 * i; }
template <int MODE, int NROT> __device__ __forceinline__ int rope_i1(int i)
{
    return MODE == ROPE_NEOX ? i + NROT / 2 : 2 * i + 1;
}

/* RoPE (templates/cpu/ops.h kgt_rope): p[0] X f32[M][NH][HD], p[1]
 * positions int32[M], p[2] Y like X (may be X), p[3] frequency factors
 * f32[NROT/2] (FF = 1). Y = X with each head's first NROT dims turned, the
 * others copied. Block (head, token) of NT threads (any NT: threads stride
 * pairs and dims); each element is read and written by one thread, so
 * Y = X is safe. */
template <int M1, int NH, int HD, int NROT, int MODE, u64 BASE, u64 SCALE, int NT, int FF>
__global__ void __launch_bounds__(NT) rope(args a)
{
    const float *ff = FF ? (const float *)a.p[3] : nullptr;
    const int h = blockIdx.x, m = blockIdx.y;
    const int pos = ((const i32 *)a.p[1])[m];
    const float *x = (const float *)a.p[0] + ((i64)m * NH + h) * HD;
    float *y = (float *)a.p[2] + ((i64)m * NH + h) * HD;
    for (int i = threadIdx.x; i < NROT / 2; i += NT) {
        float c, s;
        rope_angle<64>(pos, i, __longlong_as_double((i64)BASE), __longlong_as_double((i64)SCALE), NROT, ff, c, s);
        const int i0 = rope_i0<MODE, NROT>(i), i1 = rope_i1<MODE, NROT>(i);
        const float x0 = x[i0], x1 = x[i1];
        y[i0] = x0 * c - x1 * s;
        y[i1] = x0 * s + x1 * c;
    }
    for (int d = NROT + threadIdx.x; d < HD; d += NT) y[d] = x[d];
}

/* one value into a cache row of CT (F16: round to nearest even) */
template <int CT> __device__ __forceinline__ void cache_put(u8 *row, int d, float v)
{
    if (CT == F16) ((u16 *)row)[d] = to_f16(v);
    else ((float *)row)[d] = v;
}

/* cache row `at` of KV head kv ([NHKV][n_ctx][HD] of CT) */
template <int HD, int CT> __device__ __forceinline__ u8 *cache_row(void *cache, int kv, i64 n_ctx, i64 at)
{
    return (u8 *)cache + ((i64)kv * n_ctx + at) * HD * (CT == F16 ? 2 : 4);
}

/* the cache row of position pos: clamped to [0, n_ctx - 1] */
__device__ __forceinline__ i64 cache_at(int pos, i64 n_ctx) { return pos < 0 ? 0 : pos >= n_ctx ? n_ctx - 1 : pos; }

/* The KV-cache append alone (kgt_kv_store): p[0] K f32[M][NHKV][HD], p[1]
 * V likewise, p[2] positions int32[M], p[3] K cache, p[4] V cache
 * ([NHKV][n_ctx][HD] of CT: F16 or F32; n_ctx = rt[RT_NCTX]); token m's
 * rows go to cache row pos[m] (clamped). Block (KV head, token) of NT
 * threads striding the dims. */
template <int M1, int NHKV, int HD, int CT, int NT>
__global__ void __launch_bounds__(NT) kv_store(args a)
{
    const int kv = blockIdx.x, m = blockIdx.y;
    const i64 n_ctx = a.rt[RT_NCTX], at = cache_at(((const i32 *)a.p[2])[m], n_ctx);
    const i64 src = ((i64)m * NHKV + kv) * HD;
    const float *k = (const float *)a.p[0] + src, *v = (const float *)a.p[1] + src;
    u8 *kd = cache_row<HD, CT>(a.p[3], kv, n_ctx, at), *vd = cache_row<HD, CT>(a.p[4], kv, n_ctx, at);
    for (int d = threadIdx.x; d < HD; d += NT) {
        cache_put<CT>(kd, d, k[d]);
        cache_put<CT>(vd, d, v[d]);
    }
}

/* RoPE + KV append for a fused Q/K/V product (templates/cpu/ops.h
 * kgt_rope_kv): p[0] QKV f32[M][NH + 2 NHKV][HD], p[1] positions int32[M],
 * p[2] Q out f32[M][NH][HD], p[3] K cache, p[4] V cache (as kv_store's),
 * p[5] frequency factors (FF = 1), p[6] / p[7] the Q / K gammas f32[HD] of
 * QK-norm (QKNORM = 1: each Q and K head RMS-normalized, with EPS, before
 * its rotation, as the CPU: x * rstd * gamma, rstd = 1/sqrt(mean(x^2) +
 * eps)). Block (head, token) of NT threads, head < NH a query head, else a
 * KV head (whose V row it copies too); threads stride the pairs and dims. */
template <int M1, int NH, int NHKV, int HD, int NROT, int MODE, u64 BASE, u64 SCALE, int CT, int NT, int FF,
          int QKNORM, u64 EPS>
__global__ void __launch_bounds__(NT) rope_kv(args a)
{
    const int h = blockIdx.x, m = blockIdx.y, kv = h - NH;
    const i64 n_ctx = a.rt[RT_NCTX];
    const int pos = ((const i32 *)a.p[1])[m];
    const float *row = (const float *)a.p[0] + (i64)m * (NH + 2 * NHKV) * HD, *src = row + (i64)h * HD;
    float *q = (float *)a.p[2] + ((i64)m * NH + h) * HD;
    u8 *kd = h < NH ? nullptr : cache_row<HD, CT>(a.p[3], kv, n_ctx, cache_at(pos, n_ctx));
    const float *ff = FF ? (const float *)a.p[5] : nullptr, *g = (const float *)a.p[h < NH ? 6 : 7];
    float rstd = 1.0f;
    if (QKNORM) {
        float ss = 0.0f;
        for (int d = threadIdx.x; d < HD; d += NT) ss += src[d] * src[d];
        rstd = 1.0f / sqrtf(block_sum<NT>(ss) / (float)HD + (float)__longlong_as_double((i64)EPS));
    }
    auto in = [&](int d) { return QKNORM ? src[d] * rstd * g[d] : src[d]; };
    auto put = [&](int d, float v) {
        if (h < NH) q[d] = v;
        else cache_put<CT>(kd, d, v);
    };
    for (int i = threadIdx.x; i < NROT / 2; i += NT) {
        float c, s;
        rope_angle<1 << 30>(pos, i, __longlong_as_double((i64)BASE), __longlong_as_double((i64)SCALE), NROT, ff, c, s);
        const int i0 = rope_i0<MODE, NROT>(i), i1 = rope_i1<MODE, NROT>(i);
        const float x0 = in(i0), x1 = in(i1);
        put(i0, x0 * c - x1 * s);
        put(i1, x0 * s + x1 * c);
    }
    for (int d = NROT + threadIdx.x; d < HD; d += NT) put(d, in(d));
    if (h >= NH) {
        const float *v = row + (i64)(NH + NHKV + kv) * HD;
        u8 *vd = cache_row<HD, CT>(a.p[4], kv, n_ctx, cache_at(pos, n_ctx));
        for (int d = threadIdx.x; d < HD; d += NT) cache_put<CT>(vd, d, v[d]);
    }
}

/* ─────────────── elementwise: add, SwiGLU, GeGLU ─────────────── */

enum { EW_ADD = 0, EW_SWIGLU = 1, EW_GEGLU = 2 };

/* kgt_add (OP EW_ADD: y = a + b) and kgt_glu (EW_SWIGLU: y = silu(a) b,
 * silu(v) = v / (1 + e^-v); EW_GEGLU: y = gelu(a) b, the tanh GELU as
 * v / (1 + e^(-2u)), u = sqrt(2/pi) (v + 0.044715 v^3), kgt_gelu's form):
 * p[0] A f32[M][N], p[1] B likewise, p[2] Y likewise (may be A or B).
 * Block (segment, token): NT threads, PER elements each, NT apart
 * (coalesced); each element read and then written by one thread. */
template <int M1, int N, int OP, int NT, int PER>
__global__ void __launch_bounds__(NT) ew(args a)
{
    const i64 row = (i64)blockIdx.y * N;
    const float *x = (const float *)a.p[0] + row, *u = (const float *)a.p[1] + row;
    float *y = (float *)a.p[2] + row;
    const int i0 = blockIdx.x * (NT * PER) + threadIdx.x;
    float xv[PER], uv[PER];
#pragma unroll
    for (int j = 0; j < PER; j++)
        if (i0 + j * NT < N) xv[j] = x[i0 + j * NT], uv[j] = u[i0 + j * NT];
#pragma unroll
    for (int j = 0; j < PER; j++) {
        if (i0 + j * NT >= N) break;
        const float v = xv[j];
        float g;
        if (OP == EW_ADD) g = v + uv[j];
        else if (OP == EW_SWIGLU) g = v / (1.0f + expf(-v)) * uv[j];
        else g = v / (1.0f + expf(-(v * (1.5957691216057308f + 0.0713548162726009f * v * v)))) * uv[j];
        y[i0 + j * NT] = g;
    }
}

/* kgt_softcap: p[0] X f32[M][N], p[1] Y likewise (may be X): y = cap
 * tanh(x / cap), CAP a double's bits; blocks and threads as ew's */
template <int M1, int N, u64 CAP, int NT, int PER>
__global__ void __launch_bounds__(NT) softcap(args a)
{
    const i64 row = (i64)blockIdx.y * N;
    const float *x = (const float *)a.p[0] + row;
    float *y = (float *)a.p[1] + row;
    const float c = (float)__longlong_as_double((i64)CAP);
    const int i0 = blockIdx.x * (NT * PER) + threadIdx.x;
#pragma unroll
    for (int j = 0; j < PER; j++)
        if (i0 + j * NT < N) y[i0 + j * NT] = c * tanhf(x[i0 + j * NT] / c);
}

} // namespace kgc

#endif
