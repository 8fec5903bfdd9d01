/*
 * test_quant.c — kgen's own quantization at compile time (`--quant`,
 * gen/quant.h), against an independent implementation of the same
 * specification: tests/ref/quant_ref.py (the `gguf` package's numpy
 * quantizers, llama.cpp's own Python).
 *
 *   quant_matches_gguf_quants  tiny llama models (F32 weights; Q8_0 ones,
 *                              kept, and with --requant): for each scheme and for
 *                              per-tensor overrides, `kgen compile --quant`
 *                              packs byte for byte the weights kgen packs from
 *                              the file quant_ref.py wrote; `kgen kernels
 *                              --quant` lists the quantized model's instances,
 *                              `kgen tune --list --quant` their variants
 *   quant_minilm_matches_gguf  the real all-MiniLM-L6-v2 directory compiled with
 *                              --quant w8g32 packs the weights of the GGUF that
 *                              tests/ref/bert_gguf.py --type q8_0 quantizes
 *                              (its forward is test_encoder.c's
 *                              encoder_minilm_gguf_q8_0)
 *   quant_bad_input            unknown schemes, malformed overrides, a
 *                              pattern matching no matrix, a named tensor that
 *                              cannot take its scheme, non-finite weights,
 *                              --requant alone, --quant on a compiled model:
 *                              refused, naming the option or tensor, with
 *                              nothing written
 *
 *   build/kgen-tests quant_
 */
#include "kgen.h"
#include "kt.h"
#include "kt_cli.h"
#include "tiny_llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* quant_ref.py SRC DST ARGS... (NULL-terminated); false after a failure or skip */
static bool quant_ref(const char *src, const char *dst, const char *const *args)
{
    char *argv[32] = {"/usr/bin/env", (char *)kt_python(), "tests/ref/quant_ref.py", (char *)src, (char *)dst};
    int n = 5;
    for (; *args && n < 30; args++) argv[n++] = (char *)*args;
    argv[n] = NULL;
    static char out[1 << 16], err[1 << 14];
    int rc = kt_run(argv, out, sizeof out, err, sizeof err);
    if (rc == 77 || rc == 127) {
        kt_skip("tests/ref/quant_ref.py needs %s with numpy and gguf", kt_python());
        return false;
    }
    KT_CHECKF(rc == 0, "quant_ref.py %s exited %d: %s%s", dst, rc, kc_tail(out, 2000), kc_tail(err, 2000));
    return rc == 0;
}

/* kgen compile MODEL ARGS... --external-weights -o OUT (ARGS NULL-terminated) */
static bool compile_ext(const char *model, const char *out, const char *const *args)
{
    const char *a[32] = {"compile", model, "--external-weights", "-o", out};
    int n = 5;
    for (; *args && n < 30; args++) a[n++] = *args;
    a[n] = NULL;
    int rc = kc_kgen_args(a);
    KT_CHECKF(rc == 0, "kgen compile %s exited %d: %s", model, rc, kc_err);
    return rc == 0;
}

/* One case: kgen's --quant of model against quant_ref.py's file of the same
 * options (args: kgen's and quant_ref.py's alike) */
static void same_weights(const char *label, const char *model, const char *const *args)
{
    char ref[600], a[600], b[600], wa[620], wb[620];
    kc_tpath(ref, sizeof ref, "quant/%s.gguf", label);
    kc_tpath(a, sizeof a, "quant/%s-kgen.so", label);
    kc_tpath(b, sizeof b, "quant/%s-ref.so", label);
    if (!quant_ref(model, ref, args)) return;
    char line[300] = "";
    if (!compile_ext(model, a, args)) return;
    const char *q = strstr(kc_err, "quantized ");
    if (q) snprintf(line, sizeof line, "%.*s", (int)strcspn(q, "\n"), q);
    if (!compile_ext(ref, b, (const char *const[]){NULL})) return;
    snprintf(wa, sizeof wa, "%s.weights", a);
    snprintf(wb, sizeof wb, "%s.weights", b);
    KT_CHECKF(kc_same_bytes(wa, wb), "%s: the weights kgen quantized differ from the reference's: cmp %s %s", label, wa,
              wb);
    printf("    %-10s %s\n", label, line);
}

