/*
 * mm_x16.h — kgt_mm's tile over weights in the x16 layout (KGT_LAYOUT_X16,
 * written once at compile time by gen/layout.c), against q8a activations.
 *
 * The layout. A matrix of N rows (N a multiple of 16) of a 32-element block
 * type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL; Q4_K, Q5_K, IQ4_XS, Q6_K
 * below)
 * is N/16 row groups, one after the other; a group is K/32 tiles, one per
 * block column, each 16 blocks' bytes rewritten as
 *
 *   d[16]    the 16 rows' f16 scales                     (32 bytes)
 *   m[16]    Q4_1, Q5_1: the 16 rows' f16 mins           (32 bytes)
 *   masks    Q5_0, Q5_1: the fifth bits as eight 64-bit masks (64 bytes):
 *            mask (i, h), at 8 (2i + h), has bit 4n + j = the fifth bit
 *            of row n's element 16h + 4i + j (bit 16h + 4i + j of its qh),
 *            so that one mask is one quant vector's nibbles' fifth bits
 *   quants   vectors of 64 bytes; in vector i, bytes 4n..4n+3 are row n's
 *            quant bytes 4i..4i+3, as stored in its block (Q4_0, Q4_1,
 *            Q5_0, Q5_1, IQ4_NL: 4 vectors of nibbles, low nibbles
 *            elements 4i..4i+3, high ones 16+4i..16+4i+3; Q8_0: 8
 *            vectors, q + 128 as unsigned bytes)
 *
 * Q4_K (256-element blocks of 8 sub-blocks with 6-bit scales and mins): a
 * tile is d[16], dmin[16] (f16, 64 bytes), the 12 scale bytes as 12 planes
 * of 16 (byte j of row n at 16 j + n: 192 bytes), then for each pair p of
 * sub-blocks 8 vectors of nibbles, word n of vector (p, i) row n's quant
 * word 8p + i (low nibbles sub-block 2p elements 4i..4i+3, high ones
 * sub-block 2p + 1's): the dot of a sub-block is 8 vpdpbusd, then
 * d sc_j x.d and -dmin m_j x.d x.sum scale 16 rows at once. Q5_K: the
 * same, with the fifth bits as 64-bit masks between the scale planes and
 * the quants (512 bytes): mask (w, h), at 256 + 8 (2w + h), has bit
 * 4n + j = the fifth bit of the element of row n's quant byte 4w + j's
 * low (h 0) or high (h 1) nibble (bit 2p + h of its qh[4i + j], w = 8p + i).
 *
 * IQ4_XS (256-element blocks of 8 sub-blocks with 6-bit scales ls): a
 * tile is d[16] (32 bytes), the 6 header bytes (scales_h's 2, scales_l's
 * 4) as 6 planes of 16 (96 bytes), then for each sub-block s 4 vectors of
 * nibbles, word n of vector (s, i) row n's quant word 4s + i (IQ4_NL's
 * block per sub-block): per sub-block 8 vpdpbusd of the codebook values
 * + 128 from -128 x.sum, then d (ls_s - 32) x.d scales 16 rows at once.
 *
 * Q6_K, Q3_K, Q2_K (256-element blocks with a scale per 16 elements): a
 * tile is d[16] (Q2_K: then dmin[16]), the scale bytes as planes of 16
 * (Q6_K's 16 int8 scales, Q3_K's 12 bytes of 6-bit scales, Q2_K's 16
 * bytes of a 4-bit scale and min), then the quant words of each row in
 * GGUF's order (word n of vector w row n's word w): Q6_K's 32 of ql
 * (nibbles) and 16 of qh (2 more bits), Q3_K's 8 of hmask (a third bit)
 * and 16 of qs (2 bits), Q2_K's 16 of qs (kgx_k16_q says which bits of
 * which words make a quant vector). Per half block (16 elements) 4
 * vpdpbusd of the unsigned quants (Q6_K's q + 32, Q3_K's q + 4) from
 * -off x.hsum (x.hsum: the half's activation quants' sum), then
 * d sc x.d (Q2_K: and -dmin m x.d x.hsum) scales 16 rows at once.
 *
 * F32, F16, BF16: a group is K steps of 16 elements, element k of the 16
 * rows side by side (mm_tile_x16f: one load and 16-lane fmas per k).
 * x16b (KGT_LAYOUT_X16B; F16, BF16, K even): a group is K/2 steps of 64
 * bytes, word n of step j row n's elements 2j (low half), 2j + 1 as bf16
 * (mm_tile_x16b: one load and 16-lane vdpbf16ps per pair of k).
 *
 * so a tile is as big as the 16 blocks it replaces, and one 64-byte load
 * holds 4 consecutive elements of each of 16 rows: the outer-product form.
 * With AVX-512 VNNI, one vpdpbusd multiplies them by 4 activation quants
 * broadcast to every lane (u8 x s8 into 16 int32 sums, one per row); the
 * unsigned quants' offset (Q4_0: 8, Q5_0: 16, Q8_0 and IQ4_NL: 128) is
 * the initial value of the sums, -off x.sum (Q5's fifth bits: 16 added
 * under the mask, AVX512BW's masked vpaddb, to the nibbles; IQ4_NL's
 * nibbles: their codebook value + 128 by one vpshufb); per tile and
 * activation row one conversion and one fma scale 16 rows at once
 * (d_row x.d; Q4_1, Q5_1: plus m_row x.d x.sum). The 32-element types'
 * tile is AMX's B-tile order (rows of 4 consecutive K for 16 columns).
 * Decode reads each thread's share of the matrix as one sequential stream.
 *
 * Exact int32 dots as in quants_q8.h (|sum| < 32 x 255 x 127 < 2^20);
 * accumulation in f32 per (activation row, weight row) over the tiles.
 * With AVX2 alone (x86-64-v3) the same outer products by vpmaddubsw +
 * vpmaddwd on two ymm halves (kgx_dot4; Q8_0's and IQ4's quants made
 * signed first, KGX_B128), F16C and vpshufb; elsewhere the same
 * arithmetic in portable C (the tests' builds).
 */
