/*
 * test_robust.c — nothing a user does loses their files or leaves litter,
 * on the tiny model (tests/kt_cli.h):
 *
 *   robust_output_is_input   an output that is the input model (the same
 *                            path, a symlink, a hard link; the external
 *                            weights' or the object header's name; a logits
 *                            dump) is refused, and the input is intact
 *   robust_stale_temporaries temporaries nobody holds (what kill -9 leaves)
 *                            are swept by the next compile; ones a live
 *                            process holds are left alone
 *   robust_kill_compile      kill -9 of `kgen compile` and `kgen run` at many
 *                            moments: the next compile leaves nothing behind
 *   robust_readonly_cache    a cache that cannot be written: kgen warns before
 *                            compiling, runs from a temporary file, exits 0
 *                            (as another user when run as root)
 *   robust_reproducible      two compiles of one model: byte-identical, also
 *                            from a directory holding files named like the
 *                            compiler's temporaries (tok.bin, ...)
 *   robust_corrupt_cache_model a corrupted model in the cache is reported in
 *                            one line and rebuilt
 */
#include "kt.h"
#include "kt_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static bool copy(const char *from, const char *to) { return SH("cp", from, to) == 0; }

KT_TEST(robust_output_is_input)
{
    NEED_TINY();
    char dir[600], in[700], ref[700], lnk[700], hard[700], h_in[700], w_in[700], w_out[700];
    kc_tpath(dir, sizeof dir, "overwrite");
    KT_REQUIRE(kc_make_dir(dir));
    snprintf(in, sizeof in, "%s/m.gguf", dir);
    snprintf(ref, sizeof ref, "%s/ref.gguf", dir);
    snprintf(lnk, sizeof lnk, "%s/link.gguf", dir);
    snprintf(hard, sizeof hard, "%s/hard.gguf", dir);
    KT_REQUIRE(copy(kc_tiny_gguf, in) && copy(kc_tiny_gguf, ref));
    KT_REQUIRE(symlink("m.gguf", lnk) == 0 && link(in, hard) == 0);
    const char *const keep[] = {"m.gguf", "ref.gguf", "link.gguf", "hard.gguf", "m.h", "w.so.weights", NULL};
    const char *const outs[] = {in, lnk, hard};
    for (int i = 0; i < 3; i++) {
        char label[64];
        snprintf(label, sizeof label, "compile m.gguf -o %s", strrchr(outs[i], '/') + 1);
        kc_expect_failure(label, 1, dir, keep, STRS(outs[i], "overwrite"), STRS("compile", in, "-o", outs[i]));
        KT_CHECKF(kc_same_bytes(in, ref), "%s changed the input", label);
    }
    /* the input is named like the header of an object, or like external weights */
    snprintf(h_in, sizeof h_in, "%s/m.h", dir);
    KT_REQUIRE(copy(kc_tiny_gguf, h_in));
    char o_out[700];
    snprintf(o_out, sizeof o_out, "%s/m.o", dir);
    kc_expect_failure("--emit obj over its input's name", 1, dir, keep, STRS("overwrite"),
                      STRS("compile", h_in, "--emit", "obj", "-o", o_out));
    KT_CHECKF(kc_same_bytes(h_in, ref), "--emit obj overwrote the input m.h");
    snprintf(w_in, sizeof w_in, "%s/w.so.weights", dir);
    snprintf(w_out, sizeof w_out, "%s/w.so", dir);
    KT_REQUIRE(copy(kc_tiny_gguf, w_in));
    kc_expect_failure("--external-weights over the input", 1, dir, keep, STRS("overwrite"),
                      STRS("compile", w_in, "--external-weights", "-o", w_out));
    KT_CHECKF(kc_same_bytes(w_in, ref), "--external-weights overwrote the input");
    /* a logits dump onto the model */
    kc_expect_failure("run --dump-logits MODEL", 2, dir, keep, STRS("overwrite"),
                      STRS("run", in, "-p", "hi", "-n", "1", "--dump-logits", lnk));
    KT_CHECKF(kc_same_bytes(in, ref), "--dump-logits overwrote the model");
}

/* ───────────────────────── temporaries ───────────────────────── */

/* A child process that holds `path` (a file or directory) locked until
 * killed, as a live kgen holds its temporaries. */
static pid_t hold_lock(const char *path)
{
    int ready[2];
    if (pipe(ready)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(path, O_RDONLY);
        char ok = fd >= 0 && flock(fd, LOCK_EX) == 0;
        if (write(ready[1], &ok, 1) != 1) _exit(1);
        for (;;) pause();
    }
    char ok = 0;
    close(ready[1]);
    if (pid < 0 || read(ready[0], &ok, 1) != 1 || !ok) {
        if (pid > 0) kill(pid, SIGKILL), waitpid(pid, NULL, 0);
        pid = -1;
    }
    close(ready[0]);
    return pid;
}

