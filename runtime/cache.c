/*
 * cache.c — the on-disk cache of compiled artifacts (keys: cache_key.c).
 *
 * Requires: a directory of our own (0700, owned by us). Produces: verified
 * payloads by (key, kind), as a malloc'd copy (kg_cache_get) or, for
 * trailer entries, as a path to a file that can be used in place
 * (kg_cache_get_path: dlopen it). Invalidates nothing: entries are immutable
 * once renamed into place; a put replaces a whole file. (The size limit
 * removes whole entries: runtime/cache_gc.c.)
 *
 * ── Layout ──
 *
 *   <dir>/<h[0..1]>/<h[2..31]>.<kind>     an entry; h = kg_key_hex(key)
 *   <dir>/<h[0..1]>/.tmp-XXXXXX           a put in progress (or a dead one's)
 *   <dir>/<h[0..1]>/.id-<h[2..31]>.<kind> the entry's identity record
 *                                         (cache_ident.c; below)
 *   <dir>/.usage                          the size estimate (cache_gc.c)
 *
 * Subdirectories are created (mode 0700) by the first put into them. Names
 * that match none of these patterns are foreign: never read, listed or
 * removed.
 *
 * ── The entry file (all integers little-endian) ──
 *
 * An entry is a payload and a 64-byte record describing it. The record
 * comes first (a header entry, written by kg_cache_put) or last (a trailer
 * entry, written by kg_cache_put_path: the payload starts at offset 0, so a
 * shared object stored this way is an ELF file that dlopen() loads in place;
 * ELF loaders ignore bytes past what the program headers map).
 *
 *   header entry:   [record 64][payload size]
 *   trailer entry:  [payload size][record 64]
 *
 *   record  field      type      notes
 *   ------  ---------  --------  -------------------------------------------
 *   0       magic      u8[8]     "KGCACHE\0"
 *   8       version    u32       KG_CACHE_FORMAT (1)
 *   12      reserved   u32       0
 *   16      kind       u8[16]    the kind, NUL-padded; equals the file name's
 *   32      key_hi     u64       the full key; equals the file name's
 *   40      key_lo     u64
 *   48      size       u64       payload bytes; equals file size - 64
 *   56      hash       u64       XXH3-64 (seed 0) of the payload
 *
 * The layout is told by content, never by kind or name: a file that starts
 * with the magic is a header entry; any other file is read as a trailer
 * entry (its last 64 bytes must be the record). So a trailer entry's payload
 * must not start with the magic: kg_cache_put_path refuses such a source
 * (kg_cache_put stores any payload). An empty payload gives the same 64
 * bytes in both layouts. A file shorter than 64 bytes is bad.
 *
 * Every record byte is checked on every read, in both layouts, and the
 * payload hash too: an entry with any field wrong is a miss, reported as
 * KG_ERR_CORRUPT (not KG_ERR_NOTFOUND), and it is removed (only if the name
 * still holds the file that was read: a concurrent put may have replaced
 * it with a good one).
 *
 * Use. An entry's last use is the later of its atime and mtime. Entries
 * are opened with O_NOATIME, so reading (verify, foreach) is not a use; a
 * hit (kg_cache_get, kg_cache_get_path) sets the atime itself (futimens;
 * not when it is already within the last second), which works under
 * noatime and relatime mounts alike. The collection removes least recently
 * used entries first. kg_cache_get reads
 * either layout; kg_cache_get_path accepts only trailer entries (a header
 * entry is a miss there, and is left alone: it is valid, just not usable in
 * place); foreach, verify, sweep and clear treat both alike.
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
 * kg_cache_put_path takes a finished file (src) that the caller gives up.
 * When src is ours (owned by the effective user), has no other name (one
 * link) and can be opened for writing, it hashes src, appends the trailer,
 * chmods it 0600 and rename()s it onto the entry's name: no copy. The
 * complete file appears at once, as above. Otherwise (rename fails with
 * EXDEV: another filesystem; or src is someone else's, has other links, or
 * is read-only), it copies src into a temporary file exactly as a put does
 * (hashing while copying), appends the trailer, renames, and then unlinks
 * src. Both ways the entry is a mode 0600 file of ours. On failure src is
 * left as it was (an appended trailer is cut off again, the mode restored).
 *
 * No fsync: a crash may lose a recent entry or leave a torn one, and a torn
 * one fails the size or hash check on the next read, so durability buys
 * nothing for a cache (and fsync costs milliseconds per put).
 *
 * ── Identity records: hashing the bulk once per file ──
 *
 * Opening a compiled model from the cache (gen/loader.c) used to hash the
 * whole entry every time: ~98 MB for SmolLM2-135M, nearly all of it the
 * weights. kg_cache_get_path_ident_ (cache_int.h) hashes the bulk (a range
 * of the payload its caller names once the payload is verified: the
 * weights) only when the entry file is not the very file it last verified
 * in full; everything else is checked on every open, as ever.
 *
 *   every open:  the 64-byte record (every field, as any read), the file's
 *                identity: st_dev, st_ino, st_size, st_mtim, st_ctim
 *                (nanoseconds), and the XXH3-64 of the payload outside
 *                the bulk (a model's code, descriptor, tokenizer and ELF
 *                headers), against the identity record's;
 *   full hash:   when there is no good identity record for that identity
 *                and record hash (none yet, a damaged or foreign one, or a
 *                different identity), or the part outside the bulk does
 *                not match it: the whole payload against the record's
 *                hash, as kg_cache_get_path; a mismatch is KG_ERR_CORRUPT
 *                (removed). A match writes a new identity record.
 *
 * Why the identity stands for the bulk's bytes: any write to the file, by
 * any means the kernel sees (write, mmap, truncate; a replacing rename
 * gives a new inode), sets its mtime and ctime to the time of the write;
 * no process can set a ctime back (short of setting the system clock),
 * and a writer that sets the mtime back sets the ctime anew doing it. The
 * one catch is the timestamps' granularity: a write within the same tick
 * as the last change would leave them as they were (kernels before 6.13
 * stamp with a coarse clock: ~4 ms; some file systems keep whole
 * seconds). So an identity is recorded only for an entry whose mtime is
 * at least IDENT_SETTLE_NS (2 s) older than the start of the pass that
 * verified it: a write during or after that pass then moves the mtime,
 * and the open records nothing if the mtime or size moved while it ran.
 * kg_cache_put_path stamps the entries it writes with an mtime 2 s before
 * the time of writing (stamp_settled), so their first verification can
 * record them; a file written since (a fresh mtime) is hashed in full
 * until its mtime is 2 s old.
 * A hit's use mark (futimens of the atime, mark_used) sets the ctime too,
 * so the open records the identity anew after it, when the size and mtime
 * are still those it checked. The gap left: a writer that also sets the
 * mtime back, finishing within one timestamp tick of an open's use mark.
 * What the identity cannot see at all: bytes that change without the
 * file system knowing (media corruption, a bad disk or controller, writes
 * to the block device underneath). kg_cache_get_path, kg_cache_get and
 * kg_cache_foreach with KG_CACHE_VERIFY (`kgen cache verify`) hash every
 * byte every time and find those; a bad entry they remove takes its
 * identity record with it.
 */
