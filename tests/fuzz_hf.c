/*
 * fuzz_hf.c — libFuzzer target for what kgen reads of a Hugging Face model
 * directory besides the safetensors themselves (fuzz_safetensors.c has
 * those): the JSON files, parsed by jansson and then walked by kgen's own
 * code, which must check every type and range.
 *
 *   input[0] % 3 == 0: the rest is tokenizer.json: gen_tokdata_hf (with a
 *                      tokenizer_config.json of a chat template beside it
 *                      when input[0] is 3); an accepted file's blob must
 *                      open in the runtime's tokenizer and tokenize;
 *   input[0] % 3 == 1: the rest is config.json, beside a model.safetensors
 *                      of one small tensor: gen_source_hf and, when it
 *                      opens, every hyperparameter lookup;
 *   input[0] % 3 == 2: the rest is modules.json, beside a valid BERT
 *                      config.json and that safetensors (sentence-
 *                      transformers' pooling).
 *
 * The files go into one temporary directory made at the first input,
 * rewritten for each and removed at exit. Any crash, out-of-bounds read, leak or undefined
 * behaviour is a bug; so is an accepted tokenizer whose blob the runtime
 * refuses (abort()). Seeds (make fuzz): the tests' small valid files
 * (tests/test_tokenizer_wp.c, KGEN_WRITE_HF_CORPUS) and MiniLM's config.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined ... tests/fuzz_hf.c gen/source*.c gen/tokdata*.c ...
 */
#include "gen.h"
#include "kgen.h"
#include "runtime/model/rt.h"
#include "source.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile uint64_t sink;
static char dir[64];

static void put(const char *name, const void *data, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) abort(); /* the harness's own files */
}

static void drop(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* one F32 tensor "embeddings.word_embeddings.weight" [2, 4]: enough for
 * the reader to get past the weights file to the config's checks */
static void put_safetensors(void)
{
    static const char hdr[] = "{\"embeddings.word_embeddings.weight\":{\"dtype\":\"F32\",\"shape\":[2,4],"
                              "\"data_offsets\":[0,32]}}";
    uint8_t buf[8 + sizeof hdr + 32] = {0};
    const uint64_t n = sizeof hdr - 1;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(n >> (8 * i));
    memcpy(buf + 8, hdr, n);
    put("model.safetensors", buf, 8 + n + 32);
}

static void tokenizer(const uint8_t *data, size_t n, int with_config)
{
    static const char cfg[] = "{\"chat_template\": \"{% for m in messages %}<|im_start|>{{ m['role'] }}\\n"
                              "{{ m['content'] }}<|im_end|>\\n{% endfor %}\", \"bos_token\": null}";
    put("tokenizer.json", data, n);
    if (with_config) put("tokenizer_config.json", cfg, sizeof cfg - 1);
    else drop("tokenizer_config.json");
    void *blob = NULL;
    size_t size = 0;
    if (gen_tokdata_hf(dir, NULL, &blob, &size) != KG_OK) return;
    kgr_tok *t = NULL;
    char err[512];
    if (kgr_tok_init(&t, blob, size, err, sizeof err) != 0) abort(); /* an accepted file makes a valid blob */
    static const char text[] = "Hello, [CLS] <s> world caf\xC3\xA9 \xF0\x9F\x98\x80 12345 'll \xC0\x80\xFF\n\n  x";
    int32_t ids[256];
    int m = kgr_tokenize(t, text, sizeof text - 1, KGM_TOK_BOS | KGM_TOK_SPECIAL, ids, 256);
    char piece[256];
    for (int i = 0; i < m && i < 256; i++) sink += (uint64_t)kgr_token_piece(t, ids[i], piece, sizeof piece);
    for (int32_t i = 0; i < kgr_tok_n_vocab(t) && i < 1024; i++)
        sink += (uint64_t)kgr_token_piece(t, i, piece, sizeof piece);
    kgr_tok_free(t);
    free(blob);
}

static void source(void)
{
    gen_source *s = NULL;
    if (gen_source_hf(dir, &s) != KG_OK) {
        if (s) abort();
        return;
    }
    static const char *const keys[] = {"general.architecture", "bert.block_count", "bert.embedding_length",
                                       "bert.attention.head_count", "bert.context_length", "llama.block_count",
                                       "llama.rope.freq_base", "qwen2.block_count", "bert.pooling_type"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        int64_t v;
        double f;
        kg_str str;
        sink += (uint64_t)gen_src_i64(s, keys[i], false, 0, &v) + (uint64_t)gen_src_f64(s, keys[i], false, 0, &f) +
                (uint64_t)gen_src_str(s, keys[i], false, &str);
    }
    gen_source_close(s);
}

static void cleanup(void)
{
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json", "config.json", "modules.json",
                                        "model.safetensors"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) drop(names[i]);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    static const char bert[] = "{\"model_type\": \"bert\", \"hidden_size\": 4, \"num_hidden_layers\": 1, "
                               "\"num_attention_heads\": 1, \"intermediate_size\": 8, \"vocab_size\": 2, "
                               "\"max_position_embeddings\": 8, \"type_vocab_size\": 1, \"layer_norm_eps\": 1e-12, "
                               "\"hidden_act\": \"gelu\"}";
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/kgen-fuzz-hf-XXXXXX");
        if (!mkdtemp(dir)) abort();
        atexit(cleanup);
        put_safetensors();
    }
    if (n < 1) return 0;
    switch (data[0] % 3) {
    case 0:
        tokenizer(data + 1, n - 1, data[0] == 3);
        break;
    case 1:
        drop("modules.json");
        put("config.json", data + 1, n - 1);
        source();
        break;
    default:
        put("config.json", bert, sizeof bert - 1);
        put("modules.json", data + 1, n - 1);
        source();
        break;
    }
    return 0;
}
