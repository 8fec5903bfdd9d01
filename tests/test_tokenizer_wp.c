/*
 * test_tokenizer_wp.c — WordPiece (runtime/model/tok_wp.c), the blob's
 * version 3 (gen/tokdata.c), and tokenizers from Hugging Face directories
 * (gen/tokdata_hf.c).
 *
 * The independent reference is Hugging Face's `tokenizers` (PyPI), run by
 * tests/ref/tok_wp_ref.py on all-MiniLM-L6-v2's tokenizer.json and four
 * variants of it (lowercase, strip_accents, clean_text, handle_chinese_chars
 * each flipped), with and without [CLS]/[SEP] and special-token matching,
 * on tok_corpus.py's strings plus WordPiece ones (> 3,000; those that are
 * not UTF-8 read by tok_wp.c's rule, in Python); the same vocabulary through
 * a GGUF in llama.cpp's "bert" convention (written by the `gguf` package);
 * and SmolLM2's byte-level BPE through a tokenizer.json `tokenizers` saves.
 * Without Python: a hand-written vocab.txt vocabulary against hand-derived
 * tokens, malformed blobs and malformed tokenizer.json files.
 */
#include "kt_tok.h"
#include "gen.h"
#include "rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MINILM "all-MiniLM-L6-v2"

static bool write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(text, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* a fresh directory under kt_tmpdir() */
static const char *sub_dir(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", kt_tmpdir(), name);
    mkdir(buf, 0700);
    return buf;
}

/* the tokenizer from a Hugging Face directory, or NULL (why printed) */
static kgr_tok *hf_tok(const char *dir, void **keep)
{
    void *blob;
    size_t size;
    *keep = NULL;
    if (gen_tokdata_hf(dir, NULL, &blob, &size) != KG_OK) {
        printf("    %s: %s\n", dir, kg_last_error());
        return NULL;
    }
    char err[256];
    kgr_tok *t = tok_from_blob(blob, size, keep, err, sizeof err);
    if (!t) printf("    %s: %s\n", dir, err);
    free(blob);
    return t;
}

/* ───────────────────────── without Python ───────────────────────── */

static const char *const VOCAB[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a", "##b",
                                    "e", "cafe", "ca", "##fe", "!", ",", "hello", "world", "中", "x", "##x", "ᄀ", "##ᅡ",
                                    "Hello", "é", "[", "]", "mask"};

static const char *make_vocab_dir(char *dir, size_t cap, const char *name, const char *config)
{
    sub_dir(dir, cap, name);
    char path[700], text[1024];
    size_t n = 0;
    for (size_t i = 0; i < sizeof VOCAB / sizeof *VOCAB; i++) n += (size_t)snprintf(text + n, sizeof text - n, "%s\n", VOCAB[i]);
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    if (!write_file(path, text, n)) return NULL;
    if (config) {
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        if (!write_file(path, config, strlen(config))) return NULL;
    }
    return dir;
}

static bool ids_are(kgr_tok *t, const char *s, int flags, const char *want)
{
    int n;
    int32_t *ids = tokenize(t, s, strlen(s), flags, &n);
    char got[512] = "";
    size_t o = 0;
    for (int i = 0; ids && i < n && o < sizeof got - 16; i++) o += (size_t)snprintf(got + o, sizeof got - o, "%s%d", i ? "," : "", ids[i]);
    free(ids);
    if (strcmp(got, want)) printf("    \"%s\" (flags %d): %s, expected %s\n", s, flags, got, want);
    return strcmp(got, want) == 0;
}

KT_TEST(tokenizer_wp_vocab_txt_rules)
{
    char dir[600];
    KT_REQUIRE(make_vocab_dir(dir, sizeof dir, "vt", NULL));
    void *keep;
    kgr_tok *t = hf_tok(dir, &keep);
    KT_REQUIRE(t);
    /* greedy longest match first; ## continuations; [UNK] for a word with no segmentation */
    KT_CHECK(ids_are(t, "unaffable", 0, "5,6,7"));
    KT_CHECK(ids_are(t, "unaffablex", 0, "5,6,7,20"));
    KT_CHECK(ids_are(t, "unaffabley", 0, "1"));
    KT_CHECK(ids_are(t, "cafe caf", 0, "11,1"));
    /* lowercase + strip accents (vocab.txt default: do_lower_case true): "Café" -> "cafe" */
    KT_CHECK(ids_are(t, "Café", 0, "11"));
    KT_CHECK(ids_are(t, "HELLO, World!", 0, "16,15,17,14"));
    KT_CHECK(ids_are(t, "HELLO, World!", KGM_TOK_BOS, "2,16,15,17,14,3"));
    /* CJK alone; Hangul syllable decomposed (가 = ᄀ ᅡ) */
    KT_CHECK(ids_are(t, "a中a", 0, "8,18,8"));
    KT_CHECK(ids_are(t, "가", 0, "21,22"));
    /* control characters and U+FFFD dropped, not splitting; invalid bytes read as U+FFFD */
    KT_CHECK(ids_are(t, "a\x01" "b", 0, "8,9"));
    KT_CHECK(ids_are(t, "a\xff\xc0\x80" "b", 0, "8,9"));
    KT_CHECK(ids_are(t, "a\xef\xbf\xbd" "b\t\n x", 0, "8,9,19"));
    /* special tokens: text only with KGM_TOK_SPECIAL */
    KT_CHECK(ids_are(t, "[MASK]", KGM_TOK_SPECIAL, "4"));
    KT_CHECK(ids_are(t, "[MASK]", 0, "25,27,26"));
    /* max_input_chars_per_word 100, in characters: 100 x's are x + 99 ##x; 101 are [UNK] */
    char w[400];
    memset(w, 'x', 101);
    w[101] = 0;
    int n;
    int32_t *ids = tokenize(t, w, 100, 0, &n);
    KT_CHECK(ids && n == 100 && ids[0] == 19 && ids[99] == 20);
    free(ids);
    KT_CHECK(ids_are(t, w, 0, "1"));
    /* pieces: a continuation joins, others get a space, control tokens are "" */
    char p[32];
    KT_CHECK(kgr_token_piece(t, 6, p, sizeof p) == 3 && !memcmp(p, "aff", 3));
    KT_CHECK(kgr_token_piece(t, 5, p, sizeof p) == 3 && !memcmp(p, " un", 3));
    KT_CHECK(kgr_token_piece(t, 2, p, sizeof p) == 0);
    KT_CHECK(kgr_tok_bos(t) == 2 && kgr_tok_eos(t) == 3 && kgr_tok_max_length(t) == 0);
    kgr_tok_free(t);
    free(keep);

    /* cased: do_lower_case false (strip_accents follows it: off) */
    KT_REQUIRE(make_vocab_dir(dir, sizeof dir, "vt_cased", "{\"do_lower_case\": false, \"model_max_length\": 512}"));
    t = hf_tok(dir, &keep);
    KT_REQUIRE(t);
    KT_CHECK(ids_are(t, "Hello hello", 0, "23,16"));
    KT_CHECK(ids_are(t, "é", 0, "24"));
    KT_CHECK(kgr_tok_max_length(t) == 512);
    kgr_tok_free(t);
    free(keep);
    /* cased, strip_accents true: é -> e */
    KT_REQUIRE(make_vocab_dir(dir, sizeof dir, "vt_strip", "{\"do_lower_case\": false, \"strip_accents\": true}"));
    t = hf_tok(dir, &keep);
    KT_REQUIRE(t);
    KT_CHECK(ids_are(t, "é", 0, "10"));
    kgr_tok_free(t);
    free(keep);
}

/* ───────────────────────── malformed blobs ───────────────────────── */

KT_TEST(tokenizer_wp_malformed_blobs)
{
    char dir[600];
    KT_REQUIRE(make_vocab_dir(dir, sizeof dir, "mb", NULL));
    void *blob;
    size_t size;
    KT_REQUIRE(gen_tokdata_hf(dir, NULL, &blob, &size) == KG_OK);
    char what[80];
    for (size_t n = 0; n < size; n++) {
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", n, size);
        expect_bad(blob, n, what);
    }
    uint8_t *b = malloc(size + 1);
    KT_REQUIRE(b);
    size_t wp = size - 30; /* the WordPiece settings: flags, chars, length, cls, sep, mask, prefix "##" */
#define MUTATE(desc, stmt) do { memcpy(b, blob, size); stmt; expect_bad(b, size, desc); } while (0)
    MUTATE("version 2 with the WordPiece flag", b[7] = '2');
    MUTATE("version 4", b[7] = '4');
    MUTATE("WordPiece with SentencePiece", put32(b + 36, 8 | 2 | 1));
    MUTATE("WordPiece without its flag", put32(b + 36, 1));
    MUTATE("unk missing", put32(b + 24, UINT32_MAX));
    MUTATE("unk out of range", put32(b + 24, 1000));
    MUTATE("a merge count", put32(b + 12, 1));
    MUTATE("pre-tokenizer not bert", b[44] = 'x');
    MUTATE("unknown WordPiece flag", put32(b + wp, 16));
    MUTATE("max chars 0", put32(b + wp + 4, 0));
    MUTATE("max chars too large", put32(b + wp + 4, 5000));
    MUTATE("max length too large", put32(b + wp + 8, (1u << 24) + 1));
    MUTATE("cls out of range", put32(b + wp + 12, 28));
    MUTATE("sep missing with [CLS] [SEP] added", put32(b + wp + 16, UINT32_MAX));
    MUTATE("mask out of range", put32(b + wp + 20, 0x7fffffff));
    MUTATE("prefix too long", put32(b + wp + 24, 17));
    MUTATE("prefix past the end", put32(b + wp + 24, 3));
    memcpy(b, blob, size);
    b[size] = 0;
    expect_bad(b, size + 1, "a trailing byte");
    uint64_t rs = 16;
    int accepted = 0;
    char err[256];
    for (int it = 0; it < 3000; it++) {
        memcpy(b, blob, size);
        int flips = 1 + (int)(rng_next(&rs) % 4);
        for (int j = 0; j < flips; j++) b[rng_next(&rs) % size] = (uint8_t)rng_next(&rs);
        void *keep = NULL;
        err[0] = 0;
        kgr_tok *t = tok_from_blob(b, size, &keep, err, sizeof err);
        if (!t) {
            KT_CHECKF(err[0], "mutation %d refused without a message", it);
            continue;
        }
        accepted++;
        char s[256];
        size_t len = random_text(&rs, s, sizeof s, true);
        int32_t ids[300];
        int n = kgr_tokenize(t, s, len, KGM_TOK_SPECIAL | KGM_TOK_BOS, ids, 300);
        KT_CHECK(n >= 0 && n <= 300);
        for (int i = 0; i < n && i < 300; i++) KT_CHECK(kgr_token_piece(t, ids[i], s, sizeof s) >= 0);
        kgr_tok_free(t);
        free(keep);
    }
    printf("    %zu-byte WordPiece blob: %zu truncations and 18 corruptions refused; %d of 3000 random mutations accepted\n",
           size, size, accepted);
    free(b);
    free(blob);
}

/* ───────────────────────── malformed tokenizer.json ───────────────────────── */

KT_TEST(tokenizer_wp_bad_tokenizer_json)
{
    static const char *const good_model =
        "\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"a\": 1, \"##b\": 2}}";
    static const struct { const char *json, *key; } cases[] = {
        {"{not json", "not valid JSON"},
        {"[1, 2]", "top level"},
        {"{\"model\": 3}", "model"},
        {"{\"model\": {\"vocab\": {}}}", "model.type"},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "model.type \"Unigram\""},
        {"{\"model\": {\"type\": \"WordLevel\"}}", "model.type \"WordLevel\""},
        {"{\"model\": {\"type\": 7}}", "model.type"},
        {"{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": [\"a\"]}}", "model.vocab"},
        {"{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"a\": 5}}}", "model.vocab"},
        {"{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"a\": 0}}}", "model.vocab"},
        {"{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"a\": -1}}}", "model.vocab"},
        {"{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"a\": 99999999999}}}", "model.vocab"},
        {"{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"a\": \"1\"}}}", "model.vocab"},
        {"{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"[UNK]\": 1}}}", "not valid JSON"},
        {"{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": "
         "\"BertPreTokenizer\"}}", "model.unk_token"},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", "model.unk_token"},
        {"{\"model\": {\"type\": \"WordPiece\", \"unk_token\": 1, \"vocab\": {\"a\": 0}}}", "model.unk_token"},
        {"{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {}}}", "model.vocab"},
        {"{%s, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}", "pre_tokenizer.type"},
        {"{%s}", "pre_tokenizer"},
        {"{%s, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"normalizer\": {\"type\": \"NFC\"}}", "normalizer.type"},
        {"{%s, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"normalizer\": {\"type\": \"BertNormalizer\", "
         "\"lowercase\": 1}}", "normalizer.lowercase"},
        {"{%s, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"post_processor\": {\"type\": \"RobertaProcessing\"}}",
         "post_processor.type"},
        {"{%s, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"post_processor\": {\"type\": \"BertProcessing\", "
         "\"cls\": [\"[CLS]\", 9], \"sep\": [\"a\", 1]}}", "post_processor.cls"},
        {"{%s, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"truncation\": {\"max_length\": -3}}",
         "truncation.max_length"},
        {"{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0}, "
         "\"max_input_chars_per_word\": 0}}", "model.max_input_chars_per_word"},
        {"{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0}, "
         "\"continuing_subword_prefix\": \"#################\"}}", "model.continuing_subword_prefix"},
        {"{%s, \"added_tokens\": [{\"id\": 1, \"content\": \"zz\"}]}", "added_tokens[0]"},
        {"{%s, \"added_tokens\": [{\"id\": 3, \"content\": 3}]}", "added_tokens[0].content"},
        {"{%s, \"added_tokens\": [{\"content\": \"x\"}]}", "added_tokens[0].id"},
        {"{%s, \"added_tokens\": 5}", "added_tokens"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}",
         "pre_tokenizer"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Sequence\", "
         "\"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s+\"}, \"behavior\": \"Isolated\", "
         "\"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]}}",
         "pre_tokenizer.pretokenizers[0].pattern.Regex"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [3]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", "
         "\"add_prefix_space\": false}}", "model.merges[0]"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}, \"pre_tokenizer\": {\"type\": "
         "\"ByteLevel\", \"add_prefix_space\": false}}", "model.merges[0]"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"byte_fallback\": true}}", "model.byte_fallback"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": \"NFC\"}}", "normalizer"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", "
         "\"add_prefix_space\": true}}", "pre_tokenizer"},
    };
    char dir[600], path[700], text[2048];
    int n_ok = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu", i);
        sub_dir(dir, sizeof dir, name);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        int n = snprintf(text, sizeof text, cases[i].json, good_model);
        KT_REQUIRE(n > 0 && (size_t)n < sizeof text && write_file(path, text, (size_t)n));
        void *blob = (void *)1;
        size_t size = 1;
        kg_status s = gen_tokdata_hf(dir, NULL, &blob, &size);
        const char *msg = kg_last_error();
        bool ok = s != KG_OK && !blob && !size && strstr(msg, path) && strstr(msg, cases[i].key);
        KT_CHECKF(ok, "case %zu: status %d, message \"%s\" (expected the file and \"%s\")", i, s, msg, cases[i].key);
        n_ok += ok;
        if (s == KG_OK) free(blob);
    }
    /* tokenizer_config.json: not JSON, a bad chat template, a bad bos_token */
    static const struct { const char *cfg, *key; } cfgs[] = {
        {"{\"chat_template\": 5}", "chat_template"},
        {"{\"do_lower_case\": \"yes\"}", "do_lower_case"},
        {"{\"unk_token\": \"<unk>\"}", "unk_token"},
        {"{\"cls_token\": {\"content\": 3}}", "cls_token.content"},
        {"{,}", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
        char name[32];
        snprintf(name, sizeof name, "badcfg%zu", i);
        KT_REQUIRE(make_vocab_dir(dir, sizeof dir, name, cfgs[i].cfg));
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        void *blob = NULL;
        size_t size = 0;
        kg_status s = gen_tokdata_hf(dir, NULL, &blob, &size);
        const char *msg = kg_last_error();
        bool ok = s != KG_OK && strstr(msg, path) && strstr(msg, cfgs[i].key);
        KT_CHECKF(ok, "config case %zu: status %d, message \"%s\"", i, s, msg);
        n_ok += ok;
        if (s == KG_OK) free(blob);
    }
    void *blob;
    size_t size;
    KT_CHECK(gen_tokdata_hf(sub_dir(dir, sizeof dir, "empty"), NULL, &blob, &size) == KG_ERR_NOTFOUND);
    printf("    %d malformed tokenizer.json / tokenizer_config.json files refused, naming the file and the key\n", n_ok);

    /* 2 x 1000 random byte mutations of two small valid files (WordPiece, BPE): accepted, or refused with a
       message naming the file; an accepted one makes a blob kgr_tok_init takes */
    static const char *const valid[2] = {
        "{\"truncation\": {\"max_length\": 64}, \"added_tokens\": [{\"id\": 0, \"content\": \"[UNK]\", \"special\": "
        "true}, {\"id\": 3, \"content\": \"[CLS]\", \"special\": true}, {\"id\": 4, \"content\": \"[SEP]\", "
        "\"special\": true}], \"normalizer\": {\"type\": \"BertNormalizer\", \"clean_text\": true, "
        "\"handle_chinese_chars\": true, \"strip_accents\": null, \"lowercase\": true}, \"pre_tokenizer\": {\"type\": "
        "\"BertPreTokenizer\"}, \"post_processor\": {\"type\": \"BertProcessing\", \"cls\": [\"[CLS]\", 3], \"sep\": "
        "[\"[SEP]\", 4]}, \"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", "
        "\"continuing_subword_prefix\": \"##\", \"max_input_chars_per_word\": 100, \"vocab\": {\"[UNK]\": 0, \"a\": 1, "
        "\"##b\": 2, \"[CLS]\": 3, \"[SEP]\": 4}}}",
        "{\"added_tokens\": [{\"id\": 5, \"content\": \"<s>\", \"special\": true}], \"normalizer\": null, "
        "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
        "{\"Regex\": \"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "
        "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, "
        "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
        "\"use_regex\": false}]}, \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
        "{\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]}, \"model\": {\"type\": "
        "\"BPE\", \"dropout\": null, \"unk_token\": null, \"byte_fallback\": false, \"ignore_merges\": false, "
        "\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"\\u0120\": 3, \"\\u0120ab\": 4}, \"merges\": [\"a b\", "
        "[\"\\u0120\", \"ab\"]]}}",
    };
    uint64_t rs = 99;
    int accepted = 0, refused = 0;
    const char *seeds = getenv("KGEN_WRITE_HF_CORPUS"); /* tests/fuzz_hf.c's seeds: mode byte 0, the file */
    for (int v = 0; v < 2 && seeds && *seeds; v++) {
        char sp[700];
        mkdir(seeds, 0755);
        snprintf(sp, sizeof sp, "%s/tokenizer-%d", seeds, v);
        FILE *f = fopen(sp, "wb");
        if (f) fputc(0, f), fputs(valid[v], f), fclose(f);
    }
    for (int v = 0; v < 2; v++) {
        size_t len = strlen(valid[v]);
        char *m = malloc(len + 1);
        KT_REQUIRE(m);
        snprintf(path, sizeof path, "%s/tokenizer.json", sub_dir(dir, sizeof dir, v ? "mut_bpe" : "mut_wp"));
        for (int it = -1; it < 1000; it++) {
            memcpy(m, valid[v], len + 1);
            for (int j = 0, flips = 1 + (int)(rng_next(&rs) % 3); it >= 0 && j < flips; j++)
                m[rng_next(&rs) % len] = " \"{}[],:0123456789abtrue-\\"[rng_next(&rs) % 24];
            KT_REQUIRE(write_file(path, m, len));
            blob = NULL;
            kg_status s = gen_tokdata_hf(dir, NULL, &blob, &size);
            if (it < 0) KT_CHECKF(s == KG_OK, "the valid file %d: %s", v, kg_last_error());
            if (s != KG_OK) {
                KT_CHECKF(strstr(kg_last_error(), path) != NULL, "mutation %d of %d: \"%s\"", it, v, kg_last_error());
                refused++;
                continue;
            }
            accepted++;
            char err[256];
            void *keep;
            kgr_tok *t = tok_from_blob(blob, size, &keep, err, sizeof err);
            KT_CHECKF(t, "mutation %d of file %d: its blob refused: %s", it, v, err);
            if (t) {
                int32_t ids[64];
                int n = kgr_tokenize(t, "ab [CLS] 'll x", 14, KGM_TOK_BOS | KGM_TOK_SPECIAL, ids, 64);
                KT_CHECK(n >= 0 && n <= 64);
            }
            kgr_tok_free(t);
            free(keep);
            free(blob);
        }
        free(m);
    }
    printf("    %d random mutations of two small tokenizer.json files: %d accepted (blobs valid), %d refused naming the file\n",
           accepted + refused - 2, accepted - 2, refused);
}

