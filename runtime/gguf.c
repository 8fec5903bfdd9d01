/*
 * gguf.c — GGUF reader, shared by the generator and the runtime.
 *
 * Requires: nothing but the bytes. Produces: a validated kg_gguf whose every
 * string, array and tensor lies inside the file.
 *
 * ── The GGUF file format (versions 2 and 3; all integers little-endian) ──
 *
 *   offset        field            type               notes
 *   ------------  ---------------  -----------------  ------------------------
 *   0             magic            u8[4]              "GGUF"
 *   4             version          u32                2 or 3 (1 used u32 counts)
 *   8             tensor_count     u64
 *   16            kv_count         u64
 *   24            kv[kv_count]     see below          metadata
 *   ...           tensor_info[tensor_count]            see below
 *   ...           padding          u8[]               to general.alignment
 *   data_offset   data             u8[]               tensor data; each tensor
 *                                                     at data_offset + offset
 *
 *   string:       len u64, then len bytes (no terminator, not validated UTF-8)
 *   kv:           key string, value_type u32, value
 *   value:        by value_type:
 *                   0 u8  1 i8  2 u16  3 i16  4 u32  5 i32  6 f32  7 bool(u8)
 *                   8 string  10 u64  11 i64  12 f64
 *                   9 array: elem_type u32, count u64, count values of
 *                     elem_type (which may itself be array: nesting)
 *   tensor_info:  name string, n_dims u32 (<= 4), ne u64[n_dims] (ne[0]
 *                 innermost), type u32 (a GGML type id), offset u64
 *                 (relative to data_offset; a multiple of the alignment)
 *   alignment:    metadata key "general.alignment" (u32, a power of two);
 *                 default 32
 *   tensor bytes: n_elements / blck(type) * size(type); ne[0] must be a
 *                 multiple of blck(type)
 *
 * kgen's extra rules (a file breaking them is refused with the reason):
 * no duplicate keys or tensor names; no empty keys or names, no NUL inside
 * them; tensors' data do not overlap (gaps are allowed); arrays nested at most KG_MAX_NEST deep; bool bytes are 0 or 1; every
 * tensor lies wholly inside the file; element counts fit in int64.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define KG_MAX_NEST 8
#define KG_DEFAULT_ALIGNMENT 32

struct kg_gguf {
    const uint8_t *base;       /* the bytes (mapping or caller's buffer) */
    uint64_t size;
    bool mapped;
    char *name;                /* path or buffer name (arena) */
    uint32_t version, alignment;
    uint64_t data_offset;
    uint64_t n_kv, n_tensors;
    kg_kv *kv;                 /* [n_kv], file order */
    kg_tensor *tensors;        /* [n_tensors], file order */
    const kg_kv **kv_sorted;   /* by key, for lookup */
    const kg_tensor **t_sorted;/* by name, for lookup */
    kg_arena arena;
};

/* ─────────────────────────── cursor ─────────────────────────── */

typedef struct rd {
    const uint8_t *p;
    uint64_t size, pos;
    const char *name;
} rd;

static uint64_t left(const rd *r) { return r->size - r->pos; }

static bool take(rd *r, void *dst, uint64_t n)
{
    if (left(r) < n) return false;
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return true;
}

/* What is being read, for messages; formatted only when something fails:
 * "<label>[ <index>][ of <owner>]", e.g. "element 7 of key 'x'". */
typedef struct field {
    const char *label;
    const char *owner; /* "key 'x'", "tensor 'y'" or NULL */
    int64_t index;     /* -1: none */
} field;

static const char *field_name(const field *f, char *buf, size_t cap)
{
    int n = f->index >= 0 ? snprintf(buf, cap, "%s %" PRId64, f->label, f->index) : snprintf(buf, cap, "%s", f->label);
    if (f->owner && n >= 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, " of %s", f->owner);
    return buf;
}

static kg_status truncated(const rd *r, field f)
{
    char w[400];
    return kg_err(KG_ERR_FORMAT,
                  "%s: truncated: file ends at byte %" PRIu64 " while reading %s",
                  r->name, r->size, field_name(&f, w, sizeof w));
}

