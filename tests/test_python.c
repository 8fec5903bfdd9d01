/*
 * test_python.c — the Python package (python/kgen: ctypes over the C ABI of
 * include/kgen_model.h), checked by tests/ref/py_pkg_check.py run with
 * PYTHONPATH=python (the checkout's package, not an installed one).
 *
 *   python_package: SmolLM2 compiled into this run's temp directory; the
 *     package's ctypes structs against the C compiler's sizes and offsets of
 *     kgen_model.h; tokenize against Hugging Face `tokenizers` on the
 *     tokenizer corpus; greedy and seeded generate against `kgen run`'s
 *     output; bad files and bad calls raise kgen.Error.
 *   python_encoder_stub: the Encoder's calls through an ABI-2 table, on a stub
 *     model built here (tests/test_python.c's STUB: a shared object with a
 *     kgen note and a kgm_api table of version 2 whose embed calls write
 *     values computed from their input): every value of embed and
 *     embed_tokens where the stub puts it, errors carried as kgen.Error.
 *     Runs before the real encoder exists; checks the package, not kgen.
 *   python_encoder: all-MiniLM-L6-v2 compiled (--batch 8 --max-len 128);
 *     Encoder.embed against `kgen embed --json`, embed_tokens with HF ids.
 *     Skips, saying why, while kgen compiles no encoders (no --max-len) or
 *     the model's ABI has no embed calls (version < 2).
 *
 * Both skip, saying why, when the model is not fetched or the Python lacks
 * the references' packages.
 */
#include "kt.h"
#include "kt_cli.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMOL "SmolLM2-135M-Instruct.Q4_1.gguf"
#define MINILM "all-MiniLM-L6-v2"

/* Runs py_pkg_check.py with args (NULL-terminated, at most 16) under
 * PYTHONPATH=python; skips on 77 (with the script's "skipped: " line) or a
 * missing Python, fails with the output's tail on anything but 0, prints the
 * summary line. */
static void py_check(const char *const *args)
{
    char *argv[24] = {"/usr/bin/env", "PYTHONPATH=python", (char *)kt_python(), "tests/ref/py_pkg_check.py"};
    int argc = 4;
    for (; *args && argc < 23; args++) argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    enum { CAP = 1 << 18 };
    char *out = malloc(CAP), *err = malloc(CAP);
    if (!out || !err) {
        free(out), free(err);
        KT_REQUIRE(!"out of memory");
    }
    int rc = kt_run(argv, out, CAP, err, CAP);
    if (rc == 77 || rc == 127) {
        char msg[600];
        const char *why = strstr(out, "skipped: ");
        snprintf(msg, sizeof msg, "%s", why ? why + 9 : "the check needs the references' Python (PYTHON=build/venv/bin/python)");
        msg[strcspn(msg, "\n")] = 0;
        free(out), free(err);
        KT_SKIP("%s", msg);
    }
    KT_CHECKF(rc == 0, "py_pkg_check.py exited %d\n--- stdout (tail)\n%s\n--- stderr (tail)\n%s", rc,
              kc_tail(out, 4000), kc_tail(err, 4000));
    const char *sum = strstr(out, "prompts pass;");
    if (rc == 0 && sum) {
        while (sum > out && sum[-1] != '\n') sum--;
        printf("    %.*s\n", (int)strcspn(sum, "\n"), sum);
    }
    free(out), free(err);
}

KT_TEST(python_package)
{
    char gguf[600], so[700], tmp[700];
    snprintf(gguf, sizeof gguf, "%s/%s", kt_models_dir(), SMOL);
    if (!kc_exists(gguf)) KT_SKIP("%s not found: run make models", gguf);
    kc_tpath(so, sizeof so, "py-smollm2.so");
    kc_tpath(tmp, sizeof tmp, "py-check");
    KT_REQUIRE(kc_make_dir(tmp));
    kc_setup_env();
    int rc = KGEN("compile", gguf, "-o", so);
    REQUIRE_F(rc == 0, "kgen compile %s exited %d:\n%s", gguf, rc, kc_tail(kc_err, 3000));
    py_check(STRS("--kgen", kt_kgen_bin(), "--so", so, "--gguf", gguf, "--tmp", tmp));
    remove(so);
}

/* The stub encoder: kgm_api of ABI version 2 (the v1 table, then
 * embed_dim, embed, embed_tokens appended to the
 * 14 members of version 1, as kgen_model.h appends them), a kgen note
 * (weights in the image) so that the package's file check passes. embed
 * writes, for text i: its length, its first byte, i, the sum of its bytes,
 * the thread count, 0.5, -1, 7; embed_tokens: n_ids[i], the first id, the
 * last id, the ids' sum, i, 0.25, -2, 9. A text starting "FAIL" fails the
 * call; n_threads 99 fails kgm_open. */
