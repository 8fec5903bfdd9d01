/*
 * kt_tok.c — helpers the tokenizer tests share (declared in kt_tok.h).
 */
#include "kt_tok.h"
#include "chat_tmpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ───────────────────────── helpers ───────────────────────── */

const char *model_path(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", kt_models_dir(), SMOL);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double now_ms(void) /* this thread's CPU time: steadier than wall time on a busy machine */
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A tokenizer from a blob; the blob is copied into an exact-size buffer (so
 * ASan sees any read past it) which *keep receives (the tokenizer points into it). */
kgr_tok *tok_from_blob(const void *blob, size_t n, void **keep, char *err, size_t errcap)
{
    void *copy = malloc(n ? n : 1);
    if (!copy) return NULL;
    if (n) memcpy(copy, blob, n);
    kgr_tok *t = NULL;
    if (kgr_tok_init(&t, copy, n, err, errcap) != 0) {
        free(copy);
        return NULL;
    }
    *keep = copy;
    return t;
}

/* All tokens of text (malloc'd, *n set), or NULL. */
int32_t *tokenize(kgr_tok *t, const char *s, size_t len, int flags, int *n)
{
    *n = kgr_tokenize(t, s, len, flags, NULL, 0);
    if (*n < 0) return NULL;
    int32_t *ids = malloc(((size_t)*n + 1) * sizeof *ids);
    if (!ids) return NULL;
    int m = kgr_tokenize(t, s, len, flags, ids, *n);
    if (m != *n) {
        free(ids);
        return NULL;
    }
    return ids;
}

/* Concatenated pieces of ids (malloc'd, NUL-terminated), length in *len. */
char *detokenize(const kgr_tok *t, const int32_t *ids, int n, size_t *len)
{
    size_t cap = 64, o = 0;
    char *s = malloc(cap);
    for (int i = 0; s && i < n; i++) {
        int k = kgr_token_piece(t, ids[i], NULL, 0);
        if (k < 0) { free(s); return NULL; }
        while (o + (size_t)k + 1 > cap) {
            cap *= 2;
            char *q = realloc(s, cap);
            if (!q) { free(s); return NULL; }
            s = q;
        }
        if (kgr_token_piece(t, ids[i], s + o, (size_t)k) != k) { free(s); return NULL; }
        o += (size_t)k;
    }
    if (s) s[o] = 0;
    *len = o;
    return s;
}

/* Tokenize s (no special tokens) and detokenize: the text `expect` (elen
 * bytes), less the bytes the vocabulary has no token for (has: NULL when it
 * has all 256)? */
bool round_trips_to(kgr_tok *t, const char *s, size_t len, const char *expect, size_t elen, const bool *has)
{
    int n;
    int32_t *ids = tokenize(t, s, len, 0, &n);
    char *want = malloc(elen + 1);
    size_t m, w = 0;
    for (size_t i = 0; want && i < elen; i++)
        if (!has || has[(unsigned char)expect[i]]) want[w++] = expect[i];
    char *back = ids ? detokenize(t, ids, n, &m) : NULL;
    bool ok = back && want && m == w && memcmp(back, want, w) == 0;
    free(ids);
    free(back);
    free(want);
    return ok;
}

/* the same bytes back (valid UTF-8 text) */
bool round_trips(kgr_tok *t, const char *s, size_t len, const bool *has)
{
    return round_trips_to(t, s, len, s, len, has);
}

void show(char *dst, size_t cap, const char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        o += (size_t)(c >= 0x20 && c < 0x7f && c != '\\' ? snprintf(dst + o, cap - o, "%c", c)
                                                          : snprintf(dst + o, cap - o, "\\x%02x", c));
    }
    dst[o] = 0;
}

/* ── synthetic GGUFs: a list of key/value pairs, written with no tensors ── */


void kv_set(kvs *k, const char *key, tw_val v)
{
    for (int i = 0; i < k->n; i++)
        if (!strcmp(k->key[i], key)) { k->val[i] = v; return; }
    if (k->n < 32) k->key[k->n] = key, k->val[k->n++] = v;
}

void kv_del(kvs *k, const char *key)
{
    for (int i = 0; i < k->n; i++)
        if (!strcmp(k->key[i], key)) {
            k->n--;
            memmove(&k->key[i], &k->key[i + 1], (size_t)(k->n - i) * sizeof k->key[0]);
            memmove(&k->val[i], &k->val[i + 1], (size_t)(k->n - i) * sizeof k->val[0]);
            return;
        }
}

