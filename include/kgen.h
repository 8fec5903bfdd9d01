/*
 * kgen.h — the kgen library: status codes, tensor types, and the GGUF reader.
 *
 * Conventions (they hold for every kg_ function):
 *   - Functions that can fail return a kg_status: KG_OK (0) or a negative
 *     code. On failure kg_last_error() holds a message naming the file, the
 *     field / key / tensor, and what was wrong. The library never exits or
 *     aborts on bad input.
 *   - Output parameters come last. On failure they are left zeroed/NULL.
 *   - Opaque handles come in create/destroy pairs; destroy accepts NULL.
 *   - Every exported symbol starts with kg_ (checked by `make check`).
 */
#ifndef KGEN_H
#define KGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kgen_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ───────────────────────────── status ───────────────────────────── */

typedef enum kg_status {
    KG_OK              =  0,
    KG_ERR_IO          = -1, /* open/read/mmap failed (errno text in message) */
    KG_ERR_FORMAT      = -2, /* the file is malformed                          */
    KG_ERR_NOMEM       = -3, /* an allocation failed                           */
    KG_ERR_UNSUPPORTED = -4, /* well-formed, but kgen cannot handle it (yet)   */
    KG_ERR_ARG         = -5, /* the caller passed something invalid            */
    KG_ERR_NOTFOUND    = -6, /* a file, key or tensor asked for is absent      */
    KG_ERR_CORRUPT     = -7, /* a cache entry was present but bad; it has been
                                removed: a miss, to be rebuilt (kg_cache_get) */
} kg_status;

/* The message of the last failure on this thread. Never NULL; "" if none.
 * Valid until the next kg_ call on the same thread. */
const char *kg_last_error(void);

/* A short name for a status ("ok", "io", "format", ...). Never NULL. */
const char *kg_status_name(kg_status s);

/* ─────────────────────────── tensor types ───────────────────────────
 * GGML tensor types with their on-disk ids, from the one table of types
 * (kgen_types.h, KG_TYPES: id, name, block geometry, whether kgen's kernels
 * compute with it, and the parameters of kgen's own formats).           */
typedef enum kg_type {
#define KG_X(id, name, blck, size, kernels, group, minimum) KG_TYPE_##name = id,
    KG_TYPES(KG_X)
#undef KG_X
    KG_TYPE_COUNT = 42 /* one past the largest GGUF id; not every id below is a type */
} kg_type;

typedef struct kg_type_info {
    const char *name; /* "Q4_1" */
    uint32_t blck;    /* elements per block */
    uint32_t size;    /* bytes per block */
    bool kernels;     /* kgen's kernels compute with it */
    uint32_t group;   /* kgen's own formats: elements per scale; 0 for GGUF's */
    bool minimum;     /* kgen's own formats: groups have a minimum          */
} kg_type_info;

/* Facts about type id `t`, or NULL if `t` is not a known GGML type. */
const kg_type_info *kg_type_get(uint32_t t);

/* ─────────────────────────────── GGUF ───────────────────────────────
 * A parsed, validated GGUF file (versions 2 and 3; little-endian).
 * After kg_gguf_open succeeds, every string, array and tensor it exposes has
 * been bounds-checked against the file: callers may read them without
 * further checks. All pointers stay valid until kg_gguf_close.
 * The file format is documented at the top of runtime/gguf.c.           */

typedef struct kg_gguf kg_gguf;

/* Metadata value types, with their on-disk ids. */
typedef enum kg_vtype {
    KG_V_U8 = 0, KG_V_I8 = 1, KG_V_U16 = 2, KG_V_I16 = 3, KG_V_U32 = 4,
    KG_V_I32 = 5, KG_V_F32 = 6, KG_V_BOOL = 7, KG_V_STRING = 8,
    KG_V_ARRAY = 9, KG_V_U64 = 10, KG_V_I64 = 11, KG_V_F64 = 12,
    KG_V_COUNT = 13
} kg_vtype;

/* A string inside the file: `len` bytes at `ptr`, NOT NUL-terminated, may
 * contain any bytes (including NUL and invalid UTF-8). */
