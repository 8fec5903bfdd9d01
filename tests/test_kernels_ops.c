/*
 * test_kernels_ops.c — the non-product kernel templates (templates/cpu/ops.h)
 * against the double references of ref_ops.c.
 *
 * Each case runs the template with nth = 1, 2, 3 and 8 threads (every ith in
 * turn on this thread: the SPMD contract without real threads; 8 exceeds the
 * rows of most shapes, so some threads get nothing), on an output poisoned
 * with NaN (or on a fresh copy of the input, for in-place kernels), and
 * checks the normalized error ||y - ref|| / ||ref|| against a tolerance, and
 * that every thread count gives the same bits as nth = 1 (each row's
 * arithmetic must not depend on the split).
 *
 * Tolerances. The templates compute in f32, the references in double, on the
 * same f32 (or f16-decoded) inputs. One f32 rounding is 6e-8 relative; an
 * elementwise kernel (act, rope, norm's scaling) does a handful of them, plus
 * the exp polynomial (~1 ulp): 1e-6 leaves a 10x margin over the observed
 * <= 1e-7 (each test prints its worst). Reductions (norm statistics over
 * K <= 2048, softmax sums, attention's dot products over head_dim and sums
 * over up to 2048 positions through the online-softmax rescaling) add
 * roughly sqrt(terms) roundings, kept small by vector partial sums: 1e-6
 * for norms and softmax, 1e-5 for attention (observed <= 1e-6). The q8
 * output of the fused norms is checked as described at check_q8.
 *
 * Shapes: SmolLM2-135M (embed 576, 9 heads, 3 KV heads, head_dim 64, ff
 * 1536) and TinyLlama-1.1B (embed 2048, 32 heads, 4 KV heads, head_dim 64,
 * ff 5632), plus awkward ones: lengths not a multiple of the vector width
 * (1, 7, 13, 37, 101 ...), M = 1, n_kv = 1 and n_kv = n_ctx, tiles crossed
 * and cut, head_dim 20, n_rot < head_dim, multi-head (n_head = n_head_kv).
 *
 * The CUDA templates (make check-gpu): every test here with a CUDA
 * counterpart (norms, their q8 output and groups, RoPE alone (in place and
 * out of place, with and without frequency factors) and with the KV append
 * (and QK-norm), the KV append alone, attention (with windows and scales),
 * softcap, add and the gated activations) is also
 * a gpu_ops_* test that runs the same cases, references and tolerances on
 * the GPU: each call is one launch of the instance lowering would make
 * (tests/kt_cuda.h), on copies of the same buffers. Cases the CUDA backend
 * refuses at compile time (attention's head_dim not a multiple of 32, ...)
 * are counted and skipped. Softmax and the one-input activations have no
 * CUDA kernel of their own (they live inside attention and the products'
 * SwiGLU epilogue). Without a GPU the gpu_ops_* tests skip, saying why.
 */
#include "cuda.h"
#include "kt.h"
#include "kt_cuda.h"
#include "ref_ops.h"
#include "templates/cpu/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ── fixed-seed PRNG (splitmix64) ── */
static uint64_t rng;

static double rng_u01(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1p-53;
}

