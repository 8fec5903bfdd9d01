/*
 * inspect.c — `kgen inspect`: what a model holds, as text or JSON: a GGUF
 * file, a safetensors file, or a Hugging Face directory (config.json's
 * top-level keys, then model.safetensors or every shard named by
 * model.safetensors.index.json).
 *
 * Reads only what kg_gguf_open / kg_st_open validated; never fails on
 * missing or oddly typed metadata (it reports "-" / null), since any real
 * file must inspect.
 */
/* jansson reads config.json; its json_null() would clash with json.h's
 * writer, and inspect.c never calls it: renamed while jansson.h is read */
#define json_null jansson_json_null
#include <jansson.h>
#undef json_null

#include "gen.h"
#include "json.h"
#include "internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ─────────────────────────── summary ─────────────────────────── */

/* Rotary embedding layout by architecture; GGUF does not store it (it is a
 * property of the architecture's reference implementation). */
static const char *rope_type(const char *arch)
{
    static const char *neox[] = {"falcon", "gptneox", "stablelm", "qwen", "qwen2", "qwen2moe", "qwen3",
                                 "qwen3moe", "phi2", "phi3", "gemma", "gemma2", "gemma3", "starcoder2",
                                 "openelm", "olmo2", "bitnet", "codeshell", "exaone", "nemotron", "dbrx"};
    static const char *norm[] = {"llama", "mistral", "baichuan", "starcoder", "internlm2", "minicpm",
                                 "xverse", "command-r", "olmo", "arctic", "deepseek", "deepseek2", "granite"};
    static const char *none[] = {"gpt2", "mpt", "bloom", "bert", "t5"};
    for (size_t i = 0; i < sizeof neox / sizeof *neox; i++) if (!strcmp(arch, neox[i])) return "neox";
    for (size_t i = 0; i < sizeof norm / sizeof *norm; i++) if (!strcmp(arch, norm[i])) return "norm";
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) if (!strcmp(arch, none[i])) return "none";
    return "unknown";
}

enum { HP_LAYER, HP_EMBD, HP_HEAD, HP_HEAD_KV, HP_FF, HP_VOCAB, HP_CTX, HP_ROT, HP_COUNT };

static const struct {
    const char *json, *label, *suffix;
} hp_keys[HP_COUNT] = {
    {"n_layer", "layers", "block_count"},
    {"n_embd", "embedding", "embedding_length"},
    {"n_head", "heads", "attention.head_count"},
    {"n_head_kv", "KV heads", "attention.head_count_kv"},
    {"n_ff", "feed-forward", "feed_forward_length"},
    {"n_vocab", "vocab", "vocab_size"},
    {"n_ctx", "context", "context_length"},
    {"n_rot", "rope dims", "rope.dimension_count"},
};

/* Special tokens: short name, and the key under tokenizer.ggml. (GGUF spells
 * "seperator" so; llama.cpp writes and reads it that way.) */
static const char *special_names[] = {"bos", "eos", "eot", "eom", "unk", "sep", "pad", "mask"};
static const char *special_keys[] = {"bos_token_id", "eos_token_id", "eot_token_id", "eom_token_id",
                                     "unknown_token_id", "seperator_token_id", "padding_token_id",
                                     "mask_token_id"};
#define N_SPECIAL (sizeof special_names / sizeof *special_names)
_Static_assert(sizeof special_keys == sizeof special_names, "special_keys and special_names differ");

typedef struct by_type {
    uint64_t tensors, params, bytes;
} by_type;

typedef struct summary {
    char arch[64];                 /* "" if absent */
    const kg_value *hp[HP_COUNT];  /* integer scalar or per-layer array; NULL if absent */
    uint64_t n_vocab_tokens;       /* from tokenizer.ggml.tokens; 0 if none */
    const kg_value *rope_base, *rope_scaling, *eps_rms, *eps_ln, *name;
    const kg_value *tok_model, *tok_pre, *tokens, *merges, *chat_template;
    const kg_value *special[N_SPECIAL];
    const kg_value *add_bos, *add_eos;   /* bool; NULL if absent */
    bool tied;                     /* token_embd.weight present, output.weight absent */
    uint64_t params, bytes;
    by_type types[KG_TYPE_COUNT];
} summary;

static bool is_int(const kg_value *v)
{
    return v && v->type != KG_V_F32 && v->type != KG_V_F64 && v->type != KG_V_STRING && v->type != KG_V_ARRAY;
}

static const kg_value *arch_key(const kg_gguf *g, const char *arch, const char *suffix)
{
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return kg_gguf_find(g, key);
}

