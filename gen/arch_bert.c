/*
 * arch_bert.c — BERT-family encoders (general.architecture "bert": BERT,
 * MiniLM, bge, all-MiniLM-L6-v2 and the other sentence-transformers models
 * of that architecture), by GGUF's names (llama.cpp's `bert`), which the
 * Hugging Face source maps its own onto:
 *
 *   x = LN(embed(token_embd, ids) + position_embd[i] + token_types[0])
 *       (i: the row's position in its sequence; every token has type 0)
 *   per layer l (post-LN):
 *     q | k | v = Wq x + bq | Wk x + bk | Wv x + bv      (one row of 3E)
 *     a = attention(q, k, v) within each sequence, over its valid rows
 *         (bidirectional; padded rows give zero)
 *     x = LN(x + Wo a + bo) * attn_output_norm
 *     x = LN(x + Wdown gelu(Wup x + bup) + bdown) * layer_output_norm
 *         (exact erf GELU)
 *   out[b] = pool(x rows of sequence b) [/ ||.||]   (mean, CLS, max or mean
 *            / sqrt(len), as the model's sentence-transformers config says;
 *            L2-normalized when it lists Normalize)
 *
 * Shapes: n_seq sequences of max_len rows per step (the workspace), both
 * compile-time maxima; the runtime runs the sequences a call has, padded
 * to the longest of them (run-time values of the kernels), so padding
 * beyond costs nothing.
 *
 * Keys: bert.{block_count, embedding_length, feed_forward_length,
 * context_length, attention.head_count, attention.layer_norm_epsilon,
 * attention.causal (must be false), pooling_type (llama.cpp's: 1 mean,
 * 2 CLS)}; and kgen's own, from sentence-transformers' files (the Hugging
 * Face source writes them): kgen.pooling ("mean", "cls", "max",
 * "mean_sqrt_len"), kgen.normalize, kgen.max_seq_length.
 */
#include "arch_int.h"
#include "internal.h"
#include "templates/cpu/kernel.h"
#include "templates/cpu/ops.h"

#include <math.h>
#include <string.h>

bool gen_arch_is_encoder(const gen_source *src)
{
    kg_str a;
    return gen_src_str(src, "general.architecture", false, &a) == KG_OK && a.ptr && kg_str_eq(a, "bert");
}

static kg_status range(const arch_ctx *c, const char *key, int64_t v, int64_t lo, int64_t hi)
{
    if (v >= lo && v <= hi) return KG_OK;
    return kg_err(KG_ERR_FORMAT, "%s: %s = %lld is out of range (%lld..%lld)", c->file, key, (long long)v, (long long)lo,
                  (long long)hi);
}

static kg_status pooling(const arch_ctx *c, int64_t *pool)
{
    kg_str s;
    bool norm;
    kg_status st = gen_src_str(c->src, "kgen.pooling", false, &s);
    if (st) return st;
    if (s.ptr) {
        static const struct { const char *name; int64_t mode; } modes[] = {
            {"mean", GEN_POOL_MEAN}, {"cls", GEN_POOL_CLS}, {"max", GEN_POOL_MAX}, {"mean_sqrt_len", GEN_POOL_MEAN_SQRT}};
        *pool = -1;
        for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
            if (kg_str_eq(s, modes[i].name)) *pool = modes[i].mode;
        if (*pool < 0) {
            char esc[48];
            kg_escape(esc, sizeof esc, s.ptr, s.len, 24);
            return kg_err(KG_ERR_UNSUPPORTED, "%s: pooling '%s' is not supported (mean, cls, max, mean_sqrt_len)", c->file,
                          esc);
        }
    } else { /* a GGUF: llama.cpp's pooling type */
        int64_t t;
        if ((st = gen_src_i64(c->src, "bert.pooling_type", false, 1, &t))) return st;
        if (t != 1 && t != 2)
            return kg_err(KG_ERR_UNSUPPORTED, "%s: bert.pooling_type = %lld is not supported (1: mean, 2: CLS)", c->file,
                          (long long)t);
        *pool = t == 1 ? GEN_POOL_MEAN : GEN_POOL_CLS;
    }
    /* llama.cpp normalizes embeddings (Euclidean) unless told otherwise */
    if ((st = gen_src_bool(c->src, "kgen.normalize", true, &norm))) return st;
    if (norm) *pool |= GEN_POOL_NORM;
    return KG_OK;
}

