/*
 * cache_ident.c — identity records: what lets an open from the cache skip
 * re-hashing the bulk of an entry it already verified (the weights of a
 * compiled model: ~98 MB of a ~100 MB entry), without ever using an entry
 * whose bytes the file system saw change. How reads use them, and what
 * that guarantees, is cache.c's "Identity records"; this file is the
 * record's format, read, write and removal.
 *
 * Requires: the entry's subdirectory (its record lives beside it).
 * Produces: a record, or none. Invalidates nothing: a record only ever
 * vouches for one file identity, which no later write can keep.
 *
 * ── The record file (all integers little-endian) ──
 *
 *   <dir>/<h[0..1]>/.id-<h[2..31]>.<kind>      beside <h[2..31]>.<kind>
 *
 *   offset  field      type     notes
 *   ------  ---------  -------  -------------------------------------------
 *   0       magic      u8[8]    "KGIDENT\0"
 *   8       version    u32      IDENT_VERSION (1)
 *   12      reserved   u32      0
 *   16      key_hi     u64      the entry's key (equals the name's)
 *   24      key_lo     u64
 *   32      dev        u64      the entry file's st_dev when verified
 *   40      ino        u64      its st_ino
 *   48      size       u64      its st_size (the 64-byte record included)
 *   56      mtime_ns   i64      its st_mtim, in nanoseconds since the epoch
 *   64      ctime_ns   i64      its st_ctim, likewise
 *   72      hash       u64      the entry record's payload hash (XXH3-64)
 *   80      bulk_off   u64      the bulk: payload bytes [bulk_off,
 *   88      bulk_len   u64        bulk_off + bulk_len), inside the payload
 *   96      rest_hash  u64      XXH3-64 (seed 0) of the payload bytes
 *                               outside the bulk, in file order
 *   104     check      u64      XXH3-64 (seed 0) of bytes 0..103
 *   112                         (the file's size)
 *
 * A file of any other size, or with any field above wrong (magic, version,
 * reserved, check, key), is no record: the open hashes the whole payload,
 * as it would without one, and writes a good record. So a record that is
 * missing, truncated, damaged, another entry's, or stale (the entry was
 * replaced or written) costs one full hash, never a wrong answer. Records
 * are written like entries (a locked temporary file renamed into place),
 * mode 0600; their bytes are not counted toward the size limit (112 per
 * model entry). kg_cache_clear removes them, kg_cache_sweep removes those
 * whose entry is gone, and a removal of an entry (a bad one, or by the
 * collection) removes its record.
 */
#include "cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define IDENT_MAGIC "KGIDENT" /* with its NUL: 8 bytes */
#define IDENT_VERSION 1
#define IDENT_SIZE 112

_Static_assert(sizeof IDENT_MAGIC == 8, "magic is 8 bytes");

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i); }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

static int64_t ns_of(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

void kg_cache_ident_of_(const struct stat *st, kg_cache_ident_ *id)
{
    id->dev = (uint64_t)st->st_dev;
    id->ino = (uint64_t)st->st_ino;
    id->size = (uint64_t)st->st_size;
    id->mtime_ns = ns_of(st->st_mtim);
    id->ctime_ns = ns_of(st->st_ctim);
}

bool kg_cache_is_ident_name_(const char *name)
{
    return !strncmp(name, KG_CACHE_IDENT_PREFIX, strlen(KG_CACHE_IDENT_PREFIX));
}

bool kg_cache_ident_path_(const char *entry_path, char out[PATH_MAX])
{
    const char *slash = strrchr(entry_path, '/');
    if (!slash) return false;
    int n = snprintf(out, PATH_MAX, "%.*s/" KG_CACHE_IDENT_PREFIX "%s", (int)(slash - entry_path), entry_path,
                     slash + 1);
    return n > 0 && n < PATH_MAX;
}

static void encode(const kg_cache_ident_ *id, uint8_t b[IDENT_SIZE])
{
    memset(b, 0, IDENT_SIZE);
    memcpy(b, IDENT_MAGIC, 8);
    b[8] = IDENT_VERSION; /* version (u32) and reserved (u32, 0): read back as one u64 */
    put64(b + 16, id->key.hi);
    put64(b + 24, id->key.lo);
    put64(b + 32, id->dev);
    put64(b + 40, id->ino);
    put64(b + 48, id->size);
    put64(b + 56, (uint64_t)id->mtime_ns);
    put64(b + 64, (uint64_t)id->ctime_ns);
    put64(b + 72, id->hash);
    put64(b + 80, id->bulk_off);
    put64(b + 88, id->bulk_len);
    put64(b + 96, id->rest_hash);
    put64(b + 104, XXH3_64bits(b, 104));
}

bool kg_cache_ident_read_(const char *entry_path, kg_key key, kg_cache_ident_ *out)
{
    char path[PATH_MAX];
    if (!kg_cache_ident_path_(entry_path, path)) return false;
    /* O_NONBLOCK: a FIFO put there must not hang the open */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return false;
    struct stat st;
    uint8_t b[IDENT_SIZE + 1];
    ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == IDENT_SIZE ? pread(fd, b, sizeof b, 0) : -1;
    close(fd);
    if (n != IDENT_SIZE || memcmp(b, IDENT_MAGIC, 8) != 0 || get64(b + 8) != IDENT_VERSION ||
        get64(b + 104) != XXH3_64bits(b, 104) || get64(b + 16) != key.hi || get64(b + 24) != key.lo)
        return false;
    *out = (kg_cache_ident_){
        .key = key,
        .dev = get64(b + 32),
        .ino = get64(b + 40),
        .size = get64(b + 48),
        .mtime_ns = (int64_t)get64(b + 56),
        .ctime_ns = (int64_t)get64(b + 64),
        .hash = get64(b + 72),
        .bulk_off = get64(b + 80),
        .bulk_len = get64(b + 88),
        .rest_hash = get64(b + 96),
    };
    return true;
}

static kg_status fill_ident(int fd, const char *tmp, void *ctx)
{
    const uint8_t *b = ctx;
    for (size_t done = 0; done < IDENT_SIZE;) {
        ssize_t r = write(fd, b + done, IDENT_SIZE - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return kg_err(KG_ERR_IO, "cache: writing '%s' failed: %s", tmp, r < 0 ? strerror(errno) : "no space");
        done += (size_t)r;
    }
    return KG_OK;
}

void kg_cache_ident_write_(const char *entry_path, size_t sub_len, const kg_cache_ident_ *id)
{
    char path[PATH_MAX];
    uint8_t b[IDENT_SIZE];
    if (!kg_cache_ident_path_(entry_path, path)) return;
    encode(id, b);
    if (kg_cache_put_via_tmp_(path, sub_len, fill_ident, b) != KG_OK) kg_err_clear(); /* only speed is lost */
}

void kg_cache_ident_remove_(const char *entry_path)
{
    char path[PATH_MAX];
    if (kg_cache_ident_path_(entry_path, path)) unlink(path);
}
