/*
 * arch.c — architectures as data: one registry row per architecture
 * (general.architecture), the hyperparameters every row shares read and
 * checked once, and the graph built from shared blocks. The next
 * architecture of this family is a row, not a file.
 *
 *   x = embed(token_embd, ids) [* sqrt(n_embd): embd_scale]
 *   per layer l:
 *     h = rmsnorm(x) * attn_norm
 *     q, k, v = Wq h [+ bq], Wk h [+ bk], Wv h [+ bv]     (or rows of a fused
 *                                                          attn_qkv: Phi-3)
 *     [q, k = per-head rmsnorm(q) * attn_q_norm, ... * attn_k_norm: QK-norm]
 *     q, k = rope(q, k)   (adjacent pairs or NEOX halves; base per layer:
 *                          sliding-window layers may have their own; Llama
 *                          3.1+'s rope_freqs factors)
 *     cache[pos] = k, v;  a = attention(q, cache; scale, window of layer l)
 *     o = Wo a;  [o = rmsnorm(o) * post_attention_norm];  x = x + o
 *     h = rmsnorm(x) * ffn_norm
 *     d = Wdown act(Wgate h) * (Wup h)     (act: SiLU or tanh GELU; gate and
 *                                           up may be halves of a fused
 *                                           ffn_up: Phi-3)
 *     [d = rmsnorm(d) * post_ffw_norm];  x = x + d
 *   logits = Woutput (rmsnorm(x[last]) * output_norm)    (output.weight, or
 *            token_embd when tied) [softcapped: c tanh(logits / c)]
 *
 * Every hyperparameter and tensor is checked before anything is built; an
 * error names the source, the key or the tensor, and what is wrong.
 */
#include "arch_int.h"
#include "graph.h"
#include "internal.h"
#include "source.h"
#include "templates/cpu/kernel.h"
#include "templates/cpu/ops.h"

#include <math.h>
#include <string.h>

/* ─────────────── the registry ─────────────── */

enum {
    A_QK_NORM = 1,     /* attn_q_norm / attn_k_norm: per-head RMSNorm of q, k */
    A_POST_NORM = 2,   /* post_attention_norm, post_ffw_norm                  */
    A_QKV_BIAS = 4,    /* attn_{q,k,v}.bias required (optional for the rest)  */
    A_EMBD_SCALE = 8,  /* embeddings times sqrt(n_embd)                       */
    A_FUSED_QKV = 16,  /* one attn_qkv tensor: Q rows, then K, then V         */
    A_FUSED_UP = 32,   /* ffn_up holds gate (first n_ff rows) and up          */
    A_NO_SWA = 64,     /* ARCH.attention.sliding_window is not applied        */
};

struct arch_row {
    const char *name;      /* general.architecture                              */
    int64_t rope_mode;     /* KGT_ROPE_NORM (GGUF permuted Q/K rows) / _NEOX    */
    int64_t act;           /* KGT_GLU_SILU / KGT_GLU_GELU                      */
    unsigned flags;        /* A_*                                              */
    int64_t swa_pattern;   /* with a window: 0 every layer slides; n: layer l
                              slides unless l % n == n - 1                      */
    double rope_base_swa;  /* RoPE base of sliding layers when the file has no
                              ARCH.rope.freq_base_swa (0: the file's base)      */
};

