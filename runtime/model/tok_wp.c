/*
 * tok_wp.c — WordPiece (BERT encoders), as Hugging Face tokenizers'
 * BertNormalizer + BertPreTokenizer + WordPiece model do it. The blob's
 * WordPiece section (gen/tokdata.c documents it) gives the flags, the
 * continuing-subword prefix, max_input_chars_per_word and the special ids;
 * tokenizer.c reads it and matches special tokens before calling
 * kgr_wp_encode on the text between them.
 *
 * Per code point of the text (read as below), in HF's order:
 *   clean_text            NUL, U+FFFD and control characters are dropped,
 *                         whitespace becomes a space;
 *   handle_chinese_chars  a CJK ideograph becomes a word of its own (HF puts
 *                         spaces around it);
 *   strip_accents         NFD, then nonspacing marks (Mn) dropped; Hangul
 *                         syllables decompose by the Unicode algorithm;
 *   lowercase             char::to_lowercase (one to three code points),
 * then the pre-tokenizer: whitespace ends a word, punctuation (ASCII
 * punctuation and Unicode P*) is a word of its own. The per-code-point facts
 * are unicode_bert_tab.h's tables: what HF tokenizers does to each code point,
 * probed by scripts/gen_unicode.py (its Unicode data is not Python's). NFD's
 * canonical reordering of marks across characters is not done: it changes
 * the result only where two marks that strip_accents keeps (Mc or Me, or Mn
 * newer than HF's data) with different nonzero combining classes are
 * adjacent, where kgen keeps them in text order.
 *
 * Each word of at most max_input_chars_per_word characters (code points,
 * after normalization) is split greedily, longest match first: the longest
 * token that is a prefix of the rest of the word, spelled with the
 * continuing prefix ("##") after the first piece. A word with a position no
 * token matches, or longer than the limit, is the unknown token alone.
 *
 * Text that is not UTF-8: each byte that does not start a well-formed
 * (shortest-form, no surrogate, <= U+10FFFF) UTF-8 sequence reads as U+FFFD,
 * and the next character starts at the next byte; clean_text then drops it
 * (without clean_text it is a character of its word, [UNK] in BERT's vocab).
 *
 * Pieces (kgr_token_piece), so that the pieces of an encoding, concatenated,
 * are HF's WordPiece decoder's text (cleanup off) with one leading space:
 * a token spelled with the continuing prefix is its text without it (it joins
 * the previous piece); any other normal token is a space and its text;
 * control and unknown tokens ([CLS], [SEP], [PAD], [MASK], [UNK]) are "",
 * user-defined added tokens their text.
 *
 * Memory: the word buffer (4 bytes per character up to the limit) and the
 * character offsets are allocated by kgr_wp_init; encoding allocates nothing.
 */
#include "tok_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "unicode_bert_tab.h"

enum { F_WS = 1, F_DROP = 2, F_SPACE = 4, F_PUNCT = 8, F_MARK = 16, F_CJK = 32 };

static unsigned tab_flags(uint32_t cp)
{
    size_t lo = 0, hi = KGR_BERT_TAB_N; /* the last run with start <= cp */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if ((kgr_bert_tab[mid] >> 6) <= cp) lo = mid;
        else hi = mid;
    }
    return kgr_bert_tab[lo] & 63u;
}

static inline unsigned flags_of(const tok_wp *w, uint32_t cp) { return cp < 128 ? w->ascii[cp] : tab_flags(cp); }

/* A code point's entry in a (code point, offset << 3 | length) map: its
 * code points in kgr_bert_pool, their count in *n; NULL when not there. */
static const uint32_t *map_find(const uint32_t *map, size_t n_pairs, uint32_t cp, size_t *n)
{
    size_t lo = 0, hi = n_pairs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (map[2 * mid] < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo == n_pairs || map[2 * lo] != cp) return NULL;
    *n = map[2 * lo + 1] & 7u;
    return &kgr_bert_pool[map[2 * lo + 1] >> 3];
}

