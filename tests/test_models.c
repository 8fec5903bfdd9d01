/*
 * test_models.c — the real models fetched by `make models`.
 *
 * References, independent of kgen's reader:
 *   - SmolLM2-135M's published configuration (config.json of
 *     HuggingFaceTB/SmolLM2-135M-Instruct) and Gemma 3 270M's;
 *   - llama.cpp's Python GGUF reader (PyPI `gguf`), via tests/ref/gguf_dump.py,
 *     compared record by record: every key's type and value, every tensor's
 *     type, shape, size and absolute offset.
 */
#include "kt.h"
#include "kgen.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SMOL "SmolLM2-135M-Instruct.Q4_1.gguf"
#define GEMMA "gemma-3-270m-q4_k_m.gguf"

static const char *model_path(const char *file, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", kt_models_dir(), file);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

#define OPEN_MODEL(g, file)                                                            \
    char path_[512];                                                                   \
    if (!model_path(file, path_, sizeof path_))                                        \
        KT_SKIP("%s/%s not found: run 'make models'", kt_models_dir(), file);          \
    kg_gguf *g = NULL;                                                                 \
    KT_REQUIRE(kg_gguf_open(path_, &g) == KG_OK || (printf("    %s\n", kg_last_error()), 0))

static uint64_t u64_or(const kg_gguf *g, const char *key, uint64_t def)
{
    uint64_t v;
    return kg_gguf_get_u64(g, key, &v) == KG_OK ? v : def;
}

static void check_shape(const kg_gguf *g, const char *name, uint64_t ne0, uint64_t ne1)
{
    const kg_tensor *t = kg_gguf_find_tensor(g, name);
    KT_CHECKF(t, "tensor %s missing", name);
    if (t) KT_CHECKF(t->ne[0] == ne0 && t->ne[1] == ne1, "%s is %" PRIu64 " x %" PRIu64 ", expected %" PRIu64 " x %" PRIu64,
                     name, t->ne[0], t->ne[1], ne0, ne1);
}

/* published config.json: num_hidden_layers 30, hidden_size 576,
 * num_attention_heads 9, num_key_value_heads 3, intermediate_size 1536,
 * vocab_size 49152, tie_word_embeddings true, rope_theta 100000,
 * rms_norm_eps 1e-5, max_position_embeddings 8192 */
KT_TEST(models_smollm2_config)
{
    OPEN_MODEL(g, SMOL);
    kg_str arch;
    KT_CHECK(kg_gguf_get_str(g, "general.architecture", &arch) == KG_OK && kg_str_eq(arch, "llama"));
    KT_CHECK(u64_or(g, "llama.block_count", 0) == 30);
    KT_CHECK(u64_or(g, "llama.embedding_length", 0) == 576);
    KT_CHECK(u64_or(g, "llama.attention.head_count", 0) == 9);
    KT_CHECK(u64_or(g, "llama.attention.head_count_kv", 0) == 3);
    KT_CHECK(u64_or(g, "llama.feed_forward_length", 0) == 1536);
    KT_CHECK(u64_or(g, "llama.context_length", 0) == 8192);
    const kg_value *tokens = kg_gguf_find(g, "tokenizer.ggml.tokens");
    KT_CHECK(tokens && tokens->type == KG_V_ARRAY && tokens->arr.type == KG_V_STRING && tokens->arr.n == 49152);
    if (tokens && tokens->arr.strs) KT_CHECK(kg_str_eq(tokens->arr.strs[1], "<|im_start|>"));
    double theta = 0, eps = 0;
    KT_CHECK(kg_gguf_get_f64(g, "llama.rope.freq_base", &theta) == KG_OK && theta == 100000.0);
    KT_CHECK(kg_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &eps) == KG_OK && fabs(eps - 1e-5) < 1e-10);
    /* tied embeddings: no separate output matrix */
    KT_CHECK(kg_gguf_find_tensor(g, "output.weight") == NULL);
    check_shape(g, "token_embd.weight", 576, 49152);
    for (int l = 0; l < 30; l++) {
        char n[64];
        snprintf(n, sizeof n, "blk.%d.attn_q.weight", l); check_shape(g, n, 576, 576);
        snprintf(n, sizeof n, "blk.%d.attn_k.weight", l); check_shape(g, n, 576, 192);
        snprintf(n, sizeof n, "blk.%d.attn_v.weight", l); check_shape(g, n, 576, 192);
        snprintf(n, sizeof n, "blk.%d.ffn_gate.weight", l); check_shape(g, n, 576, 1536);
        snprintf(n, sizeof n, "blk.%d.ffn_down.weight", l); check_shape(g, n, 1536, 576);
    }
    KT_CHECK(kg_gguf_n_tensors(g) == 30 * 9 + 2);
    kg_gguf_close(g);
}

