/*
 * test_archs.c — every architecture kgen compiles, end to end, against the
 * independent numpy reference (tests/ref/model_ref.py).
 *
 * arch_<shape>_<type>: a random-weight model of the real model's widths
 * (bench/gen_model.py's architecture shapes: Qwen2-0.5B, Qwen3-0.6B,
 * Llama-3.2-1B with Llama 3's rope_freqs, Gemma 3 270M with a 16-position
 * sliding window, Phi-3-mini with its fused tensors; 2 layers, Gemma 3 6 so
 * that layer 5 is global; an 8192-token vocabulary), as llama.cpp's
 * converter writes that architecture, each layer typed as llama.cpp's
 * quantizer types that layer of the real model:
 *   1. the model is written once per run (seconds) and its set of tensor
 *      types checked against the table below;
 *   2. kgen compile (timed);
 *   3. kgen run, greedily, 8 tokens on 2 prompts (the second longer than
 *      Gemma's window, so its prefill and every decode step cross it);
 *      every step's logits and greedy token checked against the reference
 *      by tests/ref/check_mix.py (tolerances and their measurements there).
 * e2e_gemma3: the real Gemma 3 270M (models/gemma-3-270m-q4_k_m.gguf) on the
 *   prompts of tests/ref/prompts-gemma3.txt, 16 tokens each, through
 *   tests/ref/check_e2e.py with the SmolLM2 test's tolerances.
 * arch_bad_*: metadata that contradicts the tensors (tests/ref/arch_bad_model.py
 *   writes them) is refused: kgen compile exits 1 naming the key or the
 *   tensor, writes nothing, and does not crash; so are what no registry row
 *   computes (mixture of experts, LongRoPE factors), rather than ignored.
 * slow_gemma3_ref_vs_llama_cpp (make check-slow): the reference itself against
 *   llama.cpp (bench/.venv's llama-cpp-python) on the real Gemma 3 270M.
 *
 * The reference's results are memoized under $KGEN_REF_CACHE (refmemo.py),
 * so make check's second build only reruns kgen. Without Python's numpy and
 * gguf the model tests skip, saying so.
 *
 *   build/kgen-tests arch_
 */
#include "kt.h"
#include "kt_cli.h"
#include "kgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SKIPPED 77

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The last n bytes of s (at most), from a line start. */
static const char *tail(const char *s, size_t n)
{
    size_t len = strlen(s);
    if (len <= n) return s;
    const char *t = s + len - n, *nl = strchr(t, '\n');
    return nl ? nl + 1 : t;
}

/* Runs a Python script (argv from argv[2] on; argv[0], argv[1] are filled
 * in: /usr/bin/env, kt_python()). Returns its exit status; out, err hold its
 * output (CAP bytes each, the caller frees). */
enum { CAP = 1 << 18 };
static int python(char **argv, char **out, char **err)
{
    argv[0] = "/usr/bin/env";
    argv[1] = (char *)kt_python();
    *out = malloc(CAP), *err = malloc(CAP);
    if (!*out || !*err) return -1;
    return kt_run(argv, *out, CAP, *err, CAP);
}

/* ─────────────────────────── the models ─────────────────────────── */

/* The model of (shape, type) under kt_tmpdir()/arch/, written once per run
 * by bench/gen_model.py. Returns 1 if there, 0 on a failed check, -1 if
 * Python lacks numpy or gguf. */
static int arch_model(const char *shape, const char *type, char *path, size_t cap)
{
    char dir[600];
    kc_tpath(dir, sizeof dir, "arch");
    if (!kc_make_dir(dir)) {
        KT_CHECKF(0, "cannot create %s", dir);
        return 0;
    }
    snprintf(path, cap, "%s/%s-%s.gguf", dir, shape, type);
    if (kc_exists(path)) return 1;
    char *argv[] = {NULL, NULL, "bench/gen_model.py", "--shape", (char *)shape, "--type", (char *)type, "--out-dir",
                    dir, "-j", "1", NULL};
    char *out, *err;
    double t0 = now_s();
    int rc = python(argv, &out, &err);
    int r = 1;
    if (rc == 3 || rc == 127) {
        r = -1;
    } else if (rc != 0) {
        KT_CHECKF(0, "gen_model.py --shape %s --type %s exited %d: %s", shape, type, rc, err ? tail(err, 2000) : "");
        r = 0;
    } else {
        printf("    model %s %s written in %.1f s\n", shape, type, now_s() - t0);
    }
    free(out), free(err);
    return r;
}