/* Reads a string header and checks its bytes are present. */
static kg_status read_str(rd *r, kg_str *s, field f)
{
    uint64_t len;
    char w[400];
    if (!take(r, &len, 8)) return truncated(r, f);
    if (len > left(r))
        return kg_err(KG_ERR_FORMAT,
                      "%s: %s: string length %" PRIu64 " at offset %" PRIu64
                      " runs past the end of the file (%" PRIu64 " bytes left)",
                      r->name, field_name(&f, w, sizeof w), len, r->pos - 8, left(r));
    s->ptr = (const char *)r->p + r->pos;
    s->len = len;
    r->pos += len;
    return KG_OK;
}

/* ─────────────────────────── values ─────────────────────────── */

static const uint8_t vsize[KG_V_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *kg_vtype_name(uint32_t t)
{
    static const char *names[KG_V_COUNT] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                            "bool", "string", "array", "u64", "i64", "f64"};
    return t < KG_V_COUNT ? names[t] : "invalid";
}

/* Widens the fixed-size value at `p` of type `t` into `out`. */
static void widen(kg_vtype t, const uint8_t *p, kg_value *out)
{
    out->type = t;
    switch (t) {
    case KG_V_U8: case KG_V_BOOL: out->u = p[0]; break;
    case KG_V_I8: out->i = (int8_t)p[0]; break;
    case KG_V_U16: { uint16_t v; memcpy(&v, p, 2); out->u = v; break; }
    case KG_V_I16: { int16_t v; memcpy(&v, p, 2); out->i = v; break; }
    case KG_V_U32: { uint32_t v; memcpy(&v, p, 4); out->u = v; break; }
    case KG_V_I32: { int32_t v; memcpy(&v, p, 4); out->i = v; break; }
    case KG_V_F32: { float v; memcpy(&v, p, 4); out->f = v; break; }
    case KG_V_U64: memcpy(&out->u, p, 8); break;
    case KG_V_I64: memcpy(&out->i, p, 8); break;
    case KG_V_F64: memcpy(&out->f, p, 8); break;
    default: break;
    }
}

typedef struct parser {
    rd r;
    kg_arena *arena;
    const char *key;   /* the key being read, escaped, for messages */
    const char *owner; /* "key '<key>'" */
} parser;

static kg_status read_value(parser *ps, uint32_t type, kg_value *out, int depth);

