/*
 * test_gguf.c — well-formed synthetic GGUF files parse to exactly what the
 * writer was given, through kg_gguf_open_memory and kg_gguf_open (a file).
 * Every expected value comes from the writer's input, never from the reader.
 */
#include "gguf_writer.h"
#include "kt.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ─────────────────────────── helpers ─────────────────────────── */

typedef void (*check_fn)(const kg_gguf *g, const tw *w, const void *ctx);

/* Parses w from memory (exact-size copy, so ASan sees any over-read) and from
 * a file, runs `check` on each, and exports the file to the fuzz corpus. */
static void parse_both(const tw *w, const char *fname, check_fn check, const void *ctx)
{
    char path[512];
    kg_gguf *g = (kg_gguf *)1;
    uint8_t *copy = malloc(w->len);
    KT_REQUIRE(copy);
    memcpy(copy, w->buf, w->len);
    kg_status st = kg_gguf_open_memory(copy, w->len, fname, &g);
    KT_CHECKF(st == KG_OK, "%s (memory): %s: %s", fname, kg_status_name(st), kg_last_error());
    if (st == KG_OK) {
        KT_CHECK(strcmp(kg_gguf_name(g), fname) == 0);
        KT_CHECK(kg_gguf_file_size(g) == w->len);
        KT_CHECK(strcmp(kg_last_error(), "") == 0);
        if (w->data_start && kg_gguf_n_tensors(g))
            KT_CHECKF(kg_gguf_data_offset(g) == w->data_start, "data_offset %" PRIu64 " != %zu",
                      kg_gguf_data_offset(g), w->data_start);
        for (uint64_t i = 0; i < kg_gguf_n_tensors(g); i++) {
            const kg_tensor *t = kg_gguf_tensor(g, i);
            KT_CHECKF((const uint8_t *)t->data == copy + w->data_start + t->offset,
                      "%s: tensor %" PRIu64 " data pointer is off", fname, i);
        }
        check(g, w, ctx);
        kg_gguf_close(g);
    }
    free(copy);
    tw_export(w->buf, w->len, "valid");

    KT_REQUIRE(tw_tmpfile(w, fname, path, sizeof path));
    g = (kg_gguf *)1;
    st = kg_gguf_open(path, &g);
    KT_CHECKF(st == KG_OK, "%s (file): %s: %s", path, kg_status_name(st), kg_last_error());
    if (st != KG_OK) return;
    KT_CHECK(strcmp(kg_gguf_name(g), path) == 0);
    KT_CHECK(kg_gguf_file_size(g) == w->len);
    check(g, w, ctx);
    kg_gguf_close(g);
}

static bool is_signed_t(uint32_t t) { return t == KG_V_I8 || t == KG_V_I16 || t == KG_V_I32 || t == KG_V_I64; }

/* Does element i of the C array `raw` (native type for `et`) equal e? */
static bool elem_eq(uint32_t et, const void *raw, uint64_t i, const kg_value *e)
{
    if (e->type != et) return false;
    switch (et) {
    case KG_V_U8: return e->u == ((const uint8_t *)raw)[i];
    case KG_V_BOOL: return e->u == ((const uint8_t *)raw)[i];
    case KG_V_I8: return e->i == ((const int8_t *)raw)[i];
    case KG_V_U16: return e->u == ((const uint16_t *)raw)[i];
    case KG_V_I16: return e->i == ((const int16_t *)raw)[i];
    case KG_V_U32: return e->u == ((const uint32_t *)raw)[i];
    case KG_V_I32: return e->i == ((const int32_t *)raw)[i];
    case KG_V_F32: return e->f == ((const float *)raw)[i];
    case KG_V_U64: return e->u == ((const uint64_t *)raw)[i];
    case KG_V_I64: return e->i == ((const int64_t *)raw)[i];
    case KG_V_F64: return e->f == ((const double *)raw)[i];
    }
    return false;
}

/* Compares a parsed array value with the writer's tree, recursively. */
static void check_array(const kg_value *v, const tw_val *ref, const char *where)
{
    KT_REQUIRE(v->type == KG_V_ARRAY);
    KT_CHECKF(v->arr.type == ref->et, "%s: element type %u, wrote %u", where, v->arr.type, ref->et);
    KT_CHECKF(v->arr.n == ref->n, "%s: %" PRIu64 " elements, wrote %" PRIu64, where, v->arr.n, ref->n);
    if (v->arr.type != ref->et || v->arr.n != ref->n) return;
    kg_value e;
    KT_CHECKF(!kg_value_elem(v, ref->n, &e), "%s: kg_value_elem past the end succeeded", where);
    char sub[160];
    for (uint64_t i = 0; i < ref->n; i++) {
        snprintf(sub, sizeof sub, "%s[%" PRIu64 "]", where, i);
        if (ref->et == KG_V_STRING) {
            kg_str s = v->arr.strs[i];
            KT_CHECKF(s.len == ref->items[i].len && !memcmp(s.ptr, ref->items[i].s, s.len), "%s: string differs", sub);
            KT_CHECK(!kg_value_elem(v, i, &e));
        } else if (ref->et == KG_V_ARRAY) {
            check_array(&v->arr.arrs[i], &ref->items[i], sub);
            KT_CHECK(!kg_value_elem(v, i, &e));
        } else {
            KT_CHECKF(kg_value_elem(v, i, &e) && elem_eq(ref->et, ref->raw, i, &e), "%s: value differs", sub);
        }
    }
    if (ref->raw && ref->n) /* the raw bytes are the file's little-endian ones */
        KT_CHECKF(!memcmp(v->arr.raw, ref->raw, ref->n * tw_vsize(ref->et)), "%s: raw bytes differ", where);
}

