/*
 * graph.c — building, inspecting and printing model graphs (graph.h).
 */
#include "graph.h"
#include "internal.h"
#include "templates/cpu/kernel.h"

#include <stdlib.h>
#include <string.h>

struct gen_view {
    struct gen_view *next;
    kg_tensor t;
    char name[96];
};

void gen_graph_free(gen_graph *gr)
{
    for (struct gen_view *v = gr->views, *nx; v; v = nx) nx = v->next, free(v);
    free(gr->t);
    free(gr->n);
    memset(gr, 0, sizeof *gr);
}

static bool grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap) return true;
    int nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

uint64_t gen_row_bytes(int type, int64_t cols)
{
    switch (type) {
    case GEN_ACT_F32: case GEN_ACT_I32: return (uint64_t)cols * 4;
    case GEN_ACT_Q8: return (uint64_t)(cols / 32) * sizeof(kgt_q8a);
    default: {
        const kg_type_info *ti = kg_type_get((uint32_t)type);
        return ti && ti->blck ? (uint64_t)(cols / ti->blck) * ti->size : 0;
    }
    }
}

const char *gen_type_name(int type)
{
    switch (type) {
    case GEN_ACT_F32: return "f32";
    case GEN_ACT_Q8: return "q8a";
    case GEN_ACT_I32: return "i32";
    default: {
        const kg_type_info *ti = kg_type_get((uint32_t)type);
        return ti ? ti->name : "?";
    }
    }
}

int gen_graph_tensor(gen_graph *gr, const char *name, gen_tkind kind, int type, int64_t rows, int64_t cols,
                     bool per_token)
{
    if (!grow((void **)&gr->t, &gr->cap_t, gr->nt + 1, sizeof *gr->t)) {
        kg_err(KG_ERR_NOMEM, "out of memory for the graph");
        return -1;
    }
    gen_tensor *t = &gr->t[gr->nt];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->kind = kind;
    t->type = type;
    t->rows = rows;
    t->cols = cols;
    t->per_token = per_token;
    t->kv_layer = -1;
    t->row_bytes = gen_row_bytes(type, cols);
    t->first = t->last = -1;
    return gr->nt++;
}

const kg_tensor *gen_graph_view(gen_graph *gr, const kg_tensor *t, uint64_t row0, uint64_t rows, const char *name)
{
    struct gen_view *v = calloc(1, sizeof *v);
    if (!v) {
        kg_err(KG_ERR_NOMEM, "out of memory for the graph");
        return NULL;
    }
    uint64_t rb = t->ne[1] ? t->n_bytes / t->ne[1] : 0; /* whole rows: the caller checked */
    v->t = *t;
    snprintf(v->name, sizeof v->name, "%s", name);
    v->t.name = v->name;
    v->t.ne[1] = rows;
    v->t.n_elements = t->ne[0] * rows;
    v->t.n_bytes = rb * rows;
    v->t.offset = t->offset + rb * row0;
    v->t.data = (const char *)t->data + rb * row0;
    v->next = gr->views;
    gr->views = v;
    return &v->t;
}

int gen_graph_node(gen_graph *gr, gen_opk op, int layer, int out, const int *in, int n_in)
{
    if (!grow((void **)&gr->n, &gr->cap_n, gr->nn + 1, sizeof *gr->n)) {
        kg_err(KG_ERR_NOMEM, "out of memory for the graph");
        return -1;
    }
    gen_node *n = &gr->n[gr->nn];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->layer = layer;
    n->out = out;
    for (int i = 0; i < GEN_IN_MAX; i++) n->in[i] = i < n_in ? in[i] : -1;
    return gr->nn++;
}

const char *gen_op_name(gen_opk op)
{
    static const char *const names[GEN_OP_COUNT] = {
        [GEN_OP_EMBED] = "embed", [GEN_OP_RMSNORM] = "rmsnorm", [GEN_OP_MATMUL] = "matmul",
        [GEN_OP_ROPE] = "rope", [GEN_OP_KV_STORE] = "kv_store", [GEN_OP_ATTN] = "attn",
        [GEN_OP_ADD] = "add", [GEN_OP_GLU] = "glu", [GEN_OP_QUANTIZE] = "quantize",
        [GEN_OP_ROPE_KV] = "rope_kv", [GEN_OP_SOFTCAP] = "softcap", [GEN_OP_LAYERNORM] = "layernorm",
        [GEN_OP_ATTN_ENC] = "attn_enc", [GEN_OP_POOL] = "pool",
    };
    return (unsigned)op < GEN_OP_COUNT ? names[op] : "?";
}

