/*
 * tokdata.c — serializes a GGUF's tokenizer (byte-level BPE, or a
 * SentencePiece-style vocabulary) into the blob that runtime/model/tokenizer.c
 * (kgr_tok_init) reads inside a compiled model.
 *
 * Requires: a GGUF opened by kg_gguf_open (strings and arrays bounds-checked).
 * Reads these keys ("optional" ones have the default given):
 *
 *   tokenizer.ggml.model            string: "gpt2" (byte-level BPE) or "llama"
 *                                   (SentencePiece-style: scores, byte fallback, ▁)
 *   tokenizer.ggml.pre              string, optional ("default"); gpt2: one of
 *                                   the pre-tokenizers the runtime implements
 *                                   (llama: not used, as in llama.cpp)
 *   tokenizer.ggml.tokens           array of string, 1 .. 2^24 tokens
 *   tokenizer.ggml.token_type       array of integer, optional (all 1 = normal);
 *                                   one per token, each 0..255
 *   tokenizer.ggml.merges           gpt2: array of string "LEFT RIGHT" (a space
 *                                   at index >= 1 separates the two parts);
 *                                   llama: not used
 *   tokenizer.ggml.scores           llama: array of float32, optional (all 0),
 *                                   one per token, each finite
 *   tokenizer.ggml.add_space_prefix llama: bool, optional (true, as llama.cpp)
 *   tokenizer.ggml.{bos,eos,unknown,padding,eot}_token_id
 *                                   integer, optional (none; llama: bos 1,
 *                                   eos 2, unknown 0, as llama.cpp); < the token count
 *   tokenizer.ggml.add_bos_token    bool, optional (true for llama and for the
 *                                   Llama 3 pre-tokenizer, else false, as llama.cpp)
 *   tokenizer.chat_template         string, optional (none); replaced by the
 *                                   name chat_template when that is not NULL
 *
 * Every error names the file, the key and what is wrong.
 *
 * ── the blob (all integers little-endian) ──
 *
 *    offset  size  field
 *         0     8  magic "KGTOKEN2" (the last byte is the format version)
 *         8     4  u32 n_tokens   (1 .. KGT_MAX_TOKENS)
 *        12     4  u32 n_merges   (0 .. KGT_MAX_MERGES)
 *        16     4  i32 bos id     (-1: none; otherwise < n_tokens)
 *        20     4  i32 eos id
 *        24     4  i32 unk id
 *        28     4  i32 pad id
 *        32     4  i32 eot id
 *        36     4  u32 flags      (bit 0: add BOS; bit 1: SentencePiece-style
 *                                  vocabulary; bit 2: add a space prefix (only
 *                                  with bit 1); other bits 0)
 *        40     -  str pre-tokenizer name ("gpt2", "smollm", "llama-bpe", ...)
 *         -     -  str chat template: the GGUF's, or a template name (chatml,
 *                  llama3, gemma, phi3: --chat-template); length 0: none
 *         -     -  n_tokens x { u8 token type; str text }   (text as in GGUF:
 *                  byte-level mapped characters, e.g. "Ġthe", or "▁the")
 *         -     -  bit 1 only: n_tokens x f32 score (finite)
 *         -     -  n_merges x str merge ("Ġ t", as in GGUF; rank = index;
 *                  bit 1: n_merges is 0)
 *   the blob ends right after the last merge (trailing bytes are an error)
 *   (version 1 had no scores and flag bits 1, 2)
 *
 *   str = u32 length, then that many bytes (no NUL, any bytes)
 *
 * The reader must check every count, length and id against the blob's size:
 * it is untrusted input inside a model file.
 */
#include "chat_tmpl.h"
#include "gen.h"
#include "internal.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KGT_MAX_TOKENS (1u << 24)
#define KGT_MAX_MERGES (1u << 24)

