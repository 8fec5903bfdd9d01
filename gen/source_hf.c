/*
 * source_hf.c — the model-source interface (source.h) over a Hugging Face
 * directory: config.json, model.safetensors (or shards named by
 * model.safetensors.index.json), the tokenizer (tokenizer.json, else
 * vocab.txt: gen/tokdata_hf.c) and, for sentence-transformers models,
 * modules.json, the pooling module's config.json and
 * sentence_bert_config.json.
 *
 * Everything is presented by GGUF's names, as llama.cpp's converter would
 * write it, so nothing after this file knows the format:
 *   - config.json's keys become ARCH.* metadata (one table per model_type);
 *     sentence-transformers' settings become kgen.pooling, kgen.normalize,
 *     kgen.max_seq_length (gen/arch_bert.c);
 *   - tensor names are mapped (one table per model_type; a tensor the table
 *     does not know is refused, never silently dropped, except buffers that
 *     are not weights: position_ids, rotary inv_freq, BERT's unused pooler);
 *   - LLaMA's Q and K rows are permuted from Hugging Face's rotate-half
 *     layout into the interleaved one GGUF's converter writes (the llama
 *     row of the registry rotates adjacent pairs); Qwen2 keeps its rows
 *     (NEOX rotation, as in GGUF);
 *   - vectors (norms, biases) are widened to F32, as GGUF files store them.
 * Rewritten tensors are copies owned by the source; the rest point into the
 * mapped safetensors files. Errors name the file and the key or tensor.
 */
#include "gen.h"
#include "internal.h"
#include "source.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HF_MAX_SHARDS 256

typedef struct hf_kv {
    char *key;
    kg_value v; /* strings point into owned copies */
} hf_kv;

typedef struct hf_tensor {
    char *name; /* GGUF's */
    kg_tensor t;
    void *owned; /* rewritten data, or NULL (points into a file) */
} hf_tensor;

typedef struct hf_src {
    char dir[PATH_MAX];
    kg_safetensors *files[HF_MAX_SHARDS];
    int nfiles;
    hf_kv *kv;
    int nkv, capkv;
    hf_tensor *t;
    int nt, capt;
    char **strs; /* owned string values */
    int nstrs;
} hf_src;

/* ─────────────── metadata ─────────────── */

static kg_status kv_add(hf_src *h, const char *key, kg_value v)
{
    if (h->nkv == h->capkv) {
        int nc = h->capkv ? 2 * h->capkv : 32;
        hf_kv *q = realloc(h->kv, (size_t)nc * sizeof *q);
        if (!q) return kg_err(KG_ERR_NOMEM, "out of memory");
        h->kv = q, h->capkv = nc;
    }
    char *k = strdup(key);
    if (!k) return kg_err(KG_ERR_NOMEM, "out of memory");
    h->kv[h->nkv++] = (hf_kv){k, v};
    return KG_OK;
}

static kg_status kv_i(hf_src *h, const char *key, int64_t i) { return kv_add(h, key, (kg_value){.type = KG_V_I64, .i = i}); }
static kg_status kv_f(hf_src *h, const char *key, double f) { return kv_add(h, key, (kg_value){.type = KG_V_F64, .f = f}); }
static kg_status kv_b(hf_src *h, const char *key, bool b) { return kv_add(h, key, (kg_value){.type = KG_V_BOOL, .u = b}); }

static kg_status kv_s(hf_src *h, const char *key, const char *s)
{
    char **q = realloc(h->strs, (size_t)(h->nstrs + 1) * sizeof *q);
    if (!q) return kg_err(KG_ERR_NOMEM, "out of memory");
    h->strs = q;
    if (!(h->strs[h->nstrs] = strdup(s))) return kg_err(KG_ERR_NOMEM, "out of memory");
    const char *c = h->strs[h->nstrs++];
    return kv_add(h, key, (kg_value){.type = KG_V_STRING, .str = {c, strlen(c)}});
}

/* ─────────────── JSON files ─────────────── */

