/*
 * test_safetensors.c — the safetensors reader (runtime/safetensors.c):
 *   - files written by Hugging Face's `safetensors` package (tests/ref/st_ref.py)
 *     read back tensor for tensor: name, dtype, shape, bytes (XXH3 of the
 *     data against the arrays Python wrote), __metadata__; the dtypes kgen
 *     does not read refused naming tensor and dtype;
 *   - the real all-MiniLM-L6-v2 model.safetensors against the package's
 *     own reading of it (every tensor);
 *   - a malformed corpus built here: every case refused with the expected
 *     status and a message naming the file and the tensor or field; every
 *     truncation of a small valid file; random mutations of its header;
 *   - `kgen inspect` of a file and of the MiniLM directory.
 *
 * With KGEN_WRITE_ST_CORPUS=DIR set, the corpus (valid and malformed) is
 * also written to DIR as seeds for tests/fuzz_safetensors.c.
 */
#include "kt.h"
#include "kt_cli.h"
#include "kgen.h"
#include "gen.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>


#define MINILM "all-MiniLM-L6-v2"

/* ─────────────────────────── helpers ─────────────────────────── */

/* A file: the 8-byte length (n, or strlen(hdr)), the header, then `data`
 * bytes of a pattern. Caller frees. */
static uint8_t *make(const char *hdr, size_t hdr_len, bool set_n, uint64_t n, uint64_t data, size_t *len)
{
    if (!hdr_len) hdr_len = strlen(hdr);
    if (!set_n) n = hdr_len;
    *len = 8 + hdr_len + data;
    uint8_t *p = malloc(*len ? *len : 1);
    if (!p) return NULL;
    memcpy(p, &n, 8);
    memcpy(p + 8, hdr, hdr_len);
    for (uint64_t i = 0; i < data; i++) p[8 + hdr_len + i] = (uint8_t)(i * 7 + 1);
    return p;
}

static void write_seed(const char *kind, int i, const uint8_t *p, size_t len)
{
    const char *dir = getenv("KGEN_WRITE_ST_CORPUS");
    if (!dir || !*dir) return;
    char path[700];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s-%03d.safetensors", dir, kind, i);
    FILE *f = fopen(path, "wb");
    if (f) fwrite(p, 1, len, f), fclose(f);
}

static bool has(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* Every tensor inside the buffer, the data section covered exactly, every
 * name found by lookup, every byte readable. */
static void check_invariants(const kg_safetensors *st, const uint8_t *base, size_t len, const char *label)
{
    uint64_t sum = 0, data_size = len - kg_st_data_offset(st);
    volatile uint8_t sink = 0;
    KT_CHECKF(kg_st_data_offset(st) <= len, "%s: data offset past the end", label);
    for (uint64_t i = 0; i < kg_st_n_tensors(st); i++) {
        const kg_tensor *t = kg_st_tensor(st, i);
        const uint8_t *d = t->data;
        KT_CHECKF(d >= base + kg_st_data_offset(st) && t->offset + t->n_bytes <= data_size &&
                      d == base + kg_st_data_offset(st) + t->offset, "%s: tensor %" PRIu64 " outside the data", label, i);
        uint64_t n = 1;
        for (uint32_t k = 0; k < t->n_dims; k++) n *= t->ne[k];
        KT_CHECKF(n == t->n_elements && t->n_bytes == n * kg_type_get(t->type)->size, "%s: tensor %" PRIu64 " sizes",
                  label, i);
        for (uint64_t b = 0; b < t->n_bytes; b++) sink ^= d[b];
        sum += t->n_bytes;
        KT_CHECKF(kg_st_find_tensor(st, t->name) == t, "%s: lookup of tensor %" PRIu64 " failed", label, i);
    }
    (void)sink;
    KT_CHECKF(sum == data_size, "%s: tensors hold %" PRIu64 " bytes, the data section %" PRIu64, label, sum, data_size);
    KT_CHECK(kg_st_tensor(st, kg_st_n_tensors(st)) == NULL && kg_st_meta(st, kg_st_n_meta(st)) == NULL);
}

static int unhex(const char *h, char *out, size_t cap)
{
    size_t n = 0;
    if (!strcmp(h, "-")) return out[0] = 0, 0;
    for (; h[0] && h[1] && n + 1 < cap; h += 2) {
        unsigned v;
        if (sscanf(h, "%2x", &v) != 1) return -1;
        out[n++] = (char)v;
    }
    out[n] = 0;
    return (int)n;
}

/* Compares a handle with st_ref.py's listing lines for file `fi`; returns
 * the number of tensors compared. */
static int compare_listing(const kg_safetensors *st, char *listing, int fi)
{
    int tensors = 0, metas = 0;
    char *save, *copy = strdup(listing);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int f;
        char a[1024], b[1024], c[64], d[64];
        unsigned long long x, y;
        if (sscanf(line, "F %d %llu %llu", &f, &x, &y) == 3 && f == fi) {
            KT_CHECKF(kg_st_n_tensors(st) == x, "%s: %" PRIu64 " tensors, the reference %llu", kg_st_name(st),
                      kg_st_n_tensors(st), x);
            KT_CHECKF(kg_st_n_meta(st) == y, "%s: %" PRIu64 " metadata keys, the reference %llu", kg_st_name(st),
                      kg_st_n_meta(st), y);
        } else if (sscanf(line, "T %d %1023s %63s %1023s %llu %63s", &f, a, c, b, &x, d) == 6 && f == fi) {
            char name[600];
            unhex(a, name, sizeof name);
            const kg_tensor *t = kg_st_find_tensor(st, name);
            KT_CHECKF(t, "%s: tensor '%s' (hex %s) not found", kg_st_name(st), name, a);
            if (!t) continue;
            tensors++;
            char shape[256] = "-";
            size_t o = 0;
            for (uint32_t k = 0; k < t->n_dims; k++) /* file order: outermost first */
                o += (size_t)snprintf(shape + o, sizeof shape - o, k ? ",%" PRIu64 : "%" PRIu64, t->ne[t->n_dims - 1 - k]);
            KT_CHECKF(!strcmp(kg_st_dtype_name(t), c), "tensor '%s': dtype %s, the reference %s", name,
                      kg_st_dtype_name(t), c);
            KT_CHECKF(!strcmp(shape, b), "tensor '%s': shape %s, the reference %s", name, shape, b);
            KT_CHECKF(t->n_bytes == x, "tensor '%s': %" PRIu64 " bytes, the reference %llu", name, t->n_bytes, x);
            char h[32];
            snprintf(h, sizeof h, "%016llx", (unsigned long long)XXH3_64bits(t->data, t->n_bytes));
            KT_CHECKF(!strcmp(h, d), "tensor '%s': data hash %s, the reference %s", name, h, d);
        } else if (sscanf(line, "M %d %1023s %1023s", &f, a, b) == 3 && f == fi) {
            char key[600], val[600];
            unhex(a, key, sizeof key);
            int vlen = unhex(b, val, sizeof val);
            /* by key: Python's safetensors lists metadata in no fixed order */
            const kg_kv *kv = NULL;
            for (uint64_t q = 0; q < kg_st_n_meta(st) && !kv; q++)
                if (!strcmp(kg_st_meta(st, q)->key, key)) kv = kg_st_meta(st, q);
            metas++;
            KT_CHECKF(kv, "%s: metadata '%s' of the reference is missing", kg_st_name(st), key);
            KT_CHECKF(kv && kv->value.type == KG_V_STRING && kv->value.str.len == (uint64_t)vlen &&
                          !memcmp(kv->value.str.ptr, val, (size_t)vlen), "%s: metadata '%s' differs", kg_st_name(st), key);
        }
    }
    free(copy);
    return tensors;
}

