/*
 * test_perplexity.c — `kgen perplexity` against llama.cpp's perplexity
 * procedure computed by tests/ref/check_ppl.py with the numpy reference
 * forward (tests/ref/model_ref.py), and its refusals of bad input.
 *
 * perplexity_matches_reference: the tiny model (tests/tiny_llama.c, Q8_0,
 *   adding BOS, so each chunk's first token is replaced) over
 *   tests/ref/sentences.txt, 3 chunks of 64 tokens, with --kl-base a second
 *   tiny model (Q4_0, other weights: KL well above 0): perplexity,
 *   scored tokens, chunks, KL, top-1 agreement and the base's perplexity
 *   against the reference on kgen's own tokens (--dump-tokens); then the
 *   model against itself: KL 0 and top-1 1 exactly (the same logits).
 * perplexity_bad_input: a missing text, a text shorter than one chunk, a
 *   --ctx past the model's context, a base with another vocabulary, a
 *   --dump-tokens naming an input, and no --file: exit 1 or 2 with a
 *   message naming what is wrong.
 * slow_perplexity_*_vs_llama_cpp (make check-slow): the real SmolLM2 and
 *   Gemma 3 over models/texts/eval.txt against llama.cpp's own logits on the
 *   same tokens (tests/ref/check_ppl_llama_cpp.py): within 1%.
 *
 *   build/kgen-tests perplexity_
 */
#include "kt.h"
#include "kt_cli.h"
#include "kgen.h"
#include "tiny_llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char TEXT[] = "tests/ref/sentences.txt";

/* a tiny model: the default one, or Q4_0 weights from another seed
 * (other); n_vocab 0 for the default vocabulary, more for a padded one */
static bool write_tiny(const char *path, bool other, bool add_bos, int64_t n_vocab)
{
    tl_params p;
    tl_defaults(&p);
    if (other) p.wtype = KG_TYPE_Q4_0, p.seed ^= 0x5eed;
    p.add_bos = add_bos;
    p.n_vocab = n_vocab;
    return tl_write(&p, path);
}

static double json_num(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *at = strstr(json, k);
    return at ? strtod(at + strlen(k), NULL) : -1;
}

KT_TEST(perplexity_matches_reference)
{
    NEED_TINY();
    char model[600], base[600], toks[600], res[600];
    kc_tpath(model, sizeof model, "ppl-model.gguf");
    kc_tpath(base, sizeof base, "ppl-base.gguf");
    kc_tpath(toks, sizeof toks, "ppl-tokens.bin");
    kc_tpath(res, sizeof res, "ppl-result.json");
    KT_REQUIRE(write_tiny(model, false, true, 0) && write_tiny(base, true, true, 0));
    int rc = KGEN("perplexity", model, "--file", TEXT, "--ctx", "64", "--chunks", "3", "--kl-base", base,
                  "--json", "--dump-tokens", toks, "-t", "2");
    REQUIRE_F(rc == 0, "kgen perplexity exited %d: %s", rc, kc_tail(kc_err, 2000));
    printf("    %s", kc_out);
    FILE *f = fopen(res, "wb");
    KT_REQUIRE(f && fputs(kc_out, f) >= 0 && fclose(f) == 0);
    KT_CHECKF(json_num(kc_out, "kl") > 0.01, "KL against other weights is %g: the two models were not both run",
              json_num(kc_out, "kl"));
    char *argv[] = {NULL, NULL, "tests/ref/check_ppl.py", model, toks, res, "--ctx", "64", "--chunks", "3",
                    "--base", base, NULL};
    kc_ref_check(argv);

    /* against itself: the same logits, so KL 0 and full agreement, exactly */
    rc = KGEN("perplexity", kc_tiny_gguf, "--file", TEXT, "--ctx", "64", "--chunks", "2", "--kl-base", kc_tiny_so,
              "--json");
    REQUIRE_F(rc == 0, "kgen perplexity against itself exited %d: %s", rc, kc_tail(kc_err, 2000));
    KT_CHECKF(json_num(kc_out, "kl") == 0 && json_num(kc_out, "top1") == 1 &&
                  json_num(kc_out, "ppl") == json_num(kc_out, "base_ppl"),
              "the model against itself: %s", kc_out);
}

