/*
 * cache_int.h — what runtime/cache.c (entries: read, write, list, clear)
 * shares with runtime/cache_gc.c (the size limit and its collection) and
 * runtime/cache_ident.c (the identity records that let an open skip
 * re-hashing a verified entry's bulk), and the one internal read that
 * gen/loader.c uses. Not installed; the names keep the kg_ prefix
 * (libkgen.a exports them) and end in '_' to say they are not the API.
 */
#ifndef KGEN_CACHE_INT_H
#define KGEN_CACHE_INT_H

#include "internal.h"

#include <limits.h>
#include <sys/stat.h>

struct kg_cache {
    char *dir;          /* no trailing slash                                 */
    uint64_t max_size;  /* the limit on the entries' bytes; 0: unbounded     */
    bool max_from_env;  /* max_size came from $KGEN_CACHE_MAX_SIZE           */
};

/* The limit for `c` (cache_gc.c): $KGEN_CACHE_MAX_SIZE when set and not
 * empty (KG_ERR_ARG, message set, if it is not a size), else the default
 * for the filesystem holding `dir`. */
kg_status kg_cache_limit_init_(kg_cache *c);

/* kg_cache_foreach without verification, giving each entry's lstat. */
typedef int (*kg_cache_scan_fn_)(const kg_cache_entry *e, const struct stat *st, void *ctx);
kg_status kg_cache_scan_(kg_cache *c, kg_cache_scan_fn_ fn, void *ctx);

/* After a put wrote an entry of `file_bytes` bytes: counts them toward the
 * limit and, past it, collects (cache_gc.c). Never fails; keeps the
 * thread's error message. */
void kg_cache_after_put_(kg_cache *c, uint64_t file_bytes);

/* Fills the temporary file `fd` (named `tmp`) with a whole file. */
typedef kg_status (*kg_cache_fill_fn_)(int fd, const char *tmp, void *ctx);

/* Writes the file `path` (an entry, or an identity record) through a
 * locked temporary file in its subdirectory (the first sub_len bytes of
 * path: "<dir>/xx"), renamed onto path when `fill` succeeded: readers see
 * the old file or the new one, whole (cache.c, "Writing"). */
kg_status kg_cache_put_via_tmp_(const char *path, size_t sub_len, kg_cache_fill_fn_ fill, void *ctx);

/* ── identity records (cache_ident.c; the format is its table) ── */

/* What an identity record says: the entry file that was verified (its
 * identity: device, inode, size, modification and status-change times)
 * and, for a later open of that same file, what is still hashed then. */
typedef struct kg_cache_ident_ {
    kg_key key;                   /* the entry's key                        */
    uint64_t dev, ino, size;      /* the entry file's st_dev, st_ino, st_size */
    int64_t mtime_ns, ctime_ns;   /* its st_mtim and st_ctim, nanoseconds   */
    uint64_t hash;                /* the record's payload hash it matched   */
    uint64_t bulk_off, bulk_len;  /* payload bytes [bulk_off, bulk_off +
                                     bulk_len): not hashed by such an open  */
    uint64_t rest_hash;           /* XXH3-64 of the payload bytes outside the
                                     bulk, in file order                    */
} kg_cache_ident_;

#define KG_CACHE_IDENT_PREFIX ".id-" /* an identity record's name: the prefix, then its entry's */

/* id's file identity (dev .. ctime_ns) := st's; the other fields are kept. */
void kg_cache_ident_of_(const struct stat *st, kg_cache_ident_ *id);

/* The identity record of the entry file `entry_path`
 * ("<dir>/xx/<30 hex>.<kind>"): "<dir>/xx/.id-<30 hex>.<kind>". False if
 * it does not fit in PATH_MAX bytes. */
bool kg_cache_ident_path_(const char *entry_path, char out[PATH_MAX]);

/* Is `name` (a file name in a subdirectory) an identity record's? */
bool kg_cache_is_ident_name_(const char *name);

/* Reads entry_path's identity record into *out: true only for a regular
 * file of exactly the record's size whose magic, version, reserved field,
 * check hash and key (== key) are right. Anything else (absent, truncated,
 * foreign, damaged) is false: no record. Sets no message. */
bool kg_cache_ident_read_(const char *entry_path, kg_key key, kg_cache_ident_ *out);

/* Writes *id as entry_path's identity record (atomically, as a put).
 * A failure is ignored (the next open hashes everything again); the
 * thread's error message is cleared. */
void kg_cache_ident_write_(const char *entry_path, size_t sub_len, const kg_cache_ident_ *id);

/* Removes entry_path's identity record, if any (no message). */
void kg_cache_ident_remove_(const char *entry_path);

/* ── the loader's read ── */

/* Where the bulk of a payload lies, asked of the caller of
 * kg_cache_get_path_ident_ once the whole payload has been verified: fd is
 * the entry file open for reading (the payload at offset 0, `psize` bytes).
 * True with the range [*off, *off + *len) inside the payload; false when
 * the payload has no bulk to spare (then every open hashes all of it). */
typedef bool (*kg_cache_bulk_fn_)(int fd, uint64_t psize, uint64_t *off, uint64_t *len, void *ctx);

/* kg_cache_get_path (kgen.h), except that an entry already verified in
 * full as this very file (its identity unchanged since: see cache.c,
 * "Identity records") has only the payload outside its bulk hashed, with
 * the record checked as always. Results, misses and messages are
 * kg_cache_get_path's. */
kg_status kg_cache_get_path_ident_(kg_cache *c, kg_key key, const char *kind, kg_cache_bulk_fn_ bulk, void *ctx,
                                   char *path, size_t cap);

#endif
