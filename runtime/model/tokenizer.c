/*
 * tokenizer.c — byte-level BPE (GPT-2 / llama.cpp "gpt2" vocabularies), built
 * from the blob gen/tokdata.c writes (its format is documented there); the
 * blob reader and the dispatch for SentencePiece (tok_spm.c) and WordPiece
 * (tok_wp.c, format version 3) too.
 *
 * Tokenizing text (kgr_tokenize):
 *   1. special tokens: with KGM_TOK_SPECIAL, text spelling a control token
 *      (type 3) is that token; user-defined tokens (type 4) are matched always,
 *      as llama.cpp and Hugging Face's added tokens do. Leftmost match first,
 *      and at one position the longest (Hugging Face's leftmost-longest).
 *      Matched on the bytes as given, before any UTF-8 reading (llama.cpp).
 *   2. pre-tokenization of the text between them into words, by hand-written
 *      matchers equivalent to the regexes of the pre-tokenizer the GGUF names
 *      (the first alternative that matches at a position wins, as in a regex):
 *        gpt2, default  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *        smollm         \p{N} (every digit alone) first, then gpt2 between them
 *        llama-bpe, llama3, llama-v3
 *                       (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *                       ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *                       (and a word that is a whole token is that token: ignore_merges)
 *      Classes from unicode_tab.h (scripts/gen_unicode.py), of the code points
 *      utf8_dec reads, as llama.cpp reads them (utf8_dec has the rule):
 *      leniently (an overlong form is its code point, C0 80 is U+0000), and
 *      U+FFFD (class "other") for each byte that starts no sequence or whose
 *      sequence is cut short.
 *   3. BPE on each word, the word written as those code points in UTF-8 (as
 *      llama.cpp does: a byte read as U+FFFD is the 3 bytes EF BF BD, an
 *      overlong form its shortest form; bpe_span): one symbol per byte (the
 *      token of the byte's GPT-2 byte-to-unicode character), then repeatedly
 *      the adjacent pair with the lowest merge rank (leftmost on ties)
 *      becomes the merge's token, with a binary heap of candidate pairs.
 *      Merges are resolved to token ids at init; a merge whose parts or
 *      result are not tokens is ignored (as Hugging Face; llama.cpp applies
 *      such a merge, then looks the result's characters up one by one), and
 *      of two merges of the same pair the first counts (as llama.cpp).
 *      A byte whose character is not a token is dropped, as llama.cpp and
 *      Hugging Face (with no unknown token) do: SmolLM2's vocabulary lacks 21
 *      bytes (0x04 0x06 0x13 0x14 0x16 0x1D 0xC0 0xC1 0xF1 0xF2 0xF5..0xFF).
 *      So text round-trips (tokens, then pieces) when it is valid UTF-8 and
 *      has none of those bytes; invalid bytes come back as U+FFFD, overlong
 *      forms as their shortest forms.
 *
 * Pieces (kgr_token_piece): control tokens are ""; user-defined tokens their
 * text; others their characters mapped back to bytes (a token with a
 * character outside the byte map: its text as is, as HF's ByteLevel decoder).
 *
 * Chat (kgr_chat), recognized by substrings of the template as llama.cpp does:
 *   ChatML ("<|im_start|>"): <|im_start|>ROLE\nCONTENT<|im_end|>\n per message,
 *     add_assistant: <|im_start|>assistant\n. A template with a literal
 *     '<|im_start|>system\n...<|im_end|>\n' and a test of the role 'system'
 *     (SmolLM2's, Qwen2.5's) gets that default system message first when the
 *     first message is not a system message.
 *   Llama 3 ("<|start_header_id|>" and "<|end_header_id|>"):
 *     <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT (trimmed)<|eot_id|>;
 *     BOS is not written as text (KGM_TOK_BOS adds the token).
 *   Anything else: -1, saying so.
 *
 * Memory: everything is allocated by kgr_tok_init, including BPE scratch for
 * words of up to KGR_TOK_WORD_CAP bytes and room to rewrite a word of up to
 * 3 * KGR_TOK_WORD_CAP bytes (step 3). A longer word (a run of 4096 letters
 * with no space, say) grows that scratch in kgr_tokenize, once, to the
 * word's size; it is kept for later calls and freed by kgr_tok_free. These
 * are the only allocations outside init: tokenizing such text correctly
 * needs them. A failure to grow returns -1.
 */
#include "tok_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "unicode_tab.h"

static inline uint32_t hash_pair(uint64_t key, uint32_t mask)
{
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & mask;
}

/* UTF-8 read as llama.cpp reads it (its unicode_cpts_from_utf8), so that the
 * tokens of any bytes, valid UTF-8 or not, are llama.cpp's: a byte below 0x80
 * is itself; a lead byte 110xxxxx, 1110xxxx or 11110xxx followed, before e,
 * by 1, 2 or 3 bytes 10xxxxxx is the code point its bits spell, with no check
 * for overlong forms or surrogates (C0 80 reads as U+0000, C1 81 as 'A',
 * ED A0 80 as U+D800). Anything else is U+FFFD, one byte long (the next
 * character starts at the next byte): a continuation byte or F8..FF first, a
 * sequence cut short by another byte or by e, and a 4-byte sequence past
 * U+10FFFF (F4 90 80 80 .. F7 BF BF BF; llama.cpp throws an exception out of
 * llama_tokenize there, so this is kgen's choice, the one rule applied again). */