/* ─────────────────────────── Python's files ─────────────────────────── */

KT_TEST(safetensors_python_files)
{
    static const char *const base[] = {"valid", "bf16", "empty", "bool", "u16"};
    char paths[5][600], listing[600];
    for (int i = 0; i < 5; i++) snprintf(paths[i], sizeof paths[i], "%s/st-%s.safetensors", kt_tmpdir(), base[i]);
    snprintf(listing, sizeof listing, "%s/st-listing.txt", kt_tmpdir());
    char *argv[] = {"/usr/bin/env", (char *)kt_python(), "tests/ref/st_ref.py", "write", paths[0], paths[1],
                    paths[2], paths[3], paths[4], listing, NULL};
    const char *const outputs[] = {paths[0], paths[1], paths[2], paths[3], paths[4], listing, NULL};
    char out[1024], err[4096];
    int rc = kt_run_ref(argv, outputs, out, sizeof out, err, sizeof err);
    if (rc == 3 || rc == 127) KT_SKIP("the reference needs Python with numpy, xxhash and safetensors (make check's build/venv)");
    REQUIRE_F(rc == 0, "st_ref.py write failed (%d): %s", rc, err);
    printf("    st_ref.py: %s", out);
    FILE *f = fopen(listing, "r");
    KT_REQUIRE(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    int total = 0;
    for (int i = 0; i < 3; i++) {
        kg_safetensors *st = NULL;
        kg_status s = kg_st_open(paths[i], &st);
        KT_CHECKF(s == KG_OK, "%s: %s", paths[i], kg_last_error());
        if (s) continue;
        KT_CHECK(!strcmp(kg_st_name(st), paths[i]));
        total += compare_listing(st, text, i);
        /* the same bytes through open_memory, then lies in no place */
        size_t len = kg_st_file_size(st);
        uint8_t *copy = malloc(len);
        KT_REQUIRE(copy);
        FILE *g = fopen(paths[i], "rb");
        KT_REQUIRE(g && fread(copy, 1, len, g) == len);
        fclose(g);
        kg_safetensors *m = NULL;
        KT_CHECKF(kg_st_open_memory(copy, len, "mem", &m) == KG_OK, "%s from memory: %s", paths[i], kg_last_error());
        if (m) {
            KT_CHECK(compare_listing(m, text, i) == (int)kg_st_n_tensors(st));
            check_invariants(m, copy, len, paths[i]);
            write_seed("valid", 100 + i, copy, len);
        }
        kg_st_close(m);
        free(copy);
        kg_st_close(st);
    }
    printf("    %d tensors in 3 files match what Python wrote (dtype, shape, bytes, XXH3 of the data)\n", total);
    KT_CHECK(total >= 40);
    static const char *const want[2][2] = {{"'mask'", "BOOL"}, {"'ids16'", "U16"}};
    for (int i = 0; i < 2; i++) {
        kg_safetensors *st = (kg_safetensors *)1;
        kg_status s = kg_st_open(paths[3 + i], &st);
        KT_CHECKF(s == KG_ERR_UNSUPPORTED && st == NULL, "%s: %s", paths[3 + i], kg_status_name(s));
        KT_CHECKF(has(kg_last_error(), paths[3 + i]) && has(kg_last_error(), want[i][0]) && has(kg_last_error(), want[i][1]),
                  "message: %s", kg_last_error());
    }
}

/* The real model, every tensor, against the package's own reading. */
KT_TEST(safetensors_minilm_matches_python)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s/model.safetensors", kt_models_dir(), MINILM);
    if (access(path, R_OK) != 0) KT_SKIP("%s not found: run 'make models'", path);
    kg_safetensors *st;
    REQUIRE_F(kg_st_open(path, &st) == KG_OK, "%s", kg_last_error());
    check_invariants(st, (const uint8_t *)kg_st_tensor(st, 0)->data - kg_st_tensor(st, 0)->offset -
                             kg_st_data_offset(st), kg_st_file_size(st), path);
    /* shapes as the model card gives them (BERT: 6 layers, 384 wide, 1536 FFN, 30522 words) */
    static const struct { const char *name, *dtype; uint32_t n_dims; uint64_t ne0, ne1; } spot[] = {
        {"embeddings.word_embeddings.weight", "F32", 2, 384, 30522},
        {"embeddings.position_ids", "I64", 2, 512, 1},
        {"encoder.layer.5.intermediate.dense.weight", "F32", 2, 384, 1536},
        {"encoder.layer.0.attention.self.query.bias", "F32", 1, 384, 1},
    };
    for (size_t i = 0; i < sizeof spot / sizeof *spot; i++) {
        const kg_tensor *t = kg_st_find_tensor(st, spot[i].name);
        KT_CHECKF(t && t->n_dims == spot[i].n_dims && t->ne[0] == spot[i].ne0 && t->ne[1] == spot[i].ne1 &&
                      !strcmp(kg_st_dtype_name(t), spot[i].dtype), "%s: wrong or missing", spot[i].name);
    }
    enum { CAP = 1 << 20 };
    char *out = malloc(CAP), err[4096];
    KT_REQUIRE(out);
    char *argv[] = {"/usr/bin/env", (char *)kt_python(), "tests/ref/st_ref.py", "list", path, NULL};
    int rc = kt_run_ref(argv, NULL, out, CAP, err, sizeof err);
    if (rc == 3 || rc == 127) {
        free(out);
        kg_st_close(st);
        KT_SKIP("the reference needs Python with numpy, xxhash and safetensors (make check's build/venv)");
    }
    KT_CHECKF(rc == 0, "st_ref.py list failed (%d): %s", rc, err);
    int n = rc == 0 ? compare_listing(st, out, 0) : 0;
    printf("    %s: %d of %" PRIu64 " tensors match safetensors' reading (dtype, shape, bytes, XXH3 of the data)\n",
           MINILM, n, kg_st_n_tensors(st));
    KT_CHECK(n == 104 && kg_st_n_tensors(st) == 104);
    free(out);
    kg_st_close(st);
}

