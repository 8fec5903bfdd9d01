/*
 * test_compile.c — `kgen compile`, `kgen run` and `kgen bench` through the
 * CLI (kt_run on kt_kgen_bin()), on tiny synthetic llama models
 * (tests/tiny_llama.c) and, when fetched, the real models:
 *
 *   compile_tiny_run             compile, run greedy, same seed → same text
 *   compile_arch_unsupported     an unknown architecture is refused, naming it
 *                                and the supported ones
 *   compile_bad_tensor_type      a weight type no kernel takes (Q8_1)
 *   compile_bad_metadata         heads not dividing the embedding; a missing
 *                                tensor; a wrong shape; a missing key; a
 *                                vocabulary larger than the embedding
 *   compile_bad_output           -o where it cannot be written; an existing
 *                                output survives a failed compile
 *   compile_prompt_too_long      a prompt longer than -c
 *   compile_not_a_model          random bytes; ELF libraries that are not models
 *   compile_cpu_features         a .so for AVX-512 on a machine without it
 *   compile_external_weights     --external-weights: run; corrupt, truncated
 *                                and missing weights are refused at open
 *   compile_emit_obj             --emit obj, linked statically into a program
 *   compile_readme_example       README's generate.c against the tiny .so
 *   compile_smollm2              the real model: --chat; the cache (miss, hit)
 *   compile_bench_json           kgen bench --json
 *
 * Every failure case checks the exit status (1 bad input, 2 usage), that
 * stderr names the file and the problem, and that nothing is left behind:
 * neither the output nor a temporary (each case runs with TMPDIR pointing
 * at an empty scratch directory that must stay empty).
 * Every case sets KGEN_CACHE_DIR to a directory under kt_tmpdir(). The tiny
 * model is compiled once and reused; the real one's compile is the long part.
 *
 *   build/kgen-tests compile_            (KT_SHOW=1 also prints each failure
 *                                         case's exit status and stderr)
 */
#include "kt.h"
#include "kt_cli.h"
#include "kgen.h"
#include "tiny_llama.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SMOL "SmolLM2-135M-Instruct.Q4_1.gguf"
#define GEMMA "gemma-3-270m-q4_k_m.gguf"

/* A mutated tiny model at kt_tmpdir()/LABEL/model.gguf, compiled to out.so
 * there: must fail with status 1 naming the file and every `want`. */
static void bad_compile(const char *label, const tl_params *p, const char *const *want)
{
    kc_setup_env();
    char dir[600], gguf[700], out[700];
    kc_tpath(dir, sizeof dir, "%s", label);
    KT_REQUIRE(kc_make_dir(dir));
    snprintf(gguf, sizeof gguf, "%s/model.gguf", dir);
    KT_REQUIRE(tl_write(p, gguf));
    const char *w[16];
    int n = 0;
    w[n++] = gguf; /* the message names the file */
    for (; *want && n < 15; want++) w[n++] = *want;
    w[n] = NULL;
    /* nothing left behind by any kind of output: .so, .so + .weights, .o + .h */
    char label2[128];
    snprintf(out, sizeof out, "%s/out.so", dir);
    kc_expect_failure(label, 1, dir, STRS("model.gguf"), w, STRS("compile", gguf, "-o", out));
    snprintf(label2, sizeof label2, "%s --external-weights", label);
    kc_expect_failure(label2, 1, dir, STRS("model.gguf"), w, STRS("compile", gguf, "--external-weights", "-o", out));
    snprintf(out, sizeof out, "%s/out.o", dir);
    snprintf(label2, sizeof label2, "%s --emit obj", label);
    kc_expect_failure(label2, 1, dir, STRS("model.gguf"), w, STRS("compile", gguf, "--emit", "obj", "-o", out));
    /* and `kgen run` of the GGUF (compiling through the cache) */
    snprintf(label2, sizeof label2, "%s (run)", label);
    kc_expect_failure(label2, 1, dir, STRS("model.gguf"), w, STRS("run", gguf, "-p", "hello", "-n", "2"));
}

/* "prefill N tokens ... decode M tokens" from `kgen run`'s stats line */
static bool run_stats(const char *err, int *n_prefill, int *n_decode)
{
    const char *s = strstr(err, "prefill ");
    const char *d = s ? strstr(s, "decode ") : NULL;
    return s && d && sscanf(s, "prefill %d", n_prefill) == 1 && sscanf(d, "decode %d", n_decode) == 1;
}

/* ───────────────────────── 1. compile and run ───────────────────────── */

