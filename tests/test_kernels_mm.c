/*
 * test_kernels_mm.c — the product templates (templates/cpu/mm.c, quantize.c,
 * embed.c) against the scalar references of ref_kernels.c, in several
 * builds: "native" (the templates/cpu sources as the Makefile compiles
 * them, -march=native: the AVX2 paths on an AVX2 machine, VNNI's on a VNNI
 * one) and "portable" (kernels_portable.c: the same sources without
 * intrinsics); "portable-biased-q8" runs the VNNI path's arithmetic for the
 * int8 types (Q8_0, IQ4_NL, IQ4_XS: unsigned quants + 128, corrected by
 * the activation sums) with act Q8; "avx2" (kernels_portable_avx2.c, where
 * the CPU has AVX2) runs the AVX2 intrinsic paths without VNNI, which a
 * VNNI machine's native build skips, with act Q8 (act F32 is the same code
 * as native's). The VNNI instructions themselves only run on a VNNI
 * machine. The last, "cuda", runs the CUDA templates on the GPU
 * (tests/kt_cuda.h, one launch per call) in the gpu_ tests only (make
 * check-gpu), for every type.
 *
 * Tolerances. Error measure: ||y - ref||_2 / max(||ref||_2, ||mag||_2 /
 * sqrt K), ref in double, mag the outputs' sums of |terms| (ref_mm): the
 * floor is the size a sum of K such terms has without cancellation, so an
 * output that cancels to near zero by chance (N = 1, K = 32) is not held to
 * a relative bound that f32 arithmetic cannot meet; for the larger shapes
 * the measure is the plain normalized error.
 *   TOL_F32 = 1e-5  act F32 against the double product of the dequantized
 *                   weights and X: f32 accumulation over K <= 5632 in 8
 *                   lanes + a pairwise chunk sum rounds at ~1e-7 per term
 *                   (observed <= 1e-6); the dequantized weights may differ by
 *                   one rounding (fused q*d+m) from the reference's.
 *   TOL_F32 = 1e-5  act Q8 against the double product with the SAME
 *                   quantized activations: chunk dots are exact int32, only
 *                   the f32 scaling/accumulation rounds.
 *   Q8 BOUND        act Q8 against the double product with the f32
 *                   activations, per output: |y - ref| <= B + TOL_F32 mag,
 *                   B the rigorous bound of the activations' rounding
 *                   (ref_mm_q8_bound: sum_k |w| |x - xq|, |x - xq| <= d/2 =
 *                   amax/254, carried through swiglu). In the normalized
 *                   measure that is a few 1e-3 for uniform x in [-1, 1]
 *                   (rms error ~ amax/(254 sqrt 3) ~ 4e-3 of rms x;
 *                   observed up to 9e-3 on the small shapes, where few
 *                   terms and outputs make it noisy): printed, not
 *                   asserted. Only for K N <= 2^20, to save time: it checks
 *                   the format more than the code.
 *   OUT_Q8          exact: the q8a output equals ref_quantize_q8a of the
 *                   same product's f32 output; and its dequantization is
 *                   within sqrt(sum_blocks 32 (d/2)^2) of it (the rounding
 *                   bound, computed from the blocks' own d).
 *
 * Types: F32, F16, BF16; Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL (32
 * elements a block); Q4_K, Q6_K, Q5_K, Q3_K, Q2_K, IQ4_XS (256).
 *
 * Coverage: every type x activation mode x epilogue (none, bias, residual
 * (aliasing Y when nth = 2), swiglu, out_q8, all four) x nth 1, 2, 3 x M 1,
 * 2, 5, 16 on small shapes (K at the format's minimum, K not a multiple of
 * the SIMD width for float types, N = 1, N = 97 prime, N = 96, 192) in
 * every build; the real model shapes (SmolLM2-135M, TinyLlama-1.1B; K-quants
 * round K up to 256s) for every type with M 1 (and M 5 for SmolLM2's), nth
 * 2, one epilogue per shape, native build only; the 49152-row SmolLM2
 * output for Q8_0 only. Dequantization (kgt_embed) of every type, every
 * f16/bf16 bit pattern; kgt_quantize bit-exact. The references themselves
 * against llama.cpp's Python dequantizers (tests/ref/dequant.py) on random
 * blocks of every type and on rows of the real models (Q4_1, Q8_0, Q4_K,
 * Q6_K, Q5_0, F32 tensors). Time: ~10 s plain on the 2-core dev VM.
 */
#include "kgen.h"
#include "kt.h"
#include "kt_cuda.h"
#include "ref_kernels.h"
#include "rt.h"
#include "gen/layout.h"
#include "templates/cpu/products.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_portable.h"

#define TOL_F32 1e-5

/* kgt_mm's call run on the GPU (tests/kt_cuda.h): the instance lowering
 * would make (M 1: the decode instance; else M bound at run time, the
 * prefill instance), every buffer copied there and back. Thread 0 does it. */
static void gpu_mm(void *const *p, int ith, int nth, int64_t wtype, int64_t act, int64_t M, int64_t N, int64_t K,
                   int64_t flags, int64_t ldy, int64_t layout, int64_t amx, int64_t pf, int64_t mb, int64_t nc, int64_t mt)
{
    (void)nth, (void)layout, (void)amx, (void)pf, (void)mb, (void)nc, (void)mt; /* rows: the CUDA templates read GGUF's rows only */
    if (ith) return;
    static const char *const names[] = {"wtype", "act", "M", "N", "K", "flags", "ldy"};
    const int64_t vals[] = {wtype, act, M, N, K, flags, ldy};
    gen_kinst k = ktc_inst("mm", ldy ? 7 : 6, names, vals, M > 1);
    const int64_t ld = ldy ? ldy : N, span = (M - 1) * ld + N; /* Y's and resid's elements from p[2] (a slice's first column) */
    const size_t wb = (size_t)(N * ref_row_bytes((int)wtype, K));
    const size_t xb = act == KGT_ACT_Q8 ? (size_t)(M * K / 32) * sizeof(kgt_q8a) : (size_t)(M * K) * sizeof(float);
    const size_t yb = flags & KGT_EPI_OUT_Q8 ? (size_t)(span / 32) * sizeof(kgt_q8a) : (size_t)span * sizeof(float);
    const size_t bytes[6] = {wb, xb, yb, (size_t)N * sizeof(float), (size_t)span * sizeof(float),
                             (flags & (KGT_EPI_SWIGLU | KGT_EPI_GEGLU)) ? wb : 0};
    char err[1024];
    int rc = ktc_run(&k, M, 0, p, bytes, 6, err, sizeof err);
    KT_CHECKF(rc == 0, "GPU mm (type %lld, act %lld, M %lld, N %lld, K %lld, flags %lld): %s", (long long)wtype,
              (long long)act, (long long)M, (long long)N, (long long)K, (long long)flags, err);
}

/* kgt_quantize's and kgt_embed's calls run on the GPU, likewise */
static void gpu_quantize(void *const *p, int ith, int nth, int64_t M, int64_t K)
{
    (void)nth;
    if (ith) return;
    static const char *const names[] = {"M", "K"};
    const int64_t vals[] = {M, K};
    gen_kinst k = ktc_inst("quantize", 2, names, vals, M > 1);
    const size_t bytes[2] = {(size_t)(M * K) * sizeof(float), (size_t)(M * K / 32) * sizeof(kgt_q8a)};
    char err[1024];
    int rc = ktc_run(&k, M, 0, p, bytes, 2, err, sizeof err);
    KT_CHECKF(rc == 0, "GPU quantize (M %lld, K %lld): %s", (long long)M, (long long)K, err);
}