#include "cache_int.h"

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
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#define HDR_SIZE 64
#define MAGIC "KGCACHE" /* with its NUL: 8 bytes */
#define TMP_PREFIX ".tmp-"
#define PUT_TRIES 8
#define STREAM_CHUNK ((size_t)256 << 10) /* bytes per read when hashing or copying a file */
/* An identity is recorded only for an entry last written at least this long
 * before the verifying pass began (see "Identity records"). */
#define IDENT_SETTLE_NS ((int64_t)2000000000)

_Static_assert(sizeof MAGIC == 8, "magic is 8 bytes");

#ifndef O_NOATIME /* Linux's; elsewhere reads may count as uses (the kernel's atime rules) */
#define O_NOATIME 0
#endif

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

/* "<dir>/xx": the length of the entry's subdirectory's path. */
static size_t sub_len_of(const kg_cache *c) { return strlen(c->dir) + 3; }

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
    *c = (kg_cache){.dir = d};
    if ((s = kg_cache_limit_init_(c)) != KG_OK) {
        kg_cache_close(c);
        return s;
    }
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

/* The 64-byte record (header or trailer) for a payload of `size` bytes
 * whose XXH3-64 is `hash`. */
static void make_record(uint8_t h[HDR_SIZE], kg_key key, const char *kind, uint64_t size, uint64_t hash)
{
    memset(h, 0, HDR_SIZE);
    memcpy(h, MAGIC, 8);
    put32(h + 8, KG_CACHE_FORMAT);
    memcpy(h + 16, kind, strlen(kind));
    put64(h + 32, key.hi);
    put64(h + 40, key.lo);
    put64(h + 48, size);
    put64(h + 56, hash);
}

static uint64_t hash_mem(const void *data, size_t size) { return XXH3_64bits(size ? data : "", size); }

/* NULL if every record field but the hash is right for (key, kind) and a
 * payload of `payload_size` bytes; else the problem, written into `why`.
 * `where` is "header" or "trailer". */
