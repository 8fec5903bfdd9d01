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

static int dcmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* what one test times */
typedef struct ab_in {
    const int32_t *toks; /* decoders: the tokens; encoders: `bs` rows of `len` */
    const int32_t **rows;
    int *lens;
    float *out;
    int n, len;          /* tokens (decoders) or sequences (encoders) */
} ab_in;

/* tokens (encoders: sentences) per second of one prefill of n tokens,
 * decode of n steps, or embedding of n sequences */
static kg_status one(gen_loaded *l, const ab_in *in, int kind, double *tps)
{
    const kgm_api_v2 *api = l->api;
    bool ok = true;
    if (kind < 2) api->reset(l->m);
    const double t0 = gen_now_s();
    if (kind == 1)
        for (int i = 0; i < in->n && ok; i++) ok = api->decode(l->m, in->toks[i], i) != NULL;
    else if (kind == 0)
        ok = api->prefill(l->m, in->toks, in->n, 0) != NULL;
    else
        ok = api->embed_tokens(l->m, in->rows, in->lens, in->n, in->out) == in->n;
    const double dt = gen_now_s() - t0;
    if (!ok) return kg_err(KG_ERR_ARG, "tune: %s", api->error(l->m));
    *tps = in->n / dt;
    return KG_OK;
}

kg_status gen_tune_compare(const gen_tune_opts *o, const char *tuning, gen_tune_ab *ab)
{
    memset(ab, 0, sizeof *ab);
    const int pp = o->pp > 0 ? o->pp : 64, tg = 32, rounds = 5;
    gen_load_opts lo = {0};
    lo.open.n_threads = o->threads;
    lo.quant = o->quant, lo.requant = o->requant;
    lo.tuning = "none"; /* the default model: no records (not the database's) */
    gen_loaded l[2];
    memset(l, 0, sizeof l);
    kg_status st = gen_load(o->model, &lo, &l[0]);
    lo.tuning = tuning;
    if (!st) st = gen_load(o->model, &lo, &l[1]);
    kgm_info info = {0};
    if (!st) l[0].api->describe(l[0].m, &info);
    const bool enc = !st && l[0].api->embed_dim(l[0].m) > 0;
    /* decoders: a prefill of pp tokens, a decode of tg; encoders: a batch
     * of 32 sequences and one, of up to 128 tokens each */
    const int len = enc ? (info.n_ctx < 128 ? info.n_ctx : 128) : 0, nb = 32;
    const int ntok = enc ? nb * len : (pp > tg ? pp : tg);
    int32_t *toks = !st ? malloc((size_t)(ntok > 0 ? ntok : 1) * sizeof *toks) : NULL;
    const int32_t **rows = enc ? malloc(nb * sizeof *rows) : NULL;
    int *lens = enc ? malloc(nb * sizeof *lens) : NULL;
    float *out = enc ? malloc((size_t)nb * (size_t)l[0].api->embed_dim(l[0].m) * sizeof *out) : NULL;
    if (!st && (!toks || (enc && (!rows || !lens || !out)))) st = kg_err(KG_ERR_NOMEM, "out of memory");
    if (!st && !enc && (pp > info.n_ctx || info.n_vocab < 1))
        st = kg_err(KG_ERR_ARG, "tune: %d prompt tokens exceed the model's context (%d)", pp, info.n_ctx);
    if (!st && enc && len < 2) st = kg_err(KG_ERR_ARG, "tune: the encoder takes %d tokens per sequence", info.n_ctx);
    uint64_t s = 1234567;
    for (int i = 0; !st && i < ntok; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((s >> 33) % (uint64_t)info.n_vocab);
    }
    for (int b = 0; !st && enc && b < nb; b++) rows[b] = toks + (size_t)b * len, lens[b] = len;
    const ab_in in[2] = {{toks, rows, lens, out, enc ? nb : pp, len}, {toks, rows, lens, out, enc ? 1 : tg, len}};
    const int kind[2] = {enc ? 2 : 0, enc ? 2 : 1};
    double v[2][2][8];
    for (int r = -1; !st && r < rounds; r++) /* r = -1: the warm-up */
        for (int i = 0; i < 2 && !st; i++) {
            const int w = (r + i + 2) % 2; /* which model first: alternating */
            double t0, t1;
            st = one(&l[w], &in[0], kind[0], &t0);
            if (!st) st = one(&l[w], &in[1], kind[1], &t1);
            if (!st && r >= 0) v[w][0][r] = t0, v[w][1][r] = t1;
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
    if (enc) snprintf(ab->what[0], sizeof ab->what[0], "embed %d x %d tokens", nb, len),
             snprintf(ab->what[1], sizeof ab->what[1], "embed 1 x %d", len), ab->unit = "sentences/s";
    else snprintf(ab->what[0], sizeof ab->what[0], "prefill pp%d", pp),
         snprintf(ab->what[1], sizeof ab->what[1], "decode tg%d", tg), ab->unit = "tok/s";
    ab->rounds = rounds;
    free(toks), free(rows), free(lens), free(out);
    gen_unload(&l[0]);
    gen_unload(&l[1]);
    return st;
}