/* Pre-tokenizers the runtime implements (runtime/model/tokenizer.c,
 * kgr_tok_init); tests/test_tokenizer.c checks that the two lists agree.
 * llama3: Llama 3's pre-tokenizer, whose add_bos_token default is true. */
static const struct { const char *name; bool llama3; } known_pre[] = {
    {"default", false},  {"gpt2", false},     {"gpt-2", false},    {"smollm", false},
    {"llama-bpe", true}, {"llama3", true},    {"llama-v3", true},  {"qwen2", false},
    {"deepseek-r1-qwen", false}};

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

/* tokenizer.ggml.scores: n floats, finite (scores[i] = 0 when absent) */
static kg_status scores_of(const kg_gguf *g, uint64_t n, float **out)
{
    const char *name = kg_gguf_name(g), *key = "tokenizer.ggml.scores";
    *out = calloc(n ? n : 1, sizeof **out);
    if (!*out) return kg_err(KG_ERR_NOMEM, "%s: out of memory for %" PRIu64 " scores", name, n);
    const kg_value *v = kg_gguf_find(g, key);
    if (!v) return KG_OK;
    kg_status s = KG_OK;
    if (v->type != KG_V_ARRAY || v->arr.type != KG_V_F32)
        s = kg_err(KG_ERR_FORMAT, "%s: metadata key '%s' has type %s%s%s (expected an array of float32)", name, key,
                   kg_vtype_name(v->type), v->type == KG_V_ARRAY ? " of " : "",
                   v->type == KG_V_ARRAY ? kg_vtype_name(v->arr.type) : "");
    else if (v->arr.n != n)
        s = kg_err(KG_ERR_FORMAT, "%s: metadata key '%s' has %" PRIu64 " entries, but there are %" PRIu64 " tokens",
                   name, key, v->arr.n, n);
    for (uint64_t i = 0; !s && i < n; i++) {
        kg_value e;
        if (!kg_value_elem(v, i, &e)) s = kg_err(KG_ERR_FORMAT, "%s: metadata key '%s': entry %" PRIu64 " unreadable", name, key, i);
        else if (!isfinite(e.f) || fabs(e.f) > FLT_MAX)
            s = kg_err(KG_ERR_FORMAT, "%s: metadata key '%s': entry %" PRIu64 " is not a finite number", name, key, i);
        else (*out)[i] = (float)e.f;
    }
    if (s) free(*out), *out = NULL;
    return s;
}

