/*
 * tok_int.h — what the tokenizer's files share (runtime/model/tokenizer.c:
 * the blob, special tokens, byte-level BPE, pieces; tok_spm.c: SentencePiece;
 * tok_chat.c: chat templates). Internal to the model runtime (rt.h's rules).
 */
#ifndef KGEN_TOK_INT_H
#define KGEN_TOK_INT_H

#include "rt.h"

#include <string.h>

#define KGR_TOK_WORD_CAP 1024
#define MAX_TOKENS (1u << 24)
#define MAX_MERGES (1u << 24)
#define CP_REPL 0xFFFDu /* U+FFFD: what a byte that is not UTF-8 reads as (utf8_dec) */
#define LOW_CLS 0x800u   /* code points below this have their class in t->low_cls */

enum { C_OTHER = 0, C_LETTER = 1, C_NUMBER = 2, C_SPACE = 3 };
enum { PRE_GPT2, PRE_SMOLLM, PRE_LLAMA3, PRE_QWEN2 };
/* token types (GGUF tokenizer.ggml.token_type, llama.cpp's) */
enum { T_NORMAL = 1, T_UNKNOWN = 2, T_CONTROL = 3, T_USER = 4, T_UNUSED = 5, T_BYTE = 6 };
enum { CHAT_NONE, CHAT_CHATML, CHAT_LLAMA3, CHAT_GEMMA, CHAT_PHI3 };

typedef struct tok_ent {
    const char *text; /* in the blob; as in GGUF (byte-level mapped, or with ▁) */
    uint32_t len;
    uint8_t type;
} tok_ent;

typedef struct tok_slot {
    uint32_t hash; /* of the text */
    uint32_t id1;  /* id + 1; 0: empty slot */
} tok_slot;

typedef struct merge_ent {
    uint64_t key;  /* left << 32 | right */
    uint32_t rank;
    int32_t res1;  /* result id + 1; 0: empty slot */
} merge_ent;

typedef struct special {
    const char *text;
    uint32_t len;
    int32_t id;
    uint8_t control;
} special;

typedef struct heap_ent {
    uint32_t rank, left; /* ordered by (rank, left) */
    int32_t lid, rid;    /* the ids the pair had when pushed (stale check) */
} heap_ent;

typedef struct spm_sym {
    uint32_t off, len;   /* the symbol's bytes in t->text; len 0: merged away */
    int32_t prev, next;
    int32_t id;          /* the token whose text its bytes are, or -1 */
} spm_sym;

typedef struct spm_big {
    uint64_t key;        /* the merged token's score (order-preserving bits) << 32 | ~left:
                            the largest pops first: the highest score, then the leftmost */
    int32_t right;
    uint32_t size;       /* bytes of left + right when pushed (stale check) */
    int32_t id;          /* the merged token */
} spm_big;

/* SentencePiece lookup cache (direct-mapped): key 0 empty; 1 << 62 | left id << 32 | right id: the
 * pair's merged token; 1 << 63 | bytes << 32 | packed bytes: a character's token. id -1: no token. */
typedef struct spm_pc {
    uint64_t key;
    int32_t id;
    uint32_t skey; /* the token's score, order-preserving bits (score_bits) */
} spm_pc;
#define SPM_CACHE_BITS 15

/* SentencePiece piece cache (direct-mapped): a piece of a fragment between two cuts (tok_spm.c) of up
 * to SPM_SEG_TEXT bytes and its tokens, up to SPM_SEG_IDS; len 0: empty slot */
#define SPM_SEG_TEXT 26
#define SPM_SEG_IDS 8
typedef struct spm_seg {
    uint32_t hash;
    uint8_t len, n;
    uint8_t text[SPM_SEG_TEXT];
    int32_t id[SPM_SEG_IDS];
} spm_seg;
#define SPM_SEG_BITS 13
#define SPM_BRIDGE_MAX 16

/* WordPiece (BERT) settings from the blob, and its scratch (tok_wp.c) */
#define WP_MAX_CHARS 4096u   /* the largest max_input_chars_per_word a blob may set */
#define WP_MAX_PREFIX 16u    /* the longest continuing-subword prefix */
typedef struct tok_wp {
    bool lowercase, strip_accents, chinese, clean;
    uint32_t max_chars;       /* max_input_chars_per_word: a longer word is [UNK] */
    uint32_t max_length;      /* the model's maximum sequence length (truncation); 0: none */
    int32_t cls, sep, mask;   /* -1: none */
    const char *prefix;       /* continuing-subword prefix ("##"), in the blob */
    uint32_t prefix_len, prefix_hash;
    uint32_t max_tok_len;     /* the longest token text, bytes: bounds every lookup */
    uint8_t *word;            /* the current word, normalized, UTF-8: 4 * max_chars bytes */
    uint32_t *off;            /* its characters' offsets: max_chars + 1 */
    uint8_t ascii[128];       /* kgr_bert_tab's flags of each ASCII code point */
} tok_wp;