/* Semantics as llama.cpp's llm_build_* for each (src/models/ in llama.cpp). */
static const arch_row ARCHS[] = {
    /* Llama 1/2/3.x, TinyLlama, SmolLM, Mistral-style GQA; rope_freqs when present */
    {"llama", KGT_ROPE_NORM, KGT_GLU_SILU, 0, 0, 0},
    {"qwen2", KGT_ROPE_NEOX, KGT_GLU_SILU, A_QKV_BIAS, 0, 0},
    {"qwen3", KGT_ROPE_NEOX, KGT_GLU_SILU, A_QK_NORM, 0, 0},
    /* layers 5, 11, 17, ... global (llama.cpp's swa pattern 6), the rest
     * slide with base 10000; the global ones use ARCH.rope.freq_base */
    {"gemma3", KGT_ROPE_NEOX, KGT_GLU_GELU, A_QK_NORM | A_POST_NORM | A_EMBD_SCALE, 6, 10000.0},
    /* Phi-3-mini-4k; llama.cpp disables Phi-3's sliding window (the
     * converters' value is unreliable), and so does kgen */
    {"phi3", KGT_ROPE_NEOX, KGT_GLU_SILU, A_FUSED_QKV | A_FUSED_UP | A_NO_SWA, 0, 0},
};
enum { N_ARCHS = sizeof ARCHS / sizeof ARCHS[0] };