KT_TEST(quant_matches_gguf_quants)
{
    kc_setup_env();
    char dir[600], f32[600], q8[600];
    KT_REQUIRE(kc_make_dir(kc_tpath(dir, sizeof dir, "quant")));
    tl_params p;
    tl_defaults(&p);
    p.wtype = KG_TYPE_F32;
    p.untied = true;
    KT_REQUIRE(tl_write(&p, kc_tpath(f32, sizeof f32, "quant/f32.gguf")));
    tl_defaults(&p);
    KT_REQUIRE(tl_write(&p, kc_tpath(q8, sizeof q8, "quant/q8.gguf")));
    static const char *const schemes[] = {"w8g32", "w4g32", "w4g32a", "w5g32", "w5g32a", "f16"};
    /* the sanitizers watch the quantizer's code, which every scheme shares */
    for (int i = KT_SANITIZED ? 2 : 0; i < (KT_SANITIZED ? 3 : 6); i++)
        same_weights(schemes[i], f32, (const char *const[]){"--quant", schemes[i], NULL});
    same_weights("overrides", f32,
                 (const char *const[]){"--quant", "w4g32", "--quant-tensor", "blk.*.ffn_[gu]*=w5g32a", "--quant-tensor",
                                       "output.weight=w8g32", "--quant-tensor", "token_embd.weight=none", NULL});
    same_weights("q8-kept", q8, (const char *const[]){"--quant", "w4g32", NULL});
    same_weights("q8-requant", q8, (const char *const[]){"--quant", "w4g32", "--requant", NULL});
    /* kgen kernels sees the quantized model too (its CUDA instances: --target) */
    int rc = KGEN("kernels", f32, "--quant", "w5g32a");
    KT_CHECKF(rc == 0 && strstr(kc_out, "mm(wtype=7,") && !strstr(kc_out, "mm(wtype=0,"),
              "kgen kernels --quant w5g32a: exit %d, no Q5_1 (type 7) product or an F32 one left:\n%s%s", rc, kc_out,
              kc_err);
    /* ... and kgen tune's variants are those of the quantized model's products */
    rc = KGEN("tune", f32, "--list", "--quant", "w4g32");
    KT_CHECKF(rc == 0 && strstr(kc_out, "mm wtype=2 ") && !strstr(kc_out, "mm wtype=0 "),
              "kgen tune --list --quant w4g32: exit %d, no Q4_0 (type 2) product or an F32 one left:\n%s%s", rc,
              kc_tail(kc_out, 2000), kc_err);
}

KT_TEST(quant_minilm_matches_gguf)
{
    kc_setup_env();
    char model[512], gguf[600], a[600], b[600], wa[620], wb[620];
    snprintf(model, sizeof model, "%s/all-MiniLM-L6-v2", kt_models_dir());
    snprintf(a, sizeof a, "%s/model.safetensors", model);
    if (!kc_exists(a)) KT_SKIP("%s not found: run 'make models'", a);
    KT_REQUIRE(kc_make_dir(kc_tpath(a, sizeof a, "quant")));
    kc_tpath(gguf, sizeof gguf, "quant/minilm-q8_0.gguf");
    char *argv[] = {"/usr/bin/env", (char *)kt_python(), "tests/ref/bert_gguf.py", model, gguf, "--type", "q8_0", NULL};
    static char out[1 << 14], err[1 << 14];
    int rc = kt_run(argv, out, sizeof out, err, sizeof err);
    if (rc == 77 || rc == 127) KT_SKIP("tests/ref/bert_gguf.py needs %s with numpy and gguf", kt_python());
    KT_REQUIRE(rc == 0 || (kt_fail(__FILE__, __LINE__, "bert_gguf.py exited %d: %s", rc, kc_tail(err, 2000)), 0));
    kc_tpath(a, sizeof a, "quant/minilm-kgen.so");
    kc_tpath(b, sizeof b, "quant/minilm-ref.so");
    /* the same positions on both sides: the directory's default is
     * sentence-transformers' 256, the GGUF's the model's 512 */
    if (!compile_ext(model, a, (const char *const[]){"--quant", "w8g32", "--max-len", "128", NULL}) ||
        !compile_ext(gguf, b, (const char *const[]){"--max-len", "128", NULL}))
        return;
    snprintf(wa, sizeof wa, "%s.weights", a);
    snprintf(wb, sizeof wb, "%s.weights", b);
    KT_CHECKF(kc_same_bytes(wa, wb), "MiniLM --quant w8g32: the weights differ from bert_gguf.py's Q8_0: cmp %s %s", wa, wb);
}