/* DIR/name parsed; NULL when absent (and !required), else an error. */
static kg_status load_json(const hf_src *h, const char *name, bool required, json_t **out)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", h->dir, name);
    *out = NULL;
    struct stat sb;
    if (stat(p, &sb) != 0) {
        if (!required && errno == ENOENT) return KG_OK;
        return kg_err(KG_ERR_IO, "%s: cannot read: %s", p, strerror(errno));
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size > (64 << 20))
        return kg_err(KG_ERR_FORMAT, "%s: not a regular file of at most 64 MiB", p);
    json_error_t e;
    *out = json_load_file(p, JSON_REJECT_DUPLICATES, &e);
    if (!*out) return kg_err(KG_ERR_FORMAT, "%s: line %d, column %d: %s", p, e.line, e.column, e.text);
    return KG_OK;
}

/* an integer key of config.json (required, or dflt) in [lo, hi] */
static kg_status cfg_int(const json_t *cfg, const char *file, const char *key, bool required, int64_t dflt, int64_t lo,
                         int64_t hi, int64_t *out)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        if (required) return kg_err(KG_ERR_FORMAT, "%s: key '%s' is missing", file, key);
        *out = dflt;
        return KG_OK;
    }
    if (!json_is_integer(v)) return kg_err(KG_ERR_FORMAT, "%s: key '%s' is not an integer", file, key);
    *out = (int64_t)json_integer_value(v);
    if (*out < lo || *out > hi)
        return kg_err(KG_ERR_FORMAT, "%s: %s = %lld is out of range (%lld..%lld)", file, key, (long long)*out, (long long)lo,
                      (long long)hi);
    return KG_OK;
}

static kg_status cfg_num(const json_t *cfg, const char *file, const char *key, double dflt, double *out)
{
    const json_t *v = json_object_get(cfg, key);
    *out = dflt;
    if (!v || json_is_null(v)) return KG_OK;
    if (!json_is_number(v)) return kg_err(KG_ERR_FORMAT, "%s: key '%s' is not a number", file, key);
    *out = json_number_value(v);
    return KG_OK;
}

/* a string key: NULL when absent or null */
static kg_status cfg_str(const json_t *cfg, const char *file, const char *key, const char **out)
{
    const json_t *v = json_object_get(cfg, key);
    *out = NULL;
    if (!v || json_is_null(v)) return KG_OK;
    if (!json_is_string(v)) return kg_err(KG_ERR_FORMAT, "%s: key '%s' is not a string", file, key);
    *out = json_string_value(v);
    return KG_OK;
}

/* ─────────────── tensors ─────────────── */

static kg_status add_tensor(hf_src *h, const char *gguf_name, const kg_tensor *src)
{
    for (int i = 0; i < h->nt; i++)
        if (!strcmp(h->t[i].name, gguf_name))
            return kg_err(KG_ERR_FORMAT, "%s: tensors %s and %s both map to %s", h->dir, h->t[i].t.name, src->name, gguf_name);
    if (h->nt == h->capt) {
        int nc = h->capt ? 2 * h->capt : 64;
        hf_tensor *q = realloc(h->t, (size_t)nc * sizeof *q);
        if (!q) return kg_err(KG_ERR_NOMEM, "out of memory");
        h->t = q, h->capt = nc;
    }
    hf_tensor *t = &h->t[h->nt];
    if (!(t->name = strdup(gguf_name))) return kg_err(KG_ERR_NOMEM, "out of memory");
    t->t = *src;
    t->t.name = t->name;
    t->owned = NULL;
    h->nt++;
    return KG_OK;
}