KT_TEST(compile_tiny_run)
{
    NEED_TINY();
    int rc = KGEN("run", kc_tiny_so, "-p", "hello", "-n", "8", "--temp", "0", "-t", "2");
    KT_CHECKF(rc == 0, "kgen run tiny.so exited %d: %s", rc, kc_err);
    int np = -1, nd = -1;
    KT_CHECKF(run_stats(kc_err, &np, &nd), "no stats line on stderr: %s", kc_err);
    /* "hello" is h e l l o; of the tiny vocabulary's merges only "h e" applies, and
     * the smollm pre-tokenizer adds no BOS: 4 tokens */
    KT_CHECKF(np == 4, "prefill %d tokens for 'hello', expected 4 ([he][l][l][o])", np);

    /* --ignore-eos: exactly n tokens: n-1 decode steps */
    rc = KGEN("run", kc_tiny_so, "-p", "the cat", "-n", "8", "--temp", "0", "--ignore-eos", "-t", "2");
    KT_CHECKF(rc == 0, "kgen run --ignore-eos exited %d: %s", rc, kc_err);
    KT_CHECKF(run_stats(kc_err, &np, &nd) && nd == 7, "expected 7 decode steps for -n 8 --ignore-eos: %s", kc_err);

    /* greedy is deterministic */
    char first[4096];
    rc = KGEN("run", kc_tiny_so, "-p", "on the", "-n", "12", "--temp", "0", "--ignore-eos", "-t", "2");
    KT_CHECKF(rc == 0, "greedy run exited %d: %s", rc, kc_err);
    kc_save(first, sizeof first, kc_out);
    KT_CHECKF(strlen(first) > 1, "greedy run printed nothing");
    rc = KGEN("run", kc_tiny_so, "-p", "on the", "-n", "12", "--temp", "0", "--ignore-eos", "-t", "1");
    KT_CHECKF(rc == 0 && !strcmp(first, kc_out), "greedy text differs between runs (-t 2 vs -t 1):\n'%s'\n'%s'", first,
              kc_out);

    /* the same seed and temperature: the same text */
    rc = KGEN("run", kc_tiny_so, "-p", "hello", "-n", "16", "--temp", "0.9", "--seed", "7", "--ignore-eos", "-t", "2");
    KT_CHECKF(rc == 0, "sampled run exited %d: %s", rc, kc_err);
    kc_save(first, sizeof first, kc_out);
    KT_CHECKF(strlen(first) > 1, "sampled run printed nothing");
    rc = KGEN("run", kc_tiny_so, "-p", "hello", "-n", "16", "--temp", "0.9", "--seed", "7", "--ignore-eos", "-t", "2");
    KT_CHECKF(rc == 0, "sampled run exited %d: %s", rc, kc_err);
    KT_CHECKF(!strcmp(first, kc_out), "the same seed gave different text:\n'%s'\n'%s'", first, kc_out);

    /* Q4_0 weights compile and run too; `run MODEL.gguf --no-cache` leaves no temporary */
    tl_params p;
    tl_defaults(&p);
    p.wtype = KG_TYPE_Q4_0;
    char q4[600], scratch[600], list[512];
    kc_tpath(q4, sizeof q4, "tiny/q4_0.gguf");
    kc_tpath(scratch, sizeof scratch, "scratch-nocache");
    KT_REQUIRE(tl_write(&p, q4) && kc_make_dir(scratch));
    char *old = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
    setenv("TMPDIR", scratch, 1);
    rc = KGEN("run", q4, "--no-cache", "-p", "hello", "-n", "8", "--temp", "0", "--ignore-eos", "-t", "2");
    if (old) setenv("TMPDIR", old, 1), free(old);
    else unsetenv("TMPDIR");
    KT_CHECKF(rc == 0, "kgen run q4_0.gguf --no-cache exited %d: %s", rc, kc_err);
    KT_CHECKF(strstr(kc_err, "compiled"), "run --no-cache of a GGUF does not say it compiled: %s", kc_err);
    KT_CHECKF(run_stats(kc_err, &np, &nd) && np == 4 && nd == 7, "Q4_0 model: unexpected stats: %s", kc_err);
    KT_CHECKF(kc_extra_entries(scratch, NULL, list, sizeof list) == 0, "run --no-cache left in TMPDIR:%s", list);

    /* bad usage: exit 2 */
    kc_expect_failure("run without -p", 2, NULL, NULL, STRS("usage"), STRS("run", kc_tiny_so));
    kc_expect_failure("run -n junk", 2, NULL, NULL, STRS("-n"), STRS("run", kc_tiny_so, "-p", "hi", "-n", "junk"));
    kc_expect_failure("compile without -o", 2, NULL, NULL, STRS("usage"), STRS("compile", kc_tiny_gguf));
}

/* `run MODEL.gguf` through the cache: the second run loads the cached model
 * (its content hash memoized per file identity); rewriting the file in place,
 * even with the same size and its old modification time restored, must not
 * reuse the old model: the new weights give a different model. */
KT_TEST(compile_run_cache_memo)
{
    kc_setup_env();
    char dir[600], gguf[700], other[700];
    kc_tpath(dir, sizeof dir, "memo");
    KT_REQUIRE(kc_make_dir(dir));
    snprintf(gguf, sizeof gguf, "%s/m.gguf", dir);
    snprintf(other, sizeof other, "%s/other.gguf", dir);
    tl_params p;
    tl_defaults(&p);
    KT_REQUIRE(tl_write(&p, gguf));
    p.seed += 1; /* other weights, same shapes: the same file size */
    KT_REQUIRE(tl_write(&p, other));
    char *const run[] = {(char *)kt_kgen_bin(), "run", gguf, "-p", "hello", "-n", "6", "--temp", "0", "--ignore-eos", "-t", "1", NULL};
    int rc = kt_run(run, kc_out, sizeof kc_out, kc_err, sizeof kc_err);
    KT_CHECKF(rc == 0 && strstr(kc_err, "compiled"), "first run: exit %d, no compile: %s", rc, kc_err);
    char first[4096];
    kc_save(first, sizeof first, kc_out);
    rc = kt_run(run, kc_out, sizeof kc_out, kc_err, sizeof kc_err);
    KT_CHECKF(rc == 0 && !strstr(kc_err, "compiled") && !strcmp(first, kc_out), "second run: exit %d, compiled again or other text: %s", rc, kc_err);
    /* the other weights into the same file, in place, then the old mtime back */
    struct stat sb;
    KT_REQUIRE(stat(gguf, &sb) == 0);
    FILE *in = fopen(other, "rb"), *out = fopen(gguf, "r+b");
    KT_REQUIRE(in && out);
    char buf[65536];
    for (size_t n; (n = fread(buf, 1, sizeof buf, in)) > 0;) KT_REQUIRE(fwrite(buf, 1, n, out) == n);
    fclose(in);
    fclose(out);
    struct timespec ts[2] = {sb.st_atim, sb.st_mtim};
    KT_REQUIRE(utimensat(AT_FDCWD, gguf, ts, 0) == 0);
    rc = kt_run(run, kc_out, sizeof kc_out, kc_err, sizeof kc_err);
    KT_CHECKF(rc == 0 && strstr(kc_err, "compiled"), "after rewriting the file in place: exit %d, not recompiled: %s", rc, kc_err);
}

