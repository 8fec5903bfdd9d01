/*
 * quants.h — the weight formats, as the product templates (mm.c, embed.c,
 * quantize.c) read them: geometry, f16/bf16, block headers, unpacking,
 * dequantization, activation quantization. The integer dot products with
 * q8a activations are in quants_q8.h. Everything is `static inline`; the
 * switches on the type id fold away once the generator has made it a
 * constant.
 *
 * A row of K elements is read in CHUNKS of 32 elements, which every format
 * has in common: one block of the 32-element types (Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0, IQ4_NL), one eighth of a 256-element block of the K-quants
 * (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS), 32 values of F32/F16/BF16 (for
 * those, a row may end in a partial chunk, read element by element).
 * Element e of chunk s of every quantized format is w_e = a(e) q_e + b(e),
 * with q_e an integer quant and a, b per block, sub-block or 16 elements:
 *
 *   type    q_e                                   a(e)             b(e)
 *   Q4_0    nibble - 8                            d                0
 *   Q4_1    nibble                                d                m
 *   Q5_0    nibble | bit e of qh << 4, - 16       d                0
 *   Q5_1    nibble | bit e of qh << 4             d                m
 *   Q8_0    int8                                  d                0
 *   IQ4_NL  T[nibble] (T: kgq_iq4_table)          d                0
 *   Q4_K    nibble                                d sc_s           -dmin m_s
 *   Q5_K    nibble | bit s of qh[e] << 4          d sc_s           -dmin m_s
 *   Q6_K    6 bits - 32                           d sc16           0
 *   Q3_K    2 bits - (hmask bit s of e ? 0 : 4)   d (sc16 - 32)    0
 *   Q2_K    2 bits                                d (sc16 & 15)    -dmin (sc16 >> 4)
 *   IQ4_XS  T[nibble]                             d (ls_s - 32)    0
 *
 * (sc16: a scale per 16 elements, so two per chunk; s: the sub-block.)
 *
 *   kgq_block()      decodes a block header once (f16 scales, the K-quants'
 *                    6-bit scales and mins) into a kgq_blk_t;
 *   kgq_deq32()      dequantizes chunk s of a block to 4 x 8 floats;
 *   kgq_dequant_row  a whole row;
 *   kgq_quantize32() 32 floats to a kgt_q8a block.
 *
 * ISA paths: the portable code is plain C with GCC/Clang vector extensions.
 * With AVX2 (KG_ISA_AVX2: AVX2+FMA+F16C) f16 conversion uses F16C and the
 * IQ4 table lookup is one vpshufb (portable: 32 byte loads); the rest of
 * this file is the same code on every ISA. KGQ_PORTABLE (tests only)
 * forces the portable path.
 */
#ifndef KGEN_QUANTS_H
#define KGEN_QUANTS_H

#include "kernel.h"

#include <math.h>

#if KG_ISA_AVX2 && !defined(KGQ_PORTABLE)
#define KGQ_AVX2 1
#include <immintrin.h>
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define KGQ_VNNI 1
#endif
#endif

/* 32-byte vectors are passed to and returned from the helpers below by
 * value; without AVX that would be an ABI question, but every helper is
 * always_inline (there is no call), so the warning about it is noise */
#pragma GCC diagnostic ignored "-Wpsabi"

/* full unrolling of loops with small constant trip counts (tile sizes):
 * needed for the tile arrays to live in registers; and the opposite */
#if defined(__clang__)
#define KGQ_UNROLL _Pragma("clang loop unroll(full)")
#define KGQ_UNROLL4 _Pragma("clang loop unroll_count(4)")
#define KGQ_NOUNROLL _Pragma("clang loop unroll(disable)")
#elif defined(__GNUC__)
#define KGQ_UNROLL _Pragma("GCC unroll 8")
#define KGQ_UNROLL4 _Pragma("GCC unroll 4")
#define KGQ_NOUNROLL _Pragma("GCC unroll 1")
#else
#define KGQ_UNROLL
#define KGQ_UNROLL4
#define KGQ_NOUNROLL
#endif

