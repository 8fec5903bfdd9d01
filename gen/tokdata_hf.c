/*
 * tokdata_hf.c — the tokenizer blob (gen/tokdata.c: the format and the
 * writer, gen_tok_write) from a Hugging Face model directory, untrusted
 * input: every value is type- and range-checked, and every error names the
 * file and the key.
 *
 * DIR/tokenizer.json (Hugging Face `tokenizers`), read with jansson
 * (duplicate keys refused):
 *   model.type "WordPiece": model.vocab {text: id}, model.unk_token (in the
 *     vocabulary), model.continuing_subword_prefix ("##"; at most 16 bytes),
 *     model.max_input_chars_per_word (100; 1..4096);
 *     normalizer: BertNormalizer (clean_text, handle_chinese_chars: true;
 *     lowercase: true; strip_accents: null = lowercase) or null (all off);
 *     pre_tokenizer: BertPreTokenizer;
 *     post_processor: null (nothing added), TemplateProcessing whose single
 *     template is SpecialToken, Sequence A, SpecialToken ([CLS] $A [SEP]), or
 *     BertProcessing (cls, sep): either makes KGM_TOK_BOS add the two;
 *     truncation.max_length (the model's maximum, stored for the caller).
 *   model.type "BPE" (byte-level: Llama 3, Qwen2, SmolLM, GPT-2 style):
 *     model.vocab {text: id}, model.merges (strings "a b", or pairs
 *     ["a", "b"]); model.dropout null, no continuing_subword_prefix or
 *     end_of_word_suffix, no byte_fallback; normalizer null;
 *     pre_tokenizer one of what the runtime implements (tokenizer.c):
 *       ByteLevel (use_regex true)                            gpt2
 *       Sequence [Digits (individual_digits), ByteLevel]     smollm
 *       Sequence [Split (Llama 3's regex), ByteLevel (use_regex false)]
 *                                                             llama-bpe
 *       Sequence [Split (Qwen2's regex), ByteLevel (use_regex false)]
 *                                                             qwen2
 *     (Split: behavior Isolated, invert false; ByteLevel: add_prefix_space
 *     false); model.ignore_merges must be what the runtime does for that
 *     pre-tokenizer (true only for llama-bpe);
 *     post_processor: null, ByteLevel, or TemplateProcessing whose single
 *     template is [SpecialToken,] Sequence A (that token: BOS, added).
 *   added_tokens [{id, content, special}]: special ones are control tokens
 *     (matched with KGM_TOK_SPECIAL), others user-defined (always matched);
 *     an id already in the vocabulary must have the same text there. They
 *     are matched on the text as given: their normalized, lstrip, rstrip and
 *     single_word options are not read (HF matches a normalized one on the
 *     normalized text; BERT's and the byte-level models' are not normalized).
 *   Token ids: every id from 0 to the largest must have exactly one text.
 * Else DIR/vocab.txt: WordPiece, one token a line (id = line number, "\n"
 * and a "\r" before it removed), settings from tokenizer_config.json:
 * do_lower_case (true), strip_accents (null), tokenize_chinese_chars (true),
 * unk/cls/sep/pad/mask_token ("[UNK]" ...), model_max_length (< 2^24: the
 * maximum length); [CLS] and [SEP] added; clean_text on.
 * DIR/tokenizer_config.json (optional): bos_token, eos_token (a string or
 * {"content": string}), add_bos_token (BPE without a template), and
 * chat_template (a string), replaced by the chat_template argument when not
 * NULL (as gen_tokdata).
 */
#include "gen.h"
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HF_MAX_TOKENS (1u << 24)

typedef struct hf {
    const char *file; /* the file read, for messages */
    json_t *root;     /* tokenizer.json */
    json_t *cfg;      /* tokenizer_config.json, or NULL */
    char cfg_path[4200];
    uint32_t n_tok;
    kg_str *tok;      /* [n_tok]; ptr NULL: no token has that id yet */
    uint8_t *type;
    kg_str *merge;    /* [n_merge] */
    char *store;      /* merge texts built from pairs, vocab.txt's contents */
} hf;

static void hf_free(hf *h)
{
    json_decref(h->root);
    json_decref(h->cfg);
    free(h->tok);
    free(h->type);
    free(h->merge);
    free(h->store);
}

static bool file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static kg_status load_json(const char *path, json_t **out)
{
    json_error_t e;
    *out = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    if (!*out) return kg_err(KG_ERR_FORMAT, "%s: not valid JSON (line %d, column %d: %s)", path, e.line, e.column, e.text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return kg_err(KG_ERR_FORMAT, "%s: the top level is not an object", path);
    }
    return KG_OK;
}

/* A member that must be a string (*out NULL when absent or null and !required). */
static kg_status get_str(const char *file, const json_t *o, const char *key, const char *path, bool required, kg_str *out)
{
    const json_t *v = json_object_get(o, key);
    out->ptr = NULL, out->len = 0;
    if (!v || json_is_null(v)) {
        if (required) return kg_err(KG_ERR_FORMAT, "%s: %s is missing", file, path);
        return KG_OK;
    }
    if (!json_is_string(v)) return kg_err(KG_ERR_FORMAT, "%s: %s is %s (expected a string)", file, path, kg_json_kind(v));
    out->ptr = json_string_value(v), out->len = json_string_length(v);
    return KG_OK;
}

