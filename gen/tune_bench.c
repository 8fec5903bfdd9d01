/*
 * tune_bench.c — one product instance on this machine, for `kgen tune`
 * (tune_bench.h): its buffers at the model's exact sizes, every variant
 * checked against an independent reference, then all of them timed
 * interleaved with the weights streamed from memory as in decode.
 *
 * The reference: the same instance with GGUF's rows (layout and knobs
 * left out) compiled for the generic ISA level (portable C, another code
 * path than the x16 tiles) from the same random weights. Timing: enough
 * copies of the weights to pass three times the last-level cache are
 * cycled, one call per copy, so each call reads its weights from DRAM;
 * rounds go through the candidates in a rotating order, so drifts of the
 * machine fall on all of them alike.
 */
#include "tune_bench.h"
#include "internal.h"
#include "layout.h"
#include "runtime/model/desc.h"
#include "runtime/model/rt.h"
#include "templates/cpu/kernel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

void gen_fill_weights(uint8_t *w, uint64_t bytes, int wtype, uint64_t seed)
{
    const kg_type_info *ti = kg_type_get((uint32_t)wtype);
    uint64_t s = seed | 1;
    for (uint64_t i = 0; i < bytes; i += 8) {
        uint64_t r = rng_next(&s);
        memcpy(w + i, &r, bytes - i < 8 ? bytes - i : 8);
    }
    const kgt_f16 d = kgt_f32_to_f16(0.01f);
    if (wtype == KGT_F16 || wtype == KGT_F32 || wtype == KGT_BF16) {
        for (uint64_t i = 0; i + ti->size <= bytes; i += ti->size) {
            const float f = (float)(rng_next(&s) % 2001) * 1e-3f - 1.0f;
            if (wtype == KGT_F32) memcpy(w + i, &f, 4);
            else if (wtype == KGT_F16) { kgt_f16 h = kgt_f32_to_f16(f); memcpy(w + i, &h, 2); }
            else { uint32_t b; memcpy(&b, &f, 4); uint16_t h = (uint16_t)(b >> 16); memcpy(w + i, &h, 2); }
        }
        return;
    }
    /* the f16 scale (and min) of each block, where the format keeps them:
     * small and finite (random bytes there could be Inf or NaN) */
    const size_t at = wtype == KGT_Q6_K ? 208 : wtype == KGT_Q3_K ? 108 : wtype == KGT_Q2_K ? 80 : 0;
    const int two = wtype == KGT_Q4_1 || wtype == KGT_Q5_1 || wtype == KGT_Q4_K || wtype == KGT_Q5_K || wtype == KGT_Q2_K;
    for (uint64_t i = 0; i + ti->size <= bytes; i += ti->size) {
        memcpy(w + i + at, &d, 2);
        if (two) memcpy(w + i + at + 2, &d, 2);
    }
}

static int64_t param(const gen_kinst *k, const char *name, int64_t def)
{
    const gen_param *p = gen_kinst_param(k, name);
    return p ? p->i : def;
}

/* k without its layout and knobs: the reference's instance */
static gen_kinst rows_of(const gen_kinst *k)
{
    gen_kinst r = *k;
    r.n_params = 0;
    for (int i = 0; i < k->n_params; i++) {
        const char *n = k->params[i].name;
        if (strcmp(n, "layout") && strcmp(n, "amx") && !gen_knob_find(k->tmpl, n)) r.params[r.n_params++] = k->params[i];
    }
    return r;
}

typedef struct run_ctx {
    gen_kfn f;
    void *p[6];
    const int64_t *rt;
} run_ctx;

static void run_one(void *arg, int ith, int nth)
{
    run_ctx *c = arg;
    c->f(c->p, c->rt, ith, nth);
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1], v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* the largest difference from the reference, relative to its largest value */
static double rel_diff(const void *y, const void *ref, int64_t n, bool q8)
{
    double md = 0, mr = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double a, b;
        if (q8) {
            const kgt_q8a *x = (const kgt_q8a *)y + i / 32, *r = (const kgt_q8a *)ref + i / 32;
            a = (double)x->d * x->qs[i % 32], b = (double)r->d * r->qs[i % 32];
        } else {
            a = ((const float *)y)[i], b = ((const float *)ref)[i];
        }
        if (!isfinite(a) || !isfinite(b)) return INFINITY;
        md = fabs(a - b) > md ? fabs(a - b) : md;
        mr = fabs(b) > mr ? fabs(b) : mr;
    }
    return md / mr;
}