/* ───────────────────────── against Hugging Face ───────────────────────── */

typedef struct strs {
    char **s;
    size_t *len;
    int n, cap;
} strs;

static int hex_bytes(const char *h, char **out, size_t *len)
{
    size_t n = strcmp(h, "-") ? strlen(h) / 2 : 0;
    char *s = malloc(n + 1);
    if (!s) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1) { free(s); return -1; }
        s[i] = (char)v;
    }
    s[n] = 0;
    *out = s, *len = n;
    return 0;
}

static int parse_list(char *list, int32_t *ids, int cap)
{
    if (!strcmp(list, "-")) return 0;
    int n = 0;
    for (char *save, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (n < cap) ids[n] = (int32_t)strtol(p, NULL, 10);
        n++;
    }
    return n;
}

static bool compare(kgr_tok *t, const char *s, size_t len, int flags, const int32_t *want, int nw, const char *what, int *shown)
{
    int n;
    int32_t *ids = tokenize(t, s, len, flags, &n);
    bool ok = ids && same_ids(ids, n, want, nw);
    if (!ok && (*shown)++ < 8) {
        char sh[200];
        show(sh, sizeof sh, s, len);
        printf("    %s flags %d: \"%s\": kgen %d tokens (", what, flags, sh, ids ? n : -1);
        for (int i = 0; ids && i < n && i < 12; i++) printf("%s%d", i ? "," : "", ids[i]);
        printf("), HF %d (", nw);
        for (int i = 0; i < nw && i < 12; i++) printf("%s%d", i ? "," : "", want[i]);
        printf(")\n");
    }
    free(ids);
    return ok;
}