static kg_status get_bool(const char *file, const json_t *o, const char *key, const char *path, bool *out)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return KG_OK; /* the default stays */
    if (!json_is_boolean(v)) return kg_err(KG_ERR_FORMAT, "%s: %s is %s (expected true or false)", file, path, kg_json_kind(v));
    *out = json_is_true(v);
    return KG_OK;
}

static kg_status get_int(const char *file, const json_t *o, const char *key, const char *path, int64_t lo, int64_t hi,
                         int64_t *out)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return KG_OK;
    if (!json_is_integer(v)) return kg_err(KG_ERR_FORMAT, "%s: %s is %s (expected an integer)", file, path, kg_json_kind(v));
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return kg_err(KG_ERR_FORMAT, "%s: %s is %" PRId64 " (expected %" PRId64 "..%" PRId64 ")", file, path, (int64_t)x, lo, hi);
    *out = x;
    return KG_OK;
}

static bool str_is(kg_str s, const char *c) { return s.ptr && s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0; }

static const char *show(char *esc, size_t cap, kg_str s) { return kg_escape(esc, cap, s.ptr ? s.ptr : "", s.len, 48); }

/* The id of the token spelled s, or -1. */
static int32_t id_of(const hf *h, kg_str s)
{
    if (!s.ptr) return -1;
    for (uint32_t i = 0; i < h->n_tok; i++)
        if (h->tok[i].len == s.len && memcmp(h->tok[i].ptr, s.ptr, s.len) == 0) return (int32_t)i;
    return -1;
}

/* A token named in tokenizer_config.json: a string or {"content": string}. */
static kg_status cfg_token(hf *h, const char *key, kg_str *out)
{
    out->ptr = NULL, out->len = 0;
    if (!h->cfg) return KG_OK;
    const json_t *v = json_object_get(h->cfg, key);
    if (!v || json_is_null(v)) return KG_OK;
    if (json_is_object(v)) {
        char path[64];
        snprintf(path, sizeof path, "%s.content", key);
        return get_str(h->cfg_path, v, "content", path, true, out);
    }
    return get_str(h->cfg_path, h->cfg, key, key, false, out);
}

/* ───────────────────────── vocabulary ───────────────────────── */

/* model.vocab and added_tokens: texts by id, all ids 0..max present once. */
static kg_status read_vocab(hf *h, const json_t *model)
{
    const char *f = h->file;
    char esc[128];
    const json_t *vocab = json_object_get(model, "vocab"), *added = json_object_get(h->root, "added_tokens");
    if (!json_is_object(vocab))
        return kg_err(KG_ERR_FORMAT, "%s: model.vocab is %s (expected an object of token: id)", f, vocab ? kg_json_kind(vocab) : "missing");
    if (added && !json_is_null(added) && !json_is_array(added))
        return kg_err(KG_ERR_FORMAT, "%s: added_tokens is %s (expected an array)", f, kg_json_kind(added));
    size_t n_added = added ? json_array_size(added) : 0;
    int64_t max = -1;
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)vocab, key, klen, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= HF_MAX_TOKENS)
            return kg_err(KG_ERR_FORMAT, "%s: model.vocab[\"%s\"] is not a token id (an integer 0..%u)", f,
                          kg_escape(esc, sizeof esc, key, klen, 48), HF_MAX_TOKENS - 1);
        if (json_integer_value(v) > max) max = json_integer_value(v);
    }
    for (size_t i = 0; i < n_added; i++) {
        const json_t *a = json_array_get(added, i), *id = json_object_get(a, "id");
        if (!json_is_object(a) || !json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= HF_MAX_TOKENS)
            return kg_err(KG_ERR_FORMAT, "%s: added_tokens[%zu].id is not a token id (an integer 0..%u)", f, i, HF_MAX_TOKENS - 1);
        if (json_integer_value(id) > max) max = json_integer_value(id);
    }
    if (max < 0) return kg_err(KG_ERR_FORMAT, "%s: model.vocab is empty", f);
    if ((uint64_t)max >= json_object_size(vocab) + n_added) /* before allocating for max + 1 ids */
        return kg_err(KG_ERR_FORMAT, "%s: model.vocab: ids go up to %" PRId64 ", but there are only %zu tokens and %zu "
                                     "added tokens (ids must be 0..N-1, each once)", f, max, json_object_size(vocab), n_added);
    h->n_tok = (uint32_t)max + 1;
    h->tok = calloc(h->n_tok, sizeof *h->tok);
    h->type = malloc(h->n_tok);
    if (!h->tok || !h->type) return kg_err(KG_ERR_NOMEM, "%s: out of memory for %u tokens", f, h->n_tok);
    memset(h->type, 1, h->n_tok);
    json_object_keylen_foreach((json_t *)vocab, key, klen, v) {
        uint32_t id = (uint32_t)json_integer_value(v);
        if (h->tok[id].ptr)
            return kg_err(KG_ERR_FORMAT, "%s: model.vocab: id %u is both \"%s\" and another token", f, id,
                          kg_escape(esc, sizeof esc, key, klen, 48));
        h->tok[id] = (kg_str){key, klen};
    }
    for (size_t i = 0; i < n_added; i++) {
        const json_t *a = json_array_get(added, i);
        uint32_t id = (uint32_t)json_integer_value(json_object_get(a, "id"));
        char path[64];
        snprintf(path, sizeof path, "added_tokens[%zu].content", i);
        kg_str c;
        bool special = false;
        kg_status s = get_str(f, a, "content", path, true, &c);
        snprintf(path, sizeof path, "added_tokens[%zu].special", i);
        if (!s) s = get_bool(f, a, "special", path, &special);
        if (s) return s;
        if (c.len == 0) return kg_err(KG_ERR_FORMAT, "%s: added_tokens[%zu].content is empty", f, i);
        if (h->tok[id].ptr && (h->tok[id].len != c.len || memcmp(h->tok[id].ptr, c.ptr, c.len) != 0))
            return kg_err(KG_ERR_FORMAT, "%s: added_tokens[%zu]: id %u is \"%s\", but model.vocab has another text for it", f,
                          i, id, show(esc, sizeof esc, c));
        h->tok[id] = c;
        h->type[id] = special ? 3 : 4;
    }
    for (uint32_t i = 0; i < h->n_tok; i++)
        if (!h->tok[i].ptr)
            return kg_err(KG_ERR_FORMAT, "%s: model.vocab: no token has id %u (ids must be 0..%u, each once)", f, i, h->n_tok - 1);
    return KG_OK;
}

