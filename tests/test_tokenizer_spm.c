/*
 * test_tokenizer_spm.c — the SentencePiece-style tokenizer
 * (runtime/model/tok_spm.c) and the chat formats by name: Gemma 3's
 * vocabulary against Google's sentencepiece (tests/ref/tok_spm_ref.py), the
 * rules on a small hand-built vocabulary, and timing reported, not asserted.
 */
#include "kt_tok.h"
#include "chat_tmpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ───────────────────────── SentencePiece-style vocabularies ───────────────────────── */

#define GEMMA "gemma-3-270m-q4_k_m.gguf"

/* Gemma 3's tokenizer from its GGUF (NULL: skip, why says; *g, *blob, *keep to free). */
static kgr_tok *gemma_open(kg_gguf **g, void **blob, size_t *size, void **keep, char *why, size_t cap, bool *absent)
{
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/%s", kt_models_dir(), GEMMA);
    *g = NULL, *blob = NULL, *keep = NULL, *absent = access(path, R_OK) != 0;
    if (*absent) return snprintf(why, cap, "%s not found: run 'make models'", path), NULL;
    if (kg_gguf_open(path, g) != KG_OK) return snprintf(why, cap, "open: %s", kg_last_error()), NULL;
    if (gen_tokdata(*g, NULL, blob, size) != KG_OK) return snprintf(why, cap, "gen_tokdata: %s", kg_last_error()), NULL;
    kgr_tok *t = tok_from_blob(*blob, *size, keep, err, sizeof err);
    if (!t) snprintf(why, cap, "kgr_tok_init: %s", err);
    return t;
}

#define OPEN_GEMMA(t, g, blob, keep, size)                                        \
    kg_gguf *g;                                                                   \
    void *blob, *keep;                                                            \
    size_t size;                                                                  \
    char gwhy_[700];                                                              \
    bool gabsent_;                                                                \
    kgr_tok *t = gemma_open(&g, &blob, &size, &keep, gwhy_, sizeof gwhy_, &gabsent_); \
    if (!t) {                                                                     \
        free(keep), free(blob), kg_gguf_close(g);                                 \
        if (gabsent_) KT_SKIP("%s", gwhy_);                                       \
        KT_REQUIRE(!printf("    %s\n", gwhy_));                                   \
    }

/* Gemma 3's vocabulary against Google's sentencepiece with a ModelProto built
 * from the GGUF (tests/ref/tok_spm_ref.py, which says what is excluded and
 * why: strings that are not UTF-8, checked by hand in tokenizer_spm_rules). */
KT_TEST(tokenizer_spm_matches_sentencepiece)
{
    OPEN_GEMMA(t, g, blob, keep, size);
    char model[512], why[1024];
    bool skip;
    snprintf(model, sizeof model, "%s/%s", kt_models_dir(), GEMMA);
    const char *ref = reference_file(kt_python(), "tests/ref/tok_spm_ref.py", model, NULL,
                                     "the reference needs Python with 'sentencepiece', 'protobuf' and 'gguf'", why,
                                     sizeof why, &skip);
    if (!ref) {
        kgr_tok_free(t), free(keep), free(blob), kg_gguf_close(g);
        if (skip) KT_SKIP("%s", why);
        KT_REQUIRE(!why[0] || (printf("    %s\n", why), 0));
    }
    cmp_run c = {.round_trip = true};
    c.tk[4] = t;
    compare_file(ref, &c);
    printf("    %d strings (%zu bytes); %d+%d tokenizations compared with sentencepiece (without+with special "
           "tokens): %d differ; %d round trips: %d fail\n",
           c.n_str, c.total_bytes, c.n_cmp[4][0], c.n_cmp[4][1], c.n_bad, c.n_rt, c.n_rt_bad);
    KT_CHECKF(c.n_str >= 1000 && c.n_cmp[4][0] == c.n_str && c.n_cmp[4][1] == c.n_str, "%d strings, %d+%d compared",
              c.n_str, c.n_cmp[4][0], c.n_cmp[4][1]);
    KT_CHECKF(c.n_bad == 0, "%d tokenizations differ from sentencepiece", c.n_bad);
    KT_CHECK(c.n_rt == c.n_str && c.n_rt_bad == 0);
    kgr_tok_free(t), free(keep), free(blob), kg_gguf_close(g);
}