KT_TEST(quant_bad_input)
{
    NEED_TINY();
    char dir[600], out[700], nan_gguf[700];
    KT_REQUIRE(kc_make_dir(kc_tpath(dir, sizeof dir, "quant-bad")));
    snprintf(out, sizeof out, "%s/out.so", dir);
    tl_params p;
    tl_defaults(&p);
    p.wtype = KG_TYPE_F32;
    snprintf(nan_gguf, sizeof nan_gguf, "%s/nan.gguf", dir);
    KT_REQUIRE(tl_write(&p, nan_gguf));
    { /* a NaN in blk.1.ffn_up.weight, element 70: row 1 (rows of n_embd = 64) */
        kg_gguf *g;
        KT_REQUIRE(kg_gguf_open(nan_gguf, &g) == KG_OK);
        const kg_tensor *t = kg_gguf_find_tensor(g, "blk.1.ffn_up.weight");
        const uint64_t at = t ? kg_gguf_data_offset(g) + t->offset + 4 * 70 : 0;
        kg_gguf_close(g);
        KT_REQUIRE(at);
        FILE *f = fopen(nan_gguf, "r+b");
        const float nan = __builtin_nanf("");
        KT_REQUIRE(f && fseek(f, (long)at, SEEK_SET) == 0 && fwrite(&nan, 4, 1, f) == 1);
        fclose(f);
    }
    const char *keep[] = {"nan.gguf", NULL};
#define BAD(label, rc, want, ...) \
    kc_expect_failure(label, rc, dir, keep, (const char *const[]){want, NULL}, (const char *const[]){__VA_ARGS__, NULL})
    BAD("unknown scheme", 2, "unknown scheme 'w3g32'", "compile", kc_tiny_gguf, "-o", out, "--quant", "w3g32");
    BAD("override without =", 2, "expected PATTERN=SCHEME", "compile", kc_tiny_gguf, "-o", out, "--quant-tensor", "blk.*");
    BAD("override unknown scheme", 2, "unknown scheme 'int4'", "compile", kc_tiny_gguf, "-o", out, "--quant-tensor",
        "blk.*=int4");
    BAD("requant alone", 2, "--requant: give the scheme", "compile", kc_tiny_gguf, "-o", out, "--requant");
    BAD("pattern matches nothing", 1, "'blk.*.ffn_dwn.weight=w8g32': the pattern matches no matrix", "compile",
        kc_tiny_gguf, "-o", out, "--quant-tensor", "blk.*.ffn_dwn.weight=w8g32");
    BAD("named quantized tensor", 1, "tensor blk.0.attn_q.weight is Q8_0 in the source: add --requant", "compile",
        kc_tiny_gguf, "-o", out, "--quant-tensor", "blk.0.attn_q.weight=w4g32");
    BAD("not finite", 1, "tensor blk.1.ffn_up.weight: row 1 holds a value that is not finite", "compile", nan_gguf, "-o",
        out, "--quant", "w4g32");
    BAD("run a .so with --quant", 1, "--quant applies when compiling", "run", kc_tiny_so, "-p", "hi", "--quant", "w8g32");
#undef BAD
}
