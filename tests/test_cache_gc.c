/*
 * test_cache_gc.c — the cache's size limit (runtime/cache_gc.c): sizes as
 * written by people, the collection (least recently USED first: a hit
 * counts, a write counts, a verify does not), an empty and a vanished
 * directory, collections racing puts and gets in other processes, the
 * automatic collection after a put (the limit from $KGEN_CACHE_MAX_SIZE or
 * the default, the running estimate in <dir>/.usage, the minute of grace),
 * and `kgen cache gc` / `stats`. Times are set with utimensat, never waited
 * for: an entry "used 300 s ago" has that atime.
 */
#include "kt_cache.h"

#include <sys/statvfs.h>
#include <time.h>

enum { PAYLOAD = 1000, FILE_BYTES = PAYLOAD + HDR };

/* atime and mtime := t (seconds since the epoch) */
static bool set_times(const char *path, time_t t)
{
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    return utimensat(AT_FDCWD, path, ts, 0) == 0;
}

static bool times_of(const char *path, time_t *atime, time_t *mtime)
{
    struct stat st;
    if (stat(path, &st) != 0) return false;
    *atime = st.st_atime;
    *mtime = st.st_mtime;
    return true;
}

/* The running estimate in <dir>/.usage (the table in cache_gc.c). */
static bool read_usage(const char *dir, uint64_t *est, uint64_t *next)
{
    char path[600];
    unsigned char b[32];
    snprintf(path, sizeof path, "%s/.usage", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n != 16) return false;
    *est = *next = 0;
    for (int i = 7; i >= 0; i--) *est = *est << 8 | b[i], *next = *next << 8 | b[8 + i];
    return true;
}

static bool write_usage(const char *dir, uint64_t est, uint64_t next)
{
    char path[600];
    unsigned char b[16];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(est >> 8 * i), b[8 + i] = (unsigned char)(next >> 8 * i);
    snprintf(path, sizeof path, "%s/.usage", dir);
    return write_file(path, b, sizeof b, 0600);
}

/* Entry `name`: a PAYLOAD-byte put (or put_path, a trailer entry) of kind
 * `kind`, its times set to t; its path into path. */
static bool put_at(kg_cache *c, const char *dir, const char *name, const char *kind, bool trailer, time_t t,
                   char path[600])
{
    unsigned char p[PAYLOAD];
    char src[600];
    fill(p, sizeof p, (unsigned)name[0]);
    kg_key k = key_of(name);
    entry_file(dir, k, kind, path);
    if (trailer) {
        if (!make_src(src, "gc-src", p, sizeof p) || kg_cache_put_path(c, k, kind, src) != KG_OK) return false;
    } else if (kg_cache_put(c, k, kind, p, sizeof p) != KG_OK) return false;
    return t == 0 || set_times(path, t);
}

typedef struct removed_log {
    int n;
    char ids[16][64]; /* "<key hex>.<kind>", in removal order */
} removed_log;

static int log_removed(const kg_cache_entry *e, void *ctx)
{
    removed_log *l = ctx;
    if (l->n < 16) snprintf(l->ids[l->n], sizeof l->ids[0], "%s.%s", e->key_hex, e->kind);
    l->n++;
    return 0;
}

static int stop_after_one(const kg_cache_entry *e, void *ctx)
{
    log_removed(e, ctx);
    return 1;
}

static bool is_id(const char *id, const char *name, const char *kind)
{
    char h[33], want[64];
    snprintf(want, sizeof want, "%s.%s", kg_key_hex(key_of(name), h), kind);
    return !strcmp(id, want);
}

typedef struct used_of {
    kg_key key;
    int64_t used;
} used_of;

static int find_used(const kg_cache_entry *e, void *ctx)
{
    used_of *u = ctx;
    if (e->key.hi == u->key.hi && e->key.lo == u->key.lo) u->used = e->used;
    return 0;
}

/* ─────────────────────────── sizes ─────────────────────────── */