const char *gen_arch_list(void)
{
    static char list[128];
    if (!list[0])
        for (int i = 0; i < N_ARCHS; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", ARCHS[i].name);
    return list;
}

/* ─────────────── shared helpers ─────────────── */


/* "ARCH.suffix" */
static const char *akey(const arch_ctx *c, const char *suffix, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s.%s", c->a->name, suffix);
    return buf;
}

static kg_status get_i(const arch_ctx *c, const char *suffix, bool required, int64_t dflt, int64_t *out)
{
    char k[96];
    return gen_src_i64(c->src, akey(c, suffix, k, sizeof k), required, dflt, out);
}

static kg_status get_f(const arch_ctx *c, const char *suffix, double dflt, double *out)
{
    char k[96];
    return gen_src_f64(c->src, akey(c, suffix, k, sizeof k), false, dflt, out);
}

/* The weight types the product and embedding kernels take: the table's
 * kernels column (kgen_types.h), listed for messages. */
static bool product_type(int t)
{
    const kg_type_info *ti = kg_type_get((uint32_t)t);
    return ti && ti->kernels;
}

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


/* The source tensor `name` checked: ne0 x ne1 (ne1 = 0: a vector of ne0),
 * its type one a kernel takes. NULL (message set) when it fails. */
const kg_tensor *arch_find_checked(const arch_ctx *c, const char *name, int64_t ne0, int64_t ne1, int use, kg_status *st)
{
    const kg_tensor *t = gen_src_tensor(c->src, name);
    *st = KG_OK;
    if (!t) {
        *st = kg_err(KG_ERR_FORMAT, "%s: tensor %s is missing", c->file, name);
        return NULL;
    }
    int64_t want1 = ne1 ? ne1 : 1;
    if (t->n_dims > 2 || (int64_t)t->ne[0] != ne0 || (int64_t)t->ne[1] != want1) {
        *st = kg_err(KG_ERR_FORMAT, "%s: tensor %s has shape %llu x %llu, but the hyperparameters say %lld x %lld", c->file,
                     name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (long long)ne0, (long long)want1);
        return NULL;
    }
    const kg_type_info *ti = kg_type_get(t->type);
    if (use == W_PRODUCT ? !product_type((int)t->type) : t->type != KG_TYPE_F32) {
        char list[256];
        *st = kg_err(KG_ERR_UNSUPPORTED, "%s: tensor %s has type %s, which kgen has no kernel for (%s%s)", c->file, name,
                     ti ? ti->name : "?", use == W_PRODUCT ? "products take " : "vectors (norms, biases) must be F32",
                     use == W_PRODUCT ? product_types(list, sizeof list) : "");
        return NULL;
    }
    if (ti && ne0 % ti->blck) {
        *st = kg_err(KG_ERR_FORMAT, "%s: tensor %s: rows of %lld elements are not whole %s blocks", c->file, name,
                     (long long)ne0, ti->name);
        return NULL;
    }
    return t;
}

/* A graph weight of one source tensor (or a view of one). Vectors (norms,
 * biases, factors) are N rows of one element, so biases concatenate by rows
 * like their products' weights (pass_fuse's qkv rule). */
int arch_add_weight(arch_ctx *c, const kg_tensor *t, const char *name, bool vector)
{
    int64_t rows = vector ? (int64_t)t->ne[0] : (int64_t)t->ne[1], cols = vector ? 1 : (int64_t)t->ne[0];
    int i = gen_graph_tensor(c->gr, name, GEN_T_WEIGHT, (int)t->type, rows, cols, false);
    if (i < 0) return -1;
    c->gr->t[i].n_parts = 1;
    c->gr->t[i].parts[0] = t;
    return i;
}

/* weight `name` (shape ne0 x ne1, or a vector of ne0 when ne1 = 0) into *id */
kg_status arch_weight(arch_ctx *c, const char *name, int64_t ne0, int64_t ne1, int *id)
{
    kg_status st;
    const kg_tensor *t = arch_find_checked(c, name, ne0, ne1, ne1 ? W_PRODUCT : W_VECTOR, &st);
    if (!t) return st;
    *id = arch_add_weight(c, t, name, ne1 == 0);
    return *id < 0 ? KG_ERR_NOMEM : KG_OK;
}

/* an optional vector: *id = -1 when the source has no such tensor */
kg_status arch_opt_vector(arch_ctx *c, const char *name, int64_t n, int *id)
{
    *id = -1;
    return gen_src_tensor(c->src, name) ? arch_weight(c, name, n, 0, id) : KG_OK;
}

/* rows [row0, row0 + rows) of the fused tensor t as a weight */
static kg_status rows_of(arch_ctx *c, const kg_tensor *t, int64_t row0, int64_t rows, const char *what, int *id)
{
    char nm[96];
    snprintf(nm, sizeof nm, "%s[%s]", t->name, what);
    const kg_tensor *v = gen_graph_view(c->gr, t, (uint64_t)row0, (uint64_t)rows, nm);
    if (!v) return KG_ERR_NOMEM;
    *id = arch_add_weight(c, v, nm, false);
    return *id < 0 ? KG_ERR_NOMEM : KG_OK;
}

/* ─────────────── hyperparameters ─────────────── */

static kg_status range(const arch_ctx *c, const char *suffix, int64_t v, int64_t lo, int64_t hi)
{
    if (v >= lo && v <= hi) return KG_OK;
    return kg_err(KG_ERR_FORMAT, "%s: %s.%s = %lld is out of range (%lld..%lld)", c->file, c->a->name, suffix,
                  (long long)v, (long long)lo, (long long)hi);
}

static kg_status rope_scaling(const arch_ctx *c, gen_hparams *hp)
{
    char key[96];
    kg_str stype;
    kg_status st = gen_src_str(c->src, akey(c, "rope.scaling.type", key, sizeof key), false, &stype);
    hp->rope_scale = 1.0;
    if (st || !stype.ptr || kg_str_eq(stype, "none")) return st;
    double factor;
    if ((st = get_f(c, "rope.scaling.factor", 1.0, &factor))) return st;
    if (kg_str_eq(stype, "linear")) {
        if (!(factor > 0)) return kg_err(KG_ERR_FORMAT, "%s: %s.rope.scaling.factor = %g", c->file, c->a->name, factor);
        hp->rope_scale = 1.0 / factor;
        return KG_OK;
    }
    return kg_err(KG_ERR_UNSUPPORTED, "%s: %s = '%.*s' (kgen supports rope scaling 'none' and 'linear')", c->file, key,
                  (int)(stype.len > 32 ? 32 : stype.len), stype.ptr);
}

static kg_status hparams(arch_ctx *c, gen_hparams *hp)
{
    const arch_row *a = c->a;
    kg_status st;
    snprintf(hp->arch, sizeof hp->arch, "%s", a->name);
    kg_str name;
    if (gen_src_str(c->src, "general.name", false, &name) == KG_OK && name.ptr)
        snprintf(hp->name, sizeof hp->name, "%.*s", (int)(name.len < 63 ? name.len : 63), name.ptr);
    if ((st = get_i(c, "block_count", true, 0, &hp->n_layer)) || (st = range(c, "block_count", hp->n_layer, 1, 1024)) ||
        (st = get_i(c, "embedding_length", true, 0, &hp->n_embd)) ||
        (st = range(c, "embedding_length", hp->n_embd, 1, 1 << 16)) ||
        (st = get_i(c, "attention.head_count", true, 0, &hp->n_head)) ||
        (st = range(c, "attention.head_count", hp->n_head, 1, 1024)) ||
        (st = get_i(c, "attention.head_count_kv", false, hp->n_head, &hp->n_head_kv)) ||
        (st = range(c, "attention.head_count_kv", hp->n_head_kv, 1, hp->n_head)) ||
        (st = get_i(c, "feed_forward_length", true, 0, &hp->n_ff)) ||
        (st = range(c, "feed_forward_length", hp->n_ff, 1, 1 << 18)) ||
        (st = get_i(c, "context_length", true, 0, &hp->n_ctx_train)) ||
        (st = range(c, "context_length", hp->n_ctx_train, 1, 1 << 24)))
        return st;
    if (hp->n_head % hp->n_head_kv)
        return kg_err(KG_ERR_FORMAT, "%s: %s.attention.head_count_kv = %lld does not divide head_count = %lld", c->file,
                      a->name, (long long)hp->n_head_kv, (long long)hp->n_head);
    /* the head size: attention.key_length, else embedding / heads */
    char key[96];
    if (!gen_src_find(c->src, akey(c, "attention.key_length", key, sizeof key)) && hp->n_embd % hp->n_head)
        return kg_err(KG_ERR_FORMAT, "%s: %s.attention.head_count = %lld does not divide %s.embedding_length = %lld",
                      c->file, a->name, (long long)hp->n_head, a->name, (long long)hp->n_embd);
    int64_t vlen;
    if ((st = get_i(c, "attention.key_length", false, hp->n_embd / hp->n_head, &hp->head_dim)) ||
        (st = range(c, "attention.key_length", hp->head_dim, 2, 512)) ||
        (st = get_i(c, "attention.value_length", false, hp->head_dim, &vlen)))
        return st;
    if (vlen != hp->head_dim)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: %s.attention.value_length = %lld differs from key_length = %lld", c->file,
                      a->name, (long long)vlen, (long long)hp->head_dim);
    if (hp->head_dim % 2)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: head size %lld (kgen supports even sizes up to 512)", c->file,
                      (long long)hp->head_dim);
    if (hp->n_embd % 32 || hp->n_ff % 32 || (hp->n_head * hp->head_dim) % 32)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: embedding %lld, feed-forward %lld and heads x head size %lld must be multiples of 32",
                      c->file, (long long)hp->n_embd, (long long)hp->n_ff, (long long)(hp->n_head * hp->head_dim));
    if ((st = get_i(c, "rope.dimension_count", false, hp->head_dim, &hp->n_rot))) return st;
    if (hp->n_rot < 2 || hp->n_rot % 2 || hp->n_rot > hp->head_dim)
        return kg_err(KG_ERR_FORMAT, "%s: %s.rope.dimension_count = %lld (must be even, 2..%lld)", c->file, a->name,
                      (long long)hp->n_rot, (long long)hp->head_dim);
    if ((st = get_f(c, "attention.layer_norm_rms_epsilon", 1e-5, &hp->eps)) ||
        (st = get_f(c, "rope.freq_base", 10000.0, &hp->rope_base)) ||
        (st = get_f(c, "rope.freq_base_swa", a->rope_base_swa ? a->rope_base_swa : hp->rope_base, &hp->rope_base_swa)))
        return st;
    if (!(hp->eps > 0 && hp->eps < 1))
        return kg_err(KG_ERR_FORMAT, "%s: %s.attention.layer_norm_rms_epsilon = %g is out of range", c->file, a->name,
                      hp->eps);
    if (!(hp->rope_base > 1) || !(hp->rope_base_swa > 1))
        return kg_err(KG_ERR_FORMAT, "%s: %s.rope.freq_base = %g (and %g on sliding layers) is out of range", c->file,
                      a->name, hp->rope_base, hp->rope_base_swa);
    if ((st = rope_scaling(c, hp))) return st;
    /* sliding window */
    hp->n_swa = 0;
    hp->swa_pattern = a->swa_pattern;
    if (!(a->flags & A_NO_SWA)) {
        if ((st = get_i(c, "attention.sliding_window", false, 0, &hp->n_swa))) return st;
        if (hp->n_swa < 0 || hp->n_swa > hp->n_ctx_train)
            return kg_err(KG_ERR_FORMAT, "%s: %s.attention.sliding_window = %lld is outside 0..%s.context_length (%lld)",
                          c->file, a->name, (long long)hp->n_swa, a->name, (long long)hp->n_ctx_train);
    }
    /* softcaps: the final logits' is supported, the attention's (Gemma 2) not */
    double cap;
    if ((st = get_f(c, "attn_logit_softcapping", 0, &cap))) return st;
    if (cap != 0)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: %s.attn_logit_softcapping = %g: attention softcapping is not supported",
                      c->file, a->name, cap);
    if ((st = get_f(c, "final_logit_softcapping", 0, &hp->logit_softcap))) return st;
    if (hp->logit_softcap < 0 || !isfinite(hp->logit_softcap))
        return kg_err(KG_ERR_FORMAT, "%s: %s.final_logit_softcapping = %g", c->file, a->name, hp->logit_softcap);
    /* what a row of this registry cannot compute, refused rather than ignored */
    int64_t experts;
    if ((st = get_i(c, "expert_count", false, 0, &experts))) return st;
    if (experts > 0)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: %s.expert_count = %lld: mixture-of-experts models are not supported",
                      c->file, a->name, (long long)experts);
    static const char *const unsupported[] = {"rope_factors_long.weight", "rope_factors_short.weight"};
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
        if (gen_src_tensor(c->src, unsupported[i]))
            return kg_err(KG_ERR_UNSUPPORTED, "%s: tensor %s: LongRoPE (long-context RoPE factors) is not supported",
                          c->file, unsupported[i]);
    hp->embd_scale = a->flags & A_EMBD_SCALE ? sqrt((double)hp->n_embd) : 1.0;
    hp->attn_scale = 0; /* 1/sqrt(head_dim): Gemma 3's query_pre_attn_scalar is the head size */
    hp->act = a->act;
    hp->rope_mode = a->rope_mode;
    hp->kv_type = KGT_F16;
    return KG_OK;
}