/* Writes the GGUF into w and opens it; NULL if the reader refuses it. */
kg_gguf *kv_open(const kvs *k, tw *w)
{
    tw_init(w);
    tw_header(w, 3, 0, (uint64_t)k->n);
    for (int i = 0; i < k->n; i++) tw_kv(w, k->key[i], &k->val[i]);
    kg_gguf *g = NULL;
    if (kg_gguf_open_memory(w->buf, w->len, "synthetic.gguf", &g) != KG_OK) return NULL;
    return g;
}

/* gen_tokdata on k; KG_OK and the blob, or the status (message in kg_last_error). */
kg_status kv_blob(const kvs *k, void **blob, size_t *size)
{
    tw w;
    kg_gguf *g = kv_open(k, &w);
    kg_status s = g ? gen_tokdata(g, NULL, blob, size) : KG_ERR_FORMAT;
    kg_gguf_close(g);
    tw_free(&w);
    return s;
}

/* A small vocabulary: <|endoftext|> (control), the 256 byte characters, a
 * few merged tokens, <|im_start|> <|im_end|> (control), <extra> (user-defined),
 * Ġxyz (no merge makes it). Ids: 0, 1..256, 257.. in the order of `extra`. */

static void gpt2_char(int b, char *out) /* GPT-2's byte-to-unicode character of byte b, UTF-8 */
{
    int n = 0, cp = -1;
    for (int x = 0; x < 256 && cp < 0; x++) {
        bool self = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174);
        if (x == b) cp = self ? x : 256 + n;
        if (!self) n++;
    }
    if (cp < 0x80) out[0] = (char)cp, out[1] = 0;
    else out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
}

void small_vocab(small *v, kvs *k)
{
    memset(v, 0, sizeof *v);
    static const char *extra[] = {"Ġt", "he", "Ġthe", "in", "Ġin", "<|im_start|>", "<|im_end|>", "<extra>", "Ġxyz"};
    static const char *merges[] = {"Ġ t", "h e", "Ġt he", "i n", "Ġ in"};
    int n = 0;
    strcpy(v->text[n], "<|endoftext|>"), v->type[n++] = 3;
    for (int b = 0; b < 256; b++) gpt2_char(b, v->text[n]), v->type[n++] = 1;
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++)
        strcpy(v->text[n], extra[i]), v->type[n++] = i == 7 ? 4 : i == 5 || i == 6 ? 3 : 1;
    for (int i = 0; i < n; i++) v->tok[i] = tw_cs(v->text[i]);
    v->n_tok = n;
    for (size_t i = 0; i < sizeof merges / sizeof *merges; i++) v->merge[i] = tw_cs(merges[i]);
    v->n_merge = (int)(sizeof merges / sizeof *merges);
    k->n = 0;
    kv_set(k, "general.architecture", tw_cs("llama"));
    kv_set(k, "tokenizer.ggml.model", tw_cs("gpt2"));
    kv_set(k, "tokenizer.ggml.pre", tw_cs("gpt2"));
    kv_set(k, "tokenizer.ggml.tokens", tw_arr_of(KG_V_STRING, (uint64_t)v->n_tok, v->tok));
    kv_set(k, "tokenizer.ggml.token_type", tw_arr(KG_V_I32, (uint64_t)v->n_tok, v->type));
    kv_set(k, "tokenizer.ggml.merges", tw_arr_of(KG_V_STRING, (uint64_t)v->n_merge, v->merge));
    kv_set(k, "tokenizer.ggml.bos_token_id", tw_int(KG_V_U32, 257 + 5));
    kv_set(k, "tokenizer.ggml.eos_token_id", tw_int(KG_V_U32, 257 + 6));
    kv_set(k, "tokenizer.ggml.add_bos_token", tw_int(KG_V_BOOL, 1));
    kv_set(k, "tokenizer.chat_template", tw_cs("{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}"));
}

/* Which bytes have a token in g's vocabulary (by GPT-2's byte-to-unicode
 * characters); *n_missing counts those that do not. */
static void byte_tokens(const kg_gguf *g, bool has[256], int *n_missing)
{
    char ch[256][3];
    for (int b = 0; b < 256; b++) gpt2_char(b, ch[b]), has[b] = false;
    const kg_value *tok = kg_gguf_find(g, "tokenizer.ggml.tokens");
    for (uint64_t i = 0; tok && i < tok->arr.n; i++) {
        kg_str s = tok->arr.strs[i];
        if (s.len > 2) continue;
        for (int b = 0; b < 256; b++)
            if (s.len == strlen(ch[b]) && !memcmp(s.ptr, ch[b], s.len)) has[b] = true;
    }
    *n_missing = 0;
    for (int b = 0; b < 256; b++) *n_missing += !has[b];
}