#ifndef KGEN_MM_X16_H
#define KGEN_MM_X16_H

#include "quants_q8.h"

#if KGQ_VNNI && defined(__AVX512VNNI__) && defined(__AVX512F__) && defined(__AVX512BW__)
#define KGQ_X16_VNNI 1
#else
#define KGQ_X16_VNNI 0
#endif
/* AVX2 without AVX-512 VNNI (the x86-64-v3 level): each 64-byte vector is
 * two ymm halves, the dots vpmaddubsw + vpmaddwd */
#if KGQ_AVX2 && !KGQ_X16_VNNI
#define KGX_AVX2 1
#else
#define KGX_AVX2 0
#endif
/* the offset in the dots of weights stored as value + 128 (Q8_0, IQ4_NL,
 * IQ4_XS; kgx_dot4's `wide`): vpdpbusd's unsigned dot keeps it (the sums
 * start at -128 x.sum); AVX2 takes it out of the weights (its pairs would
 * saturate int16) and computes the signed dot */
#define KGX_B128 (KGX_AVX2 ? 0 : 128)

/* the most activation rows one tile holds (mm.c's `mt` knob: 4, 6 or 8);
 * the row-indexed arrays below are this long, a tile uses its MT of them */
enum { KGX_MT = 8 };

typedef int32_t kgx_i32 __attribute__((vector_size(64)));
typedef float kgx_f32 __attribute__((vector_size(64)));
typedef uint8_t kgx_u8 __attribute__((vector_size(64)));

/* the K-quants with a scale per 16 elements (mm_tile_x16_k16) */
KG_INLINE int kgx_k16(int wt) { return wt == KGT_Q6_K || wt == KGT_Q3_K || wt == KGT_Q2_K; }

/* the types the layout exists for; those with 32-element blocks (AMX's) */
KG_INLINE int kgx_type(int wt)
{
    return wt == KGT_Q4_0 || wt == KGT_Q4_1 || wt == KGT_Q8_0 || wt == KGT_Q4_K || wt == KGT_Q5_0 ||
           wt == KGT_Q5_1 || wt == KGT_IQ4_NL || wt == KGT_IQ4_XS || wt == KGT_Q5_K || kgx_k16(wt);
}
KG_INLINE int kgx_type32(int wt) { return wt == KGT_Q4_0 || wt == KGT_Q4_1 || wt == KGT_Q8_0; }

/* a tile's parts (gen/layout.c's x16_parts): its f16 fields (16 of each),
 * planes of header bytes, 64-bit masks of fifth bits, quant vectors */
KG_INLINE int kgx_nf(int wt)
{
    return wt == KGT_Q4_1 || wt == KGT_Q5_1 || wt == KGT_Q4_K || wt == KGT_Q5_K || wt == KGT_Q2_K ? 2 : 1;
}
KG_INLINE int kgx_np(int wt)
{
    return wt == KGT_Q4_K || wt == KGT_Q5_K || wt == KGT_Q3_K ? 12 : wt == KGT_IQ4_XS ? 6 : kgx_k16(wt) ? 16 : 0;
}
KG_INLINE int kgx_nm(int wt) { return wt == KGT_Q5_0 || wt == KGT_Q5_1 ? 8 : wt == KGT_Q5_K ? 64 : 0; }
KG_INLINE int kgx_nw(int wt)
{
    switch (wt) {
    case KGT_Q8_0: return 8;
    case KGT_Q6_K: return 48; /* ql, qh */
    case KGT_Q3_K: return 24; /* hmask, qs */
    case KGT_Q2_K: return 16;
    default: return kgq_blk(wt) == 256 ? 32 : 4;
    }
}

/* where a GGUF block holds those parts: its f16 fields and header bytes
 * (first, except in Q6_K, Q3_K: scales, then d, after the quants; Q2_K:
 * scales, quants, d, dmin), its fifth bits (after the header) and its
 * quant words */
KG_INLINE int kgx_bf(int wt)
{
    return wt == KGT_Q6_K   ? (int)offsetof(kgt_block_q6_K, d)
           : wt == KGT_Q3_K ? (int)offsetof(kgt_block_q3_K, d)
           : wt == KGT_Q2_K ? (int)offsetof(kgt_block_q2_K, d)
                            : 0;
}
KG_INLINE int kgx_bp(int wt)
{
    return wt == KGT_Q6_K   ? (int)offsetof(kgt_block_q6_K, scales)
           : wt == KGT_Q3_K ? (int)offsetof(kgt_block_q3_K, scales)
           : wt == KGT_Q2_K ? 0
                            : 2 * kgx_nf(wt);
}
KG_INLINE int kgx_bq(int wt)
{
    return wt == KGT_Q6_K || wt == KGT_Q3_K ? 0
           : wt == KGT_Q2_K                 ? (int)offsetof(kgt_block_q2_K, qs)
                                            : 2 * kgx_nf(wt) + kgx_np(wt) + (kgx_nm(wt) ? kgx_nw(wt) : 0);
}

/* the offsets of the tile's masks and quants, and its bytes (a tile: one
 * block column) */
KG_INLINE int64_t kgx_moff(int wt) { return 32 * kgx_nf(wt) + 16 * kgx_np(wt); }
KG_INLINE int64_t kgx_qoff(int wt) { return kgx_moff(wt) + 8 * kgx_nm(wt); }
KG_INLINE int64_t kgx_tile_bytes(int wt) { return 16 * kgq_blk_bytes(wt); }

