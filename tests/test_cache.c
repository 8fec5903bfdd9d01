/*
 * test_cache.c — the compiled-artifact cache (runtime/cache.c) and `kgen
 * cache`: hit and miss, every kind of corruption, racing processes,
 * directory permissions, the default location, listing, and the CLI (the
 * key text is test_cache_key.c); then trailer entries (kg_cache_put_path /
 * kg_cache_get_path): the same again, the copy path, and a real dlopen from
 * the cache. Each test uses a fresh directory under kt_tmpdir(). Record
 * offsets below are the table at the top of cache.c. The helpers are in
 * kt_cache.h; the size limit and its collection are test_cache_gc.c.
 */
#include "kt_cache.h"

#include <dlfcn.h>
#include <signal.h>

/* ───────────────────────── hit and miss ───────────────────────── */

KT_TEST(cache_hit_miss)
{
    char dir[512];
    fresh_dir("hitmiss", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    KT_CHECK(!strcmp(kg_cache_dir(c), dir));
    kg_key k = key_of("a"), k2 = key_of("b");
    static unsigned char p[5000];
    fill(p, sizeof p, 1);

    void *data = (void *)1;
    size_t size = 7;
    KT_CHECK(kg_cache_get(c, k, "o", &data, &size) == KG_ERR_NOTFOUND);
    KT_CHECK(data == NULL && size == 0);
    KT_CHECK(kg_cache_put(c, k, "o", p, sizeof p) == KG_OK);
    KT_CHECK(hit_equals(c, k, "o", p, sizeof p));
    KT_CHECK(get_status(c, k, "so") == KG_ERR_NOTFOUND);  /* other kind */
    KT_CHECK(get_status(c, k2, "o") == KG_ERR_NOTFOUND);  /* other key */
    KT_CHECK(hit_equals(c, k, "o", p, sizeof p));         /* still there */

    char path[600];
    entry_file(dir, k, "o", path);
    struct stat st;
    KT_CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == HDR + sizeof p);
    KT_CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
    *strrchr(path, '/') = 0;
    KT_CHECKF(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700, "subdirectory mode %o", st.st_mode & 0777);

    /* replace; an empty payload; a second kind beside the first */
    fill(p, sizeof p, 2);
    KT_CHECK(kg_cache_put(c, k, "o", p, 100) == KG_OK);
    KT_CHECK(hit_equals(c, k, "o", p, 100));
    KT_CHECK(kg_cache_put(c, k2, "ll", NULL, 0) == KG_OK);
    KT_CHECK(hit_equals(c, k2, "ll", "", 0));
    KT_CHECK(kg_cache_put(c, k, "cubin", p, 10) == KG_OK);
    KT_CHECK(hit_equals(c, k, "cubin", p, 10) && hit_equals(c, k, "o", p, 100));

    /* kinds outside [a-z0-9]{1,15} */
    const char *bad[] = {"", "O", "a/b", ".o", "o.", "0123456789abcdef", "a b", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        KT_CHECKF(get_status(c, k, bad[i]) == KG_ERR_ARG, "get kind '%s'", bad[i] ? bad[i] : "NULL");
        KT_CHECKF(kg_cache_put(c, k, bad[i], p, 1) == KG_ERR_ARG, "put kind '%s'", bad[i] ? bad[i] : "NULL");
    }
    KT_CHECK(kg_cache_put(c, k, "0123456789abcde", p, 1) == KG_OK); /* 15 is fine */
    KT_CHECK(kg_cache_put(c, k, "o", NULL, 1) == KG_ERR_ARG);
    KT_CHECK(kg_cache_get(c, k, "o", NULL, &size) == KG_ERR_ARG);
    kg_cache_close(c);
    kg_cache_close(NULL);
    KT_CHECK(kg_cache_open("", &c) == KG_ERR_ARG && c == NULL);
}

/* ─────────────────────────── corruption ─────────────────────────── */

KT_TEST(cache_corruption)
{
    char dir[512], path[600];
    fresh_dir("corrupt", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    kg_key k = key_of("corrupt");
    enum { N = 3000 };
    static unsigned char p[N];
    fill(p, N, 3);
    entry_file(dir, k, "so", path);

    /* a byte flipped: payload (first, middle, last), then every header field */
    const struct { long off; const char *what, *msg; } flips[] = {
        {HDR, "payload[0]", "hash"}, {HDR + N / 2, "payload[mid]", "hash"}, {HDR + N - 1, "payload[last]", "hash"},
        {0, "magic", "magic"}, {7, "magic NUL", "magic"}, {8, "version", "version"}, {12, "reserved", "reserved"},
        {16, "kind", "kind"}, {20, "kind padding", "kind"}, {32, "key hi", "key"}, {47, "key lo", "key"},
        {48, "size", "payload bytes"}, {55, "size high byte", "payload bytes"}, {56, "hash", "hash"},
    };
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        KT_REQUIRE(kg_cache_put(c, k, "so", p, N) == KG_OK);
        KT_REQUIRE(flip_byte(path, flips[i].off));
        KT_CHECKF(get_status(c, k, "so") == KG_ERR_CORRUPT, "%s flipped: not a corrupt miss", flips[i].what);
        KT_CHECKF(strstr(kg_last_error(), flips[i].msg) && strstr(kg_last_error(), "removed"),
                  "%s flipped: message '%s'", flips[i].what, kg_last_error());
        KT_CHECKF(!exists(path), "%s flipped: the bad entry is still there", flips[i].what);
    }

    /* truncated (0, 1, header-1, header, one payload byte short) and extended */
    const long lens[] = {0, 1, HDR - 1, HDR, HDR + 1, HDR + N - 1, HDR + N + 1};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        KT_REQUIRE(kg_cache_put(c, k, "so", p, N) == KG_OK);
        KT_REQUIRE(truncate(path, lens[i]) == 0);
        KT_CHECKF(get_status(c, k, "so") == KG_ERR_CORRUPT, "length %ld: not a corrupt miss", lens[i]);
        KT_CHECKF(!exists(path), "length %ld: the bad entry is still there", lens[i]);
    }

    /* a valid entry of another key renamed onto this one's name */
    kg_key other = key_of("other");
    char opath[600];
    entry_file(dir, other, "so", opath);
    KT_REQUIRE(kg_cache_put(c, other, "so", p, N) == KG_OK);
    char odir[600];
    snprintf(odir, sizeof odir, "%s", path);
    *strrchr(odir, '/') = 0;
    mkdir(odir, 0700);
    KT_REQUIRE(rename(opath, path) == 0);
    KT_CHECK(get_status(c, k, "so") == KG_ERR_CORRUPT && !exists(path));

    KT_CHECK(!strcmp(kg_status_name(KG_ERR_CORRUPT), "corrupt"));

    /* and after all that, a put is a hit again */
    KT_CHECK(kg_cache_put(c, k, "so", p, N) == KG_OK);
    KT_CHECK(hit_equals(c, k, "so", p, N));
    int ne, nt;
    count_files(dir, k, &ne, &nt);
    KT_CHECKF(ne == 1 && nt == 0, "%d entries and %d temp files", ne, nt);
    kg_cache_close(c);
}

/* ─────────────────────────── processes ─────────────────────────── */

enum { RACE_SIZE = 1 << 20 };