/* ─────────────────────────── scalars and strings ─────────────────────────── */

typedef struct scal {
    const char *key;
    uint32_t type;
    int64_t i;   /* signed types */
    uint64_t u;  /* unsigned types and bool */
    double f;    /* f32 (exactly representable) and f64 */
} scal;

static const scal scalars[] = {
    {"s.u8.zero", KG_V_U8, 0, 0, 0},          {"s.u8.max", KG_V_U8, 0, 255, 0},
    {"s.i8.min", KG_V_I8, -128, 0, 0},        {"s.i8.minus1", KG_V_I8, -1, 0, 0},
    {"s.i8.max", KG_V_I8, 127, 0, 0},         {"s.u16.max", KG_V_U16, 0, 65535, 0},
    {"s.i16.min", KG_V_I16, -32768, 0, 0},    {"s.i16.neg", KG_V_I16, -300, 0, 0},
    {"s.u32.max", KG_V_U32, 0, UINT32_MAX, 0}, {"s.u32", KG_V_U32, 0, 4096, 0},
    {"s.i32.min", KG_V_I32, INT32_MIN, 0, 0}, {"s.i32.neg", KG_V_I32, -7, 0, 0},
    {"s.i32.max", KG_V_I32, INT32_MAX, 0, 0}, {"s.u64.max", KG_V_U64, 0, UINT64_MAX, 0},
    {"s.u64.big", KG_V_U64, 0, 1ull << 63, 0}, {"s.i64.min", KG_V_I64, INT64_MIN, 0, 0},
    {"s.i64.max", KG_V_I64, INT64_MAX, 0, 0}, {"s.i64.neg", KG_V_I64, -1234567890123ll, 0, 0},
    {"s.f32.neg", KG_V_F32, 0, 0, -1.5},      {"s.f32.pi", KG_V_F32, 0, 0, 3.1415927410125732},
    {"s.f32.denorm", KG_V_F32, 0, 0, 1.401298464324817e-45}, {"s.f32.big", KG_V_F32, 0, 0, 3.4028234663852886e38},
    {"s.f64.tiny", KG_V_F64, 0, 0, -2.5e-300}, {"s.f64.max", KG_V_F64, 0, 0, DBL_MAX},
    {"s.f64.eps", KG_V_F64, 0, 0, 1e-5},      {"s.bool.true", KG_V_BOOL, 0, 1, 0},
    {"s.bool.false", KG_V_BOOL, 0, 0, 0},
};
#define N_SCALARS (sizeof scalars / sizeof *scalars)

static tw_val scal_val(const scal *s)
{
    if (s->type == KG_V_F32) return tw_f32((float)s->f);
    if (s->type == KG_V_F64) return tw_f64(s->f);
    if (is_signed_t(s->type)) return tw_int(s->type, s->i);
    return (tw_val){.type = s->type, .bits = s->u};
}

typedef struct strv {
    const char *key, *s;
    size_t len;
} strv;

static const strv strings[] = {
    {"str.empty", "", 0},
    {"str.plain", "hello, world", 12},
    {"str.nul", "a\0b\0", 4},
    {"str.only_nul", "\0", 1},
    {"str.bad_utf8", "\xff\xfe\xc3(\xed\xa0\x80", 7},
    {"str.utf8", "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87 \xe2\x9c\x93", 12},
    {"str.\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", "unicode key", 11},
    {"str.quotes", "\"\\\n\t", 4},
};
#define N_STRINGS (sizeof strings / sizeof *strings)

static char long_str[5000];

static void build_scalars(tw *w, uint32_t version)
{
    tw_header(w, version, 0, 0);
    for (size_t i = 0; i < N_SCALARS; i++) {
        tw_val v = scal_val(&scalars[i]);
        tw_kv(w, scalars[i].key, &v);
    }
    for (size_t i = 0; i < N_STRINGS; i++) {
        tw_val v = tw_s(strings[i].s, strings[i].len);
        tw_kv(w, strings[i].key, &v);
    }
    memset(long_str, 'x', sizeof long_str);
    long_str[100] = 0;
    tw_val v = tw_s(long_str, sizeof long_str);
    tw_kv(w, "str.long", &v);
    tw_fix_counts(w);
}