KT_TEST(tokenizer_wp_matches_hf_tokenizers)
{
    char minilm[600], smol[600];
    snprintf(minilm, sizeof minilm, "%s/%s", kt_models_dir(), MINILM);
    snprintf(smol, sizeof smol, "%s/%s", kt_models_dir(), SMOL);
    char probe[700];
    snprintf(probe, sizeof probe, "%s/tokenizer.json", minilm);
    FILE *pf = fopen(probe, "r");
    if (!pf) KT_SKIP("%s not found: run 'make models'", probe);
    fclose(pf);
    pf = fopen(smol, "r");
    if (!pf) KT_SKIP("%s not found: run 'make models'", smol);
    fclose(pf);
    /* the files the reference writes */
    char d[10][600], out[700], gguf[700], files[10][700]; /* (kt_tmpdir() is short) */
    static const char *const names[10] = {"c1", "c2", "c3", "c4", "smol", "smols", "gpt2", "llama3", "qwen2", "ref"};
    for (int i = 0; i < 10; i++) sub_dir(d[i], sizeof d[i], names[i]);
    snprintf(out, sizeof out, "%s/out.txt", d[9]);
    snprintf(gguf, sizeof gguf, "%s/bert.gguf", d[9]);
    for (int i = 0; i < 9; i++) snprintf(files[i], sizeof files[i], "%.600s/tokenizer.json", d[i]);
    snprintf(files[9], sizeof files[9], "%s/tokenizer_config.json", d[4]);
    char *argv[] = {"/usr/bin/env", (char *)kt_python(), "tests/ref/tok_wp_ref.py", minilm, out, gguf, files[0], files[1],
                    files[2], files[3], smol, files[4], files[5], files[9], files[6], files[7], files[8], NULL};
    const char *const outputs[] = {out, gguf, files[0], files[1], files[2], files[3], files[4], files[5], files[9],
                                   files[6], files[7], files[8], NULL};
    char so[1024], se[4096];
    int rc = kt_run_ref(argv, outputs, so, sizeof so, se, sizeof se);
    if (rc == 3 || rc == 127) KT_SKIP("the reference needs Python with 'tokenizers' and 'gguf' (pip install tokenizers gguf)");
    KT_REQUIRE(rc == 0 || (printf("    tok_wp_ref.py failed (%d): %.2000s\n", rc, se), 0));
    printf("    tok_wp_ref.py: %s", so);

    /* kgen's tokenizers: 0..4 the WordPiece configurations, 5 the GGUF, 6 and 7 SmolLM2's BPE (pairs, strings),
       8..10 its vocabulary with the gpt2, llama-bpe, qwen2 pre-tokenizers */
    kgr_tok *tk[11] = {NULL};
    void *keep[11] = {NULL};
    tk[0] = hf_tok(minilm, &keep[0]);
    for (int i = 0; i < 4; i++) tk[1 + i] = hf_tok(d[i], &keep[1 + i]);
    kg_gguf *g = NULL;
    void *gblob = NULL;
    size_t gsize = 0;
    char err[256];
    KT_CHECKF(kg_gguf_open(gguf, &g) == KG_OK && gen_tokdata(g, NULL, &gblob, &gsize) == KG_OK, "GGUF route: %s",
              kg_last_error());
    if (gblob) tk[5] = tok_from_blob(gblob, gsize, &keep[5], err, sizeof err);
    tk[6] = hf_tok(d[4], &keep[6]);
    tk[7] = hf_tok(d[5], &keep[7]);
    for (int i = 0; i < 3; i++) tk[8 + i] = hf_tok(d[6 + i], &keep[8 + i]);
    for (int i = 0; i < 11; i++) KT_CHECKF(tk[i], "tokenizer %d not built", i);
    KT_CHECK(tk[0] && kgr_tok_max_length(tk[0]) == 128 && kgr_tok_bos(tk[0]) == 101 && kgr_tok_eos(tk[0]) == 102);
    KT_CHECK(tk[5] && kgr_tok_max_length(tk[5]) == 512 && kgr_tok_bos(tk[5]) == 101 && kgr_tok_eos(tk[5]) == 102);

    FILE *f = fopen(out, "r");
    KT_REQUIRE(f);
    strs S = {0};
    int32_t *want = malloc(400000 * sizeof *want);
    KT_REQUIRE(want);
    char *line = NULL;
    size_t lcap = 0;
    int n_invalid = 0, n_cmp[5][4] = {{0}}, n_bad = 0, n_gguf = 0, n_bpe[4] = {0}, n_dec = 0, n_dec_bad = 0, shown = 0;
    size_t total = 0;
    while (getline(&line, &lcap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        char *save, *tag = strtok_r(line, " ", &save);
        if (!tag) continue;
        if (!strcmp(tag, "S") || !strcmp(tag, "X")) {
            char *idx = strtok_r(NULL, " ", &save), *hex = strtok_r(NULL, " ", &save);
            KT_REQUIRE(idx && hex && atoi(idx) == S.n);
            if (S.n == S.cap) {
                S.cap = S.cap ? 2 * S.cap : 1024;
                S.s = realloc(S.s, (size_t)S.cap * sizeof *S.s);
                S.len = realloc(S.len, (size_t)S.cap * sizeof *S.len);
                KT_REQUIRE(S.s && S.len);
            }
            KT_REQUIRE(hex_bytes(hex, &S.s[S.n], &S.len[S.n]) == 0);
            total += S.len[S.n];
            S.n++;
            n_invalid += tag[0] == 'X';
        } else if (!strcmp(tag, "R") || !strcmp(tag, "B")) {
            bool bpe = tag[0] == 'B';
            int cfg = atoi(strtok_r(NULL, " ", &save)); /* B: the kind */
            int fl = atoi(strtok_r(NULL, " ", &save)), idx = atoi(strtok_r(NULL, " ", &save));
            char *list = strtok_r(NULL, " ", &save);
            KT_REQUIRE(list && idx >= 0 && idx < S.n && cfg >= 0 && cfg < 5 && fl >= 0 && fl < 4);
            int nw = parse_list(list, want, 400000);
            KT_REQUIRE(nw <= 400000);
            int flags = (fl & 1 ? KGM_TOK_BOS : 0) | (fl & 2 ? KGM_TOK_SPECIAL : 0);
            if (bpe) {
                static const char *const kind[5] = {"BPE smollm", "BPE smollm (string merges)", "BPE gpt2", "BPE llama-bpe",
                                                    "BPE qwen2"};
                KT_REQUIRE(cfg < 4);
                for (int k = cfg ? cfg + 1 : 0; k <= (cfg ? cfg + 1 : 1); k++)
                    if (tk[6 + k]) n_bad += !compare(tk[6 + k], S.s[idx], S.len[idx], flags, want, nw, kind[k], &shown);
                n_bpe[cfg]++;
                continue;
            }
            char what[32];
            snprintf(what, sizeof what, "config %d", cfg);
            if (tk[cfg]) n_bad += !compare(tk[cfg], S.s[idx], S.len[idx], flags, want, nw, what, &shown);
            n_cmp[cfg][fl]++;
            if (cfg == 0 && tk[5]) {
                n_bad += !compare(tk[5], S.s[idx], S.len[idx], flags, want, nw, "GGUF", &shown);
                n_gguf++;
            }
        } else if (!strcmp(tag, "D") && tk[0]) {
            int idx = atoi(strtok_r(NULL, " ", &save));
            char *hex = strtok_r(NULL, " ", &save), *exp;
            size_t elen;
            KT_REQUIRE(hex && idx >= 0 && idx < S.n && hex_bytes(hex, &exp, &elen) == 0);
            int n;
            int32_t *ids = tokenize(tk[0], S.s[idx], S.len[idx], 0, &n);
            size_t dl = 0;
            char *dec = ids ? detokenize(tk[0], ids, n, &dl) : NULL;
            const char *p = dec ? dec : "";
            if (dl && p[0] == ' ') p++, dl--; /* the pieces' one leading space */
            bool ok = dec && dl == elen && memcmp(p, exp, elen) == 0;
            if (!ok && n_dec_bad++ < 4) {
                char a[200], b[200];
                show(a, sizeof a, p, dl);
                show(b, sizeof b, exp, elen);
                printf("    pieces of string %d: \"%s\", HF's WordPiece decoder: \"%s\"\n", idx, a, b);
            }
            n_dec++;
            free(ids);
            free(dec);
            free(exp);
        }
    }
    free(line);
    fclose(f);
    int n_total = 0;
    for (int c = 0; c < 5; c++)
        for (int fl = 0; fl < 4; fl++) n_total += n_cmp[c][fl];
    printf("    %d strings (%zu bytes; %d not UTF-8); %d WordPiece tokenizations compared with HF tokenizers (5 "
           "configurations x 4 flag sets), %d through the GGUF, %d byte-level BPE (SmolLM2's vocabulary) through "
           "tokenizer.json (smollm %d x 2 merge forms, gpt2 %d, llama-bpe %d, qwen2 %d): %d differ; "
           "%d decodings compared with HF's WordPiece decoder: %d differ\n",
           S.n, total, n_invalid, n_total, n_gguf, 2 * n_bpe[0] + n_bpe[1] + n_bpe[2] + n_bpe[3], n_bpe[0], n_bpe[1],
           n_bpe[2], n_bpe[3], n_bad, n_dec, n_dec_bad);
    KT_CHECKF(S.n - n_invalid >= 1000 && n_invalid >= 1000, "only %d strings, %d not UTF-8", S.n, n_invalid);
    for (int c = 0; c < 5; c++)
        for (int fl = 0; fl < 4; fl++) KT_CHECKF(n_cmp[c][fl] == S.n, "config %d flags %d: %d of %d", c, fl, n_cmp[c][fl], S.n);
    KT_CHECK(n_gguf == 4 * S.n && n_dec == S.n);
    for (int k = 0; k < 4; k++) KT_CHECKF(n_bpe[k] == 4 * (S.n - n_invalid), "BPE kind %d: %d", k, n_bpe[k]);
    KT_CHECKF(n_bad == 0 && n_dec_bad == 0, "%d tokenizations and %d decodings differ", n_bad, n_dec_bad);
    for (int i = 0; i < 11; i++) {
        kgr_tok_free(tk[i]);
        free(keep[i]);
    }
    for (int i = 0; i < S.n; i++) free(S.s[i]);
    free(S.s);
    free(S.len);
    free(want);
    free(gblob);
    if (g) kg_gguf_close(g);
}

/* The committed runtime/model/unicode_tab.h and unicode_bert_tab.h are what
 * scripts/gen_unicode.py writes with the reference venv's unicodedata and
 * tokenizers (the BERT tables are probed from tokenizers). */
KT_TEST(tokenizer_wp_unicode_tables_current)
{
    static const char *const parts[2][2] = {{NULL, "runtime/model/unicode_tab.h"},
                                            {"bert", "runtime/model/unicode_bert_tab.h"}};
    size_t cap = 1 << 20;
    char *out = malloc(cap), *have = malloc(cap), err[2048];
    KT_REQUIRE(out && have);
    for (int k = 0; k < 2; k++) {
        char *argv[] = {"/usr/bin/env", (char *)kt_python(), "scripts/gen_unicode.py", (char *)parts[k][0], NULL};
        int rc = kt_run_ref(argv, NULL, out, cap, err, sizeof err);
        if (rc == 127 || (rc != 0 && strstr(err, "No module named"))) {
            free(out), free(have);
            KT_SKIP("scripts/gen_unicode.py needs Python with 'tokenizers' (pip install tokenizers)");
        }
        KT_CHECKF(rc == 0, "gen_unicode.py %s failed (%d): %.1500s", parts[k][0] ? parts[k][0] : "", rc, err);
        FILE *f = rc == 0 ? fopen(parts[k][1], "rb") : NULL;
        KT_CHECKF(f, "%s: cannot open", parts[k][1]);
        if (!f) continue;
        size_t n = fread(have, 1, cap - 1, f);
        fclose(f);
        have[n] = 0;
        KT_CHECKF(strcmp(have, out) == 0, "%s differs from scripts/gen_unicode.py %s's output (%zu vs %zu bytes): "
                  "regenerate it with build/venv/bin/python scripts/gen_unicode.py %s > %s", parts[k][1],
                  parts[k][0] ? parts[k][0] : "", n, strlen(out), parts[k][0] ? parts[k][0] : "", parts[k][1]);
        printf("    %s (%zu bytes) is gen_unicode.py's output\n", parts[k][1], n);
    }
    free(have);
    free(out);
}

/* ───────────────────────── speed (reported, never asserted) ───────────────────────── */

KT_TEST(tokenizer_wp_timing_report)
{
    char minilm[600];
    snprintf(minilm, sizeof minilm, "%s/%s", kt_models_dir(), MINILM);
    void *keep;
    char probe[700];
    snprintf(probe, sizeof probe, "%s/tokenizer.json", minilm);
    FILE *pf = fopen(probe, "r");
    if (!pf) KT_SKIP("%s not found: run 'make models'", probe);
    fclose(pf);
    double g0 = now_ms();
    void *blob;
    size_t size;
    KT_REQUIRE(gen_tokdata_hf(minilm, NULL, &blob, &size) == KG_OK);
    double gen_ms = now_ms() - g0;
    kgr_tok *t = tok_from_blob(blob, size, &keep, probe, sizeof probe);
    KT_REQUIRE(t);
    static const char *para =
        "The history of computing is longer than the history of computing hardware and modern computing "
        "technology and includes the history of methods intended for pen and paper or for chalk and slate, "
        "with or without the aid of tables. Digital computing is intimately tied to the representation of "
        "numbers. But long before abstractions like the number arose, there were mathematical concepts to "
        "serve the purposes of civilization. These concepts are implicit in concrete practices such as "
        "one-to-one correspondence, the basis of counting, and comparison to a standard, used for measurement.\n\n";
    size_t cap = 1 << 20, n = 0, pl = strlen(para);
    char *text = malloc(cap);
    int32_t *ids = malloc(cap / 2 * sizeof *ids);
    KT_REQUIRE(text && ids);
    while (n < cap) {
        size_t c = pl < cap - n ? pl : cap - n;
        memcpy(text + n, para, c);
        n += c;
    }
    double best = 1e9;
    int count = 0;
    for (int it = 0; it < 3; it++) {
        double t0 = now_ms();
        count = kgr_tokenize(t, text, n, 0, ids, (int)(cap / 2));
        double dt = now_ms() - t0;
        if (dt < best) best = dt;
    }
    double init = 1e9;
    for (int it = 0; it < 3; it++) {
        kgr_tok *t2 = NULL;
        char err[256];
        double t0 = now_ms();
        KT_CHECK(kgr_tok_init(&t2, keep, size, err, sizeof err) == 0);
        double dt = now_ms() - t0;
        kgr_tok_free(t2);
        if (dt < init) init = dt;
    }
    printf("    CPU time, best of 3: WordPiece (all-MiniLM-L6-v2) on 1 MiB of English: %.1f ms (%d tokens, %.1f MB/s); "
           "gen_tokdata_hf: %.1f ms; init from the %zu-byte blob (30522 tokens): %.2f ms\n",
           best, count, best > 0 ? (double)n / 1e6 / (best / 1e3) : 0.0, gen_ms, size, init);
    KT_CHECK(count > 100000 && count < 400000);
    free(ids);
    free(text);
    kgr_tok_free(t);
    free(keep);
    free(blob);
}