static const kg_value *typed(const kg_value *v, kg_vtype t) { return v && v->type == t ? v : NULL; }

static void summarize(const kg_gguf *g, summary *s)
{
    memset(s, 0, sizeof *s);
    const kg_value *a = typed(kg_gguf_find(g, "general.architecture"), KG_V_STRING);
    if (a) kg_escape(s->arch, sizeof s->arch, a->str.ptr, a->str.len, 40);
    for (int i = 0; i < HP_COUNT; i++) {
        const kg_value *v = s->arch[0] ? arch_key(g, s->arch, hp_keys[i].suffix) : NULL;
        bool ok = is_int(v) || (v && v->type == KG_V_ARRAY && v->arr.raw && v->arr.type != KG_V_F32 &&
                                v->arr.type != KG_V_F64);
        s->hp[i] = ok ? v : NULL;
    }
    if (s->arch[0]) {
        s->rope_base = arch_key(g, s->arch, "rope.freq_base");
        s->rope_scaling = typed(arch_key(g, s->arch, "rope.scaling.type"), KG_V_STRING);
        s->eps_rms = arch_key(g, s->arch, "attention.layer_norm_rms_epsilon");
        s->eps_ln = arch_key(g, s->arch, "attention.layer_norm_epsilon");
    }
    s->name = typed(kg_gguf_find(g, "general.name"), KG_V_STRING);
    s->tok_model = typed(kg_gguf_find(g, "tokenizer.ggml.model"), KG_V_STRING);
    s->tok_pre = typed(kg_gguf_find(g, "tokenizer.ggml.pre"), KG_V_STRING);
    s->tokens = kg_gguf_find(g, "tokenizer.ggml.tokens");
    if (s->tokens && (s->tokens->type != KG_V_ARRAY || s->tokens->arr.type != KG_V_STRING)) s->tokens = NULL;
    s->n_vocab_tokens = s->tokens ? s->tokens->arr.n : 0;
    s->merges = typed(kg_gguf_find(g, "tokenizer.ggml.merges"), KG_V_ARRAY);
    s->chat_template = typed(kg_gguf_find(g, "tokenizer.chat_template"), KG_V_STRING);
    for (size_t i = 0; i < N_SPECIAL; i++) {
        char key[64];
        snprintf(key, sizeof key, "tokenizer.ggml.%s", special_keys[i]);
        const kg_value *v = kg_gguf_find(g, key);
        s->special[i] = is_int(v) ? v : NULL;
    }
    s->add_bos = typed(kg_gguf_find(g, "tokenizer.ggml.add_bos_token"), KG_V_BOOL);
    s->add_eos = typed(kg_gguf_find(g, "tokenizer.ggml.add_eos_token"), KG_V_BOOL);
    s->tied = kg_gguf_find_tensor(g, "token_embd.weight") && !kg_gguf_find_tensor(g, "output.weight");
    for (uint64_t i = 0; i < kg_gguf_n_tensors(g); i++) {
        const kg_tensor *t = kg_gguf_tensor(g, i);
        s->params += t->n_elements;
        s->bytes += t->n_bytes;
        s->types[t->type].tensors++;
        s->types[t->type].params += t->n_elements;
        s->types[t->type].bytes += t->n_bytes;
    }
}

static bool as_index(const kg_value *v, uint64_t *out);

/* n_vocab: tokenizer token count, else {arch}.vocab_size. */
static bool vocab(const summary *s, uint64_t *n)
{
    if (s->n_vocab_tokens) { *n = s->n_vocab_tokens; return true; }
    return as_index(s->hp[HP_VOCAB], n);
}

static double num(const kg_value *v)
{
    switch (v->type) {
    case KG_V_F32: case KG_V_F64: return v->f;
    case KG_V_I8: case KG_V_I16: case KG_V_I32: case KG_V_I64: return (double)v->i;
    default: return (double)v->u;
    }
}

static bool is_num(const kg_value *v) { return v && (is_int(v) || v->type == KG_V_F32 || v->type == KG_V_F64); }

/* A non-negative integer value as uint64, or false. */
static bool as_index(const kg_value *v, uint64_t *out)
{
    if (!is_int(v)) return false;
    bool sgn = v->type == KG_V_I8 || v->type == KG_V_I16 || v->type == KG_V_I32 || v->type == KG_V_I64;
    if (sgn && v->i < 0) return false;
    *out = sgn ? (uint64_t)v->i : v->u;
    return true;
}

