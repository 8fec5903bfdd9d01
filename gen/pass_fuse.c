/*
 * pass_fuse.c — an optimization, never a requirement: the plain graph the
 * architecture builder makes has a kernel for every op (lowering is total),
 * and this pass only rewrites patterns into the fused operations the
 * templates implement, so that each fused op is one kernel and one pass
 * over memory. Each rule proves what it needs before it rewrites; what does
 * not match stays as it was and still runs.
 *
 *   qkv       Wq h, Wk h, Wv h (same h, each with or without a bias),
 *             per-head RMSNorms of q and k (QK-norm) or none, RoPE of q and
 *             k alike, the KV-cache store  ->  products into one QKV row +
 *             one rope_kv kernel (norms, factors and rotation in one pass).
 *             Weights of one type: one product over the concatenated
 *             weights (and biases; repacked by pass_repack); of mixed types:
 *             one product per weight, each writing its column slice of the
 *             QKV row (no barrier between them: lower.c)
 *   slices    three products of one input, each writing the next column slice
 *             of one row (an encoder's Q | K | V), weights of one type  ->
 *             one product over the concatenated weights and biases
 *   glu       act(Wg h) * (Wu h), both weights of one type  ->  one product
 *             with the SwiGLU or GeGLU epilogue
 *   residual  x + W a  ->  the product's residual epilogue, in place into x
 *   q8        a quantized-weight product reads int8 activations: its input's
 *             producer quantizes in its epilogue (norm, product) when every
 *             reader wants q8, else a quantize kernel is inserted
 *
 * Requires: a graph of live plain ops in execution order (the builder's),
 * tensors not yet placed (before pass_repack and pass_memplan). Invalidates:
 * node ids (dead nodes are dropped at the end), tensor liveness (recomputed
 * by pass_memplan); adds tensors (the QKV weight and row, q8 copies).
 * KGEN_NOFUSE (gen_model_opts.nofuse) leaves out rules by name, or all.
 */
#include "graph.h"
#include "internal.h"
#include "templates/cpu/kernel.h"
#include "templates/cpu/ops.h"

#include <string.h>

static int producer(const gen_graph *gr, int t, int before)
{
    for (int i = before - 1; i >= 0; i--)
        if (!gr->n[i].dead && gr->n[i].out == t) return i;
    return -1;
}

static bool only_reader(const gen_graph *gr, int t, int node)
{
    int r[2];
    return gen_graph_readers(gr, t, r, 2) == 1 && r[0] == node;
}

/* a plain product of x (no epilogue but a bias, no slice) */
static bool is_matmul_of(const gen_graph *gr, int i, int x)
{
    return i >= 0 && gr->n[i].op == GEN_OP_MATMUL && gr->n[i].in[1] == x && !(gr->n[i].flags & ~KGT_EPI_BIAS) &&
           gr->n[i].in[2] < 0 && gr->n[i].in[3] < 0 && !gr->n[i].out_col;
}

/* a block-quantized weight type (the table's block size) */
static bool quantized(int type)
{
    const kg_type_info *ti = kg_type_get((uint32_t)type);
    return ti && ti->blck > 1;
}

/* The product behind a RoPE node's input, directly or through a per-head
 * RMSNorm (QK-norm) read by nothing else: *norm is that norm node or -1. */
static int rope_product(const gen_graph *gr, int r, int *norm)
{
    int x = gr->n[r].in[0], p = producer(gr, x, r);
    *norm = -1;
    if (p >= 0 && gr->n[p].op == GEN_OP_RMSNORM && !gr->n[p].flags && gr->n[p].groups > 0 && only_reader(gr, x, r)) {
        *norm = p;
        x = gr->n[p].in[0];
        if (!only_reader(gr, x, p)) return -1;
        p = producer(gr, x, *norm);
    }
    return p >= 0 && gr->n[p].op == GEN_OP_MATMUL ? p : -1;
}

/* two RoPE nodes that rotate alike (positions, base, scale, factors) */
static bool same_rope(const gen_node *a, const gen_node *b)
{
    return a->in[1] == b->in[1] && a->in[2] == b->in[2] && a->rope_base == b->rope_base && a->rope_scale == b->rope_scale;
}

