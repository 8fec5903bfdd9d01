/*
 * cache.c — the on-disk cache of compiled artifacts (keys: cache_key.c).
 *
 * Requires: a directory of our own (0700, owned by us). Produces: verified
 * payloads by (key, kind). Invalidates nothing: entries are immutable once
 * renamed into place; a put replaces a whole file.
 *
 * ── Layout ──
 *
 *   <dir>/<h[0..1]>/<h[2..31]>.<kind>     an entry; h = kg_key_hex(key)
 *   <dir>/<h[0..1]>/.tmp-XXXXXX           a put in progress (or a dead one's)
 *
 * Subdirectories are created (mode 0700) by the first put into them. Names
 * that match neither pattern are foreign: never read, listed or removed.
 *
 * ── The entry file (all integers little-endian) ──
 *
 *   offset  field      type      notes
 *   ------  ---------  --------  -------------------------------------------
 *   0       magic      u8[8]     "KGCACHE\0"
 *   8       version    u32       KG_CACHE_FORMAT (1)
 *   12      reserved   u32       0
 *   16      kind       u8[16]    the kind, NUL-padded; equals the file name's
 *   32      key_hi     u64       the full key; equals the file name's
 *   40      key_lo     u64
 *   48      size       u64       payload bytes; equals file size - 64
 *   56      hash       u64       XXH3-64 (seed 0) of the payload
 *   64      payload    u8[size]
 *
 * Every header byte is checked on every read: an entry with any field wrong
 * is a miss, and it is removed (only if the name still holds the file that
 * was read: a concurrent put may have replaced it with a good one).
 *
 * ── Writing ──
 *
 * A put creates a mkstemp file in the entry's subdirectory, flocks it,
 * writes header and payload, rename()s it over the entry's name and only
 * then closes it (dropping the lock): readers see the old file or the new
 * one, whole. Concurrent puts of one key each rename their own temporary
 * file; the last rename wins and all are valid. A temporary file that can
 * be flocked has no writer (it died), so sweep and clear remove exactly
 * those. When the subdirectory or the temporary file vanishes under a put
 * anyway (a clear between mkdir and mkstemp, or between mkstemp and flock),
 * the put starts again, up to PUT_TRIES times.
 *
 * No fsync: a crash may lose a recent entry or leave a torn one, and a torn
 * one fails the size or hash check on the next read, so durability buys
 * nothing for a cache (and fsync costs milliseconds per put).
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#define HDR_SIZE 64
#define MAGIC "KGCACHE" /* with its NUL: 8 bytes */
#define TMP_PREFIX ".tmp-"
#define PUT_TRIES 8

_Static_assert(sizeof MAGIC == 8, "magic is 8 bytes");

struct kg_cache {
    char *dir; /* no trailing slash */
};

/* ─────────────────────────── names ─────────────────────────── */

static bool valid_kind(const char *k)
{
    if (!k) return false;
    size_t n = 0;
    for (; k[n]; n++)
        if (n >= KG_CACHE_KIND_MAX || !((k[n] >= 'a' && k[n] <= 'z') || (k[n] >= '0' && k[n] <= '9'))) return false;
    return n > 0;
}

