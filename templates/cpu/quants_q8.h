/*
 * quants_q8.h — products of quantized weight chunks with q8a activation
 * blocks (KGT_ACT_Q8), integer dot products with the float scaling kept out
 * of the inner loop. For chunk c of a row (32 elements) against the
 * activation block x (kgt_q8a: x_e = x.d x.qs_e):
 *
 *     sum_e w_e x_e  =  S_c x.d dot_c  +  Mv_c x.d x.sum
 *     dot_c          =  sum_e sc(e) q_e x.qs_e            (exact, int32)
 *
 *   q       the chunk's quants as bytes (kgq_q8_quants): unsigned, or int8
 *           where kgq_q8_signed(wt) (then the AVX2 abs/sign trick);
 *   sc(e)   Q6_K's int8 scale of each 16 elements; 1 elsewhere;
 *   S, Mv   float factors, per type:
 *             Q8_0  d, 0        (with VNNI q+128 is unsigned: d, -128 d)
 *             Q4_0  d, -8 d     (q stored as q+8)
 *             Q4_1  d, m
 *             Q4_K  d sc_j, -dmin m_j  (sub-block j's 6-bit scale, min)
 *             Q6_K  d, 0        (q-32 signed; sc(e) carries the scales)
 *
 * Scales are read for a GROUP of chunks at once (kgq_wscales, kgq_xscales:
 * 8 lanes, lane c for chunk c0+c; one K-quant block, or 8 consecutive
 * blocks of the 32-element types, or a single chunk at a row's end), so a
 * chunk costs the integer dot, one conversion, a broadcast load of its
 * S dx and one fma (kgq_acc_chunk); the Mv terms of a group are a single
 * vector fma, and S dx a single multiply. With AVX-512 VNNI the unsigned
 * dots are one vpdpbusd (256-bit: the decode product is memory-bound, and
 * 512-bit would pair chunks for little gain; not written).
 *
 * Integer ranges (why maddubs does not saturate its int16 pairs):
 * activation quants are in [-127, 127] (kgq_quantize32 makes no -128);
 * weight quants are Q4: 0..15, Q8_0: |q| <= 128 (abs/sign), Q6_K: q-32 in
 * [-32, 31]: a pair is at most 2*128*127 = 32512. Q6_K's scaled chunk dot
 * is below 32*32*128*127 < 2^24, exact in float too.
 */
#ifndef KGEN_QUANTS_Q8_H
#define KGEN_QUANTS_Q8_H

#include "quants.h"

/* Q8_0's quants biased by 128 to be unsigned, for vpdpbusd (u8 x s8). The
 * tests also build the portable code with it, to run this arithmetic on
 * machines without VNNI. */
#if KGQ_VNNI && !defined(KGQ_Q8_BIASED)
#define KGQ_Q8_BIASED 1
#endif
#ifndef KGQ_Q8_BIASED
#define KGQ_Q8_BIASED 0
#endif

/* signed quants (abs/sign trick with maddubs) */
KG_INLINE int kgq_q8_signed(int wt) { return wt == KGT_Q6_K || (wt == KGT_Q8_0 && !KGQ_Q8_BIASED); }

/* the constant offset of unsigned quants, carried by Mv = -off d */
KG_INLINE int kgq_q8_off(int wt)
{
    if (wt == KGT_Q8_0) return KGQ_Q8_BIASED ? 128 : 0;
    return wt == KGT_Q4_0 ? 8 : 0;
}

/* does the type have an Mv term? */
KG_INLINE int kgq_has_min(int wt) { return wt == KGT_Q4_1 || wt == KGT_Q4_K || kgq_q8_off(wt) != 0; }

/* ───────────────────────── scales of a group ───────────────────────── */

typedef struct {
    kgq_f32x8 s, m; /* S and Mv, lane c for chunk c0+c */
} kgq_ws;

/* S and Mv of chunks c0..c0+nc-1 of a row: nc = 8 with c0 a multiple of 8
 * (for K-quants always: one block), or nc = 1 (the 32-element types) */
KG_INLINE kgq_ws kgq_wscales(int wt, const uint8_t *row, int64_t c0, int nc)
{
    const int64_t bb = kgq_blk_bytes(wt);
    kgq_ws w = {{0}, {0}};
    if (wt == KGT_Q4_K || wt == KGT_Q6_K) {
        const kgq_blk_t h = kgq_block(wt, row + c0 / 8 * bb);
        if (wt == KGT_Q4_K) {
            kgq_u8x8 sc, mn;
            memcpy(&sc, h.sc, 8);
            memcpy(&mn, h.mn, 8);
            w.s = __builtin_convertvector(sc, kgq_f32x8) * h.d;
            w.m = __builtin_convertvector(mn, kgq_f32x8) * -h.dmin;
        } else {
            w.s = (kgq_f32x8){0} + h.d;
        }
        return w;
    }
    /* one block per chunk, its f16 d (Q4_1: d, m) first. The halves are
     * packed into 64-bit integers (integer ops, rather than one vector
     * insert per half) and converted 8 at a time */
    if (wt == KGT_Q4_1) { /* (d, m) pairs, 2 blocks per integer */
        uint64_t dm[4] = {0, 0, 0, 0};
        KGQ_UNROLL
        for (int c = 0; c < nc; c++) {
            uint32_t v;
            memcpy(&v, row + (c0 + c) * bb, 4);
            dm[c >> 1] |= (uint64_t)v << (32 * (c & 1));
        }
        const kgq_f32x8 a = kgq_f16x8((const uint8_t *)dm), b = kgq_f16x8((const uint8_t *)dm + 16);
        w.s = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
        w.m = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
        return w;
    }
    uint64_t d[2] = {0, 0}; /* 4 blocks per integer */
    KGQ_UNROLL
    for (int c = 0; c < nc; c++) d[c >> 2] |= (uint64_t)kgq_ld16(row + (c0 + c) * bb) << (16 * (c & 3));
    w.s = kgq_f16x8((const uint8_t *)d);
    if (kgq_q8_off(wt)) w.m = w.s * (float)-kgq_q8_off(wt);
    return w;
}

