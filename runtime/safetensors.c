/*
 * safetensors.c — the safetensors reader (Hugging Face's tensor file).
 *
 * Requires: nothing but the bytes, and jansson for the JSON header.
 * Produces: a validated kg_safetensors whose every tensor lies inside the
 * file, the tensors' data together covering the data section exactly.
 *
 * ── The safetensors format (integers little-endian) ──
 *
 *   offset        field        type        notes
 *   ------------  -----------  ----------  ---------------------------------
 *   0             N            u64         length of the header, in bytes
 *   8             header       u8[N]       a JSON object, UTF-8; writers pad
 *                                          it with spaces (0x20) so that the
 *                                          data starts 8-aligned
 *   8 + N         data         u8[]        the tensors' bytes, to the end of
 *                                          the file
 *
 *   header:       { "__metadata__": { string: string, ... },   (optional)
 *                   "<tensor name>": { "dtype": "F32",
 *                                      "shape": [d0, d1, ...],  (outermost first)
 *                                      "data_offsets": [begin, end] }, ... }
 *   data_offsets: bytes [begin, end) of the data section (relative to 8 + N)
 *   dtype:        F64 F32 F16 BF16 I64 I32 I16 I8 U8 (read here); BOOL U16
 *                 U32 U64 F8_E4M3 F8_E5M2 F8_E8M0 F6_E2M3 F6_E3M2 F4 C64
 *                 (in the format, refused here: KG_ERR_UNSUPPORTED)
 *   tensor bytes: product(shape) x dtype size = end - begin, row-major
 *                 (C order), little-endian; shape [] is a scalar (1 element)
 *
 * Checked, each refused with the file's name and the tensor or field:
 *   - the file holds the 8-byte length; 0 < N <= 100,000,000 (the format's
 *     limit) and 8 + N <= file size; the header starts with '{' (as the
 *     reference implementation requires) and is one JSON object, nothing
 *     after it but whitespace (jansson: strict RFC 8259, valid UTF-8, no NUL
 *     in keys; duplicate keys refused with JSON_REJECT_DUPLICATES, since
 *     jansson would otherwise keep the last);
 *   - every entry other than "__metadata__" is an object with exactly the
 *     keys dtype (a string), shape (an array of at most KG_MAX_DIMS
 *     non-negative integers: more dims are refused as unsupported) and
 *     data_offsets (two non-negative integers, begin <= end);
 *   - the element count and byte size do not overflow (and the count fits
 *     int64), and the byte size equals end - begin; end <= the data size;
 *   - sorted by offset, the tensors neither overlap nor leave holes: the
 *     format says the data section is fully indexed, so their union must be
 *     exactly [0, data size): a hole, trailing bytes after the last tensor
 *     included, is refused (a zero-byte tensor must sit at a boundary);
 *   - "__metadata__" is an object of strings (null, which the reference
 *     implementation accepts as "none", is read as no metadata).
 * Tensor names are any UTF-8 jansson accepts (including ""); a NUL in a
 * name is refused by jansson ("NUL byte in object key not supported").
 *
 * Tensors are returned in the header's order (for files the safetensors
 * package writes, the data's order), in kgen's convention: ne[0] is the
 * innermost (last) dimension, n_dims the rank. The data is NOT aligned: the
 * format guarantees nothing, so kg_tensor.data may be at any address
 * (consumers copy it or use unaligned loads).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000u /* the format's limit on N */

struct kg_safetensors {
    const uint8_t *base;        /* the bytes (mapping or caller's buffer) */
    uint64_t size;
    bool mapped;
    char *name;                 /* path or buffer name (arena) */
    uint64_t data_offset;       /* 8 + N */
    uint64_t n_tensors, n_meta;
    kg_tensor *tensors;         /* [n_tensors], header order */
    const kg_tensor **t_sorted; /* by name, for lookup */
    kg_kv *meta;                /* [n_meta], header order */
    kg_arena arena;
};

/* ─────────────────────────── dtypes ─────────────────────────── */

static const struct {
    const char *name;
    int type; /* a kg_type, or -1: in the format, not read */
} dtypes[] = {
    {"F64", KG_TYPE_F64}, {"F32", KG_TYPE_F32}, {"F16", KG_TYPE_F16}, {"BF16", KG_TYPE_BF16},
    {"I64", KG_TYPE_I64}, {"I32", KG_TYPE_I32}, {"I16", KG_TYPE_I16}, {"I8", KG_TYPE_I8},
    {"U8", KG_TYPE_U8},
    {"BOOL", -1}, {"U16", -1}, {"U32", -1}, {"U64", -1}, {"F8_E4M3", -1}, {"F8_E5M2", -1},
    {"F8_E8M0", -1}, {"F6_E2M3", -1}, {"F6_E3M2", -1}, {"F4", -1}, {"C64", -1},
};

