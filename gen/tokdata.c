/*
 * tokdata.c — serializes a GGUF's tokenizer (byte-level BPE, a
 * SentencePiece-style vocabulary, or WordPiece) into the blob that
 * runtime/model/tokenizer.c (kgr_tok_init) reads inside a compiled model:
 * gen_tokdata reads the GGUF into a gen_tokdesc (gen.h), gen_tok_write checks
 * and writes it (gen/tokdata_hf.c is the other front: Hugging Face files).
 *
 * Requires: a GGUF opened by kg_gguf_open (strings and arrays bounds-checked).
 * Reads these keys ("optional" ones have the default given):
 *
 *   tokenizer.ggml.model            string: "gpt2" (byte-level BPE), "llama"
 *                                   (SentencePiece-style: scores, byte fallback, ▁)
 *                                   or "bert" (WordPiece, llama.cpp's convention:
 *                                   see "bert" below)
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
 * "bert": llama.cpp's converter (convert_hf_to_gguf.py, BertModel.set_vocab)
 * writes a WordPiece vocabulary in "phantom space" form: a continuation
 * token loses its "##" (##ing -> ing), a word-initial one gains U+2581
 * (the -> ▁the), control tokens ([CLS] ...) stay as they are (older
 * converters kept every "[...]" token). kgen turns them back: a control,
 * unknown or user-defined token, or one spelled "[...]", as is; "▁x" -> "x";
 * any other "x" -> "##x". Keys: tokenizer.ggml.{unknown,cls,seperator
 * (llama.cpp's spelling),padding,mask}_token_id (optional; absent: the token
 * spelled [UNK], [CLS], [SEP], [PAD], [MASK], if any; cls falls back to
 * bos_token_id, sep to eos_token_id); an unknown token is required.
 * tokenizer.ggml.add_bos_token (optional, true): add [CLS] and [SEP].
 * GGUF has no key for BERT's normalizer. llama.cpp's WPM tokenizer always
 * lowercases and decomposes (NFD) but keeps the marks NFD separates; kgen
 * uses BERT uncased's normalizer as Hugging Face runs it (lowercase,
 * strip_accents, handle_chinese_chars, clean_text all on), so text with
 * accents tokenizes as in HF rather than as in llama.cpp (a cased model's
 * GGUF is lowercased by both). The prefix is "##",
 * max_input_chars_per_word 100; max_length is ARCH.context_length (ARCH:
 * general.architecture; optional, 0 when absent or above 2^24).
 *
 * Every error names the file, the key and what is wrong.
 *
 * ── the blob (all integers little-endian) ──
 *
 *    offset  size  field
 *         0     8  magic "KGTOKEN2" or "KGTOKEN3" (the last byte is the format
 *                  version: 3 for WordPiece, 2 for the others, whose layout
 *                  did not change)
 *         8     4  u32 n_tokens   (1 .. KGT_MAX_TOKENS)
 *        12     4  u32 n_merges   (0 .. KGT_MAX_MERGES)
 *        16     4  i32 bos id     (-1: none; otherwise < n_tokens)
 *        20     4  i32 eos id
 *        24     4  i32 unk id
 *        28     4  i32 pad id
 *        32     4  i32 eot id
 *        36     4  u32 flags      (bit 0: add BOS (WordPiece: [CLS] and [SEP]);
 *                                  bit 1: SentencePiece-style vocabulary; bit 2:
 *                                  add a space prefix (only with bit 1); bit 3:
 *                                  WordPiece (version 3 exactly; not with bits
 *                                  1, 2); other bits 0)
 *        40     -  str pre-tokenizer name ("gpt2", "smollm", "llama-bpe", ...;
 *                  WordPiece: "bert")
 *         -     -  str chat template: the GGUF's, or a template name (chatml,
 *                  llama3, gemma, phi3: --chat-template); length 0: none
 *         -     -  n_tokens x { u8 token type; str text }   (text as in GGUF:
 *                  byte-level mapped characters, e.g. "Ġthe", or "▁the")
 *         -     -  bit 1 only: n_tokens x f32 score (finite)
 *         -     -  n_merges x str merge ("Ġ t", as in GGUF; rank = index;
 *                  bit 1 or 3: n_merges is 0)
 *         -     -  bit 3 only, WordPiece settings:
 *                    u32 flags (bit 0 lowercase, 1 strip_accents, 2
 *                        handle_chinese_chars, 3 clean_text; others 0)
 *                    u32 max_input_chars_per_word (1..4096)
 *                    u32 max_length (tokenizer.json's truncation.max_length:
 *                        the caller truncates; 0: none given; <= 2^24)
 *                    i32 cls, sep, mask ids (-1: none; cls and sep required
 *                        with flag bit 0); the unk id (above) is required
 *                    str continuing-subword prefix ("##"; at most 16 bytes)
 *                  (WordPiece token texts are Hugging Face's: "the", "##ing")
 *   the blob ends right after the last merge, or the WordPiece settings
 *   (trailing bytes are an error)
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

kg_status gen_tokdata_check_template(const char *chat_template)
{
    char esc[128];
    if (chat_template && !gen_chat_template_known(chat_template))
        return kg_err(KG_ERR_ARG, "chat template \"%s\" is not one kgen knows (known: " GEN_CHAT_TEMPLATE_NAMES ")",
                      kg_escape(esc, sizeof esc, chat_template, strlen(chat_template), 64));
    return KG_OK;
}

/* The token types as bytes (all 1 without the key). */
static kg_status types_of(const kg_gguf *g, const kg_value *types, uint64_t n_tok, uint8_t **out)
{
    const char *name = kg_gguf_name(g);
    *out = malloc(n_tok ? n_tok : 1);
    if (!*out) return kg_err(KG_ERR_NOMEM, "%s: out of memory for %" PRIu64 " token types", name, n_tok);
    for (uint64_t i = 0; i < n_tok; i++) {
        int64_t type = 1;
        if (types) {
            kg_value e;
            if (!kg_value_elem(types, i, &e)) {
                free(*out), *out = NULL;
                return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.token_type': entry %" PRIu64 " unreadable", name, i);
            }
            type = types->arr.type == KG_V_U8 || types->arr.type == KG_V_U16 || types->arr.type == KG_V_U32 ||
                           types->arr.type == KG_V_U64
                       ? (e.u > 255 ? 256 : (int64_t)e.u)
                       : e.i;
        }
        if (type < 0 || type > 255) {
            free(*out), *out = NULL;
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.token_type': entry %" PRIu64 " is %" PRId64 " (expected 0..255)",
                          name, i, type);
        }
        (*out)[i] = (uint8_t)type;
    }
    return KG_OK;
}