/* ───────────────────────── 2. architecture ───────────────────────── */

KT_TEST(compile_arch_unsupported)
{
    kc_setup_env();
    /* an architecture kgen has no registry row for (gen/arch.c): the message
     * names it and lists every supported one */
    tl_params p;
    tl_defaults(&p);
    p.arch = "mamba";
    bad_compile("arch-mamba", &p, STRS("'mamba'", "llama", "qwen2", "qwen3", "gemma3", "phi3"));
}

/* ───────────────────────── 3. tensor type ───────────────────────── */

KT_TEST(compile_bad_tensor_type)
{
    tl_params p;
    tl_defaults(&p);
    p.edit_tensor = "blk.0.attn_q.weight";
    p.edit_type = KG_TYPE_Q8_1; /* known by size, no kernel (kgen_types.h) */
    bad_compile("type-q8_1", &p, STRS("blk.0.attn_q.weight", "Q8_1"));

    /* a norm must be F32 */
    tl_defaults(&p);
    p.edit_tensor = "blk.1.ffn_norm.weight";
    p.edit_type = KG_TYPE_F16;
    bad_compile("type-norm-f16", &p, STRS("blk.1.ffn_norm.weight", "F16"));
}

/* ───────────────────────── 4. metadata ───────────────────────── */

KT_TEST(compile_bad_metadata)
{
    tl_params p;
    tl_defaults(&p);
    p.n_head = 3; /* 64 % 3 != 0 (and 3 % 1 == 0) */
    p.n_head_kv = 1;
    bad_compile("meta-heads", &p, STRS("llama.attention.head_count", "3", "64"));

    tl_defaults(&p);
    p.omit_tensor = "blk.1.ffn_up.weight";
    bad_compile("meta-missing-tensor", &p, STRS("blk.1.ffn_up.weight", "missing"));

    tl_defaults(&p);
    p.edit_tensor = "blk.0.ffn_gate.weight";
    p.edit_ne1 = 96; /* feed_forward_length says 128 */
    bad_compile("meta-shape", &p, STRS("blk.0.ffn_gate.weight", "96", "128"));

    tl_defaults(&p);
    p.omit_key = "llama.block_count";
    bad_compile("meta-missing-key", &p, STRS("llama.block_count", "missing"));

    tl_defaults(&p);
    p.n_head_kv = 3; /* does not divide 4 heads */
    bad_compile("meta-kv-heads", &p, STRS("head_count_kv", "3"));

    tl_defaults(&p);
    p.omit_key = "tokenizer.ggml.tokens";
    bad_compile("meta-no-tokens", &p, STRS("tokenizer.ggml.tokens"));

    /* a vocabulary larger than the embedding's rows: every open of such a
     * model would fail, so compile refuses it (kgr_model_check, shared with
     * kgm_open) */
    tl_defaults(&p);
    p.edit_tensor = "token_embd.weight";
    p.edit_ne1 = (uint64_t)tl_n_vocab() - 1;
    char rows[16], toks[16];
    snprintf(rows, sizeof rows, "%d", tl_n_vocab() - 1);
    snprintf(toks, sizeof toks, "%d", tl_n_vocab());
    bad_compile("meta-vocab-rows", &p, STRS("tokenizer", toks, rows));
}

/* The output cannot be written, or already kc_exists: a clear message from kgen
 * itself (not only the linker's), and an existing file survives a failed compile. */