static float *rand_floats(int64_t n, double lo, double hi)
{
    float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    if (!x) abort();
    for (int64_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rng_u01());
    return x;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

/* ── the GPU ── */
static bool g_gpu;       /* run the cases on the GPU (the gpu_ops_* tests) */
static int g_refused;    /* cases the CUDA backend refuses, this test */

/* One launch of k on the GPU, buffers as tests/kt_cuda.h says. false when
 * nothing ran: the backend refuses the shape (counted), or the launch
 * failed (a failure recorded). */
static bool gpu_launch(const gen_kinst *k, int64_t M, int64_t n_ctx, void *const *p, const size_t *bytes, int np)
{
    gen_cuda_shape_t sh;
    if (gen_cuda_shape(k, &sh)) return g_refused++, false;
    char err[1024];
    if (ktc_run(k, M, n_ctx, p, bytes, np, err, sizeof err) == 0) return true;
    KT_CHECKF(0, "GPU %s: %s", sh.expr, err);
    return false;
}

/* runs a test's cases on the GPU, or skips */
static void gpu_cases(void (*cases)(void))
{
    char why[600];
    if (!ktc_available(why, sizeof why)) KT_SKIP("%s", why);
    g_gpu = true, g_refused = 0;
    cases();
    g_gpu = false;
    if (g_refused) printf("    %d cases skipped: the CUDA backend refuses their shapes\n", g_refused);
}

/* KT_TEST(kernels_ops_NAME) on the CPU templates and KT_TEST(gpu_ops_NAME)
 * on the CUDA ones, both running the cases that follow */
#define OPS_TEST(name)                                  \
    static void name##_cases(void);                     \
    KT_TEST(kernels_ops_##name) { name##_cases(); }     \
    KT_TEST(gpu_ops_##name) { gpu_cases(name##_cases); } \
    static void name##_cases(void)

/* ── checking ── */
static const int NTHS[] = {1, 2, 3, 8};
enum { N_NTHS = sizeof NTHS / sizeof NTHS[0] };

/* the thread counts a case runs with: the GPU's is one launch */
static int n_nths(void) { return g_gpu ? 1 : N_NTHS; }

static double worst; /* largest normalized error of the current test */

static double nerr(const float *y, const double *ref, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += (y[i] - ref[i]) * (y[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* One kernel instance: run(ctx, ith, nth) does thread ith's share (on the
 * GPU: all of it, at ith 0); false: nothing ran (see gpu_launch). */
typedef bool (*run_fn)(const void *ctx, int ith, int nth);

static bool run_all(run_fn run, const void *ctx, int nth)
{
    bool ran = true;
    for (int ith = 0; ith < nth; ith++) ran = run(ctx, ith, nth) && ran;
    return ran;
}

/* Runs `run` for every thread count on y (n floats, reset from init first:
 * NaN for pure outputs, the input for in-place kernels) and checks y
 * against ref within tol, and bitwise against the nth = 1 result. */
static void check_spmd(const char *what, run_fn run, const void *ctx, float *y, const float *init, int64_t n,
                       const double *ref, double tol)
{
    float *y1 = xmalloc((size_t)n * sizeof *y1);
    for (int t = 0; t < n_nths(); t++) {
        memcpy(y, init, (size_t)n * sizeof *y);
        if (!run_all(run, ctx, NTHS[t])) break;
        double e = nerr(y, ref, n);
        KT_CHECKF(e <= tol, "%s, nth=%d: normalized error %.3g > %.3g", what, NTHS[t], e, tol);
        if (e > worst || e != e) worst = e;
        if (t == 0) memcpy(y1, y, (size_t)n * sizeof *y);
        else KT_CHECKF(memcmp(y, y1, (size_t)n * sizeof *y) == 0, "%s: nth=%d differs from nth=1", what, NTHS[t]);
    }
    free(y1);
}

static float *nan_floats(int64_t n)
{
    float *x = xmalloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

static void report(const char *name, int cases, double tol)
{
    printf("    %s: %d cases, worst normalized error %.2g (tolerance %.0e)\n", name, cases, worst, tol);
    worst = 0;
}

/* ══════════════════ norms ══════════════════ */
typedef struct {
    void *p[4];
    int64_t M, K, flags;
    double eps;
    int rms;
    int64_t G; /* rmsnorm's groups per row */
} norm_ctx;

static bool run_norm(const void *c, int ith, int nth)
{
    const norm_ctx *n = c;
    if (g_gpu) {
        static const char *const names[] = {"M", "K", "flags", "G"};
        const int64_t vals[] = {n->M, n->K, n->flags, n->G};
        gen_kinst k = ktc_inst(n->rms ? "rmsnorm" : "layernorm", 3 + n->rms, names, vals, n->M > 1);
        ktc_param_f(&k, "eps", n->eps);
        const size_t x = (size_t)(n->M * n->G * n->K) * 4, row = (size_t)n->K * 4;
        const size_t bytes[4] = {x, row, n->flags & KGT_NORM_OUT_Q8 ? (size_t)(n->M * n->K / 32) * sizeof(kgt_q8a) : x,
                                 n->flags & KGT_NORM_BIAS ? row : 0};
        return gpu_launch(&k, n->M, 0, n->p, bytes, 4);
    }
    if (n->rms) kgt_rmsnorm(n->p, ith, nth, n->M, n->K, n->eps, n->flags, n->G);
    else kgt_layernorm(n->p, ith, nth, n->M, n->K, n->eps, n->flags);
    return true;
}

static const int64_t NORM_SHAPES[][2] = {
    {1, 576}, {7, 576}, {3, 2048}, {5, 1536}, {1, 1}, {4, 13}, {3, 37}, {2, 100}, {9, 7}, {1, 2048},
};

/* variant 0 rmsnorm, 1 layernorm, 2 layernorm + bias. x is uniform, offset
 * by 0.75 for layernorm (so the mean matters); with M >= 5 the last row is
 * all zeros (zero variance; a zero q8 block scale for rmsnorm). */
static void norm_inputs(int variant, int64_t M, int64_t K, norm_ctx *c, double *ref)
{
    float *x = rand_floats(M * K, -2.0, 2.0), *g = rand_floats(K, 0.5, 1.5), *b = rand_floats(K, -0.5, 0.5);
    for (int64_t i = 0; i < M * K; i++) x[i] = i >= (M - 1) * K && M >= 5 ? 0.0f : x[i] + (variant ? 0.75f : 0.0f);
    *c = (norm_ctx){{x, g, NULL, b}, M, K, variant == 2 ? KGT_NORM_BIAS : 0, variant == 1 ? 1e-5 : 1e-6, variant == 0, 1};
    if (variant == 0) ref_rmsnorm(x, g, ref, M, K, c->eps);
    else ref_layernorm(x, g, variant == 2 ? b : NULL, ref, M, K, c->eps);
}

static void norm_free(norm_ctx *c)
{
    free(c->p[0]);
    free(c->p[1]);
    free(c->p[3]);
}

OPS_TEST(norm)
{
    const char *names[] = {"rmsnorm", "layernorm", "layernorm+bias"};
    rng = 1;
    int cases = 0;
    for (int v = 0; v < 3; v++)
        for (size_t s = 0; s < sizeof NORM_SHAPES / sizeof NORM_SHAPES[0]; s++) {
            int64_t M = NORM_SHAPES[s][0], K = NORM_SHAPES[s][1];
            double *ref = xmalloc((size_t)(M * K) * sizeof *ref);
            norm_ctx c;
            norm_inputs(v, M, K, &c, ref);
            float *y = nan_floats(M * K), *init = nan_floats(M * K);
            c.p[2] = y;
            char what[96];
            snprintf(what, sizeof what, "%s M=%lld K=%lld", names[v], (long long)M, (long long)K);
            check_spmd(what, run_norm, &c, y, init, M * K, ref, 1e-6);
            cases++;
            /* in place (Y = X) */
            float *x0 = xmalloc((size_t)(M * K) * sizeof *x0);
            memcpy(x0, c.p[0], (size_t)(M * K) * sizeof *x0);
            c.p[2] = c.p[0];
            strcat(what, " in place");
            check_spmd(what, run_norm, &c, c.p[0], x0, M * K, ref, 1e-6);
            free(x0);
            free(y);
            free(init);
            free(ref);
            norm_free(&c);
        }
    report("norm", cases, 1e-6);
}

/* RMSNorm of G groups per row (QK-norm: G = heads, K = head_dim), each
 * group against the reference of that group alone; out of place and in
 * place. A template that normalized whole rows, or only the first group,
 * fails. */
OPS_TEST(norm_groups)
{
    static const int64_t shapes[][3] = {{1, 9, 64}, {5, 16, 128}, {3, 4, 20}, {2, 3, 256}, {7, 8, 64}, {1, 1, 96}};
    rng = 21;
    int cases = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t M = shapes[s][0], G = shapes[s][1], K = shapes[s][2], n = M * G * K;
        float *x = rand_floats(n, -2.0, 2.0), *gamma = rand_floats(K, 0.5, 1.5), *y = nan_floats(n);
        for (int64_t k = 0; M * G > 1 && k < K; k++) x[K + k] *= 8.0f; /* a group of another scale */
        double *ref = xmalloc((size_t)n * sizeof *ref);
        for (int64_t r = 0; r < M * G; r++) ref_rmsnorm(x + r * K, gamma, ref + r * K, 1, K, 1e-6);
        norm_ctx c = {{x, gamma, y, NULL}, M, K, 0, 1e-6, 1, G};
        char what[96];
        snprintf(what, sizeof what, "rmsnorm M=%lld G=%lld K=%lld", (long long)M, (long long)G, (long long)K);
        float *init = nan_floats(n);
        check_spmd(what, run_norm, &c, y, init, n, ref, 1e-6);
        c.p[2] = x; /* in place */
        memcpy(init, x, (size_t)n * sizeof *x);
        strcat(what, " in place");
        check_spmd(what, run_norm, &c, x, init, n, ref, 1e-6);
        cases += 2;
        free(x), free(gamma), free(y), free(ref), free(init);
    }
    report("norm groups", cases, 1e-6);
}

/*
 * The fused q8 output. Per block, with d_ref = amax(ref) / 127:
 *  - d within 1e-5 relative of d_ref (both are an amax of values that agree
 *    to ~1e-7, over 127);
 *  - every q equal to ref / d_ref rounded to nearest — except within 1e-3
 *    of a rounding tie, where the f32 error (<= 127 * ~1e-6 in units of d)
 *    may tip it (and the tie rule does not matter), and ±1 is allowed;
 *  - sum = sum of q, exactly;
 *  - the dequantized block within the quantization bound: ||q d - ref|| <=
 *    sqrt(sum_b 32 (d_b / 2)²) (plus 1e-6 ||ref|| of f32 error).
 * (Not checked: bit equality with quantizing the kernel's own f32 output:
 * under -ffp-contract=fast the two paths may fuse multiply-adds differently
 * and differ by an ulp. The rule itself, quants.h's kgq_quantize32, is
 * tested with the products.)
 */
static void check_q8(const char *what, const kgt_q8a *q, const double *ref, int64_t M, int64_t K)
{
    int bad_d = 0, bad_q = 0, bad_sum = 0;
    double err2 = 0, bound2 = 0, ref2 = 0;
    for (int64_t b = 0; b < M * K / 32; b++) {
        const double *r = ref + b * 32;
        double amax = 0;
        for (int i = 0; i < 32; i++) amax = fmax(amax, fabs(r[i]));
        double dref = amax / 127;
        bad_d += !(fabs(q[b].d - dref) <= 1e-5 * dref);
        int32_t sum = 0;
        for (int i = 0; i < 32; i++) {
            double t = dref > 0 ? r[i] / dref : 0, k = round(t);
            bool near_tie = fabs(fabs(t - trunc(t)) - 0.5) < 1e-3;
            bad_q += near_tie ? fabs(q[b].qs[i] - k) > 1 : q[b].qs[i] != k;
            sum += q[b].qs[i];
            err2 += (q[b].qs[i] * (double)q[b].d - r[i]) * (q[b].qs[i] * (double)q[b].d - r[i]);
            ref2 += r[i] * r[i];
        }
        bound2 += 32 * (dref / 2) * (dref / 2);
        bad_sum += sum != q[b].sum;
    }
    KT_CHECKF(!bad_d && !bad_q && !bad_sum, "%s: %d scales, %d values, %d sums off", what, bad_d, bad_q, bad_sum);
    KT_CHECKF(sqrt(err2) <= sqrt(bound2) * (1 + 1e-5) + 1e-6 * sqrt(ref2), "%s: dequantized error %.3g > bound %.3g",
              what, sqrt(err2), sqrt(bound2));
    double e = sqrt(err2 / ref2);
    worst = e > worst ? e : worst;
}

OPS_TEST(norm_q8)
{
    static const int64_t shapes[][2] = {{1, 576}, {7, 576}, {3, 2048}, {1, 32}, {5, 96}, {2, 1536}};
    const char *names[] = {"rmsnorm", "layernorm", "layernorm+bias"};
    rng = 2;
    int cases = 0;
    for (int v = 0; v < 3; v++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int64_t M = shapes[s][0], K = shapes[s][1], nb = M * K / 32;
            double *ref = xmalloc((size_t)(M * K) * sizeof *ref);
            norm_ctx c;
            norm_inputs(v, M, K, &c, ref);
            kgt_q8a *q = xmalloc((size_t)nb * sizeof *q), *q1 = xmalloc((size_t)nb * sizeof *q1);
            c.p[2] = q;
            c.flags |= KGT_NORM_OUT_Q8;
            char what[96];
            for (int t = 0; t < n_nths(); t++) {
                snprintf(what, sizeof what, "%s q8 M=%lld K=%lld nth=%d", names[v], (long long)M, (long long)K,
                         NTHS[t]);
                memset(q, 0xa5, (size_t)nb * sizeof *q);
                if (!run_all(run_norm, &c, NTHS[t])) break;
                if (t == 0) {
                    check_q8(what, q, ref, M, K);
                    memcpy(q1, q, (size_t)nb * sizeof *q);
                } else {
                    KT_CHECKF(memcmp(q, q1, (size_t)nb * sizeof *q) == 0, "%s: differs from nth=1", what);
                }
            }
            cases++;
            free(q);
            free(q1);
            free(ref);
            norm_free(&c);
        }
    printf("    norm q8: %d cases, worst normalized dequantization error %.2g (bound: half a step per value)\n",
           cases, worst);
    worst = 0;
}

/* ══════════════════ rope ══════════════════ */
typedef struct {
    void *p[4]; /* p[3]: frequency factors, or NULL */
    int64_t M, n_head, head_dim, n_rot, mode;
    double base, fscale;
} rope_ctx;

static bool run_rope(const void *c, int ith, int nth)
{
    const rope_ctx *r = c;
    if (g_gpu) { /* in place when p[0] = p[2] (one device buffer) */
        static const char *const names[] = {"M", "n_head", "head_dim", "n_rot", "mode", "ff"};
        const int64_t vals[] = {r->M, r->n_head, r->head_dim, r->n_rot, r->mode, r->p[3] != NULL};
        gen_kinst k = ktc_inst("rope", 6, names, vals, r->M > 1);
        ktc_param_f(&k, "freq_base", r->base);
        ktc_param_f(&k, "freq_scale", r->fscale);
        const size_t x = (size_t)(r->M * r->n_head * r->head_dim) * 4;
        const size_t bytes[4] = {x, (size_t)r->M * 4, x, r->p[3] ? (size_t)r->n_rot / 2 * 4 : 0};
        return gpu_launch(&k, r->M, 0, r->p, bytes, 4);
    }
    kgt_rope(r->p, ith, nth, r->M, r->n_head, r->head_dim, r->n_rot, r->mode, r->base, r->fscale, r->p[3] != NULL);
    return true;
}

OPS_TEST(rope)
{
    /* M, n_head, head_dim, n_rot, freq_base, freq_scale, max position */
    static const struct { int64_t M, nh, hd, nr; double base, fs; int maxpos; } shapes[] = {
        {5, 9, 64, 64, 100000, 1, 8192},   /* SmolLM2 q */
        {5, 3, 64, 64, 100000, 1, 8192},   /* SmolLM2 k */
        {1, 32, 64, 64, 10000, 1, 2048},   /* TinyLlama q, decode */
        {3, 4, 64, 64, 10000, 1, 2048},    /* TinyLlama k */
        {4, 2, 64, 32, 10000, 1, 4096},    /* partial rotation */
        {3, 5, 6, 4, 10000, 0.25, 100},    /* tiny heads, scaled positions */
        {2, 3, 10, 2, 500, 1, 50},         /* one pair */
        {2, 2, 256, 256, 1000000, 1, 32768}, /* two cos/sin chunks, far positions */
        {7, 1, 20, 18, 10000, 0.5, 1000},
    };
    rng = 3;
    int cases = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int v = 0; v < 4; v++) { /* mode NORM, NEOX; without and with frequency factors */
            const int mode = v & 1 ? KGT_ROPE_NEOX : KGT_ROPE_NORM, with_ff = v >> 1;
            int64_t M = shapes[s].M, n = M * shapes[s].nh * shapes[s].hd;
            /* factors as Llama 3.1's rope_freqs: 1 for the fast pairs, up to 8 for the slow */
            float *ff = with_ff ? rand_floats(shapes[s].nr / 2, 1.0, 8.0) : NULL;
            float *x = rand_floats(n, -1.0, 1.0), *y = xmalloc((size_t)n * sizeof *y);
            int32_t *pos = xmalloc((size_t)M * sizeof *pos);
            for (int64_t m = 0; m < M; m++) pos[m] = m == 0 ? 0 : (int32_t)(rng_u01() * shapes[s].maxpos);
            if (M > 1) pos[M - 1] = shapes[s].maxpos - 1;
            double *ref = xmalloc((size_t)n * sizeof *ref);
            ref_rope(x, pos, ref, M, shapes[s].nh, shapes[s].hd, shapes[s].nr, mode, shapes[s].base, shapes[s].fs, ff);
            rope_ctx c = {{y, pos, y, ff}, M, shapes[s].nh, shapes[s].hd, shapes[s].nr, mode, shapes[s].base, shapes[s].fs};
            char what[112];
            snprintf(what, sizeof what, "rope mode %d%s M=%lld heads=%lld dim=%lld rot=%lld", mode, ff ? " ff" : "",
                     (long long)M, (long long)shapes[s].nh, (long long)shapes[s].hd, (long long)shapes[s].nr);
            check_spmd(what, run_rope, &c, y, x, n, ref, 1e-6);
            /* out of place: X is left as it was, Y gets every dim (the ones past n_rot copied) */
            float *nan_init = nan_floats(n);
            c.p[0] = x;
            strncat(what, " out of place", sizeof what - strlen(what) - 1);
            check_spmd(what, run_rope, &c, y, nan_init, n, ref, 1e-6);
            free(nan_init);
            cases += 2;
            free(x);
            free(y);
            free(pos);
            free(ref);
            free(ff);
        }
    report("rope", cases, 1e-6);
}

/* rope_kv: Q rotated into its own buffer, K rotated and V copied into the
 * cache rows at the tokens' positions (f32 and f16 cache), nothing else of
 * the cache touched; against ref_rope on the Q and K parts. Variants: mode
 * NORM or NEOX, frequency factors (p[5]) or none, QK-norm (gammas p[6],
 * p[7]) or none, the reference of QK-norm being ref_rmsnorm of each head,
 * then ref_rope, then the store. */
typedef struct {
    void *p[8];
    int64_t M, nh, nkv, hd, nr, n_ctx, ct, mode, qk_norm;
    double base, eps;
} rope_kv_ctx;

static bool run_rope_kv(const void *c, int ith, int nth)
{
    const rope_kv_ctx *r = c;
    if (g_gpu) {
        static const char *const names[] = {"M",     "n_head", "n_head_kv",  "head_dim", "n_rot",
                                            "mode",  "n_ctx",  "cache_type", "ff",       "qk_norm"};
        const int64_t vals[] = {r->M, r->nh, r->nkv, r->hd, r->nr, r->mode, r->n_ctx, r->ct, r->p[5] != NULL, r->qk_norm};
        gen_kinst k = ktc_inst("rope_kv", 10, names, vals, r->M > 1);
        ktc_param_f(&k, "freq_base", r->base);
        ktc_param_f(&k, "freq_scale", 1.0);
        ktc_param_f(&k, "eps", r->eps);
        const size_t cache = (size_t)(r->nkv * r->n_ctx * r->hd) * (r->ct == KGT_F16 ? 2 : 4), g = r->qk_norm ? (size_t)r->hd * 4 : 0;
        const size_t bytes[8] = {(size_t)(r->M * (r->nh + 2 * r->nkv) * r->hd) * 4, (size_t)r->M * 4,
                                 (size_t)(r->M * r->nh * r->hd) * 4, cache, cache, r->p[5] ? (size_t)r->nr / 2 * 4 : 0, g, g};
        return gpu_launch(&k, r->M, r->n_ctx, r->p, bytes, 8);
    }
    kgt_rope_kv(r->p, ith, nth, r->M, r->nh, r->nkv, r->hd, r->nr, r->mode, r->base, 1.0, r->n_ctx, r->ct,
                r->p[5] != NULL, r->qk_norm, r->eps);
    return true;
}

static float cache_get(const void *c, int64_t i, int64_t ct)
{
    if (ct == KGT_F32) return ((const float *)c)[i];
    uint16_t h;
    memcpy(&h, (const char *)c + 2 * i, 2);
    return kgt_f16_to_f32(h);
}

/* rows heads of hd, RMS-normalized with gamma by the reference (when
 * gamma), as the f32 input of the RoPE reference */
static void ref_qk_norm(float *x, int64_t rows, int64_t hd, const float *gamma, double eps)
{
    double *t = xmalloc((size_t)hd * sizeof *t);
    for (int64_t r = 0; gamma && r < rows; r++) {
        ref_rmsnorm(x + r * hd, gamma, t, 1, hd, eps);
        for (int64_t d = 0; d < hd; d++) x[r * hd + d] = (float)t[d];
    }
    free(t);
}

OPS_TEST(rope_kv)
{
    static const struct { int64_t M, nh, nkv, hd, nr, n_ctx; double base; } shapes[] = {
        {1, 9, 3, 64, 64, 16, 100000}, {5, 9, 3, 64, 64, 40, 100000}, {3, 32, 4, 64, 64, 9, 10000},
        {4, 4, 4, 20, 18, 7, 10000},   {2, 16, 8, 128, 128, 8, 1000000}, /* Qwen3-0.6B's heads */
    };
    rng = 11;
    int cases = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int64_t ct = 0; ct <= 1; ct++) /* KGT_F32, KGT_F16 */
            for (int v = 0; v < 4; v++) { /* bit 0: frequency factors, bit 1: QK-norm (and NEOX) */
            int64_t M = shapes[s].M, nh = shapes[s].nh, nkv = shapes[s].nkv, hd = shapes[s].hd;
            int64_t row = (nh + 2 * nkv) * hd, ncache = nkv * shapes[s].n_ctx * hd, esz = ct ? 2 : 4;
            const int64_t qk = v >> 1, mode = qk ? KGT_ROPE_NEOX : KGT_ROPE_NORM;
            float *qkv = rand_floats(M * row, -1.0, 1.0), *q = xmalloc((size_t)(M * nh * hd) * 4);
            float *qin = xmalloc((size_t)(M * nh * hd) * 4), *kin = xmalloc((size_t)(M * nkv * hd) * 4);
            float *ff = v & 1 ? rand_floats(shapes[s].nr / 2, 1.0, 8.0) : NULL;
            float *gq = qk ? rand_floats(hd, 0.5, 1.5) : NULL, *gk = qk ? rand_floats(hd, 0.5, 1.5) : NULL;
            char *kc = xmalloc((size_t)(ncache * esz)), *vc = xmalloc((size_t)(ncache * esz));
            int32_t *pos = xmalloc((size_t)M * 4);
            for (int64_t m = 0; m < M; m++) {
                pos[m] = (int32_t)((m * 3 + 1) % shapes[s].n_ctx); /* distinct rows (M <= n_ctx / 3 + 1) */
                for (int64_t i = 0; qk && i < hd; i++) qkv[m * row + nh * hd + i] *= 5.0f; /* a K head of another scale */
                memcpy(qin + m * nh * hd, qkv + m * row, (size_t)(nh * hd) * 4);
                memcpy(kin + m * nkv * hd, qkv + m * row + nh * hd, (size_t)(nkv * hd) * 4);
            }
            ref_qk_norm(qin, M * nh, hd, gq, 1e-6);
            ref_qk_norm(kin, M * nkv, hd, gk, 1e-6);
            double *qref = xmalloc((size_t)(M * nh * hd) * 8), *kref = xmalloc((size_t)(M * nkv * hd) * 8);
            ref_rope(qin, pos, qref, M, nh, hd, shapes[s].nr, mode, shapes[s].base, 1.0, ff);
            ref_rope(kin, pos, kref, M, nkv, hd, shapes[s].nr, mode, shapes[s].base, 1.0, ff);
            rope_kv_ctx c = {{qkv, pos, q, kc, vc, ff, gq, gk}, M, nh, nkv, hd, shapes[s].nr, shapes[s].n_ctx, ct,
                             mode, qk, shapes[s].base, 1e-6};
            for (int t = 0; t < n_nths(); t++) {
                memset(kc, 0x7f, (size_t)(ncache * esz)); /* a pattern that is no value we write */
                memset(vc, 0x7f, (size_t)(ncache * esz));
                if (!run_all(run_rope_kv, &c, NTHS[t])) break;
                double e = nerr(q, qref, M * nh * hd), ek = 0, ev = 0;
                int64_t touched = 0, bytes_set = 0;
                for (int64_t m = 0; m < M; m++)
                    for (int64_t k = 0; k < nkv; k++)
                        for (int64_t d = 0; d < hd; d++) {
                            int64_t ci = (k * shapes[s].n_ctx + pos[m]) * hd + d;
                            double kr = kref[(m * nkv + k) * hd + d], vr = qkv[m * row + (nh + nkv + k) * hd + d];
                            /* relative to the value's size where QK-norm makes it large */
                            ek = fmax(ek, fabs(cache_get(kc, ci, ct) - kr) / fmax(1.0, fabs(kr)));
                            ev = fmax(ev, fabs(cache_get(vc, ci, ct) - vr));
                            touched++;
                        }
                for (int64_t i = 0; i < ncache * esz; i++) bytes_set += ((unsigned char)kc[i] != 0x7f) + ((unsigned char)vc[i] != 0x7f);
                double tol = ct ? 1e-3 : 1e-6; /* f16: half an ulp relative is 2^-11 */
                KT_CHECKF(e <= 1e-6, "rope_kv q (shape %zu, variant %d, nth %d): error %.3g", s, v, NTHS[t], e);
                KT_CHECKF(ek <= tol && ev <= tol, "rope_kv cache (shape %zu, variant %d, type %lld, nth %d): k err %.3g, v err %.3g", s,
                          v, (long long)ct, NTHS[t], ek, ev);
                KT_CHECKF(bytes_set <= 2 * touched * esz, "rope_kv wrote outside its rows (%lld bytes changed)", (long long)bytes_set);
            }
            cases++;
            free(qkv); free(q); free(qin); free(kin); free(kc); free(vc); free(pos); free(qref); free(kref);
            free(ff); free(gq); free(gk);
        }
    printf("    rope_kv: %d cases\n", cases);
}

/* ══════════════════ softmax ══════════════════ */
typedef struct {
    void *p[1];
    int64_t M, N;
    double scale;
} softmax_ctx;

static bool run_softmax(const void *c, int ith, int nth)
{
    const softmax_ctx *s = c;
    kgt_softmax(s->p, ith, nth, s->M, s->N, s->scale);
    return true;
}

KT_TEST(kernels_ops_softmax)
{
    static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {2, 576}, {4, 1000}, {1, 2049}, {5, 16}, {9, 64}, {2, 101}};
    static const double scales[] = {1.0, 0.125, -0.5, 8.0};
    rng = 4;
    int cases = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
            int64_t M = shapes[s][0], N = shapes[s][1];
            float *x = rand_floats(M * N, -10.0, 10.0), *y = xmalloc((size_t)(M * N) * sizeof *y);
            x[(M - 1) * N] = 3e4f; /* a dominating logit: its row underflows to one-hot */
            double *ref = xmalloc((size_t)(M * N) * sizeof *ref);
            ref_softmax(x, ref, M, N, scales[k]);
            softmax_ctx c = {{y}, M, N, scales[k]};
            char what[96];
            snprintf(what, sizeof what, "softmax M=%lld N=%lld scale=%g", (long long)M, (long long)N, scales[k]);
            check_spmd(what, run_softmax, &c, y, x, M * N, ref, 1e-6);
            cases++;
            free(x);
            free(y);
            free(ref);
        }
    report("softmax", cases, 1e-6);
}

/* ══════════════════ attention ══════════════════ */
typedef struct {
    void *p[7]; /* p[5]: decode's scratch (or NULL); p[6]: its phase, set by run_attn */
    int64_t M, n_head, n_head_kv, D, n_ctx, type;
    int decode;
    double scale;   /* 0: 1/sqrt(D) */
    int64_t window; /* 0: none */
} attn_ctx;

static bool run_attn(const void *c, int ith, int nth)
{
    const attn_ctx *a = c;
    if (g_gpu) {
        /* decode has no M (one token) */
        static const char *const names[] = {"M", "n_head", "n_head_kv", "head_dim", "n_ctx", "cache_type", "window"};
        const int64_t vals[] = {a->M, a->n_head, a->n_head_kv, a->D, a->n_ctx, a->type, a->window};
        const int d = a->decode;
        gen_kinst k = ktc_inst(d ? "attn_decode" : "attn_prefill", 7 - d, names + d, vals + d, !d);
        ktc_param_f(&k, "scale", a->scale);
        const size_t q = (size_t)(a->M * a->n_head * a->D) * 4;
        const size_t cache = (size_t)(a->n_head_kv * a->n_ctx * a->D) * (a->type == KGT_F16 ? 2 : 4);
        const size_t bytes[5] = {q, cache, cache, q, sizeof(int64_t)};
        return gpu_launch(&k, a->M, a->n_ctx, a->p, bytes, 5);
    }
    if (a->decode) {
        /* with a scratch, two calls: the last thread's first call is the
         * last of them (run_all runs the threads in order), so every
         * thread's second call follows it, as after the barrier */
        void *p[7];
        memcpy(p, a->p, sizeof p);
        p[6] = NULL;
        kgt_attn_decode(p, ith, nth, a->n_head, a->n_head_kv, a->D, a->n_ctx, a->type, a->scale, a->window);
        p[6] = p[5];
        if (p[5] && ith == nth - 1)
            for (int j = 0; j < nth; j++)
                kgt_attn_decode(p, j, nth, a->n_head, a->n_head_kv, a->D, a->n_ctx, a->type, a->scale, a->window);
    } else kgt_attn_prefill(a->p, ith, nth, a->M, a->n_head, a->n_head_kv, a->D, a->n_ctx, a->type, a->scale, a->window);
    return true;
}

/* a cache [n_head_kv][n_ctx][D] of `type` with uniform(-1, 1) values (Q8_0:
 * blocks of random quants in [-127, 127] and random f16 scales in [0.002,
 * 0.02]); *val gets the values as the kernel reads them */
static void *make_cache(int64_t n, int64_t type, double **val)
{
    *val = xmalloc((size_t)n * sizeof **val);
    if (type == KGT_Q8_0) {
        unsigned char *c = xmalloc((size_t)(n / 32 * KGT_SIZE_Q8_0));
        for (int64_t b = 0; b < n / 32; b++) {
            const kgt_f16 h = kgt_f32_to_f16((float)(0.002 + 0.018 * rng_u01()));
            memcpy(c + b * KGT_SIZE_Q8_0, &h, 2);
            for (int e = 0; e < 32; e++) {
                const int8_t q = (int8_t)(floor(rng_u01() * 255.0) - 127.0);
                c[b * KGT_SIZE_Q8_0 + 2 + e] = (unsigned char)q;
                (*val)[b * 32 + e] = ref_f16_value(h) * q;
            }
        }
        return c;
    }
    float *f = rand_floats(n, -1.0, 1.0);
    if (type == KGT_F32) {
        for (int64_t i = 0; i < n; i++) (*val)[i] = f[i];
        return f;
    }
    kgt_f16 *h = xmalloc((size_t)n * sizeof *h);
    for (int64_t i = 0; i < n; i++) {
        h[i] = kgt_f32_to_f16(f[i]);
        (*val)[i] = ref_f16_value(h[i]);
    }
    free(f);
    return h;
}

/* cache positions [a, b) of every KV head set to NaN (Q8_0: NaN scales) */
static void poison_cache(void *c, int64_t nkv, int64_t n_ctx, int64_t D, int64_t type, int64_t a, int64_t b)
{
    for (int64_t g = 0; g < nkv; g++)
        for (int64_t i = (g * n_ctx + a) * D; i < (g * n_ctx + (b > a ? b : a)) * D; i++)
            if (type == KGT_Q8_0) {
                if (i % 32 == 0) memcpy((unsigned char *)c + i / 32 * KGT_SIZE_Q8_0, &(kgt_f16){0x7e00}, 2);
            } else if (type == KGT_F16) ((kgt_f16 *)c)[i] = 0x7e00;
            else ((float *)c)[i] = NAN;
}

static const char *cache_name(int64_t type) { return type == KGT_Q8_0 ? "q8" : type == KGT_F16 ? "f16" : "f32"; }

/* the cache types the attention tests run */
static const int64_t CACHE_TYPES[] = {KGT_F32, KGT_F16, KGT_Q8_0};
enum { N_CACHE_TYPES = sizeof CACHE_TYPES / sizeof CACHE_TYPES[0] };

/* whether a case of head_dim D runs with `type`: Q8_0 needs whole blocks
 * of 32, and not on the GPU (the CUDA backend has no Q8_0 cache) */
static bool cache_fits(int64_t type, int64_t D) { return type != KGT_Q8_0 || (D % 32 == 0 && !g_gpu); }

/* decode when M == 0 (one token, n_kv = pos0 + 1), else prefill; scale 0:
 * the default 1/sqrt(D); window 0: none. The cache positions that no token
 * may read (after the last token's, and before the first token's window)
 * are NaN: a kernel that reads one (or weighs one with 0) returns NaN.
 * Decode runs with a scratch (NaN-filled: a merge that reads a part never
 * written returns NaN) unless noscr. */
static void attn_case_x(int64_t M, int64_t nh, int64_t nkv, int64_t D, int64_t n_ctx, int64_t pos0, int64_t type,
                        double scale, int64_t window, bool noscr)
{
    int decode = M == 0;
    int64_t Mr = decode ? 1 : M, nq = Mr * nh * D, nc = nkv * n_ctx * D;
    double *kv, *vv, *ref = xmalloc((size_t)nq * sizeof *ref);
    void *kc = make_cache(nc, type, &kv), *vc = make_cache(nc, type, &vv);
    const int64_t first = window > 0 && pos0 - window + 1 > 0 ? pos0 - window + 1 : 0;
    poison_cache(kc, nkv, n_ctx, D, type, 0, first), poison_cache(vc, nkv, n_ctx, D, type, 0, first);
    poison_cache(kc, nkv, n_ctx, D, type, pos0 + Mr, n_ctx), poison_cache(vc, nkv, n_ctx, D, type, pos0 + Mr, n_ctx);
    float *q = rand_floats(nq, -4.0, 4.0), *out = xmalloc((size_t)nq * sizeof *out), *init = nan_floats(nq);
    int64_t arg = decode ? pos0 + 1 : pos0;
    ref_attn(q, kv, vv, ref, Mr, nh, nkv, D, n_ctx, pos0, scale, window);
    float *scr = decode && !noscr && !g_gpu ? nan_floats(kgt_attn_scratch_floats(nh, D)) : NULL;
    attn_ctx c = {{q, kc, vc, out, &arg, scr, NULL}, Mr, nh, nkv, D, n_ctx, type, decode, scale, window};
    char what[180];
    snprintf(what, sizeof what,
             "attn %s %s M=%lld heads=%lld/%lld dim=%lld n_ctx=%lld pos0=%lld scale=%g window=%lld%s",
             decode ? "decode" : "prefill", cache_name(type), (long long)Mr, (long long)nh, (long long)nkv,
             (long long)D, (long long)n_ctx, (long long)pos0, scale, (long long)window,
             decode && !scr ? " (no scratch)" : "");
    check_spmd(what, run_attn, &c, out, init, nq, ref, 1e-5);
    free(scr);
    free(kv);
    free(vv);
    free(kc);
    free(vc);
    free(q);
    free(out);
    free(init);
    free(ref);
}

static void attn_case_sw(int64_t M, int64_t nh, int64_t nkv, int64_t D, int64_t n_ctx, int64_t pos0, int64_t type,
                         double scale, int64_t window)
{
    attn_case_x(M, nh, nkv, D, n_ctx, pos0, type, scale, window, false);
}

static void attn_case(int64_t M, int64_t nh, int64_t nkv, int64_t D, int64_t n_ctx, int64_t pos0, int64_t type)
{
    attn_case_sw(M, nh, nkv, D, n_ctx, pos0, type, 0.0, 0);
}

OPS_TEST(attn_decode)
{
    /* heads, kv heads, head_dim, n_ctx, n_kv */
    static const int64_t shapes[][5] = {
        {9, 3, 64, 256, 1},   {9, 3, 64, 256, 37},  {9, 3, 64, 256, 256}, {9, 3, 64, 300, 129}, /* SmolLM2 */
        {32, 4, 64, 256, 1},  {32, 4, 64, 200, 200}, {32, 4, 64, 512, 300}, {32, 4, 64, 2048, 2048}, /* TinyLlama */
        {4, 4, 20, 67, 67},   {6, 2, 20, 13, 5},    {1, 1, 1, 1, 1},      {2, 1, 36, 65, 65},
    };
    rng = 5;
    int cases = 0;
    for (int t = 0; t < N_CACHE_TYPES; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            if (cache_fits(CACHE_TYPES[t], shapes[s][2]))
                attn_case(0, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4] - 1, CACHE_TYPES[t]),
                    cases++;
    report("attn decode", cases, 1e-5);
}

OPS_TEST(attn_prefill)
{
    /* M, heads, kv heads, head_dim, n_ctx, pos0 */
    static const int64_t shapes[][6] = {
        {7, 9, 3, 64, 256, 0},   {1, 9, 3, 64, 256, 100},  {16, 9, 3, 64, 130, 114}, /* SmolLM2; last fills the cache */
        {5, 32, 4, 64, 256, 60}, {24, 32, 4, 64, 128, 0}, {32, 32, 4, 64, 1100, 1000}, /* TinyLlama; tiles crossed */
        {13, 4, 4, 20, 13, 0},   {3, 6, 2, 20, 70, 62},    {5, 1, 1, 1, 5, 0},
    };
    rng = 6;
    int cases = 0;
    for (int64_t type = KGT_F32; type <= KGT_F16; type++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++, cases++)
            attn_case(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4], shapes[s][5], type);
    report("attn prefill", cases, 1e-5);
}