static int32_t find_text(const kg_str *tok, uint32_t n, const char *text)
{
    size_t len = strlen(text);
    for (uint32_t i = 0; i < n; i++)
        if (tok[i].len == len && memcmp(tok[i].ptr, text, len) == 0) return (int32_t)i;
    return -1;
}

/* "bert": the phantom-space spellings back to Hugging Face's (the header says how);
 * the new texts in one buffer, *texts (freed by the caller with *store). */
static kg_status bert_tokens(const kg_gguf *g, const kg_value *tokens, const uint8_t *type, kg_str **texts, char **store)
{
    uint64_t n = tokens->arr.n, bytes = 0;
    for (uint64_t i = 0; i < n; i++) bytes += tokens->arr.strs[i].len + 2;
    *texts = malloc(n * sizeof **texts);
    *store = malloc(bytes ? bytes : 1);
    if (!*texts || !*store) return kg_err(KG_ERR_NOMEM, "%s: out of memory for %" PRIu64 " tokens", kg_gguf_name(g), n);
    char *o = *store;
    for (uint64_t i = 0; i < n; i++) {
        kg_str t = tokens->arr.strs[i];
        const char *p = t.ptr;
        uint64_t len = t.len;
        bool as_is = type[i] == 3 || type[i] == 2 || type[i] == 4 || (len >= 2 && p[0] == '[' && p[len - 1] == ']');
        (*texts)[i].ptr = o;
        if (!as_is && len >= 3 && memcmp(p, "\xe2\x96\x81", 3) == 0) {
            p += 3, len -= 3;
        } else if (!as_is) {
            memcpy(o, "##", 2), o += 2;
        }
        memcpy(o, p, len);
        o += len;
        (*texts)[i].len = (uint64_t)(o - (*texts)[i].ptr);
    }
    return KG_OK;
}