static kg_status bad_kind(const char *kind)
{
    char shown[80];
    return kg_err(KG_ERR_ARG, "cache: kind '%s' is not 1 to %d characters of [a-z0-9]",
                  kind ? kg_escape(shown, sizeof shown, kind, strlen(kind), 20) : "(null)", KG_CACHE_KIND_MAX);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

static bool is_sub_name(const char *s) { return hexval(s[0]) >= 0 && hexval(s[1]) >= 0 && !s[2]; }

/* Parses "<30 hex>.<kind>" in subdirectory `sub` (2 hex) into key and kind. */
static bool parse_entry_name(const char *sub, const char *name, kg_key *key, char kind[KG_CACHE_KIND_MAX + 1])
{
    char hex[32];
    memcpy(hex, sub, 2);
    for (int i = 0; i < 30; i++) if (hexval(hex[2 + i] = name[i]) < 0) return false;
    if (name[30] != '.' || !valid_kind(name + 31)) return false;
    uint64_t w[2] = {0, 0};
    for (int i = 0; i < 32; i++) w[i / 16] = w[i / 16] << 4 | (uint64_t)hexval(hex[i]);
    *key = (kg_key){w[0], w[1]};
    strcpy(kind, name + 31);
    return true;
}

/* <dir>/<2 hex>/<30 hex>.<kind>; false (message set) if it does not fit. */
static bool entry_path(const kg_cache *c, kg_key key, const char *kind, char path[PATH_MAX])
{
    char h[33];
    kg_key_hex(key, h);
    int n = snprintf(path, PATH_MAX, "%s/%.2s/%s.%s", c->dir, h, h + 2, kind);
    if (n < 0 || n >= PATH_MAX) {
        kg_err(KG_ERR_ARG, "cache: entry path under '%s' is too long", c->dir);
        return false;
    }
    return true;
}

/* ─────────────────────────── open ─────────────────────────── */

static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s) { memcpy(s, a, la); memcpy(s + la, b, lb + 1); }
    return s;
}

/* mkdir -p, each created component mode 0700. */
static kg_status make_dirs(char *path)
{
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p) continue;
        char save = *p;
        *p = 0;
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            kg_status s = kg_err(KG_ERR_IO, "cache: cannot create directory '%s': %s", path, strerror(errno));
            *p = save;
            return s;
        }
        *p = save;
        if (!save) return KG_OK;
    }
}

/* The directory must be ours and writable by no one else (or be a symlink to
 * such a directory). */
static kg_status check_dir(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) != 0)
        return kg_err(KG_ERR_IO, "cache directory '%s': %s", dir, strerror(errno));
    const char *what = "";
    if (S_ISLNK(st.st_mode)) {
        what = " (the target of the symlink)";
        if (stat(dir, &st) != 0)
            return kg_err(KG_ERR_IO, "cache directory '%s' is a symlink whose target cannot be used: %s",
                          dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return kg_err(KG_ERR_IO, "cache directory '%s'%s is not a directory; set KGEN_CACHE_DIR to a directory",
                      dir, what);
    if (st.st_uid != geteuid())
        return kg_err(KG_ERR_IO,
                      "cache directory '%s'%s is owned by uid %u, not by you (uid %u); refusing to use it: "
                      "run 'chown %u %s' or set KGEN_CACHE_DIR to a directory of your own",
                      dir, what, (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)geteuid(), dir);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return kg_err(KG_ERR_IO,
                      "cache directory '%s'%s is writable by group or others (mode %04o); refusing to use it: "
                      "run 'chmod 700 %s'",
                      dir, what, (unsigned)(st.st_mode & 07777), dir);
    return KG_OK;
}

kg_status kg_cache_open(const char *dir, kg_cache **out)
{
    if (!out) return kg_err(KG_ERR_ARG, "kg_cache_open: NULL output");
    *out = NULL;
    char *d;
    const char *e;
    if (dir && *dir) d = strdup(dir);
    else if (dir) return kg_err(KG_ERR_ARG, "cache: the directory name is empty");
    else if ((e = getenv("KGEN_CACHE_DIR")) && *e) d = strdup(e);
    else if ((e = getenv("XDG_CACHE_HOME")) && e[0] == '/') d = concat(e, "/kgen");
    else if ((e = getenv("HOME")) && *e) d = concat(e, "/.cache/kgen");
    else return kg_err(KG_ERR_ARG, "cache: no cache directory: set KGEN_CACHE_DIR (or HOME)");
    if (!d) return kg_err(KG_ERR_NOMEM, "cache: out of memory");
    for (size_t n = strlen(d); n > 1 && d[n - 1] == '/'; n--) d[n - 1] = 0;
    kg_status s = make_dirs(d);
    if (s == KG_OK) s = check_dir(d);
    kg_cache *c = s == KG_OK ? malloc(sizeof *c) : NULL;
    if (s == KG_OK && !c) s = kg_err(KG_ERR_NOMEM, "cache: out of memory");
    if (s != KG_OK) {
        free(d);
        return s;
    }
    c->dir = d;
    *out = c;
    return KG_OK;
}

void kg_cache_close(kg_cache *c)
{
    if (!c) return;
    free(c->dir);
    free(c);
}

const char *kg_cache_dir(const kg_cache *c) { return c ? c->dir : ""; }

/* ─────────────────────────── read ─────────────────────────── */

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }

