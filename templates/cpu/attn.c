/*
 * attn.c — causal attention of new tokens over the KV cache, grouped-query
 * heads, f32, f16 or Q8_0 cache. Contracts in ops.h.
 *
 * ── Prefill (kgt_attn_prefill) ──
 * Decode has its own formulation (flash-decoding: the next section).
 * The work units are the
 * (KV head, token, query head in the group) triples, in that order, split
 * between threads; a thread takes its units in blocks of up to KGT_ATTN_QB
 * rows that share a KV head (the query heads of a group, then the next
 * token's), and walks the block's rows over one tile of K and V at a time,
 * so the tile is read from memory once and from cache by the other rows.
 *
 * A block walks the cache in tiles of KGT_ATTN_KT positions with an online
 * softmax (as in flash attention): per row a running max mx and sum l; per
 * tile and row, the scores s_j = scale q·k_j of the positions the row sees
 * (four keys at a time), then
 *     mx' = max(mx, max_j s_j),  alpha = e^(mx - mx'),
 *     p_j = e^(s_j - mx'),  l = alpha l + sum_j p_j,  o = alpha o + sum_j p_j v_j
 * and at the end o /= l. The output rows are the accumulators; no scratch.
 *
 * A row sees the positions [lo, len): lo = 0, or with a sliding window W
 * the window's first position p - W + 1 (p the row's position). The tiles
 * lie on one grid, multiples of KGT_ATTN_KT from 0, and a row takes the
 * part of each tile inside [lo, len) (a window starts mid-tile); the
 * block starts at the tile of its rows' smallest lo, so tiles wholly before
 * every row's window are not read. Each row's arithmetic (its tile parts,
 * on the fixed grid) does not depend on which rows share its block, so the
 * result does not depend on the thread count.
 */
#include "ops.h"

#include <math.h>

/* s[j] = scale q·k_j for the n keys of a tile (K rows at kt): KGT_VF keys
 * at a time, a vector accumulator each, reduced four at a time by
 * kgt_vhsum4 into one vector of scores and stored whole (scalar stores
 * read back as a vector stall store forwarding); the rest four at a time. */
KG_INLINE void attn_scores(const float *q, const char *kt, int64_t row_bytes, int64_t n, int64_t D, int64_t type,
                           float scale, float *s)
{
    int64_t j0 = 0;
    for (; j0 + KGT_VF <= n; j0 += KGT_VF) {
        kgt_vf a[KGT_VF] = {{0}}, qv, r;
        int64_t d = 0;
        for (; d + KGT_VF <= D; d += KGT_VF) {
            qv = kgt_vload(q + d);
            for (int c = 0; c < KGT_VF; c++) a[c] += qv * kgt_vload_t(kt + (j0 + c) * row_bytes, d, type);
        }
        if (d < D) {
            qv = kgt_vload_part(q + d, D - d, 0.0f);
            for (int c = 0; c < KGT_VF; c++) a[c] += qv * kgt_vload_t_part(kt + (j0 + c) * row_bytes, d, D - d, type);
        }
        for (int g = 0; g < KGT_VF / 4; g++) {
            const kgt_v4f r4 = kgt_vhsum4(a + 4 * g);
            for (int c = 0; c < 4; c++) r[4 * g + c] = r4[c];
        }
        kgt_vstore(s + j0, r * scale);
    }
    for (int64_t j = j0; j < n; j += 4) {
        const char *k[4];
        for (int c = 0; c < 4; c++) k[c] = kt + (j + c < n ? j + c : n - 1) * row_bytes; /* past n: recompute the last */
        kgt_vf a[4] = {{0}}, qv;
        int64_t d = 0;
        for (; d + KGT_VF <= D; d += KGT_VF) {
            qv = kgt_vload(q + d);
            for (int c = 0; c < 4; c++) a[c] += qv * kgt_vload_t(k[c], d, type);
        }
        if (d < D) {
            qv = kgt_vload_part(q + d, D - d, 0.0f);
            for (int c = 0; c < 4; c++) a[c] += qv * kgt_vload_t_part(k[c], d, D - d, type);
        }
        kgt_v4f r = kgt_vhsum4(a) * scale;
        for (int c = 0; c < 4 && j + c < n; c++) s[j + c] = r[c];
    }
}