/* Well-formed UTF-8 (RFC 3629) at s[i] (e - i bytes left); else U+FFFD, one byte. */
static inline uint32_t utf8_strict(const uint8_t *s, size_t e, size_t i, size_t *len)
{
    uint8_t c = s[i];
    *len = 1;
    if (c < 0x80) return c;
    size_t need;
    uint32_t cp;
    uint8_t lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) need = 1, cp = c & 0x1Fu;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2, cp = c & 0x0Fu;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3, cp = c & 0x07u;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return CP_REPL;
    if (e - i <= need || s[i + 1] < lo || s[i + 1] > hi) return CP_REPL;
    for (size_t k = 1; k <= need; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return CP_REPL;
        cp = cp << 6 | (s[i + k] & 0x3Fu);
    }
    *len = need + 1;
    return cp;
}

static size_t put_utf8(uint32_t cp, uint8_t *o)
{
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { o[0] = (uint8_t)(0xC0 | cp >> 6); o[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12), o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)), o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18), o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)), o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

int kgr_wp_init(kgr_tok *t, char *err, size_t errcap)
{
    tok_wp *w = &t->wp;
    w->prefix_hash = hash_bytes(HASH0, (const uint8_t *)w->prefix, w->prefix_len);
    for (int i = 0; i < t->n_vocab; i++)
        if (t->tok[i].len > w->max_tok_len) w->max_tok_len = t->tok[i].len;
    for (uint32_t c = 0; c < 128; c++) w->ascii[c] = (uint8_t)tab_flags(c);
    w->word = malloc((size_t)w->max_chars * 4);
    w->off = malloc(((size_t)w->max_chars + 1) * sizeof *w->off);
    if (!w->word || !w->off) return kgr_msg(err, errcap, "tokenizer: out of memory");
    return 0;
}

void kgr_wp_free(kgr_tok *t)
{
    free(t->wp.word);
    free(t->wp.off);
}

/* the word being built: n characters (counted past max_chars, stored up to it) */
typedef struct word {
    uint32_t n;
    size_t bytes;
} word;

/* WordPiece on the word in w->word; emits its tokens, or the unknown token. */
static void word_end(kgr_tok *t, word *wd, sink *k)
{
    tok_wp *w = &t->wp;
    uint32_t n = wd->n;
    wd->n = 0, wd->bytes = 0;
    if (n == 0) return;
    if (n > w->max_chars) {
        emit(k, t->unk);
        return;
    }
    const uint32_t *off = w->off;
    const char *text = (const char *)w->word;
    int at = k->n; /* rewound when the word has no segmentation */
    for (uint32_t i = 0; i < n;) {
        uint32_t plen = i ? w->prefix_len : 0, h0 = i ? w->prefix_hash : HASH0;
        int32_t id = -1;
        uint32_t j = n;
        while (j > i && off[j] - off[i] + plen > w->max_tok_len) j--;
        for (; j > i; j--) {
            size_t len = off[j] - off[i];
            uint32_t hv = hash_bytes(h0, (const uint8_t *)text + off[i], len);
            id = i ? tok_find_h(t, hv, w->prefix, plen, text + off[i], len) : tok_find_h(t, hv, text, len, NULL, 0);
            if (id >= 0) break;
        }
        if (id < 0) {
            k->n = at;
            emit(k, t->unk);
            return;
        }
        emit(k, id);
        i = j;
    }
}

static inline void word_add(tok_wp *w, word *wd, uint32_t cp)
{
    if (wd->n < w->max_chars) {
        w->off[wd->n] = (uint32_t)wd->bytes;
        wd->bytes += put_utf8(cp, w->word + wd->bytes);
        w->off[wd->n + 1] = (uint32_t)wd->bytes;
    }
    if (wd->n <= w->max_chars) wd->n++; /* max_chars + 1: too long, whatever follows */
}