static kg_status read_array(parser *ps, kg_value *out, int depth)
{
    rd *r = &ps->r;
    uint32_t et;
    uint64_t n;
    if (!take(r, &et, 4) || !take(r, &n, 8)) return truncated(r, (field){"the array header", ps->owner, -1});
    if (et >= KG_V_COUNT)
        return kg_err(KG_ERR_FORMAT, "%s: key '%s': array element type %" PRIu32 " is not a GGUF value type",
                      r->name, ps->key, et);
    if (et == KG_V_ARRAY && depth + 1 >= KG_MAX_NEST)
        return kg_err(KG_ERR_FORMAT, "%s: key '%s': arrays nested deeper than %d", r->name, ps->key,
                      KG_MAX_NEST);
    /* the least each element can occupy in the file bounds the count */
    uint64_t min = et == KG_V_STRING ? 8 : et == KG_V_ARRAY ? 12 : vsize[et];
    if (n > left(r) / min)
        return kg_err(KG_ERR_FORMAT,
                      "%s: key '%s': array of %" PRIu64 " %s needs at least %" PRIu64
                      " bytes per element but only %" PRIu64 " bytes remain (truncated or corrupt file?)",
                      r->name, ps->key, n, kg_vtype_name(et), min, left(r));
    out->type = KG_V_ARRAY;
    out->arr.type = et;
    out->arr.n = n;
    if (et == KG_V_STRING) {
        kg_str *s = kg_arena_alloc(ps->arena, n, sizeof *s);
        if (!s && n) return kg_err(KG_ERR_NOMEM, "%s: key '%s': out of memory for %" PRIu64 " strings", r->name, ps->key, n);
        for (uint64_t i = 0; i < n; i++) {
            kg_status st = read_str(r, &s[i], (field){"element", ps->owner, (int64_t)i});
            if (st) return st;
        }
        out->arr.strs = s;
    } else if (et == KG_V_ARRAY) {
        kg_value *a = kg_arena_alloc(ps->arena, n, sizeof *a);
        if (!a && n) return kg_err(KG_ERR_NOMEM, "%s: key '%s': out of memory for %" PRIu64 " arrays", r->name, ps->key, n);
        for (uint64_t i = 0; i < n; i++) {
            kg_status st = read_value(ps, KG_V_ARRAY, &a[i], depth + 1);
            if (st) return st;
        }
        out->arr.arrs = a;
    } else {
        out->arr.raw = r->p + r->pos;
        r->pos += n * vsize[et]; /* checked above */
        if (et == KG_V_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (((const uint8_t *)out->arr.raw)[i] > 1)
                    return kg_err(KG_ERR_FORMAT, "%s: key '%s': element %" PRIu64 " is a bool with value %u (must be 0 or 1)",
                                  r->name, ps->key, i, ((const uint8_t *)out->arr.raw)[i]);
    }
    return KG_OK;
}

static kg_status read_value(parser *ps, uint32_t type, kg_value *out, int depth)
{
    rd *r = &ps->r;
    if (type == KG_V_ARRAY) return read_array(ps, out, depth);
    if (type == KG_V_STRING) {
        out->type = KG_V_STRING;
        return read_str(r, &out->str, (field){"the string value", ps->owner, -1});
    }
    if (type >= KG_V_COUNT)
        return kg_err(KG_ERR_FORMAT, "%s: key '%s': value type %" PRIu32 " is not a GGUF value type",
                      r->name, ps->key, type);
    if (left(r) < vsize[type]) return truncated(r, (field){kg_vtype_name(type), ps->owner, -1});
    widen(type, r->p + r->pos, out);
    r->pos += vsize[type];
    if (type == KG_V_BOOL && out->u > 1)
        return kg_err(KG_ERR_FORMAT, "%s: key '%s': bool with value %" PRIu64 " (must be 0 or 1)",
                      r->name, ps->key, out->u);
    return KG_OK;
}

/* ─────────────────────────── sections ─────────────────────────── */

static int cmp_kv(const void *a, const void *b)
{
    return strcmp((*(const kg_kv *const *)a)->key, (*(const kg_kv *const *)b)->key);
}

/* by data offset, then by size (zero-size tensors overlap nothing) */
static int cmp_offset(const void *a, const void *b)
{
    const kg_tensor *x = *(const kg_tensor *const *)a, *y = *(const kg_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return (x->n_bytes > y->n_bytes) - (x->n_bytes < y->n_bytes);
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp((*(const kg_tensor *const *)a)->name, (*(const kg_tensor *const *)b)->name);
}

/* A key or tensor name: non-empty, no NUL; copied NUL-terminated. */
static kg_status read_name(parser *ps, const char *what, uint64_t index, char **out)
{
    rd *r = &ps->r;
    char w[96];
    kg_str s;
    kg_status st = read_str(r, &s, (field){what, NULL, (int64_t)index});
    if (st) return st;
    snprintf(w, sizeof w, "%s %" PRIu64, what, index);
    if (s.len == 0) return kg_err(KG_ERR_FORMAT, "%s: %s is empty", r->name, w);
    if (memchr(s.ptr, 0, s.len)) return kg_err(KG_ERR_FORMAT, "%s: %s contains a NUL byte", r->name, w);
    *out = kg_arena_strndup(ps->arena, s.ptr, s.len);
    return *out ? KG_OK : KG_ERR_NOMEM;
}

static kg_status read_header(kg_gguf *g, rd *r, uint64_t *n_tensors, uint64_t *n_kv)
{
    uint8_t magic[4];
    if (!take(r, magic, 4)) return truncated(r, (field){"the magic (file shorter than 4 bytes)", NULL, -1});
    if (memcmp(magic, "GGUF", 4) != 0) {
        char m[32];
        kg_escape(m, sizeof m, (const char *)magic, 4, 4);
        return kg_err(KG_ERR_FORMAT, "%s: not a GGUF file (magic is \"%s\", expected \"GGUF\")", r->name, m);
    }
    if (!take(r, &g->version, 4)) return truncated(r, (field){"header.version", NULL, -1});
    if (g->version == 1)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported (only versions 2 and 3); "
                      "re-convert the model with a current llama.cpp", r->name);
    if (g->version != 2 && g->version != 3) {
        if (__builtin_bswap32(g->version) == 2 || __builtin_bswap32(g->version) == 3)
            return kg_err(KG_ERR_UNSUPPORTED, "%s: big-endian GGUF is not supported", r->name);
        return kg_err(KG_ERR_UNSUPPORTED, "%s: unknown GGUF version %" PRIu32 " (kgen reads versions 2 and 3)",
                      r->name, g->version);
    }
    if (!take(r, n_tensors, 8)) return truncated(r, (field){"header.tensor_count", NULL, -1});
    if (!take(r, n_kv, 8)) return truncated(r, (field){"header.kv_count", NULL, -1});
    /* smallest kv: key (8+1), type 4, u8 value 1; smallest tensor info: 8+1+4+4+8 */
    if (*n_kv > left(r) / 14)
        return kg_err(KG_ERR_FORMAT, "%s: header.kv_count %" PRIu64 " is impossible: the file has only %" PRIu64
                      " bytes after the header (truncated or corrupt file?)", r->name, *n_kv, left(r));
    if (*n_tensors > left(r) / 25)
        return kg_err(KG_ERR_FORMAT, "%s: header.tensor_count %" PRIu64 " is impossible: the file has only %" PRIu64
                      " bytes after the header (truncated or corrupt file?)", r->name, *n_tensors, left(r));
    return KG_OK;
}

static kg_status read_kvs(kg_gguf *g, parser *ps)
{
    rd *r = &ps->r;
    char ek[300], owner[320];
    g->kv = kg_arena_alloc(&g->arena, g->n_kv, sizeof *g->kv);
    g->kv_sorted = kg_arena_alloc(&g->arena, g->n_kv, sizeof *g->kv_sorted);
    if (g->n_kv && (!g->kv || !g->kv_sorted)) return KG_ERR_NOMEM;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        kg_kv *kv = &g->kv[i];
        uint32_t type;
        kg_status st = read_name(ps, "metadata key", i, (char **)&kv->key);
        if (st) return st;
        ps->key = kg_escape(ek, sizeof ek, kv->key, strlen(kv->key), 200);
        snprintf(owner, sizeof owner, "key '%s'", ek);
        ps->owner = owner;
        if (!take(r, &type, 4)) return truncated(r, (field){"the value type", owner, -1});
        if ((st = read_value(ps, type, &kv->value, 0))) return st;
        g->kv_sorted[i] = kv;
    }
    if (g->n_kv) qsort(g->kv_sorted, g->n_kv, sizeof *g->kv_sorted, cmp_kv);
    for (uint64_t i = 1; i < g->n_kv; i++)
        if (strcmp(g->kv_sorted[i - 1]->key, g->kv_sorted[i]->key) == 0)
            return kg_err(KG_ERR_FORMAT, "%s: duplicate metadata key '%s'", r->name,
                          kg_escape(ek, sizeof ek, g->kv_sorted[i]->key, strlen(g->kv_sorted[i]->key), 200));
    return KG_OK;
}