static void gpu_embed(void *const *p, int ith, int nth, int64_t wtype, int64_t M, int64_t K, double scale,
                      int64_t pos_len, int64_t pos_type, int64_t layout)
{
    (void)nth, (void)pos_len, (void)pos_type, (void)layout; /* 0 and KGT_F32 here: the encoder's tables are test_kernels_enc.c's */
    if (ith) return;
    static const char *const names[] = {"wtype", "M", "K"};
    const int64_t vals[] = {wtype, M, K};
    gen_kinst k = ktc_inst("embed", 3, names, vals, M > 1);
    ktc_param_f(&k, "scale", scale);
    const int32_t *ids = p[1];
    int64_t rows = 0; /* the table's rows: up to the largest id */
    for (int64_t m = 0; m < M; m++) rows = ids[m] + 1 > rows ? ids[m] + 1 : rows;
    const size_t bytes[3] = {(size_t)(rows * ref_row_bytes((int)wtype, K)), (size_t)M * sizeof(int32_t),
                             (size_t)(M * K) * sizeof(float)};
    char err[1024];
    int rc = ktc_run(&k, M, 0, p, bytes, 3, err, sizeof err);
    KT_CHECKF(rc == 0, "GPU embed (type %lld, M %lld, K %lld): %s", (long long)wtype, (long long)M, (long long)K, err);
}

typedef struct {
    const char *name;
    KT_MM_DECL((*mm));
    void (*quantize)(void *const *, int, int, int64_t, int64_t);
    void (*embed)(void *const *, int, int, int64_t, int64_t, int64_t, double, int64_t, int64_t, int64_t);
} impl;

static const impl IMPLS[] = {
    {"native", kgt_mm, kgt_quantize, kgt_embed},
    {"portable", kgtp_mm, kgtp_quantize, kgtp_embed},
    {"portable-biased-q8", kgtb_mm, kgtb_quantize, kgtb_embed}, /* used for is_biased types x act Q8 only */
    {"avx2", kgta_mm, kgta_quantize, kgta_embed},               /* where the CPU has AVX2 (kgta_usable) */
    {"cuda", gpu_mm, gpu_quantize, gpu_embed},                  /* the gpu_ tests only */
};
enum { IMPL_AVX2 = 3, IMPL_CUDA = 4, N_IMPLS = 5 }; /* the CPU builds come first */

/* thread counts an implementation runs with: the GPU's call is one launch;
 * 0: the avx2 build on a CPU without AVX2 (or a compiler that could not
 * build it), skipped */
static int max_nth(size_t impl)
{
    if (impl == IMPL_AVX2) {
        static int usable = -1;
        if (usable < 0) {
            usable = kgta_usable();
            if (!usable) printf("    the avx2 build is not run here (no AVX2, or not built by this compiler)\n");
        }
        return usable ? 3 : 0;
    }
    return impl == IMPL_CUDA ? 1 : 3;
}

static const int TYPES[] = {KGT_F32,  KGT_F16,  KGT_BF16, KGT_Q8_0, KGT_Q4_0,   KGT_Q4_1,  KGT_Q4_K, KGT_Q6_K,
                            KGT_Q5_0, KGT_Q5_1, KGT_Q5_K, KGT_Q3_K, KGT_Q2_K, KGT_IQ4_NL, KGT_IQ4_XS};
enum { N_TYPES = sizeof TYPES / sizeof *TYPES };

static const char *tname(int t)
{
    switch (t) {
    case KGT_F32: return "F32";
    case KGT_F16: return "F16";
    case KGT_BF16: return "BF16";
    case KGT_Q8_0: return "Q8_0";
    case KGT_Q4_0: return "Q4_0";
    case KGT_Q4_1: return "Q4_1";
    case KGT_Q4_K: return "Q4_K";
    case KGT_Q6_K: return "Q6_K";
    case KGT_Q5_0: return "Q5_0";
    case KGT_Q5_1: return "Q5_1";
    case KGT_Q5_K: return "Q5_K";
    case KGT_Q3_K: return "Q3_K";
    case KGT_Q2_K: return "Q2_K";
    case KGT_IQ4_NL: return "IQ4_NL";
    case KGT_IQ4_XS: return "IQ4_XS";
    default: return "?";
    }
}

static int is_quant(int t) { return ref_block_elems(t) > 1; }
static int is_kquant(int t) { return ref_block_elems(t) == 256; }

/* weights whose dequantization has a multiply-add (q d + m, d sc q - dmin
 * m), which the kernels may fuse into one rounding */
static int has_fma(int t)
{
    return t == KGT_Q4_1 || t == KGT_Q4_K || t == KGT_Q5_1 || t == KGT_Q5_K || t == KGT_Q2_K;
}

/* the int8 types whose quants the VNNI path biases to unsigned (the
 * portable-biased-q8 build runs them with act Q8) */
static int is_biased(int t) { return t == KGT_Q8_0 || t == KGT_IQ4_NL || t == KGT_IQ4_XS; }

/* ───────────────────────── data ───────────────────────── */

static uint64_t rng = 1;
static void seed(uint64_t s) { rng = s * 0x9E3779B97F4A7C15ull | 1; }
static uint64_t rnd(void) /* xorshift64* */
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}
static float unif(void) { return (float)(rnd() >> 40) * (2.0f / 16777216.0f) - 1.0f; } /* [-1, 1) */

