/*
 * source_quant.c — a model source with some of another source's tensors
 * quantized (gen/quant.h: the spec, the schemes, which tensors). The
 * rewritten tensors are made once, when the source is opened; everything
 * else (metadata, the other tensors, the tokenizer) reads through.
 */
#include "gen.h"
#include "internal.h"
#include "quant.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    kg_tensor t; /* the inner tensor's, with type, size and data rewritten */
    void *data;
} qtensor;

typedef struct {
    gen_source *inner;
    qtensor *t;  /* by the inner source's tensor order */
    int n;
} qsrc;

static const qsrc *qs(const gen_source *s) { return s->impl; }

static const kg_value *q_find(const gen_source *s, const char *key) { return gen_src_find(qs(s)->inner, key); }

static const kg_tensor *q_tensor(const gen_source *s, const char *name)
{
    const qsrc *q = qs(s);
    for (int i = 0; i < q->n; i++)
        if (!strcmp(q->t[i].t.name, name)) return &q->t[i].t;
    return gen_src_tensor(q->inner, name);
}

static const kg_tensor *q_tensor_at(const gen_source *s, uint64_t i)
{
    const kg_tensor *t = qs(s)->inner->vt->tensor_at(qs(s)->inner, i);
    return t ? q_tensor(s, t->name) : NULL;
}

static kg_status q_tokdata(const gen_source *s, const char *chat_template, void **blob, size_t *size)
{
    return qs(s)->inner->vt->tokdata(qs(s)->inner, chat_template, blob, size);
}

static void q_free(qsrc *q)
{
    for (int i = 0; i < q->n; i++) free(q->t[i].data);
    free(q->t);
    gen_source_close(q->inner);
    free(q);
}

static void q_close(gen_source *s)
{
    q_free(s->impl);
    free(s);
}

static const gen_source_vt quant_vt = {"quantized", q_find, q_tensor, q_tensor_at, q_tokdata, q_close};

/* ─────────────── which tensors, and the rewriting ─────────────── */

/* The matrices --quant rewrites by default */
static bool by_default(const kg_tensor *t)
{
    const size_t n = strlen(t->name);
    return t->n_dims == 2 && n > 7 && !strcmp(t->name + n - 7, ".weight") &&
           (!strncmp(t->name, "blk.", 4) || !strcmp(t->name, "token_embd.weight") || !strcmp(t->name, "output.weight"));
}

/* row r of t as floats */
static void row_f32(const kg_tensor *t, int64_t r, float *y)
{
    const int64_t k = (int64_t)t->ne[0];
    const kg_type_info *ti = kg_type_get(t->type);
    const uint8_t *p = (const uint8_t *)t->data + (uint64_t)r * (uint64_t)(k / ti->blck) * ti->size;
    if (t->type == KG_TYPE_F32) {
        memcpy(y, p, (size_t)k * 4);
    } else if (t->type == KG_TYPE_F16) {
        for (int64_t e = 0; e < k; e++) {
            _Float16 h;
            memcpy(&h, p + 2 * e, 2);
            y[e] = (float)h;
        }
    } else if (t->type == KG_TYPE_BF16) {
        for (int64_t e = 0; e < k; e++) {
            uint32_t b = (uint32_t)(p[2 * e] | p[2 * e + 1] << 8) << 16;
            memcpy(&y[e], &b, 4);
        }
    } else {
        gen_dequant_row(t->type, p, k, y);
    }
}

/* t rewritten as `type` into *out; an error names the tensor */
static kg_status rewrite(const char *model, const kg_tensor *t, int type, qtensor *out)
{
    const kg_type_info *to = kg_type_get((uint32_t)type);
    const int64_t k = (int64_t)t->ne[0], rows = (int64_t)(t->n_elements / t->ne[0]);
    const uint64_t row_bytes = (uint64_t)(k / to->blck) * to->size;
    float *x = malloc((size_t)k * sizeof *x);
    uint8_t *data = malloc(row_bytes * (uint64_t)rows);
    kg_status st = x && data ? KG_OK : kg_err(KG_ERR_NOMEM, "out of memory quantizing %s", t->name);
    for (int64_t r = 0; !st && r < rows; r++) {
        row_f32(t, r, x);
        if (!gen_quant_row(type, x, k, data + (uint64_t)r * row_bytes))
            st = kg_err(KG_ERR_FORMAT, "%s: tensor %s: row %lld holds a value that is not finite (NaN or infinity)",
                        model, t->name, (long long)r);
    }
    free(x);
    if (st) {
        free(data);
        return st;
    }
    out->t = *t;
    out->t.type = (kg_type)type;
    out->t.n_bytes = row_bytes * (uint64_t)rows;
    out->t.data = out->data = data;
    return KG_OK;
}

typedef struct {
    int n[KG_TYPE_COUNT];   /* tensors rewritten, by type */
    uint64_t bytes_in, bytes_out;
    int kept_quant, kept_rows; /* left: already quantized; rows not whole blocks */
} tally;