KT_TEST(perplexity_bad_input)
{
    NEED_TINY();
    char other[600], short_txt[600], missing[600];
    kc_tpath(other, sizeof other, "ppl-vocab.gguf");
    kc_tpath(short_txt, sizeof short_txt, "ppl-short.txt");
    kc_tpath(missing, sizeof missing, "ppl-missing.txt");
    KT_REQUIRE(write_tiny(other, true, false, tl_n_vocab() + 64));
    FILE *f = fopen(short_txt, "wb");
    KT_REQUIRE(f && fputs("Too short to fill a chunk.", f) >= 0 && fclose(f) == 0);
    /* "@missing", "@short", "@vocab": the paths above */
    static const struct {
        int rc;
        const char *want;
        const char *args[6];
    } cases[] = {
        {1, "ppl-missing.txt", {"--file", "@missing"}},
        {1, "fewer than one chunk", {"--file", "@short", "--ctx", "64"}},
        {1, "--ctx 100000", {"--file", TEXT, "--ctx", "100000"}},
        {1, "vocabulary", {"--file", TEXT, "--ctx", "64", "--kl-base", "@vocab"}},
        {2, "refusing to overwrite", {"--file", TEXT, "--dump-tokens", TEXT}},
        {2, "no text", {"--ctx", "64"}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *args[10] = {"perplexity", kc_tiny_so};
        int n = 2;
        for (int i = 0; i < 6 && cases[c].args[i]; i++) {
            const char *v = cases[c].args[i];
            args[n++] = !strcmp(v, "@missing") ? missing
                        : !strcmp(v, "@short") ? short_txt
                        : !strcmp(v, "@vocab") ? other
                                               : v;
        }
        args[n] = NULL;
        int rc = kc_kgen_args(args);
        KT_CHECKF(rc == cases[c].rc && strstr(kc_err, cases[c].want), "case %zu: exit %d (want %d), stderr: %s", c,
                  rc, cases[c].rc, kc_tail(kc_err, 600));
    }
}

/* slow tier: kgen's perplexity of the real SmolLM2 and Gemma 3 (which adds
 * BOS) over the evaluation text against llama.cpp's own logits on the same
 * tokens (llama-cpp-python in bench/.venv, made by bench/setup_peer.sh) */
static void vs_llama_cpp(const char *file, const char *chunks)
{
    static const char py[] = "bench/.venv/bin/python";
    char model[512], text[512], toks[600], res[600];
    snprintf(model, sizeof model, "%s/%s", kt_models_dir(), file);
    snprintf(text, sizeof text, "%s/texts/eval.txt", kt_models_dir());
    if (!kc_exists(model) || !kc_exists(text)) KT_SKIP("%s or %s not found: run 'make models'", model, text);
    if (!kc_exists(py)) KT_SKIP("%s is absent: llama.cpp runs there; run sh bench/setup_peer.sh", py);
    kc_setup_env();
    kc_tpath(toks, sizeof toks, "ppl-llama-tokens.bin");
    kc_tpath(res, sizeof res, "ppl-llama-result.json");
    int rc = KGEN("perplexity", model, "--file", text, "--chunks", chunks, "--json", "--dump-tokens", toks, "-t", "2");
    REQUIRE_F(rc == 0, "kgen perplexity exited %d: %s", rc, kc_tail(kc_err, 2000));
    FILE *f = fopen(res, "wb");
    KT_REQUIRE(f && fputs(kc_out, f) >= 0 && fclose(f) == 0);
    char *argv[] = {(char *)py, "tests/ref/check_ppl_llama_cpp.py", model, toks, res, "--ctx", "512", "--chunks",
                    (char *)chunks, NULL};
    static char out[1 << 16], err[1 << 16];
    rc = kt_run(argv, out, sizeof out, err, sizeof err);
    if (rc == 77) KT_SKIP("%s lacks llama_cpp or numpy: run sh bench/setup_peer.sh", py);
    KT_CHECKF(rc == 0, "check_ppl_llama_cpp.py exited %d\n%s\n%s", rc, kc_tail(out, 3000), kc_tail(err, 2000));
    if (rc == 0) printf("    %s", out);
}

KT_TEST(slow_perplexity_smollm2_vs_llama_cpp) { vs_llama_cpp("SmolLM2-135M-Instruct.Q4_1.gguf", "8"); }
KT_TEST(slow_perplexity_gemma3_vs_llama_cpp) { vs_llama_cpp("gemma-3-270m-q4_k_m.gguf", "6"); }
