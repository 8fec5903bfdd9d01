/*
 * kt_cli.c — helpers for the tests that run the kgen CLI (kt_cli.h).
 */
#include "kt.h"
#include "kt_cli.h"
#include "tiny_llama.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char kc_out[KC_OUT_CAP], kc_err[KC_ERR_CAP];

void kc_setup_env(void)
{
    static char dir[600];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/cache", kt_tmpdir());
        mkdir(dir, 0700);
    }
    setenv("KGEN_CACHE_DIR", dir, 1);
}

/* path under kt_tmpdir() */
const char *kc_tpath(char *buf, size_t cap, const char *fmt, ...)
{
    int n = snprintf(buf, cap, "%s/", kt_tmpdir());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return buf;
}

/* Runs prog with the NULL-terminated arguments; output in kc_out, kc_err. */
int kc_runl(const char *prog, ...)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)prog;
    va_list ap;
    va_start(ap, prog);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 63) argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    return kt_run(argv, kc_out, sizeof kc_out, kc_err, sizeof kc_err);
}

int kc_kgen_args(const char *const *args)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)kt_kgen_bin();
    for (; *args && n < 31; args++) argv[n++] = (char *)*args;
    argv[n] = NULL;
    return kt_run(argv, kc_out, sizeof kc_out, kc_err, sizeof kc_err);
}

/* A copy of src, truncated to fit. */
void kc_save(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

bool kc_exists(const char *p) { return access(p, F_OK) == 0; }

/* The entries of dir other than `keep` (NULL-terminated list), written into
 * list; returns their count (-1: cannot read dir). */
int kc_extra_entries(const char *dir, const char *const *keep, char *list, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    size_t o = 0;
    list[0] = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        bool kept = false;
        for (const char *const *k = keep; k && *k; k++) kept |= !strcmp(*k, e->d_name);
        if (kept) continue;
        n++;
        if (o < cap) o += (size_t)snprintf(list + o, cap - o, " %s", e->d_name);
    }
    closedir(d);
    return n;
}

bool kc_make_dir(const char *p) { return mkdir(p, 0700) == 0 || errno == EEXIST; }

/* A failure case: runs kgen with args (NULL-terminated) with TMPDIR set to
 * an empty scratch directory; checks the exit status, that stderr holds each
 * of `want` (NULL-terminated), that `dir` holds only `keep` afterwards, that
 * the scratch directory is still empty and that kgen did not die of a signal. */
void kc_expect_failure(const char *label, int want_rc, const char *dir, const char *const *keep,
                           const char *const *want, const char *const *args)
{
    char scratch[600], list[1024];
    static int counter;
    kc_tpath(scratch, sizeof scratch, "scratch-%d", counter++);
    KT_REQUIRE(kc_make_dir(scratch));
    char *old = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
    setenv("TMPDIR", scratch, 1);
    int rc = kc_kgen_args(args);
    if (old) setenv("TMPDIR", old, 1), free(old);
    else unsetenv("TMPDIR");
    if (getenv("KT_SHOW")) printf("    [%s] exit %d: %s", label, rc, kc_err); /* KT_SHOW=1: the messages */
    KT_CHECKF(rc == want_rc, "%s: exit status %d (%s), expected %d; stderr: %s", label, rc,
              rc > 128 ? strsignal(rc - 128) : "no signal", want_rc, kc_err);
    for (const char *const *w = want; *w; w++)
        KT_CHECKF(strstr(kc_err, *w), "%s: stderr does not mention '%s': %s", label, *w, kc_err);
    if (dir) {
        int extra = kc_extra_entries(dir, keep, list, sizeof list);
        KT_CHECKF(extra == 0, "%s: left behind in %s:%s", label, dir, list);
    }
    int extra = kc_extra_entries(scratch, NULL, list, sizeof list);
    KT_CHECKF(extra == 0, "%s: temporaries left behind in TMPDIR:%s", label, list);
}

