/*
 * internal.h — helpers shared by the library's own files. Not installed.
 * Everything here is still exported from libkgen.a, so it keeps the kg_ prefix.
 */
#ifndef KGEN_INTERNAL_H
#define KGEN_INTERNAL_H

#include "kgen.h"

#include <stdarg.h>

/* Set this thread's error message (printf-style) and return `s`.
 * Use as: return kg_err(KG_ERR_FORMAT, "%s: ...", name, ...); */
kg_status kg_err(kg_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clear the message (functions that succeed after an earlier failure). */
void kg_err_clear(void);

/* Write `len` bytes of untrusted text into `dst` (size `cap`, NUL-terminated)
 * for display: printable ASCII and valid UTF-8 pass through; control bytes,
 * quotes, backslashes and invalid UTF-8 become \xNN (or \" \\); text longer
 * than `max` source bytes is cut and ends in "...". Returns dst. */
char *kg_escape(char *dst, size_t cap, const char *src, uint64_t len, size_t max);

/* What a JSON value (jansson's) is, for messages: "an object", "a string",
 * "true", ... (runtime/safetensors.c; the other JSON readers use it too). */
struct json_t;
const char *kg_json_kind(const struct json_t *v);

/* Opens `path` read-only (plus `flags`, e.g. O_NOFOLLOW) and checks it is a
 * regular file. KG_ERR_NOTFOUND if it does not exist, KG_ERR_IO otherwise;
 * on success *fd is open and *st filled; on failure *fd is -1 and errno is
 * open's (or fstat's). */
struct stat;
kg_status kg_open_regular(const char *path, int flags, int *fd, struct stat *st);

/* ── bump arena: many small allocations freed at once ── */
typedef struct kg_arena_chunk kg_arena_chunk;
typedef struct kg_arena {
    kg_arena_chunk *head;
} kg_arena;

/* Zeroed memory for `n` objects of `size` bytes, aligned to 16; NULL (with
 * KG_ERR_NOMEM message) on overflow or out-of-memory. */
void *kg_arena_alloc(kg_arena *a, uint64_t n, uint64_t size);
char *kg_arena_strndup(kg_arena *a, const char *s, uint64_t len);
void kg_arena_free(kg_arena *a);

/* Overflow-checked arithmetic on uint64_t: false on overflow. */
static inline bool kg_mul_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static inline bool kg_add_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }

#endif