static void make_header(uint8_t h[HDR_SIZE], kg_key key, const char *kind, const void *data, size_t size)
{
    memset(h, 0, HDR_SIZE);
    memcpy(h, MAGIC, 8);
    put32(h + 8, KG_CACHE_FORMAT);
    memcpy(h + 16, kind, strlen(kind));
    put64(h + 32, key.hi);
    put64(h + 40, key.lo);
    put64(h + 48, size);
    put64(h + 56, XXH3_64bits(size ? data : "", size));
}

/* NULL if the header and payload are right for (key, kind); else the
 * problem, written into `why`. */
static const char *check_entry(const uint8_t *h, uint64_t payload_size, kg_key key, const char *kind,
                               const void *payload, char *why, size_t cap)
{
    char k[16] = {0};
    memcpy(k, kind, strlen(kind));
    if (memcmp(h, MAGIC, 8) != 0) snprintf(why, cap, "bad magic");
    else if (get32(h + 8) != KG_CACHE_FORMAT)
        snprintf(why, cap, "format version %" PRIu32 ", not %d", get32(h + 8), KG_CACHE_FORMAT);
    else if (get32(h + 12) != 0) snprintf(why, cap, "reserved header field is not 0");
    else if (memcmp(h + 16, k, 16) != 0) snprintf(why, cap, "the header's kind is not '%s'", kind);
    else if (get64(h + 32) != key.hi || get64(h + 40) != key.lo) snprintf(why, cap, "the header's key is not the file name's");
    else if (get64(h + 48) != payload_size)
        snprintf(why, cap, "the header says %" PRIu64 " payload bytes, the file holds %" PRIu64, get64(h + 48),
                 payload_size);
    else if (XXH3_64bits(payload_size ? payload : "", payload_size) != get64(h + 56))
        snprintf(why, cap, "payload hash mismatch");
    else return NULL;
    return why;
}