typedef struct kg_str {
    const char *ptr;
    uint64_t len;
} kg_str;

/* One metadata value. Scalars are widened into u/i/f (by signedness of the
 * stored type; bool into u). Arrays: `arr.type` is the element type and
 * `arr.n` the count. Elements of a fixed-size type are the file's raw
 * little-endian bytes at `arr.raw` (read them with kg_value_elem); string
 * elements are in `arr.strs[n]`; array elements in `arr.arrs[n]`. */
typedef struct kg_value {
    kg_vtype type;
    union {
        uint64_t u;
        int64_t i;
        double f;
        kg_str str;
        struct {
            kg_vtype type;
            uint64_t n;
            const void *raw;              /* fixed-size element types      */
            const kg_str *strs;           /* KG_V_STRING elements          */
            const struct kg_value *arrs;  /* KG_V_ARRAY elements           */
        } arr;
    };
} kg_value;

typedef struct kg_kv {
    const char *key; /* NUL-terminated copy; keys never contain NUL */
    kg_value value;
} kg_kv;

#define KG_MAX_DIMS 4
typedef struct kg_tensor {
    const char *name;          /* NUL-terminated copy                       */
    uint32_t n_dims;           /* 0..KG_MAX_DIMS                            */
    uint64_t ne[KG_MAX_DIMS];  /* ne[0] is the innermost (contiguous) dim;
                                  unused dims are 1                         */
    kg_type type;
    uint64_t offset;           /* from the start of the data section        */
    uint64_t n_elements;
    uint64_t n_bytes;
    const void *data;          /* inside the mapping; n_bytes readable      */
} kg_tensor;

/* Map and parse `path`. On success *out owns the mapping. */
kg_status kg_gguf_open(const char *path, kg_gguf **out);

/* Parse a caller-owned buffer (not copied; it must outlive the handle).
 * `name` is used in error messages. Used by tests and the fuzzer. */
kg_status kg_gguf_open_memory(const void *buf, size_t size, const char *name,
                              kg_gguf **out);

void kg_gguf_close(kg_gguf *g);

uint32_t kg_gguf_version(const kg_gguf *g);
uint32_t kg_gguf_alignment(const kg_gguf *g);
const char *kg_gguf_name(const kg_gguf *g);      /* path or buffer name */
uint64_t kg_gguf_file_size(const kg_gguf *g);
uint64_t kg_gguf_data_offset(const kg_gguf *g);  /* start of data section */

uint64_t kg_gguf_n_kv(const kg_gguf *g);
const kg_kv *kg_gguf_kv(const kg_gguf *g, uint64_t i);          /* NULL if i out of range */
const kg_value *kg_gguf_find(const kg_gguf *g, const char *key); /* NULL if absent */

uint64_t kg_gguf_n_tensors(const kg_gguf *g);
const kg_tensor *kg_gguf_tensor(const kg_gguf *g, uint64_t i);           /* NULL if out of range */
const kg_tensor *kg_gguf_find_tensor(const kg_gguf *g, const char *name); /* NULL if absent */

/* Typed lookups. Each returns KG_ERR_NOTFOUND if the key is absent (message
 * set), KG_ERR_FORMAT if it has the wrong type or is out of range for the
 * result (message names the key and the stored type).
 *   get_u64 / get_i64: any integer type (or bool), range-checked.
 *   get_f64: any integer or float type.
 *   get_str: a string.                                                   */
kg_status kg_gguf_get_u64(const kg_gguf *g, const char *key, uint64_t *out);
kg_status kg_gguf_get_i64(const kg_gguf *g, const char *key, int64_t *out);
kg_status kg_gguf_get_f64(const kg_gguf *g, const char *key, double *out);
kg_status kg_gguf_get_str(const kg_gguf *g, const char *key, kg_str *out);

/* Element i of a fixed-size-type array value, widened like scalars:
 * returns false if v is not such an array or i is out of range. */
bool kg_value_elem(const kg_value *v, uint64_t i, kg_value *out);

