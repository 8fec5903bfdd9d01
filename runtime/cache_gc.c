/*
 * cache_gc.c — the cache's size limit, and the collection that keeps it:
 * entries are removed least recently used first (runtime/cache.c has the
 * entries; kg_cache_gc in kgen.h the contract).
 *
 * Requires: entries whose atime says when they were last used (a hit sets
 * it explicitly: cache.c's mark_used) and whose mtime says when they were
 * written; an entry's last use is the later of the two. Invalidates: the
 * entries it removes (a reader holding one open keeps reading it; see
 * kg_cache_gc).
 *
 * ── The limit ──
 *
 * $KGEN_CACHE_MAX_SIZE (a size as kg_cache_parse_size reads it; 0:
 * unbounded), read by kg_cache_open; else the smaller of DEFAULT_MAX and a
 * quarter of the filesystem that holds the cache (statvfs at open).
 *
 * ── Keeping it, cheaply: the usage file ──
 *
 *   <dir>/.usage    16 bytes: est (u64 LE), next (u64 LE)
 *
 * est is a running estimate of the entries' bytes: the total a collection
 * found, plus every put's bytes since. Each put (one open, flock, 16-byte
 * pread and pwrite, close: no directory walk) adds its bytes; when est
 * passes the limit and is at least next, that put collects: it walks the
 * cache, removes least recently used entries down to LOW_WATER of the
 * limit (so the next walk is a tenth of the limit of puts away, not one
 * put), and stores the total found as est. While it walks, next = est +
 * slack (a tenth of the limit) keeps other puts from walking too; a walk
 * that cannot get under the limit (recent entries are kept, below) leaves
 * next = its total + slack for the same reason. The estimate errs high (a
 * put that replaces an entry counts it again; a clear or another
 * collection's removals are not subtracted): that costs an early walk,
 * which corrects it. It errs low only by puts that ran during a walk and
 * were counted by it too, or when a walker dies (next then holds back the
 * next walk by one slack). A missing or malformed file is an unknown
 * estimate: the next put walks and rewrites it.
 *
 * Entries used or written in the last AUTO_GRACE_S seconds are never
 * removed by a put's collection: a process may be between kg_cache_get_path
 * and its dlopen of that very file, and a model's shared object (weights
 * included) may alone be larger than the limit. kg_cache_gc (asked for by
 * a person: `kgen cache gc`) keeps no such grace.
 *
 * ── Removing one entry ──
 *
 * Just before unlinking, the name is lstat'ed again: if it now holds
 * another file (a put replaced it) or its ctime moved (a hit marked it
 * used), it is kept. That narrows, but cannot close, the window in which a
 * use or a replacement lands between the check and the unlink; losing
 * either costs a rebuild, never a wrong or torn read: entries are immutable,
 * and unlinking a file that a reader has open or mapped (dlopen) leaves the
 * reader its copy on Linux (the inode lives until the last close/munmap).
 * Temporary files (puts in progress) are not entries: never touched here.
 * A removed entry's identity record (cache_ident.c) goes with it.
 */
#include "cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX ((uint64_t)10 << 30) /* 10 GiB */
#define DEFAULT_FS_DIV 4                 /* ... or a quarter of the filesystem, if smaller */
#define AUTO_GRACE_S 60                  /* a put's collection keeps entries used this recently */
#define USAGE_NAME "/.usage"

static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
static uint64_t low_water(uint64_t max) { return max - max / 10; }
static uint64_t slack(uint64_t max) { return max / 10; }

/* ─────────────────────────── sizes ─────────────────────────── */

static const struct { const char *name; uint64_t mult; } units[] = {
    {"", 1}, {"b", 1},
    {"k", 1ull << 10}, {"kib", 1ull << 10}, {"kb", 1000ull},
    {"m", 1ull << 20}, {"mib", 1ull << 20}, {"mb", 1000000ull},
    {"g", 1ull << 30}, {"gib", 1ull << 30}, {"gb", 1000000000ull},
    {"t", 1ull << 40}, {"tib", 1ull << 40}, {"tb", 1000000000000ull},
    {"p", 1ull << 50}, {"pib", 1ull << 50}, {"pb", 1000000000000000ull},
};

kg_status kg_cache_parse_size(const char *s, uint64_t *out)
{
    if (out) *out = 0;
    if (!s || !out) return kg_err(KG_ERR_ARG, "kg_cache_parse_size: NULL argument");
    char shown[80];
    kg_escape(shown, sizeof shown, s, strlen(s), 40);
    const char *p = s;
    unsigned __int128 whole = 0, frac = 0, scale = 1;
    if (*p < '0' || *p > '9') goto junk;
    for (; *p >= '0' && *p <= '9'; p++)
        if ((whole = whole * 10 + (unsigned)(*p - '0')) > UINT64_MAX) goto big;
    if (*p == '.') {
        if (*++p < '0' || *p > '9') goto junk;
        for (int d = 0; *p >= '0' && *p <= '9'; p++, d++) {
            if (d >= 18) {
                if (*p != '0') return kg_err(KG_ERR_ARG, "size '%s': more than 18 digits after the point", shown);
                continue;
            }
            frac = frac * 10 + (unsigned)(*p - '0');
            scale *= 10;
        }
    }
    for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
        size_t n = strlen(units[u].name);
        if (strlen(p) != n || strncasecmp(p, units[u].name, n) != 0) continue;
        unsigned __int128 v = whole * units[u].mult, f = frac * units[u].mult;
        if (f % scale) return kg_err(KG_ERR_ARG, "size '%s' is not a whole number of bytes", shown);
        v += f / scale;
        if (v > UINT64_MAX) goto big;
        *out = (uint64_t)v;
        return KG_OK;
    }