/* a weight of the rows of parts w[0..2] (each one part) concatenated */
static int concat3(gen_graph *gr, const char *name, const int w[3])
{
    int64_t rows = gr->t[w[0]].rows + gr->t[w[1]].rows + gr->t[w[2]].rows;
    int id = gen_graph_tensor(gr, name, GEN_T_WEIGHT, gr->t[w[0]].type, rows, gr->t[w[0]].cols, false);
    if (id < 0) return -1;
    gr->t[id].n_parts = 3;
    for (int i = 0; i < 3; i++) gr->t[id].parts[i] = gr->t[w[i]].parts[0];
    return id;
}

/* Wq h [+bq], Wk h [+bk], Wv h [+bv], [per-head norms of q and k], RoPE of
 * q and k alike, the KV-cache store  ->  QKV products + rope_kv */
static kg_status fuse_qkv(gen_graph *gr, int s)
{
    gen_node *st = &gr->n[s];
    int kr = st->in[0], v = st->in[1], pos = st->in[2];
    int rk = producer(gr, kr, s), mv = producer(gr, v, s), nk, nq = -1;
    if (rk < 0 || gr->n[rk].op != GEN_OP_ROPE || gr->n[rk].in[1] != pos) return KG_OK;
    int mk = rope_product(gr, rk, &nk);
    if (mk < 0 || mv < 0) return KG_OK;
    int h = gr->n[mk].in[1];
    if (!is_matmul_of(gr, mk, h) || !is_matmul_of(gr, mv, h)) return KG_OK;
    /* the rope of q: rotating alike a product of the same h */
    int rq = -1, mq = -1;
    for (int i = 0; i < s && rq < 0; i++) {
        if (gr->n[i].dead || gr->n[i].op != GEN_OP_ROPE || i == rk || !same_rope(&gr->n[i], &gr->n[rk])) continue;
        int p = rope_product(gr, i, &nq);
        if (is_matmul_of(gr, p, h) && p != mk && p != mv) rq = i, mq = p;
    }
    if (rq < 0 || (nq < 0) != (nk < 0)) return KG_OK;
    if (nq >= 0 && gr->n[nq].eps != gr->n[nk].eps) return KG_OK;
    int wq = gr->n[mq].in[0], wk = gr->n[mk].in[0], wv = gr->n[mv].in[0];
    int q_in = nq >= 0 ? gr->n[nq].out : gr->n[mq].out, k_in = gr->n[rk].in[0];
    if (gr->t[wq].n_parts != 1 || gr->t[wk].n_parts != 1 || gr->t[wv].n_parts != 1 || !only_reader(gr, k_in, rk) ||
        !only_reader(gr, kr, s) || !only_reader(gr, v, s) || !only_reader(gr, q_in, rq) ||
        (nq >= 0 && !only_reader(gr, gr->n[mq].out, nq)) || gr->t[gr->n[rq].out].kind != GEN_T_ACT)
        return KG_OK;
    /* the products must come before the rope of q, where rope_kv will read
     * their row (the rewrite moves no node) */
    if (mq > rq || mk > rq || mv > rq) return KG_OK;
    const gen_hparams *hp = &gr->hp;
    const int64_t n_q = gr->t[wq].rows, n_k = gr->t[wk].rows, n_v = gr->t[wv].rows;
    if (n_q != hp->n_head * hp->head_dim || n_k != hp->n_head_kv * hp->head_dim || n_v != n_k) return KG_OK;
    char nm[64];
    snprintf(nm, sizeof nm, "L%d.qkv", st->layer);
    int qkv = gen_graph_tensor(gr, nm, GEN_T_ACT, GEN_ACT_F32, 1, n_q + n_k + n_v, true);
    if (qkv < 0) return KG_ERR_NOMEM;
    const int b[3] = {gr->n[mq].in[4], gr->n[mk].in[4], gr->n[mv].in[4]};
    const bool biases = b[0] >= 0 && b[1] >= 0 && b[2] >= 0, none = b[0] < 0 && b[1] < 0 && b[2] < 0;
    const bool one_type =
        gr->t[wq].type == gr->t[wk].type && gr->t[wq].type == gr->t[wv].type && (biases || none) &&
        (none || (gr->t[b[0]].n_parts == 1 && gr->t[b[1]].n_parts == 1 && gr->t[b[2]].n_parts == 1));
    if (one_type) {
        snprintf(nm, sizeof nm, "L%d.attn_qkv", st->layer);
        int w = concat3(gr, nm, (int[]){wq, wk, wv});
        if (w < 0) return KG_ERR_NOMEM;
        if (biases) {
            snprintf(nm, sizeof nm, "L%d.attn_qkv.bias", st->layer);
            int bb = concat3(gr, nm, b);
            if (bb < 0) return KG_ERR_NOMEM;
            gr->n[mq].in[4] = bb;
        }
        gr->n[mq].in[0] = w;
        gr->n[mq].out = qkv;
        gr->n[mk].dead = gr->n[mv].dead = true;
    } else { /* each product writes its slice of the row, with its own bias */
        gr->n[mq].out = gr->n[mk].out = gr->n[mv].out = qkv;
        gr->n[mq].out_col = 0;
        gr->n[mk].out_col = n_q;
        gr->n[mv].out_col = n_q + n_k;
    }
    st = &gr->n[s]; /* (the tensor array may have moved; nodes did not) */
    int kc = st->in[3], vc = st->in[4], ff = gr->n[rk].in[2];
    gen_node *r = &gr->n[rq];
    r->op = GEN_OP_ROPE_KV;
    memset(r->in, -1, sizeof r->in);
    r->in[0] = qkv, r->in[1] = pos, r->in[2] = kc, r->in[3] = vc, r->in[4] = ff;
    if (nq >= 0) {
        r->in[5] = gr->n[nq].in[1], r->in[6] = gr->n[nk].in[1];
        r->eps = gr->n[nq].eps;
        gr->n[nq].dead = gr->n[nk].dead = true;
    }
    gr->n[rk].dead = st->dead = true;
    return KG_OK;
}