const char *kg_st_dtype_name(const kg_tensor *t)
{
    for (size_t i = 0; t && i < sizeof dtypes / sizeof *dtypes; i++)
        if (dtypes[i].type == (int)t->type) return dtypes[i].name;
    return "?";
}

/* ─────────────────────────── messages ─────────────────────────── */

/* What a JSON value is, for messages (internal.h: the other JSON readers use it too). */
const char *kg_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* A JSON scalar, for messages ("-1", "2.5", "\"x\"" or its kind). */
static const char *jshow(const json_t *v, char *buf, size_t cap)
{
    if (json_is_integer(v)) snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v)) {
        snprintf(buf, cap, "%.17g", json_real_value(v));
        if (!strpbrk(buf, ".eEin") && strlen(buf) + 3 < cap) strcat(buf, ".0"); /* 2.0, not 2 */
    }
    else if (json_is_string(v)) {
        char e[80];
        snprintf(buf, cap, "the string \"%s\"",
                 kg_escape(e, sizeof e, json_string_value(v), json_string_length(v), 40));
    } else snprintf(buf, cap, "%s", kg_json_kind(v));
    return buf;
}

/* A non-negative integer (`what` of tensor `en`), or a message. */
static kg_status get_uint(const kg_safetensors *s, const char *en, const char *what, const json_t *v, uint64_t *out)
{
    char b[120];
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': %s is %s (must be a non-negative integer)", s->name, en,
                      what, jshow(v, b, sizeof b));
    *out = (uint64_t)json_integer_value(v);
    return KG_OK;
}

/* ─────────────────────────── entries ─────────────────────────── */

static kg_status read_dtype(const kg_safetensors *s, const char *en, const json_t *v, kg_tensor *t)
{
    char b[120];
    if (!json_is_string(v))
        return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': dtype is %s (must be a string)", s->name, en,
                      jshow(v, b, sizeof b));
    const char *d = json_string_value(v);
    size_t len = json_string_length(v);
    kg_escape(b, sizeof b, d, len, 40);
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++) {
        if (strlen(dtypes[i].name) != len || memcmp(dtypes[i].name, d, len)) continue;
        if (dtypes[i].type < 0)
            return kg_err(KG_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not one kgen reads "
                          "(it reads F64, F32, F16, BF16, I64, I32, I16, I8 and U8)", s->name, en, b);
        t->type = (kg_type)dtypes[i].type;
        return KG_OK;
    }
    return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': dtype \"%s\" is not a safetensors dtype", s->name, en, b);
}

/* shape: outermost first in the file; ne[0] innermost in kgen */
static kg_status read_shape(const kg_safetensors *s, const char *en, const json_t *v, kg_tensor *t)
{
    if (!json_is_array(v))
        return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': shape is %s (must be an array)", s->name, en, kg_json_kind(v));
    size_t rank = json_array_size(v);
    if (rank > KG_MAX_DIMS)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: tensor '%s': shape has %zu dimensions (kgen reads at most %d)",
                      s->name, en, rank, KG_MAX_DIMS);
    t->n_dims = (uint32_t)rank;
    t->n_elements = 1;
    for (uint32_t d = 0; d < KG_MAX_DIMS; d++) t->ne[d] = 1;
    for (size_t i = 0; i < rank; i++) {
        char what[32];
        uint64_t dim;
        snprintf(what, sizeof what, "shape[%zu]", i);
        kg_status st = get_uint(s, en, what, json_array_get(v, i), &dim);
        if (st) return st;
        t->ne[rank - 1 - i] = dim;
        if (!kg_mul_u64(t->n_elements, dim, &t->n_elements) || t->n_elements > INT64_MAX)
            return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': the element count overflows at shape[%zu] = %" PRIu64,
                          s->name, en, i, dim);
    }
    return KG_OK;
}

static kg_status read_offsets(const kg_safetensors *s, const char *en, const json_t *v, uint64_t *begin,
                              uint64_t *end)
{
    if (!json_is_array(v) || json_array_size(v) != 2)
        return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': data_offsets is %s%s (must be [begin, end])", s->name, en,
                      kg_json_kind(v), json_is_array(v) ? " of other than 2 elements" : "");
    kg_status st = get_uint(s, en, "data_offsets[0] (begin)", json_array_get(v, 0), begin);
    if (!st) st = get_uint(s, en, "data_offsets[1] (end)", json_array_get(v, 1), end);
    if (st) return st;
    if (*begin > *end)
        return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] begin after they end",
                      s->name, en, *begin, *end);
    return KG_OK;
}