/* ── the real model's tokenizer keys, copied into a kvs (to vary the pre-tokenizer) ── */


static bool copy_real(const kg_gguf *g, kvs *k, copied *c)
{
    const kg_value *tok = kg_gguf_find(g, "tokenizer.ggml.tokens"), *mer = kg_gguf_find(g, "tokenizer.ggml.merges"),
                   *ty = kg_gguf_find(g, "tokenizer.ggml.token_type");
    if (!tok || !mer || !ty || ty->arr.type != KG_V_I32) return false;
    c->tokens = malloc(tok->arr.n * sizeof *c->tokens);
    c->merges = malloc(mer->arr.n * sizeof *c->merges);
    if (!c->tokens || !c->merges) return false;
    for (uint64_t i = 0; i < tok->arr.n; i++) c->tokens[i] = tw_s(tok->arr.strs[i].ptr, tok->arr.strs[i].len);
    for (uint64_t i = 0; i < mer->arr.n; i++) c->merges[i] = tw_s(mer->arr.strs[i].ptr, mer->arr.strs[i].len);
    k->n = 0;
    kv_set(k, "tokenizer.ggml.model", tw_cs("gpt2"));
    kv_set(k, "tokenizer.ggml.tokens", tw_arr_of(KG_V_STRING, tok->arr.n, c->tokens));
    kv_set(k, "tokenizer.ggml.token_type", tw_arr(KG_V_I32, ty->arr.n, ty->arr.raw));
    kv_set(k, "tokenizer.ggml.merges", tw_arr_of(KG_V_STRING, mer->arr.n, c->merges));
    kv_set(k, "tokenizer.ggml.bos_token_id", tw_int(KG_V_U32, 1));
    kv_set(k, "tokenizer.ggml.eos_token_id", tw_int(KG_V_U32, 2));
    kv_set(k, "tokenizer.ggml.add_bos_token", tw_int(KG_V_BOOL, 0));
    return true;
}

/* The real model's blob (from its GGUF) and tokenizer; false (skip) without the model. */

void real_free(real *r)
{
    kgr_tok_free(r->t);
    free(r->keep);
    free(r->blob);
    kg_gguf_close(r->g);
}

bool real_open(real *r, char *why, size_t cap)
{
    memset(r, 0, sizeof *r);
    char path[512], err[512];
    if (!model_path(path, sizeof path)) {
        snprintf(why, cap, "%s/%s not found: run 'make models'", kt_models_dir(), SMOL);
        return false;
    }
    if (kg_gguf_open(path, &r->g) != KG_OK) {
        snprintf(why, cap, "open failed: %s", kg_last_error());
        return false;
    }
    if (gen_tokdata(r->g, NULL, &r->blob, &r->size) != KG_OK) {
        snprintf(why, cap, "gen_tokdata failed: %s", kg_last_error());
        return false;
    }
    byte_tokens(r->g, r->has, &r->n_missing);
    r->t = tok_from_blob(r->blob, r->size, &r->keep, err, sizeof err);
    if (!r->t) {
        snprintf(why, cap, "kgr_tok_init failed: %s", err);
        return false;
    }
    return true;
}


/* ───────────────────────── against Hugging Face ───────────────────────── */

static int unhex(const char *h, char **out, size_t *len)
{
    if (!strcmp(h, "-")) {
        *out = calloc(1, 1);
        *len = 0;
        return *out ? 0 : -1;
    }
    size_t n = strlen(h) / 2;
    char *s = malloc(n + 1);
    if (!s) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1) { free(s); return -1; }
        s[i] = (char)v;
    }
    s[n] = 0;
    *out = s;
    *len = n;
    return 0;
}

static int parse_ids(char *list, int32_t *ids, int cap)
{
    if (!strcmp(list, "-")) return 0;
    int n = 0;
    for (char *save, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (n < cap) ids[n] = (int32_t)strtol(p, NULL, 10);
        n++;
    }
    return n;
}

/* Runs `python script MODEL OUT [EXTRA]` (a reference generator in
 * tests/ref/, through kt_run_ref: make check's second build replays the
 * first's answer) and returns OUT (in kt_tmpdir), or NULL with the reason in
 * why; *skip when the script exits 3 or Python cannot run (a package or
 * Python is missing: `missing` says which). */
