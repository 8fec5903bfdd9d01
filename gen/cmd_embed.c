/*
 * cmd_embed.c — `kgen embed`: sentence embeddings from an encoder (a
 * compiled .so, or a Hugging Face directory or GGUF compiled through the
 * cache), one vector per input text, in input order.
 */
#include "cli.h"
#include "internal.h"
#include "json.h"
#include "loader.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: kgen embed MODEL (-p TEXT)... [--file F] [--json] [-t N] [--batch B] [--max-len L]\n"
    "                  [--cpu CPU] [--no-cache] [--compare BASE]\n"
    "\n"
    "Embeds each text with an encoder (BERT: e.g. a sentence-transformers\n"
    "directory such as all-MiniLM-L6-v2) and prints one vector per text, in\n"
    "input order: one line of numbers each, or with --json one object\n"
    "{\"dim\": D, \"embeddings\": [[...], ...]}. MODEL is a compiled encoder\n"
    "(.so), or a Hugging Face directory or GGUF file, compiled on first use\n"
    "into kgen's cache.\n"
    "  -p TEXT       a text (repeatable)\n"
    "  --file F      the texts, one per line (- for stdin); empty lines are texts too\n"
    "  --json        JSON output\n"
    "  -t N          threads (default: the online CPUs)\n"
    "  --batch B     sequences per step when compiling (default 32)\n"
    "  --max-len L   tokens per sequence when compiling (default: the model's\n"
    "                maximum sequence length); longer texts are truncated\n"
    "  --cpu CPU     compile for this CPU (default: this machine)\n"
    "  --no-cache    compile into a temporary file instead of the cache\n"
    "  --quant SCHEME, --quant-tensor PATTERN=SCHEME, --requant   quantize the\n"
    "                weights when compiling (see kgen compile; BASE as it is)\n"
    "  --compare BASE  embed the texts with BASE too (an encoder with the same\n"
    "                dimension, compiled with the same options) and print, instead of\n"
    "                the vectors, the cosine similarity of each text's two embeddings:\n"
    "                mean and minimum (--json: {\"dim\", \"texts\", \"cosine\": [...],\n"
    "                \"cosine_mean\", \"cosine_min\", \"cosine_min_text\"})\n"
    "Timing goes to stderr.\n";

typedef struct texts {
    char **s;
    int n, cap;
} texts;

static bool push(texts *t, const char *s, size_t len)
{
    if (t->n == t->cap) {
        int nc = t->cap ? 2 * t->cap : 64;
        char **q = realloc(t->s, (size_t)nc * sizeof *q);
        if (!q) return false;
        t->s = q, t->cap = nc;
    }
    char *c = malloc(len + 1);
    if (!c) return false;
    memcpy(c, s, len);
    c[len] = 0;
    t->s[t->n++] = c;
    return true;
}

static bool read_lines(texts *t, const char *path)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        fprintf(stderr, "kgen embed: %s: %s\n", path, strerror(errno));
        return false;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool ok = true;
    while (ok && (n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (memchr(line, 0, (size_t)n)) {
            fprintf(stderr, "kgen embed: %s: line %d has a NUL byte\n", path, t->n + 1);
            ok = false;
        } else if (!push(t, line, (size_t)n)) {
            fprintf(stderr, "kgen embed: out of memory\n");
            ok = false;
        }
    }
    if (ok && ferror(f)) {
        fprintf(stderr, "kgen embed: %s: read error\n", path);
        ok = false;
    }
    free(line);
    if (f != stdin) fclose(f);
    return ok;
}

/* every text through the model: *out (malloc'd, n x *dim floats); false
 * after a message */
static bool embed_all(const char *model, const gen_load_opts *lo, const texts *t, float **out, int *dim, double *dt)
{
    gen_loaded l;
    if (gen_load(model, lo, &l)) {
        fprintf(stderr, "kgen embed: %s\n", kg_last_error());
        return false;
    }
    bool ok = false;
    *dim = l.api->embed_dim(l.m);
    *out = *dim > 0 ? malloc((size_t)t->n * (size_t)*dim * sizeof **out) : NULL;
    if (*dim <= 0) fprintf(stderr, "kgen embed: %s: not an encoder (kgen run generates text with it)\n", model);
    else if (!*out) fprintf(stderr, "kgen embed: out of memory\n");
    else {
        const double t0 = gen_now_s();
        ok = l.api->embed(l.m, (const char *const *)t->s, t->n, *out) == t->n;
        *dt = gen_now_s() - t0;
        if (!ok) fprintf(stderr, "kgen embed: %s: %s\n", model, l.api->error(l.m));
    }
    gen_unload(&l);
    return ok;
}

/* --compare: the cosine similarity of each text's two embeddings (in
 * double), their mean and minimum */
