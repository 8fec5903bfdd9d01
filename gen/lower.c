/*
 * lower.c — from the planned graph to kernel instances and the generated
 * entry points (runtime/model/desc.h):
 *
 *   void kgm_gen_decode(void *const base[4], void *pool, int ith, int nth)
 *   void kgm_gen_prefill(...)
 *
 * Each is a straight sequence, one call per graph node, of the node's
 * specialized kernel instance with its pointers computed from the bases and
 * constant offsets (weights and workspace planned by pass_repack and
 * pass_memplan; a layer's KV cache at slot * rt[KVBYTES]), and a barrier
 * where the next calls depend on it (set_syncs: independent calls, such as
 * the Q, K and V products of mixed types, run back to back). Decode binds
 * M = 1; prefill reads M from rt[M]. An encoder has only the prefill entry
 * (the decode one is empty), whose sequence count and length are run-time
 * values too (rt[NSEQ], rt[SEQLEN]). No interpreter, no dispatch: after O3
 * the entry points are ~10 instructions per kernel call.
 *
 * Requires: every node of an op with a kernel (the builder's plain ops and
 * pass_fuse's fused ones), weights and workspace placed. Invalidates
 * nothing (the graph is read only).
 */
#include "graph.h"
#include "internal.h"
#include "layout.h"
#include "lower.h"
#include "runtime/model/desc.h"
#include "templates/cpu/kernel.h"
#include "templates/cpu/ops.h"

#include <llvm-c/Core.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { B_NONE = -1 };

static bool same_inst(const gen_kinst *a, const gen_kinst *b)
{
    if (strcmp(a->tmpl, b->tmpl) || a->n_params != b->n_params) return false;
    for (int i = 0; i < a->n_params; i++) {
        const gen_param *x = &a->params[i], *y = &b->params[i];
        if (strcmp(x->name, y->name) || x->runtime != y->runtime || x->rt_index != y->rt_index || x->i != y->i ||
            memcmp(&x->f, &y->f, sizeof x->f))
            return false;
    }
    return true;
}

