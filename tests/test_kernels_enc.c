/*
 * test_kernels_enc.c — the encoder's kernels (issue 16: BERT) against the
 * scalar double references of ref_ops.c / ref_kernels.c:
 *
 *   kernels_enc_erf        kgt_verf (through kgt_erf) against libm's erf
 *                          in double over a dense sweep of the floats
 *                          (every 7th bit pattern with 2^-8 <= |x| < 4,
 *                          a uniform grid over [-10, 10], tiny values and
 *                          the specials); kgt_gelu_erf likewise
 *   kernels_enc_mm_gelu    kgt_mm's KGT_EPI_GELU epilogue: F32, F16, BF16,
 *                          Q8_0, Q4_K, Q6_K weights, act f32 and (quantized
 *                          types) act q8, with bias, residual and the q8
 *                          output, M 1, 5, 16, MiniLM's 384 -> 1536
 *   kernels_enc_embed      kgt_embed's position and token-type tables
 *   kernels_enc_attn       kgt_attn_enc: MiniLM's 12 heads x 32 at L 128
 *                          and 256, head_dim 64 and 20, B 1 and 3 with
 *                          lengths 0, 1, 7, L and between; padded rows
 *   kernels_enc_pool       kgt_pool: every mode, with and without the norm
 *   kernels_enc_timing_report  attention's and pooling's time per call at
 *                          MiniLM's shape (printed, never asserted)
 *
 * Each case runs in three implementations: "native" (the template as the
 * tests' clang build has it, called per thread), "jit" (the instance
 * lowering would make, specialized and compiled by kgen's LLVM backend for
 * this CPU, then run from a JIT: the generator's path; for the products,
 * whose instances take a while to compile, only at M 16 with bias + GELU
 * and bias + GELU + q8 output, and the odd shapes), and for the products
 * "portable" (tests/kernels_portable.c: GCC's build, whose GELU is libm's
 * erff). The GPU stand-in runs the product cases the JIT runs. CPU implementations run with 1 and 3 threads (every ith
 * in turn on this thread: the SPMD contract), on outputs poisoned with NaN;
 * the results must be the same bits for both thread counts.
 * Each test has a gpu_enc_* twin that runs the same cases on the CUDA
 * templates (tests/kt_cuda.h: one launch of the instance; make check-gpu,
 * and the CPU stand-in under make check's ASan run); without a GPU they
 * skip, saying why. The erf sweep has no twin: on CUDA the GELU is erff
 * inside the product (checked by gpu_enc_mm_gelu).
 *
 * Tolerances (normalized error ||y - ref|| / ||ref||, as test_kernels_ops.c
 * and test_kernels_mm.c measure it, and why):
 *   erf           absolute 1e-7 (the f32 result of a value in [0.5, 1)
 *                 is within 3e-8 of erf at best; the fits add < 4e-9 and
 *                 e^x ~1 ulp; measured 6.6e-8 with FMA): the measured
 *                 maximum is printed
 *   gelu_erf      absolute 2e-7 max(1, |x|)
 *   mm + GELU     1e-5 with test_kernels_mm.c's magnitude floor, GELU's
 *                 slope (< 1.13) carried into the magnitude; act q8
 *                 against the same quantized activations (chunk dots are
 *                 exact in int32); the q8 output bit for bit the f32
 *                 output quantized
 *   embed         per element 3 f32 roundings of the terms' magnitudes
 *   attention     1e-5 (f32 dots over head_dim and sums over up to 256
 *                 keys through the online softmax; observed ~1e-7)
 *   pool          1e-6 (sums of up to 256 rows in f32)
 * Padded rows and empty sequences must be exactly zero.
 */
#include "cuda.h"
#include "gen.h"
#include "kt.h"
#include "kt_cuda.h"
#include "ref_kernels.h"
#include "ref_ops.h"
#include "templates/cpu/ops.h"
#include "templates/cpu/products.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels_portable.h"

/* ── data ── */
static uint64_t rng;

static double rng_u01(void) /* splitmix64 */
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1p-53;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

static float *rand_floats(int64_t n, double lo, double hi)
{
    float *x = xmalloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rng_u01());
    return x;
}

