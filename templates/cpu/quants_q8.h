/*
 * quants_q8.h — products of quantized weight chunks with q8a activation
 * blocks (KGT_ACT_Q8), integer dot products with the float scaling kept out
 * of the inner loop. For chunk c of a row (32 elements) against the
 * activation block x (kgt_q8a: x_e = x.d x.qs_e):
 *
 *     sum_e w_e x_e  =  S_c x.d dot_c  +  Mv_c x.d x.sum  [+ Mh_c x.d hsum_c]
 *     dot_c          =  sum_e sc(e) q_e x.qs_e            (exact, int32)
 *
 *   q       the chunk's quants as bytes (kgq_q8_quants): unsigned, or int8
 *           where kgq_q8_signed(wt) (then the AVX2 abs/sign trick);
 *   sc(e)   the integer scale of each 16 elements where the format has
 *           one (kgq_q8_halves: Q6_K, Q3_K's sc - 32, Q2_K's 4-bit
 *           scale), applied by the int16 -> int32 madd; 1 elsewhere;
 *   S, Mv   float factors, per type:
 *             Q8_0    d, 0            (with VNNI q+128 is unsigned: d, -128 d)
 *             Q4_0    d, -8 d         (q stored as q+8)
 *             Q5_0    d, -16 d        (q stored as q+16)
 *             Q4_1    d, m
 *             Q5_1    d, m
 *             IQ4_NL  d, 0            (T[q] signed; VNNI: T[q]+128, d, -128 d)
 *             Q4_K    d sc_j, -dmin m_j   (sub-block j's 6-bit scale, min)
 *             Q5_K    d sc_j, -dmin m_j
 *             IQ4_XS  d (ls_j - 32), 0    (VNNI: T[q]+128, Mv = -128 S)
 *             Q6_K    d, 0            (q-32 signed; sc(e) carries the scales)
 *             Q3_K    d, 0            (q in [-4, 3] signed; sc(e) = sc - 32)
 *             Q2_K    d, and half mins (below)
 *   Mh      Q2_K only (kgq_half_min): its min differs between the two
 *           halves of a chunk (one per 16 elements), and x.sum covers all
 *           32. The activation side computes the sum of the first 16
 *           activation quants, hsum_c, once per activation block and group
 *           (kgq_xscales, shared by every weight row of a tile), so
 *               Mv_c x.d x.sum + Mh_c x.d hsum_c
 *             = -dmin (m_hi (x.sum - hsum_c) + m_lo hsum_c) x.d
 *           with Mv_c = -dmin m_hi, Mh_c = -dmin (m_lo - m_hi): one more
 *           vector fma per group of 8 chunks and no work per chunk.
 *
 * Scales are read for a GROUP of chunks at once (kgq_wscales, kgq_xscales:
 * 8 lanes, lane c for chunk c0+c; one K-quant block, or 8 consecutive
 * blocks of the 32-element types, or a single chunk at a row's end), so a
 * chunk costs the integer dot, one conversion, a broadcast load of its
 * S dx and one fma (kgq_acc_chunk); the Mv (and Mh) terms of a group are a
 * single vector fma (each), and S dx a single multiply. With AVX-512 VNNI
 * the unsigned dots without sc(e) are one vpdpbusd (256-bit: the decode
 * product is memory-bound, and 512-bit would pair chunks for little gain;
 * not written).
 *
 * The IQ4 types' quants are a table lookup of nibbles (quants.h's
 * kgq_iq4_lut: one vpshufb with AVX2), signed int8 values |T| <= 127 for
 * the abs/sign trick, or the table biased by 128 (KGQ_Q8_BIASED, as Q8_0)
 * for vpdpbusd: the bias costs nothing there (it is in the table).
 *
 * Integer ranges (why maddubs does not saturate its int16 pairs, and the
 * dots are exact in int32 and in their float conversion, < 2^24):
 * activation quants are in [-127, 127] (kgq_quantize32 makes no -128);
 * weight quants are Q4: 0..15, Q5: 0..31, Q2_K: 0..3, Q3_K: [-4, 3],
 * Q6_K: q-32 in [-32, 31], Q8_0: |q| <= 128 (abs/sign), IQ4: |T| <= 127;
 * a pair is at most 2*128*127 = 32512 (IQ4: 2*127*127 = 32258). The
 * biased quants (VNNI only: vpdpbusd sums four u8 x s8 products into
 * int32, no int16 step) are at most 255 (Q8_0) and 241 (IQ4): a chunk dot
 * is below 32*255*127 < 2^20. With sc(e) (madd of int16 pairs by int16
 * scales): Q6_K's scaled chunk dot is below 32*32*128*127 < 2^24, Q3_K's
 * 32*4*127*32 < 2^19, Q2_K's 32*3*127*15 < 2^18.
 */
#ifndef KGEN_QUANTS_Q8_H
#define KGEN_QUANTS_Q8_H

#include "quants.h"

/* Q8_0's and the IQ4 types' quants biased by 128 to be unsigned, for
 * vpdpbusd (u8 x s8). The tests also build the portable code with it, to
 * run this arithmetic on machines without VNNI. */
