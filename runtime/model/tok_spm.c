/*
 * tok_spm.c — SentencePiece-style vocabularies (GGUF tokenizer.ggml.model =
 * "llama": Gemma, Llama 2, TinyLlama), tokenized as llama.cpp's
 * llm_tokenizer_spm does, which is SentencePiece's BPE-model encoding:
 *
 *   kgr_tokenize splits the text at special tokens first (tokenizer.c: user-
 *   defined tokens always, control and unknown ones with KGM_TOK_SPECIAL);
 *   each fragment of text between them is then, here:
 *   1. prefixed with a space when add_space_prefix is set and the fragment is
 *      the first or follows a special token (llama.cpp's rule: a prefix after
 *      every special token, not only at the start);
 *   2. escaped: every ' ' becomes U+2581 (▁); nothing else changes (no
 *      normalization: llama.cpp applies none);
 *   3. split into symbols of one character each, a character's length read
 *      from its first byte alone, as llama.cpp's unicode_len_utf8 does
 *      (00..BF: 1, C0..DF: 2, E0..EF: 3, F0..FF: 4, cut at the end of the
 *      fragment): bytes that are not UTF-8 are not replaced, a stray lead
 *      byte takes the bytes after it with it;
 *   4. merged: every adjacent pair whose concatenated text is a token (any
 *      token, whatever its type, as llama.cpp's text_to_token) is a candidate
 *      with that token's score; repeatedly the candidate with the highest
 *      score (the leftmost on ties) whose two symbols are still as they were
 *      is merged, and the new symbol's pairs with its neighbours become
 *      candidates (a binary heap: O(n log n) in the fragment's length);
 *   5. each final symbol is its token, or, when its text is no token (a
 *      single character the vocabulary lacks), its bytes' tokens (byte
 *      fallback: the token <0xXX>, else the byte's own one-byte text, else
 *      the unknown token, else nothing).
 *
 * Pieces (kgr_spm_piece, as llama.cpp's token_to_piece without special):
 * normal tokens their text with ▁ as a space; user-defined tokens their text
 * as is; byte tokens <0xXX> the byte; control, unknown, unused and undefined
 * tokens nothing. With add_space_prefix, the text of tokens starts with the
 * prefix space (llama.cpp's llama_detokenize drops it; kgm_token_piece is
 * per token, so the caller sees it).
 *
 * Scratch: symbols and heap for fragments of up to spm_cap characters,
 * grown in kgr_tokenize for a longer one (kept; freed by kgr_tok_free), and
 * t->text for the escaped fragment.
 */
#include "tok_int.h"

#include <stdlib.h>
#include <string.h>

static const char hexd[] = "0123456789ABCDEF";

/* The byte-fallback token of each byte (llama.cpp's byte_to_token: "<0xXX>",
 * else the byte's own text), else the unknown token, else -1. */
int kgr_spm_init(kgr_tok *t, char *err, size_t errcap)
{
    for (int b = 0; b < 256; b++) {
        char name[6] = {'<', '0', 'x', hexd[b >> 4], hexd[b & 15], '>'}, one = (char)b;
        int32_t id = tok_find(t, name, 6);
        if (id < 0) id = tok_find(t, &one, 1);
        t->byte_tok[b] = id >= 0 ? id : t->unk;
    }
    t->spm_cap = KGR_TOK_WORD_CAP;
    t->spm_sym = malloc(t->spm_cap * sizeof *t->spm_sym);
    t->spm_heap = malloc(3 * t->spm_cap * sizeof *t->spm_heap);
    if (!t->spm_sym || !t->spm_heap) return kgr_msg(err, errcap, "tokenizer: out of memory");
    return 0;
}

static bool grow(kgr_tok *t, size_t n_sym, size_t n_text)
{
    if (n_text > t->text_cap) {
        uint8_t *q = realloc(t->text, n_text);
        if (!q) return false;
        t->text = q, t->text_cap = n_text;
    }
    if (n_sym <= t->spm_cap) return true;
    size_t cap = t->spm_cap;
    while (cap < n_sym) cap *= 2;
    if (cap > INT32_MAX || cap > SIZE_MAX / (3 * sizeof(spm_big))) return false;
    spm_sym *a = realloc(t->spm_sym, cap * sizeof *a);
    if (a) t->spm_sym = a;
    spm_big *h = realloc(t->spm_heap, 3 * cap * sizeof *h);
    if (h) t->spm_heap = h;
    if (!a || !h) return false;
    t->spm_cap = cap;
    return true;
}

/* a pops before b: the higher score, then the leftmost (llama.cpp's llm_bigram_spm comparator) */
static inline bool before(const spm_big *a, const spm_big *b) { return a->key > b->key; }

/* a finite float's bits as an unsigned integer in the same order (-0 is +0 at init) */
static inline uint64_t score_key(float f, int32_t left)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u = u & 0x80000000u ? ~u : u | 0x80000000u;
    return (uint64_t)u << 32 | (UINT32_MAX - (uint32_t)left);
}

