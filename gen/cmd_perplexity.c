/*
 * cmd_perplexity.c — `kgen perplexity`: a model's perplexity over a text,
 * as llama.cpp's perplexity tool defines it, and with --kl-base the mean KL
 * divergence and top-1 agreement against a base model run in lockstep on
 * the same tokens (no stored logits).
 *
 * The text is tokenized once (with BOS where the model adds one) and cut
 * into chunks of ctx tokens (the rest is dropped); in each chunk, its first
 * token replaced by BOS where the model adds one, the tokens of the second
 * half are scored: the logits at position j (first = ctx/2 <= j < ctx - 1)
 * predict token j + 1, giving -log p(token). The first half is one prefill
 * (whose last logits score the first token), the rest one decode step each:
 * the C ABI returns the last position's logits only.
 */
#include "cli.h"
#include "internal.h"
#include "json.h"
#include "loader.h"
#include "tmpfile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: kgen perplexity MODEL --file TEXT [--ctx N] [--chunks N] [--kl-base BASE] [--json] [options]\n"
    "\n"
    "Perplexity of MODEL over TEXT as llama.cpp's perplexity tool defines it: the\n"
    "text's tokens (with BOS where the model adds one) cut into chunks of --ctx\n"
    "tokens, the rest dropped; in each chunk (its first token BOS where the model\n"
    "adds one) every token of the second half is predicted from those before it,\n"
    "and ppl = exp(mean of -log p(token)). MODEL and BASE: a GGUF file or Hugging\n"
    "Face directory (compiled through the cache) or a compiled model (.so).\n"
    "  --file PATH       the text (UTF-8; read as plain text, special-token text\n"
    "                    included)\n"
    "  --ctx N           tokens per chunk (default 512; at most the model's context)\n"
    "  --chunks N        score the first N chunks only (default: all)\n"
    "  --kl-base BASE    also run BASE (the same vocabulary) on the same tokens, in\n"
    "                    lockstep: mean and largest KL(p_BASE || p_MODEL) per scored\n"
    "                    token, in nats, and how often the two agree on the most\n"
    "                    likely token (top-1); BASE's perplexity too\n"
    "  --json            one JSON object: ppl, ppl_stderr, nll (mean), tokens\n"
    "                    (scored), chunks, ctx, seconds; with --kl-base also kl,\n"
    "                    kl_max, top1, base_ppl\n"
    "  --dump-tokens PATH  write the text's token ids (int32, this machine's byte\n"
    "                    order) before the chunks are cut\n"
    "  -t, --threads N   threads (default: all CPUs)\n"
    "  --kv f16|q8|f32   MODEL's KV cache type (GGUF/HF only; BASE keeps f16)\n"
    "  --cpu CPU, --tuning FILE, --no-cache   for MODEL, as in kgen run\n"
    "  --quant SCHEME, --quant-tensor PATTERN=SCHEME, --requant   MODEL quantized\n"
    "                    at compile time, as kgen compile does it (BASE as it is)\n"
    "Progress goes to stderr, one line per chunk.\n";

typedef struct {
    const char *model, *base, *file, *dump;
    int ctx, chunks;
    bool json;
    gen_load_opts lo;
    cli_quant q;
} ppl_args;