static void check_scalars(const kg_gguf *g, const tw *w, const void *ctx)
{
    (void)w;
    KT_CHECK(kg_gguf_version(g) == *(const uint32_t *)ctx);
    KT_CHECK(kg_gguf_alignment(g) == 32);
    KT_CHECK(kg_gguf_n_tensors(g) == 0);
    KT_REQUIRE(kg_gguf_n_kv(g) == N_SCALARS + N_STRINGS + 1);
    for (size_t i = 0; i < N_SCALARS; i++) {
        const scal *s = &scalars[i];
        const kg_kv *kv = kg_gguf_kv(g, i);
        KT_REQUIRE(kv);
        KT_CHECKF(strcmp(kv->key, s->key) == 0, "kv %zu is '%s', wrote '%s'", i, kv->key, s->key);
        KT_CHECKF(kg_gguf_find(g, s->key) == &kv->value, "find('%s')", s->key);
        const kg_value *v = &kv->value;
        KT_CHECKF(v->type == s->type, "%s: type %s", s->key, kg_vtype_name(v->type));
        if (s->type == KG_V_F32 || s->type == KG_V_F64)
            KT_CHECKF(v->f == s->f, "%s: %.17g != %.17g", s->key, v->f, s->f);
        else if (is_signed_t(s->type)) KT_CHECKF(v->i == s->i, "%s: %" PRId64 " != %" PRId64, s->key, v->i, s->i);
        else KT_CHECKF(v->u == s->u, "%s: %" PRIu64 " != %" PRIu64, s->key, v->u, s->u);
    }
    for (size_t i = 0; i < N_STRINGS; i++) {
        const kg_kv *kv = kg_gguf_kv(g, N_SCALARS + i);
        KT_REQUIRE(kv);
        KT_CHECKF(strcmp(kv->key, strings[i].key) == 0, "kv key '%s'", kv->key);
        KT_CHECK(kv->value.type == KG_V_STRING);
        KT_CHECKF(kv->value.str.len == strings[i].len && !memcmp(kv->value.str.ptr, strings[i].s, strings[i].len),
                  "%s: string differs", strings[i].key);
        kg_str s;
        KT_CHECK(kg_gguf_get_str(g, strings[i].key, &s) == KG_OK && s.ptr == kv->value.str.ptr);
    }
    const kg_value *lv = kg_gguf_find(g, "str.long");
    KT_REQUIRE(lv && lv->type == KG_V_STRING);
    KT_CHECK(lv->str.len == sizeof long_str && !memcmp(lv->str.ptr, long_str, sizeof long_str));
    KT_CHECK(kg_str_eq(kg_gguf_find(g, "str.plain")->str, "hello, world"));
    KT_CHECK(!kg_str_eq(kg_gguf_find(g, "str.nul")->str, "a"));
    KT_CHECK(kg_gguf_kv(g, kg_gguf_n_kv(g)) == NULL);
}

KT_TEST(gguf_scalars_and_strings_roundtrip)
{
    for (uint32_t version = 2; version <= 3; version++) {
        tw w;
        tw_init(&w);
        build_scalars(&w, version);
        parse_both(&w, version == 2 ? "scalars-v2.gguf" : "scalars-v3.gguf", check_scalars, &version);
        tw_free(&w);
    }
}

/* ─────────────────────────── arrays ─────────────────────────── */

static const uint8_t a_u8[] = {0, 1, 255, 128};
static const int8_t a_i8[] = {-128, -1, 0, 127};
static const uint16_t a_u16[] = {0, 65535, 1234};
static const int16_t a_i16[] = {-32768, 32767, -2};
static const uint32_t a_u32[] = {0, UINT32_MAX, 123456789};
static const int32_t a_i32[] = {INT32_MIN, -1, INT32_MAX, 0};
static const float a_f32[] = {-0.5f, 1e30f, 0.0f, 1.17549435e-38f};
static const uint8_t a_bool[] = {0, 1, 1, 0};
static const uint64_t a_u64[] = {UINT64_MAX, 0, 1ull << 40};
static const int64_t a_i64[] = {INT64_MIN, -5, INT64_MAX};
static const double a_f64[] = {1e-300, -1.25, 0.0, DBL_MAX};

#define ARR(et, a) tw_arr(et, sizeof a / sizeof *a, a)

static tw_val fixed_arrays[11], empty_arrays[13];
static tw_val str_items[6], nest2_items[3], nest2, nest3_l1[2], nest3_l2a[1], nest3_l2b[2], nest3;
static tw_val deep[8];
static const char *array_keys[] = {"a.u8", "a.i8", "a.u16", "a.i16", "a.u32", "a.i32", "a.f32",
                                   "a.bool", "a.u64", "a.i64", "a.f64"};