static kg_status read_alignment(kg_gguf *g)
{
    const kg_value *v = kg_gguf_find(g, "general.alignment");
    g->alignment = KG_DEFAULT_ALIGNMENT;
    if (!v) return KG_OK;
    if (v->type != KG_V_U32)
        return kg_err(KG_ERR_FORMAT, "%s: general.alignment has type %s (must be u32)", g->name,
                      kg_vtype_name(v->type));
    if (v->u == 0 || (v->u & (v->u - 1)))
        return kg_err(KG_ERR_FORMAT, "%s: general.alignment is %" PRIu64 " (must be a power of two)", g->name, v->u);
    g->alignment = (uint32_t)v->u;
    return KG_OK;
}

static kg_status read_tensor_infos(kg_gguf *g, parser *ps)
{
    rd *r = &ps->r;
    char en[200], owner[220];
    g->tensors = kg_arena_alloc(&g->arena, g->n_tensors, sizeof *g->tensors);
    g->t_sorted = kg_arena_alloc(&g->arena, g->n_tensors, sizeof *g->t_sorted);
    if (g->n_tensors && (!g->tensors || !g->t_sorted)) return KG_ERR_NOMEM;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        kg_tensor *t = &g->tensors[i];
        uint32_t type;
        kg_status st = read_name(ps, "tensor name", i, (char **)&t->name);
        if (st) return st;
        kg_escape(en, sizeof en, t->name, strlen(t->name), 120);
        snprintf(owner, sizeof owner, "tensor '%s'", en);
        if (!take(r, &t->n_dims, 4)) return truncated(r, (field){"n_dims", owner, -1});
        if (t->n_dims > KG_MAX_DIMS)
            return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': n_dims is %" PRIu32 " (at most %d)", r->name, en,
                          t->n_dims, KG_MAX_DIMS);
        t->n_elements = 1;
        for (uint32_t d = 0; d < KG_MAX_DIMS; d++) {
            t->ne[d] = 1;
            if (d >= t->n_dims) continue;
            if (!take(r, &t->ne[d], 8)) return truncated(r, (field){"dimension", owner, d});
            if (!kg_mul_u64(t->n_elements, t->ne[d], &t->n_elements) ||
                t->n_elements > INT64_MAX)
                return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': element count overflows (ne[%" PRIu32 "] = %" PRIu64 ")",
                              r->name, en, d, t->ne[d]);
        }
        if (!take(r, &type, 4)) return truncated(r, (field){"type", owner, -1});
        const kg_type_info *ti = kg_type_get(type);
        if (!ti)
            return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': unknown tensor type id %" PRIu32, r->name, en, type);
        t->type = (kg_type)type;
        if (t->ne[0] % ti->blck)
            return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': row length ne[0] = %" PRIu64
                          " is not a multiple of the %s block size %" PRIu32,
                          r->name, en, t->ne[0], ti->name, ti->blck);
        t->n_bytes = t->n_elements / ti->blck * ti->size; /* n_elements <= 2^63, size <= 292: may overflow */
        if ((t->n_elements / ti->blck) > UINT64_MAX / ti->size)
            return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': byte size overflows", r->name, en);
        if (!take(r, &t->offset, 8)) return truncated(r, (field){"offset", owner, -1});
        g->t_sorted[i] = t;
    }
    return KG_OK;
}

