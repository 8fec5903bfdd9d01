/*
 * test_malformed.c — a corpus of broken GGUF files, each built by the test
 * writer; every one must be refused by kg_gguf_open_memory with the expected
 * status and a message containing the expected text, and a few of them by
 * `kgen inspect` (exit status 1, path and reason on stderr, nothing on stdout).
 *
 * With KGEN_WRITE_CORPUS=DIR set, every case is also written to DIR as a seed
 * for the fuzzer (malformed-NN.gguf, valid-NN.gguf).
 */
#include "gguf_writer.h"
#include "kt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ─────────────────────────── builders ─────────────────────────── */

static void arch(tw *w)
{
    tw_val a = tw_cs("llama");
    tw_kv(w, "general.architecture", &a);
}

static void data_bytes(tw *w, uint64_t n)
{
    for (uint64_t j = 0; j < n; j++) tw_u8(w, tw_pattern(0, j));
}

/* The small valid file that the truncation test cuts: strings, fixed, string
 * and nested arrays, a bool, two tensors with padding between their data. */
static void b_valid(tw *w, uint64_t version)
{
    static const uint32_t u32s[] = {1, 2, 3};
    static const uint16_t in0[] = {1, 2}, in1[] = {3};
    tw_val strs[] = {tw_cs("x"), tw_cs("yz")};
    tw_val inner[] = {tw_arr(KG_V_U16, 2, in0), tw_arr(KG_V_U16, 1, in1)};
    tw_val a = tw_arr(KG_V_U32, 3, u32s), s = tw_arr_of(KG_V_STRING, 2, strs);
    tw_val nest = tw_arr_of(KG_V_ARRAY, 2, inner), flag = tw_int(KG_V_BOOL, 1);
    tw_tdesc t[] = {{.name = "w", .n_dims = 2, .ne = {4, 2}, .type = KG_TYPE_F32},
                    {.name = "q", .n_dims = 1, .ne = {32}, .type = KG_TYPE_Q8_0}};
    tw_layout(t, 2, 32);
    tw_header(w, (uint32_t)version, 2, 5);
    arch(w);
    tw_kv(w, "a.u32", &a);
    tw_kv(w, "a.str", &s);
    tw_kv(w, "a.nest", &nest);
    tw_kv(w, "flag", &flag);
    tw_tensors(w, t, 2);
    tw_data_all(w, t, 2, 32);
}

/* Header, the arch key, one tensor info, padding to `align` (general.alignment
 * written if not 32), then `n_data` data bytes. */
static void one_tensor(tw *w, const char *name, size_t name_len, uint32_t n_dims, const uint64_t *ne,
                       uint32_t type, uint64_t offset, uint64_t n_data, uint32_t align)
{
    tw_header(w, 3, 0, 0);
    arch(w);
    if (align != 32) {
        tw_val a = tw_int(KG_V_U32, align);
        tw_kv(w, "general.alignment", &a);
    }
    tw_tensor_n(w, name, name_len, n_dims, ne, type, offset);
    tw_pad(w, align);
    data_bytes(w, n_data);
    tw_fix_counts(w);
}

static const uint64_t ne8[] = {8};

static void b_magic(tw *w, uint64_t arg)
{
    static const char *m[] = {"GGML", "gguf", "\0\0\0\0", "FUGG"};
    tw_header_m(w, m[arg], 3, 0, 0);
}

static void b_version(tw *w, uint64_t v) { b_valid(w, v); }

static void b_counts(tw *w, uint64_t arg) /* arg: 0-1 kv_count, 2-3 tensor_count */
{
    static const uint64_t v[] = {UINT64_MAX, 1ull << 40, UINT64_MAX, 1000};
    b_valid(w, 3);
    tw_set_u64(w, arg < 2 ? 16 : 8, v[arg]);
}

static void b_short(tw *w, uint64_t n)
{
    b_valid(w, 3);
    w->len = n;
}

static void b_cut_field(tw *w, uint64_t arg)
{
    static const struct { const char *field; size_t plus; } cut[] = {
        {"tensor[1].offset", 3}, {"kv[2].value[1].bytes", 1}, {"kv[3].value[1].count", 3}};
    b_valid(w, 3);
    w->len = tw_field_off(w, cut[arg].field) + cut[arg].plus;
}