/* a finite f16 with biased exponent in [elo, ehi], random sign and mantissa */
static uint16_t rnd_f16(int elo, int ehi)
{
    return (uint16_t)((rnd() & 1) << 15 | (uint64_t)(elo + (int)(rnd() % (uint64_t)(ehi - elo + 1))) << 10 |
                      (rnd() & 1023));
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

static float *rand_floats(int64_t n)
{
    float *x = xmalloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = unif();
    return x;
}

/* N rows of K elements of `type`: random bytes, with every f16 scale a
 * random finite value of magnitude 2^-8..2^-3 (f16 weights: 2^-14..2) */
static uint8_t *rand_weights(int type, int64_t N, int64_t K)
{
    const int64_t n = ref_row_bytes(type, K) * N, be = ref_block_elems(type), bb = ref_row_bytes(type, be);
    uint8_t *w = xmalloc((size_t)n);
    for (int64_t i = 0; i < n; i += 8) {
        const uint64_t r = rnd();
        memcpy(w + i, &r, (size_t)(n - i < 8 ? n - i : 8));
    }
    for (int64_t i = 0; i < n / bb; i++) {
        uint8_t *b = w + i * bb;
        switch (type) {
        case KGT_F32: { float f = unif(); memcpy(b, &f, 4); break; }
        case KGT_F16: put16(b, rnd_f16(1, 15)); break;
        case KGT_BF16: { float f = unif(); uint32_t u; memcpy(&u, &f, 4); put16(b, (uint16_t)(u >> 16)); break; }
        case KGT_Q8_0: case KGT_Q4_0: case KGT_Q5_0: case KGT_IQ4_NL: case KGT_IQ4_XS: put16(b, rnd_f16(7, 12)); break;
        case KGT_Q4_1: case KGT_Q4_K: case KGT_Q5_1: case KGT_Q5_K:
            put16(b, rnd_f16(7, 12));
            put16(b + 2, rnd_f16(7, 12));
            break;
        case KGT_Q6_K: put16(b + 208, rnd_f16(7, 12)); break;
        case KGT_Q3_K: put16(b + 108, rnd_f16(7, 12)); break;
        case KGT_Q2_K: put16(b + 80, rnd_f16(7, 12)); put16(b + 82, rnd_f16(7, 12)); break;
        default: break;
        }
    }
    return w;
}

static float *dequant_matrix(int type, const uint8_t *w, int64_t N, int64_t K)
{
    float *f = xmalloc((size_t)(N * K) * sizeof *f);
    for (int64_t n = 0; n < N; n++) ref_dequant_row(type, w + n * ref_row_bytes(type, K), K, f + n * K);
    return f;
}

/* the error measure of the header comment (NaN in y: NaN, which fails) */
static double nerr(const float *y, const double *ref, const double *mag, int64_t n, int64_t K)
{
    double num = 0, den = 0, dm = 0;
    for (int64_t i = 0; i < n; i++) {
        num += (y[i] - ref[i]) * (y[i] - ref[i]);
        den += ref[i] * ref[i];
        dm += mag[i] * mag[i] / (double)K;
    }
    den = den > dm ? den : dm;
    return sqrt(num / (den > 0 ? den : 1));
}

/* ───────────────────────── dequantization (kgt_embed) ───────────────────────── */

/* Compares out[m] with the reference dequantization of table row ids[m],
 * times scale (kgt_embed's scale: one f32 product per value). Exact,
 * except where the kernel may fuse q*d + m into one rounding (has_fma:
 * Q4_1, Q5_1, Q4_K, Q5_K, Q2_K): within 2.5e-7 of the row's largest
 * magnitude (2 ulps). */
static void check_rows(const char *who, int type, const uint8_t *table, const int32_t *ids, int64_t M, int64_t K,
                       const float *out, float scale)
{
    float *ref = xmalloc((size_t)K * sizeof *ref);
    int bad = 0;
    for (int64_t m = 0; m < M && bad < 3; m++) {
        ref_dequant_row(type, table + ids[m] * ref_row_bytes(type, K), K, ref);
        for (int64_t k = 0; k < K; k++) ref[k] *= scale;
        float rmax = 0;
        for (int64_t k = 0; k < K; k++) rmax = isfinite(ref[k]) ? fmaxf(rmax, fabsf(ref[k])) : rmax;
        const double tol = has_fma(type) ? 2.5e-7 * rmax : 0;
        for (int64_t k = 0; k < K && bad < 3; k++) {
            const float a = out[m * K + k], b = ref[k];
            if (a == b || (isnan(a) && isnan(b)) || fabs((double)a - b) <= tol) continue;
            kt_fail(__FILE__, __LINE__, "%s %s: row %" PRId64 " (id %d) element %" PRId64 ": %.9g, reference %.9g", who,
                    tname(type), m, ids[m], k, a, b);
            bad++;
        }
    }
    free(ref);
}

/* kgt_embed of implementations i0..i1-1 against the reference
 * dequantization, for the first nt of TYPES: scale 1 with every thread
 * count, and Gemma's sqrt(640) with one */
static void dequant_cases(size_t i0, size_t i1, size_t nt)
{
    seed(1);
    for (size_t ti = 0; ti < nt; ti++) {
        const int type = TYPES[ti];
        const int64_t K = is_quant(type) ? 512 : 1000, rows = 7, M = 9;
        uint8_t *table = rand_weights(type, rows, K);
        const int32_t ids[9] = {3, 0, 6, 1, 1, 5, 2, 4, 0};
        float *out = xmalloc((size_t)(M * K) * sizeof *out);
        for (size_t ii = i0; ii < i1; ii++)
            for (int nth = 1; nth <= max_nth(ii); nth++)
                for (int sc = 0; sc <= (nth == 1); sc++) {
                    const double scale = sc ? sqrt(640.0) : 1.0;
                    for (int64_t i = 0; i < M * K; i++) out[i] = NAN;
                    void *p[3] = {table, (void *)ids, out};
                    for (int ith = 0; ith < nth; ith++) IMPLS[ii].embed(p, ith, nth, type, M, K, scale, 0, KGT_F32, KGT_LAYOUT_ROWS);
                    check_rows(IMPLS[ii].name, type, table, ids, M, K, out, (float)scale);
                }
        free(out);
        free(table);
    }
    /* F16 and BF16: every one of the 65536 bit patterns (subnormals, inf,
     * NaN), as one row (the vector path) and as 65536 rows of K = 1 (the
     * element path of a row's tail) */
    const int halves[2] = {KGT_F16, KGT_BF16};
    uint8_t *table = xmalloc(65536 * 2);
    float *out = xmalloc(65536 * sizeof *out);
    int32_t *all = xmalloc(65536 * sizeof *all);
    for (int32_t i = 0; i < 65536; i++) {
        put16(table + 2 * i, (uint16_t)i);
        all[i] = i;
    }
    for (int h = 0; h < 2; h++)
        for (size_t ii = i0; ii < i1; ii++) {
            if (!max_nth(ii)) continue;
            const int32_t id = 0;
            void *p[3] = {table, (void *)&id, out};
            IMPLS[ii].embed(p, 0, 1, halves[h], 1, 65536, 1.0, 0, KGT_F32, KGT_LAYOUT_ROWS);
            check_rows(IMPLS[ii].name, halves[h], table, &id, 1, 65536, out, 1.0f);
            void *p1[3] = {table, all, out};
            IMPLS[ii].embed(p1, 0, 1, halves[h], 65536, 1, 1.0, 0, KGT_F32, KGT_LAYOUT_ROWS);
            check_rows(IMPLS[ii].name, halves[h], table, all, 65536, 1, out, 1.0f);
        }
    free(all);
    free(out);
    free(table);
}

KT_TEST(kernels_mm_dequant) { dequant_cases(0, IMPL_CUDA, N_TYPES); }

/* ───────────────────────── kgt_quantize ───────────────────────── */

/* kgt_quantize of implementations i0..i1-1, bit for bit the reference rule */
static void quantize_cases(size_t i0, size_t i1)
{
    seed(2);
    const int64_t M = 5, K = 256, nb = M * K / 32;
    float *x = rand_floats(M * K);
    /* special blocks: all zero; one nonzero; exact ties (amax 127 -> id 1:
     * x.5 rounds to even); subnormals; huge; mixed magnitudes */
    memset(x, 0, 32 * sizeof *x);
    memset(x + 32, 0, 32 * sizeof *x);
    x[32 + 7] = -3.25f;
    for (int j = 0; j < 32; j++) x[64 + j] = (float)(j - 16) + 0.5f;
    x[64] = 127.0f;
    for (int j = 0; j < 32; j++) x[96 + j] = (float)(j + 1) * 1e-40f * (j & 1 ? -1 : 1);
    for (int j = 0; j < 32; j++) x[128 + j] = unif() * 1e30f;
    for (int j = 0; j < 32; j++) x[160 + j] = unif() * (j & 1 ? 1e-3f : 1e3f);
    kgt_q8a *ref = xmalloc((size_t)nb * sizeof *ref), *y = xmalloc((size_t)nb * sizeof *y);
    ref_quantize_q8a(x, M * K, ref);
    KT_CHECK(ref[2].qs[1] == -14 && ref[2].qs[2] == -14 && ref[2].qs[3] == -12); /* -14.5, -13.5, -12.5 */
    for (int64_t i = 0; i < nb; i++) {
        int32_t s = 0, mx = 0;
        for (int j = 0; j < 32; j++) {
            s += ref[i].qs[j];
            mx = abs(ref[i].qs[j]) > mx ? abs(ref[i].qs[j]) : mx;
        }
        const int zero = i == 0 || i == 3; /* all zeros; subnormals (amax < 2^-120) */
        KT_CHECKF(s == ref[i].sum && (zero ? mx == 0 && ref[i].d == 0 : mx == 127),
                  "reference block %" PRId64 ": sum %d/%d max %d", i, s, ref[i].sum, mx);
    }
    for (size_t ii = i0; ii < i1; ii++)
        for (int nth = 1; nth <= max_nth(ii); nth++) {
            memset(y, 0xff, (size_t)nb * sizeof *y);
            void *p[2] = {x, y};
            for (int ith = 0; ith < nth; ith++) IMPLS[ii].quantize(p, ith, nth, M, K);
            for (int64_t i = 0; i < nb; i++)
                KT_CHECKF(!memcmp(&y[i], &ref[i], sizeof *y), "%s nth %d: block %" PRId64 " differs (d %g/%g sum %d/%d)",
                          IMPLS[ii].name, nth, i, y[i].d, ref[i].d, y[i].sum, ref[i].sum);
        }
    free(x);
    free(ref);
    free(y);
}

KT_TEST(kernels_mm_quantize) { quantize_cases(0, IMPL_CUDA); }

/* ───────────────────────── kgt_mm ───────────────────────── */

typedef struct {
    int type;
    int64_t N, K;
    uint8_t *w, *wup;
    float *wf, *wupf, *bias;
    int layout;      /* what the products read: w/wup (rows), or wx/wupx rewritten into it */
    int amx;         /* kgt_mm's amx: AMX tiles for rows in blocks of 16 (native build, x16) */
    uint8_t *wx, *wupx;
} wmat;

static void wmat_init(wmat *a, int type, int64_t N, int64_t K, int with_up)
{
    a->type = type;
    a->N = N;
    a->K = K;
    a->w = rand_weights(type, N, K);
    a->wf = dequant_matrix(type, a->w, N, K);
    a->wup = with_up ? rand_weights(type, N, K) : NULL;
    a->wupf = with_up ? dequant_matrix(type, a->wup, N, K) : NULL;
    a->bias = rand_floats(N);
    a->layout = KGT_LAYOUT_ROWS;
    a->amx = 0;
    a->wx = a->wupx = NULL;
}

/* the rows of w rewritten into `layout` by the generator's own code (gen/layout.c) */
static uint8_t *rewrite(int layout, int type, const uint8_t *w, int64_t N, int64_t K)
{
    const int g = gen_layout_group(layout);
    const uint64_t rb = (uint64_t)ref_row_bytes(type, K);
    uint8_t *out = xmalloc((size_t)(rb * (uint64_t)N));
    for (int64_t r0 = 0; r0 < N; r0 += g) {
        const uint8_t *rows[16];
        for (int i = 0; i < g; i++) rows[i] = w + (uint64_t)(r0 + i) * rb;
        gen_layout_write(layout, type, K, rows, rb, out + (uint64_t)r0 * rb);
    }
    return out;
}

static void wmat_layout(wmat *a, int layout)
{
    free(a->wx);
    free(a->wupx);
    a->layout = layout;
    a->wx = rewrite(layout, a->type, a->w, a->N, a->K);
    a->wupx = a->wup ? rewrite(layout, a->type, a->wup, a->N, a->K) : NULL;
}

static void wmat_free(wmat *a)
{
    free(a->w);
    free(a->wf);
    free(a->wup);
    free(a->wupf);
    free(a->bias);
    free(a->wx);
    free(a->wupx);
}

static void run_mm(const impl *im, int nth, const wmat *a, int act, const void *xin, void *y, const float *res,
                   int64_t M, int flags)
{
    const int x = a->layout != KGT_LAYOUT_ROWS;
    void *p[6] = {x ? a->wx : a->w, (void *)xin, y, a->bias, (void *)res, x ? a->wupx : a->wup};
    /* x16, x16b: the decode's software prefetch on, at the default distance (it
     * reads past the matrix's end, which a prefetch may) */
    const int64_t pf = a->layout != KGT_LAYOUT_ROWS ? 2048 : 0;
    /* M > 16: activation rows in blocks of 16 (the smallest `mb`), so the
     * block loop runs more than once (with the default 256 KiB it runs once
     * at these widths: the models' tests run it so); odd M: chunks of 16
     * channels (`nc`), even M: the default 32; tiles (`mt`) of 6 rows for
     * odd M (5: one tile, 17: 6 + 6 + 4 + 1), 8 for M >= 16, else 4 */
    const int64_t mb = M > 16 ? 0 : 262144, nc = M % 2 ? 16 : 32, mt = M % 2 ? 6 : M >= 16 ? 8 : 4;
    for (int ith = 0; ith < nth; ith++)
        im->mm(p, ith, nth, a->type, act, M, a->N, a->K, flags, 0, a->layout, a->amx, pf, mb, nc, mt);
}

typedef struct {
    int nth_lo, nth_hi; /* thread counts to run */
    size_t n_impls;     /* the first n of IMPLS (1: native only) */
    size_t first;       /* ... from this one */
} mm_runs;

/* the largest errors seen, per measure, printed by each product test */
static double max_f32, max_q8, max_q8_loose;

static void print_max_errors(void)
{
    printf("    largest errors: act f32 %.2g, act q8 %.2g (tolerance %g); act q8 vs f32 activations %.2g (bounded per output)\n",
           max_f32, max_q8, TOL_F32, max_q8_loose);
    max_f32 = max_q8 = max_q8_loose = 0;
}

/* One product, checked in every build and thread count of `runs`. */
static void check_mm(const wmat *a, int act, int64_t M, int flags, mm_runs runs)
{
    const int64_t N = a->N, K = a->K;
    float *x = rand_floats(M * K), *res = rand_floats(M * N);
    float *yf = xmalloc((size_t)(M * N) * sizeof *yf), *deq = xmalloc((size_t)(M * N) * sizeof *deq);
    kgt_q8a *xq = NULL, *yq = NULL, *yq_ref = NULL;
    const float *xref = x;
    float *xdq = NULL;
    if (act == KGT_ACT_Q8) {
        xq = xmalloc((size_t)(M * K / 32) * sizeof *xq);
        xdq = xmalloc((size_t)(M * K) * sizeof *xdq);
        ref_quantize_q8a(x, M * K, xq);
        ref_dequant_q8a(xq, M * K, xdq);
        xref = xdq;
    }
    const int fflags = flags & ~KGT_EPI_OUT_Q8;
    double *yt = xmalloc((size_t)(M * N) * sizeof *yt), *mag = xmalloc((size_t)(M * N) * sizeof *mag);
    double *yl = NULL, *bound = NULL;
    ref_mm(a->wf, a->wupf, xref, a->bias, res, M, N, K, fflags, yt, mag);
    if (act == KGT_ACT_Q8 && K * N <= (1 << 20)) {
        yl = xmalloc((size_t)(M * N) * sizeof *yl);
        bound = xmalloc((size_t)(M * N) * sizeof *bound);
        ref_mm_q8_bound(a->wf, a->wupf, x, xdq, a->bias, res, M, N, K, fflags, yl, bound);
    }
    if (flags & KGT_EPI_OUT_Q8) {
        yq = xmalloc((size_t)(M * N / 32) * sizeof *yq);
        yq_ref = xmalloc((size_t)(M * N / 32) * sizeof *yq_ref);
    }
    const void *xin = act == KGT_ACT_Q8 ? (const void *)xq : (const void *)x;
    for (size_t ii = runs.first; ii < runs.first + runs.n_impls; ii++)
        for (int nth = runs.nth_lo; nth <= runs.nth_hi; nth++) {
            const impl *im = &IMPLS[ii];
            if (im->mm == kgtb_mm && !(is_biased(a->type) && act == KGT_ACT_Q8)) continue; /* = portable */
            if (ii == IMPL_AVX2 && ((act != KGT_ACT_Q8 && a->layout == KGT_LAYOUT_ROWS) || !max_nth(ii)))
                continue; /* rows, act F32: native's code */
            char what[160];
            snprintf(what, sizeof what, "%s %s act %s M %" PRId64 " N %" PRId64 " K %" PRId64 " flags %d nth %d",
                     im->name, tname(a->type), act == KGT_ACT_Q8 ? "q8" : "f32", M, N, K, flags, nth);
            /* f32 output; with nth 2 the residual is Y itself */
            const int alias = (fflags & KGT_EPI_RESIDUAL) && nth == 2;
            if (alias) memcpy(yf, res, (size_t)(M * N) * sizeof *yf);
            else for (int64_t i = 0; i < M * N; i++) yf[i] = NAN;
            run_mm(im, nth, a, act, xin, yf, alias ? yf : res, M, fflags);
            const double e = nerr(yf, yt, mag, M * N, K);
            double *mx = act == KGT_ACT_Q8 ? &max_q8 : &max_f32;
            *mx = e > *mx ? e : *mx;
            KT_CHECKF(e <= TOL_F32, "%s: error %.3g vs the reference (tolerance %g)", what, e, TOL_F32);
            if (yl) {
                const double el = nerr(yf, yl, mag, M * N, K);
                max_q8_loose = el > max_q8_loose ? el : max_q8_loose;
                int64_t over = 0, first = -1;
                for (int64_t i = 0; i < M * N; i++)
                    if (!(fabs(yf[i] - yl[i]) <= bound[i] + TOL_F32 * mag[i])) first = first < 0 ? i : first, over++;
                KT_CHECKF(!over, "%s: %" PRId64 " outputs off the f32-activation reference by more than the q8 bound, "
                          "first [%" PRId64 "]: %.9g vs %.9g, bound %.3g", what, over, first, first < 0 ? 0 : yf[first],
                          first < 0 ? 0 : yl[first], first < 0 ? 0 : bound[first]);
            }
            if (!(flags & KGT_EPI_OUT_Q8)) continue;
            memset(yq, 0xff, (size_t)(M * N / 32) * sizeof *yq);
            run_mm(im, nth, a, act, xin, yq, res, M, flags);
            ref_quantize_q8a(yf, M * N, yq_ref);
            ref_dequant_q8a(yq, M * N, deq);
            double bound = 0, diff = 0;
            for (int64_t i = 0; i < M * N / 32; i++) {
                KT_CHECKF(!memcmp(&yq[i], &yq_ref[i], sizeof *yq), "%s: q8 output block %" PRId64 " is not the f32 output quantized", what, i);
                bound += 32 * (0.50001 * yq_ref[i].d) * (0.50001 * yq_ref[i].d);
            }
            for (int64_t i = 0; i < M * N; i++) diff += ((double)deq[i] - yf[i]) * ((double)deq[i] - yf[i]);
            KT_CHECKF(sqrt(diff) <= sqrt(bound), "%s: q8 output off by %.3g (rounding bound %.3g)", what, sqrt(diff), sqrt(bound));
        }
    free(x);
    free(res);
    free(yf);
    free(deq);
    free(xq);
    free(xdq);
    free(yt);
    free(mag);
    free(yl);
    free(bound);
    free(yq);
    free(yq_ref);
}

static const int EPIS[] = {0, KGT_EPI_BIAS, KGT_EPI_RESIDUAL, KGT_EPI_SWIGLU, KGT_EPI_OUT_Q8,
                           KGT_EPI_BIAS | KGT_EPI_RESIDUAL | KGT_EPI_SWIGLU | KGT_EPI_OUT_Q8,
                           KGT_EPI_GEGLU | KGT_EPI_OUT_Q8};

static int n_acts(int type) { return is_quant(type) ? 2 : 1; }

/* the sanitizer build's subset of EPIS (KT_SANITIZED): none, all of them
 * at once, GEGLU with the q8 output (every write path and bound) */
static int san_skip_epi(size_t ei) { return KT_SANITIZED && ei != 0 && ei != 5 && ei != 6; }

/* every type x act x epilogue x M x nth, both builds, on small shapes (the
 * sanitizer build: san_skip_epi's epilogues, M 1, 5 and 16) */
KT_TEST(kernels_mm_small)
{
    seed(3);
    static const int64_t Ms[] = {1, 2, 5, 16};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const int type = TYPES[ti];
        const int64_t kmin = is_quant(type) ? ref_block_elems(type) : 1;
        /* (K, N): format minimum K with N = 1 and a prime; then N = 64 with
         * K = 33 (float: not a SIMD multiple) or 2 blocks; then a SmolLM2-
         * like layer (K-quants: 512, as 576 is not a multiple of 256) */
        const int64_t shapes[4][2] = {
            {kmin, 1},
            {is_quant(type) ? kmin : 1000, 97},
            {is_quant(type) ? 2 * kmin : 33, 96},
            {is_kquant(type) ? 512 : 576, 192},
        };
        for (int si = 0; si < 4; si++) {
            wmat a;
            wmat_init(&a, type, shapes[si][1], shapes[si][0], 1);
            for (int act = 0; act < n_acts(type); act++)
                for (size_t ei = 0; ei < sizeof EPIS / sizeof *EPIS; ei++) {
                    if ((EPIS[ei] & KGT_EPI_OUT_Q8) && a.N % 32) continue;
                    if (san_skip_epi(ei)) continue;
                    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
                        if (!KT_SANITIZED || Ms[mi] != 2)
                            check_mm(&a, act, Ms[mi], EPIS[ei], (mm_runs){1, 3, IMPL_CUDA, 0});
                }
            wmat_free(&a);
        }
    }
    print_max_errors();
}