const char *reference_file(const char *python, const char *script, const char *model, const char *extra,
                                  const char *missing, char *why, size_t cap, bool *skip)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/%s.txt", kt_tmpdir(), strrchr(script, '/') + 1);
    char out[1024], err[4096], sc[256], mo[512], ex[512];
    snprintf(sc, sizeof sc, "%s", script);
    snprintf(mo, sizeof mo, "%s", model);
    snprintf(ex, sizeof ex, "%s", extra ? extra : "");
    char *argv[] = {"/usr/bin/env", (char *)python, sc, mo, path, extra ? ex : NULL, NULL};
    const char *const outputs[] = {path, NULL};
    int rc = kt_run_ref(argv, outputs, out, sizeof out, err, sizeof err);
    *skip = rc == 3 || rc == 127;
    why[0] = 0;
    if (*skip) snprintf(why, cap, "%s", missing);
    else if (rc != 0) snprintf(why, cap, "%s failed (%d): %.900s", script, rc, err);
    else printf("    %s: %s", script, out);
    return rc == 0 ? path : NULL;
}

/* A reference file (tok_ref.py's format, documented there) compared with
 * kgen: token for token on every R record whose pre-tokenizer is compared;
 * with round_trip, each string's round trip (S: the string itself, X: the
 * text the file gives); the chat formats (T, H). F: a string the reference
 * could not tokenize. */

const char *const pre_names[N_PRE] = {"smollm", "gpt2", "llama-bpe", "qwen2", "spm"};