kg_status gen_tokdata(const kg_gguf *g, const char *chat_template, void **blob, size_t *size)
{
    *blob = NULL;
    *size = 0;
    const char *name = kg_gguf_name(g);
    char esc[128];
    if (chat_template && !gen_chat_template_known(chat_template))
        return kg_err(KG_ERR_ARG, "chat template \"%s\" is not one kgen knows (known: " GEN_CHAT_TEMPLATE_NAMES ")",
                      kg_escape(esc, sizeof esc, chat_template, strlen(chat_template), 64));

    /* model */
    kg_str model;
    kg_status s = kg_gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (s != KG_OK) return s;
    bool spm = kg_str_eq(model, "llama");
    if (!spm && !kg_str_eq(model, "gpt2"))
        return kg_err(KG_ERR_UNSUPPORTED,
                      "%s: metadata key 'tokenizer.ggml.model' is \"%s\": supported are \"gpt2\" (byte-level BPE) "
                      "and \"llama\" (SentencePiece-style)",
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
    if (!known && !spm)
        return kg_err(KG_ERR_UNSUPPORTED,
                      "%s: metadata key 'tokenizer.ggml.pre' is \"%s\": this pre-tokenizer is not supported "
                      "(supported: default, gpt2, smollm, llama-bpe, llama3, llama-v3, qwen2, deepseek-r1-qwen)",
                      name, kg_escape(esc, sizeof esc, pre.ptr, pre.len, 64));

    /* tokens, types, merges */
    const kg_value *tokens, *merges;
    if ((s = str_array(g, "tokenizer.ggml.tokens", true, &tokens)) != KG_OK) return s;
    if (!spm && (s = str_array(g, "tokenizer.ggml.merges", true, &merges)) != KG_OK) return s;
    uint64_t n_tok = tokens->arr.n, n_merge = spm ? 0 : merges->arr.n;
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
    static const int32_t spm_default[5] = {1, 2, 0, -1, -1}; /* llama.cpp's for "llama" vocabularies */
    for (int i = 0; spm && i < 5; i++)
        if (!kg_gguf_find(g, id_keys[i]) && (uint64_t)(int64_t)spm_default[i] < n_tok) ids[i] = spm_default[i];
    bool add_bos = llama3 || spm, add_space = spm;
    const kg_value *as = spm ? kg_gguf_find(g, "tokenizer.ggml.add_space_prefix") : NULL;
    if (as) {
        if (as->type != KG_V_BOOL)
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.add_space_prefix' has type %s (expected bool)",
                          name, kg_vtype_name(as->type));
        add_space = as->u != 0;
    }
    const kg_value *ab = kg_gguf_find(g, "tokenizer.ggml.add_bos_token");
    if (ab) {
        if (ab->type != KG_V_BOOL)
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.add_bos_token' has type %s (expected bool)",
                          name, kg_vtype_name(ab->type));
        add_bos = ab->u != 0;
    }
    kg_str tmpl = {"", 0};
    if (chat_template) {
        tmpl = (kg_str){chat_template, strlen(chat_template)};
    } else if (kg_gguf_find(g, "tokenizer.chat_template")) {
        s = kg_gguf_get_str(g, "tokenizer.chat_template", &tmpl);
        if (s != KG_OK) return s;
        if (tmpl.len > UINT32_MAX)
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.chat_template' is too long (%" PRIu64 " bytes)",
                          name, tmpl.len);
    }

    float *scores = NULL;
    if (spm && (s = scores_of(g, n_tok, &scores)) != KG_OK) return s;

    /* write */
    buf b = {0};
    put(&b, "KGTOKEN2", 8);
    put_u32(&b, (uint32_t)n_tok);
    put_u32(&b, (uint32_t)n_merge);
    for (int i = 0; i < 5; i++) put_u32(&b, (uint32_t)ids[i]);
    put_u32(&b, (add_bos ? 1u : 0u) | (spm ? 2u : 0u) | (spm && add_space ? 4u : 0u));
    put_str(&b, pre.ptr, (uint32_t)pre.len);
    put_str(&b, tmpl.ptr, (uint32_t)tmpl.len);
    for (uint64_t i = 0; i < n_tok; i++) {
        kg_str t = tokens->arr.strs[i];
        int64_t type = 1;
        if (types) {
            kg_value e;
            if (!kg_value_elem(types, i, &e)) { free(b.p); free(scores); return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.token_type': entry %" PRIu64 " unreadable", name, i); }
            type = types->arr.type == KG_V_U8 || types->arr.type == KG_V_U16 || types->arr.type == KG_V_U32 ||
                           types->arr.type == KG_V_U64
                       ? (e.u > 255 ? 256 : (int64_t)e.u)
                       : e.i;
        }
        if (type < 0 || type > 255) {
            free(b.p);
            free(scores);
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.token_type': entry %" PRIu64 " is %" PRId64 " (expected 0..255)",
                          name, i, type);
        }
        if (t.len > UINT32_MAX) {
            free(b.p);
            free(scores);
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.tokens': token %" PRIu64 " is too long", name, i);
        }
        uint8_t ty = (uint8_t)type;
        put(&b, &ty, 1);
        put_str(&b, t.ptr, (uint32_t)t.len);
    }
    for (uint64_t i = 0; spm && i < n_tok; i++) {
        uint32_t u;
        memcpy(&u, &scores[i], 4);
        put_u32(&b, u);
    }
    free(scores);
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