static void b_strlen(tw *w, uint64_t arg)
{
    tw_header(w, 3, 0, 0);
    arch(w);
    if (arg == 0 || arg == 1) { /* key length */
        tw_u64(w, arg ? UINT64_MAX : 1000);
        tw_raw(w, "key", 3);
    } else if (arg == 2) { /* string value */
        tw_kv_head(w, "k", 1, KG_V_STRING);
        tw_u64(w, 1ull << 40);
        tw_raw(w, "abc", 3);
    } else if (arg == 3) { /* tensor name */
        tw_u64(w, 500);
        tw_raw(w, "name", 4);
        w->n_tensors++;
    } else { /* element 1 of a string array */
        tw_kv_head(w, "k", 1, KG_V_ARRAY);
        tw_u32(w, KG_V_STRING);
        tw_u64(w, 2);
        tw_str(w, "ok", 2);
        tw_u64(w, 500);
        tw_raw(w, "short", 5);
    }
    tw_fix_counts(w);
    if (arg <= 1) tw_set_u64(w, 16, 2);
}

static void b_arrcount(tw *w, uint64_t arg)
{
    static const struct { uint32_t et; uint64_t n; } c[] = {
        {KG_V_U8, UINT64_MAX}, {KG_V_STRING, 1ull << 61}, {KG_V_ARRAY, 1ull << 62},
        {KG_V_U64, 1ull << 61}, {KG_V_F32, 1000}};
    tw_header(w, 3, 0, 0);
    arch(w);
    tw_kv_head(w, "k", 1, KG_V_ARRAY);
    tw_u32(w, c[arg].et);
    tw_u64(w, c[arg].n);
    tw_zeros(w, 16);
    tw_fix_counts(w);
}

static void b_vtype(tw *w, uint64_t arg)
{
    tw_header(w, 3, 0, 0);
    arch(w);
    tw_kv_head(w, "k", 1, arg == 2 ? KG_V_ARRAY : arg ? UINT32_MAX : 13);
    if (arg == 2) {
        tw_u32(w, 13);
        tw_u64(w, 1);
    }
    tw_zeros(w, 16);
    tw_fix_counts(w);
}

static void b_offset(tw *w, uint64_t off) { one_tensor(w, "w", 1, 1, ne8, KG_TYPE_F32, off, 64, 32); }
static void b_misaligned64(tw *w, uint64_t off) { one_tensor(w, "w", 1, 1, ne8, KG_TYPE_F32, off, 128, 64); }
static void b_data_short(tw *w, uint64_t missing) { one_tensor(w, "w", 1, 1, ne8, KG_TYPE_F32, 0, 32 - missing, 32); }
static void b_data_start(tw *w, uint64_t align)
{
    one_tensor(w, "w", 1, 1, ne8, KG_TYPE_F32, 0, 0, (uint32_t)align);
    w->len = tw_field_off(w, "padding"); /* the file ends with the tensor infos */
}

static const struct shape {
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type;
} shapes[] = {
    {2, {1ull << 32, 1ull << 32}, KG_TYPE_F32}, /* 0: 2^64 elements */
    {1, {1ull << 63}, KG_TYPE_F32},             /* 1: ne[0] > INT64_MAX */
    {4, {1 << 16, 1 << 16, 1 << 16, 1 << 16}, KG_TYPE_F32},
    {3, {1ull << 32, 1ull << 31, 1}, KG_TYPE_I8}, /* 3: 2^63 elements */
    {2, {1ull << 31, 1ull << 31}, KG_TYPE_F32},   /* 4: 2^62 elements, 2^64 bytes */
    {1, {33}, KG_TYPE_Q4_0},
    {2, {128, 2}, KG_TYPE_Q4_K},
    {0, {0}, KG_TYPE_Q4_0},   /* 7: a scalar of a block type */
    {1, {32}, 4},             /* 8: ids that are not types */
    {1, {32}, 42},
    {1, {32}, UINT32_MAX},
};

static void b_shape(tw *w, uint64_t i)
{
    one_tensor(w, "w", 1, shapes[i].n_dims, shapes[i].ne, shapes[i].type, 0, 0, 32);
}