typedef struct race_ctx {
    const char *dir;
    kg_key key;
    const unsigned char *payload;
    bool get_first;
} race_ctx;

static int race_body(int i, void *vctx)
{
    race_ctx *r = vctx;
    kg_cache *c;
    (void)i;
    if (kg_cache_open(r->dir, &c) != KG_OK) return 1;
    int rc = 0;
    kg_status s = r->get_first ? get_status(c, r->key, "o") : KG_ERR_NOTFOUND;
    if (s == KG_ERR_NOTFOUND) s = kg_cache_put(c, r->key, "o", r->payload, RACE_SIZE);
    if (s != KG_OK) rc = 2;
    else if (!hit_equals(c, r->key, "o", r->payload, RACE_SIZE)) rc = 3;
    kg_cache_close(c);
    return rc;
}

KT_TEST(cache_race)
{
    char dir[512];
    fresh_dir("race", dir);
    unsigned char *p = malloc(RACE_SIZE);
    KT_REQUIRE(p);
    fill(p, RACE_SIZE, 4);
    for (int round = 0; round < 6; round++) {
        char name[32];
        snprintf(name, sizeof name, "race-%d", round);
        race_ctx r = {dir, key_of(name), p, round % 2 == 1};
        KT_CHECKF(race(race_body, &r), "round %d (%s): a process failed", round, r.get_first ? "get-or-put" : "put");
        int ne, nt;
        count_files(dir, r.key, &ne, &nt);
        KT_CHECKF(ne == 1 && nt == 0, "round %d: %d entries and %d temp files", round, ne, nt);
        kg_cache *c;
        KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
        KT_CHECK(hit_equals(c, r.key, "o", p, RACE_SIZE));
        kg_cache_close(c);
    }
    free(p);
}

/* Puts racing a clear: every put must succeed (it starts again when the
 * clear takes its subdirectory or temporary file away). */
static int put_many(int i, void *vctx)
{
    const char *dir = vctx;
    kg_cache *c;
    if (kg_cache_open(dir, &c) != KG_OK) return 1;
    static unsigned char p[64 << 10];
    int rc = 0;
    for (int j = 0; j < 200 && !rc; j++) {
        char name[32];
        snprintf(name, sizeof name, "%d/%d", i, j % 8); /* 8 keys: shared subdirectories get emptied */
        fill(p, sizeof p, (unsigned)j);
        if (kg_cache_put(c, key_of(name), "o", p, sizeof p) != KG_OK) {
            fprintf(stderr, "put: %s\n", kg_last_error());
            rc = 2;
        }
    }
    kg_cache_close(c);
    return rc;
}