void gen_graph_liveness(gen_graph *gr)
{
    for (int i = 0; i < gr->nt; i++) gr->t[i].first = gr->t[i].last = -1;
    for (int i = 0; i < gr->nn; i++) {
        const gen_node *n = &gr->n[i];
        if (n->dead) continue;
        for (int k = -1; k < GEN_IN_MAX; k++) {
            int t = k < 0 ? n->out : n->in[k];
            if (t < 0) continue;
            if (gr->t[t].first < 0) gr->t[t].first = i;
            gr->t[t].last = i;
        }
    }
}

int gen_graph_readers(const gen_graph *gr, int t, int *out, int cap)
{
    int c = 0;
    for (int i = 0; i < gr->nn; i++) {
        if (gr->n[i].dead) continue;
        for (int k = 0; k < GEN_IN_MAX; k++)
            if (gr->n[i].in[k] == t) {
                if (c < cap) out[c] = i;
                c++;
                break;
            }
    }
    return c;
}

static void print_tensor(const gen_graph *gr, int id, FILE *f)
{
    const gen_tensor *t = &gr->t[id];
    fprintf(f, "%%%d:%s", id, t->name);
    if (t->kind == GEN_T_WEIGHT) fprintf(f, "[%s %lldx%lld]", gen_type_name(t->type), (long long)t->rows, (long long)t->cols);
    else if (t->kind == GEN_T_KV) fprintf(f, "[kv]");
    else fprintf(f, "[%s %s%lld]", gen_type_name(t->type), t->per_token ? "Mx" : "", (long long)t->cols);
}

void gen_graph_print(const gen_graph *gr, const char *title, FILE *f)
{
    int live = 0;
    for (int i = 0; i < gr->nn; i++) live += !gr->n[i].dead;
    fprintf(f, "── graph after %s: %d nodes, %d tensors ──\n", title, live, gr->nt);
    for (int i = 0; i < gr->nn; i++) {
        const gen_node *n = &gr->n[i];
        if (n->dead) continue;
        fprintf(f, "  %4d ", i);
        if (n->layer >= 0) fprintf(f, "L%-3d ", n->layer);
        else fprintf(f, "     ");
        if (n->out >= 0) {
            print_tensor(gr, n->out, f);
            if (n->out_col) fprintf(f, "[col %lld..]", (long long)n->out_col);
            fprintf(f, " = ");
        }
        fprintf(f, "%s", gen_op_name(n->op));
        if (n->flags) fprintf(f, "/0x%llx", (long long)n->flags);
        if (n->last_row) fprintf(f, "/last-row");
        if (n->groups > 1) fprintf(f, "/groups=%lld", (long long)n->groups);
        if (n->window) fprintf(f, "/window=%lld", (long long)n->window);
        if (n->op == GEN_OP_ROPE || n->op == GEN_OP_ROPE_KV) fprintf(f, "/base=%g", n->rope_base);
        if (n->scale != 0) fprintf(f, "/scale=%g", n->scale);
        fprintf(f, "(");
        for (int k = 0; k < GEN_IN_MAX; k++) {
            if (n->in[k] < 0) continue;
            if (k) fprintf(f, ", ");
            print_tensor(gr, n->in[k], f);
        }
        fprintf(f, ")");
        if (n->out >= 0 && gr->t[n->out].kind == GEN_T_ACT && gr->ws_bytes)
            fprintf(f, "  @ws+%llu", (unsigned long long)gr->t[n->out].off);
        fprintf(f, "\n");
    }
    if (gr->weight_bytes) fprintf(f, "  weights %llu bytes", (unsigned long long)gr->weight_bytes);
    if (gr->ws_bytes) fprintf(f, ", workspace %llu bytes", (unsigned long long)gr->ws_bytes);
    if (gr->weight_bytes || gr->ws_bytes) fprintf(f, "\n");
}