#if KGQ_VNNI && !defined(KGQ_Q8_BIASED)
#define KGQ_Q8_BIASED 1
#endif
#ifndef KGQ_Q8_BIASED
#define KGQ_Q8_BIASED 0
#endif

/* the int8 types that KGQ_Q8_BIASED makes unsigned */
KG_INLINE int kgq_q8_biasable(int wt) { return wt == KGT_Q8_0 || wt == KGT_IQ4_NL || wt == KGT_IQ4_XS; }

/* signed quants (abs/sign trick with maddubs) */
KG_INLINE int kgq_q8_signed(int wt)
{
    return wt == KGT_Q6_K || wt == KGT_Q3_K || (kgq_q8_biasable(wt) && !KGQ_Q8_BIASED);
}

/* integer scales per 16 elements, sc(e) (kgq_wq's sc0, sc1) */
KG_INLINE int kgq_q8_halves(int wt) { return wt == KGT_Q6_K || wt == KGT_Q3_K || wt == KGT_Q2_K; }

/* the constant offset of unsigned quants, carried by Mv = -off S */
KG_INLINE int kgq_q8_off(int wt)
{
    if (kgq_q8_biasable(wt)) return KGQ_Q8_BIASED ? 128 : 0;
    return wt == KGT_Q4_0 ? 8 : wt == KGT_Q5_0 ? 16 : 0;
}

/* does the type have an Mv term? an Mh term (a min per 16 elements)? */
KG_INLINE int kgq_half_min(int wt) { return wt == KGT_Q2_K; }
KG_INLINE int kgq_has_min(int wt)
{
    return wt == KGT_Q4_1 || wt == KGT_Q5_1 || wt == KGT_Q4_K || wt == KGT_Q5_K || kgq_half_min(wt) ||
           kgq_q8_off(wt) != 0;
}

/* ───────────────────────── scales of a group ───────────────────────── */

typedef struct {
    kgq_f32x8 s, m, mh; /* S, Mv and Mh, lane c for chunk c0+c */
} kgq_ws;

/* S and Mv of chunks c0..c0+nc-1 of a row: nc = 8 with c0 a multiple of 8
 * (for K-quants always: one block), or nc = 1 (the 32-element types) */
