/*
 * test_runner.c — the test runner's own process helper (tests/runner.c):
 *
 *   runner_lsan_tracer_retry  a child that dies with LeakSanitizer's
 *                             tracer-crash message is run once more (the
 *                             second run's status counts); one that reports
 *                             a leak, or fails otherwise, is not
 */
#include "kt.h"

#include <stdio.h>
#include <string.h>

/* Runs a shell script that appends a line to `count` each run, exits 1 with
 * `msg` on stderr the first time and 0 after; returns kt_run's status and
 * the number of runs. */
static int run_flaky(const char *msg, int *runs)
{
    char count[512], script[1536];
    static int n;
    snprintf(count, sizeof count, "%s/runner-count-%d", kt_tmpdir(), n++);
    snprintf(script, sizeof script,
             "echo x >> '%s'; if [ $(wc -l < '%s') -eq 1 ]; then printf '%%s\\n' '%s' >&2; exit 1; fi; exit 0",
             count, count, msg);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    char out[256], err[1024];
    int rc = kt_run(argv, out, sizeof out, err, sizeof err);
    *runs = 0;
    FILE *f = fopen(count, "r");
    if (f) {
        for (int c; (c = fgetc(f)) != EOF;) *runs += c == '\n';
        fclose(f);
    }
    return rc;
}

KT_TEST(runner_lsan_tracer_retry)
{
    int runs, rc;
    rc = run_flaky("Tracer caught signal 11: addr=0x3fc8 ==1==LeakSanitizer has encountered a fatal error.", &runs);
    KT_CHECKF(rc == 0 && runs == 2, "tracer crash: exit %d after %d runs, expected 0 after 2", rc, runs);
    rc = run_flaky("==1==ERROR: LeakSanitizer: detected memory leaks (and LeakSanitizer has encountered a fatal error)", &runs);
    KT_CHECKF(rc == 1 && runs == 1, "a leak: exit %d after %d runs, expected 1 after 1", rc, runs);
    rc = run_flaky("some other failure", &runs);
    KT_CHECKF(rc == 1 && runs == 1, "another failure: exit %d after %d runs, expected 1 after 1", rc, runs);
}