/* what rule r (or the default) asks of tensor t: its type, or -1 to leave it */
static kg_status decide(const char *model, const kg_tensor *t, const gen_quant_rule *r, bool requant, tally *ty, int *type)
{
    *type = -1;
    if (r->type < 0 || (kg_type)r->type == t->type) return KG_OK;
    const kg_type_info *from = kg_type_get(t->type), *to = kg_type_get((uint32_t)r->type);
    const uint32_t blk = to->blck > 1 ? to->blck : 1;
    const bool named = r->pat != NULL;
    char why[160] = "";
    if (from && from->blck > 1 && !requant) {
        if (!named) return ty->kept_quant++, KG_OK;
        snprintf(why, sizeof why, "is %s in the source: add --requant to quantize it again from its values", from->name);
    } else if (!from || !from->kernels) {
        snprintf(why, sizeof why, "has type %s, which kgen cannot dequantize", from ? from->name : "?");
    } else if (t->ne[0] % blk) {
        if (!named) return ty->kept_rows++, KG_OK;
        snprintf(why, sizeof why, "has rows of %llu values, not a multiple of %s's %u", (unsigned long long)t->ne[0],
                 r->scheme, blk);
    }
    if (why[0])
        return kg_err(KG_ERR_ARG, "%s: --quant-tensor '%s=%s': tensor %s %s", model, named ? r->pat : "*", r->scheme,
                      t->name, why);
    *type = r->type;
    return KG_OK;
}

static kg_status build(qsrc *q, const char *spec, bool requant, tally *ty)
{
    const char *model = q->inner->name;
    char *copy = NULL;
    gen_quant_rule *rules = NULL;
    int nr = 0;
    uint64_t nt = 0;
    while (q->inner->vt->tensor_at(q->inner, nt)) nt++;
    q->t = calloc(nt ? nt : 1, sizeof *q->t);
    kg_status st = q->t ? gen_quant_parse(spec, &copy, &rules, &nr) : kg_err(KG_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; !st && i < nt; i++) {
        const kg_tensor *t = q->inner->vt->tensor_at(q->inner, i);
        if (t->n_dims != 2) continue; /* only matrices are quantized: a pattern skips the rest */
        gen_quant_rule *r = by_default(t) ? &rules[0] : NULL;
        for (int k = 1; k < nr; k++)
            if (fnmatch(rules[k].pat, t->name, 0) == 0) r = &rules[k];
        if (!r) continue;
        if (r->pat) r->hits++;
        int type;
        st = decide(model, t, r, requant, ty, &type);
        if (st || type < 0) continue;
        st = rewrite(model, t, type, &q->t[q->n]);
        if (st) break;
        q->n++;
        ty->n[type]++;
        ty->bytes_in += t->n_bytes, ty->bytes_out += q->t[q->n - 1].t.n_bytes;
    }
    for (int k = 1; !st && k < nr; k++)
        if (!rules[k].hits)
            st = kg_err(KG_ERR_ARG, "%s: --quant-tensor '%s=%s': the pattern matches no matrix (kgen inspect %s lists "
                        "the tensors)", model, rules[k].pat, rules[k].scheme, model);
    free(copy);
    free(rules);
    return st;
}

static void report(const char *model, const tally *ty, double secs)
{
    char what[512] = "";
    size_t o = 0;
    int total = 0;
    for (int t = 0; t < KG_TYPE_COUNT; t++)
        if (ty->n[t] && o < sizeof what)
            o += (size_t)snprintf(what + o, sizeof what - o, "%s%d %s", total ? ", " : "", ty->n[t], kg_type_get((uint32_t)t)->name),
                total += ty->n[t];
    fprintf(stderr, "kgen: %s: quantized %d tensor%s (%s), %.1f MiB -> %.1f MiB, in %.2f s", model, total,
            total == 1 ? "" : "s", total ? what : "none", ty->bytes_in / 1048576.0, ty->bytes_out / 1048576.0, secs);
    if (ty->kept_quant) fprintf(stderr, "; %d already quantized, left as they are (--requant redoes them)", ty->kept_quant);
    if (ty->kept_rows) fprintf(stderr, "; %d whose rows are not whole groups, left as they are", ty->kept_rows);
    fputc('\n', stderr);
}

kg_status gen_source_open_quant(const char *path, const char *spec, bool requant, bool progress, gen_source **out)
{
    *out = NULL;
    gen_source *inner;
    kg_status st = gen_source_open(path, &inner);
    if (st || !spec || !*spec) {
        *out = st ? NULL : inner;
        return st;
    }
    const double t0 = gen_now_s();
    gen_source *s = calloc(1, sizeof *s);
    qsrc *q = calloc(1, sizeof *q);
    if (!s || !q) {
        free(s), free(q);
        gen_source_close(inner);
        return kg_err(KG_ERR_NOMEM, "out of memory");
    }
    q->inner = inner;
    tally ty = {0};
    st = build(q, spec, requant, &ty);
    if (st) {
        q_free(q);
        free(s);
        return st;
    }
    if (progress) report(path, &ty, gen_now_s() - t0);
    s->vt = &quant_vt, s->impl = q, s->name = inner->name;
    *out = s;
    return KG_OK;
}