/* ─────────────────────────── malformed corpus ─────────────────────────── */

#define T1(dt, shp, off) "{\"w\":{\"dtype\":" dt ",\"shape\":" shp ",\"data_offsets\":" off "}}"
#define E(name, dt, shp, off) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shp ",\"data_offsets\":" off "}"

#define FMT KG_ERR_FORMAT
#define UNS KG_ERR_UNSUPPORTED

static const struct mcase {
    const char *label, *hdr;
    uint64_t data;
    kg_status status;
    const char *want, *want2;
    bool set_n;
    uint64_t n;
    size_t hdr_len; /* 0: strlen */
} cases[] = {
    /* header length lies */
    {"n-zero", "{}", 0, FMT, "header length is 0", NULL, true, 0, 0},
    {"n-limit+1", "{}", 0, FMT, "100000001 is over the format's limit", NULL, true, 100000001, 0},
    {"n-huge", "{}", 0, FMT, "over the format's limit", NULL, true, UINT64_MAX, 0},
    {"n-2^63", "{}", 0, FMT, "over the format's limit", NULL, true, 1ull << 63, 0},
    {"n-limit", "{}", 0, FMT, "header length 100000000 runs past the end", NULL, true, 100000000, 0},
    {"n-past-end", "{}", 0, FMT, "header length 3 runs past the end", NULL, true, 3, 0},
    {"n-short", T1("\"F32\"", "[1]", "[0,4]"), 4, FMT, "not valid JSON", NULL, true, 20, 0},
    /* not JSON, not an object */
    {"no-brace", "[1, 2]", 0, FMT, "does not start with '{'", NULL, false, 0, 0},
    {"space-brace", " {}", 0, FMT, "does not start with '{' (byte 8 is 0x20)", NULL, false, 0, 0},
    {"json-cut", "{\"w\":", 0, FMT, "not valid JSON", "line 1", false, 0, 0},
    {"json-trailing", "{} x", 0, FMT, "not valid JSON", "end of file expected", false, 0, 0},
    {"json-two", "{}{}", 0, FMT, "not valid JSON", NULL, false, 0, 0},
    {"json-utf8", "{\"\xff\":1}", 0, FMT, "not valid JSON", "0xff", false, 0, 0},
    {"json-nul-name", "{\"a\\u0000b\":{}}", 0, FMT, "NUL byte in object key", NULL, false, 0, 0},
    {"json-raw-nul", "{\"a\0\":1}", 0, FMT, "not valid JSON", NULL, false, 0, 8},
    {"json-ctrl", "{\"a\x01\":1}", 0, FMT, "not valid JSON", NULL, false, 0, 0},
    {"json-dup", "{" E("a", "F32", "[1]", "[0,4]") "," E("a", "F32", "[1]", "[4,8]") "}", 8, FMT,
     "duplicate object key", "near '\\\"a\\\"'", false, 0, 0},
    {"json-dup-meta", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, FMT, "duplicate object key", NULL, false, 0, 0},
    {"json-big-int", T1("\"F32\"", "[99999999999999999999]", "[0,4]"), 4, FMT, "too big integer", NULL, false, 0, 0},
    {"json-single-quote", "{'w':1}", 0, FMT, "not valid JSON", NULL, false, 0, 0},
    /* entries */
    {"entry-int", "{\"w\":5}", 0, FMT, "tensor 'w': its entry is an integer", NULL, false, 0, 0},
    {"entry-array", "{\"w\":[]}", 0, FMT, "tensor 'w': its entry is an array", NULL, false, 0, 0},
    {"no-dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, FMT, "tensor 'w': no \"dtype\"", NULL, false, 0, 0},
    {"no-shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, FMT, "tensor 'w': no \"shape\"", NULL, false, 0, 0},
    {"no-offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, FMT, "tensor 'w': no \"data_offsets\"", NULL, false, 0, 0},
    {"extra-key", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, FMT,
     "tensor 'w': unexpected key 'x'", NULL, false, 0, 0},
    /* dtype */
    {"dtype-int", T1("5", "[1]", "[0,4]"), 4, FMT, "tensor 'w': dtype is 5", NULL, false, 0, 0},
    {"dtype-null", T1("null", "[1]", "[0,4]"), 4, FMT, "tensor 'w': dtype is null", NULL, false, 0, 0},
    {"dtype-unknown", T1("\"F33\"", "[1]", "[0,4]"), 4, FMT, "tensor 'w': dtype \"F33\" is not a safetensors dtype", NULL, false, 0, 0},
    {"dtype-lower", T1("\"f32\"", "[1]", "[0,4]"), 4, FMT, "tensor 'w': dtype \"f32\"", NULL, false, 0, 0},
    {"dtype-nul", T1("\"F32\\u0000\"", "[1]", "[0,4]"), 4, FMT, "tensor 'w': dtype \"F32\\x00\"", NULL, false, 0, 0},
    {"dtype-f8", T1("\"F8_E4M3\"", "[4]", "[0,4]"), 4, UNS, "tensor 'w': dtype F8_E4M3 is not one kgen reads", NULL, false, 0, 0},
    {"dtype-bool", T1("\"BOOL\"", "[4]", "[0,4]"), 4, UNS, "tensor 'w': dtype BOOL", NULL, false, 0, 0},
    {"dtype-u64", T1("\"U64\"", "[1]", "[0,8]"), 8, UNS, "tensor 'w': dtype U64", NULL, false, 0, 0},
    /* shape */
    {"shape-int", T1("\"F32\"", "4", "[0,4]"), 4, FMT, "tensor 'w': shape is an integer", NULL, false, 0, 0},
    {"shape-neg", T1("\"F32\"", "[-1]", "[0,4]"), 4, FMT, "tensor 'w': shape[0] is -1", NULL, false, 0, 0},
    {"shape-float", T1("\"F32\"", "[1, 2.0]", "[0,8]"), 8, FMT, "tensor 'w': shape[1] is 2.0", NULL, false, 0, 0},
    {"shape-exp", T1("\"F32\"", "[1e0]", "[0,4]"), 4, FMT, "tensor 'w': shape[0] is 1.0", NULL, false, 0, 0},
    {"shape-str", T1("\"F32\"", "[\"2\"]", "[0,8]"), 8, FMT, "tensor 'w': shape[0] is the string \"2\"", NULL, false, 0, 0},
    {"shape-null", T1("\"F32\"", "[null]", "[0,4]"), 4, FMT, "tensor 'w': shape[0] is null", NULL, false, 0, 0},
    {"shape-nested", T1("\"F32\"", "[[1]]", "[0,4]"), 4, FMT, "tensor 'w': shape[0] is an array", NULL, false, 0, 0},
    {"shape-5d", T1("\"F32\"", "[1,1,1,1,1]", "[0,4]"), 4, UNS, "tensor 'w': shape has 5 dimensions", NULL, false, 0, 0},
    {"shape-overflow", T1("\"F32\"", "[4294967296,4294967296]", "[0,4]"), 4, FMT,
     "tensor 'w': the element count overflows at shape[1]", NULL, false, 0, 0},
    {"shape-int64", T1("\"I8\"", "[3037000500,3037000500]", "[0,4]"), 4, FMT, "tensor 'w': the element count overflows",
     NULL, false, 0, 0},
    {"shape-huge", T1("\"F32\"", "[9223372036854775807]", "[0,4]"), 4, FMT, "tensor 'w': the byte size overflows", NULL, false, 0, 0},
    {"bytes-overflow", T1("\"F64\"", "[2305843009213693952]", "[0,4]"), 4, FMT, "tensor 'w': the byte size overflows", NULL, false, 0, 0},
    {"overflow-then-0", T1("\"F32\"", "[4294967296,4294967296,0]", "[0,0]"), 0, FMT, "element count overflows", NULL, false, 0, 0},
    /* data_offsets */
    {"off-int", T1("\"F32\"", "[1]", "4"), 4, FMT, "tensor 'w': data_offsets is an integer", NULL, false, 0, 0},
    {"off-one", T1("\"F32\"", "[1]", "[4]"), 4, FMT, "tensor 'w': data_offsets is an array of other than 2", NULL, false, 0, 0},
    {"off-three", T1("\"F32\"", "[1]", "[0,4,8]"), 4, FMT, "tensor 'w': data_offsets is an array of other than 2", NULL, false, 0, 0},
    {"off-neg", T1("\"F32\"", "[1]", "[-4,0]"), 4, FMT, "tensor 'w': data_offsets[0] (begin) is -4", NULL, false, 0, 0},
    {"off-float", T1("\"F32\"", "[1]", "[0,4.5]"), 4, FMT, "tensor 'w': data_offsets[1] (end) is 4.5", NULL, false, 0, 0},
    {"off-str", T1("\"F32\"", "[1]", "[\"0\",4]"), 4, FMT, "tensor 'w': data_offsets[0] (begin) is the string", NULL, false, 0, 0},
    {"off-reversed", T1("\"F32\"", "[0]", "[8,4]"), 8, FMT, "tensor 'w': data_offsets [8, 4] begin after they end", NULL, false, 0, 0},
    {"off-size", T1("\"F32\"", "[2]", "[0,4]"), 4, FMT, "tensor 'w': data_offsets [0, 4] hold 4 bytes, but", "need 8", false, 0, 0},
    {"off-past-end", T1("\"F32\"", "[2]", "[0,8]"), 4, FMT, "tensor 'w': data_offsets [0, 8] run past the end", NULL, false, 0, 0},
    {"off-far", T1("\"F32\"", "[1]", "[9223372036854775800,9223372036854775804]"), 4, FMT,
     "tensor 'w': data_offsets [9223372036854775800, 9223372036854775804] run past", NULL, false, 0, 0},
    /* layout */
    {"overlap", "{" E("a", "F32", "[2]", "[0,8]") "," E("b", "F32", "[2]", "[4,12]") "}", 12, FMT,
     "tensors 'a' (data_offsets [0, 8]) and 'b' ([4, 12]) overlap", NULL, false, 0, 0},
    {"overlap-same", "{" E("a", "F32", "[2]", "[0,8]") "," E("b", "I32", "[2]", "[0,8]") "}", 8, FMT,
     "tensors 'a' (data_offsets [0, 8]) and 'b' ([0, 8]) overlap", NULL, false, 0, 0},
    {"overlap-empty-inside", "{" E("a", "F32", "[2]", "[0,8]") "," E("z", "F32", "[0]", "[4,4]") "}", 8, FMT,
     "tensors 'a' (data_offsets [0, 8]) and 'z' ([4, 4]) overlap", NULL, false, 0, 0},
    {"hole", "{" E("a", "F32", "[2]", "[0,8]") "," E("b", "F32", "[2]", "[12,20]") "}", 20, FMT,
     "hole: bytes [8, 12) between tensor 'a' and tensor 'b'", NULL, false, 0, 0},
    {"hole-start", "{" E("a", "F32", "[2]", "[4,12]") "}", 12, FMT, "hole: bytes [0, 4) between its start and tensor 'a'",
     NULL, false, 0, 0},
    {"trailing", "{" E("a", "F32", "[2]", "[0,8]") "}", 12, FMT,
     "4 bytes of the data section, [8, 12), belong to no tensor (after tensor 'a'", NULL, false, 0, 0},
    {"trailing-no-tensors", "{}", 3, FMT, "3 bytes of the data section, [0, 3), belong to no tensor (after the header",
     NULL, false, 0, 0},
    {"trailing-after-empty", "{" E("z", "F32", "[0]", "[0,0]") "}", 1, FMT, "1 bytes of the data section", NULL, false, 0, 0},
    /* metadata */
    {"meta-array", "{\"__metadata__\":[1]}", 0, FMT, "__metadata__ is an array", NULL, false, 0, 0},
    {"meta-string", "{\"__metadata__\":\"x\"}", 0, FMT, "__metadata__ is a string", NULL, false, 0, 0},
    {"meta-int", "{\"__metadata__\":{\"k\":1}}", 0, FMT, "__metadata__ key 'k' is an integer", NULL, false, 0, 0},
    {"meta-obj", "{\"__metadata__\":{\"k\":{}}}", 0, FMT, "__metadata__ key 'k' is an object", NULL, false, 0, 0},
    {"meta-null-val", "{\"__metadata__\":{\"ok\":\"1\",\"n\":null}}", 0, FMT, "__metadata__ key 'n' is null", NULL, false, 0, 0},
    /* names in messages are escaped */
    {"name-escaped", "{\"a\\nb\\\"c\":5}", 0, FMT, "tensor 'a\\x0Ab\\\"c': its entry", NULL, false, 0, 0},
};

