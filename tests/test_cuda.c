/*
 * test_cuda.c — the CUDA backend on a machine without a GPU (make check):
 *
 *   cuda_kernels_smollm2     every CUDA kernel instance of the real SmolLM2
 *                            compiles through NVRTC for sm_80 and sm_90, and
 *                            none spills (ptxas's report, per kernel)
 *   cuda_kernels_tinyllama   the same for the TinyLlama-1.1B shape (22 layers,
 *                            2048 embedding, 32/4 heads, 5632 feed-forward,
 *                            32000 vocabulary, separate output): a synthetic
 *                            GGUF whose data is a hole (only shapes matter)
 *   cuda_kernels_types       every type kgen_types.h marks kernels = 1: its
 *                            products (decode and prefill, act q8 and f32;
 *                            no epilogue, bias + residual, swiglu + q8
 *                            output) and embedding lookup compile for sm_80
 *                            and sm_90, none spills
 *   cuda_kernels_ops         the kernels of total lowering (rope out of
 *                            place, kv_store, add, glu) and products writing
 *                            a column slice (ldy), at the edges of their
 *                            shapes; what the backend refuses, it says why
 *   cuda_kernels_params      the parameters of issue 15 (embedding scale,
 *                            RMSNorm groups, RoPE frequency factors,
 *                            rope_kv's QK-norm, attention scale and sliding
 *                            window, softcap) at the shapes of Gemma 3,
 *                            Qwen3 and Llama 3.2: sm_80 and sm_90, no
 *                            spills; the grids they set
 *   cuda_kernels_mixed       a model whose layer 0 has a Q4_0 K among Q8_0
 *                            (its Q, K and V products write slices of one
 *                            row: ldy), and the same model with every fusion
 *                            off (KGEN_NOFUSE=all: rope, kv_store, add,
 *                            glu): every instance of both, sm_80 and sm_90
 *   cuda_kernels_encoder     the encoder's kernels (issue 16): products
 *                            with the exact-GELU epilogue (float, Q8_0 and
 *                            K-quant weights, act f32 and q8, decode and
 *                            prefill), embedding lookup with position and
 *                            token-type tables (f32, f16, bf16), encoder
 *                            attention (MiniLM's 12 x 32 heads at L 128
 *                            and 256, head_dim 64 and 128) and pooling
 *                            (every mode, with and without the norm): sm_80
 *                            and sm_90, no spills; their grids, and what
 *                            the backend refuses, saying why
 *   cuda_no_driver           a model compiled for CUDA, opened without a
 *                            driver (KGEN_LIBCUDA pointing nowhere): exit 1
 *                            and a message that says why; bad --target values
 *
 * The registers per kernel are printed (KT_SHOW=1 shows the whole table).
 * Running the kernels is `make check-gpu`'s job (tests/gpu/).
 */
#include "config.h"
#include "cuda.h"
#include "kgen.h"
#include "kt.h"
#include "kt_cuda.h"
#include "kgen_types.h"
#include "templates/cpu/kernel.h"
#include "templates/cpu/ops.h"
#include "tiny_llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_out[1 << 20], g_err[1 << 16];