KT_TEST(cache_gc_parse_size)
{
    const struct { const char *s; uint64_t v; } good[] = {
        {"0", 0}, {"4096", 4096}, {"1B", 1}, {"1K", 1024}, {"1k", 1024}, {"1KiB", 1024}, {"1kib", 1024},
        {"1KB", 1000}, {"500M", 500ull << 20}, {"2G", 2ull << 30}, {"1.5GiB", 3ull << 29}, {"10GB", 10000000000ull},
        {"0.5K", 512}, {"1.0", 1}, {"1.25M", 1310720}, {"2T", 2ull << 40}, {"1P", 1ull << 50},
        {"007", 7}, {"18446744073709551615", UINT64_MAX}, {"16383P", 16383ull << 50},
        {"1.000000000000000000000K", 1024}, /* zeros past 18 digits are still exact */
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        uint64_t v = 1;
        kg_status s = kg_cache_parse_size(good[i].s, &v);
        KT_CHECKF(s == KG_OK && v == good[i].v, "'%s': status %d, %llu (%s)", good[i].s, s, (unsigned long long)v,
                  kg_last_error());
    }
    const struct { const char *s, *msg; } bad[] = {
        {"", "not a size"}, {"abc", "not a size"}, {"-1", "not a size"}, {"+1", "not a size"},
        {" 1G", "not a size"}, {"1G ", "not a size"}, {"1e9", "not a size"}, {"0x10", "not a size"},
        {"1.G", "not a size"}, {".5G", "not a size"}, {"1..5G", "not a size"}, {"1GG", "not a size"},
        {"1Gi", "not a size"}, {"1 G", "not a size"}, {"1E", "not a size"}, {"1,5G", "not a size"},
        {"1.5", "whole number"}, {"0.1K", "whole number"}, {"1.0000001K", "whole number"},
        {"18446744073709551616", "too large"}, {"16384P", "too large"}, {"99999999999999999999999", "too large"},
        {"1.0000000000000000001K", "18 digits"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint64_t v = 1;
        kg_status s = kg_cache_parse_size(bad[i].s, &v);
        KT_CHECKF(s == KG_ERR_ARG && v == 0 && strstr(kg_last_error(), bad[i].msg),
                  "'%s': status %d, %llu, message '%s'", bad[i].s, s, (unsigned long long)v, kg_last_error());
    }
    uint64_t v;
    KT_CHECK(kg_cache_parse_size(NULL, &v) == KG_ERR_ARG && kg_cache_parse_size("1", NULL) == KG_ERR_ARG);
}

/* ─────────────────────────── collecting ─────────────────────────── */

/* Four entries written A, B, C, D (400 .. 100 s ago), then A and B used:
 * the collection removes C then D, the reverse of what write order says. */
KT_TEST(cache_gc_lru_by_use)
{
    saved_env env[] = {{"KGEN_CACHE_MAX_SIZE", NULL}};
    env_save(env, 1);
    setenv("KGEN_CACHE_MAX_SIZE", "0", 1); /* no automatic collection here */
    char dir[512], pa[600], pb[600], pc[600], pd[600];
    fresh_dir("gc-lru", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    time_t t = time(NULL);
    /* every kind is an entry alike: a memo, a trailer .so, an object */
    KT_REQUIRE(put_at(c, dir, "A", "memo", false, t - 400, pa) && put_at(c, dir, "B", "so", true, t - 300, pb) &&
               put_at(c, dir, "C", "o", false, t - 200, pc) && put_at(c, dir, "D", "memo", false, t - 100, pd));

    /* a hit records its use (atime), keeping the write time (mtime); both gets */
    unsigned char p[PAYLOAD];
    char path[PATH_MAX];
    fill(p, sizeof p, 'A');
    KT_CHECK(hit_equals(c, key_of("A"), "memo", p, sizeof p));
    KT_CHECK(kg_cache_get_path(c, key_of("B"), "so", path, sizeof path) == KG_OK);
    time_t at, mt;
    KT_CHECK(times_of(pa, &at, &mt) && at >= t - 5 && mt == t - 400);
    KT_CHECK(times_of(pb, &at, &mt) && at >= t - 5 && mt == t - 300);
    used_of u = {key_of("A"), 0};
    KT_CHECK(kg_cache_foreach(c, 0, find_used, &u) == KG_OK && u.used >= t - 5);
    u = (used_of){key_of("C"), 0};
    KT_CHECK(kg_cache_foreach(c, 0, find_used, &u) == KG_OK && u.used == t - 200);

    /* reading to verify is not a use (the kernel's relatime would count it) */
    KT_CHECK(kg_cache_foreach(c, KG_CACHE_VERIFY, find_used, &u) == KG_OK);
    KT_CHECK(times_of(pc, &at, &mt) && at == t - 200 && mt == t - 200);
    KT_CHECK(times_of(pd, &at, &mt) && at == t - 100);

    /* at the limit exactly: kept; one byte under it removes the next */
    removed_log log = {0};
    kg_cache_gc_stats st;
    KT_CHECK(kg_cache_gc(c, 3 * FILE_BYTES, log_removed, &log, &st) == KG_OK);
    KT_CHECKF(log.n == 1 && is_id(log.ids[0], "C", "o") && !exists(pc) && exists(pd), "removed %d", log.n);
    KT_CHECKF(st.n_entries == 4 && st.bytes == 4 * FILE_BYTES && st.n_removed == 1 &&
              st.bytes_removed == FILE_BYTES && st.n_left == 3 && st.bytes_left == 3 * FILE_BYTES && st.n_busy == 0,
              "stats %llu %llu %llu %llu %llu %llu", (unsigned long long)st.n_entries, (unsigned long long)st.bytes,
              (unsigned long long)st.n_removed, (unsigned long long)st.bytes_removed,
              (unsigned long long)st.n_left, (unsigned long long)st.bytes_left);
    log = (removed_log){0};
    KT_CHECK(kg_cache_gc(c, 3 * FILE_BYTES - 1, log_removed, &log, &st) == KG_OK);
    KT_CHECK(log.n == 1 && is_id(log.ids[0], "D", "memo") && !exists(pd));
    KT_CHECK(exists(pa) && exists(pb)); /* written first, used last */
    KT_CHECK(kg_cache_gc(c, 2 * FILE_BYTES, NULL, NULL, &st) == KG_OK && st.n_removed == 0 && st.n_left == 2);

    /* a callback that says stop: one removed */
    log = (removed_log){0};
    KT_CHECK(kg_cache_gc(c, 0, stop_after_one, &log, &st) == KG_OK && st.n_removed == 1 && st.n_left == 1);
    /* 0 removes the rest; then an empty cache is nothing to do */
    KT_CHECK(kg_cache_gc(c, 0, NULL, NULL, &st) == KG_OK && st.n_removed == 1 && st.n_left == 0 &&
             st.bytes_left == 0 && !exists(pa) && !exists(pb));
    KT_CHECK(kg_cache_gc(c, 0, NULL, NULL, &st) == KG_OK && st.n_entries == 0 && st.n_removed == 0);
    KT_CHECK(kg_cache_gc(NULL, 0, NULL, NULL, &st) == KG_ERR_ARG && st.n_entries == 0);
    kg_cache_close(c);
    env_restore(env, 1);
}

/* An entry rewritten, or used, after the collection listed it is kept: the
 * collection sees its ctime move. Made deterministic by a callback that
 * uses the next candidate after the first removal. */
typedef struct touch_ctx {
    kg_cache *c;
    int n;
} touch_ctx;

static int use_b(const kg_cache_entry *e, void *vctx)
{
    touch_ctx *t = vctx;
    char path[PATH_MAX];
    (void)e;
    if (t->n++ == 0) kg_cache_get_path(t->c, key_of("B"), "so", path, sizeof path);
    return 0;
}

KT_TEST(cache_gc_keeps_used_meanwhile)
{
    saved_env env[] = {{"KGEN_CACHE_MAX_SIZE", NULL}};
    env_save(env, 1);
    setenv("KGEN_CACHE_MAX_SIZE", "0", 1);
    char dir[512], pa[600], pb[600], pc[600];
    fresh_dir("gc-meanwhile", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    time_t t = time(NULL);
    KT_REQUIRE(put_at(c, dir, "A", "o", false, t - 300, pa) && put_at(c, dir, "B", "so", true, t - 200, pb) &&
               put_at(c, dir, "C", "o", false, t - 100, pc));
    touch_ctx tc = {c, 0};
    kg_cache_gc_stats st;
    KT_CHECK(kg_cache_gc(c, 0, use_b, &tc, &st) == KG_OK);
    KT_CHECKF(!exists(pa) && exists(pb) && !exists(pc) && st.n_removed == 2 && st.n_busy == 1 && st.n_left == 1,
              "removed %llu busy %llu", (unsigned long long)st.n_removed, (unsigned long long)st.n_busy);
    kg_cache_close(c);
    env_restore(env, 1);
}

KT_TEST(cache_gc_missing_dir)
{
    char dir[512];
    fresh_dir("gc-gone", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    KT_REQUIRE(rmdir(dir) == 0); /* removed under the open handle */
    kg_cache_gc_stats st = {.n_entries = 9};
    KT_CHECKF(kg_cache_gc(c, 1000, NULL, NULL, &st) == KG_OK && st.n_entries == 0 && st.n_removed == 0,
              "%s", kg_last_error());
    kg_cache_close(c);
}

/* ─────────────────────────── racing ─────────────────────────── */

/* Processes collecting (down to GC_LIMIT, over and over), putting (both
 * layouts) and getting (both gets) 24 keys at once, with automatic
 * collection on too. Every get must be a whole, right payload or a clean
 * miss (KG_ERR_NOTFOUND; a path whose open says ENOENT): never corrupt,
 * never an I/O error, never a crash. */
enum { RACE_KEYS = 24, GC_LIMIT = 16 << 10, RACE_ROUNDS = 150 };

static size_t race_size(int j) { return 2000 + 300 * (size_t)j; }

static bool race_key(int j, kg_key *k)
{
    char name[16];
    snprintf(name, sizeof name, "race%d", j);
    *k = key_of(name);
    return j % 2 == 0; /* even keys: trailer entries (put_path), odd: header entries */
}

/* 0: fine; else what went wrong (printed) */
static int check_get(kg_cache *c, int j, const unsigned char *want)
{
    kg_key k;
    race_key(j, &k);
    void *data = NULL;
    size_t n = 0;
    kg_status s = kg_cache_get(c, k, "o", &data, &n);
    int rc = 0;
    if (s == KG_OK && (n != race_size(j) || memcmp(data, want, n) != 0)) rc = 3;
    else if (s != KG_OK && s != KG_ERR_NOTFOUND) rc = 4;
    if (rc) fprintf(stderr, "get %d: status %d size %zu: %s\n", j, s, n, kg_last_error());
    free(data);
    return rc;
}

static int check_get_path(kg_cache *c, int j, const unsigned char *want)
{
    kg_key k;
    race_key(j, &k);
    char path[PATH_MAX];
    kg_status s = kg_cache_get_path(c, k, "o", path, sizeof path);
    if (s == KG_ERR_NOTFOUND) return 0; /* absent, or a header entry */
    if (s != KG_OK) {
        fprintf(stderr, "get_path %d: status %d: %s\n", j, s, kg_last_error());
        return 5;
    }
    size_t n = 0;
    unsigned char *b = slurp(path, &n);
    if (!b) return errno == ENOENT ? 0 : 6; /* collected after the get: a miss */
    int rc = n == race_size(j) + HDR && memcmp(b, want, race_size(j)) == 0 ? 0 : 7;
    if (rc) fprintf(stderr, "get_path %d: %zu bytes, not the entry\n", j, n);
    free(b);
    return rc;
}

static int gc_race_body(int i, void *vctx)
{
    const char *dir = vctx;
    kg_cache *c;
    if (kg_cache_open(dir, &c) != KG_OK) return 1;
    static unsigned char p[RACE_KEYS][2000 + 300 * RACE_KEYS];
    for (int j = 0; j < RACE_KEYS; j++) fill(p[j], race_size(j), 500 + (unsigned)j);
    char src[600], name[32];
    snprintf(name, sizeof name, "gc-race-src-%d", i);
    int rc = 0;
    for (int r = 0; r < RACE_ROUNDS && !rc; r++) {
        int j = (i * 7 + r * 5) % RACE_KEYS;
        kg_key k;
        bool trailer = race_key(j, &k);
        switch (i % 4) {
        case 0: {
            kg_cache_gc_stats st;
            if (kg_cache_gc(c, GC_LIMIT, NULL, NULL, &st) != KG_OK) {
                fprintf(stderr, "gc: %s\n", kg_last_error());
                rc = 2;
            }
            break;
        }
        case 1:
        case 2:
            if (r % 3 == 0) {
                kg_status s = trailer ? (make_src(src, name, p[j], race_size(j)) ? kg_cache_put_path(c, k, "o", src)
                                                                                  : KG_ERR_IO)
                                      : kg_cache_put(c, k, "o", p[j], race_size(j));
                if (s != KG_OK) {
                    fprintf(stderr, "put %d: %s\n", j, kg_last_error());
                    rc = 8;
                }
            } else rc = check_get(c, j, p[j]);
            break;
        default:
            rc = r % 2 ? check_get(c, j, p[j]) : check_get_path(c, j, p[j]);
        }
    }
    kg_cache_close(c);
    return rc;
}

static int count_bad(const kg_cache_entry *e, void *ctx)
{
    *(int *)ctx += e->problem != NULL;
    return 0;
}

KT_TEST(cache_gc_race)
{
    saved_env env[] = {{"KGEN_CACHE_MAX_SIZE", NULL}};
    env_save(env, 1);
    setenv("KGEN_CACHE_MAX_SIZE", "32K", 1); /* the puts' own collections run too */
    static char dir[512];
    fresh_dir("gc-race", dir);
    for (int round = 0; round < 3; round++)
        KT_CHECKF(race(gc_race_body, dir), "round %d: a process failed (see above)", round);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    int bad = 0;
    uint64_t n_tmp = 9;
    KT_CHECK(kg_cache_foreach(c, KG_CACHE_VERIFY, count_bad, &bad) == KG_OK && bad == 0);
    KT_CHECK(kg_cache_sweep(c, &n_tmp) == KG_OK && n_tmp == 0); /* no temporary file left behind */
    kg_cache_gc_stats st;
    KT_CHECK(kg_cache_gc(c, GC_LIMIT, NULL, NULL, &st) == KG_OK && st.bytes_left <= GC_LIMIT && st.n_busy == 0);
    kg_cache_close(c);
    env_restore(env, 1);
}

/* ─────────────────────────── the automatic collection ─────────────────────────── */

static int count_one(const kg_cache_entry *e, void *ctx)
{
    (void)e;
    ++*(int *)ctx;
    return 0;
}

static int count_entries(kg_cache *c)
{
    int n = 0;
    return kg_cache_foreach(c, 0, count_one, &n) == KG_OK ? n : -1;
}

/* $KGEN_CACHE_MAX_SIZE=10000: ten 1064-byte entries fit, the eleventh
 * put walks and trims to 9000 (90%), least recently used first, sparing
 * the last minute's entries. */
KT_TEST(cache_gc_auto_limit)
{
    saved_env env[] = {{"KGEN_CACHE_MAX_SIZE", NULL}};
    env_save(env, 1);
    setenv("KGEN_CACHE_MAX_SIZE", "10000", 1);
    char dir[512], path[11][600], big[PATH_MAX];
    fresh_dir("gc-auto", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    const char *src = NULL;
    KT_CHECK(kg_cache_max_size(c, &src) == 10000 && src && !strcmp(src, "KGEN_CACHE_MAX_SIZE"));
    time_t t = time(NULL);
    char name[8];
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "%c", 'a' + i);
        KT_REQUIRE(put_at(c, dir, name, i % 2 ? "so" : "memo", i % 2, 0, path[i]));
    }
    uint64_t est = 0, next = 9;
    KT_CHECK(read_usage(dir, &est, &next) && est == 8 * FILE_BYTES && next == 0);
    for (int i = 0; i < 8; i++) KT_REQUIRE(set_times(path[i], t - 1000 + 10 * i)); /* a, b, ... h: old */
    unsigned char p[PAYLOAD];
    fill(p, sizeof p, 'a');
    KT_CHECK(hit_equals(c, key_of("a"), "memo", p, sizeof p)); /* used: a and b */
    KT_CHECK(kg_cache_get_path(c, key_of("b"), "so", big, sizeof big) == KG_OK);

    KT_REQUIRE(put_at(c, dir, "i", "o", false, 0, path[8])); /* 9576 bytes: under */
    KT_CHECK(count_entries(c) == 9 && read_usage(dir, &est, &next) && est == 9 * FILE_BYTES);
    KT_REQUIRE(put_at(c, dir, "j", "o", false, 0, path[9])); /* 10640: over, trimmed to <= 9000 */
    KT_CHECKF(!exists(path[2]) && !exists(path[3]), "the least recently used were not removed");
    KT_CHECK(exists(path[0]) && exists(path[1]) && exists(path[4]) && exists(path[9]) && count_entries(c) == 8);
    KT_CHECK(read_usage(dir, &est, &next) && est == 8 * FILE_BYTES && next == 0);

    /* an entry alone larger than the limit is kept (just written), and so
     * are the last minute's (a, b used; i, j written); the old ones go */
    static unsigned char q[20000];
    fill(q, sizeof q, 7);
    KT_REQUIRE(kg_cache_put(c, key_of("big"), "so", q, sizeof q) == KG_OK);
    KT_CHECK(hit_equals(c, key_of("big"), "so", q, sizeof q));
    for (int i = 4; i < 8; i++) KT_CHECKF(!exists(path[i]), "old entry %d kept", i);
    KT_CHECK(exists(path[0]) && exists(path[1]) && exists(path[8]) && exists(path[9]) && count_entries(c) == 5);
    uint64_t left = 4 * FILE_BYTES + sizeof q + HDR;
    KT_CHECKF(read_usage(dir, &est, &next) && est == left && next == left + 1000, "est %llu next %llu",
              (unsigned long long)est, (unsigned long long)next);
    /* over the limit with nothing old left to remove: the next walk waits
     * for a tenth of the limit (1000 bytes) of puts, not for the next put.
     * An entry removed behind the cache's back shows whether a put walked:
     * a walk corrects the estimate, a put alone only adds to it. */
    KT_REQUIRE(unlink(path[9]) == 0);
    KT_REQUIRE(kg_cache_put(c, key_of("tiny"), "o", NULL, 0) == KG_OK);
    KT_CHECK(read_usage(dir, &est, &next) && est == left + HDR && next == left + 1000); /* no walk */
    KT_REQUIRE(put_at(c, dir, "k", "o", false, 0, path[10]));
    left = left - FILE_BYTES + HDR + FILE_BYTES;
    KT_CHECKF(read_usage(dir, &est, &next) && est == left && next == left + 1000, "est %llu next %llu",
              (unsigned long long)est, (unsigned long long)next); /* walked: the true total */
    KT_CHECK(count_entries(c) == 6 && exists(path[10]));
    kg_cache_close(c);
    env_restore(env, 1);
}

/* The default limit (no $KGEN_CACHE_MAX_SIZE): min(10 GiB, a quarter of
 * the filesystem), and a put past it walks; below it, a put only adds to
 * the estimate (no walk). Filling gigabytes is replaced by an estimate
 * written into .usage. */
KT_TEST(cache_gc_auto_default)
{
    saved_env env[] = {{"KGEN_CACHE_MAX_SIZE", NULL}};
    env_save(env, 1);
    unsetenv("KGEN_CACHE_MAX_SIZE");
    char dir[512], pa[600], pb[600], pc[600];
    fresh_dir("gc-default", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    struct statvfs v;
    KT_REQUIRE(statvfs(dir, &v) == 0);
    uint64_t fs = (uint64_t)v.f_blocks * (v.f_frsize ? v.f_frsize : v.f_bsize), want = (uint64_t)10 << 30;
    if (fs / 4 < want) want = fs / 4;
    const char *src = NULL;
    uint64_t max = kg_cache_max_size(c, &src);
    KT_CHECKF(max == want && src && !strcmp(src, "default"), "default %llu, want %llu", (unsigned long long)max,
              (unsigned long long)want);
    time_t t = time(NULL);
    KT_REQUIRE(put_at(c, dir, "A", "o", false, t - 500, pa) && put_at(c, dir, "B", "o", false, t - 400, pb));
    uint64_t est, next;
    KT_REQUIRE(write_usage(dir, max - 5000, 0)); /* as if almost full */
    KT_REQUIRE(put_at(c, dir, "C", "o", false, t - 300, pc));
    KT_CHECK(read_usage(dir, &est, &next) && est == max - 5000 + FILE_BYTES); /* no walk */
    KT_REQUIRE(write_usage(dir, max - 100, 0));
    KT_REQUIRE(put_at(c, dir, "D", "o", false, 0, pc));
    KT_CHECKF(read_usage(dir, &est, &next) && est == 4 * FILE_BYTES && next == 0, /* walked: the true total */
              "est %llu", (unsigned long long)est);
    KT_CHECK(exists(pa) && exists(pb)); /* far under the limit: nothing removed */

    /* a malformed usage file is an unknown estimate: the next put walks
     * and rewrites it; one that cannot be opened costs nothing but the limit */
    char usage[600], elsewhere[600];
    snprintf(usage, sizeof usage, "%s/.usage", dir);
    KT_REQUIRE(write_file(usage, "junk", 4, 0600));
    KT_REQUIRE(put_at(c, dir, "E", "o", false, 0, pc));
    KT_CHECK(read_usage(dir, &est, &next) && est == 5 * FILE_BYTES);
    snprintf(elsewhere, sizeof elsewhere, "%s/gc-usage-elsewhere", kt_tmpdir());
    KT_REQUIRE(write_file(elsewhere, "x", 1, 0600) && unlink(usage) == 0 && symlink(elsewhere, usage) == 0);
    KT_CHECK(put_at(c, dir, "F", "o", false, 0, pc) && exists(pc));
    struct stat st;
    KT_CHECK(stat(elsewhere, &st) == 0 && st.st_size == 1); /* not followed */
    kg_cache_close(c);
    env_restore(env, 1);
}

/* $KGEN_CACHE_MAX_SIZE=0: no limit, no usage file; junk is refused by name */
KT_TEST(cache_gc_env)
{
    saved_env env[] = {{"KGEN_CACHE_MAX_SIZE", NULL}};
    env_save(env, 1);
    char dir[512], path[600], usage[600];
    fresh_dir("gc-env", dir);
    kg_cache *c;
    setenv("KGEN_CACHE_MAX_SIZE", "0", 1);
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    const char *src = NULL;
    KT_CHECK(kg_cache_max_size(c, &src) == 0 && !strcmp(src, "KGEN_CACHE_MAX_SIZE"));
    time_t t = time(NULL);
    for (int i = 0; i < 12; i++) {
        char name[8];
        snprintf(name, sizeof name, "%c", 'a' + i);
        KT_REQUIRE(put_at(c, dir, name, "o", false, t - 1000, path));
    }
    snprintf(usage, sizeof usage, "%s/.usage", dir);
    KT_CHECK(count_entries(c) == 12 && !exists(usage));
    kg_cache_close(c);

    setenv("KGEN_CACHE_MAX_SIZE", "5K", 1); /* the next put walks: 12 old entries down to 4608 */
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    KT_CHECK(kg_cache_max_size(c, NULL) == 5120);
    KT_REQUIRE(put_at(c, dir, "z", "o", false, 0, path));
    KT_CHECKF(count_entries(c) == 4 && exists(path), "%d entries", count_entries(c)); /* 3 old + z: 4256 */
    kg_cache_close(c);

    const char *junk[] = {"lots", "1.5", "-1", "10 G", "1e12", "99999999999999999999"};
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
        setenv("KGEN_CACHE_MAX_SIZE", junk[i], 1);
        c = (kg_cache *)1;
        KT_CHECKF(kg_cache_open(dir, &c) == KG_ERR_ARG && c == NULL &&
                  strstr(kg_last_error(), "KGEN_CACHE_MAX_SIZE"), "'%s': %s", junk[i], kg_last_error());
    }
    setenv("KGEN_CACHE_MAX_SIZE", "", 1); /* empty: unset */
    KT_CHECK(kg_cache_open(dir, &c) == KG_OK && kg_cache_max_size(c, &src) > 0 && !strcmp(src, "default"));
    kg_cache_close(c);
    env_restore(env, 1);
}

/* ─────────────────────────── the CLI ─────────────────────────── */

KT_TEST(cache_gc_cli)
{
    if (access(kt_kgen_bin(), X_OK) != 0) KT_SKIP("%s not found (set KGEN_BIN)", kt_kgen_bin());
    saved_env env[] = {{"KGEN_CACHE_MAX_SIZE", NULL}};
    env_save(env, 1);
    setenv("KGEN_CACHE_MAX_SIZE", "0", 1);
    static char out[16384], err[4096];
    char dir[512], pa[600], pb[600], pc[600], pd[600], line[200], h[33];
    fresh_dir("gc-cli", dir);
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    time_t t = time(NULL);
    KT_REQUIRE(put_at(c, dir, "A", "o", false, t - 400, pa) && put_at(c, dir, "B", "so", true, t - 300, pb) &&
               put_at(c, dir, "C", "o", false, t - 200, pc) && put_at(c, dir, "D", "memo", false, t - 100, pd));
    unsigned char p[PAYLOAD];
    fill(p, sizeof p, 'A');
    KT_CHECK(hit_equals(c, key_of("A"), "o", p, sizeof p));
    fill(p, sizeof p, 'B');
    KT_CHECK(hit_equals(c, key_of("B"), "so", p, sizeof p));

    int rc = kgen(out, err, "gc", "--dir", dir, "--max-size=2128");
    char *lc = NULL, *ld = NULL;
    snprintf(line, sizeof line, "removed %s.o: 1064 bytes, last used 3m ago\n", kg_key_hex(key_of("C"), h));
    lc = strstr(out, line);
    snprintf(line, sizeof line, "removed %s.memo: 1064 bytes, last used 1", kg_key_hex(key_of("D"), h));
    ld = strstr(out, line); /* 100s, or 101s on a slow run */
    KT_CHECKF(rc == 0 && lc && ld && lc < ld && count_lines(out) == 3 &&
              strstr(out, "removed 2 of 4 entries (2128 of 4256 bytes); left 2 entries, 2128 bytes (2.1 KiB), "
                          "limit 2128 bytes; removed 0 stale temporary files\n"),
              "gc: %d\n%s%s", rc, out, err);
    KT_CHECK(exists(pa) && exists(pb) && !exists(pc) && !exists(pd));
    rc = kgen(out, err, "gc", "--max-size", "0", "--dir");
    KT_CHECK(rc == 2); /* --dir without its value */
    char *argv[] = {(char *)kt_kgen_bin(), "cache", "gc", "--dir", dir, "--max-size", "0", NULL};
    rc = kt_run(argv, out, sizeof out, err, sizeof err);
    KT_CHECKF(rc == 0 && strstr(out, "removed 2 of 2 entries") && !exists(pa) && !exists(pb), "gc 0: %d\n%s%s", rc,
              out, err);

    /* bad sizes and misplaced options: usage errors */
    const char *bad[] = {"", "abc", "1.5", "-1", "1e9", "18446744073709551616", " 1G", "1G ", "0x10", "1..5G"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *a[] = {(char *)kt_kgen_bin(), "cache", "gc", "--dir", dir, "--max-size", (char *)bad[i], NULL};
        rc = kt_run(a, out, sizeof out, err, sizeof err);
        KT_CHECKF(rc == 2 && strstr(err, "--max-size") && !out[0], "'%s': %d\n%s", bad[i], rc, err);
    }
    KT_CHECK(kgen(out, err, "gc", "--dir", dir, "--max-size") == 2 && strstr(err, "--max-size needs"));
    KT_CHECK(kgen(out, err, "ls", "--dir", dir, "--max-size=1G") == 2 && strstr(err, "gc only"));
    KT_CHECKF(kgen(out, err, "gc", "--dir", dir, NULL) == 2 && strstr(err, "no limit"), "%s", err);
    KT_CHECK(kgen(out, err, "gc", "--help", NULL, NULL) == 0 && strstr(out, "least recently used") &&
             strstr(out, "1.5GiB"));

    /* the limit: in stats, and gc's default size */
    KT_REQUIRE(put_at(c, dir, "A", "o", false, t - 400, pa) && put_at(c, dir, "C", "o", false, t - 200, pc) &&
               put_at(c, dir, "D", "memo", false, t - 100, pd));
    rc = kgen(out, err, "stats", "--dir", dir, NULL);
    KT_CHECKF(rc == 0 && strstr(out, "limit:     none (KGEN_CACHE_MAX_SIZE=0)\n"), "stats: %d\n%s", rc, out);
    setenv("KGEN_CACHE_MAX_SIZE", "2.5K", 1);
    rc = kgen(out, err, "stats", "--dir", dir, NULL);
    KT_CHECKF(rc == 0 && strstr(out, "limit:     2560 bytes (2.5 KiB; KGEN_CACHE_MAX_SIZE=2.5K)\n"), "stats: %d\n%s",
              rc, out);
    rc = kgen(out, err, "gc", "--dir", dir, NULL);
    KT_CHECKF(rc == 0 && strstr(out, "removed 1 of 3 entries") && !exists(pa) && exists(pc), "gc: %d\n%s%s", rc, out,
              err);
    setenv("KGEN_CACHE_MAX_SIZE", "2.5", 1);
    rc = kgen(out, err, "stats", "--dir", dir, NULL);
    KT_CHECKF(rc == 1 && strstr(err, "KGEN_CACHE_MAX_SIZE") && strstr(err, "whole number"), "stats: %d\n%s", rc, err);
    unsetenv("KGEN_CACHE_MAX_SIZE");
    rc = kgen(out, err, "stats", "--dir", dir, NULL);
    KT_CHECKF(rc == 0 && strstr(out, "limit:     ") && strstr(out, "the default: the smaller of 10 GiB"),
              "stats: %d\n%s", rc, out);

    /* a directory that does not exist yet: created, nothing to do */
    snprintf(line, sizeof line, "%s/gc-none/deeper", kt_tmpdir());
    rc = kgen(out, err, "gc", "--dir", line, "--max-size=1M");
    KT_CHECKF(rc == 0 && strstr(out, "removed 0 of 0 entries (0 of 0 bytes); left 0 entries, 0 bytes, limit 1048576"),
              "gc of nothing: %d\n%s%s", rc, out, err);
    kg_cache_close(c);
    env_restore(env, 1);
}