/* Sliding windows and explicit scales: windows of 1, of a few positions,
 * of tile sizes (KGT_ATTN_KT 64 on the CPU, 32 on the GPU) plus or minus
 * one, and larger than the cache; decode at positions before, at and past
 * the window's length; prefill blocks whose tokens' windows start in
 * different tiles (and whole tiles before every window); Gemma 3's scale
 * 1/sqrt(256) on head_dim 64 (not the default) and others. */
OPS_TEST(attn_window)
{
    /* M (0: decode), heads, kv heads, head_dim, n_ctx, pos0, window, scale */
    static const struct { int64_t M, nh, nkv, D, n_ctx, pos0, w; double scale; } cases_[] = {
        {0, 9, 3, 64, 256, 0, 1, 0},       {0, 9, 3, 64, 256, 100, 1, 0},    {0, 9, 3, 64, 256, 4, 5, 0},
        {0, 9, 3, 64, 256, 5, 5, 0},       {0, 8, 2, 64, 300, 299, 64, 0.0625}, {0, 8, 2, 64, 300, 200, 65, 0},
        {0, 4, 1, 32, 200, 150, 33, 0.3},  {0, 4, 4, 128, 100, 60, 512, 0},  {0, 6, 2, 20, 90, 89, 31, 1.0},
        {7, 9, 3, 64, 256, 0, 3, 0},       {16, 9, 3, 64, 256, 100, 1, 0},   {16, 9, 3, 64, 256, 60, 10, 0.125},
        {40, 8, 2, 64, 300, 200, 64, 0.0625}, {33, 4, 1, 32, 200, 100, 33, 0}, {24, 4, 2, 128, 256, 200, 512, 0},
        {5, 4, 4, 20, 100, 70, 2, 0.5},    {9, 1, 1, 1, 60, 40, 7, 2.0},     {12, 8, 4, 64, 200, 0, 0, 0.2},
    };
    rng = 17;
    int cases = 0;
    for (int t = 0; t < N_CACHE_TYPES; t++)
        for (size_t s = 0; s < sizeof cases_ / sizeof cases_[0]; s++)
            if (cache_fits(CACHE_TYPES[t], cases_[s].D))
                attn_case_sw(cases_[s].M, cases_[s].nh, cases_[s].nkv, cases_[s].D, cases_[s].n_ctx, cases_[s].pos0,
                             CACHE_TYPES[t], cases_[s].scale, cases_[s].w),
                    cases++;
    report("attn window", cases, 1e-5);
}

