/*
 * common.cuh — what every CUDA kernel template shares: types, the argument
 * block, f16/bf16, warp and block reductions, the activation block (q8a)
 * and the weight formats read 32 elements (one chunk) at a time.
 *
 * The CUDA templates are C++ templates whose parameters are the shapes,
 * quantization scheme, flags and tile sizes; gen/cuda.c instantiates them
 * by name expression through NVRTC (one program per model, every instance
 * of it) for the exact sm arch. They compile with no header at all (NVRTC
 * has no system headers): fixed-width types are defined here and f16 goes
 * through PTX's cvt.
 *
 * Conventions shared with the CPU templates (templates/cpu/kernel.h): type
 * ids, flags, GGUF block layouts, the q8a activation block and its
 * quantization rule are the same, so the same graph, offsets and workspace
 * plan serve both backends. Every kernel takes one `args` by value: the
 * pointers of its graph node (p[0..7], as the CPU template's p[]) and rt,
 * the run-time values in device memory (runtime/model/desc.h KGM_RT_*):
 * a decode step captured once as a CUDA graph reads the token count,
 * positions and cache length from there, so replays see new values.
 */
#ifndef KGC_COMMON_CUH
#define KGC_COMMON_CUH

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int i32;
typedef long long i64;
typedef unsigned long long u64;

#include "kgen_types.h" /* the one table of types (include/; embedded for NVRTC) */

#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

