/*
 * attn.c — causal attention of new tokens over the KV cache, grouped-query
 * heads, f32, f16 or Q8_0 cache. Contracts in ops.h.
 *
 * ── Prefill (kgt_attn_prefill) ──
 * Decode has its own formulation (flash-decoding: the next section).
 * The work units are the (KV head, token, query head in the group)
 * triples, in that order, split between threads so that each sees about
 * as many positions (causal rows grow in length); a thread takes its units
 * in blocks of up to ATTN_ROWS rows (two vectors' lanes) that share a KV
 * head (the query heads of a group, then the next token's), one row per
 * vector lane (attn_block), and walks the block over one tile of K and V
 * at a time, so each tile is read from memory and converted to f32 once
 * for all the block's rows.
 *
 * A block walks the cache in tiles of KGT_ATTN_KT positions with an online
 * softmax (as in flash attention): per row a running max mx and sum l; per
 * tile and row, the scores s_j = (scale q)·k_j of the positions the row
 * sees, then
 *     mx' = max(mx, max_j s_j),  alpha = e^(mx - mx'),
 *     p_j = e^(s_j - mx'),  l = alpha l + sum_j p_j,  o = alpha o + sum_j p_j v_j
 * and at the end o /= l.
 *
 * A row sees the positions [lo, len): lo = 0, or with a sliding window W
 * the window's first position p - W + 1 (p the row's position). The tiles
 * lie on one grid, multiples of KGT_ATTN_KT from 0; a block's tiles run
 * from the tile of its rows' smallest lo to their largest len (tiles
 * wholly before every row's window are not read), and a row's positions
 * outside its [lo, len) weigh exactly 0. Each row's arithmetic (its lane,
 * on the fixed grid) does not depend on which rows share its block, so the
 * result does not depend on the thread count.
 */
#include "ops.h"

#include <math.h>

/* n rows of D elements of `type` (row_bytes apart from rows) as f32 rows,
 * *ld floats apart: an f32 cache's rows themselves, others converted into
 * buf (n * D floats). */
KG_INLINE const float *attn_f32_rows(const char *rows, int64_t row_bytes, int64_t n, int64_t D, int64_t type,
                                     float *buf, int64_t *ld)
{
    if (type == KGT_F32) {
        *ld = row_bytes / (int64_t)sizeof(float);
        return (const float *)rows;
    }
    for (int64_t j = 0; j < n; j++) {
        int64_t d = 0;
        for (; d + KGT_VF <= D; d += KGT_VF) kgt_vstore(buf + j * D + d, kgt_vload_t(rows + j * row_bytes, d, type));
        if (d < D) kgt_vstore_part(buf + j * D + d, D - d, kgt_vload_t_part(rows + j * row_bytes, d, D - d, type));
    }
    *ld = D;
    return buf;
}

/* A block's register tiles: ATTN_ACC accumulators, sized to the vector
 * registers (16 below AVX-512, 32 with it) with room for the operands. With
 * R vectors of query rows (ATTN_RV at most), the scores go ATTN_ACC / R keys
 * at a time, the output ATTN_ACC / R dimensions at a time: per step, R + NJ
 * loads (broadcasts) for R * NJ FMAs. */
#if KGT_VF == 16
enum { ATTN_ACC = 24, ATTN_RV = 2 };
#else
enum { ATTN_ACC = 12, ATTN_RV = 2 };
#endif
#define ATTN_ROWS (ATTN_RV * KGT_VF)   /* the rows of a block, at most */
#define ATTN_DC (ATTN_ACC / ATTN_RV) /* output dimensions per chunk at R = ATTN_RV */

/* ot[c][v] = alpha[v] ot[c][v] + sum_j s[j][v] vf[j][c] for the nd (<=
 * ATTN_ACC / R) dimensions c of a chunk, in registers across the n keys
 * (V rows ld floats apart); a constant nd unrolls */
KG_INLINE void attn_out_chunk(kgt_vf *ot, const kgt_vf *alpha, const kgt_vf *s, const float *vf, int64_t ld, int64_t n,
                              int64_t nd, const int R)
{
    kgt_vf acc[ATTN_ACC];
    for (int c = 0; c < nd; c++)
        for (int v = 0; v < R; v++) acc[c * R + v] = ot[c * R + v] * alpha[v];
    for (int64_t j = 0; j < n; j++)
        for (int c = 0; c < nd; c++)
            for (int v = 0; v < R; v++) acc[c * R + v] += s[j * R + v] * vf[j * ld + c];
    for (int c = 0; c < nd; c++)
        for (int v = 0; v < R; v++) ot[c * R + v] = acc[c * R + v];
}