static void pi(gen_kinst *k, const char *name, int64_t v)
{
    gen_param *p = &k->params[k->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->i = v;
}

static void pf(gen_kinst *k, const char *name, double v)
{
    gen_param *p = &k->params[k->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->f = v;
}

static void prt(gen_kinst *k, const char *name, int rt)
{
    gen_param *p = &k->params[k->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->runtime = true;
    p->rt_index = rt;
}

/* M: 1 in decode or for one-row tensors, else rt[M] */
static void pm(gen_kinst *k, bool prefill, bool per_token)
{
    if (prefill && per_token) prt(k, "M", KGM_RT_M);
    else pi(k, "M", 1);
}

static gen_ptr ptr_of(const gen_graph *gr, int t, bool prefill, bool last_row)
{
    gen_ptr p = {.base = B_NONE};
    if (t < 0) return p;
    const gen_tensor *x = &gr->t[t];
    switch (x->kind) {
    case GEN_T_WEIGHT: p.base = KGM_BASE_W; p.off = (int64_t)x->off; break;
    case GEN_T_ACT:
    case GEN_T_INPUT: p.base = KGM_BASE_WS; p.off = (int64_t)x->off; break;
    case GEN_T_KV: p.base = KGM_BASE_KV; p.kv_slot = 2 * x->kv_layer + x->kv_is_v; break;
    }
    if (last_row && prefill && x->per_token) p.last_row_bytes = (int64_t)x->row_bytes;
    return p;
}

static gen_ptr rt_ptr(int index) { return (gen_ptr){.base = KGM_BASE_RT, .off = index * 8}; }

static kg_status add_call(gen_program *pg, int mode, const gen_kinst *k, const gen_ptr *p, int np,
                          const gen_call *phase)
{
    int idx = -1;
    for (int i = 0; i < pg->nk && idx < 0; i++)
        if (same_inst(&pg->k[i], k)) idx = i;
    if (idx < 0) {
        if (pg->nk == pg->capk) {
            int nc = pg->capk ? 2 * pg->capk : 32;
            void *q = realloc(pg->k, (size_t)nc * sizeof *pg->k);
            if (!q) return kg_err(KG_ERR_NOMEM, "out of memory");
            pg->k = q;
            pg->capk = nc;
        }
        idx = pg->nk++;
        pg->k[idx] = *k;
        snprintf(pg->k[idx].sym, sizeof pg->k[idx].sym, "kgm_k%d_%s", idx, k->tmpl);
    }
    if (pg->nc[mode] == pg->capc[mode]) {
        int nc = pg->capc[mode] ? 2 * pg->capc[mode] : 256;
        void *q = realloc(pg->c[mode], (size_t)nc * sizeof *pg->c[mode]);
        if (!q) return kg_err(KG_ERR_NOMEM, "out of memory");
        pg->c[mode] = q;
        pg->capc[mode] = nc;
    }
    gen_call *c = &pg->c[mode][pg->nc[mode]++];
    memset(c, 0, sizeof *c);
    c->inst = idx;
    c->np = np;
    for (int i = 0; i < np; i++) c->p[i] = p[i];
    c->phase_rt = phase ? phase->phase_rt : -1;
    if (phase) c->phase_above = phase->phase_above, c->phase_from = phase->phase_from, c->phase_to = phase->phase_to;
    return KG_OK;
}

static kg_status lower_node(const gen_graph *gr, gen_program *pg, int mode, int i)
{
    const gen_node *n = &gr->n[i];
    const gen_hparams *hp = &gr->hp;
    const bool pre = mode == GEN_MODE_PREFILL;
    gen_kinst k;
    memset(&k, 0, sizeof k);
    gen_ptr p[GEN_CALL_PTRS];
    for (int j = 0; j < GEN_CALL_PTRS; j++) p[j] = (gen_ptr){.base = B_NONE};
    int np = 0;
    gen_call phase = {.phase_rt = -1}; /* a second phase, if any (gen_call) */
    const gen_tensor *out = n->out >= 0 ? &gr->t[n->out] : NULL;
    switch (n->op) {
    case GEN_OP_EMBED:
        snprintf(k.tmpl, sizeof k.tmpl, "embed");
        pi(&k, "wtype", gr->t[n->in[0]].type);
        pm(&k, pre, true);
        pi(&k, "K", gr->t[n->in[0]].cols);
        if (n->scale != 0 && n->scale != 1) pf(&k, "scale", n->scale);
        if (gr->t[n->in[0]].layout != KGT_LAYOUT_ROWS) pi(&k, "layout", gr->t[n->in[0]].layout);
        p[0] = ptr_of(gr, n->in[0], pre, false), p[1] = ptr_of(gr, n->in[1], pre, false), p[2] = ptr_of(gr, n->out, pre, false);
        np = 3;
        if (n->in[2] >= 0) { /* encoders: + position row (of the row's sequence) + type row */
            prt(&k, "pos_len", KGM_RT_SEQLEN);
            if (gr->t[n->in[2]].type != KGT_F32) pi(&k, "pos_type", gr->t[n->in[2]].type);
            p[3] = ptr_of(gr, n->in[2], pre, false), p[4] = ptr_of(gr, n->in[3], pre, false);
            np = 5;
        }
        break;
    case GEN_OP_LAYERNORM:
        snprintf(k.tmpl, sizeof k.tmpl, "layernorm");
        pm(&k, pre, out->per_token);
        pi(&k, "K", out->cols);
        pf(&k, "eps", n->eps);
        pi(&k, "flags", n->flags);
        p[0] = ptr_of(gr, n->in[0], pre, false), p[1] = ptr_of(gr, n->in[1], pre, false);
        p[2] = ptr_of(gr, n->out, pre, false), p[3] = ptr_of(gr, n->in[2], pre, false);
        np = 4;
        break;
    case GEN_OP_ATTN_ENC:
        snprintf(k.tmpl, sizeof k.tmpl, "attn_enc");
        prt(&k, "B", KGM_RT_NSEQ);
        prt(&k, "L", KGM_RT_SEQLEN);
        pi(&k, "n_head", hp->n_head);
        pi(&k, "head_dim", hp->head_dim);
        if (n->scale != 0) pf(&k, "scale", n->scale);
        p[0] = ptr_of(gr, n->in[0], pre, false), p[1] = ptr_of(gr, n->in[1], pre, false), p[2] = ptr_of(gr, n->out, pre, false);
        np = 3;
        break;
    case GEN_OP_POOL:
        snprintf(k.tmpl, sizeof k.tmpl, "pool");
        prt(&k, "B", KGM_RT_NSEQ);
        prt(&k, "L", KGM_RT_SEQLEN);
        pi(&k, "K", gr->t[n->in[0]].cols);
        pi(&k, "mode", n->flags & (GEN_POOL_NORM - 1));
        pi(&k, "norm", (n->flags & GEN_POOL_NORM) != 0);
        p[0] = ptr_of(gr, n->in[0], pre, false), p[1] = ptr_of(gr, n->in[1], pre, false), p[2] = ptr_of(gr, n->out, pre, false);
        np = 3;
        break;
    case GEN_OP_RMSNORM:
        snprintf(k.tmpl, sizeof k.tmpl, "rmsnorm");
        pm(&k, pre, !n->last_row && out->per_token);
        pi(&k, "K", out->cols / (n->groups > 1 ? n->groups : 1));
        pf(&k, "eps", n->eps);
        pi(&k, "flags", n->flags);
        if (n->groups > 1) pi(&k, "G", n->groups);
        p[0] = ptr_of(gr, n->in[0], pre, n->last_row), p[1] = ptr_of(gr, n->in[1], pre, false);
        p[2] = ptr_of(gr, n->out, pre, false);
        np = 3;
        break;
    case GEN_OP_MATMUL: {
        const gen_tensor *w = &gr->t[n->in[0]], *x = &gr->t[n->in[1]];
        snprintf(k.tmpl, sizeof k.tmpl, "mm");
        pi(&k, "wtype", w->type);
        pi(&k, "act", x->type == GEN_ACT_Q8 ? KGT_ACT_Q8 : KGT_ACT_F32);
        pm(&k, pre, out->per_token);
        pi(&k, "N", w->rows);
        pi(&k, "K", w->cols);
        pi(&k, "flags", n->flags);
        if (n->out_col || out->cols != w->rows) pi(&k, "ldy", out->cols); /* a column slice of out */
        if (w->layout != KGT_LAYOUT_ROWS) pi(&k, "layout", w->layout);
        if (pre && out->per_token && ((w->layout == KGT_LAYOUT_X16 && gr->amx) || (w->layout == KGT_LAYOUT_X16B && gr->amx_bf16)))
            prt(&k, "amx", KGM_RT_AMX);
        /* one row (decode; prefill's last-row logits): the weights stream once */
        if (w->layout != KGT_LAYOUT_ROWS && gr->prefetch && !(pre && out->per_token)) pi(&k, "pf", gr->prefetch);
        /* prefill: activation rows per tile (x16 tiles), bound where not the
         * template's default (the knob table's, which test_knobs checks) */
        const int mt = gen_layout_float(w->type) ? gr->mtile : gr->mtile_q;
        if (w->layout != KGT_LAYOUT_ROWS && pre && out->per_token && mt != gen_knob_find("mm", "mt")->def)
            pi(&k, "mt", mt);
        p[0] = ptr_of(gr, n->in[0], pre, false), p[1] = ptr_of(gr, n->in[1], pre, false);
        p[2] = ptr_of(gr, n->out, pre, false), p[3] = ptr_of(gr, n->in[4], pre, false);
        p[4] = ptr_of(gr, n->in[3], pre, false), p[5] = ptr_of(gr, n->in[2], pre, false);
        p[2].off += (int64_t)gen_row_bytes(out->type, n->out_col);
        np = 6;
        break;
    }
    case GEN_OP_ROPE:
        snprintf(k.tmpl, sizeof k.tmpl, "rope");
        pm(&k, pre, true);
        pi(&k, "n_head", out->cols / hp->head_dim);
        pi(&k, "head_dim", hp->head_dim);
        pi(&k, "n_rot", hp->n_rot);
        pi(&k, "mode", hp->rope_mode);
        pf(&k, "freq_base", n->rope_base);
        pf(&k, "freq_scale", n->rope_scale);
        if (n->in[2] >= 0) pi(&k, "ff", 1);
        p[0] = ptr_of(gr, n->in[0], pre, false), p[1] = ptr_of(gr, n->in[1], pre, false);
        p[2] = ptr_of(gr, n->out, pre, false), p[3] = ptr_of(gr, n->in[2], pre, false);
        np = 4;
        break;
    case GEN_OP_KV_STORE:
        snprintf(k.tmpl, sizeof k.tmpl, "kv_store");
        pm(&k, pre, true);
        pi(&k, "n_head_kv", hp->n_head_kv);
        pi(&k, "head_dim", hp->head_dim);
        prt(&k, "n_ctx", KGM_RT_NCTX);
        pi(&k, "cache_type", hp->kv_type);
        for (int j = 0; j < 5; j++) p[j] = ptr_of(gr, n->in[j], pre, false);
        np = 5;
        break;
    case GEN_OP_ADD:
    case GEN_OP_GLU:
        snprintf(k.tmpl, sizeof k.tmpl, n->op == GEN_OP_ADD ? "add" : "glu");
        pm(&k, pre, out->per_token);
        pi(&k, "N", out->cols);
        if (n->op == GEN_OP_GLU) pi(&k, "act", n->flags);
        p[0] = ptr_of(gr, n->in[0], pre, false), p[1] = ptr_of(gr, n->in[1], pre, false);
        p[2] = ptr_of(gr, n->out, pre, false);
        np = 3;
        break;
    case GEN_OP_QUANTIZE:
        snprintf(k.tmpl, sizeof k.tmpl, "quantize");
        pm(&k, pre, out->per_token);
        pi(&k, "K", out->cols);
        p[0] = ptr_of(gr, n->in[0], pre, false), p[1] = ptr_of(gr, n->out, pre, false);
        np = 2;
        break;
    case GEN_OP_ROPE_KV:
        snprintf(k.tmpl, sizeof k.tmpl, "rope_kv");
        pm(&k, pre, true);
        pi(&k, "n_head", hp->n_head);
        pi(&k, "n_head_kv", hp->n_head_kv);
        pi(&k, "head_dim", hp->head_dim);
        pi(&k, "n_rot", hp->n_rot);
        pi(&k, "mode", hp->rope_mode);
        pf(&k, "freq_base", n->rope_base);
        pf(&k, "freq_scale", n->rope_scale);
        prt(&k, "n_ctx", KGM_RT_NCTX);
        pi(&k, "cache_type", hp->kv_type);
        if (n->in[4] >= 0) pi(&k, "ff", 1);
        if (n->in[5] >= 0) pi(&k, "qk_norm", 1), pf(&k, "eps", n->eps);
        p[0] = ptr_of(gr, n->in[0], pre, false), p[1] = ptr_of(gr, n->in[1], pre, false);
        p[2] = ptr_of(gr, n->out, pre, false), p[3] = ptr_of(gr, n->in[2], pre, false);
        p[4] = ptr_of(gr, n->in[3], pre, false);
        for (int j = 4; j < 7; j++) p[j + 1] = ptr_of(gr, n->in[j], pre, false);
        np = 8;
        break;
    case GEN_OP_ATTN:
        snprintf(k.tmpl, sizeof k.tmpl, pre ? "attn_prefill" : "attn_decode");
        if (pre) pm(&k, pre, true);
        pi(&k, "n_head", hp->n_head);
        pi(&k, "n_head_kv", hp->n_head_kv);
        pi(&k, "head_dim", hp->head_dim);
        prt(&k, "n_ctx", KGM_RT_NCTX);
        pi(&k, "cache_type", hp->kv_type);
        p[0] = ptr_of(gr, n->in[0], pre, false), p[1] = ptr_of(gr, n->in[1], pre, false);
        p[2] = ptr_of(gr, n->in[2], pre, false), p[3] = ptr_of(gr, n->out, pre, false);
        p[4] = rt_ptr(pre ? KGM_RT_POS0 : KGM_RT_NKV);
        if (!pre) { /* the scratch; past one chunk of positions, the merge (p[6] = the scratch) */
            p[5] = ptr_of(gr, n->in[3], pre, false);
            if (p[5].base != B_NONE)
                phase = (gen_call){.phase_rt = KGM_RT_NKV, .phase_above = KGT_ATTN_CHUNK, .phase_from = 5, .phase_to = 6};
        }
        if (n->scale != 0) pf(&k, "scale", n->scale);
        if (n->window) pi(&k, "window", n->window);
        np = pre ? 5 : 6;
        break;
    case GEN_OP_SOFTCAP:
        snprintf(k.tmpl, sizeof k.tmpl, "softcap");
        pm(&k, pre, out->per_token);
        pi(&k, "N", out->cols);
        pf(&k, "cap", n->scale);
        p[0] = ptr_of(gr, n->in[0], pre, false), p[1] = ptr_of(gr, n->out, pre, false);
        np = 2;
        break;
    default:
        return kg_err(KG_ERR_UNSUPPORTED, "internal: node %d (%s, layer %d) has no kernel", i, gen_op_name(n->op),
                      n->layer);
    }
    return add_call(pg, mode, &k, p, np, phase.phase_rt >= 0 ? &phase : NULL);
}

/* ─────────────── barriers ─────────────── */

/* What a node touches in memory: workspace byte ranges (activations,
 * inputs), KV-cache slots; columns [c0, c1) of a tensor's rows where it
 * writes a slice. Weights are read only and not listed. */
typedef struct {
    int base, t;
    int64_t lo, hi, c0, c1;
    bool w;
} gen_access;

enum { ACC_MAX = GEN_IN_MAX + 1 };

static int node_access(const gen_graph *gr, const gen_node *n, gen_access *a)
{
    int na = 0;
    for (int k = -1; k < GEN_IN_MAX; k++) {
        int t = k < 0 ? n->out : n->in[k];
        if (t < 0 || gr->t[t].kind == GEN_T_WEIGHT) continue;
        const gen_tensor *x = &gr->t[t];
        bool w = k < 0 || (n->op == GEN_OP_KV_STORE && k >= 3) || (n->op == GEN_OP_ROPE_KV && (k == 2 || k == 3)) ||
                 (n->op == GEN_OP_ATTN && k == 3);
        gen_access *c = &a[na++];
        c->t = t, c->w = w, c->c0 = 0, c->c1 = x->cols;
        if (k < 0 && n->op == GEN_OP_MATMUL && (n->out_col || gr->t[n->in[0]].rows != x->cols))
            c->c0 = n->out_col, c->c1 = n->out_col + gr->t[n->in[0]].rows;
        if (x->kind == GEN_T_KV) c->base = KGM_BASE_KV, c->lo = 2 * x->kv_layer + x->kv_is_v, c->hi = c->lo + 1;
        else c->base = KGM_BASE_WS, c->lo = (int64_t)x->off, c->hi = (int64_t)(x->off + x->size);
    }
    return na;
}

static bool conflict(const gen_access *a, const gen_access *b)
{
    if (!a->w && !b->w) return false;
    if (a->base != b->base || a->hi <= b->lo || b->hi <= a->lo) return false;
    return a->t != b->t || (a->c0 < b->c1 && b->c0 < a->c1); /* slices of one tensor: their columns */
}

/* gen_call.sync of every call: a barrier before the first call that
 * conflicts with one since the last barrier. */
static kg_status set_syncs(const gen_graph *gr, gen_program *pg)
{
    gen_access *open = malloc((size_t)(gr->nn + 1) * ACC_MAX * sizeof *open), a[ACC_MAX];
    if (!open) return kg_err(KG_ERR_NOMEM, "out of memory");
    for (int mode = 0; mode < GEN_MODES; mode++) {
        int no = 0;
        if (pg->nc[mode] == 0) continue; /* an encoder's decode entry: empty */
        for (int i = 0; i < gr->nn; i++) {
            int na = node_access(gr, &gr->n[i], a);
            bool dep = false;
            for (int j = 0; j < na && !dep; j++)
                for (int o = 0; o < no && !dep; o++) dep = conflict(&a[j], &open[o]);
            if (dep) {
                pg->c[mode][i - 1].sync = true;
                no = 0;
            }
            memcpy(open + no, a, (size_t)na * sizeof *a);
            no += na;
        }
    }
    free(open);
    return KG_OK;
}

kg_status gen_lower(const gen_graph *gr, gen_program *pg)
{
    memset(pg, 0, sizeof *pg);
    kg_status st = KG_OK;
    for (int mode = 0; mode < GEN_MODES && st == KG_OK; mode++)
        for (int i = 0; i < gr->nn && st == KG_OK && !(gr->hp.encoder && mode == GEN_MODE_DECODE); i++)
            st = lower_node(gr, pg, mode, i);
    if (st == KG_OK) st = set_syncs(gr, pg);
    if (st != KG_OK) gen_program_free(pg);
    return st;
}

void gen_program_free(gen_program *pg)
{
    free(pg->k);
    for (int m = 0; m < GEN_MODES; m++) free(pg->c[m]);
    memset(pg, 0, sizeof *pg);
}

/* ─────────────── the entry points, as LLVM IR ─────────────── */

static kg_status build_entry(LLVMContextRef ctx, LLVMModuleRef m, const gen_target *t, const gen_program *pg, int mode)
{
    LLVMTypeRef ptr = LLVMPointerTypeInContext(ctx, 0), i32 = LLVMInt32TypeInContext(ctx),
                i64 = LLVMInt64TypeInContext(ctx), i8 = LLVMInt8TypeInContext(ctx), vt = LLVMVoidTypeInContext(ctx);
    LLVMTypeRef eparams[4] = {ptr, ptr, i32, i32}, bparams[2] = {ptr, i32};
    LLVMTypeRef fty = LLVMFunctionType(vt, eparams, 4, 0), bty = LLVMFunctionType(vt, bparams, 2, 0);
    LLVMValueRef barrier = LLVMGetNamedFunction(m, "kgr_barrier");
    if (!barrier) barrier = LLVMAddFunction(m, "kgr_barrier", bty);
    LLVMValueRef f = LLVMAddFunction(m, mode == GEN_MODE_PREFILL ? "kgm_gen_prefill" : "kgm_gen_decode", fty);
    LLVMSetVisibility(f, LLVMHiddenVisibility);
    LLVMAddTargetDependentFunctionAttr(f, "target-cpu", t->cpu);
    LLVMAddTargetDependentFunctionAttr(f, "target-features", t->features);
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, f, "entry"));
    LLVMValueRef base = LLVMGetParam(f, 0), pool = LLVMGetParam(f, 1), ith = LLVMGetParam(f, 2), nth = LLVMGetParam(f, 3);
    LLVMValueRef pa = LLVMBuildArrayAlloca(b, ptr, LLVMConstInt(i32, GEN_CALL_PTRS, 0), "p");
    LLVMValueRef bases[KGM_BASES];
    for (int i = 0; i < KGM_BASES; i++) {
        LLVMValueRef idx = LLVMConstInt(i64, (unsigned long long)i, 0);
        bases[i] = LLVMBuildLoad2(b, ptr, LLVMBuildGEP2(b, ptr, base, &idx, 1, ""), "base");
    }
    LLVMValueRef rtv[KGM_RT_COUNT];
    for (int i = 0; i < KGM_RT_COUNT; i++) {
        LLVMValueRef idx = LLVMConstInt(i64, (unsigned long long)i, 0);
        rtv[i] = LLVMBuildLoad2(b, i64, LLVMBuildGEP2(b, i64, bases[KGM_BASE_RT], &idx, 1, ""), "rt");
    }
    LLVMValueRef null = LLVMConstNull(ptr);
    const gen_call *calls = pg->c[mode];
    for (int c = 0; c < pg->nc[mode]; c++) {
        const gen_kinst *k = &pg->k[calls[c].inst];
        LLVMValueRef kf = LLVMGetNamedFunction(m, k->sym);
        if (!kf) return kg_err(KG_ERR_UNSUPPORTED, "internal: instance %s missing from the module", k->sym);
        LLVMValueRef pv[GEN_CALL_PTRS];
        for (int j = 0; j < GEN_CALL_PTRS; j++) {
            const gen_ptr *gp = &calls[c].p[j];
            LLVMValueRef v = null;
            if (j < calls[c].np && gp->base != B_NONE) {
                LLVMValueRef off = LLVMConstInt(i64, (unsigned long long)gp->off, 1);
                if (gp->base == KGM_BASE_KV)
                    off = LLVMBuildMul(b, rtv[KGM_RT_KVBYTES], LLVMConstInt(i64, (unsigned long long)gp->kv_slot, 0), "");
                if (gp->last_row_bytes) {
                    LLVMValueRef mm1 = LLVMBuildSub(b, rtv[KGM_RT_M], LLVMConstInt(i64, 1, 0), "");
                    off = LLVMBuildAdd(b, off,
                                       LLVMBuildMul(b, mm1, LLVMConstInt(i64, (unsigned long long)gp->last_row_bytes, 0), ""), "");
                }
                v = LLVMBuildGEP2(b, i8, bases[gp->base], &off, 1, "");
            }
            LLVMValueRef idx = LLVMConstInt(i64, (unsigned long long)j, 0);
            LLVMBuildStore(b, v, LLVMBuildGEP2(b, ptr, pa, &idx, 1, ""));
            pv[j] = v;
        }
        LLVMValueRef args[4] = {pa, bases[KGM_BASE_RT], ith, nth};
        LLVMBuildCall2(b, LLVMGlobalGetValueType(kf), kf, args, 4, "");
        /* the call's second phase (gen_call.phase_rt): every thread takes
         * the same branch (rt is read only during a step). CPU only: the
         * CUDA launches (gen/cuda.c) are the calls themselves. */
        if (calls[c].phase_rt >= 0) {
            LLVMBasicBlockRef two = LLVMAppendBasicBlockInContext(ctx, f, "phase2"),
                              cont = LLVMAppendBasicBlockInContext(ctx, f, "phase_cont");
            LLVMValueRef split = LLVMBuildICmp(b, LLVMIntSGT, rtv[calls[c].phase_rt],
                                               LLVMConstInt(i64, (unsigned long long)calls[c].phase_above, 1), "");
            LLVMBuildCondBr(b, split, two, cont);
            LLVMPositionBuilderAtEnd(b, two);
            LLVMValueRef bargs[2] = {pool, ith}, idx = LLVMConstInt(i64, (unsigned long long)calls[c].phase_to, 0);
            LLVMBuildCall2(b, bty, barrier, bargs, 2, "");
            LLVMBuildStore(b, pv[calls[c].phase_from], LLVMBuildGEP2(b, ptr, pa, &idx, 1, ""));
            LLVMBuildCall2(b, LLVMGlobalGetValueType(kf), kf, args, 4, "");
            LLVMBuildBr(b, cont);
            LLVMPositionBuilderAtEnd(b, cont);
        }
        if (calls[c].sync && c + 1 < pg->nc[mode]) {
            LLVMValueRef bargs[2] = {pool, ith};
            LLVMBuildCall2(b, bty, barrier, bargs, 2, "");
        }
    }
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
    return KG_OK;
}

/* The module of one shard: its instances (hidden, never inlined into the
 * entry points: each is called from every layer) and, in shard 0, the entry
 * points, which declare the instances other shards define. */
typedef struct {
    const gen_program *pg;
    const int *mine; /* instance indices of this shard */
    int n;
    bool entries;
} shard;

static kg_status hook(void *vctx, void *vmod, const gen_target *t, void *arg)
{
    LLVMContextRef ctx = vctx;
    LLVMModuleRef m = vmod;
    const shard *sh = arg;
    const gen_program *pg = sh->pg;
    unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
    for (int i = 0; i < sh->n; i++) {
        LLVMValueRef f = LLVMGetNamedFunction(m, pg->k[sh->mine[i]].sym);
        if (!f) return kg_err(KG_ERR_UNSUPPORTED, "internal: instance %s missing", pg->k[sh->mine[i]].sym);
        LLVMSetVisibility(f, LLVMHiddenVisibility);
        LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(ctx, noinline, 0));
    }
    if (!sh->entries) return KG_OK;
    LLVMTypeRef ptr = LLVMPointerTypeInContext(ctx, 0), i32 = LLVMInt32TypeInContext(ctx);
    LLVMTypeRef kp[4] = {ptr, ptr, i32, i32};
    LLVMTypeRef kty = LLVMFunctionType(LLVMVoidTypeInContext(ctx), kp, 4, 0);
    for (int i = 0; i < pg->nk; i++)
        if (!LLVMGetNamedFunction(m, pg->k[i].sym)) {
            LLVMValueRef f = LLVMAddFunction(m, pg->k[i].sym, kty);
            LLVMSetVisibility(f, LLVMHiddenVisibility);
        }
    kg_status st = KG_OK;
    for (int mode = 0; mode < GEN_MODES && st == KG_OK; mode++) st = build_entry(ctx, m, t, pg, mode);
    return st;
}