/* ───────────────────────── WordPiece ───────────────────────── */

static kg_status wp_normalizer(hf *h, gen_tokdesc *d)
{
    const char *f = h->file;
    const json_t *n = json_object_get(h->root, "normalizer");
    d->lowercase = d->strip_accents = d->chinese = d->clean = false;
    if (!n || json_is_null(n)) return KG_OK;
    kg_str type;
    if (!json_is_object(n)) return kg_err(KG_ERR_FORMAT, "%s: normalizer is %s (expected an object)", f, kg_json_kind(n));
    kg_status s = get_str(f, n, "type", "normalizer.type", true, &type);
    if (s) return s;
    char esc[128];
    if (!str_is(type, "BertNormalizer"))
        return kg_err(KG_ERR_UNSUPPORTED, "%s: normalizer.type \"%s\" is not supported with WordPiece (BertNormalizer, or null)",
                      f, show(esc, sizeof esc, type));
    d->clean = d->chinese = d->lowercase = true;
    if ((s = get_bool(f, n, "clean_text", "normalizer.clean_text", &d->clean)) ||
        (s = get_bool(f, n, "handle_chinese_chars", "normalizer.handle_chinese_chars", &d->chinese)) ||
        (s = get_bool(f, n, "lowercase", "normalizer.lowercase", &d->lowercase)))
        return s;
    d->strip_accents = d->lowercase; /* strip_accents null: follow lowercase */
    return get_bool(f, n, "strip_accents", "normalizer.strip_accents", &d->strip_accents);
}

/* post_processor: [CLS] $A [SEP], or nothing */
static kg_status wp_post(hf *h, gen_tokdesc *d)
{
    const char *f = h->file;
    char esc[128];
    const json_t *p = json_object_get(h->root, "post_processor");
    d->add_bos = false;
    if (!p || json_is_null(p)) return KG_OK;
    kg_str type;
    if (!json_is_object(p)) return kg_err(KG_ERR_FORMAT, "%s: post_processor is %s (expected an object)", f, kg_json_kind(p));
    kg_status s = get_str(f, p, "type", "post_processor.type", true, &type);
    if (s) return s;
    int32_t ids[2] = {-1, -1};
    if (str_is(type, "BertProcessing")) {
        static const char *const keys[2] = {"cls", "sep"};
        for (int i = 0; i < 2; i++) {
            const json_t *a = json_object_get(p, keys[i]);
            const json_t *id = json_array_get(a, 1);
            if (!json_is_array(a) || json_array_size(a) != 2 || !json_is_string(json_array_get(a, 0)) ||
                !json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= h->n_tok)
                return kg_err(KG_ERR_FORMAT, "%s: post_processor.%s is not [token, id] with an id below %u", f, keys[i], h->n_tok);
            ids[i] = (int32_t)json_integer_value(id);
        }
    } else if (str_is(type, "TemplateProcessing")) {
        const json_t *single = json_object_get(p, "single"), *sp = json_object_get(p, "special_tokens");
        const json_t *e0 = json_array_get(single, 0), *e1 = json_array_get(single, 1), *e2 = json_array_get(single, 2);
        if (!json_is_array(single) || json_array_size(single) != 3 || !json_object_get(e0, "SpecialToken") ||
            !json_object_get(e1, "Sequence") || !json_object_get(e2, "SpecialToken"))
            return kg_err(KG_ERR_UNSUPPORTED, "%s: post_processor.single is not [SpecialToken, Sequence, SpecialToken] "
                                              "([CLS] $A [SEP]), the only template kgen implements for WordPiece", f);
        for (int i = 0; i < 2; i++) {
            kg_str name;
            const json_t *st = json_object_get(i ? e2 : e0, "SpecialToken");
            if ((s = get_str(f, st, "id", "post_processor.single[].SpecialToken.id", true, &name))) return s;
            const json_t *t = json_object_get(sp, name.ptr), *tid = json_array_get(json_object_get(t, "ids"), 0);
            if (!json_is_object(t) || json_array_size(json_object_get(t, "ids")) != 1 || !json_is_integer(tid) ||
                json_integer_value(tid) < 0 || json_integer_value(tid) >= h->n_tok)
                return kg_err(KG_ERR_FORMAT, "%s: post_processor.special_tokens[\"%s\"].ids is not one token id below %u", f,
                              show(esc, sizeof esc, name), h->n_tok);
            ids[i] = (int32_t)json_integer_value(tid);
        }
    } else {
        return kg_err(KG_ERR_UNSUPPORTED, "%s: post_processor.type \"%s\" is not supported with WordPiece "
                                          "(TemplateProcessing, BertProcessing, or null)", f, show(esc, sizeof esc, type));
    }
    d->add_bos = true;
    d->cls = ids[0], d->sep = ids[1];
    return KG_OK;
}