static kg_status place_tensors(kg_gguf *g, rd *r)
{
    char en[200];
    uint64_t start = r->pos, pad = (g->alignment - start % g->alignment) % g->alignment;
    g->data_offset = start + pad;
    if (g->n_tensors && g->data_offset > g->size)
        return kg_err(KG_ERR_FORMAT, "%s: the data section would start at byte %" PRIu64
                      ", past the end of the file (%" PRIu64 " bytes)", g->name, g->data_offset, g->size);
    if (g->data_offset > g->size) g->data_offset = g->size; /* no tensors: no data section */
    uint64_t data_size = g->size - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        kg_tensor *t = &g->tensors[i];
        kg_escape(en, sizeof en, t->name, strlen(t->name), 120);
        if (t->offset % g->alignment)
            return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': data offset %" PRIu64
                          " is not a multiple of the alignment %" PRIu32, g->name, en, t->offset, g->alignment);
        if (t->offset > data_size || t->n_bytes > data_size - t->offset)
            return kg_err(KG_ERR_FORMAT, "%s: tensor '%s': its %" PRIu64 " bytes at data offset %" PRIu64
                          " run past the end of the file (the data section has %" PRIu64 " bytes)",
                          g->name, en, t->n_bytes, t->offset, data_size);
        t->data = g->base + g->data_offset + t->offset;
    }
    if (g->n_tensors) qsort(g->t_sorted, g->n_tensors, sizeof *g->t_sorted, cmp_offset);
    for (uint64_t i = 1; i < g->n_tensors; i++) {
        const kg_tensor *a = g->t_sorted[i - 1], *b = g->t_sorted[i];
        if (a->n_bytes && b->n_bytes && a->offset + a->n_bytes > b->offset) {
            char en2[200];
            return kg_err(KG_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section", g->name,
                          kg_escape(en, sizeof en, a->name, strlen(a->name), 80),
                          kg_escape(en2, sizeof en2, b->name, strlen(b->name), 80));
        }
    }
    if (g->n_tensors) qsort(g->t_sorted, g->n_tensors, sizeof *g->t_sorted, cmp_tensor);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (strcmp(g->t_sorted[i - 1]->name, g->t_sorted[i]->name) == 0)
            return kg_err(KG_ERR_FORMAT, "%s: duplicate tensor name '%s'", g->name,
                          kg_escape(en, sizeof en, g->t_sorted[i]->name, strlen(g->t_sorted[i]->name), 120));
    return KG_OK;
}