/* ─────────────── blocks ─────────────── */

/* an activation tensor "L<l>.<label>" of cols columns per token */
int arch_act(arch_ctx *c, int l, const char *label, int64_t cols)
{
    char nm[64];
    snprintf(nm, sizeof nm, "L%d.%s", l, label);
    return gen_graph_tensor(c->gr, nm, GEN_T_ACT, GEN_ACT_F32, 1, cols, true);
}


/* y = rmsnorm(x) * gamma; groups: 0 over the whole row, else per head
 * (QK-norm: one norm per head, even when there is one head) */
static int norm(arch_ctx *c, int l, int x, int gamma, int y, int64_t groups)
{
    int n = NODE(GEN_OP_RMSNORM, l, y, x, gamma);
    if (n < 0) return -1;
    c->gr->n[n].groups = groups;
    c->gr->n[n].eps = c->gr->hp.eps;
    return n;
}

/* y = W x [+ b] */
int arch_product(arch_ctx *c, int l, int w, int x, int b, int y)
{
    int n = NODE(GEN_OP_MATMUL, l, y, w, x, -1, -1, b);
    if (n >= 0 && b >= 0) c->gr->n[n].flags |= KGT_EPI_BIAS;
    return n;
}

/* x = x + [rmsnorm(y) * post] */
static kg_status residual(arch_ctx *c, int l, int x, int y, int post, const char *label)
{
    if (post >= 0) {
        int yn = arch_act(c, l, label, c->gr->t[x].cols);
        TRY(yn);
        TRY(norm(c, l, y, post, yn, 0));
        y = yn;
    }
    TRY(NODE(GEN_OP_ADD, l, x, x, y));
    return KG_OK;
}