static kg_status wordpiece_json(hf *h, const json_t *model, gen_tokdesc *d)
{
    const char *f = h->file;
    char esc[128];
    kg_status s = read_vocab(h, model);
    if (s) return s;
    kg_str unk, prefix = {"##", 2}, type;
    if ((s = get_str(f, model, "unk_token", "model.unk_token", true, &unk))) return s;
    d->unk = id_of(h, unk);
    if (d->unk < 0)
        return kg_err(KG_ERR_FORMAT, "%s: model.unk_token \"%s\" is not in model.vocab", f, show(esc, sizeof esc, unk));
    if (json_object_get(model, "continuing_subword_prefix") &&
        (s = get_str(f, model, "continuing_subword_prefix", "model.continuing_subword_prefix", true, &prefix)))
        return s;
    if (prefix.len > 16)
        return kg_err(KG_ERR_FORMAT, "%s: model.continuing_subword_prefix is %" PRIu64 " bytes (at most 16)", f, prefix.len);
    int64_t max_chars = 100, max_len = 0;
    if ((s = get_int(f, model, "max_input_chars_per_word", "model.max_input_chars_per_word", 1, 4096, &max_chars))) return s;
    const json_t *tr = json_object_get(h->root, "truncation");
    if (tr && !json_is_null(tr)) {
        if (!json_is_object(tr)) return kg_err(KG_ERR_FORMAT, "%s: truncation is %s (expected an object)", f, kg_json_kind(tr));
        if ((s = get_int(f, tr, "max_length", "truncation.max_length", 0, 1 << 24, &max_len))) return s;
    }
    if ((s = wp_normalizer(h, d))) return s;
    const json_t *pt = json_object_get(h->root, "pre_tokenizer");
    if (!json_is_object(pt)) return kg_err(KG_ERR_UNSUPPORTED, "%s: pre_tokenizer is %s (expected BertPreTokenizer)", f, pt ? kg_json_kind(pt) : "missing");
    if ((s = get_str(f, pt, "type", "pre_tokenizer.type", true, &type))) return s;
    if (!str_is(type, "BertPreTokenizer"))
        return kg_err(KG_ERR_UNSUPPORTED, "%s: pre_tokenizer.type \"%s\" is not supported with WordPiece (BertPreTokenizer)",
                      f, show(esc, sizeof esc, type));
    d->cls = d->sep = -1;
    if ((s = wp_post(h, d))) return s;
    kg_str name;
    int32_t *slot[3] = {&d->mask, &d->pad, &d->cls};
    static const char *const cfg_key[3] = {"mask_token", "pad_token", "cls_token"}, *deflt[3] = {"[MASK]", "[PAD]", "[CLS]"};
    for (int i = 0; i < 3; i++) {
        if (*slot[i] >= 0) continue;
        if ((s = cfg_token(h, cfg_key[i], &name))) return s;
        *slot[i] = id_of(h, name.ptr ? name : (kg_str){deflt[i], strlen(deflt[i])});
    }
    if (d->sep < 0) {
        if ((s = cfg_token(h, "sep_token", &name))) return s;
        d->sep = id_of(h, name.ptr ? name : (kg_str){"[SEP]", 5});
    }
    d->wpm = true;
    d->pre = (kg_str){"bert", 4};
    d->max_chars = (uint32_t)max_chars, d->max_length = (uint32_t)max_len;
    d->prefix = prefix;
    d->bos = d->cls, d->eos = d->sep;
    if (h->type[d->unk] == 1) h->type[d->unk] = 2; /* not an added token: it is still the unknown token */
    return KG_OK;
}

