/*
 * cmd_bench.c — `kgen bench`: prefill and decode speed of a model, like
 * llama-bench (each test repeated, mean ± sd of tokens/s), plus the cold
 * compile time (GGUF: compiled in a child process, so its memory does not
 * count), the time to open the model from the cache, and peak RSS.
 *
 *   pp N   prefill of N random tokens into an empty cache (timed: the
 *          kgm_prefill call only; no tokenization, no sampling)
 *   tg N   N decode steps from an empty cache (timed: the kgm_decode calls)
 *   --depth D  both from a cache already holding D tokens instead: D random
 *          tokens are prefilled once per test (not timed), and every run
 *          then starts at position D, overwriting the previous run's rows
 *
 * An encoder (BERT) is measured instead by embedding batches of --bs
 * sequences of --seq-len random word pieces ([CLS] ... [SEP]; timed: the
 * kgm_embed_tokens call): sentences/s and the latency of one call.
 */
#include "config.h"
#include "cli.h"
#include "internal.h"
#include "json.h"
#include "loader.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: kgen bench MODEL [--pp 64,512] [--tg 128] [--depth D] [-r N] [-t THREADS]\n"
    "                  [--json] [--cpu CPU | --target cuda[:sm_NN]] [--kv f16|q8|f32]\n"
    "                  [--tuning FILE] [--bs 1,32] [--seq-len 128]\n"
    "MODEL: a GGUF file, a Hugging Face directory or a compiled model (.so).\n"
    "\n"
    "  --pp LIST   prompt lengths for the prefill tests (default 64; 0: none)\n"
    "  --tg LIST   token counts for the decode tests (default 128; 0: none)\n"
    "  --depth D   run the tests after D tokens already in the KV cache (default 0;\n"
    "              prefilled once per test, not timed): long-context speed\n"
    "  -r N        repetitions of each test (default 5), after one warm-up run\n"
    "  -t N        threads (default: all CPUs)\n"
    "  --json      one JSON object on stdout instead of the table\n"
    "  --kv TYPE   the KV cache's type when compiling (GGUF or directory; default f16)\n"
    "  --tuning FILE  compile with a tuning file's knobs (see kgen tune)\n"
    "  --quant SCHEME, --quant-tensor PATTERN=SCHEME, --requant   quantize the\n"
    "              weights when compiling (see kgen compile)\n"
    "For an encoder (BERT, e.g. a sentence-transformers directory):\n"
    "  --bs LIST     sequences per call (default 1,32)\n"
    "  --seq-len N   word pieces per sequence, [CLS] and [SEP] included (default 128)\n"
    "For a GGUF file or a Hugging Face directory it also measures the cold\n"
    "compile (in a child process; the result goes to the cache) and the open\n"
    "from the cache.\n";

#define MAX_TESTS 16

/* "64,512": integers 0..2^20 (0s dropped); the count, or -1 */
static int parse_list(const char *s, int *out, int cap)
{
    int n = 0;
    char item[32];
    for (const char *p = s;; p++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int64_t v;
        if (len >= sizeof item) return -1;
        memcpy(item, p, len);
        item[len] = 0;
        if (!cli_parse_i64(item, 0, 1 << 20, &v)) return -1;
        if (v && n == cap) return -1;
        if (v) out[n++] = (int)v;
        if (!e) return n;
        p = e;
    }
}

typedef struct {
    int n;
    double mean, sd;
    double samples[64];
    int ns;
} result;

static void stats(result *r)
{
    double s = 0, q = 0;
    for (int i = 0; i < r->ns; i++) s += r->samples[i];
    r->mean = s / r->ns;
    for (int i = 0; i < r->ns; i++) q += (r->samples[i] - r->mean) * (r->samples[i] - r->mean);
    r->sd = r->ns > 1 ? sqrt(q / (r->ns - 1)) : 0;
}

/* Compile in a child (fresh address space: its peak memory is not ours). */
static kg_status cold_compile(const char *model, const gen_load_opts *lo, double *secs)
{
    double t0 = gen_now_s();
    pid_t pid = fork();
    if (pid < 0) return kg_err(KG_ERR_IO, "fork: %s", strerror(errno));
    if (pid == 0) {
        gen_load_opts o = *lo;
        o.force_compile = true;
        o.progress = false;
        o.open.n_threads = 1;
        gen_loaded l;
        kg_status st = gen_load(model, &o, &l);
        if (st) fprintf(stderr, "kgen bench: %s\n", kg_last_error());
        else gen_unload(&l);
        _exit(st ? 1 : 0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    *secs = gen_now_s() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status)) return kg_err(KG_ERR_IO, "%s: the compile failed", model);
    return KG_OK;
}

