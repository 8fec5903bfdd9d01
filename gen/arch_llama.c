/*
 * arch_llama.c — the graph of the LLaMA family as GGUF describes it
 * (general.architecture = "llama": Llama 1/2/3, TinyLlama, SmolLM, Mistral-
 * style grouped-query attention), with every hyperparameter and tensor
 * checked before anything is built.
 *
 *   x = embed(token_embd, ids)
 *   per layer:  h = rmsnorm(x) * attn_norm
 *               q, k, v = Wq h, Wk h, Wv h;  q, k = rope(q, k)
 *               cache[pos] = k, v;  a = attention(q, cache)
 *               x = x + Wo a
 *               h = rmsnorm(x) * ffn_norm
 *               x = x + Wdown (silu(Wgate h) * Wup h)        (GLU, KGT_GLU_SILU)
 *   logits = Woutput (rmsnorm(x[last]) * output_norm)     (Woutput: output,
 *            or token_embd when the model ties them)
 */
#include "graph.h"
#include "internal.h"
#include "templates/cpu/kernel.h"
#include "templates/cpu/ops.h"

#include <string.h>

static const char *const SUPPORTED = "llama";

/* The weight types the product and embedding kernels take: the table's
 * kernels column (kgen_types.h). */
static bool product_type(int t)
{
    const kg_type_info *ti = kg_type_get((uint32_t)t);
    return ti && ti->kernels;
}

/* "F32, F16, ..." into list */
static const char *product_types(char *list, size_t cap)
{
    size_t n = 0;
    list[0] = 0;
#define KG_X(id, nm, b, s, k, g, mn) \
    if (k && n < cap) n += (size_t)snprintf(list + n, cap - n, "%s%s", n ? ", " : "", #nm);
    KG_TYPES(KG_X)
#undef KG_X
    return list;
}

typedef struct {
    const kg_gguf *g;
    const char *file;
    char arch[16];
} ctx;

static kg_status get_i(ctx *c, const char *suffix, int64_t *out, bool required, int64_t dflt)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", c->arch, suffix);
    if (!kg_gguf_find(c->g, key)) {
        if (required) return kg_err(KG_ERR_FORMAT, "%s: metadata key %s is missing", c->file, key);
        *out = dflt;
        return KG_OK;
    }
    kg_status st = kg_gguf_get_i64(c->g, key, out);
    if (st != KG_OK) return kg_err(st, "%s: %s", c->file, kg_last_error());
    return KG_OK;
}

static kg_status get_f(ctx *c, const char *suffix, double *out, double dflt)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", c->arch, suffix);
    *out = dflt;
    if (!kg_gguf_find(c->g, key)) return KG_OK;
    kg_status st = kg_gguf_get_f64(c->g, key, out);
    return st == KG_OK ? KG_OK : kg_err(st, "%s: %s", c->file, kg_last_error());
}