/* o = alpha o + sum_j p[j] v_j over the n V rows of a tile at vt: KGT_ATTN_DV
 * vectors of o at a time stay in registers across the tile. */
KG_INLINE void attn_accum(float *o, float alpha, const float *p, const char *vt, int64_t row_bytes, int64_t n,
                          int64_t D, int64_t type)
{
    kgt_vf acc[KGT_ATTN_DV];
    int64_t d0 = 0;
    while (d0 + KGT_VF <= D) {
        int64_t nv = (D - d0) / KGT_VF < KGT_ATTN_DV ? (D - d0) / KGT_VF : KGT_ATTN_DV;
        for (int64_t k = 0; k < nv; k++) acc[k] = kgt_vload(o + d0 + k * KGT_VF) * alpha;
        for (int64_t j = 0; j < n; j++) {
            const kgt_vf pj = kgt_vsplat(p[j]);
            for (int64_t k = 0; k < nv; k++) acc[k] += pj * kgt_vload_t(vt + j * row_bytes, d0 + k * KGT_VF, type);
        }
        for (int64_t k = 0; k < nv; k++) kgt_vstore(o + d0 + k * KGT_VF, acc[k]);
        d0 += nv * KGT_VF;
    }
    if (d0 < D) {
        acc[0] = kgt_vload_part(o + d0, D - d0, 0.0f) * alpha;
        for (int64_t j = 0; j < n; j++) acc[0] += p[j] * kgt_vload_t_part(vt + j * row_bytes, d0, D - d0, type);
        kgt_vstore_part(o + d0, D - d0, acc[0]);
    }
}

/* nb rows: query q[r], output o[r], attending to positions lo[r]..len[r]-1
 * of the KV head whose K and V rows start at kb and vb (D elements of
 * `type` each, row_bytes apart: consecutive in a cache, a fused QKV row's
 * width for the encoder). Tile by tile, row by row: the tile's
 * K and V rows stay in cache while the block's rows use them. */
KG_INLINE void attn_block(const float *const *q, float *const *o, const int64_t *lo, const int64_t *len, int64_t nb,
                          const char *kb, const char *vb, int64_t row_bytes, int64_t D, int64_t type, float scale)
{
    float s[KGT_ATTN_KT], mx[KGT_ATTN_QB], l[KGT_ATTN_QB] = {0};
    int64_t n_max = 0, lo_min = INT64_MAX;
    /* all KGT_ATTN_QB rows: a loop to nb would become a memset call */
    for (int r = 0; r < KGT_ATTN_QB; r++) mx[r] = -__builtin_inff();
    for (int64_t r = 0; r < nb; r++) {
        memset(o[r], 0, (size_t)D * sizeof(float)); /* D is a constant once specialized: inline stores */
        n_max = len[r] > n_max ? len[r] : n_max;
        lo_min = lo[r] < lo_min ? lo[r] : lo_min;
    }
    for (int64_t t0 = lo_min / KGT_ATTN_KT * KGT_ATTN_KT; t0 < n_max; t0 += KGT_ATTN_KT)
        for (int64_t r = 0; r < nb; r++) {
            /* the positions [a, e) of this tile that row r sees */
            const int64_t a = lo[r] > t0 ? lo[r] : t0, e = len[r] < t0 + KGT_ATTN_KT ? len[r] : t0 + KGT_ATTN_KT;
            const int64_t n = e - a;
            if (n <= 0) continue;
            attn_scores(q[r], kb + a * row_bytes, row_bytes, n, D, type, scale, s);
            float m1 = kgt_max_scaled(s, n, 1.0f);
            m1 = m1 > mx[r] ? m1 : mx[r];
            const float alpha = kgt_expf(mx[r] - m1); /* 0 on the first tile */
            l[r] = alpha * l[r] + kgt_exp_sum(s, n, 1.0f, m1);
            mx[r] = m1;
            attn_accum(o[r], alpha, s, vb + a * row_bytes, row_bytes, n, D, type);
        }
    for (int64_t r = 0; r < nb; r++) kgt_scale(o[r], D, l[r] > 0.0f ? 1.0f / l[r] : 0.0f);
}

/* prefill: M tokens at positions pos0.. (token i sees 0..pos0+i, clamped
 * to the cache; with window > 0 from pos0+i-window+1 on) */