typedef float kgq_f32x8 __attribute__((vector_size(32)));
typedef float kgq_f32x4 __attribute__((vector_size(16)));
typedef int32_t kgq_i32x8 __attribute__((vector_size(32)));
typedef uint32_t kgq_u32x8 __attribute__((vector_size(32)));
typedef uint16_t kgq_u16x8 __attribute__((vector_size(16)));
typedef uint16_t kgq_u16x16 __attribute__((vector_size(32)));
typedef uint8_t kgq_u8x16 __attribute__((vector_size(16)));
typedef uint8_t kgq_u8x32 __attribute__((vector_size(32)));
typedef int8_t kgq_i8x8 __attribute__((vector_size(8)));
typedef uint8_t kgq_u8x8 __attribute__((vector_size(8)));
typedef int8_t kgq_i8x16 __attribute__((vector_size(16)));
typedef uint8_t kgq_u8x4 __attribute__((vector_size(4)));

/* ───────────────────────── type geometry ───────────────────────── */

/* from the table (include/kgen_types.h) */
KG_INLINE int64_t kgq_tblk(int wt)
{
    switch (wt) {
#define KGQ_X(id, nm, b, s, k, g, mn) case id: return b;
        KG_TYPES(KGQ_X)
#undef KGQ_X
    default: return 0;
    }
}

KG_INLINE int64_t kgq_tsize(int wt)
{
    switch (wt) {
#define KGQ_X(id, nm, b, s, k, g, mn) case id: return s;
        KG_TYPES(KGQ_X)
#undef KGQ_X
    default: return 0;
    }
}

/* a block-quantized type (as opposed to F32/F16/BF16) */
KG_INLINE int kgq_is_quant(int wt) { return kgq_tblk(wt) > 1; }

/* elements per block (float types: a 32-element chunk stands for a block) */
KG_INLINE int64_t kgq_blk(int wt) { return kgq_is_quant(wt) ? kgq_tblk(wt) : 32; }
KG_INLINE int kgq_subs(int wt) { return (int)(kgq_blk(wt) / 32); }

/* bytes per block (float types: per 32 elements) */
KG_INLINE int64_t kgq_blk_bytes(int wt) { return kgq_is_quant(wt) ? kgq_tsize(wt) : 32 * kgq_tsize(wt); }

/* bytes of a row of K elements (K a whole number of blocks for quant types) */
KG_INLINE int64_t kgq_row_bytes(int wt, int64_t K)
{
    return kgq_is_quant(wt) ? K / kgq_blk(wt) * kgq_blk_bytes(wt) : K * kgq_tsize(wt);
}

/* FN(T, ...) with T the constant type id equal to wt, for every type the
 * table marks as computed with (kernels = 1): one specialized copy of FN
 * per type (the generator folds the switch to one of them) */
#define KGQ_DISPATCH(wt, FN, ...)                                   \
    switch (wt) {                                                   \
        KG_TYPE_CASES(KGT_, FN, __VA_ARGS__)                        \
    default: break;                                                 \
    }

/* ───────────────────────── f16 / bf16 ───────────────────────── */

KG_INLINE uint16_t kgq_ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

KG_INLINE float kgq_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* f16 -> f32, exact for every input. With F16C one instruction; otherwise
 * integer arithmetic (no libcall, no denormal float operands): the 15 low
 * bits shifted into place with the exponent rebased by 127-15; inf/NaN get
 * it rebased once more to 255; subnormals are made normal (exponent 1) and
 * the implicit 2^-14 subtracted back, which is exact. */
KG_INLINE float kgq_f16(uint16_t h)
{
#if KGQ_AVX2
    return _cvtsh_ss(h);
#else
    uint32_t u = (uint32_t)(h & 0x7fff) << 13, e = u & 0x0f800000u;
    u += 0x38000000u;
    if (e == 0x0f800000u) u += 0x38000000u;
    float f = kgq_bits_f32(u);
    if (e == 0) f = kgq_bits_f32(u + 0x00800000u) - kgq_bits_f32(0x38800000u);
    uint32_t r;
    memcpy(&r, &f, 4);
    return kgq_bits_f32(r | (uint32_t)(h & 0x8000) << 16);
#endif
}

KG_INLINE float kgq_f16p(const uint8_t *p) { return kgq_f16(kgq_ld16(p)); }