KT_TEST(compile_bad_output)
{
    NEED_TINY();
    char dir[600], out[700], old[700];
    kc_tpath(dir, sizeof dir, "badout");
    KT_REQUIRE(kc_make_dir(dir));
    snprintf(out, sizeof out, "%s/no/such/dir/out.so", dir);
    kc_expect_failure("-o in a missing directory", 1, dir, NULL, STRS(out), STRS("compile", kc_tiny_gguf, "-o", out));
    const char *line = strstr(kc_err, "kgen compile: ");
    char mine[1024] = "";
    if (line) kc_save(mine, sizeof mine, line);
    mine[strcspn(mine, "\n")] = 0;
    KT_CHECKF(line && strstr(mine, out), "kgen's own message does not name the output %s: '%s'", out, mine);

    /* a failed compile leaves an existing output as it was */
    tl_params p;
    tl_defaults(&p);
    p.edit_tensor = "blk.1.attn_v.weight";
    p.edit_type = KG_TYPE_MXFP4;
    char gguf[700];
    snprintf(gguf, sizeof gguf, "%s/bad.gguf", dir);
    snprintf(old, sizeof old, "%s/old.so", dir);
    KT_REQUIRE(tl_write(&p, gguf));
    FILE *f = fopen(old, "w");
    KT_REQUIRE(f && fputs("previous output\n", f) >= 0 && fclose(f) == 0);
    kc_expect_failure("existing output", 1, dir, STRS("bad.gguf", "old.so"), STRS(gguf, "blk.1.attn_v.weight", "MXFP4"),
                   STRS("compile", gguf, "-o", old));
    char buf[64] = "";
    f = fopen(old, "r");
    KT_CHECKF(f && fgets(buf, sizeof buf, f) && !strcmp(buf, "previous output\n"), "a failed compile changed %s", old);
    if (f) fclose(f);
}

/* ───────────────────────── 5. prompt vs context ───────────────────────── */

KT_TEST(compile_prompt_too_long)
{
    NEED_TINY();
    const char *long_text =
        "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty twenty-one twenty-two twenty-three twenty-four twenty-five";
    kc_expect_failure("prompt > -c 16", 1, NULL, NULL, STRS("context"),
                   STRS("run", kc_tiny_so, "-c", "16", "-p", long_text, "-n", "4", "-t", "1"));
    KT_CHECKF(strstr(kc_err, "16"), "the message does not say the context length (16): %s", kc_err);
    /* a context beyond the model's training context (256) is refused when opened */
    kc_expect_failure("-c > n_ctx_train", 1, NULL, NULL, STRS(kc_tiny_so),
                   STRS("run", kc_tiny_so, "-c", "100000", "-p", "hi", "-n", "1", "-t", "1"));
    /* a prompt that just fits runs */
    int rc = KGEN("run", kc_tiny_so, "-c", "16", "-p", "hello", "-n", "4", "-t", "1");
    KT_CHECKF(rc == 0, "a 4-token prompt with -c 16 failed (%d): %s", rc, kc_err);
}

/* ───────────────────────── 6. not a model ───────────────────────── */

KT_TEST(compile_not_a_model)
{
    kc_setup_env();
    char dir[600], junk[700], src[700], lib[700], out[700];
    kc_tpath(dir, sizeof dir, "notmodel");
    KT_REQUIRE(kc_make_dir(dir));
    snprintf(junk, sizeof junk, "%s/random.bin", dir);
    snprintf(out, sizeof out, "%s/out.so", dir);
    unsigned char bytes[4096];
    uint64_t s = 99;
    for (size_t i = 0; i < sizeof bytes; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        bytes[i] = (unsigned char)(s >> 56);
    }
    bytes[0] = 'Z'; /* neither "GGUF" nor "\x7fELF" */
    FILE *f = fopen(junk, "wb");
    KT_REQUIRE(f && fwrite(bytes, 1, sizeof bytes, f) == sizeof bytes && fclose(f) == 0);
    const char *const keep[] = {"random.bin", "one.c", "notmodel.so", NULL};
    kc_expect_failure("run random bytes", 1, dir, keep, STRS(junk), STRS("run", junk, "-p", "hi"));
    kc_expect_failure("compile random bytes", 1, dir, keep, STRS(junk), STRS("compile", junk, "-o", out));
    kc_expect_failure("bench random bytes", 1, dir, keep, STRS(junk), STRS("bench", junk, "--pp", "1", "--tg", "0", "-r", "1"));
    kc_expect_failure("run missing file", 1, dir, keep, STRS("nonexistent.gguf"),
                   STRS("run", "nonexistent.gguf", "-p", "hi"));

    /* an ELF shared object that is not a kgen model */
    snprintf(src, sizeof src, "%s/one.c", dir);
    snprintf(lib, sizeof lib, "%s/notmodel.so", dir);
    f = fopen(src, "w");
    KT_REQUIRE(f && fputs("int not_a_model(int x) { return x + 1; }\n", f) >= 0 && fclose(f) == 0);
    int rc = SH("cc", "-shared", "-fPIC", src, "-o", lib);
    if (rc != 0) KT_SKIP("cc -shared failed (%d): %s", rc, kc_err);
    kc_expect_failure("run ELF .so", 1, dir, keep, STRS(lib, "not a kgen model"), STRS("run", lib, "-p", "hi"));
    kc_expect_failure("bench ELF .so", 1, dir, keep, STRS(lib, "not a kgen model"),
                   STRS("bench", lib, "--pp", "1", "--tg", "0", "-r", "1"));
    kc_expect_failure("compile ELF .so", 1, dir, keep, STRS(lib), STRS("compile", lib, "-o", out));
    const char *libm = "/lib/x86_64-linux-gnu/libm.so.6";
    if (!access(libm, R_OK))
        kc_expect_failure("run libm", 1, dir, keep, STRS(libm, "not a kgen model"), STRS("run", libm, "-p", "hi"));
}

/* ───────────────────────── 7. CPU features ───────────────────────── */

static bool host_has_avx512f(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return false;
    char line[8192];
    bool has = false;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            has = strstr(line, " avx512f") != NULL;
            break;
        }
    fclose(f);
    return has;
}