KG_INLINE kgx_u8 kgx_load(const uint8_t *p)
{
    kgx_u8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* 16 f16 values at p */
KG_INLINE kgx_f32 kgx_f16x16(const uint8_t *p)
{
#if KGQ_X16_VNNI
    return (kgx_f32)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
#elif KGX_AVX2
    const __m256 h[2] = {_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p)),
                         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)))};
    kgx_f32 f;
    memcpy(&f, h, sizeof f);
    return f;
#else
    kgx_f32 f;
    for (int n = 0; n < 16; n++) {
        kgt_f16 h;
        memcpy(&h, p + 2 * n, 2);
        f[n] = kgt_f16_to_f32(h);
    }
    return f;
#endif
}

/* Decode (one activation row) reads each weight once, in order: the lines
 * of [p + pf, p + pf + bytes) requested ahead (the hardware prefetchers
 * stop at 4 KiB pages). pf: the `prefetch` knob (gen/knobs.c) */
KG_INLINE void kgx_prefetch(const uint8_t *p, int64_t bytes, int64_t pf)
{
    for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + pf + o);
}

/* acc[n] += sum_j w[4n + j] x4[j]: unsigned weight bytes, signed
 * activations (|x| <= 127). wide: the weights are value + 128 and may
 * exceed 127 (Q8_0, IQ4), and the sum is of (w - 128 + KGX_B128) x.
 * AVX2: vpmaddubsw's pairs saturate at int16, so narrow weights must be
 * below 128 (every other type's are below 64: 63 x 127 x 2 < 2^15) and
 * wide ones are made signed, |w - 128| times x with w's sign (<= 128 x 127
 * x 2 < 2^15) */
KG_INLINE kgx_i32 kgx_dot4(kgx_i32 acc, kgx_u8 w, const int8_t *x4, int wide)
{
#if KGQ_X16_VNNI
    (void)wide;
    int32_t xv;
    memcpy(&xv, x4, 4);
    return (kgx_i32)_mm512_dpbusd_epi32((__m512i)acc, (__m512i)w, _mm512_set1_epi32(xv));
#elif KGX_AVX2
    int32_t xv;
    memcpy(&xv, x4, 4);
    const __m256i xb = _mm256_set1_epi32(xv), one = _mm256_set1_epi16(1);
    __m256i wv[2], av[2];
    memcpy(wv, &w, sizeof wv);
    memcpy(av, &acc, sizeof av);
    for (int h = 0; h < 2; h++) {
        __m256i p;
        if (wide) {
            const __m256i ws = _mm256_xor_si256(wv[h], _mm256_set1_epi8((char)0x80));
            p = _mm256_maddubs_epi16(_mm256_sign_epi8(ws, ws), _mm256_sign_epi8(xb, ws));
        } else {
            p = _mm256_maddubs_epi16(wv[h], xb);
        }
        av[h] = _mm256_add_epi32(av[h], _mm256_madd_epi16(p, one));
    }
    memcpy(&acc, av, sizeof acc);
    return acc;
#else
    (void)wide;
    for (int n = 0; n < 16; n++)
        acc[n] += w[4 * n] * x4[0] + w[4 * n + 1] * x4[1] + w[4 * n + 2] * x4[2] + w[4 * n + 3] * x4[3];
    return acc;
#endif
}

/* kgx_dot4 of two narrow weight vectors (bytes < 64) into one sum. AVX2:
 * the two vpmaddubsw results added as int16 (each pair <= 63 x 127 x 2,
 * two of them < 2^15) before one vpmaddwd: a third fewer instructions */
KG_INLINE kgx_i32 kgx_dot4x2(kgx_i32 acc, kgx_u8 w0, const int8_t *x0, kgx_u8 w1, const int8_t *x1)
{
#if KGX_AVX2
    int32_t xv0, xv1;
    memcpy(&xv0, x0, 4);
    memcpy(&xv1, x1, 4);
    const __m256i xb0 = _mm256_set1_epi32(xv0), xb1 = _mm256_set1_epi32(xv1), one = _mm256_set1_epi16(1);
    __m256i wv0[2], wv1[2], av[2];
    memcpy(wv0, &w0, sizeof wv0);
    memcpy(wv1, &w1, sizeof wv1);
    memcpy(av, &acc, sizeof av);
    for (int h = 0; h < 2; h++) {
        const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(wv0[h], xb0), _mm256_maddubs_epi16(wv1[h], xb1));
        av[h] = _mm256_add_epi32(av[h], _mm256_madd_epi16(p, one));
    }
    memcpy(&acc, av, sizeof acc);
    return acc;
#else
    return kgx_dot4(kgx_dot4(acc, w0, x0, 0), w1, x1, 0);
#endif
}

/* v + 16 in the bytes whose bit is set in the 64-bit little-endian mask at
 * m (Q5's fifth bits; v's bytes < 16) */
KG_INLINE kgx_u8 kgx_add16(kgx_u8 v, const uint8_t *m)
{
#if KGQ_X16_VNNI
    uint64_t k;
    memcpy(&k, m, 8);
    return (kgx_u8)_mm512_mask_add_epi8((__m512i)v, (__mmask64)k, (__m512i)v, _mm512_set1_epi8(16));
#else
    typedef uint8_t u8x8 __attribute__((vector_size(8)));
    u8x8 b;
    memcpy(&b, m, 8);
    const kgx_u8 bb = __builtin_shufflevector(b, b, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2,
                                              2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5,
                                              5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7);
    const kgx_u8 bit = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32,
                        64, 128, 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8,
                        16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    return v | ((kgx_u8)((bb & bit) != 0) & 16);
#endif
}

/* IQ4_NL's, IQ4_XS's codebook value + 128 (unsigned) of each nibble q:
 * one vpshufb of the 16-byte table in every 128-bit lane */