/* The name of a value type ("u32", "string", "array", ...). Never NULL. */
const char *kg_vtype_name(uint32_t t);

/* Does a kg_str equal a C string? */
bool kg_str_eq(kg_str s, const char *c);

/* ─────────────────────────────── safetensors ───────────────────────────────
 * A Hugging Face safetensors file (runtime/safetensors.c, whose header
 * comment has the format and every check): an 8-byte little-endian header
 * length, a JSON header (at most 100 MB) naming each tensor's dtype, shape
 * and data_offsets, then the data. Everything is checked on open: the
 * header length against the file, the JSON (parsed by jansson; duplicate
 * keys refused), every dtype (F64, F32, F16, BF16, I64, I32, I16, I8 and U8
 * are read: every one the type table has; the format's others, BOOL, U16,
 * U32, U64, F8_*, F6_*, F4, C64, are refused with KG_ERR_UNSUPPORTED naming
 * the tensor and the dtype), shapes (at most KG_MAX_DIMS dims) and offsets
 * for overflow, bounds, overlap and holes (the tensors must cover the data
 * section exactly, as the format says). Messages name the file and the
 * tensor or field. After kg_st_open succeeds every tensor lies inside the
 * file; all pointers stay valid until kg_st_close.
 *
 * Tensors come back as kg_tensor in kgen's convention: ne[0] is the
 * innermost (last safetensors) dimension, n_dims the safetensors rank (a
 * scalar, shape [], has n_dims 0 and 1 element); offset is begin of
 * data_offsets (from the start of the data section); name is a
 * NUL-terminated copy. The data is NOT aligned: the format guarantees no
 * alignment, so t->data may be at any address (copy it, or use unaligned
 * loads). U8 has a row of its own in the type table (id 5, which GGML
 * retired; no kernels). "__metadata__" (string to string) is kept as kg_kv
 * entries with KG_V_STRING values (kg_str: not NUL-terminated).         */
typedef struct kg_safetensors kg_safetensors;

kg_status kg_st_open(const char *path, kg_safetensors **out); /* maps the file; *out owns the mapping */
/* Parse a caller-owned buffer (not copied; it must outlive the handle);
 * `name` (NULL: "<memory>") is used in messages. Tests and the fuzzer. */
kg_status kg_st_open_memory(const void *buf, size_t size, const char *name, kg_safetensors **out);
void kg_st_close(kg_safetensors *st);                                         /* NULL: no-op */
const char *kg_st_name(const kg_safetensors *st);                             /* path or buffer name */
uint64_t kg_st_file_size(const kg_safetensors *st);
uint64_t kg_st_data_offset(const kg_safetensors *st);                        /* 8 + header length */
uint64_t kg_st_n_tensors(const kg_safetensors *st);
const kg_tensor *kg_st_tensor(const kg_safetensors *st, uint64_t i);            /* header order; NULL if out of range */
const kg_tensor *kg_st_find_tensor(const kg_safetensors *st, const char *name); /* NULL if absent (binary search) */
uint64_t kg_st_n_meta(const kg_safetensors *st);
const kg_kv *kg_st_meta(const kg_safetensors *st, uint64_t i);   /* __metadata__ entries, header order; NULL if out of range */
const char *kg_st_dtype_name(const kg_tensor *t);                /* "F32", "BF16", ... as the file spells it; "?" if none */