struct kgr_tok {
    int n_vocab, n_merges;
    int32_t bos, eos, unk, pad, eot;
    bool add_bos, ignore_merges;
    bool spm, add_space_prefix; /* SentencePiece-style ("llama") vocabulary */
    bool wpm;                   /* WordPiece (format version 3, flag bit 3): wp below */
    tok_wp wp;
    int pre;
    tok_ent *tok;               /* [n_vocab] */
    float *score;               /* [n_vocab], SentencePiece only */
    tok_slot *tok_hash;         /* tok_mask + 1 slots */
    uint32_t tok_mask;
    merge_ent *merge;           /* merge_mask + 1 slots */
    uint32_t merge_mask;
    int32_t byte_tok[256];      /* BPE: token of each byte's character; SPM: byte fallback token; -1: none */
    uint8_t byte_utf8[256][2];  /* GPT-2 byte-to-unicode character of each byte, UTF-8 */
    uint8_t byte_utf8_len[256];
    int16_t char_byte[324];     /* inverse: code point -> byte, -1 */
    uint8_t low_cls[LOW_CLS];
    special *spec;              /* sorted by first byte, then longest first */
    uint32_t spec_lo[256], spec_hi[256];
    int n_eog;
    int32_t eog[16];
    /* chat */
    int chat;
    const char *tmpl;
    uint32_t tmpl_len;
    const char *defsys;         /* ChatML default system message: Jinja literal body */
    uint32_t defsys_len;
    /* BPE scratch: words up to word_cap bytes */
    size_t word_cap;
    int32_t *sym_id, *sym_prev, *sym_next;
    heap_ent *heap;
    /* SPM scratch: spm_cap symbols, 3 * spm_cap bigrams */
    size_t spm_cap;
    spm_sym *spm_sym;
    spm_big *spm_heap;
    /* SPM lookups: token of each one-byte symbol; tokens with a ▁ after their first byte (where a
       fragment may not be cut; n_bridge -1: too many, never cut); the pair and character cache, the piece cache
       (kgr_tok is calloc'd: both start empty) */
    int32_t spm_byte_id[256];
    int n_bridge;
    int32_t bridge_id[SPM_BRIDGE_MAX];
    uint32_t bridge_k[SPM_BRIDGE_MAX]; /* the ▁'s byte offset in the token */
    spm_pc spm_cache[1u << SPM_CACHE_BITS];
    spm_seg spm_seg_cache[1u << SPM_SEG_BITS];
    /* a word with bytes utf8_dec replaces or shortens, rewritten (BPE), or a
       fragment with its spaces escaped (SPM): up to text_cap bytes */
    size_t text_cap;
    uint8_t *text;
};

static inline uint32_t hash_bytes(uint32_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}
#define HASH0 2166136261u

/* The token whose text is a (na bytes) then b (nb bytes; the two parts of a
 * merge, or b empty), whose hash is hv; or -1. */
static inline int32_t tok_find_h(const kgr_tok *t, uint32_t hv, const char *a, size_t na, const char *b, size_t nb)
{
    for (uint32_t h = hv & t->tok_mask, v; (v = t->tok_hash[h].id1); h = (h + 1) & t->tok_mask) {
        const tok_ent *e = &t->tok[v - 1];
        if (t->tok_hash[h].hash == hv && e->len == na + nb && memcmp(e->text, a, na) == 0 &&
            (!nb || memcmp(e->text + na, b, nb) == 0))
            return (int32_t)(v - 1);
    }
    return -1;
}

/* The token whose text is `n` bytes at p, or -1. */
static inline int32_t tok_find(const kgr_tok *t, const char *p, size_t n)
{
    return tok_find_h(t, hash_bytes(HASH0, (const uint8_t *)p, n), p, n, NULL, 0);
}

/* token ids written into out[0..cap), counted past it */
typedef struct sink {
    int32_t *out;
    int cap, n;
} sink;

static inline void emit(sink *k, int32_t id)
{
    if (k->n < k->cap) k->out[k->n] = id;
    k->n++;
}

/* tok_spm.c */
int kgr_spm_init(kgr_tok *t, char *err, size_t errcap);      /* byte fallback tokens, scratch */
int kgr_spm_encode(kgr_tok *t, const uint8_t *s, size_t n, bool space_prefix, sink *k);
int kgr_spm_piece(const kgr_tok *t, int32_t tok, char *buf, size_t cap);

/* tok_wp.c */
int kgr_wp_init(kgr_tok *t, char *err, size_t errcap); /* scratch; after the tokens are read */
void kgr_wp_free(kgr_tok *t);
int kgr_wp_encode(kgr_tok *t, const uint8_t *s, size_t n, sink *k);
int kgr_wp_piece(const kgr_tok *t, int32_t tok, char *buf, size_t cap);

/* tok_chat.c */
void kgr_chat_init(kgr_tok *t);

#endif