/* 8 f16 at p (any alignment) -> 8 f32; the same algorithm in lanes */
KG_INLINE kgq_f32x8 kgq_f16x8(const uint8_t *p)
{
#if KGQ_AVX2
    return (kgq_f32x8)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
#else
    kgq_u16x8 h;
    memcpy(&h, p, 16);
    kgq_u32x8 x = __builtin_convertvector(h, kgq_u32x8);
    kgq_u32x8 u = (x & 0x7fff) << 13, e = u & 0x0f800000u;
    kgq_u32x8 special = (kgq_u32x8)(e == 0x0f800000u), sub = (kgq_u32x8)(e == 0);
    u += 0x38000000u + (special & 0x38000000u) + (sub & 0x00800000u);
    kgq_f32x8 f = (kgq_f32x8)u - (kgq_f32x8)(sub & 0x38800000u);
    return (kgq_f32x8)((kgq_u32x8)f | (x & 0x8000) << 16);
#endif
}

KG_INLINE kgq_f32x8 kgq_bf16x8(const uint8_t *p)
{
    kgq_u16x8 h;
    memcpy(&h, p, 16);
    return (kgq_f32x8)(__builtin_convertvector(h, kgq_u32x8) << 16);
}

/* element e of a float-type row (the tail of a row that is not a whole
 * number of 32-element chunks) */
KG_INLINE float kgq_w1(int wt, const uint8_t *row, int64_t e)
{
    if (wt == KGT_F32) {
        float f;
        memcpy(&f, row + 4 * e, 4);
        return f;
    }
    uint16_t h = kgq_ld16(row + 2 * e);
    return wt == KGT_F16 ? kgq_f16(h) : kgq_bits_f32((uint32_t)h << 16);
}

/* ───────────────────────── block headers ───────────────────────── */

typedef struct {
    const uint8_t *b;     /* the block (2-byte aligned at best)              */
    float d, dmin;        /* its f16 scale(s); Q4_1, Q5_1: dmin is m          */
    uint8_t sc[8], mn[8]; /* Q4_K, Q5_K: 6-bit sub-block scales and mins     */
    int8_t ss[16];        /* signed scales: Q3_K's 16 (sc - 32), IQ4_XS's 8
                             (ls - 32)                                       */
} kgq_blk_t;

/* Q3_K's scales 4w..4w+3 (6 bits each, unbiased) as the bytes of an
 * integer: the low 4 bits are nibble w/2 of bytes 0-7 (4 scales per
 * 32-bit half), the high 2 bits are bits 2w..2w+1 of bytes 8-11 */
KG_INLINE uint32_t kgq_q3k_scales4(const uint8_t *b, int w)
{
    uint32_t lo, hi;
    memcpy(&lo, b + offsetof(kgt_block_q3_K, scales) + 4 * (w & 1), 4);
    memcpy(&hi, b + offsetof(kgt_block_q3_K, scales) + 8, 4);
    return ((lo >> (4 * (w >> 1))) & 0x0f0f0f0fu) | ((hi >> (2 * w)) & 0x03030303u) << 4;
}

/* IQ4_XS's 6-bit scale ls of sub-block s */
KG_INLINE int kgq_iq4xs_scale(const uint8_t *b, int s)
{
    const int lo = b[offsetof(kgt_block_iq4_xs, scales_l) + (s >> 1)] >> (4 * (s & 1)) & 15;
    return lo | (kgq_ld16(b + offsetof(kgt_block_iq4_xs, scales_h)) >> (2 * s) & 3) << 4;
}