/* what a timed call reads and writes */
typedef struct tbuf {
    kgr_pool *pool;
    run_ctx *rc;
    uint8_t **copy;
    int ncopy;
    void *x, *y, *bias, *resid;
    uint64_t up; /* W_up's offset in a copy (0: none) */
} tbuf;

/* Rounds over the candidates `use` marks, in a rotating order, at least
 * min_rounds and then until `seconds` have passed: us[c] the median time
 * of one call, *noise the default's median absolute deviation over its
 * median. */
static kg_status time_rounds(const tbuf *b, const gen_kfn *fn, int nc, const bool *use, int min_rounds, double seconds,
                             double *us, double *noise, int *nrounds)
{
    double *samp = calloc((size_t)(nc * GEN_TUNE_MAX_ROUNDS), sizeof *samp), tmp[GEN_TUNE_MAX_ROUNDS];
    if (!samp) return kg_err(KG_ERR_NOMEM, "out of memory");
    int rounds = 0;
    const double t1 = gen_now_s();
    while (rounds < GEN_TUNE_MAX_ROUNDS) {
        for (int i = 0; i < nc; i++) {
            const int c = (i + rounds) % nc;
            if (!use[c]) continue;
            b->rc->f = fn[c];
            const double ts = gen_now_s();
            for (int cp = 0; cp < b->ncopy; cp++) {
                void *p[6] = {b->copy[cp], b->x, b->y, b->bias, b->resid, b->up ? b->copy[cp] + b->up : NULL};
                memcpy(b->rc->p, p, sizeof p);
                kgr_pool_run(b->pool, run_one, b->rc);
            }
            samp[c * GEN_TUNE_MAX_ROUNDS + rounds] = (gen_now_s() - ts) / b->ncopy * 1e6;
        }
        rounds++;
        if (rounds >= min_rounds && gen_now_s() - t1 > seconds) break;
    }
    for (int c = 0; c < nc; c++) {
        us[c] = 0;
        if (!use[c]) continue;
        memcpy(tmp, samp + c * GEN_TUNE_MAX_ROUNDS, (size_t)rounds * sizeof *tmp);
        us[c] = median(tmp, rounds);
    }
    for (int r = 0; r < rounds; r++) tmp[r] = fabs(samp[r] - us[0]);
    *noise = us[0] > 0 ? median(tmp, rounds) / us[0] : 0;
    *nrounds = rounds;
    free(samp);
    return KG_OK;
}