static const char *check_record(const uint8_t *h, const char *where, uint64_t payload_size, kg_key key,
                                const char *kind, char *why, size_t cap)
{
    char k[16] = {0};
    memcpy(k, kind, strlen(kind));
    if (memcmp(h, MAGIC, 8) != 0)
        snprintf(why, cap, "bad magic: the file starts with no header and ends with no trailer");
    else if (get32(h + 8) != KG_CACHE_FORMAT)
        snprintf(why, cap, "%s format version %" PRIu32 ", not %d", where, get32(h + 8), KG_CACHE_FORMAT);
    else if (get32(h + 12) != 0) snprintf(why, cap, "reserved %s field is not 0", where);
    else if (memcmp(h + 16, k, 16) != 0) snprintf(why, cap, "the %s's kind is not '%s'", where, kind);
    else if (get64(h + 32) != key.hi || get64(h + 40) != key.lo)
        snprintf(why, cap, "the %s's key is not the file name's", where);
    else if (get64(h + 48) != payload_size)
        snprintf(why, cap, "the %s says %" PRIu64 " payload bytes, the file holds %" PRIu64, where, get64(h + 48),
                 payload_size);
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
            if (k) iov->iov_base = (char *)iov->iov_base + k; /* never NULL + 0 (an empty put) */
            iov->iov_len -= k;
            left -= k;
            if (iov->iov_len == 0) { iov++; n--; }
        }
    }
    return true;
}

/* pread / pwrite all `n` bytes at `off`; false with errno set (EIO for an
 * early end of file). */
