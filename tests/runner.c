/*
 * runner.c — runs every KT_TEST (or those whose name contains an argument),
 * printing each result with the seconds it took, and closes with
 * "N passed, N failed[, N skipped] in S s". Exit status 1 if any failed.
 * Tests named slow_* are the slow tier (make check-slow): they run only with
 * KGEN_TEST_SLOW=1.
 */
#include "kt.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static kt_case *cases;
static int cur_fails;
static char skip_reason[512];
static char tmpdir[256];

void kt_register(kt_case *c)
{
    c->next = cases;
    cases = c;
}

void kt_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    if (cur_fails++ < 20) {
        fprintf(stdout, "    %s:%d: ", file, line);
        va_start(ap, fmt);
        vfprintf(stdout, fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
    }
}

void kt_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(skip_reason, sizeof skip_reason, fmt, ap);
    va_end(ap);
}

bool kt_failed(void) { return cur_fails > 0; }

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

const char *kt_kgen_bin(void) { return env_or("KGEN_BIN", "build/kgen"); }
const char *kt_models_dir(void) { return env_or("KGEN_MODELS", "models"); }
const char *kt_tmpdir(void) { return tmpdir; }
const char *kt_python(void) { return env_or("PYTHON", "python3"); }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void rm_tmpdir(void)
{
    if (!tmpdir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
}

/* Reads both pipes until EOF so a chatty child cannot block. */
static int run_once(char *const argv[], char *out, size_t out_cap, char *err, size_t err_cap)
{
    int po[2], pe[2];
    if (pipe(po) || pipe(pe)) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]); close(pe[0]); close(po[1]); close(pe[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    size_t no = 0, ne = 0;
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) { if (errno == EINTR) continue; break; }
        for (int k = 0; k < 2; k++) {
            if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[4096], *dst = k ? err : out;
            size_t cap = k ? err_cap : out_cap, *n = k ? &ne : &no;
            ssize_t r = read(fds[k].fd, buf, sizeof buf);
            if (r <= 0) { close(fds[k].fd); fds[k].fd = -1; open_fds--; continue; }
            if (dst && cap > 1) {
                size_t c = (size_t)r < cap - 1 - *n ? (size_t)r : cap - 1 - *n;
                memcpy(dst + *n, buf, c);
                *n += c;
            }
        }
    }
    if (out && out_cap) out[no] = 0;
    if (err && err_cap) err[ne] = 0;
    int st;
    while (waitpid(pid, &st, 0) < 0) if (errno != EINTR) return -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

/* LeakSanitizer's stop-the-world tracer itself sometimes dies of SIGSEGV at
 * a process's exit ("Tracer caught signal 11 ... LeakSanitizer has
 * encountered a fatal error"; google/sanitizers#1353), after the program's
 * work has succeeded: a flake of the tool, not a leak (a leak is reported as
 * "detected memory leaks" and is not retried). Such a run is run once more,
 * saying so. */
static bool lsan_tracer_crash(const char *s)
{
    return s && strstr(s, "LeakSanitizer has encountered a fatal error") && !strstr(s, "detected memory leaks");
}

int kt_run(char *const argv[], char *out, size_t out_cap, char *err, size_t err_cap)
{
    int rc = run_once(argv, out, out_cap, err, err_cap);
    if (rc != 0 && (lsan_tracer_crash(out) || lsan_tracer_crash(err))) {
        printf("    note: LeakSanitizer's tracer crashed at the exit of %s (a sanitizer flake, not a leak:\n"
               "    google/sanitizers#1353); running it once more\n", argv[argv[0] && strstr(argv[0], "/env") ? 2 : 0]);
        rc = run_once(argv, out, out_cap, err, err_cap);
    }
    return rc;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0, slow_left = 0;
    double t_start = now_s();
    const bool slow_on = getenv("KGEN_TEST_SLOW") && !strcmp(getenv("KGEN_TEST_SLOW"), "1");
    snprintf(tmpdir, sizeof tmpdir, "%s/kgen-tests-XXXXXX", env_or("TMPDIR", "/tmp"));
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    atexit(rm_tmpdir);
    /* every kgen the tests run shares one private cache, removed at exit */
    if (!getenv("KGEN_CACHE_DIR")) {
        char cache[sizeof tmpdir + 16];
        snprintf(cache, sizeof cache, "%s/cache", tmpdir);
        setenv("KGEN_CACHE_DIR", cache, 1);
    }
    /* registration order is reversed by the constructor list: restore it */
    kt_case *rev = NULL;
    while (cases) { kt_case *n = cases->next; cases->next = rev; rev = cases; cases = n; }
    for (kt_case *c = rev; c; c = c->next) {
        bool want = argc < 2;
        for (int i = 1; i < argc && !want; i++) want = strstr(c->name, argv[i]) != NULL;
        if (!want) continue;
        /* the slow tier (make check-slow): slow_ tests run only when asked */
        if (!strncmp(c->name, "slow_", 5) && !slow_on) { slow_left++; continue; }
        cur_fails = 0;
        skip_reason[0] = 0;
        printf("  %s\n", c->name);
        fflush(stdout);
        double t0 = now_s();
        c->fn();
        double dt = now_s() - t0;
        if (cur_fails) { printf("FAIL %s (%d failed checks) %.2f s\n", c->name, cur_fails, dt); failed++; }
        else if (skip_reason[0]) { printf("skip %s: %s\n", c->name, skip_reason); skipped++; }
        else { printf("ok   %s %.2f s\n", c->name, dt); passed++; }
        fflush(stdout);
    }
    if (skipped) printf("%d passed, %d failed, %d skipped", passed, failed, skipped);
    else printf("%d passed, %d failed", passed, failed);
    printf(" in %.1f s\n", now_s() - t_start);
    if (slow_left) printf("(%d slow_ tests not run: they are make check-slow's, KGEN_TEST_SLOW=1)\n", slow_left);
    return failed ? 1 : 0;
}