KG_INLINE void attn_rows(void *const *p, int ith, int nth, int64_t M, int64_t n_head, int64_t n_head_kv, int64_t D,
                         int64_t n_ctx, int64_t type, int64_t pos0, double scale_arg, int64_t window)
{
    const float *Q = p[0];
    const char *Kc = p[1], *Vc = p[2];
    float *O = p[3];
    const int64_t G = n_head / n_head_kv, per_kv = M * G;
    const int64_t row_bytes = kgt_kv_row_bytes(type, D), kv_bytes = n_ctx * row_bytes;
    const float scale = (float)(scale_arg != 0.0 ? scale_arg : 1.0 / sqrt((double)D));
    int64_t lo, hi;
    kgt_split(n_head_kv * per_kv, 1, ith, nth, &lo, &hi);
    for (int64_t u = lo; u < hi;) {
        const int64_t g = u / per_kv, first = u % per_kv;
        int64_t nb = hi - u < per_kv - first ? hi - u : per_kv - first;
        nb = nb < KGT_ATTN_QB ? nb : KGT_ATTN_QB;
        const float *q[KGT_ATTN_QB];
        float *o[KGT_ATTN_QB];
        int64_t lo[KGT_ATTN_QB], len[KGT_ATTN_QB];
        for (int64_t r = 0; r < nb; r++) {
            const int64_t m = (first + r) / G, h = g * G + (first + r) % G, n = pos0 + m + 1, w = n - window;
            q[r] = Q + (m * n_head + h) * D;
            o[r] = O + (m * n_head + h) * D;
            len[r] = n < 0 ? 0 : n < n_ctx ? n : n_ctx;
            lo[r] = window > 0 && w > 0 ? w : 0;
        }
        attn_block(q, o, lo, len, nb, Kc + g * kv_bytes, Vc + g * kv_bytes, row_bytes, D, type, scale);
        u += nb;
    }
}

/* ── decode (kgt_attn_decode): flash-decoding ──
 * One token, so the work is the cache: each KV head's visible positions
 * [lo, n) go in chunks, on a grid of C positions from 0 (C from n - lo
 * alone: dec_chunk_len), and a work unit is a (KV head, chunk) pair with
 * all the KV head's query heads (KGT_ATTN_QB at a time): per tile of the
 * chunk, the K rows are converted to f32 once (into a buffer that stays in
 * L1) for every head's scores, and each V row is loaded (and converted)
 * once for every head's accumulation; the next tile is prefetched
 * meanwhile. A head's part over its chunk is an
 * online softmax as attn_block's, giving (o unnormalized, max m, sum l);
 * the parts then fold in chunk order,
 *     m' = max(m, m_c),  a = e^(m - m'),  b = e^(m_c - m'),
 *     l = a l + b l_c,   o = a o + b o_c,
 * from (m, l, o) = (-inf, 0, 0), and out = o / l. A head's arithmetic
 * depends on n_kv and window only (the chunk grid, the tiles within a
 * chunk, the fold order; the heads that share a pass are fixed by the
 * group), never on the thread count. */

/* the chunk length for positions [lo, n): KGT_ATTN_CHUNK times the least
 * k >= 1 that leaves at most KGT_ATTN_NCH chunks (n - lo <= (NCH - 1) C) */
KG_INLINE int64_t dec_chunk_len(int64_t lo, int64_t n)
{
    const int64_t per = (int64_t)KGT_ATTN_CHUNK * (KGT_ATTN_NCH - 1), k = (n - lo + per - 1) / per;
    return KGT_ATTN_CHUNK * (k > 1 ? k : 1);
}

/* The sums of the lanes of a[0..KGT_VF), as one vector (lane c: a[c]'s
 * sum; a is overwritten): log2(KGT_VF) rounds of adding adjacent lane pairs
 * of two vectors at a time, which keeps the order (a fixed tree). */
#if KGT_VF == 16
#define DEC_EV 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define DEC_OD 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#elif KGT_VF == 8
#define DEC_EV 0, 2, 4, 6, 8, 10, 12, 14
#define DEC_OD 1, 3, 5, 7, 9, 11, 13, 15
#else
#define DEC_EV 0, 2, 4, 6
#define DEC_OD 1, 3, 5, 7
#endif
KG_INLINE kgt_vf dec_hsums(kgt_vf *a)
{
    for (int w = KGT_VF / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++)
            a[i] = __builtin_shufflevector(a[2 * i], a[2 * i + 1], DEC_EV) +
                   __builtin_shufflevector(a[2 * i], a[2 * i + 1], DEC_OD);
    return a[0];
}
#undef DEC_EV
#undef DEC_OD