/* One normalized code point through the pre-tokenizer. */
static inline void pre_cp(kgr_tok *t, word *wd, uint32_t cp, sink *k)
{
    tok_wp *w = &t->wp;
    unsigned f = flags_of(w, cp);
    if (f & F_WS) {
        word_end(t, wd, k);
    } else if (f & F_PUNCT) {
        word_end(t, wd, k);
        word_add(w, wd, cp);
        word_end(t, wd, k);
    } else {
        word_add(w, wd, cp);
    }
}

/* lowercase, then the pre-tokenizer */
static inline void lower_cp(kgr_tok *t, word *wd, uint32_t cp, sink *k)
{
    if (!t->wp.lowercase) {
        pre_cp(t, wd, cp, k);
    } else if (cp < 128) {
        pre_cp(t, wd, cp >= 'A' && cp <= 'Z' ? cp + 32 : cp, k);
    } else {
        size_t n;
        const uint32_t *m = map_find(kgr_bert_lower, KGR_BERT_LOWER_N / 2, cp, &n);
        if (!m) pre_cp(t, wd, cp, k);
        else
            for (size_t i = 0; i < n; i++) pre_cp(t, wd, m[i], k);
    }
}

/* strip_accents, then lowercase */
static void norm_cp(kgr_tok *t, word *wd, uint32_t cp, unsigned f, sink *k)
{
    if (!t->wp.strip_accents || cp < 128) {
        lower_cp(t, wd, cp, k);
        return;
    }
    if (f & F_MARK) return;
    if (cp >= 0xAC00 && cp < 0xAC00 + 11172) { /* Hangul syllable: L V (T) */
        uint32_t s = cp - 0xAC00;
        lower_cp(t, wd, 0x1100 + s / (21 * 28), k);
        lower_cp(t, wd, 0x1161 + s % (21 * 28) / 28, k);
        if (s % 28) lower_cp(t, wd, 0x11A7 + s % 28, k);
        return;
    }
    size_t n;
    const uint32_t *m = map_find(kgr_bert_strip, KGR_BERT_STRIP_N / 2, cp, &n);
    if (!m) lower_cp(t, wd, cp, k);
    else
        for (size_t i = 0; i < n; i++) lower_cp(t, wd, m[i], k);
}

int kgr_wp_encode(kgr_tok *t, const uint8_t *s, size_t n, sink *k)
{
    tok_wp *w = &t->wp;
    word wd = {0, 0};
    size_t len;
    for (size_t i = 0; i < n; i += len) {
        uint32_t cp = utf8_strict(s, n, i, &len);
        unsigned f = flags_of(w, cp);
        if (w->clean) {
            if (f & F_DROP) continue;
            if (f & F_SPACE) cp = ' ', f = flags_of(w, ' ');
        }
        if (w->chinese && (f & F_CJK)) {
            word_end(t, &wd, k);
            norm_cp(t, &wd, cp, f, k);
            word_end(t, &wd, k);
            continue;
        }
        norm_cp(t, &wd, cp, f, k);
    }
    word_end(t, &wd, k);
    return 0;
}

int kgr_wp_piece(const kgr_tok *t, int32_t tok, char *buf, size_t cap)
{
    const tok_ent *e = &t->tok[tok];
    const tok_wp *w = &t->wp;
    if (e->type == T_CONTROL || e->type == T_UNKNOWN) return 0;
    const char *p = e->text;
    size_t n = e->len, o = 0;
    if (e->type != T_USER) {
        if (w->prefix_len && n >= w->prefix_len && memcmp(p, w->prefix, w->prefix_len) == 0) {
            p += w->prefix_len, n -= w->prefix_len;
        } else {
            if (cap) buf[0] = ' ';
            o = 1;
        }
    }
    if (n > (size_t)INT_MAX - 1) return -1;
    if (o < cap) memcpy(buf + o, p, n < cap - o ? n : cap - o);
    return (int)(o + n);
}