static const int32_t n2a[] = {1, 2, 3}, n2c[] = {-4};
static const uint8_t deep_leaf[] = {7, 9};

/* Every array value the test writes, with its key. */
static size_t array_values(const char **keys, const tw_val **vals)
{
    size_t n = 0;
    tw_val f[] = {ARR(KG_V_U8, a_u8),   ARR(KG_V_I8, a_i8),    ARR(KG_V_U16, a_u16), ARR(KG_V_I16, a_i16),
                  ARR(KG_V_U32, a_u32), ARR(KG_V_I32, a_i32),  ARR(KG_V_F32, a_f32), ARR(KG_V_BOOL, a_bool),
                  ARR(KG_V_U64, a_u64), ARR(KG_V_I64, a_i64),  ARR(KG_V_F64, a_f64)};
    static char empty_keys[13][24];
    for (size_t i = 0; i < 11; i++) {
        fixed_arrays[i] = f[i];
        keys[n] = array_keys[i];
        vals[n++] = &fixed_arrays[i];
    }
    for (uint32_t t = 0; t < KG_V_COUNT; t++) {
        empty_arrays[t] = tw_arr(t, 0, NULL);
        snprintf(empty_keys[t], sizeof empty_keys[t], "a.empty.%s", kg_vtype_name(t));
        keys[n] = empty_keys[t];
        vals[n++] = &empty_arrays[t];
    }
    str_items[0] = tw_cs("");
    str_items[1] = tw_cs("a");
    str_items[2] = tw_s("with\0nul", 8);
    str_items[3] = tw_s("\xff\xfe", 2);
    str_items[4] = tw_cs("\xe2\x96\x81token");
    str_items[5] = tw_s(long_str, 300);
    static tw_val strs;
    strs = tw_arr_of(KG_V_STRING, 6, str_items);
    keys[n] = "a.strings";
    vals[n++] = &strs;
    /* [[1,2,3], [], [-4]] */
    nest2_items[0] = ARR(KG_V_I32, n2a);
    nest2_items[1] = tw_arr(KG_V_I32, 0, NULL);
    nest2_items[2] = ARR(KG_V_I32, n2c);
    nest2 = tw_arr_of(KG_V_ARRAY, 3, nest2_items);
    keys[n] = "a.nested2";
    vals[n++] = &nest2;
    /* [[["a","with\0nul"]], [[], ["\xff\xfe"]]] */
    nest3_l2a[0] = tw_arr_of(KG_V_STRING, 2, &str_items[1]);
    nest3_l2b[0] = tw_arr_of(KG_V_STRING, 0, NULL);
    nest3_l2b[1] = tw_arr_of(KG_V_STRING, 1, &str_items[3]);
    nest3_l1[0] = tw_arr_of(KG_V_ARRAY, 1, nest3_l2a);
    nest3_l1[1] = tw_arr_of(KG_V_ARRAY, 2, nest3_l2b);
    nest3 = tw_arr_of(KG_V_ARRAY, 2, nest3_l1);
    keys[n] = "a.nested3";
    vals[n++] = &nest3;
    /* eight arrays deep (the most kgen accepts): [[[[[[[[7,9]]]]]]]] */
    deep[7] = ARR(KG_V_U8, deep_leaf);
    for (int k = 6; k >= 0; k--) deep[k] = tw_arr_of(KG_V_ARRAY, 1, &deep[k + 1]);
    keys[n] = "a.nested8";
    vals[n++] = &deep[0];
    return n;
}

typedef struct arr_ctx {
    const char **keys;
    const tw_val **vals;
    size_t n;
} arr_ctx;

static void check_arrays(const kg_gguf *g, const tw *w, const void *ctx)
{
    (void)w;
    const arr_ctx *c = ctx;
    KT_REQUIRE(kg_gguf_n_kv(g) == c->n);
    for (size_t i = 0; i < c->n; i++) {
        const kg_kv *kv = kg_gguf_kv(g, i);
        KT_CHECKF(strcmp(kv->key, c->keys[i]) == 0, "kv %zu is '%s'", i, kv->key);
        const kg_value *v = kg_gguf_find(g, c->keys[i]);
        KT_REQUIRE(v == &kv->value);
        check_array(v, c->vals[i], c->keys[i]);
    }
    /* kg_value_elem refuses non-arrays and string/array elements */
    kg_value e;
    KT_CHECK(!kg_value_elem(NULL, 0, &e));
    KT_CHECK(!kg_value_elem(kg_gguf_find(g, "a.strings"), 0, &e));
    uint64_t u;
    KT_CHECK(kg_gguf_get_u64(g, "a.u8", &u) == KG_ERR_FORMAT && strstr(kg_last_error(), "a.u8"));
}