/* Token text for id `v`, escaped for display, or "" if out of range. */
static const char *token_text(const summary *s, const kg_value *v, char *buf, size_t cap)
{
    uint64_t id;
    buf[0] = 0;
    if (s->tokens && as_index(v, &id) && id < s->tokens->arr.n) {
        kg_str t = s->tokens->arr.strs[id];
        kg_escape(buf, cap, t.ptr, t.len, 40);
    }
    return buf;
}

/* ─────────────────────────── text ─────────────────────────── */

static void fmt_bytes(char *buf, size_t cap, uint64_t b)
{
    if (b >= (1ull << 30)) snprintf(buf, cap, "%.2f GiB", b / 1073741824.0);
    else if (b >= (1ull << 20)) snprintf(buf, cap, "%.1f MiB", b / 1048576.0);
    else if (b >= (1ull << 10)) snprintf(buf, cap, "%.1f KiB", b / 1024.0);
    else snprintf(buf, cap, "%" PRIu64 " B", b);
}

/* GGUF lists ne[0] (innermost) first; safetensors the outermost first */
static void fmt_shape(char *buf, size_t cap, const kg_tensor *t, bool outer_first)
{
    size_t o = 0;
    buf[0] = 0;
    for (uint32_t d = 0; d < t->n_dims && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, d ? " x %" PRIu64 : "%" PRIu64,
                              t->ne[outer_first ? t->n_dims - 1 - d : d]);
    if (t->n_dims == 0) snprintf(buf, cap, "scalar");
}

/* the totals: parameters, bytes, bits per weight, and the same per type */
static void print_totals(FILE *f, uint64_t params, uint64_t bytes, const by_type *types)
{
    char b2[64];
    fmt_bytes(b2, sizeof b2, bytes);
    fprintf(f, "\ntotals\n  %-14s%" PRIu64 " (%.2f M)\n  %-14s%" PRIu64 " (%s)\n  %-14s%.3f\n", "parameters", params,
            params / 1e6, "bytes", bytes, b2, "bits/weight", params ? 8.0 * bytes / params : 0.0);
    fprintf(f, "  %-8s %8s %14s %14s %8s\n", "type", "tensors", "parameters", "bytes", "bpw");
    for (int t = 0; t < KG_TYPE_COUNT; t++) {
        const by_type *b = &types[t];
        if (b->tensors)
            fprintf(f, "  %-8s %8" PRIu64 " %14" PRIu64 " %14" PRIu64 " %8.3f\n", kg_type_get((uint32_t)t)->name,
                    b->tensors, b->params, b->bytes, b->params ? 8.0 * b->bytes / b->params : 0.0);
    }
}

static void print_hp(FILE *f, const kg_value *v)
{
    if (!v) { fputs("-\n", f); return; }
    if (v->type != KG_V_ARRAY) { fprintf(f, "%.0f\n", num(v)); return; }
    kg_value e;
    double lo = 0, hi = 0;
    for (uint64_t i = 0; kg_value_elem(v, i, &e); i++) {
        double x = num(&e);
        if (i == 0 || x < lo) lo = x;
        if (i == 0 || x > hi) hi = x;
    }
    fprintf(f, "per layer (%" PRIu64 " values, %.0f..%.0f)\n", v->arr.n, lo, hi);
}

static void print_str(FILE *f, const kg_value *v)
{
    char buf[256];
    fprintf(f, "%s\n", v ? kg_escape(buf, sizeof buf, v->str.ptr, v->str.len, 120) : "-");
}

