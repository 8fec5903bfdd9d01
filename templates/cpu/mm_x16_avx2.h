/*
 * mm_x16_avx2.h — AVX2's prefill tile over the x16 layout (the layout:
 * mm_x16.h) for MT > 2 activation rows: the 32-element types (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, IQ4_NL), Q4_K and Q5_K.
 *
 * A 16-row group's sums are two ymm per activation row; with an f32
 * accumulator beside each, four rows need all 16 ymm and spill (measured:
 * a third of kgm_mm's cycles went to spill traffic in SmolLM2-shaped Q8_0
 * prefill). So the tile takes one half of the group at a time, rows
 * 8 hh .. 8 hh + 7: the 32-byte half of every 64-byte quant vector, one
 * ymm of sums and one of accumulators per activation row. The activations
 * are read once per half (from L1: MT x K bytes).
 *
 * Per 4 elements and activation row: the nibble types, two vectors' dots
 * summed as int16 before one vpmaddwd (kgx_dot4x2's bound: bytes < 64);
 * Q8_0 and IQ4_NL, signed weights w, vpmaddubsw(|w|, x with w's sign)
 * (|w| <= 128: each pair <= 2 x 128 x 127 < 2^15).
 */
#ifndef KGEN_MM_X16_AVX2_H
#define KGEN_MM_X16_AVX2_H

#if KGX_AVX2

KG_INLINE __m256i kgx2_load(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }

/* v, as an opaque register value: keeps each row's sums a chain in the
 * order written (reassociated into trees, the products of all four quant
 * vectors were computed one activation row at a time, every decoded
 * vector live at once: spilled) */
#define KGX2_PIN(v) __asm__("" : "+x"(v))

/* 4 activation quants in every lane */
KG_INLINE __m256i kgx2_bcast4(const int8_t *x4)
{
    int32_t v;
    memcpy(&v, x4, 4);
    return _mm256_set1_epi32(v);
}

/* 16 in byte k where bit k of the 32-bit little-endian mask at m is set */
KG_INLINE __m256i kgx2_fifth(const uint8_t *m)
{
    uint32_t k;
    memcpy(&k, m, 4);
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                                         3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)k), sel), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(b, bit), _mm256_set1_epi8(16));
}

/* out[m][col + n] = row 8 hh + n of group w . activation row x[m], m < MT,
 * n < 8 */
KG_INLINE void mm_tile_x16_half(int wt, int MT, const uint8_t *w, const uint8_t *const x[KGX_MT], int64_t K, int hh,
                                float out[KGX_MT][32], int col)
{
    const int64_t nb = K / 32, tb = kgx_tile_bytes(wt), qo = kgx_qoff(wt) + 32 * hh, mo = kgx_moff(wt) + 4 * hh;
    const int32_t off = wt == KGT_Q4_0 ? 8 : wt == KGT_Q5_0 ? 16 : 0;
    const int wide = wt == KGT_Q8_0 || wt == KGT_IQ4_NL, ni = wt == KGT_Q8_0 ? 8 : 4, ns = 8 / ni; /* Q8_0: 8 x 1 vectors, IQ4_NL: 4 x 2 */
    const __m256i one = _mm256_set1_epi16(1), lo4 = _mm256_set1_epi8(15);
    const __m256i iq4 = _mm256_broadcastsi128_si256(_mm_setr_epi8(KGQ_IQ4_VALUES));
    __m256 acc[KGX_MT];
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) acc[m] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *t = w + b * tb;
        const kgt_q8a *xb[KGX_MT];
        __m256i ia[KGX_MT];
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) {
            xb[m] = (const kgt_q8a *)(const void *)x[m] + b;
            ia[m] = _mm256_set1_epi32(-off * xb[m]->sum);
        }
        if (wide) {
            KGQ_UNROLL
            for (int i = 0; i < ni; i++) {
                __m256i ws[2];
                if (wt == KGT_Q8_0) {
                    ws[0] = _mm256_xor_si256(kgx2_load(t + qo + 64 * i), _mm256_set1_epi8((char)0x80));
                } else { /* IQ4_NL: low nibbles elements 4i.., high ones 16 + 4i.. */
                    const __m256i r = kgx2_load(t + qo + 64 * i);
                    ws[0] = _mm256_shuffle_epi8(iq4, _mm256_and_si256(r, lo4));
                    ws[1] = _mm256_shuffle_epi8(iq4, _mm256_and_si256(_mm256_srli_epi16(r, 4), lo4));
                }
                KGQ_UNROLL
                for (int s = 0; s < ns; s++) {
                    const __m256i aw = _mm256_abs_epi8(ws[s]);
                    KGQ_UNROLL
                    for (int m = 0; m < MT; m++) {
                        const __m256i xs = _mm256_sign_epi8(kgx2_bcast4(xb[m]->qs + 16 * s + 4 * i), ws[s]);
                        ia[m] = _mm256_add_epi32(ia[m], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, xs), one));
                        KGX2_PIN(ia[m]);
                    }
                }
            }
        } else {
            KGQ_UNROLL
            for (int i = 0; i < 4; i++) {
                const __m256i r = kgx2_load(t + qo + 64 * i);
                __m256i lo = _mm256_and_si256(r, lo4), hi = _mm256_and_si256(_mm256_srli_epi16(r, 4), lo4);
                if (kgx_nm(wt)) { /* Q5: masks (i, 0), (i, 1), this half's 32 bits */
                    lo = _mm256_or_si256(lo, kgx2_fifth(t + mo + 16 * i));
                    hi = _mm256_or_si256(hi, kgx2_fifth(t + mo + 16 * i + 8));
                }
                KGQ_UNROLL
                for (int m = 0; m < MT; m++) {
                    const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, kgx2_bcast4(xb[m]->qs + 4 * i)),
                                                       _mm256_maddubs_epi16(hi, kgx2_bcast4(xb[m]->qs + 16 + 4 * i)));
                    ia[m] = _mm256_add_epi32(ia[m], _mm256_madd_epi16(p, one));
                    KGX2_PIN(ia[m]);
                }
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(t + 16 * hh)));
        const __m256 mw = kgx_nf(wt) == 2 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(t + 32 + 16 * hh)))
                                          : _mm256_setzero_ps();
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) {
            acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[m]), _mm256_mul_ps(dw, _mm256_set1_ps(xb[m]->d)), acc[m]);
            if (kgx_nf(wt) == 2) acc[m] = _mm256_fmadd_ps(mw, _mm256_set1_ps(xb[m]->d * (float)xb[m]->sum), acc[m]);
        }
    }
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) _mm256_storeu_ps(out[m] + col, acc[m]);
}