/* Products i, i+1, i+2 of one input into adjacent column slices of one
 * row, one weight type, biases alike  ->  one product (concatenated weights) */
static kg_status fuse_slices(gen_graph *gr, int i)
{
    if (i + 2 >= gr->nn) return KG_OK;
    const gen_node *a = &gr->n[i];
    if (a->out_col != 0 || a->in[2] >= 0 || a->in[3] >= 0 || (a->flags & ~KGT_EPI_BIAS)) return KG_OK;
    int w[3], b[3];
    int64_t col = 0;
    for (int j = 0; j < 3; j++) {
        const gen_node *m = &gr->n[i + j];
        if (m->dead || m->op != GEN_OP_MATMUL || m->in[1] != a->in[1] || m->out != a->out || m->out_col != col ||
            m->flags != a->flags || m->in[2] >= 0 || m->in[3] >= 0)
            return KG_OK;
        w[j] = m->in[0], b[j] = m->in[4];
        if (gr->t[w[j]].type != gr->t[w[0]].type || gr->t[w[j]].n_parts != 1 || (b[j] >= 0) != (b[0] >= 0) ||
            (b[j] >= 0 && gr->t[b[j]].n_parts != 1))
            return KG_OK;
        col += gr->t[w[j]].rows;
    }
    if (col != gr->t[a->out].cols) return KG_OK;
    char nm[64];
    snprintf(nm, sizeof nm, "L%d.w_slices", a->layer);
    int cw = concat3(gr, nm, w), cb = -1;
    if (cw < 0) return KG_ERR_NOMEM;
    if (b[0] >= 0) {
        snprintf(nm, sizeof nm, "L%d.b_slices", a->layer);
        if ((cb = concat3(gr, nm, b)) < 0) return KG_ERR_NOMEM;
    }
    gr->n[i].in[0] = cw, gr->n[i].in[4] = cb;
    gr->n[i + 1].dead = gr->n[i + 2].dead = true;
    return KG_OK;
}

