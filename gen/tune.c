/*
 * tune.c — the sweep of `kgen tune` (tune.h): the model planned with its
 * default knobs, the variants of its product instances enumerated and
 * pruned, each instance's default and variants checked and timed here
 * (tune_bench.c), and a record kept where a variant beats the default by
 * more than the measured noise.
 */
#include "config.h"
#include "tune.h"
#include "tune_bench.h"
#include "internal.h"
#include "quant.h"
#include "source.h"
#include "runtime/model/rt.h"
#include "templates/cpu/kernel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

static int64_t pval(const gen_kinst *k, const char *name, int64_t def)
{
    const gen_param *p = gen_kinst_param(k, name);
    return p ? p->i : def;
}

/* the value an instance has for an instance knob: bound, or the template's
 * default (gen/knobs.c's table mirrors mm.c's KG_PARAM_DEFAULTs) */
static int64_t knob_now(const gen_kinst *k, const gen_knob_def *d) { return pval(k, d->name, d->def); }

static bool is_prefill(const gen_kinst *k)
{
    const gen_param *m = gen_kinst_param(k, "M");
    return m && m->runtime;
}

/* mb's effect: activation rows per block (mm.c's mm_typed), capped at the
 * rows timed (a block past them is one block) */
static int64_t block_rows(const gen_kinst *k, int64_t mb, int pp)
{
    const int64_t K = pval(k, "K", 1), xrow = pval(k, "act", 0) == KGT_ACT_Q8 ? K / 32 * 40 : K * 4;
    int64_t r = mb / (xrow > 0 ? xrow : 1) / 16 * 16;
    r = r < 16 ? 16 : r;
    return r > pp ? pp : r;
}

static bool applies(const gen_kinst *k, const gen_knob_def *d)
{
    if (!d->tmpl || strcmp(d->tmpl, k->tmpl)) return false;
    if ((d->where & GEN_KNOB_DECODE) && is_prefill(k)) return false;
    if ((d->where & GEN_KNOB_PREFILL) && !is_prefill(k)) return false;
    if ((d->where & GEN_KNOB_NOT_ROWS) && pval(k, "layout", KGT_LAYOUT_ROWS) == KGT_LAYOUT_ROWS) return false;
    return true;
}

/* may v differ from the default and from the variants before it? */
static bool worth(const gen_kinst *k, const gen_knob_def *d, int64_t v, int pp, const int64_t *earlier, int nearlier)
{
    const int64_t now = knob_now(k, d);
    if (v == now) return false;
    if (!strcmp(d->name, "pf")) {
        /* a prefetch past half the matrix reaches past what one thread reads */
        const int64_t wb = (int64_t)gen_row_bytes((int)pval(k, "wtype", 0), pval(k, "K", 0)) * pval(k, "N", 0);
        return v < wb / 2;
    }
    if (!strcmp(d->name, "nc")) /* q8 outputs keep 32; one chunk of 16 either way */
        return !(pval(k, "flags", 0) & KGT_EPI_OUT_Q8) && pval(k, "N", 0) > 16;
    if (!strcmp(d->name, "mt")) /* 4 rows or fewer: one tile of 4 whatever mt is */
        return pp > 4;
    if (!strcmp(d->name, "mb")) {
        const int64_t r = block_rows(k, v, pp);
        if (r == block_rows(k, now, pp)) return false;
        for (int i = 0; i < nearlier; i++)
            if (block_rows(k, earlier[i], pp) == r) return false;
    }
    return true;
}

typedef struct ord { int inst; char key[256]; } ord;
static int ord_cmp(const void *a, const void *b) { return strcmp(((const ord *)a)->key, ((const ord *)b)->key); }

kg_status gen_tune_variants(const gen_program *pg, int pp, gen_tune_variant **out, int *n)
{
    *out = NULL, *n = 0;
    int nd;
    const gen_knob_def *defs = gen_knob_defs(&nd);
    ord *o = calloc((size_t)(pg->nk ? pg->nk : 1), sizeof *o);
    gen_tune_variant *v = NULL;
    int cap = 0;
    if (!o) return kg_err(KG_ERR_NOMEM, "out of memory");
    for (int i = 0; i < pg->nk; i++) o[i].inst = i, gen_inst_key(&pg->k[i], o[i].key, sizeof o[i].key);
    qsort(o, (size_t)pg->nk, sizeof *o, ord_cmp);
    for (int i = 0; i < pg->nk; i++) {
        const gen_kinst *k = &pg->k[o[i].inst];
        if (i > 0 && !strcmp(o[i].key, o[i - 1].key)) continue; /* one key, one set of variants (applied to both) */
        for (int d = 0; d < nd; d++) {
            if (!applies(k, &defs[d])) continue;
            int64_t seen[8];
            int ns = 0;
            for (int s = 0; s < defs[d].nsweep; s++) {
                const int64_t val = defs[d].sweep[s];
                if (!worth(k, &defs[d], val, pp, seen, ns)) continue;
                seen[ns++] = val;
                if (*n == cap) {
                    cap = cap ? 2 * cap : 64;
                    void *q = realloc(v, (size_t)cap * sizeof *v);
                    if (!q) { free(v), free(o); return kg_err(KG_ERR_NOMEM, "out of memory"); }
                    v = q;
                }
                v[(*n)++] = (gen_tune_variant){o[i].inst, &defs[d], val};
            }
        }
    }
    free(o);
    *out = v;
    return KG_OK;
}