static void b_ndims(tw *w, uint64_t n_dims)
{
    tw_header(w, 3, 1, 1);
    arch(w);
    tw_str(w, "w", 1);
    tw_u32(w, (uint32_t)n_dims);
    for (int d = 0; d < 8; d++) tw_u64(w, 4);
    tw_u32(w, KG_TYPE_F32);
    tw_u64(w, 0);
    tw_pad(w, 32);
    tw_zeros(w, 64);
}

static void b_dup_tensor(tw *w, uint64_t arg)
{
    static const char *names[2][3] = {{"w", "w"}, {"a", "b", "a"}};
    size_t n = arg ? 3 : 2;
    tw_tdesc t[3];
    for (size_t i = 0; i < n; i++) t[i] = (tw_tdesc){.name = names[arg][i], .n_dims = 1, .ne = {8}, .type = KG_TYPE_F32};
    tw_layout(t, n, 32);
    tw_header(w, 3, n, 0);
    arch(w);
    tw_tensors(w, t, n);
    tw_data_all(w, t, n, 32);
    tw_fix_counts(w);
}

static void b_dup_key(tw *w, uint64_t arg)
{
    tw_header(w, 3, 0, 0);
    arch(w);
    tw_val u = tw_int(KG_V_U32, 1), s = tw_cs("two");
    if (arg == 0) arch(w);
    else {
        tw_kv(w, "k", &u);
        tw_kv(w, "general.name", &s);
        tw_kv(w, "k", &s);
    }
    tw_fix_counts(w);
}

static void b_alignment(tw *w, uint64_t arg)
{
    tw_val v[] = {tw_int(KG_V_U32, 0), tw_int(KG_V_U32, 3), tw_int(KG_V_U32, 96), tw_int(KG_V_U64, 64),
                  tw_cs("32"), tw_int(KG_V_I32, 32)};
    tw_header(w, 3, 0, 0);
    arch(w);
    tw_kv(w, "general.alignment", &v[arg]);
    tw_tensor_n(w, "w", 1, 1, ne8, KG_TYPE_F32, 0);
    tw_pad(w, 32);
    data_bytes(w, 32);
    tw_fix_counts(w);
}

static void b_bool(tw *w, uint64_t arg)
{
    static const uint8_t bools[] = {0, 1, 7};
    tw_val v = arg < 2 ? tw_int(KG_V_BOOL, arg ? 255 : 2) : tw_arr(KG_V_BOOL, 3, bools);
    tw_header(w, 3, 0, 0);
    arch(w);
    tw_kv(w, "flag", &v);
    tw_fix_counts(w);
}

static void b_key(tw *w, uint64_t arg)
{
    static const struct { const char *s; size_t n; } k[] = {{"", 0}, {"a\0b", 3}, {"\0", 1}};
    tw_val v = tw_int(KG_V_U8, 1);
    tw_header(w, 3, 0, 0);
    arch(w);
    tw_kv_n(w, k[arg].s, k[arg].n, &v);
    tw_fix_counts(w);
}

static void b_tname(tw *w, uint64_t arg)
{
    one_tensor(w, arg ? "w\0x" : "", arg ? 3 : 0, 1, ne8, KG_TYPE_F32, 0, 32, 32);
}

static void b_nest(tw *w, uint64_t depth)
{
    tw_header(w, 3, 0, 1);
    arch(w);
    tw_kv_head(w, "deep", 4, KG_V_ARRAY);
    for (uint64_t d = 1; d < depth; d++) {
        tw_u32(w, KG_V_ARRAY);
        tw_u64(w, 1);
    }
    tw_u32(w, KG_V_U8);
    tw_u64(w, 1);
    tw_u8(w, 1);
    tw_fix_counts(w);
}

/* ─────────────────────────── the corpus ─────────────────────────── */

#define FMT KG_ERR_FORMAT
#define UNS KG_ERR_UNSUPPORTED

typedef struct mcase {
    const char *name;
    void (*build)(tw *w, uint64_t arg);
    uint64_t arg;
    kg_status status;
    const char *expect; /* must appear in the message */
    bool cli;           /* also run `kgen inspect` on it */
} mcase;