/* the real layers' shapes, every type, native build */
KT_TEST(kernels_mm_models)
{
    seed(4);
    static const int64_t shapes[][2] = {
        {576, 576}, {576, 192}, {576, 1536}, {1536, 576},                 /* SmolLM2-135M */
        {2048, 2048}, {2048, 256}, {2048, 5632}, {5632, 2048},            /* TinyLlama-1.1B */
    };
    static const int epis[] = {KGT_EPI_RESIDUAL, 0, KGT_EPI_SWIGLU, KGT_EPI_RESIDUAL,
                               KGT_EPI_OUT_Q8, 0, KGT_EPI_SWIGLU | KGT_EPI_OUT_Q8, KGT_EPI_RESIDUAL | KGT_EPI_BIAS};
    for (size_t ti = 0; ti < N_TYPES; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            const int type = TYPES[ti];
            int64_t K = shapes[si][0];
            if (is_kquant(type) && K % 256) K = K / 256 * 256 + 256; /* 576 -> 768, 1536 ok */
            wmat a;
            wmat_init(&a, type, shapes[si][1], K, (epis[si] & (KGT_EPI_SWIGLU | KGT_EPI_GEGLU)) != 0);
            for (int act = 0; act < n_acts(type); act++) {
                check_mm(&a, act, 1, epis[si], (mm_runs){2, 2, 1, 0});
                if (K * a.N <= (1 << 20)) check_mm(&a, act, 5, epis[si], (mm_runs){2, 2, 1, 0});
            }
            wmat_free(&a);
        }
    /* SmolLM2's tied output projection: 49152 rows of Q8_0 */
    wmat a;
    wmat_init(&a, KGT_Q8_0, 49152, 576, 0);
    for (int act = 0; act < 2; act++) check_mm(&a, act, 1, 0, (mm_runs){2, 2, 1, 0});
    wmat_free(&a);
    print_max_errors();
}