/* The set of tensor types in path, as " NAME NAME ..." in the table's order. */
static bool types_in(const char *path, char *list, size_t cap)
{
    kg_gguf *g = NULL;
    if (kg_gguf_open(path, &g) != KG_OK) return false;
    bool seen[256] = {false};
    const kg_tensor *t;
    for (uint64_t i = 0; (t = kg_gguf_tensor(g, i)); i++)
        if (t->type < 256) seen[t->type] = true;
    kg_gguf_close(g);
    size_t o = 0;
    list[0] = 0;
    for (int i = 0; i < 256; i++)
        if (seen[i] && o < cap) o += (size_t)snprintf(list + o, cap - o, " %s", kg_type_get((uint32_t)i)->name);
    return true;
}

/* check_mix.py --arch-prompts on model run as so; fails the test with the
 * checker's table unless every prompt passes. */
static void check(const char *model, const char *so)
{
    char *argv[] = {NULL, NULL, "tests/ref/check_mix.py", "--model", (char *)model, "--run", (char *)so, "--kgen",
                    (char *)kt_kgen_bin(), "-t", "2", "-n", "8", "--arch-prompts", NULL};
    kc_ref_check(argv);
}

/* The types llama.cpp's rules give each (shape, type) (bench/gen_model.py's
 * arch_types: Q4_K_M is llama.cpp's Q4_K_M with its fallbacks), F32 for
 * the norms, biases and rope_freqs:
 *   qwen2-0.5b  Q4_K_M: 896-wide rows are not whole 256-blocks: Q4_K -> Q5_0,
 *               Q6_K -> Q8_0 (attn_v on real layer 0, tied token_embd);
 *               ffn_down (4864 = 19 x 256 wide) Q6_K on layer 0, Q4_K on 12
 *   qwen3-0.6b  Q4_K: every product Q4_K, tied token_embd Q6_K
 *   llama3.2-1b Q4_K_M: attn_v, ffn_down Q6_K on real layer 0, Q4_K on 7;
 *               token_embd (tied) Q6_K
 *   gemma3-270m Q4_K_M (the real file's mix): 640-wide rows: Q4_K -> Q5_0,
 *               Q6_K -> Q8_0; attn_output (1024 wide) Q4_K; ffn_down
 *               (2048 wide) Q6_K on real layers 0, 1, 4, else Q4_K
 *   phi3-mini   Q4_K_M: attn_qkv Q5_K, ffn_down and output Q6_K on real
 *               layer 0 and the output, Q4_K elsewhere */
typedef struct arch_case {
    const char *shape, *type, *types;
} arch_case;

static const arch_case CASES[] = {
    {"qwen2-0.5b", "Q8_0", " F32 Q8_0"},
    {"qwen2-0.5b", "Q4_K_M", " F32 Q5_0 Q8_0 Q4_K Q6_K"},
    {"qwen2-0.5b", "F16", " F32 F16"},
    {"qwen3-0.6b", "Q8_0", " F32 Q8_0"},
    {"qwen3-0.6b", "Q4_K", " F32 Q4_K Q6_K"},
    {"llama3.2-1b", "Q8_0", " F32 Q8_0"},
    {"llama3.2-1b-r64", "Q4_K_M", " F32 Q4_K Q6_K"},
    {"gemma3-270m", "Q8_0", " F32 Q8_0"},
    {"gemma3-270m", "Q4_K_M", " F32 Q5_0 Q8_0 Q4_K Q6_K"},
    {"gemma3-270m", "F16", " F32 F16"},
    {"phi3-mini", "Q4_K_M", " F32 Q4_K Q5_K Q6_K"},
    {"phi3-mini", "Q4_0", " F32 Q4_0"},
};