KT_TEST(compile_cpu_features)
{
    NEED_TINY();
    if (access("/proc/cpuinfo", R_OK)) KT_SKIP("no /proc/cpuinfo to tell whether this CPU has AVX-512");
    if (host_has_avx512f()) KT_SKIP("this CPU has AVX-512F: a znver4 model would run here");
    char z4[600];
    kc_tpath(z4, sizeof z4, "tiny/z4.so");
    int rc = KGEN("compile", kc_tiny_gguf, "--cpu", "znver4", "-o", z4);
    REQUIRE_F(rc == 0, "compile --cpu znver4 exited %d: %s", rc, kc_err);
    kc_expect_failure("run znver4 .so", 1, NULL, NULL, STRS(z4, "avx512f"), STRS("run", z4, "-p", "hello", "-n", "4"));
    kc_expect_failure("bench znver4 .so", 1, NULL, NULL, STRS(z4, "avx512f"),
                   STRS("bench", z4, "--pp", "4", "--tg", "0", "-r", "1"));
    /* and through the GGUF path: --cpu with run compiles into the cache, then refuses to open */
    kc_expect_failure("run --cpu znver4 gguf", 1, NULL, NULL, STRS("avx512f"),
                   STRS("run", kc_tiny_gguf, "--cpu", "znver4", "-p", "hello", "-n", "4"));
    /* an unknown CPU name is a clear error */
    char bad[600];
    kc_tpath(bad, sizeof bad, "tiny/bad-cpu.so");
    kc_expect_failure("compile --cpu nosuchcpu", 1, NULL, NULL, STRS("nosuchcpu"),
                   STRS("compile", kc_tiny_gguf, "--cpu", "nosuchcpu", "-o", bad));
    KT_CHECK(!kc_exists(bad));
}

/* ───────────────────────── 8. external weights ───────────────────────── */

static bool copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    bool ok = a && b;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
    if (a) fclose(a);
    if (b && fclose(b)) ok = false;
    return ok;
}

static bool flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    if (!f) return false;
    int c = fseek(f, off, SEEK_SET) == 0 ? fgetc(f) : EOF;
    bool ok = c != EOF && fseek(f, off, SEEK_SET) == 0 && fputc(c ^ 0x5A, f) != EOF;
    return fclose(f) == 0 && ok;
}

KT_TEST(compile_external_weights)
{
    NEED_TINY();
    char dir[600], so[700], w[700], saved[700];
    kc_tpath(dir, sizeof dir, "ext");
    KT_REQUIRE(kc_make_dir(dir));
    snprintf(so, sizeof so, "%s/ext.so", dir);
    snprintf(w, sizeof w, "%s/ext.so.weights", dir);
    snprintf(saved, sizeof saved, "%s/saved.weights", kt_tmpdir());
    int rc = KGEN("compile", kc_tiny_gguf, "--external-weights", "-o", so);
    REQUIRE_F(rc == 0, "compile --external-weights exited %d: %s", rc, kc_err);
    KT_REQUIRE(kc_exists(so) && kc_exists(w));
    struct stat ss, sw, sin;
    KT_REQUIRE(stat(so, &ss) == 0 && stat(w, &sw) == 0 && stat(kc_tiny_so, &sin) == 0);
    KT_CHECKF(sw.st_size > 0, "the weights file is empty");
    /* the weights are in the side file, not in the .so: the .so is smaller than the
     * self-contained one by about the weights' size */
    KT_CHECKF(ss.st_size + sw.st_size / 2 < sin.st_size, "ext.so has %lld bytes, tiny.so %lld, weights %lld",
              (long long)ss.st_size, (long long)sin.st_size, (long long)sw.st_size);

    char ref[4096];
    rc = KGEN("run", kc_tiny_so, "-p", "hello", "-n", "8", "--temp", "0", "--ignore-eos", "-t", "1");
    kc_save(ref, sizeof ref, kc_out);
    KT_CHECK(rc == 0);
    rc = KGEN("run", so, "-p", "hello", "-n", "8", "--temp", "0", "--ignore-eos", "-t", "1");
    KT_CHECKF(rc == 0, "run ext.so exited %d: %s", rc, kc_err);
    KT_CHECKF(!strcmp(ref, kc_out), "ext.so and tiny.so generate different text:\n'%s'\n'%s'", ref, kc_out);

    const char *const keep[] = {"ext.so", "ext.so.weights", NULL};
    KT_REQUIRE(copy_file(w, saved));
    /* one byte changed in the middle */
    KT_REQUIRE(flip_byte(w, (long)(sw.st_size / 2)));
    kc_expect_failure("corrupt weights", 1, dir, keep, STRS(so, "hash"), STRS("run", so, "-p", "hello", "-n", "2"));
    /* the last byte changed */
    KT_REQUIRE(copy_file(saved, w) && flip_byte(w, (long)sw.st_size - 1));
    kc_expect_failure("corrupt last byte", 1, dir, keep, STRS(so, "hash"), STRS("run", so, "-p", "hello", "-n", "2"));
    /* truncated */
    KT_REQUIRE(copy_file(saved, w) && truncate(w, sw.st_size - 100) == 0);
    kc_expect_failure("truncated weights", 1, dir, keep, STRS(so, "bytes"), STRS("run", so, "-p", "hello", "-n", "2"));
    /* longer */
    KT_REQUIRE(copy_file(saved, w) && truncate(w, sw.st_size + 4096) == 0);
    kc_expect_failure("extended weights", 1, dir, keep, STRS(so, "bytes"), STRS("run", so, "-p", "hello", "-n", "2"));
    /* missing */
    KT_REQUIRE(unlink(w) == 0);
    kc_expect_failure("missing weights", 1, dir, STRS("ext.so"), STRS(so, "ext.so.weights"),
                   STRS("run", so, "-p", "hello", "-n", "2"));
    /* restored: runs again */
    KT_REQUIRE(copy_file(saved, w));
    rc = KGEN("run", so, "-p", "hello", "-n", "8", "--temp", "0", "--ignore-eos", "-t", "1");
    KT_CHECKF(rc == 0 && !strcmp(ref, kc_out), "run after restoring the weights: %d: %s", rc, kc_err);
    /* the .so moved elsewhere (its weights beside it) still works */
    char dir2[600], so2[700], w2[700];
    kc_tpath(dir2, sizeof dir2, "ext-moved");
    KT_REQUIRE(kc_make_dir(dir2));
    snprintf(so2, sizeof so2, "%s/ext.so", dir2);
    snprintf(w2, sizeof w2, "%s/ext.so.weights", dir2);
    KT_REQUIRE(rename(so, so2) == 0 && rename(w, w2) == 0);
    rc = KGEN("run", so2, "-p", "hello", "-n", "8", "--temp", "0", "--ignore-eos", "-t", "1");
    KT_CHECKF(rc == 0 && !strcmp(ref, kc_out), "run of the moved ext.so: %d: %s", rc, kc_err);
}