/* ─────────────────────────────── cache ───────────────────────────────
 * The on-disk cache of compiled artifacts (objects, shared objects, cubins,
 * LLVM IR, ...), addressed by a 128-bit key. The entry format and the
 * write/read protocol are documented at the top of runtime/cache.c.
 *
 * Keys. A key is XXH3-128 over a canonical text that names everything that
 * changes the artifact: kgen version, template content hash, every bound
 * parameter, target (triple, CPU name and features | sm arch and NVRTC
 * version), compile options, tuning choice. Build it with kg_keytext, which
 * starts every text with the cache format version ("kgen.cache.format=N"),
 * so a format change gives every key a new value. NEVER put a path, a time,
 * a host name, a user name or any other accident of the environment into a
 * key: the same inputs must give the same key on every machine and run.
 *
 * Location. kg_cache_open(NULL, ..) uses $KGEN_CACHE_DIR, else
 * $XDG_CACHE_HOME/kgen (when $XDG_CACHE_HOME is absolute), else
 * $HOME/.cache/kgen. Missing directories are created with mode 0700. A cache
 * directory (or the target of a symlink to one) that is not a directory,
 * is not owned by the effective user, or is writable by group or others is
 * refused (KG_ERR_IO; the message names the directory and the fix).
 *
 * Concurrency. Entries are written to a temporary file and renamed into
 * place, so any number of threads and processes may get and put the same
 * keys at once: readers see a whole entry or none, and concurrent puts of a
 * key all succeed and leave one valid entry. A kg_cache handle is not
 * modified after kg_cache_open and may be shared between threads.
 * Corruption. Every get verifies the entry (header and payload hash); a bad
 * entry is removed and the get returns KG_ERR_CORRUPT, a miss like
 * KG_ERR_NOTFOUND but saying that something was wrong (the message names
 * the file and what): a caller rebuilds it as after any miss, and may tell
 * its user. A caller that treats KG_ERR_NOTFOUND as a miss must treat
 * KG_ERR_CORRUPT as one too (earlier versions of the library gave
 * KG_ERR_NOTFOUND for a bad entry).
 *
 * Size. The entries' bytes are kept under a limit: $KGEN_CACHE_MAX_SIZE
 * (read by kg_cache_open: a size as kg_cache_parse_size reads it, 0 for no
 * limit; one that is not a size makes kg_cache_open fail), else the smaller
 * of 10 GiB and a quarter of the cache's filesystem. A put that takes the
 * running estimate past the limit removes least recently used entries
 * (used: a hit by kg_cache_get or kg_cache_get_path, or the write) down to
 * 90% of it, sparing entries used in the last minute; kg_cache_gc does
 * the same on request. The algorithm is at the top of runtime/cache_gc.c.
 *
 * Two layouts. kg_cache_put writes the 64-byte record (magic, kind, key,
 * size, hash) before the payload; kg_cache_put_path writes it after, so
 * the payload starts at offset 0 and the entry file can be used in place
 * (a shared object dlopen()ed from the cache: ELF loaders ignore trailing
 * bytes). Reads tell the layout by content; kg_cache_get, kg_cache_foreach
 * and the rest handle both alike.                                       */

typedef struct kg_cache kg_cache;
typedef struct kg_keytext kg_keytext;

/* XXH3-128 of a key text: `hi` is the high 64 bits (XXH128_hash_t.high64). */
typedef struct kg_key {
    uint64_t hi, lo;
} kg_key;

#define KG_CACHE_FORMAT 1      /* entry format version; part of every key */
#define KG_CACHE_KIND_MAX 15   /* a kind is 1..15 characters of [a-z0-9] */

/* Writes the key as 32 lowercase hex digits (hi then lo, the same digits as
 * XXH128's canonical form and Python's xxh3_128_hexdigest) and a NUL into
 * `out`. Returns out. */
char *kg_key_hex(kg_key key, char out[33]);

/* ── key text: "name=value\n" lines, in the order appended ──
 * Names are 1..64 characters of [a-z0-9_.-] (no '=' or newline). In string
 * values a backslash is written "\\" and a newline "\n", so distinct
 * sequences of lines always give distinct texts. Order matters and a name
 * may repeat; append in a fixed order.
 * Errors are sticky: after a failed append (bad name, out of memory) every
 * later append and kg_keytext_finish return that error, so a caller that
 * checks only finish can never get a key for a partial text.          */

/* A new text holding "kgen.cache.format=<KG_CACHE_FORMAT>\n". */
kg_status kg_keytext_new(kg_keytext **out);
void kg_keytext_free(kg_keytext *t);