/* nesting deeper than jansson's limit: refused, no stack overflow */
static char deep[8200];

static void check_case(const char *label, const uint8_t *p, size_t len, kg_status want_st, const char *w1,
                       const char *w2)
{
    char name[128];
    snprintf(name, sizeof name, "case-%s.safetensors", label);
    kg_safetensors *st = (kg_safetensors *)1;
    kg_status s = kg_st_open_memory(p, len, name, &st);
    const char *e = kg_last_error();
    KT_CHECKF(s == want_st && st == NULL, "%s: status %s (want %s): %s", label, kg_status_name(s),
              kg_status_name(want_st), e);
    KT_CHECKF(has(e, name) && has(e, w1) && (!w2 || has(e, w2)), "%s: message lacks '%s'%s%s: %s", label, w1,
              w2 ? " or " : "", w2 ? w2 : "", e);
    if (s == KG_OK) kg_st_close(st);
}

KT_TEST(safetensors_malformed)
{
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const struct mcase *c = &cases[i];
        size_t len;
        uint8_t *p = make(c->hdr, c->hdr_len, c->set_n, c->n, c->data, &len);
        KT_REQUIRE(p);
        check_case(c->label, p, len, c->status, c->want, c->want2);
        write_seed("malformed", (int)i, p, len);
        free(p);
        n++;
    }
    /* shorter than the length field */
    for (size_t k = 0; k < 8; k++) {
        uint8_t b[8] = {2, 0, 0, 0, 0, 0, 0, 0};
        check_case("short", k ? b : NULL, k, FMT, "fewer than the 8 of the header length", NULL);
        n++;
    }
    /* nesting deeper than jansson's limit */
    size_t o = 0;
    o += (size_t)snprintf(deep, sizeof deep, "{\"w\":");
    while (o < 4100) deep[o++] = '[';
    deep[o] = 0;
    size_t len;
    uint8_t *p = make(deep, 0, false, 0, 0, &len);
    KT_REQUIRE(p);
    check_case("deep", p, len, FMT, "not valid JSON", "depth");
    free(p);
    n++;
    printf("    %d malformed files refused with the expected status and message\n", n);
}