/* ───────────────────────── the tiny model ───────────────────────── */

char kc_tiny_gguf[600], kc_tiny_so[600];

/* tiny.gguf and tiny.so (compiled once, reused by every test). */
bool kc_tiny_ready(void)
{
    static int state; /* 0 not tried, 1 ok, -1 failed */
    if (state) return state > 0;
    state = -1;
    kc_setup_env();
    char dir[600];
    kc_tpath(dir, sizeof dir, "tiny");
    if (!kc_make_dir(dir)) return false;
    kc_tpath(kc_tiny_gguf, sizeof kc_tiny_gguf, "tiny/tiny.gguf");
    kc_tpath(kc_tiny_so, sizeof kc_tiny_so, "tiny/tiny.so");
    tl_params p;
    tl_defaults(&p);
    if (!tl_write(&p, kc_tiny_gguf)) {
        KT_CHECKF(0, "cannot write %s", kc_tiny_gguf);
        return false;
    }
    int rc = KGEN("compile", kc_tiny_gguf, "-o", kc_tiny_so);
    KT_CHECKF(rc == 0, "kgen compile tiny.gguf exited %d: %s", rc, kc_err);
    KT_CHECKF(kc_exists(kc_tiny_so), "kgen compile did not write %s", kc_tiny_so);
    KT_CHECKF(strstr(kc_err, kc_tiny_so), "compile's report does not name the output: %s", kc_err);
    if (rc != 0 || !kc_exists(kc_tiny_so)) return false;
    state = 1;
    return true;
}

bool kc_same_bytes(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    for (int ca = 0, cb = 0; same && ca != EOF;) {
        ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

const char *kc_tail(const char *s, size_t n)
{
    size_t len = strlen(s);
    if (len <= n) return s;
    const char *t = s + len - n, *nl = strchr(t, '\n');
    return nl ? nl + 1 : t;
}

void kc_ref_check(char **argv)
{
    enum { CAP = 1 << 18 };
    argv[0] = "/usr/bin/env";
    argv[1] = (char *)kt_python();
    char *out = malloc(CAP), *err = malloc(CAP);
    if (!out || !err) {
        free(out), free(err);
        kt_fail(__FILE__, __LINE__, "out of memory");
        return;
    }
    int rc = kt_run(argv, out, CAP, err, CAP);
    if (rc == 77 || rc == 127) {
        free(out), free(err);
        KT_SKIP("the reference needs %s with numpy and gguf", kt_python());
    }
    KT_CHECKF(rc == 0, "%s exited %d\n--- stdout\n%s\n--- stderr (tail)\n%s", argv[2], rc, kc_tail(out, 6000),
              kc_tail(err, 2000));
    const char *sum = strstr(out, "prompts pass;");
    if (rc == 0 && sum) {
        while (sum > out && sum[-1] != '\n') sum--;
        printf("    %.*s\n", (int)strcspn(sum, "\n"), sum);
    } else if (rc == 0) { /* other checkers: their last lines are the summary */
        for (const char *l = kc_tail(out, 600); *l; l += strcspn(l, "\n"), l += *l == '\n')
            if (l[0] != '\n') printf("    %.*s\n", (int)strcspn(l, "\n"), l);
    }
    free(out), free(err);
}

int kc_readme_example(const char *name, const char *dst)
{
    FILE *f = fopen("README.md", "r");
    if (!f) return -1;
    static char text[1 << 19];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char mark[128];
    snprintf(mark, sizeof mark, "<!-- example: %s -->", name);
    const char *at = strstr(text, mark), *open = at ? strstr(at, "```c\n") : NULL;
    const char *close = open ? strstr(open + 5, "\n```") : NULL;
    if (!close) return 0;
    open += 5;
    f = fopen(dst, "w");
    if (!f) return 0;
    fwrite(open, 1, (size_t)(close - open) + 1, f);
    return fclose(f) == 0 ? 1 : 0;
}