static void print_text(const kg_gguf *g, const summary *s, FILE *f)
{
    char buf[256], b2[64];
    uint64_t nv;
    fmt_bytes(b2, sizeof b2, kg_gguf_file_size(g));
    kg_escape(buf, sizeof buf, kg_gguf_name(g), strlen(kg_gguf_name(g)), 160);
    fprintf(f, "file            %s (%s, GGUF v%" PRIu32 ", alignment %" PRIu32 ", %" PRIu64 " keys, %" PRIu64 " tensors)\n",
            buf, b2, kg_gguf_version(g), kg_gguf_alignment(g), kg_gguf_n_kv(g), kg_gguf_n_tensors(g));
    fputs("name            ", f); print_str(f, s->name);
    fprintf(f, "architecture    %s\n\nhyperparameters\n", s->arch[0] ? s->arch : "-");
    for (int i = 0; i < HP_COUNT; i++) {
        fprintf(f, "  %-14s", hp_keys[i].label);
        if (i == HP_VOCAB && vocab(s, &nv)) fprintf(f, "%" PRIu64 "\n", nv);
        else print_hp(f, s->hp[i]);
    }
    fprintf(f, "  %-14s%s", "rope", s->arch[0] ? rope_type(s->arch) : "-");
    if (is_num(s->rope_base)) fprintf(f, ", base %g", num(s->rope_base));
    if (s->rope_scaling) fprintf(f, ", scaling %s", kg_escape(buf, sizeof buf, s->rope_scaling->str.ptr, s->rope_scaling->str.len, 40));
    fputc('\n', f);
    fprintf(f, "  %-14s", "norm eps");
    if (is_num(s->eps_rms)) fprintf(f, "%g (RMSNorm)\n", num(s->eps_rms));
    else if (is_num(s->eps_ln)) fprintf(f, "%g (LayerNorm)\n", num(s->eps_ln));
    else fputs("-\n", f);
    fprintf(f, "  %-14s%s\n", "output", s->tied ? "tied to token_embd.weight" :
            kg_gguf_find_tensor(g, "output.weight") ? "output.weight" : "-");

    fputs("\ntokenizer\n  model         ", f); print_str(f, s->tok_model);
    fputs("  pre-tokenizer ", f); print_str(f, s->tok_pre);
    fprintf(f, "  tokens        %" PRIu64 "\n", s->n_vocab_tokens);
    fprintf(f, "  merges        %" PRIu64 "\n", s->merges ? s->merges->arr.n : 0);
    fputs("  special      ", f);
    int any = 0;
    for (size_t i = 0; i < N_SPECIAL; i++) {
        if (!s->special[i]) continue;
        fprintf(f, "%s %s %.0f '%s'", any++ ? "," : "", special_names[i], num(s->special[i]),
                token_text(s, s->special[i], buf, sizeof buf));
    }
    fputs(any ? "\n" : " -\n", f);
    fprintf(f, "  adds          bos %s, eos %s\n", s->add_bos ? (s->add_bos->u ? "yes" : "no") : "-",
            s->add_eos ? (s->add_eos->u ? "yes" : "no") : "-");
    if (s->chat_template) fprintf(f, "  chat template yes (%" PRIu64 " bytes)\n", s->chat_template->str.len);
    else fputs("  chat template no\n", f);

    fprintf(f, "\ntensors\n  %-40s %-8s %-22s %12s\n", "name", "type", "shape", "bytes");
    for (uint64_t i = 0; i < kg_gguf_n_tensors(g); i++) {
        const kg_tensor *t = kg_gguf_tensor(g, i);
        fmt_shape(b2, sizeof b2, t, false);
        fprintf(f, "  %-40s %-8s %-22s %12" PRIu64 "\n", kg_escape(buf, sizeof buf, t->name, strlen(t->name), 80),
                kg_type_get(t->type)->name, b2, t->n_bytes);
    }

    print_totals(f, s->params, s->bytes, s->types);
}

/* ─────────────────────────── JSON ─────────────────────────── */

static void json_hp(json *j, const kg_value *v)
{
    kg_value e;
    if (!v) { json_null(j); return; }
    if (v->type != KG_V_ARRAY) {
        if (v->type == KG_V_I8 || v->type == KG_V_I16 || v->type == KG_V_I32 || v->type == KG_V_I64) json_i64(j, v->i);
        else json_u64(j, v->u);
        return;
    }
    json_arr(j);
    for (uint64_t i = 0; kg_value_elem(v, i, &e); i++) json_hp(j, &e);
    json_close_arr(j);
}

static void json_optstr(json *j, const char *key, const kg_value *v)
{
    json_key(j, key);
    if (v) json_strn(j, v->str.ptr, v->str.len);
    else json_null(j);
}

static void json_optnum(json *j, const char *key, const kg_value *v)
{
    json_key(j, key);
    if (v && v->type == KG_V_F32) json_f32(j, (float)v->f);
    else if (is_num(v)) json_f64(j, num(v));
    else json_null(j);
}

static void json_totals(json *j, uint64_t params, uint64_t bytes, const by_type *types)
{
    json_key(j, "totals"); json_obj(j);
    json_key(j, "params"); json_u64(j, params);
    json_key(j, "bytes"); json_u64(j, bytes);
    json_key(j, "bits_per_weight"); json_f64(j, params ? 8.0 * bytes / params : 0.0);
    json_key(j, "by_type"); json_arr(j);
    for (int t = 0; t < KG_TYPE_COUNT; t++) {
        const by_type *b = &types[t];
        if (!b->tensors) continue;
        json_obj(j);
        json_key(j, "type"); json_str(j, kg_type_get((uint32_t)t)->name);
        json_key(j, "tensors"); json_u64(j, b->tensors);
        json_key(j, "params"); json_u64(j, b->params);
        json_key(j, "bytes"); json_u64(j, b->bytes);
        json_key(j, "bits_per_weight"); json_f64(j, b->params ? 8.0 * b->bytes / b->params : 0.0);
        json_close_obj(j);
    }
    json_close_arr(j);
    json_close_obj(j);
}