/* Decode over long caches: several chunks (KGT_ATTN_CHUNK positions,
 * doubled, tripled, ... past KGT_ATTN_NCH - 1 of them), partial last
 * chunks, a chunk exactly, one position past a chunk, one past the first
 * doubling; sliding windows that start mid-chunk and cross chunk boundaries;
 * query groups of 1 to 16 heads (more than KGT_ATTN_QB: two passes); every
 * cache type (Q8_0 where head_dim is a multiple of 32), with the scratch
 * and without (one chunk). */
OPS_TEST(attn_long)
{
    /* heads, kv heads, head_dim, n_ctx, n_kv, window, scale */
    static const struct { int64_t nh, nkv, D, n_ctx, n, w; double scale; } cases_[] = {
        {9, 3, 64, 1600, 1500, 0, 0},  {9, 3, 64, 4200, 4100, 0, 0},    {32, 4, 64, 4100, 4100, 0, 0},
        {9, 3, 64, 300, KGT_ATTN_CHUNK, 0, 0}, {9, 3, 64, 300, KGT_ATTN_CHUNK + 1, 0, 0}, {6, 2, 64, 520, 513, 0, 0},
        {4, 1, 64, 8000, KGT_ATTN_CHUNK * (KGT_ATTN_NCH - 1) + 1, 0, 0}, {4, 1, 64, 8000, 7937, 0, 0},
        {4, 1, 256, 1500, 1500, 512, 0.0625}, {9, 3, 64, 1600, 1500, 300, 0}, {9, 3, 64, 300, 250, 100, 0},
        {8, 2, 64, 4200, 4100, 1000, 0}, {16, 1, 32, 700, 700, 0, 0.3}, {6, 2, 20, 1100, 1030, 0, 0},
        {8, 8, 128, 900, 800, 257, 0}, {5, 1, 96, 2000, 1999, 1024, 0},
    };
    rng = 23;
    int cases = 0;
    for (int t = 0; t < N_CACHE_TYPES; t++) {
        const int64_t type = CACHE_TYPES[t];
        for (size_t s = 0; s < sizeof cases_ / sizeof cases_[0]; s++) {
            if (!cache_fits(type, cases_[s].D)) continue;
            for (int noscr = 0; noscr <= (s < 3); noscr++, cases++)
                attn_case_x(0, cases_[s].nh, cases_[s].nkv, cases_[s].D, cases_[s].n_ctx, cases_[s].n - 1, type,
                            cases_[s].scale, cases_[s].w, noscr);
        }
    }
    report("attn long", cases, 1e-5);
}