static bool sliding(const gen_hparams *hp, int l)
{
    return hp->n_swa > 0 && (hp->swa_pattern == 0 || l % hp->swa_pattern != hp->swa_pattern - 1);
}

static kg_status attention_block(arch_ctx *c, int l, int x, int ff)
{
    gen_hparams *hp = &c->gr->hp;
    const unsigned f = c->a->flags;
    const int64_t E = hp->n_embd, D = hp->head_dim, NQ = hp->n_head * D, NK = hp->n_head_kv * D;
    char nm[96];
    kg_status st;
    int wn = -1, wq = -1, wk = -1, wv = -1, wo = -1, bq = -1, bk = -1, bv = -1, bo = -1, qn = -1, kn = -1, post = -1;
#define W(var, suffix, ne0, ne1) \
    do { \
        snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix); \
        if ((st = arch_weight(c, nm, ne0, ne1, &var))) return st; \
    } while (0)
#define OPT(var, suffix, n) \
    do { \
        snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix); \
        if ((st = arch_opt_vector(c, nm, n, &var))) return st; \
    } while (0)
    W(wn, "attn_norm.weight", E, 0);
    if (f & A_FUSED_QKV) {
        snprintf(nm, sizeof nm, "blk.%d.attn_qkv.weight", l);
        const kg_tensor *t = arch_find_checked(c, nm, E, NQ + 2 * NK, W_PRODUCT, &st);
        if (!t || (st = rows_of(c, t, 0, NQ, "q", &wq)) || (st = rows_of(c, t, NQ, NK, "k", &wk)) ||
            (st = rows_of(c, t, NQ + NK, NK, "v", &wv)))
            return st;
    } else {
        W(wq, "attn_q.weight", E, NQ);
        W(wk, "attn_k.weight", E, NK);
        W(wv, "attn_v.weight", E, NK);
    }
    if (f & A_QKV_BIAS) {
        W(bq, "attn_q.bias", NQ, 0);
        W(bk, "attn_k.bias", NK, 0);
        W(bv, "attn_v.bias", NK, 0);
    } else {
        OPT(bq, "attn_q.bias", NQ);
        OPT(bk, "attn_k.bias", NK);
        OPT(bv, "attn_v.bias", NK);
    }
    if (f & A_QK_NORM) {
        W(qn, "attn_q_norm.weight", D, 0);
        W(kn, "attn_k_norm.weight", D, 0);
    }
    W(wo, "attn_output.weight", NQ, E);
    OPT(bo, "attn_output.bias", E);
    if (f & A_POST_NORM) W(post, "post_attention_norm.weight", E, 0);

    int h = arch_act(c, l, "attn_in", E), q = arch_act(c, l, "q", NQ), k = arch_act(c, l, "k", NK), v = arch_act(c, l, "v", NK);
    int qr = arch_act(c, l, "q_rope", NQ), kr = arch_act(c, l, "k_rope", NK), a = arch_act(c, l, "attn", NQ), o = arch_act(c, l, "attn_out", E);
    TRY(h); TRY(q); TRY(k); TRY(v); TRY(qr); TRY(kr); TRY(a); TRY(o);
    snprintf(nm, sizeof nm, "L%d.k_cache", l);
    int kc = gen_graph_tensor(c->gr, nm, GEN_T_KV, GEN_ACT_F32, 1, 1, false);
    snprintf(nm, sizeof nm, "L%d.v_cache", l);
    int vc = gen_graph_tensor(c->gr, nm, GEN_T_KV, GEN_ACT_F32, 1, 1, false);
    TRY(kc); TRY(vc);
    c->gr->t[kc].kv_layer = c->gr->t[vc].kv_layer = l;
    c->gr->t[vc].kv_is_v = true;

    TRY(norm(c, l, x, wn, h, 0));
    TRY(arch_product(c, l, wq, h, bq, q));
    TRY(arch_product(c, l, wk, h, bk, k));
    TRY(arch_product(c, l, wv, h, bv, v));
    if (qn >= 0) {
        int q2 = arch_act(c, l, "q_norm", NQ), k2 = arch_act(c, l, "k_norm", NK);
        TRY(q2); TRY(k2);
        TRY(norm(c, l, q, qn, q2, hp->n_head));
        TRY(norm(c, l, k, kn, k2, hp->n_head_kv));
        q = q2, k = k2;
    }
    const bool swa = sliding(hp, l);
    for (int i = 0; i < 2; i++) {
        int n = NODE(GEN_OP_ROPE, l, i ? kr : qr, i ? k : q, c->gr->pos, ff);
        TRY(n);
        c->gr->n[n].rope_base = swa ? hp->rope_base_swa : hp->rope_base;
        c->gr->n[n].rope_scale = swa ? 1.0 : hp->rope_scale;
    }
    TRY(NODE(GEN_OP_KV_STORE, l, -1, kr, v, c->gr->pos, kc, vc));
    /* decode attention's scratch (its chunks' parts): live at this node only */
    snprintf(nm, sizeof nm, "L%d.attn_scratch", l);
    int sc = gen_graph_tensor(c->gr, nm, GEN_T_ACT, GEN_ACT_F32, 1, kgt_attn_scratch_floats(hp->n_head, hp->head_dim),
                              false);
    TRY(sc);
    int n = NODE(GEN_OP_ATTN, l, a, qr, kc, vc, sc);
    TRY(n);
    c->gr->n[n].scale = hp->attn_scale;
    c->gr->n[n].window = swa ? hp->n_swa : 0;
    TRY(arch_product(c, l, wo, a, bo, o));
    return residual(c, l, x, o, post, "attn_post");