/* may the native build's products use AMX here? (the test asks Linux for
 * the tile state as a model's open does) */
static int amx_usable(void)
{
    static int usable = -1;
    if (usable < 0) {
        char why[200];
        usable = kgr_amx_enable(why, sizeof why); /* -march=native: AMX code where the CPU has AMX */
        if (!usable) printf("    AMX is not run here: %s\n", why);
    }
    return usable;
}

/* The x16 layout (gen/layout.c's rewriting read by mm_x16.h's tile): its
 * types with act q8, every epilogue, M 1, 2, 5, 16, 64 (one and several
 * tiles of 4 rows, a clamped last tile), nth 1-3 (shares of 16 and 32
 * rows; the sanitizer build as kernels_mm_small), in the native build
 * (AVX-512 VNNI's vpdpbusd where the CPU has it)
 * and, on the two smaller shapes, the portable one (the same arithmetic in
 * C), and on the three smaller the AVX2 build, against the same
 * references and tolerances as GGUF's rows; and, where the CPU has AMX, the
 * native build's AMX tiles (mm_amx.h; Q4_0, Q4_1, Q8_0) for M 16, 21
 * and 64. The K-quants and IQ4_XS: K rounded up to their 256-element blocks.
 * F32, F16, BF16 (act f32: the float tile mm_tile_x16f), K 65 among the
 * shapes. Then shapes and types it must refuse. */