KG_INLINE kgq_ws kgq_wscales(int wt, const uint8_t *row, int64_t c0, int nc)
{
    const int64_t bb = kgq_blk_bytes(wt);
    kgq_ws w = {{0}, {0}, {0}};
    if (kgq_subs(wt) > 1) { /* K-quants: one block */
        const uint8_t *b = row + c0 / 8 * bb;
        const kgq_blk_t h = kgq_block(wt, b);
        if (wt == KGT_Q4_K || wt == KGT_Q5_K) {
            kgq_u8x8 sc, mn;
            memcpy(&sc, h.sc, 8);
            memcpy(&mn, h.mn, 8);
            w.s = __builtin_convertvector(sc, kgq_f32x8) * h.d;
            w.m = __builtin_convertvector(mn, kgq_f32x8) * -h.dmin;
        } else if (wt == KGT_IQ4_XS) {
            kgq_i8x8 ls;
            memcpy(&ls, h.ss, 8);
            w.s = __builtin_convertvector(ls, kgq_f32x8) * h.d;
            if (kgq_q8_off(wt)) w.m = w.s * (float)-kgq_q8_off(wt);
        } else if (wt == KGT_Q2_K) { /* mins: the high nibbles of scales[2c] (lo), [2c+1] (hi) */
            kgq_u8x16 sm;
            memcpy(&sm, b + offsetof(kgt_block_q2_K, scales), 16);
            const kgq_u8x8 lo = __builtin_shufflevector(sm, sm, 0, 2, 4, 6, 8, 10, 12, 14) >> 4;
            const kgq_u8x8 hi = __builtin_shufflevector(sm, sm, 1, 3, 5, 7, 9, 11, 13, 15) >> 4;
            w.s = (kgq_f32x8){0} + h.d;
            w.m = __builtin_convertvector(hi, kgq_f32x8) * -h.dmin;
            w.mh = (__builtin_convertvector(lo, kgq_f32x8) - __builtin_convertvector(hi, kgq_f32x8)) * -h.dmin;
        } else { /* Q6_K, Q3_K: the scales are in the integer dot */
            w.s = (kgq_f32x8){0} + h.d;
        }
        return w;
    }
    /* one block per chunk, its f16 d (Q4_1, Q5_1: d, m) first. The halves
     * are packed into 64-bit integers (integer ops, rather than one vector
     * insert per half) and converted 8 at a time */
    if (wt == KGT_Q4_1 || wt == KGT_Q5_1) { /* (d, m) pairs, 2 blocks per integer */
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

/* the sums of the first 16 quants of nc activation blocks, lane c for
 * x[c] (nc = 8, or 1: a K-quant row never ends in a partial group, but a
 * caller breaking that rule reads no further) */
KG_INLINE kgq_i32x8 kgq_xsum16(const kgt_q8a *x, int nc)
{
#if KGQ_AVX2
    if (nc == 8) {
        /* blocks c and c+4 in the two 128-bit lanes of one vector, biased to
         * unsigned for vpsadbw (two sums of 8 bytes per lane, added), then
         * the four vectors' sums blended into lanes c, c+4 */
        __m256i t[4];
        KGQ_UNROLL
        for (int c = 0; c < 4; c++) {
            const __m256i v = _mm256_loadu2_m128i((const __m128i *)(const void *)x[c + 4].qs,
                                                  (const __m128i *)(const void *)x[c].qs);
            const __m256i s = _mm256_sad_epu8(_mm256_xor_si256(v, _mm256_set1_epi8(-128)), _mm256_setzero_si256());
            t[c] = _mm256_add_epi64(s, _mm256_srli_si256(s, 8));
        }
        __m256i r = _mm256_blend_epi32(t[0], _mm256_slli_si256(t[1], 4), 0x22);
        r = _mm256_blend_epi32(r, _mm256_slli_si256(t[2], 8), 0x44);
        r = _mm256_blend_epi32(r, _mm256_slli_si256(t[3], 12), 0x88);
        return (kgq_i32x8)_mm256_sub_epi32(r, _mm256_set1_epi32(16 * 128));
    }
#endif
    int32_t h[8] = {0};
    for (int c = 0; c < nc; c++)
        for (int e = 0; e < 16; e++) h[c] += x[c].qs[e];
    kgq_i32x8 v;
    memcpy(&v, h, sizeof v);
    return v;
}

/* the activation side of chunks c0..c0+nc-1: dx = x.d, xs = x.d x.sum,
 * and for kgq_half_min types (K-quants: nc = 8) xh = x.d hsum, hsum the
 * sum of the first 16 quants */
KG_INLINE void kgq_xscales(int wt, const kgt_q8a *x, int nc, kgq_f32x8 *dx, kgq_f32x8 *xs, kgq_f32x8 *xh)
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
    *xh = kgq_half_min(wt) ? *dx * __builtin_convertvector(kgq_xsum16(x, nc), kgq_f32x8) : (kgq_f32x8){0};
}

/* ───────────────────────── quants of a chunk ───────────────────────── */

/* What the chunk decoder of a K-quant needs from its block's header,
 * decoded once per block (and weight row) rather than per chunk: Q3_K's 16
 * signed scales (sc - 32), whose 6 bits are spread over 2 bytes; empty
 * (and optimized away) for the other types. */
typedef struct {
    int8_t sc[16];
} kgq_q8hdr;

KG_INLINE kgq_q8hdr kgq_q8_header(int wt, const uint8_t *b)
{
    kgq_q8hdr h = {{0}};
    if (wt == KGT_Q3_K) {
        const kgq_blk_t k = kgq_block(wt, b);
        memcpy(h.sc, k.ss, 16);
    }
    return h;
}

typedef struct {
    kgq_u8x32 q;  /* 32 quants; int8 bit patterns where kgq_q8_signed()   */
    int sc0, sc1; /* kgq_q8_halves: the scales of elements 0-15, 16-31; else 1 */
} kgq_wq;

/* chunk s of block b (s = 0 for the 32-element types); hd: the block's
 * kgq_q8_header (read by Q3_K only) */
KG_INLINE kgq_wq kgq_q8_quants(int wt, const uint8_t *b, int s, const kgq_q8hdr *hd)
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
    case KGT_Q4_K: w.q = kgq_nib_q4k(b + offsetof(kgt_block_q4_K, qs), s); break;
    case KGT_Q6_K:
        w.q = kgq_q6(b, s) - 32;
        w.sc0 = kgq_q6_scale(b, s, 0);
        w.sc1 = kgq_q6_scale(b, s, 1);
        break;
    case KGT_Q5_0: w.q = kgq_q5(b + offsetof(kgt_block_q5_0, qh), b + offsetof(kgt_block_q5_0, qs)); break;
    case KGT_Q5_1: w.q = kgq_q5(b + offsetof(kgt_block_q5_1, qh), b + offsetof(kgt_block_q5_1, qs)); break;
    case KGT_Q5_K: w.q = kgq_q5k(b, s); break;
    case KGT_Q3_K:
        w.q = kgq_q3k(b, s);
        w.sc0 = hd->sc[2 * s];
        w.sc1 = hd->sc[2 * s + 1];
        break;
    case KGT_Q2_K:
        w.q = kgq_q2k(b, s);
        w.sc0 = kgq_q2k_sm(b, s, 0) & 15;
        w.sc1 = kgq_q2k_sm(b, s, 1) & 15;
        break;
    case KGT_IQ4_NL: case KGT_IQ4_XS: w.q = kgq_iq4(wt, b, s, kgq_q8_off(wt)); break;
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
    const __m256i mul = kgq_q8_halves(wt) ? _mm256_set_m128i(_mm_set1_epi16((short)w->sc1), _mm_set1_epi16((short)w->sc0))
                                          : _mm256_set1_epi16(1);
    if (kgq_q8_signed(wt))
        return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(xq, q)), mul);
#if KGQ_VNNI
    if (!kgq_q8_halves(wt)) return _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, xq);
#endif
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, xq), mul);
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