#undef W
#undef OPT
}

static kg_status ffn_block(arch_ctx *c, int l, int x)
{
    gen_hparams *hp = &c->gr->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff;
    char nm[96];
    kg_status st;
    int wn = -1, wg = -1, wu = -1, wd = -1, post = -1;
#define W(var, suffix, ne0, ne1) \
    do { \
        snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix); \
        if ((st = arch_weight(c, nm, ne0, ne1, &var))) return st; \
    } while (0)
    W(wn, "ffn_norm.weight", E, 0);
    if (c->a->flags & A_FUSED_UP) {
        snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l);
        const kg_tensor *t = arch_find_checked(c, nm, E, 2 * F, W_PRODUCT, &st);
        if (!t || (st = rows_of(c, t, 0, F, "gate", &wg)) || (st = rows_of(c, t, F, F, "up", &wu))) return st;
    } else {
        W(wg, "ffn_gate.weight", E, F);
        W(wu, "ffn_up.weight", E, F);
    }
    W(wd, "ffn_down.weight", F, E);
    if (c->a->flags & A_POST_NORM) W(post, "post_ffw_norm.weight", E, 0);
#undef W
    int h = arch_act(c, l, "ffn_in", E), g = arch_act(c, l, "gate", F), u = arch_act(c, l, "up", F), s = arch_act(c, l, "glu", F),
        d = arch_act(c, l, "ffn_out", E);
    TRY(h); TRY(g); TRY(u); TRY(s); TRY(d);
    TRY(norm(c, l, x, wn, h, 0));
    TRY(arch_product(c, l, wg, h, -1, g));
    TRY(arch_product(c, l, wu, h, -1, u));
    int n = NODE(GEN_OP_GLU, l, s, g, u);
    TRY(n);
    c->gr->n[n].flags = hp->act;
    TRY(arch_product(c, l, wd, s, -1, d));
    return residual(c, l, x, d, post, "ffn_post");
}