/* Reads (or writes) all of iov[0..n): again after a short transfer. */
static bool io_all(int fd, struct iovec *iov, int n, bool write)
{
    while (n > 0) {
        ssize_t r = write ? writev(fd, iov, n) : readv(fd, iov, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { if (r == 0) errno = EIO; return false; }
        for (size_t left = (size_t)r; n > 0 && (left || iov->iov_len == 0);) {
            size_t k = left < iov->iov_len ? left : iov->iov_len;
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= k;
            left -= k;
            if (iov->iov_len == 0) { iov++; n--; }
        }
    }
    return true;
}

/* Removes a bad entry, unless its name now holds another file (a put's). */
static void remove_bad(const char *path, const struct stat *read_st)
{
    struct stat now;
    if (lstat(path, &now) == 0 && now.st_ino == read_st->st_ino && now.st_dev == read_st->st_dev) unlink(path);
}

/* Reads and verifies one entry. KG_OK: *data (malloc'd) / *size hold the
 * payload. KG_ERR_NOTFOUND: absent, or bad (removed; `why` says why). */
static kg_status read_entry(const char *path, kg_key key, const char *kind, void **data, size_t *size, char *why,
                            size_t cap)
{
    why[0] = 0;
    int fd;
    struct stat st;
    kg_status os = kg_open_regular(path, O_NOFOLLOW, &fd, &st);
    if (os) return os;
    uint8_t h[HDR_SIZE];
    void *buf = NULL;
    uint64_t fsize = (uint64_t)st.st_size, psize = fsize >= HDR_SIZE ? fsize - HDR_SIZE : 0;
    if (fsize < HDR_SIZE) snprintf(why, cap, "truncated: %" PRIu64 " bytes, shorter than the %d-byte header", fsize, HDR_SIZE);
    else if (psize > SIZE_MAX - 1 || !(buf = malloc(psize ? (size_t)psize : 1))) {
        close(fd);
        return kg_err(KG_ERR_NOMEM, "%s: out of memory for %" PRIu64 " bytes", path, psize);
    } else {
        struct iovec iov[2] = {{h, HDR_SIZE}, {buf, (size_t)psize}};
        if (!io_all(fd, iov, 2, false)) {
            int e = errno;
            close(fd);
            free(buf);
            return kg_err(KG_ERR_IO, "%s: read failed: %s", path, strerror(e));
        }
        check_entry(h, psize, key, kind, buf, why, cap);
    }
    close(fd);
    if (why[0]) {
        free(buf);
        remove_bad(path, &st);
        return kg_err(KG_ERR_NOTFOUND, "%s: bad cache entry (%s); removed it", path, why);
    }
    *data = buf;
    *size = (size_t)psize;
    return KG_OK;
}

kg_status kg_cache_get(kg_cache *c, kg_key key, const char *kind, void **data, size_t *size)
{
    if (data) *data = NULL;
    if (size) *size = 0;
    if (!c || !data || !size) return kg_err(KG_ERR_ARG, "kg_cache_get: NULL argument");
    if (!valid_kind(kind)) return bad_kind(kind);
    char path[PATH_MAX], why[160];
    if (!entry_path(c, key, kind, path)) return KG_ERR_ARG;
    return read_entry(path, key, kind, data, size, why, sizeof why);
}

/* ─────────────────────────── write ─────────────────────────── */

kg_status kg_cache_put(kg_cache *c, kg_key key, const char *kind, const void *data, size_t size)
{
    if (!c || (!data && size)) return kg_err(KG_ERR_ARG, "kg_cache_put: NULL argument");
    if (!valid_kind(kind)) return bad_kind(kind);
    char path[PATH_MAX], tmp[PATH_MAX];
    if (!entry_path(c, key, kind, path)) return KG_ERR_ARG;
    size_t sub_len = strlen(c->dir) + 3; /* "<dir>/xx" */
    if (sub_len + sizeof "/" TMP_PREFIX "XXXXXX" > PATH_MAX) return kg_err(KG_ERR_ARG, "cache: '%s' is too long", c->dir);
    uint8_t h[HDR_SIZE];
    make_header(h, key, kind, data, size);
    for (int attempt = 1;; attempt++) {
        memcpy(tmp, path, sub_len);
        strcpy(tmp + sub_len, "/" TMP_PREFIX "XXXXXX");
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && attempt < PUT_TRIES) { /* first put in this subdirectory */
            tmp[sub_len] = 0;
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                return kg_err(KG_ERR_IO, "cache: cannot create directory '%s': %s", tmp, strerror(errno));
            continue;
        }
        if (fd < 0) return kg_err(KG_ERR_IO, "cache: cannot create a temporary file in '%.*s': %s",
                                  (int)sub_len, path, strerror(errno));
        struct iovec iov[2] = {{h, HDR_SIZE}, {(void *)data, size}};
        int e = 0;
        if (flock(fd, LOCK_EX) != 0 || !io_all(fd, iov, 2, true)) {
            e = errno;
            unlink(tmp);
            close(fd);
            return kg_err(KG_ERR_IO, "cache: writing '%s' failed: %s", tmp, strerror(e));
        }
        if (rename(tmp, path) != 0) {
            e = errno;
            unlink(tmp);
        }
        if (close(fd) != 0 && !e) /* renamed: a bad entry would fail verification */
            return kg_err(KG_ERR_IO, "cache: writing '%s' failed: %s", path, strerror(errno));
        if (!e) return KG_OK;
        if (e != ENOENT || attempt >= PUT_TRIES) /* ENOENT: a clear removed our file before we locked it */
            return kg_err(KG_ERR_IO, "cache: renaming '%s' to '%s' failed: %s", tmp, path, strerror(e));
    }
}