KT_TEST(cache_race_clear)
{
    static char dir[512];
    fresh_dir("raceclear", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    fflush(stdout);
    pid_t clearer = fork();
    if (clearer == 0)
        for (;;) kg_cache_clear(c, NULL, NULL); /* until killed */
    KT_CHECK(race(put_many, dir));
    int st;
    KT_CHECK(clearer > 0 && kill(clearer, SIGKILL) == 0 && waitpid(clearer, &st, 0) == clearer);
    uint64_t n = 0, nt = 9;
    KT_CHECK(kg_cache_clear(c, &n, &nt) == KG_OK && nt == 0);
    kg_cache_close(c);
}

/* ─────────────────────────── directories ─────────────────────────── */

KT_TEST(cache_permissions)
{
    char dir[512], link[600], file[600];
    kg_cache *c;
    fresh_dir("perm", dir);
    KT_REQUIRE(mkdir(dir, 0700) == 0);
    for (int pass = 0; pass < 3; pass++) {
        mode_t m = pass == 0 ? 0777 : pass == 1 ? 0770 : 0702;
        KT_REQUIRE(chmod(dir, m) == 0);
        c = (kg_cache *)1;
        KT_CHECKF(kg_cache_open(dir, &c) == KG_ERR_IO && c == NULL, "mode %o accepted", m);
        KT_CHECKF(strstr(kg_last_error(), dir) && strstr(kg_last_error(), "chmod 700"), "mode %o: %s", m,
                  kg_last_error());
    }
    /* a symlink is judged by its target */
    snprintf(link, sizeof link, "%s-link", dir);
    KT_REQUIRE(symlink(dir, link) == 0);
    KT_CHECK(kg_cache_open(link, &c) == KG_ERR_IO && strstr(kg_last_error(), "symlink"));
    KT_REQUIRE(chmod(dir, 0755) == 0); /* readable by others is fine */
    KT_CHECK(kg_cache_open(link, &c) == KG_OK);
    kg_cache_close(c);
    KT_CHECK(kg_cache_open(dir, &c) == KG_OK);
    kg_cache_close(c);

    /* not a directory; a dangling symlink */
    snprintf(file, sizeof file, "%s/file", dir);
    FILE *f = fopen(file, "w");
    KT_REQUIRE(f);
    fclose(f);
    KT_CHECK(kg_cache_open(file, &c) == KG_ERR_IO && strstr(kg_last_error(), "not a directory"));
    snprintf(link, sizeof link, "%s/dangling", dir);
    KT_REQUIRE(symlink("/nonexistent/kgen-cache", link) == 0);
    KT_CHECK(kg_cache_open(link, &c) != KG_OK);

    /* missing parents are created, each 0700 */
    char deep[600];
    snprintf(deep, sizeof deep, "%s/a/b/c", dir);
    KT_REQUIRE(kg_cache_open(deep, &c) == KG_OK);
    kg_cache_close(c);
    struct stat st;
    for (int i = 0; i < 3; i++) {
        KT_CHECKF(stat(deep, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700, "%s: mode %o", deep,
                  st.st_mode & 0777);
        *strrchr(deep, '/') = 0;
    }
}

KT_TEST(cache_owner)
{
    char dir[512];
    kg_cache *c;
    fresh_dir("owner", dir);
    KT_REQUIRE(mkdir(dir, 0700) == 0);
    if (chown(dir, 12345, (gid_t)-1) != 0)
        KT_SKIP("cannot chown a directory to another uid (%s; needs root): ownership refusal not tested",
                strerror(errno));
    KT_CHECK(kg_cache_open(dir, &c) == KG_ERR_IO);
    KT_CHECKF(strstr(kg_last_error(), dir) && strstr(kg_last_error(), "12345") && strstr(kg_last_error(), "chown"),
              "message: %s", kg_last_error());
}

static bool opens_at(const char *want)
{
    kg_cache *c;
    if (kg_cache_open(NULL, &c) != KG_OK) return false;
    struct stat st;
    bool ok = !strcmp(kg_cache_dir(c), want) && stat(want, &st) == 0 && S_ISDIR(st.st_mode) &&
              (st.st_mode & 0777) == 0700;
    kg_cache_close(c);
    return ok;
}

KT_TEST(cache_default_dir)
{
    saved_env env[] = {{"KGEN_CACHE_DIR", NULL}, {"XDG_CACHE_HOME", NULL}, {"HOME", NULL}};
    env_save(env, 3);
    char base[512], xdg[600], home[600], want[700];
    fresh_dir("where", base);
    snprintf(xdg, sizeof xdg, "%s/xdg", base);
    snprintf(home, sizeof home, "%s/home", base);

    unsetenv("KGEN_CACHE_DIR");
    setenv("XDG_CACHE_HOME", xdg, 1);
    setenv("HOME", home, 1);
    snprintf(want, sizeof want, "%s/kgen", xdg);
    KT_CHECKF(opens_at(want), "XDG_CACHE_HOME: %s", kg_last_error());

    setenv("XDG_CACHE_HOME", "relative/dir", 1); /* not absolute: ignored (XDG spec) */
    snprintf(want, sizeof want, "%s/.cache/kgen", home);
    KT_CHECKF(opens_at(want), "HOME: %s", kg_last_error());
    unsetenv("XDG_CACHE_HOME");
    KT_CHECK(opens_at(want));

    snprintf(want, sizeof want, "%s/env", base);
    setenv("KGEN_CACHE_DIR", want, 1);
    setenv("XDG_CACHE_HOME", xdg, 1);
    KT_CHECK(opens_at(want));

    unsetenv("KGEN_CACHE_DIR");
    unsetenv("XDG_CACHE_HOME");
    unsetenv("HOME");
    kg_cache *c;
    KT_CHECK(kg_cache_open(NULL, &c) == KG_ERR_ARG && strstr(kg_last_error(), "KGEN_CACHE_DIR"));
    env_restore(env, 3);
}

/* ─────────────────────────── listing ─────────────────────────── */

typedef struct seen {
    int n, bad;
    char last[64];
    bool sorted;
    uint64_t bytes;
} seen;

static int visit(const kg_cache_entry *e, void *ctx)
{
    seen *s = ctx;
    char id[64];
    snprintf(id, sizeof id, "%s.%s", e->key_hex, e->kind);
    if (s->n && strcmp(s->last, id) >= 0) s->sorted = false;
    snprintf(s->last, sizeof s->last, "%s", id);
    s->n++;
    s->bad += e->problem != NULL;
    s->bytes += e->size;
    return 0;
}

static int stop_at_two(const kg_cache_entry *e, void *ctx)
{
    (void)e;
    return ++*(int *)ctx == 2;
}

KT_TEST(cache_foreach_clear)
{
    char dir[512], path[600], foreign[600];
    fresh_dir("list", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    unsigned char p[1000];
    fill(p, sizeof p, 5);
    kg_key keys[20];
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "k%d", i);
        keys[i] = key_of(name);
        KT_REQUIRE(kg_cache_put(c, keys[i], i % 3 ? "o" : "so", p, (size_t)i * 10) == KG_OK);
    }
    KT_CHECK(kg_cache_put(c, keys[0], "o", p, 1) == KG_OK); /* two kinds of one key */
    snprintf(foreign, sizeof foreign, "%s/README", dir);
    FILE *f = fopen(foreign, "w");
    KT_REQUIRE(f);
    fclose(f);
    make_tmp(dir, keys[1], ".tmp-dead11", false);
    int live = make_tmp(dir, keys[2], ".tmp-live22", true);
    KT_REQUIRE(live >= 0);
    make_tmp(dir, keys[3], "notes.txt", false); /* foreign, in a subdirectory */

    seen s = {.sorted = true};
    KT_CHECK(kg_cache_foreach(c, 0, visit, &s) == KG_OK);
    KT_CHECKF(s.n == 21 && s.sorted && s.bad == 0 && s.bytes == 1900 + 1, "n=%d sorted=%d bytes=%llu", s.n, s.sorted,
              (unsigned long long)s.bytes);
    int stops = 0;
    KT_CHECK(kg_cache_foreach(c, 0, stop_at_two, &stops) == KG_OK && stops == 2);

    entry_file(dir, keys[4], "o", path);
    KT_REQUIRE(flip_byte(path, HDR + 3));
    s = (seen){.sorted = true};
    KT_CHECK(kg_cache_foreach(c, KG_CACHE_VERIFY, visit, &s) == KG_OK);
    KT_CHECKF(s.n == 21 && s.bad == 1 && !exists(path), "n=%d bad=%d", s.n, s.bad);
    s = (seen){.sorted = true};
    KT_CHECK(kg_cache_foreach(c, KG_CACHE_VERIFY, visit, &s) == KG_OK && s.n == 20 && s.bad == 0);

    uint64_t n = 0, nt = 0;
    KT_CHECK(kg_cache_sweep(c, &n) == KG_OK && n == 1); /* the dead one only */
    KT_CHECK(kg_cache_sweep(c, &n) == KG_OK && n == 0);
    KT_CHECK(kg_cache_clear(c, &n, &nt) == KG_OK && n == 20 && nt == 0); /* the live one stays */
    int ne, ntmp;
    count_files(dir, keys[2], &ne, &ntmp);
    KT_CHECKF(ne == 0 && ntmp == 1, "after clear: %d entries, %d temp files", ne, ntmp);
    close(live); /* its writer died */
    KT_CHECK(kg_cache_clear(c, &n, &nt) == KG_OK && n == 0 && nt == 1);
    s = (seen){.sorted = true};
    KT_CHECK(kg_cache_foreach(c, 0, visit, &s) == KG_OK && s.n == 0);
    KT_CHECK(exists(foreign) && exists(dir));
    entry_file(dir, keys[2], "o", path);
    *strrchr(path, '/') = 0;
    KT_CHECKF(!exists(path), "empty subdirectory %s not removed", path);
    entry_file(dir, keys[3], "o", path);
    *strrchr(path, '/') = 0;
    KT_CHECK(exists(path)); /* it holds a foreign file */
    KT_CHECK(kg_cache_put(c, keys[0], "o", p, 10) == KG_OK && hit_equals(c, keys[0], "o", p, 10));
    kg_cache_close(c);
}

/* ─────────────────────────── the CLI ─────────────────────────── */

KT_TEST(cache_cli)
{
    if (access(kt_kgen_bin(), X_OK) != 0) KT_SKIP("%s not found (set KGEN_BIN)", kt_kgen_bin());
    static char out[16384], err[4096];
    char dir[512], path[600], line[700];
    fresh_dir("cli", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    unsigned char p[4096];
    fill(p, sizeof p, 6);
    kg_key k1 = key_of("cli1"), k2 = key_of("cli2"), k3 = key_of("cli3");
    KT_REQUIRE(kg_cache_put(c, k1, "o", p, 100) == KG_OK && kg_cache_put(c, k2, "so", p, 4096) == KG_OK &&
               kg_cache_put(c, k3, "o", p, 1000) == KG_OK);

    int rc = kgen(out, err, "stats", "--dir", dir, NULL);
    KT_CHECKF(rc == 0, "stats: %d %s", rc, err);
    snprintf(line, sizeof line, "directory: %s\n", dir);
    KT_CHECKF(strstr(out, line) && strstr(out, "entries:   3\n") && strstr(out, "5196 payload, 5388 on disk"),
              "stats:\n%s", out);
    KT_CHECKF(strstr(out, "  o             2 entries           1100 bytes\n") &&
              strstr(out, "  so            1 entries           4096 bytes\n"), "stats:\n%s", out);

    rc = kgen(out, err, "ls", "--dir", dir, NULL);
    KT_CHECKF(rc == 0 && count_lines(out) == 3, "ls: %d\n%s%s", rc, out, err);
    char h[33];
    snprintf(line, sizeof line, "%s  o            100  ", kg_key_hex(k1, h));
    KT_CHECKF(strstr(out, line), "ls: no line '%s' in\n%s", line, out);
    char *first = strdup(out);
    for (char *save, *l = strtok_r(first, "\n", &save), *prev = NULL; l; prev = l, l = strtok_r(NULL, "\n", &save))
        KT_CHECKF(!prev || strcmp(prev, l) < 0, "ls not sorted:\n%s", out);
    free(first);

    rc = kgen(out, err, "verify", "--dir", dir, NULL);
    KT_CHECKF(rc == 0 && strstr(out, "verified 3 entries: 3 ok, 0 bad"), "verify: %d\n%s%s", rc, out, err);

    /* corrupt one entry; leave a stale and a fresh temporary file */
    entry_file(dir, k2, "so", path);
    KT_REQUIRE(flip_byte(path, HDR + 100));
    make_tmp(dir, k1, ".tmp-deadxx", false);
    int live = make_tmp(dir, k3, ".tmp-livexx", true);
    KT_REQUIRE(live >= 0);
    rc = kgen(out, err, "verify", "--dir", dir, NULL);
    snprintf(line, sizeof line, "removed %s.so: payload hash mismatch\n", kg_key_hex(k2, h));
    KT_CHECKF(rc == 1 && strstr(out, line) && strstr(out, "verified 3 entries: 2 ok, 1 bad (removed)") &&
              strstr(out, "removed 1 stale temporary files"), "verify: %d\n%s%s", rc, out, err);
    KT_CHECK(!exists(path));
    rc = kgen(out, err, "verify", "--dir", dir, NULL); /* repaired: clean again */
    KT_CHECKF(rc == 0 && strstr(out, "verified 2 entries: 2 ok, 0 bad"), "verify again: %d\n%s%s", rc, out, err);
    rc = kgen(out, err, "ls", "--dir", dir, NULL);
    KT_CHECKF(rc == 0 && count_lines(out) == 2, "ls after verify: %d\n%s", rc, out);

    /* the environment variable names the directory */
    char *saved = getenv("KGEN_CACHE_DIR") ? strdup(getenv("KGEN_CACHE_DIR")) : NULL;
    setenv("KGEN_CACHE_DIR", dir, 1);
    rc = kgen(out, err, "stats", NULL, NULL, NULL);
    snprintf(line, sizeof line, "directory: %s\n", dir);
    KT_CHECKF(rc == 0 && strstr(out, line) && strstr(out, "entries:   2\n"), "stats via env: %d\n%s%s", rc, out, err);
    rc = kgen(out, err, "clear", NULL, NULL, NULL);
    snprintf(line, sizeof line, "removed 2 entries and 0 temporary files from %s\n", dir);
    KT_CHECKF(rc == 0 && !strcmp(out, line), "clear: %d\n%s%s", rc, out, err);
    close(live);
    rc = kgen(out, err, "clear", NULL, NULL, NULL);
    snprintf(line, sizeof line, "removed 0 entries and 1 temporary files from %s\n", dir);
    KT_CHECKF(rc == 0 && !strcmp(out, line), "clear: %d\n%s%s", rc, out, err);
    if (saved) setenv("KGEN_CACHE_DIR", saved, 1);
    else unsetenv("KGEN_CACHE_DIR");
    free(saved);
    rc = kgen(out, err, "ls", "--dir", dir, NULL);
    KT_CHECKF(rc == 0 && !out[0], "ls after clear: %d\n%s", rc, out);
    KT_CHECK(get_status(c, k1, "o") == KG_ERR_NOTFOUND);
    kg_cache_close(c);

    /* usage, help, refusal */
    KT_CHECK(kgen(out, err, NULL, NULL, NULL, NULL) == 2 && strstr(err, "usage"));
    KT_CHECK(kgen(out, err, "frob", NULL, NULL, NULL) == 2 && strstr(err, "frob"));
    KT_CHECK(kgen(out, err, "ls", "--bogus", NULL, NULL) == 2 && strstr(err, "--bogus"));
    KT_CHECK(kgen(out, err, "ls", "extra", NULL, NULL) == 2);
    KT_CHECK(kgen(out, err, "ls", "--dir", NULL, NULL) == 2);
    KT_CHECK(kgen(out, err, "--help", NULL, NULL, NULL) == 0 && strstr(out, "verify"));
    KT_CHECK(kgen(out, err, "verify", "--help", NULL, NULL) == 0 && strstr(out, "1 when bad entries were found"));
    const char *cmds[] = {"ls", "stats", "verify", "gc", "clear"};
    for (int i = 0; i < 5; i++) {
        rc = kgen(out, err, cmds[i], "--help", NULL, NULL);
        KT_CHECKF(rc == 0 && strstr(out, "usage: kgen cache") && strstr(out, cmds[i]), "%s --help: %d", cmds[i], rc);
    }
    KT_REQUIRE(chmod(dir, 0777) == 0);
    rc = kgen(out, err, "ls", "--dir", dir, NULL);
    KT_CHECKF(rc == 1 && !strncmp(err, "kgen: ", 6) && strstr(err, dir) && strstr(err, "chmod 700") && !out[0],
              "refused dir: %d\n%s", rc, err);
}

/* A corrupt kernel object in the cache: `kgen kernel` says so on stderr,
 * rebuilds it (the same bytes) and stores it again. */
static int one_entry(const kg_cache_entry *e, void *ctx)
{
    snprintf(ctx, 600, "%s", e->path);
    return 0;
}

KT_TEST(cache_corrupt_rebuilt)
{
    if (access(kt_kgen_bin(), X_OK) != 0) KT_SKIP("%s not found (set KGEN_BIN)", kt_kgen_bin());
    saved_env env[] = {{"KGEN_CACHE_DIR", NULL}};
    env_save(env, 1);
    static char out[16384], err[4096];
    char dir[512], o1[600], o2[600], entry[600] = "";
    fresh_dir("kernel-corrupt", dir);
    setenv("KGEN_CACHE_DIR", dir, 1);
    snprintf(o1, sizeof o1, "%s/kc1.o", kt_tmpdir());
    snprintf(o2, sizeof o2, "%s/kc2.o", kt_tmpdir());
    char *a1[] = {(char *)kt_kgen_bin(), "kernel", "probe", "n=100", "scale=2.0", "-o", o1, NULL};
    char *a2[] = {(char *)kt_kgen_bin(), "kernel", "probe", "n=100", "scale=2.0", "-o", o2, NULL};
    int rc = kt_run(a1, out, sizeof out, err, sizeof err);
    KT_REQUIRE(rc == 0 && !strstr(err, "corrupt"));
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    KT_REQUIRE(kg_cache_foreach(c, 0, one_entry, entry) == KG_OK && entry[0]);
    KT_REQUIRE(flip_byte(entry, HDR + 10));
    rc = kt_run(a2, out, sizeof out, err, sizeof err);
    KT_CHECKF(rc == 0 && count_lines(err) >= 1 && strstr(err, "kgen: ") && strstr(err, entry) &&
              strstr(err, "corrupt cache entry (payload hash mismatch); removed it; rebuilding\n"),
              "rebuild: %d\n%s", rc, err);
    size_t n1 = 0, n2 = 0;
    unsigned char *b1 = slurp(o1, &n1), *b2 = slurp(o2, &n2);
    KT_CHECK(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);
    rc = kt_run(a2, out, sizeof out, err, sizeof err); /* stored again: a hit */
    KT_CHECKF(rc == 0 && !strstr(err, "corrupt") && strstr(err, "from the cache"), "after: %d\n%s", rc, err);
    kg_cache_close(c);
    env_restore(env, 1);
}

/* ──────────────────── trailer entries: in place ──────────────────── */

KT_TEST(cache_path_roundtrip)
{
    char dir[512], src[600], want[600], path[PATH_MAX];
    fresh_dir("inplace", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    kg_key k = key_of("inplace"), k2 = key_of("inplace2");
    enum { N = 100000 };
    static unsigned char p[N];
    fill(p, N, 11);

    KT_CHECK(kg_cache_get_path(c, k, "so", path, sizeof path) == KG_ERR_NOTFOUND && path[0] == 0);
    KT_REQUIRE(make_src(src, "model.so", p, N));
    struct stat sst, st;
    KT_REQUIRE(stat(src, &sst) == 0);
    KT_CHECKF(kg_cache_put_path(c, k, "so", src) == KG_OK, "%s", kg_last_error());
    KT_CHECK(!exists(src)); /* moved */
    KT_CHECKF(kg_cache_get_path(c, k, "so", path, sizeof path) == KG_OK, "%s", kg_last_error());
    entry_file(dir, k, "so", want);
    KT_CHECKF(!strcmp(path, want), "path %s, not %s", path, want);
    KT_CHECK(holds_in_place(path, p, N));
    /* same filesystem: renamed, not copied; mode 0600 */
    KT_CHECK(stat(path, &st) == 0 && st.st_ino == sst.st_ino && st.st_dev == sst.st_dev);
    KT_CHECKF((st.st_mode & 07777) == 0600, "mode %o", st.st_mode & 07777);
    /* kg_cache_get reads a trailer entry too; and both again */
    KT_CHECK(hit_equals(c, k, "so", p, N));
    KT_CHECK(kg_cache_get_path(c, k, "so", path, sizeof path) == KG_OK && holds_in_place(path, p, N));

    /* the buffer: exactly big enough, one byte short */
    size_t need = strlen(want) + 1;
    char small[PATH_MAX];
    memset(small, 'x', sizeof small);
    KT_CHECK(kg_cache_get_path(c, k, "so", small, need) == KG_OK && !strcmp(small, want));
    memset(small, 'x', sizeof small);
    KT_CHECK(kg_cache_get_path(c, k, "so", small, need - 1) == KG_ERR_ARG && small[0] == 0);
    KT_CHECK(kg_cache_get_path(c, k, "so", NULL, 10) == KG_ERR_ARG);
    KT_CHECK(kg_cache_get_path(c, k, "so", small, 0) == KG_ERR_ARG);
    KT_CHECK(kg_cache_get_path(NULL, k, "so", small, sizeof small) == KG_ERR_ARG);
    KT_CHECK(kg_cache_get_path(c, k, "S", small, sizeof small) == KG_ERR_ARG);
    KT_CHECK(kg_cache_put_path(c, k, "a/b", src) == KG_ERR_ARG);
    KT_CHECK(kg_cache_put_path(c, k, "so", NULL) == KG_ERR_ARG);
    KT_CHECK(kg_cache_put_path(NULL, k, "so", src) == KG_ERR_ARG);

    /* a header entry is a miss for get_path, left in place; put_path replaces it */
    KT_REQUIRE(kg_cache_put(c, k2, "so", p, 1000) == KG_OK);
    KT_CHECK(get_path_status(c, k2, "so") == KG_ERR_NOTFOUND && strstr(kg_last_error(), "header entry"));
    KT_CHECK(hit_equals(c, k2, "so", p, 1000));
    KT_REQUIRE(make_src(src, "k2.so", p + 1, 2000));
    KT_CHECK(kg_cache_put_path(c, k2, "so", src) == KG_OK);
    KT_CHECK(kg_cache_get_path(c, k2, "so", path, sizeof path) == KG_OK && holds_in_place(path, p + 1, 2000));
    KT_CHECK(hit_equals(c, k2, "so", p + 1, 2000));
    /* and a put replaces a trailer entry */
    KT_CHECK(kg_cache_put(c, k2, "so", p, 10) == KG_OK && hit_equals(c, k2, "so", p, 10));
    KT_CHECK(get_path_status(c, k2, "so") == KG_ERR_NOTFOUND);

    /* an empty payload (the same 64 bytes in both layouts) */
    KT_REQUIRE(make_src(src, "empty", "", 0));
    KT_CHECK(kg_cache_put_path(c, k2, "o", src) == KG_OK);
    KT_CHECK(kg_cache_get_path(c, k2, "o", path, sizeof path) == KG_OK && holds_in_place(path, "", 0));
    KT_CHECK(hit_equals(c, k2, "o", "", 0));
    KT_CHECK(kg_cache_put(c, k2, "o", NULL, 0) == KG_OK && get_path_status(c, k2, "o") == KG_OK);

    /* a payload that starts with the magic would read as a header entry: refused, src untouched */
    static unsigned char m[200];
    memcpy(m, "KGCACHE", 8);
    KT_REQUIRE(make_src(src, "magic", m, sizeof m));
    KT_CHECK(kg_cache_put_path(c, k2, "bin", src) == KG_ERR_ARG && strstr(kg_last_error(), "magic"));
    size_t got = 0;
    unsigned char *b = slurp(src, &got);
    KT_CHECK(b && got == sizeof m && !memcmp(b, m, sizeof m));
    free(b);
    memcpy(m, "KGCACHE", 7); /* 7 of the 8 bytes: fine */
    m[7] = 1;
    KT_REQUIRE(make_src(src, "magic7", m, sizeof m));
    KT_CHECK(kg_cache_put_path(c, k2, "bin", src) == KG_OK && get_path_status(c, k2, "bin") == KG_OK);
    KT_CHECK(hit_equals(c, k2, "bin", m, sizeof m));

    /* bad sources: absent, a symlink, a directory, the entry itself */
    snprintf(src, sizeof src, "%s/absent.so", kt_tmpdir());
    KT_CHECK(kg_cache_put_path(c, k2, "so", src) == KG_ERR_IO && strstr(kg_last_error(), src));
    char slink[600];
    KT_REQUIRE(make_src(src, "target.so", p, 100));
    snprintf(slink, sizeof slink, "%s/link.so", kt_tmpdir());
    KT_REQUIRE(symlink(src, slink) == 0);
    KT_CHECK(kg_cache_put_path(c, k2, "so", slink) == KG_ERR_ARG && strstr(kg_last_error(), "symlink"));
    KT_CHECK(exists(src) && exists(slink));
    KT_CHECK(kg_cache_put_path(c, k2, "so", kt_tmpdir()) == KG_ERR_ARG);
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/fifo", kt_tmpdir());
    KT_REQUIRE(mkfifo(fifo, 0600) == 0);
    KT_CHECK(kg_cache_put_path(c, k2, "so", fifo) == KG_ERR_ARG && strstr(kg_last_error(), "not a regular file"));
    KT_REQUIRE(kg_cache_get_path(c, k, "so", path, sizeof path) == KG_OK);
    KT_CHECK(kg_cache_put_path(c, k, "so", path) == KG_ERR_ARG && strstr(kg_last_error(), "entry itself"));
    KT_CHECK(kg_cache_get_path(c, k, "so", path, sizeof path) == KG_OK && holds_in_place(path, p, N));

    /* a failed put_path leaves src as it was: the entry's name is taken by a
     * directory, so the rename fails after the trailer was appended */
    kg_key k3 = key_of("blocked");
    entry_file(dir, k3, "so", want);
    char sub[600];
    snprintf(sub, sizeof sub, "%s", want);
    *strrchr(sub, '/') = 0;
    mkdir(sub, 0700);
    KT_REQUIRE(mkdir(want, 0700) == 0);
    KT_REQUIRE(make_src(src, "blocked.so", p, 5000));
    KT_CHECK(kg_cache_put_path(c, k3, "so", src) == KG_ERR_IO && strstr(kg_last_error(), src));
    b = slurp(src, &got);
    KT_CHECKF(b && got == 5000 && !memcmp(b, p, 5000), "src changed: %zu bytes", got);
    free(b);
    KT_CHECK(stat(src, &st) == 0 && (st.st_mode & 07777) == 0755);
    char ln[700];
    snprintf(ln, sizeof ln, "%s.ln", src); /* two links: the copy path fails the same way */
    KT_REQUIRE(link(src, ln) == 0);
    KT_CHECK(kg_cache_put_path(c, k3, "so", src) == KG_ERR_IO);
    KT_CHECK(exists(src) && stat(src, &st) == 0 && st.st_size == 5000 && st.st_nlink == 2);
    int ne, nt;
    count_files(dir, k3, &ne, &nt);
    KT_CHECKF(nt == 0, "%d temporary files left", nt);
    rmdir(want);
    KT_CHECK(kg_cache_put_path(c, k3, "so", src) == KG_OK && get_path_status(c, k3, "so") == KG_OK);
    KT_CHECK(!exists(src) && exists(ln));
    kg_cache_close(c);
}

KT_TEST(cache_path_corruption)
{
    char dir[512], src[600], path[600];
    fresh_dir("inplace-corrupt", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    kg_key k = key_of("inplace-corrupt");
    enum { N = 3000 };
    static unsigned char p[N];
    fill(p, N, 12);
    entry_file(dir, k, "so", path);

    /* a byte flipped: payload (first, middle, last), then every trailer field */
    const struct { long off; const char *what, *msg; } flips[] = {
        {0, "payload[0]", "hash"}, {N / 2, "payload[mid]", "hash"}, {N - 1, "payload[last]", "hash"},
        {N + 0, "magic", "magic"}, {N + 7, "magic NUL", "magic"}, {N + 8, "version", "version"},
        {N + 12, "reserved", "reserved"}, {N + 16, "kind", "kind"}, {N + 20, "kind padding", "kind"},
        {N + 32, "key hi", "key"}, {N + 47, "key lo", "key"}, {N + 48, "size", "payload bytes"},
        {N + 55, "size high byte", "payload bytes"}, {N + 56, "hash", "hash"},
    };
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        for (int via_get = 0; via_get < 2; via_get++) {
            KT_REQUIRE(make_src(src, "c.so", p, N));
            KT_REQUIRE(kg_cache_put_path(c, k, "so", src) == KG_OK);
            KT_REQUIRE(flip_byte(path, flips[i].off));
            kg_status s = via_get ? get_status(c, k, "so") : get_path_status(c, k, "so");
            KT_CHECKF(s == KG_ERR_CORRUPT, "%s flipped (%s): not a corrupt miss", flips[i].what, via_get ? "get" : "get_path");
            KT_CHECKF(strstr(kg_last_error(), flips[i].msg) && strstr(kg_last_error(), "removed"),
                      "%s flipped: message '%s'", flips[i].what, kg_last_error());
            KT_CHECKF(!exists(path), "%s flipped: the bad entry is still there", flips[i].what);
        }
    }

    /* truncated (to nothing, into the payload, into the trailer) and extended */
    const long lens[] = {0, 1, HDR - 1, HDR, N, N + 1, N + HDR - 1, N + HDR + 1};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        KT_REQUIRE(make_src(src, "c.so", p, N));
        KT_REQUIRE(kg_cache_put_path(c, k, "so", src) == KG_OK);
        KT_REQUIRE(truncate(path, lens[i]) == 0);
        KT_CHECKF(get_path_status(c, k, "so") == KG_ERR_CORRUPT, "length %ld: not a corrupt miss", lens[i]);
        KT_CHECKF(!exists(path), "length %ld: the bad entry is still there", lens[i]);
    }

    /* a valid trailer entry of another key, or of another kind, renamed onto this name */
    kg_key other = key_of("other");
    char opath[600];
    entry_file(dir, other, "so", opath);
    KT_REQUIRE(make_src(src, "o.so", p, N));
    KT_REQUIRE(kg_cache_put_path(c, other, "so", src) == KG_OK);
    char odir[600];
    snprintf(odir, sizeof odir, "%s", path);
    *strrchr(odir, '/') = 0;
    mkdir(odir, 0700);
    KT_REQUIRE(rename(opath, path) == 0);
    KT_CHECK(get_path_status(c, k, "so") == KG_ERR_CORRUPT && strstr(kg_last_error(), "key") && !exists(path));
    KT_REQUIRE(make_src(src, "o.so", p, N));
    KT_REQUIRE(kg_cache_put_path(c, k, "o", src) == KG_OK);
    entry_file(dir, k, "o", opath);
    KT_REQUIRE(rename(opath, path) == 0);
    KT_CHECK(get_path_status(c, k, "so") == KG_ERR_CORRUPT && strstr(kg_last_error(), "kind") && !exists(path));

    /* a trailer entry whose first bytes became the magic now reads as a
     * (bad) header entry: a miss, removed, for get_path too */
    KT_REQUIRE(make_src(src, "c.so", p, N));
    KT_REQUIRE(kg_cache_put_path(c, k, "so", src) == KG_OK);
    FILE *f = fopen(path, "r+b");
    KT_REQUIRE(f);
    KT_REQUIRE(fwrite("KGCACHE", 1, 8, f) == 8 && fclose(f) == 0);
    KT_CHECK(get_path_status(c, k, "so") == KG_ERR_CORRUPT && !exists(path));

    /* and after all that, a put_path is a hit again */
    KT_REQUIRE(make_src(src, "c.so", p, N));
    KT_CHECK(kg_cache_put_path(c, k, "so", src) == KG_OK && get_path_status(c, k, "so") == KG_OK);
    KT_CHECK(hit_equals(c, k, "so", p, N) && holds_in_place(path, p, N));
    int ne, nt;
    count_files(dir, k, &ne, &nt);
    KT_CHECKF(ne == 1 && nt == 0, "%d entries and %d temp files", ne, nt);
    kg_cache_close(c);
}

/* The copy path on one filesystem: src has a second link, so it is not
 * moved (another name could change the entry) but copied, and unlinked. */
KT_TEST(cache_path_copy)
{
    char dir[512], src[600], ln[700], path[PATH_MAX];
    fresh_dir("inplace-copy", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    kg_key k = key_of("copy");
    enum { N = 700000 }; /* several copy chunks */
    unsigned char *p = malloc(N);
    KT_REQUIRE(p);
    fill(p, N, 13);
    KT_REQUIRE(make_src(src, "copy.so", p, N));
    snprintf(ln, sizeof ln, "%s/copy-link.so", kt_tmpdir());
    KT_REQUIRE(link(src, ln) == 0);
    struct stat sst, st;
    KT_REQUIRE(stat(src, &sst) == 0 && sst.st_nlink == 2);
    KT_CHECKF(kg_cache_put_path(c, k, "so", src) == KG_OK, "%s", kg_last_error());
    KT_CHECK(!exists(src));
    KT_REQUIRE(kg_cache_get_path(c, k, "so", path, sizeof path) == KG_OK);
    KT_CHECK(holds_in_place(path, p, N) && hit_equals(c, k, "so", p, N));
    KT_CHECK(stat(path, &st) == 0 && st.st_ino != sst.st_ino && (st.st_mode & 07777) == 0600);
    /* the other name still holds the source, untouched (no trailer) */
    size_t got = 0;
    unsigned char *b = slurp(ln, &got);
    KT_CHECK(b && got == N && !memcmp(b, p, N));
    free(b);
    KT_CHECK(stat(ln, &st) == 0 && st.st_nlink == 1 && (st.st_mode & 07777) == 0755);
    int ne, nt;
    count_files(dir, k, &ne, &nt);
    KT_CHECKF(ne == 1 && nt == 0, "%d entries and %d temp files", ne, nt);
    free(p);
    kg_cache_close(c);
}

/* The copy path across filesystems (rename fails with EXDEV): src on
 * /dev/shm (tmpfs) when that is another filesystem than the cache's. */
KT_TEST(cache_path_cross_fs)
{
    char dir[512], src[600], path[PATH_MAX];
    fresh_dir("inplace-xfs", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    struct stat dst, sst;
    KT_REQUIRE(stat(dir, &dst) == 0);
    const char *other = "/dev/shm";
    if (stat(other, &sst) != 0 || !S_ISDIR(sst.st_mode) || access(other, W_OK) != 0) {
        kg_cache_close(c);
        KT_SKIP("%s is not a writable directory: no second filesystem to move a file across", other);
    }
    if (sst.st_dev == dst.st_dev) {
        kg_cache_close(c);
        KT_SKIP("%s is on the same filesystem as %s: EXDEV not tested (cache_path_copy covers the copy)", other,
                kt_tmpdir());
    }
    snprintf(src, sizeof src, "%s/kgen-test-%ld.so", other, (long)getpid());
    enum { N = 300000 };
    unsigned char *p = malloc(N);
    KT_REQUIRE(p);
    fill(p, N, 14);
    KT_REQUIRE(write_file(src, p, N, 0755));
    kg_key k = key_of("xfs");
    KT_CHECKF(kg_cache_put_path(c, k, "so", src) == KG_OK, "%s", kg_last_error());
    KT_CHECK(!exists(src));
    KT_REQUIRE(kg_cache_get_path(c, k, "so", path, sizeof path) == KG_OK);
    KT_CHECK(holds_in_place(path, p, N) && hit_equals(c, k, "so", p, N));
    KT_CHECK(stat(path, &sst) == 0 && sst.st_dev == dst.st_dev && (sst.st_mode & 07777) == 0600);
    int ne, nt;
    count_files(dir, k, &ne, &nt);
    KT_CHECKF(ne == 1 && nt == 0, "%d entries and %d temp files", ne, nt);
    unlink(src);
    free(p);
    kg_cache_close(c);
}

/* Processes racing put_path on one key (each with its own source; odd ones
 * hard-linked, so they take the copy path), optionally get_path first. */
static int race_path_body(int i, void *vctx)
{
    race_ctx *r = vctx;
    kg_cache *c;
    if (kg_cache_open(r->dir, &c) != KG_OK) return 1;
    int rc = 0;
    char src[600], ln[700], path[PATH_MAX];
    snprintf(src, sizeof src, "%s/race-src-%d", kt_tmpdir(), i);
    snprintf(ln, sizeof ln, "%s.ln", src);
    kg_status s = r->get_first ? get_path_status(c, r->key, "so") : KG_ERR_NOTFOUND;
    if (s == KG_ERR_NOTFOUND) {
        if (!write_file(src, r->payload, RACE_SIZE, 0755) || (i % 2 && link(src, ln) != 0)) rc = 4;
        else s = kg_cache_put_path(c, r->key, "so", src);
        unlink(ln);
    }
    if (!rc && s != KG_OK) rc = 2;
    if (!rc && (kg_cache_get_path(c, r->key, "so", path, sizeof path) != KG_OK ||
                !holds_in_place(path, r->payload, RACE_SIZE))) rc = 3;
    if (!rc && exists(src)) rc = 5;
    if (rc) fprintf(stderr, "process %d: %d: %s\n", i, rc, kg_last_error());
    kg_cache_close(c);
    return rc;
}

KT_TEST(cache_path_race)
{
    char dir[512];
    fresh_dir("inplace-race", dir);
    unsigned char *p = malloc(RACE_SIZE);
    KT_REQUIRE(p);
    fill(p, RACE_SIZE, 15);
    for (int round = 0; round < 4; round++) {
        char name[32];
        snprintf(name, sizeof name, "path-race-%d", round);
        race_ctx r = {dir, key_of(name), p, round % 2 == 1};
        KT_CHECKF(race(race_path_body, &r), "round %d (%s): a process failed", round,
                  r.get_first ? "get_path-or-put_path" : "put_path");
        int ne, nt;
        count_files(dir, r.key, &ne, &nt);
        KT_CHECKF(ne == 1 && nt == 0, "round %d: %d entries and %d temp files", round, ne, nt);
        kg_cache *c;
        char path[PATH_MAX];
        KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
        KT_CHECK(kg_cache_get_path(c, r.key, "so", path, sizeof path) == KG_OK && holds_in_place(path, p, RACE_SIZE));
        kg_cache_close(c);
    }
    free(p);
}

/* put_path racing a clear (which removes subdirectories): every put_path
 * must succeed, in place or by copy. */
static int put_path_many(int i, void *vctx)
{
    const char *dir = vctx;
    kg_cache *c;
    if (kg_cache_open(dir, &c) != KG_OK) return 1;
    static unsigned char p[16 << 10];
    int rc = 0;
    for (int j = 0; j < 60 && !rc; j++) {
        char name[32], src[600], ln[700];
        snprintf(name, sizeof name, "%d/%d", i, j % 8);
        snprintf(src, sizeof src, "%s/many-%d", kt_tmpdir(), i);
        snprintf(ln, sizeof ln, "%s.ln", src);
        fill(p, sizeof p, (unsigned)j);
        if (!write_file(src, p, sizeof p, 0755) || (j % 3 == 0 && link(src, ln) != 0)) rc = 3;
        else if (kg_cache_put_path(c, key_of(name), "so", src) != KG_OK) {
            fprintf(stderr, "put_path: %s\n", kg_last_error());
            rc = 2;
        }
        unlink(ln);
    }
    kg_cache_close(c);
    return rc;
}

KT_TEST(cache_path_race_clear)
{
    static char dir[512];
    fresh_dir("inplace-raceclear", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    fflush(stdout);
    pid_t clearer = fork();
    if (clearer == 0)
        for (;;) kg_cache_clear(c, NULL, NULL); /* until killed */
    KT_CHECK(race(put_path_many, dir));
    int st;
    KT_CHECK(clearer > 0 && kill(clearer, SIGKILL) == 0 && waitpid(clearer, &st, 0) == clearer);
    uint64_t n = 0, nt = 9;
    KT_CHECK(kg_cache_clear(c, &n, &nt) == KG_OK && nt == 0);
    kg_cache_close(c);
}

/* Both layouts side by side: foreach, verify, sweep, clear, and the CLI. */
KT_TEST(cache_path_listing)
{
    char dir[512], src[600], path[600];
    fresh_dir("inplace-list", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    unsigned char p[1000];
    fill(p, sizeof p, 16);
    kg_key keys[10];
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof name, "l%d", i);
        keys[i] = key_of(name);
        if (i % 2) KT_REQUIRE(kg_cache_put(c, keys[i], "o", p, (size_t)i * 10) == KG_OK);
        else {
            KT_REQUIRE(make_src(src, "l.so", p, (size_t)i * 10));
            KT_REQUIRE(kg_cache_put_path(c, keys[i], "so", src) == KG_OK);
        }
    }
    seen s = {.sorted = true};
    KT_CHECK(kg_cache_foreach(c, 0, visit, &s) == KG_OK);
    KT_CHECKF(s.n == 10 && s.sorted && s.bad == 0 && s.bytes == 450, "n=%d bytes=%llu", s.n,
              (unsigned long long)s.bytes);
    s = (seen){.sorted = true};
    KT_CHECK(kg_cache_foreach(c, KG_CACHE_VERIFY, visit, &s) == KG_OK);
    KT_CHECKF(s.n == 10 && s.bad == 0, "verify: n=%d bad=%d", s.n, s.bad);

    /* a bad trailer entry and a bad header entry: both found and removed */
    entry_file(dir, keys[4], "so", path);
    KT_REQUIRE(flip_byte(path, 40 + 20)); /* the trailer's kind */
    char hpath[600];
    entry_file(dir, keys[5], "o", hpath);
    KT_REQUIRE(flip_byte(hpath, HDR + 3));
    s = (seen){.sorted = true};
    KT_CHECK(kg_cache_foreach(c, KG_CACHE_VERIFY, visit, &s) == KG_OK);
    KT_CHECKF(s.n == 10 && s.bad == 2 && !exists(path) && !exists(hpath), "verify: n=%d bad=%d", s.n, s.bad);

    if (access(kt_kgen_bin(), X_OK) == 0) {
        static char out[16384], err[4096];
        int rc = kgen(out, err, "ls", "--dir", dir, NULL);
        KT_CHECKF(rc == 0 && count_lines(out) == 8, "ls: %d\n%s%s", rc, out, err);
        char line[200], h[33];
        snprintf(line, sizeof line, "%s  %-5s %10d  ", kg_key_hex(keys[8], h), "so", 80); /* ls's format */
        KT_CHECKF(strstr(out, line), "ls: no line '%s' in\n%s", line, out);
        rc = kgen(out, err, "stats", "--dir", dir, NULL);
        snprintf(line, sizeof line, "  %-6s %8d entries %14d bytes\n", "so", 4, 160); /* stats's format */
        KT_CHECKF(rc == 0 && strstr(out, "entries:   8\n") && strstr(out, "360 payload, 872 on disk") &&
                  strstr(out, line), "stats: %d\n%s%s", rc, out, err);
        entry_file(dir, keys[6], "so", path);
        KT_REQUIRE(flip_byte(path, 59)); /* a payload byte */
        rc = kgen(out, err, "verify", "--dir", dir, NULL);
        snprintf(line, sizeof line, "removed %s.so: payload hash mismatch\n", kg_key_hex(keys[6], h));
        KT_CHECKF(rc == 1 && strstr(out, line) && strstr(out, "verified 8 entries: 7 ok, 1 bad (removed)"),
                  "verify: %d\n%s%s", rc, out, err);
        KT_CHECK(!exists(path));
    } else {
        printf("    (%s not found: the CLI part was not run)\n", kt_kgen_bin());
        entry_file(dir, keys[6], "so", path);
        unlink(path);
    }
    uint64_t n = 0, nt = 9;
    KT_CHECK(kg_cache_sweep(c, &n) == KG_OK && n == 0);
    KT_CHECK(kg_cache_clear(c, &n, &nt) == KG_OK && n == 7 && nt == 0);
    s = (seen){.sorted = true};
    KT_CHECK(kg_cache_foreach(c, 0, visit, &s) == KG_OK && s.n == 0);
    kg_cache_close(c);
}

/* ──────────────── a shared object, dlopen()ed from the cache ──────────────── */

/* The first `name` on $PATH that can be executed, or false. */
static bool find_on_path(const char *name, char out[PATH_MAX])
{
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/bin:/bin";
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        if (n && snprintf(out, PATH_MAX, "%.*s/%s", (int)n, p, name) < PATH_MAX && access(out, X_OK) == 0) return true;
        p += n + (p[n] == ':');
    }
    return false;
}

KT_TEST(cache_path_dlopen)
{
    char cc[PATH_MAX], csrc[600], so[600], dir[512], path[PATH_MAX];
    if (!find_on_path("cc", cc)) KT_SKIP("no 'cc' on PATH: cannot build a shared object to dlopen from the cache");
    snprintf(csrc, sizeof csrc, "%s/answer.c", kt_tmpdir());
    snprintf(so, sizeof so, "%s/answer.so", kt_tmpdir());
    static const char code[] =
        "static const char msg[] = \"loaded from the kgen cache\";\n"
        "int kg_test_counter = 41;\n"
        "int kg_test_answer(void) { return ++kg_test_counter; }\n"
        "const char *kg_test_msg(void) { return msg; }\n";
    KT_REQUIRE(write_file(csrc, code, sizeof code - 1, 0600));
    char *argv[] = {cc, "-shared", "-fPIC", "-O1", "-o", so, csrc, NULL};
    static char out[4096], err[4096];
    int rc = kt_run(argv, out, sizeof out, err, sizeof err);
    if (rc != 0) KT_SKIP("%s -shared failed (%d): %.200s", cc, rc, err);
    size_t n = 0;
    unsigned char *orig = slurp(so, &n);
    KT_REQUIRE(orig && n > 4 && !memcmp(orig, "\177ELF", 4));

    fresh_dir("inplace-dlopen", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    kg_key k = key_of("answer.so");
    KT_CHECKF(kg_cache_put_path(c, k, "so", so) == KG_OK, "%s", kg_last_error());
    KT_REQUIRE(kg_cache_get_path(c, k, "so", path, sizeof path) == KG_OK);
    KT_CHECK(holds_in_place(path, orig, n));
    struct stat st;
    KT_CHECK(stat(path, &st) == 0 && !(st.st_mode & 0111)); /* no exec bit: dlopen needs none */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    KT_REQUIRE(h || (printf("    dlopen: %s\n", dlerror()), 0));
    int (*answer)(void) = (int (*)(void))(uintptr_t)dlsym(h, "kg_test_answer");
    const char *(*msg)(void) = (const char *(*)(void))(uintptr_t)dlsym(h, "kg_test_msg");
    KT_CHECK(answer && answer() == 42 && answer() == 43); /* code and writable data */
    KT_CHECK(msg && !strcmp(msg(), "loaded from the kgen cache"));
    dlclose(h);
    /* and still valid after being loaded */
    KT_CHECK(get_path_status(c, k, "so") == KG_OK && hit_equals(c, k, "so", orig, n));
    free(orig);
    kg_cache_close(c);
}