/* vocab.txt (+ tokenizer_config.json) */
static kg_status wordpiece_txt(hf *h, const char *path, gen_tokdesc *d)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return kg_err(KG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    h->store = malloc(cap);
    for (size_t got; h->store && (got = fread(h->store + n, 1, cap - n, fp)) > 0;) {
        n += got;
        if (n == cap) {
            char *q = cap < ((size_t)1 << 30) ? realloc(h->store, cap * 2) : NULL;
            if (!q) { fclose(fp); return kg_err(KG_ERR_FORMAT, "%s: too large (at most 1 GiB)", path); }
            h->store = q, cap *= 2;
        }
    }
    bool err = ferror(fp);
    fclose(fp);
    if (!h->store) return kg_err(KG_ERR_NOMEM, "%s: out of memory", path);
    if (err) return kg_err(KG_ERR_IO, "%s: read error", path);
    uint64_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += h->store[i] == '\n';
    if (n && h->store[n - 1] != '\n') lines++;
    if (lines == 0 || lines > HF_MAX_TOKENS) return kg_err(KG_ERR_FORMAT, "%s: %" PRIu64 " tokens (expected 1..%u)", path, lines, HF_MAX_TOKENS);
    h->n_tok = (uint32_t)lines;
    h->tok = calloc(h->n_tok, sizeof *h->tok);
    h->type = malloc(h->n_tok);
    if (!h->tok || !h->type) return kg_err(KG_ERR_NOMEM, "%s: out of memory for %u tokens", path, h->n_tok);
    memset(h->type, 1, h->n_tok);
    for (size_t i = 0, k = 0; i < n && k < h->n_tok; k++) {
        size_t j = i;
        while (j < n && h->store[j] != '\n') j++;
        size_t e = j > i && h->store[j - 1] == '\r' ? j - 1 : j;
        h->tok[k] = (kg_str){h->store + i, e - i};
        i = j + 1;
    }
    h->file = h->cfg_path;
    bool lower = true, chinese = true, strip = true, strip_set = false;
    kg_status s;
    if (h->cfg) {
        if ((s = get_bool(h->cfg_path, h->cfg, "do_lower_case", "do_lower_case", &lower)) ||
            (s = get_bool(h->cfg_path, h->cfg, "tokenize_chinese_chars", "tokenize_chinese_chars", &chinese)))
            return s;
        const json_t *sa = json_object_get(h->cfg, "strip_accents");
        if (sa && !json_is_null(sa)) {
            if ((s = get_bool(h->cfg_path, h->cfg, "strip_accents", "strip_accents", &strip))) return s;
            strip_set = true;
        }
        const json_t *ml = json_object_get(h->cfg, "model_max_length");
        if (json_is_integer(ml) && json_integer_value(ml) > 0 && json_integer_value(ml) <= (1 << 24))
            d->max_length = (uint32_t)json_integer_value(ml);
    }
    d->lowercase = lower, d->strip_accents = strip_set ? strip : lower, d->chinese = chinese, d->clean = true;
    static const char *const key[5] = {"unk_token", "cls_token", "sep_token", "pad_token", "mask_token"};
    static const char *const deflt[5] = {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"};
    int32_t *slot[5] = {&d->unk, &d->cls, &d->sep, &d->pad, &d->mask};
    char esc[128];
    for (int i = 0; i < 5; i++) {
        kg_str name;
        if ((s = cfg_token(h, key[i], &name))) return s;
        if (!name.ptr) name = (kg_str){deflt[i], strlen(deflt[i])};
        *slot[i] = id_of(h, name);
        if (*slot[i] < 0 && i < 3)
            return kg_err(KG_ERR_FORMAT, "%s: the %s \"%s\" is not in %s", h->cfg ? h->cfg_path : path, key[i],
                          show(esc, sizeof esc, name), path);
        if (*slot[i] >= 0) h->type[*slot[i]] = i == 0 ? 2 : 3;
    }
    d->wpm = d->add_bos = true;
    d->pre = (kg_str){"bert", 4};
    d->max_chars = 100;
    d->prefix = (kg_str){"##", 2};
    d->bos = d->cls, d->eos = d->sep;
    h->file = path;
    return KG_OK;
}

/* ───────────────────────── byte-level BPE ───────────────────────── */

/* The Split regexes of the pre-tokenizers the runtime implements (tokenizer.c has them as matchers). */
static const struct { const char *regex, *pre; } known_split[] = {
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
     "\\s+(?!\\S)|\\s+",
     "llama-bpe"},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
     "\\s+(?!\\S)|\\s+",
     "qwen2"},
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", "gpt2"},
};