/* Gemma 3 270M's published config: 18 layers, hidden 640, 4 heads, 1 KV head,
 * intermediate 2048, head_dim 256, vocab 262144, context 32768. */
KT_TEST(models_gemma3_config)
{
    OPEN_MODEL(g, GEMMA);
    kg_str arch;
    KT_CHECK(kg_gguf_get_str(g, "general.architecture", &arch) == KG_OK && kg_str_eq(arch, "gemma3"));
    KT_CHECK(u64_or(g, "gemma3.block_count", 0) == 18);
    KT_CHECK(u64_or(g, "gemma3.embedding_length", 0) == 640);
    KT_CHECK(u64_or(g, "gemma3.attention.head_count", 0) == 4);
    KT_CHECK(u64_or(g, "gemma3.attention.head_count_kv", 0) == 1);
    KT_CHECK(u64_or(g, "gemma3.feed_forward_length", 0) == 2048);
    KT_CHECK(u64_or(g, "gemma3.attention.key_length", 0) == 256);
    KT_CHECK(u64_or(g, "gemma3.context_length", 0) == 32768);
    const kg_value *tokens = kg_gguf_find(g, "tokenizer.ggml.tokens");
    KT_CHECK(tokens && tokens->arr.n == 262144);
    /* K-quant tensors are present and sized by the 256-element block */
    const kg_tensor *t;
    int kquants = 0;
    for (uint64_t i = 0; (t = kg_gguf_tensor(g, i)); i++)
        if (t->type == KG_TYPE_Q4_K || t->type == KG_TYPE_Q6_K) {
            kquants++;
            KT_CHECK(t->n_bytes == t->n_elements / 256 * kg_type_get(t->type)->size);
        }
    KT_CHECK(kquants > 0);
    kg_gguf_close(g);
}

/* ─────────────── against llama.cpp's Python reader ─────────────── */

static const char *vname(const kg_value *v) { return kg_vtype_name(v->type); }