static void print_json(const kg_gguf *g, const summary *s, FILE *f)
{
    json j;
    uint64_t nv;
    json_begin(&j, f);
    json_key(&j, "file"); json_str(&j, kg_gguf_name(g));
    json_key(&j, "file_bytes"); json_u64(&j, kg_gguf_file_size(g));
    json_key(&j, "gguf_version"); json_u64(&j, kg_gguf_version(g));
    json_key(&j, "alignment"); json_u64(&j, kg_gguf_alignment(g));
    json_key(&j, "n_kv"); json_u64(&j, kg_gguf_n_kv(g));
    json_optstr(&j, "name", s->name);
    json_key(&j, "architecture");
    if (s->arch[0]) json_str(&j, s->arch); else json_null(&j);
    for (int i = 0; i < HP_COUNT; i++) {
        json_key(&j, hp_keys[i].json);
        if (i == HP_VOCAB && vocab(s, &nv)) json_u64(&j, nv);
        else json_hp(&j, s->hp[i]);
    }
    json_key(&j, "rope_type"); json_str(&j, s->arch[0] ? rope_type(s->arch) : "unknown");
    json_optnum(&j, "rope_freq_base", s->rope_base);
    json_optstr(&j, "rope_scaling", s->rope_scaling);
    json_optnum(&j, "norm_eps", is_num(s->eps_rms) ? s->eps_rms : s->eps_ln);
    json_key(&j, "norm_type");
    if (is_num(s->eps_rms)) json_str(&j, "rms"); else if (is_num(s->eps_ln)) json_str(&j, "layer"); else json_null(&j);
    json_key(&j, "tied_embeddings"); json_bool(&j, s->tied);

    json_key(&j, "tokenizer"); json_obj(&j);
    json_optstr(&j, "model", s->tok_model);
    json_optstr(&j, "pre", s->tok_pre);
    json_key(&j, "n_tokens"); json_u64(&j, s->n_vocab_tokens);
    json_key(&j, "n_merges"); json_u64(&j, s->merges ? s->merges->arr.n : 0);
    for (size_t i = 0; i < N_SPECIAL; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s_id", special_names[i]);
        json_key(&j, key);
        json_hp(&j, s->special[i]);
    }
    json_key(&j, "add_bos");
    if (s->add_bos) json_bool(&j, s->add_bos->u); else json_null(&j);
    json_key(&j, "add_eos");
    if (s->add_eos) json_bool(&j, s->add_eos->u); else json_null(&j);
    json_key(&j, "chat_template"); json_bool(&j, s->chat_template != NULL);
    json_close_obj(&j);

    json_key(&j, "tensors"); json_arr(&j);
    for (uint64_t i = 0; i < kg_gguf_n_tensors(g); i++) {
        const kg_tensor *t = kg_gguf_tensor(g, i);
        json_obj(&j);
        json_key(&j, "name"); json_str(&j, t->name);
        json_key(&j, "type"); json_str(&j, kg_type_get(t->type)->name);
        json_key(&j, "shape"); json_arr(&j);
        for (uint32_t d = 0; d < t->n_dims; d++) json_u64(&j, t->ne[d]);
        json_close_arr(&j);
        json_key(&j, "bytes"); json_u64(&j, t->n_bytes);
        json_key(&j, "offset"); json_u64(&j, t->offset);
        json_close_obj(&j);
    }
    json_close_arr(&j);

    json_totals(&j, s->params, s->bytes, s->types);
    json_end(&j);
}

void inspect_print(const kg_gguf *g, FILE *f, bool as_json)
{
    summary s;
    summarize(g, &s);
    if (as_json) print_json(g, &s, f);
    else print_text(g, &s, f);
}

/* ─────────────────────────── safetensors ─────────────────────────── */

typedef struct st_sum {
    uint64_t params, bytes;
    by_type types[KG_TYPE_COUNT];
} st_sum;

static void st_summarize(const kg_safetensors *st, st_sum *s)
{
    memset(s, 0, sizeof *s);
    for (uint64_t i = 0; i < kg_st_n_tensors(st); i++) {
        const kg_tensor *t = kg_st_tensor(st, i);
        s->params += t->n_elements;
        s->bytes += t->n_bytes;
        s->types[t->type].tensors++;
        s->types[t->type].params += t->n_elements;
        s->types[t->type].bytes += t->n_bytes;
    }
}