/* s[j] = scale q·k_j for the n keys of a tile (rows rb bytes apart from
 * kt), KGT_VF keys at a time: a vector accumulator per key, reduced
 * together by dec_hsums. s has room for n rounded up to KGT_VF. */
KG_INLINE void dec_scores(const float *q, const char *kt, int64_t rb, int64_t n, int64_t D, int64_t type, float scale,
                          float *s)
{
    for (int64_t j = 0; j < n; j += KGT_VF) {
        const char *k[KGT_VF];
        kgt_vf a[KGT_VF], qv;
        const int full = j + KGT_VF <= n; /* then the rows are kt + (j + c) rb: constant offsets */
        for (int c = 0; c < KGT_VF; c++) {
            k[c] = kt + (full ? j + c : j + c < n ? j + c : n - 1) * rb; /* past n: the last key again (dropped) */
            a[c] = kgt_vsplat(0.0f);
        }
        int64_t d = 0;
        for (; d + KGT_VF <= D; d += KGT_VF) {
            qv = kgt_vload(q + d);
            for (int c = 0; c < KGT_VF; c++) a[c] += qv * kgt_vload_t(k[c], d, type);
        }
        if (d < D) {
            qv = kgt_vload_part(q + d, D - d, 0.0f);
            for (int c = 0; c < KGT_VF; c++) a[c] += qv * kgt_vload_t_part(k[c], d, D - d, type);
        }
        kgt_vstore(s + j, dec_hsums(a) * scale);
    }
}

/* o_r = alpha[r] o_r + sum_j p_r[j] v_j for nr heads (o[r]; p_r at p + r
 * ps) over the n V rows of a tile at vt. Whole vectors of o go DEC_NACC
 * accumulators at a time (heads times vectors: the heads share each V
 * load, and their chains of dependent adds interleave), the rest (D not a
 * multiple of KGT_VF) a head at a time. A head's arithmetic is the same
 * whichever heads share its pass: acc = alpha o, then acc += p_j v_j in
 * the order of j. */
enum { DEC_NACC = 16 };
KG_INLINE void dec_accum(float *const *o, const float *alpha, const float *p, int64_t ps, int64_t nr, const char *vt,
                         int64_t rb, int64_t n, int64_t D, int64_t type, const char *pk, const char *pv, int64_t npf)
{
    const int64_t nvec = D / KGT_VF;
    for (int64_t d0 = 0; d0 < nvec; d0 += DEC_NACC) {
        const int64_t nv = nvec - d0 < DEC_NACC ? nvec - d0 : DEC_NACC, ha = DEC_NACC / nv;
        for (int64_t r0 = 0; r0 < nr; r0 += ha) {
            const int64_t nh = nr - r0 < ha ? nr - r0 : ha;
            kgt_vf acc[DEC_NACC];
            for (int64_t h = 0; h < nh; h++)
                for (int64_t k = 0; k < nv; k++)
                    acc[h * nv + k] = kgt_vload(o[r0 + h] + (d0 + k) * KGT_VF) * alpha[r0 + h];
            for (int64_t j = 0; j < n; j++) {
                if (r0 == 0 && j < npf) /* the next tile's rows j, while this one computes */
                    for (int64_t b = 0; b < rb; b += 64)
                        __builtin_prefetch(pk + j * rb + b, 0, 3), __builtin_prefetch(pv + j * rb + b, 0, 3);
                kgt_vf v[DEC_NACC];
                for (int64_t k = 0; k < nv; k++) v[k] = kgt_vload_t(vt + j * rb, (d0 + k) * KGT_VF, type);
                for (int64_t h = 0; h < nh; h++)
                    for (int64_t k = 0; k < nv; k++) acc[h * nv + k] += p[(r0 + h) * ps + j] * v[k];
            }
            for (int64_t h = 0; h < nh; h++)
                for (int64_t k = 0; k < nv; k++) kgt_vstore(o[r0 + h] + (d0 + k) * KGT_VF, acc[h * nv + k]);
        }
    }
    const int64_t d = nvec * KGT_VF;
    if (d < D)
        for (int64_t r = 0; r < nr; r++) {
            kgt_vf a = kgt_vload_part(o[r] + d, D - d, 0.0f) * alpha[r];
            for (int64_t j = 0; j < n; j++) a += p[r * ps + j] * kgt_vload_t_part(vt + j * rb, d, D - d, type);
            kgt_vstore_part(o[r] + d, D - d, a);
        }
}

