/*
 * test_mixes.c — the per-tensor type mixes real GGUF files have, end to end.
 *
 * A file quantized by llama.cpp as Q4_K_M, Q5_K_M, Q3_K_M or IQ4_XS mixes
 * types inside one layer (Q and K in one type, V in another, ffn_down in a
 * third on some layers), and rows that are not a multiple of 256 fall back
 * to 32-element types. Each mix_<shape>_<mix> test:
 *   1. writes a model of a real model's widths, a few layers and random
 *      weights, each tensor typed as llama.cpp's quantizer types that
 *      tensor of the real model (tests/ref/mix_model.py: the rules, cited);
 *   2. checks the file holds exactly the types the rules give (the table
 *      below, worked out by hand from llama.cpp's llama-quant.cpp), so the
 *      generator cannot drift into an easier mix unnoticed;
 *   3. compiles it (kgen compile, timed) and runs it greedily on two
 *      prompts; every step's logits and greedy token are checked against
 *      the independent numpy reference (tests/ref/model_ref.py, weights
 *      dequantized by the `gguf` package) by tests/ref/check_mix.py, whose
 *      tolerances are set from measurements stated there.
 * Shapes: SmolLM2-135M (576 wide: every K-quant on a 576-wide row falls
 * back; tied output; 4 layers standing for layers 0, 9, 14, 29 of 30) and
 * TinyLlama-1.1B (2048 wide, ff 5632 = 22 x 256: the K-quants stay;
 * separate output; 2 layers standing for layers 0 and 11 of 22).
 *
 *   mix_nofuse          the SmolLM2-shaped Q3_K_M mix (six weight types)
 *                       compiled with KGEN_NOFUSE=1 (no fusion at all, so
 *                       float activations): more ops than the fused compile,
 *                       and the same checks with tolerances for float
 *                       activations (check_mix.py --float)
 *   mix_bad_type        every type the table (include/kgen_types.h) marks
 *                       without kernels, as one product weight and as the
 *                       embedding, is refused naming the tensor and the type
 *   mix_bad_row         a K-quant weight whose rows are not whole blocks is
 *                       refused naming the tensor, the type, the row length
 *                       and the block size
 * and in the slow tier (make check-slow; llama.cpp's own quantizer through
 * bench/.venv, on the real SmolLM2 requantized):
 *   slow_mix_rules_match_llama_cpp   each mix has, tensor by tensor over the
 *                       30 layers, the types mix_model.py's rules give
 *   slow_mix_llama_cpp_files_e2e     Q4_K_M, Q5_K_M, Q3_K_M, Q2_K, IQ4_XS,
 *                       Q5_0, Q5_1, IQ4_NL files: kgen against the reference
 *                       (check_e2e.py, every prompt, 32 tokens)
 *
 * The models are written once per test run under kt_tmpdir() (seconds);
 * the reference's results are memoized under $KGEN_REF_CACHE
 * (tests/ref/refmemo.py), so make check's second build only reruns kgen.
 * Without Python's numpy and gguf the model tests skip, saying so.
 *
 *   build/kgen-tests mix_
 */
#include "kt.h"
#include "kt_cli.h"
#include "kgen.h"
#include "tiny_llama.h"

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

/* ─────────────────────────── the models ─────────────────────────── */

/* The model file of (shape, mix) under kt_tmpdir()/mix/, written once per
 * run. Returns 1 if written, 0 on a failed check, -1 if Python lacks numpy
 * or gguf (why: the reason). */