kg_status gen_tune_bench(const gen_tune_bench_in *in, gen_tune_bench_out *out)
{
    const gen_kinst *k = in->k;
    const int wt = (int)param(k, "wtype", -1), act = (int)param(k, "act", 0), layout = (int)param(k, "layout", 0);
    const int64_t N = param(k, "N", 0), K = param(k, "K", 0), flags = param(k, "flags", 0);
    const int64_t M = gen_kinst_param(k, "M") && gen_kinst_param(k, "M")->runtime ? in->pp : param(k, "M", 1);
    const int64_t ldy = param(k, "ldy", 0) ? param(k, "ldy", 0) : N;
    const bool two = flags & (KGT_EPI_SWIGLU | KGT_EPI_GEGLU), q8out = flags & KGT_EPI_OUT_Q8;
    const uint64_t rowb = gen_row_bytes(wt, K), wbytes = (uint64_t)N * rowb * (two ? 2 : 1);
    const size_t xb = act == KGT_ACT_Q8 ? (size_t)(M * (K / 32)) * sizeof(kgt_q8a) : (size_t)(M * K) * sizeof(float);
    const size_t yb = q8out ? (size_t)(M * (ldy / 32)) * sizeof(kgt_q8a) : (size_t)(M * ldy) * sizeof(float);
    memset(out, 0, sizeof *out);
    if (strcmp(k->tmpl, "mm") || wt < 0 || N <= 0 || K <= 0)
        return kg_err(KG_ERR_UNSUPPORTED, "tune: only product (mm) instances are measured");

    /* the candidates (default first), and the reference, compiled */
    const int nc = 1 + in->nvar;
    if (nc > GEN_TUNE_MAX_CAND) return kg_err(KG_ERR_ARG, "tune: %s: %d variants (at most %d)", in->key, in->nvar, GEN_TUNE_MAX_CAND - 1);
    gen_kinst *ks = calloc((size_t)nc, sizeof *ks);
    if (!ks) return kg_err(KG_ERR_NOMEM, "out of memory");
    for (int c = 0; c < nc; c++) {
        ks[c] = *k;
        snprintf(ks[c].sym, sizeof ks[c].sym, "kgt_tune_c%d", c);
        if (c > 0) {
            const gen_tune_variant *v = &in->var[c - 1];
            bool set = false;
            for (int i = 0; i < ks[c].n_params; i++)
                if (!strcmp(ks[c].params[i].name, v->knob->name)) ks[c].params[i].i = v->value, set = true;
            if (!set && ks[c].n_params == GEN_MAX_PARAMS) {
                free(ks);
                return kg_err(KG_ERR_UNSUPPORTED, "tune: %s: no room for the knob %s", in->key, v->knob->name);
            }
            if (!set) {
                gen_param *p = &ks[c].params[ks[c].n_params++];
                memset(p, 0, sizeof *p);
                snprintf(p->name, sizeof p->name, "%s", v->knob->name);
                p->i = v->value;
            }
        }
    }
    gen_kinst ref = rows_of(k);
    snprintf(ref.sym, sizeof ref.sym, "kgt_tune_ref");
    gen_target generic;
    void *obj = NULL, *robj = NULL;
    size_t nobj = 0, nrobj = 0;
    gen_jit *j = NULL;
    gen_kfn *fn = calloc((size_t)nc, sizeof *fn), rfn = NULL;
    double t0 = gen_now_s();
    kg_status st = fn ? KG_OK : kg_err(KG_ERR_NOMEM, "out of memory");
    if (!st) st = gen_compile(in->target, ks, nc, GEN_EMIT_OBJ, &obj, &nobj);
    if (!st) st = gen_target_parse("x86-64-v2", &generic);
    if (!st) st = gen_compile(&generic, &ref, 1, GEN_EMIT_OBJ, &robj, &nrobj);
    if (!st) st = gen_jit_create(&j);
    if (!st) st = gen_jit_add(j, obj, nobj);
    if (!st) st = gen_jit_add(j, robj, nrobj);
    for (int c = 0; c < nc && !st; c++) st = gen_jit_lookup(j, ks[c].sym, &fn[c]);
    if (!st) st = gen_jit_lookup(j, ref.sym, &rfn);
    free(obj);
    free(robj);
    out->compile_s = gen_now_s() - t0;

    /* the buffers: weights as rows (the reference's) and in the layout, in
     * enough copies to stream from memory; activations; outputs */
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    uint64_t stream = 3 * (uint64_t)(llc > 0 ? llc : 32 << 20);
    int ncopy = (int)(stream / (wbytes ? wbytes : 1)) + 1;
    if (ncopy > 256) ncopy = 256;
    if ((uint64_t)ncopy * wbytes > (1ull << 30)) ncopy = (int)((1ull << 30) / wbytes) + 1;
    uint8_t *rows = NULL, **copy = calloc((size_t)ncopy, sizeof *copy);
    void *x = NULL, *y = NULL, *yref = NULL, *bias = NULL, *resid = NULL;
    const uint64_t wpad = (wbytes + 4095) & ~4095ull;
    if (!st && (!copy || !(rows = aligned_alloc(64, wpad)))) st = kg_err(KG_ERR_NOMEM, "tune: out of memory");
    for (int c = 0; c < ncopy && !st; c++)
        if (!(copy[c] = aligned_alloc(4096, wpad))) st = kg_err(KG_ERR_NOMEM, "tune: out of memory (weights)");
    if (!st) {
        gen_fill_weights(rows, wbytes, wt, 0x9E3779B97F4A7C15ull ^ (uint64_t)(N * 131 + K));
        const int g = gen_layout_group(layout);
        const uint8_t *rp[16];
        for (uint64_t r0 = 0; r0 < (uint64_t)N * (two ? 2 : 1); r0 += (uint64_t)g) {
            for (int r = 0; r < g; r++) rp[r] = rows + (r0 + (uint64_t)r) * rowb;
            if (layout == KGT_LAYOUT_ROWS) memcpy(copy[0] + r0 * rowb, rows + r0 * rowb, rowb);
            else gen_layout_write(layout, wt, K, rp, rowb, copy[0] + r0 * rowb);
        }
        for (int c = 1; c < ncopy; c++) memcpy(copy[c], copy[0], wbytes);
    }
    if (!st && (!(x = aligned_alloc(64, (xb + 63) & ~63ull)) || !(y = aligned_alloc(64, (yb + 63) & ~63ull)) ||
                !(yref = aligned_alloc(64, (yb + 63) & ~63ull)) || !(bias = calloc((size_t)N, 4)) ||
                !(resid = calloc((size_t)(M * ldy), 4))))
        st = kg_err(KG_ERR_NOMEM, "tune: out of memory");
    if (!st) {
        uint64_t s = 12345;
        if (act == KGT_ACT_Q8) {
            for (int64_t b = 0; b < M * (K / 32); b++) {
                kgt_q8a *q = (kgt_q8a *)x + b;
                q->d = 0.02f, q->sum = 0;
                for (int i = 0; i < 32; i++) q->qs[i] = (int8_t)((int)(rng_next(&s) % 255) - 127), q->sum += q->qs[i];
            }
        } else {
            for (int64_t i = 0; i < M * K; i++) ((float *)x)[i] = (float)(rng_next(&s) % 2001) * 1e-3f - 1.0f;
        }
        for (int64_t i = 0; i < N; i++) ((float *)bias)[i] = (float)(rng_next(&s) % 201) * 1e-3f - 0.1f;
        for (int64_t i = 0; i < M * ldy; i++) ((float *)resid)[i] = (float)(rng_next(&s) % 201) * 1e-3f - 0.1f;
    }
    int64_t rt[KGM_RT_COUNT] = {0};
    rt[KGM_RT_M] = M;
    char why[256];
    rt[KGM_RT_AMX] = kgr_amx_enable(why, sizeof why);
    run_ctx rc = {.rt = rt};
    /* check: every candidate against the reference, with every thread */
    if (!st) {
        memset(yref, 0, yb);
        rc.f = rfn;
        void *rp[6] = {rows, x, yref, bias, resid, two ? rows + (uint64_t)N * rowb : NULL};
        memcpy(rc.p, rp, sizeof rp);
        kgr_pool_run(in->pool, run_one, &rc);
        const bool bf = layout == KGT_LAYOUT_X16B;
        for (int c = 0; c < nc && !st; c++) {
            memset(y, 0, yb);
            rc.f = fn[c];
            void *p[6] = {copy[0], x, y, bias, resid, two ? copy[0] + (uint64_t)N * rowb : NULL};
            memcpy(rc.p, p, sizeof p);
            kgr_pool_run(in->pool, run_one, &rc);
            /* q8 activations: exact int32 dots in both; f32: summation
             * order; bf16 pairs (x16b): both operands rounded to bf16 */
            const double tol = bf ? 3e-2 : act == KGT_ACT_Q8 ? 1e-4 : 1e-4 * sqrt((double)K), d =
                rel_diff(y, yref, M * ldy, q8out);
            out->diff[c] = d;
            out->bad[c] = !(d <= tol + (q8out ? 2.0 / 127 : 0));
        }
        if (!st && out->bad[0])
            st = kg_err(KG_ERR_UNSUPPORTED, "tune: %s: the default instance differs from the reference by %.3g of its "
                        "largest value (a kgen bug: please report it)", in->key, out->diff[0]);
    }
    /* time: every candidate that passed, then the default and the best
     * few again, interleaved; those get the second measurement */
    bool use[GEN_TUNE_MAX_CAND];
    for (int c = 0; c < nc; c++) use[c] = !out->bad[c];
    if (!st) {
        tbuf tb = {in->pool, &rc, copy, ncopy, x, y, bias, resid, two ? (uint64_t)N * rowb : 0};
        st = time_rounds(&tb, fn, nc, use, in->min_rounds, in->seconds, out->us, &out->noise, &out->rounds);
        /* the best few that passed, fastest first (a sort of a handful) */
        int top[GEN_TUNE_MAX_CAND], ntop = 0;
        for (int c = 1; c < nc; c++)
            if (use[c]) top[ntop++] = c;
        for (int i = 1; i < ntop; i++)
            for (int q = i; q > 0 && out->us[top[q]] < out->us[top[q - 1]]; q--) {
                int t = top[q];
                top[q] = top[q - 1], top[q - 1] = t;
            }
        ntop = ntop < GEN_TUNE_RETIME ? ntop : GEN_TUNE_RETIME;
        if (!st && ntop > 0) {
            for (int c = 0; c < nc; c++) use[c] = c == 0;
            for (int t = 0; t < ntop; t++) use[top[t]] = true;
            double us2[GEN_TUNE_MAX_CAND];
            int r2;
            st = time_rounds(&tb, fn, nc, use, in->min_rounds, in->seconds, us2, &out->noise, &r2);
            for (int c = 0; c < nc && !st; c++)
                if (use[c]) out->us[c] = us2[c], out->retimed[c] = true;
            out->rounds += r2;
        }
        out->weight_bytes = wbytes;
        out->copies = ncopy;
    }
    for (int c = 0; copy && c < ncopy; c++) free(copy[c]);
    free(copy);
    free(rows);
    free(x), free(y), free(yref), free(bias), free(resid);
    free(fn);
    free(ks);
    gen_jit_destroy(j);
    return st;
}