static void compare(const char *model, const char *base, const float *x, const float *y, int n, int dim, bool as_json)
{
    double sum = 0, min = 2;
    int at = 0;
    json j;
    if (as_json) {
        json_begin(&j, stdout);
        json_key(&j, "dim"), json_i64(&j, dim);
        json_key(&j, "texts"), json_i64(&j, n);
        json_key(&j, "cosine"), json_arr(&j);
    }
    for (int i = 0; i < n; i++) {
        const float *a = x + (size_t)i * dim, *b = y + (size_t)i * dim;
        double ab = 0, aa = 0, bb = 0;
        for (int k = 0; k < dim; k++) ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
        const double cs = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : aa == bb; /* two zero vectors agree */
        sum += cs;
        if (cs < min) min = cs, at = i;
        if (as_json) json_f64(&j, cs);
    }
    if (as_json) {
        json_close_arr(&j);
        json_key(&j, "cosine_mean"), json_f64(&j, sum / n);
        json_key(&j, "cosine_min"), json_f64(&j, min);
        json_key(&j, "cosine_min_text"), json_i64(&j, at + 1);
        json_end(&j);
    } else
        printf("%s against %s: cosine similarity mean %.9f, min %.9f (text %d), over %d text%s\n", model, base,
               sum / n, min, at + 1, n, n == 1 ? "" : "s");
}

int cmd_embed(int argc, char **argv)
{
    const char *model = NULL, *base = NULL;
    bool as_json = false;
    texts t = {0};
    gen_load_opts lo = {.progress = true};
    cli c = {"embed", argc, argv, 0};
    cli_quant q = {0};
    int rc = 2;
    for (c.i = 0; c.i < argc; c.i++) {
        const char *a = argv[c.i], *v;
        int64_t n;
        const int qo = cli_quant_opt(&c, &q);
        if (qo) {
            if (qo < 0) goto done;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            rc = 0;
            goto done;
        } else if (!strcmp(a, "-p")) {
            if (!(v = cli_value(&c)) || !push(&t, v, strlen(v))) goto done;
        } else if (!strcmp(a, "--file")) {
            if (!(v = cli_value(&c)) || !read_lines(&t, v)) goto done;
        } else if (!strcmp(a, "--compare")) {
            if (!(base = cli_value(&c))) goto done;
        } else if (!strcmp(a, "--json")) {
            as_json = true;
        } else if (!strcmp(a, "-t")) {
            if (!cli_int(&c, 1, 256, &n)) goto done;
            lo.open.n_threads = (int)n;
        } else if (!strcmp(a, "--batch")) {
            if (!cli_int(&c, 1, 4096, &n)) goto done;
            lo.n_batch = (int)n;
        } else if (!strcmp(a, "--max-len")) {
            if (!cli_int(&c, 2, 1 << 16, &n)) goto done;
            lo.max_len = (int)n;
        } else if (!strcmp(a, "--cpu")) {
            if (!(lo.cpu = cli_value(&c))) goto done;
        } else if (!strcmp(a, "--no-cache")) {
            lo.no_cache = true;
        } else if (a[0] == '-') {
            fprintf(stderr, "kgen embed: unknown option '%s' (see kgen embed --help)\n", a);
            goto done;
        } else if (model) {
            fprintf(stderr, "kgen embed: more than one model given ('%s' and '%s')\n", model, a);
            goto done;
        } else {
            model = a;
        }
    }
    if (!model || t.n == 0) {
        fputs(model ? "kgen embed: no text given (-p TEXT or --file F)\n" : usage, stderr);
        goto done;
    }
    if (!cli_quant_spec(&c, &q, &lo.quant)) goto done;
    lo.requant = q.requant;
    gen_load_opts lob = lo; /* BASE as it is */
    lob.quant = NULL, lob.requant = false;
    rc = 1;
    float *out = NULL, *ref = NULL;
    int dim = 0, dim_b = 0;
    double dt = 0, dt_b = 0;
    if (!embed_all(model, &lo, &t, &out, &dim, &dt) || (base && !embed_all(base, &lob, &t, &ref, &dim_b, &dt_b)))
        goto free_out;
    if (base && dim_b != dim) {
        fprintf(stderr, "kgen embed: --compare %s: %d floats per embedding, %s's %d: not comparable\n", base, dim_b,
                model, dim);
        goto free_out;
    }
    if (base) compare(model, base, out, ref, t.n, dim, as_json);
    else if (as_json) {
        json j;
        json_begin(&j, stdout);
        json_key(&j, "dim");
        json_i64(&j, dim);
        json_key(&j, "embeddings");
        json_arr(&j);
        for (int i = 0; i < t.n; i++) {
            json_arr(&j);
            for (int k = 0; k < dim; k++) json_f32(&j, out[(size_t)i * dim + k]);
            json_close_arr(&j);
        }
        json_close_arr(&j);
        json_end(&j);
    } else {
        for (int i = 0; i < t.n; i++)
            for (int k = 0; k < dim; k++) printf("%.9g%c", out[(size_t)i * dim + k], k + 1 < dim ? ' ' : '\n');
    }
    rc = fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
    if (rc) fprintf(stderr, "kgen embed: error writing output\n");
    fprintf(stderr, "kgen: embedded %d text%s (%d floats each) in %.1f ms (%.1f texts/s)\n", t.n, t.n == 1 ? "" : "s",
            dim, dt * 1e3, t.n / (dt > 0 ? dt : 1e-9));
free_out:
    free(out), free(ref);
done:
    for (int i = 0; i < t.n; i++) free(t.s[i]);
    free(t.s);
    return rc;
}