kg_status gen_tokdata(const kg_gguf *g, const char *chat_template, void **blob, size_t *size)
{
    *blob = NULL;
    *size = 0;
    const char *name = kg_gguf_name(g);
    char esc[128];
    kg_status s = gen_tokdata_check_template(chat_template);
    if (s != KG_OK) return s;

    /* model */
    kg_str model;
    s = kg_gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (s != KG_OK) return s;
    bool spm = kg_str_eq(model, "llama"), wpm = kg_str_eq(model, "bert");
    if (!spm && !wpm && !kg_str_eq(model, "gpt2"))
        return kg_err(KG_ERR_UNSUPPORTED,
                      "%s: metadata key 'tokenizer.ggml.model' is \"%s\": supported are \"gpt2\" (byte-level BPE), "
                      "\"llama\" (SentencePiece-style) and \"bert\" (WordPiece)",
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
    if (!known && !spm && !wpm)
        return kg_err(KG_ERR_UNSUPPORTED,
                      "%s: metadata key 'tokenizer.ggml.pre' is \"%s\": this pre-tokenizer is not supported "
                      "(supported: default, gpt2, smollm, llama-bpe, llama3, llama-v3, qwen2, deepseek-r1-qwen)",
                      name, kg_escape(esc, sizeof esc, pre.ptr, pre.len, 64));
    if (wpm) pre = (kg_str){"bert", 4}, llama3 = false; /* (BERT's pre-tokenizer, whatever the GGUF names) */

    /* tokens, types, merges */
    const kg_value *tokens, *merges;
    if ((s = str_array(g, "tokenizer.ggml.tokens", true, &tokens)) != KG_OK) return s;
    if (!spm && !wpm && (s = str_array(g, "tokenizer.ggml.merges", true, &merges)) != KG_OK) return s;
    uint64_t n_tok = tokens->arr.n, n_merge = spm || wpm ? 0 : merges->arr.n;
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
    bool add_bos = llama3 || spm || wpm, add_space = spm;
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
    int32_t wids[3] = {-1, -1, -1}; /* WordPiece cls, sep, mask */
    static const char *const wid_keys[3] = {"tokenizer.ggml.cls_token_id", "tokenizer.ggml.seperator_token_id",
                                            "tokenizer.ggml.mask_token_id"};
    for (int i = 0; wpm && i < 3; i++)
        if ((s = token_id(g, wid_keys[i], n_tok, &wids[i])) != KG_OK) return s;
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

    for (uint64_t i = 0; i < n_merge; i++) {
        kg_str m = merges->arr.strs[i];
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
        if (!sp || m.len > UINT32_MAX || (uint64_t)(sp - m.ptr) == m.len - 1)
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.merges': merge %" PRIu64 " is \"%s\", not \"LEFT RIGHT\"",
                          name, i, kg_escape(esc, sizeof esc, m.ptr, m.len, 64));
    }
    for (uint64_t i = 0; i < n_tok; i++)
        if (tokens->arr.strs[i].len > UINT32_MAX)
            return kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.tokens': token %" PRIu64 " is too long", name, i);
    float *scores = NULL;
    uint8_t *type = NULL;
    kg_str *texts = NULL;
    char *store = NULL;
    if (spm && (s = scores_of(g, n_tok, &scores)) != KG_OK) return s;
    if ((s = types_of(g, types, n_tok, &type)) != KG_OK) goto done;
    gen_tokdesc d = {.n_tok = (uint32_t)n_tok, .n_merge = (uint32_t)n_merge, .tok = tokens->arr.strs, .type = type,
                     .score = scores, .merge = n_merge ? merges->arr.strs : NULL, .bos = ids[0], .eos = ids[1],
                     .unk = ids[2], .pad = ids[3], .eot = ids[4], .add_bos = add_bos, .spm = spm,
                     .add_space = spm && add_space, .wpm = wpm, .pre = pre, .tmpl = tmpl};
    if (wpm) {
        if ((s = bert_tokens(g, tokens, type, &texts, &store)) != KG_OK) goto done;
        d.tok = texts;
        static const char *const deflt[5] = {"[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]"};
        int32_t *slot[5] = {&wids[0], &wids[1], &wids[2], &d.unk, &d.pad};
        for (int i = 0; i < 5; i++)
            if (*slot[i] < 0) *slot[i] = find_text(texts, d.n_tok, deflt[i]);
        if (wids[0] < 0) wids[0] = ids[0];
        if (wids[1] < 0) wids[1] = ids[1];
        d.cls = wids[0], d.sep = wids[1], d.mask = wids[2];
        d.bos = d.cls, d.eos = d.sep, d.eot = -1;
        if (d.unk < 0) {
            s = kg_err(KG_ERR_UNSUPPORTED, "%s: metadata key 'tokenizer.ggml.model' is \"bert\", but there is no "
                                           "unknown token ('tokenizer.ggml.unknown_token_id' is missing, no token is "
                                           "[UNK]): WordPiece without one is not supported", name);
            goto done;
        }
        if (add_bos && (d.cls < 0 || d.sep < 0)) {
            s = kg_err(KG_ERR_FORMAT, "%s: metadata key 'tokenizer.ggml.%s' is missing and no token is %s "
                                      "(tokenizer.ggml.add_bos_token: [CLS] and [SEP] are added)",
                       name, d.cls < 0 ? "cls_token_id" : "seperator_token_id", d.cls < 0 ? "[CLS]" : "[SEP]");
            goto done;
        }
        d.lowercase = d.strip_accents = d.chinese = d.clean = true;
        d.max_chars = 100;
        kg_str arch;
        char key[160];
        uint64_t ctx;
        if (kg_gguf_find(g, "general.architecture") && kg_gguf_get_str(g, "general.architecture", &arch) == KG_OK &&
            arch.len < 100) {
            snprintf(key, sizeof key, "%.*s.context_length", (int)arch.len, arch.ptr);
            if (kg_gguf_find(g, key)) {
                if ((s = kg_gguf_get_u64(g, key, &ctx)) != KG_OK) goto done;
                d.max_length = ctx <= (1u << 24) ? (uint32_t)ctx : 0;
            }
        }
        d.prefix = (kg_str){"##", 2};
    }
    s = gen_tok_write(name, &d, blob, size);
done:
    free(scores);
    free(type);
    free(texts);
    free(store);
    return s;
}