KG_INLINE kgx_u8 kgx_iq4(kgx_u8 q)
{
    const kgq_u8x16 tab = (kgq_u8x16)(kgq_i8x16){KGQ_IQ4_VALUES} + 128;
#if KGQ_X16_VNNI
    return (kgx_u8)_mm512_shuffle_epi8(_mm512_broadcast_i32x4((__m128i)tab), (__m512i)q);
#elif KGX_AVX2
    const __m256i t2 = _mm256_broadcastsi128_si256((__m128i)tab);
    __m256i qv[2];
    memcpy(qv, &q, sizeof qv);
    for (int h = 0; h < 2; h++) qv[h] = _mm256_shuffle_epi8(t2, qv[h]);
    kgx_u8 r;
    memcpy(&r, qv, sizeof r);
    return r;
#else
    kgx_u8 r;
    for (int e = 0; e < 64; e++) r[e] = tab[q[e] & 15];
    return r;
#endif
}

/* Row r's block b, as GGUF stores it, out of an x16 matrix (table) of
 * rows of `rb` bytes: for the embedding lookup of a table the output
 * product shares (a tied output) */
KG_INLINE void kgx_block(int wt, const uint8_t *table, int64_t rb, int64_t r, int64_t b, uint8_t *blk)
{
    const uint8_t *t = table + r / 16 * 16 * rb + b * kgx_tile_bytes(wt);
    const int n = (int)(r % 16), nf = kgx_nf(wt), np = kgx_np(wt), nw = kgx_nw(wt);
    const int qh = 2 * nf + np, qs = kgx_bq(wt); /* the block's qh (Q5 types) and quants */
    const int64_t mo = kgx_moff(wt), qo = kgx_qoff(wt);
    const uint8_t flip = wt == KGT_Q8_0 ? 0x80 : 0;
    for (int f = 0; f < nf; f++) memcpy(blk + kgx_bf(wt) + 2 * f, t + 32 * f + 2 * n, 2);
    for (int j = 0; j < np; j++) blk[kgx_bp(wt) + j] = t[32 * nf + 16 * j + n];
    if (kgx_nm(wt) && nw == 4) { /* Q5_0, Q5_1: mask (i, h) holds bits 16h + 4i .. +3 of qh */
        uint32_t h32 = 0;
        for (int i = 0; i < 4; i++)
            for (int h = 0; h < 2; h++)
                h32 |= (uint32_t)(t[mo + 8 * (2 * i + h) + n / 2] >> 4 * (n & 1) & 15) << (16 * h + 4 * i);
        for (int j = 0; j < 4; j++) blk[qh + j] = (uint8_t)(h32 >> 8 * j);
    } else if (kgx_nm(wt)) { /* Q5_K: mask (w = 8p + i, h) holds bit 2p + h of qh[4i .. 4i + 3] */
        memset(blk + qh, 0, 32);
        for (int w = 0; w < 32; w++)
            for (int h = 0; h < 2; h++) {
                const int v = t[mo + 8 * (2 * w + h) + n / 2] >> 4 * (n & 1);
                for (int j = 0; j < 4; j++) blk[qh + 4 * (w % 8) + j] |= (uint8_t)((v >> j & 1) << (2 * (w / 8) + h));
            }
    }
    for (int w = 0; w < nw; w++)
        for (int j = 0; j < 4; j++) blk[qs + 4 * w + j] = (uint8_t)(t[qo + 64 * w + 4 * n + j] ^ flip);
}

/* ── float weights (F32, F16, BF16): a group is K steps of the 16 rows'
 *    element k side by side (16 x the element size), read against f32
 *    activations: per k one load (F16: vcvtph2ps; BF16: a shift) and MT x NV
 *    16-lane fmas with x[m][k] broadcast ── */
KG_INLINE int kgx_ftype(int wt) { return wt == KGT_F32 || wt == KGT_F16 || wt == KGT_BF16; }

KG_INLINE kgx_f32 kgx_fload(int wt, const uint8_t *p)
{
    if (wt == KGT_F32) {
        kgx_f32 f;
        memcpy(&f, p, sizeof f);
        return f;
    }
    if (wt == KGT_F16) return kgx_f16x16(p);
    typedef uint16_t u16x16 __attribute__((vector_size(32)));
    u16x16 h;
    memcpy(&h, p, sizeof h);
    return (kgx_f32)(__builtin_convertvector(h, kgx_i32) << 16);
}

KG_INLINE void mm_tile_x16f(int wt, int MT, int NV, const uint8_t *const w[2], const uint8_t *const x[KGX_MT], int64_t K,
                            int64_t pf, float out[KGX_MT][32])
{
    const int64_t step = 16 * (wt == KGT_F32 ? 4 : 2);
    kgx_f32 acc[KGX_MT][2];
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        KGQ_UNROLL
        for (int v = 0; v < NV; v++) acc[m][v] = (kgx_f32){0};
    }
    for (int64_t k = 0; k < K; k++) {
        kgx_f32 wv[2];
        if (MT == 1 && pf && (k * step) % 64 == 0)
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) kgx_prefetch(w[v] + k * step, 64, pf);
        KGQ_UNROLL
        for (int v = 0; v < NV; v++) wv[v] = kgx_fload(wt, w[v] + k * step);
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) {
            float xe;
            memcpy(&xe, x[m] + 4 * k, 4);
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) acc[m][v] += wv[v] * xe;
        }
    }
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        KGQ_UNROLL
        for (int v = 0; v < NV; v++) memcpy(out[m] + 16 * v, &acc[m][v], sizeof acc[m][v]);
    }
}

/* ── float weights as bf16 pairs (x16b), read against the activations
 *    rounded to bf16 (nearest even), 32 at a time into a pair per word
 *    (vcvtne2ps2bf16), each word broadcast into vdpbf16ps: 16 lanes of
 *    acc += w_2j x_2j + w_2j+1 x_2j+1 per instruction, twice the fmas'
 *    products. The products of two bf16 are exact in f32; the sums are f32
 *    (AVX512-BF16's, with denormal inputs and results as 0: the C below
 *    keeps them, a difference under 2^-126 per product). AVX512-BF16 in the
 *    amx level's bitcode and native builds on a CPU with it; portable C
 *    elsewhere (the same products; the two of a pair summed in its own
 *    order). ── */