static int mix_model(const char *shape, const char *mix, char *path, size_t cap, char *why, size_t why_cap)
{
    char dir[600];
    kc_tpath(dir, sizeof dir, "mix");
    if (!kc_make_dir(dir)) {
        KT_CHECKF(0, "cannot create %s", dir);
        return 0;
    }
    snprintf(path, cap, "%s/%s-%s.gguf", dir, shape, mix);
    for (char *c = strrchr(path, '/'); *c; c++)
        if (*c == ':') *c = '_';
    if (kc_exists(path)) return 1;
    char *argv[] = {"/usr/bin/env", (char *)kt_python(), "tests/ref/mix_model.py", path, "--shape", (char *)shape,
                    "--mix", (char *)mix, NULL};
    enum { CAP = 1 << 16 };
    char *out = malloc(CAP), *err = malloc(CAP);
    if (!out || !err) {
        free(out), free(err);
        KT_CHECKF(0, "out of memory");
        return 0;
    }
    double t0 = now_s();
    int rc = kt_run(argv, out, CAP, err, CAP);
    int r = 1;
    if (rc == 3 || rc == 127) {
        snprintf(why, why_cap, "%s lacks numpy/gguf (the model generator and the reference need them)", kt_python());
        r = -1;
    } else if (rc != 0) {
        KT_CHECKF(0, "mix_model.py %s %s exited %d: %s", shape, mix, rc, tail(err, 2000));
        r = 0;
    } else {
        printf("    model %s %s written in %.1f s\n", shape, mix, now_s() - t0);
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

/* "N ops after fusion" from kgen compile's report; -1 if absent. */
static int ops_after_fusion(const char *err)
{
    const char *p = strstr(err, " ops after fusion");
    if (!p) return -1;
    while (p > err && p[-1] >= '0' && p[-1] <= '9') p--;
    return atoi(p);
}

/* Compiles model to so (KGEN_NOFUSE=1 if nofuse); returns the op count
 * after fusion, or -1 on a failed check. */
static int compile(const char *model, const char *so, bool nofuse, double *secs)
{
    kc_setup_env();
    if (nofuse) setenv("KGEN_NOFUSE", "1", 1);
    double t0 = now_s();
    int rc = KGEN("compile", model, "-o", so);
    *secs = now_s() - t0;
    if (nofuse) unsetenv("KGEN_NOFUSE");
    KT_CHECKF(rc == 0, "kgen compile %s%s exited %d:\n%s", model, nofuse ? " (KGEN_NOFUSE=1)" : "", rc, tail(kc_err, 3000));
    return rc == 0 ? ops_after_fusion(kc_err) : -1;
}

/* check_mix.py on model run as so (float: kgen's products take float
 * activations, the tighter tolerances). Fails the test with the checker's
 * table unless every prompt passes; prints the checker's summary line. */
static void check(const char *model, const char *so, bool float_act)
{
    char *argv[16] = {NULL, NULL, "tests/ref/check_mix.py", "--model", (char *)model, "--run", (char *)so, "--kgen",
                      (char *)kt_kgen_bin(), "-t", "2", float_act ? "--float" : NULL, NULL};
    kc_ref_check(argv);
}

/* ─────────────────────────── the mixes ─────────────────────────── */

/* The types llama.cpp's rules give each (shape, mix), with F32 for the norms.
 * SmolLM2 (576 wide, ff 1536, 3 KV heads of 9, tied; file layers = real
 * layers 0, 9, 14, 29 of 30):
 *   q4_k_m  576-wide Q4_K -> Q5_0; attn_v and ffn_down Q6_K where
 *           use_more_bits (0, 14, 29): attn_v -> Q8_0 (576 wide), ffn_down
 *           Q6_K (1536 wide); tied token_embd: Q8_0 (576 % 256)
 *   q5_k_m  the same with Q5_K -> Q5_1
 *   q3_k_m  Q3_K -> Q4_0; attn_v Q5_K on the first two (-> Q5_1), else Q4_K
 *           (-> Q5_0); attn_output Q4_K (-> Q5_0); ffn_down Q5_K below 30/16
 *           = 1 (layer 0), else Q4_K
 *   iq4_xs  IQ4_XS -> IQ4_NL (576 wide; attn_v stays: 3 < 4 query heads per
 *           KV head); ffn_down Q5_K below 30/8 (layer 0), else IQ4_XS
 * TinyLlama (2048 wide, ff 5632, 4 KV heads of 32, untied; real layers 0, 11
 * of 22): output Q6_K, token_embd the default type, nothing falls back;
 * q4_k_m: V and down Q6_K on layer 0; q5_k_m likewise; q3_k_m: V Q5_K on
 * layers 0 and 1, Q4_K later, attn_output Q4_K, down Q5_K on layer 0 and Q4_K
 * after; iq4_xs: V Q5_K (8 query heads per KV head), down Q5_K on layers
 * 0..1; q2_k: V Q4_K (>= 4 per KV head), attn_output and down Q3_K. */
typedef struct mix_case {
    const char *shape, *mix, *types;
} mix_case;

static const mix_case CASES[] = {
    {"smollm2", "q4_k_m", " F32 Q5_0 Q8_0 Q4_K Q6_K"},
    {"smollm2", "q5_k_m", " F32 Q5_1 Q8_0 Q5_K Q6_K"},
    {"smollm2", "q3_k_m", " F32 Q4_0 Q5_0 Q5_1 Q8_0 Q4_K Q5_K"},
    {"smollm2", "iq4_xs", " F32 Q8_0 Q5_K IQ4_NL IQ4_XS"},
    {"tinyllama", "q4_k_m", " F32 Q4_K Q6_K"},
    {"tinyllama", "q5_k_m", " F32 Q5_K Q6_K"},
    {"tinyllama", "q3_k_m", " F32 Q3_K Q4_K Q5_K Q6_K"},
    {"tinyllama", "iq4_xs", " F32 Q5_K Q6_K IQ4_XS"},
    {"tinyllama", "q2_k", " F32 Q2_K Q3_K Q4_K Q6_K"},
};

static const mix_case *find_case(const char *shape, const char *mix)
{
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++)
        if (!strcmp(CASES[i].shape, shape) && !strcmp(CASES[i].mix, mix)) return &CASES[i];
    return NULL;
}

/* Writes the model, checks its types; path receives it. False: the test is
 * over (failed or skipped). */
static bool model_ready(const mix_case *c, char *path, size_t cap)
{
    char why[256];
    int r = mix_model(c->shape, c->mix, path, cap, why, sizeof why);
    if (r < 0) {
        kt_skip("%s", why);
        return false;
    }
    if (r == 0) return false;
    char got[512];
    KT_CHECKF(types_in(path, got, sizeof got), "cannot open %s: %s", path, kg_last_error());
    KT_CHECKF(!strcmp(got, c->types), "%s %s: the file holds types%s, llama.cpp's rules give%s", c->shape, c->mix, got,
              c->types);
    return !kt_failed();
}

static void run_mix(const char *shape, const char *mix)
{
    const mix_case *c = find_case(shape, mix);
    KT_REQUIRE(c);
    char path[700], so[760];
    if (!model_ready(c, path, sizeof path)) return;
    snprintf(so, sizeof so, "%s.so", path);
    double secs;
    int ops = compile(path, so, false, &secs);
    if (ops == -1 && kt_failed()) return;
    printf("    types%s; compiled in %.2f s (%d ops after fusion)\n", c->types, secs, ops);
    check(path, so, false);
    remove(so);
    if (!strcmp(shape, "tinyllama")) remove(path); /* 40-75 MB, used once */
}

KT_TEST(mix_smollm2_q4_k_m) { run_mix("smollm2", "q4_k_m"); }
KT_TEST(mix_smollm2_q5_k_m) { run_mix("smollm2", "q5_k_m"); }
KT_TEST(mix_smollm2_q3_k_m) { run_mix("smollm2", "q3_k_m"); }
KT_TEST(mix_smollm2_iq4_xs) { run_mix("smollm2", "iq4_xs"); }
KT_TEST(mix_tinyllama_q4_k_m) { run_mix("tinyllama", "q4_k_m"); }
KT_TEST(mix_tinyllama_q5_k_m) { run_mix("tinyllama", "q5_k_m"); }
KT_TEST(mix_tinyllama_q3_k_m) { run_mix("tinyllama", "q3_k_m"); }
KT_TEST(mix_tinyllama_iq4_xs) { run_mix("tinyllama", "iq4_xs"); }
KT_TEST(mix_tinyllama_q2_k) { run_mix("tinyllama", "q2_k"); }

/* ─────────────────────────── no fusion ─────────────────────────── */

KT_TEST(mix_nofuse)
{
    const mix_case *c = find_case("smollm2", "q3_k_m");
    char path[700], so[760], so_nf[760];
    if (!model_ready(c, path, sizeof path)) return;
    snprintf(so, sizeof so, "%s.fused.so", path);
    snprintf(so_nf, sizeof so_nf, "%s.nofuse.so", path);
    double s1, s2;
    int ops = compile(path, so, false, &s1);
    int ops_nf = compile(path, so_nf, true, &s2);
    KT_REQUIRE(!kt_failed());
    printf("    fused: %d ops (%.2f s); KGEN_NOFUSE=1: %d ops (%.2f s)\n", ops, s1, ops_nf, s2);
    KT_CHECKF(ops > 0 && ops_nf > ops, "KGEN_NOFUSE=1 left %d ops after fusion, the fused compile %d: fusion was not turned off",
              ops_nf, ops);
    check(path, so_nf, true);
    remove(so), remove(so_nf);
}

/* ─────────────────────────── bad input ─────────────────────────── */

/* A model of tiny_llama.h's defaults with 256-wide rows (whole blocks of
 * every type), one tensor edited to type `type`, compiled: must fail naming
 * the tensor and the type. */
static void refused(const char *dir, const char *tensor, uint32_t type, const char *const *also)
{
    const kg_type_info *ti = kg_type_get(type);
    tl_params p;
    tl_defaults(&p);
    p.n_embd = 256, p.n_head = 4, p.n_head_kv = 2, p.n_ff = 512;
    p.edit_tensor = tensor;
    p.edit_type = type;
    char gguf[760], out[760], label[128];
    snprintf(gguf, sizeof gguf, "%s/%s.gguf", dir, ti->name);
    snprintf(out, sizeof out, "%s/%s.so", dir, ti->name);
    KT_REQUIRE(tl_write(&p, gguf));
    snprintf(label, sizeof label, "%s as %s", tensor, ti->name);
    const char *want[8] = {gguf, tensor, ti->name, NULL};
    for (int i = 3; also && *also && i < 7; also++) want[i++] = *also, want[i] = NULL;
    kc_expect_failure(label, 1, NULL, NULL, want, STRS("compile", gguf, "-o", out));
    KT_CHECKF(!kc_exists(out), "%s: a failed compile wrote %s", label, out);
    remove(gguf);
}

KT_TEST(mix_bad_type)
{
    kc_setup_env();
    char dir[600];
    kc_tpath(dir, sizeof dir, "mix-bad-type");
    KT_REQUIRE(kc_make_dir(dir));
    int n = 0;
    char names[1024] = "";
    size_t o = 0;
    for (uint32_t t = 0; t < KG_TYPE_OWN_BASE; t++) {
        const kg_type_info *ti = kg_type_get(t);
        if (!ti || ti->kernels) continue;
        refused(dir, "blk.1.attn_k.weight", t, NULL);
        n++;
        if (o < sizeof names) o += (size_t)snprintf(names + o, sizeof names - o, " %s", ti->name);
    }
    printf("    refused as blk.1.attn_k.weight (%d types):%s\n", n, names);
    /* the embedding, in a type no kernel takes */
    refused(dir, "token_embd.weight", KG_TYPE_IQ2_XXS, NULL);
    KT_CHECKF(n > 0 || kg_type_get(KG_TYPE_IQ2_XXS)->kernels, "no type without kernels was tried");
}

KT_TEST(mix_bad_row)
{
    kc_setup_env();
    char dir[600];
    kc_tpath(dir, sizeof dir, "mix-bad-row");
    KT_REQUIRE(kc_make_dir(dir));
    static const struct {
        const char *tensor;
        uint32_t type;
        const char *len, *blck;
    } cases[] = {
        /* tiny_llama's defaults: 64 wide, ff 128 */
        {"blk.0.attn_v.weight", KG_TYPE_Q4_K, "64", "256"},
        {"blk.1.ffn_down.weight", KG_TYPE_Q6_K, "128", "256"},
        {"blk.0.ffn_up.weight", KG_TYPE_IQ4_XS, "64", "256"},
        {"token_embd.weight", KG_TYPE_Q5_K, "64", "256"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tl_params p;
        tl_defaults(&p);
        p.edit_tensor = cases[i].tensor;
        p.edit_type = cases[i].type;
        const char *tname = kg_type_get(cases[i].type)->name;
        char gguf[760], out[760], label[128];
        snprintf(gguf, sizeof gguf, "%s/%zu.gguf", dir, i);
        snprintf(out, sizeof out, "%s/%zu.so", dir, i);
        KT_REQUIRE(tl_write(&p, gguf));
        snprintf(label, sizeof label, "%s as %s", cases[i].tensor, tname);
        kc_expect_failure(label, 1, NULL, NULL, STRS(gguf, cases[i].tensor, tname, cases[i].len, cases[i].blck),
                          STRS("compile", gguf, "-o", out));
        KT_CHECKF(!kc_exists(out), "%s: a failed compile wrote %s", label, out);
    }
}

/* ───────────────── the rules against llama.cpp (slow tier) ───────────────── */

/* The real SmolLM2 requantized by llama.cpp's own quantizer (bench/.venv,
 * llama-cpp-python's llama_model_quantize) as FTYPE into kt_tmpdir(); path
 * receives it. False (a failed check) if the quantizer failed. */
static const char PEER_PY[] = "bench/.venv/bin/python";

static bool llama_cpp_quantized(const char *model, const char *ftype, char *path, size_t cap)
{
    kc_tpath(path, cap, "smollm2-%s.gguf", ftype);
    char out[4096], err[4096];
    char *argv[] = {(char *)PEER_PY, "bench/peer_llama.py", "--quantize", (char *)model, path, (char *)ftype, "-t", "2", NULL};
    int rc = kt_run(argv, out, sizeof out, err, sizeof err);
    KT_CHECKF(rc == 0, "llama.cpp's quantizer (%s) exited %d: %s", ftype, rc, tail(err, 2000));
    return rc == 0;
}

#define NEED_PEER(model)                                                                                         \
    char model[512];                                                                                             \
    snprintf(model, sizeof model, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", kt_models_dir());                       \
    if (!kc_exists(model)) KT_SKIP("%s not found: run 'make models'", model);                                   \
    if (!kc_exists(PEER_PY)) KT_SKIP("%s is absent: llama.cpp's quantizer runs there; run sh bench/setup_peer.sh", PEER_PY)

/* Each mix made by llama.cpp from the real SmolLM2: every weight tensor of
 * the 30 layers has the type mix_model.py's rules give it. */
KT_TEST(slow_mix_rules_match_llama_cpp)
{
    static const char *const mixes[][2] = {
        {"q4_k_m", "Q4_K_M"}, {"q5_k_m", "Q5_K_M"}, {"q3_k_m", "Q3_K_M"}, {"iq4_xs", "IQ4_XS"}, {"q2_k", "Q2_K"}};
    NEED_PEER(model);
    enum { CAP = 1 << 16 };
    char *out = malloc(CAP), *err = malloc(CAP);
    KT_REQUIRE(out && err);
    for (size_t i = 0; i < sizeof mixes / sizeof *mixes; i++) {
        char q[700];
        if (!llama_cpp_quantized(model, mixes[i][1], q, sizeof q)) continue;
        char *cmp[] = {(char *)PEER_PY, "tests/ref/mix_model.py", "--check-against", q, "--shape", "smollm2", "--mix",
                       (char *)mixes[i][0], NULL};
        int rc = kt_run(cmp, out, CAP, err, CAP);
        KT_CHECKF(rc == 0, "%s: the rules differ from llama.cpp's quantizer (exit %d):\n%s%s", mixes[i][1], rc,
                  tail(out, 3000), tail(err, 1000));
        if (rc == 0) printf("    %s", tail(out, 200));
        remove(q);
    }
    free(out), free(err);
}

/* The real SmolLM2 requantized by llama.cpp into each file type users have
 * (the mixes, and the uniform new types): kgen against the independent
 * reference, every prompt of tests/ref/prompts.txt, 32 greedy tokens each,
 * with check_e2e.py's tolerances (set for SmolLM2's 30 layers). */
KT_TEST(slow_mix_llama_cpp_files_e2e)
{
    static const char *const ftypes[] = {"Q4_K_M", "Q5_K_M", "Q3_K_M", "Q2_K", "IQ4_XS", "Q5_0", "Q5_1", "IQ4_NL"};
    NEED_PEER(model);
    enum { CAP = 1 << 18 };
    char *out = malloc(CAP), *err = malloc(CAP);
    KT_REQUIRE(out && err);
    for (size_t i = 0; i < sizeof ftypes / sizeof *ftypes; i++) {
        char q[700];
        if (!llama_cpp_quantized(model, ftypes[i], q, sizeof q)) continue;
        char *argv[] = {"/usr/bin/env", (char *)kt_python(), "tests/ref/check_e2e.py", "--kgen", (char *)kt_kgen_bin(),
                        "--model", q, "-n", "32", "-t", "2", NULL};
        int rc = kt_run(argv, out, CAP, err, CAP);
        if (rc == SKIPPED || rc == 127) {
            remove(q);
            free(out), free(err);
            KT_SKIP("the reference needs %s with numpy and gguf", kt_python());
        }
        KT_CHECKF(rc == 0, "%s: check_e2e.py exited %d\n%s\n%s", ftypes[i], rc, tail(out, 4000), tail(err, 1000));
        if (rc == 0) printf("    %s: %s", ftypes[i], tail(out, 200));
        remove(q);
    }
    free(out), free(err);
}