static inline uint32_t utf8_dec(const uint8_t *s, size_t e, size_t i, size_t *len)
{
    uint8_t c = s[i];
    *len = 1;
    if (c < 0x80) return c;
    size_t need;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) need = 1, cp = c & 0x1Fu;
    else if ((c & 0xF0) == 0xE0) need = 2, cp = c & 0x0Fu;
    else if ((c & 0xF8) == 0xF0) need = 3, cp = c & 0x07u;
    else return CP_REPL;
    if (e - i <= need) return CP_REPL;
    for (size_t k = 1; k <= need; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return CP_REPL;
        cp = cp << 6 | (s[i + k] & 0x3Fu);
    }
    if (cp > 0x10FFFF) return CP_REPL;
    *len = need + 1;
    return cp;
}

/* cp's length in (shortest-form) UTF-8; cp <= 0x10FFFF */
static inline size_t utf8_len(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

/* Writes cp in shortest-form UTF-8 at o (a surrogate as its three bytes, as
 * llama.cpp's unicode_cpt_to_utf8 does); returns its length. */
static size_t utf8_put(uint32_t cp, uint8_t *o)
{
    size_t n = utf8_len(cp);
    static const uint8_t lead[5] = {0, 0x00, 0xC0, 0xE0, 0xF0};
    for (size_t k = n - 1; k > 0; k--, cp >>= 6) o[k] = (uint8_t)(0x80 | (cp & 0x3F));
    o[0] = (uint8_t)(lead[n] | cp);
    return n;
}

static int table_cls(uint32_t cp)
{
    if (cp >= 0x110000) return C_OTHER;
    size_t lo = 0, hi = KGR_UCLASS_N; /* last entry with start <= cp */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if ((kgr_uclass_tab[mid] >> 2) <= cp) lo = mid;
        else hi = mid;
    }
    return (int)(kgr_uclass_tab[lo] & 3);
}

static inline int ucls(const kgr_tok *t, uint32_t cp)
{
    return cp < LOW_CLS ? t->low_cls[cp] : table_cls(cp);
}

/* class of the character at i (its length in *len) */
static inline int cls_at(const kgr_tok *t, const uint8_t *s, size_t e, size_t i, size_t *len, uint32_t *cpo)
{
    uint32_t cp = utf8_dec(s, e, i, len);
    if (cpo) *cpo = cp;
    return ucls(t, cp);
}

/* The token whose text is the byte-level mapping of the n raw bytes at p, or -1. */
static int32_t tok_find_mapped(const kgr_tok *t, const uint8_t *p, size_t n)
{
    uint32_t h = HASH0;
    size_t mlen = 0;
    for (size_t i = 0; i < n; i++) {
        h = hash_bytes(h, t->byte_utf8[p[i]], t->byte_utf8_len[p[i]]);
        mlen += t->byte_utf8_len[p[i]];
    }
    for (uint32_t k = h & t->tok_mask; t->tok_hash[k].id1; k = (k + 1) & t->tok_mask) {
        const tok_ent *e = &t->tok[t->tok_hash[k].id1 - 1];
        if (t->tok_hash[k].hash != h || e->len != mlen) continue;
        size_t o = 0, i = 0;
        for (; i < n; i++) {
            uint8_t l = t->byte_utf8_len[p[i]];
            if (memcmp(e->text + o, t->byte_utf8[p[i]], l) != 0) break;
            o += l;
        }
        if (i == n) return (int32_t)(t->tok_hash[k].id1 - 1);
    }
    return -1;
}

static bool merge_find(const kgr_tok *t, int32_t l, int32_t r, uint32_t *rank, int32_t *res)
{
    if (l < 0 || r < 0) return false;
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    for (uint32_t h = hash_pair(key, t->merge_mask); t->merge[h].res1; h = (h + 1) & t->merge_mask)
        if (t->merge[h].key == key) {
            *rank = t->merge[h].rank;
            *res = t->merge[h].res1 - 1;
            return true;
        }
    return false;
}

/* ───────────────────────── blob reading ───────────────────────── */

typedef struct rd {
    const uint8_t *p;
    size_t n, off;
} rd;

static bool rd_u32(rd *r, uint32_t *v)
{
    if (r->n - r->off < 4) return false;
    const uint8_t *q = r->p + r->off;
    *v = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    r->off += 4;
    return true;
}

static bool rd_str(rd *r, const char **s, uint32_t *len)
{
    if (!rd_u32(r, len)) return false;
    if (r->n - r->off < *len) return false;
    *s = (const char *)r->p + r->off;
    r->off += *len;
    return true;
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t p = 16;
    while (p < n) p *= 2;
    return p;
}

