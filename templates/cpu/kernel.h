/*
 * kernel.h — what every CPU kernel template shares.
 *
 * ── The template convention (the generator relies on it) ──
 *
 *   void kgt_NAME(void *const *p, int ith, int nth, PARAMS...)
 *
 *   p        the kernel's pointers (inputs, outputs, weights, workspace);
 *            which is which is documented at each template. Runtime scalars
 *            (a position, a length) are passed as pointers to int64_t in p.
 *   ith/nth  this thread's index and the thread count: the template does
 *            only its share of the work (SPMD, as in ggml) and never
 *            allocates, locks or waits.
 *   PARAMS   the bound parameters: int64_t or double only, named. At
 *            generation time the generator creates one wrapper per kernel
 *            instance that calls the template with constants for them (or,
 *            for a parameter bound "at run time", with rt[i]), then inlines
 *            and optimizes for the target: shapes, types and flags fold away.
 *
 *   A parameter may have a default, declared beside its template with
 *   KG_PARAM_DEFAULT(tmpl, name, value) (int64_t) or
 *   KG_PARAM_DEFAULT_F(tmpl, name, value) (double): an instance that
 *   leaves it unbound gets the value (the generator reads the constant
 *   from the bitcode, so the default is part of the template's content
 *   hash and of every cache key). The CUDA backend, which has no bitcode,
 *   applies the same defaults (gen/cuda.c).
 *
 *   Every non-static function named kgt_* with this shape is a template;
 *   the generator finds them (and their parameter names) in the bitcode.
 *   Helpers are `static inline` (KG_INLINE). No globals with state, no libc calls except what LLVM
 *   lowers inline (memcpy/memset) and libm functions the .so links anyway.
 *
 * The same files are compiled natively into the tests (to test templates
 * directly) and to bitcode for the generator, once per ISA level
 * (KG_ISA_* below, from the compiler's target macros).
 */
#ifndef KGEN_KERNEL_H
#define KGEN_KERNEL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KG_KERNEL __attribute__((visibility("default")))
#define KG_INLINE static inline __attribute__((always_inline))
#define KG_RESTRICT __restrict
/* (weak: the tests compile some templates more than once into one program) */
#define KG_PARAM_DEFAULT(tmpl, name, value) \
    KG_KERNEL extern const int64_t kgt_default_##tmpl##__##name; \
    __attribute__((weak)) const int64_t kgt_default_##tmpl##__##name = (value)
#define KG_PARAM_DEFAULT_F(tmpl, name, value) \
    KG_KERNEL extern const double kgt_default_##tmpl##__##name; \
    __attribute__((weak)) const double kgt_default_##tmpl##__##name = (value)

/* ── tensor type ids: GGML's, from the one table (include/kgen_types.h);
 *    KGT_SIZE_x / KGT_BLCK_x are its block bytes and elements ── */
#include "kgen_types.h"
enum {
#define KGT_X(id, nm, b, s, k, g, mn) KGT_##nm = id, KGT_SIZE_##nm = s, KGT_BLCK_##nm = b,
    KG_TYPES(KGT_X)
#undef KGT_X
};

/* ── activation modes of products ── */
enum {
    KGT_ACT_F32 = 0, /* activations are f32 rows                            */
    KGT_ACT_Q8 = 1,  /* activations are kgt_q8a blocks (quantized on the fly) */
};

/* ── weight layouts of products (kgt_mm's `layout`; gen/layout.c writes
 *    them at compile time) ── */
enum {
    KGT_LAYOUT_ROWS = 0, /* GGUF's rows as stored                           */
    KGT_LAYOUT_X16 = 1,  /* groups of 16 rows, tile by tile (mm_x16.h)       */
    KGT_LAYOUT_X16B = 2, /* F16, BF16: x16 groups of bf16 pairs (mm_x16.h)   */
};

/* ── epilogue flags of products (bitwise or) ── */
enum {
    KGT_EPI_BIAS = 1,     /* y += bias[n]                                     */
    KGT_EPI_RESIDUAL = 2, /* y += residual[m][n]                              */
    KGT_EPI_SWIGLU = 4,   /* y = silu(W x) * (W_up x): two products           */
    KGT_EPI_OUT_Q8 = 8,   /* store y as kgt_q8a blocks instead of f32         */
    KGT_EPI_GEGLU = 16,   /* y = gelu(W x) * (W_up x), tanh GELU: two products */
    KGT_EPI_GELU = 32,    /* y = gelu_erf(W x + bias): exact (erf) GELU, BERT's;
                           * after the bias, before the residual             */
};

/* ── GGUF block layouts (facts of the format; little-endian) ── */
typedef uint16_t kgt_f16; /* IEEE half, as bits */