KG_INLINE kgq_blk_t kgq_block(int wt, const uint8_t *b)
{
    kgq_blk_t h = {b, 0.0f, 0.0f, {0}, {0}, {0}};
    switch (wt) {
    case KGT_Q4_0: case KGT_Q8_0: case KGT_Q5_0: case KGT_IQ4_NL: h.d = kgq_f16p(b); break;
    case KGT_Q4_1: case KGT_Q5_1: h.d = kgq_f16p(b); h.dmin = kgq_f16p(b + 2); break;
    case KGT_Q6_K: h.d = kgq_f16p(b + offsetof(kgt_block_q6_K, d)); break;
    case KGT_Q2_K:
        h.d = kgq_f16p(b + offsetof(kgt_block_q2_K, d));
        h.dmin = kgq_f16p(b + offsetof(kgt_block_q2_K, dmin));
        break;
    case KGT_Q3_K: {
        uint32_t w[4];
        KGQ_UNROLL
        for (int i = 0; i < 4; i++) w[i] = kgq_q3k_scales4(b, i);
        kgq_u8x16 v;
        memcpy(&v, w, 16);
        v -= 32;
        memcpy(h.ss, &v, 16);
        h.d = kgq_f16p(b + offsetof(kgt_block_q3_K, d));
        break;
    }
    case KGT_IQ4_XS:
        KGQ_UNROLL
        for (int s = 0; s < 8; s++) h.ss[s] = (int8_t)(kgq_iq4xs_scale(b, s) - 32);
        h.d = kgq_f16p(b);
        break;
    case KGT_Q4_K: case KGT_Q5_K: {
        /* scales[12]: bytes 0-3 scale j (low 6 bits) for j < 4, bytes 4-7
         * min j; bytes 8-11 the low 4 bits of scale/min j+4, whose high 2
         * bits are the top bits of bytes 0-3 / 4-7 */
        uint32_t a, c, m;
        memcpy(&a, b + 4, 4);
        memcpy(&m, b + 8, 4);
        memcpy(&c, b + 12, 4);
        uint32_t sc_lo = a & 0x3f3f3f3fu, mn_lo = m & 0x3f3f3f3fu;
        uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
        uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0fu) | ((m >> 2) & 0x30303030u);
        memcpy(h.sc, &sc_lo, 4);
        memcpy(h.sc + 4, &sc_hi, 4);
        memcpy(h.mn, &mn_lo, 4);
        memcpy(h.mn + 4, &mn_hi, 4);
        h.d = kgq_f16p(b);
        h.dmin = kgq_f16p(b + 2);
        break;
    }
    default: break;
    }
    return h;
}

/* ───────────────────────── unpacking quants ───────────────────────── */

/* 16 bytes of nibbles: low nibbles are elements 0-15, high ones 16-31.
 * The bytes are loaded twice side by side and the upper copy shifted by 4
 * in 32-bit lanes (bits crossing into a byte from its neighbour are masked
 * off): one broadcast load, one variable shift, one and with AVX2. */
KG_INLINE kgq_u8x32 kgq_nib16(const uint8_t *qs)
{
    kgq_u8x16 v;
    memcpy(&v, qs, 16);
    const kgq_u8x32 vv = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                                 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const kgq_u32x8 shift = {0, 0, 0, 0, 4, 4, 4, 4};
    return (kgq_u8x32)((kgq_u32x8)vv >> shift) & 15;
}

/* Q4_K chunk s: 32 bytes per pair of chunks, low nibbles for the even one
 * (Q5_K's low 4 bits likewise, at qs = its offset) */
KG_INLINE kgq_u8x32 kgq_nib_q4k(const uint8_t *qs, int s)
{
    kgq_u8x32 v;
    memcpy(&v, qs + 32 * (s >> 1), 32);
    return s & 1 ? v >> 4 : v & 15;
}

/* bits k..k+n-1 of every byte of v, moved to bits p..p+n-1 (k, p < 8; the
 * shifts are done in 16-bit lanes, where x86 has them, k and p need not
 * be constants; mask: the n-bit mask) */
KG_INLINE kgq_u8x32 kgq_bits(kgq_u8x32 v, int k, int p, int mask)
{
    return (kgq_u8x32)((((kgq_u16x16)v >> k) & (uint16_t)(mask * 0x0101)) << p);
}

/* Q5_0/Q5_1's fifth bits: bit e of the 32-bit qh (little-endian) as 16 or 0
 * in byte e. Byte e/8 of qh is spread to 8 lanes and tested against bit
 * e%8 (a broadcast, vpshufb, vpand, vpcmpeqb, vpand with AVX2). */