/* nr query heads (q rows D apart) over a tile of n positions: per head the
 * scores, the online softmax's step (m, l) and p_j in place of the scores;
 * then every head's o */
KG_INLINE void dec_tile(const float *q, float *const *o, float *m, float *l, int64_t nr, const char *kt, int64_t krb,
                        int64_t ktype, const char *vt, int64_t rb, int64_t type, int64_t n, int64_t D, float scale,
                        float *s, const char *pk, const char *pv, int64_t npf)
{
    enum { SS = KGT_ATTN_KT + KGT_VF };
    float alpha[KGT_ATTN_QB];
    for (int64_t r = 0; r < nr; r++) {
        float *sr = s + r * SS;
        dec_scores(q + r * D, kt, krb, n, D, ktype, scale, sr);
        float m1 = kgt_max_scaled(sr, n, 1.0f);
        m1 = m1 > m[r] ? m1 : m[r];
        alpha[r] = kgt_expf(m[r] - m1); /* 0 on the first tile */
        l[r] = alpha[r] * l[r] + kgt_exp_sum(sr, n, 1.0f, m1);
        m[r] = m1;
    }
    dec_accum(o, alpha, s, SS, nr, vt, rb, n, D, type, pk, pv, npf);
}

/* rows [0, n) of a tile (rb bytes apart, D elements of `type`) as f32 rows
 * of D at f */
KG_INLINE void dec_convert(float *f, const char *t, int64_t rb, int64_t n, int64_t D, int64_t type)
{
    for (int64_t j = 0; j < n; j++) {
        int64_t d = 0;
        for (; d + KGT_VF <= D; d += KGT_VF) kgt_vstore(f + j * D + d, kgt_vload_t(t + j * rb, d, type));
        if (d < D) kgt_vstore_part(f + j * D + d, D - d, kgt_vload_t_part(t + j * rb, d, D - d, type));
    }
}

/* The part of nr query heads (q rows D apart) over positions [a, e) of the
 * KV head whose K and V rows start at kb and vb: o[r] (unnormalized), m[r],
 * l[r]. Tiles of T positions from a: with a cache of f16 or Q8_0 (and D at
 * most KGT_ATTN_TBUF), T = min(KGT_ATTN_KT, KGT_ATTN_TBUF / D) and each
 * tile's K rows are first converted to f32 (exact); else T = KGT_ATTN_KT,
 * K read in place. Rows up to n_pf (the KV head's last visible position)
 * are prefetched a tile ahead, across the chunk's end. */
KG_INLINE void dec_part(const float *q, float *const *o, float *m, float *l, int64_t nr, int64_t a, int64_t e,
                        int64_t n_pf, const char *kb, const char *vb, int64_t rb, int64_t D, int64_t type, float scale)
{
    kgt_vf sv[KGT_ATTN_QB * (KGT_ATTN_KT / KGT_VF + 1)]; /* dec_tile's scores, KGT_ATTN_KT + KGT_VF per head */
    float *s = (float *)sv;
    for (int64_t r = 0; r < nr; r++) {
        m[r] = -__builtin_inff(), l[r] = 0.0f;
        memset(o[r], 0, (size_t)D * sizeof(float));
    }
    if (type == KGT_F32 || D > KGT_ATTN_TBUF) {
        for (int64_t t0 = a; t0 < e; t0 += KGT_ATTN_KT) {
            const int64_t n = e - t0 < KGT_ATTN_KT ? e - t0 : KGT_ATTN_KT;
            const int64_t t1 = t0 + KGT_ATTN_KT, npf = n_pf - t1 < KGT_ATTN_KT ? n_pf - t1 : KGT_ATTN_KT;
            dec_tile(q, o, m, l, nr, kb + t0 * rb, rb, type, vb + t0 * rb, rb, type, n, D, scale, s, kb + t1 * rb,
                     vb + t1 * rb, npf);
        }
        return;
    }
    const int64_t T = KGT_ATTN_TBUF / D < KGT_ATTN_KT ? KGT_ATTN_TBUF / D : KGT_ATTN_KT;
    kgt_vf kbv[KGT_ATTN_TBUF / KGT_VF];
    float *kf = (float *)kbv;
    for (int64_t t0 = a; t0 < e; t0 += T) {
        const int64_t n = e - t0 < T ? e - t0 : T;
        dec_convert(kf, kb + t0 * rb, rb, n, D, type);
        const int64_t t1 = t0 + T, npf = n_pf - t1 < T ? n_pf - t1 : T;
        dec_tile(q, o, m, l, nr, (const char *)kf, D * 4, KGT_F32, vb + t0 * rb, rb, type, n, D, scale, s, kb + t1 * rb,
                 vb + t1 * rb, npf);
    }
}

