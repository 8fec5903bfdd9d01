/*
 * rope.c — rotary position embedding, modes "normal" (adjacent pairs) and
 * "neox" (halves), as GGUF / llama.cpp define them, and the KV-cache
 * append (alone, and fused with the RoPE of a Q/K/V product's output), to
 * an f32, f16 or Q8_0 cache.
 * Contracts in ops.h.
 *
 * Angles are computed in double (theta_i = pos * freq_scale * base^(-2i/n_rot)
 * / ff_i, the power as a running product from base^(-2/n_rot), ff_i the
 * optional frequency factors) and their sine and
 * cosine taken in double with libm, then rounded to f32: at position 10^4
 * an f32 angle would already be off by ~5e-4 rad. The cos/sin of a row are
 * computed once per chunk of KGT_ROPE_CHUNK pairs and used for all the heads
 * of that row the thread owns. kgt_rope_kv's optional QK-norm is
 * kgt_rmsnorm's arithmetic (ops.h kgt_rms_rstd, kgt_norm_apply) on each Q
 * and K head before its rotation.
 */
#include "ops.h"

#include <math.h>

#define KGT_ROPE_CHUNK 64 /* pairs whose cos/sin sit on the stack at once */

/* rotate pairs c0..c0+nc-1 of one head */
KG_INLINE void rope_head(float *x, const float *cs, const float *sn, int64_t c0, int64_t nc, int64_t half, int64_t mode)
{
    if (mode == KGT_ROPE_NEOX) {
        float *a = x + c0, *b = x + c0 + half;
        for (int64_t i = 0; i < nc; i++) {
            float x0 = a[i], x1 = b[i];
            a[i] = x0 * cs[i] - x1 * sn[i];
            b[i] = x0 * sn[i] + x1 * cs[i];
        }
    } else {
        float *a = x + 2 * c0;
        for (int64_t i = 0; i < nc; i++) {
            float x0 = a[2 * i], x1 = a[2 * i + 1];
            a[2 * i] = x0 * cs[i] - x1 * sn[i];
            a[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
        }
    }
}

/* cos and sin of pairs c0..c0+nc-1 at position p0 (scaled): theta_i =
 * p0 step^i / ff[i], step = base^(-2/n_rot); ff NULL: no factors */
KG_INLINE void rope_angles(double p0, double step, int64_t c0, int64_t nc, const float *ff, float *cs, float *sn)
{
    double f = c0 ? pow(step, (double)c0) : 1.0;
    for (int64_t i = 0; i < nc; i++, f *= step) {
        double theta = ff ? p0 * f / (double)ff[c0 + i] : p0 * f;
        cs[i] = (float)cos(theta);
        sn[i] = (float)sin(theta);
    }
}

KG_KERNEL void kgt_rope(void *const *p, int ith, int nth, int64_t M, int64_t n_head, int64_t head_dim, int64_t n_rot,
                        int64_t mode, double freq_base, double freq_scale, int64_t ff)
{
    const float *X = p[0], *F = ff ? (const float *)p[3] : NULL;
    const int32_t *pos = p[1];
    float *Y = p[2];
    const int64_t half = n_rot / 2;
    const double step = pow(freq_base, -2.0 / (double)n_rot); /* base^(-2/n_rot) */
    int64_t lo, hi;
    kgt_split(M * n_head, 1, ith, nth, &lo, &hi);
    for (int64_t u = lo; u < hi;) {
        /* heads h0..h1-1 of token m are this thread's */
        int64_t m = u / n_head, h0 = u % n_head;
        int64_t h1 = hi - u < n_head - h0 ? h0 + (hi - u) : n_head;
        double p0 = (double)pos[m] * freq_scale;
        if (Y != X) /* out of place: the row first, then rotated in Y */
            memcpy(Y + (m * n_head + h0) * head_dim, X + (m * n_head + h0) * head_dim,
                   (size_t)((h1 - h0) * head_dim) * sizeof(float));
        for (int64_t c0 = 0; c0 < half; c0 += KGT_ROPE_CHUNK) {
            int64_t nc = half - c0 < KGT_ROPE_CHUNK ? half - c0 : KGT_ROPE_CHUNK;
            float cs[KGT_ROPE_CHUNK], sn[KGT_ROPE_CHUNK];
            rope_angles(p0, step, c0, nc, F, cs, sn);
            for (int64_t h = h0; h < h1; h++)
                rope_head(Y + (m * n_head + h) * head_dim, cs, sn, c0, nc, half, mode);
        }
        u += h1 - h0;
    }
}
KG_PARAM_DEFAULT(rope, ff, 0);

/* n values (a multiple of 32) as GGUF Q8_0 blocks at dst: per block d =
 * amax / 127, stored as f16; q = x / d (as x * (1 / d)), rounded to nearest
 * even; an all-zero block d = 0, q = 0 */
KG_INLINE void kv_q8_0(char *dst, const float *x, int64_t n)
{
    for (int64_t b = 0; b < n / 32; b++, x += 32, dst += KGT_SIZE_Q8_0) {
        float amax = 0.0f;
        for (int e = 0; e < 32; e++) amax = __builtin_fmaxf(amax, __builtin_fabsf(x[e]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        const kgt_f16 dh = kgt_f32_to_f16(d);
        int8_t q[32];
        for (int e = 0; e < 32; e++) q[e] = (int8_t)__builtin_rintf(x[e] * id);
        memcpy(dst, &dh, 2);
        memcpy(dst + 2, q, 32);
    }
}

/* head_dim values of k and v into cache row `at` of KV head kv */
KG_INLINE void kv_put(char *Kc, char *Vc, const float *k, const float *v, int64_t kv, int64_t at, int64_t n_ctx,
                      int64_t head_dim, int64_t cache_type)
{
    const int64_t rb = kgt_kv_row_bytes(cache_type, head_dim);
    char *kd = Kc + (kv * n_ctx + at) * rb, *vd = Vc + (kv * n_ctx + at) * rb;
    if (cache_type == KGT_Q8_0) {
        kv_q8_0(kd, k, head_dim);
        kv_q8_0(vd, v, head_dim);
    } else if (cache_type == KGT_F16) {
        for (int64_t d = 0; d < head_dim; d++) {
            kgt_f16 a = kgt_f32_to_f16(k[d]), b = kgt_f32_to_f16(v[d]);
            memcpy(kd + 2 * d, &a, 2);
            memcpy(vd + 2 * d, &b, 2);
        }
    } else {
        memcpy(kd, k, (size_t)head_dim * 4);
        memcpy(vd, v, (size_t)head_dim * 4);
    }
}

KG_INLINE int64_t kv_row(int32_t pos, int64_t n_ctx) { return pos < 0 ? 0 : pos >= n_ctx ? n_ctx - 1 : pos; }

/* The KV-cache append alone (ops.h). */
KG_KERNEL void kgt_kv_store(void *const *p, int ith, int nth, int64_t M, int64_t n_head_kv, int64_t head_dim,
                            int64_t n_ctx, int64_t cache_type)
{
    const float *K = p[0], *V = p[1];
    const int32_t *pos = p[2];
    int64_t lo, hi;
    kgt_split(M * n_head_kv, 1, ith, nth, &lo, &hi);
    for (int64_t u = lo; u < hi; u++) {
        const int64_t m = u / n_head_kv, kv = u % n_head_kv;
        kv_put(p[3], p[4], K + u * head_dim, V + u * head_dim, kv, kv_row(pos[m], n_ctx), n_ctx, head_dim,
               cache_type);
    }
}

/* RoPE of a fused Q/K/V product's output, with the K/V cache append (ops.h). */
KG_KERNEL void kgt_rope_kv(void *const *p, int ith, int nth, int64_t M, int64_t n_head, int64_t n_head_kv,
                           int64_t head_dim, int64_t n_rot, int64_t mode, double freq_base, double freq_scale,
                           int64_t n_ctx, int64_t cache_type, int64_t ff, int64_t qk_norm, double eps)
{
    const float *QKV = p[0], *F = ff ? (const float *)p[5] : NULL;
    const float *gq = qk_norm ? (const float *)p[6] : NULL, *gk = qk_norm ? (const float *)p[7] : NULL;
    const int32_t *pos = p[1];
    float *Q = p[2];
    char *Kc = p[3], *Vc = p[4];
    const int64_t half = n_rot / 2, nh = n_head + n_head_kv, row = (n_head + 2 * n_head_kv) * head_dim;
    const double step = pow(freq_base, -2.0 / (double)n_rot);
    int64_t lo, hi;
    kgt_split(M * nh, 1, ith, nth, &lo, &hi);
    for (int64_t u = lo; u < hi;) {
        int64_t m = u / nh, h0 = u % nh;
        int64_t h1 = hi - u < nh - h0 ? h0 + (hi - u) : nh;
        const float *src = QKV + m * row;
        double p0 = (double)pos[m] * freq_scale;
        const int64_t at = kv_row(pos[m], n_ctx);
        float cs[256], sn[256]; /* this token's angles, once for all its heads (n_rot <= head_dim <= 512) */
        rope_angles(p0, step, 0, half, F, cs, sn);
        for (int64_t h = h0; h < h1; h++) {
            float x[512];
            const float *xh = src + h * head_dim;
            if (qk_norm) kgt_norm_apply(xh, h < n_head ? gq : gk, NULL, x, head_dim, 0.0f, kgt_rms_rstd(xh, head_dim, eps));
            else memcpy(x, xh, (size_t)head_dim * sizeof(float));
            rope_head(x, cs, sn, 0, half, half, mode);
            if (h < n_head) {
                memcpy(Q + (m * n_head + h) * head_dim, x, (size_t)head_dim * sizeof(float));
                continue;
            }
            const int64_t kv = h - n_head;
            kv_put(Kc, Vc, x, src + (n_head + n_head_kv + kv) * head_dim, kv, at, n_ctx, head_dim, cache_type);
        }
        u += h1 - h0;
    }
}
KG_PARAM_DEFAULT(rope_kv, ff, 0);
KG_PARAM_DEFAULT(rope_kv, qk_norm, 0);
KG_PARAM_DEFAULT_F(rope_kv, eps, 1e-6);