static int cmp_special(const void *a, const void *b)
{
    const special *x = a, *y = b;
    uint8_t fx = (uint8_t)x->text[0], fy = (uint8_t)y->text[0];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool str_is(const char *p, size_t n, const char *c) { return strlen(c) == n && memcmp(p, c, n) == 0; }

/* Pre-tokenizer names (GGUF tokenizer.ggml.pre), as llama.cpp maps them;
 * gen/tokdata.c's list must agree (tests/test_tokenizer.c checks it). */
static const struct { const char *name; int pre; } pre_names[] = {
    {"default", PRE_GPT2},     {"gpt2", PRE_GPT2},      {"gpt-2", PRE_GPT2},  {"smollm", PRE_SMOLLM},
    {"llama-bpe", PRE_LLAMA3}, {"llama3", PRE_LLAMA3},  {"llama-v3", PRE_LLAMA3},
    {"qwen2", PRE_QWEN2},      {"deepseek-r1-qwen", PRE_QWEN2}};

/* Token texts that end generation (llama.cpp's list: it makes them control
 * tokens whatever their type, and so does kgen). */
static bool eog_text(const tok_ent *e)
{
    static const char *const names[] = {"<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<end_of_turn>", "<|end_of_text|>",
                                        "<|eom_id|>", "<|end|>", "<EOT>", "_<EOT>", "<|return|>", "<|call|>",
                                        "<end_of_utterance>"};
    for (size_t j = 0; j < sizeof names / sizeof *names; j++)
        if (str_is(e->text, e->len, names[j])) return true;
    return false;
}

/* GPT-2's byte-to-unicode table: printable bytes ('!'..'~', 0xA1..0xAC,
 * 0xAE..0xFF) stand for themselves, the other 68 for U+0100.. in byte order. */
static void byte_map_init(kgr_tok *t)
{
    int next = 256;
    for (int i = 0; i < 324; i++) t->char_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        int cp = self ? b : next++;
        t->char_byte[cp] = (int16_t)b;
        if (cp < 0x80) {
            t->byte_utf8[b][0] = (uint8_t)cp;
            t->byte_utf8_len[b] = 1;
        } else {
            t->byte_utf8[b][0] = (uint8_t)(0xC0 | cp >> 6);
            t->byte_utf8[b][1] = (uint8_t)(0x80 | (cp & 0x3F));
            t->byte_utf8_len[b] = 2;
        }
    }
}