/* (m, l, o) <- its fold with a part (mc, lc, oc) */
KG_INLINE void dec_fold(float *o, float *m, float *l, const float *oc, float mc, float lc, int64_t D)
{
    const float m1 = mc > *m ? mc : *m, a = kgt_expf(*m - m1), b = kgt_expf(mc - m1);
    *l = a * *l + b * lc;
    *m = m1;
    int64_t d = 0;
    for (; d + KGT_VF <= D; d += KGT_VF) kgt_vstore(o + d, kgt_vload(o + d) * a + kgt_vload(oc + d) * b);
    if (d < D) kgt_vstore_part(o + d, D - d, kgt_vload_part(o + d, D - d, 0.0f) * a + kgt_vload_part(oc + d, D - d, 0.0f) * b);
}

KG_KERNEL void kgt_attn_decode(void *const *p, int ith, int nth, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                               int64_t n_ctx, int64_t cache_type, double scale, int64_t window)
{
    const float *Q = p[0];
    const char *Kc = p[1], *Vc = p[2];
    float *O = p[3], *S = p[5];
    const int64_t D = head_dim, G = n_head / n_head_kv, rb = kgt_kv_row_bytes(cache_type, D), kv_bytes = n_ctx * rb;
    const int64_t PF = kgt_attn_part_floats(D);
    const float sc = (float)(scale != 0.0 ? scale : 1.0 / sqrt((double)D));
    const int64_t nkv = *(const int64_t *)p[4], n = nkv < 0 ? 0 : nkv < n_ctx ? nkv : n_ctx;
    const int64_t lo = window > 0 && n - window > 0 ? n - window : 0;
    const int64_t C = dec_chunk_len(lo, n), c0 = lo / C, nch = n > 0 ? (n - 1) / C - c0 + 1 : 0;
    int64_t u0, u1;
    if (S && p[6]) { /* the second call: merge each query head's parts */
        if (nch <= 1) return;
        kgt_split(n_head, 1, ith, nth, &u0, &u1);
        for (int64_t h = u0; h < u1; h++) {
            float *o = O + h * D, m = -__builtin_inff(), l = 0.0f;
            memset(o, 0, (size_t)D * sizeof(float));
            for (int64_t c = 0; c < nch; c++) {
                const float *pc = S + ((h / G * KGT_ATTN_NCH + c) * G + h % G) * PF;
                dec_fold(o, &m, &l, pc, pc[D], pc[D + 1], D);
            }
            kgt_scale(o, D, l > 0.0f ? 1.0f / l : 0.0f);
        }
        return;
    }
    if (n == 0) {
        kgt_split(n_head, 1, ith, nth, &u0, &u1);
        if (u1 > u0) memset(O + u0 * D, 0, (size_t)((u1 - u0) * D) * sizeof(float));
        return;
    }
    const int split = S && nch > 1;
    const int64_t per = split ? nch : 1; /* units per KV head */
    kgt_split(n_head_kv * per, 1, ith, nth, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t g = u / per, c = u % per;
        const int64_t a = split && (c0 + c) * C > lo ? (c0 + c) * C : lo;
        const int64_t e = split && (c0 + c + 1) * C < n ? (c0 + c + 1) * C : n;
        for (int64_t h0 = 0; h0 < G; h0 += KGT_ATTN_QB) {
            const int64_t nr = G - h0 < KGT_ATTN_QB ? G - h0 : KGT_ATTN_QB;
            float *o[KGT_ATTN_QB], m[KGT_ATTN_QB], l[KGT_ATTN_QB];
            for (int64_t r = 0; r < nr; r++)
                o[r] = split ? S + ((g * KGT_ATTN_NCH + c) * G + h0 + r) * PF : O + (g * G + h0 + r) * D;
            dec_part(Q + (g * G + h0) * D, o, m, l, nr, a, e, n, Kc + g * kv_bytes, Vc + g * kv_bytes, rb, D, cache_type,
                     sc);
            for (int64_t r = 0; r < nr; r++)
                if (split) o[r][D] = m[r], o[r][D + 1] = l[r];
                else kgt_scale(o[r], D, l[r] > 0.0f ? 1.0f / l[r] : 0.0f); /* the one part: out = o / l */
        }
    }
}
KG_PARAM_DEFAULT_F(attn_decode, scale, 0.0);
KG_PARAM_DEFAULT(attn_decode, window, 0);