/* act(Wg h) * (Wu h)  ->  Wg h with the SwiGLU or GeGLU epilogue over Wu */
static void fuse_glu(gen_graph *gr, int s)
{
    gen_node *n = &gr->n[s];
    if (n->flags != KGT_GLU_SILU && n->flags != KGT_GLU_GELU) return;
    int mg = producer(gr, n->in[0], s), mu = producer(gr, n->in[1], s);
    if (mg < 0 || mu < 0 || gr->n[mg].op != GEN_OP_MATMUL) return;
    int h = gr->n[mg].in[1];
    if (!is_matmul_of(gr, mg, h) || !is_matmul_of(gr, mu, h) || mg == mu || gr->n[mg].flags || gr->n[mu].flags)
        return; /* (the epilogue adds no bias) */
    if (gr->t[gr->n[mg].in[0]].type != gr->t[gr->n[mu].in[0]].type) return; /* mixed: products + glu kernel */
    if (!only_reader(gr, n->in[0], s) || !only_reader(gr, n->in[1], s)) return;
    int first = mg < mu ? mg : mu, other = mg < mu ? mu : mg;
    gen_node *m = &gr->n[first];
    m->in[0] = gr->n[mg].in[0];
    m->in[1] = h;
    m->in[2] = gr->n[mu].in[0];
    m->flags |= n->flags == KGT_GLU_GELU ? KGT_EPI_GEGLU : KGT_EPI_SWIGLU;
    m->out = n->out;
    gr->n[other].dead = n->dead = true;
}

/* x + W a  ->  W a with the residual epilogue, written into x */
static void fuse_residual(gen_graph *gr, int s)
{
    gen_node *n = &gr->n[s];
    for (int side = 0; side < 2; side++) {
        int y = n->in[side], resid = n->in[1 - side];
        int m = producer(gr, y, s);
        if (m < 0 || gr->n[m].op != GEN_OP_MATMUL || (gr->n[m].flags & (KGT_EPI_RESIDUAL | KGT_EPI_OUT_Q8)) ||
            gr->n[m].out_col || !only_reader(gr, y, s) || gr->t[resid].type != GEN_ACT_F32 || n->out != resid ||
            gr->t[y].cols != gr->t[resid].cols)
            continue;
        /* nothing between the product and the add may touch the residual */
        bool clear = true;
        for (int i = m + 1; i < s && clear; i++)
            if (!gr->n[i].dead && gr->n[i].out == resid) clear = false;
        if (!clear) continue;
        gr->n[m].in[3] = resid;
        gr->n[m].flags |= KGT_EPI_RESIDUAL;
        gr->n[m].out = resid;
        n->dead = true;
        return;
    }
}

/* Insert a node before `at` (node ids from `at` on shift by one). */
static int insert_node(gen_graph *gr, int at, gen_opk op, int layer, int out, int in0)
{
    int id = gen_graph_node(gr, op, layer, out, (int[]){in0}, 1);
    if (id < 0) return -1;
    gen_node tmp = gr->n[id];
    memmove(&gr->n[at + 1], &gr->n[at], (size_t)(id - at) * sizeof tmp);
    gr->n[at] = tmp;
    return at;
}