static int run_tests(gen_loaded *l, const int *lens, int nl, bool decode, int depth, int reps, result *res)
{
    const kgm_api_v2 *api = l->api;
    kgm_info info;
    api->describe(l->m, &info);
    for (int t = 0; t < nl; t++) {
        int n = lens[t];
        if (n > info.n_ctx - depth) {
            fprintf(stderr, "kgen bench: %s %d after depth %d exceeds the context (%d)\n", decode ? "tg" : "pp", n,
                    depth, info.n_ctx);
            return 1;
        }
        int32_t *toks = malloc((size_t)(n + depth) * sizeof *toks);
        if (!toks) return 1;
        uint64_t s = 1234567;
        for (int i = 0; i < n + depth; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            toks[i] = (int32_t)((s >> 33) % (uint64_t)info.n_vocab);
        }
        res[t].n = n;
        res[t].ns = 0;
        /* the timed tokens toks[0..n) (as without --depth); the context
         * before them toks[n..n+depth), prefilled once */
        const int32_t *run = toks, *prefix = toks + n;
        api->reset(l->m);
        bool ok = depth == 0 || api->prefill(l->m, prefix, depth, 0) != NULL;
        if (!ok) {
            fprintf(stderr, "kgen bench: --depth %d: %s\n", depth, api->error(l->m));
            free(toks);
            return 1;
        }
        for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
            if (depth == 0) api->reset(l->m);
            double t0 = gen_now_s();
            if (decode)
                for (int i = 0; i < n && ok; i++) ok = api->decode(l->m, run[i], depth + i) != NULL;
            else
                ok = api->prefill(l->m, run, n, depth) != NULL;
            double dt = gen_now_s() - t0;
            if (!ok) {
                fprintf(stderr, "kgen bench: %s\n", api->error(l->m));
                free(toks);
                return 1;
            }
            if (r >= 0 && res[t].ns < 64) res[t].samples[res[t].ns++] = n / dt;
        }
        stats(&res[t]);
        free(toks);
    }
    return 0;
}

/* An encoder: embed_tokens of bs[t] random sequences of len tokens. res:
 * sentences/s; lat: ms per call. */
static int run_embed(gen_loaded *l, const int *bs, int nb, int len, int reps, result *res, result *lat)
{
    const kgm_api_v2 *api = l->api;
    kgm_info info;
    api->describe(l->m, &info);
    int32_t cs[2];
    if (len < 2 || len > info.n_ctx || api->tokenize(l->m, "", 0, KGM_TOK_BOS, cs, 2) != 2) {
        fprintf(stderr, "kgen bench: --seq-len %d: the model takes 2..%d tokens per sequence\n", len, info.n_ctx);
        return 1;
    }
    int maxb = 0;
    for (int t = 0; t < nb; t++) maxb = bs[t] > maxb ? bs[t] : maxb;
    int32_t *toks = malloc((size_t)maxb * (size_t)len * sizeof *toks);
    const int32_t **rows = malloc((size_t)maxb * sizeof *rows);
    int *lens = malloc((size_t)maxb * sizeof *lens);
    float *out = malloc((size_t)maxb * (size_t)api->embed_dim(l->m) * sizeof *out);
    int rc = toks && rows && lens && out ? 0 : 1;
    uint64_t s = 1234567;
    for (int b = 0; !rc && b < maxb; b++) {
        int32_t *r = toks + (size_t)b * len;
        r[0] = cs[0], r[len - 1] = cs[1];
        for (int i = 1; i < len - 1; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            r[i] = (int32_t)(1000 + (s >> 33) % (uint64_t)(info.n_vocab - 1000)); /* word pieces, not specials */
        }
        rows[b] = r, lens[b] = len;
    }
    for (int t = 0; !rc && t < nb; t++) {
        res[t].n = lat[t].n = bs[t];
        res[t].ns = lat[t].ns = 0;
        for (int r = -1; r < reps && !rc; r++) { /* r = -1: warm-up */
            double t0 = gen_now_s();
            rc = api->embed_tokens(l->m, rows, lens, bs[t], out) == bs[t] ? 0 : 1;
            double dt = gen_now_s() - t0;
            if (rc) fprintf(stderr, "kgen bench: %s\n", api->error(l->m));
            if (r >= 0 && res[t].ns < 64) res[t].samples[res[t].ns++] = bs[t] / dt, lat[t].samples[lat[t].ns++] = dt * 1e3;
        }
        if (!rc) stats(&res[t]), stats(&lat[t]);
    }
    free(toks), free(rows), free(lens), free(out);
    return rc;
}