static void run_arch(const char *shape, const char *type)
{
    const arch_case *c = NULL;
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++)
        if (!strcmp(CASES[i].shape, shape) && !strcmp(CASES[i].type, type)) c = &CASES[i];
    KT_REQUIRE(c);
    char path[700], so[760], got[512];
    int r = arch_model(shape, type, path, sizeof path);
    if (r < 0) KT_SKIP("%s lacks numpy/gguf (the model generator and the reference need them)", kt_python());
    if (r == 0) return;
    KT_CHECKF(types_in(path, got, sizeof got), "cannot open %s: %s", path, kg_last_error());
    KT_CHECKF(!strcmp(got, c->types), "%s %s: the file holds types%s, llama.cpp's rules give%s", shape, type, got,
              c->types);
    KT_REQUIRE(!kt_failed());
    snprintf(so, sizeof so, "%s.so", path);
    kc_setup_env();
    double t0 = now_s();
    int rc = KGEN("compile", path, "-o", so);
    double secs = now_s() - t0;
    REQUIRE_F(rc == 0, "kgen compile %s exited %d:\n%s", path, rc, tail(kc_err, 3000));
    printf("    types%s; compiled in %.2f s\n", c->types, secs);
    check(path, so);
    remove(so);
    if (!strcmp(shape, "phi3-mini") || !strncmp(shape, "llama3.2-1b", 11)) remove(path); /* 90-180 MB, used once */
}

KT_TEST(arch_qwen2_q8_0) { run_arch("qwen2-0.5b", "Q8_0"); }
KT_TEST(arch_qwen2_q4_k_m) { run_arch("qwen2-0.5b", "Q4_K_M"); }
KT_TEST(arch_qwen2_f16) { run_arch("qwen2-0.5b", "F16"); }
KT_TEST(arch_qwen3_q8_0) { run_arch("qwen3-0.6b", "Q8_0"); }
KT_TEST(arch_qwen3_q4_k) { run_arch("qwen3-0.6b", "Q4_K"); }
KT_TEST(arch_llama3_q8_0) { run_arch("llama3.2-1b", "Q8_0"); }
KT_TEST(arch_llama3_q4_k_m) { run_arch("llama3.2-1b-r64", "Q4_K_M"); }
KT_TEST(arch_gemma3_q8_0) { run_arch("gemma3-270m", "Q8_0"); }
KT_TEST(arch_gemma3_q4_k_m) { run_arch("gemma3-270m", "Q4_K_M"); }
KT_TEST(arch_gemma3_f16) { run_arch("gemma3-270m", "F16"); }
KT_TEST(arch_phi3_q4_k_m) { run_arch("phi3-mini", "Q4_K_M"); }
KT_TEST(arch_phi3_q4_0) { run_arch("phi3-mini", "Q4_0"); }

/* ───────────────────────── the real Gemma 3 ───────────────────────── */

#define GEMMA3 "gemma-3-270m-q4_k_m.gguf"

/* The real Gemma 3 270M (Q4_K_M as published), raw prompts (its file has
 * no chat template), 16 greedy tokens each: logits against the reference
 * within check_e2e.py's tolerances (set on SmolLM2's 30 layers; the
 * reference against llama.cpp on this file: check_llama_cpp.py). */
KT_TEST(e2e_gemma3)
{
    char model[512];
    snprintf(model, sizeof model, "%s/%s", kt_models_dir(), GEMMA3);
    if (!kc_exists(model)) KT_SKIP("%s not found: run 'make models'", model);
    if (KT_SANITIZED)
        KT_SKIP("the plain build's run covers it: under the sanitizers, arch_gemma3_* compile and run the "
                "architecture, models_gemma3_matches_gguf_py reads this file and tokenizer_spm_* its tokenizer");
    kc_setup_env();
    char *argv[] = {NULL, NULL, "tests/ref/check_e2e.py", "--kgen", (char *)kt_kgen_bin(), "--model", model,
                    "--prompts", "tests/ref/prompts-gemma3.txt", "-n", "16", "-t", "2", NULL};
    kc_ref_check(argv);
}

/* The reference against llama.cpp itself on the real Gemma 3 (slow tier:
 * llama-cpp-python in bench/.venv, made by bench/setup_peer.sh). */