static kg_status hparams(arch_ctx *c, int64_t n_seq, int64_t max_len, gen_hparams *hp)
{
    kg_status st;
    kg_str name;
    snprintf(hp->arch, sizeof hp->arch, "bert");
    if (gen_src_str(c->src, "general.name", false, &name) == KG_OK && name.ptr)
        snprintf(hp->name, sizeof hp->name, "%.*s", (int)(name.len < 63 ? name.len : 63), name.ptr);
    bool causal;
    if ((st = gen_src_i64(c->src, "bert.block_count", true, 0, &hp->n_layer)) ||
        (st = range(c, "bert.block_count", hp->n_layer, 1, 1024)) ||
        (st = gen_src_i64(c->src, "bert.embedding_length", true, 0, &hp->n_embd)) ||
        (st = range(c, "bert.embedding_length", hp->n_embd, 32, 1 << 16)) ||
        (st = gen_src_i64(c->src, "bert.attention.head_count", true, 0, &hp->n_head)) ||
        (st = range(c, "bert.attention.head_count", hp->n_head, 1, 1024)) ||
        (st = gen_src_i64(c->src, "bert.feed_forward_length", true, 0, &hp->n_ff)) ||
        (st = range(c, "bert.feed_forward_length", hp->n_ff, 32, 1 << 18)) ||
        (st = gen_src_i64(c->src, "bert.context_length", true, 0, &hp->n_ctx_train)) ||
        (st = range(c, "bert.context_length", hp->n_ctx_train, 2, 1 << 16)) ||
        (st = gen_src_f64(c->src, "bert.attention.layer_norm_epsilon", false, 1e-12, &hp->eps)) ||
        (st = gen_src_bool(c->src, "bert.attention.causal", false, &causal)))
        return st;
    if (causal)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: bert.attention.causal = true: causal encoders are not supported", c->file);
    if (hp->n_embd % hp->n_head)
        return kg_err(KG_ERR_FORMAT, "%s: bert.attention.head_count = %lld does not divide bert.embedding_length = %lld",
                      c->file, (long long)hp->n_head, (long long)hp->n_embd);
    hp->n_head_kv = hp->n_head;
    hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->n_embd % 32 || hp->n_ff % 32)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: embedding %lld and feed-forward %lld must be multiples of 32", c->file,
                      (long long)hp->n_embd, (long long)hp->n_ff);
    if (!(hp->eps > 0 && hp->eps < 1))
        return kg_err(KG_ERR_FORMAT, "%s: bert.attention.layer_norm_epsilon = %g is out of range", c->file, hp->eps);
    int64_t msl;
    if ((st = gen_src_i64(c->src, "kgen.max_seq_length", false, hp->n_ctx_train, &msl)) ||
        (st = range(c, "kgen.max_seq_length", msl, 2, hp->n_ctx_train)))
        return st;
    if (max_len > hp->n_ctx_train)
        return kg_err(KG_ERR_ARG, "%s: --max-len %lld exceeds the model's %lld positions", c->file, (long long)max_len,
                      (long long)hp->n_ctx_train);
    hp->encoder = true;
    hp->max_len = max_len > 0 ? max_len : msl;
    hp->n_seq = n_seq > 0 ? n_seq : 32;
    if (hp->max_len < 2 || hp->n_seq < 1 || hp->n_seq > 4096 || hp->n_seq * hp->max_len > (1 << 20))
        return kg_err(KG_ERR_ARG, "%s: batch %lld x length %lld (at most 4096 sequences, 2^20 tokens, length >= 2)",
                      c->file, (long long)hp->n_seq, (long long)hp->max_len);
    hp->n_batch = hp->n_seq * hp->max_len;
    hp->n_rot = 0;
    hp->rope_base = hp->rope_base_swa = hp->rope_scale = 1;
    hp->embd_scale = 1;
    hp->kv_type = KGT_F16;
    return pooling(c, &hp->pool);
}