KG_KERNEL void kgt_attn_prefill(void *const *p, int ith, int nth, int64_t M, int64_t n_head, int64_t n_head_kv,
                                int64_t head_dim, int64_t n_ctx, int64_t cache_type, double scale, int64_t window)
{
    attn_rows(p, ith, nth, M, n_head, n_head_kv, head_dim, n_ctx, cache_type, *(const int64_t *)p[4], scale, window);
}
KG_PARAM_DEFAULT_F(attn_prefill, scale, 0.0);
KG_PARAM_DEFAULT(attn_prefill, window, 0);

/* ── the encoder's attention (kgt_attn_enc) ──
 * Every valid row of a sequence sees the same keys 0..len-1, so a tile of
 * query rows can be held across the vector lanes, one row per lane: with
 * Q transposed once per tile (qt[d], pre-scaled), the scores of key j are
 * the vector sum_d qt[d] * k_j[d] (a broadcast FMA per dimension, no
 * horizontal sums); the online softmax per row is lane by lane (running
 * max and sum as vectors); and the output, transposed (ot[d]), gains
 * p_j * v_j[d] likewise. Keys go by tiles of KGT_ATTN_KT (scores of ENC_NJ
 * keys at a time in registers), ot by ENC_DC dimensions at a time; only Q
 * in and O out are transposed, once per tile of rows. Lanes past the
 * sequence's last row compute a copy of it and are not stored. Each row's
 * arithmetic is its lane's, whatever the tile's other rows, so the result
 * does not depend on the thread count. head_dim a multiple of ENC_DC up
 * to ENC_TD; other head sizes take attn_block's path (8 rows per tile,
 * keys by rows). */
enum { ENC_TD = 256, ENC_DC = 16, ENC_NJ = 8 };

/* rows i0..i0+nb-1 (nb <= KGT_VF) of the sequence whose QKV rows start at
 * X (ld floats apart; head h's q, k, v at hq, hq + D, hq + 2D) into O
 * (rows D apart), attending to rows 0..len-1 */
KG_INLINE void enc_tile(const float *X, float *O, int64_t ld, int64_t D, int64_t hq, int64_t i0, int64_t nb, int64_t len,
                        int64_t hd, float scale)
{
    enum { KT = KGT_ATTN_KT };
    kgt_vf qt[ENC_TD], ot[ENC_TD], s[KT];
    float t[KGT_VF];
    for (int64_t d = 0; d < hd; d++) {
        for (int r = 0; r < KGT_VF; r++) t[r] = X[(i0 + (r < nb ? r : nb - 1)) * ld + hq + d];
        qt[d] = kgt_vload(t) * scale;
        ot[d] = kgt_vsplat(0.0f);
    }
    const float *kb = X + hq + D, *vb = X + hq + 2 * D;
    kgt_vf mx = kgt_vsplat(-__builtin_inff()), l = kgt_vsplat(0.0f);
    for (int64_t t0 = 0; t0 < len; t0 += KT) {
        const int64_t n = len - t0 < KT ? len - t0 : KT;
        for (int64_t j0 = 0; j0 < n; j0 += ENC_NJ) {
            const float *kr[ENC_NJ];
            kgt_vf acc[ENC_NJ];
            for (int c = 0; c < ENC_NJ; c++) {
                kr[c] = kb + (t0 + (j0 + c < n ? j0 + c : n - 1)) * ld; /* past n: the last key again (dropped) */
                acc[c] = kgt_vsplat(0.0f);
            }
            for (int64_t d = 0; d < hd; d++)
                for (int c = 0; c < ENC_NJ; c++) acc[c] += qt[d] * kr[c][d];
            for (int c = 0; c < ENC_NJ && j0 + c < n; c++) s[j0 + c] = acc[c];
        }
        kgt_vf m1 = mx, sum = kgt_vsplat(0.0f);
        for (int64_t j = 0; j < n; j++) m1 = kgt_vmax(m1, s[j]);
        const kgt_vf alpha = kgt_vexp(mx - m1); /* 0 on the first tile (e^-inf) */
        for (int64_t j = 0; j < n; j++) {
            s[j] = kgt_vexp(s[j] - m1);
            sum += s[j];
        }
        l = alpha * l + sum;
        mx = m1;
        for (int64_t d0 = 0; d0 < hd; d0 += ENC_DC) {
            kgt_vf a[ENC_DC];
            for (int c = 0; c < ENC_DC; c++) a[c] = ot[d0 + c] * alpha;
            for (int64_t j = 0; j < n; j++) {
                const float *vr = vb + (t0 + j) * ld + d0;
                for (int c = 0; c < ENC_DC; c++) a[c] += s[j] * vr[c];
            }
            for (int c = 0; c < ENC_DC; c++) ot[d0 + c] = a[c];
        }
    }
    const kgt_vf rl = 1.0f / l;
    for (int64_t d = 0; d < hd; d++) {
        kgt_vstore(t, ot[d] * rl);
        for (int64_t r = 0; r < nb; r++) O[(i0 + r) * D + hq + d] = t[r];
    }
}