/* Every f16 bit pattern through the cache decoding: one cached position, so
 * the output is exactly 1 * V (zero query and keys: one score, weight 1);
 * 256 heads of 256, head h's V row the patterns 256 h .. 256 h + 255. */
OPS_TEST(attn_f16_values)
{
    enum { H = 256, D = 256, N = H * D };
    kgt_f16 *k = calloc(N, sizeof *k), *v = xmalloc(N * sizeof *v);
    float *q = calloc(N, sizeof *q), *out = nan_floats(N);
    KT_REQUIRE(k && q);
    for (int i = 0; i < N; i++) v[i] = (kgt_f16)i;
    int64_t n_kv = 1;
    attn_ctx c = {{q, k, v, out, &n_kv, NULL, NULL}, 1, H, H, D, 1, KGT_F16, 1, 0.0, 0};
    int bad = 0;
    if (run_attn(&c, 0, 1))
        for (int i = 0; i < N; i++) {
            double want = ref_f16_value((uint16_t)i);
            bool ok = want != want ? out[i] != out[i] : out[i] == want;
            if (!ok && bad++ < 5) KT_CHECKF(ok, "f16 0x%04x: got %g, want %g", i, (double)out[i], want);
        }
    KT_CHECKF(!bad, "%d of 65536 f16 values decoded wrong", bad);
    free(k);
    free(v);
    free(q);
    free(out);
}