kg_status kg_keytext_str(kg_keytext *t, const char *name, const char *value);
kg_status kg_keytext_i64(kg_keytext *t, const char *name, int64_t value);   /* decimal */
kg_status kg_keytext_u64(kg_keytext *t, const char *name, uint64_t value);  /* decimal */
/* Exact: C99 hex float ("%a": 0.5 -> 0x1p-1); -0.0 and 0.0 differ; every NaN
 * is "nan" or "-nan". */
kg_status kg_keytext_f64(kg_keytext *t, const char *name, double value);
/* For content (a template's source, a bitcode blob): the line holds the
 * 32-hex-digit XXH3-128 of the `size` bytes at `data`, not the bytes. */
kg_status kg_keytext_blob(kg_keytext *t, const char *name, const void *data, size_t size);

/* The text so far, NUL-terminated; owned by t, valid until the next append
 * or kg_keytext_free. For display and debugging ("" after a sticky error). */
const char *kg_keytext_text(const kg_keytext *t);

/* *out = XXH3-128 of the text so far. The text stays usable. */
kg_status kg_keytext_finish(const kg_keytext *t, kg_key *out);

/* ── the cache ── */

/* Opens (creating it if needed, mode 0700) the cache at `dir`, or at the
 * default location when dir is NULL (see above). Refuses unsafe directories
 * (KG_ERR_IO), and a $KGEN_CACHE_MAX_SIZE that is set but not a size
 * (KG_ERR_ARG, the message names it). Close with kg_cache_close. */
kg_status kg_cache_open(const char *dir, kg_cache **out);
void kg_cache_close(kg_cache *c);

/* The cache directory, as given or resolved (not canonicalized); owned by c. */
const char *kg_cache_dir(const kg_cache *c);

/* Reads the entry (key, kind), of either layout, after verifying it. On
 * success *data is a malloc'd copy of the payload (the caller frees it with
 * free(); non-NULL even for an empty payload) and *size its length, and
 * the entry's use is recorded (its atime set to now: the order in which
 * the size limit removes entries).
 * Two misses: KG_ERR_NOTFOUND, no entry; KG_ERR_CORRUPT, an entry that
 * failed verification: it has been removed and the message says which
 * file and what was wrong (rebuild it as after KG_ERR_NOTFOUND).
 * KG_ERR_ARG for a kind that is not 1..KG_CACHE_KIND_MAX of [a-z0-9];
 * KG_ERR_IO when the entry exists but cannot be read; KG_ERR_NOMEM.
 * Cost: one open, fstat, two preads (three for a trailer entry), close,
 * one XXH3-64 over the payload, and one futimens unless the entry was
 * already used within the last second. */
kg_status kg_cache_get(kg_cache *c, kg_key key, const char *kind, void **data, size_t *size);

/* Stores `size` bytes at `data` (NULL allowed when size is 0) as the entry
 * (key, kind), replacing any entry there. The caller keeps `data`. Not
 * fsync'ed (see runtime/cache.c): a crash may lose the entry, and a torn
 * entry is caught by the next get's verification.
 * After storing, the put counts its bytes toward the size limit (open,
 * flock, a 16-byte pread and pwrite, close of <dir>/.usage: about 2 us)
 * and, when that takes the estimate past the limit, collects (see Size
 * above); neither can make the put fail. kg_cache_put_path does the same. */
kg_status kg_cache_put(kg_cache *c, kg_key key, const char *kind, const void *data, size_t size);

