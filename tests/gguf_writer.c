/* gguf_writer.c — the tests' GGUF writer (see gguf_writer.h). */
#include "gguf_writer.h"
#include "kt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the test writer assumes a little-endian host");

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "gguf_writer: out of memory (%zu bytes)\n", n);
        abort();
    }
    return q;
}

void tw_init(tw *w) { memset(w, 0, sizeof *w); }

void tw_free(tw *w)
{
    free(w->buf);
    free(w->fields);
    memset(w, 0, sizeof *w);
}

/* ─────────────────────────── raw bytes ─────────────────────────── */

void tw_raw(tw *w, const void *p, size_t n)
{
    if (w->cap - w->len < n) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < n) cap *= 2;
        w->buf = xrealloc(w->buf, cap);
        w->cap = cap;
    }
    if (n) memcpy(w->buf + w->len, p, n);
    w->len += n;
}

void tw_u8(tw *w, uint8_t v) { tw_raw(w, &v, 1); }
void tw_u16(tw *w, uint16_t v) { tw_raw(w, &v, 2); }
void tw_u32(tw *w, uint32_t v) { tw_raw(w, &v, 4); }
void tw_u64(tw *w, uint64_t v) { tw_raw(w, &v, 8); }

void tw_zeros(tw *w, size_t n)
{
    static const uint8_t z[64];
    while (n) {
        size_t k = n < sizeof z ? n : sizeof z;
        tw_raw(w, z, k);
        n -= k;
    }
}

void tw_str(tw *w, const char *p, size_t len)
{
    tw_u64(w, len);
    tw_raw(w, p, len);
}

void tw_set_u32(tw *w, size_t off, uint32_t v)
{
    if (off + 4 <= w->len) memcpy(w->buf + off, &v, 4);
}

void tw_set_u64(tw *w, size_t off, uint64_t v)
{
    if (off + 8 <= w->len) memcpy(w->buf + off, &v, 8);
}

/* ─────────────────────────── fields ─────────────────────────── */

void tw_mark(tw *w, const char *fmt, ...)
{
    if (w->n_fields == w->cap_fields) {
        w->cap_fields = w->cap_fields ? 2 * w->cap_fields : 64;
        w->fields = xrealloc(w->fields, w->cap_fields * sizeof *w->fields);
    }
    tw_field *f = &w->fields[w->n_fields++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->name, sizeof f->name, fmt, ap);
    va_end(ap);
    f->off = w->len;
}

size_t tw_field_off(const tw *w, const char *name)
{
    for (size_t i = 0; i < w->n_fields; i++)
        if (!strcmp(w->fields[i].name, name)) return w->fields[i].off;
    return (size_t)-1;
}

/* Writes a string marking PREFIX (its length) and PREFIX.bytes (if any). */
static void mark_str(tw *w, const char *prefix, const char *p, size_t len)
{
    tw_mark(w, "%s", prefix);
    tw_u64(w, len);
    if (len) tw_mark(w, "%s.bytes", prefix);
    tw_raw(w, p, len);
}

/* ─────────────────────────── values ─────────────────────────── */

size_t tw_vsize(uint32_t type)
{
    static const uint8_t sz[KG_V_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < KG_V_COUNT ? sz[type] : 0;
}

tw_val tw_int(uint32_t type, int64_t v) { return (tw_val){.type = type, .bits = (uint64_t)v}; }

tw_val tw_f32(float v)
{
    uint32_t b;
    memcpy(&b, &v, 4);
    return (tw_val){.type = KG_V_F32, .bits = b};
}

tw_val tw_f64(double v)
{
    tw_val r = {.type = KG_V_F64};
    memcpy(&r.bits, &v, 8);
    return r;
}

tw_val tw_s(const char *p, size_t len) { return (tw_val){.type = KG_V_STRING, .s = p, .len = len}; }
tw_val tw_cs(const char *s) { return tw_s(s, strlen(s)); }

tw_val tw_arr(uint32_t et, uint64_t n, const void *raw)
{
    return (tw_val){.type = KG_V_ARRAY, .et = et, .n = n, .raw = raw};
}

tw_val tw_arr_of(uint32_t et, uint64_t n, const tw_val *items)
{
    return (tw_val){.type = KG_V_ARRAY, .et = et, .n = n, .items = items};
}

void tw_value(tw *w, const tw_val *v, const char *prefix)
{
    char sub[96];
    if (v->type == KG_V_STRING) {
        mark_str(w, prefix, v->s, v->len);
    } else if (v->type == KG_V_ARRAY) {
        tw_mark(w, "%s.type", prefix);
        tw_u32(w, v->et);
        tw_mark(w, "%s.count", prefix);
        tw_u64(w, v->n);
        size_t es = tw_vsize(v->et);
        for (uint64_t i = 0; i < v->n; i++) {
            snprintf(sub, sizeof sub, "%s[%llu]", prefix, (unsigned long long)i);
            if (v->items) {
                tw_val item = v->items[i];
                item.type = v->et; /* the element type is the array's */
                tw_value(w, &item, sub);
            } else if (es) {
                tw_mark(w, "%s", sub);
                tw_raw(w, (const uint8_t *)v->raw + i * es, es);
            }
        }
    } else {
        tw_mark(w, "%s", prefix);
        tw_raw(w, &v->bits, tw_vsize(v->type));
    }
}

void tw_kv_head(tw *w, const char *key, size_t key_len, uint32_t type)
{
    char f[48];
    snprintf(f, sizeof f, "kv[%llu].key", (unsigned long long)w->n_kv);
    mark_str(w, f, key, key_len);
    tw_mark(w, "kv[%llu].type", (unsigned long long)w->n_kv);
    tw_u32(w, type);
    w->n_kv++;
}

void tw_kv_n(tw *w, const char *key, size_t key_len, const tw_val *v)
{
    char f[48];
    snprintf(f, sizeof f, "kv[%llu].value", (unsigned long long)w->n_kv);
    tw_kv_head(w, key, key_len, v->type);
    tw_value(w, v, f);
}

void tw_kv(tw *w, const char *key, const tw_val *v) { tw_kv_n(w, key, strlen(key), v); }

/* ─────────────────────────── header, tensors ─────────────────────────── */

void tw_header_m(tw *w, const char magic[4], uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    tw_mark(w, "header.magic");
    tw_raw(w, magic, 4);
    tw_mark(w, "header.version");
    tw_u32(w, version);
    tw_mark(w, "header.tensor_count");
    tw_u64(w, n_tensors);
    tw_mark(w, "header.kv_count");
    tw_u64(w, n_kv);
}

void tw_header(tw *w, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    tw_header_m(w, "GGUF", version, n_tensors, n_kv);
}

void tw_fix_counts(tw *w)
{
    tw_set_u64(w, 8, w->n_tensors);
    tw_set_u64(w, 16, w->n_kv);
}

uint64_t tw_nbytes(uint32_t type, uint32_t n_dims, const uint64_t *ne)
{
    const kg_type_info *ti = kg_type_get(type);
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims && d < KG_MAX_DIMS; d++) n *= ne[d];
    return ti ? n / ti->blck * ti->size : 0;
}

