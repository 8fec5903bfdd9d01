/*
 * test_mm_bf16.c — kgt_mm over F16 and BF16 weights in the x16b layout
 * (gen/layout.c's rewriting into bf16 pairs, read by mm_x16.h's
 * mm_tile_x16b: vdpbf16ps where the native build has AVX512-BF16, portable
 * C in kernels_portable.c's build), and kgt_embed over the same table.
 *
 * The reference is independent of both: each weight and activation rounded
 * to bf16 by arithmetic (frexp, rint to 8 significant bits: nearest even),
 * their products summed in double (ref_kernels.c's ref_mm). The kernel's
 * products of two bf16 are exact in f32; what differs is the f32
 * accumulation, at most about K f32 roundings of the running sum, so
 * tolerance (K + 16) 2^-24 sum |w x| per output.
 */
#include "kt.h"
#include "ref_kernels.h"
#include "rt.h"
#include "gen/layout.h"
#include "templates/cpu/products.h"

#include <fenv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_portable.h"

static uint64_t rng;
static float unif(void) /* xorshift64*: [-1, 1) */
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (float)((rng * 2685821657736338717ull) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static void *xcalloc(size_t n)
{
    void *p = calloc(n ? n : 1, 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

/* f rounded to 8 significant bits, ties to even (bf16's value) */
static float bf16_round(float f)
{
    if (f == 0 || !isfinite(f)) return f;
    int e;
    const double m = frexp((double)f, &e); /* f = m 2^e, 0.5 <= |m| < 1 */
    return (float)ldexp(nearbyint(ldexp(m, 8)), e - 8);
}

/* n weights of `type` (F16 or BF16): the values v rounded to it */
static uint8_t *weights(int type, const float *v, int64_t n)
{
    uint16_t *w = xcalloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++) {
        if (type == KGT_F16) {
            _Float16 h = (_Float16)v[i];
            memcpy(&w[i], &h, 2);
        } else {
            const float r = bf16_round(v[i]);
            uint32_t u;
            memcpy(&u, &r, 4);
            w[i] = (uint16_t)(u >> 16);
        }
    }
    return (uint8_t *)w;
}

static uint8_t *rewrite(int layout, int type, const uint8_t *w, int64_t N, int64_t K)
{
    const uint64_t rb = (uint64_t)ref_row_bytes(type, K);
    uint8_t *out = xcalloc((size_t)(rb * (uint64_t)N));
    for (int64_t r0 = 0; r0 < N; r0 += 16) {
        const uint8_t *rows[16];
        for (int i = 0; i < 16; i++) rows[i] = w + (uint64_t)(r0 + i) * rb;
        gen_layout_write(layout, type, K, rows, rb, out + (uint64_t)r0 * rb);
    }
    return out;
}

/* the bf16 value of every weight: its stored value (ref's f16 or bf16
 * conversion) rounded to bf16 */
static float *bf16_values(int type, const uint8_t *w, int64_t n)
{
    float *f = xcalloc((size_t)n * sizeof *f);
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, w + 2 * i, 2);
        f[i] = bf16_round(type == KGT_F16 ? ref_f16(h) : ref_bf16(h));
    }
    return f;
}

typedef KT_MM_DECL(mm_fn);

/* one product in one build, nth 1 and 2 (and amx as given), against ref */
static void check_one(const char *who, mm_fn *mm, int type, int64_t N, int64_t K, int64_t M, int flags, int amx)
{
    float *wv = xcalloc((size_t)(N * K) * sizeof *wv), *uv = xcalloc((size_t)(N * K) * sizeof *uv);
    float *x = xcalloc((size_t)(M * K) * sizeof *x), *bias = xcalloc((size_t)N * sizeof *bias);
    float *res = xcalloc((size_t)(M * N) * sizeof *res);
    for (int64_t i = 0; i < N * K; i++) wv[i] = unif(), uv[i] = unif();
    for (int64_t i = 0; i < M * K; i++) x[i] = 4 * unif();
    for (int64_t i = 0; i < N; i++) bias[i] = unif();
    for (int64_t i = 0; i < M * N; i++) res[i] = unif();
    uint8_t *w = weights(type, wv, N * K), *u = weights(type, uv, N * K);
    uint8_t *wx = rewrite(KGT_LAYOUT_X16B, type, w, N, K), *ux = rewrite(KGT_LAYOUT_X16B, type, u, N, K);
    float *wb = bf16_values(type, w, N * K), *ub = bf16_values(type, u, N * K);
    float *xb = xcalloc((size_t)(M * K) * sizeof *xb), *y = xcalloc((size_t)(M * N) * sizeof *y);
    for (int64_t i = 0; i < M * K; i++) xb[i] = bf16_round(x[i]);
    double *yt = xcalloc((size_t)(M * N) * sizeof *yt), *mag = xcalloc((size_t)(M * N) * sizeof *mag);
    ref_mm(wb, ub, xb, bias, res, M, N, K, flags, yt, mag);
    for (int nth = 1; nth <= 2; nth++) {
        void *p[6] = {wx, x, y, bias, res, ux};
        memset(y, 0, (size_t)(M * N) * sizeof *y);
        for (int ith = 0; ith < nth; ith++) /* M 21: chunks of 16 channels, tiles of 6 rows; M 64: tiles of 8 */
            mm(p, ith, nth, type, KGT_ACT_F32, M, N, K, flags, 0, KGT_LAYOUT_X16B, amx, 2048, 262144, M == 21 ? 16 : 32,
               M == 21 ? 6 : M == 64 ? 8 : 4);
        int bad = 0;
        double worst = 0;
        for (int64_t i = 0; i < M * N; i++) {
            const double e = fabs(y[i] - yt[i]), tol = (double)(K + 16) * 0x1p-24 * mag[i] + 1e-30;
            worst = e / tol > worst ? e / tol : worst;
            if (!(e <= tol) && bad++ < 3)
                kt_fail(__FILE__, __LINE__, "%s %s N %lld K %lld M %lld flags %d nth %d amx %d: y[%lld][%lld] %.9g, ref %.9g (tol %.3g)",
                        who, type == KGT_F16 ? "F16" : "BF16", (long long)N, (long long)K, (long long)M, flags, nth,
                        amx, (long long)(i / N), (long long)(i % N), y[i], yt[i], tol);
        }
        if (worst > 0.5) printf("    %s N %lld K %lld M %lld: error %.2f of the tolerance\n", who, (long long)N, (long long)K, (long long)M, worst);
    }
    free(wv), free(uv), free(x), free(bias), free(res), free(w), free(u), free(wx), free(ux);
    free(wb), free(ub), free(xb), free(y), free(yt), free(mag);
}