/* A small SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte
 * tokens, then pieces with scores. Ids: 0 1 2, 3..258, 259.. */
typedef struct spm_small {
    char text[300][24];
    tw_val tok[300];
    int32_t type[300];
    float score[300];
    int n;
} spm_small;

static int spm_id(const spm_small *v, const char *s)
{
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->text[i], s)) return i;
    return -1;
}

static void spm_vocab(spm_small *v, kvs *k, bool space_prefix)
{
    memset(v, 0, sizeof *v);
    static const struct { const char *s; float score; int type; } extra[] = {
        {"\xe2\x96\x81", -1, 1}, {"a", -2, 1}, {"b", -3, 1}, {"c", -4, 1}, {"ab", -10, 1}, {"bc", -5, 1},
        {"cab", -20, 1}, {"\xe2\x96\x81" "a", -6, 1}, {"\xe2\x96\x81" "b", -6, 1}, {"aa", -7, 1},
        {"<u>", 0, 4}, {"<end_of_turn>", 0, 3}, {"x", -8, 1}, {"\xe2\x96\x81\xe2\x96\x81", -9, 1}};
    int n = 0;
    strcpy(v->text[n], "<unk>"), v->type[n++] = 2;
    strcpy(v->text[n], "<s>"), v->type[n++] = 3;
    strcpy(v->text[n], "</s>"), v->type[n++] = 3;
    for (int b = 0; b < 256; b++) snprintf(v->text[n], 24, "<0x%02X>", b), v->type[n++] = 6;
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++)
        strcpy(v->text[n], extra[i].s), v->score[n] = extra[i].score, v->type[n++] = extra[i].type;
    for (int i = 0; i < n; i++) v->tok[i] = tw_cs(v->text[i]);
    v->n = n;
    k->n = 0;
    kv_set(k, "tokenizer.ggml.model", tw_cs("llama"));
    kv_set(k, "tokenizer.ggml.tokens", tw_arr_of(KG_V_STRING, (uint64_t)n, v->tok));
    kv_set(k, "tokenizer.ggml.token_type", tw_arr(KG_V_I32, (uint64_t)n, v->type));
    kv_set(k, "tokenizer.ggml.scores", tw_arr(KG_V_F32, (uint64_t)n, v->score));
    kv_set(k, "tokenizer.ggml.add_space_prefix", tw_int(KG_V_BOOL, space_prefix));
}

static bool ids_are(kgr_tok *t, const char *s, size_t len, int flags, const int *want, int nw)
{
    int32_t got[64];
    int n = kgr_tokenize(t, s, len, flags, got, 64);
    bool ok = n == nw;
    for (int i = 0; ok && i < n; i++) ok = got[i] == want[i];
    if (!ok) {
        char sh[200], a[300] = "";
        show(sh, sizeof sh, s, len);
        for (int i = 0, o = 0; i < n && i < 64 && o < 280; i++) o += snprintf(a + o, sizeof a - (size_t)o, "%d,", got[i]);
        printf("    \"%s\" flags %d: got %s\n", sh, flags, a);
    }
    return ok;
}