junk:
    return kg_err(KG_ERR_ARG,
                  "size '%s' is not a size: give digits, optionally a fraction, then optionally a unit: "
                  "K, M, G, T, P or KiB .. PiB (powers of 1024), KB .. PB (powers of 1000), B (e.g. 500M, "
                  "2G, 1.5GiB, 1000000)",
                  shown);
big:
    return kg_err(KG_ERR_ARG, "size '%s' is too large (the most is 2^64-1 bytes)", shown);
}

/* ─────────────────────────── the limit ─────────────────────────── */

kg_status kg_cache_limit_init_(kg_cache *c)
{
    const char *e = getenv("KGEN_CACHE_MAX_SIZE");
    if (e && *e) {
        kg_status s = kg_cache_parse_size(e, &c->max_size);
        if (s != KG_OK) {
            char why[1024];
            snprintf(why, sizeof why, "%s", kg_last_error());
            return kg_err(s, "KGEN_CACHE_MAX_SIZE: %s (0: no limit)", why);
        }
        c->max_from_env = true;
        return KG_OK;
    }
    c->max_size = DEFAULT_MAX;
    struct statvfs v;
    uint64_t fs;
    if (statvfs(c->dir, &v) == 0 && v.f_blocks && kg_mul_u64(v.f_blocks, v.f_frsize ? v.f_frsize : v.f_bsize, &fs) &&
        fs / DEFAULT_FS_DIV < DEFAULT_MAX)
        c->max_size = fs / DEFAULT_FS_DIV;
    return KG_OK;
}

uint64_t kg_cache_max_size(const kg_cache *c, const char **source)
{
    if (source) *source = c && c->max_from_env ? "KGEN_CACHE_MAX_SIZE" : "default";
    return c ? c->max_size : 0;
}

/* ─────────────────────────── collecting ─────────────────────────── */

typedef struct cand {
    kg_cache_entry e;   /* e.path: owned (malloc'd) */
    int64_t used_ns;    /* the later of atime and mtime */
    dev_t dev;
    ino_t ino;
    struct timespec ctim;
} cand;

typedef struct cands {
    cand *v;
    size_t n, cap;
    bool nomem;
} cands;

static int64_t ns_of(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

static int collect(const kg_cache_entry *e, const struct stat *st, void *ctx)
{
    cands *cs = ctx;
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 256;
        cand *v = realloc(cs->v, cap * sizeof *v);
        if (!v) { cs->nomem = true; return 1; }
        cs->v = v;
        cs->cap = cap;
    }
    cand *k = &cs->v[cs->n];
    k->e = *e;
    if (!(k->e.path = strdup(e->path))) { cs->nomem = true; return 1; }
    int64_t a = ns_of(st->st_atim), m = ns_of(st->st_mtim);
    k->used_ns = a > m ? a : m;
    k->dev = st->st_dev;
    k->ino = st->st_ino;
    k->ctim = st->st_ctim;
    cs->n++;
    return 0;
}

static int cmp_use(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->used_ns != y->used_ns) return x->used_ns < y->used_ns ? -1 : 1;
    return strcmp(x->e.path, y->e.path);
}

/* Removes entries, least recently used first, until their bytes are at
 * most `target`; keeps those used within `grace_s` seconds of now (0: none
 * kept). fn (may be NULL) sees each removed entry; nonzero stops.
 * *counted: the walk saw every entry, so out->bytes_left is the total
 * (also when a removal failed). */