#if KGQ_X16_VNNI && defined(__AVX512BF16__) && !defined(KGQ_PORTABLE)
#define KGX_BF16 1
#else
#define KGX_BF16 0
#endif

/* f32 bits -> bf16 bits, nearest even (NaN kept a NaN) */
KG_INLINE uint32_t kgx_bf16_bits(uint32_t u)
{
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40;
    return (u + 0x7fffu + (u >> 16 & 1)) >> 16;
}

/* out[j] = the pair (x[2j], x[2j + 1]) as bf16 (low half 2j), j < n/2: the
 * n f32 at x (n even, n <= 32) */
KG_INLINE void kgx_bf16_pairs(const uint8_t *x, int n, uint32_t out[16])
{
#if KGX_BF16
    const __mmask16 lo = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
    const __mmask16 hi = n >= 32 ? 0xffff : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0;
    const __m512 a = _mm512_maskz_loadu_ps(lo, x), b = _mm512_maskz_loadu_ps(hi, x + 64);
    _mm512_storeu_si512(out, (__m512i)_mm512_cvtne2ps_pbh(b, a));
#else
    for (int j = 0; j < n / 2; j++) {
        uint32_t u[2];
        memcpy(u, x + 8 * j, 8);
        out[j] = kgx_bf16_bits(u[0]) | kgx_bf16_bits(u[1]) << 16;
    }
#endif
}

/* acc[n] += w's pair n . the pair xp */
KG_INLINE kgx_f32 kgx_dotbf(kgx_f32 acc, kgx_u8 w, uint32_t xp)
{
#if KGX_BF16
    return (kgx_f32)_mm512_dpbf16_ps((__m512)acc, (__m512bh)w, (__m512bh)_mm512_set1_epi32((int)xp));
#else
    kgx_i32 wi;
    memcpy(&wi, &w, sizeof wi);
    kgx_f32 wl, wh;
    const kgx_i32 lo = wi << 16, hi = wi & (int32_t)0xffff0000u;
    memcpy(&wl, &lo, sizeof wl);
    memcpy(&wh, &hi, sizeof wh);
    float xl, xh;
    const uint32_t ul = xp << 16, uh = xp & 0xffff0000u;
    memcpy(&xl, &ul, 4);
    memcpy(&xh, &uh, 4);
    return acc + wl * xl + wh * xh;
#endif
}

/* n elements (n even, <= 32) from element 2 j0 of groups w[v] against
 * activation rows x[m] (f32, from the same element) into acc[m][v] */
KG_INLINE void kgx_x16b_run(int MT, int NV, const uint8_t *const w[2], const uint8_t *const x[KGX_MT], int64_t j0, int n,
                            kgx_f32 acc[KGX_MT][2])
{
    uint32_t xp[KGX_MT][16];
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) kgx_bf16_pairs(x[m] + 8 * j0, n, xp[m]);
    /* not unroll(full): n is a run-time tail where K is not specialized
     * (the native test objects), and clang then refuses a full unroll */
    KGQ_UNROLL4
    for (int j = 0; j < n / 2; j++) {
        kgx_u8 wv[2];
        KGQ_UNROLL
        for (int v = 0; v < NV; v++) wv[v] = kgx_load(w[v] + 64 * (j0 + j));
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) {
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) acc[m][v] = kgx_dotbf(acc[m][v], wv[v], xp[m][j]);
        }
    }
}

/* out[m][16 v + n] = row n of group w[v] (x16b) . activation row x[m] (f32) */
KG_INLINE void mm_tile_x16b(int MT, int NV, const uint8_t *const w[2], const uint8_t *const x[KGX_MT], int64_t K,
                            int64_t pf, float out[KGX_MT][32])
{
    kgx_f32 acc[KGX_MT][2];
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        KGQ_UNROLL
        for (int v = 0; v < NV; v++) acc[m][v] = (kgx_f32){0};
    }
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
        if (MT == 1 && pf) /* 32 elements of 16 rows: 1 KiB */
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) kgx_prefetch(w[v] + 32 * k, 1024, pf);
        kgx_x16b_run(MT, NV, w, x, k / 2, 32, acc);
    }
    if (k < K) kgx_x16b_run(MT, NV, w, x, k / 2, (int)(K - k), acc);
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        KGQ_UNROLL
        for (int v = 0; v < NV; v++) memcpy(out[m] + 16 * v, &acc[m][v], sizeof acc[m][v]);
    }
}

/* Q4_K: sub-block j's scales (lo 0) or mins (lo 1) of the tile's 16 rows,
 * as floats: 6 bits out of the 12 planes (GGUF's get_scale_min_k4) */
KG_INLINE kgx_f32 kgx_q4k_sm(const uint8_t *t, int j, int mn)
{
    typedef uint8_t u8x16 __attribute__((vector_size(16)));
    u8x16 a, b, r;
    const uint8_t *s = t + 64;
    if (j < 4) {
        memcpy(&a, s + 16 * (j + 4 * mn), 16);
        r = a & 63;
    } else {
        memcpy(&a, s + 16 * (j + 4), 16);
        memcpy(&b, s + 16 * (j - 4 + 4 * mn), 16);
        r = (mn ? a >> 4 : a & 15) | (u8x16)((b >> 6) << 4);
    }
    return __builtin_convertvector(r, kgx_f32);
}

/* Q4_K's or Q5_K's tile: acc[m][v] += the 16 rows' dots with x[m]'s 8
 * activation blocks from xb[m] (one block column of 256) */