static bool pio_all(int fd, void *buf, size_t n, uint64_t off, bool write)
{
    char *p = buf;
    while (n > 0) {
        size_t want = n < ((size_t)1 << 30) ? n : (size_t)1 << 30;
        ssize_t r = write ? pwrite(fd, p, want, (off_t)off) : pread(fd, p, want, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { if (r == 0) errno = EIO; return false; }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return true;
}

/* Feeds bytes [off, off + n) of `in` to `st`, read in pieces of up to
 * `cap` bytes through `buf`; when out >= 0 the bytes are also written to
 * `out` from offset out_off. Returns 0, or what failed: 'r' (read; errno),
 * 'w' (write; errno), 'm' (the hash state). */
static int stream_feed(int in, uint64_t off, uint64_t n, int out, uint64_t out_off, XXH3_state_t *st, void *buf,
                       size_t cap)
{
    for (uint64_t done = 0; done < n;) {
        size_t chunk = n - done < cap ? (size_t)(n - done) : cap;
        if (!pio_all(in, buf, chunk, off + done, false)) return 'r';
        if (out >= 0 && !pio_all(out, buf, chunk, out_off + done, true)) return 'w';
        if (XXH3_64bits_update(st, buf, chunk) != XXH_OK) return 'm';
        done += chunk;
    }
    return 0;
}

/* XXH3-64 of the bytes of `in` in nr ranges (r[2i] offset, r[2i+1] length),
 * one after another, read in STREAM_CHUNK pieces; when out >= 0 the bytes
 * are also written to `out` from offset 0. Returns 0, or what failed: 'r'
 * (read; errno), 'w' (write; errno), 'm' (memory). */
static int stream_hash_ranges(int in, const uint64_t *r, int nr, int out, uint64_t *hash)
{
    uint64_t most = 0;
    for (int i = 0; i < nr; i++) most = r[2 * i + 1] > most ? r[2 * i + 1] : most;
    size_t cap = most < STREAM_CHUNK ? (size_t)most : STREAM_CHUNK;
    void *buf = malloc(cap ? cap : 1);
    XXH3_state_t *st = XXH3_createState();
    int rc = !buf || !st || XXH3_64bits_reset(st) != XXH_OK ? 'm' : 0;
    uint64_t at = 0; /* where range i goes in `out` */
    for (int i = 0; !rc && i < nr; at += r[2 * i + 1], i++)
        rc = stream_feed(in, r[2 * i], r[2 * i + 1], out, at, st, buf, cap ? cap : 1);
    if (!rc) *hash = XXH3_64bits_digest(st);
    int e = errno;
    XXH3_freeState(st);
    free(buf);
    errno = e;
    return rc;
}

/* XXH3-64 of bytes [off, off + n) of `in` (as stream_hash_ranges). */
static int stream_hash(int in, uint64_t off, uint64_t n, int out, uint64_t *hash)
{
    const uint64_t r[2] = {off, n};
    return stream_hash_ranges(in, r, 1, out, hash);
}

/* Records a use of the open entry `fd` (fstat'ed as `st`): its atime :=
 * now, mtime kept. Set explicitly because the kernel's own atime updates
 * are off (noatime) or rare (relatime: once a day) on most mounts; the
 * entry is ours, so this is allowed on a read-only descriptor. Skipped when
 * the atime is already within the last second (a hot entry: no syscall, no
 * inode write; the collection needs no finer order). A failure (a
 * read-only filesystem) only costs the collection's ordering. */
static void mark_used(int fd, const struct stat *st)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (st->st_atim.tv_sec <= now.tv_sec && st->st_atim.tv_sec >= now.tv_sec - 1) return;
    const struct timespec t[2] = {{.tv_nsec = UTIME_NOW}, {.tv_nsec = UTIME_OMIT}};
    futimens(fd, t);
}

/* Removes a bad entry and its identity record, unless its name now holds
 * another file (a put's). */
static void remove_bad(const char *path, const struct stat *read_st)
{
    struct stat now;
    if (lstat(path, &now) == 0 && now.st_ino == read_st->st_ino && now.st_dev == read_st->st_dev && unlink(path) == 0)
        kg_cache_ident_remove_(path);
}

/* An entry file opened for reading, its layout told and its record read. */
typedef struct entry_file {
    int fd;
    struct stat st;
    uint64_t psize;     /* payload bytes: file size - HDR_SIZE             */
    uint64_t poff;      /* where the payload starts: HDR_SIZE or 0         */
    bool trailer;       /* a trailer entry (the payload at offset 0)       */
    uint8_t rec[HDR_SIZE];
} entry_file;

/* Opens `path` and checks its record against (key, kind) (not the hash).
 * KG_OK: ef->fd is open (the caller closes it), and why[0] is set if the
 * entry is already known to be bad. KG_ERR_NOTFOUND (absent) / KG_ERR_IO:
 * nothing is open. O_NOATIME: reading is not using (a verify must not
 * reorder the collection); a hit records its use itself (mark_used).
 * O_NOATIME needs the file to be ours: without it for another's. */
static kg_status open_entry(const char *path, kg_key key, const char *kind, entry_file *ef, char *why, size_t cap)
{
    why[0] = 0;
    kg_status s = kg_open_regular(path, O_NOFOLLOW | O_NOATIME, &ef->fd, &ef->st);
    if (s == KG_ERR_IO && errno == EPERM) s = kg_open_regular(path, O_NOFOLLOW, &ef->fd, &ef->st);
    if (s) return s;
    uint64_t fsize = (uint64_t)ef->st.st_size;
    if (fsize < HDR_SIZE) {
        snprintf(why, cap, "truncated: %" PRIu64 " bytes, shorter than the %d-byte header", fsize, HDR_SIZE);
        return KG_OK;
    }
    ef->psize = fsize - HDR_SIZE;
    bool ok = pio_all(ef->fd, ef->rec, HDR_SIZE, 0, false);
    ef->trailer = ok && memcmp(ef->rec, MAGIC, 8) != 0;
    ef->poff = ef->trailer ? 0 : HDR_SIZE;
    if (ok && ef->trailer) ok = pio_all(ef->fd, ef->rec, HDR_SIZE, ef->psize, false);
    if (!ok) {
        int e = errno;
        close(ef->fd);
        return kg_err(KG_ERR_IO, "%s: read failed: %s", path, strerror(e));
    }
    check_record(ef->rec, ef->trailer ? "trailer" : "header", ef->psize, key, kind, why, cap);
    return KG_OK;
}

/* Closes ef; if why[0], removes the entry and returns KG_ERR_CORRUPT (a
 * miss); else, with `use`, records the use first. */
static kg_status close_entry(const char *path, entry_file *ef, const char *why, bool use)
{
    if (!why[0] && use) mark_used(ef->fd, &ef->st);
    close(ef->fd);
    if (!why[0]) return KG_OK;
    remove_bad(path, &ef->st);
    return kg_err(KG_ERR_CORRUPT, "%s: corrupt cache entry (%s); removed it", path, why);
}

/* Reads and verifies one entry (either layout), and records the use.
 * KG_OK: *data (malloc'd) / *size hold the payload. KG_ERR_NOTFOUND:
 * absent. KG_ERR_CORRUPT: bad (removed; `why` says why). */
static kg_status read_entry(const char *path, kg_key key, const char *kind, void **data, size_t *size, char *why,
                            size_t cap)
{
    entry_file ef;
    kg_status s = open_entry(path, key, kind, &ef, why, cap);
    if (s) return s;
    void *buf = NULL;
    if (!why[0]) {
        if (ef.psize > SIZE_MAX - 1 || !(buf = malloc(ef.psize ? (size_t)ef.psize : 1))) {
            close(ef.fd);
            return kg_err(KG_ERR_NOMEM, "%s: out of memory for %" PRIu64 " bytes", path, ef.psize);
        }
        if (!pio_all(ef.fd, buf, (size_t)ef.psize, ef.poff, false)) {
            int e = errno;
            close(ef.fd);
            free(buf);
            return kg_err(KG_ERR_IO, "%s: read failed: %s", path, strerror(e));
        }
        if (hash_mem(buf, (size_t)ef.psize) != get64(ef.rec + 56)) snprintf(why, cap, "payload hash mismatch");
    }
    if (why[0]) {
        free(buf);
        return close_entry(path, &ef, why, false);
    }
    close_entry(path, &ef, why, true);
    *data = buf;
    *size = (size_t)ef.psize;
    return KG_OK;
}

/* A header entry asked for in place: closes it; KG_ERR_NOTFOUND. */
static kg_status not_in_place(const char *path, entry_file *ef)
{
    close(ef->fd);
    return kg_err(KG_ERR_NOTFOUND,
                  "%s: a header entry (written by kg_cache_put): its payload is not at offset 0, so it "
                  "cannot be used in place",
                  path);
}

/* Hashes the nr ranges r of the open entry (stream_hash_ranges) and
 * compares with `want`: KG_OK with why[0] set on a mismatch, or, when the
 * file cannot be read (ef closed then), the error. */
static kg_status hash_check(const char *path, entry_file *ef, const uint64_t *r, int nr, uint64_t want,
                            char *why, size_t cap)
{
    uint64_t hash = 0;
    int rc = stream_hash_ranges(ef->fd, r, nr, -1, &hash);
    if (rc) {
        int e = errno;
        close(ef->fd);
        return rc == 'm' ? kg_err(KG_ERR_NOMEM, "%s: out of memory", path)
                         : kg_err(KG_ERR_IO, "%s: read failed: %s", path, strerror(e));
    }
    if (hash != want) snprintf(why, cap, "payload hash mismatch");
    return KG_OK;
}

/* Verifies one entry (either layout; with `in_place`, trailer entries only)
 * without holding its payload in memory: one pass of STREAM_CHUNK reads;
 * with `in_place` (a get_path: a use), a valid entry's use is recorded.
 * KG_OK: valid. KG_ERR_NOTFOUND: absent, or, with in_place, a header entry
 * (left alone). KG_ERR_CORRUPT: bad (removed; `why` says why). */
static kg_status verify_entry(const char *path, kg_key key, const char *kind, bool in_place, char *why, size_t cap)
{
    entry_file ef;
    kg_status s = open_entry(path, key, kind, &ef, why, cap);
    if (s) return s;
    if (!why[0] && in_place && !ef.trailer && ef.psize > 0) return not_in_place(path, &ef);
    if (!why[0]) {
        posix_fadvise(ef.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        const uint64_t all[2] = {ef.poff, ef.psize};
        if ((s = hash_check(path, &ef, all, 1, get64(ef.rec + 56), why, cap))) return s;
    }
    return close_entry(path, &ef, why, in_place);
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

/* kg_cache_get_path's arguments checked (path emptied first) and the
 * entry's path into p (PATH_MAX bytes), n its length, which fits cap */
static kg_status path_args(kg_cache *c, kg_key key, const char *kind, char *path, size_t cap, char *p, size_t *n)
{
    if (path && cap) path[0] = 0;
    if (!c || !path || !cap) return kg_err(KG_ERR_ARG, "kg_cache_get_path: NULL argument");
    if (!valid_kind(kind)) return bad_kind(kind);
    if (!entry_path(c, key, kind, p)) return KG_ERR_ARG;
    *n = strlen(p);
    if (*n >= cap)
        return kg_err(KG_ERR_ARG, "kg_cache_get_path: the path needs %zu bytes, the buffer has %zu", *n + 1, cap);
    return KG_OK;
}

kg_status kg_cache_get_path(kg_cache *c, kg_key key, const char *kind, char *path, size_t cap)
{
    char p[PATH_MAX], why[160];
    size_t n;
    kg_status s0 = path_args(c, key, kind, path, cap, p, &n);
    if (s0) return s0;
    kg_status s = verify_entry(p, key, kind, true, why, sizeof why);
    if (s == KG_OK) memcpy(path, p, n + 1);
    return s;
}

/* The same file, unchanged: device, inode, size, mtime and ctime equal. */
static bool same_file(const kg_cache_ident_ *a, const kg_cache_ident_ *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns &&
           a->ctime_ns == b->ctime_ns;
}

/* The payload's bytes outside [off, off + len), as two ranges (the payload
 * at offset 0, psize bytes; the bulk inside it). */
static void outside(uint64_t psize, uint64_t off, uint64_t len, uint64_t r[4])
{
    r[0] = 0, r[1] = off;
    r[2] = off + len, r[3] = psize - off - len;
}

/* See cache_int.h and "Identity records" above. */
kg_status kg_cache_get_path_ident_(kg_cache *c, kg_key key, const char *kind, kg_cache_bulk_fn_ bulk, void *ctx,
                                   char *path, size_t cap)
{
    char p[PATH_MAX], why[160];
    size_t n;
    kg_status s0 = path_args(c, key, kind, path, cap, p, &n);
    if (s0) return s0;
    entry_file ef;
    kg_status s = open_entry(p, key, kind, &ef, why, sizeof why);
    if (s) return s;
    if (!why[0] && !ef.trailer && ef.psize > 0) return not_in_place(p, &ef);
    kg_cache_ident_ id = {.key = key}, rec;
    uint64_t r[4];
    bool vouched = false, fresh = false; /* a record matched / is to be written */
    if (!why[0]) {
        kg_cache_ident_of_(&ef.st, &id);
        id.hash = get64(ef.rec + 56);
        if (kg_cache_ident_read_(p, key, &rec) && same_file(&rec, &id) && rec.hash == id.hash &&
            rec.bulk_off <= ef.psize && rec.bulk_len <= ef.psize - rec.bulk_off) {
            outside(ef.psize, rec.bulk_off, rec.bulk_len, r);
            if ((s = hash_check(p, &ef, r, 2, rec.rest_hash, why, sizeof why))) return s;
            if ((vouched = !why[0])) id = rec;
            why[0] = 0; /* a mismatch outside the bulk: the whole payload decides, below */
        }
    }
    if (!why[0] && !vouched) {
        struct timespec t0; /* before the pass: a write during it moves the mtime past a settled one */
        clock_gettime(CLOCK_REALTIME, &t0);
        const bool settled = (int64_t)t0.tv_sec * 1000000000 + t0.tv_nsec - id.mtime_ns >= IDENT_SETTLE_NS;
        posix_fadvise(ef.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        const uint64_t all[2] = {0, ef.psize};
        if ((s = hash_check(p, &ef, all, 1, id.hash, why, sizeof why))) return s;
        /* verified: now the bulk may be read from it, and the rest hashed */
        if (!why[0] && settled && bulk && bulk(ef.fd, ef.psize, &id.bulk_off, &id.bulk_len, ctx) &&
            id.bulk_len > 0 && id.bulk_off <= ef.psize && id.bulk_len <= ef.psize - id.bulk_off) {
            outside(ef.psize, id.bulk_off, id.bulk_len, r);
            fresh = stream_hash_ranges(ef.fd, r, 2, -1, &id.rest_hash) == 0;
        }
    }
    if (why[0]) return close_entry(p, &ef, why, false);
    mark_used(ef.fd, &ef.st);
    /* Record the identity as it is now, after the use mark (which sets the
     * ctime): only if nothing but the times of the mark changed since the
     * check (a write sets the mtime). */
    struct stat now;
    if ((vouched || fresh) && fstat(ef.fd, &now) == 0) {
        kg_cache_ident_ cur = id;
        kg_cache_ident_of_(&now, &cur);
        if (cur.dev == id.dev && cur.ino == id.ino && cur.size == id.size && cur.mtime_ns == id.mtime_ns &&
            (fresh || cur.ctime_ns != id.ctime_ns))
            kg_cache_ident_write_(p, sub_len_of(c), &cur);
    }
    close(ef.fd);
    memcpy(path, p, n + 1);
    return KG_OK;
}

/* ─────────────────────────── write ─────────────────────────── */

/* Writes an entry (or an identity record) through a temporary file in the
 * subdirectory of `path` (its first sub_len bytes), locked until it is
 * renamed onto `path` (cache_int.h). */
kg_status kg_cache_put_via_tmp_(const char *path, size_t sub_len, kg_cache_fill_fn_ fill, void *ctx)
{
    char tmp[PATH_MAX];
    if (sub_len + sizeof "/" TMP_PREFIX "XXXXXX" > PATH_MAX)
        return kg_err(KG_ERR_ARG, "cache: '%.*s' is too long", (int)sub_len, path);
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
        int e = 0;
        if (flock(fd, LOCK_EX) != 0) {
            e = errno;
            unlink(tmp);
            close(fd);
            return kg_err(KG_ERR_IO, "cache: locking '%s' failed: %s", tmp, strerror(e));
        }
        kg_status s = fill(fd, tmp, ctx);
        if (s != KG_OK) {
            unlink(tmp);
            close(fd);
            return s;
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

typedef struct mem_src {
    const uint8_t *hdr;
    const void *data;
    size_t size;
} mem_src;

static kg_status fill_mem(int fd, const char *tmp, void *ctx)
{
    mem_src *m = ctx;
    struct iovec iov[2] = {{(void *)m->hdr, HDR_SIZE}, {(void *)m->data, m->size}};
    if (!io_all(fd, iov, 2, true)) return kg_err(KG_ERR_IO, "cache: writing '%s' failed: %s", tmp, strerror(errno));
    return KG_OK;
}

kg_status kg_cache_put(kg_cache *c, kg_key key, const char *kind, const void *data, size_t size)
{
    if (!c || (!data && size)) return kg_err(KG_ERR_ARG, "kg_cache_put: NULL argument");
    if (!valid_kind(kind)) return bad_kind(kind);
    char path[PATH_MAX];
    if (!entry_path(c, key, kind, path)) return KG_ERR_ARG;
    uint8_t h[HDR_SIZE];
    make_record(h, key, kind, size, hash_mem(data, size));
    mem_src m = {h, data, size};
    kg_status s = kg_cache_put_via_tmp_(path, sub_len_of(c), fill_mem, &m);
    if (s == KG_OK) kg_cache_after_put_(c, (uint64_t)size + HDR_SIZE);
    return s;
}

/* A trailer entry, fully written: its mtime := IDENT_SETTLE_NS before now,
 * so that its identity can be recorded from its first verification on
 * ("Identity records"): any later write moves the mtime to the time of
 * that write. (Failing that, it only waits the 2 s.) */
static void stamp_settled(int fd)
{
    struct timespec t[2] = {{.tv_nsec = UTIME_OMIT}, {0}};
    clock_gettime(CLOCK_REALTIME, &t[1]);
    t[1].tv_sec -= IDENT_SETTLE_NS / 1000000000;
    futimens(fd, t);
}

typedef struct file_src {
    int fd;
    const char *src;
    uint64_t size;
    kg_key key;
    const char *kind;
} file_src;

/* Copies src into the temporary file, hashing it on the way, and appends
 * the trailer. */
static kg_status fill_file(int fd, const char *tmp, void *ctx)
{
    file_src *f = ctx;
    uint64_t hash = 0;
    uint8_t h[HDR_SIZE];
    int r = stream_hash(f->fd, 0, f->size, fd, &hash);
    if (r == 'm') return kg_err(KG_ERR_NOMEM, "cache: out of memory copying '%s'", f->src);
    if (r == 'r') return kg_err(KG_ERR_IO, "cache: reading '%s' failed: %s", f->src, strerror(errno));
    make_record(h, f->key, f->kind, f->size, hash);
    if (r == 'w' || !pio_all(fd, h, HDR_SIZE, f->size, true))
        return kg_err(KG_ERR_IO, "cache: writing '%s' failed: %s", tmp, strerror(errno));
    stamp_settled(fd);
    return KG_OK;
}

/* Appends the trailer to src itself and renames it onto `path`. KG_OK, or
 * an error with src restored; *cross_fs when the rename failed with EXDEV
 * (src restored; no message set). */
static kg_status put_in_place(const char *path, size_t sub_len, const file_src *f, const struct stat *st,
                              bool *cross_fs)
{
    *cross_fs = false;
    uint64_t hash = 0;
    uint8_t h[HDR_SIZE];
    posix_fadvise(f->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    int r = stream_hash(f->fd, 0, f->size, -1, &hash);
    if (r == 'm') return kg_err(KG_ERR_NOMEM, "cache: out of memory reading '%s'", f->src);
    if (r) return kg_err(KG_ERR_IO, "cache: reading '%s' failed: %s", f->src, strerror(errno));
    make_record(h, f->key, f->kind, f->size, hash);
    const char *what = "appending the trailer to";
    int e = 0;
    if (!pio_all(f->fd, h, HDR_SIZE, f->size, true)) e = errno;
    else if (fchmod(f->fd, 0600) != 0) {
        e = errno;
        what = "chmod 600 of";
    } else {
        stamp_settled(f->fd);
    }
    for (int attempt = 1; !e; attempt++) {
        what = "renaming";
        if (rename(f->src, path) == 0) return KG_OK;
        e = errno;
        struct stat now;
        if (e != ENOENT || attempt >= PUT_TRIES) break;
        if (lstat(f->src, &now) != 0) break; /* src itself is gone */
        char sub[PATH_MAX]; /* the subdirectory is missing: the first put into it, or a clear */
        memcpy(sub, path, sub_len);
        sub[sub_len] = 0;
        if (mkdir(sub, 0700) != 0 && errno != EEXIST) { e = errno; what = "creating the subdirectory for"; break; }
        e = 0;
    }
    /* failed: give src back as it was */
    if (ftruncate(f->fd, (off_t)f->size) != 0 || fchmod(f->fd, st->st_mode & 07777) != 0) {}
    if (e == EXDEV) {
        *cross_fs = true;
        return KG_ERR_IO;
    }
    return kg_err(KG_ERR_IO, "cache: %s '%s' (to '%s') failed: %s", what, f->src, path, strerror(e));
}

kg_status kg_cache_put_path(kg_cache *c, kg_key key, const char *kind, const char *src)
{
    if (!c || !src) return kg_err(KG_ERR_ARG, "kg_cache_put_path: NULL argument");
    if (!valid_kind(kind)) return bad_kind(kind);
    char path[PATH_MAX];
    if (!entry_path(c, key, kind, path)) return KG_ERR_ARG;
    bool writable = true;
    const int flags = O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK; /* O_NONBLOCK: a FIFO must not hang us */
    int fd = open(src, O_RDWR | flags);
    if (fd < 0 && (errno == EACCES || errno == EPERM || errno == EROFS || errno == ETXTBSY)) {
        writable = false;
        fd = open(src, O_RDONLY | flags);
    }
    if (fd < 0) {
        int e = errno;
        return kg_err(e == ELOOP || e == EISDIR ? KG_ERR_ARG : KG_ERR_IO, "cache: cannot open '%s'%s: %s", src,
                      e == ELOOP ? " (a symlink: give the file itself)" : e == EISDIR ? " (not a regular file)" : "",
                      strerror(e));
    }
    struct stat st, entry_st;
    uint8_t head[8];
    kg_status s = KG_OK;
    if (fstat(fd, &st) != 0) s = kg_err(KG_ERR_IO, "cache: cannot stat '%s': %s", src, strerror(errno));
    else if (!S_ISREG(st.st_mode)) s = kg_err(KG_ERR_ARG, "cache: '%s' is not a regular file", src);
    else if (lstat(path, &entry_st) == 0 && entry_st.st_ino == st.st_ino && entry_st.st_dev == st.st_dev)
        s = kg_err(KG_ERR_ARG, "cache: '%s' is the entry itself", src);
    else if (st.st_size >= 8 && !pio_all(fd, head, 8, 0, false))
        s = kg_err(KG_ERR_IO, "cache: reading '%s' failed: %s", src, strerror(errno));
    else if (st.st_size >= 8 && memcmp(head, MAGIC, 8) == 0)
        s = kg_err(KG_ERR_ARG,
                   "cache: '%s' starts with the cache magic, so as a trailer entry it would read as a header "
                   "entry; store it with kg_cache_put",
                   src);
    if (s != KG_OK) {
        close(fd);
        return s;
    }
    file_src f = {fd, src, (uint64_t)st.st_size, key, kind};
    size_t sub_len = sub_len_of(c);
    bool copy = !writable || st.st_uid != geteuid() || st.st_nlink != 1;
    if (!copy) s = put_in_place(path, sub_len, &f, &st, &copy);
    bool stored = !copy && s == KG_OK;
    if (copy) {
        s = kg_cache_put_via_tmp_(path, sub_len, fill_file, &f);
        stored = s == KG_OK;
        if (s == KG_OK && unlink(src) != 0 && errno != ENOENT)
            s = kg_err(KG_ERR_IO, "cache: stored '%s' as '%s', but cannot remove it: %s", src, path,
                       strerror(errno));
    }
    close(fd);
    if (stored) kg_cache_after_put_(c, f.size + HDR_SIZE);
    return s;
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
static bool want_ident(const char *n) { return kg_cache_is_ident_name_(n); }
static bool want_ours(const char *n) { return want_tmp(n) || want_entry(n) || want_ident(n); }
static bool want_stale(const char *n) { return want_tmp(n) || want_ident(n); }

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
    kg_cache_scan_fn_ scan; /* instead of fn: kg_cache_scan_ */
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
        e.used = (int64_t)(st.st_atime > st.st_mtime ? st.st_atime : st.st_mtime);
        if (fc->flags & KG_CACHE_VERIFY) {
            s = verify_entry(path, e.key, e.kind, false, why, sizeof why);
            if (s == KG_ERR_NOTFOUND) { s = KG_OK; continue; } /* removed meanwhile */
            else if (s == KG_ERR_CORRUPT) { s = KG_OK; e.problem = why; }
            else if (s != KG_OK) break;
        }
        if (fc->scan ? fc->scan(&e, &st, fc->ctx) : fc->fn(&e, fc->ctx)) { *stop = true; break; }
    }
    names_free(&ns);
    return s;
}

kg_status kg_cache_foreach(kg_cache *c, unsigned flags, kg_cache_visit fn, void *ctx)
{
    if (!c || !fn) return kg_err(KG_ERR_ARG, "kg_cache_foreach: NULL argument");
    foreach_ctx fc = {flags, fn, NULL, ctx};
    kg_status s = each_sub(c, foreach_sub, &fc);
    if (s == KG_OK) kg_err_clear();
    return s;
}

kg_status kg_cache_scan_(kg_cache *c, kg_cache_scan_fn_ fn, void *ctx)
{
    foreach_ctx fc = {0, NULL, fn, ctx};
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
    kg_status s = list_dir(sub, rc->entries ? want_ours : want_stale, &ns);
    if (s != KG_OK) return s;
    for (size_t i = 0; i < ns.n; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", sub, ns.v[i]) >= (int)sizeof path) continue;
        bool tmp = want_tmp(ns.v[i]), ident = want_ident(ns.v[i]);
        if (ident) { /* clear: all; sweep: those whose entry is gone (not counted) */
            struct stat st;
            const char *entry = ns.v[i] + strlen(KG_CACHE_IDENT_PREFIX);
            char epath[PATH_MAX];
            if (rc->entries || (snprintf(epath, sizeof epath, "%s/%s", sub, entry) < (int)sizeof epath &&
                                lstat(epath, &st) != 0 && errno == ENOENT))
                unlink(path);
            continue;
        }
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
