/*
 * kt.h — kgen's test runner. A test is a function registered with KT_TEST;
 * the runner prints one line per test and closes with
 *     N passed, N failed[, N skipped]
 *
 *   KT_TEST(gguf_roundtrip) { KT_CHECK(x == 1); KT_CHECKF(a == b, "a=%d", a); }
 *   KT_SKIP("no model: run make models");   // skip with a reason, returns
 *
 * A failed check records file:line and the message, and the test goes on
 * (so one run shows every broken assertion); KT_REQUIRE returns at once.
 */
#ifndef KGEN_KT_H
#define KGEN_KT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kt_case {
    const char *name;
    void (*fn)(void);
    struct kt_case *next;
} kt_case;

void kt_register(kt_case *c);
void kt_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void kt_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool kt_failed(void); /* has the current test failed so far? */

/* Paths the runner was told about (environment, with defaults):
 *   kt_kgen_bin(): KGEN_BIN, the kgen binary under test (default build/kgen)
 *   kt_models_dir(): KGEN_MODELS, the models directory (default models)
 *   kt_tmpdir(): a fresh private directory for this run, removed at exit
 *   kt_python(): PYTHON, the Python of the references (default python3; make
 *                check passes build/venv's, which has their pinned packages) */
const char *kt_kgen_bin(void);
const char *kt_python(void);
const char *kt_models_dir(void);
const char *kt_tmpdir(void);

/* Run `argv` (argv[0] a path), capture stdout and stderr (each truncated to
 * cap-1 bytes, NUL-terminated; either may be NULL). Returns the exit status,
 * or -1 if it could not run, or 128+signal if it was killed. */
int kt_run(char *const argv[], char *out, size_t out_cap, char *err, size_t err_cap);

/* kt_run for a Python reference (argv: /usr/bin/env, kt_python(), a script
 * in tests/ref/, its arguments; `outputs`: the arguments that name files it
 * writes, NULL-terminated, or NULL). Under $KGEN_REF_CACHE, an answer (exit
 * status 0, stdout and the output files) is stored by the content of
 * tests/ref/ and of the arguments (files by content) and replayed by later
 * runs: make check's second build reuses the first's (tests/refcache.c). */
int kt_run_ref(char *const argv[], const char *const *outputs, char *out, size_t out_cap, char *err, size_t err_cap);

/* 1 in the sanitizer build (make check's second run). A test with many
 * similar cases may run a subset there: the plain build runs them all, and
 * the sanitizers look for out-of-bounds and undefined behaviour, which
 * depend on shapes and edges rather than on every combination of them.
 * Likewise cases that differ only in what the sanitizers do not watch
 * (the compiled kernels, LLVM's or NVRTC's work), and a test whose every
 * part other tests run under the sanitizers (it skips, naming them). */
#if defined(__SANITIZE_ADDRESS__)
#define KT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KT_SANITIZED 1
#endif
#endif
#ifndef KT_SANITIZED
#define KT_SANITIZED 0
#endif

#define KT_TEST(name)                                                         \
    static void kt_fn_##name(void);                                           \
    static kt_case kt_case_##name = {#name, kt_fn_##name, NULL};              \
    __attribute__((constructor)) static void kt_reg_##name(void) { kt_register(&kt_case_##name); } \
    static void kt_fn_##name(void)

#define KT_CHECK(cond) ((cond) ? (void)0 : kt_fail(__FILE__, __LINE__, "%s", #cond))
#define KT_CHECKF(cond, ...) ((cond) ? (void)0 : kt_fail(__FILE__, __LINE__, __VA_ARGS__))
#define KT_REQUIRE(cond) do { if (!(cond)) { kt_fail(__FILE__, __LINE__, "%s", #cond); return; } } while (0)
#define KT_SKIP(...) do { kt_skip(__VA_ARGS__); return; } while (0)

#endif