/* the activation side of chunks c0..c0+nc-1: dx = x.d, xs = x.d x.sum */
KG_INLINE void kgq_xscales(const kgt_q8a *x, int nc, kgq_f32x8 *dx, kgq_f32x8 *xs)
{
    float d[8] = {0};
    int32_t s[8] = {0};
    KGQ_UNROLL
    for (int c = 0; c < nc; c++) {
        d[c] = x[c].d;
        s[c] = x[c].sum;
    }
    kgq_i32x8 sv;
    memcpy(dx, d, sizeof d);
    memcpy(&sv, s, sizeof s);
    *xs = *dx * __builtin_convertvector(sv, kgq_f32x8);
}

/* ───────────────────────── quants of a chunk ───────────────────────── */

typedef struct {
    kgq_u8x32 q;  /* 32 quants; int8 bit patterns where kgq_q8_signed()   */
    int sc0, sc1; /* Q6_K's scales of elements 0-15 and 16-31; else 1 */
} kgq_wq;

/* chunk s of block b (s = 0 for the 32-element types) */
KG_INLINE kgq_wq kgq_q8_quants(int wt, const uint8_t *b, int s)
{
    kgq_wq w;
    w.sc0 = w.sc1 = 1;
    switch (wt) {
    case KGT_Q8_0:
        memcpy(&w.q, b + offsetof(kgt_block_q8_0, qs), 32);
        if (kgq_q8_off(wt)) w.q ^= 0x80;
        break;
    case KGT_Q4_0: w.q = kgq_nib16(b + offsetof(kgt_block_q4_0, qs)); break;
    case KGT_Q4_1: w.q = kgq_nib16(b + offsetof(kgt_block_q4_1, qs)); break;
    case KGT_Q4_K: w.q = kgq_nib_q4k(b, s); break;
    case KGT_Q6_K:
        w.q = kgq_q6(b, s) - 32;
        w.sc0 = kgq_q6_scale(b, s, 0);
        w.sc1 = kgq_q6_scale(b, s, 1);
        break;
    default: w.q = (kgq_u8x32){0}; break;
    }
    return w;
}

/* ─────────────────── the integer dot and the accumulator ─────────────────── */
/* An accumulator is 8 float lanes whose sum is the value (kgq_hsum8). */

#if KGQ_AVX2
typedef __m256i kgq_isum; /* 8 int32 lanes summing to dot_c */

KG_INLINE kgq_isum kgq_dot32(int wt, const kgq_wq *w, const kgt_q8a *x)
{
    const __m256i xq = _mm256_loadu_si256((const __m256i *)(const void *)x->qs);
    const __m256i q = (__m256i)w->q;
    if (kgq_q8_signed(wt)) {
        const __m256i mul = wt == KGT_Q6_K ? _mm256_set_m128i(_mm_set1_epi16((short)w->sc1), _mm_set1_epi16((short)w->sc0))
                                           : _mm256_set1_epi16(1);
        return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(xq, q)), mul);
    }
#if KGQ_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, xq);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, xq), _mm256_set1_epi16(1));
#endif
}

/* *acc += dot_c t, t = (S dx)[c] */
KG_INLINE void kgq_acc_chunk(kgq_f32x8 *acc, kgq_isum d, float t)
{
    *acc = (kgq_f32x8)_mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(t), (__m256)*acc);
}
#else
typedef int32_t kgq_isum;

KG_INLINE kgq_isum kgq_dot32(int wt, const kgq_wq *w, const kgt_q8a *x)
{
    int32_t s0 = 0, s1 = 0;
    const int sg = kgq_q8_signed(wt);
    for (int e = 0; e < 16; e++) s0 += (sg ? (int8_t)w->q[e] : w->q[e]) * x->qs[e];
    for (int e = 16; e < 32; e++) s1 += (sg ? (int8_t)w->q[e] : w->q[e]) * x->qs[e];
    return s0 * w->sc0 + s1 * w->sc1;
}

KG_INLINE void kgq_acc_chunk(kgq_f32x8 *acc, kgq_isum d, float t) { (*acc)[0] += (float)d * t; }

#endif

#endif
