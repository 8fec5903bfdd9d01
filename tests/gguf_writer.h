/*
 * gguf_writer.h — a small GGUF *writer* for tests: builds synthetic files
 * (well-formed or deliberately broken) in a growable byte buffer.
 *
 * It knows the byte layout of the format (runtime/gguf.c's header comment)
 * but none of the reader's rules: it writes exactly what it is told, so a
 * test can put a wrong count, a bad type or an impossible offset anywhere.
 *
 * While writing it records named field boundaries ("header.version",
 * "kv[0].key", "kv[0].key.bytes", "kv[0].type", "kv[0].value",
 * "kv[2].value.type", "kv[2].value.count", "kv[2].value[1]",
 * "tensor[1].ne[0]", "padding", "tensor[0].data", ...) → the byte offset
 * where that field starts, so a test can cut a valid file at every field.
 *
 *   tw w; tw_init(&w);
 *   tw_header(&w, 3, 1, 1);
 *   tw_kv(&w, "general.architecture", &(tw_val){0}); ...
 *   tw_free(&w);
 *
 * Out of memory aborts (tests only). Assumes a little-endian host, like the
 * format.
 */
#ifndef KGEN_GGUF_WRITER_H
#define KGEN_GGUF_WRITER_H

#include "kgen.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tw_field {
    char name[80];
    size_t off;
} tw_field;

typedef struct tw {
    uint8_t *buf;
    size_t len, cap;
    tw_field *fields;
    size_t n_fields, cap_fields;
    uint64_t n_kv, n_tensors; /* kv and tensor infos written so far */
    size_t data_start;        /* set by tw_pad / tw_data_all */
} tw;

void tw_init(tw *w);
void tw_free(tw *w);

/* ── raw bytes (no field marks) ── */
void tw_u8(tw *w, uint8_t v);
void tw_u16(tw *w, uint16_t v);
void tw_u32(tw *w, uint32_t v);
void tw_u64(tw *w, uint64_t v);
void tw_raw(tw *w, const void *p, size_t n);
void tw_zeros(tw *w, size_t n);
void tw_str(tw *w, const char *p, size_t len); /* len u64, then the bytes */
void tw_set_u32(tw *w, size_t off, uint32_t v); /* overwrite in place */
void tw_set_u64(tw *w, size_t off, uint64_t v);

/* ── field boundaries ── */
void tw_mark(tw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Offset where field `name` starts, or (size_t)-1 if it was not recorded. */
size_t tw_field_off(const tw *w, const char *name);

/* ── metadata values ──
 * A value tree: scalars keep their little-endian bits in `bits` (the low
 * 1/2/4/8 bytes are written by type); strings are (s, len) and may hold any
 * bytes; fixed-size arrays point `raw` at a C array of the native element
 * type (uint8_t for bool); string and array elements are `items`. */
typedef struct tw_val tw_val;
struct tw_val {
    uint32_t type;        /* KG_V_*; any number may be written */
    uint64_t bits;
    const char *s;
    size_t len;
    uint32_t et;          /* arrays: element type */
    uint64_t n;           /* arrays: element count */
    const void *raw;
    const tw_val *items;
};

tw_val tw_int(uint32_t type, int64_t v); /* any integer type (or bool) */
tw_val tw_f32(float v);
tw_val tw_f64(double v);
tw_val tw_s(const char *p, size_t len);
tw_val tw_cs(const char *s);
tw_val tw_arr(uint32_t et, uint64_t n, const void *raw);      /* fixed-size et */
tw_val tw_arr_of(uint32_t et, uint64_t n, const tw_val *items); /* string/array et */

/* Size in bytes of a fixed-size value type; 0 for string/array/unknown. */
size_t tw_vsize(uint32_t type);

/* Writes `v` (no type tag), marking fields under `prefix`. */
void tw_value(tw *w, const tw_val *v, const char *prefix);
/* A kv: key, value type tag, value. Counts it in w->n_kv. */
void tw_kv(tw *w, const char *key, const tw_val *v);
void tw_kv_n(tw *w, const char *key, size_t key_len, const tw_val *v);
/* Just the key and a type tag (marks "kv[i].key", "kv[i].type"); the
 * caller writes the value bytes by hand. */
void tw_kv_head(tw *w, const char *key, size_t key_len, uint32_t type);

/* ── header and tensors ── */
/* magic "GGUF", version, tensor_count, kv_count. */
void tw_header(tw *w, uint32_t version, uint64_t n_tensors, uint64_t n_kv);
void tw_header_m(tw *w, const char magic[4], uint32_t version, uint64_t n_tensors, uint64_t n_kv);
/* Patch the header's counts to what was written (w->n_tensors, w->n_kv). */
void tw_fix_counts(tw *w);

typedef struct tw_tdesc {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[KG_MAX_DIMS];
    uint32_t type;
    uint64_t offset;  /* tw_layout fills it (or set it by hand) */
    uint64_t n_bytes; /* tw_layout fills it from kg_type_get */
} tw_tdesc;

/* Bytes of a tensor of this type and shape per the GGML block table
 * (elements / blck * size); 0 if the type is unknown. */
uint64_t tw_nbytes(uint32_t type, uint32_t n_dims, const uint64_t *ne);
/* Fills n_bytes and offsets (each aligned to `align`, in order); returns
 * the size of the data section. */
uint64_t tw_layout(tw_tdesc *t, size_t n, uint32_t align);

void tw_tensor_n(tw *w, const char *name, size_t name_len, uint32_t n_dims, const uint64_t *ne,
                 uint32_t type, uint64_t offset);
void tw_tensor(tw *w, const tw_tdesc *t);
void tw_tensors(tw *w, const tw_tdesc *t, size_t n);

/* Zero padding up to a multiple of `align` (marks "padding" if any); the
 * data section starts here (w->data_start). */
void tw_pad(tw *w, uint32_t align);
/* Byte j of tensor i's data as written by tw_data_all. */
uint8_t tw_pattern(size_t i, uint64_t j);
/* tw_pad, then each tensor's bytes (pattern) at data_start + offset. */
void tw_data_all(tw *w, const tw_tdesc *t, size_t n, uint32_t align);

/* ── files ── */
/* Writes n bytes to `path`; false (errno set) on failure. */
bool tw_save(const void *buf, size_t n, const char *path);
/* Writes w's bytes to kt_tmpdir()/name; returns `path` (filled) or NULL. */
const char *tw_tmpfile(const tw *w, const char *name, char *path, size_t cap);
/* If $KGEN_WRITE_CORPUS names a directory, writes n bytes there as
 * PREFIX-NN.gguf (NN counting per prefix). No-op otherwise. */
void tw_export(const void *buf, size_t n, const char *prefix);

#endif