static void stop(pid_t pid)
{
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static bool touch(const char *path) { FILE *f = fopen(path, "w"); return f && fclose(f) == 0; }

KT_TEST(robust_stale_temporaries)
{
    NEED_TINY();
    char dir[600], scratch[700], out[700], p[800];
    kc_tpath(dir, sizeof dir, "stale");
    snprintf(scratch, sizeof scratch, "%s/tmp", dir);
    snprintf(out, sizeof out, "%s/out.so", dir);
    KT_REQUIRE(kc_make_dir(dir) && kc_make_dir(scratch));
    /* what a killed compile leaves: a work directory with files, an output temporary */
    snprintf(p, sizeof p, "%s/kgen-tmp-model-dead01", scratch);
    KT_REQUIRE(kc_make_dir(p));
    snprintf(p, sizeof p, "%s/kgen-tmp-model-dead01/model0.o", scratch);
    KT_REQUIRE(touch(p));
    snprintf(p, sizeof p, "%s.kgen-tmp-dead02", out);
    KT_REQUIRE(touch(p));
    /* and the same, held by a live process */
    char live_dir[800], live_out[800];
    snprintf(live_dir, sizeof live_dir, "%s/kgen-tmp-model-live01", scratch);
    snprintf(live_out, sizeof live_out, "%s.kgen-tmp-live02", out);
    KT_REQUIRE(kc_make_dir(live_dir) && touch(live_out));
    pid_t h1 = hold_lock(live_dir), h2 = hold_lock(live_out);
    if (h1 < 0 || h2 < 0) stop(h1), stop(h2);
    KT_REQUIRE(h1 > 0 && h2 > 0);
    setenv("TMPDIR", scratch, 1);
    int rc = KGEN("compile", kc_tiny_gguf, "-o", out);
    unsetenv("TMPDIR");
    KT_CHECKF(rc == 0, "compile exited %d: %s", rc, kc_err);
    char list[1024];
    KT_CHECKF(kc_extra_entries(scratch, STRS("kgen-tmp-model-live01"), list, sizeof list) == 0,
              "stale or new temporaries left in TMPDIR:%s", list);
    KT_CHECKF(kc_extra_entries(dir, STRS("tmp", "out.so", "out.so.kgen-tmp-live02"), list, sizeof list) == 0,
              "stale temporaries left beside the output:%s", list);
    KT_CHECKF(kc_exists(live_dir) && kc_exists(live_out), "a temporary held by a live process was removed");
    stop(h1), stop(h2);
    /* no one holds them now: the next compile sweeps them */
    setenv("TMPDIR", scratch, 1);
    rc = KGEN("compile", kc_tiny_gguf, "-o", out);
    unsetenv("TMPDIR");
    KT_CHECKF(rc == 0, "compile exited %d: %s", rc, kc_err);
    KT_CHECKF(kc_extra_entries(scratch, NULL, list, sizeof list) == 0, "left in TMPDIR:%s", list);
    KT_CHECKF(kc_extra_entries(dir, STRS("tmp", "out.so"), list, sizeof list) == 0, "left beside the output:%s", list);
}

/* Starts kgen with args and TMPDIR, output to /dev/null. */
static pid_t start(const char *tmpdir, const char *const *args)
{
    char *argv[32], env_tmp[800];
    int n = 0;
    argv[n++] = (char *)kt_kgen_bin();
    for (; *args && n < 31; args++) argv[n++] = (char *)*args;
    argv[n] = NULL;
    snprintf(env_tmp, sizeof env_tmp, "TMPDIR=%s", tmpdir);
    extern char **environ;
    char *envp[256];
    int ne = 0;
    for (char **e = environ; *e && ne < 254; e++)
        if (strncmp(*e, "TMPDIR=", 7)) envp[ne++] = *e;
    envp[ne++] = env_tmp;
    envp[ne] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    return rc ? -1 : pid;
}

KT_TEST(robust_kill_compile)
{
    NEED_TINY();
    char dir[600], scratch[700], out[700], list[2048];
    kc_tpath(dir, sizeof dir, "killed");
    snprintf(scratch, sizeof scratch, "%s/tmp", dir);
    snprintf(out, sizeof out, "%s/out.so", dir);
    KT_REQUIRE(kc_make_dir(dir) && kc_make_dir(scratch));
    /* how long a compile takes here, to spread the kills over it */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = start(scratch, STRS("compile", kc_tiny_gguf, "-o", out));
    KT_REQUIRE(pid > 0 && waitpid(pid, NULL, 0) == pid);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double full = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    unlink(out);
    int litter = 0;
    const int kills = 6;
    for (int i = 0; i < kills; i++) {
        /* compile (even i) and run of the GGUF with --no-cache (odd i), killed
         * at i/kills of a compile's time */
        pid = i % 2 ? start(scratch, STRS("run", kc_tiny_gguf, "--no-cache", "-p", "hi", "-n", "50"))
                    : start(scratch, STRS("compile", kc_tiny_gguf, "-o", out));
        KT_REQUIRE(pid > 0);
        usleep((useconds_t)(full * 1e6 * (i / 2 + 1) / (kills / 2 + 1)));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        litter += kc_extra_entries(scratch, NULL, list, sizeof list) > 0 ||
                  kc_extra_entries(dir, STRS("tmp", "out.so"), list, sizeof list) > 0;
    }
    printf("    %d of %d kills (compile %.2f s) left temporaries behind\n", litter, kills, full);
    setenv("TMPDIR", scratch, 1);
    int rc = KGEN("compile", kc_tiny_gguf, "-o", out);
    unsetenv("TMPDIR");
    KT_CHECKF(rc == 0, "compile after the kills exited %d: %s", rc, kc_err);
    KT_CHECKF(kc_extra_entries(scratch, NULL, list, sizeof list) == 0, "left in TMPDIR after a compile:%s", list);
    KT_CHECKF(kc_extra_entries(dir, STRS("tmp", "out.so"), list, sizeof list) == 0, "left beside the output:%s", list);
}

/* ───────────────────────── the cache ───────────────────────── */

KT_TEST(robust_readonly_cache)
{
    NEED_TINY();
    /* As root, permissions do not stop writes: the run is made as nobody
     * (setpriv), in a directory that user can reach. */
    const bool root = getuid() == 0;
    char dir[] = "/tmp/kgen-ro-XXXXXX", gguf[64], tmp[64], cache[64], nocache[64], list[1024];
    KT_REQUIRE(mkdtemp(dir));
    snprintf(gguf, sizeof gguf, "%s/tiny.gguf", dir);
    snprintf(tmp, sizeof tmp, "%s/tmp", dir);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    snprintf(nocache, sizeof nocache, "%s/ro/cache", dir);
    char ro[64];
    snprintf(ro, sizeof ro, "%s/ro", dir);
    KT_REQUIRE(chmod(dir, 0755) == 0 && copy(kc_tiny_gguf, gguf) && chmod(gguf, 0644) == 0);
    KT_REQUIRE(mkdir(tmp, 0777) == 0 && chmod(tmp, 01777) == 0 && mkdir(cache, 0700) == 0 && mkdir(ro, 0555) == 0);
    if (root) KT_REQUIRE(chown(cache, 65534, 65534) == 0);
    KT_REQUIRE(chmod(cache, 0500) == 0);
    const char *const dirs[2] = {cache, nocache}; /* read-only; cannot be created */
    for (int k = 0; k < 2; k++) {
        setenv("KGEN_CACHE_DIR", dirs[k], 1);
        setenv("TMPDIR", tmp, 1);
        int rc = root ? SH("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", kt_kgen_bin(), "run", gguf, "-p",
                           "hi", "-n", "2", "-t", "1")
                      : KGEN("run", gguf, "-p", "hi", "-n", "2", "-t", "1");
        unsetenv("TMPDIR");
        kc_setup_env();
        const char *warn = strstr(kc_err, "warning:"), *work = strstr(kc_err, "code generated");
        KT_CHECKF(rc == 0, "run with the cache %s exited %d: %s", dirs[k], rc, kc_err);
        KT_CHECKF(warn && strstr(warn, dirs[k]) && work && warn < work,
                  "no warning naming the cache %s before the compile: %s", dirs[k], kc_err);
        KT_CHECKF(kc_extra_entries(tmp, NULL, list, sizeof list) == 0, "left in TMPDIR:%s", list);
    }
    KT_CHECKF(kc_extra_entries(cache, NULL, list, sizeof list) == 0, "the read-only cache was written:%s", list);
    chmod(cache, 0700);
    SH("rm", "-rf", dir);
}

KT_TEST(robust_reproducible)
{
    NEED_TINY();
    char a[600], b[600];
    kc_tpath(a, sizeof a, "tiny/repro-a.so");
    kc_tpath(b, sizeof b, "tiny/repro-b.so");
    int rc = KGEN("compile", kc_tiny_gguf, "-o", a);
    KT_CHECKF(rc == 0, "compile exited %d: %s", rc, kc_err);
    rc = KGEN("compile", kc_tiny_gguf, "-o", b);
    KT_CHECKF(rc == 0, "compile exited %d: %s", rc, kc_err);
    KT_CHECKF(kc_same_bytes(a, b), "two compiles of the same model differ: cmp %s %s", a, b);
    /* ... also from a directory holding files named like the compiler's own
     * temporaries (desc.bin, tok.bin, ...), which the assembler once took
     * instead of them: the same bytes, for a shared object and an object */
    char dir[600], decoy[700], kgen[PATH_MAX], c[600], d[600];
    kc_tpath(dir, sizeof dir, "decoys");
    KT_REQUIRE(kc_make_dir(dir) && realpath(kt_kgen_bin(), kgen));
    static const char *const names[] = {"desc.bin", "tok.bin", "cuda.bin", "note.bin", "weights.bin"};
    for (int i = 0; i < 5; i++) {
        snprintf(decoy, sizeof decoy, "%s/%s", dir, names[i]);
        FILE *f = fopen(decoy, "w");
        KT_REQUIRE(f);
        fputs("decoy: not the compiler's\n", f);
        fclose(f);
    }
    kc_tpath(c, sizeof c, "tiny/repro-c.o");
    kc_tpath(d, sizeof d, "tiny/repro-d.o");
    rc = KGEN("compile", kc_tiny_gguf, "--emit", "obj", "-o", c);
    KT_CHECKF(rc == 0, "compile --emit obj exited %d: %s", rc, kc_err);
    const char *outs[][2] = {{a, b}, {c, d}};
    for (int k = 0; k < 2; k++) {
        char *argv[] = {"/bin/sh", "-c", "cd \"$1\" && exec \"$2\" compile \"$3\" --emit \"$4\" -o \"$5\"", "sh", dir, kgen,
                        kc_tiny_gguf, (char *)(k ? "obj" : "so"), (char *)outs[k][1], NULL};
        char err[4096];
        rc = kt_run(argv, NULL, 0, err, sizeof err);
        KT_CHECKF(rc == 0, "compile from %s exited %d: %s", dir, rc, err);
        KT_CHECKF(kc_same_bytes(outs[k][0], outs[k][1]), "compiled from a directory of decoys, the %s differs: cmp %s %s",
                  k ? "object" : "shared object", outs[k][0], outs[k][1]);
    }
}

/* A corrupted model in the cache: kgen run says so in one line, rebuilds it
 * and runs (before: rebuilt silently). */
KT_TEST(robust_corrupt_cache_model)
{
    NEED_TINY();
    char cache[600], list[700];
    kc_tpath(cache, sizeof cache, "corrupt-cache");
    KT_REQUIRE(kc_make_dir(cache));
    setenv("KGEN_CACHE_DIR", cache, 1);
    int rc = KGEN("run", kc_tiny_gguf, "-p", "hi", "-n", "2", "-t", "1");
    KT_CHECKF(rc == 0, "first run exited %d: %s", rc, kc_err);
    rc = KGEN("cache", "ls");
    char key[40] = "", kind[16];
    for (const char *l = kc_out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (sscanf(l, "%39s %15s", key, kind) == 2 && !strcmp(kind, "so")) break;
        else key[0] = 0;
    snprintf(list, sizeof list, "%s/%.2s/%s.so", cache, key, key + 2);
    KT_CHECKF(key[0] && kc_exists(list), "no model entry in the cache listing: %s", kc_out);
    FILE *f = fopen(list, "r+b");
    KT_REQUIRE(f && fseek(f, 4096, SEEK_SET) == 0);
    int c = fgetc(f);
    KT_REQUIRE(c != EOF && fseek(f, 4096, SEEK_SET) == 0 && fputc(c ^ 0x40, f) != EOF && fclose(f) == 0);
    rc = KGEN("run", kc_tiny_gguf, "-p", "hi", "-n", "2", "-t", "1");
    const char *line = strstr(kc_err, "corrupt cache entry");
    KT_CHECKF(rc == 0 && line && strstr(line, "rebuilding") && !strstr(line + 1, "corrupt cache entry") &&
                  strstr(kc_err, "compiled"),
              "run over a corrupted cached model: exit %d: %s", rc, kc_err);
    rc = KGEN("run", kc_tiny_gguf, "-p", "hi", "-n", "2", "-t", "1");
    KT_CHECKF(rc == 0 && !strstr(kc_err, "corrupt") && !strstr(kc_err, "compiled"), "third run: %d: %s", rc, kc_err);
    kc_setup_env();
}