KT_TEST(gguf_arrays_roundtrip)
{
    const char *keys[64];
    const tw_val *vals[64];
    memset(long_str, 'y', sizeof long_str);
    arr_ctx c = {keys, vals, array_values(keys, vals)};
    for (uint32_t version = 2; version <= 3; version++) {
        tw w;
        tw_init(&w);
        tw_header(&w, version, 0, c.n);
        for (size_t i = 0; i < c.n; i++) tw_kv(&w, keys[i], vals[i]);
        parse_both(&w, version == 2 ? "arrays-v2.gguf" : "arrays-v3.gguf", check_arrays, &c);
        tw_free(&w);
    }
}

/* ─────────────────────────── tensors ─────────────────────────── */

typedef struct tens_ctx {
    const tw_tdesc *t;
    size_t n;
    uint32_t align;
} tens_ctx;

static void check_tensors(const kg_gguf *g, const tw *w, const void *ctx)
{
    const tens_ctx *c = ctx;
    KT_CHECKF(kg_gguf_alignment(g) == c->align, "alignment %u, wrote %u", kg_gguf_alignment(g), c->align);
    KT_CHECK(kg_gguf_data_offset(g) % c->align == 0);
    KT_CHECK(kg_gguf_data_offset(g) == w->data_start);
    KT_REQUIRE(kg_gguf_n_tensors(g) == c->n);
    for (size_t i = 0; i < c->n; i++) {
        const tw_tdesc *d = &c->t[i];
        const kg_tensor *t = kg_gguf_tensor(g, i);
        KT_CHECKF(strcmp(t->name, d->name) == 0, "tensor %zu is '%s', wrote '%s'", i, t->name, d->name);
        KT_CHECKF(kg_gguf_find_tensor(g, d->name) == t, "find_tensor('%s')", d->name);
        KT_CHECK(t->n_dims == d->n_dims);
        KT_CHECK(t->type == (kg_type)d->type);
        KT_CHECK(t->offset == d->offset);
        uint64_t ne = 1;
        for (uint32_t k = 0; k < KG_MAX_DIMS; k++) {
            uint64_t want = k < d->n_dims ? d->ne[k] : 1;
            KT_CHECKF(t->ne[k] == want, "%s: ne[%u] = %" PRIu64 ", wrote %" PRIu64, d->name, k, t->ne[k], want);
            ne *= want;
        }
        KT_CHECKF(t->n_elements == ne, "%s: n_elements %" PRIu64 " != %" PRIu64, d->name, t->n_elements, ne);
        KT_CHECKF(t->n_bytes == d->n_bytes, "%s: n_bytes %" PRIu64 " != %" PRIu64, d->name, t->n_bytes, d->n_bytes);
        bool same = true;
        for (uint64_t j = 0; j < d->n_bytes && same; j++) same = ((const uint8_t *)t->data)[j] == tw_pattern(i, j);
        KT_CHECKF(same, "%s: data bytes differ from what was written", d->name);
    }
    KT_CHECK(kg_gguf_find_tensor(g, "no.such.tensor") == NULL);
    KT_CHECK(kg_gguf_find_tensor(g, "") == NULL);
    KT_CHECK(kg_gguf_tensor(g, c->n) == NULL);
}

/* Header, optional general.alignment (0: none), infos, padding, data. */
static void build_tensors(tw *w, uint32_t version, uint32_t align_kv, tw_tdesc *t, size_t n)
{
    uint32_t align = align_kv ? align_kv : 32;
    tw_layout(t, n, align);
    tw_header(w, version, n, 0);
    tw_val arch = tw_cs("llama");
    tw_kv(w, "general.architecture", &arch);
    if (align_kv) {
        tw_val a = tw_int(KG_V_U32, align_kv);
        tw_kv(w, "general.alignment", &a);
    }
    tw_tensors(w, t, n);
    tw_data_all(w, t, n, align);
    tw_fix_counts(w);
}

KT_TEST(gguf_alignment_and_data)
{
    static const uint32_t aligns[] = {0, 64, 1, 8, 4096};
    for (size_t a = 0; a < sizeof aligns / sizeof *aligns; a++)
        for (uint32_t version = 2; version <= 3; version++) {
            tw_tdesc t[] = {
                {.name = "token_embd.weight", .n_dims = 2, .ne = {3, 5}, .type = KG_TYPE_F32},
                {.name = "blk.0.attn_q.weight", .n_dims = 1, .ne = {5}, .type = KG_TYPE_F16},
                {.name = "blk.0.ffn.weight", .n_dims = 2, .ne = {32, 2}, .type = KG_TYPE_Q8_0},
                {.name = "output_norm.weight", .n_dims = 1, .ne = {7}, .type = KG_TYPE_I8},
            };
            tw w;
            char name[64];
            tw_init(&w);
            build_tensors(&w, version, aligns[a], t, 4);
            tens_ctx c = {t, 4, aligns[a] ? aligns[a] : 32};
            KT_CHECK(t[0].n_bytes == 60 && t[1].n_bytes == 10 && t[2].n_bytes == 68 && t[3].n_bytes == 7);
            snprintf(name, sizeof name, "align-%u-v%u.gguf", aligns[a], version);
            parse_both(&w, name, check_tensors, &c);
            tw_free(&w);
        }
}