/* x = LN(x) * gamma + beta, in place */
static kg_status layer_norm(arch_ctx *c, int l, int x, const char *gname, const char *bname)
{
    int g, b;
    kg_status st;
    const int64_t E = c->gr->hp.n_embd;
    if ((st = arch_weight(c, gname, E, 0, &g)) || (st = arch_weight(c, bname, E, 0, &b))) return st;
    int n = NODE(GEN_OP_LAYERNORM, l, x, x, g, b);
    TRY(n);
    c->gr->n[n].eps = c->gr->hp.eps;
    c->gr->n[n].flags = KGT_NORM_BIAS;
    return KG_OK;
}

static kg_status layer(arch_ctx *c, int l, int x)
{
    const int64_t E = c->gr->hp.n_embd, F = c->gr->hp.n_ff;
    char nm[96], nb[96];
    kg_status st;
    int qkv = arch_act(c, l, "qkv", 3 * E), a = arch_act(c, l, "attn", E), o = arch_act(c, l, "attn_out", E),
        h = arch_act(c, l, "ffn_up", F), f = arch_act(c, l, "ffn_out", E);
    TRY(qkv); TRY(a); TRY(o); TRY(h); TRY(f);
    /* Q, K, V: three products into column slices of one row (pass_fuse may merge them) */
    static const char *const parts[3] = {"attn_q", "attn_k", "attn_v"};
    for (int i = 0; i < 3; i++) {
        int w, b;
        snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, parts[i]);
        snprintf(nb, sizeof nb, "blk.%d.%s.bias", l, parts[i]);
        if ((st = arch_weight(c, nm, E, E, &w)) || (st = arch_weight(c, nb, E, 0, &b))) return st;
        int n = arch_product(c, l, w, x, b, qkv);
        TRY(n);
        c->gr->n[n].out_col = i * E;
    }
    TRY(NODE(GEN_OP_ATTN_ENC, l, a, qkv, c->gr->pos));
    int wo, bo, wu, bu, wd, bd;
    snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l);
    snprintf(nb, sizeof nb, "blk.%d.attn_output.bias", l);
    if ((st = arch_weight(c, nm, E, E, &wo)) || (st = arch_weight(c, nb, E, 0, &bo))) return st;
    TRY(arch_product(c, l, wo, a, bo, o));
    TRY(NODE(GEN_OP_ADD, l, x, x, o));
    snprintf(nm, sizeof nm, "blk.%d.attn_output_norm.weight", l);
    snprintf(nb, sizeof nb, "blk.%d.attn_output_norm.bias", l);
    if ((st = layer_norm(c, l, x, nm, nb))) return st;
    snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l);
    snprintf(nb, sizeof nb, "blk.%d.ffn_up.bias", l);
    if ((st = arch_weight(c, nm, E, F, &wu)) || (st = arch_weight(c, nb, F, 0, &bu))) return st;
    int n = arch_product(c, l, wu, x, bu, h);
    TRY(n);
    c->gr->n[n].flags |= KGT_EPI_GELU;
    snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l);
    snprintf(nb, sizeof nb, "blk.%d.ffn_down.bias", l);
    if ((st = arch_weight(c, nm, F, E, &wd)) || (st = arch_weight(c, nb, E, 0, &bd))) return st;
    TRY(arch_product(c, l, wd, h, bd, f));
    TRY(NODE(GEN_OP_ADD, l, x, x, f));
    snprintf(nm, sizeof nm, "blk.%d.layer_output_norm.weight", l);
    snprintf(nb, sizeof nb, "blk.%d.layer_output_norm.bias", l);
    return layer_norm(c, l, x, nm, nb);
}