static const mcase cases[] = {
    {"bad_magic", b_magic, 0, FMT, "not a GGUF file (magic is \"GGML\"", true},
    {"bad_magic_lowercase", b_magic, 1, FMT, "not a GGUF file", false},
    {"bad_magic_zero", b_magic, 2, FMT, "magic is \"\\x00\\x00\\x00\\x00\"", false},
    {"bad_magic_reversed", b_magic, 3, FMT, "not a GGUF file", false},
    {"version_4", b_version, 4, UNS, "unknown GGUF version 4", true},
    {"version_1", b_version, 1, UNS, "GGUF version 1 is not supported", false},
    {"version_0", b_version, 0, UNS, "unknown GGUF version 0", false},
    {"version_max", b_version, UINT32_MAX, UNS, "unknown GGUF version 4294967295", false},
    {"version_3_big_endian", b_version, 0x03000000, UNS, "big-endian", false},
    {"version_2_big_endian", b_version, 0x02000000, UNS, "big-endian", false},
    {"kv_count_max", b_counts, 0, FMT, "header.kv_count 18446744073709551615 is impossible", true},
    {"kv_count_huge", b_counts, 1, FMT, "header.kv_count 1099511627776 is impossible", false},
    {"tensor_count_max", b_counts, 2, FMT, "header.tensor_count 18446744073709551615 is impossible", false},
    {"tensor_count_1000", b_counts, 3, FMT, "header.tensor_count 1000 is impossible", false},
    {"empty_buffer", b_short, 0, FMT, "truncated: file ends at byte 0 while reading the magic", false},
    {"three_bytes", b_short, 3, FMT, "truncated: file ends at byte 3 while reading the magic", false},
    {"header_only_counts_cut", b_short, 20, FMT, "truncated: file ends at byte 20 while reading header.kv_count", true},
    {"cut_in_tensor_offset", b_cut_field, 0, FMT, "while reading offset of tensor 'q'", true},
    {"cut_in_string_element", b_cut_field, 1, FMT, "element 1 of key 'a.str': string length 2", false},
    {"cut_in_nested_header", b_cut_field, 2, FMT, "needs at least 12 bytes per element", false},
    {"key_len_past_eof", b_strlen, 0, FMT, "metadata key 1: string length 1000", false},
    {"key_len_max", b_strlen, 1, FMT, "string length 18446744073709551615 at offset", false},
    {"string_value_len_past_eof", b_strlen, 2, FMT, "the string value of key 'k': string length 1099511627776", false},
    {"tensor_name_len_past_eof", b_strlen, 3, FMT, "tensor name 0: string length 500", false},
    {"string_element_past_eof", b_strlen, 4, FMT, "element 1 of key 'k': string length 500", false},
    {"array_count_u8_max", b_arrcount, 0, FMT, "array of 18446744073709551615 u8 needs at least 1 bytes", false},
    {"array_count_strings", b_arrcount, 1, FMT, "array of 2305843009213693952 string needs at least 8", false},
    {"array_count_nested", b_arrcount, 2, FMT, "array of 4611686018427387904 array needs at least 12", false},
    {"array_count_u64_wraps", b_arrcount, 3, FMT, "array of 2305843009213693952 u64", false},
    {"array_count_f32_short", b_arrcount, 4, FMT, "only 16 bytes remain", false},
    {"value_type_13", b_vtype, 0, FMT, "key 'k': value type 13 is not a GGUF value type", false},
    {"value_type_max", b_vtype, 1, FMT, "value type 4294967295 is not", false},
    {"array_elem_type_13", b_vtype, 2, FMT, "array element type 13 is not a GGUF value type", false},
    {"offset_near_u64_max", b_offset, UINT64_MAX - 31, FMT, "run past the end of the file", true},
    {"offset_2_63", b_offset, 1ull << 63, FMT, "32 bytes at data offset 9223372036854775808 run past the end", false},
    {"offset_misaligned", b_offset, 4, FMT, "data offset 4 is not a multiple of the alignment 32", true},
    {"offset_misaligned_64", b_misaligned64, 32, FMT, "data offset 32 is not a multiple of the alignment 64", false},
    {"duplicate_tensor", b_dup_tensor, 0, FMT, "duplicate tensor name 'w'", true},
    {"duplicate_tensor_apart", b_dup_tensor, 1, FMT, "duplicate tensor name 'a'", false},
    {"duplicate_key", b_dup_key, 0, FMT, "duplicate metadata key 'general.architecture'", false},
    {"duplicate_key_other_type", b_dup_key, 1, FMT, "duplicate metadata key 'k'", false},
    {"elements_2_64", b_shape, 0, FMT, "tensor 'w': element count overflows (ne[1] = 4294967296)", true},
    {"ne0_above_int64", b_shape, 1, FMT, "element count overflows (ne[0] = 9223372036854775808)", false},
    {"elements_4d_wrap", b_shape, 2, FMT, "element count overflows (ne[3] = 65536)", false},
    {"elements_2_63", b_shape, 3, FMT, "element count overflows (ne[1] = 2147483648)", false},
    {"bytes_overflow", b_shape, 4, FMT, "tensor 'w': byte size overflows", false},
    {"ne0_not_block_q4_0", b_shape, 5, FMT, "ne[0] = 33 is not a multiple of the Q4_0 block size 32", false},
    {"ne0_not_block_q4_k", b_shape, 6, FMT, "ne[0] = 128 is not a multiple of the Q4_K block size 256", false},
    {"scalar_of_block_type", b_shape, 7, FMT, "ne[0] = 1 is not a multiple", false},
    {"tensor_type_4", b_shape, 8, FMT, "tensor 'w': unknown tensor type id 4", false},
    {"tensor_type_42", b_shape, 9, FMT, "unknown tensor type id 42", false},
    {"tensor_type_max", b_shape, 10, FMT, "unknown tensor type id 4294967295", false},
    {"n_dims_5", b_ndims, 5, FMT, "tensor 'w': n_dims is 5 (at most 4)", false},
    {"n_dims_max", b_ndims, UINT32_MAX, FMT, "n_dims is 4294967295", false},
    {"data_past_eof", b_data_short, 4, FMT, "tensor 'w': its 32 bytes at data offset 0 run past the end of the file (the data section has 28 bytes)", true},
    {"data_missing", b_data_short, 32, FMT, "(the data section has 0 bytes)", false},
    {"data_section_past_eof", b_data_start, 4096, FMT, "the data section would start at byte 4096, past the end", false},
    {"alignment_0", b_alignment, 0, FMT, "general.alignment is 0 (must be a power of two)", false},
    {"alignment_3", b_alignment, 1, FMT, "general.alignment is 3", false},
    {"alignment_96", b_alignment, 2, FMT, "general.alignment is 96", false},
    {"alignment_u64", b_alignment, 3, FMT, "general.alignment has type u64 (must be u32)", false},
    {"alignment_string", b_alignment, 4, FMT, "general.alignment has type string", false},
    {"alignment_i32", b_alignment, 5, FMT, "general.alignment has type i32", false},
    {"bool_2", b_bool, 0, FMT, "key 'flag': bool with value 2 (must be 0 or 1)", false},
    {"bool_255", b_bool, 1, FMT, "bool with value 255", false},
    {"bool_array_7", b_bool, 2, FMT, "key 'flag': element 2 is a bool with value 7", false},
    {"key_empty", b_key, 0, FMT, "metadata key 1 is empty", false},
    {"key_with_nul", b_key, 1, FMT, "metadata key 1 contains a NUL byte", false},
    {"key_only_nul", b_key, 2, FMT, "metadata key 1 contains a NUL", false},
    {"tensor_name_empty", b_tname, 0, FMT, "tensor name 0 is empty", false},
    {"tensor_name_with_nul", b_tname, 1, FMT, "tensor name 0 contains a NUL byte", false},
    {"nested_9_deep", b_nest, 9, FMT, "key 'deep': arrays nested deeper than 8", false},
    {"nested_100_deep", b_nest, 100, FMT, "arrays nested deeper than 8", false},
};
#define N_CASES (sizeof cases / sizeof *cases)