/* Accepted: edge cases the format allows. */
KT_TEST(safetensors_edge_valid)
{
    static const struct { const char *label, *hdr; uint64_t data, n_tensors, n_meta; } ok[] = {
        {"empty", "{}", 0, 0, 0},
        {"meta-null", "{\"__metadata__\":null}", 0, 0, 0},
        {"meta-empty", "{\"__metadata__\":{}}", 0, 0, 0},
        {"padded", "{\"__metadata__\":{\"a\":\"b\"}}      ", 0, 0, 1},
        {"empties-at-bounds", "{" E("z0", "F32", "[0]", "[0,0]") "," E("a", "F32", "[2]", "[0,8]") ","
         E("z8", "I8", "[3,0]", "[8,8]") "," E("s", "I32", "[]", "[8,12]") "}", 12, 4, 0},
        {"header-unsorted", "{" E("b", "F16", "[1,3]", "[8,14]") "," E("a", "U8", "[8]", "[0,8]") "}", 14, 2, 0},
        {"only-empty", "{" E("z", "BF16", "[0,5]", "[0,0]") "}", 0, 1, 0},
        {"odd-header", "{" E("x", "F64", "[1]", "[0,8]") "} ", 8, 1, 0}, /* data at an odd address */
        {"unicode", "{\"\xc3\xbc\\u00e9\xe5\x90\x8d\":{\"dtype\":\"I16\",\"shape\":[1,1,1,1],\"data_offsets\":[0,2]}}", 2, 1, 0},
        {"empty-name", "{\"\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, 1, 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        size_t len;
        uint8_t *p = make(ok[i].hdr, 0, false, 0, ok[i].data, &len);
        KT_REQUIRE(p);
        kg_safetensors *st = NULL;
        kg_status s = kg_st_open_memory(p, len, ok[i].label, &st);
        KT_CHECKF(s == KG_OK, "%s: %s", ok[i].label, kg_last_error());
        if (s == KG_OK) {
            KT_CHECKF(kg_st_n_tensors(st) == ok[i].n_tensors && kg_st_n_meta(st) == ok[i].n_meta,
                      "%s: %" PRIu64 " tensors, %" PRIu64 " meta", ok[i].label, kg_st_n_tensors(st), kg_st_n_meta(st));
            check_invariants(st, p, len, ok[i].label);
            KT_CHECK(kg_st_data_offset(st) == 8 + strlen(ok[i].hdr));
        }
        write_seed("valid", (int)i, p, len);
        kg_st_close(st);
        free(p);
    }
    /* the details of one: header order kept, ne reversed, scalar, unaligned data */
    size_t len;
    uint8_t *p = make("{" E("b", "F16", "[1,3]", "[8,14]") "," E("a", "U8", "[8]", "[0,8]") ","
                      E("s", "I32", "[]", "[14,18]") "}", 0, false, 0, 18, &len);
    kg_safetensors *st;
    KT_REQUIRE(p && kg_st_open_memory(p, len, "x", &st) == KG_OK);
    const kg_tensor *b = kg_st_tensor(st, 0), *a = kg_st_tensor(st, 1), *s = kg_st_find_tensor(st, "s");
    KT_CHECK(!strcmp(b->name, "b") && b->n_dims == 2 && b->ne[0] == 3 && b->ne[1] == 1 && b->ne[2] == 1 &&
             b->type == KG_TYPE_F16 && b->offset == 8 && b->n_bytes == 6);
    KT_CHECK(!strcmp(a->name, "a") && a->type == KG_TYPE_U8 && !strcmp(kg_st_dtype_name(a), "U8") && a->n_elements == 8);
    KT_CHECK(s && s->n_dims == 0 && s->n_elements == 1 && s->n_bytes == 4 && s->ne[0] == 1);
    KT_CHECK(kg_st_find_tensor(st, "c") == NULL && kg_st_find_tensor(st, "") == NULL);
    KT_CHECK((const uint8_t *)s->data == p + kg_st_data_offset(st) + 14);
    kg_st_close(st);
    free(p);
    kg_st_close(NULL);
    KT_CHECK(kg_st_open_memory(NULL, 4, "x", &st) == KG_ERR_ARG && kg_st_open(NULL, &st) == KG_ERR_ARG);
}

/* The small valid file the truncation and mutation tests start from. */
static const char small_hdr[] = "{\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\"},"
    E("emb.weight", "F32", "[3,2]", "[0,24]") "," E("emb.bias", "F16", "[3]", "[24,30]") ","
    E("ids", "I64", "[1,2]", "[30,46]") "," E("z", "I8", "[0]", "[46,46]") "," E("u", "U8", "[2]", "[46,48]") "}";

KT_TEST(safetensors_truncations)
{
    size_t len;
    uint8_t *p = make(small_hdr, 0, false, 0, 48, &len);
    KT_REQUIRE(p);
    kg_safetensors *st;
    REQUIRE_F(kg_st_open_memory(p, len, "small", &st) == KG_OK, "%s", kg_last_error());
    KT_CHECK(kg_st_n_tensors(st) == 5 && kg_st_n_meta(st) == 2);
    check_invariants(st, p, len, "small");
    kg_st_close(st);
    write_seed("valid", 99, p, len);
    int refused = 0;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *q = malloc(cut ? cut : 1); /* exactly cut bytes: ASan sees any read past them */
        KT_REQUIRE(q);
        memcpy(q, p, cut);
        st = (kg_safetensors *)1;
        kg_status s = kg_st_open_memory(q, cut, "cut.safetensors", &st);
        KT_CHECKF(s == KG_ERR_FORMAT && st == NULL && has(kg_last_error(), "cut.safetensors"),
                  "cut at %zu: %s: %s", cut, kg_status_name(s), kg_last_error());
        refused += s != KG_OK;
        if (s == KG_OK) kg_st_close(st);
        free(q);
    }
    printf("    %d of %zu truncations refused\n", refused, len);
    /* a file on disk, cut: kg_st_open maps it and says the same */
    char path[600];
    kc_tpath(path, sizeof path, "cut-on-disk.safetensors");
    FILE *f = fopen(path, "wb");
    KT_REQUIRE(f && fwrite(p, 1, len - 1, f) == len - 1);
    fclose(f);
    KT_CHECK(kg_st_open(path, &st) == KG_ERR_FORMAT && has(kg_last_error(), path) && has(kg_last_error(), "'u'"));
    f = fopen(path, "wb");
    KT_REQUIRE(f && fwrite(p, 1, 5, f) == 5);
    fclose(f);
    KT_CHECK(kg_st_open(path, &st) == KG_ERR_FORMAT && has(kg_last_error(), "fewer than the 8"));
    kc_tpath(path, sizeof path, "absent.safetensors");
    KT_CHECK(kg_st_open(path, &st) == KG_ERR_NOTFOUND && has(kg_last_error(), path));
    free(p);
}

