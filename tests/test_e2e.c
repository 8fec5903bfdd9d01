/*
 * test_e2e.c — the whole model, end to end: `kgen run` on the real SmolLM2
 * against an independent reference (tests/ref/model_ref.py: a numpy forward
 * pass of the llama architecture, weights read and dequantized by the PyPI
 * package `gguf`), through tests/ref/check_e2e.py.
 *
 *   e2e_checker_self_test: the checker itself, on logits dumps the reference
 *     writes: one computed with kgen-like int8 activations must pass, ones
 *     from deliberately wrong models (rope base, rope pairing, a layer left
 *     out, GQA head mapping, no causal mask, LayerNorm for RMSNorm) must
 *     fail, malformed dumps must be rejected. Needs no kgen.
 *   e2e_smollm2_greedy: kgen generates 64 tokens greedily (2 threads) for
 *     every prompt of tests/ref/prompts.txt and dumps its logits; each step's
 *     logits must match the reference's within the tolerances stated in
 *     check_e2e.py, and each greedy token must be the reference's argmax
 *     unless the two are a near-tie.
 *   e2e_smollm2_nofuse: the same with every fusion rule off (KGEN_NOFUSE),
 *     16 tokens: the plain graph's own kernels give the same model.
 *   e2e_smollm2_knobs: the same, 16 tokens, with the weight layout the
 *     target's default does not pick (KGEN_KNOBS layout=rows on an AVX2 or
 *     AVX-512 CPU, x16 elsewhere), where the CPU has AMX with amx=on, and
 *     on x16 CPUs with prefill's tiles of 8 rows (mtile=8).
 *
 * Both skip, saying why, when the model is not fetched or Python lacks
 * numpy/gguf (check_e2e.py exits 77).
 */
#include "kt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMOL "SmolLM2-135M-Instruct.Q4_1.gguf"
#define SKIPPED 77

/* The last `n` bytes of s (at most), starting at a line. */
static const char *tail(const char *s, size_t n)
{
    size_t len = strlen(s);
    if (len <= n) return s;
    const char *t = s + len - n, *nl = strchr(t, '\n');
    return nl ? nl + 1 : t;
}

/* Runs check_e2e.py with `extra` arguments (NULL-terminated, at most 8);
 * skips on 77, fails with the output's tail on anything but 0. */
static void run_check(const char *const *extra)
{
    char model[512];
    snprintf(model, sizeof model, "%s/%s", kt_models_dir(), SMOL);
    char *argv[16] = {"/usr/bin/env", (char *)kt_python(), "tests/ref/check_e2e.py", "--model", model};
    int argc = 5;
    for (; *extra && argc < 15; extra++) argv[argc++] = (char *)*extra;
    argv[argc] = NULL;
    enum { CAP = 1 << 20 };
    char *out = malloc(CAP), *err = malloc(CAP);
    KT_REQUIRE(out && err);
    int rc = kt_run(argv, out, CAP, err, CAP);
    if (rc == SKIPPED) {
        const char *why = strstr(out, "skipped: ");
        char msg[512];
        snprintf(msg, sizeof msg, "%s", why ? why + 9 : "check_e2e.py says skipped");
        msg[strcspn(msg, "\n")] = 0;
        free(out);
        free(err);
        KT_SKIP("%s", msg);
    }
    if (rc == 127) {
        free(out);
        free(err);
        KT_SKIP("%s not found: the reference needs Python 3 with numpy and gguf", kt_python());
    }
    KT_CHECKF(rc == 0, "check_e2e.py exited %d\n--- stdout (tail)\n%s\n--- stderr (tail)\n%s", rc, tail(out, 4000),
              tail(err, 2000));
    free(out);
    free(err);
}

KT_TEST(e2e_checker_self_test)
{
    static const char *const a[] = {"--self-test", NULL};
    run_check(a);
}

KT_TEST(e2e_smollm2_greedy)
{
    static const char *const a0[] = {"--kgen", NULL, "-t", "2", "-n", "64", NULL};
    const char *a[7];
    memcpy(a, a0, sizeof a);
    a[1] = kt_kgen_bin();
    run_check(a);
}

/* Lowering is total: with every fusion rule off (KGEN_NOFUSE=all: each op
 * of the plain graph its own kernel, products on f32 activations) the model
 * still matches the reference, token for token. */
KT_TEST(e2e_smollm2_nofuse)
{
    static const char *const a0[] = {"--kgen", NULL, "-t", "2", "-n", "16", NULL};
    const char *a[7];
    memcpy(a, a0, sizeof a);
    a[1] = kt_kgen_bin();
    setenv("KGEN_NOFUSE", "all", 1);
    run_check(a);
    unsetenv("KGEN_NOFUSE");
}

KT_TEST(e2e_smollm2_knobs)
{
    static const char *const a0[] = {"--kgen", NULL, "-t", "2", "-n", "16", NULL};
    const char *a[7];
    memcpy(a, a0, sizeof a);
    a[1] = kt_kgen_bin();
    /* the other layout (x16 is the default from the AVX2 level up: rows
     * there, x16 below, its portable C); AMX where /proc/cpuinfo lists it */
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    bool x16 = false, amx = false;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            x16 = strstr(line, " avx2") && strstr(line, " fma") && strstr(line, " f16c");
            amx = strstr(line, " amx_int8") != NULL;
            break;
        }
    if (f) fclose(f);
    printf("    layout=%s\n", x16 ? "rows" : "x16");
    setenv("KGEN_KNOBS", x16 ? "layout=rows" : "layout=x16", 1);
    run_check(a);
    if (KT_SANITIZED) { /* the others change the compiled kernels, not kgen's paths */
        printf("    amx=on and mtile=8 are the plain build's: the sanitizers watch kgen, not the kernels\n");
    } else {
        if (amx) {
            printf("    amx=on\n");
            setenv("KGEN_KNOBS", "amx=on", 1);
            run_check(a);
        } else
            printf("    amx=on is not run here: the CPU has no AMX\n");
        if (x16) { /* prefill's tiles of 8 rows (x16 weights; the default: 4 for quantized ones) */
            printf("    mtile=8\n");
            setenv("KGEN_KNOBS", "mtile=8", 1);
            run_check(a);
        }
    }
    unsetenv("KGEN_KNOBS");
}