int kgr_tok_init(kgr_tok **out, const void *blob, size_t size, char *err, size_t errcap)
{
#define BAD(...) do { kgr_tok_free(t); return kgr_msg(err, errcap, "tokenizer data: " __VA_ARGS__); } while (0)
    if (!out) return kgr_msg(err, errcap, "kgr_tok_init: out is NULL");
    *out = NULL;
    if (!blob && size) return kgr_msg(err, errcap, "tokenizer data: NULL with size %zu", size);
    kgr_tok *t = calloc(1, sizeof *t);
    if (!t) return kgr_msg(err, errcap, "tokenizer: out of memory");
    rd r = {blob, size, 0};
    if (size < 40 || memcmp(blob, "KGTOKEN", 7) != 0) BAD("too short or bad magic (%zu bytes)", size);
    uint8_t version = ((const uint8_t *)blob)[7];
    if (version != '2' && version != '3') BAD("format version '%c', expected '2' or '3'", (char)version);
    r.off = 8;
    uint32_t n_tok, n_merge, ids[5], flags;
    rd_u32(&r, &n_tok);
    rd_u32(&r, &n_merge);
    for (int i = 0; i < 5; i++) rd_u32(&r, &ids[i]);
    rd_u32(&r, &flags);
    if (n_tok == 0 || n_tok > MAX_TOKENS) BAD("%u tokens (expected 1..%u)", n_tok, MAX_TOKENS);
    if (n_merge > MAX_MERGES) BAD("%u merges (at most %u)", n_merge, MAX_MERGES);
    /* each token takes at least 5 bytes, each merge at least 7: refuse counts the
       blob cannot hold before allocating for them */
    if ((uint64_t)n_tok * 5 + (uint64_t)n_merge * 7 > size - r.off)
        BAD("%u tokens and %u merges cannot fit in %zu bytes", n_tok, n_merge, size);
    static const char *const id_name[5] = {"bos", "eos", "unk", "pad", "eot"};
    for (int i = 0; i < 5; i++)
        if (ids[i] != UINT32_MAX && ids[i] >= n_tok) BAD("%s id %u out of range (%u tokens)", id_name[i], ids[i], n_tok);
    if (flags & ~15u) BAD("unknown flags 0x%x", flags);
    t->wpm = flags & 8;
    /* version 3 is written for WordPiece only; the other kinds stay version 2 */
    if (t->wpm != (version == '3')) BAD("flags 0x%x in a version %c blob", flags, (char)version);
    if (t->wpm && (flags & 6)) BAD("flags 0x%x: WordPiece with SentencePiece bits", flags);
    if (t->wpm && n_merge) BAD("%u merges in a WordPiece vocabulary (expected none)", n_merge);
    t->spm = flags & 2;
    t->add_space_prefix = flags & 4;
    if (t->add_space_prefix && !t->spm) BAD("flags 0x%x: a space prefix without a SentencePiece vocabulary", flags);
    if (t->spm && n_merge) BAD("%u merges in a SentencePiece vocabulary (expected none)", n_merge);
    if (t->spm && (uint64_t)n_tok * 9 > size - r.off) BAD("%u tokens and their scores cannot fit in %zu bytes", n_tok, size);
    t->n_vocab = (int)n_tok;
    t->bos = (int32_t)ids[0], t->eos = (int32_t)ids[1], t->unk = (int32_t)ids[2], t->pad = (int32_t)ids[3],
    t->eot = (int32_t)ids[4];
    t->add_bos = flags & 1;

    const char *pre;
    uint32_t pre_len;
    if (!rd_str(&r, &pre, &pre_len)) BAD("truncated in the pre-tokenizer name");
    t->pre = -1;
    for (size_t i = 0; i < sizeof pre_names / sizeof *pre_names; i++)
        if (str_is(pre, pre_len, pre_names[i].name)) t->pre = pre_names[i].pre;
    if (t->wpm) t->pre = str_is(pre, pre_len, "bert") ? PRE_GPT2 : -1; /* (not used: tok_wp.c has BERT's) */
    if (t->pre < 0 && !t->spm) BAD("unsupported pre-tokenizer \"%.*s\"", (int)(pre_len > 64 ? 64 : pre_len), pre);
    t->ignore_merges = t->pre == PRE_LLAMA3; /* (a SentencePiece vocabulary has no pre-tokenizer: the name is not used) */
    if (!rd_str(&r, &t->tmpl, &t->tmpl_len)) BAD("truncated in the chat template");

    /* tokens */
    t->tok = malloc(n_tok * sizeof *t->tok);
    uint32_t nslots = pow2_at_least((uint64_t)n_tok * 2);
    t->tok_hash = calloc(nslots, sizeof *t->tok_hash);
    if (!t->tok || !t->tok_hash) BAD("out of memory for %u tokens", n_tok);
    t->tok_mask = nslots - 1;
    uint32_t n_spec = 0;
    for (uint32_t i = 0; i < n_tok; i++) {
        if (r.off >= size) BAD("truncated at token %u of %u", i, n_tok);
        tok_ent *e = &t->tok[i];
        e->type = r.p[r.off++];
        if (!rd_str(&r, &e->text, &e->len)) BAD("truncated at token %u of %u", i, n_tok);
        if (e->type != T_CONTROL && eog_text(e)) e->type = T_CONTROL; /* as llama.cpp: end-of-generation text is control */
        if ((e->type == T_CONTROL || e->type == T_USER || e->type == T_UNKNOWN) && e->len) n_spec++;
        uint32_t hv = hash_bytes(HASH0, (const uint8_t *)e->text, e->len), h = hv & t->tok_mask;
        for (; t->tok_hash[h].id1; h = (h + 1) & t->tok_mask) {
            const tok_ent *o = &t->tok[t->tok_hash[h].id1 - 1];
            if (t->tok_hash[h].hash == hv && o->len == e->len && memcmp(o->text, e->text, e->len) == 0)
                break; /* the last of equal texts wins */
        }
        t->tok_hash[h] = (tok_slot){hv, i + 1};
    }

    /* scores (SentencePiece): f32, finite */
    if (t->spm) {
        t->score = malloc(n_tok * sizeof *t->score);
        if (!t->score) BAD("out of memory for %u scores", n_tok);
        for (uint32_t i = 0; i < n_tok; i++) {
            uint32_t u;
            if (!rd_u32(&r, &u)) BAD("truncated at score %u of %u", i, n_tok);
            if ((u & 0x7f800000u) == 0x7f800000u) BAD("score of token %u is not a finite number", i);
            memcpy(&t->score[i], &u, 4);
            t->score[i] += 0.0f; /* -0 is +0 (tok_spm.c orders scores by their bits) */
        }
    }

    /* merges */
    t->n_merges = (int)n_merge;
    nslots = pow2_at_least((uint64_t)n_merge * 2);
    t->merge = calloc(nslots, sizeof *t->merge);
    if (!t->merge) BAD("out of memory for %u merges", n_merge);
    t->merge_mask = nslots - 1;
    /* in batches: hash a batch and prefetch its hash slots, then look them up
       (the lookups are cache misses; this overlaps them) */
    enum { BATCH = 16 };
    struct { const char *m; uint32_t nl, nr, ha, hb, hc; } q[BATCH];
    for (uint32_t i0 = 0; i0 < n_merge; i0 += BATCH) {
        uint32_t nb = n_merge - i0 < BATCH ? n_merge - i0 : BATCH;
        for (uint32_t j = 0; j < nb; j++) {
            const char *m;
            uint32_t len;
            if (!rd_str(&r, &m, &len)) BAD("truncated at merge %u of %u", i0 + j, n_merge);
            const char *sp = len > 1 ? memchr(m + 1, ' ', len - 1) : NULL;
            if (!sp || sp == m + len - 1) BAD("merge %u is not \"LEFT RIGHT\"", i0 + j);
            q[j].m = m;
            q[j].nl = (uint32_t)(sp - m);
            q[j].nr = len - q[j].nl - 1;
            q[j].ha = hash_bytes(HASH0, (const uint8_t *)m, q[j].nl);
            q[j].hb = hash_bytes(HASH0, (const uint8_t *)sp + 1, q[j].nr);
            q[j].hc = hash_bytes(q[j].ha, (const uint8_t *)sp + 1, q[j].nr);
            __builtin_prefetch(&t->tok_hash[q[j].ha & t->tok_mask]);
            __builtin_prefetch(&t->tok_hash[q[j].hb & t->tok_mask]);
            __builtin_prefetch(&t->tok_hash[q[j].hc & t->tok_mask]);
        }
        for (uint32_t j = 0; j < nb; j++) {
            const char *m = q[j].m, *right = m + q[j].nl + 1;
            int32_t a = tok_find_h(t, q[j].ha, m, q[j].nl, NULL, 0), b = tok_find_h(t, q[j].hb, right, q[j].nr, NULL, 0),
                    c = tok_find_h(t, q[j].hc, m, q[j].nl, right, q[j].nr);
            q[j].ha = (uint32_t)a, q[j].hb = (uint32_t)b, q[j].hc = (uint32_t)c; /* now the ids */
            if (a >= 0 && b >= 0 && c >= 0)
                __builtin_prefetch(&t->merge[hash_pair((uint64_t)(uint32_t)a << 32 | (uint32_t)b, t->merge_mask)], 1);
        }
        for (uint32_t j = 0; j < nb; j++) {
            int32_t a = (int32_t)q[j].ha, b = (int32_t)q[j].hb, c = (int32_t)q[j].hc;
            if (a < 0 || b < 0 || c < 0) continue;
            uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
            uint32_t h = hash_pair(key, t->merge_mask);
            while (t->merge[h].res1 && t->merge[h].key != key) h = (h + 1) & t->merge_mask;
            if (t->merge[h].res1) continue; /* the first (lowest rank) of equal merges wins */
            t->merge[h] = (merge_ent){key, i0 + j, c + 1};
        }
    }
    /* WordPiece: u32 flags, u32 max chars per word, u32 max length, i32 cls, sep, mask, str prefix */
    if (t->wpm) { /* (BAD frees t: its messages use locals) */
        uint32_t wf, chars, maxlen, sp[3], plen;
        const char *prefix;
        if (!rd_u32(&r, &wf) || !rd_u32(&r, &chars) || !rd_u32(&r, &maxlen) || !rd_u32(&r, &sp[0]) ||
            !rd_u32(&r, &sp[1]) || !rd_u32(&r, &sp[2]) || !rd_str(&r, &prefix, &plen))
            BAD("truncated in the WordPiece settings");
        if (wf & ~15u) BAD("unknown WordPiece flags 0x%x", wf);
        if (chars == 0 || chars > WP_MAX_CHARS) BAD("max_input_chars_per_word %u (expected 1..%u)", chars, WP_MAX_CHARS);
        if (maxlen > (1u << 24)) BAD("max_length %u (at most %u)", maxlen, 1u << 24);
        static const char *const sp_name[3] = {"cls", "sep", "mask"};
        for (int i = 0; i < 3; i++)
            if (sp[i] != UINT32_MAX && sp[i] >= n_tok) BAD("%s id %u out of range (%u tokens)", sp_name[i], sp[i], n_tok);
        if (plen > WP_MAX_PREFIX) BAD("continuing prefix of %u bytes (at most %u)", plen, WP_MAX_PREFIX);
        if (ids[2] == UINT32_MAX) BAD("a WordPiece vocabulary without an unknown token");
        if ((flags & 1) && (sp[0] == UINT32_MAX || sp[1] == UINT32_MAX))
            BAD("WordPiece adds [CLS] and [SEP] but has no cls or sep id");
        tok_wp *w = &t->wp;
        w->lowercase = wf & 1, w->strip_accents = wf & 2, w->chinese = wf & 4, w->clean = wf & 8;
        w->max_chars = chars, w->max_length = maxlen;
        w->cls = (int32_t)sp[0], w->sep = (int32_t)sp[1], w->mask = (int32_t)sp[2];
        w->prefix = prefix, w->prefix_len = plen;
    }
    if (r.off != size) BAD("%zu bytes after the last merge", size - r.off);

    /* bytes, classes */
    byte_map_init(t);
    if (t->wpm) {
        if (kgr_wp_init(t, err, errcap)) {
            kgr_tok_free(t);
            return -1;
        }
    } else if (t->spm) {
        if (kgr_spm_init(t, err, errcap)) {
            kgr_tok_free(t);
            return -1;
        }
    } else {
        for (int b = 0; b < 256; b++) t->byte_tok[b] = tok_find(t, (const char *)t->byte_utf8[b], t->byte_utf8_len[b]);
    }
    for (uint32_t cp = 0; cp < LOW_CLS; cp++) t->low_cls[cp] = (uint8_t)table_cls(cp);

    /* special tokens, end-of-generation tokens */
    t->spec = malloc((n_spec ? n_spec : 1) * sizeof *t->spec);
    if (!t->spec) BAD("out of memory");
    uint32_t k = 0;
    for (uint32_t i = 0; i < n_tok; i++) {
        const tok_ent *e = &t->tok[i];
        if ((e->type != T_CONTROL && e->type != T_USER && e->type != T_UNKNOWN) || !e->len) continue;
        t->spec[k++] = (special){e->text, e->len, (int32_t)i, e->type != T_USER};
        if (eog_text(e) && t->n_eog < (int)(sizeof t->eog / sizeof *t->eog)) t->eog[t->n_eog++] = (int32_t)i;
    }
    qsort(t->spec, n_spec, sizeof *t->spec, cmp_special);
    for (uint32_t i = 0; i < n_spec; i++) {
        uint8_t f = (uint8_t)t->spec[i].text[0];
        if (t->spec_hi[f] == 0) t->spec_lo[f] = i;
        t->spec_hi[f] = i + 1;
    }

    /* BPE scratch */
    t->word_cap = KGR_TOK_WORD_CAP;
    t->sym_id = malloc(t->word_cap * sizeof *t->sym_id);
    t->sym_prev = malloc(t->word_cap * sizeof *t->sym_prev);
    t->sym_next = malloc(t->word_cap * sizeof *t->sym_next);
    t->heap = malloc(3 * t->word_cap * sizeof *t->heap);
    t->text_cap = 3 * KGR_TOK_WORD_CAP;
    t->text = malloc(t->text_cap);
    if (!t->sym_id || !t->sym_prev || !t->sym_next || !t->heap || !t->text) BAD("out of memory");

    kgr_chat_init(t);
    *out = t;
    return 0;
#undef BAD
}