/* Random edits of the small file's header (and now and then its length):
 * each opens cleanly or is refused with a message naming the file. */
KT_TEST(safetensors_mutations)
{
    size_t len;
    uint8_t *p = make(small_hdr, 0, false, 0, 48, &len);
    KT_REQUIRE(p);
    uint8_t *q = malloc(len);
    KT_REQUIRE(q);
    static const char alphabet[] = "{}[]\",:-.0123456789eE \\u_FIUBtrufalsenl";
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    int accepted = 0, refused = 0, seeds = 0;
    const size_t hlen = strlen(small_hdr);
    for (int it = 0; it < 20000; it++) {
        memcpy(q, p, len);
        int edits = 1 + (int)((rng >> 60) & 3);
        for (int e = 0; e < edits; e++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = 8 + (size_t)((rng >> 33) % hlen);
            uint64_t r = rng >> 20;
            if (r % 16 == 0) q[r % 8] = (uint8_t)(rng >> 8); /* the length field */
            else if (r % 4 == 0) q[at] = (uint8_t)(rng >> 12);
            else q[at] = (uint8_t)alphabet[(rng >> 12) % (sizeof alphabet - 1)];
        }
        kg_safetensors *st = (kg_safetensors *)1;
        kg_status s = kg_st_open_memory(q, len, "mut", &st);
        if (s == KG_OK) {
            accepted++;
            check_invariants(st, q, len, "mutation");
            kg_st_close(st);
        } else {
            refused++;
            KT_CHECKF(st == NULL && !strncmp(kg_last_error(), "mut: ", 5), "mutation %d: %s", it, kg_last_error());
            if (seeds < 40 && it % 500 == 0) write_seed("mutated", seeds++, q, len);
        }
        if (kt_failed()) break;
    }
    printf("    20000 mutations: %d accepted (and consistent), %d refused\n", accepted, refused);
    KT_CHECK(accepted > 0 && refused > 0);
    free(q);
    free(p);
}