/* A weight tensor that must exist with shape ne0 x ne1 (ne1 = 0: a vector). */
static kg_status weight(ctx *c, gen_graph *gr, const char *name, int64_t ne0, int64_t ne1, bool product, int *id)
{
    const kg_tensor *t = kg_gguf_find_tensor(c->g, name);
    if (!t) return kg_err(KG_ERR_FORMAT, "%s: tensor %s is missing", c->file, name);
    int64_t want1 = ne1 ? ne1 : 1;
    if (t->n_dims > 2 || (int64_t)t->ne[0] != ne0 || (int64_t)t->ne[1] != want1)
        return kg_err(KG_ERR_FORMAT,
                      "%s: tensor %s has shape %llu x %llu, but the hyperparameters say %lld x %lld", c->file, name,
                      (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (long long)ne0, (long long)want1);
    const kg_type_info *ti = kg_type_get(t->type);
    if (product ? !product_type((int)t->type) : t->type != KG_TYPE_F32) {
        char list[256];
        return kg_err(KG_ERR_UNSUPPORTED, "%s: tensor %s has type %s, which kgen has no kernel for (%s%s)", c->file,
                      name, ti ? ti->name : "?", product ? "products take " : "norm weights must be F32",
                      product ? product_types(list, sizeof list) : "");
    }
    if (ti && ne0 % ti->blck)
        return kg_err(KG_ERR_FORMAT, "%s: tensor %s: rows of %lld elements are not whole %s blocks", c->file, name,
                      (long long)ne0, ti->name);
    int i = gen_graph_tensor(gr, name, GEN_T_WEIGHT, (int)t->type, want1, ne0, false);
    if (i < 0) return KG_ERR_NOMEM;
    gr->t[i].n_parts = 1;
    gr->t[i].parts[0] = t;
    *id = i;
    return KG_OK;
}

static kg_status hparams(ctx *c, gen_hparams *hp)
{
    kg_status st;
    int64_t v;
    snprintf(hp->arch, sizeof hp->arch, "%s", c->arch);
    kg_str name;
    if (kg_gguf_find(c->g, "general.name") && kg_gguf_get_str(c->g, "general.name", &name) == KG_OK)
        snprintf(hp->name, sizeof hp->name, "%.*s", (int)(name.len < 63 ? name.len : 63), name.ptr);
    if ((st = get_i(c, "block_count", &hp->n_layer, true, 0)) || (st = get_i(c, "embedding_length", &hp->n_embd, true, 0)) ||
        (st = get_i(c, "attention.head_count", &hp->n_head, true, 0)) ||
        (st = get_i(c, "feed_forward_length", &hp->n_ff, true, 0)) ||
        (st = get_i(c, "context_length", &hp->n_ctx_train, true, 0)))
        return st;
    if ((st = get_i(c, "attention.head_count_kv", &hp->n_head_kv, false, hp->n_head))) return st;
    if (hp->n_layer < 1 || hp->n_layer > 1024 || hp->n_embd < 1 || hp->n_embd > (1 << 16) || hp->n_head < 1 ||
        hp->n_head > 1024 || hp->n_head_kv < 1 || hp->n_ff < 1 || hp->n_ff > (1 << 18) || hp->n_ctx_train < 1 ||
        hp->n_ctx_train > (1 << 24))
        return kg_err(KG_ERR_FORMAT,
                      "%s: hyperparameters out of range (layers %lld, embedding %lld, heads %lld, KV heads %lld, "
                      "feed-forward %lld, context %lld)",
                      c->file, (long long)hp->n_layer, (long long)hp->n_embd, (long long)hp->n_head,
                      (long long)hp->n_head_kv, (long long)hp->n_ff, (long long)hp->n_ctx_train);
    if (hp->n_embd % hp->n_head)
        return kg_err(KG_ERR_FORMAT, "%s: %s.attention.head_count = %lld does not divide %s.embedding_length = %lld",
                      c->file, c->arch, (long long)hp->n_head, c->arch, (long long)hp->n_embd);
    if (hp->n_head % hp->n_head_kv)
        return kg_err(KG_ERR_FORMAT, "%s: %s.attention.head_count_kv = %lld does not divide head_count = %lld", c->file,
                      c->arch, (long long)hp->n_head_kv, (long long)hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((st = get_i(c, "attention.key_length", &v, false, hp->head_dim))) return st;
    if (v != hp->head_dim)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: %s.attention.key_length = %lld differs from embedding/heads = %lld",
                      c->file, c->arch, (long long)v, (long long)hp->head_dim);
    if (hp->head_dim % 2 || hp->head_dim > 512)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: head size %lld (kgen supports even sizes up to 512)", c->file,
                      (long long)hp->head_dim);
    if (hp->n_embd % 32 || hp->n_ff % 32 || (hp->n_head * hp->head_dim) % 32)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: embedding %lld and feed-forward %lld must be multiples of 32", c->file,
                      (long long)hp->n_embd, (long long)hp->n_ff);
    if ((st = get_i(c, "rope.dimension_count", &hp->n_rot, false, hp->head_dim))) return st;
    if (hp->n_rot < 2 || hp->n_rot % 2 || hp->n_rot > hp->head_dim)
        return kg_err(KG_ERR_FORMAT, "%s: %s.rope.dimension_count = %lld (must be even, 2..%lld)", c->file, c->arch,
                      (long long)hp->n_rot, (long long)hp->head_dim);
    if ((st = get_f(c, "attention.layer_norm_rms_epsilon", &hp->eps, 1e-5)) ||
        (st = get_f(c, "rope.freq_base", &hp->rope_base, 10000.0)))
        return st;
    if (!(hp->eps > 0 && hp->eps < 1) || !(hp->rope_base > 1))
        return kg_err(KG_ERR_FORMAT, "%s: rms epsilon %g or rope base %g out of range", c->file, hp->eps, hp->rope_base);
    hp->rope_scale = 1.0;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", c->arch);
    kg_str stype;
    if (kg_gguf_find(c->g, key)) {
        if ((st = kg_gguf_get_str(c->g, key, &stype))) return kg_err(st, "%s: %s", c->file, kg_last_error());
        double factor = 1.0;
        if ((st = get_f(c, "rope.scaling.factor", &factor, 1.0))) return st;
        if (kg_str_eq(stype, "linear")) {
            if (!(factor > 0)) return kg_err(KG_ERR_FORMAT, "%s: %s.rope.scaling.factor = %g", c->file, c->arch, factor);
            hp->rope_scale = 1.0 / factor;
        } else if (!kg_str_eq(stype, "none")) {
            return kg_err(KG_ERR_UNSUPPORTED, "%s: %s = '%.*s' (kgen supports rope scaling 'none' and 'linear')", c->file,
                          key, (int)(stype.len > 32 ? 32 : stype.len), stype.ptr);
        }
    }
    hp->rope_mode = KGT_ROPE_NORM; /* llama: the converter permuted Q and K for adjacent pairs */
    hp->kv_type = KGT_F16;
    return KG_OK;
}