/* Work items: per sequence b, per head h, its tiles of valid query rows
 * (KGT_VF rows for enc_tile, KGT_ATTN_QB for attn_block), in the order
 * (b, h, tile), split evenly between threads. Padded rows are zeroed by
 * the threads' shares of the B*L rows. */
KG_KERNEL void kgt_attn_enc(void *const *p, int ith, int nth, int64_t B, int64_t L, int64_t n_head, int64_t head_dim,
                            double scale)
{
    const float *QKV = p[0];
    const int32_t *lens = p[1];
    float *O = p[2];
    const int64_t D = n_head * head_dim, ld = 3 * D;
    const int lanes = head_dim % ENC_DC == 0 && head_dim <= ENC_TD;
    const int64_t QB = lanes ? KGT_VF : KGT_ATTN_QB;
    const float sc = (float)(scale != 0.0 ? scale : 1.0 / sqrt((double)head_dim));
#define ENC_LEN(b) (lens[b] < 0 ? 0 : lens[b] > L ? L : (int64_t)lens[b])
    int64_t lo, hi, total = 0;
    kgt_split(B * L, 1, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++)
        if (r % L >= ENC_LEN(r / L)) memset(O + r * D, 0, (size_t)D * sizeof(float));
    for (int64_t b = 0; b < B; b++) total += n_head * ((ENC_LEN(b) + QB - 1) / QB);
    kgt_split(total, 1, ith, nth, &lo, &hi);
    for (int64_t b = 0, u = 0; b < B && u < hi; b++) {
        const int64_t len = ENC_LEN(b), nt = (len + QB - 1) / QB, cnt = n_head * nt;
        const float *X = QKV + b * L * ld;
        for (int64_t it = lo > u ? lo - u : 0; it < cnt && u + it < hi; it++) {
            const int64_t h = it / nt, i0 = it % nt * QB, nb = len - i0 < QB ? len - i0 : QB;
            if (lanes) {
                enc_tile(X, O + b * L * D, ld, D, h * head_dim, i0, nb, len, head_dim, sc);
                continue;
            }
            const float *q[KGT_ATTN_QB];
            float *o[KGT_ATTN_QB];
            int64_t rlo[KGT_ATTN_QB], rlen[KGT_ATTN_QB];
            for (int64_t r = 0; r < nb; r++) {
                q[r] = X + (i0 + r) * ld + h * head_dim;
                o[r] = O + (b * L + i0 + r) * D + h * head_dim;
                rlo[r] = 0, rlen[r] = len;
            }
            const float *kb = X + D + h * head_dim;
            attn_block(q, o, rlo, rlen, nb, (const char *)kb, (const char *)(kb + D), ld * 4, head_dim, KGT_F32, sc);
        }
        u += cnt;
    }
#undef ENC_LEN
}
KG_PARAM_DEFAULT_F(attn_enc, scale, 0.0);