static kg_status parse(kg_gguf *g)
{
    parser ps = {.r = {g->base, g->size, 0, g->name}, .arena = &g->arena, .key = "", .owner = "header"};
    kg_status st;
    if ((st = read_header(g, &ps.r, &g->n_tensors, &g->n_kv))) return st;
    if ((st = read_kvs(g, &ps))) return st;
    if ((st = read_alignment(g))) return st;
    if ((st = read_tensor_infos(g, &ps))) return st;
    return place_tensors(g, &ps.r);
}

/* ─────────────────────────── open / close ─────────────────────────── */

static kg_status open_common(const void *buf, uint64_t size, bool mapped, const char *name, kg_gguf **out)
{
    kg_gguf *g = calloc(1, sizeof *g);
    if (!g) return kg_err(KG_ERR_NOMEM, "%s: out of memory", name);
    g->base = buf;
    g->size = size;
    g->mapped = mapped;
    g->name = kg_arena_strndup(&g->arena, name, strlen(name));
    kg_status st = g->name ? parse(g) : KG_ERR_NOMEM;
    if (st) {
        kg_gguf_close(g); /* unmaps too */
        return st;
    }
    kg_err_clear();
    *out = g;
    return KG_OK;
}

kg_status kg_gguf_open_memory(const void *buf, size_t size, const char *name, kg_gguf **out)
{
    if (!out) return kg_err(KG_ERR_ARG, "kg_gguf_open_memory: out is NULL");
    *out = NULL;
    if (!buf && size) return kg_err(KG_ERR_ARG, "kg_gguf_open_memory: buf is NULL");
    return open_common(buf, size, false, name ? name : "<memory>", out);
}