/* A ByteLevel pre-tokenizer's settings: add_prefix_space false; use_regex as wanted. */
static kg_status byte_level(const hf *h, const json_t *b, const char *path, bool want_regex)
{
    char key[96];
    bool prefix = true, regex = true;
    kg_status s;
    snprintf(key, sizeof key, "%s.add_prefix_space", path);
    if ((s = get_bool(h->file, b, "add_prefix_space", key, &prefix))) return s;
    snprintf(key, sizeof key, "%s.use_regex", path);
    if ((s = get_bool(h->file, b, "use_regex", key, &regex))) return s;
    if (prefix || regex != want_regex)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: %s: add_prefix_space %s, use_regex %s is not supported here "
                                          "(expected false, %s)", h->file, path, prefix ? "true" : "false",
                      regex ? "true" : "false", want_regex ? "true" : "false");
    return KG_OK;
}

/* pre_tokenizer -> the runtime's pre-tokenizer name */
static kg_status bpe_pre(const hf *h, const char **pre)
{
    const char *f = h->file;
    char esc[160];
    const json_t *pt = json_object_get(h->root, "pre_tokenizer");
    kg_str type, t0, t1;
    kg_status s;
    if (!json_is_object(pt)) return kg_err(KG_ERR_UNSUPPORTED, "%s: pre_tokenizer is %s (expected ByteLevel or a Sequence)", f, pt ? kg_json_kind(pt) : "missing");
    if ((s = get_str(f, pt, "type", "pre_tokenizer.type", true, &type))) return s;
    if (str_is(type, "ByteLevel")) {
        *pre = "gpt2";
        return byte_level(h, pt, "pre_tokenizer", true);
    }
    const json_t *seq = json_object_get(pt, "pretokenizers"), *a = json_array_get(seq, 0), *b = json_array_get(seq, 1);
    if (!str_is(type, "Sequence") || !json_is_array(seq) || json_array_size(seq) != 2 || !json_is_object(a) || !json_is_object(b))
        return kg_err(KG_ERR_UNSUPPORTED, "%s: pre_tokenizer (type \"%s\") is not one kgen implements for BPE: ByteLevel, or "
                                          "a Sequence of Split or Digits then ByteLevel", f, show(esc, sizeof esc, type));
    if ((s = get_str(f, a, "type", "pre_tokenizer.pretokenizers[0].type", true, &t0)) ||
        (s = get_str(f, b, "type", "pre_tokenizer.pretokenizers[1].type", true, &t1)))
        return s;
    if (!str_is(t1, "ByteLevel"))
        return kg_err(KG_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[1].type \"%s\" is not supported (ByteLevel)", f,
                      show(esc, sizeof esc, t1));
    if (str_is(t0, "Digits")) {
        bool single = false;
        if ((s = get_bool(f, a, "individual_digits", "pre_tokenizer.pretokenizers[0].individual_digits", &single))) return s;
        if (!single)
            return kg_err(KG_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[0].individual_digits is false (kgen implements "
                                              "true: SmolLM's)", f);
        *pre = "smollm";
        return byte_level(h, b, "pre_tokenizer.pretokenizers[1]", true);
    }
    if (!str_is(t0, "Split"))
        return kg_err(KG_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[0].type \"%s\" is not supported (Split, Digits)", f,
                      show(esc, sizeof esc, t0));
    kg_str regex, behavior;
    bool invert = false;
    const json_t *pat = json_object_get(a, "pattern");
    if (!json_is_object(pat) || !json_is_string(json_object_get(pat, "Regex")))
        return kg_err(KG_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[0].pattern is not {\"Regex\": string}", f);
    if ((s = get_str(f, pat, "Regex", "pre_tokenizer.pretokenizers[0].pattern.Regex", true, &regex)) ||
        (s = get_str(f, a, "behavior", "pre_tokenizer.pretokenizers[0].behavior", true, &behavior)) ||
        (s = get_bool(f, a, "invert", "pre_tokenizer.pretokenizers[0].invert", &invert)))
        return s;
    if (!str_is(behavior, "Isolated") || invert)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[0]: behavior \"%s\"%s is not supported (Isolated, "
                                          "not inverted)", f, show(esc, sizeof esc, behavior), invert ? ", inverted" : "");
    *pre = NULL;
    for (size_t i = 0; i < sizeof known_split / sizeof *known_split; i++)
        if (str_is(regex, known_split[i].regex)) *pre = known_split[i].pre;
    if (!*pre)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[0].pattern.Regex \"%s\" is not a pre-tokenizer "
                                          "kgen implements (Llama 3's, Qwen2's, GPT-2's)", f, show(esc, sizeof esc, regex));
    return byte_level(h, b, "pre_tokenizer.pretokenizers[1]", false);
}