KG_INLINE kgq_u8x32 kgq_q5_hi(const uint8_t *qh)
{
    kgq_u8x4 v;
    memcpy(&v, qh, 4);
    const kgq_u8x32 vv = __builtin_shufflevector(v, v, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const kgq_u8x32 bit = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128,
                           1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    return (kgq_u8x32)((vv & bit) != 0) & 16;
}

/* Q5_0/Q5_1's quants (0..31) at the block's qh, qs */
KG_INLINE kgq_u8x32 kgq_q5(const uint8_t *qh, const uint8_t *qs) { return kgq_nib16(qs) | kgq_q5_hi(qh); }

/* Q5_K chunk s as quants 0..31: Q4_K's nibbles, bit s of qh[l] as bit 4 */
KG_INLINE kgq_u8x32 kgq_q5k(const uint8_t *b, int s)
{
    kgq_u8x32 qh;
    memcpy(&qh, b + offsetof(kgt_block_q5_K, qh), 32);
    return kgq_nib_q4k(b + offsetof(kgt_block_q5_K, qs), s) | kgq_bits(qh, s, 4, 1);
}

/* Q3_K chunk s as int8 bit patterns in [-4, 3]: in each 128-element half
 * n = s/4, quarter j = s%4 takes bits 2j..2j+1 of qs[32n ...], minus 4
 * where bit s of hmask[l] is clear */
KG_INLINE kgq_u8x32 kgq_q3k(const uint8_t *b, int s)
{
    kgq_u8x32 q, hm;
    memcpy(&q, b + offsetof(kgt_block_q3_K, qs) + 32 * (s >> 2), 32);
    memcpy(&hm, b + offsetof(kgt_block_q3_K, hmask), 32);
    return (kgq_bits(q, 2 * (s & 3), 0, 3) | kgq_bits(hm, s, 2, 1)) - 4;
}

/* Q2_K chunk s as quants 0..3: bits 2j..2j+1 of qs[32n ...], n = s/4, j = s%4 */
KG_INLINE kgq_u8x32 kgq_q2k(const uint8_t *b, int s)
{
    kgq_u8x32 q;
    memcpy(&q, b + offsetof(kgt_block_q2_K, qs) + 32 * (s >> 2), 32);
    return kgq_bits(q, 2 * (s & 3), 0, 3);
}

/* Q2_K's scale byte of elements 16i..16i+15 of chunk s: scale in the low
 * nibble, min in the high one */
KG_INLINE int kgq_q2k_sm(const uint8_t *b, int s, int i) { return b[offsetof(kgt_block_q2_K, scales) + 2 * s + i]; }

/* IQ4_NL's and IQ4_XS's non-linear table T: a nibble's int8 value */
#define KGQ_IQ4_VALUES -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113

/* T[q_e] + bias for 32 nibbles q (bias 0: the int8 values; 128: unsigned
 * values + 128, as the VNNI products take them). With AVX2 one vpshufb of
 * the table in both 128-bit lanes; portably 32 lookups. */
KG_INLINE kgq_u8x32 kgq_iq4_lut(kgq_u8x32 q, int bias)
{
    const kgq_u8x16 t = (kgq_u8x16)(kgq_i8x16){KGQ_IQ4_VALUES} + (uint8_t)bias;
#if KGQ_AVX2
    return (kgq_u8x32)_mm256_shuffle_epi8(_mm256_broadcastsi128_si256((__m128i)t), (__m256i)q);
#else
    kgq_u8x32 r;
    for (int e = 0; e < 32; e++) r[e] = t[q[e] & 15];
    return r;
#endif
}

/* IQ4_NL's or IQ4_XS's chunk s as T[nibble] + bias (see kgq_iq4_lut) */
KG_INLINE kgq_u8x32 kgq_iq4(int wt, const uint8_t *b, int s, int bias)
{
    const uint8_t *qs = wt == KGT_IQ4_NL ? b + offsetof(kgt_block_iq4_nl, qs)
                                         : b + offsetof(kgt_block_iq4_xs, qs) + 16 * s;
    return kgq_iq4_lut(kgq_nib16(qs), bias);
}

/* Q6_K chunk s (0..7) as unsigned 6-bit values: in each 128-element half
 * n = s/4, quarter j = s%4 takes the low (j < 2) or high nibbles of
 * ql[64n + 32(j%2) ...] and bits 2j..2j+1 of qh[32n ...] as bits 4-5 */
KG_INLINE kgq_u8x32 kgq_q6(const uint8_t *b, int s)
{
    int n = s >> 2, j = s & 3;
    kgq_u8x32 ql, qh;
    memcpy(&ql, b + offsetof(kgt_block_q6_K, ql) + 64 * n + 32 * (j & 1), 32);
    memcpy(&qh, b + offsetof(kgt_block_q6_K, qh) + 32 * n, 32);
    ql = j & 2 ? ql >> 4 : ql & 15;
    return ql | ((qh >> (2 * j)) & 3) << 4;
}

/* Q6_K's int8 scale of elements 16i..16i+15 of chunk s (i = 0, 1) */
KG_INLINE int kgq_q6_scale(const uint8_t *b, int s, int i)
{
    return (int8_t)b[offsetof(kgt_block_q6_K, scales) + 2 * s + i];
}

/* ───────────────────────── dequantization ───────────────────────── */

/* 8 quants at p as floats */
KG_INLINE kgq_f32x8 kgq_u8x8_f32(const uint8_t *p)
{
    kgq_u8x8 v;
    memcpy(&v, p, 8);
    return __builtin_convertvector(v, kgq_f32x8);
}

KG_INLINE kgq_f32x8 kgq_i8x8_f32(const uint8_t *p)
{
    kgq_i8x8 v;
    memcpy(&v, p, 8);
    return __builtin_convertvector(v, kgq_f32x8);
}

/* chunk s of block h as floats: element 8i+l in v[i][l]. The arithmetic is
 * ggml's reference order: (q-8)d, q d + m, q d, (d sc) q - dmin m,
 * (d sc) (q-32), (q-16)d, (d (sc-32)) q, (d ls) T[q]. */
KG_INLINE void kgq_deq32(int wt, const kgq_blk_t *h, int s, kgq_f32x8 v[4])
{
    const uint8_t *b = h->b;
    kgq_u8x32 q = {0}; /* the chunk's quants, for the quantized types */
    switch (wt) {
    case KGT_Q8_0: memcpy(&q, b + offsetof(kgt_block_q8_0, qs), 32); break;
    case KGT_Q4_0: q = kgq_nib16(b + offsetof(kgt_block_q4_0, qs)); break;
    case KGT_Q4_1: q = kgq_nib16(b + offsetof(kgt_block_q4_1, qs)); break;
    case KGT_Q4_K: q = kgq_nib_q4k(b + offsetof(kgt_block_q4_K, qs), s); break;
    case KGT_Q6_K: q = kgq_q6(b, s); break;
    case KGT_Q5_0: q = kgq_q5(b + offsetof(kgt_block_q5_0, qh), b + offsetof(kgt_block_q5_0, qs)); break;
    case KGT_Q5_1: q = kgq_q5(b + offsetof(kgt_block_q5_1, qh), b + offsetof(kgt_block_q5_1, qs)); break;
    case KGT_Q5_K: q = kgq_q5k(b, s); break;
    case KGT_Q3_K: q = kgq_q3k(b, s); break;
    case KGT_Q2_K: q = kgq_q2k(b, s); break;
    case KGT_IQ4_NL: case KGT_IQ4_XS: q = kgq_iq4(wt, b, s, 0); break;
    default: break;
    }
    const uint8_t *qb = (const uint8_t *)&q;
    KGQ_UNROLL
    for (int i = 0; i < 4; i++) {
        switch (wt) {
        case KGT_F32: memcpy(&v[i], b + 32 * i, 32); break;
        case KGT_F16: v[i] = kgq_f16x8(b + 16 * i); break;
        case KGT_BF16: v[i] = kgq_bf16x8(b + 16 * i); break;
        case KGT_Q8_0: v[i] = kgq_i8x8_f32(qb + 8 * i) * h->d; break;
        case KGT_Q4_0: v[i] = (kgq_u8x8_f32(qb + 8 * i) - 8.0f) * h->d; break;
        case KGT_Q4_1: v[i] = kgq_u8x8_f32(qb + 8 * i) * h->d + h->dmin; break;
        case KGT_Q4_K: case KGT_Q5_K:
            v[i] = (h->d * (float)h->sc[s]) * kgq_u8x8_f32(qb + 8 * i) - h->dmin * (float)h->mn[s];
            break;
        case KGT_Q5_0: v[i] = (kgq_u8x8_f32(qb + 8 * i) - 16.0f) * h->d; break;
        case KGT_Q5_1: v[i] = kgq_u8x8_f32(qb + 8 * i) * h->d + h->dmin; break;
        case KGT_Q3_K: v[i] = (h->d * (float)h->ss[2 * s + (i >> 1)]) * kgq_i8x8_f32(qb + 8 * i); break;
        case KGT_Q2_K: {
            const int sm = kgq_q2k_sm(b, s, i >> 1);
            v[i] = (h->d * (float)(sm & 15)) * kgq_u8x8_f32(qb + 8 * i) - h->dmin * (float)(sm >> 4);
            break;
        }
        case KGT_IQ4_NL: v[i] = kgq_i8x8_f32(qb + 8 * i) * h->d; break;
        case KGT_IQ4_XS: v[i] = (h->d * (float)h->ss[s]) * kgq_i8x8_f32(qb + 8 * i); break;
        case KGT_Q6_K:
            v[i] = (h->d * (float)kgq_q6_scale(b, s, i >> 1)) * (kgq_u8x8_f32(qb + 8 * i) - 32.0f);
            break;
        default: break;
        }
    }
}

/* a row of K elements (K a whole number of blocks for quant types) */
KG_INLINE void kgq_dequant_row(int wt, const void *row, int64_t K, float *KG_RESTRICT y)
{
    const uint8_t *r = row;
    const int64_t nb = K / kgq_blk(wt), bb = kgq_blk_bytes(wt);
    const int subs = kgq_subs(wt);
    for (int64_t ib = 0; ib < nb; ib++) {
        kgq_blk_t h = kgq_block(wt, r + ib * bb);
        KGQ_UNROLL
        for (int s = 0; s < subs; s++) {
            kgq_f32x8 v[4];
            kgq_deq32(wt, &h, s, v);
            memcpy(y + ib * kgq_blk(wt) + 32 * s, v, sizeof v);
        }
    }
    for (int64_t e = nb * kgq_blk(wt); e < K; e++) y[e] = kgq_w1(wt, r, e); /* float types only */
}

/* Every type the table marks kernels = 1 has its decoder above (in
 * kgq_block, kgq_deq32 and quants_q8.h's kgq_q8_quants / kgq_wscales);
 * a row without one stops the build here ("KGQ_DEC_x undeclared"). */
enum {
    KGQ_DEC_F32 = 1, KGQ_DEC_F16 = 1, KGQ_DEC_BF16 = 1, KGQ_DEC_Q4_0 = 1, KGQ_DEC_Q4_1 = 1, KGQ_DEC_Q8_0 = 1,
    KGQ_DEC_Q4_K = 1, KGQ_DEC_Q6_K = 1, KGQ_DEC_Q5_0 = 1, KGQ_DEC_Q5_1 = 1, KGQ_DEC_Q5_K = 1, KGQ_DEC_Q3_K = 1,
    KGQ_DEC_Q2_K = 1, KGQ_DEC_IQ4_NL = 1, KGQ_DEC_IQ4_XS = 1,
};
#define KGQ_X(id, nm, b, s, k, g, mn) KGQ_CHECK_##k(nm)
#define KGQ_CHECK_0(nm)
#define KGQ_CHECK_1(nm) _Static_assert(KGQ_DEC_##nm, #nm ": kernels = 1 in kgen_types.h, but no decoder");
KG_TYPES(KGQ_X)
#undef KGQ_X

/* ───────────────────── activation quantization ───────────────────── */

/* 32 finite floats -> one q8a block: d = amax/127, q = rint(x * (127/amax))
 * (round to nearest, ties to even), sum = sum of q. A block with amax below
 * 2^-120 (where 127/amax would overflow; all-zero included) is d = 0, q = 0.
 * amax is found on the bit patterns (|x| orders like its bits), which
 * vectorizes without fast-math. */
KG_INLINE void kgq_quantize32(const float *KG_RESTRICT x, kgt_q8a *KG_RESTRICT y)
{
    uint32_t bits[32], amax_bits = 0;
    memcpy(bits, x, sizeof bits);
    for (int e = 0; e < 32; e++) {
        uint32_t a = bits[e] & 0x7fffffffu;
        amax_bits = a > amax_bits ? a : amax_bits;
    }
    const float amax = kgq_bits_f32(amax_bits);
    const int live = amax >= 0x1p-120f;
    const float id = live ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int e = 0; e < 32; e++) {
        int32_t q = (int32_t)rintf(x[e] * id);
        y->qs[e] = (int8_t)q;
        sum += q;
    }
    y->d = live ? amax / 127.0f : 0.0f;
    y->sum = sum;
}

/* the sum of an 8-lane accumulator (pairwise) */
KG_INLINE float kgq_hsum8(const kgq_f32x8 *p)
{
    const kgq_f32x8 v = *p;
    kgq_f32x4 a = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
    return (a[0] + a[2]) + (a[1] + a[3]);
}

#endif
