/*
 * kt_tok.h — what the tokenizer tests share (tests/kt_tok.c): the real
 * model's tokenizer, blobs from synthetic GGUF key/value lists, tokenize and
 * round-trip helpers, and the reference-file comparison of tok_ref.py's output.
 */
#ifndef KT_TOK_H
#define KT_TOK_H

#include "kt.h"
#include "gen.h"
#include "gguf_writer.h"
#include "rt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMOL "SmolLM2-135M-Instruct.Q4_1.gguf"
#define N_PRE 5 /* SmolLM2's vocabulary with four pre-tokenizers; a SentencePiece one */

typedef struct kvs {
    int n;
    const char *key[32];
    tw_val val[32];
} kvs;

typedef struct small {
    char text[300][16];
    tw_val tok[300];
    int32_t type[300];
    tw_val merge[8];
    int n_tok, n_merge;
} small;

typedef struct copied {
    tw_val *tokens, *merges;
} copied;

typedef struct real {
    bool has[256]; /* bytes with a token */
    int n_missing;
    kg_gguf *g;
    void *blob, *keep;
    size_t size;
    kgr_tok *t;
} real;

typedef struct cmp_run {
    kgr_tok *tk[N_PRE]; /* pre_names[]; NULL: not compared */
    const real *r;      /* the real model (smollm2's chat template), or NULL */
    bool round_trip;
    /* results */
    int n_str, n_invalid, n_failed, n_cmp[N_PRE][2], n_bad, n_rt, n_rt_bad, n_chat, n_chat_bad;
    size_t total_bytes;
    bool no_jinja;
} cmp_run;

#define OPEN_REAL(r)                                                 \
    real r;                                                          \
    char why_[600];                                                  \
    if (!real_open(&r, why_, sizeof why_)) {                         \
        bool absent_ = strstr(why_, "not found") != NULL;            \
        real_free(&r);                                               \
        if (absent_) KT_SKIP("%s", why_);                            \
        KT_REQUIRE(!why_[0] || (printf("    %s\n", why_), 0));       \
    }


const char *model_path(char *buf, size_t cap);
uint64_t rng_next(uint64_t *s);
double now_ms(void);
kgr_tok *tok_from_blob(const void *blob, size_t n, void **keep, char *err, size_t errcap);
int32_t *tokenize(kgr_tok *t, const char *s, size_t len, int flags, int *n);
char *detokenize(const kgr_tok *t, const int32_t *ids, int n, size_t *len);
bool round_trips_to(kgr_tok *t, const char *s, size_t len, const char *expect, size_t elen, const bool *has);
bool round_trips(kgr_tok *t, const char *s, size_t len, const bool *has);
void show(char *dst, size_t cap, const char *s, size_t len);
void kv_set(kvs *k, const char *key, tw_val v);
void kv_del(kvs *k, const char *key);
kg_gguf *kv_open(const kvs *k, tw *w);
kg_status kv_blob(const kvs *k, void **blob, size_t *size);
void small_vocab(small *v, kvs *k);
void real_free(real *r);
bool real_open(real *r, char *why, size_t cap);
void compare_file(const char *path, cmp_run *c);
bool other_pres(real *r, kgr_tok *tk[N_PRE], void *keep[N_PRE], void *blob[N_PRE]);
size_t random_text(uint64_t *rs, char *s, size_t cap, bool invalid);
bool same_ids(const int32_t *a, int na, const int32_t *b, int nb);
void expect_bad(const void *blob, size_t n, const char *what);
void put32(uint8_t *p, uint32_t v);
const char *reference_file(const char *python, const char *script, const char *model, const char *extra,
                           const char *missing, char *why, size_t cap, bool *skip);
extern const char *const pre_names[N_PRE];

#endif