/* ══════════════════ activations ══════════════════ */
typedef struct {
    void *p[2];
    int64_t n;
    int gelu;
} act_ctx;

static bool run_act(const void *c, int ith, int nth)
{
    const act_ctx *a = c;
    (a->gelu ? kgt_gelu : kgt_silu)(a->p, ith, nth, a->n);
    return true;
}

KT_TEST(kernels_ops_act)
{
    static const int64_t sizes[] = {1, 7, 63, 64, 65, 576, 1536, 5632, 10007};
    rng = 7;
    int cases = 0;
    for (int gelu = 0; gelu <= 1; gelu++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int in_place = 0; in_place <= 1; in_place++, cases++) {
                int64_t n = sizes[s];
                float *x = rand_floats(n, -8.0, 8.0), *y = xmalloc((size_t)n * sizeof *y), *init;
                /* tails of the range (exp under/overflow, flat regions), spread out
                 * where n > 9 so they leave the normalized error meaningful */
                static const float extremes[] = {-100.f, 100.f, -30.f, 30.f, -89.f, 89.f, 0.f, -0.f, 1e-30f};
                const int64_t n_ext = n > 9 ? 9 : 0, stride = n / 9;
                for (int64_t i = 0; i < n_ext; i++) x[i * stride] = extremes[i];
                double *ref = xmalloc((size_t)n * sizeof *ref);
                (gelu ? ref_gelu : ref_silu)(x, ref, n);
                act_ctx c = {{in_place ? y : x, y}, n, gelu};
                init = in_place ? x : nan_floats(n);
                char what[64];
                snprintf(what, sizeof what, "%s n=%lld%s", gelu ? "gelu" : "silu", (long long)n,
                         in_place ? " in place" : "");
                check_spmd(what, run_act, &c, y, init, n, ref, 1e-6);
                /* the extremes, one by one (the normalized error hides small values) */
                for (int64_t i = 0; i < n_ext; i++) {
                    int64_t j = i * stride;
                    KT_CHECKF(fabs(y[j] - ref[j]) <= 1e-6 * fabs(ref[j]) + 1e-30, "%s: f(%g) = %g, want %g", what,
                              (double)x[j], (double)y[j], ref[j]);
                }
                if (!in_place) free(init);
                free(x);
                free(y);
                free(ref);
            }
    report("act", cases, 1e-6);
}