static float bf16_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float f16_f32(uint16_t x)
{
    uint32_t s = (uint32_t)(x >> 15) << 31, e = (x >> 10) & 31, m = x & 1023, u;
    if (e == 0) {
        if (!m) u = s;
        else { /* subnormal: normalize */
            e = 113;
            while (!(m & 1024)) m <<= 1, e--;
            u = s | (e << 23) | ((m & 1023) << 13);
        }
    } else if (e == 31) {
        u = s | 0x7f800000u | (m << 13);
    } else {
        u = s | ((e + 112) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The last tensor added, widened to F32 (a vector: norms, biases). */
static kg_status widen_last(hf_src *h)
{
    hf_tensor *t = &h->t[h->nt - 1];
    if (t->t.type == KG_TYPE_F32) return KG_OK;
    if (t->t.type != KG_TYPE_F16 && t->t.type != KG_TYPE_BF16) return KG_OK; /* the builder names the type */
    const uint64_t n = t->t.n_elements;
    float *o = malloc((size_t)(n ? n : 1) * sizeof *o);
    if (!o) return kg_err(KG_ERR_NOMEM, "out of memory");
    const unsigned char *p = t->t.data;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t b;
        memcpy(&b, p + 2 * i, 2); /* safetensors data may be unaligned */
        o[i] = t->t.type == KG_TYPE_BF16 ? bf16_f32(b) : f16_f32(b);
    }
    free(t->owned);
    t->owned = o;
    t->t.data = o;
    t->t.type = KG_TYPE_F32;
    t->t.n_bytes = n * 4;
    return KG_OK;
}

/* The last tensor added, its rows permuted from rotate-half to GGUF's
 * interleaved layout, per head of hd rows: GGUF row h*hd + 2i + j is Hugging
 * Face's row h*hd + j*hd/2 + i (llama.cpp's converter's permute). Vectors
 * (biases) are rows of one element. */
static kg_status permute_last(hf_src *h, int64_t heads)
{
    hf_tensor *t = &h->t[h->nt - 1];
    const bool vec = t->t.n_dims == 1;
    const uint64_t rows = vec ? t->t.ne[0] : t->t.ne[1];
    if (heads < 1 || rows % (uint64_t)heads || (rows / (uint64_t)heads) % 2)
        return kg_err(KG_ERR_FORMAT, "%s: tensor %s has %llu rows, not %lld heads of an even size", h->dir, t->t.name,
                      (unsigned long long)rows, (long long)heads);
    const uint64_t rb = t->t.n_bytes / rows, hd = rows / (uint64_t)heads;
    unsigned char *o = malloc(t->t.n_bytes ? t->t.n_bytes : 1);
    if (!o) return kg_err(KG_ERR_NOMEM, "out of memory");
    const unsigned char *p = t->t.data;
    for (uint64_t hh = 0; hh < (uint64_t)heads; hh++)
        for (uint64_t i = 0; i < hd / 2; i++)
            for (uint64_t j = 0; j < 2; j++)
                memcpy(o + (hh * hd + 2 * i + j) * rb, p + (hh * hd + j * (hd / 2) + i) * rb, rb);
    free(t->owned);
    t->owned = o;
    t->t.data = o;
    return KG_OK;
}

/* ─────────────── the name tables ─────────────── */

enum { R_PLAIN, R_PERM_Q, R_PERM_K }; /* rewrites */

typedef struct name_map {
    const char *hf;   /* with %d for the layer; a trailing '.' matches .weight and .bias */
    const char *gguf; /* likewise */
    int rewrite;
} name_map;

static const name_map LLAMA_MAP[] = {
    {"model.embed_tokens.weight", "token_embd.weight", R_PLAIN},
    {"model.norm.weight", "output_norm.weight", R_PLAIN},
    {"lm_head.weight", "output.weight", R_PLAIN},
    {"model.layers.%d.input_layernorm.weight", "blk.%d.attn_norm.weight", R_PLAIN},
    {"model.layers.%d.self_attn.q_proj.", "blk.%d.attn_q.", R_PERM_Q},
    {"model.layers.%d.self_attn.k_proj.", "blk.%d.attn_k.", R_PERM_K},
    {"model.layers.%d.self_attn.v_proj.", "blk.%d.attn_v.", R_PLAIN},
    {"model.layers.%d.self_attn.o_proj.", "blk.%d.attn_output.", R_PLAIN},
    {"model.layers.%d.post_attention_layernorm.weight", "blk.%d.ffn_norm.weight", R_PLAIN},
    {"model.layers.%d.mlp.gate_proj.", "blk.%d.ffn_gate.", R_PLAIN},
    {"model.layers.%d.mlp.up_proj.", "blk.%d.ffn_up.", R_PLAIN},
    {"model.layers.%d.mlp.down_proj.", "blk.%d.ffn_down.", R_PLAIN},
    {NULL, NULL, 0},
};

static const name_map BERT_MAP[] = {
    {"embeddings.word_embeddings.weight", "token_embd.weight", R_PLAIN},
    {"embeddings.position_embeddings.weight", "position_embd.weight", R_PLAIN},
    {"embeddings.token_type_embeddings.weight", "token_types.weight", R_PLAIN},
    {"embeddings.LayerNorm.", "token_embd_norm.", R_PLAIN},
    {"encoder.layer.%d.attention.self.query.", "blk.%d.attn_q.", R_PLAIN},
    {"encoder.layer.%d.attention.self.key.", "blk.%d.attn_k.", R_PLAIN},
    {"encoder.layer.%d.attention.self.value.", "blk.%d.attn_v.", R_PLAIN},
    {"encoder.layer.%d.attention.output.dense.", "blk.%d.attn_output.", R_PLAIN},
    {"encoder.layer.%d.attention.output.LayerNorm.", "blk.%d.attn_output_norm.", R_PLAIN},
    {"encoder.layer.%d.intermediate.dense.", "blk.%d.ffn_up.", R_PLAIN},
    {"encoder.layer.%d.output.dense.", "blk.%d.ffn_down.", R_PLAIN},
    {"encoder.layer.%d.output.LayerNorm.", "blk.%d.layer_output_norm.", R_PLAIN},
    {NULL, NULL, 0},
};

/* Does `name` match pattern (at most one %d; a trailing '.' takes "weight"
 * or "bias", and old BERT checkpoints' "gamma"/"beta")? The GGUF name into out. */
static bool match(const name_map *m, const char *name, int64_t n_layer, char *out, size_t cap)
{
    const char *pd = strstr(m->hf, "%d");
    size_t pre = pd ? (size_t)(pd - m->hf) : 0;
    if (strncmp(name, m->hf, pre)) return false;
    const char *rest = name + pre, *pat = m->hf + pre;
    long layer = -1;
    if (pd) {
        char *end;
        if (*rest < '0' || *rest > '9') return false;
        layer = strtol(rest, &end, 10);
        if (layer < 0 || layer >= n_layer || (end - rest > 1 && *rest == '0')) return false;
        rest = end, pat += 2;
    }
    size_t pl = strlen(pat);
    if (pl && pat[pl - 1] == '.') {
        if (strncmp(rest, pat, pl)) return false;
        const char *suf = rest + pl;
        const char *gs = !strcmp(suf, "weight") || !strcmp(suf, "gamma") ? "weight"
                         : !strcmp(suf, "bias") || !strcmp(suf, "beta")  ? "bias"
                                                                         : NULL;
        if (!gs) return false;
        char g[128];
        snprintf(g, sizeof g, m->gguf, (int)layer);
        snprintf(out, cap, "%s%s", g, gs);
        return true;
    }
    if (strcmp(rest, pat)) return false;
    snprintf(out, cap, m->gguf, (int)layer);
    return true;
}

/* Tensors that are buffers, not weights: skipped. */
static bool ignored(const char *name, bool bert)
{
    size_t n = strlen(name);
    static const char *const tails[] = {"position_ids", "rotary_emb.inv_freq", "token_type_ids"};
    for (size_t i = 0; i < sizeof tails / sizeof *tails; i++) {
        size_t k = strlen(tails[i]);
        if (n >= k && !strcmp(name + n - k, tails[i])) return true;
    }
    return bert && !strncmp(name, "pooler.", 7); /* sentence-transformers pool the last layer themselves */
}

static kg_status map_tensors(hf_src *h, const name_map *map, int64_t n_layer, int64_t n_head, int64_t n_head_kv,
                             bool bert, bool permute)
{
    for (int f = 0; f < h->nfiles; f++)
        for (uint64_t i = 0; i < kg_st_n_tensors(h->files[f]); i++) {
            const kg_tensor *t = kg_st_tensor(h->files[f], i);
            const char *name = t->name;
            if (bert && !strncmp(name, "bert.", 5)) name += 5; /* BertModel inside a task model */
            if (ignored(name, bert)) continue;
            char g[160];
            const name_map *m = map;
            while (m->hf && !match(m, name, n_layer, g, sizeof g)) m++;
            if (!m->hf)
                return kg_err(KG_ERR_UNSUPPORTED, "%s: tensor %s is not one kgen knows for this architecture",
                              kg_st_name(h->files[f]), t->name);
            if (t->type != KG_TYPE_F32 && t->type != KG_TYPE_F16 && t->type != KG_TYPE_BF16)
                return kg_err(KG_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s (weights must be F32, F16 or BF16)",
                              kg_st_name(h->files[f]), t->name, kg_st_dtype_name(t));
            kg_status st = add_tensor(h, g, t);
            if (!st && t->n_dims == 1) st = widen_last(h);
            if (!st && permute && m->rewrite != R_PLAIN) st = permute_last(h, m->rewrite == R_PERM_Q ? n_head : n_head_kv);
            if (st) return st;
        }
    return KG_OK;
}

/* ─────────────── config.json per model_type ─────────────── */

/* what the tensor mapping needs of config.json */
typedef struct hf_shape {
    int64_t n_layer, n_head, n_head_kv;
    bool permute; /* LLaMA: Q/K rows from rotate-half to GGUF's interleaved layout */
} hf_shape;

static kg_status decoder_config(hf_src *h, const json_t *cfg, const char *file, const char *arch, hf_shape *sh)
{
    int64_t nl, E, nh, nkv, F, ctx, hd;
    double eps, theta;
    const char *act;
    kg_status st;
    char k[96];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    if ((st = cfg_int(cfg, file, "num_hidden_layers", true, 0, 1, 1024, &nl)) ||
        (st = cfg_int(cfg, file, "hidden_size", true, 0, 1, 1 << 16, &E)) ||
        (st = cfg_int(cfg, file, "num_attention_heads", true, 0, 1, 1024, &nh)) ||
        (st = cfg_int(cfg, file, "num_key_value_heads", false, nh, 1, nh, &nkv)) ||
        (st = cfg_int(cfg, file, "intermediate_size", true, 0, 1, 1 << 18, &F)) ||
        (st = cfg_int(cfg, file, "max_position_embeddings", true, 0, 1, 1 << 24, &ctx)) ||
        (st = cfg_int(cfg, file, "head_dim", false, E / nh, 2, 512, &hd)) ||
        (st = cfg_num(cfg, file, "rms_norm_eps", 1e-6, &eps)) || (st = cfg_num(cfg, file, "rope_theta", 10000, &theta)) ||
        (st = cfg_str(cfg, file, "hidden_act", &act)))
        return st;
    if (nh % nkv)
        return kg_err(KG_ERR_FORMAT, "%s: num_key_value_heads = %lld does not divide num_attention_heads = %lld", file,
                      (long long)nkv, (long long)nh);
    if (act && strcmp(act, "silu"))
        return kg_err(KG_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported for %s (silu)", file, act, arch);
    const json_t *rs = json_object_get(cfg, "rope_scaling");
    if (rs && !json_is_null(rs))
        return kg_err(KG_ERR_UNSUPPORTED, "%s: rope_scaling is set: RoPE scaling from Hugging Face configs is not supported yet",
                      file);
    const json_t *sw = json_object_get(cfg, "use_sliding_window");
    if (sw && json_is_true(sw))
        return kg_err(KG_ERR_UNSUPPORTED, "%s: use_sliding_window = true is not supported", file);
    if ((st = kv_s(h, "general.architecture", arch)) || (st = kv_i(h, KEY("block_count"), nl)) ||
        (st = kv_i(h, KEY("embedding_length"), E)) || (st = kv_i(h, KEY("attention.head_count"), nh)) ||
        (st = kv_i(h, KEY("attention.head_count_kv"), nkv)) || (st = kv_i(h, KEY("feed_forward_length"), F)) ||
        (st = kv_i(h, KEY("context_length"), ctx)) || (st = kv_f(h, KEY("attention.layer_norm_rms_epsilon"), eps)) ||
        (st = kv_f(h, KEY("rope.freq_base"), theta)))
        return st;
    if (hd != E / nh && (st = kv_i(h, KEY("attention.key_length"), hd))) return st;
#undef KEY
    /* Qwen2's q/k rows stay: its registry row rotates NEOX halves, as Hugging Face does */
    *sh = (hf_shape){nl, nh, nkv, !strcmp(arch, "llama")};
    return KG_OK;
}

/* sentence-transformers: modules.json (Normalize; the pooling module's
 * path), its config.json, sentence_bert_config.json */
static kg_status st_config(hf_src *h)
{
    json_t *mods = NULL, *pool = NULL, *sb = NULL;
    char pool_cfg[PATH_MAX / 2] = "1_Pooling/config.json";
    bool normalize = false, have_mods;
    kg_status st = load_json(h, "modules.json", false, &mods);
    have_mods = mods != NULL;
    if (!st && mods && !json_is_array(mods)) st = kg_err(KG_ERR_FORMAT, "%s/modules.json: not an array", h->dir);
    for (size_t i = 0; !st && mods && i < json_array_size(mods); i++) {
        const json_t *m = json_array_get(mods, i);
        const char *type = json_string_value(json_object_get(m, "type")), *path = json_string_value(json_object_get(m, "path"));
        if (!type) {
            st = kg_err(KG_ERR_FORMAT, "%s/modules.json: entry %zu has no \"type\" string", h->dir, i);
            break;
        }
        if (strstr(type, "Normalize")) normalize = true;
        else if (strstr(type, "Pooling")) {
            if (!path || strstr(path, "..") || path[0] == '/' || strlen(path) > 200)
                st = kg_err(KG_ERR_FORMAT, "%s/modules.json: the Pooling module's path is missing or leaves the directory", h->dir);
            else snprintf(pool_cfg, sizeof pool_cfg, "%s/config.json", path);
        } else if (!strstr(type, "Transformer")) {
            st = kg_err(KG_ERR_UNSUPPORTED, "%s/modules.json: module %s is not supported (Transformer, Pooling, Normalize)",
                        h->dir, type);
        }
    }
    if (!st && have_mods) st = load_json(h, pool_cfg, false, &pool);
    const char *mode = "mean";
    if (!st && pool) {
        static const struct { const char *key, *mode; } modes[] = {{"pooling_mode_cls_token", "cls"},
                                                                  {"pooling_mode_mean_tokens", "mean"},
                                                                  {"pooling_mode_max_tokens", "max"},
                                                                  {"pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"}};
        int n = 0;
        for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
            if (json_is_true(json_object_get(pool, modes[i].key))) mode = modes[i].mode, n++;
        const char *pm = json_string_value(json_object_get(pool, "pooling_mode"));
        if (n != 1 && !pm)
            st = kg_err(KG_ERR_UNSUPPORTED, "%s/%s: %d pooling modes are on (kgen supports exactly one of cls, mean, max, "
                        "mean_sqrt_len)", h->dir, pool_cfg, n);
        else if (n != 1) mode = !strcmp(pm, "mean") ? "mean" : !strcmp(pm, "cls") ? "cls" : !strcmp(pm, "max") ? "max" : pm;
    }
    if (!st) st = kv_s(h, "kgen.pooling", mode);
    if (!st) st = kv_b(h, "kgen.normalize", normalize);
    if (!st) st = load_json(h, "sentence_bert_config.json", false, &sb);
    if (!st && sb) {
        int64_t msl;
        st = cfg_int(sb, "sentence_bert_config.json", "max_seq_length", false, 0, 0, 1 << 20, &msl);
        if (!st && msl > 0) st = kv_i(h, "kgen.max_seq_length", msl);
    }
    json_decref(mods), json_decref(pool), json_decref(sb);
    return st;
}

static kg_status bert_config(hf_src *h, const json_t *cfg, const char *file, hf_shape *sh)
{
    int64_t nl, E, nh, F, ctx, types;
    double eps;
    const char *act, *pos;
    kg_status st;
    if ((st = cfg_int(cfg, file, "num_hidden_layers", true, 0, 1, 1024, &nl)) ||
        (st = cfg_int(cfg, file, "hidden_size", true, 0, 1, 1 << 16, &E)) ||
        (st = cfg_int(cfg, file, "num_attention_heads", true, 0, 1, 1024, &nh)) ||
        (st = cfg_int(cfg, file, "intermediate_size", true, 0, 1, 1 << 18, &F)) ||
        (st = cfg_int(cfg, file, "max_position_embeddings", true, 0, 2, 1 << 16, &ctx)) ||
        (st = cfg_int(cfg, file, "type_vocab_size", false, 2, 1, 1 << 16, &types)) ||
        (st = cfg_num(cfg, file, "layer_norm_eps", 1e-12, &eps)) || (st = cfg_str(cfg, file, "hidden_act", &act)) ||
        (st = cfg_str(cfg, file, "position_embedding_type", &pos)))
        return st;
    if (E % nh)
        return kg_err(KG_ERR_FORMAT, "%s: num_attention_heads = %lld does not divide hidden_size = %lld", file, (long long)nh,
                      (long long)E);
    if (act && strcmp(act, "gelu"))
        return kg_err(KG_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported for BERT (gelu: the exact erf GELU)", file, act);
    if (pos && strcmp(pos, "absolute"))
        return kg_err(KG_ERR_UNSUPPORTED, "%s: position_embedding_type '%s' is not supported (absolute)", file, pos);
    *sh = (hf_shape){nl, 1, 1, false};
    if ((st = kv_s(h, "general.architecture", "bert")) || (st = kv_i(h, "bert.block_count", nl)) ||
        (st = kv_i(h, "bert.embedding_length", E)) || (st = kv_i(h, "bert.attention.head_count", nh)) ||
        (st = kv_i(h, "bert.feed_forward_length", F)) || (st = kv_i(h, "bert.context_length", ctx)) ||
        (st = kv_f(h, "bert.attention.layer_norm_epsilon", eps)) || (st = kv_b(h, "bert.attention.causal", false)))
        return st;
    return st_config(h);
}

/* ─────────────── the files ─────────────── */

static kg_status open_weights(hf_src *h)
{
    char p[PATH_MAX + 64];
    json_t *idx = NULL;
    kg_status st = load_json(h, "model.safetensors.index.json", false, &idx);
    if (st) return st;
    if (!idx) {
        snprintf(p, sizeof p, "%s/model.safetensors", h->dir);
        st = kg_st_open(p, &h->files[0]);
        if (!st) h->nfiles = 1;
        return st;
    }
    const json_t *wm = json_object_get(idx, "weight_map");
    if (!json_is_object(wm)) {
        json_decref(idx);
        return kg_err(KG_ERR_FORMAT, "%s/model.safetensors.index.json: \"weight_map\" is missing or not an object", h->dir);
    }
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)wm, name, v) {
        const char *f = json_string_value(v);
        if (!f || !*f || strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, "..") || strlen(f) > 255) {
            st = kg_err(KG_ERR_FORMAT, "%s/model.safetensors.index.json: weight_map[\"%.80s\"] is not a file name in the directory",
                        h->dir, name);
            break;
        }
        int i = 0;
        while (i < h->nfiles && strcmp(strrchr(kg_st_name(h->files[i]), '/') + 1, f)) i++;
        if (i == h->nfiles) {
            if (h->nfiles == HF_MAX_SHARDS) {
                st = kg_err(KG_ERR_UNSUPPORTED, "%s: more than %d shards", h->dir, HF_MAX_SHARDS);
                break;
            }
            snprintf(p, sizeof p, "%s/%s", h->dir, f);
            if ((st = kg_st_open(p, &h->files[h->nfiles]))) break;
            h->nfiles++;
        }
        if (!kg_st_find_tensor(h->files[i], name)) {
            st = kg_err(KG_ERR_FORMAT, "%s/model.safetensors.index.json: tensor %.80s is not in %s", h->dir, name, f);
            break;
        }
    }
    /* every tensor once, and each listed */
    for (int i = 0; !st && i < h->nfiles; i++)
        for (uint64_t j = 0; !st && j < kg_st_n_tensors(h->files[i]); j++) {
            const char *tn = kg_st_tensor(h->files[i], j)->name;
            const char *f = json_string_value(json_object_get(wm, tn));
            if (!f || strcmp(f, strrchr(kg_st_name(h->files[i]), '/') + 1))
                st = kg_err(KG_ERR_FORMAT, "%s: tensor %.80s is not listed for this file in model.safetensors.index.json",
                            kg_st_name(h->files[i]), tn);
        }
    json_decref(idx);
    return st;
}

/* ─────────────── the interface ─────────────── */

static const kg_value *hf_find(const gen_source *s, const char *key)
{
    const hf_src *h = s->impl;
    for (int i = 0; i < h->nkv; i++)
        if (!strcmp(h->kv[i].key, key)) return &h->kv[i].v;
    return NULL;
}

static const kg_tensor *hf_tensor_find(const gen_source *s, const char *name)
{
    const hf_src *h = s->impl;
    for (int i = 0; i < h->nt; i++)
        if (!strcmp(h->t[i].name, name)) return &h->t[i].t;
    return NULL;
}

static const kg_tensor *hf_tensor_at(const gen_source *s, uint64_t i)
{
    const hf_src *h = s->impl;
    return i < (uint64_t)h->nt ? &h->t[i].t : NULL;
}

static kg_status hf_tokdata(const gen_source *s, const char *chat_template, void **blob, size_t *size)
{
    const hf_src *h = s->impl;
    return gen_tokdata_hf(h->dir, chat_template, blob, size);
}

static void hf_free(hf_src *h)
{
    if (!h) return;
    for (int i = 0; i < h->nfiles; i++) kg_st_close(h->files[i]);
    for (int i = 0; i < h->nkv; i++) free(h->kv[i].key);
    for (int i = 0; i < h->nt; i++) free(h->t[i].name), free(h->t[i].owned);
    for (int i = 0; i < h->nstrs; i++) free(h->strs[i]);
    free(h->kv), free(h->t), free(h->strs);
    free(h);
}

static void hf_close(gen_source *s)
{
    hf_free(s->impl);
    free(s);
}

static const gen_source_vt hf_vt = {"Hugging Face", hf_find, hf_tensor_find, hf_tensor_at, hf_tokdata, hf_close};

kg_status gen_source_hf(const char *dir, gen_source **out)
{
    *out = NULL;
    hf_src *h = calloc(1, sizeof *h);
    gen_source *s = calloc(1, sizeof *s);
    json_t *cfg = NULL;
    kg_status st = h && s ? KG_OK : kg_err(KG_ERR_NOMEM, "out of memory");
    if (!st && strlen(dir) >= sizeof h->dir - 64) st = kg_err(KG_ERR_ARG, "%.80s...: path too long", dir);
    if (!st) {
        snprintf(h->dir, sizeof h->dir, "%s", dir);
        size_t n = strlen(h->dir);
        while (n > 1 && h->dir[n - 1] == '/') h->dir[--n] = 0;
        st = load_json(h, "config.json", true, &cfg);
    }
    char file[PATH_MAX + 16];
    snprintf(file, sizeof file, "%s/config.json", h ? h->dir : dir);
    const char *type = NULL, *name = NULL;
    if (!st && !json_is_object(cfg)) st = kg_err(KG_ERR_FORMAT, "%s: not a JSON object", file);
    if (!st) st = cfg_str(cfg, file, "model_type", &type);
    if (!st && !type) st = kg_err(KG_ERR_FORMAT, "%s: key 'model_type' is missing", file);
    if (!st) st = cfg_str(cfg, file, "_name_or_path", &name);
    if (!st && name && *name) st = kv_s(h, "general.name", strrchr(name, '/') ? strrchr(name, '/') + 1 : name);
    if (!st) st = open_weights(h);
    if (!st) {
        hf_shape sh = {0};
        if (!strcmp(type, "bert")) {
            st = bert_config(h, cfg, file, &sh);
            if (!st) st = map_tensors(h, BERT_MAP, sh.n_layer, 1, 1, true, false);
        } else if (!strcmp(type, "llama") || !strcmp(type, "qwen2")) {
            st = decoder_config(h, cfg, file, type, &sh);
            if (!st) st = map_tensors(h, LLAMA_MAP, sh.n_layer, sh.n_head, sh.n_head_kv, false, sh.permute);
        } else {
            st = kg_err(KG_ERR_UNSUPPORTED, "%s: model_type '%.40s' is not supported (bert, llama, qwen2)", file, type);
        }
    }
    json_decref(cfg);
    if (st) {
        hf_free(h);
        free(s);
        return st;
    }
    s->vt = &hf_vt, s->impl = h, s->name = h->dir;
    *out = s;
    return KG_OK;
}