static void push(spm_big *h, size_t *n, spm_big e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static spm_big pop(spm_big *h, size_t *n)
{
    spm_big top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && before(&h[c + 1], &h[c])) c++;
        if (!before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

/* the pair (l, r) as a candidate, if its text is a token */
static inline void try_pair(const kgr_tok *t, spm_big *h, size_t *nh, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return;
    const spm_sym *a = &t->spm_sym[l], *b = &t->spm_sym[r];
    const uint8_t *s = t->text + a->off;
    uint32_t size = a->len + b->len;
    int32_t id = tok_find_h(t, hash_bytes(a->hash, s + a->len, b->len), (const char *)s, size, NULL, 0);
    if (id >= 0) push(h, nh, (spm_big){score_key(t->score[id], l), r, size});
}

static inline size_t lead_len(uint8_t c) { return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

int kgr_spm_encode(kgr_tok *t, const uint8_t *s, size_t n, bool space_prefix, sink *k)
{
    /* 1, 2: the escaped text */
    size_t spaces = space_prefix;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    if (n > (SIZE_MAX - 3) / 3) return -1;
    size_t m = n + space_prefix + 2 * spaces;
    if (!grow(t, 0, m)) return -1;
    uint8_t *o = t->text;
    size_t w = 0;
    if (space_prefix) o[w++] = 0xE2, o[w++] = 0x96, o[w++] = 0x81;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') o[w++] = 0xE2, o[w++] = 0x96, o[w++] = 0x81;
        else o[w++] = s[i];
    }
    /* 3: symbols */
    size_t n_sym = 0;
    for (size_t i = 0; i < m; n_sym++) {
        size_t l = lead_len(o[i]);
        i += l < m - i ? l : m - i;
    }
    if (!grow(t, n_sym, m)) return -1;
    o = t->text;
    spm_sym *sym = t->spm_sym;
    for (size_t i = 0, j = 0; i < m; j++) {
        size_t l = lead_len(o[i]);
        if (l > m - i) l = m - i;
        sym[j] = (spm_sym){(uint32_t)i, (uint32_t)l, (int32_t)j - 1, j + 1 < n_sym ? (int32_t)j + 1 : -1,
                           hash_bytes(HASH0, o + i, l)};
        i += l;
    }
    /* 4: merges */
    spm_big *h = t->spm_heap;
    size_t nh = 0;
    for (size_t i = 1; i < n_sym; i++) try_pair(t, h, &nh, (int32_t)i - 1, (int32_t)i);
    while (nh) {
        spm_big b = pop(h, &nh);
        int32_t left = (int32_t)(UINT32_MAX - (uint32_t)b.key);
        spm_sym *l = &sym[left], *r = &sym[b.right];
        if (!l->len || !r->len || l->len + r->len != b.size) continue; /* one of them changed */
        l->hash = hash_bytes(l->hash, o + r->off, r->len);
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = left;
        try_pair(t, h, &nh, l->prev, left);
        try_pair(t, h, &nh, left, l->next);
    }
    /* 5: tokens */
    for (int32_t i = n_sym ? 0 : -1; i >= 0; i = sym[i].next) {
        int32_t id = tok_find_h(t, sym[i].hash, (const char *)o + sym[i].off, sym[i].len, NULL, 0);
        if (id >= 0) {
            emit(k, id);
            continue;
        }
        for (uint32_t j = 0; j < sym[i].len; j++)
            if (t->byte_tok[o[sym[i].off + j]] >= 0) emit(k, t->byte_tok[o[sym[i].off + j]]);
    }
    return 0;
}

static int hexv(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

int kgr_spm_piece(const kgr_tok *t, int32_t tok, char *buf, size_t cap)
{
    const tok_ent *e = &t->tok[tok];
    size_t o = 0;
    if (e->type == T_BYTE && e->len == 6 && !memcmp(e->text, "<0x", 3) && e->text[5] == '>' && hexv(e->text[3]) >= 0 &&
        hexv(e->text[4]) >= 0) {
        if (cap) buf[0] = (char)(hexv(e->text[3]) << 4 | hexv(e->text[4]));
        return 1;
    }
    if (e->type == T_BYTE || e->type == T_USER) { /* (a byte token not named <0xXX>: its text) */
        if (cap) memcpy(buf, e->text, e->len < cap ? e->len : cap);
        return e->len > INT32_MAX ? -1 : (int)e->len;
    }
    if (e->type != T_NORMAL) return 0;
    for (uint32_t i = 0; i < e->len;) {
        if (e->len - i >= 3 && (uint8_t)e->text[i] == 0xE2 && (uint8_t)e->text[i + 1] == 0x96 &&
            (uint8_t)e->text[i + 2] == 0x81) {
            if (o < cap) buf[o] = ' ';
            o++, i += 3;
        } else {
            if (o < cap) buf[o] = e->text[i];
            o++, i++;
        }
    }
    return o > INT32_MAX ? -1 : (int)o;
}