KT_TEST(slow_gemma3_ref_vs_llama_cpp)
{
    static const char py[] = "bench/.venv/bin/python";
    char model[512];
    snprintf(model, sizeof model, "%s/%s", kt_models_dir(), GEMMA3);
    if (!kc_exists(model)) KT_SKIP("%s not found: run 'make models'", model);
    if (!kc_exists(py)) KT_SKIP("%s is absent: llama.cpp runs there; run sh bench/setup_peer.sh", py);
    char *argv[] = {(char *)py, "tests/ref/check_llama_cpp.py", "--model", model, "-n", "16", NULL};
    char *out = malloc(CAP), *err = malloc(CAP);
    KT_REQUIRE(out && err);
    int rc = kt_run(argv, out, CAP, err, CAP);
    if (rc == SKIPPED) {
        free(out), free(err);
        KT_SKIP("%s lacks llama_cpp, gguf or numpy: run sh bench/setup_peer.sh", py);
    }
    KT_CHECKF(rc == 0, "check_llama_cpp.py exited %d\n%s\n%s", rc, tail(out, 6000), tail(err, 2000));
    if (rc == 0) printf("%s", tail(out, 3000));
    free(out), free(err);
}

/* ─────────────────────────── bad input ─────────────────────────── */

/* tests/ref/arch_bad_model.py's case `name` compiled: kgen must exit 1 naming
 * each of want, write nothing and not crash. */
static void refused(const char *name, const char *const *want)
{
    kc_setup_env();
    char dir[600], gguf[700], so[760];
    kc_tpath(dir, sizeof dir, "arch-bad");
    KT_REQUIRE(kc_make_dir(dir));
    snprintf(gguf, sizeof gguf, "%s/%s.gguf", dir, name);
    snprintf(so, sizeof so, "%s/%s.so", dir, name);
    char *argv[] = {NULL, NULL, "tests/ref/arch_bad_model.py", gguf, "--case", (char *)name, NULL};
    char *out, *err;
    int rc = python(argv, &out, &err);
    if (rc == 3 || rc == 127) {
        free(out), free(err);
        KT_SKIP("%s lacks numpy/gguf (the model generator needs them)", kt_python());
    }
    KT_CHECKF(rc == 0, "arch_bad_model.py --case %s exited %d: %s", name, rc, err ? tail(err, 2000) : "");
    free(out), free(err);
    if (rc != 0) return;
    const char *w[8] = {gguf};
    int n = 1;
    for (; *want && n < 7; want++) w[n++] = *want;
    w[n] = NULL;
    kc_expect_failure(name, 1, NULL, NULL, w, STRS("compile", gguf, "-o", so));
    KT_CHECKF(!kc_exists(so), "%s: a failed compile wrote %s", name, so);
    if (!kt_failed()) printf("    refused: %.*s\n", (int)strcspn(tail(kc_err, 400), "\n"), tail(kc_err, 400));
    remove(gguf);
}

/* qwen2 has no key_length: head_dim = n_embd / n_head, and 6 does not divide 256 */
KT_TEST(arch_bad_head_count) { refused("head_count", STRS("qwen2.attention.head_count")); }
/* 4 query heads over 3 KV heads */
KT_TEST(arch_bad_head_count_kv) { refused("head_count_kv", STRS("llama.attention.head_count_kv")); }
/* gemma3's sliding window 8192 over a 4096-position context */
KT_TEST(arch_bad_window) { refused("window", STRS("gemma3.attention.sliding_window")); }
/* a norm the architecture needs is missing */
KT_TEST(arch_bad_missing_norm)
{
    refused("post_ffw_norm", STRS("blk.1.post_ffw_norm.weight"));
    refused("q_norm", STRS("blk.0.attn_q_norm.weight"));
}
/* qwen2's K bias of 129 values for 2 KV heads x 64 */
KT_TEST(arch_bad_bias) { refused("bias", STRS("blk.0.attn_k.bias")); }
/* phi3's fused Q/K/V of 700 rows where the heads need 256 + 2 x 256 */
KT_TEST(arch_bad_fused_rows) { refused("qkv_rows", STRS("blk.1.attn_qkv.weight")); }
/* general.architecture "mamba9": named, and the supported ones listed */
KT_TEST(arch_bad_unsupported)
{
    refused("experts", STRS("llama.expert_count", "mixture-of-experts"));
    refused("longrope", STRS("rope_factors_long.weight", "LongRoPE"));
}

KT_TEST(arch_bad_unknown_arch) { refused("unknown_arch", STRS("mamba9", "llama", "qwen2", "qwen3", "gemma3", "phi3")); }
