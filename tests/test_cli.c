/*
 * test_cli.c — the command line's parsing and messages, on the tiny model
 * (tests/kt_cli.h):
 *
 *   cli_integers          integer options take exact integers: fractions,
 *                         exponents, overflow and junk are refused (exit 2,
 *                         naming the option); seeds 2^53 and 2^53 + 1 differ;
 *                         the largest seed is accepted
 *   cli_missing_values    every option that takes a value says so when it
 *                         has none (not "unknown option")
 *   cli_messages          -p with -f; a context with no room to generate
 *                         (numbers that add up); an unknown --cpu feature is
 *                         refused without LLVM's warning; no path twice
 */
#include "kt.h"
#include "kt_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* kgen exits 2 and its message names the option and the value */
static void bad_value(const char *label, const char *opt, const char *val, const char *const *args)
{
    int rc = kc_kgen_args(args);
    KT_CHECKF(rc == 2, "%s: exit status %d, expected 2 (bad usage); stderr: %s", label, rc, kc_err);
    KT_CHECKF(strstr(kc_err, opt) && (!val || strstr(kc_err, val)), "%s: the message does not name %s %s: %s", label,
              opt, val ? val : "", kc_err);
}

KT_TEST(cli_integers)
{
    NEED_TINY();
    const char *so = kc_tiny_so;
    static const char *const fractions[][2] = {{"-n", "2.7"}, {"-t", "2.5"}, {"-c", "1e2"}, {"--top-k", "4.0"},
                                               {"--repeat-last-n", "0x10"}, {"-n", " 3"}, {"-n", "3 "},
                                               {"-t", ""}, {"-c", "99999999999999999999"}, {"-n", "-1"}};
    for (size_t i = 0; i < sizeof fractions / sizeof *fractions; i++) {
        char label[64];
        snprintf(label, sizeof label, "run %s '%s'", fractions[i][0], fractions[i][1]);
        bad_value(label, fractions[i][0], NULL, STRS("run", so, "-p", "hi", fractions[i][0], fractions[i][1]));
    }
    bad_value("seed 2^64", "--seed", "18446744073709551616",
              STRS("run", so, "-p", "hi", "--seed", "18446744073709551616"));
    bad_value("seed 1.5", "--seed", "1.5", STRS("run", so, "-p", "hi", "--seed", "1.5"));
    bad_value("seed -1", "--seed", "-1", STRS("run", so, "-p", "hi", "--seed", "-1"));
    bad_value("bench -r 2.5", "-r", "2.5", STRS("bench", so, "-r", "2.5"));
    bad_value("bench -t 1.0", "-t", "1.0", STRS("bench", so, "-t", "1.0"));
    bad_value("bench --pp 1,2.5", "--pp", "1,2.5", STRS("bench", so, "--pp", "1,2.5"));
    bad_value("compile --batch 64.0", "--batch", "64.0", STRS("compile", kc_tiny_gguf, "-o", "x.so", "--batch", "64.0"));
    bad_value("compile -j 1.5", "-j", "1.5", STRS("compile", kc_tiny_gguf, "-o", "x.so", "-j", "1.5"));
    bad_value("kernels --batch 8.5", "--batch", "8.5", STRS("kernels", kc_tiny_gguf, "--batch", "8.5"));

    /* seeds are exact: 2^53 and 2^53 + 1 (the same double) sample differently;
     * 2^64 - 1 is a seed like any other */
    char text[2][4096];
    static const char *const seeds[2] = {"9007199254740992", "9007199254740993"};
    for (int k = 0; k < 2; k++) {
        int rc = KGEN("run", so, "-p", "the", "-n", "32", "--temp", "2", "--top-k", "0", "--top-p", "1", "--min-p", "0",
                      "--ignore-eos", "-t", "1", "--seed", seeds[k]);
        KT_CHECKF(rc == 0, "run --seed %s exited %d: %s", seeds[k], rc, kc_err);
        kc_save(text[k], sizeof text[k], kc_out);
    }
    KT_CHECKF(strcmp(text[0], text[1]), "seeds %s and %s gave the same text: %s", seeds[0], seeds[1], text[0]);
    int rc = KGEN("run", so, "-p", "the", "-n", "4", "-t", "1", "--seed", "18446744073709551615");
    KT_CHECKF(rc == 0, "run --seed 2^64-1 exited %d: %s", rc, kc_err);
}