KG_INLINE void mm_tile_x16_q4k(int wt, int MT, int NV, const uint8_t *const t[2], const kgt_q8a *const xb[KGX_MT],
                               kgx_f32 acc[KGX_MT][2])
{
    const int64_t qo = kgx_qoff(wt);
    kgx_f32 d[2], dm[2];
    KGQ_UNROLL
    for (int v = 0; v < NV; v++) d[v] = kgx_f16x16(t[v]), dm[v] = kgx_f16x16(t[v] + 32);
    KGQ_NOUNROLL
    for (int p = 0; p < 4; p++) {
        kgx_i32 ia[2][KGX_MT][2]; /* sub-blocks 2p, 2p + 1 */
        KGQ_UNROLL
        for (int h = 0; h < 2; h++) {
            KGQ_UNROLL
            for (int m = 0; m < MT; m++) {
                KGQ_UNROLL
                for (int v = 0; v < NV; v++) ia[h][m][v] = (kgx_i32){0};
            }
        }
        KGQ_UNROLL
        for (int i = 0; i < 8; i++) {
            kgx_u8 lo[2], hi[2];
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) {
                const kgx_u8 r = kgx_load(t[v] + qo + 512 * p + 64 * i);
                lo[v] = r & 15;
                hi[v] = (r >> 4) & 15;
                if (wt == KGT_Q5_K) { /* masks (8p + i, 0), (8p + i, 1) */
                    lo[v] = kgx_add16(lo[v], t[v] + 256 + 128 * p + 16 * i);
                    hi[v] = kgx_add16(hi[v], t[v] + 256 + 128 * p + 16 * i + 8);
                }
            }
            KGQ_UNROLL
            for (int m = 0; m < MT; m++) {
                KGQ_UNROLL
                for (int v = 0; v < NV; v++) {
                    ia[0][m][v] = kgx_dot4(ia[0][m][v], lo[v], xb[m][2 * p].qs + 4 * i, 0);
                    ia[1][m][v] = kgx_dot4(ia[1][m][v], hi[v], xb[m][2 * p + 1].qs + 4 * i, 0);
                }
            }
        }
        KGQ_UNROLL
        for (int h = 0; h < 2; h++) {
            kgx_f32 s[2], mn[2];
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) {
                s[v] = d[v] * kgx_q4k_sm(t[v], 2 * p + h, 0);
                mn[v] = dm[v] * kgx_q4k_sm(t[v], 2 * p + h, 1);
            }
            KGQ_UNROLL
            for (int m = 0; m < MT; m++) {
                const kgt_q8a *x = &xb[m][2 * p + h];
                const float dx = x->d, sx = dx * (float)x->sum;
                KGQ_UNROLL
                for (int v = 0; v < NV; v++) {
                    acc[m][v] += __builtin_convertvector(ia[h][m][v], kgx_f32) * (s[v] * dx);
                    acc[m][v] -= mn[v] * sx;
                }
            }
        }
    }
}

/* IQ4_XS: sub-block s's scales ls - 32 of the tile's 16 rows, as floats:
 * 4 bits of scales_l's plane 2 + s/2, 2 of scales_h's plane s/4 */
KG_INLINE kgx_f32 kgx_iq4xs_ls(const uint8_t *t, int s)
{
    typedef uint8_t u8x16 __attribute__((vector_size(16)));
    u8x16 h, l;
    memcpy(&h, t + 32 + 16 * (s / 4), 16);
    memcpy(&l, t + 32 + 16 * (2 + s / 2), 16);
    const u8x16 ls = ((l >> (4 * (s & 1))) & 15) | (u8x16)(((h >> (2 * (s & 3))) & 3) << 4);
    return __builtin_convertvector(ls, kgx_f32) - 32.0f;
}

/* IQ4_XS's tile: acc[m][v] += the 16 rows' dots with x[m]'s 8 activation
 * blocks from xb[m] (one block column of 256) */
KG_INLINE void mm_tile_x16_iq4xs(int MT, int NV, const uint8_t *const t[2], const kgt_q8a *const xb[KGX_MT],
                                 kgx_f32 acc[KGX_MT][2])
{
    kgx_f32 d[2];
    KGQ_UNROLL
    for (int v = 0; v < NV; v++) d[v] = kgx_f16x16(t[v]);
    KGQ_NOUNROLL
    for (int s = 0; s < 8; s++) {
        kgx_i32 ia[KGX_MT][2];
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) {
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) ia[m][v] = (kgx_i32){0} - KGX_B128 * xb[m][s].sum;
        }
        KGQ_UNROLL
        for (int i = 0; i < 4; i++) {
            kgx_u8 lo[2], hi[2];
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) {
                const kgx_u8 r = kgx_load(t[v] + 128 + 256 * s + 64 * i);
                lo[v] = kgx_iq4(r & 15);
                hi[v] = kgx_iq4((r >> 4) & 15);
            }
            KGQ_UNROLL
            for (int m = 0; m < MT; m++) {
                KGQ_UNROLL
                for (int v = 0; v < NV; v++) {
                    ia[m][v] = kgx_dot4(ia[m][v], lo[v], xb[m][s].qs + 4 * i, 1);
                    ia[m][v] = kgx_dot4(ia[m][v], hi[v], xb[m][s].qs + 16 + 4 * i, 1);
                }
            }
        }
        kgx_f32 sc[2];
        KGQ_UNROLL
        for (int v = 0; v < NV; v++) sc[v] = d[v] * kgx_iq4xs_ls(t[v], s);
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) {
            const float dx = xb[m][s].d;
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) acc[m][v] += __builtin_convertvector(ia[m][v], kgx_f32) * (sc[v] * dx);
        }
    }
}

/* Q6_K, Q3_K, Q2_K: vector i of the tile's block s (= 4n + j) as
 * unsigned bytes, elements 32s + 4i .. + 3 of the 16 rows: Q6_K's q + 32
 * (0..63: the low (j < 2) or high nibbles of ql word 16n + 8 (j % 2) + i,
 * bits 2j, 2j + 1 of qh word 32 + 8n + i as bits 4, 5), Q3_K's q + 4
 * (0..7: bits 2j, 2j + 1 of qs word 8 + 8n + i, bit s of hmask word i
 * as bit 2), Q2_K's q (0..3: bits 2j, 2j + 1 of qs word 8n + i) */