/* Compares one line of gguf_dump.py output with kgen's reading. */
static void compare_line(const kg_gguf *g, char *line, int *n_tensors_seen)
{
    char key[512], a[64], b[128];
    uint64_t x, y, z, w, q;
    if (sscanf(line, "V %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64, &x, &y, &z, &w, &q) == 5) {
        KT_CHECKF(x == kg_gguf_version(g) && y == kg_gguf_alignment(g) && z == kg_gguf_data_offset(g) &&
                  w == kg_gguf_n_kv(g) && q == kg_gguf_n_tensors(g), "header differs: ref '%s'", line);
    } else if (sscanf(line, "K %511s %63s %127s", key, a, b) == 3) {
        const kg_value *v = kg_gguf_find(g, key);
        KT_CHECKF(v && !strcmp(vname(v), a), "key %s: ref type %s, kgen %s", key, a, v ? vname(v) : "absent");
        if (!v) return;
        if (v->type == KG_V_F32 || v->type == KG_V_F64) KT_CHECKF(v->f == strtod(b, NULL), "key %s: ref %s kgen %g", key, b, v->f);
        else if (v->type == KG_V_I8 || v->type == KG_V_I16 || v->type == KG_V_I32 || v->type == KG_V_I64)
            KT_CHECKF(v->i == strtoll(b, NULL, 10), "key %s: ref %s kgen %" PRId64, key, b, v->i);
        else KT_CHECKF(v->u == strtoull(b, NULL, 10), "key %s: ref %s kgen %" PRIu64, key, b, v->u);
    } else if (sscanf(line, "S %511s %" SCNu64 " %63s", key, &x, a) == 3) {
        const kg_value *v = kg_gguf_find(g, key);
        KT_CHECKF(v && v->type == KG_V_STRING && v->str.len == x, "string %s: ref length %" PRIu64, key, x);
    } else if (sscanf(line, "A %511s %63s %" SCNu64, key, a, &x) == 3) {
        const kg_value *v = kg_gguf_find(g, key);
        KT_CHECKF(v && v->type == KG_V_ARRAY && !strcmp(kg_vtype_name(v->arr.type), a) && v->arr.n == x,
                  "array %s: ref %s[%" PRIu64 "]", key, a, x);
    } else if (sscanf(line, "T %511s %63s %127s %" SCNu64 " %" SCNu64, key, a, b, &x, &y) == 5) {
        const kg_tensor *t = kg_gguf_find_tensor(g, key);
        (*n_tensors_seen)++;
        KT_CHECKF(t, "tensor %s: absent in kgen", key);
        if (!t) return;
        char shape[128];
        size_t o = 0;
        for (uint32_t d = 0; d < t->n_dims; d++)
            o += (size_t)snprintf(shape + o, sizeof shape - o, d ? ",%" PRIu64 : "%" PRIu64, t->ne[d]);
        KT_CHECKF(!strcmp(kg_type_get(t->type)->name, a), "tensor %s: ref type %s, kgen %s", key, a, kg_type_get(t->type)->name);
        KT_CHECKF(!strcmp(shape, b), "tensor %s: ref shape %s, kgen %s", key, b, shape);
        KT_CHECKF(t->n_bytes == x, "tensor %s: ref %" PRIu64 " bytes, kgen %" PRIu64, key, x, t->n_bytes);
        KT_CHECKF(kg_gguf_data_offset(g) + t->offset == y, "tensor %s: ref offset %" PRIu64, key, y);
    } else {
        KT_CHECKF(0, "unparsed reference line: %s", line);
    }
}

static void compare_with_reference(const char *file)
{
    OPEN_MODEL(g, file);
    enum { CAP = 1 << 20 };
    char *out = malloc(CAP), *err = malloc(4096);
    KT_REQUIRE(out && err);
    char *argv[] = {"/usr/bin/env", (char *)kt_python(), "tests/ref/gguf_dump.py", path_, NULL};
    int rc = kt_run_ref(argv, NULL, out, CAP, err, 4096);
    if (rc == 3 || rc == 127) {
        kg_gguf_close(g);
        free(out);
        free(err);
        KT_SKIP("the independent reference needs Python and its 'gguf' package (pip install gguf)");
    }
    KT_CHECKF(rc == 0, "gguf_dump.py failed (%d): %s", rc, err);
    int lines = 0, tensors = 0;
    for (char *save, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), lines++)
        compare_line(g, line, &tensors);
    KT_CHECKF(tensors == (int)kg_gguf_n_tensors(g), "reference listed %d tensors, kgen %" PRIu64, tensors, kg_gguf_n_tensors(g));
    KT_CHECK(lines > 0);
    free(out);
    free(err);
    kg_gguf_close(g);
}

KT_TEST(models_smollm2_matches_gguf_py) { compare_with_reference(SMOL); }
KT_TEST(models_gemma3_matches_gguf_py) { compare_with_reference(GEMMA); }

/* The CLI's --json carries the keys with the published values. */
KT_TEST(models_inspect_json)
{
    char path[512];
    if (!model_path(SMOL, path, sizeof path)) KT_SKIP("%s/%s not found: run 'make models'", kt_models_dir(), SMOL);
    enum { CAP = 1 << 20 };
    char *out = malloc(CAP), err[4096];
    KT_REQUIRE(out);
    char *argv[] = {(char *)kt_kgen_bin(), "inspect", path, "--json", NULL};
    int rc = kt_run(argv, out, CAP, err, sizeof err);
    KT_CHECKF(rc == 0, "kgen inspect --json exited %d: %s", rc, err);
    static const char *want[] = {"\"architecture\":\"llama\"", "\"n_layer\":30", "\"n_embd\":576", "\"n_head\":9",
                                 "\"n_head_kv\":3", "\"n_ff\":1536", "\"n_vocab\":49152", "\"n_ctx\":8192",
                                 "\"tied_embeddings\":true", "\"tensors\":[{\"name\":\"token_embd.weight\",\"type\":\"Q8_0\",\"shape\":[576,49152],\"bytes\":30081024"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) KT_CHECKF(strstr(out, want[i]), "missing %s", want[i]);
    /* the text form of the second architecture */
    char gpath[512];
    if (model_path(GEMMA, gpath, sizeof gpath)) {
        char *argv2[] = {(char *)kt_kgen_bin(), "inspect", gpath, NULL};
        rc = kt_run(argv2, out, CAP, err, sizeof err);
        KT_CHECKF(rc == 0 && strstr(out, "architecture    gemma3") && strstr(out, "blk.17.ffn_down.weight"),
                  "kgen inspect on %s: exit %d", gpath, rc);
    }
    free(out);
}