static float *nan_floats(int64_t n)
{
    float *x = xmalloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

static uint16_t f16_bits(float f)
{
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

static uint16_t bf16_bits(float f) /* truncation: any bf16 will do */
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

/* ||y - ref|| / max(||ref||, ||mag|| / sqrt(K)) (mag NULL: ||ref||) */
static double nerr(const float *y, const double *ref, const double *mag, int64_t n, int64_t K)
{
    double num = 0, den = 0, dm = 0;
    for (int64_t i = 0; i < n; i++) {
        num += (y[i] - ref[i]) * (y[i] - ref[i]);
        den += ref[i] * ref[i];
        if (mag) dm += mag[i] * mag[i] / (double)K;
    }
    den = den > dm ? den : dm;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ── implementations ── */
enum { IMPL_NATIVE, IMPL_JIT, IMPL_PORTABLE, IMPL_GPU };
static const char *const IMPL_NAME[] = {"native", "jit", "portable", "cuda"};

/* The instance's host function (kgen's CPU backend, specialized for its
 * parameters), compiled once per instance into one JIT for the process. */
static gen_kfn jit_fn(const gen_kinst *k)
{
    enum { MAX_FNS = 512 };
    static gen_jit *jit;
    static struct { char sym[sizeof k->sym]; gen_kfn f; } fns[MAX_FNS];
    static int nfns;
    for (int i = 0; i < nfns; i++)
        if (!strcmp(fns[i].sym, k->sym)) return fns[i].f;
    gen_target t;
    void *obj = NULL;
    size_t n;
    gen_kfn f = NULL;
    if ((!jit && gen_jit_create(&jit)) || gen_target_host(&t) || gen_compile(&t, k, 1, GEN_EMIT_OBJ, &obj, &n) ||
        gen_jit_add(jit, obj, n) || gen_jit_lookup(jit, k->sym, &f)) {
        KT_CHECKF(0, "the CPU backend on %s: %s", k->tmpl, kg_last_error());
        f = NULL;
    }
    free(obj);
    if (f && nfns < MAX_FNS) snprintf(fns[nfns].sym, sizeof fns[nfns].sym, "%s", k->sym), fns[nfns++].f = f;
    return f;
}

static int g_refused; /* cases the CUDA backend refuses (this test) */

/* Runs instance k in implementation impl with nth threads (GPU: one
 * launch, buffers of bytes[i]); native(ith, nth) is the direct template
 * call. false: nothing ran (a refusal, counted; or a failure, recorded). */
typedef void (*native_fn)(const void *ctx, int ith, int nth);

static bool run_impl(int impl, const gen_kinst *k, int64_t M, void *const *p, const size_t *bytes, int np,
                     native_fn native, const void *ctx, int nth)
{
    if (impl == IMPL_GPU) {
        gen_cuda_shape_t sh;
        if (gen_cuda_shape(k, &sh)) return g_refused++, false;
        char err[1024];
        if (ktc_run(k, M, 0, p, bytes, np, err, sizeof err) == 0) return true;
        KT_CHECKF(0, "GPU %s: %s", sh.expr, err);
        return false;
    }
    if (impl == IMPL_JIT) {
        gen_kfn f = jit_fn(k);
        if (!f) return false;
        const int64_t rt[8] = {M};
        for (int ith = 0; ith < nth; ith++) f(p, rt, ith, nth);
        return true;
    }
    for (int ith = 0; ith < nth; ith++) native(ctx, ith, nth);
    return true;
}

/* the implementations a test runs: the CPU ones, or the GPU alone */
static bool g_gpu;
static int impl_lo(void) { return g_gpu ? IMPL_GPU : IMPL_NATIVE; }
static int impl_hi(int cpu_last) { return g_gpu ? IMPL_GPU : cpu_last; }
static int nth_hi(int impl) { return impl == IMPL_GPU ? 1 : 3; }

static void gpu_cases(void (*cases)(void))
{
    char why[600];
    if (!ktc_available(why, sizeof why)) KT_SKIP("%s", why);
    g_gpu = true, g_refused = 0;
    cases();
    g_gpu = false;
    if (g_refused) printf("    %d cases skipped: the CUDA backend refuses their shapes\n", g_refused);
}

#define ENC_TEST(name)                                  \
    static void name##_cases(void);                     \
    KT_TEST(kernels_enc_##name) { name##_cases(); }     \
    KT_TEST(gpu_enc_##name) { gpu_cases(name##_cases); } \
    static void name##_cases(void)

/* Per thread count 1 and 3 (GPU: once), y reset to NaN, run, then check
 * (the caller's, returning the error) and compare bits with nth 1. */
typedef double (*check_fn)(const void *ctx, const float *y);

static double run_checked(const char *what, int impl, const gen_kinst *k, int64_t M, void *const *p,
                          const size_t *bytes, int np, native_fn native, const void *ctx, float *y, int64_t n,
                          check_fn check, double tol)
{
    float *y1 = xmalloc((size_t)n * sizeof *y1);
    double worst = 0;
    for (int nth = 1; nth <= nth_hi(impl); nth += 2) {
        for (int64_t i = 0; i < n; i++) y[i] = NAN;
        if (!run_impl(impl, k, M, p, bytes, np, native, ctx, nth)) break;
        const double e = check(ctx, y);
        KT_CHECKF(e <= tol, "%s %s nth %d: error %.3g > %.3g", IMPL_NAME[impl], what, nth, e, tol);
        worst = e > worst || e != e ? e : worst;
        if (nth == 1) memcpy(y1, y, (size_t)n * sizeof *y);
        else KT_CHECKF(!memcmp(y1, y, (size_t)n * sizeof *y), "%s %s: nth %d differs from nth 1", IMPL_NAME[impl], what, nth);
    }
    free(y1);
    return worst;
}

/* ══════════════════ erf and the exact GELU ══════════════════ */
typedef struct {
    void *p[2];
    int64_t n;
} erf_ctx;

static void erf_native(const void *c, int ith, int nth)
{
    const erf_ctx *e = c;
    kgt_erf(e->p, ith, nth, e->n);
}

/* kgt_erf over x[0..n) (chunks), the worst absolute error against libm */
static double erf_sweep(const float *x, int64_t n, float *at)
{
    float *y = xmalloc((size_t)n * sizeof *y);
    erf_ctx c = {{(void *)x, y}, n};
    erf_native(&c, 0, 1);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs(y[i] - erf((double)x[i]));
        if (e > worst || e != e) worst = e, *at = x[i];
    }
    free(y);
    return worst;
}

KT_TEST(kernels_enc_erf)
{
    enum { CH = 1 << 20 };
    float *x = xmalloc(CH * sizeof *x), at = 0, a;
    double worst = 0, e;
    int64_t n = 0, total = 0;
    /* every 7th float with 2^-8 <= |x| < 4 (both signs: 1.5e7 values) */
    uint32_t lo, hi;
    float f = 0x1p-8f;
    memcpy(&lo, &f, 4);
    f = 4.0f;
    memcpy(&hi, &f, 4);
    for (int sign = 0; sign < 2; sign++)
        for (uint32_t u = lo; u < hi; u += 7) {
            const uint32_t b = u | (uint32_t)sign << 31;
            memcpy(&x[n++], &b, 4);
            if (n == CH || u + 7 >= hi) {
                if ((e = erf_sweep(x, n, &a)) > worst || e != e) worst = e, at = a;
                total += n, n = 0;
            }
        }
    /* [-10, 10] uniformly; tiny and huge magnitudes; the specials */
    for (int64_t i = 0; i < CH; i++) x[i] = (float)(-10.0 + 20.0 * (double)i / CH);
    if ((e = erf_sweep(x, CH, &a)) > worst || e != e) worst = e, at = a;
    total += CH;
    static const float specials[] = {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-38f, 1e-20f, -3e-9f, 0.8f, -0.8f, 0.79999995f,
                                     3.92f, -3.92f, 3.9199998f, 9.0f, -1e30f, 3.4e38f, INFINITY, -INFINITY};
    const int ns = (int)(sizeof specials / sizeof specials[0]);
    if ((e = erf_sweep(specials, ns, &a)) > worst || e != e) worst = e, at = a;
    total += ns;
    printf("    erf: %lld values, max abs error %.3g (at %.9g)\n", (long long)total, worst, (double)at);
    KT_CHECKF(worst <= 1e-7, "kgt_verf: max abs error %.3g at %.9g (tolerance 1e-7)", worst, (double)at);
    /* NaN in, NaN out; odd */
    float nanv = NAN, r = 0, xs[2] = {0.3f, -0.3f}, ys[2];
    erf_ctx c = {{&nanv, &r}, 1};
    erf_native(&c, 0, 1);
    KT_CHECKF(r != r, "erf(NaN) = %g", (double)r);
    c = (erf_ctx){{xs, ys}, 2};
    erf_native(&c, 0, 1);
    KT_CHECKF(ys[0] == -ys[1], "erf(0.3) = %.9g, erf(-0.3) = %.9g", (double)ys[0], (double)ys[1]);
    /* the exact GELU */
    const int64_t m = 2000001;
    float *g = xmalloc((size_t)m * sizeof *g), *gy = xmalloc((size_t)m * sizeof *gy);
    double *ref = xmalloc((size_t)m * sizeof *ref), gw = 0;
    for (int64_t i = 0; i < m; i++) g[i] = (float)(-12.0 + 24.0 * (double)i / (double)(m - 1));
    ref_gelu_erf(g, ref, m);
    void *gp[2] = {g, gy};
    for (int nth = 1; nth <= 3; nth += 2)
        for (int ith = 0; ith < nth; ith++) kgt_gelu_erf(gp, ith, nth, m);
    for (int64_t i = 0; i < m; i++) {
        const double ex = fabs(gy[i] - ref[i]) / fmax(1.0, fabs((double)g[i]));
        if (ex > gw || ex != ex) gw = ex, at = g[i];
    }
    printf("    gelu_erf: %lld values in [-12, 12], max abs error / max(1, |x|) %.3g (at %.6g)\n", (long long)m, gw,
           (double)at);
    KT_CHECKF(gw <= 2e-7, "kgt_gelu_erf: error %.3g at %g (tolerance 2e-7 max(1, |x|))", gw, (double)at);
    free(x), free(g), free(gy), free(ref);
}

/* ══════════════════ products with the GELU epilogue ══════════════════ */

/* N rows of K of `type`: float types from uniform values in [-1, 1];
 * block types from random bytes with their f16 scales set to random
 * values of 2^-9..2^-5 (so outputs span erf's two pieces) */
static uint8_t *rand_weights(int type, int64_t N, int64_t K)
{
    const int64_t n = ref_row_bytes(type, K) * N, be = ref_block_elems(type), bb = ref_row_bytes(type, be);
    uint8_t *w = xmalloc((size_t)n);
    for (int64_t i = 0; i < n; i++) w[i] = (uint8_t)(rng_u01() * 256);
    for (int64_t i = 0; i < n / bb; i++) {
        uint8_t *b = w + i * bb;
        const float v = (float)(rng_u01() * 2 - 1);
        const uint16_t s1 = f16_bits((float)ldexp(1.0 + rng_u01(), -9 + (int)(rng_u01() * 4)));
        const uint16_t s2 = f16_bits((float)ldexp(1.0 + rng_u01(), -9 + (int)(rng_u01() * 4)));
        switch (type) {
        case KGT_F32: memcpy(b, &v, 4); break;
        case KGT_F16: { uint16_t h = f16_bits(v); memcpy(b, &h, 2); break; }
        case KGT_BF16: { uint16_t h = bf16_bits(v); memcpy(b, &h, 2); break; }
        case KGT_Q8_0: memcpy(b, &s1, 2); break;
        case KGT_Q4_K: memcpy(b, &s1, 2), memcpy(b + 2, &s2, 2); break;
        case KGT_Q6_K: memcpy(b + 208, &s1, 2); break;
        default: break;
        }
    }
    return w;
}

typedef struct {
    void *p[6];
    int type, act, flags;
    int64_t M, N, K;
    const double *ref, *mag;
    bool portable;
} mm_ctx;

static void mm_native(const void *c, int ith, int nth)
{
    const mm_ctx *m = c;
    (m->portable ? kgtp_mm : kgt_mm)(m->p, ith, nth, m->type, m->act, m->M, m->N, m->K, m->flags, 0, KGT_LAYOUT_ROWS, 0, 0, 262144, 32, 4);
}

static double mm_check(const void *c, const float *y)
{
    const mm_ctx *m = c;
    return nerr(y, m->ref, m->mag, m->M * m->N, m->K);
}

static double g_mm_worst[2]; /* act f32, act q8 */

static int mm_case(int type, int act, int64_t M, int64_t N, int64_t K, int flags, bool compiled)
{
    if (g_gpu && ktc_standin() && !compiled) return 0;
    uint8_t *w = rand_weights(type, N, K);
    float *wf = xmalloc((size_t)(N * K) * sizeof *wf), *x = rand_floats(M * K, -1, 1);
    float *bias = rand_floats(N, -2, 2), *res = rand_floats(M * N, -1, 1), *xr = x;
    for (int64_t n = 0; n < N; n++) ref_dequant_row(type, w + n * ref_row_bytes(type, K), K, wf + n * K);
    kgt_q8a *xq = NULL;
    if (act == KGT_ACT_Q8) { /* the reference sees the same quantized activations */
        xq = xmalloc((size_t)(M * K / 32) * sizeof *xq);
        xr = xmalloc((size_t)(M * K) * sizeof *xr);
        ref_quantize_q8a(x, M * K, xq);
        ref_dequant_q8a(xq, M * K, xr);
    }
    double *ref = xmalloc((size_t)(M * N) * sizeof *ref), *mag = xmalloc((size_t)(M * N) * sizeof *mag);
    ref_mm(wf, NULL, xr, bias, NULL, M, N, K, flags & KGT_EPI_BIAS, ref, mag);
    for (int64_t i = 0; i < M * N; i++) {
        const double g = ref[i];
        ref[i] = 0.5 * g * (1.0 + erf(g / sqrt(2.0)));
        mag[i] *= 1.13; /* GELU's slope is below 1.13 */
        if (flags & KGT_EPI_RESIDUAL) ref[i] += res[i], mag[i] += fabs(res[i]);
    }
    float *y = nan_floats(M * N);
    const int fflags = flags & ~KGT_EPI_OUT_Q8;
    mm_ctx c = {{w, act == KGT_ACT_Q8 ? (void *)xq : (void *)x, y, bias, res, NULL}, type, act, fflags, M, N, K, ref, mag,
                false};
    static const char *const names[] = {"wtype", "act", "M", "N", "K", "flags"};
    const size_t wb = (size_t)(N * ref_row_bytes(type, K));
    const size_t xb = act == KGT_ACT_Q8 ? (size_t)(M * K / 32) * sizeof(kgt_q8a) : (size_t)(M * K) * 4;
    const size_t bytes[6] = {wb, xb, (size_t)(M * N) * 4, (size_t)N * 4, (size_t)(M * N) * 4, 0};
    char what[128];
    snprintf(what, sizeof what, "mm type %d act %s M %lld N %lld K %lld flags %d", type, act ? "q8" : "f32",
             (long long)M, (long long)N, (long long)K, flags);
    kgt_q8a *yq = flags & KGT_EPI_OUT_Q8 ? xmalloc((size_t)(M * N / 32) * sizeof *yq) : NULL;
    kgt_q8a *yq_ref = yq ? xmalloc((size_t)(M * N / 32) * sizeof *yq) : NULL;
    for (int impl = impl_lo(); impl <= impl_hi(IMPL_PORTABLE); impl++) {
        if (impl == IMPL_JIT && !compiled) continue;
        const int64_t vals[] = {type, act, M, N, K, fflags};
        gen_kinst k = ktc_inst("mm", 6, names, vals, M > 1);
        c.portable = impl == IMPL_PORTABLE, c.flags = fflags, c.p[2] = y;
        const double e = run_checked(what, impl, &k, M, c.p, bytes, 6, mm_native, &c, y, M * N, mm_check, 1e-5);
        g_mm_worst[act] = e > g_mm_worst[act] ? e : g_mm_worst[act];
        if (!yq) continue;
        /* the q8 output: the f32 output quantized, bit for bit */
        const int64_t vq[] = {type, act, M, N, K, flags};
        k = ktc_inst("mm", 6, names, vq, M > 1);
        c.flags = flags, c.p[2] = yq;
        memset(yq, 0xff, (size_t)(M * N / 32) * sizeof *yq);
        const size_t bq[6] = {wb, xb, (size_t)(M * N / 32) * sizeof *yq, (size_t)N * 4, 0, 0};
        if (!run_impl(impl, &k, M, c.p, bq, 6, mm_native, &c, 3)) continue;
        ref_quantize_q8a(y, M * N, yq_ref);
        KT_CHECKF(!memcmp(yq, yq_ref, (size_t)(M * N / 32) * sizeof *yq), "%s %s: the q8 output is not the f32 output quantized",
                  IMPL_NAME[impl], what);
    }
    free(w), free(wf), free(x), free(bias), free(res), free(xq), free(ref), free(mag), free(y), free(yq), free(yq_ref);
    if (xr != x) free(xr);
    return 1;
}

ENC_TEST(mm_gelu)
{
    rng = 21;
    static const int types[] = {KGT_F32, KGT_F16, KGT_BF16, KGT_Q8_0, KGT_Q4_K, KGT_Q6_K};
    static const int flags[] = {KGT_EPI_BIAS | KGT_EPI_GELU, KGT_EPI_GELU, KGT_EPI_BIAS | KGT_EPI_GELU | KGT_EPI_RESIDUAL,
                                KGT_EPI_BIAS | KGT_EPI_GELU | KGT_EPI_OUT_Q8};
    static const int64_t Ms[] = {1, 5, 16};
    int cases = 0;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const int ty = types[t], quant = ref_block_elems(ty) > 1;
        const int64_t K = ref_block_elems(ty) == 256 ? 512 : 384; /* MiniLM's 384 -> 1536 (K-quants: 512) */
        for (int act = 0; act <= quant; act++)
            for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++)
                for (size_t m = 0; m < sizeof Ms / sizeof Ms[0]; m++)
                    cases += mm_case(ty, act, Ms[m], f ? 96 : 1536, K, flags[f], m == 2 && (f == 0 || f == 3));
        if (!quant) cases += mm_case(ty, KGT_ACT_F32, 3, 33, 45, KGT_EPI_BIAS | KGT_EPI_GELU, true); /* odd K, N */
    }
    printf("    mm gelu: %d cases, worst error act f32 %.2g, act q8 %.2g (tolerance 1e-5)\n", cases, g_mm_worst[0],
           g_mm_worst[1]);
    g_mm_worst[0] = g_mm_worst[1] = 0;
}

/* ══════════════════ embedding with position and token-type rows ══════════════════ */
typedef struct {
    void *p[5];
    int type;
    int64_t M, K, pos_len, pos_type;
    double scale;
    const double *ref, *mag;
} emb_ctx;

static void emb_native(const void *c, int ith, int nth)
{
    const emb_ctx *e = c;
    kgt_embed(e->p, ith, nth, e->type, e->M, e->K, e->scale, e->pos_len, e->pos_type, KGT_LAYOUT_ROWS);
}

/* the largest |y - ref| / (3 ulp of the terms' magnitude) */
static double emb_check(const void *c, const float *y)
{
    const emb_ctx *e = c;
    double worst = 0;
    for (int64_t i = 0; i < e->M * e->K; i++) {
        const double r = fabs(y[i] - e->ref[i]) / (3 * 0x1p-24 * e->mag[i] + 1e-30);
        worst = r > worst || r != r ? r : worst;
    }
    return worst;
}

static double pos_value(const uint8_t *t, int64_t i, int64_t type)
{
    uint16_t h;
    if (type == KGT_F32) {
        float f;
        memcpy(&f, t + 4 * i, 4);
        return f;
    }
    memcpy(&h, t + 2 * i, 2);
    return type == KGT_F16 ? ref_f16_value(h) : ref_bf16(h);
}

ENC_TEST(embed)
{
    rng = 22;
    static const struct { int type; int64_t pos_type, pos_len, M, K; double scale; } cs[] = {
        {KGT_F32, KGT_F32, 128, 256, 384, 1.0}, {KGT_F16, KGT_F16, 128, 128, 384, 1.0}, {KGT_F32, KGT_BF16, 7, 21, 384, 1.0},
        {KGT_Q8_0, KGT_F32, 7, 15, 64, 2.5},    {KGT_BF16, KGT_F16, 1, 3, 37, 1.0},     {KGT_Q4_K, KGT_F16, 5, 5, 256, 1.0},
    };
    int cases = 0;
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++, cases++) {
        const int64_t M = cs[ci].M, K = cs[ci].K, pl = cs[ci].pos_len, pt = cs[ci].pos_type, rows = 50;
        const int64_t es = pt == KGT_F32 ? 4 : 2;
        uint8_t *table = rand_weights(cs[ci].type, rows, K), *P = xmalloc((size_t)((pl + 3) * K * es)), *T = xmalloc((size_t)(K * es));
        int32_t *ids = xmalloc((size_t)M * 4);
        for (int64_t m = 0; m < M; m++) ids[m] = (int32_t)(rng_u01() * rows);
        for (int64_t i = 0; i < (pl + 3) * K; i++) { /* 3 rows past pos_len: never read */
            const float v = (float)(rng_u01() * 2 - 1);
            const uint16_t h = pt == KGT_F16 ? f16_bits(v) : bf16_bits(v);
            if (pt == KGT_F32) memcpy(P + 4 * i, &v, 4);
            else memcpy(P + 2 * i, &h, 2);
        }
        for (int64_t i = 0; i < K; i++) {
            const float v = (float)(rng_u01() - 0.5);
            const uint16_t h = pt == KGT_F16 ? f16_bits(v) : bf16_bits(v);
            if (pt == KGT_F32) memcpy(T + 4 * i, &v, 4);
            else memcpy(T + 2 * i, &h, 2);
        }
        double *ref = xmalloc((size_t)(M * K) * sizeof *ref), *mag = xmalloc((size_t)(M * K) * sizeof *mag);
        float *row = xmalloc((size_t)K * sizeof *row);
        for (int64_t m = 0; m < M; m++) {
            ref_dequant_row(cs[ci].type, table + ids[m] * ref_row_bytes(cs[ci].type, K), K, row);
            for (int64_t k = 0; k < K; k++) {
                const double w = (double)row[k] * cs[ci].scale, t = pos_value(T, k, pt), p = pos_value(P, (m % pl) * K + k, pt);
                ref[m * K + k] = w + t + p;
                mag[m * K + k] = fabs(w) + fabs(t) + fabs(p);
            }
        }
        float *y = nan_floats(M * K);
        emb_ctx c = {{table, ids, y, P, T}, cs[ci].type, M, K, pl, pt, cs[ci].scale, ref, mag};
        static const char *const names[] = {"wtype", "M", "K", "pos_len", "pos_type"};
        const int64_t vals[] = {cs[ci].type, M, K, pl, pt};
        const size_t bytes[5] = {(size_t)(rows * ref_row_bytes(cs[ci].type, K)), (size_t)M * 4, (size_t)(M * K) * 4,
                                 (size_t)(pl * K * es), (size_t)(K * es)};
        char what[96];
        snprintf(what, sizeof what, "embed type %d pos_type %lld pos_len %lld M %lld K %lld", cs[ci].type, (long long)pt,
                 (long long)pl, (long long)M, (long long)K);
        for (int impl = impl_lo(); impl <= impl_hi(IMPL_JIT); impl++) {
            gen_kinst k = ktc_inst("embed", 5, names, vals, M > 1);
            ktc_param_f(&k, "scale", cs[ci].scale);
            run_checked(what, impl, &k, M, c.p, bytes, 5, emb_native, &c, y, M * K, emb_check, 1.0);
        }
        free(table), free(P), free(T), free(ids), free(ref), free(mag), free(row), free(y);
    }
    printf("    embed with tables: %d cases, each element within 3 f32 roundings of its terms\n", cases);
}

/* ══════════════════ encoder attention ══════════════════ */
typedef struct {
    void *p[3];
    int64_t B, L, nh, hd;
    double scale;
    const double *ref;
} att_ctx;

static void att_native(const void *c, int ith, int nth)
{
    const att_ctx *a = c;
    kgt_attn_enc(a->p, ith, nth, a->B, a->L, a->nh, a->hd, a->scale);
}

/* the normalized error; a padded row's nonzero (or NaN) element: NaN */
static double att_check(const void *c, const float *y)
{
    const att_ctx *a = c;
    const int32_t *lens = a->p[1];
    const int64_t D = a->nh * a->hd;
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t i = lens[b] < 0 ? 0 : lens[b]; i < a->L; i++)
            for (int64_t d = 0; d < D; d++)
                if (y[(b * a->L + i) * D + d] != 0.0f) return NAN;
    return nerr(y, a->ref, NULL, a->B * a->L * D, 1);
}