/* One tensor entry: exactly dtype, shape, data_offsets; sizes agree. */
static kg_status read_tensor(kg_safetensors *s, const char *key, size_t key_len, json_t *v, kg_tensor *t)
{
    char en[200];
    kg_escape(en, sizeof en, key, key_len, 120);
    if (!json_is_object(v))
        return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': its entry is %s (must be an object with dtype, shape and "
                      "data_offsets)", s->name, en, kg_json_kind(v));
    json_t *f[3] = {NULL, NULL, NULL};
    static const char *const fields[3] = {"dtype", "shape", "data_offsets"};
    const char *k;
    size_t klen;
    json_t *x;
    json_object_keylen_foreach(v, k, klen, x)
    {
        int i = 0;
        while (i < 3 && !(strlen(fields[i]) == klen && !memcmp(fields[i], k, klen))) i++;
        if (i == 3) {
            char ek[120];
            return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': unexpected key '%s' (an entry has exactly dtype, shape "
                          "and data_offsets)", s->name, en, kg_escape(ek, sizeof ek, k, klen, 60));
        }
        f[i] = x;
    }
    for (int i = 0; i < 3; i++)
        if (!f[i]) return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': no \"%s\"", s->name, en, fields[i]);
    uint64_t begin, end;
    kg_status st = read_dtype(s, en, f[0], t);
    if (!st) st = read_shape(s, en, f[1], t);
    if (!st) st = read_offsets(s, en, f[2], &begin, &end);
    if (st) return st;
    uint32_t esize = kg_type_get(t->type)->size;
    if (!kg_mul_u64(t->n_elements, esize, &t->n_bytes))
        return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': the byte size overflows (%" PRIu64 " elements of %s)",
                      s->name, en, t->n_elements, kg_st_dtype_name(t));
    if (t->n_bytes != end - begin)
        return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                      " bytes, but its shape and dtype %s need %" PRIu64 " (%" PRIu64 " elements of %" PRIu32 ")",
                      s->name, en, begin, end, end - begin, kg_st_dtype_name(t), t->n_bytes, t->n_elements, esize);
    uint64_t data_size = s->size - s->data_offset;
    if (end > data_size)
        return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end "
                      "of the file (the data section has %" PRIu64 " bytes)", s->name, en, begin, end, data_size);
    t->offset = begin;
    t->data = s->base + s->data_offset + begin;
    t->name = kg_arena_strndup(&s->arena, key, key_len);
    return t->name ? KG_OK : KG_ERR_NOMEM;
}

static kg_status read_meta(kg_safetensors *s, json_t *v)
{
    if (json_is_null(v)) return KG_OK;
    if (!json_is_object(v))
        return kg_err(KG_ERR_FORMAT, "%s: __metadata__ is %s (must be an object of strings)", s->name, kg_json_kind(v));
    s->meta = kg_arena_alloc(&s->arena, json_object_size(v), sizeof *s->meta);
    if (!s->meta && json_object_size(v)) return KG_ERR_NOMEM;
    const char *k;
    size_t klen;
    json_t *x;
    json_object_keylen_foreach(v, k, klen, x)
    {
        if (!json_is_string(x)) {
            char ek[200];
            return kg_err(KG_ERR_FORMAT, "%s: __metadata__ key '%s' is %s (must be a string)", s->name,
                          kg_escape(ek, sizeof ek, k, klen, 120), kg_json_kind(x));
        }
        kg_kv *kv = &s->meta[s->n_meta++];
        size_t len = json_string_length(x);
        char *val = kg_arena_strndup(&s->arena, json_string_value(x), len);
        kv->key = kg_arena_strndup(&s->arena, k, klen);
        if (!kv->key || !val) return KG_ERR_NOMEM;
        kv->value.type = KG_V_STRING;
        kv->value.str = (kg_str){val, len};
    }
    return KG_OK;
}

/* ─────────────────────────── layout ─────────────────────────── */

/* by data offset, then by size: zero-byte tensors first at their offset */
static int cmp_offset(const void *a, const void *b)
{
    const kg_tensor *x = *(const kg_tensor *const *)a, *y = *(const kg_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return (x->n_bytes > y->n_bytes) - (x->n_bytes < y->n_bytes);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const kg_tensor *const *)a)->name, (*(const kg_tensor *const *)b)->name);
}