/* ══════════════════ softcap ══════════════════ */
typedef struct {
    void *p[2];
    int64_t M, N;
    double cap;
} softcap_ctx;

static bool run_softcap(const void *c, int ith, int nth)
{
    const softcap_ctx *a = c;
    if (g_gpu) {
        static const char *const names[] = {"M", "N"};
        const int64_t vals[] = {a->M, a->N};
        gen_kinst k = ktc_inst("softcap", 2, names, vals, a->M > 1);
        ktc_param_f(&k, "cap", a->cap);
        const size_t b = (size_t)(a->M * a->N) * 4, bytes[2] = {b, b};
        return gpu_launch(&k, a->M, 0, a->p, bytes, 2);
    }
    kgt_softcap(a->p, ith, nth, a->M, a->N, a->cap);
    return true;
}

/* y = cap tanh(x / cap) over x in [-4 cap, 4 cap] (Gemma 2's caps 30 and
 * 50, and others), with the tails (saturation, NaN-free infinities of
 * exp) and small values checked one by one: relative 1e-6, as tanh's
 * polynomial branch keeps it near 0 */
OPS_TEST(softcap)
{
    static const struct { int64_t M, N; } shapes[] = {{1, 1}, {1, 63}, {3, 65}, {1, 576}, {2, 1000}, {1, 49152}};
    static const double caps[] = {30.0, 50.0, 1.0, 0.37};
    rng = 19;
    int cases = 0;
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int in_place = 0; in_place <= 1; in_place++, cases++) {
                const int64_t n = shapes[s].M * shapes[s].N;
                const double cap = caps[ci];
                float *x = rand_floats(n, -4 * cap, 4 * cap), *y = xmalloc((size_t)n * 4);
                static const float extremes[] = {1e6f, -1e6f, 0.0f, -0.0f, 1e-20f, -3e-4f, 0.62f, -0.63f, 200.0f};
                const int64_t n_ext = n > 9 ? 9 : 0, stride = n / 9;
                for (int64_t i = 0; i < n_ext; i++) x[i * stride] = extremes[i] * (i < 2 || i == 8 ? 1.0f : (float)cap);
                double *ref = xmalloc((size_t)n * sizeof *ref);
                ref_softcap(x, ref, n, cap);
                float *init = in_place ? x : nan_floats(n);
                softcap_ctx c = {{in_place ? y : x, y}, shapes[s].M, shapes[s].N, cap};
                char what[80];
                snprintf(what, sizeof what, "softcap %g M=%lld N=%lld%s", cap, (long long)shapes[s].M,
                         (long long)shapes[s].N, in_place ? " in place" : "");
                check_spmd(what, run_softcap, &c, y, init, n, ref, 1e-6);
                for (int64_t i = 0; i < n_ext; i++) {
                    const int64_t j = i * stride;
                    KT_CHECKF(fabs(y[j] - ref[j]) <= 1e-6 * fabs(ref[j]) + 1e-30, "%s: softcap(%g) = %g, want %g", what,
                              (double)x[j], (double)y[j], ref[j]);
                }
                if (!in_place) free(init);
                free(x), free(y), free(ref);
            }
    report("softcap", cases, 1e-6);
}