static void st_text(const kg_safetensors *st, FILE *f)
{
    char buf[256], b2[64];
    st_sum s;
    st_summarize(st, &s);
    fmt_bytes(b2, sizeof b2, kg_st_file_size(st));
    fprintf(f, "file            %s (%s, safetensors, header %" PRIu64 " bytes, %" PRIu64 " metadata keys, %" PRIu64
            " tensors)\n", kg_escape(buf, sizeof buf, kg_st_name(st), strlen(kg_st_name(st)), 160), b2,
            kg_st_data_offset(st) - 8, kg_st_n_meta(st), kg_st_n_tensors(st));
    fputs("\nmetadata\n", f);
    for (uint64_t i = 0; i < kg_st_n_meta(st); i++) {
        const kg_kv *kv = kg_st_meta(st, i);
        fprintf(f, "  %-14s", kg_escape(buf, sizeof buf, kv->key, strlen(kv->key), 60));
        print_str(f, &kv->value);
    }
    if (!kg_st_n_meta(st)) fputs("  -\n", f);
    fprintf(f, "\ntensors (shape as the file gives it, outermost first; offset in the data section)\n"
            "  %-52s %-6s %-18s %12s %12s\n", "name", "dtype", "shape", "offset", "bytes");
    for (uint64_t i = 0; i < kg_st_n_tensors(st); i++) {
        const kg_tensor *t = kg_st_tensor(st, i);
        fmt_shape(b2, sizeof b2, t, true);
        fprintf(f, "  %-52s %-6s %-18s %12" PRIu64 " %12" PRIu64 "\n",
                kg_escape(buf, sizeof buf, t->name, strlen(t->name), 80), kg_st_dtype_name(t), b2, t->offset, t->n_bytes);
    }
    print_totals(f, s.params, s.bytes, s.types);
}

/* one file as a JSON object (the value of the current key or array slot) */
static void st_json(const kg_safetensors *st, json *j)
{
    st_sum s;
    st_summarize(st, &s);
    json_obj(j);
    json_key(j, "file"); json_str(j, kg_st_name(st));
    json_key(j, "file_bytes"); json_u64(j, kg_st_file_size(st));
    json_key(j, "format"); json_str(j, "safetensors");
    json_key(j, "header_bytes"); json_u64(j, kg_st_data_offset(st) - 8);
    json_key(j, "data_offset"); json_u64(j, kg_st_data_offset(st));
    json_key(j, "metadata"); json_obj(j);
    for (uint64_t i = 0; i < kg_st_n_meta(st); i++) {
        const kg_kv *kv = kg_st_meta(st, i);
        json_key(j, kv->key);
        json_strn(j, kv->value.str.ptr, kv->value.str.len);
    }
    json_close_obj(j);
    json_key(j, "tensors"); json_arr(j);
    for (uint64_t i = 0; i < kg_st_n_tensors(st); i++) {
        const kg_tensor *t = kg_st_tensor(st, i);
        json_obj(j);
        json_key(j, "name"); json_str(j, t->name);
        json_key(j, "dtype"); json_str(j, kg_st_dtype_name(t));
        json_key(j, "shape"); json_arr(j); /* as the file gives it, outermost first */
        for (uint32_t d = 0; d < t->n_dims; d++) json_u64(j, t->ne[t->n_dims - 1 - d]);
        json_close_arr(j);
        json_key(j, "offset"); json_u64(j, t->offset);
        json_key(j, "bytes"); json_u64(j, t->n_bytes);
        json_close_obj(j);
    }
    json_close_arr(j);
    json_totals(j, s.params, s.bytes, s.types);
    json_close_obj(j);
}

void inspect_st_print(const kg_safetensors *st, FILE *f, bool as_json)
{
    if (!as_json) {
        st_text(st, f);
        return;
    }
    json j;
    json_begin(&j, f);
    json_key(&j, "safetensors");
    st_json(st, &j);
    json_end(&j);
}

/* ─────────────────────── Hugging Face directory ─────────────────────── */

#define MAX_SHARDS 1024
#define CFG_DEPTH 6 /* config.json below this depth is written as its text */

/* A JSON value from jansson as compact text for display: ASCII only (JSON
 * escapes the rest, control characters included), cut at `max` bytes. */
static const char *jtext(const json_t *v, char *buf, size_t cap, size_t max)
{
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10));
    if (!t) return snprintf(buf, cap, "?"), buf;
    size_t n = strlen(t);
    if (max + 4 > cap) max = cap - 4;
    snprintf(buf, cap, "%.*s%s", (int)(n > max ? max : n), t, n > max ? "..." : "");
    free(t);
    return buf;
}