/* The tensors, in offset order, tile [0, data size) exactly. */
static kg_status check_cover(kg_safetensors *s)
{
    char e1[200], e2[200];
    uint64_t pos = 0, data_size = s->size - s->data_offset;
    const kg_tensor *prev = NULL; /* the last tensor with bytes: it ends at pos */
    if (s->n_tensors) qsort(s->t_sorted, s->n_tensors, sizeof *s->t_sorted, cmp_offset);
    for (uint64_t i = 0; i < s->n_tensors; i++) {
        const kg_tensor *t = s->t_sorted[i];
        kg_escape(e2, sizeof e2, t->name, strlen(t->name), 80);
        if (t->offset < pos) /* then prev is set: pos > 0 */
            return kg_err(KG_ERR_FORMAT, "%s: tensors '%s' (data_offsets [%" PRIu64 ", %" PRIu64 "]) and '%s' "
                          "([%" PRIu64 ", %" PRIu64 "]) overlap", s->name,
                          kg_escape(e1, sizeof e1, prev->name, strlen(prev->name), 80), prev->offset,
                          prev->offset + prev->n_bytes, e2, t->offset, t->offset + t->n_bytes);
        if (t->offset > pos) {
            if (prev) kg_escape(e1, sizeof e1, prev->name, strlen(prev->name), 80);
            return kg_err(KG_ERR_FORMAT, "%s: the data section has a hole: bytes [%" PRIu64 ", %" PRIu64 ") "
                          "between %s%s%s and tensor '%s' belong to no tensor (the format indexes every byte)",
                          s->name, pos, t->offset, prev ? "tensor '" : "its start", prev ? e1 : "",
                          prev ? "'" : "", e2);
        }
        pos = t->offset + t->n_bytes;
        if (t->n_bytes) prev = t;
    }
    if (pos != data_size) {
        if (prev) kg_escape(e1, sizeof e1, prev->name, strlen(prev->name), 80);
        return kg_err(KG_ERR_FORMAT, "%s: %" PRIu64 " bytes of the data section, [%" PRIu64 ", %" PRIu64 "), "
                      "belong to no tensor (after %s%s%s; the format indexes every byte: trailing data is refused)",
                      s->name, data_size - pos, pos, data_size, prev ? "tensor '" : "the header",
                      prev ? e1 : "", prev ? "'" : "");
    }
    if (s->n_tensors) qsort(s->t_sorted, s->n_tensors, sizeof *s->t_sorted, cmp_name);
    return KG_OK;
}

/* ─────────────────────────── parse ─────────────────────────── */

static kg_status too_short(const char *name, uint64_t size)
{
    return kg_err(KG_ERR_FORMAT, "%s: truncated: the file has %" PRIu64 " bytes, fewer than the 8 of the header "
                  "length (not a safetensors file?)", name, size);
}

static kg_status parse_json(kg_safetensors *s, json_t *root)
{
    uint64_t n = json_object_size(root);
    s->tensors = kg_arena_alloc(&s->arena, n, sizeof *s->tensors);
    s->t_sorted = kg_arena_alloc(&s->arena, n, sizeof *s->t_sorted);
    if (n && (!s->tensors || !s->t_sorted)) return KG_ERR_NOMEM;
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(root, k, klen, v)
    {
        kg_status st;
        if (klen == 12 && !memcmp(k, "__metadata__", 12)) st = read_meta(s, v);
        else {
            kg_tensor *t = &s->tensors[s->n_tensors];
            st = read_tensor(s, k, klen, v, t);
            s->t_sorted[s->n_tensors++] = t;
        }
        if (st) return st;
    }
    return check_cover(s);
}

