/*
 * mm.cuh — matrix products over GGUF weights (templates/cpu/products.h's
 * kgt_mm, same pointers, flags and epilogue order):
 *
 *   p[0] W [N][K] of WT   p[1] X: f32[M][K] (ACT_F32) or q8a[M][K/32] (ACT_Q8)
 *   p[2] Y: f32[M][LDY], or q8a[M][LDY/32] with EPI_OUT_Q8: row m's N
 *        outputs at Y + m LDY (LDY = N unless a product writes a column
 *        slice of a wider row, p[2] then pointing at its first column)
 *   p[3] bias f32[N] (EPI_BIAS)   p[4] resid f32[M][LDY] (EPI_RESIDUAL; may be Y)
 *   p[5] W_up like W (EPI_SWIGLU: y = silu(W x) * (W_up x); EPI_GEGLU: gelu(W x) * (W_up x))
 *   EPI_GELU: y = gelu_erf(W x + bias) (exact GELU, CUDA's erff), before the residual
 *
 * Launch (gen/cuda.c mirrors it): MM_THREADS threads; grid.x = N / channels
 * per block (4, or 32 with EPI_OUT_Q8 so one block holds whole output
 * blocks to quantize), grid.y = ceil(M / MT). M1: M is 1 (decode); else M
 * is rt[RT_M].
 *
 * One warp per output channel at a time. Quantized weights: lane l walks
 * the row's chunks l, l+32, ...; each chunk is decoded once into 32 int8
 * and multiplied by the MT activation rows of the tile with dp4a (exact in
 * int32 per 16 elements, scaled in f32), so a tile of MT tokens reads the
 * weights once. Float weights: lanes walk elements (coalesced). The lanes'
 * partial sums are added by shuffles (fixed order).
 */
#ifndef KGC_MM_CUH
#define KGC_MM_CUH

#include "common.cuh"

namespace kgc {

enum { MM_THREADS = 128 };

template <int WT, int ACT, int M1, int N, int K, int FLAGS, int MT, int LDY = N>
__global__ void __launch_bounds__(MM_THREADS) mm(args a)
{
    constexpr int NW = MM_THREADS / 32, CPB = (FLAGS & EPI_OUT_Q8) ? 32 : NW, CPW = CPB / NW;
    constexpr bool QW = is_quant(WT);
    constexpr bool UP = (FLAGS & (EPI_SWIGLU | EPI_GEGLU)) != 0, GELU = (FLAGS & EPI_GEGLU) != 0;
    constexpr i64 RB = row_bytes<WT>(K);
    static_assert(LDY >= N && (!(FLAGS & EPI_OUT_Q8) || LDY % 32 == 0), "mm: LDY < N, or not whole q8a blocks");
    const int M = M1 ? 1 : (int)a.rt[RT_M];
    const int m0 = blockIdx.y * MT, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const u8 *W = (const u8 *)a.p[0], *Wu = (const u8 *)a.p[5];
    __shared__ float ys[(FLAGS & EPI_OUT_Q8) ? MT : 1][32];
    for (int cw = 0; cw < CPW; cw++) {
        const int cl = warp * CPW + cw, n = blockIdx.x * CPB + cl;
        float acc[MT], accu[MT];
#pragma unroll
        for (int t = 0; t < MT; t++) acc[t] = accu[t] = 0.0f;
        if (n < N) {
            const u8 *wr = W + (i64)n * RB, *ur = UP ? Wu + (i64)n * RB : wr;
            if constexpr (QW) { /* (constexpr: load_chunk exists only for quantized types) */
                for (int c = lane; c < K / 32; c += 32) {
                    chunk w, u;
                    load_chunk<WT>(wr, c, w);
                    if (UP) load_chunk<WT>(ur, c, u);
#pragma unroll
                    for (int t = 0; t < MT; t++) {
                        if (m0 + t >= M) break;
                        if (ACT == ACT_Q8) {
                            const q8a *x = (const q8a *)a.p[1] + (i64)(m0 + t) * (K / 32) + c;
                            acc[t] += dot_q8<WT>(w, x);
                            if (UP) accu[t] += dot_q8<WT>(u, x);
                        } else {
                            const float *x = (const float *)a.p[1] + (i64)(m0 + t) * K + 32 * c;
                            acc[t] += dot_f32(w, x);
                            if (UP) accu[t] += dot_f32(u, x);
                        }
                    }
                }
            } else {
                for (int e = lane; e < K; e += 32) {
                    const float wv = felem<WT>(wr, e), uv = UP ? felem<WT>(ur, e) : 0.0f;
#pragma unroll
                    for (int t = 0; t < MT; t++) {
                        if (m0 + t >= M) break;
                        const float x = ((const float *)a.p[1])[(i64)(m0 + t) * K + e];
                        acc[t] += wv * x;
                        if (UP) accu[t] += uv * x;
                    }
                }
            }
        }
#pragma unroll
        for (int t = 0; t < MT; t++) {
            acc[t] = warp_sum(acc[t]);
            if (UP) accu[t] = warp_sum(accu[t]);
        }
        if (lane == 0 && n < N) {
#pragma unroll
            for (int t = 0; t < MT; t++) {
                if (m0 + t >= M) break;
                const i64 m = m0 + t;
                const float x = acc[t]; /* GELU: tanh form, x / (1 + e^(-2u)) as the CPU's */
                float g = !UP ? x
                          : GELU ? x / (1.0f + expf(-x * (1.5957691216057308f + 0.0713548162726009f * x * x))) * accu[t]
                                 : x / (1.0f + expf(-x)) * accu[t];
                if (FLAGS & EPI_BIAS) g += ((const float *)a.p[3])[n];
                if (FLAGS & EPI_GELU) g = 0.5f * g * (1.0f + erff(g * 0.70710678118654752f)); /* exact GELU */
                if (FLAGS & EPI_RESIDUAL) g += ((const float *)a.p[4])[m * LDY + n];
                if (FLAGS & EPI_OUT_Q8) ys[t][cl] = g;
                else ((float *)a.p[2])[m * LDY + n] = g;
            }
        }
    }
    if (FLAGS & EPI_OUT_Q8) {
        __syncthreads();
        for (int t = warp; t < MT; t += NW)
            if (m0 + t < M) quantize32_warp(ys[t][lane], (q8a *)a.p[2] + (i64)(m0 + t) * (LDY / 32) + blockIdx.x);
    }
}

} // namespace kgc

#endif