KG_INLINE kgx_u8 kgx_k16_q(int wt, const uint8_t *t, int s, int i)
{
    const uint8_t *q = t + kgx_qoff(wt);
    const int n = s >> 2, j = s & 3;
    if (wt == KGT_Q6_K) {
        const kgx_u8 l = kgx_load(q + 64 * (16 * n + 8 * (j & 1) + i)), h = kgx_load(q + 64 * (32 + 8 * n + i));
        return ((l >> (4 * (j >> 1))) & 15) | ((h >> (2 * j)) & 3) << 4;
    }
    if (wt == KGT_Q3_K) {
        const kgx_u8 l = kgx_load(q + 64 * (8 + 8 * n + i)), h = kgx_load(q + 64 * i);
        return ((l >> (2 * j)) & 3) | ((h >> s) & 1) << 2;
    }
    return (kgx_load(q + 64 * (8 * n + i)) >> (2 * j)) & 3;
}

/* the integer scale of elements 16k..16k+15 of the tile's 16 rows, as
 * floats: Q6_K's int8 plane k; Q3_K's 6 bits - 32, 4 of plane k % 8
 * (nibble k / 8), 2 of plane 8 + k % 4 (bits 2 (k / 4)); Q2_K's low
 * nibble of plane k (mn: its high nibble, the min) */
KG_INLINE kgx_f32 kgx_k16_sc(int wt, const uint8_t *t, int k, int mn)
{
    typedef uint8_t u8x16 __attribute__((vector_size(16)));
    typedef int8_t i8x16 __attribute__((vector_size(16)));
    const uint8_t *p = t + 32 * kgx_nf(wt);
    u8x16 a, b;
    if (wt == KGT_Q6_K) {
        i8x16 sc;
        memcpy(&sc, p + 16 * k, 16);
        return __builtin_convertvector(sc, kgx_f32);
    }
    if (wt == KGT_Q3_K) {
        memcpy(&a, p + 16 * (k % 8), 16);
        memcpy(&b, p + 16 * (8 + k % 4), 16);
        const u8x16 sc = ((a >> (4 * (k / 8))) & 15) | (u8x16)(((b >> (2 * (k / 4))) & 3) << 4);
        return __builtin_convertvector(sc, kgx_f32) - 32.0f;
    }
    memcpy(&a, p + 16 * k, 16);
    return __builtin_convertvector(mn ? a >> 4 : a & 15, kgx_f32);
}

/* Q6_K's, Q3_K's or Q2_K's tile: acc[m][v] += the 16 rows' dots with
 * x[m]'s 8 activation blocks from xb[m] (one block column of 256). Each
 * half of a block (16 elements, scale k = 2s + h) is 4 vpdpbusd of the
 * unsigned quants from -off x.hsum (off: Q6_K 32, Q3_K 4, Q2_K 0; x.hsum
 * the half's activation quants' sum), then d sc_k x.d scales 16 rows at
 * once (Q2_K: minus dmin m_k x.d x.hsum) */
KG_INLINE void mm_tile_x16_k16(int wt, int MT, int NV, const uint8_t *const t[2], const kgt_q8a *const xb[KGX_MT],
                               kgx_f32 acc[KGX_MT][2])
{
    const int32_t off = wt == KGT_Q6_K ? 32 : wt == KGT_Q3_K ? 4 : 0;
    kgx_f32 d[2], dm[2];
    KGQ_UNROLL
    for (int v = 0; v < NV; v++) {
        d[v] = kgx_f16x16(t[v]);
        dm[v] = wt == KGT_Q2_K ? kgx_f16x16(t[v] + 32) : (kgx_f32){0};
    }
    int32_t hs[KGX_MT][8][2]; /* the sums of each activation block's halves */
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        const kgq_i32x8 h0 = kgq_xsum16(xb[m], 8);
        KGQ_UNROLL
        for (int s = 0; s < 8; s++) hs[m][s][0] = h0[s], hs[m][s][1] = xb[m][s].sum - h0[s];
    }
    KGQ_NOUNROLL
    for (int s = 0; s < 8; s++) {
        kgx_i32 ia[2][KGX_MT][2];
        KGQ_UNROLL
        for (int h = 0; h < 2; h++) {
            KGQ_UNROLL
            for (int m = 0; m < MT; m++) {
                KGQ_UNROLL
                for (int v = 0; v < NV; v++) ia[h][m][v] = (kgx_i32){0} - off * hs[m][s][h];
            }
        }
        KGQ_UNROLL
        for (int i = 0; i < 8; i += 2) {
            kgx_u8 q[2], q1[2];
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) q[v] = kgx_k16_q(wt, t[v], s, i);
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) q1[v] = kgx_k16_q(wt, t[v], s, i + 1);
            KGQ_UNROLL
            for (int m = 0; m < MT; m++) {
                KGQ_UNROLL
                for (int v = 0; v < NV; v++)
                    ia[i / 4][m][v] =
                        kgx_dot4x2(ia[i / 4][m][v], q[v], xb[m][s].qs + 4 * i, q1[v], xb[m][s].qs + 4 * i + 4);
            }
        }
        KGQ_UNROLL
        for (int h = 0; h < 2; h++) {
            kgx_f32 sc[2], mn[2];
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) {
                sc[v] = d[v] * kgx_k16_sc(wt, t[v], 2 * s + h, 0);
                mn[v] = wt == KGT_Q2_K ? dm[v] * kgx_k16_sc(wt, t[v], 2 * s + h, 1) : (kgx_f32){0};
            }
            KGQ_UNROLL
            for (int m = 0; m < MT; m++) {
                const float dx = xb[m][s].d, hx = dx * (float)hs[m][s][h];
                KGQ_UNROLL
                for (int v = 0; v < NV; v++) {
                    acc[m][v] += __builtin_convertvector(ia[h][m][v], kgx_f32) * (sc[v] * dx);
                    if (wt == KGT_Q2_K) acc[m][v] -= mn[v] * hx;
                }
            }
        }
    }
}