static kg_status parse(kg_safetensors *s)
{
    uint64_t n;
    if (s->size < 8) return too_short(s->name, s->size);
    memcpy(&n, s->base, 8);
    if (n == 0) return kg_err(KG_ERR_FORMAT, "%s: the header length is 0 (the header is a JSON object)", s->name);
    if (n > ST_MAX_HEADER)
        return kg_err(KG_ERR_FORMAT, "%s: the header length %" PRIu64 " is over the format's limit of %u bytes "
                      "(corrupt, or not a safetensors file?)", s->name, n, ST_MAX_HEADER);
    if (n > s->size - 8)
        return kg_err(KG_ERR_FORMAT, "%s: truncated: the header length %" PRIu64 " runs past the end of the file "
                      "(%" PRIu64 " bytes follow the length)", s->name, n, s->size - 8);
    const char *h = (const char *)s->base + 8;
    if (h[0] != '{')
        return kg_err(KG_ERR_FORMAT, "%s: the header does not start with '{' (byte 8 is 0x%02X): not a "
                      "safetensors file?", s->name, (unsigned)(uint8_t)h[0]);
    s->data_offset = 8 + n;
    json_error_t e;
    json_t *root = json_loadb(h, (size_t)n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    if (!root) {
        char et[400];
        return kg_err(KG_ERR_FORMAT, "%s: the header is not valid JSON: %s (line %d, column %d; byte %" PRIu64
                      " of the file)", s->name, kg_escape(et, sizeof et, e.text, strlen(e.text), 200), e.line,
                      e.column, 8 + (uint64_t)(e.position < 0 ? 0 : e.position));
    }
    kg_status st = json_is_object(root) ? parse_json(s, root)
                                        : kg_err(KG_ERR_FORMAT, "%s: the header is %s, not a JSON object", s->name,
                                                 kg_json_kind(root));
    json_decref(root);
    return st;
}

/* ─────────────────────────── open / close ─────────────────────────── */

static kg_status open_common(const void *buf, uint64_t size, bool mapped, const char *name, kg_safetensors **out)
{
    kg_safetensors *s = calloc(1, sizeof *s);
    if (!s) {
        if (mapped) munmap((void *)buf, size);
        return kg_err(KG_ERR_NOMEM, "%s: out of memory", name);
    }
    s->base = buf;
    s->size = size;
    s->mapped = mapped;
    s->name = kg_arena_strndup(&s->arena, name, strlen(name));
    kg_status st = s->name ? parse(s) : KG_ERR_NOMEM;
    if (st) {
        if (st == KG_ERR_NOMEM && !*kg_last_error()) kg_err(st, "%s: out of memory", name);
        kg_st_close(s); /* unmaps too */
        return st;
    }
    kg_err_clear();
    *out = s;
    return KG_OK;
}

kg_status kg_st_open_memory(const void *buf, size_t size, const char *name, kg_safetensors **out)
{
    if (!out) return kg_err(KG_ERR_ARG, "kg_st_open_memory: out is NULL");
    *out = NULL;
    if (!buf && size) return kg_err(KG_ERR_ARG, "kg_st_open_memory: buf is NULL");
    return open_common(buf, size, false, name ? name : "<memory>", out);
}

kg_status kg_st_open(const char *path, kg_safetensors **out)
{
    if (!out || !path) return kg_err(KG_ERR_ARG, "kg_st_open: path or out is NULL");
    *out = NULL;
    int fd;
    struct stat sb;
    kg_status st = kg_open_regular(path, 0, &fd, &sb);
    if (st) return st;
    if (sb.st_size < 8) { /* nothing worth mapping (and an empty file cannot be) */
        close(fd);
        return too_short(path, (uint64_t)sb.st_size);
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return kg_err(KG_ERR_IO, "%s: cannot map: %s", path, strerror(e));
    return open_common(p, (uint64_t)sb.st_size, true, path, out);
}

void kg_st_close(kg_safetensors *s)
{
    if (!s) return;
    if (s->mapped) munmap((void *)s->base, s->size);
    kg_arena_free(&s->arena);
    free(s);
}

/* ─────────────────────────── accessors ─────────────────────────── */

const char *kg_st_name(const kg_safetensors *s) { return s->name; }
uint64_t kg_st_file_size(const kg_safetensors *s) { return s->size; }
uint64_t kg_st_data_offset(const kg_safetensors *s) { return s->data_offset; }
uint64_t kg_st_n_tensors(const kg_safetensors *s) { return s->n_tensors; }
uint64_t kg_st_n_meta(const kg_safetensors *s) { return s->n_meta; }

const kg_tensor *kg_st_tensor(const kg_safetensors *s, uint64_t i)
{
    return i < s->n_tensors ? &s->tensors[i] : NULL;
}

const kg_kv *kg_st_meta(const kg_safetensors *s, uint64_t i) { return i < s->n_meta ? &s->meta[i] : NULL; }

const kg_tensor *kg_st_find_tensor(const kg_safetensors *s, const char *name)
{
    kg_tensor probe = {.name = name};
    const kg_tensor *pp = &probe, **hit;
    if (!s->n_tensors || !name) return NULL;
    hit = bsearch(&pp, s->t_sorted, s->n_tensors, sizeof *s->t_sorted, cmp_name);
    return hit ? *hit : NULL;
}