static double g_att_worst;

static void att_case(int64_t B, int64_t L, int64_t nh, int64_t hd, const int32_t *lens, double scale)
{
    const int64_t D = nh * hd, n = B * L * D;
    float *qkv = rand_floats(B * L * 3 * D, -2, 2), *y = nan_floats(n);
    int32_t *ln = xmalloc((size_t)B * 4);
    memcpy(ln, lens, (size_t)B * 4);
    double *ref = xmalloc((size_t)n * sizeof *ref);
    ref_attn_enc(qkv, ln, ref, B, L, nh, hd, scale);
    att_ctx c = {{qkv, ln, y}, B, L, nh, hd, scale, ref};
    static const char *const names[] = {"B", "L", "n_head", "head_dim"};
    const int64_t vals[] = {B, L, nh, hd};
    const size_t bytes[3] = {(size_t)(B * L * 3 * D) * 4, (size_t)B * 4, (size_t)n * 4};
    char what[96];
    snprintf(what, sizeof what, "attn_enc B %lld L %lld heads %lld x %lld lens %d.. scale %g", (long long)B, (long long)L,
             (long long)nh, (long long)hd, lens[0], scale);
    for (int impl = impl_lo(); impl <= impl_hi(IMPL_JIT); impl++) {
        gen_kinst k = ktc_inst("attn_enc", 4, names, vals, false);
        if (scale != 0) ktc_param_f(&k, "scale", scale);
        const double e = run_checked(what, impl, &k, B * L, c.p, bytes, 3, att_native, &c, y, n, att_check, 1e-5);
        g_att_worst = e > g_att_worst || e != e ? e : g_att_worst;
    }
    free(qkv), free(y), free(ln), free(ref);
}