static kg_status build(ctx *c, gen_graph *gr)
{
    gen_hparams *hp = &gr->hp;
    const int64_t E = hp->n_embd, H = hp->n_head, Hkv = hp->n_head_kv, D = hp->head_dim, F = hp->n_ff;
    kg_status st;
    int emb, onorm, out;
    const kg_tensor *te = kg_gguf_find_tensor(c->g, "token_embd.weight");
    if (!te) return kg_err(KG_ERR_FORMAT, "%s: tensor token_embd.weight is missing", c->file);
    hp->n_vocab = (int64_t)te->ne[1];
    if (hp->n_vocab < 1 || hp->n_vocab > (1 << 24))
        return kg_err(KG_ERR_FORMAT, "%s: token_embd.weight has %lld rows (the vocabulary)", c->file, (long long)hp->n_vocab);
    if ((st = weight(c, gr, "token_embd.weight", E, hp->n_vocab, true, &emb))) return st;
    if ((st = weight(c, gr, "output_norm.weight", E, 0, false, &onorm))) return st;
    if (kg_gguf_find_tensor(c->g, "output.weight")) {
        if ((st = weight(c, gr, "output.weight", E, hp->n_vocab, true, &out))) return st;
    } else {
        out = emb; /* tied */
    }
    gr->ids = gen_graph_tensor(gr, "ids", GEN_T_INPUT, GEN_ACT_I32, 1, 1, true);
    gr->pos = gen_graph_tensor(gr, "pos", GEN_T_INPUT, GEN_ACT_I32, 1, 1, true);
    int x = gen_graph_tensor(gr, "x", GEN_T_ACT, GEN_ACT_F32, 1, E, true);
    if (gr->ids < 0 || gr->pos < 0 || x < 0) return KG_ERR_NOMEM;
    if (gen_graph_node(gr, GEN_OP_EMBED, -1, x, (int[]){emb, gr->ids}, 2) < 0) return KG_ERR_NOMEM;

    for (int l = 0; l < hp->n_layer; l++) {
        char nm[64];
        int w[9];
        static const char *const wn[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                          "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
        const int64_t ne0[9] = {E, E, E, E, H * D, E, E, E, F}, ne1[9] = {0, H * D, Hkv * D, Hkv * D, E, 0, F, F, E};
        for (int i = 0; i < 9; i++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, wn[i]);
            if ((st = weight(c, gr, nm, ne0[i], ne1[i], ne1[i] != 0, &w[i]))) return st;
        }
#define ACT(var, label, cols)                                                                       \
    snprintf(nm, sizeof nm, "L%d.%s", l, label);                                                    \
    int var = gen_graph_tensor(gr, nm, GEN_T_ACT, GEN_ACT_F32, 1, cols, true);                      \
    if (var < 0) return KG_ERR_NOMEM;
        ACT(h, "attn_in", E)
        ACT(q, "q", H * D)
        ACT(k, "k", Hkv * D)
        ACT(v, "v", Hkv * D)
        ACT(qr, "q_rope", H * D)
        ACT(kr, "k_rope", Hkv * D)
        ACT(a, "attn", H * D)
        ACT(o, "attn_out", E)
        ACT(h2, "ffn_in", E)
        ACT(g, "gate", F)
        ACT(u, "up", F)
        ACT(s, "swiglu", F)
        ACT(d, "ffn_out", E)
#undef ACT
        snprintf(nm, sizeof nm, "L%d.k_cache", l);
        int kc = gen_graph_tensor(gr, nm, GEN_T_KV, GEN_ACT_F32, 1, 1, false);
        snprintf(nm, sizeof nm, "L%d.v_cache", l);
        int vc = gen_graph_tensor(gr, nm, GEN_T_KV, GEN_ACT_F32, 1, 1, false);
        if (kc < 0 || vc < 0) return KG_ERR_NOMEM;
        gr->t[kc].kv_layer = gr->t[vc].kv_layer = l;
        gr->t[vc].kv_is_v = true;
        struct { gen_opk op; int out, n, in[5]; } ops[] = {
            {GEN_OP_RMSNORM, h, 2, {x, w[0]}},
            {GEN_OP_MATMUL, q, 2, {w[1], h}},
            {GEN_OP_MATMUL, k, 2, {w[2], h}},
            {GEN_OP_MATMUL, v, 2, {w[3], h}},
            {GEN_OP_ROPE, qr, 2, {q, gr->pos}},
            {GEN_OP_ROPE, kr, 2, {k, gr->pos}},
            {GEN_OP_KV_STORE, -1, 5, {kr, v, gr->pos, kc, vc}},
            {GEN_OP_ATTN, a, 3, {qr, kc, vc}},
            {GEN_OP_MATMUL, o, 2, {w[4], a}},
            {GEN_OP_ADD, x, 2, {x, o}},
            {GEN_OP_RMSNORM, h2, 2, {x, w[5]}},
            {GEN_OP_MATMUL, g, 2, {w[6], h2}},
            {GEN_OP_MATMUL, u, 2, {w[7], h2}},
            {GEN_OP_GLU, s, 2, {g, u}},
            {GEN_OP_MATMUL, d, 2, {w[8], s}},
            {GEN_OP_ADD, x, 2, {x, d}},
        };
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
            if (gen_graph_node(gr, ops[i].op, l, ops[i].out, ops[i].in, ops[i].n) < 0) return KG_ERR_NOMEM;
    }
    int hf = gen_graph_tensor(gr, "out_in", GEN_T_ACT, GEN_ACT_F32, 1, E, false);
    gr->logits = gen_graph_tensor(gr, "logits", GEN_T_ACT, GEN_ACT_F32, 1, hp->n_vocab, false);
    if (hf < 0 || gr->logits < 0) return KG_ERR_NOMEM;
    int nn = gen_graph_node(gr, GEN_OP_RMSNORM, -1, hf, (int[]){x, onorm}, 2);
    if (nn < 0) return KG_ERR_NOMEM;
    gr->n[nn].last_row = true;
    if (gen_graph_node(gr, GEN_OP_MATMUL, -1, gr->logits, (int[]){out, hf}, 2) < 0) return KG_ERR_NOMEM;
    return KG_OK;
}

kg_status gen_arch_build(const kg_gguf *g, int64_t n_batch, gen_graph *gr)
{
    memset(gr, 0, sizeof *gr);
    gr->g = g;
    ctx c = {.g = g, .file = kg_gguf_name(g)};
    kg_str a;
    if (!kg_gguf_find(g, "general.architecture"))
        return kg_err(KG_ERR_FORMAT, "%s: metadata key general.architecture is missing", c.file);
    kg_status st = kg_gguf_get_str(g, "general.architecture", &a);
    if (st != KG_OK) return kg_err(st, "%s: %s", c.file, kg_last_error());
    if (!kg_str_eq(a, "llama")) {
        char esc[64];
        kg_escape(esc, sizeof esc, a.ptr, a.len, 32);
        return kg_err(KG_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (supported: %s)", c.file, esc, SUPPORTED);
    }
    snprintf(c.arch, sizeof c.arch, "llama");
    if ((st = hparams(&c, &gr->hp))) return st;
    gr->hp.n_batch = n_batch;
    if ((st = build(&c, gr))) {
        gen_graph_free(gr);
        return st;
    }
    return KG_OK;
}