/* The path of the entry (key, kind), for use in place (dlopen it), after
 * verifying it: record and payload hash, as kg_cache_get. Writes the path,
 * NUL-terminated, into `path` (`cap` bytes; "" on failure). The path is
 * <cache dir>/xx/<30 hex>.<kind>: relative when the cache directory was
 * given relative, and always with a '/' (dlopen takes it as a path).
 * Only trailer entries (written by kg_cache_put_path) qualify: their
 * payload is the file's first `size` bytes, followed by the 64-byte record.
 * A hit records the entry's use, as kg_cache_get.
 * Misses: KG_ERR_NOTFOUND, no entry, or a header entry (written by
 * kg_cache_put: valid for kg_cache_get, so it is left in place; a
 * kg_cache_put_path of the key replaces it); KG_ERR_CORRUPT, an entry that
 * failed verification (removed, as kg_cache_get).
 * KG_ERR_ARG for a bad kind or a `cap` too small for the path (nothing is
 * read then); KG_ERR_IO when the entry exists but cannot be read;
 * KG_ERR_NOMEM.
 * The file is immutable while it holds that name, but the name is not
 * held for the caller: a concurrent kg_cache_clear, verify or kg_cache_gc
 * may remove it and a concurrent put may replace it (with a whole entry)
 * before the caller opens it. An open that fails with ENOENT is therefore a
 * miss. (A put's own collection spares entries used in the last minute.)
 * Once opened or dlopen()ed, the file stays readable even if removed.
 * Cost: one open, fstat, two 64-byte preads, close, and one pass of
 * 256 KiB preads hashing the payload (XXH3-64), never holding it whole:
 * for 100 MB in the page cache, 36-61 ms on a loaded 2-core VM where
 * XXH3-64 over the same bytes in memory took 27-34 ms (and kg_cache_get,
 * which copies, 190-350 ms); disk speed when not cached (the pass then
 * also warms the page cache for the loader). */
kg_status kg_cache_get_path(kg_cache *c, kg_key key, const char *kind, char *path, size_t cap);

/* Stores the finished file at `src` as the trailer entry (key, kind),
 * replacing any entry there (of either layout). The caller gives src up:
 * on success it is gone (moved into the cache, or copied and then
 * unlinked), and nothing may write it meanwhile. src may be in any
 * directory, on any filesystem.
 *   - In place (no copy) when src is a regular file owned by the effective
 *     user, with one link, openable for writing, on the cache's
 *     filesystem: one pass reading src to hash it, the 64-byte trailer
 *     appended, chmod 0600, and one rename() onto the entry's name.
 *   - Otherwise (another filesystem: rename fails with EXDEV; or src is
 *     someone else's, hard-linked, or read-only): copied into a temporary
 *     file in the entry's subdirectory (hashing on the way), the trailer
 *     appended, renamed into place, then src unlinked.
 * Either way the entry is a mode 0600 file owned by the caller (dlopen
 * needs read permission only), and readers see a whole entry or none;
 * concurrent puts of one key all succeed and leave one valid entry, as
 * kg_cache_put. Not fsync'ed (see kg_cache_put).
 * KG_ERR_ARG: a bad kind; src is a symlink, not a regular file, the entry
 * itself, or starts with the 8-byte cache magic "KGCACHE\0" (such a file
 * would read as a header entry: store it with kg_cache_put). KG_ERR_IO:
 * src cannot be opened or read (absent included), the cache cannot be
 * written, or (the entry is stored then) src cannot be unlinked after a
 * copy. KG_ERR_NOMEM. On failure src is left as it was (an appended
 * trailer is cut off and the mode restored) and no entry was written,
 * except for that last case. */
kg_status kg_cache_put_path(kg_cache *c, kg_key key, const char *kind, const char *src);

/* One entry, as kg_cache_foreach sees it. All pointers are valid only
 * during the callback. */
typedef struct kg_cache_entry {
    kg_key key;             /* from the file name                            */
    char key_hex[33];
    char kind[KG_CACHE_KIND_MAX + 1];
    const char *path;       /* the entry's file                              */
    uint64_t file_size;     /* bytes on disk, header (or trailer) included   */
    uint64_t size;          /* payload bytes (file_size - 64, in both
                               layouts; 0 if the file is shorter than 64)    */
    int64_t mtime;          /* last write, seconds since the epoch           */
    const char *problem;    /* KG_CACHE_VERIFY only: NULL if the entry is
                               valid, else why it is not (it was removed)    */
    int64_t used;           /* last use: the later of the last hit (atime)
                               and the last write, seconds since the epoch   */
} kg_cache_entry;

/* Return 0 to go on, anything else to stop kg_cache_foreach (which then
 * returns KG_OK). */
typedef int (*kg_cache_visit)(const kg_cache_entry *e, void *ctx);