KT_TEST(kernels_mm_x16)
{
    seed(6);
    static const int types[] = {KGT_Q4_0, KGT_Q4_1, KGT_Q8_0, KGT_Q4_K, KGT_Q5_0, KGT_Q5_1, KGT_IQ4_NL, KGT_IQ4_XS, KGT_Q5_K, KGT_Q6_K, KGT_Q3_K, KGT_Q2_K, KGT_F32, KGT_F16, KGT_BF16};
    static const int64_t shapes[][2] = {{32, 16}, {64, 96}, {576, 192}, {1536, 576}}; /* (K, N) */
    static const int64_t Ms[] = {1, 2, 5, 16, 64};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            const int k16 = types[ti] == KGT_Q6_K || types[ti] == KGT_Q3_K || types[ti] == KGT_Q2_K;
            if (k16 && si == 3) continue; /* one tile for the three: not the largest shape (test time) */
            wmat a;
            const int64_t be = ref_block_elems(types[ti]), K = (shapes[si][0] + be - 1) / be * be + (be == 1 && si == 1);
            const int act = is_quant(types[ti]) ? KGT_ACT_Q8 : KGT_ACT_F32; /* float weights: K 65, not a multiple of 16 */
            wmat_init(&a, types[ti], shapes[si][1], K, 1);
            KT_CHECKF(gen_layout_fits(KGT_LAYOUT_X16, a.type, a.N, a.K), "x16 does not fit %s %lld x %lld", tname(a.type),
                      (long long)a.N, (long long)a.K);
            wmat_layout(&a, KGT_LAYOUT_X16);
            /* the embedding lookup of the x16 table: the rows' values exactly */
            const int32_t ids[5] = {0, (int32_t)a.N - 1, 3 % (int32_t)a.N, 15, (int32_t)a.N / 2};
            float *e = xmalloc((size_t)(5 * a.K) * sizeof *e);
            for (size_t ii = 0; ii < 2; ii++) {
                void *p[3] = {a.wx, (void *)ids, e};
                for (int ith = 0; ith < 2; ith++) IMPLS[ii].embed(p, ith, 2, a.type, 5, a.K, 1.0, 0, KGT_F32, KGT_LAYOUT_X16);
                check_rows(IMPLS[ii].name, a.type, a.w, ids, 5, a.K, e, 1.0f);
            }
            free(e);
            for (size_t ei = 0; ei < sizeof EPIS / sizeof *EPIS; ei++) {
                if ((EPIS[ei] & KGT_EPI_OUT_Q8) && a.N % 32) continue;
                if (san_skip_epi(ei)) continue;
                for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++) {
                    if (KT_SANITIZED && Ms[mi] == 2) continue;
                    if (Ms[mi] == 64 && (si < 2 || ei % 3)) continue; /* the long prefill: a few cases */
                    /* the portable build (slow C, slower still under the
                     * sanitizers) on the two small shapes */
                    const size_t n_impl = si >= 2 || Ms[mi] == 64 ? 1 : 2;
                    check_mm(&a, act, Ms[mi], EPIS[ei], (mm_runs){1, 3, n_impl, 0});
                    /* the AVX2 build (vpmaddubsw dots, F16C), which an
                     * AVX-512 CPU's native build does not run (under the
                     * sanitizers the two small shapes: test time) */
                    if (si < (KT_SANITIZED ? 2 : 3) && ei % 3 == 0) check_mm(&a, act, Ms[mi], EPIS[ei], (mm_runs){1, 3, 1, IMPL_AVX2});
                }
            }
            /* AMX (native build on an AMX CPU): blocks of 16 rows and a
             * remainder on the AVX-512 tile */
            /* AMX: Q4_0, Q4_1, Q8_0 */
            a.amx = (types[ti] == KGT_Q4_0 || types[ti] == KGT_Q4_1 || types[ti] == KGT_Q8_0) && amx_usable();
            for (size_t ei = 0; a.amx && ei < sizeof EPIS / sizeof *EPIS; ei++) {
                if ((EPIS[ei] & KGT_EPI_OUT_Q8) && a.N % 32) continue;
                static const int64_t Ma[] = {16, 21, 64};
                for (size_t mi = 0; mi < 3; mi++)
                    if ((mi == 1 || si >= 2) && (mi != 2 || ei % 3 == 0))
                        check_mm(&a, act, Ma[mi], EPIS[ei], (mm_runs){1, 3, 1, 0});
            }
            wmat_free(&a);
        }
    /* where it does not fit: N not a multiple of 16 (or 0), K not a multiple
     * of the block, other types */
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_Q4_0, 97, 64));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_Q3_K, 16, 288));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_Q2_K, 24, 256));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_Q6_K, 16, 320));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_Q4_K, 16, 288));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_F16, 40, 64));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_Q5_0, 16, 48));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_Q5_0, 8, 64));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_Q5_1, 32, 16));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_IQ4_NL, 0, 32));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_IQ4_XS, 16, 224));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_IQ4_XS, 16, 288));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_Q5_K, 16, 160));
    KT_CHECK(!gen_layout_fits(KGT_LAYOUT_X16, KGT_Q5_K, 24, 256));
    print_max_errors();
}