void compare_file(const char *path, cmp_run *c)
{
    FILE *f = fopen(path, "r");
    KT_REQUIRE(f);
    char **str = NULL, *line = NULL;
    size_t *slen = NULL, lcap = 0;
    int cap = 0;
    int32_t *want = malloc(200000 * sizeof *want);
    /* the chat templates other than the model's, each on the small vocabulary */
    static const char *const tmpl_names[3] = {"llama3", "gemma", "phi3"};
    kgr_tok *tmpl_tok[3] = {NULL, NULL, NULL};
    void *tmpl_keep[3] = {NULL, NULL, NULL};
    small sv;
    kvs sk;
    while (want && getline(&line, &lcap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        char *save, *tag = strtok_r(line, " ", &save);
        if (!tag) continue;
        if (!strcmp(tag, "S") || !strcmp(tag, "X")) {
            char *idx = strtok_r(NULL, " ", &save), *hex = strtok_r(NULL, " ", &save), *read = strtok_r(NULL, " ", &save);
            if (!idx || !hex) continue;
            if (c->n_str == cap) {
                cap = cap ? cap * 2 : 1024;
                str = realloc(str, (size_t)cap * sizeof *str);
                slen = realloc(slen, (size_t)cap * sizeof *slen);
                KT_REQUIRE(str && slen);
            }
            int i = c->n_str;
            KT_REQUIRE(atoi(idx) == i && unhex(hex, &str[i], &slen[i]) == 0);
            c->n_str++;
            c->total_bytes += slen[i];
            c->n_invalid += tag[0] == 'X';
            char *back = str[i];
            size_t blen = slen[i];
            if (tag[0] == 'X' && !(read && unhex(read, &back, &blen) == 0)) continue;
            if (c->tk[4] && memmem(str[i], slen[i], "\xe2\x96\x81", 3)) { /* SentencePiece: ▁ in the text comes back a space */
                back = malloc(slen[i] + 1);
                KT_REQUIRE(back);
                blen = 0;
                for (size_t j = 0; j < slen[i];)
                    if (slen[i] - j >= 3 && !memcmp(str[i] + j, "\xe2\x96\x81", 3)) back[blen++] = ' ', j += 3;
                    else back[blen++] = str[i][j++];
            }
            for (int p = 0; c->round_trip && p < N_PRE; p++) { /* with each pre-tokenizer */
                if (!c->tk[p]) continue;
                c->n_rt++;
                if (!round_trips_to(c->tk[p], str[i], slen[i], back, blen, c->r ? c->r->has : NULL)) {
                    char sh[200];
                    show(sh, sizeof sh, str[i], slen[i]);
                    if (c->n_rt_bad++ < 5) KT_CHECKF(0, "%s: round trip fails for \"%s\"", pre_names[p], sh);
                }
            }
            if (back != str[i]) free(back);
        } else if (!strcmp(tag, "F")) {
            c->n_failed++;
        } else if (!strcmp(tag, "R")) {
            char *pre = strtok_r(NULL, " ", &save), *fl = strtok_r(NULL, " ", &save), *idx = strtok_r(NULL, " ", &save),
                 *ids = strtok_r(NULL, " ", &save);
            if (!pre || !fl || !idx || !ids) continue;
            int p = 0, flags = atoi(fl), i = atoi(idx);
            while (p < N_PRE && strcmp(pre, pre_names[p])) p++;
            KT_REQUIRE(i >= 0 && i < c->n_str);
            if (p == N_PRE || !c->tk[p]) continue;
            int nw = parse_ids(ids, want, 200000), n;
            int32_t *got = tokenize(c->tk[p], str[i], slen[i], flags, &n);
            c->n_cmp[p][flags ? 1 : 0]++;
            bool same = got && n == nw && nw <= 200000 && memcmp(got, want, (size_t)n * sizeof *got) == 0;
            if (!same && c->n_bad++ < 8) {
                char sh[300], a[400] = "", b[400] = "";
                show(sh, sizeof sh, str[i], slen[i]);
                for (int j = 0, o = 0; got && j < n && o < 380; j++) o += snprintf(a + o, sizeof a - (size_t)o, "%d,", got[j]);
                for (int j = 0, o = 0; j < nw && j < 200000 && o < 380; j++) o += snprintf(b + o, sizeof b - (size_t)o, "%d,", want[j]);
                KT_CHECKF(0, "%s flags %d: \"%s\"\n      kgen %s\n      ref  %s", pre, flags, sh, a, b);
            }
            free(got);
        } else if (!strcmp(tag, "J")) {
            c->no_jinja = true;
        } else if (!strcmp(tag, "T")) {
            char *name = strtok_r(NULL, " ", &save), *hex = strtok_r(NULL, " ", &save);
            char *text;
            size_t len;
            if (!name || !hex || unhex(hex, &text, &len)) continue;
            int q = 0;
            while (q < 3 && strcmp(name, tmpl_names[q])) q++;
            if (!strcmp(name, "smollm2") && c->r) {
                kg_str t;
                KT_CHECK(kg_gguf_get_str(c->r->g, "tokenizer.chat_template", &t) == KG_OK && t.len == len &&
                         !memcmp(t.ptr, text, len));
            } else if (q < 3 && !tmpl_tok[q]) { /* recognized by its signature */
                void *b = NULL;
                size_t size;
                char err[256];
                small_vocab(&sv, &sk);
                kv_set(&sk, "tokenizer.chat_template", tw_s(text, len));
                KT_CHECKF(kv_blob(&sk, &b, &size) == KG_OK, "%s", kg_last_error());
                if (b) tmpl_tok[q] = tok_from_blob(b, size, &tmpl_keep[q], err, sizeof err);
                free(b);
                KT_CHECKF(tmpl_tok[q] && kgr_has_chat(tmpl_tok[q]), "template %s not recognized", name);
            }
            free(text);
        } else if (!strcmp(tag, "H")) {
            char *name = strtok_r(NULL, " ", &save), *add = strtok_r(NULL, " ", &save), *nm = strtok_r(NULL, " ", &save);
            if (!name || !add || !nm) continue;
            int n = atoi(nm);
            kgm_message msgs[16];
            char *texts[33] = {0};
            size_t lens[33];
            bool parsed = n >= 0 && n <= 16;
            for (int j = 0; parsed && j < 2 * n + 1; j++) {
                char *h = strtok_r(NULL, " ", &save);
                parsed = h && unhex(h, &texts[j], &lens[j]) == 0;
            }
            KT_CHECK(parsed);
            int q = 0;
            while (q < 3 && strcmp(name, tmpl_names[q])) q++;
            kgr_tok *t = !strcmp(name, "smollm2") ? (c->r ? c->r->t : NULL) : q < 3 ? tmpl_tok[q] : NULL;
            if (parsed && t) {
                for (int j = 0; j < n; j++) msgs[j] = (kgm_message){texts[2 * j], texts[2 * j + 1]};
                char buf[4096], err[256];
                int len = kgr_chat(t, msgs, n, atoi(add), buf, sizeof buf, err, sizeof err);
                c->n_chat++;
                bool same = len >= 0 && (size_t)len == lens[2 * n] && !memcmp(buf, texts[2 * n], (size_t)len);
                if (!same) {
                    char a[600], b[600];
                    show(a, sizeof a, buf, len > 0 ? (size_t)len : 0);
                    show(b, sizeof b, texts[2 * n], lens[2 * n]);
                    if (c->n_chat_bad++ < 5) KT_CHECKF(0, "chat %s (%d messages, add %s):\n      kgen  \"%s\"\n      jinja \"%s\"", name, n, add, a, b);
                }
            }
            for (int j = 0; j < 33; j++) free(texts[j]);
        }
    }
    fclose(f);
    free(line);
    free(want);
    for (int i = 0; i < c->n_str; i++) free(str[i]);
    free(str);
    free(slen);
    for (int q = 0; q < 3; q++) kgr_tok_free(tmpl_tok[q]), free(tmpl_keep[q]);
}

/* The real model's tokenizer with each of the four BPE pre-tokenizers (tk[0]
 * its own, smollm; tk[1..3] its vocabulary with gpt2, llama-bpe and qwen2). */
bool other_pres(real *r, kgr_tok *tk[N_PRE], void *keep[N_PRE], void *blob[N_PRE])
{
    kvs k;
    copied c = {0};
    tk[0] = r->t;
    bool ok = copy_real(r->g, &k, &c);
    KT_CHECK(ok);
    for (int p = 1; ok && p < 4; p++) {
        size_t size;
        char err[256];
        kv_set(&k, "tokenizer.ggml.pre", tw_cs(pre_names[p]));
        KT_CHECKF(kv_blob(&k, &blob[p], &size) == KG_OK, "%s: %s", pre_names[p], kg_last_error());
        if (blob[p]) tk[p] = tok_from_blob(blob[p], size, &keep[p], err, sizeof err);
        KT_CHECKF(tk[p], "%s: %s", pre_names[p], err);
        ok = tk[p] != NULL;
    }
    free(c.tokens);
    free(c.merges);
    return ok;
}

/* Random text: ASCII words, whitespace, digits, any valid code point, and
 * (when invalid) stray bytes, truncated and overlong sequences, surrogates. */
size_t random_text(uint64_t *rs, char *s, size_t cap, bool invalid)
{
    size_t n = 0, want = rng_next(rs) % (cap / 8);
    static const char *frag[] = {" the", "ing", " ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "<|im_end|>", "<|im", "123",
                                 "\xc2\xa0", "\xe3\x80\x80", "\xf0\x9f\x98\x80", "\xcc\x81", ".", "!?"};
    static const char *bad[] = {"\xff", "\xfe", "\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80",
                                "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\xe2\x82", "\xf0\x9f\x98",
                                "\xc3", "\xe2"};
    while (n < want && n + 8 < cap) {
        uint64_t r = rng_next(rs) % 10;
        if (r < 4) {
            const char *f = frag[rng_next(rs) % (sizeof frag / sizeof *frag)];
            size_t l = strlen(f);
            if (n + l >= cap) break;
            memcpy(s + n, f, l), n += l;
        } else if (r < 6) {
            s[n++] = (char)('a' + rng_next(rs) % 26);
        } else if (r < 8 || !invalid) {
            uint32_t cp;
            do cp = (uint32_t)(rng_next(rs) % 0x110000);
            while (cp >= 0xD800 && cp <= 0xDFFF);
            if (cp < 0x80) s[n++] = (char)cp;
            else if (cp < 0x800) s[n++] = (char)(0xC0 | cp >> 6), s[n++] = (char)(0x80 | (cp & 0x3F));
            else if (cp < 0x10000)
                s[n++] = (char)(0xE0 | cp >> 12), s[n++] = (char)(0x80 | ((cp >> 6) & 0x3F)), s[n++] = (char)(0x80 | (cp & 0x3F));
            else
                s[n++] = (char)(0xF0 | cp >> 18), s[n++] = (char)(0x80 | ((cp >> 12) & 0x3F)),
                s[n++] = (char)(0x80 | ((cp >> 6) & 0x3F)), s[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            const char *f = bad[rng_next(rs) % (sizeof bad / sizeof *bad)];
            size_t l = strlen(f);
            memcpy(s + n, f, l), n += l;
        }
    }
    return n;
}

/* Two token lists equal? (a, b malloc'd or NULL) */
bool same_ids(const int32_t *a, int na, const int32_t *b, int nb)
{
    return a && b && na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
}
void expect_bad(const void *blob, size_t n, const char *what)
{
    char err[256] = "";
    void *keep = NULL;
    kgr_tok *t = tok_from_blob(blob, n, &keep, err, sizeof err);
    KT_CHECKF(!t && err[0], "%s: accepted (or no message)", what);
    kgr_tok_free(t);
    free(keep);
}

void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
