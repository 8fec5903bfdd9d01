/*
 * tokdata.c — serializes a GGUF's byte-level BPE tokenizer into the blob that
 * runtime/model/tokenizer.c (kgr_tok_init) reads inside a compiled model.
 *
 * Requires: a GGUF opened by kg_gguf_open (strings and arrays bounds-checked).
 * Reads these keys ("optional" ones have the default given):
 *
 *   tokenizer.ggml.model            string, must be "gpt2" (byte-level BPE)
 *   tokenizer.ggml.pre              string, optional ("default"); one of the
 *                                   pre-tokenizers the runtime implements
 *   tokenizer.ggml.tokens           array of string, 1 .. 2^24 tokens
 *   tokenizer.ggml.token_type       array of integer, optional (all 1 = normal);
 *                                   one per token, each 0..255
 *   tokenizer.ggml.merges           array of string "LEFT RIGHT" (a space at
 *                                   index >= 1 separates the two parts)
 *   tokenizer.ggml.{bos,eos,unknown,padding,eot}_token_id
 *                                   integer, optional (none); < the token count
 *   tokenizer.ggml.add_bos_token    bool, optional (true for the Llama 3
 *                                   pre-tokenizer, else false, as llama.cpp)
 *   tokenizer.chat_template         string, optional (none)
 *
 * Every error names the file, the key and what is wrong.
 *
 * ── the blob (all integers little-endian) ──
 *
 *    offset  size  field
 *         0     8  magic "KGTOKEN1" (the last byte is the format version)
 *         8     4  u32 n_tokens   (1 .. KGT_MAX_TOKENS)
 *        12     4  u32 n_merges   (0 .. KGT_MAX_MERGES)
 *        16     4  i32 bos id     (-1: none; otherwise < n_tokens)
 *        20     4  i32 eos id
 *        24     4  i32 unk id
 *        28     4  i32 pad id
 *        32     4  i32 eot id
 *        36     4  u32 flags      (bit 0: add BOS; other bits 0)
 *        40     -  str pre-tokenizer name ("gpt2", "smollm", "llama-bpe", ...)
 *         -     -  str chat template (length 0: none)
 *         -     -  n_tokens x { u8 token type; str text }   (text as in GGUF:
 *                  byte-level mapped characters, e.g. "Ġthe")
 *         -     -  n_merges x str merge ("Ġ t", as in GGUF; rank = index)
 *   the blob ends right after the last merge (trailing bytes are an error)
 *
 *   str = u32 length, then that many bytes (no NUL, any bytes)
 *
 * The reader must check every count, length and id against the blob's size:
 * it is untrusted input inside a model file.
 */
#include "gen.h"
#include "internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define KGT_MAX_TOKENS (1u << 24)
#define KGT_MAX_MERGES (1u << 24)

/* Pre-tokenizers the runtime implements (runtime/model/tokenizer.c,
 * kgr_tok_init); tests/test_tokenizer.c checks that the two lists agree.
 * llama3: Llama 3's pre-tokenizer, whose add_bos_token default is true. */
static const struct { const char *name; bool llama3; } known_pre[] = {
    {"default", false}, {"gpt2", false}, {"gpt-2", false}, {"smollm", false}, {"llama-bpe", true}, {"llama3", true}, {"llama-v3", true}};

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} buf;