/* 0 or 2: exit with it; -1: go on */
static int parse(int argc, char **argv, ppl_args *a)
{
    a->ctx = 512;
    a->lo.progress = true;
    cli c = {"perplexity", argc, argv, 0};
    for (c.i = 0; c.i < argc; c.i++) {
        const char *o = argv[c.i];
        int64_t n;
        bool ok = true;
        const int qo = cli_quant_opt(&c, &a->q);
        if (qo) {
            if (qo < 0) return 2;
        } else if (cli_is(o, "-h", "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (cli_is(o, "-f", "--file")) ok = (a->file = cli_value(&c)) != NULL;
        else if (cli_is(o, NULL, "--kl-base")) ok = (a->base = cli_value(&c)) != NULL;
        else if (cli_is(o, NULL, "--dump-tokens")) ok = (a->dump = cli_value(&c)) != NULL;
        else if (cli_is(o, NULL, "--json")) a->json = true;
        else if (cli_is(o, "-c", "--ctx")) {
            if ((ok = cli_int(&c, 4, 1 << 20, &n))) a->ctx = (int)n;
        } else if (cli_is(o, NULL, "--chunks")) {
            if ((ok = cli_int(&c, 1, 1 << 24, &n))) a->chunks = (int)n;
        } else if (cli_is(o, "-t", "--threads")) {
            if ((ok = cli_int(&c, 1, 256, &n))) a->lo.open.n_threads = (int)n;
        } else if (cli_is(o, NULL, "--no-cache")) a->lo.no_cache = true;
        else if (cli_is(o, NULL, "--cpu")) ok = (a->lo.cpu = cli_value(&c)) != NULL;
        else if (cli_is(o, NULL, "--tuning")) ok = (a->lo.tuning = cli_value(&c)) != NULL;
        else if (cli_is(o, NULL, "--kv")) {
            ok = (a->lo.kv = cli_value(&c)) != NULL;
            if (ok && gen_kv_type(a->lo.kv) < 0) {
                fprintf(stderr, "kgen perplexity: --kv %s: expected " GEN_KV_NAMES "\n", a->lo.kv);
                return 2;
            }
        } else if (o[0] == '-' && o[1]) {
            fprintf(stderr, "kgen perplexity: unknown option '%s' (see kgen perplexity --help)\n", o);
            return 2;
        } else if (a->model) {
            fprintf(stderr, "kgen perplexity: more than one model given ('%s' and '%s'); the base goes after --kl-base\n",
                    a->model, o);
            return 2;
        } else a->model = o;
        if (!ok) return 2;
    }
    if (!a->model || !a->file) {
        fprintf(stderr, "kgen perplexity: %s\n%s", a->model ? "no text (--file PATH)" : "no model given", usage);
        return 2;
    }
    if (!cli_quant_spec(&c, &a->q, &a->lo.quant)) return 2;
    a->lo.requant = a->q.requant;
    if (a->dump && (gen_same_file(a->dump, a->model) || gen_same_file(a->dump, a->file) ||
                    (a->base && gen_same_file(a->dump, a->base)))) {
        fprintf(stderr, "kgen perplexity: --dump-tokens %s: that is an input: refusing to overwrite it\n", a->dump);
        return 2;
    }
    return -1;
}

/* log sum_v e^l[v], in double (max + log of the shifted sum); e (when not
 * NULL) gets e^(l[v] - max), whose sum is e^(lse - max) */
static double log_sum_exp(const float *l, int n, double *e, double *sum)
{
    double m = l[0], s = 0;
    for (int v = 1; v < n; v++) m = l[v] > m ? l[v] : m;
    for (int v = 0; v < n; v++) {
        const double x = exp((double)l[v] - m);
        if (e) e[v] = x;
        s += x;
    }
    if (sum) *sum = s;
    return m + log(s);
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int v = 1; v < n; v++) b = x[v] > x[b] ? v : b;
    return b;
}

typedef struct {
    double nll, nll2, base_nll, kl, kl_max;
    long n, top1;
} ppl_sums;

/* the text's tokens with BOS where the model adds one (malloc'd; *bos the
 * BOS id or -1), or NULL with the reason in kg_last_error() */
static int32_t *tokenize(const gen_loaded *l, const char *what, const char *text, size_t len, int *n, int32_t *bos)
{
    const kgm_api_v2 *api = l->api;
    int32_t b[4];
    *bos = api->tokenize(l->m, "", 0, KGM_TOK_BOS, b, 4) == 1 ? b[0] : -1;
    const int nt = api->tokenize(l->m, text, len, KGM_TOK_BOS, NULL, 0);
    if (nt < 0) {
        kg_err(KG_ERR_FORMAT, "%s: %s", what, api->error(l->m));
        return NULL;
    }
    int32_t *t = malloc((size_t)(nt > 0 ? nt : 1) * sizeof *t);
    if (!t || (nt > 0 && api->tokenize(l->m, text, len, KGM_TOK_BOS, t, nt) != nt)) {
        free(t);
        kg_err(KG_ERR_NOMEM, "%s: out of memory", what);
        return NULL;
    }
    *n = nt;
    return t;
}

/* scores one position: p (the model's logits) and q (the base's, or NULL)
 * for the token `next`; e: n_vocab doubles of scratch. One pass of
 * exponentials per model: p_base[v] = e[v] / sum, and KL = sum_v
 * p_base[v] (log p_base[v] - log p[v]). */
static void score(const float *p, const float *q, int nv, int32_t next, double *e, ppl_sums *s)
{
    const double lse_p = log_sum_exp(p, nv, NULL, NULL), nll = lse_p - p[next];
    s->nll += nll, s->nll2 += nll * nll, s->n++;
    if (!q) return;
    double sum;
    const double lse_q = log_sum_exp(q, nv, e, &sum);
    double kl = 0;
    for (int v = 0; v < nv; v++) kl += e[v] * (((double)q[v] - lse_q) - ((double)p[v] - lse_p));
    kl /= sum;
    kl = kl > 0 ? kl : 0; /* rounding can leave -1e-17 for identical models */
    s->kl += kl, s->kl_max = kl > s->kl_max ? kl : s->kl_max;
    s->base_nll += lse_q - q[next];
    s->top1 += argmax(p, nv) == argmax(q, nv);
}

/* the chunk's tokens t[0..ctx) through the model (and the base): the first
 * half as one prefill, then a decode per token; scores positions
 * first..ctx-2. false with the reason in kg_last_error(). */
static bool run_chunk(gen_loaded *m, gen_loaded *b, const int32_t *t, int ctx, int nv, double *e, ppl_sums *s)
{
    const int first = ctx / 2;
    gen_loaded *ls[2] = {m, b};
    const float *lg[2] = {NULL, NULL};
    for (int j = first; j < ctx - 1; j++) {
        for (int i = 0; i < 2 && ls[i]; i++) {
            const kgm_api_v2 *api = ls[i]->api;
            lg[i] = j == first ? api->prefill(ls[i]->m, t, first + 1, 0) : api->decode(ls[i]->m, t[j], j);
            if (!lg[i]) {
                kg_err(KG_ERR_ARG, "%s", api->error(ls[i]->m));
                return false;
            }
        }
        score(lg[0], lg[1], nv, t[j + 1], e, s);
    }
    return true;
}

static kg_status write_tokens(const char *path, const int32_t *t, int n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return kg_err(KG_ERR_IO, "%s: %s", path, strerror(errno));
    bool ok = fwrite(t, sizeof *t, (size_t)n, f) == (size_t)n;
    ok = fclose(f) == 0 && ok;
    return ok ? KG_OK : kg_err(KG_ERR_IO, "%s: write failed", path);
}

static void report(const ppl_args *a, const ppl_sums *s, int chunks, double secs)
{
    const double mean = s->nll / (double)s->n, ppl = exp(mean);
    const double var = s->n > 1 ? (s->nll2 / (double)s->n - mean * mean) * (double)s->n / (double)(s->n - 1) : 0;
    const double se = ppl * sqrt((var > 0 ? var : 0) / (double)s->n); /* delta method: d exp(m) = exp(m) dm */
    if (a->json) {
        json j;
        json_begin(&j, stdout);
        json_key(&j, "ppl"), json_f64(&j, ppl);
        json_key(&j, "ppl_stderr"), json_f64(&j, se);
        json_key(&j, "nll"), json_f64(&j, mean);
        json_key(&j, "tokens"), json_i64(&j, s->n);
        json_key(&j, "chunks"), json_i64(&j, chunks);
        json_key(&j, "ctx"), json_i64(&j, a->ctx);
        if (a->base) {
            json_key(&j, "kl"), json_f64(&j, s->kl / (double)s->n);
            json_key(&j, "kl_max"), json_f64(&j, s->kl_max);
            json_key(&j, "top1"), json_f64(&j, (double)s->top1 / (double)s->n);
            json_key(&j, "base_ppl"), json_f64(&j, exp(s->base_nll / (double)s->n));
        }
        json_key(&j, "seconds"), json_f64(&j, secs);
        json_end(&j);
        return;
    }
    printf("perplexity %.4f +/- %.4f over %ld tokens (%d chunk%s of %d)\n", ppl, se, s->n, chunks,
           chunks == 1 ? "" : "s", a->ctx);
    if (a->base)
        printf("against %s (perplexity %.4f): mean KL %.6f nats, largest %.6f; top-1 agreement %.2f%%\n", a->base,
               exp(s->base_nll / (double)s->n), s->kl / (double)s->n, s->kl_max,
               100.0 * (double)s->top1 / (double)s->n);
}

static int evaluate(const ppl_args *a, gen_loaded *m, gen_loaded *b, const char *text, size_t len)
{
    kgm_info im, ib;
    m->api->describe(m->m, &im);
    if (b) b->api->describe(b->m, &ib);
    if (im.n_vocab <= 0) {
        fprintf(stderr, "kgen perplexity: %s: not a decoder (no vocabulary of logits)\n", a->model);
        return 1;
    }
    if (im.n_ctx < a->ctx || (b && ib.n_ctx < a->ctx)) {
        const bool mb = im.n_ctx < a->ctx;
        fprintf(stderr, "kgen perplexity: --ctx %d: %s holds %d tokens at most: choose a smaller --ctx\n", a->ctx,
                mb ? a->model : a->base, mb ? im.n_ctx : ib.n_ctx);
        return 1;
    }
    if (b && ib.n_vocab != im.n_vocab) {
        fprintf(stderr, "kgen perplexity: --kl-base %s: its vocabulary has %d tokens, %s's %d: KL needs the same one\n",
                a->base, ib.n_vocab, a->model, im.n_vocab);
        return 1;
    }
    int n = 0, nb = 0;
    int32_t bos, bos_b, *t = tokenize(m, a->model, text, len, &n, &bos), *tb = NULL;
    if (!t) {
        fprintf(stderr, "kgen perplexity: %s\n", kg_last_error());
        return 1;
    }
    if (b) {
        if (!(tb = tokenize(b, a->base, text, len, &nb, &bos_b))) {
            fprintf(stderr, "kgen perplexity: --kl-base: %s\n", kg_last_error());
            free(t);
            return 1;
        }
        const bool same = nb == n && bos_b == bos && !memcmp(t, tb, (size_t)n * sizeof *t);
        free(tb);
        if (!same) {
            fprintf(stderr, "kgen perplexity: --kl-base %s tokenizes %s differently from %s: KL needs the same "
                            "tokens\n", a->base, a->file, a->model);
            free(t);
            return 1;
        }
    }
    if (a->dump && write_tokens(a->dump, t, n)) {
        fprintf(stderr, "kgen perplexity: %s\n", kg_last_error());
        free(t);
        return 1;
    }
    int chunks = n / a->ctx;
    if (chunks == 0) {
        fprintf(stderr, "kgen perplexity: %s: %d tokens, fewer than one chunk of %d (--ctx)\n", a->file, n, a->ctx);
        free(t);
        return 1;
    }
    if (a->chunks && a->chunks < chunks) chunks = a->chunks;
    double *e = malloc((size_t)im.n_vocab * sizeof *e);
    if (!e) {
        fprintf(stderr, "kgen perplexity: out of memory\n");
        free(t);
        return 1;
    }
    ppl_sums s = {0};
    const double t0 = gen_now_s();
    int rc = 0;
    for (int c = 0; c < chunks && !rc; c++) {
        int32_t *ch = t + (size_t)c * (size_t)a->ctx, keep = ch[0];
        if (bos >= 0) ch[0] = bos;
        if (!run_chunk(m, b, ch, a->ctx, im.n_vocab, e, &s)) {
            fprintf(stderr, "kgen perplexity: chunk %d: %s\n", c + 1, kg_last_error());
            rc = 1;
        }
        ch[0] = keep;
        const double el = gen_now_s() - t0;
        if (!rc)
            fprintf(stderr, "kgen perplexity: chunk %d/%d: perplexity so far %.4f; %.1f s, about %.0f s left\n", c + 1,
                    chunks, exp(s.nll / (double)s.n), el, el / (c + 1) * (chunks - c - 1));
    }
    if (!rc) report(a, &s, chunks, gen_now_s() - t0);
    free(t), free(e);
    return rc;
}

int cmd_perplexity(int argc, char **argv)
{
    ppl_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc >= 0) return rc;
    size_t len = 0;
    char *text = cli_read_file(a.file, &len);
    if (!text) {
        fprintf(stderr, "kgen perplexity: %s\n", kg_last_error());
        return 1;
    }
    gen_load_opts lo = a.lo, lob = {.progress = true};
    lo.open.n_ctx = lob.open.n_ctx = a.ctx;
    lob.open.n_threads = a.lo.open.n_threads;
    gen_loaded m, b;
    if (gen_load(a.model, &lo, &m)) {
        fprintf(stderr, "kgen perplexity: %s (--ctx %d)\n", kg_last_error(), a.ctx);
        free(text);
        return 1;
    }
    if (a.base && gen_load(a.base, &lob, &b)) {
        fprintf(stderr, "kgen perplexity: --kl-base: %s (--ctx %d)\n", kg_last_error(), a.ctx);
        gen_unload(&m);
        free(text);
        return 1;
    }
    rc = evaluate(&a, &m, a.base ? &b : NULL, text, len);
    if (a.base) gen_unload(&b);
    gen_unload(&m);
    free(text);
    return rc;
}
