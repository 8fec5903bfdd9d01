/*
 * attn.cuh — attention over the KV cache (templates/cpu/ops.h's
 * kgt_attn_decode / kgt_attn_prefill: same pointers and semantics), and
 * an encoder's bidirectional attention over padded sequences (attn_enc, at
 * the end):
 *
 *   p[0] q f32[M][NH][HD]   p[1] K cache, p[2] V cache ([NHKV][n_ctx][HD]
 *   of CT, F16 or F32)      p[3] out f32[M][NH][HD]
 *   p[4] int64 *n_kv (decode: positions 0..n_kv-1) or *pos0 (prefill: token
 *   i sees positions 0..pos0+i, clamped to n_ctx - 1); both in device memory
 *   p[5] decode scratch (gen/cuda.c sizes it: attn_scratch_bytes)
 *
 * Query head h reads KV head h / (NH / NHKV); scores are q.k * scale
 * (SCALE: a double's bits; 0: 1/sqrt(HD)); WINDOW > 0: the query at
 * position p sees only positions from p - WINDOW + 1 on (decode p = n_kv -
 * 1, prefill p = pos0 + i); softmax is online (running max and sum, rescaled per tile of 32 keys),
 * in f32. HD is a multiple of 32 (at most 256): lane l owns output dims
 * l, l+32, ...; key j of a tile is lane j's.
 *
 * Decode, split over the KV length: grid (NH, NSPLIT), ATTN_WARPS warps per
 * block. Block s takes an equal share of the positions (of the window);
 * its warps take
 * tiles of it in turn; the warps' states merge in shared memory, the
 * blocks' through the scratch: each writes its (max, sum, acc), and the
 * last to finish (a counter per head, reset by it) combines them, so one
 * kernel does it all and a CUDA graph can replay it.
 *
 * Prefill, tiled and causal: grid (NH, ceil(M / ATTN_WARPS)), a warp per
 * query token; the block stages each tile of 32 keys and values in shared
 * memory once for its ATTN_WARPS tokens, from its first token's window
 * start (tiles before every token's window are not read).
 */
#ifndef KGC_ATTN_CUH
#define KGC_ATTN_CUH

#include "common.cuh"