static kg_status bpe_merges(hf *h, const json_t *model, gen_tokdesc *d)
{
    const char *f = h->file;
    const json_t *m = json_object_get(model, "merges");
    if (!json_is_array(m)) return kg_err(KG_ERR_FORMAT, "%s: model.merges is %s (expected an array)", f, m ? kg_json_kind(m) : "missing");
    size_t n = json_array_size(m), bytes = 0;
    if (n > (1u << 24)) return kg_err(KG_ERR_FORMAT, "%s: model.merges has %zu merges (at most %u)", f, n, 1u << 24);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(m, i);
        if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
            json_is_string(json_array_get(e, 1)))
            bytes += json_string_length(json_array_get(e, 0)) + json_string_length(json_array_get(e, 1)) + 1;
        else if (!json_is_string(e))
            return kg_err(KG_ERR_FORMAT, "%s: model.merges[%zu] is %s (expected \"a b\" or [\"a\", \"b\"])", f, i, kg_json_kind(e));
    }
    h->merge = malloc((n ? n : 1) * sizeof *h->merge);
    h->store = malloc(bytes ? bytes : 1);
    if (!h->merge || !h->store) return kg_err(KG_ERR_NOMEM, "%s: out of memory for %zu merges", f, n);
    char *o = h->store;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(m, i);
        kg_str r;
        if (json_is_string(e)) {
            r = (kg_str){json_string_value(e), json_string_length(e)};
        } else {
            const json_t *l = json_array_get(e, 0), *rt = json_array_get(e, 1);
            size_t nl = json_string_length(l), nr = json_string_length(rt);
            if (!nl || !nr || memchr(json_string_value(l), ' ', nl))
                return kg_err(KG_ERR_UNSUPPORTED, "%s: model.merges[%zu]: a part is empty or the left part has a space", f, i);
            r.ptr = o;
            memcpy(o, json_string_value(l), nl), o += nl;
            *o++ = ' ';
            memcpy(o, json_string_value(rt), nr), o += nr;
            r.len = nl + nr + 1;
        }
        const char *sp = r.len > 1 ? memchr(r.ptr + 1, ' ', r.len - 1) : NULL;
        if (!sp || sp == r.ptr + r.len - 1)
            return kg_err(KG_ERR_FORMAT, "%s: model.merges[%zu] is not \"LEFT RIGHT\"", f, i);
        h->merge[i] = r;
    }
    d->n_merge = (uint32_t)n;
    d->merge = h->merge;
    return KG_OK;
}

