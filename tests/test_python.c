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