kg_status gen_tok_write(const char *name, const gen_tokdesc *d, void **blob, size_t *size)
{
    char esc[128];
    *blob = NULL;
    *size = 0;
    if (d->n_tok == 0 || d->n_tok > KGT_MAX_TOKENS)
        return kg_err(KG_ERR_FORMAT, "%s: %u tokens (expected 1..%u)", name, d->n_tok, KGT_MAX_TOKENS);
    if (d->n_merge > KGT_MAX_MERGES || ((d->spm || d->wpm) && d->n_merge))
        return kg_err(KG_ERR_FORMAT, "%s: %u merges (at most %u; none for SentencePiece or WordPiece)", name,
                      d->n_merge, KGT_MAX_MERGES);
    const int32_t ids[8] = {d->bos, d->eos, d->unk, d->pad, d->eot, d->cls, d->sep, d->mask};
    for (int i = 0; i < 8; i++)
        if (ids[i] < -1 || ids[i] >= (int64_t)d->n_tok)
            return kg_err(KG_ERR_FORMAT, "%s: special token id %d is not a token id (%u tokens)", name, ids[i], d->n_tok);
    if (d->pre.len > UINT32_MAX || d->tmpl.len > UINT32_MAX || d->prefix.len > 16)
        return kg_err(KG_ERR_FORMAT, "%s: a pre-tokenizer name, chat template or continuing prefix too long", name);
    if (d->wpm && (d->unk < 0 || d->max_chars == 0 || d->max_chars > 4096 || d->max_length > (1u << 24)))
        return kg_err(KG_ERR_FORMAT, "%s: WordPiece needs an unknown token, max_input_chars_per_word 1..4096 (%u) "
                      "and a max_length <= 2^24 (%u)", name, d->max_chars, d->max_length);
    buf b = {0};
    put(&b, d->wpm ? "KGTOKEN3" : "KGTOKEN2", 8);
    put_u32(&b, d->n_tok);
    put_u32(&b, d->n_merge);
    for (int i = 0; i < 5; i++) put_u32(&b, (uint32_t)ids[i]);
    put_u32(&b, (d->add_bos ? 1u : 0u) | (d->spm ? 2u : 0u) | (d->spm && d->add_space ? 4u : 0u) | (d->wpm ? 8u : 0u));
    put_str(&b, d->pre.ptr, (uint32_t)d->pre.len);
    put_str(&b, d->tmpl.ptr, (uint32_t)d->tmpl.len);
    for (uint32_t i = 0; i < d->n_tok; i++) {
        kg_str t = d->tok[i];
        if (t.len > UINT32_MAX) {
            free(b.p);
            return kg_err(KG_ERR_FORMAT, "%s: token %u is too long", name, i);
        }
        put(&b, &d->type[i], 1);
        put_str(&b, t.ptr, (uint32_t)t.len);
    }
    for (uint32_t i = 0; d->spm && i < d->n_tok; i++) {
        uint32_t u;
        memcpy(&u, &d->score[i], 4);
        put_u32(&b, u);
    }
    for (uint32_t i = 0; i < d->n_merge; i++) {
        kg_str m = d->merge[i];
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
        if (!sp || m.len > UINT32_MAX || (uint64_t)(sp - m.ptr) == m.len - 1) {
            free(b.p);
            return kg_err(KG_ERR_FORMAT, "%s: merge %u is \"%s\", not \"LEFT RIGHT\"", name, i,
                          kg_escape(esc, sizeof esc, m.ptr, m.len, 64));
        }
        put_str(&b, m.ptr, (uint32_t)m.len);
    }
    if (d->wpm) {
        put_u32(&b, (d->lowercase ? 1u : 0u) | (d->strip_accents ? 2u : 0u) | (d->chinese ? 4u : 0u) | (d->clean ? 8u : 0u));
        put_u32(&b, d->max_chars);
        put_u32(&b, d->max_length);
        for (int i = 5; i < 8; i++) put_u32(&b, (uint32_t)ids[i]);
        put_str(&b, d->prefix.ptr, (uint32_t)d->prefix.len);
    }
    if (b.oom) {
        free(b.p);
        return kg_err(KG_ERR_NOMEM, "%s: out of memory serializing the tokenizer", name);
    }
    *blob = b.p;
    *size = b.len;
    return KG_OK;
}