uint64_t tw_layout(tw_tdesc *t, size_t n, uint32_t align)
{
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        off = (off + align - 1) / align * align;
        t[i].offset = off;
        t[i].n_bytes = tw_nbytes(t[i].type, t[i].n_dims, t[i].ne);
        off += t[i].n_bytes;
    }
    return off;
}

void tw_tensor_n(tw *w, const char *name, size_t name_len, uint32_t n_dims, const uint64_t *ne,
                 uint32_t type, uint64_t offset)
{
    unsigned long long i = (unsigned long long)w->n_tensors;
    char f[48];
    snprintf(f, sizeof f, "tensor[%llu].name", i);
    mark_str(w, f, name, name_len);
    tw_mark(w, "tensor[%llu].n_dims", i);
    tw_u32(w, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) {
        tw_mark(w, "tensor[%llu].ne[%u]", i, d);
        tw_u64(w, ne[d]);
    }
    tw_mark(w, "tensor[%llu].type", i);
    tw_u32(w, type);
    tw_mark(w, "tensor[%llu].offset", i);
    tw_u64(w, offset);
    w->n_tensors++;
}

void tw_tensor(tw *w, const tw_tdesc *t)
{
    tw_tensor_n(w, t->name, strlen(t->name), t->n_dims, t->ne, t->type, t->offset);
}

void tw_tensors(tw *w, const tw_tdesc *t, size_t n)
{
    for (size_t i = 0; i < n; i++) tw_tensor(w, &t[i]);
}

void tw_pad(tw *w, uint32_t align)
{
    size_t pad = (align - w->len % align) % align;
    if (pad) {
        tw_mark(w, "padding");
        tw_zeros(w, pad);
    }
    w->data_start = w->len;
}

uint8_t tw_pattern(size_t i, uint64_t j) { return (uint8_t)(i * 37 + j * 11 + 5 + (j >> 8)); }

void tw_data_all(tw *w, const tw_tdesc *t, size_t n, uint32_t align)
{
    tw_pad(w, align);
    for (size_t i = 0; i < n; i++) {
        size_t at = w->data_start + t[i].offset;
        if (at > w->len) {
            tw_mark(w, "data.pad[%zu]", i);
            tw_zeros(w, at - w->len);
        }
        if (t[i].n_bytes) tw_mark(w, "tensor[%zu].data", i);
        for (uint64_t j = 0; j < t[i].n_bytes; j++) tw_u8(w, tw_pattern(i, j));
    }
}

/* ─────────────────────────── files ─────────────────────────── */

bool tw_save(const void *buf, size_t n, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = n == 0 || fwrite(buf, 1, n, f) == n;
    if (fclose(f) != 0) ok = false;
    return ok;
}

const char *tw_tmpfile(const tw *w, const char *name, char *path, size_t cap)
{
    if ((size_t)snprintf(path, cap, "%s/%s", kt_tmpdir(), name) >= cap) return NULL;
    return tw_save(w->buf, w->len, path) ? path : NULL;
}

void tw_export(const void *buf, size_t n, const char *prefix)
{
    static struct { char prefix[32]; unsigned n; } counters[8];
    const char *dir = getenv("KGEN_WRITE_CORPUS");
    if (!dir || !*dir) return;
    unsigned k = 0;
    while (k < 8 && counters[k].prefix[0] && strcmp(counters[k].prefix, prefix)) k++;
    if (k == 8) return;
    if (!counters[k].prefix[0]) snprintf(counters[k].prefix, sizeof counters[k].prefix, "%s", prefix);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%02u.gguf", dir, prefix, counters[k].n++);
    if (!tw_save(buf, n, path)) fprintf(stderr, "warning: cannot write %s: %s\n", path, strerror(errno));
}