typedef struct {
    shard sh;
    const gen_target *t;
    gen_kinst *k;
    void *obj;
    size_t size;
    kg_status st;
    char err[1024];
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    gen_hook h = {hook, &j->sh};
    j->st = gen_compile_with(j->t, j->k, j->sh.n, &h, GEN_EMIT_OBJ, &j->obj, &j->size);
    if (j->st) snprintf(j->err, sizeof j->err, "%s", kg_last_error()); /* (messages are per thread) */
    return NULL;
}

/* A rough cost of optimizing an instance, to balance the shards. */
static int cost(const gen_kinst *k)
{
    int c = !strcmp(k->tmpl, "mm") ? 4 : !strncmp(k->tmpl, "attn", 4) ? 3 : 1;
    for (int i = 0; i < k->n_params; i++) c += k->params[i].runtime; /* run-time trip counts: more versions */
    return c;
}

kg_status gen_program_compile(const gen_program *pg, const gen_target *t, int n_shards, void **objs, size_t *sizes)
{
    if (n_shards < 1) n_shards = 1;
    if (n_shards > GEN_MAX_SHARDS) n_shards = GEN_MAX_SHARDS;
    if (n_shards > pg->nk) n_shards = pg->nk > 0 ? pg->nk : 1;
    job jobs[GEN_MAX_SHARDS];
    int *idx = malloc((size_t)(pg->nk + 1) * sizeof *idx * 2);
    gen_kinst *ks = malloc((size_t)(pg->nk + 1) * sizeof *ks);
    if (!idx || !ks) {
        free(idx), free(ks);
        return kg_err(KG_ERR_NOMEM, "out of memory");
    }
    /* greedy: each instance (costliest first) to the least loaded shard */
    int load[GEN_MAX_SHARDS] = {0}, *order = idx + pg->nk + 1, *owner = idx;
    for (int i = 0; i < pg->nk; i++) order[i] = i;
    for (int i = 1; i < pg->nk; i++)
        for (int j = i; j > 0 && cost(&pg->k[order[j]]) > cost(&pg->k[order[j - 1]]); j--) {
            int x = order[j];
            order[j] = order[j - 1], order[j - 1] = x;
        }
    load[0] = 2; /* shard 0 also builds the entry points */
    for (int i = 0; i < pg->nk; i++) {
        int best = 0;
        for (int s = 1; s < n_shards; s++)
            if (load[s] < load[best]) best = s;
        owner[order[i]] = best;
        load[best] += cost(&pg->k[order[i]]);
    }
    /* instances grouped by shard, in program order within each */
    int at = 0;
    int *mine = malloc((size_t)(pg->nk + 1) * sizeof *mine);
    if (!mine) {
        free(idx), free(ks);
        return kg_err(KG_ERR_NOMEM, "out of memory");
    }
    pthread_t th[GEN_MAX_SHARDS];
    bool started[GEN_MAX_SHARDS] = {0};
    for (int s = 0; s < n_shards; s++) {
        job *j = &jobs[s];
        memset(j, 0, sizeof *j);
        j->t = t;
        j->k = ks + at;
        j->sh = (shard){pg, mine + at, 0, s == 0};
        for (int i = 0; i < pg->nk; i++)
            if (owner[i] == s) {
                mine[at] = i;
                ks[at++] = pg->k[i];
                j->sh.n++;
            }
    }
    for (int s = 1; s < n_shards; s++) started[s] = pthread_create(&th[s], NULL, run_job, &jobs[s]) == 0;
    run_job(&jobs[0]);
    for (int s = 1; s < n_shards; s++) {
        if (started[s]) pthread_join(th[s], NULL);
        else run_job(&jobs[s]);
    }
    kg_status st = KG_OK;
    for (int s = 0; s < n_shards; s++) {
        if (jobs[s].st && st == KG_OK) st = kg_err(jobs[s].st, "%s", jobs[s].err);
        objs[s] = jobs[s].obj;
        sizes[s] = jobs[s].size;
    }
    for (int s = n_shards; s < GEN_MAX_SHARDS; s++) objs[s] = NULL, sizes[s] = 0;
    if (st)
        for (int s = 0; s < n_shards; s++) free(objs[s]), objs[s] = NULL;
    free(idx), free(ks), free(mine);
    return st;
}