ENC_TEST(attn)
{
    rng = 23;
    const int32_t l1[] = {128, 0, 77}, l2[] = {1}, l3[] = {7, 3, 1}, l4[] = {256, 129}, l5[] = {-5, 1000},
                  l6[] = {9, 5}, l7[] = {128};
    att_case(3, 128, 12, 32, l1, 0.0); /* MiniLM */
    att_case(1, 128, 12, 32, l2, 0.0);
    att_case(1, 128, 12, 32, l7, 0.0);
    att_case(3, 7, 2, 64, l3, 0.0);
    att_case(2, 256, 12, 32, l4, 0.0);
    att_case(2, 40, 3, 64, l5, 0.2); /* lengths clamped to [0, L] */
    att_case(2, 9, 2, 20, l6, 0.0);  /* head_dim 20: the CPU's only */
    att_case(1, 33, 2, 128, (const int32_t[]){31}, 0.0);
    printf("    attn_enc: 8 shapes, worst normalized error %.2g (tolerance 1e-5)\n", g_att_worst);
    g_att_worst = 0;
}

/* ══════════════════ pooling ══════════════════ */
typedef struct {
    void *p[3];
    int64_t B, L, K, mode, norm;
    const double *ref;
} pool_ctx;

static void pool_native(const void *c, int ith, int nth)
{
    const pool_ctx *q = c;
    kgt_pool(q->p, ith, nth, q->B, q->L, q->K, q->mode, q->norm);
}