/* ───────────────────────── 9. --emit obj ───────────────────────── */

static const char static_prog[] =
    "#include <math.h>\n"
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "#include \"kgen_model.h\"\n"
    "int main(void)\n"
    "{\n"
    "    char err[512];\n"
    "    kgm_model *m = kgm_open(&(kgm_open_params){.n_threads = 2, .n_ctx = 64}, err, sizeof err);\n"
    "    if (!m) { fprintf(stderr, \"open: %s\\n\", err); return 1; }\n"
    "    kgm_info info;\n"
    "    kgm_describe(m, &info);\n"
    "    if (info.n_layer != 2 || info.n_embd != 64 || info.n_head != 4 || info.n_head_kv != 2 ||\n"
    "        info.n_ff != 128 || info.n_vocab != 300 || info.n_ctx != 64) {\n"
    "        fprintf(stderr, \"describe: %d %d %d %d %d %d %d\\n\", info.n_layer, info.n_embd, info.n_head,\n"
    "                info.n_head_kv, info.n_ff, info.n_vocab, info.n_ctx);\n"
    "        return 1;\n"
    "    }\n"
    "    int32_t toks[16];\n"
    "    int n = kgm_tokenize(m, \"hello\", 5, KGM_TOK_BOS, toks, 16);\n"
    "    if (n != 4) { fprintf(stderr, \"tokenize: %d\\n\", n); return 1; }\n"
    "    const float *l = kgm_prefill(m, toks, n, 0);\n"
    "    for (int pos = n; l && pos < n + 8; pos++) {\n"
    "        int best = 0;\n"
    "        for (int i = 0; i < info.n_vocab; i++) {\n"
    "            if (!isfinite(l[i])) { fprintf(stderr, \"logit %d not finite\\n\", i); return 1; }\n"
    "            if (l[i] > l[best]) best = i;\n"
    "        }\n"
    "        printf(\"%d \", best);\n"
    "        l = kgm_decode(m, best, pos);\n"
    "    }\n"
    "    if (!l) { fprintf(stderr, \"%s\\n\", kgm_error(m)); return 1; }\n"
    "    printf(\"\\n\");\n"
    "    kgm_close(m);\n"
    "    return 0;\n"
    "}\n";