static kg_status build(arch_ctx *c)
{
    gen_graph *gr = c->gr;
    gen_hparams *hp = &gr->hp;
    const int64_t E = hp->n_embd;
    kg_status st;
    int emb = -1, onorm = -1, out = -1, ff = -1;
    const kg_tensor *te = gen_src_tensor(c->src, "token_embd.weight");
    if (!te) return kg_err(KG_ERR_FORMAT, "%s: tensor token_embd.weight is missing", c->file);
    hp->n_vocab = (int64_t)te->ne[1];
    if (hp->n_vocab < 1 || hp->n_vocab > (1 << 24))
        return kg_err(KG_ERR_FORMAT, "%s: token_embd.weight has %lld rows (the vocabulary)", c->file, (long long)hp->n_vocab);
    if ((st = arch_weight(c, "token_embd.weight", E, hp->n_vocab, &emb)) || (st = arch_weight(c, "output_norm.weight", E, 0, &onorm)))
        return st;
    if (gen_src_tensor(c->src, "output.weight")) {
        if ((st = arch_weight(c, "output.weight", E, hp->n_vocab, &out))) return st;
    } else {
        out = emb; /* tied */
    }
    if ((st = arch_opt_vector(c, "rope_freqs.weight", hp->n_rot / 2, &ff))) return st;
    gr->ids = gen_graph_tensor(gr, "ids", GEN_T_INPUT, GEN_ACT_I32, 1, 1, true);
    gr->pos = gen_graph_tensor(gr, "pos", GEN_T_INPUT, GEN_ACT_I32, 1, 1, true);
    int x = gen_graph_tensor(gr, "x", GEN_T_ACT, GEN_ACT_F32, 1, E, true);
    TRY(gr->ids); TRY(gr->pos); TRY(x);
    int n = NODE(GEN_OP_EMBED, -1, x, emb, gr->ids);
    TRY(n);
    gr->n[n].scale = hp->embd_scale;
    for (int l = 0; l < hp->n_layer; l++)
        if ((st = attention_block(c, l, x, ff)) || (st = ffn_block(c, l, x))) return st;
    int hf = gen_graph_tensor(gr, "out_in", GEN_T_ACT, GEN_ACT_F32, 1, E, false);
    gr->logits = gen_graph_tensor(gr, "logits", GEN_T_ACT, GEN_ACT_F32, 1, hp->n_vocab, false);
    TRY(hf); TRY(gr->logits);
    n = norm(c, -1, x, onorm, hf, 0);
    TRY(n);
    gr->n[n].last_row = true;
    TRY(arch_product(c, -1, out, hf, -1, gr->logits));
    if (hp->logit_softcap > 0) {
        n = NODE(GEN_OP_SOFTCAP, -1, gr->logits, gr->logits);
        TRY(n);
        gr->n[n].scale = hp->logit_softcap;
    }
    return KG_OK;
}

kg_status gen_arch_build(const gen_source *src, int64_t n_batch, gen_graph *gr)
{
    memset(gr, 0, sizeof *gr);
    gr->src = src;
    arch_ctx c = {.src = src, .file = src->name, .gr = gr};
    kg_str a;
    kg_status st = gen_src_str(src, "general.architecture", true, &a);
    if (st) return st;
    for (int i = 0; i < N_ARCHS && !c.a; i++)
        if (kg_str_eq(a, ARCHS[i].name)) c.a = &ARCHS[i];
    if (!c.a) {
        char esc[64];
        kg_escape(esc, sizeof esc, a.ptr, a.len, 32);
        return kg_err(KG_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (supported: %s)", c.file, esc,
                      gen_arch_list());
    }
    if ((st = hparams(&c, &gr->hp))) return st;
    gr->hp.n_batch = n_batch;
    if ((st = build(&c))) {
        gen_graph_free(gr);
        return st;
    }
    return KG_OK;
}
