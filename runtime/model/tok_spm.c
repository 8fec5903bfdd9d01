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
 *      done on each piece of the fragment between cuts, on its own: a cut
 *      before a ▁ character is made where no token with a ▁ after its first
 *      byte spans that ▁ in the text (cut_ok), so that no pair across it is
 *      ever a candidate and the pieces' merges are the whole fragment's
 *      (exact for any vocabulary; Gemma 3 has one such token, ">▁</"; a
 *      vocabulary with more than SPM_BRIDGE_MAX of them is never cut);
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
 * Speed: symbols carry their token ids (one-byte symbols from a table built
 * at init); a pair of two tokens is looked up in a direct-mapped cache of
 * (left id, right id) -> merged token and score before the vocabulary's hash
 * (which compares strings); a piece of up to SPM_SEG_TEXT bytes seen before
 * is its cached tokens (a piece's tokens depend on its bytes alone). Both
 * caches are arrays in kgr_tok (calloc'd by kgr_tok_init: empty), filled as
 * text is tokenized; a collision overwrites. The tokens are the same with
 * or without them.
 *
 * Scratch: symbols and heap for pieces of up to spm_cap characters,
 * grown in kgr_tokenize for a longer one (kept; freed by kgr_tok_free), and
 * t->text for the escaped fragment.
 */
#include "tok_int.h"

#include <stdlib.h>
#include <string.h>

static const char hexd[] = "0123456789ABCDEF";

/* a finite float's bits as an unsigned integer in the same order (-0 is +0 at init) */
static inline uint32_t score_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

/* The byte-fallback token of each byte (llama.cpp's byte_to_token: "<0xXX>",
 * else the byte's own text), else the unknown token, else -1; the token of
 * each one-byte symbol; the tokens with a ▁ after their first byte. */
int kgr_spm_init(kgr_tok *t, char *err, size_t errcap)
{
    for (int b = 0; b < 256; b++) {
        char name[6] = {'<', '0', 'x', hexd[b >> 4], hexd[b & 15], '>'}, one = (char)b;
        int32_t id = tok_find(t, name, 6);
        t->spm_byte_id[b] = tok_find(t, &one, 1);
        if (id < 0) id = t->spm_byte_id[b];
        t->byte_tok[b] = id >= 0 ? id : t->unk;
    }
    t->n_bridge = 0;
    for (int i = 0; i < t->n_vocab && t->n_bridge >= 0; i++) {
        const tok_ent *e = &t->tok[i];
        if (e->len < 4) continue;
        for (const char *q = e->text + 1, *z = e->text + e->len; (q = memchr(q, 0xE2, (size_t)(z - q))); q++) {
            if (z - q < 3 || (uint8_t)q[1] != 0x96 || (uint8_t)q[2] != 0x81) continue;
            uint32_t k = (uint32_t)(q - e->text);
            if (t->n_bridge == SPM_BRIDGE_MAX) {
                t->n_bridge = -1;
                break;
            }
            t->bridge_id[t->n_bridge] = i, t->bridge_k[t->n_bridge++] = k;
        }
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

static inline spm_pc *cache_slot(kgr_tok *t, uint64_t key)
{
    return &t->spm_cache[(key * 0x9E3779B97F4A7C15ull) >> (64 - SPM_CACHE_BITS)];
}

/* the token whose text is the symbol's bytes (one to four), or -1 */
static inline int32_t char_id(kgr_tok *t, const uint8_t *p, uint32_t len)
{
    if (len == 1) return t->spm_byte_id[p[0]];
    uint32_t packed = 0;
    memcpy(&packed, p, len);
    uint64_t key = 1ull << 63 | (uint64_t)len << 32 | packed;
    spm_pc *c = cache_slot(t, key);
    if (c->key != key) *c = (spm_pc){key, tok_find(t, (const char *)p, len), 0};
    return c->id;
}

/* the pair (l, r) as a candidate, if its text is a token (the text of two
 * tokens: the (left id, right id) cache, else the vocabulary) */
static inline void try_pair(kgr_tok *t, const uint8_t *o, spm_big *h, size_t *nh, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return;
    const spm_sym *a = &t->spm_sym[l], *b = &t->spm_sym[r];
    uint32_t size = a->len + b->len;
    int32_t id;
    uint32_t sk;
    if (a->id >= 0 && b->id >= 0) {
        uint64_t key = 1ull << 62 | (uint64_t)a->id << 32 | (uint32_t)b->id;
        spm_pc *c = cache_slot(t, key);
        if (c->key != key) {
            int32_t x = tok_find(t, (const char *)o + a->off, size);
            *c = (spm_pc){key, x, x >= 0 ? score_bits(t->score[x]) : 0};
        }
        id = c->id, sk = c->skey;
    } else {
        id = tok_find(t, (const char *)o + a->off, size);
        sk = id >= 0 ? score_bits(t->score[id]) : 0;
    }
    if (id >= 0) push(h, nh, (spm_big){(uint64_t)sk << 32 | (UINT32_MAX - (uint32_t)l), r, size, id});
}

/* the piece cache's hash of p[0, n), n <= SPM_SEG_TEXT */
static inline uint32_t seg_hash(const uint8_t *p, size_t n)
{
    uint64_t h = n * 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = 0;
        memcpy(&w, p + i, n - i < 8 ? n - i : 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    return (uint32_t)h;
}

static inline size_t lead_len(uint8_t c) { return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

/* Whether the fragment o[0, m) may be cut before the ▁ at p: no token with a
 * ▁ after its first byte spans p there. Then no pair across p is ever a
 * candidate (its text would be such a token), so the merges on each side are
 * those of that side alone, in the same order: the tokens are the same. */
static inline bool cut_ok(const kgr_tok *t, const uint8_t *o, size_t m, size_t p)
{
    for (int i = 0; i < t->n_bridge; i++) {
        const tok_ent *e = &t->tok[t->bridge_id[i]];
        size_t k = t->bridge_k[i];
        if (p >= k && e->len - k <= m - p && !memcmp(o + p - k, e->text, e->len)) return false;
    }
    return true;
}

int kgr_spm_encode(kgr_tok *t, const uint8_t *s, size_t n, bool space_prefix, sink *k)
{
    /* 1, 2: the escaped text */
    size_t spaces = space_prefix;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    if (n > (SIZE_MAX - 3) / 3) return -1;
    size_t m = n + space_prefix + 2 * spaces;
    if (m > UINT32_MAX || !grow(t, 0, m)) return -1;
    uint8_t *o = t->text;
    size_t w = 0;
    if (space_prefix) o[w++] = 0xE2, o[w++] = 0x96, o[w++] = 0x81;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') o[w++] = 0xE2, o[w++] = 0x96, o[w++] = 0x81;
        else o[w++] = s[i];
    }
    /* each piece of the fragment between cuts (cut_ok; none when the
       vocabulary has too many tokens with an inner ▁), on its own */
    for (size_t i = 0; i < m;) {
        size_t e = i + lead_len(o[i]);
        if (e > m) e = m;
        if (t->n_bridge >= 0)
            while (e < m) {
                size_t l = lead_len(o[e]);
                if (l == 3 && m - e >= 3 && o[e] == 0xE2 && o[e + 1] == 0x96 && o[e + 2] == 0x81 && cut_ok(t, o, m, e))
                    break;
                e += l < m - e ? l : m - e;
            }
        else
            e = m;
        /* a piece seen before: its tokens */
        spm_seg *c = NULL;
        if (e - i <= SPM_SEG_TEXT) {
            uint32_t hv = seg_hash(o + i, e - i);
            c = &t->spm_seg_cache[hv >> (32 - SPM_SEG_BITS)];
            if (c->len == e - i && c->hash == hv && !memcmp(c->text, o + i, e - i)) {
                for (int j = 0; j < c->n; j++) emit(k, c->id[j]);
                i = e;
                continue;
            }
            c->len = 0, c->hash = hv;
        }
        /* 3: symbols */
        size_t n_sym = 0;
        for (size_t j = i; j < e; n_sym++) j += lead_len(o[j]);
        if (!grow(t, n_sym, m)) return -1;
        spm_sym *sym = t->spm_sym;
        int32_t ns = 0;
        for (; i < e; ns++) {
            size_t l = lead_len(o[i]);
            if (l > e - i) l = e - i;
            sym[ns] = (spm_sym){(uint32_t)i, (uint32_t)l, ns - 1, ns + 1, char_id(t, o + i, (uint32_t)l)};
            i += l;
        }
        sym[ns - 1].next = -1;
        /* 4: merges */
        spm_big *h = t->spm_heap;
        size_t nh = 0;
        for (int32_t j = 1; j < ns; j++) try_pair(t, o, h, &nh, j - 1, j);
        while (nh) {
            spm_big b = pop(h, &nh);
            int32_t left = (int32_t)(UINT32_MAX - (uint32_t)b.key);
            spm_sym *l = &sym[left], *r = &sym[b.right];
            if (!l->len || !r->len || l->len + r->len != b.size) continue; /* one of them changed */
            l->id = b.id;
            l->len += r->len;
            r->len = 0;
            l->next = r->next;
            if (r->next >= 0) sym[r->next].prev = left;
            try_pair(t, o, h, &nh, l->prev, left);
            try_pair(t, o, h, &nh, left, l->next);
        }
        /* 5: tokens (kept in the piece cache when there are few) */
        size_t nc = 0;
        for (int32_t j = 0; j >= 0; j = sym[j].next) {
            if (sym[j].id >= 0) {
                emit(k, sym[j].id);
                if (c && nc < SPM_SEG_IDS) c->id[nc] = sym[j].id;
                nc++;
                continue;
            }
            for (uint32_t q = 0; q < sym[j].len; q++) {
                int32_t id = t->byte_tok[o[sym[j].off + q]];
                if (id < 0) continue;
                emit(k, id);
                if (c && nc < SPM_SEG_IDS) c->id[nc] = id;
                nc++;
            }
        }
        if (c && nc <= SPM_SEG_IDS) {
            c->n = (uint8_t)nc, c->len = (uint8_t)(e - sym[0].off);
            memcpy(c->text, o + sym[0].off, c->len);
        }
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