/* out[m][16 v + n] = row n of group w[v] . activation row x[m] (q8a), for
 * m < MT, v < NV: the groups' tiles one after the other, each decoded once
 * for the MT rows */
KG_INLINE void mm_tile_x16(int wt, int MT, int NV, const uint8_t *const w[2], const uint8_t *const x[KGX_MT], int64_t K,
                           int64_t pf, float out[KGX_MT][32])
{
    const int64_t nb = K / kgq_blk(wt), tb = kgx_tile_bytes(wt), qo = kgx_qoff(wt);
    const int64_t mo = kgx_moff(wt);
    const int32_t off = wt == KGT_Q4_0 ? 8 : wt == KGT_Q5_0 ? 16 : wt == KGT_Q8_0 || wt == KGT_IQ4_NL ? KGX_B128 : 0;
    kgx_f32 acc[KGX_MT][2];
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        KGQ_UNROLL
        for (int v = 0; v < NV; v++) acc[m][v] = (kgx_f32){0};
    }
    for (int64_t b = 0; kgq_blk(wt) == 256 && b < nb; b++) {
        const uint8_t *t[2];
        const kgt_q8a *xb[KGX_MT];
        KGQ_UNROLL
        for (int v = 0; v < NV; v++) t[v] = w[v] + b * tb;
        if (MT == 1 && pf)
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) kgx_prefetch(t[v], tb, pf);
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) xb[m] = (const kgt_q8a *)(const void *)x[m] + 8 * b;
        if (wt == KGT_IQ4_XS) mm_tile_x16_iq4xs(MT, NV, t, xb, acc);
        else if (kgx_k16(wt)) mm_tile_x16_k16(wt, MT, NV, t, xb, acc);
        else mm_tile_x16_q4k(wt, MT, NV, t, xb, acc);
    }
    for (int64_t b = 0; kgq_blk(wt) == 32 && b < nb; b++) {
        const uint8_t *t[2];
        const kgt_q8a *xb[KGX_MT];
        KGQ_UNROLL
        for (int v = 0; v < NV; v++) t[v] = w[v] + b * tb;
        if (MT == 1 && pf)
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) kgx_prefetch(t[v], tb, pf);
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) xb[m] = (const kgt_q8a *)(const void *)x[m] + b;
        kgx_i32 ia[KGX_MT][2];
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) {
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) ia[m][v] = (kgx_i32){0} - off * xb[m]->sum;
        }
        if (wt == KGT_Q8_0) {
            KGQ_UNROLL
            for (int i = 0; i < 8; i++) {
                kgx_u8 q[2];
                KGQ_UNROLL
                for (int v = 0; v < NV; v++) q[v] = kgx_load(t[v] + qo + 64 * i);
                KGQ_UNROLL
                for (int m = 0; m < MT; m++) {
                    KGQ_UNROLL
                    for (int v = 0; v < NV; v++) ia[m][v] = kgx_dot4(ia[m][v], q[v], xb[m]->qs + 4 * i, 1);
                }
            }
        } else {
            KGQ_UNROLL
            for (int i = 0; i < 4; i++) {
                kgx_u8 lo[2], hi[2];
                KGQ_UNROLL
                for (int v = 0; v < NV; v++) {
                    const kgx_u8 r = kgx_load(t[v] + qo + 64 * i);
                    lo[v] = r & 15;
                    hi[v] = (r >> 4) & 15;
                    if (kgx_nm(wt)) { /* Q5: masks (i, 0), (i, 1) */
                        lo[v] = kgx_add16(lo[v], t[v] + mo + 16 * i);
                        hi[v] = kgx_add16(hi[v], t[v] + mo + 16 * i + 8);
                    }
                    if (wt == KGT_IQ4_NL) lo[v] = kgx_iq4(lo[v]), hi[v] = kgx_iq4(hi[v]);
                }
                KGQ_UNROLL
                for (int m = 0; m < MT; m++) {
                    KGQ_UNROLL
                    for (int v = 0; v < NV; v++) {
                        if (wt == KGT_IQ4_NL) {
                            ia[m][v] = kgx_dot4(ia[m][v], lo[v], xb[m]->qs + 4 * i, 1);
                            ia[m][v] = kgx_dot4(ia[m][v], hi[v], xb[m]->qs + 16 + 4 * i, 1);
                        } else {
                            ia[m][v] = kgx_dot4x2(ia[m][v], lo[v], xb[m]->qs + 4 * i, hi[v], xb[m]->qs + 16 + 4 * i);
                        }
                    }
                }
            }
        }
        kgx_f32 dw[2], mw[2];
        KGQ_UNROLL
        for (int v = 0; v < NV; v++) {
            dw[v] = kgx_f16x16(t[v]);
            mw[v] = kgx_nf(wt) == 2 ? kgx_f16x16(t[v] + 32) : (kgx_f32){0};
        }
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) {
            const float dx = xb[m]->d, sx = dx * (float)xb[m]->sum;
            KGQ_UNROLL
            for (int v = 0; v < NV; v++) {
                acc[m][v] += __builtin_convertvector(ia[m][v], kgx_f32) * (dw[v] * dx);
                if (kgx_nf(wt) == 2) acc[m][v] += mw[v] * sx;
            }
        }
    }
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) {
        KGQ_UNROLL
        for (int v = 0; v < NV; v++) memcpy(out[m] + 16 * v, &acc[m][v], sizeof acc[m][v]);
    }
}

#include "mm_x16_avx2.h"

#endif