/* the embedding lookup of an x16b table: every row's values rounded to
 * bf16, F16's specials too (subnormals, the largest, infinities, ties) */
static void check_embed(int type)
{
    enum { N = 32, K = 66 };
    float *v = xcalloc(N * K * sizeof *v);
    for (int i = 0; i < N * K; i++) v[i] = 3 * unif();
    uint8_t *w = weights(type, v, N * K);
    static const uint16_t f16s[] = {0x0001, 0x0003, 0x02ff, 0x03ff, 0x0400, 0x7bff, 0x7c00, 0xfc00, 0x8001, 0x3c01, 0x3c04, 0x3c0c};
    for (int i = 0; type == KGT_F16 && i < (int)(sizeof f16s / sizeof *f16s); i++) memcpy(w + 2 * (17 * K + i), &f16s[i], 2);
    uint8_t *wx = rewrite(KGT_LAYOUT_X16B, type, w, N, K);
    float *ref = bf16_values(type, w, N * K), *y = xcalloc(N * K * sizeof *y);
    const int32_t ids[4] = {0, 17, 31, 5};
    for (int b = 0; b < 2; b++) {
        void *p[3] = {wx, (void *)ids, y};
        (b ? kgtp_embed : kgt_embed)(p, 0, 1, type, 4, K, 1.0, 0, KGT_F32, KGT_LAYOUT_X16B);
        int bad = 0;
        for (int m = 0; m < 4; m++)
            for (int k = 0; k < K; k++) {
                const float r = ref[ids[m] * K + k], o = y[m * K + k];
                if (memcmp(&r, &o, 4) && bad++ < 3)
                    kt_fail(__FILE__, __LINE__, "embed %s %s row %d [%d]: %.9g, expected %.9g", b ? "portable" : "native",
                            type == KGT_F16 ? "F16" : "BF16", ids[m], k, o, r);
            }
    }
    free(v), free(w), free(wx), free(ref), free(y);
}

/* The native build (vdpbf16ps where the CPU has AVX512-BF16, else the
 * portable C; on an AMX CPU also the amx=1 run of the M >= 16 cases) and
 * the portable one on the smaller shapes; M 1 (decode's 1 x 2 tile), 16,
 * 21 (a clamped last tile), 64; K 32, 66 (not a multiple of 32: the tail
 * of 2), 576; products alone and with the SwiGLU, bias and residual
 * epilogue (W_up in the same layout). Then what x16b refuses. */
KT_TEST(kernels_mm_bf16)
{
    rng = 0x9E3779B97F4A7C15ull;
    fesetround(FE_TONEAREST);
    char why[200];
    const int amx = kgr_amx_enable(why, sizeof why);
    if (!amx) printf("    AMX is not run here: %s\n", why);
    static const int64_t shapes[][2] = {{32, 16}, {66, 32}, {576, 64}}; /* (K, N) */
    static const int64_t Ms[] = {1, 16, 21, 64};
    for (int t = 0; t < 2; t++) {
        const int type = t ? KGT_BF16 : KGT_F16;
        check_embed(type);
        for (size_t si = 0; si < 3; si++)
            for (size_t mi = 0; mi < 4; mi++)
                for (int f = 0; f < 2; f++) {
                    const int64_t K = shapes[si][0], N = shapes[si][1], M = Ms[mi];
                    const int flags = f ? KGT_EPI_SWIGLU | KGT_EPI_BIAS | KGT_EPI_RESIDUAL : 0;
                    if (M == 64 && si < 2 && f) continue;
                    check_one("native", kgt_mm, type, N, K, M, flags, 0);
                    if (amx && M >= 16) check_one("native amx", kgt_mm, type, N, K, M, flags, 1);
                    if (si < 2 && M < 64) check_one("portable", kgtp_mm, type, N, K, M, flags, 0);
                }
    }
    KT_CHECK(gen_layout_fits(KGT_LAYOUT_X16B, KGT_F16, 16, 2));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16B, KGT_F16, 16, 65));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16B, KGT_BF16, 24, 64));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16B, KGT_F32, 16, 64));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16B, KGT_Q4_0, 16, 64));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16B, KGT_BF16, 0, 64));
}