static const char STUB[] =
    "#include <stdlib.h>\n#include <string.h>\n#include <stdio.h>\n"
    "#define kgm_api kgm_api_declared_v1\n#include \"kgen_model.h\"\n#undef kgm_api\n"
    "__asm__(\".section .note.kgen, \\\"a\\\", @note\\n.balign 4\\n.long 5, 288, 1\\n.asciz \\\"kgen\\\"\\n\"\n"
    "        \".balign 4\\n.long 1, 2, 0, 0\\n.quad 0, 0\\n.zero 256\\n.balign 4\\n.text\\n\");\n"
    "struct kgm_model { int nt; char err[128]; };\n"
    "static kgm_model *op(const kgm_open_params *p, char *e, size_t cap) {\n"
    "  if (p && p->n_threads == 99) { snprintf(e, cap, \"stub: refused 99 threads\"); return NULL; }\n"
    "  kgm_model *m = calloc(1, sizeof *m); if (m) m->nt = p && p->n_threads ? p->n_threads : 1; return m; }\n"
    "static void cl(kgm_model *m) { free(m); }\n"
    "static const char *er(const kgm_model *m) { return m->err; }\n"
    "static void de(const kgm_model *m, kgm_info *o) { memset(o, 0, sizeof *o); o->abi_version = 2;\n"
    "  o->arch = \"bert\"; o->name = \"stub\"; o->weight_type = \"F32\"; o->target_cpu = \"x\";\n"
    "  o->content_hash = \"00000000000000000000000000000000\"; o->n_embd = 8; o->n_batch = 4; o->n_ctx = 16;\n"
    "  o->n_ctx_train = 16; o->n_threads = m->nt; o->bos = o->eos = -1; }\n"
    "static int tk(kgm_model *m, const char *t, size_t l, int f, int32_t *o, int c) {\n"
    "  (void)t, (void)l, (void)f, (void)o, (void)c; snprintf(m->err, 128, \"stub: no tokenizer\"); return -1; }\n"
    "static int ed(const kgm_model *m) { (void)m; return 8; }\n"
    "static int em(kgm_model *m, const char *const *t, int n, float *o) {\n"
    "  for (int i = 0; i < n; i++) { if (!strncmp(t[i], \"FAIL\", 4)) { snprintf(m->err, 128, \"stub: text %d asked to fail\", i); return -1; }\n"
    "    float s = 0; for (const char *c = t[i]; *c; c++) s += (unsigned char)*c;\n"
    "    float v[8] = {(float)strlen(t[i]), (float)(unsigned char)t[i][0], (float)i, s, (float)m->nt, 0.5f, -1, 7};\n"
    "    memcpy(o + 8 * i, v, sizeof v); }\n"
    "  return n; }\n"
    "static int et(kgm_model *m, const int32_t *const *ids, const int *nid, int n, float *o) {\n"
    "  for (int i = 0; i < n; i++) { if (nid[i] < 1) { snprintf(m->err, 128, \"stub: sequence %d is empty\", i); return -1; }\n"
    "    float s = 0; for (int j = 0; j < nid[i]; j++) s += (float)ids[i][j];\n"
    "    float v[8] = {(float)nid[i], (float)ids[i][0], (float)ids[i][nid[i] - 1], s, (float)i, 0.25f, -2, 9};\n"
    "    memcpy(o + 8 * i, v, sizeof v); }\n"
    "  return n; }\n"
    "const struct { int abi_version; void *v1[14]; int (*embed_dim)(const kgm_model *);\n"
    "  int (*embed)(kgm_model *, const char *const *, int, float *);\n"
    "  int (*embed_tokens)(kgm_model *, const int32_t *const *, const int *, int, float *); } kgm_api = {\n"
    "  2, {(void *)op, (void *)cl, (void *)er, (void *)de, (void *)tk}, ed, em, et};\n";

KT_TEST(python_encoder_stub)
{
    char src[700], so[700], tmp[700];
    kc_tpath(src, sizeof src, "py-stub.c");
    kc_tpath(so, sizeof so, "py-stub.so");
    kc_tpath(tmp, sizeof tmp, "py-check-stub");
    KT_REQUIRE(kc_make_dir(tmp));
    FILE *f = fopen(src, "w");
    KT_REQUIRE(f);
    bool ok = fputs(STUB, f) >= 0;
    KT_REQUIRE(fclose(f) == 0 && ok);
    int rc = SH("cc", "-std=gnu11", "-Wall", "-Werror", "-shared", "-fPIC", "-Iinclude", src, "-o", so);
    REQUIRE_F(rc == 0, "cc on the stub exited %d:\n%s", rc, kc_tail(kc_err, 3000));
    py_check(STRS("--kgen", kt_kgen_bin(), "--stub-so", so, "--tmp", tmp));
}

KT_TEST(python_encoder)
{
    char dir[600], so[700], tmp[700];
    snprintf(dir, sizeof dir, "%s/%s", kt_models_dir(), MINILM);
    if (!kc_exists(dir)) KT_SKIP("%s not found: run make models", dir);
    KGEN("compile", "--help");
    if (!strstr(kc_out, "--max-len") && !strstr(kc_err, "--max-len"))
        KT_SKIP("this kgen compiles no encoders yet (kgen compile --help has no --max-len)");
    kc_tpath(so, sizeof so, "py-minilm.so");
    kc_tpath(tmp, sizeof tmp, "py-check-enc");
    KT_REQUIRE(kc_make_dir(tmp));
    kc_setup_env();
    int rc = KGEN("compile", dir, "--batch", "8", "--max-len", "128", "-o", so);
    REQUIRE_F(rc == 0, "kgen compile %s exited %d:\n%s", dir, rc, kc_tail(kc_err, 3000));
    py_check(STRS("--kgen", kt_kgen_bin(), "--encoder-so", so, "--encoder-dir", dir, "--tmp", tmp));
    remove(so);
}