KT_TEST(gguf_every_tensor_type)
{
    tw_tdesc t[KG_TYPE_COUNT];
    char names[KG_TYPE_COUNT][32];
    size_t n = 0;
#define KG_X(id, nm, blck, size, k, g, mn)                                                   \
    snprintf(names[n], sizeof names[n], "t.%s", #nm);                                    \
    t[n] = (tw_tdesc){.name = names[n], .n_dims = 2, .ne = {2 * (blck), 3}, .type = id}; \
    n++;
    KG_TYPES(KG_X)
#undef KG_X
    tw w;
    tw_init(&w);
    build_tensors(&w, 3, 0, t, n);
    for (size_t i = 0; i < n; i++) {
        const kg_type_info *ti = kg_type_get(t[i].type);
        KT_REQUIRE(ti);
        KT_CHECKF(t[i].n_bytes == 6ull * ti->size, "%s: %" PRIu64 " bytes", t[i].name, t[i].n_bytes);
    }
    /* block sizes are facts of the format: spot-check the table itself */
    KT_CHECK(kg_type_get(KG_TYPE_Q4_K)->blck == 256 && kg_type_get(KG_TYPE_Q4_K)->size == 144);
    KT_CHECK(kg_type_get(KG_TYPE_Q6_K)->blck == 256 && kg_type_get(KG_TYPE_Q6_K)->size == 210);
    KT_CHECK(kg_type_get(KG_TYPE_Q8_0)->blck == 32 && kg_type_get(KG_TYPE_Q8_0)->size == 34);
    KT_CHECK(kg_type_get(KG_TYPE_Q4_0)->size == 18 && kg_type_get(KG_TYPE_F16)->size == 2);
    KT_CHECK(kg_type_get(4) == NULL && kg_type_get(KG_TYPE_COUNT) == NULL && kg_type_get(UINT32_MAX) == NULL);
    tens_ctx c = {t, n, 32};
    parse_both(&w, "types.gguf", check_tensors, &c);
    tw_free(&w);
}

KT_TEST(gguf_tensor_shapes)
{
    tw_tdesc t[] = {
        {.name = "scalar", .n_dims = 0, .type = KG_TYPE_F32},
        {.name = "d1", .n_dims = 1, .ne = {9}, .type = KG_TYPE_F32},
        {.name = "d3", .n_dims = 3, .ne = {2, 3, 4}, .type = KG_TYPE_BF16},
        {.name = "d4", .n_dims = 4, .ne = {256, 1, 2, 3}, .type = KG_TYPE_Q4_K},
        {.name = "q6k", .n_dims = 2, .ne = {512, 3}, .type = KG_TYPE_Q6_K},
        {.name = "empty", .n_dims = 2, .ne = {32, 0}, .type = KG_TYPE_Q4_0},
        {.name = "one", .n_dims = 4, .ne = {1, 1, 1, 1}, .type = KG_TYPE_I32},
    };
    const size_t n = sizeof t / sizeof *t;
    tw w;
    tw_init(&w);
    build_tensors(&w, 3, 0, t, n);
    KT_CHECK(t[0].n_bytes == 4 && t[3].n_bytes == 6 * 144 && t[4].n_bytes == 6 * 210 && t[5].n_bytes == 0);
    tens_ctx c = {t, n, 32};
    parse_both(&w, "shapes.gguf", check_tensors, &c);
    tw_free(&w);
}

static void check_no_tensors(const kg_gguf *g, const tw *w, const void *ctx)
{
    (void)w;
    KT_CHECK(kg_gguf_n_tensors(g) == 0);
    KT_CHECK(kg_gguf_n_kv(g) == *(const uint64_t *)ctx);
    KT_CHECK(kg_gguf_tensor(g, 0) == NULL);
    KT_CHECK(kg_gguf_find_tensor(g, "x") == NULL);
    KT_CHECK(kg_gguf_alignment(g) == 32);
}

KT_TEST(gguf_zero_tensors)
{
    for (uint64_t nkv = 0; nkv <= 2; nkv++) {
        tw w;
        char name[32];
        tw_init(&w);
        tw_header(&w, 3, 0, nkv);
        for (uint64_t i = 0; i < nkv; i++) {
            tw_val v = tw_int(KG_V_U32, (int64_t)i);
            tw_kv(&w, i ? "k1" : "k0", &v);
        }
        snprintf(name, sizeof name, "no-tensors-%" PRIu64 ".gguf", nkv);
        parse_both(&w, name, check_no_tensors, &nkv);
        tw_free(&w);
    }
}

/* ─────────────────────────── lookups ─────────────────────────── */

KT_TEST(gguf_lookups_and_getters)
{
    tw w;
    char keys[60][16];
    tw_init(&w);
    tw_header(&w, 3, 0, 0);
    /* many keys in an order that is not sorted, to exercise the lookup */
    for (int i = 0; i < 60; i++) {
        snprintf(keys[i], sizeof keys[i], "k.%02d", (i * 37) % 60);
        tw_val v = tw_int(KG_V_U16, (i * 37) % 60);
        tw_kv(&w, keys[i], &v);
    }
    tw_val neg = tw_int(KG_V_I32, -5), big = {.type = KG_V_U64, .bits = UINT64_MAX}, f = tw_f32(0.25f);
    tw_val s = tw_cs("text"), b = tw_int(KG_V_BOOL, 1), i8 = tw_int(KG_V_I8, 100), f64 = tw_f64(-3.5);
    tw_kv(&w, "neg", &neg);
    tw_kv(&w, "big", &big);
    tw_kv(&w, "f32", &f);
    tw_kv(&w, "s", &s);
    tw_kv(&w, "b", &b);
    tw_kv(&w, "i8", &i8);
    tw_kv(&w, "f64", &f64);
    tw_fix_counts(&w);
    kg_gguf *g;
    KT_REQUIRE(kg_gguf_open_memory(w.buf, w.len, "lookups", &g) == KG_OK);
    for (int i = 0; i < 60; i++) {
        const kg_value *v = kg_gguf_find(g, keys[i]);
        KT_CHECKF(v && v->type == KG_V_U16 && v->u == (uint64_t)((i * 37) % 60), "find('%s')", keys[i]);
    }
    KT_CHECK(kg_gguf_find(g, "k.60") == NULL && kg_gguf_find(g, "") == NULL && kg_gguf_find(g, NULL) == NULL);
    KT_CHECK(kg_gguf_find(g, "k.0") == NULL && kg_gguf_find(g, "k.000") == NULL);

    uint64_t u = 1;
    int64_t i = 1;
    double d = 1;
    kg_str str = {"x", 1};
    KT_CHECK(kg_gguf_get_u64(g, "k.42", &u) == KG_OK && u == 42);
    KT_CHECK(kg_gguf_get_u64(g, "big", &u) == KG_OK && u == UINT64_MAX);
    KT_CHECK(kg_gguf_get_u64(g, "b", &u) == KG_OK && u == 1);
    KT_CHECK(kg_gguf_get_u64(g, "i8", &u) == KG_OK && u == 100);
    KT_CHECK(kg_gguf_get_u64(g, "neg", &u) == KG_ERR_FORMAT && u == 0);
    KT_CHECKF(strstr(kg_last_error(), "'neg'") && strstr(kg_last_error(), "lookups"), "message: %s", kg_last_error());
    KT_CHECK(kg_gguf_get_u64(g, "missing.key", &u) == KG_ERR_NOTFOUND && u == 0);
    KT_CHECKF(strstr(kg_last_error(), "missing.key"), "message: %s", kg_last_error());
    KT_CHECK(kg_gguf_get_u64(g, "f32", &u) == KG_ERR_FORMAT);
    KT_CHECKF(strstr(kg_last_error(), "'f32'") && strstr(kg_last_error(), "f32"), "message: %s", kg_last_error());
    KT_CHECK(kg_gguf_get_u64(g, "s", &u) == KG_ERR_FORMAT && strstr(kg_last_error(), "string"));

    KT_CHECK(kg_gguf_get_i64(g, "neg", &i) == KG_OK && i == -5);
    KT_CHECK(kg_gguf_get_i64(g, "k.07", &i) == KG_OK && i == 7);
    KT_CHECK(kg_gguf_get_i64(g, "big", &i) == KG_ERR_FORMAT && i == 0 && strstr(kg_last_error(), "'big'"));
    KT_CHECK(kg_gguf_get_i64(g, "nope", &i) == KG_ERR_NOTFOUND && strstr(kg_last_error(), "'nope'"));
    KT_CHECK(kg_gguf_get_i64(g, "f64", &i) == KG_ERR_FORMAT);

    KT_CHECK(kg_gguf_get_f64(g, "f32", &d) == KG_OK && d == 0.25);
    KT_CHECK(kg_gguf_get_f64(g, "f64", &d) == KG_OK && d == -3.5);
    KT_CHECK(kg_gguf_get_f64(g, "neg", &d) == KG_OK && d == -5.0);
    KT_CHECK(kg_gguf_get_f64(g, "k.59", &d) == KG_OK && d == 59.0);
    KT_CHECK(kg_gguf_get_f64(g, "s", &d) == KG_ERR_FORMAT && d == 0);
    KT_CHECK(kg_gguf_get_f64(g, "nope", &d) == KG_ERR_NOTFOUND);

    KT_CHECK(kg_gguf_get_str(g, "s", &str) == KG_OK && kg_str_eq(str, "text"));
    KT_CHECK(kg_gguf_get_str(g, "neg", &str) == KG_ERR_FORMAT && str.ptr == NULL && str.len == 0);
    KT_CHECKF(strstr(kg_last_error(), "'neg'") && strstr(kg_last_error(), "i32"), "message: %s", kg_last_error());
    KT_CHECK(kg_gguf_get_str(g, "nope", &str) == KG_ERR_NOTFOUND);
    kg_gguf_close(g);
    tw_free(&w);

    KT_CHECK(strcmp(kg_vtype_name(KG_V_ARRAY), "array") == 0 && strcmp(kg_vtype_name(KG_V_COUNT), "invalid") == 0);
    KT_CHECK(strcmp(kg_status_name(KG_ERR_FORMAT), "format") == 0);
}

KT_TEST(gguf_open_bad_arguments)
{
    kg_gguf *g = (kg_gguf *)1;
    static const uint8_t hdr[24] = {'G', 'G', 'U', 'F', 3};
    KT_CHECK(kg_gguf_open_memory(hdr, sizeof hdr, "x", NULL) == KG_ERR_ARG);
    KT_CHECK(kg_gguf_open_memory(NULL, 10, "x", &g) == KG_ERR_ARG && g == NULL);
    KT_CHECK(kg_gguf_open(NULL, &g) == KG_ERR_ARG);
    KT_CHECK(kg_gguf_open("x", NULL) == KG_ERR_ARG);
    /* a 24-byte header with no kv and no tensors is a valid file; NULL name */
    KT_REQUIRE(kg_gguf_open_memory(hdr, sizeof hdr, NULL, &g) == KG_OK);
    KT_CHECK(strcmp(kg_gguf_name(g), "<memory>") == 0);
    KT_CHECK(kg_gguf_n_kv(g) == 0 && kg_gguf_n_tensors(g) == 0 && kg_gguf_version(g) == 3);
    KT_CHECK(kg_gguf_find(g, "general.architecture") == NULL);
    kg_gguf_close(g);
    kg_gguf_close(NULL);
}

/* Extreme integers where `kgen inspect` looks (token ids, hyperparameters):
 * they must round-trip, and the file seeds the fuzzer with them. */
static void check_extremes(const kg_gguf *g, const tw *w, const void *ctx)
{
    (void)w;
    (void)ctx;
    uint64_t u;
    int64_t i;
    KT_CHECK(kg_gguf_get_u64(g, "tokenizer.ggml.bos_token_id", &u) == KG_OK && u == UINT64_MAX);
    KT_CHECK(kg_gguf_get_i64(g, "tokenizer.ggml.eos_token_id", &i) == KG_OK && i == INT64_MIN);
    KT_CHECK(kg_gguf_get_i64(g, "llama.vocab_size", &i) == KG_OK && i == -1);
    KT_CHECK(kg_gguf_get_u64(g, "llama.block_count", &u) == KG_OK && u == UINT64_MAX);
    const kg_value *v = kg_gguf_find(g, "tokenizer.ggml.tokens");
    KT_REQUIRE(v && v->type == KG_V_ARRAY && v->arr.n == 2);
    KT_CHECK(kg_str_eq(v->arr.strs[0], "a") && kg_str_eq(v->arr.strs[1], "b"));
    double d;
    KT_CHECK(kg_gguf_get_f64(g, "llama.rope.freq_base", &d) == KG_OK && isnan(d));
}

KT_TEST(gguf_extreme_values)
{
    tw w;
    tw_init(&w);
    tw_header(&w, 3, 0, 0);
    tw_val arch = tw_cs("llama"), toks[] = {tw_cs("a"), tw_cs("b")};
    tw_val tokens = tw_arr_of(KG_V_STRING, 2, toks), umax = {.type = KG_V_U64, .bits = UINT64_MAX};
    tw_val imin = tw_int(KG_V_I64, INT64_MIN), neg = tw_int(KG_V_I32, -1), nan32 = tw_f32(NAN);
    tw_kv(&w, "general.architecture", &arch);
    tw_kv(&w, "tokenizer.ggml.tokens", &tokens);
    tw_kv(&w, "tokenizer.ggml.bos_token_id", &umax);
    tw_kv(&w, "tokenizer.ggml.eos_token_id", &imin);
    tw_kv(&w, "llama.vocab_size", &neg);
    tw_kv(&w, "llama.block_count", &umax);
    tw_kv(&w, "llama.rope.freq_base", &nan32);
    tw_fix_counts(&w);
    parse_both(&w, "extremes.gguf", check_extremes, NULL);
    tw_free(&w);
}