/* Opens an exact-size copy (so ASan catches any read past the end) and checks
 * it is refused with `status` and a message containing `expect`. */
static void expect_refused(const char *what, const uint8_t *buf, size_t n, kg_status status, const char *expect)
{
    uint8_t *copy = malloc(n ? n : 1);
    KT_REQUIRE(copy);
    if (n) memcpy(copy, buf, n);
    kg_gguf *g = (kg_gguf *)1;
    kg_status st = kg_gguf_open_memory(copy, n, what, &g);
    const char *msg = kg_last_error();
    KT_CHECKF(st == status, "%s: status %s, expected %s (%s)", what, kg_status_name(st), kg_status_name(status), msg);
    KT_CHECKF(strstr(msg, expect) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg, expect);
    KT_CHECKF(strncmp(msg, what, strlen(what)) == 0, "%s: message \"%s\" does not start with the name", what, msg);
    KT_CHECKF(g == NULL, "%s: *out not NULL on failure", what);
    if (st == KG_OK) kg_gguf_close(g);
    free(copy);
    tw_export(buf, n, "malformed");
}

KT_TEST(malformed_corpus)
{
    KT_CHECKF(N_CASES >= 30, "only %zu cases", N_CASES);
    for (size_t i = 0; i < N_CASES; i++) {
        tw w;
        tw_init(&w);
        cases[i].build(&w, cases[i].arg);
        expect_refused(cases[i].name, w.buf, w.len, cases[i].status, cases[i].expect);
        tw_free(&w);
    }
}