enum { KG_CACHE_VERIFY = 1 }; /* foreach flag: read and verify every entry,
                                 remove bad ones (reported with `problem`) */

/* Calls fn for every entry (both layouts), ordered by key_hex then kind.
 * Files that are not entries (temporary files, foreign names) are skipped,
 * never reported. Without KG_CACHE_VERIFY it only lists and stats (no file
 * is opened); with it, each entry is read once in 256 KiB pieces (never
 * held in memory whole), which does not count as a use.
 * Fails (KG_ERR_IO) if a directory cannot be read; an entry that vanishes
 * meanwhile (a concurrent clear) is skipped. */
kg_status kg_cache_foreach(kg_cache *c, unsigned flags, kg_cache_visit fn, void *ctx);

/* Removes stale temporary files: those left by a put whose process died.
 * A put holds an flock on its temporary file until it has renamed it, so a
 * temporary file that can be locked is stale; one being written is left
 * alone. *n_removed (may be NULL) counts the files removed, also on failure. */
kg_status kg_cache_sweep(kg_cache *c, uint64_t *n_removed);

/* Removes every entry and every stale temporary file (as kg_cache_sweep),
 * then the empty subdirectories; the cache directory itself stays, and so do
 * files the cache did not write. Goes on past files it cannot remove and
 * returns the first error. *n_entries and *n_temp (each may be NULL) count
 * what was removed, also on failure. Puts running concurrently are not
 * disturbed (their entries may appear right after the clear). */
kg_status kg_cache_clear(kg_cache *c, uint64_t *n_entries, uint64_t *n_temp);

/* ── size ── */

/* Reads a size in bytes: digits, optionally '.' and more digits, then
 * optionally a unit, case ignored: K M G T P and KiB .. PiB are powers of
 * 1024, KB .. PB powers of 1000, B is 1 ("500M", "2G", "1.5GiB", "10GB",
 * "4096"). KG_ERR_ARG (message set, *out = 0) for anything else: signs,
 * spaces, exponents, a fraction of a byte ("1.5", "0.1K"), more than 2^64-1
 * bytes. */
kg_status kg_cache_parse_size(const char *s, uint64_t *out);

/* The cache's limit on its entries' bytes (0: none), and where it came
 * from: *source (may be NULL) = "KGEN_CACHE_MAX_SIZE" or "default" (the
 * smaller of 10 GiB and a quarter of the filesystem); static strings. */
uint64_t kg_cache_max_size(const kg_cache *c, const char **source);

typedef struct kg_cache_gc_stats {
    uint64_t n_entries, bytes;          /* found: entries, on-disk bytes (file
                                           sizes; temporary files excluded) */
    uint64_t n_removed, bytes_removed;  /* removed by this call             */
    uint64_t n_left, bytes_left;        /* still there, as far as it knows  */
    uint64_t n_busy;                    /* kept though older: used or
                                           replaced after it listed them    */
} kg_cache_gc_stats;

/* Removes entries (of every kind, both layouts) least recently used first
 * until the entries' on-disk bytes are at most max_size (0: removes all).
 * fn (may be NULL) is called for each removed entry after its removal;
 * nonzero stops the collection (KG_OK). *out (may be NULL) gets the counts,
 * also on failure.
 * Safe beside concurrent gets and puts in any process: temporary files
 * (puts in progress) are never touched; an entry whose name was rewritten
 * or that was used after it was listed is kept (n_busy), though a use
 * landing in the instant between that check and the unlink is not seen;
 * a reader that has the file open or mapped (dlopen) keeps reading it (on
 * Linux an unlinked file lives until its last close/munmap); one that
 * opens it afterwards gets ENOENT, a miss (see kg_cache_get_path).
 * Goes on past entries it cannot remove; KG_ERR_IO with the first.
 * Cost: one directory walk with an lstat per entry, a sort, then an lstat
 * and unlink per removed entry. */
kg_status kg_cache_gc(kg_cache *c, uint64_t max_size, kg_cache_visit fn, void *ctx, kg_cache_gc_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* KGEN_H */