/* The rules of tok_spm.c on a vocabulary small enough to reason about. */
KT_TEST(tokenizer_spm_rules)
{
    spm_small v;
    kvs k;
    void *blob, *keep;
    size_t size;
    char err[256];
    spm_vocab(&v, &k, false);
    KT_REQUIRE(kv_blob(&k, &blob, &size) == KG_OK || (printf("    %s\n", kg_last_error()), 0));
    kgr_tok *t = tok_from_blob(blob, size, &keep, err, sizeof err);
    KT_REQUIRE(t || (printf("    %s\n", err), 0));
    int A = spm_id(&v, "a"), B = spm_id(&v, "b"), C = spm_id(&v, "c"), BC = spm_id(&v, "bc"),
        SP = spm_id(&v, "\xe2\x96\x81"), SA = spm_id(&v, "\xe2\x96\x81" "a"), AA = spm_id(&v, "aa"),
        U = spm_id(&v, "<u>"), EOT = spm_id(&v, "<end_of_turn>"), X = spm_id(&v, "x"),
        SS = spm_id(&v, "\xe2\x96\x81\xe2\x96\x81");
    /* llama.cpp's defaults for "llama" vocabularies: bos 1, eos 2, add BOS */
    KT_CHECK(kgr_tok_bos(t) == 1 && kgr_tok_eos(t) == 2);
    /* the highest score first: bc (-5) before ab (-10) */
    KT_CHECK(ids_are(t, "abc", 3, 0, (int[]){A, BC}, 2));
    KT_CHECK(ids_are(t, "abc", 3, KGM_TOK_BOS, (int[]){1, A, BC}, 3));
    /* equal scores: the leftmost pair first (aaa: aa, a) */
    KT_CHECK(ids_are(t, "aaa", 3, 0, (int[]){AA, A}, 2));
    /* spaces are ▁, no prefix without add_space_prefix; two spaces merge */
    KT_CHECK(ids_are(t, "a b", 3, 0, (int[]){A, spm_id(&v, "\xe2\x96\x81" "b")}, 2));
    KT_CHECK(ids_are(t, "  x", 3, 0, (int[]){SS, X}, 2));
    /* byte fallback: é (C3 A9) is no token */
    KT_CHECK(ids_are(t, "\xc3\xa9x", 3, 0, (int[]){3 + 0xC3, 3 + 0xA9, X}, 3));
    /* invalid UTF-8, as llama.cpp: a lead byte takes its length's bytes with it
       (E2 'a' 'b' is one symbol, no token: its three bytes), a continuation
       byte is a symbol of its own */
    KT_CHECK(ids_are(t, "\xe2" "abc", 4, 0, (int[]){3 + 0xE2, 3 + 'a', 3 + 'b', C}, 4));
    KT_CHECK(ids_are(t, "\x80" "a", 2, 0, (int[]){3 + 0x80, A}, 2));
    KT_CHECK(ids_are(t, "a\xf0", 2, 0, (int[]){A, 3 + 0xF0}, 2));
    /* the text of a byte token is text, not the byte */
    KT_CHECK(kgr_tokenize(t, "<0x41>", 6, KGM_TOK_SPECIAL, NULL, 0) == 6);
    /* user-defined tokens always, control ones with KGM_TOK_SPECIAL, unknown too */
    KT_CHECK(ids_are(t, "a<u>b", 5, 0, (int[]){A, U, B}, 3));
    KT_CHECK(ids_are(t, "<end_of_turn>", 13, KGM_TOK_SPECIAL, (int[]){EOT}, 1));
    KT_CHECK(ids_are(t, "<unk>", 5, KGM_TOK_SPECIAL, (int[]){0}, 1));
    KT_CHECK(kgr_tokenize(t, "<end_of_turn>", 13, 0, NULL, 0) > 1);
    KT_CHECK(kgr_is_eog(t, EOT) && kgr_is_eog(t, 2) && !kgr_is_eog(t, 1) && !kgr_is_eog(t, U));
    /* pieces: ▁ is a space, byte tokens their byte, control and unknown nothing, user-defined their text */
    char buf[16];
    KT_CHECK(kgr_token_piece(t, SA, buf, sizeof buf) == 2 && !memcmp(buf, " a", 2));
    KT_CHECK(kgr_token_piece(t, 3 + 0xA9, buf, sizeof buf) == 1 && (uint8_t)buf[0] == 0xA9);
    KT_CHECK(kgr_token_piece(t, EOT, buf, sizeof buf) == 0 && kgr_token_piece(t, 0, buf, sizeof buf) == 0);
    KT_CHECK(kgr_token_piece(t, U, buf, sizeof buf) == 3 && !memcmp(buf, "<u>", 3));
    KT_CHECK(kgr_token_piece(t, SS, buf, 1) == 2 && buf[0] == ' ');
    const char *rt[] = {"abc aa  bc", "\xc3\xa9t\xc3\xa9 \xe4\xb8\xad", "x<u> a", "  "};
    for (size_t i = 0; i < sizeof rt / sizeof *rt; i++) KT_CHECKF(round_trips(t, rt[i], strlen(rt[i]), NULL), "%s", rt[i]);
    kgr_tok_free(t), free(keep), free(blob);

    /* add_space_prefix: at the start and after every special token */
    spm_vocab(&v, &k, true);
    KT_REQUIRE(kv_blob(&k, &blob, &size) == KG_OK);
    t = tok_from_blob(blob, size, &keep, err, sizeof err);
    KT_REQUIRE(t);
    KT_CHECK(ids_are(t, "a", 1, 0, (int[]){SA}, 1));
    KT_CHECK(ids_are(t, "a<u>a", 5, 0, (int[]){SA, U, SA}, 3));
    KT_CHECK(ids_are(t, "<u>", 3, 0, (int[]){U}, 1));
    KT_CHECK(ids_are(t, "", 0, KGM_TOK_BOS, (int[]){1}, 1));
    KT_CHECK(ids_are(t, " a", 2, 0, (int[]){SP, SA}, 2) || ids_are(t, " a", 2, 0, (int[]){SS, A}, 2));
    kgr_tok_free(t), free(keep), free(blob);

    /* bad metadata and blobs */
    spm_vocab(&v, &k, false);
    v.score[5] = 0.0f / 0.0f;
    KT_CHECK(kv_blob(&k, &blob, &size) != KG_OK && strstr(kg_last_error(), "tokenizer.ggml.scores"));
    spm_vocab(&v, &k, false);
    kv_set(&k, "tokenizer.ggml.scores", tw_arr(KG_V_F32, 3, v.score));
    KT_CHECK(kv_blob(&k, &blob, &size) != KG_OK && strstr(kg_last_error(), "entries"));
    kv_set(&k, "tokenizer.ggml.scores", tw_arr(KG_V_I32, (uint64_t)v.n, v.type));
    KT_CHECK(kv_blob(&k, &blob, &size) != KG_OK && strstr(kg_last_error(), "float32"));
    spm_vocab(&v, &k, false);
    kv_set(&k, "tokenizer.ggml.add_space_prefix", tw_int(KG_V_U32, 1));
    KT_CHECK(kv_blob(&k, &blob, &size) != KG_OK && strstr(kg_last_error(), "add_space_prefix"));
    spm_vocab(&v, &k, false);
    KT_REQUIRE(kv_blob(&k, &blob, &size) == KG_OK);
    for (size_t n = 0; n < size; n++) expect_bad(blob, n, "SentencePiece blob truncated");
    uint8_t *b = malloc(size);
    KT_REQUIRE(b);
    memcpy(b, blob, size);
    memcpy(b + size - 4, "\x00\x00\xc0\x7f", 4); /* the last score: NaN */
    expect_bad(b, size, "NaN score");
    memcpy(b, blob, size);
    put32(b + 12, 1); /* a merge in a SentencePiece blob */
    expect_bad(b, size, "merges with SentencePiece");
    free(b), free(blob);
}

