/*
 * tune_model.c — the whole model with a sweep's records against the
 * default model, for `kgen tune` (tune.h, gen_tune_compare): both compiled
 * (through the cache), then prefill and decode timed in alternating order,
 * round after round, so the machine's drifts fall on both alike.
 */
#include "internal.h"
#include "loader.h"
#include "tune.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int dcmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* tokens per second of one prefill of n tokens (decode: n steps) */
static kg_status one(gen_loaded *l, const int32_t *toks, int n, bool decode, double *tps)
{
    const kgm_api_v2 *api = l->api;
    api->reset(l->m);
    bool ok = true;
    const double t0 = now_s();
    if (decode)
        for (int i = 0; i < n && ok; i++) ok = api->decode(l->m, toks[i], i) != NULL;
    else
        ok = api->prefill(l->m, toks, n, 0) != NULL;
    const double dt = now_s() - t0;
    if (!ok) return kg_err(KG_ERR_ARG, "tune: %s", api->error(l->m));
    *tps = n / dt;
    return KG_OK;
}

kg_status gen_tune_compare(const gen_tune_opts *o, const char *tuning, gen_tune_ab *ab)
{
    memset(ab, 0, sizeof *ab);
    const int pp = o->pp > 0 ? o->pp : 64, tg = 32, rounds = 5;
    gen_load_opts lo = {0};
    lo.open.n_threads = o->threads;
    lo.tuning = "none"; /* the default model: no records (not the database's) */
    gen_loaded l[2];
    memset(l, 0, sizeof l);
    kg_status st = gen_load(o->model, &lo, &l[0]);
    lo.tuning = tuning;
    if (!st) st = gen_load(o->model, &lo, &l[1]);
    kgm_info info = {0};
    if (!st) l[0].api->describe(l[0].m, &info);
    if (!st && l[0].api->embed_dim(l[0].m) > 0)
        st = kg_err(KG_ERR_UNSUPPORTED, "%s: an encoder: the whole-model check times decoders only, for now", o->model);
    int32_t *toks = !st ? malloc((size_t)(pp > tg ? pp : tg) * sizeof *toks) : NULL;
    if (!st && !toks) st = kg_err(KG_ERR_NOMEM, "out of memory");
    if (!st && (pp > info.n_ctx || info.n_vocab < 1))
        st = kg_err(KG_ERR_ARG, "tune: %d prompt tokens exceed the model's context (%d)", pp, info.n_ctx);
    uint64_t s = 1234567;
    for (int i = 0; !st && i < (pp > tg ? pp : tg); i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((s >> 33) % (uint64_t)info.n_vocab);
    }
    double v[2][2][8];
    for (int r = -1; !st && r < rounds; r++) /* r = -1: the warm-up */
        for (int i = 0; i < 2 && !st; i++) {
            const int w = (r + i + 2) % 2; /* which model first: alternating */
            double tp, td;
            st = one(&l[w], toks, pp, false, &tp);
            if (!st) st = one(&l[w], toks, tg, true, &td);
            if (!st && r >= 0) v[w][0][r] = tp, v[w][1][r] = td;
        }
    for (int w = 0; !st && w < 2; w++)
        for (int k = 0; k < 2; k++) {
            qsort(v[w][k], rounds, sizeof(double), dcmp);
            const double med = ab->tps[w][k] = v[w][k][rounds / 2];
            if (w) continue;
            double dev[8];
            for (int r = 0; r < rounds; r++) dev[r] = v[w][k][r] > med ? v[w][k][r] - med : med - v[w][k][r];
            qsort(dev, rounds, sizeof(double), dcmp);
            ab->noise[k] = dev[rounds / 2] / med;
        }
    ab->pp = pp, ab->tg = tg, ab->rounds = rounds;
    free(toks);
    gen_unload(&l[0]);
    gen_unload(&l[1]);
    return st;
}