/* nb (<= R KGT_VF) rows, one per vector lane of R vectors: query q[r],
 * output o[r], attending to positions lo[r]..len[r]-1 of the KV head whose
 * K and V rows start at kb and vb (D elements of `type` each, row_bytes
 * apart: consecutive in a cache, a fused QKV row's width for the encoder).
 * Q is transposed once (qt[d]: dimension d of every row, pre-scaled), so
 * the scores of key j are the vectors sum_d qt[d] k_j[d] (broadcast FMAs,
 * no horizontal sums), the online softmax runs lane by lane (max and sum
 * as vectors), and the transposed output ot[d] gains p_j v_j[d] likewise.
 * Each tile's K rows (NJ at a time) and V rows are converted to f32 once
 * for all the lanes. Positions no lane sees are not read. A lane sees the
 * positions of its row only: the others' scores are -inf, so their weights
 * are exactly 0 and leave its max, sum and output as they were (tiles
 * before its first visible one leave them at their start, -FLT_MAX, 0, 0),
 * as if the lane had skipped them. Lanes past nb compute a copy of the
 * last row and are not stored. R is a constant (attn_block picks it). */
KG_INLINE void attn_block_r(const float *const *q, float *const *o, const int64_t *lo, const int64_t *len, int64_t nb,
                            const char *kb, const char *vb, int64_t row_bytes, int64_t D, int64_t type, float scale,
                            const int R)
{
    enum { KT = KGT_ATTN_KT };
    const int NJ = ATTN_ACC / R, DC = ATTN_ACC / R;
    kgt_vf qt[D * R], ot[D * R], s[KT * R], mx[ATTN_RV], l[ATTN_RV], alpha[ATTN_RV];
    float t[KGT_VF], kbuf[ATTN_ACC * D], vbuf[KT * D];
    kgt_vi vlo[ATTN_RV], vlen[ATTN_RV];
    int64_t lo_min = INT64_MAX, lo_max = 0, len_min = INT64_MAX, len_max = 0;
    for (int v = 0; v < R; v++) {
        for (int i = 0; i < KGT_VF; i++) {
            const int64_t r = v * KGT_VF + i < nb ? v * KGT_VF + i : nb - 1;
            vlo[v][i] = (int32_t)lo[r], vlen[v][i] = (int32_t)len[r];
            lo_min = lo[r] < lo_min ? lo[r] : lo_min, lo_max = lo[r] > lo_max ? lo[r] : lo_max;
            len_min = len[r] < len_min ? len[r] : len_min, len_max = len[r] > len_max ? len[r] : len_max;
        }
        mx[v] = kgt_vsplat(-__FLT_MAX__), l[v] = kgt_vsplat(0.0f);
    }
    for (int64_t d = 0; d < D; d++)
        for (int v = 0; v < R; v++) {
            for (int i = 0; i < KGT_VF; i++) t[i] = q[v * KGT_VF + i < nb ? v * KGT_VF + i : nb - 1][d];
            qt[d * R + v] = kgt_vload(t) * scale;
            ot[d * R + v] = kgt_vsplat(0.0f);
        }
    for (int64_t t0 = lo_min / KT * KT; t0 < len_max; t0 += KT) {
        /* the positions [a, a + n) of the tile that some lane sees */
        const int64_t a = t0 > lo_min ? t0 : lo_min, n = (len_max < t0 + KT ? len_max : t0 + KT) - a;
        for (int64_t j0 = 0; j0 < n; j0 += NJ) {
            const int64_t nj = n - j0 < NJ ? n - j0 : NJ;
            int64_t ld;
            const float *kf = attn_f32_rows(kb + (a + j0) * row_bytes, row_bytes, nj, D, type, kbuf, &ld);
            const float *kr[ATTN_ACC];
            kgt_vf acc[ATTN_ACC];
            for (int c = 0; c < NJ; c++) kr[c] = kf + (c < nj ? c : nj - 1) * ld; /* past nj: the last key again */
            for (int c = 0; c < NJ * R; c++) acc[c] = kgt_vsplat(0.0f);
            for (int64_t d = 0; d < D; d++)
                for (int c = 0; c < NJ; c++)
                    for (int v = 0; v < R; v++) acc[c * R + v] += qt[d * R + v] * kr[c][d];
            for (int c = 0; c < NJ && c < nj; c++)
                for (int v = 0; v < R; v++) s[(j0 + c) * R + v] = acc[c * R + v];
        }
        if (a < lo_max || a + n > len_min) /* some lane does not see them all */
            for (int64_t j = 0; j < n; j++) {
                const kgt_vi jv = (kgt_vi){0} + (int32_t)(a + j);
                for (int v = 0; v < R; v++)
                    s[j * R + v] = kgt_vsel((jv >= vlo[v]) & (jv < vlen[v]), s[j * R + v], kgt_vsplat(-__builtin_inff()));
            }
        for (int v = 0; v < R; v++) {
            kgt_vf m1 = mx[v], sum = kgt_vsplat(0.0f);
            for (int64_t j = 0; j < n; j++) m1 = kgt_vmax(m1, s[j * R + v]);
            alpha[v] = kgt_vexp(mx[v] - m1); /* 0 on a lane's first tile: e^(-FLT_MAX - m1) */
            for (int64_t j = 0; j < n; j++) {
                s[j * R + v] = kgt_vexp(s[j * R + v] - m1);
                sum += s[j * R + v];
            }
            l[v] = alpha[v] * l[v] + sum;
            mx[v] = m1;
        }
        int64_t ld;
        const float *vf = attn_f32_rows(vb + a * row_bytes, row_bytes, n, D, type, vbuf, &ld);
        /* chunks of DC, then of ATTN_DC (DC's divisor), then the rest:
         * which dimensions fall in the rest (a loop, not unrolled code,
         * where the compiler may fuse multiplies and adds otherwise, as
         * it does under the sanitizers) does not depend on R */
        int64_t d0 = 0;
        for (; d0 + DC <= D; d0 += DC) attn_out_chunk(ot + d0 * R, alpha, s, vf + d0, ld, n, DC, R);
        for (; d0 + ATTN_DC <= D; d0 += ATTN_DC) attn_out_chunk(ot + d0 * R, alpha, s, vf + d0, ld, n, ATTN_DC, R);
        if (d0 < D) attn_out_chunk(ot + d0 * R, alpha, s, vf + d0, ld, n, D - d0, R);
    }
    for (int v = 0; v < R; v++) {
        const kgt_vf rl = kgt_vsel(l[v] > 0.0f, 1.0f / l[v], kgt_vsplat(0.0f));
        for (int64_t d = 0; d < D; d++) {
            kgt_vstore(t, ot[d * R + v] * rl);
            for (int64_t i = 0; i < KGT_VF && v * KGT_VF + i < nb; i++) o[v * KGT_VF + i][d] = t[i];
        }
    }
}

