/*
 * kt_cli.h — helpers for the tests that run the kgen CLI (tests/kt_cli.c):
 * run it and capture its output, failure cases that must leave nothing
 * behind, and the tiny synthetic model compiled once per test run.
 */
#ifndef KGEN_KT_CLI_H
#define KGEN_KT_CLI_H

#include <stdbool.h>
#include <stddef.h>

enum { KC_OUT_CAP = 1 << 20, KC_ERR_CAP = 1 << 16 };
extern char kc_out[KC_OUT_CAP], kc_err[KC_ERR_CAP]; /* the last run's stdout and stderr */

/* KGEN_CACHE_DIR: one cache under kt_tmpdir() for every CLI test */
void kc_setup_env(void);

/* path under kt_tmpdir(), printf-style; returns buf */
const char *kc_tpath(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Runs prog with the NULL-terminated arguments; output in kc_out, kc_err;
 * returns kt_run's status. */
int kc_runl(const char *prog, ...);
#define KGEN(...) kc_runl(kt_kgen_bin(), __VA_ARGS__, (const char *)NULL)
/* kgen with the NULL-terminated args (at most 30), as kc_runl */
int kc_kgen_args(const char *const *args);
#define SH(...) kc_runl("/usr/bin/env", __VA_ARGS__, (const char *)NULL)

/* A copy of src, truncated to fit. */
void kc_save(char *dst, size_t cap, const char *src);
bool kc_exists(const char *p);
/* two files have the same bytes (false if either cannot be read) */
bool kc_same_bytes(const char *a, const char *b);
bool kc_make_dir(const char *p);

/* The entries of dir other than `keep` (NULL-terminated list), written into
 * list; returns their count (-1: cannot read dir). */
int kc_extra_entries(const char *dir, const char *const *keep, char *list, size_t cap);

/* A failure case: runs kgen with args (NULL-terminated) with TMPDIR set to
 * an empty scratch directory; checks the exit status, that stderr holds each
 * of `want` (NULL-terminated), that `dir` holds only `keep` afterwards, that
 * the scratch directory is still empty and that kgen did not die of a signal. */
void kc_expect_failure(const char *label, int want_rc, const char *dir, const char *const *keep,
                       const char *const *want, const char *const *args);

/* The last n bytes of s (at most), from a line start. */
const char *kc_tail(const char *s, size_t n);

/* Runs a reference checker, argv[2] on (a script under tests/ref/ and its
 * arguments; argv[0] and argv[1] are filled with /usr/bin/env and
 * kt_python()): skips the test when the Python lacks the references'
 * packages (exit 77, or 127), fails it with the checker's output unless it
 * exits 0, and prints its "... prompts pass; ..." summary line (other
 * checkers: the last lines of their output). */
void kc_ref_check(char **argv);

/* The C program after README.md's "<!-- example: NAME -->" (its ```c block)
 * written to dst: 1; 0 when README.md has no such example (or dst cannot be
 * written); -1 when there is no README.md (not run from the repository root). */
int kc_readme_example(const char *name, const char *dst);

/* KT_REQUIRE with a message */
#define REQUIRE_F(cond, ...) do { if (!(cond)) { kt_fail(__FILE__, __LINE__, __VA_ARGS__); return; } } while (0)
#define STRS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The tiny model (tests/tiny_llama.c): kc_tiny_gguf compiled to kc_tiny_so,
 * once per test run; false (with a failed check) if that failed. */
extern char kc_tiny_gguf[600], kc_tiny_so[600];
bool kc_tiny_ready(void);
#define NEED_TINY() KT_REQUIRE(kc_tiny_ready())

#endif
