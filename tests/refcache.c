/*
 * refcache.c — kt_run_ref: run a Python reference once per build.
 *
 * make check runs every test twice (plain and ASan+UBSan builds); the
 * references' answers do not depend on the build, so the first run stores
 * them and the second reads them back. A reference run is a pure function of
 *   - the reference code: every file of tests/ref/ (scripts, prompts, the
 *     pinned requirements.txt), by content;
 *   - its arguments, where an argument naming a regular file counts by the
 *     file's content (models, the tests' temporary inputs), one naming a
 *     directory by its files' names and contents (a Hugging Face model,
 *     two levels down), and an output
 *     file by its position only (its path is the test run's temporary dir);
 * so the key is the XXH3-128 of those. Stored under $KGEN_REF_CACHE (make
 * check: build/ref-cache), per key: the exit status (only 0 is stored), the
 * captured stdout and each output file, each written to a temporary name
 * and renamed. Without KGEN_REF_CACHE, or on any trouble with the cache,
 * the reference simply runs.
 */
#include "kt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define REF_DIR "tests/ref"

static bool hash_file(XXH3_state_t *s, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0) close(fd);
        return false;
    }
    bool ok = true;
    if (sb.st_size > 0) {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        ok = p != MAP_FAILED;
        if (ok) XXH3_128bits_update(s, p, (size_t)sb.st_size), munmap(p, (size_t)sb.st_size);
    }
    XXH3_128bits_update(s, &sb.st_size, sizeof sb.st_size);
    close(fd);
    return ok;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* every file of dir (and of its directories, depth levels down), in name
 * order, by name (relative to dir) and content */
static bool hash_dir(XXH3_state_t *s, const char *dir, const char *rel, int depth)
{
    DIR *d = opendir(dir);
    if (!d) return false;
    char *names[512];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 512;)
        if (e->d_name[0] != '.' && strcmp(e->d_name, "__pycache__")) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    bool ok = true;
    for (int i = 0; i < n; i++) {
        char p[1024], r[600];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", dir, names[i] ? names[i] : "");
        snprintf(r, sizeof r, "%s/%s", rel, names[i] ? names[i] : "");
        ok = ok && names[i] && stat(p, &sb) == 0;
        if (ok && S_ISDIR(sb.st_mode)) ok = depth < 1 || hash_dir(s, p, r, depth - 1);
        else ok = ok && (XXH3_128bits_update(s, r, strlen(r) + 1), hash_file(s, p));
        free(names[i]);
    }
    return ok;
}

static bool hash_ref_dir(XXH3_state_t *s) { return hash_dir(s, REF_DIR, REF_DIR, 0); }

static bool is_output(const char *a, const char *const *outputs, int *k)
{
    for (*k = 0; outputs && outputs[*k]; ++*k)
        if (!strcmp(a, outputs[*k])) return true;
    return false;
}

/* The key of running argv[first..] (argv[0..first-1]: the interpreter). */
static bool ref_key(char *const argv[], const char *const *outputs, char hex[33])
{
    XXH3_state_t *s = XXH3_createState();
    bool ok = s && XXH3_128bits_reset(s) == XXH_OK && hash_ref_dir(s);
    for (int i = 2; ok && argv[i]; i++) { /* argv: /usr/bin/env PYTHON SCRIPT ARGS... */
        struct stat sb;
        char tag[32];
        int k;
        if (is_output(argv[i], outputs, &k)) snprintf(tag, sizeof tag, "out:%d", k);
        else if (stat(argv[i], &sb) == 0 && S_ISREG(sb.st_mode)) snprintf(tag, sizeof tag, "file:");
        else if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) snprintf(tag, sizeof tag, "dir:");
        else snprintf(tag, sizeof tag, "arg:");
        XXH3_128bits_update(s, tag, strlen(tag) + 1);
        if (!strcmp(tag, "file:")) ok = hash_file(s, argv[i]);
        else if (!strcmp(tag, "dir:")) ok = hash_dir(s, argv[i], ".", 2); /* a model directory: its files */
        else if (!strcmp(tag, "arg:")) XXH3_128bits_update(s, argv[i], strlen(argv[i]) + 1);
    }
    if (ok) {
        XXH128_hash_t h = XXH3_128bits_digest(s);
        snprintf(hex, 33, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
    }
    XXH3_freeState(s);
    return ok;
}

static bool copy_file(const char *from, const char *to)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", to, (long)getpid());
    FILE *in = fopen(from, "rb"), *out = in ? fopen(tmp, "wb") : NULL;
    bool ok = in && out;
    char buf[65536];
    for (size_t n; ok && (n = fread(buf, 1, sizeof buf, in)) > 0;) ok = fwrite(buf, 1, n, out) == n;
    ok = ok && !ferror(in);
    if (in) fclose(in);
    if (out) ok = fclose(out) == 0 && ok;
    ok = ok && rename(tmp, to) == 0;
    if (!ok) unlink(tmp);
    return ok;
}

static bool write_all(const char *path, const char *data, size_t n)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(data, 1, n, f) == n;
    if (f) ok = fclose(f) == 0 && ok;
    ok = ok && rename(tmp, path) == 0;
    if (!ok) unlink(tmp);
    return ok;
}

/* A stored answer: stdout into out, each output file copied to its place. */
static bool replay(const char *base, const char *const *outputs, char *out, size_t out_cap)
{
    char p[1024];
    snprintf(p, sizeof p, "%s.ok", base);
    if (access(p, F_OK) != 0) return false; /* written last: the entry is whole */
    for (int k = 0; outputs && outputs[k]; k++) {
        snprintf(p, sizeof p, "%s.out%d", base, k);
        if (!copy_file(p, outputs[k])) return false;
    }
    snprintf(p, sizeof p, "%s.stdout", base);
    FILE *f = fopen(p, "rb");
    if (!f) return false;
    size_t n = out && out_cap ? fread(out, 1, out_cap - 1, f) : 0;
    fclose(f);
    if (out && out_cap) out[n] = 0;
    return true;
}

int kt_run_ref(char *const argv[], const char *const *outputs, char *out, size_t out_cap, char *err, size_t err_cap)
{
    const char *dir = getenv("KGEN_REF_CACHE");
    char hex[33], base[900];
    bool cache = dir && *dir && ref_key(argv, outputs, hex);
    if (cache) {
        snprintf(base, sizeof base, "%s/%s", dir, hex);
        if (replay(base, outputs, out, out_cap)) {
            if (err && err_cap) err[0] = 0;
            return 0;
        }
    }
    int rc = kt_run(argv, out, out_cap, err, err_cap);
    if (rc != 0 || !cache || (mkdir(dir, 0755) != 0 && errno != EEXIST)) return rc;
    char p[1024];
    bool ok = true;
    for (int k = 0; ok && outputs && outputs[k]; k++) {
        snprintf(p, sizeof p, "%s.out%d", base, k);
        ok = copy_file(outputs[k], p);
    }
    snprintf(p, sizeof p, "%s.stdout", base);
    ok = ok && write_all(p, out ? out : "", out ? strlen(out) : 0);
    snprintf(p, sizeof p, "%s.ok", base);
    if (ok) write_all(p, "", 0);
    return rc;
}