void kgr_tok_free(kgr_tok *t)
{
    if (!t) return;
    free(t->tok);
    free(t->tok_hash);
    free(t->merge);
    free(t->spec);
    free(t->sym_id);
    free(t->sym_prev);
    free(t->sym_next);
    free(t->heap);
    free(t->text);
    free(t->score);
    free(t->spm_sym);
    free(t->spm_heap);
    kgr_wp_free(t);
    free(t);
}

int kgr_tok_n_vocab(const kgr_tok *t) { return t->n_vocab; }
int32_t kgr_tok_bos(const kgr_tok *t) { return t->bos; }
int32_t kgr_tok_eos(const kgr_tok *t) { return t->eos; }
int kgr_tok_max_length(const kgr_tok *t) { return t->wpm ? (int)t->wp.max_length : 0; }

/* ───────────────────────── BPE ───────────────────────── */

static bool grow_scratch(kgr_tok *t, size_t n)
{
    size_t cap = t->word_cap;
    while (cap < n) cap *= 2;
    if (cap > SIZE_MAX / (3 * sizeof(heap_ent))) return false;
    int32_t *a = realloc(t->sym_id, cap * sizeof *a);
    if (a) t->sym_id = a;
    int32_t *b = realloc(t->sym_prev, cap * sizeof *b);
    if (b) t->sym_prev = b;
    int32_t *c = realloc(t->sym_next, cap * sizeof *c);
    if (c) t->sym_next = c;
    heap_ent *h = realloc(t->heap, 3 * cap * sizeof *h);
    if (h) t->heap = h;
    if (!a || !b || !c || !h) return false;
    t->word_cap = cap;
    return true;
}