/* quantized-weight products read q8 activations */
static kg_status fuse_q8(gen_graph *gr)
{
    for (int i = 0; i < gr->nn; i++) {
        gen_node *m = &gr->n[i];
        if (m->dead || m->op != GEN_OP_MATMUL || !quantized(gr->t[m->in[0]].type)) continue;
        int x = m->in[1];
        if (gr->t[x].type == GEN_ACT_Q8) continue;
        int p = producer(gr, x, i);
        int rd[64], nr = gen_graph_readers(gr, x, rd, 64);
        int writers = 0; /* the epilogue retypes x: p must be its only writer */
        for (int j = 0; j < gr->nn; j++) writers += !gr->n[j].dead && gr->n[j].out == x;
        bool all_q = nr <= 64 && p >= 0 && writers == 1 && gr->t[x].kind == GEN_T_ACT;
        for (int r = 0; r < nr && all_q; r++)
            all_q = gr->n[rd[r]].op == GEN_OP_MATMUL && gr->n[rd[r]].in[1] == x && quantized(gr->t[gr->n[rd[r]].in[0]].type);
        bool epi = all_q && ((gr->n[p].op == GEN_OP_RMSNORM) ||
                             (gr->n[p].op == GEN_OP_MATMUL && !(gr->n[p].flags & KGT_EPI_RESIDUAL) &&
                              !gr->n[p].out_col && gr->t[x].cols % 32 == 0));
        if (epi) {
            gr->n[p].flags |= gr->n[p].op == GEN_OP_RMSNORM ? KGT_NORM_OUT_Q8 : KGT_EPI_OUT_Q8;
            gr->t[x].type = GEN_ACT_Q8;
            gr->t[x].row_bytes = gen_row_bytes(GEN_ACT_Q8, gr->t[x].cols);
            continue;
        }
        char nm[64];
        snprintf(nm, sizeof nm, "%.58s.q8", gr->t[x].name);
        int xq = gen_graph_tensor(gr, nm, GEN_T_ACT, GEN_ACT_Q8, 1, gr->t[x].cols, gr->t[x].per_token);
        if (xq < 0) return KG_ERR_NOMEM;
        int layer = gr->n[i].layer;
        if (insert_node(gr, i, GEN_OP_QUANTIZE, layer, xq, x) < 0) return KG_ERR_NOMEM;
        i++; /* the product moved one down */
        /* every later quantized product of x reads xq, up to the next write
         * of x (an encoder's in-place residual and norm): after it xq is stale */
        for (int j = i; j < gr->nn; j++) {
            if (gr->n[j].dead) continue;
            if (gr->n[j].op == GEN_OP_MATMUL && gr->n[j].in[1] == x && quantized(gr->t[gr->n[j].in[0]].type))
                gr->n[j].in[1] = xq;
            if (gr->n[j].out == x) break;
        }
    }
    return KG_OK;
}

/* is rule `name` left out by the nofuse list? */
static bool off(const char *nofuse, const char *name)
{
    if (!nofuse || !*nofuse || !strcmp(nofuse, "0")) return false;
    if (!strcmp(nofuse, "1") || !strcmp(nofuse, "all")) return true;
    size_t n = strlen(name);
    for (const char *p = nofuse; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return true;
        p += len + (e != NULL);
    }
    return false;
}

/* a valid KGEN_NOFUSE value? */
kg_status gen_fuse_check(const char *nofuse)
{
    if (!nofuse || !*nofuse || !strcmp(nofuse, "0") || !strcmp(nofuse, "1") || !strcmp(nofuse, "all")) return KG_OK;
    static const char *const rules[] = {"qkv", "slices", "glu", "residual", "q8"};
    for (const char *p = nofuse; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        bool known = false;
        for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++)
            known |= strlen(rules[r]) == len && !strncmp(p, rules[r], len);
        if (!known)
            return kg_err(KG_ERR_ARG, "KGEN_NOFUSE: '%.*s' is not a fusion rule (rules: qkv, slices, glu, residual, q8; or 'all')",
                          (int)(len > 32 ? 32 : len), p);
        p += len + (e != NULL);
    }
    return KG_OK;
}

kg_status gen_pass_fuse(gen_graph *gr, const char *nofuse)
{
    kg_status st = gen_fuse_check(nofuse);
    for (int i = 0; i < gr->nn && st == KG_OK && !off(nofuse, "qkv"); i++)
        if (!gr->n[i].dead && gr->n[i].op == GEN_OP_KV_STORE) st = fuse_qkv(gr, i);
    for (int i = 0; i < gr->nn && st == KG_OK && !off(nofuse, "slices"); i++)
        if (!gr->n[i].dead && gr->n[i].op == GEN_OP_MATMUL) st = fuse_slices(gr, i);
    for (int i = 0; i < gr->nn && st == KG_OK && !off(nofuse, "glu"); i++)
        if (!gr->n[i].dead && gr->n[i].op == GEN_OP_GLU) fuse_glu(gr, i);
    for (int i = 0; i < gr->nn && st == KG_OK && !off(nofuse, "residual"); i++)
        if (!gr->n[i].dead && gr->n[i].op == GEN_OP_ADD) fuse_residual(gr, i);
    if (st == KG_OK && !off(nofuse, "q8")) st = fuse_q8(gr);
    /* drop dead nodes */
    int w = 0;
    for (int i = 0; i < gr->nn; i++)
        if (!gr->n[i].dead) gr->n[w++] = gr->n[i];
    gr->nn = w;
    return st;
}
