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
#include "templates/cpu/kernel.h"
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