/* --chat-template names: each one gen_tokdata accepts, the runtime formats;
 * others are refused naming the known ones. Gemma's format by hand. */
KT_TEST(tokenizer_chat_names)
{
    static const char *const names[] = {"chatml", "llama3", "gemma", "phi3", "Gemma", "gemma3", "", "chatml "};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        small v;
        kvs k;
        tw w;
        void *blob = NULL, *keep = NULL;
        size_t size;
        char err[256];
        small_vocab(&v, &k);
        kg_gguf *g = kv_open(&k, &w);
        KT_REQUIRE(g);
        kg_status s = gen_tokdata(g, names[i], &blob, &size);
        kg_gguf_close(g);
        tw_free(&w);
        bool known = i < 4;
        KT_CHECKF((s == KG_OK) == known && gen_chat_template_known(names[i]) == known, "name \"%s\": %s", names[i],
                  kg_last_error());
        if (!known) {
            KT_CHECKF(s == KG_ERR_ARG && strstr(kg_last_error(), GEN_CHAT_TEMPLATE_NAMES), "\"%s\": %s", names[i],
                      kg_last_error());
            continue;
        }
        kgr_tok *t = tok_from_blob(blob, size, &keep, err, sizeof err);
        KT_CHECKF(t && kgr_has_chat(t), "runtime does not format \"%s\"", names[i]);
        if (t && !strcmp(names[i], "gemma")) {
            kgm_message m[] = {{"system", " Be brief. "}, {"user", " Hi "}, {"assistant", "Hello"}, {"user", "Bye"}};
            char buf[512];
            int n = kgr_chat(t, m, 4, 1, buf, sizeof buf, err, sizeof err);
            const char *want = "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello"
                               "<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n";
            KT_CHECKF(n == (int)strlen(want) && !strcmp(buf, want), "gemma: \"%s\"", n >= 0 ? buf : err);
        }
        if (t && !strcmp(names[i], "phi3")) {
            kgm_message m[] = {{"system", "S"}, {"user", "U"}};
            char buf[512];
            int n = kgr_chat(t, m, 2, 1, buf, sizeof buf, err, sizeof err);
            const char *want = "<|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\n";
            KT_CHECKF(n == (int)strlen(want) && !strcmp(buf, want), "phi3: \"%s\"", n >= 0 ? buf : err);
        }
        kgr_tok_free(t), free(keep), free(blob);
    }
}