static inline bool heap_less(const heap_ent *a, const heap_ent *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(heap_ent *h, size_t *n, heap_ent e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static heap_ent heap_pop(heap_ent *h, size_t *n)
{
    heap_ent top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && heap_less(&h[c + 1], &h[c])) c++;
        if (!heap_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static inline void push_pair(const kgr_tok *t, heap_ent *h, size_t *nh, int32_t l, int32_t r)
{
    uint32_t rank;
    int32_t res;
    if (l >= 0 && r >= 0 && merge_find(t, t->sym_id[l], t->sym_id[r], &rank, &res))
        heap_push(h, nh, (heap_ent){rank, (uint32_t)l, t->sym_id[l], t->sym_id[r]});
}

/* The tokens of one pre-tokenized word (n raw bytes at p). */
static int bpe_word(kgr_tok *t, const uint8_t *p, size_t n, sink *k)
{
    if (n == 1) {
        if (t->byte_tok[p[0]] >= 0) emit(k, t->byte_tok[p[0]]);
        return 0;
    }
    if (t->ignore_merges) {
        int32_t id = tok_find_mapped(t, p, n);
        if (id >= 0) {
            emit(k, id);
            return 0;
        }
    }
    if (n > t->word_cap && !grow_scratch(t, n)) return -1;
    int32_t *id = t->sym_id, *prev = t->sym_prev, *next = t->sym_next;
    for (size_t i = 0; i < n; i++) {
        id[i] = t->byte_tok[p[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t nh = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, t->heap, &nh, (int32_t)i, (int32_t)i + 1);
    while (nh) {
        heap_ent e = heap_pop(t->heap, &nh);
        int32_t l = (int32_t)e.left, r = next[l];
        /* stale: l was absorbed (id -2), its neighbour changed, or either changed token */
        if (id[l] != e.lid || r < 0 || id[r] != e.rid) continue;
        uint32_t rank;
        int32_t res;
        if (!merge_find(t, id[l], id[r], &rank, &res)) continue; /* cannot happen: it was found when pushed */
        id[l] = res;
        id[r] = -2;
        next[l] = next[r];
        if (next[r] >= 0) prev[next[r]] = l;
        push_pair(t, t->heap, &nh, prev[l], l);
        push_pair(t, t->heap, &nh, l, next[l]);
    }
    for (int32_t i = 0; i >= 0; i = next[i])
        if (id[i] >= 0) emit(k, id[i]);
    return 0;
}

/* The tokens of the word [i, j) of s, as llama.cpp hands it to BPE: each
 * character (utf8_dec) in shortest-form UTF-8. Only a word with a byte read
 * as U+FFFD (3 bytes for 1) or an overlong form (fewer bytes) changes; it is
 * rewritten into t->text, grown when the word needs more. */
static int bpe_span(kgr_tok *t, const uint8_t *s, size_t i, size_t j, sink *k)
{
    size_t n = 0, len;
    bool same = true;
    if (j - i > SIZE_MAX / 3) return -1;
    for (size_t p = i; p < j; p += len) {
        if (s[p] < 0x80) {
            len = 1, n++;
            continue;
        }
        size_t m = utf8_len(utf8_dec(s, j, p, &len));
        same = same && m == len;
        n += m;
    }
    if (same) return bpe_word(t, s + i, j - i, k);
    if (n > t->text_cap) {
        uint8_t *q = realloc(t->text, n);
        if (!q) return -1;
        t->text = q, t->text_cap = n;
    }
    for (size_t p = i, o = 0; p < j; p += len) o += utf8_put(utf8_dec(s, j, p, &len), t->text + o);
    return bpe_word(t, t->text, n, k);
}

/* ───────────────────────── pre-tokenizers ─────────────────────────
 * Each matcher returns the end of the word that starts at i, in the
 * segment [i, e) (the text between special tokens, or for smollm between
 * digits): the regex sees only the segment. Every step moves by whole
 * characters as utf8_dec reads them, so each character is read where
 * llama.cpp reads it (it reads the text between special tokens from its
 * start), and none is cut by e. */

/* end of the run of class c starting at i */
static size_t run_of(const kgr_tok *t, const uint8_t *s, size_t i, size_t e, int c)
{
    size_t len;
    while (i < e && cls_at(t, s, e, i, &len, NULL) == c) i += len;
    return i;
}

/* At whitespace i: \s+(?!\S)|\s+ — the whole run if it ends the segment, else
 * the run but its last character, else (a single character) that character.
 * With newlines (Llama 3's \s*[\r\n]+ comes first): through the last \r/\n. */
static size_t space_end(const kgr_tok *t, const uint8_t *s, size_t i, size_t e, bool newlines)
{
    size_t j = i, last = i, nl_end = 0, len;
    uint32_t cp;
    while (j < e && cls_at(t, s, e, j, &len, &cp) == C_SPACE) {
        last = j;
        j += len;
        if (cp == '\r' || cp == '\n') nl_end = j;
    }
    if (newlines && nl_end) return nl_end;
    if (j == e) return e;
    return last > i ? last : j;
}

/* At an apostrophe i (l0 bytes): 's|'t|'re|'ve|'m|'ll|'d, the letters
 * ASCII-case-folded when fold (Llama 3's (?i:...)); the end, or 0. */
static size_t contraction(const uint8_t *s, size_t i, size_t l0, size_t e, bool fold)
{
    size_t p = i + l0, la, lb = 0;
    if (p >= e) return 0;
    uint32_t a = utf8_dec(s, e, p, &la), b = p + la < e ? utf8_dec(s, e, p + la, &lb) : 0;
    if (fold) a |= 0x20, b |= 0x20; /* only 'A'..'Z' become 'a'..'z' among the letters compared */
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return p + la;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return p + la + lb;
    return 0;
}

static size_t match_gpt2(const kgr_tok *t, const uint8_t *s, size_t i, size_t e)
{
    size_t l0, l1, j;
    uint32_t c0;
    int k0 = cls_at(t, s, e, i, &l0, &c0);
    if (c0 == '\'' && (j = contraction(s, i, l0, e, false))) return j;
    if (c0 == ' ' && i + l0 < e) { /* ' ?' before letters, numbers or other */
        int k1 = cls_at(t, s, e, i + l0, &l1, NULL);
        if (k1 != C_SPACE) return run_of(t, s, i + l0, e, k1);
    }
    if (k0 != C_SPACE) return run_of(t, s, i, e, k0);
    return space_end(t, s, i, e, false);
}

/* Llama 3's regex; Qwen2's is the same with \p{N} for \p{N}{1,3} (max_digits 1) */
static size_t match_llama3(const kgr_tok *t, const uint8_t *s, size_t i, size_t e, int max_digits)
{
    size_t l0, l1, j;
    uint32_t c0;
    int k0 = cls_at(t, s, e, i, &l0, &c0);
    if (c0 == '\'' && (j = contraction(s, i, l0, e, true))) return j; /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (k0 == C_LETTER) return run_of(t, s, i, e, C_LETTER); /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (k0 != C_NUMBER && c0 != '\r' && c0 != '\n' && i + l0 < e &&
        cls_at(t, s, e, i + l0, &l1, NULL) == C_LETTER)
        return run_of(t, s, i + l0, e, C_LETTER);
    if (k0 == C_NUMBER) { /* \p{N}{1,3} */
        j = i + l0;
        for (int n = 1; n < max_digits && j < e && cls_at(t, s, e, j, &l1, NULL) == C_NUMBER; n++) j += l1;
        return j;
    }
    size_t k = i; /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    if (c0 == ' ' && i + l0 < e && cls_at(t, s, e, i + l0, &l1, NULL) == C_OTHER) k = i + l0;
    else if (k0 != C_OTHER) k = e;
    if (k < e) {
        j = run_of(t, s, k, e, C_OTHER);
        for (uint32_t c; j < e && ((c = utf8_dec(s, e, j, &l1)) == '\r' || c == '\n');) j += l1;
        return j;
    }
    return space_end(t, s, i, e, true);
}

/* Pre-tokenizes [a, b) and BPEs every word. */
static int pretok(kgr_tok *t, const uint8_t *s, size_t a, size_t b, sink *k)
{
    size_t i = a, len;
    while (i < b) {
        size_t e = b, j;
        if (t->pre == PRE_SMOLLM) {
            if (cls_at(t, s, b, i, &len, NULL) == C_NUMBER) {
                if (bpe_span(t, s, i, i + len, k)) return -1;
                i += len;
                continue;
            }
            for (e = i; e < b && cls_at(t, s, b, e, &len, NULL) != C_NUMBER; e += len) {}
        }
        for (; i < e; i = j) {
            j = t->pre == PRE_LLAMA3   ? match_llama3(t, s, i, e, 3)
                : t->pre == PRE_QWEN2  ? match_llama3(t, s, i, e, 1)
                                       : match_gpt2(t, s, i, e);
            if (bpe_span(t, s, i, j, k)) return -1;
        }
    }
    return 0;
}

/* The text [a, b) between special tokens: pre-tokenized and BPE'd, or
 * SentencePiece's (tok_spm.c; an empty fragment is none, as in llama.cpp). */
static int text_part(kgr_tok *t, const uint8_t *s, size_t a, size_t b, bool *prev_special, sink *k)
{
    if (t->wpm) return a == b ? 0 : kgr_wp_encode(t, s + a, b - a, k);
    if (!t->spm) return pretok(t, s, a, b, k);
    if (a == b) return 0;
    bool prefix = t->add_space_prefix && *prev_special;
    *prev_special = false;
    return kgr_spm_encode(t, s + a, b - a, prefix, k);
}

int kgr_tokenize(kgr_tok *t, const char *text, size_t len, int flags, int32_t *out, int cap)
{
    if (!t || (!text && len) || cap < 0 || (!out && cap > 0) || len > (size_t)INT_MAX - 1) return -1;
    sink k = {out, cap, 0};
    int32_t first = t->wpm ? t->wp.cls : t->bos;
    if ((flags & KGM_TOK_BOS) && t->add_bos && first >= 0) emit(&k, first);
    const uint8_t *s = (const uint8_t *)text;
    bool want_special = flags & KGM_TOK_SPECIAL;
    size_t seg = 0;
    bool prev_special = true; /* SentencePiece: a space prefix for the first fragment and after special tokens */
    for (size_t i = 0; i < len;) {
        uint8_t f = s[i];
        const special *hit = NULL;
        for (uint32_t j = t->spec_lo[f]; j < t->spec_hi[f]; j++) {
            const special *sp = &t->spec[j];
            if ((want_special || !sp->control) && sp->len <= len - i && (sp->len < 2 || s[i + 1] == (uint8_t)sp->text[1]) &&
                memcmp(s + i, sp->text, sp->len) == 0) {
                hit = sp;
                break;
            }
        }
        if (!hit) {
            i++;
            continue;
        }
        if (text_part(t, s, seg, i, &prev_special, &k)) return -1;
        emit(&k, hit->id);
        prev_special = true;
        i += hit->len;
        seg = i;
    }
    if (text_part(t, s, seg, len, &prev_special, &k)) return -1;
    if ((flags & KGM_TOK_BOS) && t->add_bos && t->wpm) emit(&k, t->wp.sep); /* [CLS] text [SEP] */
    return k.n;
}

/* ───────────────────────── pieces, end of generation ───────────────────────── */

int kgr_token_piece(const kgr_tok *t, int32_t tok, char *buf, size_t cap)
{
    if (!t || tok < 0 || tok >= t->n_vocab || (!buf && cap)) return -1;
    const tok_ent *e = &t->tok[tok];
    if (t->spm) return kgr_spm_piece(t, tok, buf, cap);
    if (t->wpm) return kgr_wp_piece(t, tok, buf, cap);
    if (e->type == T_CONTROL || e->type == T_UNKNOWN) return 0;
    const uint8_t *s = (const uint8_t *)e->text;
    bool mapped = e->type != T_USER;
    size_t n = 0, len;
    for (size_t i = 0; mapped && i < e->len; i += len, n++) { /* every character a byte's? */
        uint32_t cp = utf8_dec(s, e->len, i, &len);
        if (cp >= 324 || t->char_byte[cp] < 0) mapped = false;
    }
    if (!mapped) { /* the text itself (as Hugging Face's ByteLevel decoder does) */
        if (cap) memcpy(buf, e->text, e->len < cap ? e->len : cap);
        return e->len > INT_MAX ? -1 : (int)e->len;
    }
    size_t o = 0;
    for (size_t i = 0; i < e->len; i += len) {
        uint32_t cp = utf8_dec(s, e->len, i, &len);
        if (o < cap) buf[o] = (char)t->char_byte[cp];
        o++;
    }
    return (int)n;
}

int kgr_is_eog(const kgr_tok *t, int32_t tok)
{
    if (!t || tok < 0) return 0;
    if (tok == t->eos || tok == t->eot) return 1;
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == tok) return 1;
    return 0;
}