/* ─────────────────────────── kgen inspect ─────────────────────────── */

/* inspect_path's output for path, as one string (caller frees); NULL with
 * the status in *st if it failed. */
static char *inspect_to_string(const char *path, bool as_json, kg_status *st)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    *st = inspect_path(path, f, as_json);
    fclose(f);
    if (*st) free(buf), buf = NULL;
    return buf;
}

/* Every tensor of the JSON's file objects against the reader. */
static int check_json_files(const char *text, const kg_safetensors *const *sts, int n_sts, const char *label)
{
    json_error_t e;
    json_t *root = json_loads(text, 0, &e), *files = json_object_get(root, "files");
    KT_CHECKF(root && json_is_array(files), "%s: --json output is not an object with files: %s", label, e.text);
    int n = 0;
    for (size_t fi = 0; files && fi < json_array_size(files) && (int)fi < n_sts; fi++) {
        json_t *ts = json_object_get(json_array_get(files, fi), "tensors");
        KT_CHECKF(json_array_size(ts) == kg_st_n_tensors(sts[fi]), "%s: file %zu lists %zu tensors", label, fi,
                  json_array_size(ts));
        for (size_t i = 0; i < json_array_size(ts); i++) {
            json_t *t = json_array_get(ts, i), *shape = json_object_get(t, "shape");
            const kg_tensor *k = kg_st_tensor(sts[fi], i);
            bool same = k && !strcmp(json_string_value(json_object_get(t, "name")), k->name) &&
                        !strcmp(json_string_value(json_object_get(t, "dtype")), kg_st_dtype_name(k)) &&
                        json_array_size(shape) == k->n_dims &&
                        (uint64_t)json_integer_value(json_object_get(t, "bytes")) == k->n_bytes &&
                        (uint64_t)json_integer_value(json_object_get(t, "offset")) == k->offset;
            for (uint32_t d = 0; same && d < k->n_dims; d++)
                same = (uint64_t)json_integer_value(json_array_get(shape, d)) == k->ne[k->n_dims - 1 - d];
            KT_CHECKF(same, "%s: file %zu tensor %zu differs from the reader", label, fi, i);
            n += same;
        }
    }
    json_decref(root);
    return n;
}

KT_TEST(safetensors_inspect_minilm_dir)
{
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/%s", kt_models_dir(), MINILM);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (access(path, R_OK) != 0) KT_SKIP("%s not found: run 'make models'", path);
    kg_safetensors *st;
    REQUIRE_F(kg_st_open(path, &st) == KG_OK, "%s", kg_last_error());
    kg_status s;
    char *text = inspect_to_string(dir, false, &s);
    REQUIRE_F(text, "inspect %s: %s", dir, kg_last_error());
    int named = 0;
    for (uint64_t i = 0; i < kg_st_n_tensors(st); i++) named += has(text, kg_st_tensor(st, i)->name);
    KT_CHECKF(named == 104, "the text names %d of 104 tensors", named);
    KT_CHECK(has(text, "config.json") && has(text, "hidden_size") && has(text, "384") && has(text, "\"BertModel\""));
    KT_CHECK(has(text, "30522 x 384") && has(text, "format        pt") && has(text, "I64"));
    free(text);
    text = inspect_to_string(dir, true, &s);
    REQUIRE_F(text, "inspect --json %s: %s", dir, kg_last_error());
    const kg_safetensors *sts[1] = {st};
    KT_CHECK(check_json_files(text, sts, 1, "minilm") == 104);
    json_t *root = json_loads(text, 0, NULL);
    KT_CHECK(json_integer_value(json_object_get(json_object_get(root, "config"), "hidden_size")) == 384);
    json_decref(root);
    free(text);
    kg_st_close(st);
}

/* A sharded directory the test writes: two shards and the index. */
static bool write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(p, 1, n, f) == n;
    if (f) ok = fclose(f) == 0 && ok;
    return ok;
}