KT_TEST(cli_missing_values)
{
    NEED_TINY();
    const char *so = kc_tiny_so, *gg = kc_tiny_gguf;
    static const char *const run_opts[] = {"-p", "--prompt", "-f", "--file", "--system", "--cpu", "--target",
                                           "--dump-logits", "-n", "-t", "-c", "--temp", "--top-k", "--top-p",
                                           "--min-p", "--repeat-penalty", "--repeat-last-n", "--seed"};
    for (size_t i = 0; i < sizeof run_opts / sizeof *run_opts; i++) {
        char label[64];
        snprintf(label, sizeof label, "run ... %s", run_opts[i]);
        bad_value(label, run_opts[i], "needs a value", STRS("run", so, run_opts[i]));
        KT_CHECKF(!strstr(kc_err, "unknown option"), "%s: %s", label, kc_err);
    }
    static const char *const bench_opts[] = {"--pp", "--tg", "-r", "-t", "--cpu", "--target"};
    for (size_t i = 0; i < sizeof bench_opts / sizeof *bench_opts; i++)
        bad_value("bench", bench_opts[i], "needs a value", STRS("bench", so, bench_opts[i]));
    static const char *const compile_opts[] = {"-o", "--cpu", "--target", "--emit", "--batch", "-j"};
    for (size_t i = 0; i < sizeof compile_opts / sizeof *compile_opts; i++)
        bad_value("compile", compile_opts[i], "needs a value", STRS("compile", gg, compile_opts[i]));
    bad_value("kernels --target", "--target", "needs a value", STRS("kernels", gg, "--target"));
    bad_value("kernels --batch", "--batch", "needs a value", STRS("kernels", gg, "--batch"));
}

/* How often `needle` occurs in s */
static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

KT_TEST(cli_messages)
{
    NEED_TINY();
    const char *so = kc_tiny_so;
    char prompt_file[600];
    kc_tpath(prompt_file, sizeof prompt_file, "tiny/prompt.txt");
    FILE *f = fopen(prompt_file, "w");
    KT_REQUIRE(f && fputs("hello\n", f) >= 0 && fclose(f) == 0);
    bad_value("-p and -f", "-p", "-f", STRS("run", so, "-p", "hi", "-f", prompt_file));
    KT_CHECKF(strstr(kc_err, "exclude"), "-p with -f: the message does not say they exclude each other: %s", kc_err);

    /* -c 1: a 1-token prompt leaves no room: the message's numbers add up
     * (prompt N tokens, context 1, -c N+1 suggested) */
    int rc = KGEN("run", so, "-c", "1", "-p", "a", "-n", "4", "-t", "1");
    int np = 0, ctx = 0, need = 0;
    const char *m = strstr(kc_err, "the prompt is ");
    KT_CHECKF(rc == 1 && m && sscanf(m, "the prompt is %d token", &np) == 1, "-c 1: exit %d: %s", rc, kc_err);
    const char *h = m ? strstr(m, "the context holds ") : NULL, *c = m ? strstr(m, "-c ") : NULL;
    KT_CHECKF(h && sscanf(h, "the context holds %d", &ctx) == 1 && c && sscanf(c, "-c %d", &need) == 1,
              "-c 1: the message does not give the context and the -c needed: %s", kc_err);
    KT_CHECKF(ctx == 1 && np >= 1 && need == np + 1, "-c 1: prompt %d, context %d, suggested -c %d: %s", np, ctx, need,
              kc_err);
    KT_CHECKF(!strstr(kc_err, "longer than the context"), "-c 1: %s", kc_err);

    /* an unknown CPU feature is refused like an unknown CPU, and LLVM's own
     * warning ("not a recognized feature") is not printed */
    char out[600];
    kc_tpath(out, sizeof out, "tiny/feat.so");
    kc_expect_failure("--cpu +nosuchfeature", 1, NULL, NULL, STRS("nosuchfeature"),
                      STRS("compile", kc_tiny_gguf, "--cpu", "znver3,+nosuchfeature", "-o", out));
    KT_CHECKF(!strstr(kc_err, "recognized"), "LLVM's warning was printed: %s", kc_err);
    KT_CHECK(!kc_exists(out));
    rc = KGEN("compile", kc_tiny_gguf, "--cpu", "znver3,+avx2,-avx512f", "-o", out);
    KT_CHECKF(rc == 0 && !strstr(kc_err, "recognized"), "known features: exit %d: %s", rc, kc_err);

    /* a file that is not a loadable model: its path once, not "X: X: ..." */
    char junk[600];
    kc_tpath(junk, sizeof junk, "tiny/junk.so");
    f = fopen(junk, "wb");
    KT_REQUIRE(f && fwrite("\x7f" "ELFjunkjunk", 1, 11, f) == 11 && fclose(f) == 0);
    rc = KGEN("run", junk, "-p", "hi");
    KT_CHECKF(rc == 1 && count(kc_err, "junk.so") == 1, "run of a bad ELF file: exit %d, the path %d times: %s", rc,
              count(kc_err, "junk.so"), kc_err);
}