KT_TEST(compile_emit_obj)
{
    NEED_TINY();
    char dir[600], obj[700], src[700], prog[700];
    kc_tpath(dir, sizeof dir, "obj");
    KT_REQUIRE(kc_make_dir(dir));
    snprintf(obj, sizeof obj, "%s/tiny.o", dir);
    snprintf(src, sizeof src, "%s/prog.c", dir);
    snprintf(prog, sizeof prog, "%s/prog", dir);
    int rc = KGEN("compile", kc_tiny_gguf, "--emit", "obj", "-o", obj);
    REQUIRE_F(rc == 0, "compile --emit obj exited %d: %s", rc, kc_err);
    KT_REQUIRE(kc_exists(obj));
    FILE *f = fopen(src, "w");
    KT_REQUIRE(f && fputs(static_prog, f) >= 0 && fclose(f) == 0);
    rc = SH("cc", "-Iinclude", src, obj, "-lm", "-lpthread", "-o", prog);
    REQUIRE_F(rc == 0, "linking the object failed (%d): %s", rc, kc_err);
    rc = kc_runl(prog, (const char *)NULL);
    KT_CHECKF(rc == 0, "the statically linked program exited %d: %s", rc, kc_err);
    KT_CHECKF(strlen(kc_out) > 8, "the program printed no tokens: '%s'", kc_out);

    /* the header written beside the object (OUT with .h) is the ABI on its own */
    char hdr[700], src2[700], prog2[700], incdir[710];
    snprintf(hdr, sizeof hdr, "%s/tiny.h", dir);
    snprintf(src2, sizeof src2, "%s/prog2.c", dir);
    snprintf(prog2, sizeof prog2, "%s/prog2", dir);
    snprintf(incdir, sizeof incdir, "-I%s", dir);
    KT_CHECKF(kc_exists(hdr), "--emit obj wrote no header %s", hdr);
    if (kc_exists(hdr)) {
        const char *inc = strstr(static_prog, "\"kgen_model.h\"");
        KT_REQUIRE(inc);
        f = fopen(src2, "w");
        KT_REQUIRE(f);
        fprintf(f, "%.*s\"tiny.h\"%s", (int)(inc - static_prog), static_prog, inc + strlen("\"kgen_model.h\""));
        KT_REQUIRE(fclose(f) == 0);
        rc = SH("cc", incdir, src2, obj, "-lm", "-lpthread", "-o", prog2);
        KT_CHECKF(rc == 0, "a program including only tiny.h does not build (%d): %s", rc, kc_err);
        if (rc == 0) {
            rc = kc_runl(prog2, (const char *)NULL);
            KT_CHECKF(rc == 0, "the program built with tiny.h exited %d: %s", rc, kc_err);
        }
    }

    /* --emit junk is a usage error */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/bad.o", dir);
    kc_expect_failure("--emit junk", 2, dir, STRS("tiny.o", "tiny.h", "prog.c", "prog", "prog2.c", "prog2"), STRS("--emit"),
                   STRS("compile", kc_tiny_gguf, "--emit", "junk", "-o", bad));
}

/* ───────────────────────── 10. the README example ───────────────────────── */

KT_TEST(compile_readme_example)
{
    NEED_TINY();
    char dir[600], src[700], prog[700];
    kc_tpath(dir, sizeof dir, "readme");
    KT_REQUIRE(kc_make_dir(dir));
    snprintf(src, sizeof src, "%s/generate.c", dir);
    snprintf(prog, sizeof prog, "%s/generate", dir);
    int got = kc_readme_example("generate.c", src);
    if (got < 0) KT_SKIP("README.md not found (run from the repository root)");
    KT_CHECKF(got == 1, "README.md has no '<!-- example: generate.c -->' program");
    if (got != 1) return;
    int rc = SH("cc", "-Iinclude", src, "-o", prog, "-ldl");
    REQUIRE_F(rc == 0, "the README example does not compile (%d): %s", rc, kc_err);
    rc = kc_runl(prog, kc_tiny_so, "hello", (const char *)NULL);
    KT_CHECKF(rc == 0, "the README example exited %d: %s", rc, kc_err);
    KT_CHECKF(strlen(kc_out) > 1, "the README example printed nothing");
    /* and its usage line: exit 2 */
    rc = kc_runl(prog, (const char *)NULL);
    KT_CHECKF(rc == 2 && strstr(kc_err, "usage"), "the README example without arguments: %d: %s", rc, kc_err);
}

/* ───────────────────────── 11. the real model ───────────────────────── */

KT_TEST(compile_smollm2)
{
    kc_setup_env();
    char model[512], so[600], cache[600];
    snprintf(model, sizeof model, "%s/%s", kt_models_dir(), SMOL);
    if (access(model, R_OK)) KT_SKIP("%s not found: run 'make models'", model);
    kc_tpath(so, sizeof so, "smol.so");
    kc_tpath(cache, sizeof cache, "cache-smol");
    KT_REQUIRE(kc_make_dir(cache));

    /* kgen run MODEL.gguf: the first run compiles into the cache, the second loads it */
    setenv("KGEN_CACHE_DIR", cache, 1);
    int rc = KGEN("run", model, "-p", "The capital of France is", "--temp", "0", "-n", "8", "-t", "2");
    KT_CHECKF(rc == 0, "first run of the GGUF exited %d: %s", rc, kc_err);
    KT_CHECKF(strstr(kc_err, "compiled"), "the first run (empty cache) does not say it compiled: %s", kc_err);
    char first[4096];
    kc_save(first, sizeof first, kc_out);
    rc = KGEN("run", model, "-p", "The capital of France is", "--temp", "0", "-n", "8", "-t", "2");
    KT_CHECKF(rc == 0, "second run of the GGUF exited %d: %s", rc, kc_err);
    KT_CHECKF(!strstr(kc_err, "compiled"), "the second run compiled again (cache miss): %s", kc_err);
    KT_CHECKF(!strcmp(first, kc_out), "cached model generates other text:\n'%s'\n'%s'", first, kc_out);
    kc_setup_env();

    rc = KGEN("compile", model, "-o", so);
    REQUIRE_F(rc == 0, "kgen compile SmolLM2 exited %d: %s", rc, kc_err);
    rc = KGEN("run", so, "--chat", "-p", "What is the capital of France?", "--temp", "0", "-n", "16", "-t", "2");
    KT_CHECKF(rc == 0, "kgen run smol.so --chat exited %d: %s", rc, kc_err);
    size_t nonspace = 0;
    for (const char *c = kc_out; *c; c++) nonspace += !isspace((unsigned char)*c);
    KT_CHECKF(nonspace > 0, "--chat printed no text");
    /* (no check of the answer's words: for this prompt the reference's top two
     * tokens are a near-tie that int8 activations may flip; test_e2e checks logits) */
}