static void jansson_to_json(json *j, const json_t *v, int depth)
{
    const char *k;
    size_t n;
    json_t *x;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (depth >= CFG_DEPTH) break;
        json_obj(j);
        json_object_foreach((json_t *)v, k, x) { json_key(j, k); jansson_to_json(j, x, depth + 1); }
        json_close_obj(j);
        return;
    case JSON_ARRAY:
        if (depth >= CFG_DEPTH) break;
        json_arr(j);
        json_array_foreach(v, n, x) jansson_to_json(j, x, depth + 1);
        json_close_arr(j);
        return;
    case JSON_STRING: json_strn(j, json_string_value(v), json_string_length(v)); return;
    case JSON_INTEGER: json_i64(j, json_integer_value(v)); return;
    case JSON_REAL: json_f64(j, json_real_value(v)); return;
    case JSON_TRUE: json_bool(j, true); return;
    case JSON_FALSE: json_bool(j, false); return;
    case JSON_NULL: json_null(j); return;
    }
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    json_str(j, t ? t : "?");
    free(t);
}

/* dir/name into buf; KG_ERR_ARG if it does not fit */
static kg_status join(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < cap ? KG_OK : kg_err(KG_ERR_ARG, "%s/%s: path too long", dir, name);
}

static bool is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* A JSON file, which must hold an object; NULL (message set) if absent,
 * unreadable or not that. */
static json_t *load_json(const char *path, kg_status *st)
{
    json_error_t e;
    json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    *st = KG_OK;
    if (!v) {
        char et[400];
        *st = kg_err(KG_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)", path,
                     kg_escape(et, sizeof et, e.text, strlen(e.text), 200), e.line, e.column);
    } else if (!json_is_object(v)) {
        json_decref(v);
        v = NULL;
        *st = kg_err(KG_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return v;
}

/* The shard files model.safetensors.index.json names in its weight_map,
 * in order of first mention: plain file names in the same directory. */
static kg_status index_shards(const char *path, json_t *idx, const char **shards, int *n)
{
    json_t *map = json_object_get(idx, "weight_map"), *v;
    const char *k;
    char e1[200], e2[200];
    *n = 0;
    if (!json_is_object(map)) return kg_err(KG_ERR_FORMAT, "%s: no \"weight_map\" object", path);
    json_object_foreach(map, k, v) {
        const char *f = json_string_value(v);
        if (!f || !*f || strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, ".."))
            return kg_err(KG_ERR_FORMAT, "%s: weight_map['%s'] is %s (must be a file name in the same directory)",
                          path, kg_escape(e1, sizeof e1, k, strlen(k), 120), f ? kg_escape(e2, sizeof e2, f, strlen(f), 60)
                                                                               : "not a string");
        int i = 0;
        while (i < *n && strcmp(shards[i], f)) i++;
        if (i < *n) continue;
        if (*n == MAX_SHARDS) return kg_err(KG_ERR_UNSUPPORTED, "%s: more than %d shards", path, MAX_SHARDS);
        shards[(*n)++] = f;
    }
    return KG_OK;
}

/* Every tensor the index maps to `shard` is in it. */
static kg_status index_check(const char *path, json_t *idx, const char *shard, const kg_safetensors *st)
{
    json_t *v;
    const char *k;
    char e1[200];
    json_object_foreach(json_object_get(idx, "weight_map"), k, v)
        if (!strcmp(json_string_value(v), shard) && !kg_st_find_tensor(st, k))
            return kg_err(KG_ERR_FORMAT, "%s: weight_map puts tensor '%s' in %s, which has no such tensor", path,
                          kg_escape(e1, sizeof e1, k, strlen(k), 120), shard);
    return KG_OK;
}

static void config_text(FILE *f, const char *dir, json_t *cfg)
{
    char buf[256], b2[128];
    const char *k;
    json_t *v;
    fprintf(f, "directory       %s\n", kg_escape(buf, sizeof buf, dir, strlen(dir), 160));
    if (!cfg) {
        fputs("config.json     -\n", f);
        return;
    }
    fprintf(f, "config.json     %zu keys\n", json_object_size(cfg));
    json_object_foreach(cfg, k, v)
        fprintf(f, "  %-30s %s\n", kg_escape(b2, sizeof b2, k, strlen(k), 60), jtext(v, buf, sizeof buf, 70));
}