static int kgen(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4, const char *a5,
                const char *a6)
{
    char *argv[] = {(char *)kt_kgen_bin(), (char *)a0, (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5,
                    (char *)a6, NULL};
    return kt_run(argv, g_out, sizeof g_out, g_err, sizeof g_err);
}

static void cache_env(void)
{
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/cache", kt_tmpdir());
    mkdir(dir, 0700);
    setenv("KGEN_CACHE_DIR", dir, 1);
}

/* every instance of `model` compiles for sm with no spills */
static void kernels_for(const char *model, const char *sm, int want_min)
{
    char target[32];
    snprintf(target, sizeof target, "cuda:%s", sm);
    int rc = kgen("kernels", model, "--target", target, "--json", "--no-cache", NULL);
    KT_CHECKF(rc == 0, "kgen kernels %s --target %s exited %d: %s", model, target, rc, g_err);
    if (rc) return;
    const char *n = strstr(g_out, "\"instances\": ");
    int ni = n ? atoi(n + 13) : 0, seen = 0, maxr = 0;
    KT_CHECKF(ni >= want_min, "%s: %d instances, expected at least %d", model, ni, want_min);
    char summary[2048] = "";
    for (const char *p = g_out; (p = strstr(p, "\"expr\": \"")); p++) {
        const char *e = p + 9, *q = strchr(e, '"');
        const char *r = strstr(p, "\"regs\": "), *s = strstr(p, "\"spill_bytes\": ");
        if (!q || !r || !s) break;
        int regs = atoi(r + 8), spill = atoi(s + 15);
        KT_CHECKF(regs > 0, "%s: %.*s: no register count from ptxas", sm, (int)(q - e), e);
        KT_CHECKF(spill == 0, "%s: %.*s spills %d bytes to local memory", sm, (int)(q - e), e, spill);
        maxr = regs > maxr ? regs : maxr;
        size_t L = strlen(summary);
        snprintf(summary + L, sizeof summary - L, "%s%d", seen ? "," : "", regs);
        seen++;
    }
    KT_CHECKF(seen == ni, "%s: %d kernels in the report, %d instances", sm, seen, ni);
    printf("    %s %s: %d kernels, 0 spilling, registers %s (max %d)\n", strrchr(model, '/') ? strrchr(model, '/') + 1 : model,
           sm, seen, summary, maxr);
    if (getenv("KT_SHOW")) kgen("kernels", model, "--target", target, NULL, NULL, NULL), fputs(g_out, stdout);
}

static bool have_nvrtc(void)
{
    return KGEN_HAVE_CUDA != 0;
}

KT_TEST(cuda_kernels_smollm2)
{
    if (!have_nvrtc()) KT_SKIP("built without the CUDA toolkit (configure found no NVRTC)");
    char model[512];
    snprintf(model, sizeof model, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", kt_models_dir());
    if (access(model, R_OK)) KT_SKIP("%s not found: run 'make models'", model);
    cache_env();
    kernels_for(model, "sm_80", 10);
    kernels_for(model, "sm_90", 10);
}

/* LayerNorm: no supported architecture emits it yet, so its instances are
 * made here (as lowering would: M constant 1, or bound at run time). */
static gen_kinst norm_inst(const char *tmpl, bool m_runtime, int64_t K, int64_t flags, double eps)
{
    static const char *const names[] = {"M", "K", "flags"};
    const int64_t vals[] = {1, K, flags};
    gen_kinst k = ktc_inst(tmpl, 3, names, vals, m_runtime);
    ktc_param_f(&k, "eps", eps);
    return k;
}

KT_TEST(cuda_kernels_layernorm)
{
    if (!have_nvrtc()) KT_SKIP("built without the CUDA toolkit (configure found no NVRTC)");
    gen_kinst k[4] = {norm_inst("layernorm", false, 2048, 3, 1e-5), norm_inst("layernorm", true, 768, 0, 1e-6),
                      norm_inst("layernorm", true, 576, 1, 1e-5), norm_inst("rmsnorm", false, 576, 1, 1e-5)};
    gen_program pg = {.k = k, .nk = 4};
    gen_cuda_result r;
    kg_status st = gen_cuda_compile(&pg, 80, false, &r);
    KT_CHECKF(st == KG_OK, "layernorm instances for sm_80: %s", kg_last_error());
    if (st) return;
    KT_CHECK(r.n == 4 && r.ncubin > 0);
    for (int i = 0; i < r.n; i++) {
        KT_CHECKF(strstr(r.shape[i].expr, "kgc::norm<") == r.shape[i].expr, "%s", r.shape[i].expr);
        KT_CHECKF(r.k[i].regs > 0 && r.k[i].spill_bytes == 0, "%s: %d registers, %d bytes spilled", r.shape[i].expr,
                  r.k[i].regs, r.k[i].spill_bytes);
        printf("    sm_80 %s: %d registers, 0 spilling\n", r.shape[i].expr, r.k[i].regs);
    }
    KT_CHECKF(r.shape[0].grid[0] == 1 && r.shape[1].m_axis == 0 && r.shape[1].m_div == 1,
              "launch: grid %u, M on axis %u / %u", r.shape[0].grid[0], r.shape[1].m_axis, r.shape[1].m_div);
    gen_cuda_result_free(&r);
}

/* What gen_cuda_shape accepts compiles, and what would not compile (the
 * prefill tile past 48 KiB of shared memory: head_dim > 180 with an f32
 * cache) it refuses with a message: attention at the edges of its limits. */
static gen_kinst attn_inst(const char *tmpl, int64_t nh, int64_t nkv, int64_t hd, int64_t ct)
{
    static const char *const names[] = {"M", "n_head", "n_head_kv", "head_dim", "cache_type"};
    const int64_t vals[] = {1, nh, nkv, hd, ct};
    return ktc_inst(tmpl, 5, names, vals, true);
}

KT_TEST(cuda_attn_limits)
{
    if (!have_nvrtc()) KT_SKIP("built without the CUDA toolkit (configure found no NVRTC)");
    cache_env();
    gen_kinst ok[4] = {attn_inst("attn_prefill", 8, 2, 160, KGT_F32), attn_inst("attn_prefill", 8, 2, 256, KGT_F16),
                       attn_inst("attn_decode", 8, 2, 256, KGT_F32), attn_inst("attn_prefill", 4, 4, 32, KGT_F32)};
    gen_program pg = {.k = ok, .nk = 4};
    gen_cuda_result r;
    kg_status st = gen_cuda_compile(&pg, 80, true, &r);
    KT_CHECKF(st == KG_OK, "attention at its limits for sm_80: %s", kg_last_error());
    if (st == KG_OK) {
        for (int i = 0; i < r.n; i++)
            KT_CHECKF(r.k[i].spill_bytes == 0, "%s: %d bytes spilled", r.shape[i].expr, r.k[i].spill_bytes);
        gen_cuda_result_free(&r);
    }
    const gen_kinst bad[] = {attn_inst("attn_prefill", 8, 2, 192, KGT_F32), attn_inst("attn_prefill", 8, 2, 256, KGT_F32),
                             attn_inst("attn_decode", 8, 2, 288, KGT_F16), attn_inst("attn_decode", 8, 2, 80, KGT_F16),
                             attn_inst("attn_prefill", 9, 2, 64, KGT_F16)};
    static const char *const why[] = {"shared memory", "shared memory", "head_dim 288", "head_dim 80", "heads 9/2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gen_cuda_shape_t sh;
        st = gen_cuda_shape(&bad[i], &sh);
        KT_CHECKF(st == KG_ERR_UNSUPPORTED && strstr(kg_last_error(), why[i]), "%s head_dim %lld: status %d, '%s'",
                  bad[i].tmpl, (long long)bad[i].params[3].i, st, st ? kg_last_error() : "");
    }
}

/* Compiles the n instances for sm_80 and sm_90 (NVRTC, no cache): each
 * has a ptxas report, none spills. Prints the registers of each group of
 * instances (group[i]: instance i's; consecutive), KT_SHOW=1 each one. */
static void compile_all(const char *what, gen_kinst *k, int n, const char *const *group)
{
    /* the sanitizer build: sm_90 only (kgen's code that the sanitizers
     * watch is the same for both; NVRTC's second compile is the time) */
    static const int sms[] = {90, 80};
    for (int a = 0; a < (KT_SANITIZED ? 1 : 2); a++) {
        gen_program pg = {.k = k, .nk = n};
        gen_cuda_result r;
        kg_status st = gen_cuda_compile(&pg, sms[a], false, &r);
        KT_CHECKF(st == KG_OK, "%s for sm_%d: %s", what, sms[a], kg_last_error());
        if (st) continue;
        int maxr = 0, spilling = 0;
        char line[512] = "";
        for (int i = 0; i < r.n; i++) {
            KT_CHECKF(r.k[i].regs > 0 && r.k[i].spill_bytes == 0, "sm_%d %s: %d registers, %d bytes spilled", sms[a],
                      r.shape[i].expr, r.k[i].regs, r.k[i].spill_bytes);
            maxr = r.k[i].regs > maxr ? r.k[i].regs : maxr;
            spilling += r.k[i].spill_bytes > 0;
            if (getenv("KT_SHOW"))
                printf("      sm_%d %3d regs %2d spill  %s\n", sms[a], r.k[i].regs, r.k[i].spill_bytes, r.shape[i].expr);
            size_t L = strlen(line);
            const bool first = !i || strcmp(group[i], group[i - 1]);
            snprintf(line + L, sizeof line - L, "%s%d", first ? "" : ",", r.k[i].regs);
            if (i + 1 == r.n || strcmp(group[i], group[i + 1])) {
                printf("    sm_%d %-10s registers %s\n", sms[a], group[i], line);
                line[0] = 0;
            }
        }
        printf("    %s sm_%d: %d kernels, %d spilling, max %d registers\n", what, sms[a], r.n, spilling, maxr);
        gen_cuda_result_free(&r);
    }
}

static gen_kinst mm_inst(int64_t wtype, int64_t act, bool prefill, int64_t N, int64_t K, int64_t flags, int64_t ldy)
{
    static const char *const names[] = {"wtype", "act", "M", "N", "K", "flags", "ldy"};
    const int64_t vals[] = {wtype, act, 1, N, K, flags, ldy};
    return ktc_inst("mm", ldy ? 7 : 6, names, vals, prefill);
}

static gen_kinst embed_inst(int64_t wtype, bool prefill, int64_t K)
{
    static const char *const names[] = {"wtype", "M", "K"};
    const int64_t vals[] = {wtype, 1, K};
    return ktc_inst("embed", 3, names, vals, prefill);
}

/* the types of the one table with kernels (kgen_types.h) */
static int kernel_types(int *t)
{
    int n = 0;
#define KT_X(id, nm, b, sz, k, g, mn) \
    if (k && id < KG_TYPE_OWN_BASE) t[n++] = id;
    KG_TYPES(KT_X)
#undef KT_X
    return n;
}

/* per type: mm act q8 (quantized types) then f32, each decode (flags 0, N
 * 576; swiglu + q8 output, N 1536) then prefill (bias + residual, N 576;
 * swiglu + q8 output, N 1536), K 1536; then embed decode, prefill */
KT_TEST(cuda_kernels_types)
{
    if (!have_nvrtc()) KT_SKIP("built without the CUDA toolkit (configure found no NVRTC)");
    static const int64_t flags[2][2][2] = {{{0, 576}, {KGT_EPI_SWIGLU | KGT_EPI_OUT_Q8, 1536}},
                                           {{KGT_EPI_BIAS | KGT_EPI_RESIDUAL, 576}, {KGT_EPI_SWIGLU | KGT_EPI_OUT_Q8, 1536}}};
    int types[64], nt = kernel_types(types), n = 0;
    gen_kinst *k = calloc((size_t)nt * 10, sizeof *k);
    const char **group = calloc((size_t)nt * 10, sizeof *group);
    KT_REQUIRE(k && group);
    for (int i = 0; i < nt; i++) {
        const kg_type_info *ti = kg_type_get((uint32_t)types[i]);
        for (int act = ti->blck > 1 ? KGT_ACT_Q8 : KGT_ACT_F32; act >= KGT_ACT_F32; act--)
            for (int pre = 0; pre <= 1; pre++)
                for (int f = 0; f < 2; f++)
                    group[n] = ti->name, k[n++] = mm_inst(types[i], act, pre, flags[pre][f][1], 1536, flags[pre][f][0], 0);
        for (int pre = 0; pre <= 1; pre++) group[n] = ti->name, k[n++] = embed_inst(types[i], pre, 1536);
    }
    compile_all("every type's mm and embed", k, n, group);
    free(k);
    free(group);
}

static gen_kinst rope_inst(bool prefill, int64_t nh, int64_t hd, int64_t nr, int64_t mode)
{
    static const char *const names[] = {"M", "n_head", "head_dim", "n_rot", "mode"};
    const int64_t vals[] = {1, nh, hd, nr, mode};
    gen_kinst k = ktc_inst("rope", 5, names, vals, prefill);
    ktc_param_f(&k, "freq_base", 10000.0);
    ktc_param_f(&k, "freq_scale", 1.0);
    return k;
}

static gen_kinst kvs_inst(bool prefill, int64_t nkv, int64_t hd, int64_t ct)
{
    static const char *const names[] = {"M", "n_head_kv", "head_dim", "n_ctx", "cache_type"};
    const int64_t vals[] = {1, nkv, hd, 0, ct};
    return ktc_inst("kv_store", 5, names, vals, prefill);
}

static gen_kinst ew_inst(const char *tmpl, bool prefill, int64_t N, int64_t act)
{
    static const char *const names[] = {"M", "N", "act"};
    const int64_t vals[] = {1, N, act};
    return ktc_inst(tmpl, tmpl[0] == 'g' ? 3 : 2, names, vals, prefill);
}

KT_TEST(cuda_kernels_ops)
{
    if (!have_nvrtc()) KT_SKIP("built without the CUDA toolkit (configure found no NVRTC)");
    gen_kinst k[] = {
        rope_inst(true, 9, 64, 64, KGT_ROPE_NORM),   rope_inst(false, 32, 128, 64, KGT_ROPE_NEOX),
        rope_inst(true, 5, 6, 4, KGT_ROPE_NEOX),      rope_inst(false, 1, 20, 18, KGT_ROPE_NORM),
        rope_inst(true, 2, 1024, 512, KGT_ROPE_NEOX), rope_inst(true, 4, 7, 0, KGT_ROPE_NORM),
        kvs_inst(false, 3, 64, KGT_F16),              kvs_inst(true, 4, 128, KGT_F32),
        kvs_inst(true, 1, 2, KGT_F16),                kvs_inst(true, 2, 768, KGT_F16),
        ew_inst("add", false, 576, 0),                ew_inst("add", true, 10007, 0),
        ew_inst("glu", false, 1536, KGT_GLU_SILU),    ew_inst("glu", true, 5632, KGT_GLU_GELU),
        ew_inst("glu", true, 1, KGT_GLU_SILU),
        /* column slices: Q, K, V of three types into one row of 576 + 2 x 192 */
        mm_inst(KGT_Q4_K, KGT_ACT_Q8, true, 576, 512, 0, 960), mm_inst(KGT_Q8_0, KGT_ACT_F32, false, 192, 576, 0, 960),
        mm_inst(KGT_F16, KGT_ACT_F32, true, 192, 576, KGT_EPI_RESIDUAL, 960),
        mm_inst(KGT_Q6_K, KGT_ACT_Q8, true, 64, 256, KGT_EPI_OUT_Q8 | KGT_EPI_BIAS, 128),
        mm_inst(KGT_Q4_0, KGT_ACT_Q8, false, 96, 576, KGT_EPI_OUT_Q8 | KGT_EPI_SWIGLU, 96), /* ldy = N */
        mm_inst(KGT_Q5_0, KGT_ACT_Q8, false, 2048, 640, KGT_EPI_OUT_Q8 | KGT_EPI_GEGLU, 2048), /* Gemma 3 gate/up */
    };
    const int n = (int)(sizeof k / sizeof k[0]);
    static const char *const group[] = {"rope", "rope", "rope", "rope", "rope", "rope", "kv_store", "kv_store", "kv_store",
                                        "kv_store", "add", "add", "glu", "glu", "glu", "mm ldy", "mm ldy", "mm ldy",
                                        "mm ldy", "mm ldy", "mm geglu"};
    KT_REQUIRE(n == (int)(sizeof group / sizeof group[0]));
    compile_all("rope, kv_store, add, glu, mm slices, mm geglu", k, n, group);
    /* shapes, as gen_cuda_shape sets them (the one place) */
    gen_cuda_shape_t sh;
    KT_REQUIRE(gen_cuda_shape(&k[0], &sh) == KG_OK);
    KT_CHECKF(sh.block == 32 && sh.grid[0] == 9 && sh.m_axis == 1 && sh.m_div == 1, "rope: block %u grid %u, M axis %u/%u",
              sh.block, sh.grid[0], sh.m_axis, sh.m_div);
    KT_REQUIRE(gen_cuda_shape(&k[4], &sh) == KG_OK);
    KT_CHECKF(sh.block == 256 && sh.grid[0] == 2, "rope head_dim 1024: block %u grid %u", sh.block, sh.grid[0]);
    KT_REQUIRE(gen_cuda_shape(&k[7], &sh) == KG_OK);
    KT_CHECKF(sh.block == 128 && sh.grid[0] == 4 && sh.m_axis == 1, "kv_store: block %u grid %u", sh.block, sh.grid[0]);
    KT_REQUIRE(gen_cuda_shape(&k[10], &sh) == KG_OK);
    KT_CHECKF(sh.grid[0] * sh.block >= 576 && sh.grid[1] == 1 && sh.m_div == 0, "add decode: %u x %u", sh.grid[0],
              sh.block);
    KT_REQUIRE(gen_cuda_shape(&k[11], &sh) == KG_OK);
    KT_CHECKF(sh.m_axis == 1 && sh.m_div == 1 && strstr(sh.expr, "kgc::ew<0, 10007, 0,"), "add prefill: %s", sh.expr);
    KT_REQUIRE(gen_cuda_shape(&k[13], &sh) == KG_OK);
    KT_CHECKF(strstr(sh.expr, "kgc::ew<0, 5632, 2,") != NULL, "geglu: %s", sh.expr);
    KT_REQUIRE(gen_cuda_shape(&k[15], &sh) == KG_OK);
    KT_CHECKF(strstr(sh.expr, ", 960>") != NULL, "mm slice: %s", sh.expr);
    KT_REQUIRE(gen_cuda_shape(&k[19], &sh) == KG_OK);
    KT_CHECKF(!strstr(sh.expr, ", 96>"), "mm with ldy = N names the plain kernel: %s", sh.expr);
    /* refused, saying why */
    gen_kinst rkv = rope_inst(true, 2, 1024, 64, 0); /* rope_kv's head_dim: at most 512, as the CPU's */
    snprintf(rkv.tmpl, sizeof rkv.tmpl, "rope_kv");
    const gen_kinst bad[] = {rkv, rope_inst(true, 2, 64, 63, 0), rope_inst(true, 2, 64, 66, 0), ew_inst("glu", true, 64, 7),
                             mm_inst(KGT_Q8_0, KGT_ACT_F32, true, 192, 576, 0, 100),
                             mm_inst(KGT_Q8_0, KGT_ACT_F32, true, 64, 576, KGT_EPI_OUT_Q8, 80)};
    static const char *const why[] = {"head_dim 1024", "n_rot 63", "n_rot 66", "activation 7", "ldy 100", "ldy 80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kg_status st = gen_cuda_shape(&bad[i], &sh);
        KT_CHECKF(st == KG_ERR_UNSUPPORTED && strstr(kg_last_error(), why[i]), "%s case %zu: status %d, '%s'", bad[i].tmpl,
                  i, st, st ? kg_last_error() : "");
    }
}

static gen_kinst with_f(gen_kinst k, const char *name, double f)
{
    ktc_param_f(&k, name, f);
    return k;
}

static gen_kinst with_i(gen_kinst k, const char *name, int64_t v)
{
    snprintf(k.params[k.n_params].name, sizeof k.params[0].name, "%s", name);
    k.params[k.n_params++].i = v;
    return k;
}

static gen_kinst rope_kv_inst(bool prefill, int64_t nh, int64_t nkv, int64_t hd, int64_t ct, int64_t ff, int64_t qk)
{
    static const char *const names[] = {"M", "n_head", "n_head_kv", "head_dim", "n_rot", "mode", "n_ctx", "cache_type", "ff", "qk_norm"};
    const int64_t vals[] = {1, nh, nkv, hd, hd, KGT_ROPE_NEOX, 0, ct, ff, qk};
    gen_kinst k = ktc_inst("rope_kv", 10, names, vals, prefill);
    return with_f(with_f(with_f(k, "freq_base", 1e6), "freq_scale", 1.0), "eps", 1e-6);
}

static gen_kinst norm_g_inst(bool prefill, int64_t K, int64_t G)
{
    static const char *const names[] = {"M", "K", "flags", "G"};
    const int64_t vals[] = {1, K, 0, G};
    return with_f(ktc_inst("rmsnorm", 4, names, vals, prefill), "eps", 1e-6);
}

static gen_kinst softcap_inst(bool prefill, int64_t N, double cap)
{
    static const char *const names[] = {"M", "N"};
    const int64_t vals[] = {1, N};
    return with_f(ktc_inst("softcap", 2, names, vals, prefill), "cap", cap);
}

KT_TEST(cuda_kernels_params)
{
    if (!have_nvrtc()) KT_SKIP("built without the CUDA toolkit (configure found no NVRTC)");
    gen_kinst k[] = {
        with_f(embed_inst(KGT_Q8_0, false, 640), "scale", 25.298221281347036), /* Gemma 3 270M */
        with_f(embed_inst(KGT_Q4_K, true, 1024), "scale", 32.0),
        norm_g_inst(false, 256, 4), norm_g_inst(true, 128, 16), norm_g_inst(true, 64, 32),
        with_i(rope_inst(false, 32, 64, 64, KGT_ROPE_NORM), "ff", 1), /* Llama 3.2 1B */
        with_i(rope_inst(true, 8, 128, 128, KGT_ROPE_NORM), "ff", 1),
        rope_kv_inst(false, 16, 8, 128, KGT_F16, 0, 1), rope_kv_inst(true, 16, 8, 128, KGT_F16, 0, 1), /* Qwen3 0.6B */
        rope_kv_inst(false, 4, 1, 256, KGT_F16, 0, 1), rope_kv_inst(true, 4, 1, 256, KGT_F32, 0, 1),    /* Gemma 3 */
        rope_kv_inst(true, 32, 8, 64, KGT_F16, 1, 0), rope_kv_inst(false, 32, 8, 64, KGT_F16, 1, 1),    /* Llama 3.2 */
        with_i(with_f(attn_inst("attn_decode", 4, 1, 256, KGT_F16), "scale", 0.0625), "window", 512),
        with_i(with_f(attn_inst("attn_prefill", 4, 1, 256, KGT_F16), "scale", 0.0625), "window", 512),
        with_i(with_f(attn_inst("attn_decode", 16, 8, 128, KGT_F32), "scale", 0.1), "window", 1),
        with_i(with_f(attn_inst("attn_prefill", 8, 2, 64, KGT_F32), "scale", 0.125), "window", 4096),
        softcap_inst(false, 262144, 30.0), softcap_inst(true, 151936, 50.0),
    };
    const int n = (int)(sizeof k / sizeof k[0]);
    static const char *const group[] = {"embed", "embed", "rmsnorm G", "rmsnorm G", "rmsnorm G", "rope ff", "rope ff",
                                        "rope_kv", "rope_kv", "rope_kv", "rope_kv", "rope_kv", "rope_kv", "attn", "attn",
                                        "attn", "attn", "softcap", "softcap"};
    KT_REQUIRE(n == (int)(sizeof group / sizeof group[0]));
    compile_all("embed scale, rmsnorm G, rope ff, rope_kv ff + qk_norm, attn scale + window, softcap", k, n, group);
    gen_cuda_shape_t sh;
    KT_REQUIRE(gen_cuda_shape(&k[3], &sh) == KG_OK);
    KT_CHECKF(sh.grid[0] == 16 && sh.m_axis == 0 && sh.m_div == 1, "rmsnorm G 16: grid %u, M axis %u/%u", sh.grid[0],
              sh.m_axis, sh.m_div);
    KT_REQUIRE(gen_cuda_shape(&k[0], &sh) == KG_OK);
    KT_CHECKF(strstr(sh.expr, "0x40394c5") != NULL, "embed scale in the instance: %s", sh.expr);
    KT_REQUIRE(gen_cuda_shape(&k[14], &sh) == KG_OK);
    KT_CHECKF(strstr(sh.expr, ", 0x3fb0000000000000ull, 512>") != NULL, "prefill scale, window: %s", sh.expr);
    KT_REQUIRE(gen_cuda_shape(&k[18], &sh) == KG_OK);
    KT_CHECKF(sh.m_axis == 1 && sh.m_div == 1 && sh.grid[0] * sh.block * 4 >= 151936, "softcap prefill: %s grid %u",
              sh.expr, sh.grid[0]);
    /* unbound, each new parameter means what the CPU template's default does */
    static const char *const rn[] = {"M", "n_head", "n_head_kv", "head_dim", "n_rot", "mode", "n_ctx", "cache_type"};
    const int64_t rv[] = {1, 16, 8, 128, 128, KGT_ROPE_NEOX, 0, KGT_F16};
    gen_kinst e = embed_inst(KGT_Q8_0, false, 640), r = ktc_inst("rope_kv", 8, rn, rv, false);
    r = with_f(with_f(r, "freq_base", 1e6), "freq_scale", 1.0);
    KT_REQUIRE(gen_cuda_shape(&e, &sh) == KG_OK);
    KT_CHECKF(strstr(sh.expr, ", 0x3ff0000000000000ull>") != NULL, "embed, scale unbound: %s", sh.expr);
    KT_REQUIRE(gen_cuda_shape(&r, &sh) == KG_OK);
    KT_CHECKF(strstr(sh.expr, ", 0, 0, 0x3eb0c6f7a0b5ed8dull>") != NULL, "rope_kv, ff/qk_norm/eps unbound: %s", sh.expr);
}

static gen_kinst enc_attn_inst(int64_t B, int64_t L, int64_t nh, int64_t hd)
{
    static const char *const names[] = {"B", "L", "n_head", "head_dim"};
    const int64_t vals[] = {B, L, nh, hd};
    return ktc_inst("attn_enc", 4, names, vals, false);
}

static gen_kinst pool_inst(int64_t B, int64_t L, int64_t K, int64_t mode, int64_t norm)
{
    static const char *const names[] = {"B", "L", "K", "mode", "norm"};
    const int64_t vals[] = {B, L, K, mode, norm};
    return ktc_inst("pool", 5, names, vals, false);
}

KT_TEST(cuda_kernels_encoder)
{
    if (!have_nvrtc()) KT_SKIP("built without the CUDA toolkit (configure found no NVRTC)");
    gen_kinst k[64];
    const char *group[64];
    int n = 0;
    static const int64_t wts[] = {KGT_F32, KGT_F16, KGT_BF16, KGT_Q8_0, KGT_Q4_K};
    for (size_t t = 0; t < sizeof wts / sizeof wts[0]; t++)
        for (int act = wts[t] == KGT_Q8_0 || wts[t] == KGT_Q4_K ? KGT_ACT_Q8 : KGT_ACT_F32; act >= KGT_ACT_F32; act--)
            for (int pre = 0; pre <= 1; pre++)
                group[n] = "mm gelu", k[n++] = mm_inst(wts[t], act, pre, 1536, 512, KGT_EPI_BIAS | KGT_EPI_GELU, 0);
    group[n] = "mm gelu", k[n++] = mm_inst(KGT_Q8_0, KGT_ACT_Q8, true, 1536, 384, KGT_EPI_BIAS | KGT_EPI_GELU | KGT_EPI_OUT_Q8, 0);
    static const int64_t pts[] = {KGT_F32, KGT_F16, KGT_BF16};
    for (int i = 0; i < 3; i++)
        group[n] = "embed pos", k[n++] = with_i(with_i(embed_inst(i ? KGT_F16 : KGT_F32, true, 384), "pos_len", 128), "pos_type", pts[i]);
    group[n] = "embed pos", k[n++] = with_i(with_i(embed_inst(KGT_Q8_0, true, 384), "pos_len", 7), "pos_type", KGT_F32);
    group[n] = "attn_enc", k[n++] = enc_attn_inst(32, 128, 12, 32); /* MiniLM */
    group[n] = "attn_enc", k[n++] = enc_attn_inst(1, 256, 12, 32);
    group[n] = "attn_enc", k[n++] = with_f(enc_attn_inst(3, 512, 12, 64), "scale", 0.125);
    group[n] = "attn_enc", k[n++] = enc_attn_inst(2, 7, 4, 128);
    for (int mode = 0; mode < 4; mode++)
        for (int norm = 0; norm <= 1; norm++) group[n] = "pool", k[n++] = pool_inst(32, 128, 384, mode, norm);
    compile_all("mm gelu, embed with positions, attn_enc, pool", k, n, group);
    gen_cuda_shape_t sh;
    KT_REQUIRE(gen_cuda_shape(&k[0], &sh) == KG_OK);
    KT_CHECKF(strstr(sh.expr, ", 33, 1>") != NULL, "mm gelu: %s", sh.expr);
    gen_kinst e0 = embed_inst(KGT_F32, true, 384), e1 = with_i(e0, "pos_len", 128), e2 = with_i(e1, "pos_type", KGT_BF16);
    KT_REQUIRE(gen_cuda_shape(&e1, &sh) == KG_OK);
    KT_CHECKF(strstr(sh.expr, ", 128, 0>") != NULL && sh.m_axis == 0 && sh.m_div == 1, "embed pos_len 128: %s", sh.expr);
    KT_REQUIRE(gen_cuda_shape(&e2, &sh) == KG_OK);
    KT_CHECKF(strstr(sh.expr, ", 128, 30>") != NULL, "embed pos_type bf16: %s", sh.expr);
    KT_REQUIRE(gen_cuda_shape(&e0, &sh) == KG_OK);
    KT_CHECKF(strstr(sh.expr, ", 0x3ff0000000000000ull>") != NULL, "embed, no tables: the plain instance: %s", sh.expr);
    gen_kinst a = enc_attn_inst(32, 130, 12, 32);
    KT_REQUIRE(gen_cuda_shape(&a, &sh) == KG_OK);
    KT_CHECKF(sh.block == 128 && sh.grid[0] == 12 && sh.grid[1] == 32 && sh.grid[2] == 33 && sh.m_div == 0,
              "attn_enc: block %u grid %u x %u x %u, m_div %u", sh.block, sh.grid[0], sh.grid[1], sh.grid[2], sh.m_div);
    KT_CHECKF(strstr(sh.expr, "kgc::attn_enc<12, 32, 130, 0x0ull>") != NULL, "attn_enc, scale unbound: %s", sh.expr);
    gen_kinst pl = pool_inst(5, 128, 384, KGT_POOL_MAX, 1);
    KT_REQUIRE(gen_cuda_shape(&pl, &sh) == KG_OK);
    KT_CHECKF(sh.grid[0] == 5 && sh.block == 128 && sh.m_div == 0 && strstr(sh.expr, "kgc::pool<128, 384, 2, 1>"),
              "pool: %s grid %u", sh.expr, sh.grid[0]);
    const gen_kinst bad[] = {enc_attn_inst(2, 128, 12, 48), enc_attn_inst(2, 128, 4, 256), pool_inst(2, 128, 384, 4, 0),
                             with_i(with_i(embed_inst(KGT_F32, true, 384), "pos_len", 128), "pos_type", KGT_Q8_0)};
    static const char *const why[] = {"head_dim 48", "shared memory", "mode 4", "pos_type 8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kg_status st = gen_cuda_shape(&bad[i], &sh);
        KT_CHECKF(st == KG_ERR_UNSUPPORTED && strstr(kg_last_error(), why[i]), "%s case %zu: status %d, '%s'", bad[i].tmpl,
                  i, st, st ? kg_last_error() : "");
    }
}

/* A model whose layer 0 mixes types: Q8_0 everywhere but attn_k (Q4_0):
 * its Q, K and V products write slices of one row (ldy); then every
 * fusion off. Every instance of both compiles for sm_80 and sm_90. */
KT_TEST(cuda_kernels_mixed)
{
    if (!have_nvrtc()) KT_SKIP("built without the CUDA toolkit (configure found no NVRTC)");
    cache_env();
    tl_params p;
    tl_defaults(&p);
    p.n_embd = 256, p.n_head = 4, p.n_head_kv = 2, p.n_ff = 512; /* head_dim 64 */
    p.edit_tensor = "blk.0.attn_k.weight";
    p.edit_type = KG_TYPE_Q4_0;
    char path[600];
    snprintf(path, sizeof path, "%s/mixed.gguf", kt_tmpdir());
    KT_REQUIRE(tl_write(&p, path));
    static const char *const want[2][4] = {{", 512>", "kgc::rope_kv<"}, {"kgc::rope<", "kgc::kv_store<", "kgc::ew<0, 256, 0,", "kgc::ew<0, 512, 1,"}};
    for (int nofuse = 0; nofuse <= 1; nofuse++) {
        if (nofuse) setenv("KGEN_NOFUSE", "all", 1);
        kernels_for(path, "sm_80", 10);
        for (int i = 0; i < 4 && want[nofuse][i]; i++)
            KT_CHECKF(strstr(g_out, want[nofuse][i]) != NULL, "%s: no instance with '%s'", nofuse ? "KGEN_NOFUSE=all" : "fused",
                      want[nofuse][i]);
        kernels_for(path, "sm_90", 10);
        unsetenv("KGEN_NOFUSE");
    }
    unlink(path);
}

KT_TEST(cuda_kernels_tinyllama)
{
    if (!have_nvrtc()) KT_SKIP("built without the CUDA toolkit (configure found no NVRTC)");
    cache_env();
    tl_params p;
    tl_defaults(&p);
    p.n_layer = 22, p.n_embd = 2048, p.n_head = 32, p.n_head_kv = 4, p.n_ff = 5632, p.n_ctx = 2048;
    p.n_vocab = 32000, p.untied = true, p.sparse = true, p.wtype = KG_TYPE_Q4_0;
    char path[600];
    snprintf(path, sizeof path, "%s/tinyllama-shape.gguf", kt_tmpdir());
    KT_REQUIRE(tl_write(&p, path));
    kernels_for(path, "sm_80", 10);
    kernels_for(path, "sm_90", 10);
    unlink(path);
}

KT_TEST(cuda_no_driver)
{
    if (!have_nvrtc()) KT_SKIP("built without the CUDA toolkit (configure found no NVRTC)");
    cache_env();
    tl_params p;
    tl_defaults(&p);
    p.n_embd = 128; /* head_dim 32: CUDA attention takes multiples of 32 */
    char gguf[600], so[600];
    snprintf(gguf, sizeof gguf, "%s/tiny-cuda.gguf", kt_tmpdir());
    snprintf(so, sizeof so, "%s/tiny-cuda.so", kt_tmpdir());
    KT_REQUIRE(tl_write(&p, gguf));
    int rc = kgen("compile", gguf, "--target", "cuda:sm_90", "-o", so, NULL);
    KT_CHECKF(rc == 0, "compile --target cuda:sm_90 exited %d: %s", rc, g_err);
    if (rc) return;
    setenv("KGEN_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
    rc = kgen("run", so, "-p", "hi", "-n", "2", NULL);
    unsetenv("KGEN_LIBCUDA");
    KT_CHECKF(rc == 1, "run without a driver exited %d (want 1)", rc);
    KT_CHECKF(strstr(g_err, "CUDA driver cannot be loaded") && strstr(g_err, "/nonexistent/libcuda.so.1") &&
                  strstr(g_err, "tiny-cuda.so"),
              "the message does not say the driver is missing: %s", g_err);
    /* a GGUF run for CUDA fails the same way, after compiling through the cache */
    setenv("KGEN_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
    rc = kgen("run", gguf, "--target", "cuda:sm_80", "-p", "hi", NULL);
    unsetenv("KGEN_LIBCUDA");
    KT_CHECKF(rc == 1 && strstr(g_err, "CUDA driver cannot be loaded"), "run GGUF --target cuda:sm_80: %d: %s", rc, g_err);
    /* bad targets: usage errors naming the value */
    rc = kgen("compile", gguf, "--target", "cuda:sm_12", "-o", so, NULL);
    KT_CHECKF(rc == 1 && strstr(g_err, "sm_12"), "--target cuda:sm_12: %d: %s", rc, g_err);
    rc = kgen("compile", gguf, "--target", "opencl", "-o", so, NULL);
    KT_CHECKF(rc == 2 && strstr(g_err, "opencl"), "--target opencl: %d: %s", rc, g_err);
    unlink(so), unlink(gguf);
}