/* ══════════════════ add, glu ══════════════════ */
typedef struct {
    void *p[3];
    int64_t M, N, act; /* act < 0: add */
} ew_ctx;

static bool run_ew(const void *c, int ith, int nth)
{
    const ew_ctx *e = c;
    if (g_gpu) {
        static const char *const names[] = {"M", "N", "act"};
        const int64_t vals[] = {e->M, e->N, e->act};
        gen_kinst k = ktc_inst(e->act < 0 ? "add" : "glu", e->act < 0 ? 2 : 3, names, vals, e->M > 1);
        const size_t b = (size_t)(e->M * e->N) * 4, bytes[3] = {b, b, b};
        return gpu_launch(&k, e->M, 0, e->p, bytes, 3);
    }
    if (e->act < 0) kgt_add(e->p, ith, nth, e->M, e->N);
    else kgt_glu(e->p, ith, nth, e->M, e->N, e->act);
    return true;
}

OPS_TEST(elementwise)
{
    static const struct { int64_t M, N; } shapes[] = {{1, 1}, {1, 63}, {3, 65}, {1, 576}, {5, 1536}, {2, 5632}, {1, 10007}};
    rng = 11;
    int cases = 0;
    for (int64_t act = -1; act <= KGT_GLU_GELU; act++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int alias = 0; alias <= 2; alias++, cases++) { /* y apart, y = a, y = b */
                const int64_t n = shapes[s].M * shapes[s].N;
                float *a = rand_floats(n, -8.0, 8.0), *b = rand_floats(n, -3.0, 3.0), *y = xmalloc((size_t)n * 4);
                double *ref = xmalloc((size_t)n * sizeof *ref);
                if (act == KGT_GLU_SILU) ref_silu(a, ref, n);
                else if (act == KGT_GLU_GELU) ref_gelu(a, ref, n);
                for (int64_t i = 0; i < n; i++) ref[i] = act < 0 ? (double)a[i] + b[i] : ref[i] * b[i];
                float *init = alias == 1 ? a : alias == 2 ? b : nan_floats(n);
                float *keep = xmalloc((size_t)n * 4);
                memcpy(keep, init, (size_t)n * 4);
                ew_ctx c = {{alias == 1 ? y : a, alias == 2 ? y : b, y}, shapes[s].M, shapes[s].N, act};
                char what[80];
                snprintf(what, sizeof what, "%s M=%lld N=%lld%s", act < 0 ? "add" : act ? "geglu" : "swiglu",
                         (long long)shapes[s].M, (long long)shapes[s].N, alias ? (alias == 1 ? " y=a" : " y=b") : "");
                check_spmd(what, run_ew, &c, y, keep, n, ref, 1e-6);
                if (!alias) free(init);
                free(keep), free(a), free(b), free(y), free(ref);
            }
    report("elementwise", cases, 1e-6);
}

/* ══════════════════ kv_store ══════════════════ */
typedef struct {
    void *p[5];
    int64_t M, nkv, hd, n_ctx, ct;
} kvs_ctx;

static bool run_kvs(const void *c, int ith, int nth)
{
    const kvs_ctx *r = c;
    if (g_gpu) {
        static const char *const names[] = {"M", "n_head_kv", "head_dim", "n_ctx", "cache_type"};
        const int64_t vals[] = {r->M, r->nkv, r->hd, r->n_ctx, r->ct};
        gen_kinst k = ktc_inst("kv_store", 5, names, vals, r->M > 1);
        const size_t row = (size_t)(r->M * r->nkv * r->hd) * 4, cache = (size_t)(r->nkv * r->n_ctx * r->hd) * (r->ct == KGT_F16 ? 2 : 4);
        const size_t bytes[5] = {row, row, (size_t)r->M * 4, cache, cache};
        return gpu_launch(&k, r->M, r->n_ctx, r->p, bytes, 5);
    }
    kgt_kv_store(r->p, ith, nth, r->M, r->nkv, r->hd, r->n_ctx, r->ct);
    return true;
}

/* K and V rows land at their tokens' cache rows (positions past the end
 * clamped to the last row), converted to the cache type; the rest of the
 * cache is untouched */
OPS_TEST(kv_store)
{
    static const struct { int64_t M, nkv, hd, n_ctx; } shapes[] = {{1, 3, 64, 16}, {5, 3, 64, 64}, {4, 4, 64, 9}, {3, 1, 2, 4}, {2, 2, 128, 300}};
    rng = 13;
    int cases = 0;
    for (int ct = 0; ct <= 1; ct++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int nth = 1; nth <= (g_gpu ? 1 : 3); nth++, cases++) {
                const int64_t M = shapes[s].M, nkv = shapes[s].nkv, hd = shapes[s].hd, nc = shapes[s].n_ctx;
                const int64_t esz = ct ? 2 : 4, rows = M * nkv * hd, cells = nkv * nc * hd;
                float *k = rand_floats(rows, -4, 4), *v = rand_floats(rows, -4, 4);
                int32_t *pos = xmalloc((size_t)M * 4);
                for (int64_t m = 0; m < M; m++) pos[m] = (int32_t)((m * 7 + 3) % nc);
                if (M > 2) pos[M - 1] = (int32_t)(nc + 5); /* clamped to nc - 1 */
                uint8_t *kc = xmalloc((size_t)(cells * esz)), *vc = xmalloc((size_t)(cells * esz));
                memset(kc, 0x5a, (size_t)(cells * esz)), memset(vc, 0xa5, (size_t)(cells * esz));
                uint8_t *kw = xmalloc((size_t)(cells * esz)), *vw = xmalloc((size_t)(cells * esz)); /* expected */
                memcpy(kw, kc, (size_t)(cells * esz)), memcpy(vw, vc, (size_t)(cells * esz));
                for (int64_t m = 0; m < M; m++)
                    for (int64_t h = 0; h < nkv; h++) {
                        const int64_t at = pos[m] >= nc ? nc - 1 : pos[m];
                        for (int64_t d = 0; d < hd; d++) {
                            const float kv[2] = {k[(m * nkv + h) * hd + d], v[(m * nkv + h) * hd + d]};
                            for (int w = 0; w < 2; w++) {
                                uint8_t *dst = (w ? vw : kw) + ((h * nc + at) * hd + d) * esz;
                                if (ct) {
                                    _Float16 f = (_Float16)kv[w];
                                    memcpy(dst, &f, 2);
                                } else memcpy(dst, &kv[w], 4);
                            }
                        }
                    }
                kvs_ctx c = {{k, v, pos, kc, vc}, M, nkv, hd, nc, ct ? KGT_F16 : KGT_F32};
                if (g_gpu) run_kvs(&c, 0, 1);
                else
                    for (int ith = 0; ith < nth; ith++) run_kvs(&c, ith, nth);
                KT_CHECKF(!memcmp(kc, kw, (size_t)(cells * esz)) && !memcmp(vc, vw, (size_t)(cells * esz)),
                          "kv_store M=%lld kv heads=%lld dim=%lld n_ctx=%lld %s, %d threads: cache differs", (long long)M,
                          (long long)nkv, (long long)hd, (long long)nc, ct ? "f16" : "f32", nth);
                free(k), free(v), free(pos), free(kc), free(vc), free(kw), free(vw);
            }
    printf("    kv_store: %d cases, bit-exact\n", cases);
}