typedef struct { kgt_f16 d; uint8_t qs[16]; } kgt_block_q4_0;            /* w = (q - 8) * d; lo nibbles are 0..15, hi 16..31 */
typedef struct { kgt_f16 d, m; uint8_t qs[16]; } kgt_block_q4_1;         /* w = q * d + m */
typedef struct { kgt_f16 d; int8_t qs[32]; } kgt_block_q8_0;             /* w = q * d */
typedef struct { kgt_f16 d, dmin; uint8_t scales[12]; uint8_t qs[128]; } kgt_block_q4_K; /* 256: 8 x 32, 6-bit scales and mins */
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; kgt_f16 d; } kgt_block_q6_K; /* 256: 16 x 16, 6-bit q */
typedef struct { kgt_f16 d; uint8_t qh[4]; uint8_t qs[16]; } kgt_block_q5_0;  /* w = (q - 16) d, q = nibble | bit e of qh << 4 */
typedef struct { kgt_f16 d, m; uint8_t qh[4]; uint8_t qs[16]; } kgt_block_q5_1; /* w = q d + m, q as Q5_0's (qh: a u32) */
typedef struct { kgt_f16 d; uint8_t qs[16]; } kgt_block_iq4_nl;               /* w = d T[nibble], T: kgq_iq4_table (quants.h) */
/* 256: 8 x 32, Q4_K's scales and mins; bit s of qh[l] is bit 4 of element l of sub-block s */
typedef struct { kgt_f16 d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } kgt_block_q5_K;
/* 256: 16 x 16, 6-bit scales (sc - 32); q = 2 bits - 4, or + 0 where hmask's bit is set */
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; kgt_f16 d; } kgt_block_q3_K;
/* 256: 16 x 16, 2-bit q; per 16: scale (low nibble) and min (high): w = d sc q - dmin m */
typedef struct { uint8_t scales[16]; uint8_t qs[64]; kgt_f16 d, dmin; } kgt_block_q2_K;
/* 256: 8 x 32, 6-bit scales ls (4 bits in scales_l, 2 in scales_h): w = d (ls - 32) T[nibble] */
typedef struct { kgt_f16 d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } kgt_block_iq4_xs;

_Static_assert(sizeof(kgt_block_q4_0) == KGT_SIZE_Q4_0, "q4_0");
_Static_assert(sizeof(kgt_block_q4_1) == KGT_SIZE_Q4_1, "q4_1");
_Static_assert(sizeof(kgt_block_q8_0) == KGT_SIZE_Q8_0, "q8_0");
_Static_assert(sizeof(kgt_block_q4_K) == KGT_SIZE_Q4_K, "q4_K");
_Static_assert(sizeof(kgt_block_q6_K) == KGT_SIZE_Q6_K, "q6_K");
_Static_assert(sizeof(kgt_block_q5_0) == KGT_SIZE_Q5_0, "q5_0");
_Static_assert(sizeof(kgt_block_q5_1) == KGT_SIZE_Q5_1, "q5_1");
_Static_assert(sizeof(kgt_block_q5_K) == KGT_SIZE_Q5_K, "q5_K");
_Static_assert(sizeof(kgt_block_q3_K) == KGT_SIZE_Q3_K, "q3_K");
_Static_assert(sizeof(kgt_block_q2_K) == KGT_SIZE_Q2_K, "q2_K");
_Static_assert(sizeof(kgt_block_iq4_nl) == KGT_SIZE_IQ4_NL, "iq4_nl");
_Static_assert(sizeof(kgt_block_iq4_xs) == KGT_SIZE_IQ4_XS, "iq4_xs");

/* kgen's own activation block: 32 values quantized symmetrically to int8
 * with one f32 scale, plus the sum of the int8 values (for weight formats
 * with a min/offset: sum_k (q_k d + m) x_k needs sum_k x_k).              */
typedef struct { float d; int32_t sum; int8_t qs[32]; } kgt_q8a;
_Static_assert(sizeof(kgt_q8a) == 40, "q8a");

/* ── scalar conversions (exact, no tables) ── */
/* Exact. With F16C the compiler's conversion is one instruction; without it
 * (the generic x86-64-v2 bitcode) it would be a libgcc call, so the bits are
 * rebuilt by hand. */
KG_INLINE float kgt_f16_to_f32(kgt_f16 h)
{
#if defined(__F16C__)
    _Float16 f;
    memcpy(&f, &h, 2);
    return (float)f;
#else
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    float f;
    if (e == 0x1f) u = sign | 0x7f800000u | (m << 13);   /* inf, nan */
    else if (e) u = sign | ((e + 112) << 23) | (m << 13); /* normal */
    else {                                                /* zero, subnormal: m * 2^-24 */
        f = (float)m * 0x1p-24f;
        memcpy(&u, &f, 4);
        u |= sign;
    }
    memcpy(&f, &u, 4);
    return f;
#endif
}

KG_INLINE kgt_f16 kgt_f32_to_f16(float f)
{
    _Float16 h = (_Float16)f;
    kgt_f16 r;
    memcpy(&r, &h, 2);
    return r;
}

KG_INLINE float kgt_bf16_to_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ── work split: rows [*lo, *hi) of `n` for thread ith of nth, in whole
 *    multiples of `align` rows (so no two threads share an output block) ── */
KG_INLINE void kgt_split(int64_t n, int64_t align, int ith, int nth, int64_t *lo, int64_t *hi)
{
    int64_t units = (n + align - 1) / align;
    int64_t per = (units + nth - 1) / nth;
    int64_t a = per * ith * align, b = per * (ith + 1) * align;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

/* ── ISA level this file is being compiled for ── */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define KG_ISA_AVX512 1
#endif
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define KG_ISA_AVX2 1
#endif

#endif