/* the normalized error; an empty sequence's nonzero element: NaN */
static double pool_check(const void *c, const float *y)
{
    const pool_ctx *q = c;
    const int32_t *lens = q->p[1];
    for (int64_t b = 0; b < q->B; b++)
        for (int64_t k = 0; lens[b] <= 0 && k < q->K; k++)
            if (y[b * q->K + k] != 0.0f) return NAN;
    return nerr(y, q->ref, NULL, q->B * q->K, 1);
}

ENC_TEST(pool)
{
    rng = 24;
    static const struct { int64_t B, L, K; int32_t lens[3]; } cs[] = {
        {3, 128, 384, {128, 0, 5}}, {1, 7, 13, {7}}, {2, 256, 384, {1, 200}}, {3, 9, 100, {-1, 9, 12}},
    };
    int cases = 0;
    double worst = 0;
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++)
        for (int mode = 0; mode < 4; mode++)
            for (int norm = 0; norm <= 1; norm++, cases++) {
                const int64_t B = cs[ci].B, L = cs[ci].L, K = cs[ci].K;
                float *x = rand_floats(B * L * K, -1.5, 1), *y = nan_floats(B * K);
                int32_t *ln = xmalloc((size_t)B * 4);
                memcpy(ln, cs[ci].lens, (size_t)B * 4);
                double *ref = xmalloc((size_t)(B * K) * sizeof *ref);
                ref_pool(x, ln, ref, B, L, K, mode, norm);
                pool_ctx c = {{x, ln, y}, B, L, K, mode, norm, ref};
                static const char *const names[] = {"B", "L", "K", "mode", "norm"};
                const int64_t vals[] = {B, L, K, mode, norm};
                const size_t bytes[3] = {(size_t)(B * L * K) * 4, (size_t)B * 4, (size_t)(B * K) * 4};
                char what[96];
                snprintf(what, sizeof what, "pool B %lld L %lld K %lld mode %d norm %d", (long long)B, (long long)L,
                         (long long)K, mode, norm);
                for (int impl = impl_lo(); impl <= impl_hi(IMPL_JIT); impl++) {
                    gen_kinst k = ktc_inst("pool", 5, names, vals, false);
                    const double e = run_checked(what, impl, &k, B, c.p, bytes, 3, pool_native, &c, y, B * K, pool_check, 1e-6);
                    worst = e > worst || e != e ? e : worst;
                }
                free(x), free(y), free(ln), free(ref);
            }
    printf("    pool: %d cases, worst normalized error %.2g (tolerance 1e-6)\n", cases, worst);
}