static kg_status inspect_dir(const char *dir, FILE *f, bool as_json)
{
    char cfg_path[4096], w_path[4096], idx_path[4096];
    kg_status st;
    if ((st = join(cfg_path, sizeof cfg_path, dir, "config.json")) ||
        (st = join(w_path, sizeof w_path, dir, "model.safetensors")) ||
        (st = join(idx_path, sizeof idx_path, dir, "model.safetensors.index.json")))
        return st;
    bool single = is_file(w_path);
    if (!single && !is_file(idx_path))
        return kg_err(KG_ERR_NOTFOUND, "%s: neither model.safetensors nor model.safetensors.index.json is there "
                      "(not a Hugging Face model directory?)", dir);
    json_t *cfg = NULL, *idx = NULL;
    if (is_file(cfg_path) && !(cfg = load_json(cfg_path, &st))) return st;
    const char *shards[MAX_SHARDS]; /* strings inside idx */
    int n = 1;
    shards[0] = "model.safetensors";
    if (!single && (!(idx = load_json(idx_path, &st)) || (st = index_shards(idx_path, idx, shards, &n)))) {
        json_decref(cfg);
        json_decref(idx);
        return st;
    }
    /* every shard opened (and checked) before anything is printed */
    kg_safetensors **files = calloc((size_t)n, sizeof *files);
    if (!files) st = kg_err(KG_ERR_NOMEM, "%s: out of memory", dir);
    for (int i = 0; !st && i < n; i++) {
        char p[4096];
        if (!(st = join(p, sizeof p, dir, shards[i])) && !(st = kg_st_open(p, &files[i])) && idx)
            st = index_check(idx_path, idx, shards[i], files[i]);
    }
    if (!st && as_json) {
        json j;
        json_begin(&j, f);
        json_key(&j, "directory"); json_str(&j, dir);
        json_key(&j, "config");
        if (cfg) jansson_to_json(&j, cfg, 0); else json_null(&j);
        json_key(&j, "weights"); json_str(&j, single ? "model.safetensors" : "model.safetensors.index.json");
        json_key(&j, "files"); json_arr(&j);
        for (int i = 0; i < n; i++) st_json(files[i], &j);
        json_close_arr(&j);
        json_end(&j);
    } else if (!st) {
        config_text(f, dir, cfg);
        if (single) fputs("weights         model.safetensors\n", f);
        else fprintf(f, "weights         model.safetensors.index.json: %d shards\n", n);
        for (int i = 0; i < n; i++) {
            fputc('\n', f);
            st_text(files[i], f);
        }
    }
    for (int i = 0; files && i < n; i++) kg_st_close(files[i]);
    free(files);
    json_decref(cfg);
    json_decref(idx);
    return st;
}

/* ─────────────────────────── the command ─────────────────────────── */

/* What `path` is: a directory, a GGUF (by its magic) or safetensors (by
 * its name, or a '{' where the header starts). */
kg_status inspect_path(const char *path, FILE *f, bool as_json)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return inspect_dir(path, f, as_json);
    unsigned char head[9] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, head, sizeof head) : 0;
    if (fd >= 0) close(fd);
    size_t len = strlen(path);
    bool st_name = len >= 12 && !strcmp(path + len - 12, ".safetensors");
    if (st_name || (got == 9 && memcmp(head, "GGUF", 4) && head[8] == '{')) {
        kg_safetensors *st;
        kg_status s = kg_st_open(path, &st);
        if (s) return s;
        inspect_st_print(st, f, as_json);
        kg_st_close(st);
        return KG_OK;
    }
    kg_gguf *g;
    kg_status s = kg_gguf_open(path, &g);
    if (s) return s;
    inspect_print(g, f, as_json);
    kg_gguf_close(g);
    return KG_OK;
}

static const char inspect_usage[] = "usage: kgen inspect MODEL.gguf|MODEL.safetensors|DIR [--json]\n";

int inspect_cmd(int argc, char **argv)
{
    const char *path = NULL;
    bool as_json = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) as_json = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(inspect_usage, stdout);
            fputs("A directory is a Hugging Face model: config.json and model.safetensors, or the shards\n"
                  "that model.safetensors.index.json names.\n", stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "kgen inspect: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (path) {
            fprintf(stderr, "kgen inspect: more than one model given ('%s' and '%s')\n", path, argv[i]);
            return 2;
        } else path = argv[i];
    }
    if (!path) {
        fputs(inspect_usage, stderr);
        return 2;
    }
    if (inspect_path(path, stdout, as_json) != KG_OK) {
        fprintf(stderr, "kgen: %s\n", kg_last_error());
        return 1;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "kgen: error writing output\n");
        return 1;
    }
    return 0;
}