namespace kgc {

enum { ATTN_WARPS = 4, ATTN_KT = 32 };

template <int NH, int HD> __host__ __device__ constexpr i64 attn_scratch_bytes(int nsplit)
{
    return (i64)NH * nsplit * (HD + 2) * 4 + (i64)NH * 4;
}

template <int CT> __device__ __forceinline__ float kv_elem(const u8 *row, int d)
{
    return CT == F16 ? f16(((const u16 *)row)[d]) : ((const float *)row)[d];
}

/* q (pre-scaled, shared memory) . a K row of HD elements of CT; `stride`
 * words apart in shared memory or in global memory alike */
template <int HD, int CT> __device__ __forceinline__ float qdotk(const float *q, const u32 *k)
{
    float s = 0.0f;
    if (CT == F16) {
#pragma unroll 8
        for (int w = 0; w < HD / 2; w++) {
            const u32 v = k[w];
            s += q[2 * w] * f16((u16)(v & 0xffffu)) + q[2 * w + 1] * f16((u16)(v >> 16));
        }
    } else {
#pragma unroll 8
        for (int d = 0; d < HD; d++) s += q[d] * __uint_as_float(k[d]);
    }
    return s;
}

/* one tile's online-softmax update of a warp: s = lane's score (-inf when
 * masked), nj keys valid (warp-uniform), vrow(jj) the value row of key jj */
template <int HD, int CT, class VRow>
__device__ __forceinline__ void softmax_tile(float s, int nj, VRow vrow, float &mw, float &lw, float (&acc)[HD / 32])
{
    const int lane = threadIdx.x & 31;
    const float mn = fmaxf(mw, warp_max(s));
    const float p = s == -INFINITY ? 0.0f : expf(s - mn);
    const float corr = mw == -INFINITY ? 0.0f : expf(mw - mn);
    lw = lw * corr + warp_sum(p);
#pragma unroll
    for (int i = 0; i < HD / 32; i++) acc[i] *= corr;
    for (int jj = 0; jj < nj; jj++) {
        const float pj = __shfl_sync(0xffffffffu, p, jj);
        const u8 *v = vrow(jj);
#pragma unroll
        for (int i = 0; i < HD / 32; i++) acc[i] += pj * kv_elem<CT>(v, lane + 32 * i);
    }
    mw = mn;
}

/* SCALE's value, or 1/sqrt(HD) when it is 0 */
template <int HD, u64 SCALE> __device__ __forceinline__ float attn_scale()
{
    return SCALE ? (float)__longlong_as_double((i64)SCALE) : rsqrtf((float)HD);
}

template <int NH, int NHKV, int HD, int CT, int NSPLIT, u64 SCALE, i64 WINDOW>
__global__ void __launch_bounds__(ATTN_WARPS * 32) attn_decode(args a)
{
    static_assert(HD % 32 == 0 && HD <= 256 && NH % NHKV == 0, "attention shape");
    constexpr int ES = CT == F16 ? 2 : 4, DL = HD / 32;
    const int h = blockIdx.x, sp = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const i64 n_ctx = a.rt[RT_NCTX], nkv_raw = *(const i64 *)a.p[4];
    const i64 n_kv = nkv_raw < 0 ? 0 : nkv_raw > n_ctx ? n_ctx : nkv_raw;
    const i64 kvh = h / (NH / NHKV);
    const u8 *Kc = (const u8 *)a.p[1] + kvh * n_ctx * HD * ES, *Vc = (const u8 *)a.p[2] + kvh * n_ctx * HD * ES;
    __shared__ float q[HD], wm[ATTN_WARPS], wl[ATTN_WARPS], wacc[ATTN_WARPS][HD];
    __shared__ int last;
    const float scale = attn_scale<HD, SCALE>();
    for (int d = threadIdx.x; d < HD; d += ATTN_WARPS * 32) q[d] = ((const float *)a.p[0])[(i64)h * HD + d] * scale;
    __syncthreads();
    const i64 first = WINDOW > 0 && n_kv - WINDOW > 0 ? n_kv - WINDOW : 0; /* the window's first position */
    const i64 per = ((n_kv - first + NSPLIT - 1) / NSPLIT + ATTN_KT - 1) / ATTN_KT * ATTN_KT;
    const i64 lo = first + sp * per, hi = lo + per < n_kv ? lo + per : n_kv;
    float mw = -INFINITY, lw = 0.0f, acc[DL];
#pragma unroll
    for (int i = 0; i < DL; i++) acc[i] = 0.0f;
    for (i64 t0 = lo + warp * ATTN_KT; t0 < hi; t0 += ATTN_WARPS * ATTN_KT) {
        const i64 j = t0 + lane;
        const float s = j < hi ? qdotk<HD, CT>(q, (const u32 *)(Kc + j * HD * ES)) : -INFINITY;
        const int nj = hi - t0 < ATTN_KT ? (int)(hi - t0) : ATTN_KT;
        softmax_tile<HD, CT>(s, nj, [&](int jj) { return Vc + (t0 + jj) * HD * ES; }, mw, lw, acc);
    }
    /* the warps' states -> the block's */
    if (lane == 0) wm[warp] = mw, wl[warp] = lw;
#pragma unroll
    for (int i = 0; i < DL; i++) wacc[warp][lane + 32 * i] = acc[i];
    __syncthreads();
    float M = -INFINITY, L = 0.0f;
    for (int w = 0; w < ATTN_WARPS; w++) M = fmaxf(M, wm[w]);
    float f[ATTN_WARPS];
    for (int w = 0; w < ATTN_WARPS; w++) f[w] = wm[w] == -INFINITY ? 0.0f : expf(wm[w] - M), L += f[w] * wl[w];
    float *out = (float *)a.p[3] + (i64)h * HD;
    if (NSPLIT == 1) {
        for (int d = threadIdx.x; d < HD; d += ATTN_WARPS * 32) {
            float o = 0.0f;
            for (int w = 0; w < ATTN_WARPS; w++) o += f[w] * wacc[w][d];
            out[d] = L > 0.0f ? o / L : 0.0f;
        }
        return;
    }
    /* the blocks' states -> the head's, by the last block to finish */
    float *part = (float *)a.p[5] + ((i64)h * NSPLIT + sp) * (HD + 2);
    u32 *count = (u32 *)((u8 *)a.p[5] + (i64)NH * NSPLIT * (HD + 2) * 4) + h;
    for (int d = threadIdx.x; d < HD; d += ATTN_WARPS * 32) {
        float o = 0.0f;
        for (int w = 0; w < ATTN_WARPS; w++) o += f[w] * wacc[w][d];
        part[2 + d] = o;
    }
    if (threadIdx.x == 0) part[0] = M, part[1] = L;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(count, 1u) == NSPLIT - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    const float *hp = (const float *)a.p[5] + (i64)h * NSPLIT * (HD + 2);
    float MM = -INFINITY, LL = 0.0f;
    for (int s = 0; s < NSPLIT; s++) MM = fmaxf(MM, __ldcg(hp + s * (HD + 2)));
    for (int s = 0; s < NSPLIT; s++) {
        const float ms = __ldcg(hp + s * (HD + 2));
        LL += ms == -INFINITY ? 0.0f : expf(ms - MM) * __ldcg(hp + s * (HD + 2) + 1);
    }
    for (int d = threadIdx.x; d < HD; d += ATTN_WARPS * 32) {
        float o = 0.0f;
        for (int s = 0; s < NSPLIT; s++) {
            const float ms = __ldcg(hp + s * (HD + 2));
            if (ms != -INFINITY) o += expf(ms - MM) * __ldcg(hp + s * (HD + 2) + 2 + d);
        }
        out[d] = LL > 0.0f ? o / LL : 0.0f;
    }
    if (threadIdx.x == 0) *count = 0;
}

template <int NH, int NHKV, int HD, int CT, u64 SCALE, i64 WINDOW>
__global__ void __launch_bounds__(ATTN_WARPS * 32) attn_prefill(args a)
{
    static_assert(HD % 32 == 0 && HD <= 256 && NH % NHKV == 0, "attention shape");
    constexpr int ES = CT == F16 ? 2 : 4, DL = HD / 32, KW = HD * ES / 4; /* words per cache row */
    static_assert(ATTN_KT * (2 * KW + 1) * 4 + ATTN_WARPS * HD * 4 <= 48 * 1024, "prefill tile exceeds 48 KiB");
    const int h = blockIdx.x, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const i64 M = a.rt[RT_M], n_ctx = a.rt[RT_NCTX], pos0 = *(const i64 *)a.p[4];
    const i64 i = (i64)blockIdx.y * ATTN_WARPS + warp, ilast = (i64)blockIdx.y * ATTN_WARPS + ATTN_WARPS - 1;
    auto limit = [&](i64 t) { const i64 l = pos0 + t; return l > n_ctx - 1 ? n_ctx - 1 : l; };
    const i64 lim = limit(i), lim_blk = limit(ilast < M ? ilast : M - 1);
    /* the first position token t sees: its window's, or 0 */
    auto start = [&](i64 t) { const i64 f = pos0 + t - WINDOW + 1; return WINDOW > 0 && f > 0 ? f : (i64)0; };
    const i64 lo = start(i), lo_blk = start((i64)blockIdx.y * ATTN_WARPS);
    const i64 kvh = h / (NH / NHKV);
    const u8 *Kc = (const u8 *)a.p[1] + kvh * n_ctx * HD * ES, *Vc = (const u8 *)a.p[2] + kvh * n_ctx * HD * ES;
    __shared__ float q[ATTN_WARPS][HD];
    __shared__ u32 kt[ATTN_KT][KW + 1], vt[ATTN_KT][KW]; /* K rows padded: lane j reads row j conflict-free */
    const bool active = i < M;
    const float scale = attn_scale<HD, SCALE>();
    if (active)
        for (int d = lane; d < HD; d += 32) q[warp][d] = ((const float *)a.p[0])[(i * NH + h) * HD + d] * scale;
    float mw = -INFINITY, lw = 0.0f, acc[DL];
#pragma unroll
    for (int k = 0; k < DL; k++) acc[k] = 0.0f;
    for (i64 t0 = lo_blk; t0 <= lim_blk; t0 += ATTN_KT) {
        __syncthreads();
        const int rows = lim_blk - t0 + 1 < ATTN_KT ? (int)(lim_blk - t0 + 1) : ATTN_KT;
        for (int w = threadIdx.x; w < rows * KW; w += ATTN_WARPS * 32) {
            const int r = w / KW, c = w % KW;
            kt[r][c] = ((const u32 *)(Kc + (t0 + r) * HD * ES))[c];
            vt[r][c] = ((const u32 *)(Vc + (t0 + r) * HD * ES))[c];
        }
        __syncthreads();
        if (!active || t0 > lim || t0 + ATTN_KT <= lo) continue;
        const i64 j = t0 + lane;
        const float s = j >= lo && j <= lim ? qdotk<HD, CT>(q[warp], kt[lane]) : -INFINITY;
        const int nj = lim - t0 + 1 < ATTN_KT ? (int)(lim - t0 + 1) : ATTN_KT;
        softmax_tile<HD, CT>(s, nj, [&](int jj) { return (const u8 *)vt[jj]; }, mw, lw, acc);
    }
    if (!active) return;
    float *out = (float *)a.p[3] + (i * NH + h) * HD;
#pragma unroll
    for (int k = 0; k < DL; k++) out[lane + 32 * k] = lw > 0.0f ? acc[k] / lw : 0.0f;
}

/* The encoder's bidirectional attention (templates/cpu/ops.h kgt_attn_enc):
 * p[0] QKV f32[B L][3 NH HD] (per row: every head's q, then k, then v),
 * p[1] lengths int32[B] (clamped to [0, L]), p[2] out f32[B L][NH HD].
 * Grid (NH, B, ceil(L / ATTN_WARPS)), a warp per query row, as prefill's:
 * the block stages each tile of 32 keys and values of its sequence and
 * head in shared memory once for its rows; every valid row sees keys
 * 0..len-1. A block whose rows are all padding writes their zeros and
 * returns (padded work costs one store per element). */
template <int NH, int HD, int L, u64 SCALE>
__global__ void __launch_bounds__(ATTN_WARPS * 32) attn_enc(args a)
{
    static_assert(HD % 32 == 0 && HD <= 256, "attention shape");
    constexpr int D = NH * HD, LD = 3 * D, DL = HD / 32;
    static_assert(ATTN_KT * (2 * HD + 1) * 4 + ATTN_WARPS * HD * 4 <= 48 * 1024, "encoder tile exceeds 48 KiB");
    const int h = blockIdx.x, b = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int lr = ((const i32 *)a.p[1])[b], len = lr < 0 ? 0 : lr > L ? L : lr;
    const int i = blockIdx.z * ATTN_WARPS + warp; /* the warp's row of the sequence */
    float *out = (float *)a.p[2] + ((i64)b * L + i) * D + h * HD;
    if ((int)blockIdx.z * ATTN_WARPS >= len) { /* all padding (the condition is the block's) */
        if (i < L)
#pragma unroll
            for (int k = 0; k < DL; k++) out[lane + 32 * k] = 0.0f;
        return;
    }
    const float *base = (const float *)a.p[0] + (i64)b * L * LD + h * HD;
    __shared__ float q[ATTN_WARPS][HD];
    __shared__ u32 kt[ATTN_KT][HD + 1], vt[ATTN_KT][HD]; /* K rows padded: lane j reads row j conflict-free */
    const bool active = i < len;
    const float scale = attn_scale<HD, SCALE>();
    if (active)
        for (int d = lane; d < HD; d += 32) q[warp][d] = base[(i64)i * LD + d] * scale;
    float mw = -INFINITY, lw = 0.0f, acc[DL];
#pragma unroll
    for (int k = 0; k < DL; k++) acc[k] = 0.0f;
    for (int t0 = 0; t0 < len; t0 += ATTN_KT) {
        __syncthreads();
        const int rows = len - t0 < ATTN_KT ? len - t0 : ATTN_KT;
        for (int w = threadIdx.x; w < rows * HD; w += ATTN_WARPS * 32) {
            const int r = w / HD, c = w % HD;
            const float *row = base + (i64)(t0 + r) * LD;
            kt[r][c] = __float_as_uint(row[D + c]);
            vt[r][c] = __float_as_uint(row[2 * D + c]);
        }
        __syncthreads();
        if (!active) continue;
        const float s = lane < rows ? qdotk<HD, F32>(q[warp], kt[lane]) : -INFINITY;
        softmax_tile<HD, F32>(s, rows, [&](int jj) { return (const u8 *)vt[jj]; }, mw, lw, acc);
    }
    if (i >= L) return;
#pragma unroll
    for (int k = 0; k < DL; k++) out[lane + 32 * k] = active && lw > 0.0f ? acc[k] / lw : 0.0f;
}

} // namespace kgc

#endif