static kg_status gen_tokdata_hf_bpe(hf *h, const json_t *model, gen_tokdesc *d)
{
    const char *f = h->file;
    char esc[128];
    kg_status s;
    const json_t *n = json_object_get(h->root, "normalizer");
    if (n && !json_is_null(n))
        return kg_err(KG_ERR_UNSUPPORTED, "%s: normalizer is not null (kgen's byte-level BPE has no normalizer)", f);
    static const char *const must_null[] = {"dropout", "continuing_subword_prefix", "end_of_word_suffix", "unk_token"};
    for (size_t i = 0; i < sizeof must_null / sizeof *must_null; i++) {
        const json_t *v = json_object_get(model, must_null[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return kg_err(KG_ERR_UNSUPPORTED, "%s: model.%s is set (kgen's byte-level BPE needs it null)", f, must_null[i]);
    }
    bool byte_fallback = false, ignore = false;
    if ((s = get_bool(f, model, "byte_fallback", "model.byte_fallback", &byte_fallback)) ||
        (s = get_bool(f, model, "ignore_merges", "model.ignore_merges", &ignore)))
        return s;
    if (byte_fallback) return kg_err(KG_ERR_UNSUPPORTED, "%s: model.byte_fallback is true (not with byte-level BPE)", f);
    const char *pre = "gpt2";
    if ((s = bpe_pre(h, &pre))) return s;
    bool llama3 = strcmp(pre, "llama-bpe") == 0;
    if (ignore != llama3)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: model.ignore_merges is %s, but with this pre-tokenizer (%s) kgen %s whole-word "
                                          "tokens first", f, ignore ? "true" : "false", pre, llama3 ? "takes" : "does not take");
    if ((s = read_vocab(h, model)) || (s = bpe_merges(h, model, d))) return s;
    d->pre = (kg_str){pre, strlen(pre)};
    /* BOS: the post-processor's [SpecialToken, Sequence A], else tokenizer_config.json's add_bos_token */
    const json_t *p = json_object_get(h->root, "post_processor");
    kg_str type = {NULL, 0}, name;
    bool tmpl = false;
    if (p && !json_is_null(p)) {
        if (!json_is_object(p)) return kg_err(KG_ERR_FORMAT, "%s: post_processor is %s (expected an object)", f, kg_json_kind(p));
        if ((s = get_str(f, p, "type", "post_processor.type", true, &type))) return s;
    }
    if (str_is(type, "Sequence")) { /* Llama 3: [ByteLevel, TemplateProcessing] */
        const json_t *ps = json_object_get(p, "processors"), *q = NULL;
        for (size_t i = 0; json_is_array(ps) && i < json_array_size(ps); i++) {
            kg_str t;
            const json_t *e = json_array_get(ps, i);
            if (!json_is_object(e) || (s = get_str(f, e, "type", "post_processor.processors[].type", true, &t))) 
                return s ? s : kg_err(KG_ERR_FORMAT, "%s: post_processor.processors[%zu] is not an object", f, i);
            if (str_is(t, "TemplateProcessing")) q = e;
            else if (!str_is(t, "ByteLevel"))
                return kg_err(KG_ERR_UNSUPPORTED, "%s: post_processor.processors[%zu].type \"%s\" is not supported", f, i,
                              show(esc, sizeof esc, t));
        }
        p = q, type = q ? (kg_str){"TemplateProcessing", 18} : (kg_str){"ByteLevel", 9};
    }
    if (str_is(type, "TemplateProcessing")) {
        const json_t *single = json_object_get(p, "single");
        size_t ns = json_array_size(single);
        const json_t *last = json_array_get(single, ns ? ns - 1 : 0);
        if (!json_is_array(single) || ns < 1 || ns > 2 || !json_object_get(last, "Sequence") ||
            (ns == 2 && !json_object_get(json_array_get(single, 0), "SpecialToken")))
            return kg_err(KG_ERR_UNSUPPORTED, "%s: post_processor.single is not [Sequence] or [SpecialToken, Sequence] "
                                              "(kgen adds a BOS token, nothing after the text)", f);
        if (ns == 2) {
            const json_t *st = json_object_get(json_array_get(single, 0), "SpecialToken");
            if ((s = get_str(f, st, "id", "post_processor.single[0].SpecialToken.id", true, &name))) return s;
            d->bos = id_of(h, name);
            if (d->bos < 0)
                return kg_err(KG_ERR_FORMAT, "%s: post_processor.single[0].SpecialToken.id \"%s\" is not a token", f,
                              show(esc, sizeof esc, name));
            d->add_bos = true;
        }
        tmpl = true;
    } else if (type.ptr && !str_is(type, "ByteLevel")) {
        return kg_err(KG_ERR_UNSUPPORTED, "%s: post_processor.type \"%s\" is not supported with BPE (ByteLevel, "
                                          "TemplateProcessing, or null)", f, show(esc, sizeof esc, type));
    }
    if ((s = cfg_token(h, "bos_token", &name))) return s;
    if (name.ptr && d->bos < 0) d->bos = id_of(h, name);
    if ((s = cfg_token(h, "eos_token", &name))) return s;
    if (name.ptr) d->eos = id_of(h, name);
    if (!tmpl && h->cfg && (s = get_bool(h->cfg_path, h->cfg, "add_bos_token", "add_bos_token", &d->add_bos))) return s;
    if (d->add_bos && d->bos < 0)
        return kg_err(KG_ERR_FORMAT, "%s: add_bos_token is true, but bos_token is not a token", h->cfg_path);
    return KG_OK;
}

/* ───────────────────────── the entry ───────────────────────── */

kg_status gen_tokdata_hf(const char *dir, const char *chat_template, void **blob, size_t *size)
{
    *blob = NULL;
    *size = 0;
    kg_status s = gen_tokdata_check_template(chat_template);
    if (s) return s;
    hf h = {0};
    char tj[4200], vt[4200];
    if (strlen(dir) > 4000) return kg_err(KG_ERR_ARG, "model directory name too long (%zu bytes)", strlen(dir));
    snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
    snprintf(vt, sizeof vt, "%s/vocab.txt", dir);
    snprintf(h.cfg_path, sizeof h.cfg_path, "%s/tokenizer_config.json", dir);
    if (file_exists(h.cfg_path) && (s = load_json(h.cfg_path, &h.cfg))) return s;
    gen_tokdesc d = {.bos = -1, .eos = -1, .unk = -1, .pad = -1, .eot = -1, .cls = -1, .sep = -1, .mask = -1};
    if (file_exists(tj)) {
        h.file = tj;
        if ((s = load_json(tj, &h.root))) goto done;
        const json_t *model = json_object_get(h.root, "model");
        kg_str type;
        char esc[128];
        if (!json_is_object(model)) {
            s = kg_err(KG_ERR_FORMAT, "%s: model is %s (expected an object)", tj, model ? kg_json_kind(model) : "missing");
            goto done;
        }
        if ((s = get_str(tj, model, "type", "model.type", true, &type))) goto done;
        if (str_is(type, "WordPiece")) s = wordpiece_json(&h, model, &d);
        else if (str_is(type, "BPE")) s = gen_tokdata_hf_bpe(&h, model, &d);
        else
            s = kg_err(KG_ERR_UNSUPPORTED, "%s: model.type \"%s\" is not supported (WordPiece, BPE)", tj,
                       show(esc, sizeof esc, type));
    } else if (file_exists(vt)) {
        s = wordpiece_txt(&h, vt, &d);
    } else {
        s = kg_err(KG_ERR_NOTFOUND, "%s: no tokenizer.json or vocab.txt in this directory", dir);
    }
    if (s) goto done;
    /* the chat template: the argument's name, or tokenizer_config.json's */
    if (chat_template) {
        d.tmpl = (kg_str){chat_template, strlen(chat_template)};
    } else if (h.cfg && (s = get_str(h.cfg_path, h.cfg, "chat_template", "chat_template", false, &d.tmpl))) {
        goto done;
    }
    if (!d.tmpl.ptr) d.tmpl = (kg_str){"", 0};
    d.n_tok = h.n_tok;
    d.tok = h.tok;
    d.type = h.type;
    s = gen_tok_write(h.file, &d, blob, size);
done:
    hf_free(&h);
    return s;
}