/* Q4_K, Q5_K: sub-block j's scales (mn 0) or mins (mn 1) of rows
 * 8 hh .. 8 hh + 7 as floats: half of kgx_q4k_sm's 16 */
KG_INLINE __m256 kgx2_q4k_sm(const uint8_t *t, int j, int mn, int hh)
{
    const kgx_f32 f = kgx_q4k_sm(t, j, mn);
    __m256 h;
    memcpy(&h, (const float *)&f + 8 * hh, sizeof h);
    return h;
}

/* Q4_K's and Q5_K's half-group tile (256-element blocks: 8 sub-blocks of
 * 32, quant vector (p, i)'s low nibbles sub-block 2p's, high ones 2p + 1's):
 * one sub-block at a time, so one ymm of sums per activation row; two
 * quant vectors' products summed as int16 (nibbles <= 31: 4 x 31 x 127 <
 * 2^15) before one vpmaddwd */
KG_INLINE void mm_tile_x16k_half(int wt, int MT, const uint8_t *w, const uint8_t *const x[KGX_MT], int64_t K, int hh,
                                 float out[KGX_MT][32], int col)
{
    const int64_t nb = K / 256, tb = kgx_tile_bytes(wt), qo = kgx_qoff(wt) + 32 * hh;
    const __m256i one = _mm256_set1_epi16(1), lo4 = _mm256_set1_epi8(15);
    __m256 acc[KGX_MT];
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) acc[m] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *t = w + b * tb;
        const kgt_q8a *xb[KGX_MT];
        KGQ_UNROLL
        for (int m = 0; m < MT; m++) xb[m] = (const kgt_q8a *)(const void *)x[m] + 8 * b;
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(t + 16 * hh)));
        const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(t + 32 + 16 * hh)));
        KGQ_NOUNROLL
        for (int j = 0; j < 8; j++) { /* sub-block j: vectors (j / 2, i), nibbles j % 2 */
            const int p = j / 2, h = j % 2;
            __m256i ia[KGX_MT];
            KGQ_UNROLL
            for (int m = 0; m < MT; m++) ia[m] = _mm256_setzero_si256();
            KGQ_UNROLL
            for (int i = 0; i < 8; i += 2) {
                __m256i q[2];
                KGQ_UNROLL
                for (int e = 0; e < 2; e++) {
                    const __m256i r = kgx2_load(t + qo + 512 * p + 64 * (i + e));
                    q[e] = _mm256_and_si256(h ? _mm256_srli_epi16(r, 4) : r, lo4);
                    if (wt == KGT_Q5_K) /* mask (8p + i + e, h) */
                        q[e] = _mm256_or_si256(q[e], kgx2_fifth(t + 256 + 128 * p + 16 * (i + e) + 8 * h + 4 * hh));
                }
                KGQ_UNROLL
                for (int m = 0; m < MT; m++) {
                    const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(q[0], kgx2_bcast4(xb[m][j].qs + 4 * i)),
                                                         _mm256_maddubs_epi16(q[1], kgx2_bcast4(xb[m][j].qs + 4 * i + 4)));
                    ia[m] = _mm256_add_epi32(ia[m], _mm256_madd_epi16(s16, one));
                    KGX2_PIN(ia[m]);
                }
            }
            const __m256 sc = _mm256_mul_ps(d, kgx2_q4k_sm(t, j, 0, hh)), mn = _mm256_mul_ps(dm, kgx2_q4k_sm(t, j, 1, hh));
            KGQ_UNROLL
            for (int m = 0; m < MT; m++) {
                const float dx = xb[m][j].d;
                acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[m]), _mm256_mul_ps(sc, _mm256_set1_ps(dx)), acc[m]);
                acc[m] = _mm256_fnmadd_ps(mn, _mm256_set1_ps(dx * (float)xb[m][j].sum), acc[m]);
            }
        }
    }
    KGQ_UNROLL
    for (int m = 0; m < MT; m++) _mm256_storeu_ps(out[m] + col, acc[m]);
}

#endif
#endif