static void put(buf *b, const void *src, size_t n)
{
    if (b->oom) return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (n > cap - b->len) {
            if (cap > SIZE_MAX / 2) { b->oom = true; return; }
            cap *= 2;
        }
        uint8_t *q = realloc(b->p, cap);
        if (!q) { b->oom = true; return; }
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u32(buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void put_str(buf *b, const char *s, uint32_t len)
{
    put_u32(b, len);
    put(b, s, len);
}

/* An optional array of strings, or a required one (required: missing is an error). */
static kg_status str_array(const kg_gguf *g, const char *key, bool required, const kg_value **out)
{
    const kg_value *v = kg_gguf_find(g, key);
    *out = NULL;
    if (!v) {
        if (!required) return KG_OK;
        return kg_err(KG_ERR_NOTFOUND, "%s: metadata key '%s' is missing (a byte-level BPE tokenizer needs it)",
                      kg_gguf_name(g), key);
    }
    if (v->type != KG_V_ARRAY || v->arr.type != KG_V_STRING)
        return kg_err(KG_ERR_FORMAT, "%s: metadata key '%s' has type %s%s%s (expected an array of string)",
                      kg_gguf_name(g), key, kg_vtype_name(v->type), v->type == KG_V_ARRAY ? " of " : "",
                      v->type == KG_V_ARRAY ? kg_vtype_name(v->arr.type) : "");
    *out = v;
    return KG_OK;
}

/* An optional token id: *id = -1 when absent. */
static kg_status token_id(const kg_gguf *g, const char *key, uint64_t n_tokens, int32_t *id)
{
    *id = -1;
    if (!kg_gguf_find(g, key)) return KG_OK;
    uint64_t v;
    kg_status s = kg_gguf_get_u64(g, key, &v); /* names the key and the type */
    if (s != KG_OK) return s;
    if (v >= n_tokens)
        return kg_err(KG_ERR_FORMAT, "%s: metadata key '%s' is %" PRIu64 ", not a token id (there are %" PRIu64 " tokens)",
                      kg_gguf_name(g), key, v, n_tokens);
    *id = (int32_t)v;
    return KG_OK;
}

static bool is_int_type(kg_vtype t)
{
    return t == KG_V_U8 || t == KG_V_I8 || t == KG_V_U16 || t == KG_V_I16 || t == KG_V_U32 || t == KG_V_I32 ||
           t == KG_V_U64 || t == KG_V_I64;
}

kg_status gen_tokdata(const kg_gguf *g, const char *chat_template, void **blob, size_t *size)
{
    if (chat_template)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: chat template '%s': choosing a template is not implemented yet", kg_gguf_name(g),
                      chat_template);
    *blob = NULL;
    *size = 0;
    const char *name = kg_gguf_name(g);
    char esc[128];

    /* model */
    kg_str model;
    kg_status s = kg_gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (s != KG_OK) return s;
    if (!kg_str_eq(model, "gpt2"))
        return kg_err(KG_ERR_UNSUPPORTED,
                      "%s: metadata key 'tokenizer.ggml.model' is \"%s\": only \"gpt2\" (byte-level BPE) is supported",
                      name, kg_escape(esc, sizeof esc, model.ptr, model.len, 64));

    /* pre-tokenizer */
    kg_str pre = {"default", 7};
    if (kg_gguf_find(g, "tokenizer.ggml.pre")) {
        s = kg_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
        if (s != KG_OK) return s;
    }
    bool known = false, llama3 = false;
    for (size_t i = 0; i < sizeof known_pre / sizeof *known_pre; i++)
        if (kg_str_eq(pre, known_pre[i].name)) known = true, llama3 = known_pre[i].llama3;
    if (!known)
        return kg_err(KG_ERR_UNSUPPORTED,
                      "%s: metadata key 'tokenizer.ggml.pre' is \"%s\": this pre-tokenizer is not supported "
                      "(supported: default, gpt2, smollm, llama-bpe, llama3, llama-v3)",
                      name, kg_escape(esc, sizeof esc, pre.ptr, pre.len, 64));

    /* tokens, types, merges */
    const kg_value *tokens, *merges;
    if ((s = str_array(g, "tokenizer.ggml.tokens", true, &tokens)) != KG_OK) return s;
    if ((s = str_array(g, "tokenizer.ggml.merges", true, &merges)) != KG_OK) return s;
    uint64_t n_tok = tokens->arr.n, n_merge = merges->arr.n;
    if (n_tok == 0 || n_tok > KGT_MAX_TOKENS)
        return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.tokens' has %" PRIu64 " tokens (expected 1..%u)",
                      name, n_tok, KGT_MAX_TOKENS);
    if (n_merge > KGT_MAX_MERGES)
        return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.merges' has %" PRIu64 " merges (at most %u)",
                      name, n_merge, KGT_MAX_MERGES);
    const kg_value *types = kg_gguf_find(g, "tokenizer.ggml.token_type");
    if (types) {
        if (types->type != KG_V_ARRAY || !is_int_type(types->arr.type))
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.token_type' has type %s%s%s (expected an array of integer)",
                          name, kg_vtype_name(types->type), types->type == KG_V_ARRAY ? " of " : "",
                          types->type == KG_V_ARRAY ? kg_vtype_name(types->arr.type) : "");
        if (types->arr.n != n_tok)
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.token_type' has %" PRIu64 " entries, but there are %" PRIu64 " tokens",
                          name, types->arr.n, n_tok);
    }

    /* special ids and flags */
    static const char *const id_keys[5] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                           "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
                                           "tokenizer.ggml.eot_token_id"};
    int32_t ids[5];
    for (int i = 0; i < 5; i++)
        if ((s = token_id(g, id_keys[i], n_tok, &ids[i])) != KG_OK) return s;
    bool add_bos = llama3;
    const kg_value *ab = kg_gguf_find(g, "tokenizer.ggml.add_bos_token");
    if (ab) {
        if (ab->type != KG_V_BOOL)
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.add_bos_token' has type %s (expected bool)",
                          name, kg_vtype_name(ab->type));
        add_bos = ab->u != 0;
    }
    kg_str tmpl = {"", 0};
    if (kg_gguf_find(g, "tokenizer.chat_template")) {
        s = kg_gguf_get_str(g, "tokenizer.chat_template", &tmpl);
        if (s != KG_OK) return s;
        if (tmpl.len > UINT32_MAX)
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.chat_template' is too long (%" PRIu64 " bytes)",
                          name, tmpl.len);
    }

    /* write */
    buf b = {0};
    put(&b, "KGTOKEN1", 8);
    put_u32(&b, (uint32_t)n_tok);
    put_u32(&b, (uint32_t)n_merge);
    for (int i = 0; i < 5; i++) put_u32(&b, (uint32_t)ids[i]);
    put_u32(&b, add_bos ? 1u : 0u);
    put_str(&b, pre.ptr, (uint32_t)pre.len);
    put_str(&b, tmpl.ptr, (uint32_t)tmpl.len);
    for (uint64_t i = 0; i < n_tok; i++) {
        kg_str t = tokens->arr.strs[i];
        int64_t type = 1;
        if (types) {
            kg_value e;
            if (!kg_value_elem(types, i, &e)) { free(b.p); return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.token_type': entry %" PRIu64 " unreadable", name, i); }
            type = types->arr.type == KG_V_U8 || types->arr.type == KG_V_U16 || types->arr.type == KG_V_U32 ||
                           types->arr.type == KG_V_U64
                       ? (e.u > 255 ? 256 : (int64_t)e.u)
                       : e.i;
        }
        if (type < 0 || type > 255) {
            free(b.p);
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.token_type': entry %" PRIu64 " is %" PRId64 " (expected 0..255)",
                          name, i, type);
        }
        if (t.len > UINT32_MAX) {
            free(b.p);
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.tokens': token %" PRIu64 " is too long", name, i);
        }
        uint8_t ty = (uint8_t)type;
        put(&b, &ty, 1);
        put_str(&b, t.ptr, (uint32_t)t.len);
    }
    for (uint64_t i = 0; i < n_merge; i++) {
        kg_str m = merges->arr.strs[i];
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
        if (!sp || m.len > UINT32_MAX || (uint64_t)(sp - m.ptr) == m.len - 1) {
            free(b.p);
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.merges': merge %" PRIu64 " is \"%s\", not \"LEFT RIGHT\"",
                          name, i, kg_escape(esc, sizeof esc, m.ptr, m.len, 64));
        }
        put_str(&b, m.ptr, (uint32_t)m.len);
    }
    if (b.oom) {
        free(b.p);
        return kg_err(KG_ERR_NOMEM, "%s: out of memory serializing the tokenizer", name);
    }
    *blob = b.p;
    *size = b.len;
    return KG_OK;
}