namespace kgc {

/* type ids (F32, Q4_K, ...) and block geometry, from kgen_types.h */
enum {
#define KGC_X(id, nm, b, s, k, g, mn) nm = id,
    KG_TYPES(KGC_X)
#undef KGC_X
};
enum { ACT_F32 = 0, ACT_Q8 = 1 };
enum { EPI_BIAS = 1, EPI_RESIDUAL = 2, EPI_SWIGLU = 4, EPI_OUT_Q8 = 8, EPI_GEGLU = 16, EPI_GELU = 32 };
enum { POOL_MEAN = 0, POOL_CLS = 1, POOL_MAX = 2, POOL_MEAN_SQRT = 3 };
enum { NORM_OUT_Q8 = 1, NORM_BIAS = 2 };
enum { ROPE_NORM = 0, ROPE_NEOX = 2 };
enum { RT_M, RT_NCTX, RT_KVBYTES, RT_NKV, RT_POS0 };

struct args {
    void *p[8]; /* runtime/model/cuda_blob.h KGM_CUDA_PTRS */
    const i64 *rt;
};

/* kgt_q8a: 32 activations x_e = d * qs[e]; sum = sum of qs (40 bytes) */
struct q8a {
    float d;
    i32 sum;
    i32 qs[8]; /* 32 int8, four per word */
};

__device__ __forceinline__ float f16(u16 h)
{
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u16 to_f16(float f)
{
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float bf16(u16 h) { return __uint_as_float((u32)h << 16); }

/* GGUF blocks are 2-byte aligned at best: words from two halves */
__device__ __forceinline__ u16 ld16(const u8 *p) { return *(const u16 *)p; }
__device__ __forceinline__ u32 ld32(const u8 *p) { return (u32)ld16(p) | (u32)ld16(p + 2) << 16; }

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ int warp_sumi(int v)
{
#pragma unroll
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* sum over a block of NT threads (a multiple of 32); every thread gets it */
template <int NT> __device__ __forceinline__ float block_sum(float v)
{
    __shared__ float part[NT / 32];
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < NT / 32; i++) s += part[i];
    __syncthreads();
    return s;
}

/* One warp quantizes 32 floats (lane e holds x_e) into a q8a block, with
 * the CPU's rule (templates/cpu/quants.h kgq_quantize32): d = amax/127,
 * q = rint(x * (127/amax)), nearest with ties to even; amax < 2^-120 gives
 * d = 0, q = 0. Bit-identical to the CPU. */
__device__ __forceinline__ void quantize32_warp(float x, q8a *y)
{
    const float amax = warp_max(fabsf(x));
    const bool live = amax >= 0x1p-120f;
    const float id = live ? 127.0f / amax : 0.0f;
    const int q = __float2int_rn(x * id);
    const int sum = warp_sumi(q);
    const int lane = threadIdx.x & 31;
    ((i8 *)y->qs)[lane] = (i8)q;
    if (lane == 0) {
        y->d = live ? amax / 127.0f : 0.0f;
        y->sum = sum;
    }
}

/* ─────────────── weight formats, one 32-element chunk at a time ───────────────
 *
 * A row of K elements is read in chunks of 32: one block of the 32-element
 * types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL), one eighth of a 256-element
 * block (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS). A chunk decodes to 32 small
 * integers (four per word, as int8) and coefficients such that element e
 * of half h = e / 16 is
 *   w_e = a_h * q_e + b_h
 *   Q4_0, Q5_0: q - 8 (q - 16) folded into b = -8d (-16d); Q4_1, Q5_1:
 *   b = m; Q8_0: a = d; Q4_K, Q5_K: a = d sc, b = -dmin mn; Q6_K, Q3_K:
 *   q - 32, q - 4 signed, a = d sc per 16 elements; Q2_K: a = d sc, b =
 *   -dmin mn, both per 16 elements (the one type whose b differs between
 *   the halves); IQ4_NL, IQ4_XS: q = the codebook's int8 value of each
 *   4-bit index, a = d (IQ4_XS: d (ls - 32)). */
__host__ __device__ constexpr int tbl_blck(int wt)
{
    return
#define KGC_X(id, nm, b, s, k, g, mn) wt == id ? b :
        KG_TYPES(KGC_X)
#undef KGC_X
        0;
}
__host__ __device__ constexpr int tbl_size(int wt)
{
    return
#define KGC_X(id, nm, b, s, k, g, mn) wt == id ? s :
        KG_TYPES(KGC_X)
#undef KGC_X
        0;
}
__host__ __device__ constexpr bool tbl_kernels(int wt)
{
    return
#define KGC_X(id, nm, b, s, k, g, mn) wt == id ? (k) != 0 :
        KG_TYPES(KGC_X)
#undef KGC_X
        false;
}
/* a block-quantized type (not F32/F16/BF16) */
__host__ __device__ constexpr bool is_quant(int wt) { return tbl_blck(wt) > 1; }

/* block geometry: float types count per 32 elements */
template <int WT> struct fmt {
    static_assert(tbl_kernels(WT), "a type kgen_types.h does not mark kernels = 1");
    enum { blk = is_quant(WT) ? tbl_blck(WT) : 32, bytes = is_quant(WT) ? tbl_size(WT) : 32 * tbl_size(WT) };
};

template <int WT> __host__ __device__ constexpr i64 row_bytes(i64 K)
{
    return WT == F32 ? 4 * K : (WT == F16 || WT == BF16) ? 2 * K : K / fmt<WT>::blk * fmt<WT>::bytes;
}

struct chunk {
    i32 q[8];
    float a0, a1, b0, b1; /* scale and offset of elements 0-15 and 16-31 (b1 = b0 but for Q2_K) */
};

/* the quantized types load_chunk decodes (every kernels = 1 row of the
 * table that is not a float type must be here: checked below) */
__host__ __device__ constexpr bool has_chunk_decoder(int wt)
{
    return wt == Q4_0 || wt == Q4_1 || wt == Q5_0 || wt == Q5_1 || wt == Q8_0 || wt == Q2_K || wt == Q3_K ||
           wt == Q4_K || wt == Q5_K || wt == Q6_K || wt == IQ4_NL || wt == IQ4_XS;
}
/* the types whose chunk offset differs between its halves (dot_q8 then
 * needs the activations' half sums) */
__host__ __device__ constexpr bool two_offsets(int wt) { return wt == Q2_K; }

__host__ __device__ constexpr bool every_type_decoded()
{
    return true
#define KGC_X(id, nm, b, s, k, g, mn) && (!(k) || (b) == 1 || has_chunk_decoder(id))
        KG_TYPES(KGC_X)
#undef KGC_X
        ;
}
static_assert(every_type_decoded(), "kgen_types.h marks a block type kernels = 1 that load_chunk cannot decode");

/* bit i (0..3) of b to bit 4 of byte i */
__device__ __forceinline__ u32 hibit4(u32 b) { return ((b * 0x00204081u) & 0x01010101u) << 4; }

/* IQ4_NL's codebook (GGUF kvalues_iq4nl) at the 4-bit indices in the low
 * nibbles of v's bytes: four int8, by byte permutes of the table's words */
__device__ __forceinline__ i32 iq4_lookup(u32 v)
{
    const u32 t = v | v >> 4;
    const u32 sel = __byte_perm(t, 0, 0x4420); /* the 4 indices as the nibbles of a selector */
    const u32 lo = __byte_perm(0xbfad9881u, 0xf6eaddcfu, sel); /* entries 0-7 (3 bits of each nibble) */
    const u32 hi = __byte_perm(0x26190d01u, 0x71594535u, sel); /* entries 8-15 */
    return (i32)__byte_perm(lo, hi, 0x3210 | ((sel & 0x8888u) >> 1)); /* bit 3: the high table */
}

template <int WT> __device__ __forceinline__ void load_chunk(const u8 *row, int c, chunk &w)
{
    static_assert(has_chunk_decoder(WT), "load_chunk: no decoder for this type");
    const int s = c % (fmt<WT>::blk / 32);
    const u8 *blk = row + (i64)(c / (fmt<WT>::blk / 32)) * fmt<WT>::bytes;
    if (WT == Q4_0 || WT == Q4_1) {
        const float d = f16(ld16(blk));
        const u8 *qs = blk + (WT == Q4_0 ? 2 : 4);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const u32 v = ld32(qs + 4 * j);
            w.q[j] = (i32)(v & 0x0f0f0f0fu);
            w.q[4 + j] = (i32)((v >> 4) & 0x0f0f0f0fu);
        }
        w.a0 = w.a1 = d;
        w.b0 = w.b1 = WT == Q4_0 ? -8.0f * d : f16(ld16(blk + 2));
    } else if (WT == Q5_0 || WT == Q5_1) {
        /* d (, m), qh: bit j the high bit of element j, qs: nibbles as Q4 */
        const int o = WT == Q5_0 ? 2 : 4;
        const float d = f16(ld16(blk));
        const u32 qh = ld32(blk + o);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const u32 v = ld32(blk + o + 4 + 4 * j);
            w.q[j] = (i32)((v & 0x0f0f0f0fu) | hibit4((qh >> 4 * j) & 15));
            w.q[4 + j] = (i32)(((v >> 4) & 0x0f0f0f0fu) | hibit4((qh >> (16 + 4 * j)) & 15));
        }
        w.a0 = w.a1 = d;
        w.b0 = w.b1 = WT == Q5_0 ? -16.0f * d : f16(ld16(blk + 2));
    } else if (WT == Q8_0) {
#pragma unroll
        for (int j = 0; j < 8; j++) w.q[j] = (i32)ld32(blk + 2 + 4 * j);
        w.a0 = w.a1 = f16(ld16(blk));
        w.b0 = w.b1 = 0.0f;
    } else if (WT == Q4_K || WT == Q5_K) {
        /* d, dmin, scales[12] (6-bit scale and min per chunk), Q5_K: qh[32]
         * (bit s of byte l: the high bit of element l of chunk s), qs:
         * chunks 2i and 2i+1 the low and high nibbles of 32 bytes */
        const u8 *sc = blk + 4;
        int scale, mn;
        if (s < 4) {
            scale = sc[s] & 63;
            mn = sc[s + 4] & 63;
        } else {
            scale = (sc[s + 4] & 15) | ((sc[s - 4] >> 6) << 4);
            mn = (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4);
        }
        const u8 *qs = blk + (WT == Q4_K ? 16 : 48) + 32 * (s >> 1), *qh = blk + 16;
        const int sh = 4 * (s & 1);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            u32 v = (ld32(qs + 4 * j) >> sh) & 0x0f0f0f0fu;
            if (WT == Q5_K) v |= ((ld32(qh + 4 * j) >> s) & 0x01010101u) << 4;
            w.q[j] = (i32)v;
        }
        w.a0 = w.a1 = f16(ld16(blk)) * (float)scale;
        w.b0 = w.b1 = -f16(ld16(blk + 2)) * (float)mn;
    } else if (WT == Q6_K) {
        const int n = s >> 2, j4 = s & 3;
        const u8 *ql = blk + 64 * n + 32 * (j4 & 1), *qh = blk + 128 + 32 * n;
        const int shl = 4 * (j4 >> 1), shh = 2 * j4;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const u32 lo = (ld32(ql + 4 * j) >> shl) & 0x0f0f0f0fu;
            const u32 hi = ((ld32(qh + 4 * j) >> shh) & 0x03030303u) << 4;
            w.q[j] = (i32)__vsub4(lo | hi, 0x20202020u); /* q - 32 in [-32, 31], per byte */
        }
        const float d = f16(ld16(blk + 208));
        w.a0 = d * (float)(i8)blk[192 + 2 * s];
        w.a1 = d * (float)(i8)blk[192 + 2 * s + 1];
        w.b0 = w.b1 = 0.0f;
    } else if (WT == Q3_K) {
        /* hmask[32] (bit s of byte l: element l of chunk s is >= 0), qs[64]
         * (chunk s: 2-bit field s % 4 of bytes 32 (s / 4) ..), scales[12]
         * (16 6-bit scales: low nibbles in bytes 0-7, high 2 bits in 8-11),
         * d. q = field - 4 (hmask bit clear) or field, in [-4, 3] */
        const u8 *qs = blk + 32 + 32 * (s >> 2), *sc = blk + 96;
        const int sh = 2 * (s & 3);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const u32 lo = (ld32(qs + 4 * j) >> sh) & 0x03030303u;
            const u32 hi = ((ld32(blk + 4 * j) >> s) & 0x01010101u) << 2;
            w.q[j] = (i32)__vsub4(lo | hi, 0x04040404u);
        }
        const int i0 = 2 * s, i1 = 2 * s + 1; /* scale i: nibble i / 8 of byte i % 8, bits 2 (i / 4) of byte 8 + i % 4 */
        const int sc0 = ((sc[i0 & 7] >> 4 * (i0 >> 3)) & 15) | (((sc[8 + (i0 & 3)] >> 2 * (i0 >> 2)) & 3) << 4);
        const int sc1 = ((sc[i1 & 7] >> 4 * (i1 >> 3)) & 15) | (((sc[8 + (i1 & 3)] >> 2 * (i1 >> 2)) & 3) << 4);
        const float d = f16(ld16(blk + 108));
        w.a0 = d * (float)(sc0 - 32);
        w.a1 = d * (float)(sc1 - 32);
        w.b0 = w.b1 = 0.0f;
    } else if (WT == Q2_K) {
        /* scales[16] (low nibble scale, high nibble min, per 16 elements),
         * qs[64] (as Q3_K's), d, dmin */
        const u8 *qs = blk + 16 + 32 * (s >> 2);
        const int sh = 2 * (s & 3);
#pragma unroll
        for (int j = 0; j < 8; j++) w.q[j] = (i32)((ld32(qs + 4 * j) >> sh) & 0x03030303u);
        const u32 sc = ld16(blk + 2 * s);
        const float d = f16(ld16(blk + 80)), dmin = f16(ld16(blk + 82));
        w.a0 = d * (float)(sc & 15);
        w.a1 = d * (float)((sc >> 8) & 15);
        w.b0 = -dmin * (float)((sc >> 4) & 15);
        w.b1 = -dmin * (float)(sc >> 12);
    } else if (WT == IQ4_NL || WT == IQ4_XS) {
        /* IQ4_NL: d, qs[16]; IQ4_XS: d, scales_h (2 bits per chunk),
         * scales_l[4] (a nibble per chunk), qs[128] (16 per chunk). Element
         * j < 16 the low nibble of byte j, j + 16 the high one */
        const u8 *qs = WT == IQ4_NL ? blk + 2 : blk + 8 + 16 * s;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const u32 v = ld32(qs + 4 * j);
            w.q[j] = iq4_lookup(v & 0x0f0f0f0fu);
            w.q[4 + j] = iq4_lookup((v >> 4) & 0x0f0f0f0fu);
        }
        float d = f16(ld16(blk));
        if (WT == IQ4_XS) {
            const int ls = ((blk[4 + (s >> 1)] >> 4 * (s & 1)) & 15) | (((ld16(blk + 2) >> 2 * s) & 3) << 4);
            d *= (float)(ls - 32);
        }
        w.a0 = w.a1 = d;
        w.b0 = w.b1 = 0.0f;
    }
}