/* ─────────────────────────── truncation ─────────────────────────── */

static uint64_t rd64(const tw *w, size_t off)
{
    uint64_t v;
    memcpy(&v, w->buf + off, 8);
    return v;
}

static uint32_t rd32(const tw *w, size_t off)
{
    uint32_t v;
    memcpy(&v, w->buf + off, 4);
    return v;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* What the reader must say when the valid file in w is cut to p bytes. The
 * format's own bounds come first: a count that cannot fit in what is left
 * (smallest kv 14 bytes, tensor info 25, array element by type) is refused
 * where the count is read; otherwise the message names the field that was
 * cut, by its kind. */
static void cut_expect(const tw *w, size_t p, char *exp, size_t cap)
{
    const tw_field *f = NULL;
    for (size_t i = 0; i < w->n_fields && w->fields[i].off <= p; i++) f = &w->fields[i];
    if (p < 4) { snprintf(exp, cap, "file ends at byte %zu while reading the magic", p); return; }
    if (p < 24) { snprintf(exp, cap, "file ends at byte %zu while reading %s", p, f->name); return; }
    uint64_t left = p - 24, nt = rd64(w, 8), nkv = rd64(w, 16);
    if (nkv > left / 14) { snprintf(exp, cap, "header.kv_count %" PRIu64 " is impossible", nkv); return; }
    if (nt > left / 25) { snprintf(exp, cap, "header.tensor_count %" PRIu64 " is impossible", nt); return; }
    for (size_t i = 0; i < w->n_fields && w->fields[i].off + 8 <= p; i++) {
        const tw_field *a = &w->fields[i];
        if (!ends_with(a->name, ".count")) continue;
        char pre[96];
        snprintf(pre, sizeof pre, "%.*s[", (int)(strlen(a->name) - 6), a->name);
        size_t end = w->len;
        for (size_t j = i + 1; j < w->n_fields; j++)
            if (strncmp(w->fields[j].name, pre, strlen(pre))) { end = w->fields[j].off; break; }
        if (p >= end) continue; /* the whole array is there */
        uint32_t et = rd32(w, a->off - 4);
        uint64_t n = rd64(w, a->off), min = et == KG_V_STRING ? 8 : et == KG_V_ARRAY ? 12 : tw_vsize(et);
        if (n > (p - a->off - 8) / min) {
            snprintf(exp, cap, "array of %" PRIu64 " %s needs at least", n, kg_vtype_name(et));
            return;
        }
    }
    if (ends_with(f->name, ".bytes")) snprintf(exp, cap, "runs past the end of the file");
    else if (!strcmp(f->name, "padding")) snprintf(exp, cap, "the data section would start at byte");
    else if (ends_with(f->name, ".data") || !strncmp(f->name, "data.", 5))
        snprintf(exp, cap, "run past the end of the file (the data section has %zu bytes)", p - w->data_start);
    else snprintf(exp, cap, "truncated: file ends at byte %zu while reading", p);
}

KT_TEST(malformed_truncated_everywhere)
{
    for (uint32_t version = 2; version <= 3; version++) {
        tw w;
        tw_init(&w);
        b_valid(&w, version);
        kg_gguf *g;
        KT_REQUIRE(kg_gguf_open_memory(w.buf, w.len, "valid", &g) == KG_OK);
        KT_CHECK(kg_gguf_n_kv(g) == 5 && kg_gguf_n_tensors(g) == 2);
        kg_gguf_close(g);
        tw_export(w.buf, w.len, "valid");
        size_t cuts = 0;
        for (size_t i = 0; i < w.n_fields; i++) {
            for (size_t back = 0; back <= 1; back++) {
                size_t p = w.fields[i].off - back;
                if (w.fields[i].off < back || (i && back && w.fields[i - 1].off == p)) continue;
                char what[160], exp[200];
                snprintf(what, sizeof what, "cut-v%u-at-%zu(%s%s)", version, p, back ? "1 byte before " : "",
                         w.fields[i].name);
                cut_expect(&w, p, exp, sizeof exp);
                expect_refused(what, w.buf, p, KG_ERR_FORMAT, exp);
                cuts++;
            }
        }
        /* one byte short of the whole file */
        char exp[200];
        cut_expect(&w, w.len - 1, exp, sizeof exp);
        expect_refused("cut-last-byte", w.buf, w.len - 1, KG_ERR_FORMAT, exp);
        KT_CHECKF(cuts > 2 * 40, "only %zu cuts", cuts);
        tw_free(&w);
    }
}

/* ─────────────────────────── the CLI ─────────────────────────── */

static int run_inspect(const char *path, char *out, size_t out_cap, char *err, size_t err_cap)
{
    char *argv[] = {(char *)kt_kgen_bin(), "inspect", (char *)path, NULL};
    if (!path) argv[2] = NULL;
    return kt_run(argv, out, out_cap, err, err_cap);
}

static void cli_refuses(const char *path, const char *expect)
{
    char out[4096], err[4096];
    int rc = run_inspect(path, out, sizeof out, err, sizeof err);
    KT_CHECKF(rc == 1, "kgen inspect %s: exit status %d, expected 1 (stderr: %s)", path, rc, err);
    KT_CHECKF(strstr(err, path) != NULL, "kgen inspect %s: stderr lacks the path: %s", path, err);
    KT_CHECKF(strstr(err, expect) != NULL, "kgen inspect %s: stderr lacks \"%s\": %s", path, expect, err);
    KT_CHECKF(out[0] == 0, "kgen inspect %s: stdout not empty: %.200s", path, out);
}

KT_TEST(malformed_cli)
{
    struct stat sb;
    if (stat(kt_kgen_bin(), &sb) != 0)
        KT_SKIP("no kgen binary at %s (set KGEN_BIN)", kt_kgen_bin());
    size_t n = 0;
    for (size_t i = 0; i < N_CASES; i++) {
        if (!cases[i].cli) continue;
        tw w;
        char name[96], path[512];
        tw_init(&w);
        cases[i].build(&w, cases[i].arg);
        snprintf(name, sizeof name, "bad-%s.gguf", cases[i].name);
        if (tw_tmpfile(&w, name, path, sizeof path)) cli_refuses(path, cases[i].expect);
        else KT_CHECKF(0, "cannot write %s", name);
        tw_free(&w);
        n++;
    }
    KT_CHECKF(n >= 8, "only %zu CLI cases", n);

    char path[512], out[4096], err[4096];
    tw w;
    tw_init(&w);
    KT_REQUIRE(tw_tmpfile(&w, "empty.gguf", path, sizeof path));
    cli_refuses(path, "empty file");
    snprintf(path, sizeof path, "%s/does-not-exist.gguf", kt_tmpdir());
    cli_refuses(path, "cannot open: No such file or directory");
    cli_refuses(kt_tmpdir(), "not a Hugging Face model directory"); /* a directory: read as one, if it is */

    /* the valid base file inspects fine (the failures above are the file's) */
    b_valid(&w, 3);
    KT_REQUIRE(tw_tmpfile(&w, "valid.gguf", path, sizeof path));
    int rc = run_inspect(path, out, sizeof out, err, sizeof err);
    KT_CHECKF(rc == 0 && out[0] && !err[0], "kgen inspect valid.gguf: exit %d, stderr: %s", rc, err);
    tw_free(&w);

    rc = run_inspect(NULL, out, sizeof out, err, sizeof err);
    KT_CHECKF(rc == 2, "kgen inspect (no file): exit %d, expected 2", rc);
    KT_CHECKF(strstr(err, "usage") && !out[0], "kgen inspect (no file): stderr: %s", err);
}