KT_TEST(safetensors_inspect_sharded_dir)
{
    char dir[600], p[800];
    kc_tpath(dir, sizeof dir, "hf-sharded");
    KT_REQUIRE(kc_make_dir(dir));
    static const char *const hdr[2] = {"{" E("a.weight", "F32", "[2,2]", "[0,16]") "," E("a.bias", "BF16", "[2]", "[16,20]") "}",
                                       "{\"__metadata__\":{\"format\":\"pt\"}," E("b.weight", "I8", "[3]", "[0,3]") "}"};
    static const uint64_t data[2] = {20, 3};
    for (int i = 0; i < 2; i++) {
        size_t len;
        uint8_t *b = make(hdr[i], 0, false, 0, data[i], &len);
        snprintf(p, sizeof p, "%s/model-0000%d-of-00002.safetensors", dir, i + 1);
        KT_REQUIRE(b && write_file(p, b, len));
        free(b);
    }
    static const char cfg[] = "{\"model_type\": \"llama\", \"hidden_size\": 2, \"rope_scaling\": {\"type\": \"linear\"}}";
    snprintf(p, sizeof p, "%s/config.json", dir);
    KT_REQUIRE(write_file(p, cfg, strlen(cfg)));
    static const char idx[] = "{\"metadata\": {\"total_size\": 23}, \"weight_map\": {\"a.weight\": \"model-00001-of-00002.safetensors\","
                              " \"b.weight\": \"model-00002-of-00002.safetensors\", \"a.bias\": \"model-00001-of-00002.safetensors\"}}";
    char ip[800];
    snprintf(ip, sizeof ip, "%s/model.safetensors.index.json", dir);
    KT_REQUIRE(write_file(ip, idx, strlen(idx)));
    kg_status s;
    char *text = inspect_to_string(dir, false, &s);
    REQUIRE_F(text, "inspect %s: %s", dir, kg_last_error());
    KT_CHECKF(has(text, "2 shards") && has(text, "a.weight") && has(text, "a.bias") && has(text, "b.weight") &&
                  has(text, "model-00002-of-00002.safetensors") && has(text, "rope_scaling") &&
                  has(text, "{\"type\":\"linear\"}"), "%s", text);
    free(text);
    text = inspect_to_string(dir, true, &s);
    REQUIRE_F(text, "inspect --json %s: %s", dir, kg_last_error());
    kg_safetensors *sts[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/model-0000%d-of-00002.safetensors", dir, i + 1);
        KT_REQUIRE(kg_st_open(p, &sts[i]) == KG_OK);
    }
    KT_CHECK(check_json_files(text, (const kg_safetensors *const *)sts, 2, "sharded") == 3);
    free(text);
    kg_st_close(sts[0]);
    kg_st_close(sts[1]);
    /* indexes that lie: refused naming the index and the tensor or shard */
    static const struct { const char *idx, *want; } bad[] = {
        {"{\"weight_map\": {\"a.weight\": \"model-00002-of-00002.safetensors\"}}", "tensor 'a.weight' in model-00002"},
        {"{\"weight_map\": {\"x\": \"../model-00001-of-00002.safetensors\"}}", "weight_map['x'] is ../model"},
        {"{\"weight_map\": {\"x\": 3}}", "weight_map['x'] is not a string"},
        {"{\"weight_map\": {\"x\": \"missing.safetensors\"}}", "missing.safetensors: cannot open"},
        {"{\"weight_map\": []}", "no \"weight_map\" object"},
        {"{\"weight_map\": {}, \"weight_map\": {}}", "duplicate object key"},
        {"[1]", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        KT_REQUIRE(write_file(ip, bad[i].idx, strlen(bad[i].idx)));
        text = inspect_to_string(dir, false, &s);
        KT_CHECKF(!text && s != KG_OK && has(kg_last_error(), bad[i].want), "index %zu: %s", i, kg_last_error());
        free(text);
    }
    remove(ip);
    text = inspect_to_string(dir, false, &s);
    KT_CHECKF(!text && s == KG_ERR_NOTFOUND && has(kg_last_error(), dir), "%s", kg_last_error());
    free(text);
}

/* The CLI: `kgen inspect` of a safetensors file and of the MiniLM directory. */
KT_TEST(safetensors_inspect_cli)
{
    kc_setup_env();
    KGEN("inspect", "--help");
    KT_CHECKF(has(kc_out, "safetensors"), "kgen inspect --help does not mention safetensors: %s", kc_out);
    char path[800];
    size_t len;
    uint8_t *b = make(small_hdr, 0, false, 0, 48, &len);
    kc_tpath(path, sizeof path, "cli.safetensors");
    KT_REQUIRE(b && write_file(path, b, len));
    int rc = KGEN("inspect", path);
    KT_CHECKF(rc == 0 && has(kc_out, "emb.weight") && has(kc_out, "ids") && has(kc_out, "3 x 2") &&
                  has(kc_out, "format        pt"), "rc %d: %s%s", rc, kc_out, kc_err);
    rc = KGEN("inspect", path, "--json");
    KT_CHECKF(rc == 0 && has(kc_out, "\"name\":\"emb.bias\",\"dtype\":\"F16\",\"shape\":[3]"), "rc %d: %s%s", rc, kc_out, kc_err);
    /* a lying file: exit 1, the path and the reason, nothing on stdout */
    b[8 + strlen(small_hdr) - 5] = '9'; /* "[46,48]}}" -> "[46,98]}}" */
    KT_REQUIRE(write_file(path, b, len));
    rc = KGEN("inspect", path);
    KT_CHECKF(rc == 1 && !kc_out[0] && has(kc_err, path) && has(kc_err, "tensor 'u'"), "rc %d: %s%s", rc, kc_out, kc_err);
    free(b);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/%s", kt_models_dir(), MINILM);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (access(path, R_OK) != 0) KT_SKIP("%s not found: run 'make models'", path);
    rc = KGEN("inspect", dir);
    KT_CHECKF(rc == 0 && has(kc_out, "embeddings.word_embeddings.weight") && has(kc_out, "pooler.dense.weight") &&
                  has(kc_out, "num_hidden_layers"), "rc %d: %s", rc, kc_err);
}