/* the chunk's dot with a q8a block: exact int32 per half, then scaled; the
 * offsets multiply the activations' sum (per half for two_offsets types) */
template <int WT> __device__ __forceinline__ float dot_q8(const chunk &w, const q8a *x)
{
    int s0 = 0, s1 = 0;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        s0 = __dp4a(w.q[j], x->qs[j], s0);
        s1 = __dp4a(w.q[4 + j], x->qs[4 + j], s1);
    }
    if (two_offsets(WT)) {
        int h0 = 0;
#pragma unroll
        for (int j = 0; j < 4; j++) h0 = __dp4a(0x01010101, x->qs[j], h0);
        return x->d * (w.a0 * (float)s0 + w.a1 * (float)s1 + w.b0 * (float)h0 + w.b1 * (float)(x->sum - h0));
    }
    return x->d * (w.a0 * (float)s0 + w.a1 * (float)s1 + w.b0 * (float)x->sum);
}

/* element e of the chunk (one rounding: a q + b fused) */
__device__ __forceinline__ float chunk_elem(const chunk &w, int e)
{
    const int q = (i8)(w.q[e >> 2] >> (8 * (e & 3)));
    return e < 16 ? fmaf(w.a0, (float)q, w.b0) : fmaf(w.a1, (float)q, w.b1);
}

/* the chunk's dot with 32 floats */
__device__ __forceinline__ float dot_f32(const chunk &w, const float *x)
{
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < 32; e++) s += chunk_elem(w, e) * x[e];
    return s;
}

/* element e of a float-type row */
template <int WT> __device__ __forceinline__ float felem(const u8 *row, i64 e)
{
    if (WT == F32) return ((const float *)row)[e];
    const u16 h = ((const u16 *)row)[e];
    return WT == F16 ? f16(h) : bf16(h);
}

} // namespace kgc

#endif