/* nb (<= ATTN_ROWS) rows: one vector of lanes where they fit in one */
KG_INLINE void attn_block(const float *const *q, float *const *o, const int64_t *lo, const int64_t *len, int64_t nb,
                          const char *kb, const char *vb, int64_t row_bytes, int64_t D, int64_t type, float scale)
{
    if (nb <= KGT_VF)
        attn_block_r(q, o, lo, len, nb, kb, vb, row_bytes, D, type, scale, 1);
    else
        attn_block_r(q, o, lo, len, nb, kb, vb, row_bytes, D, type, scale, ATTN_RV);
}

/* the positions [*lo, *len) that token m of a prefill sees: 0..pos0+m,
 * clamped to the cache; with window > 0 from pos0+m-window+1 on */
KG_INLINE void attn_row_span(int64_t m, int64_t pos0, int64_t n_ctx, int64_t window, int64_t *lo, int64_t *len)
{
    const int64_t n = pos0 + m + 1, w = n - window;
    *len = n < 0 ? 0 : n < n_ctx ? n : n_ctx;
    *lo = window > 0 && w > 0 ? w : 0;
}

/* prefill: M tokens at positions pos0.. */
KG_INLINE void attn_rows(void *const *p, int ith, int nth, int64_t M, int64_t n_head, int64_t n_head_kv, int64_t D,
                         int64_t n_ctx, int64_t type, int64_t pos0, double scale_arg, int64_t window)
{
    const float *Q = p[0];
    const char *Kc = p[1], *Vc = p[2];
    float *O = p[3];
    const int64_t G = n_head / n_head_kv, per_kv = M * G, units = n_head_kv * per_kv;
    const int64_t row_bytes = kgt_kv_row_bytes(type, D), kv_bytes = n_ctx * row_bytes;
    const float scale = (float)(scale_arg != 0.0 ? scale_arg : 1.0 / sqrt((double)D));
    /* the thread's units: causal rows differ in length, so the split evens
     * out the positions seen (plus a tile's worth per row for its fixed
     * costs), not the count */
    int64_t total = 0, lo = units, hi = units, acc = 0, a, e;
    for (int64_t m = 0; m < M; m++) {
        attn_row_span(m, pos0, n_ctx, window, &a, &e);
        total += (e > a ? e - a : 0) + KGT_ATTN_KT;
    }
    total *= n_head_kv * G;
    for (int64_t u = 0; u < units; u++) {
        if (lo == units && acc * nth >= total * ith) lo = u;
        if (acc * nth >= total * (ith + 1)) {
            hi = u;
            break;
        }
        attn_row_span(u % per_kv / G, pos0, n_ctx, window, &a, &e);
        acc += (e > a ? e - a : 0) + KGT_ATTN_KT;
    }
    for (int64_t u = lo; u < hi;) {
        const int64_t g = u / per_kv, first = u % per_kv;
        int64_t nb = hi - u < per_kv - first ? hi - u : per_kv - first;
        nb = nb < ATTN_ROWS ? nb : ATTN_ROWS;
        const float *q[ATTN_ROWS];
        float *o[ATTN_ROWS];
        int64_t rlo[ATTN_ROWS], rlen[ATTN_ROWS];
        for (int64_t r = 0; r < nb; r++) {
            const int64_t m = (first + r) / G, h = g * G + (first + r) % G;
            q[r] = Q + (m * n_head + h) * D;
            o[r] = O + (m * n_head + h) * D;
            attn_row_span(m, pos0, n_ctx, window, &rlo[r], &rlen[r]);
        }
        attn_block(q, o, rlo, rlen, nb, Kc + g * kv_bytes, Vc + g * kv_bytes, row_bytes, D, type, scale);
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
 * Every valid row of a sequence sees the same keys 0..len-1: attn_block
 * with the fused QKV rows as the cache (f32, a row's width apart). Work
 * items: per sequence b, per head h, its tiles of ATTN_ROWS valid query rows,
 * in the order (b, h, tile), split evenly between threads. Padded rows are
 * zeroed by the threads' shares of the B*L rows. */
KG_KERNEL void kgt_attn_enc(void *const *p, int ith, int nth, int64_t B, int64_t L, int64_t n_head, int64_t head_dim,
                            double scale)
{
    const float *QKV = p[0];
    const int32_t *lens = p[1];
    float *O = p[2];
    const int64_t D = n_head * head_dim, ld = 3 * D;
    const float sc = (float)(scale != 0.0 ? scale : 1.0 / sqrt((double)head_dim));
#define ENC_LEN(b) (lens[b] < 0 ? 0 : lens[b] > L ? L : (int64_t)lens[b])
    int64_t lo, hi, total = 0;
    kgt_split(B * L, 1, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++)
        if (r % L >= ENC_LEN(r / L)) memset(O + r * D, 0, (size_t)D * sizeof(float));
    for (int64_t b = 0; b < B; b++) total += n_head * ((ENC_LEN(b) + ATTN_ROWS - 1) / ATTN_ROWS);
    kgt_split(total, 1, ith, nth, &lo, &hi);
    for (int64_t b = 0, u = 0; b < B && u < hi; b++) {
        const int64_t len = ENC_LEN(b), nt = (len + ATTN_ROWS - 1) / ATTN_ROWS, cnt = n_head * nt;
        const float *X = QKV + b * L * ld;
        for (int64_t it = lo > u ? lo - u : 0; it < cnt && u + it < hi; it++) {
            const int64_t h = it / nt, i0 = it % nt * ATTN_ROWS, nb = len - i0 < ATTN_ROWS ? len - i0 : ATTN_ROWS;
            const float *q[ATTN_ROWS];
            float *o[ATTN_ROWS];
            int64_t rlo[ATTN_ROWS], rlen[ATTN_ROWS];
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