/* The CUDA products (make check-gpu): every type and activation mode on the
 * real layers' shapes, decode (M 1) and prefill (M 5, 8, 17: partial and
 * whole 8-token tiles), against the references the CPU templates meet, with
 * the same tolerances; the q8 output bit for bit the f32 output quantized. */
KT_TEST(gpu_mm_vs_ref)
{
    char why[600];
    if (!ktc_available(why, sizeof why)) KT_SKIP("%s", why);
    seed(5);
    static const int64_t shapes[][2] = {{576, 192}, {576, 1536}, {1536, 576}, {2048, 256}, {5632, 2048}};
    static const int epis[] = {KGT_EPI_RESIDUAL | KGT_EPI_BIAS, KGT_EPI_SWIGLU | KGT_EPI_OUT_Q8, KGT_EPI_RESIDUAL,
                               KGT_EPI_OUT_Q8, 0};
    static const int64_t Ms[] = {1, 5, 8, 17};
    /* the stand-in checks the plumbing, not the kernels: every type on one
     * of the first two shapes and its epilogue, alternately, at M 1 and 17
     * (each instance is compiled by NVRTC and the JIT) */
    const bool standin = ktc_standin();
    for (size_t ti = 0; ti < N_TYPES; ti++)
        for (size_t si = standin ? ti % 2 : 0; si < (standin ? ti % 2 + 1 : sizeof shapes / sizeof *shapes); si++) {
            const int type = TYPES[ti];
            int64_t K = shapes[si][0];
            if (is_kquant(type) && K % 256) K = K / 256 * 256 + 256;
            wmat a;
            wmat_init(&a, type, shapes[si][1], K, (epis[si] & (KGT_EPI_SWIGLU | KGT_EPI_GEGLU)) != 0);
            for (int act = 0; act < n_acts(type); act++)
                for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
                    if (!standin || Ms[mi] == 1 || Ms[mi] == 17)
                        check_mm(&a, act, Ms[mi], epis[si], (mm_runs){1, 1, 1, IMPL_CUDA});
            wmat_free(&a);
        }
    print_max_errors();
}

/* The CUDA embedding lookup and activation quantization (make check-gpu):
 * the CPU tests' cases and criteria, exact (but for Q4_1 and Q4_K's fused
 * multiply-add) and bit for bit. */
KT_TEST(gpu_embed_quantize_vs_ref)
{
    char why[600];
    if (!ktc_available(why, sizeof why)) KT_SKIP("%s", why);
    dequant_cases(IMPL_CUDA, N_IMPLS, N_TYPES);
    quantize_cases(IMPL_CUDA, N_IMPLS);
}

/* ─────────────── against llama.cpp's dequantizers (tests/ref/dequant.py) ─────────────── */

typedef struct {
    const char *what; /* for messages */
    int type;
    int64_t K, rows;
    const uint8_t *data; /* rows whole rows */
} dq_job;

/* Dequantizes the jobs' rows with dequant.py (PyPI gguf) and compares every
 * value with ref_dequant_row and with kgt_embed: the same bits (NaN: NaN),
 * or within 1e-6 of the row's largest magnitude (an fma, or numpy's order
 * of operations, may round once differently). Returns 0 if the reference
 * could not run (no Python or no gguf package), 1 otherwise. */
static int check_with_gguf_py(const dq_job *jobs, int n)
{
    enum { MAXJ = 24 };
    char paths[MAXJ][512], types[MAXJ][16], ks[MAXJ][24];
    char *argv[4 + 3 * MAXJ] = {"/usr/bin/env", (char *)kt_python(), "tests/ref/dequant.py"};
    size_t cap = 4096;
    if (n > MAXJ) n = MAXJ;
    for (int j = 0; j < n; j++) {
        snprintf(paths[j], sizeof paths[j], "%s/dq%d.bin", kt_tmpdir(), j);
        snprintf(types[j], sizeof types[j], "%s", tname(jobs[j].type));
        snprintf(ks[j], sizeof ks[j], "%" PRId64, jobs[j].K);
        FILE *f = fopen(paths[j], "wb");
        const size_t nb = (size_t)(ref_row_bytes(jobs[j].type, jobs[j].K) * jobs[j].rows);
        if (!f || fwrite(jobs[j].data, 1, nb, f) != nb || fclose(f)) {
            kt_fail(__FILE__, __LINE__, "cannot write %s", paths[j]);
            return 1;
        }
        argv[3 + 3 * j] = paths[j];
        argv[4 + 3 * j] = types[j];
        argv[5 + 3 * j] = ks[j];
        cap += (size_t)(jobs[j].rows * jobs[j].K) * 9 + 1024;
    }
    argv[3 + 3 * n] = NULL;
    char *out = xmalloc(cap), err[4096];
    const int rc = kt_run(argv, out, cap, err, sizeof err);
    if (rc == 3 || rc == 127) {
        free(out);
        return 0;
    }
    KT_CHECKF(rc == 0, "dequant.py failed (%d): %s", rc, err);
    char *line, *save = NULL, *tok, *save2;
    line = strtok_r(out, "\n", &save);
    for (int j = 0; j < n && rc == 0; j++) {
        const dq_job *jb = &jobs[j];
        const int64_t K = jb->K, rb = ref_row_bytes(jb->type, K);
        /* this job's "= FILE" line (past the rows a failed job left unread) */
        while (line && !(line[0] == '=' && strstr(line, paths[j]))) line = strtok_r(NULL, "\n", &save);
        KT_CHECKF(line != NULL, "%s: no output from dequant.py", jb->what);
        float *ref = xmalloc((size_t)K * sizeof *ref), *ker = xmalloc((size_t)K * sizeof *ker);
        int bad = 0;
        for (int64_t r = 0; r < jb->rows && bad < 3; r++) {
            line = strtok_r(NULL, "\n", &save);
            ref_dequant_row(jb->type, jb->data + r * rb, K, ref);
            const int32_t id = (int32_t)r;
            void *p[3] = {(void *)jb->data, (void *)&id, ker};
            kgt_embed(p, 0, 1, jb->type, 1, K, 1.0, 0, KGT_F32, KGT_LAYOUT_ROWS);
            float rmax = 0;
            for (int64_t k = 0; k < K; k++) rmax = isfinite(ref[k]) ? fmaxf(rmax, fabsf(ref[k])) : rmax;
            tok = line ? strtok_r(line, " ", &save2) : NULL;
            for (int64_t k = 0; k < K && bad < 3; k++, tok = strtok_r(NULL, " ", &save2)) {
                if (!tok) {
                    kt_fail(__FILE__, __LINE__, "%s row %" PRId64 ": dequant.py gave %" PRId64 " values, not %" PRId64,
                            jb->what, r, k, K);
                    bad = 3;
                    break;
                }
                const uint32_t u = (uint32_t)strtoul(tok, NULL, 16);
                float py;
                memcpy(&py, &u, 4);
                const float got[2] = {ref[k], ker[k]};
                for (int g = 0; g < 2; g++) {
                    const float a = got[g];
                    if (a == py || (isnan(a) && isnan(py)) || fabs((double)a - py) <= 1e-6 * rmax) continue;
                    kt_fail(__FILE__, __LINE__, "%s row %" PRId64 " element %" PRId64 ": %s %.9g, gguf.quants %.9g",
                            jb->what, r, k, g ? "kgt_embed" : "reference", a, py);
                    bad++;
                }
            }
        }
        line = strtok_r(NULL, "\n", &save);
        free(ref);
        free(ker);
    }
    free(out);
    return 1;
}