/* "Q4_0 576x1536 decode swiglu": an instance in a table row */
static void label(const gen_kinst *k, char *out, size_t cap)
{
    const kg_type_info *ti = kg_type_get((uint32_t)pval(k, "wtype", 0));
    const int64_t fl = pval(k, "flags", 0);
    snprintf(out, cap, "%-6s %5lldx%-5lld %-7s%s%s%s", ti ? ti->name : "?", (long long)pval(k, "N", 0),
             (long long)pval(k, "K", 0), is_prefill(k) ? "prefill" : "decode",
             fl & (KGT_EPI_SWIGLU | KGT_EPI_GEGLU) ? " glu" : "", fl & KGT_EPI_RESIDUAL ? " +res" : "",
             fl & KGT_EPI_OUT_Q8 ? " q8out" : "");
}

static void utc_now(char *out, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

kg_status gen_tune_run(const gen_tune_opts *o, gen_tuning *result)
{
    FILE *f = o->out ? o->out : stderr;
    const int pp = o->pp > 0 ? o->pp : 64;
    memset(result, 0, sizeof *result);
    gen_source *src = NULL;
    gen_graph gr = {0};
    gen_program pg = {0};
    gen_target t;
    gen_knobs kn;
    gen_tune_variant *var = NULL;
    kgr_pool *pool = NULL;
    int nv = 0;
    const double t0 = gen_now_s();
    kg_status st = gen_target_host(&t);
    if (!st) st = gen_knobs_parse(gen_knobs_env(), &kn);
    if (!st) gen_knobs_resolve(&kn, t.isa, false);
    if (!st) st = gen_source_open_quant(o->model, o->quant, o->requant, false, &src);
    if (!st) st = gen_model_plan(src, 0, 0, gen_nofuse_env(), &kn, &gr, &pg);
    if (!st) st = gen_tune_variants(&pg, pp, &var, &nv);
    if (!st && o->list) {
        char key[256];
        for (int j = 0; j < nv; j++)
            if (gen_tune_in_shard(j, o->shard, o->nshards)) {
                gen_inst_key(&pg.k[var[j].inst], key, sizeof key);
                fprintf(f, "%d\t%s\t%s=%lld\n", j, key, var[j].knob->name, (long long)var[j].value);
            }
        goto done;
    }
    /* the sweep's identity: the whole variant list and the rows timed */
    if (!st) {
        XXH3_state_t *h = XXH3_createState();
        char key[256], line[320];
        if (!h) st = kg_err(KG_ERR_NOMEM, "out of memory");
        if (h) XXH3_64bits_reset(h);
        for (int j = 0; h && j < nv; j++) {
            gen_inst_key(&pg.k[var[j].inst], key, sizeof key);
            int n = snprintf(line, sizeof line, "%s\t%s=%lld\n", key, var[j].knob->name, (long long)var[j].value);
            XXH3_64bits_update(h, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1));
        }
        if (h) {
            XXH3_64bits_update(h, &pp, sizeof pp);
            snprintf(result->sweep, sizeof result->sweep, "%016llx", (unsigned long long)XXH3_64bits_digest(h));
            XXH3_freeState(h);
        }
        result->nshards = o->nshards > 1 ? o->nshards : 1;
        result->shards = o->nshards > 1 ? (o->shard <= 64 ? 1ull << (o->shard - 1) : 0) : 1;
    }
    /* the instances with variants in this shard (variants are grouped by instance) */
    int ninst = 0, done_inst = 0;
    for (int j = 0, last = -1; j < nv; j++) /* variants are grouped by instance */
        if (gen_tune_in_shard(j, o->shard, o->nshards) && var[j].inst != last) ninst++, last = var[j].inst;
    char err[256];
    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const int threads = o->threads > 0 ? o->threads : (int)(ncpu > 0 ? ncpu : 1);
    if (!st && kgr_pool_init(&pool, threads, err, sizeof err)) st = kg_err(KG_ERR_NOMEM, "tune: threads: %s", err);
    int nmm = 0;
    for (int i = 0; i < pg.nk; i++) nmm += !strcmp(pg.k[i].tmpl, "mm");
    if (!st)
        fprintf(f, "kgen tune: %s on %s (%s), %d threads: %d variants of %d product instances (%d of them in this "
                "shard)\n", o->model, t.cpu, gen_isa_name(t.isa), threads, nv, nmm, ninst);
    /* each measurement's share of the budget (two per instance; about half
     * of an instance's time is compiling and checking) */
    const double per = o->budget_s > 0 && ninst ? o->budget_s * 0.4 / ninst / 2 : 1.0;
    const double seconds = per < 0.1 ? 0.1 : per > 2.0 ? 2.0 : per;
    int kept = 0, skipped = 0;
    for (int j0 = 0; !st && j0 < nv;) {
        int j1 = j0;
        while (j1 < nv && var[j1].inst == var[j0].inst) j1++;
        gen_tune_variant sel[GEN_TUNE_MAX_CAND - 1];
        int ns = 0;
        int over = 0;
        for (int j = j0; j < j1; j++)
            if (gen_tune_in_shard(j, o->shard, o->nshards)) {
                if (ns < GEN_TUNE_MAX_CAND - 1) sel[ns++] = var[j];
                else over++;
            }
        const gen_kinst *k = &pg.k[var[j0].inst];
        j0 = j1;
        if (!ns) continue;
        char key[256], lab[96];
        gen_inst_key(k, key, sizeof key);
        label(k, lab, sizeof lab);
        /* the budget: an instance starts only if, at the pace so far, it ends
         * within 80% of it (the rest for the whole-model check) */
        const double el = gen_now_s() - t0, pace = done_inst ? el / done_inst : 0;
        if (o->budget_s > 0 && el + pace > 0.8 * o->budget_s) {
            skipped++;
            continue;
        }
        const double eta = done_inst ? el / done_inst * (ninst - done_inst) : 0;
        done_inst++;
        if (done_inst > 1) fprintf(f, "[%d/%d] %s: %d variants (ETA %.0f s)\n", done_inst, ninst, lab, ns, eta);
        else fprintf(f, "[%d/%d] %s: %d variants\n", done_inst, ninst, lab, ns);
        if (over) fprintf(f, "    %d more variants than one measurement takes (%d): left out\n", over, GEN_TUNE_MAX_CAND - 1);
        gen_tune_bench_in in = {k, key, sel, ns, &t, pool, pp, 5, seconds};
        gen_tune_bench_out bo;
        st = gen_tune_bench(&in, &bo);
        if (st) break;
        int best = 0;
        for (int c = 1; c <= ns; c++)
            if (!bo.bad[c] && bo.retimed[c] && bo.us[c] < bo.us[best]) best = c;
        const double gain = best ? 1 - bo.us[best] / bo.us[0] : 0, need = fmax(2 * bo.noise, 0.01);
        for (int c = 0; c <= ns; c++) {
            char name[48] = "default";
            if (c) snprintf(name, sizeof name, "%s=%lld", sel[c - 1].knob->name, (long long)sel[c - 1].value);
            if (bo.bad[c])
                fprintf(f, "    %-14s failed its check (differs by %.3g): not timed\n", name, bo.diff[c]);
            else
                fprintf(f, "    %-14s %9.2f us%s%s\n", name, bo.us[c], bo.retimed[c] ? " (measured twice)" : "",
                        c == best && best ? "  <- fastest" : "");
        }
        if (best && gain > need) {
            gen_tune_rec r = {0};
            snprintf(r.inst, sizeof r.inst, "%s", key);
            gen_tune_rec_target(&r, &t);
            r.threads = threads;
            r.nknob = 1;
            snprintf(r.knob[0], sizeof r.knob[0], "%s", sel[best - 1].knob->name);
            r.val[0] = sel[best - 1].value;
            r.us = bo.us[best], r.default_us = bo.us[0], r.noise = bo.noise;
            snprintf(r.version, sizeof r.version, "%s", KGEN_VERSION);
            utc_now(r.date, sizeof r.date);
            st = gen_tuning_add(result, &r);
            kept++;
            fprintf(f, "    kept %s=%lld: %.1f%% faster than the default (noise %.1f%%)\n", r.knob[0], (long long)r.val[0],
                    100 * gain, 100 * bo.noise);
        } else {
            if (best)
                fprintf(f, "    the default stays: %s=%lld was %.1f%% faster, within the noise (%.1f%%)\n",
                        sel[best - 1].knob->name, (long long)sel[best - 1].value, 100 * gain, 100 * bo.noise);
            else
                fprintf(f, "    the default stays: no variant was faster (noise %.1f%%)\n", 100 * bo.noise);
            /* measured, no knob: replaces an older record in the database */
            gen_tune_rec r = {0};
            snprintf(r.inst, sizeof r.inst, "%s", key);
            gen_tune_rec_target(&r, &t);
            r.threads = threads;
            r.us = r.default_us = bo.us[0], r.noise = bo.noise;
            st = gen_tuning_add(result, &r);
        }
    }
    if (!st)
        fprintf(f, "kgen tune: %d records kept in %.1f s%s\n", kept, gen_now_s() - t0,
                skipped ? " (the budget ran out: instances left untimed)" : "");
    if (!st && skipped) fprintf(f, "kgen tune: %d instances left untimed by --budget\n", skipped);
done:
    kgr_pool_free(pool);
    free(var);
    gen_program_free(&pg);
    gen_graph_free(&gr);
    gen_source_close(src);
    if (st) gen_tuning_free(result);
    return st;
}