/* The embedding tables: position rows (at least max_len) and the type-0 row. */
static kg_status tables(arch_ctx *c, int *emb, int *pos, int *type0)
{
    gen_hparams *hp = &c->gr->hp;
    const int64_t E = hp->n_embd;
    kg_status st;
    const kg_tensor *te = gen_src_tensor(c->src, "token_embd.weight");
    if (!te) return kg_err(KG_ERR_FORMAT, "%s: tensor token_embd.weight is missing", c->file);
    hp->n_vocab = (int64_t)te->ne[1];
    if (hp->n_vocab < 1 || hp->n_vocab > (1 << 24))
        return kg_err(KG_ERR_FORMAT, "%s: token_embd.weight has %lld rows (the vocabulary)", c->file, (long long)hp->n_vocab);
    if ((st = arch_weight(c, "token_embd.weight", E, hp->n_vocab, emb))) return st;
    const kg_tensor *tp = arch_find_checked(c, "position_embd.weight", E, hp->n_ctx_train, W_PRODUCT, &st);
    if (!tp) return st;
    const kg_tensor *tt = gen_src_tensor(c->src, "token_types.weight");
    if (!tt || tt->n_dims > 2 || tt->ne[0] != (uint64_t)E || tt->ne[1] < 1)
        return kg_err(KG_ERR_FORMAT, "%s: tensor token_types.weight is %s (want %lld x the number of token types)", c->file,
                      tt ? "of the wrong shape" : "missing", (long long)E);
    for (int i = 0; i < 2; i++) {
        const kg_tensor *t = i ? tt : tp;
        if (t->type != KG_TYPE_F32 && t->type != KG_TYPE_F16 && t->type != KG_TYPE_BF16)
            return kg_err(KG_ERR_UNSUPPORTED, "%s: tensor %s has type %s (position and type embeddings: F32, F16 or BF16)",
                          c->file, t->name, kg_type_get(t->type) ? kg_type_get(t->type)->name : "?");
    }
    if (tt->type != tp->type)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: token_types.weight (%s) and position_embd.weight (%s) differ in type",
                      c->file, kg_type_get(tt->type)->name, kg_type_get(tp->type)->name);
    const kg_tensor *v = gen_graph_view(c->gr, tp, 0, (uint64_t)hp->max_len, "position_embd.weight[rows]");
    const kg_tensor *r = gen_graph_view(c->gr, tt, 0, 1, "token_types.weight[0]");
    if (!v || !r) return KG_ERR_NOMEM;
    *pos = arch_add_weight(c, v, v->name, false);
    *type0 = arch_add_weight(c, r, r->name, false);
    return *pos < 0 || *type0 < 0 ? KG_ERR_NOMEM : KG_OK;
}

kg_status gen_arch_build_encoder(const gen_source *src, int64_t n_seq, int64_t max_len, gen_graph *gr)
{
    memset(gr, 0, sizeof *gr);
    gr->src = src;
    arch_ctx ctx = {.src = src, .file = src->name, .gr = gr}, *c = &ctx;
    gen_hparams *hp = &gr->hp;
    int emb = -1, pos = -1, type0 = -1;
    kg_status st = hparams(c, n_seq, max_len, hp);
    if (!st) st = tables(c, &emb, &pos, &type0);
    if (st) goto fail;
    const int64_t E = hp->n_embd;
    gr->ids = gen_graph_tensor(gr, "ids", GEN_T_INPUT, GEN_ACT_I32, 1, 1, true);
    gr->pos = gen_graph_tensor(gr, "lengths", GEN_T_INPUT, GEN_ACT_I32, 1, hp->n_seq, false);
    int x = gen_graph_tensor(gr, "x", GEN_T_ACT, GEN_ACT_F32, 1, E, true);
    gr->logits = gen_graph_tensor(gr, "embeddings", GEN_T_ACT, GEN_ACT_F32, 1, hp->n_seq * E, false);
    st = KG_ERR_NOMEM;
    if (gr->ids < 0 || gr->pos < 0 || x < 0 || gr->logits < 0 || NODE(GEN_OP_EMBED, -1, x, emb, gr->ids, pos, type0) < 0)
        goto fail;
    if ((st = layer_norm(c, -1, x, "token_embd_norm.weight", "token_embd_norm.bias"))) goto fail;
    for (int l = 0; l < hp->n_layer; l++)
        if ((st = layer(c, l, x))) goto fail;
    int n = NODE(GEN_OP_POOL, -1, gr->logits, x, gr->pos);
    if (n < 0) {
        st = KG_ERR_NOMEM;
        goto fail;
    }
    gr->n[n].flags = hp->pool;
    return KG_OK;
fail:
    gen_graph_free(gr);
    return st;
}