/* ─────────────────────────── scanning ─────────────────────────── */

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static void names_free(names *ns)
{
    for (size_t i = 0; i < ns->n; i++) free(ns->v[i]);
    free(ns->v);
    *ns = (names){0};
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The names in `path` accepted by `want`, sorted. A missing directory is
 * empty (a concurrent clear). */
static kg_status list_dir(const char *path, bool (*want)(const char *), names *out)
{
    *out = (names){0};
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT) return KG_OK;
        return kg_err(KG_ERR_IO, "cache: cannot read directory '%s': %s", path, strerror(errno));
    }
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (!want(de->d_name)) continue;
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 64;
            char **v = realloc(out->v, cap * sizeof *v);
            if (!v) goto nomem;
            out->v = v;
            out->cap = cap;
        }
        if (!(out->v[out->n] = strdup(de->d_name))) goto nomem;
        out->n++;
        errno = 0;
    }
    int e = errno;
    closedir(d);
    if (e) {
        names_free(out);
        return kg_err(KG_ERR_IO, "cache: cannot read directory '%s': %s", path, strerror(e));
    }
    if (out->n) qsort(out->v, out->n, sizeof *out->v, cmp_str);
    return KG_OK;
nomem:
    closedir(d);
    names_free(out);
    return kg_err(KG_ERR_NOMEM, "cache: out of memory listing '%s'", path);
}

static bool want_sub(const char *n) { return is_sub_name(n); }
static bool want_tmp(const char *n) { return !strncmp(n, TMP_PREFIX, strlen(TMP_PREFIX)); }
static bool want_entry(const char *n)
{
    kg_key k;
    char kind[KG_CACHE_KIND_MAX + 1];
    return parse_entry_name("00", n, &k, kind);
}
static bool want_ours(const char *n) { return want_tmp(n) || want_entry(n); }

/* Visits the subdirectories in order: fn(c, "<dir>/xx", "xx", ctx). */
static kg_status each_sub(kg_cache *c, kg_status (*fn)(kg_cache *, const char *, const char *, void *, bool *),
                          void *ctx)
{
    names subs;
    kg_status s = list_dir(c->dir, want_sub, &subs);
    bool stop = false;
    for (size_t i = 0; s == KG_OK && !stop && i < subs.n; i++) {
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", c->dir, subs.v[i]) >= (int)sizeof sub)
            s = kg_err(KG_ERR_ARG, "cache: '%s' is too long", c->dir);
        else s = fn(c, sub, subs.v[i], ctx, &stop);
    }
    names_free(&subs);
    return s;
}

typedef struct foreach_ctx {
    unsigned flags;
    kg_cache_visit fn;
    void *ctx;
} foreach_ctx;

