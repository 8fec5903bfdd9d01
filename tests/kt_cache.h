/*
 * kt_cache.h — helpers of the cache tests (test_cache.c, test_cache_gc.c):
 * fresh directories, keys, entry paths, payloads, corruption, racing
 * processes, the environment, and `kgen cache` runs. Record offsets are
 * the table at the top of runtime/cache.c.
 */
#ifndef KGEN_KT_CACHE_H
#define KGEN_KT_CACHE_H

#include "kgen.h"
#include "kt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define HDR 64

enum { N_PROC = 8 }; /* processes in a race */

static inline void fresh_dir(const char *name, char out[512])
{
    snprintf(out, 512, "%s/%s", kt_tmpdir(), name);
}

static inline kg_key key_of(const char *s)
{
    kg_keytext *t;
    kg_key k = {0, 0};
    if (kg_keytext_new(&t) != KG_OK) return k;
    kg_keytext_str(t, "name", s);
    kg_keytext_finish(t, &k);
    kg_keytext_free(t);
    return k;
}

static inline void entry_file(const char *dir, kg_key k, const char *kind, char out[600])
{
    char h[33];
    kg_key_hex(k, h);
    snprintf(out, 600, "%s/%.2s/%s.%s", dir, h, h + 2, kind);
}

static inline void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)((i * 131 + seed * 7919 + (i >> 8)) & 0xFF);
}

static inline bool exists(const char *path) { return access(path, F_OK) == 0; }

/* Counts a subdirectory's files: entries ("<30 hex>.<kind>") and temp files. */
static inline void count_files(const char *dir, kg_key k, int *n_entries, int *n_tmp)
{
    char h[33], sub[600];
    kg_key_hex(k, h);
    snprintf(sub, sizeof sub, "%s/%.2s", dir, h);
    *n_entries = *n_tmp = 0;
    DIR *d = opendir(sub);
    if (!d) return;
    for (struct dirent *de; (de = readdir(d));) {
        if (!strncmp(de->d_name, ".tmp-", 5)) ++*n_tmp;
        else if (de->d_name[0] != '.') ++*n_entries;
    }
    closedir(d);
}

/* kg_cache_get, compared with `want`. */
static inline bool hit_equals(kg_cache *c, kg_key k, const char *kind, const void *want, size_t n)
{
    void *data = NULL;
    size_t size = 0;
    kg_status s = kg_cache_get(c, k, kind, &data, &size);
    bool ok = s == KG_OK && data && size == n && (n == 0 || memcmp(data, want, n) == 0);
    free(data);
    return ok;
}

static inline kg_status get_status(kg_cache *c, kg_key k, const char *kind)
{
    void *data = NULL;
    size_t size = 0;
    kg_status s = kg_cache_get(c, k, kind, &data, &size);
    free(data);
    return s;
}

static inline bool flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    if (!f) return false;
    int ch = fseek(f, off, SEEK_SET) == 0 ? fgetc(f) : EOF;
    bool ok = ch != EOF && fseek(f, off, SEEK_SET) == 0 && fputc(ch ^ 0x20, f) != EOF;
    return fclose(f) == 0 && ok;
}

/* Forks N_PROC children that wait on a pipe, then run body(i); true if all
 * exited 0. */
static inline bool race(int (*body)(int i, void *ctx), void *ctx)
{
    int gate[2];
    pid_t pids[N_PROC];
    if (pipe(gate) != 0) return false;
    fflush(stdout);
    for (int i = 0; i < N_PROC; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            char b;
            close(gate[1]);
            while (read(gate[0], &b, 1) < 0 && errno == EINTR) {}
            _exit(body(i, ctx)); /* _exit: not the runner's atexit */
        }
    }
    close(gate[0]);
    close(gate[1]); /* go */
    bool ok = true;
    for (int i = 0; i < N_PROC; i++) {
        int st;
        if (pids[i] < 0 || waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) ok = false;
    }
    return ok;
}

typedef struct saved_env {
    const char *name;
    char *value;
} saved_env;

static inline void env_save(saved_env *e, size_t n)
{
    for (size_t i = 0; i < n; i++) e[i].value = getenv(e[i].name) ? strdup(getenv(e[i].name)) : NULL;
}

static inline void env_restore(saved_env *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (e[i].value) setenv(e[i].name, e[i].value, 1);
        else unsetenv(e[i].name);
        free(e[i].value);
    }
}

/* A file named `name` in k's subdirectory. If `lock`, it is a temporary
 * file being written: the returned descriptor holds its flock (close it);
 * else -1. */
static inline int make_tmp(const char *dir, kg_key k, const char *name, bool lock)
{
    char h[33], path[700];
    kg_key_hex(k, h);
    snprintf(path, sizeof path, "%s/%.2s/%s", dir, h, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    if (write(fd, "partial", 7) != 7 || !lock || flock(fd, LOCK_EX) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline int kgen(char *out, char *err, const char *a1, const char *a2, const char *a3, const char *a4)
{
    char *argv[] = {(char *)kt_kgen_bin(), "cache", (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
    return kt_run(argv, out, 16384, err, 4096);
}

static inline int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* A new file `path` holding the n bytes at p, mode `mode`. */
static inline bool write_file(const char *path, const void *p, size_t n, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return false;
    bool ok = write(fd, p, n) == (ssize_t)n;
    return close(fd) == 0 && ok && chmod(path, mode) == 0; /* chmod: past the umask */
}

/* The whole file at path (malloc'd; *n its size), or NULL. */
static inline unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct stat st;
    unsigned char *b = fstat(fileno(f), &st) == 0 ? malloc((size_t)st.st_size + 1) : NULL;
    if (b && fread(b, 1, (size_t)st.st_size, f) != (size_t)st.st_size) { free(b); b = NULL; }
    fclose(f);
    if (b) *n = (size_t)st.st_size;
    return b;
}

/* Is the file at path a trailer entry of the n bytes at p: those bytes
 * first, then 64 more? */
static inline bool holds_in_place(const char *path, const void *p, size_t n)
{
    size_t got = 0;
    unsigned char *b = slurp(path, &got);
    bool ok = b && got == n + HDR && (n == 0 || memcmp(b, p, n) == 0) && memcmp(b + n, "KGCACHE", 8) == 0;
    free(b);
    return ok;
}

static inline kg_status get_path_status(kg_cache *c, kg_key k, const char *kind)
{
    char path[PATH_MAX];
    return kg_cache_get_path(c, k, kind, path, sizeof path);
}

/* src = <tmp>/<name>, holding the n bytes at p (mode 0755, like a linker's
 * output). */
static inline bool make_src(char src[600], const char *name, const void *p, size_t n)
{
    snprintf(src, 600, "%s/%s", kt_tmpdir(), name);
    return write_file(src, p, n, 0755);
}

#endif