/* ───────────────────────── 12. bench --json ───────────────────────── */

/* A small JSON syntax checker: value at *p, advancing it; false if malformed. */
static void ws(const char **p) { while (**p == ' ' || **p == '\n' || **p == '\t' || **p == '\r') (*p)++; }
static bool jvalue(const char **p, int depth);
static bool jstring(const char **p)
{
    if (**p != '"') return false;
    for ((*p)++; **p != '"'; (*p)++) {
        if (!**p || (unsigned char)**p < 0x20) return false;
        if (**p == '\\' && !*++*p) return false;
    }
    (*p)++;
    return true;
}
static bool jvalue(const char **p, int depth)
{
    if (depth > 32) return false;
    ws(p);
    if (**p == '{' || **p == '[') {
        char end = **p == '{' ? '}' : ']';
        bool obj = end == '}';
        (*p)++;
        ws(p);
        if (**p == end) return (*p)++, true;
        for (;;) {
            if (obj) {
                ws(p);
                if (!jstring(p)) return false;
                ws(p);
                if (*(*p)++ != ':') return false;
            }
            if (!jvalue(p, depth + 1)) return false;
            ws(p);
            if (**p == ',') { (*p)++; continue; }
            if (**p == end) return (*p)++, true;
            return false;
        }
    }
    if (**p == '"') return jstring(p);
    if (!strncmp(*p, "true", 4)) return *p += 4, true;
    if (!strncmp(*p, "false", 5)) return *p += 5, true;
    if (!strncmp(*p, "null", 4)) return *p += 4, true;
    char *end;
    strtod(*p, &end);
    if (end == *p) return false;
    *p = end;
    return true;
}

/* The text after `"key":` (whitespace skipped), or NULL. */
static const char *jkey(const char *j, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *s = strstr(j, pat);
    if (!s) return NULL;
    s += strlen(pat);
    ws(&s);
    if (*s != ':') return NULL;
    s++;
    ws(&s);
    return s;
}

KT_TEST(compile_bench_json)
{
    NEED_TINY();
    int rc = KGEN("bench", kc_tiny_so, "--pp", "8,16", "--tg", "4", "-r", "2", "-t", "2", "--json");
    REQUIRE_F(rc == 0, "kgen bench --json exited %d: %s", rc, kc_err);
    const char *p = kc_out;
    ws(&p);
    KT_CHECKF(*p == '{', "bench --json does not print an object: %.200s", kc_out);
    bool ok = jvalue(&p, 0);
    ws(&p);
    KT_CHECKF(ok && !*p, "bench --json output is not one JSON value: %.400s", kc_out);
    static const char *const keys[] = {"model", "backend", "threads", "pp", "tg", "compile_s", "open_s", "peak_rss_mb"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        KT_CHECKF(jkey(kc_out, keys[i]), "bench --json lacks \"%s\": %.400s", keys[i], kc_out);
    const char *v;
    if ((v = jkey(kc_out, "model"))) KT_CHECKF(*v == '"', "model is not a string");
    if ((v = jkey(kc_out, "backend"))) KT_CHECKF(!strncmp(v, "\"cpu\"", 5), "backend is not \"cpu\": %.20s", v);
    if ((v = jkey(kc_out, "threads"))) KT_CHECKF(atoi(v) == 2, "threads is not 2: %.20s", v);
    if ((v = jkey(kc_out, "open_s"))) KT_CHECKF(strtod(v, NULL) > 0, "open_s is not positive: %.20s", v);
    if ((v = jkey(kc_out, "peak_rss_mb"))) KT_CHECKF(strtod(v, NULL) > 0, "peak_rss_mb is not positive: %.20s", v);
    /* pp: [{n: 8, tps, sd}, {n: 16, ...}], tg: [{n: 4, ...}] */
    static const struct { const char *key; int n[2]; } lists[] = {{"pp", {8, 16}}, {"tg", {4, 0}}};
    for (int i = 0; i < 2; i++) {
        const char *l = jkey(kc_out, lists[i].key);
        if (!l) continue;
        KT_CHECKF(*l == '[', "%s is not a list", lists[i].key);
        const char *end = l;
        KT_CHECK(jvalue(&end, 0));
        for (int k = 0; k < 2 && lists[i].n[k]; k++) {
            const char *o = strchr(l, '{');
            KT_CHECKF(o && o < end, "%s has no entry %d", lists[i].key, k);
            if (!o || o >= end) break;
            const char *oe = o;
            KT_CHECK(jvalue(&oe, 0));
            const char *nv = jkey(o, "n"), *tps = jkey(o, "tps"), *sd = jkey(o, "sd");
            KT_CHECKF(nv && nv < oe && atoi(nv) == lists[i].n[k], "%s[%d].n is not %d", lists[i].key, k, lists[i].n[k]);
            KT_CHECKF(tps && tps < oe && strtod(tps, NULL) > 0, "%s[%d].tps is not positive", lists[i].key, k);
            KT_CHECKF(sd && sd < oe && strtod(sd, NULL) >= 0, "%s[%d].sd missing or negative", lists[i].key, k);
            l = oe;
        }
    }
    /* a prefill longer than the context is refused */
    kc_expect_failure("bench pp > ctx", 1, NULL, NULL, STRS("context"),
                   STRS("bench", kc_tiny_so, "--pp", "100000", "--tg", "0", "-r", "1", "-t", "1"));
}