static void json_results(json *j, const char *key, const result *r, int n)
{
    json_key(j, key);
    json_arr(j);
    for (int i = 0; i < n; i++) {
        json_obj(j);
        json_key(j, "n"), json_i64(j, r[i].n);
        json_key(j, "tps"), json_f64(j, r[i].mean);
        json_key(j, "sd"), json_f64(j, r[i].sd);
        json_key(j, "samples");
        json_arr(j);
        for (int k = 0; k < r[i].ns; k++) json_f64(j, r[i].samples[k]);
        json_close_arr(j);
        json_close_obj(j);
    }
    json_close_arr(j);
}

int cmd_bench(int argc, char **argv)
{
    const char *model = NULL;
    int pp[MAX_TESTS] = {64}, tg[MAX_TESTS] = {128}, npp = 1, ntg = 1, reps = 5;
    int bs[MAX_TESTS] = {1, 32}, nbs = 2, seq_len = 128, depth = 0;
    bool as_json = false;
    gen_load_opts lo = {0};
    cli c = {"bench", argc, argv, 0};
    cli_quant q = {0};
    for (c.i = 0; c.i < argc; c.i++) {
        const char *o = argv[c.i], *v;
        int64_t n;
        const int qo = cli_quant_opt(&c, &q);
        if (qo) {
            if (qo < 0) return 2;
        } else if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(o, "--json")) {
            as_json = true;
        } else if (!strcmp(o, "--pp") || !strcmp(o, "--tg")) {
            bool is_pp = o[3] == 'p';
            if (!(v = cli_value(&c))) return 2;
            int k = parse_list(v, is_pp ? pp : tg, MAX_TESTS);
            if (k < 0) {
                fprintf(stderr, "kgen bench: %s %s: expected a comma-separated list of at most %d integers from 0 to %d\n",
                        o, v, MAX_TESTS, 1 << 20);
                return 2;
            }
            *(is_pp ? &npp : &ntg) = k;
        } else if (!strcmp(o, "--bs")) {
            if (!(v = cli_value(&c))) return 2;
            if ((nbs = parse_list(v, bs, MAX_TESTS)) <= 0) {
                fprintf(stderr, "kgen bench: --bs %s: expected a comma-separated list of batch sizes\n", v);
                return 2;
            }
        } else if (!strcmp(o, "--seq-len")) {
            if (!cli_int(&c, 2, 1 << 16, &n)) return 2;
            seq_len = (int)n;
        } else if (!strcmp(o, "--depth")) {
            if (!cli_int(&c, 0, 1 << 20, &n)) return 2;
            depth = (int)n;
        } else if (!strcmp(o, "-r")) {
            if (!cli_int(&c, 1, 64, &n)) return 2;
            reps = (int)n;
        } else if (!strcmp(o, "-t")) {
            if (!cli_int(&c, 1, 256, &n)) return 2;
            lo.open.n_threads = (int)n;
        } else if (!strcmp(o, "--cpu")) {
            if (!(lo.cpu = cli_value(&c))) return 2;
        } else if (!strcmp(o, "--target")) {
            if (!(lo.cuda = cli_value(&c))) return 2;
        } else if (!strcmp(o, "--tuning")) {
            if (!(lo.tuning = cli_value(&c))) return 2;
        } else if (!strcmp(o, "--kv")) {
            if (!(lo.kv = cli_value(&c))) return 2;
            if (gen_kv_type(lo.kv) < 0) {
                fprintf(stderr, "kgen bench: --kv %s: expected " GEN_KV_NAMES "\n", lo.kv);
                return 2;
            }
        } else if (o[0] == '-') {
            fprintf(stderr, "kgen bench: unknown option '%s' (see kgen bench --help)\n", o);
            return 2;
        } else if (model) {
            fprintf(stderr, "kgen bench: more than one model given ('%s' and '%s')\n", model, o);
            return 2;
        } else {
            model = o;
        }
    }
    if (!model) {
        fputs(usage, stderr);
        return 2;
    }
    if (!cli_quant_spec(&c, &q, &lo.quant)) return 2;
    lo.requant = q.requant;
    int maxlen = 0;
    for (int i = 0; i < npp; i++) maxlen = pp[i] > maxlen ? pp[i] : maxlen;
    for (int i = 0; i < ntg; i++) maxlen = tg[i] > maxlen ? tg[i] : maxlen;
    maxlen += depth;
    lo.open.n_ctx = maxlen > 4096 ? maxlen : 0; /* 0: the model's default (min(its context, 4096)) */
    double compile_s = -1;
    size_t ml = strlen(model);
    struct stat sb;
    bool gguf = (ml > 5 && !strcmp(model + ml - 5, ".gguf")) || (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode));
    if (gguf && cold_compile(model, &lo, &compile_s)) {
        fprintf(stderr, "kgen bench: %s\n", kg_last_error());
        return 1;
    }
    gen_loaded l;
    if (gen_load(model, &lo, &l)) {
        fprintf(stderr, "kgen bench: %s\n", kg_last_error());
        return 1;
    }
    kgm_info info;
    l.api->describe(l.m, &info);
    result rp[MAX_TESTS], rg[MAX_TESTS];
    const bool enc = l.api->embed_dim(l.m) > 0;
    int rc = enc ? run_embed(&l, bs, nbs, seq_len, reps, rp, rg) : run_tests(&l, pp, npp, false, depth, reps, rp);
    if (!rc && !enc) rc = run_tests(&l, tg, ntg, true, depth, reps, rg);
    if (enc) npp = ntg = nbs;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = ru.ru_maxrss / 1024.0, open_s = l.lookup_s + l.open_s;
    if (!rc && as_json) {
        json j;
        json_begin(&j, stdout);
        json_key(&j, "model"), json_str(&j, model);
        json_key(&j, "name"), json_str(&j, info.name);
        json_key(&j, "weight_type"), json_str(&j, info.weight_type);
        json_key(&j, "backend"), json_str(&j, "cpu");
        json_key(&j, "cpu"), json_str(&j, info.target_cpu);
        json_key(&j, "kgen_version"), json_str(&j, KGEN_VERSION);
        json_key(&j, "threads"), json_i64(&j, info.n_threads);
        json_key(&j, "reps"), json_i64(&j, reps);
        json_key(&j, "depth"), json_i64(&j, depth);
        if (enc) json_key(&j, "seq_len"), json_i64(&j, seq_len);
        json_results(&j, enc ? "sentences_per_s" : "pp", rp, npp); /* encoders: n is the batch */
        json_results(&j, enc ? "latency_ms" : "tg", rg, ntg);
        json_key(&j, "compile_s");
        if (compile_s >= 0) json_f64(&j, compile_s);
        else json_null(&j);
        json_key(&j, "open_s"), json_f64(&j, open_s);
        json_key(&j, "open_lookup_s"), json_f64(&j, l.lookup_s); /* hash the GGUF, find and verify the cache entry */
        json_key(&j, "open_load_s"), json_f64(&j, l.open_s);     /* dlopen + kgm_open */
        json_key(&j, "peak_rss_mb"), json_f64(&j, rss_mb);
        json_key(&j, "weights_mb"), json_f64(&j, info.weight_bytes / 1048576.0);
        json_key(&j, "kv_mb"), json_f64(&j, info.kv_bytes / 1048576.0);
        json_key(&j, "n_ctx"), json_i64(&j, info.n_ctx);
        json_end(&j);
    } else if (!rc && enc) {
        printf("| model | type | threads | batch x tokens | sentences/s | latency (ms) |\n|---|---|---:|---|---:|---:|\n");
        for (int i = 0; i < nbs; i++)
            printf("| %s | %s | %d | %d x %d | %.2f ± %.2f | %.2f ± %.2f |\n", info.name[0] ? info.name : model,
                   info.weight_type, info.n_threads, bs[i], seq_len, rp[i].mean, rp[i].sd, rg[i].mean, rg[i].sd);
        if (compile_s >= 0) printf("cold compile %.2f s; ", compile_s);
        printf("open %.1f ms; peak RSS %.1f MB (weights %.1f MB)\n", open_s * 1e3, rss_mb, info.weight_bytes / 1048576.0);
    } else if (!rc) {
        printf("| model | type | threads | test | tokens/s |\n|---|---|---:|---|---:|\n");
        char at[32] = "";
        if (depth) snprintf(at, sizeof at, " @ d%d", depth);
        for (int i = 0; i < npp; i++)
            printf("| %s | %s | %d | pp%d%s | %.2f ± %.2f |\n", info.name[0] ? info.name : model, info.weight_type,
                   info.n_threads, rp[i].n, at, rp[i].mean, rp[i].sd);
        for (int i = 0; i < ntg; i++)
            printf("| %s | %s | %d | tg%d%s | %.2f ± %.2f |\n", info.name[0] ? info.name : model, info.weight_type,
                   info.n_threads, rg[i].n, at, rg[i].mean, rg[i].sd);
        if (compile_s >= 0) printf("cold compile %.2f s; ", compile_s);
        printf("open from %s %.1f ms; peak RSS %.1f MB (weights %.1f MB, KV cache %.1f MB for %d tokens)\n",
               gguf ? "the cache" : "the .so", open_s * 1e3, rss_mb, info.weight_bytes / 1048576.0,
               info.kv_bytes / 1048576.0, info.n_ctx);
    }
    gen_unload(&l);
    return rc;
}