/* ══════════════════ timing (printed, never asserted) ══════════════════ */
typedef struct {
    gen_kfn f;
    void *const *p;
    const int64_t *rt;
    int ith, nth, reps;
} tjob;

static void *tjob_run(void *a)
{
    const tjob *j = a;
    for (int r = 0; r < j->reps; r++) j->f(j->p, j->rt, j->ith, j->nth);
    return NULL;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ms per call of f with nth threads (nth 2: a second thread; the calls of
 * one rep are not synchronized, so this is the time of reps calls split in
 * two, a bound on the synchronized time) */
static double time_ms(gen_kfn f, void *const *p, int nth, int reps)
{
    const int64_t rt[8] = {0};
    tjob j0 = {f, p, rt, 0, nth, reps}, j1 = {f, p, rt, 1, nth, reps};
    tjob_run(&(tjob){f, p, rt, 0, 1, 1}); /* warm */
    const double t0 = now_s();
    pthread_t th;
    const bool two = nth == 2 && pthread_create(&th, NULL, tjob_run, &j1) == 0;
    tjob_run(&j0);
    if (two) pthread_join(th, NULL);
    else if (nth == 2) tjob_run(&j1);
    return (now_s() - t0) * 1e3 / reps;
}

KT_TEST(kernels_enc_timing_report)
{
    rng = 25;
    const int64_t L = 128, nh = 12, hd = 32, D = nh * hd;
    for (int64_t B = 1; B <= 32; B += 31) {
        float *qkv = rand_floats(B * L * 3 * D, -2, 2), *y = xmalloc((size_t)(B * L * D) * 4);
        float *pooled = xmalloc((size_t)(B * D) * 4);
        int32_t *lens = xmalloc((size_t)B * 4);
        for (int64_t b = 0; b < B; b++) lens[b] = (int32_t)L;
        static const char *const an[] = {"B", "L", "n_head", "head_dim"}, *const pn[] = {"B", "L", "K", "mode", "norm"};
        const int64_t av[] = {B, L, nh, hd}, pv[] = {B, L, D, KGT_POOL_MEAN, 1};
        gen_kinst ka = ktc_inst("attn_enc", 4, an, av, false), kp = ktc_inst("pool", 5, pn, pv, false);
        gen_kfn fa = jit_fn(&ka), fp = jit_fn(&kp);
        void *pa[3] = {qkv, lens, y}, *pp[3] = {y, lens, pooled};
        if (fa && fp) {
            const int reps = B == 1 ? 20 : 2;
            const double a1 = time_ms(fa, pa, 1, reps), a2 = time_ms(fa, pa, 2, reps);
            const double p1 = time_ms(fp, pp, 1, 50), p2 = time_ms(fp, pp, 2, 50);
            const double flop = 4.0 * (double)B * nh * L * L * hd;
            printf("    MiniLM attention B %lld x L %lld (12 x 32 heads, all rows valid): %.3f ms (1 thread, %.1f GFLOP/s), "
                   "%.3f ms (2 threads)\n",
                   (long long)B, (long long)L, a1, flop / a1 * 1e-6, a2);
            printf("    MiniLM pool (mean + norm) B %lld x L %lld x 384: %.4f ms (1 thread), %.4f ms (2 threads)\n",
                   (long long)B, (long long)L, p1, p2);
            /* half the rows padding: the attention skips them */
            for (int64_t b = 0; b < B; b++) lens[b] = (int32_t)(L / 2);
            printf("    the same attention, every sequence 64 of 128 rows: %.3f ms (1 thread)\n", time_ms(fa, pa, 1, reps));
        }
        free(qkv), free(y), free(pooled), free(lens);
    }
}