static kg_status collect_garbage(kg_cache *c, uint64_t target, int grace_s, kg_cache_visit fn, void *ctx,
                                 kg_cache_gc_stats *out, bool *counted)
{
    *out = (kg_cache_gc_stats){0};
    cands cs = {0};
    kg_status s = kg_cache_scan_(c, collect, &cs);
    if (s == KG_OK && cs.nomem) s = kg_err(KG_ERR_NOMEM, "cache: out of memory listing '%s'", c->dir);
    *counted = s == KG_OK;
    for (size_t i = 0; i < cs.n; i++) out->bytes = sat_add(out->bytes, cs.v[i].e.file_size);
    out->n_entries = cs.n;
    uint64_t n_left = cs.n, left = out->bytes;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ns = ns_of(now), grace_ns = (int64_t)grace_s * 1000000000;
    if (s == KG_OK && left > target) {
        qsort(cs.v, cs.n, sizeof *cs.v, cmp_use);
        for (size_t i = 0; i < cs.n && left > target; i++) {
            cand *k = &cs.v[i];
            if (grace_s && k->used_ns >= now_ns - grace_ns && k->used_ns <= now_ns + grace_ns) {
                out->n_busy++;
                continue;
            }
            struct stat st;
            int r = lstat(k->e.path, &st);
            int64_t a = r == 0 ? ns_of(st.st_atim) : 0, m = r == 0 ? ns_of(st.st_mtim) : 0;
            if (r == 0 && (st.st_dev != k->dev || st.st_ino != k->ino || ns_of(st.st_ctim) != ns_of(k->ctim) ||
                           (a > m ? a : m) != k->used_ns)) {
                out->n_busy++; /* replaced by a put, or used, since the scan */
                continue;
            }
            if (r == 0 && (r = unlink(k->e.path)) == 0) kg_cache_ident_remove_(k->e.path);
            if (r != 0 && errno != ENOENT) {
                if (s == KG_OK) s = kg_err(KG_ERR_IO, "cache: cannot remove '%s': %s", k->e.path, strerror(errno));
                continue;
            }
            n_left--;
            left -= k->e.file_size;
            if (r != 0) continue; /* removed by someone else meanwhile */
            out->n_removed++;
            out->bytes_removed += k->e.file_size;
            if (fn && fn(&k->e, ctx)) break;
        }
    }
    out->n_left = n_left;
    out->bytes_left = left;
    for (size_t i = 0; i < cs.n; i++) free((char *)cs.v[i].e.path);
    free(cs.v);
    return s;
}

/* ─────────────────────────── the usage file ─────────────────────────── */

typedef struct usage {
    int fd;
    bool known;         /* the file held an estimate (16 bytes) */
    uint64_t est, next;
} usage;

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i); }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

/* Opens, locks and reads the usage file; false (nothing held) if it cannot
 * be opened or locked. */
static bool usage_lock(const kg_cache *c, usage *u)
{
    char path[PATH_MAX];
    *u = (usage){.fd = -1};
    if (snprintf(path, sizeof path, "%s" USAGE_NAME, c->dir) >= (int)sizeof path) return false;
    u->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (u->fd < 0) return false;
    int r;
    while ((r = flock(u->fd, LOCK_EX)) != 0 && errno == EINTR) {}
    uint8_t b[17];
    if (r != 0) {
        close(u->fd);
        return false;
    }
    if (pread(u->fd, b, sizeof b, 0) == 16) {
        u->known = true;
        u->est = get64(b);
        u->next = get64(b + 8);
    }
    return true;
}

/* Writes est and next back (when `write`), then unlocks. */
static void usage_unlock(usage *u, bool write)
{
    uint8_t b[16];
    put64(b, u->est);
    put64(b + 8, u->next);
    if (write && pwrite(u->fd, b, 16, 0) == 16 && !u->known && ftruncate(u->fd, 16) != 0) {}
    close(u->fd);
}

/* After a walk that left `left` bytes: est := left plus whatever puts added
 * since the walk began (when est was `est0`, unless !known0). */
static void usage_finish(const kg_cache *c, bool known0, uint64_t est0, uint64_t left)
{
    usage u;
    if (!usage_lock(c, &u)) return;
    uint64_t added = known0 && u.known && u.est >= est0 ? u.est - est0 : 0;
    u.est = sat_add(left, added);
    u.next = left > c->max_size && c->max_size ? sat_add(u.est, slack(c->max_size)) : 0;
    usage_unlock(&u, true);
}

void kg_cache_after_put_(kg_cache *c, uint64_t file_bytes)
{
    uint64_t max = c->max_size;
    if (!max) return;
    usage u;
    if (!usage_lock(c, &u)) return;
    uint64_t est = u.known ? sat_add(u.est, file_bytes) : max; /* unknown: as if at the limit */
    bool walk = !u.known || (est > max && est >= u.next);
    u.est = est;
    if (walk) u.next = sat_add(est, slack(max)); /* ours: others hold off */
    usage_unlock(&u, true);
    if (!walk) return;
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", kg_last_error());
    kg_cache_gc_stats st;
    bool counted;
    collect_garbage(c, low_water(max), AUTO_GRACE_S, NULL, NULL, &st, &counted);
    if (counted) usage_finish(c, true, est, st.bytes_left); /* else next holds the next walk back */
    kg_err(KG_OK, "%s", saved);
}

kg_status kg_cache_gc(kg_cache *c, uint64_t max_size, kg_cache_visit fn, void *ctx, kg_cache_gc_stats *out)
{
    kg_cache_gc_stats st;
    if (out) *out = (kg_cache_gc_stats){0};
    if (!c) return kg_err(KG_ERR_ARG, "kg_cache_gc: NULL cache");
    usage u;
    bool known0 = false;
    uint64_t est0 = 0;
    if (usage_lock(c, &u)) {
        known0 = u.known;
        est0 = u.est;
        usage_unlock(&u, false);
    }
    bool counted;
    kg_status s = collect_garbage(c, max_size, 0, fn, ctx, &st, &counted);
    if (counted) usage_finish(c, known0, est0, st.bytes_left);
    if (out) *out = st;
    if (s == KG_OK) kg_err_clear();
    return s;
}