/* random blocks of every type (scales finite), and every f16/bf16 pattern */
KT_TEST(kernels_mm_gguf_py_random)
{
    seed(5);
    dq_job jobs[N_TYPES + 2];
    uint8_t *bufs[N_TYPES + 1];
    int n = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++, n++) {
        const int type = TYPES[ti];
        const int64_t K = is_quant(type) ? 512 : 1000;
        bufs[n] = rand_weights(type, 3, K);
        jobs[n] = (dq_job){tname(type), type, K, 3, bufs[n]};
    }
    bufs[n] = xmalloc(65536 * 2);
    for (uint32_t i = 0; i < 65536; i++) put16(bufs[n] + 2 * i, (uint16_t)i);
    jobs[n] = (dq_job){"all F16 patterns", KGT_F16, 65536, 1, bufs[n]};
    jobs[n + 1] = (dq_job){"all BF16 patterns", KGT_BF16, 65536, 1, bufs[n]};
    const int ran = check_with_gguf_py(jobs, n + 2);
    for (int i = 0; i <= n; i++) free(bufs[i]);
    if (!ran) KT_SKIP("the independent reference needs Python and its 'gguf' package (pip install gguf)");
}

/* rows of the real models' tensors: the first two and the last */
KT_TEST(kernels_mm_gguf_py_models)
{
    static const struct { const char *file, *tensor; int type; } T[] = {
        {"SmolLM2-135M-Instruct.Q4_1.gguf", "blk.0.attn_q.weight", KGT_Q4_1},
        {"SmolLM2-135M-Instruct.Q4_1.gguf", "token_embd.weight", KGT_Q8_0},
        {"gemma-3-270m-q4_k_m.gguf", "blk.0.attn_output.weight", KGT_Q4_K},
        {"gemma-3-270m-q4_k_m.gguf", "blk.0.ffn_down.weight", KGT_Q6_K},
        {"gemma-3-270m-q4_k_m.gguf", "blk.0.attn_norm.weight", KGT_F32},
        {"gemma-3-270m-q4_k_m.gguf", "blk.0.attn_q.weight", KGT_Q5_0},
    };
    enum { NT = sizeof T / sizeof *T };
    kg_gguf *g[NT] = {0};
    dq_job jobs[NT];
    uint8_t *bufs[NT] = {0};
    int n = 0;
    for (int i = 0; i < NT; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", kt_models_dir(), T[i].file);
        if (kg_gguf_open(path, &g[i]) != KG_OK) {
            for (int j = 0; j < i; j++) kg_gguf_close(g[j]);
            for (int j = 0; j < n; j++) free(bufs[j]);
            KT_SKIP("%s: %s (run 'make models')", path, kg_last_error());
        }
        const kg_tensor *t = kg_gguf_find_tensor(g[i], T[i].tensor);
        KT_CHECKF(t && (int)t->type == T[i].type, "%s: %s missing or not %s", T[i].file, T[i].tensor, tname(T[i].type));
        if (!t || (int)t->type != T[i].type) continue;
        const int64_t K = (int64_t)t->ne[0], N = (int64_t)(t->n_elements / t->ne[0]), rb = ref_row_bytes(T[i].type, K);
        const int64_t rows[3] = {0, 1, N - 1}, nr = N >= 3 ? 3 : N;
        bufs[n] = xmalloc((size_t)(nr * rb));
        for (int64_t r = 0; r < nr; r++) memcpy(bufs[n] + r * rb, (const uint8_t *)t->data + rows[r] * rb, (size_t)rb);
        jobs[n] = (dq_job){T[i].tensor, T[i].type, K, nr, bufs[n]};
        n++;
    }
    const int ran = check_with_gguf_py(jobs, n);
    for (int i = 0; i < NT; i++) kg_gguf_close(g[i]);
    for (int i = 0; i < n; i++) free(bufs[i]);
    if (!ran) KT_SKIP("the independent reference needs Python and its 'gguf' package (pip install gguf)");
}

/* Column slices: products of different weight types writing their columns
 * of one wider row (ldy), as the Q, K and V products of a mixed-type layer
 * do, give what each writes alone, and leave the other columns untouched;
 * with the residual epilogue reading the slice's columns too. For
 * implementations i0..i1-1 (gpu_mm_slices: the CUDA one). */
static void slices_cases(size_t i0, size_t i1)
{
    static const struct { int type; int64_t N; } part[3] = {{KGT_Q4_K, 64}, {KGT_Q8_0, 32}, {KGT_F16, 32}};
    const int64_t K = 256, ldy = 128;
    rng = 21;
    for (size_t im = i0; im < i1; im++)
        for (int64_t M = 1; M <= 5; M += 4)
            for (int fl = 0; fl <= KGT_EPI_RESIDUAL; fl += KGT_EPI_RESIDUAL)
                for (int nth = 1; nth <= max_nth(im); nth += 2) {
                    float *x = rand_floats(M * K), *y = xmalloc((size_t)(M * ldy) * sizeof *y);
                    float *res = rand_floats(M * ldy);
                    for (int64_t i = 0; i < M * ldy; i++) y[i] = fl ? res[i] : -7.0f; /* sentinel */
                    int64_t c0 = 0;
                    double worst = 0;
                    for (int s = 0; s < 3; s++) {
                        wmat a;
                        wmat_init(&a, part[s].type, part[s].N, K, 0);
                        float *alone = xmalloc((size_t)(M * a.N) * sizeof *alone), *r1 = xmalloc((size_t)(M * a.N) * sizeof *r1);
                        for (int64_t m = 0; m < M; m++) memcpy(r1 + m * a.N, res + m * ldy + c0, (size_t)a.N * sizeof *r1);
                        run_mm(&IMPLS[im], nth, &a, KGT_ACT_F32, x, alone, r1, M, fl);
                        void *p[6] = {a.w, x, y + c0, a.bias, y + c0, NULL};
                        for (int ith = 0; ith < nth; ith++)
                            IMPLS[im].mm(p, ith, nth, a.type, KGT_ACT_F32, M, a.N, K, fl, ldy, KGT_LAYOUT_ROWS, 0, 0, 262144, 16, 4);
                        for (int64_t m = 0; m < M; m++)
                            for (int64_t n = 0; n < a.N; n++) {
                                double d = fabs((double)y[m * ldy + c0 + n] - alone[m * a.N + n]);
                                worst = d > worst ? d : worst;
                            }
                        c0 += a.N;
                        free(alone);
                        free(r1);
                        wmat_free(&a);
                    }
                    KT_CHECKF(worst == 0, "%s: M %lld flags %d threads %d: slices differ from the products alone by %g",
                              IMPLS[im].name, (long long)M, fl, nth, worst);
                    for (int64_t m = 0; m < M; m++) /* columns past the slices: untouched */
                        for (int64_t n = c0; n < ldy; n++)
                            KT_CHECKF(y[m * ldy + n] == (fl ? res[m * ldy + n] : -7.0f), "%s: column %lld of row %lld written",
                                      IMPLS[im].name, (long long)n, (long long)m);
                    free(x);
                    free(y);
                    free(res);
                }
}

KT_TEST(kernels_mm_slices) { slices_cases(0, 2); }

/* the CUDA products' slices (make check-gpu): the LDY instances against the
 * plain ones, bit for bit */
KT_TEST(gpu_mm_slices)
{
    char why[600];
    if (!ktc_available(why, sizeof why)) KT_SKIP("%s", why);
    slices_cases(IMPL_CUDA, N_IMPLS);
}