static kg_status foreach_sub(kg_cache *c, const char *sub, const char *subname, void *vctx, bool *stop)
{
    (void)c;
    foreach_ctx *fc = vctx;
    names ns;
    kg_status s = list_dir(sub, want_entry, &ns);
    for (size_t i = 0; s == KG_OK && i < ns.n; i++) {
        kg_cache_entry e = {0};
        char path[PATH_MAX], why[160];
        struct stat st;
        parse_entry_name(subname, ns.v[i], &e.key, e.kind);
        kg_key_hex(e.key, e.key_hex);
        if (snprintf(path, sizeof path, "%s/%s", sub, ns.v[i]) >= (int)sizeof path) {
            s = kg_err(KG_ERR_ARG, "cache: '%s' is too long", sub);
            break;
        }
        if (lstat(path, &st) != 0) {
            if (errno == ENOENT) continue; /* removed meanwhile */
            s = kg_err(KG_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if (!S_ISREG(st.st_mode)) continue;
        e.path = path;
        e.file_size = (uint64_t)st.st_size;
        e.size = e.file_size >= HDR_SIZE ? e.file_size - HDR_SIZE : 0;
        e.mtime = (int64_t)st.st_mtime;
        if (fc->flags & KG_CACHE_VERIFY) {
            void *data;
            size_t size;
            s = read_entry(path, e.key, e.kind, &data, &size, why, sizeof why);
            if (s == KG_OK) free(data);
            else if (s == KG_ERR_NOTFOUND && !why[0]) { s = KG_OK; continue; } /* removed meanwhile */
            else if (s == KG_ERR_NOTFOUND) { s = KG_OK; e.problem = why; }
            else break;
        }
        if (fc->fn(&e, fc->ctx)) { *stop = true; break; }
    }
    names_free(&ns);
    return s;
}

kg_status kg_cache_foreach(kg_cache *c, unsigned flags, kg_cache_visit fn, void *ctx)
{
    if (!c || !fn) return kg_err(KG_ERR_ARG, "kg_cache_foreach: NULL argument");
    foreach_ctx fc = {flags, fn, ctx};
    kg_status s = each_sub(c, foreach_sub, &fc);
    if (s == KG_OK) kg_err_clear();
    return s;
}

typedef struct remove_ctx {
    bool entries;      /* clear: entries too; sweep: stale temp files only */
    uint64_t n_entries, n_temp;
    kg_status first;   /* the first failure; going on past it */
} remove_ctx;

/* Removes the temporary file `path` if no put holds its lock. 1 removed,
 * 0 in use or gone, -1 failed (errno). */
static int remove_stale(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return errno == ENOENT ? 0 : -1;
    int r = 0;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) r = unlink(path) == 0 ? 1 : errno == ENOENT ? 0 : -1;
    else if (errno != EWOULDBLOCK) r = -1;
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

static kg_status remove_sub(kg_cache *c, const char *sub, const char *subname, void *vctx, bool *stop)
{
    (void)c; (void)subname; (void)stop;
    remove_ctx *rc = vctx;
    names ns;
    kg_status s = list_dir(sub, rc->entries ? want_ours : want_tmp, &ns);
    if (s != KG_OK) return s;
    for (size_t i = 0; i < ns.n; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", sub, ns.v[i]) >= (int)sizeof path) continue;
        bool tmp = want_tmp(ns.v[i]);
        int r = tmp ? remove_stale(path) : unlink(path) == 0 ? 1 : errno == ENOENT ? 0 : -1;
        if (r > 0) ++*(tmp ? &rc->n_temp : &rc->n_entries);
        else if (r < 0 && rc->first == KG_OK)
            rc->first = kg_err(KG_ERR_IO, "cache: cannot remove '%s': %s", path, strerror(errno));
    }
    names_free(&ns);
    if (rc->entries) rmdir(sub); /* fails harmlessly if a foreign file or a new entry is there */
    return KG_OK;
}

kg_status kg_cache_sweep(kg_cache *c, uint64_t *n_removed)
{
    if (n_removed) *n_removed = 0;
    if (!c) return kg_err(KG_ERR_ARG, "kg_cache_sweep: NULL cache");
    remove_ctx rc = {.entries = false};
    kg_status s = each_sub(c, remove_sub, &rc);
    if (n_removed) *n_removed = rc.n_temp;
    if (s == KG_OK) s = rc.first;
    if (s == KG_OK) kg_err_clear();
    return s;
}

kg_status kg_cache_clear(kg_cache *c, uint64_t *n_entries, uint64_t *n_temp)
{
    if (n_entries) *n_entries = 0;
    if (n_temp) *n_temp = 0;
    if (!c) return kg_err(KG_ERR_ARG, "kg_cache_clear: NULL cache");
    remove_ctx rc = {.entries = true};
    kg_status s = each_sub(c, remove_sub, &rc);
    if (n_entries) *n_entries = rc.n_entries;
    if (n_temp) *n_temp = rc.n_temp;
    if (s == KG_OK) s = rc.first;
    if (s == KG_OK) kg_err_clear();
    return s;
}