kg_status kg_gguf_open(const char *path, kg_gguf **out)
{
    if (!out || !path) return kg_err(KG_ERR_ARG, "kg_gguf_open: path or out is NULL");
    *out = NULL;
    int fd;
    struct stat sb;
    kg_status st = kg_open_regular(path, 0, &fd, &sb);
    if (st) return st;
    if (sb.st_size == 0) {
        close(fd);
        return kg_err(KG_ERR_FORMAT, "%s: empty file (not a GGUF model)", path);
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return kg_err(KG_ERR_IO, "%s: cannot map: %s", path, strerror(e));
    return open_common(p, (uint64_t)sb.st_size, true, path, out);
}

void kg_gguf_close(kg_gguf *g)
{
    if (!g) return;
    if (g->mapped) munmap((void *)g->base, g->size);
    kg_arena_free(&g->arena);
    free(g);
}

/* ─────────────────────────── accessors ─────────────────────────── */

uint32_t kg_gguf_version(const kg_gguf *g) { return g->version; }
uint32_t kg_gguf_alignment(const kg_gguf *g) { return g->alignment; }
const char *kg_gguf_name(const kg_gguf *g) { return g->name; }
uint64_t kg_gguf_file_size(const kg_gguf *g) { return g->size; }
uint64_t kg_gguf_data_offset(const kg_gguf *g) { return g->data_offset; }
uint64_t kg_gguf_n_kv(const kg_gguf *g) { return g->n_kv; }
uint64_t kg_gguf_n_tensors(const kg_gguf *g) { return g->n_tensors; }

const kg_kv *kg_gguf_kv(const kg_gguf *g, uint64_t i) { return i < g->n_kv ? &g->kv[i] : NULL; }

const kg_tensor *kg_gguf_tensor(const kg_gguf *g, uint64_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const kg_value *kg_gguf_find(const kg_gguf *g, const char *key)
{
    kg_kv probe = {.key = key};
    const kg_kv *pp = &probe, **hit;
    if (!g->n_kv || !key) return NULL;
    hit = bsearch(&pp, g->kv_sorted, g->n_kv, sizeof *g->kv_sorted, cmp_kv);
    return hit ? &(*hit)->value : NULL;
}

const kg_tensor *kg_gguf_find_tensor(const kg_gguf *g, const char *name)
{
    kg_tensor probe = {.name = name};
    const kg_tensor *pp = &probe, **hit;
    if (!g->n_tensors || !name) return NULL;
    hit = bsearch(&pp, g->t_sorted, g->n_tensors, sizeof *g->t_sorted, cmp_tensor);
    return hit ? *hit : NULL;
}

static bool is_signed(kg_vtype t) { return t == KG_V_I8 || t == KG_V_I16 || t == KG_V_I32 || t == KG_V_I64; }
static bool is_unsigned(kg_vtype t)
{
    return t == KG_V_U8 || t == KG_V_U16 || t == KG_V_U32 || t == KG_V_U64 || t == KG_V_BOOL;
}

static const kg_value *lookup(const kg_gguf *g, const char *key)
{
    const kg_value *v = kg_gguf_find(g, key);
    if (!v) kg_err(KG_ERR_NOTFOUND, "%s: metadata key '%s' is missing", g->name, key);
    return v;
}

static kg_status wrong_type(const kg_gguf *g, const char *key, const kg_value *v, const char *want)
{
    return kg_err(KG_ERR_FORMAT, "%s: metadata key '%s' has type %s (expected %s)", g->name, key,
                  kg_vtype_name(v->type), want);
}

kg_status kg_gguf_get_u64(const kg_gguf *g, const char *key, uint64_t *out)
{
    const kg_value *v = lookup(g, key);
    *out = 0;
    if (!v) return KG_ERR_NOTFOUND;
    if (is_unsigned(v->type)) *out = v->u;
    else if (is_signed(v->type) && v->i >= 0) *out = (uint64_t)v->i;
    else if (is_signed(v->type))
        return kg_err(KG_ERR_FORMAT, "%s: metadata key '%s' is negative (%" PRId64 ")", g->name, key, v->i);
    else return wrong_type(g, key, v, "an integer");
    return KG_OK;
}

kg_status kg_gguf_get_i64(const kg_gguf *g, const char *key, int64_t *out)
{
    const kg_value *v = lookup(g, key);
    *out = 0;
    if (!v) return KG_ERR_NOTFOUND;
    if (is_signed(v->type)) *out = v->i;
    else if (is_unsigned(v->type) && v->u <= INT64_MAX) *out = (int64_t)v->u;
    else if (is_unsigned(v->type))
        return kg_err(KG_ERR_FORMAT, "%s: metadata key '%s' is too large (%" PRIu64 ")", g->name, key, v->u);
    else return wrong_type(g, key, v, "an integer");
    return KG_OK;
}

kg_status kg_gguf_get_f64(const kg_gguf *g, const char *key, double *out)
{
    const kg_value *v = lookup(g, key);
    *out = 0;
    if (!v) return KG_ERR_NOTFOUND;
    if (v->type == KG_V_F32 || v->type == KG_V_F64) *out = v->f;
    else if (is_signed(v->type)) *out = (double)v->i;
    else if (is_unsigned(v->type)) *out = (double)v->u;
    else return wrong_type(g, key, v, "a number");
    return KG_OK;
}

kg_status kg_gguf_get_str(const kg_gguf *g, const char *key, kg_str *out)
{
    const kg_value *v = lookup(g, key);
    *out = (kg_str){0};
    if (!v) return KG_ERR_NOTFOUND;
    if (v->type != KG_V_STRING) return wrong_type(g, key, v, "string");
    *out = v->str;
    return KG_OK;
}

bool kg_value_elem(const kg_value *v, uint64_t i, kg_value *out)
{
    if (!v || v->type != KG_V_ARRAY || i >= v->arr.n || !v->arr.raw) return false;
    widen(v->arr.type, (const uint8_t *)v->arr.raw + i * vsize[v->arr.type], out);
    return true;
}

bool kg_str_eq(kg_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}
