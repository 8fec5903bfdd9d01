/*
 * cache_int.h — what runtime/cache.c (entries: read, write, list, clear)
 * shares with runtime/cache_gc.c (the size limit and its collection). Not
 * installed; the names keep the kg_ prefix (libkgen.a exports them) and end
 * in '_' to say they are not the API.
 */
#ifndef KGEN_CACHE_INT_H
#define KGEN_CACHE_INT_H

#include "internal.h"

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

#endif