/* Gemma 3: its file has no chat template (kgr_chat says to choose one); its
 * end-of-turn token ends generation; 1 MB of English: the speed, reported. */
KT_TEST(tokenizer_spm_gemma_timing_report)
{
    OPEN_GEMMA(t, g, blob, keep, size);
    char err[256], buf[64];
    KT_CHECK(!kgr_has_chat(t) && kgr_chat(t, NULL, 0, 1, buf, sizeof buf, err, sizeof err) == -1 &&
             strstr(err, "--chat-template"));
    int32_t ids[8];
    KT_CHECK(kgr_tokenize(t, "<end_of_turn>", 13, KGM_TOK_SPECIAL, ids, 8) == 1 && kgr_is_eog(t, ids[0]));
    KT_CHECK(kgr_tokenize(t, "Hi", 2, KGM_TOK_BOS, ids, 8) >= 2 && ids[0] == kgr_tok_bos(t));
    static const char *para =
        "The history of computing is longer than the history of computing hardware and modern computing "
        "technology and includes the history of methods intended for pen and paper or for chalk and slate, "
        "with or without the aid of tables. Digital computing is intimately tied to the representation of "
        "numbers. But long before abstractions like the number arose, there were mathematical concepts to "
        "serve the purposes of civilization. These concepts are implicit in concrete practices such as "
        "one-to-one correspondence, the basis of counting, and comparison to a standard, used for measurement.\n\n";
    size_t cap = 1 << 20, n = 0, pl = strlen(para);
    char *text = malloc(cap);
    int32_t *out = malloc(cap / 2 * sizeof *out);
    KT_REQUIRE(text && out);
    while (n < cap) {
        size_t c = pl < cap - n ? pl : cap - n;
        memcpy(text + n, para, c);
        n += c;
    }
    double best = 1e9;
    int count = 0;
    for (int it = 0; it < 3; it++) {
        double t0 = now_ms();
        count = kgr_tokenize(t, text, n, 0, out, (int)(cap / 2));
        double dt = now_ms() - t0;
        if (dt < best) best = dt;
    }
    double init = 1e9;
    for (int it = 0; it < 3; it++) {
        kgr_tok *t2 = NULL;
        double t0 = now_ms();
        int rc = kgr_tok_init(&t2, blob, size, err, sizeof err);
        double dt = now_ms() - t0;
        KT_CHECK(rc == 0);
        kgr_tok_free(t2);
        if (dt < init) init = dt;
    }
    printf("    CPU time, best of 3: tokenize 1 MiB of English with Gemma 3's SentencePiece vocabulary: %.1f ms "
           "(%d tokens, %.1f MB/s); init from the %zu-byte blob (262144 tokens): %.2f ms\n",
           best, count, n / best / 1e3, size, init);
    KT_CHECK(count > 150000 && count < 400000);
    free(text), free(out);
    kgr_tok_free(t), free(keep), free(blob), kg_gguf_close(g);
}
