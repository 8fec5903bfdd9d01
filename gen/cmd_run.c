/*
 * cmd_run.c — `kgen run`: generate text with a model (.gguf, compiled
 * through the cache, or a compiled .so), streaming tokens to stdout.
 */
#include "chat_tmpl.h"
#include "cli.h"
#include "internal.h"
#include "loader.h"
#include "tmpfile.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: kgen run MODEL.gguf|libNAME.so -p PROMPT [options]\n"
    "\n"
    "  -p, --prompt TEXT      the prompt (special-token text such as <|im_start|> is\n"
    "                         read as those tokens)\n"
    "  -f, --file PATH        read the prompt from a file\n"
    "  --chat                 format the prompt as a user message with the model's\n"
    "                         chat template (and --system TEXT as the system message)\n"
    "  --chat-template NAME   the chat format, when the file has no template or to\n"
    "                         override it: " GEN_CHAT_TEMPLATE_NAMES " (GGUF only)\n"
    "  -n N                   tokens to generate (default 128; stops at end-of-turn)\n"
    "  --ignore-eos           do not stop at end-of-turn tokens\n"
    "  --temp T               temperature (default 0.8; 0: greedy)\n"
    "  --top-k K              (default 40; 0: off)\n"
    "  --top-p P              (default 0.95; 1: off)\n"
    "  --min-p P              (default 0.05; 0: off)\n"
    "  --repeat-penalty R     (default 1.0: off) over --repeat-last-n N tokens (64)\n"
    "  --seed S               (default 42): the same seed gives the same text\n"
    "  -t, --threads N        threads (default: all CPUs)\n"
    "  -c, --ctx N            KV cache length (default min(4096, the model's))\n"
    "  --cpu CPU              compile for this CPU (GGUF only; default this machine)\n"
    "  --target cuda[:sm_NN]  compile for the GPU instead (GGUF only; see kgen compile)\n"
    "  --no-cache             compile into a temporary file, not the cache\n"
    "  --kv f16|q8|f32        the KV cache's type (GGUF only; default f16; see kgen compile)\n"
    "  --tuning FILE          compile with a tuning file's knobs (GGUF only; see kgen tune)\n"
    "  --quant SCHEME, --quant-tensor PATTERN=SCHEME, --requant   quantize the\n"
    "                         weights when compiling (GGUF or directory; see kgen compile)\n"
    "  --dump-logits PATH     write prompt ids, generated ids and each step's logits\n"
    "                         (format: tests/ref/check_e2e.py)\n"
    "Stats (prefill and decode tokens/s) go to stderr at the end.\n";

typedef struct {
    const char *model, *prompt, *prompt_file, *system, *dump;
    int n_gen;
    bool chat, ignore_eos;
    kgm_sampler_params sp;
    gen_load_opts lo;
    cli_quant q;
} run_args;

/* 0 or 2: exit with it; -1: go on */
static int parse(int argc, char **argv, run_args *a)
{
    a->n_gen = 128;
    a->sp = (kgm_sampler_params){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repeat_penalty = 1.0f,
                                 .repeat_last_n = 64, .seed = 42};
    a->lo.progress = true;
    cli c = {"run", argc, argv, 0};
    for (c.i = 0; c.i < argc; c.i++) {
        const char *o = argv[c.i];
        int64_t n;
        double d;
        bool ok = true;
        const int qo = cli_quant_opt(&c, &a->q);
        if (qo) {
            if (qo < 0) return 2;
            continue;
        }
#define OPT(s, l) cli_is(o, s, l)
#define STR(dst) ok = ((dst) = cli_value(&c)) != NULL
#define INT(lo, hi, dst) if ((ok = cli_int(&c, lo, hi, &n))) (dst) = (int)n
#define NUM(lo, hi, dst) if ((ok = cli_num(&c, lo, hi, &d))) (dst) = (float)d
        if (OPT("-h", "--help")) { fputs(usage, stdout); return 0; }
        else if (OPT("-p", "--prompt")) STR(a->prompt);
        else if (OPT("-f", "--file")) STR(a->prompt_file);
        else if (OPT(NULL, "--system")) STR(a->system);
        else if (OPT(NULL, "--chat")) a->chat = true;
        else if (OPT(NULL, "--chat-template")) {
            STR(a->lo.chat_template);
            if (ok && !gen_chat_template_known(a->lo.chat_template)) {
                fprintf(stderr, "kgen run: --chat-template %s: unknown template (known: " GEN_CHAT_TEMPLATE_NAMES ")\n",
                        a->lo.chat_template);
                return 2;
            }
        }
        else if (OPT(NULL, "--ignore-eos")) a->ignore_eos = true;
        else if (OPT(NULL, "--no-cache")) a->lo.no_cache = true;
        else if (OPT(NULL, "--cpu")) STR(a->lo.cpu);
        else if (OPT(NULL, "--target")) STR(a->lo.cuda);
        else if (OPT(NULL, "--tuning")) STR(a->lo.tuning);
        else if (OPT(NULL, "--kv")) {
            STR(a->lo.kv);
            if (ok && gen_kv_type(a->lo.kv) < 0) {
                fprintf(stderr, "kgen run: --kv %s: expected " GEN_KV_NAMES "\n", a->lo.kv);
                return 2;
            }
        }
        else if (OPT(NULL, "--dump-logits")) STR(a->dump);
        else if (OPT("-n", "--n-predict")) { INT(0, 1 << 24, a->n_gen); }
        else if (OPT("-t", "--threads")) { INT(1, 256, a->lo.open.n_threads); }
        else if (OPT("-c", "--ctx")) { INT(1, 1 << 24, a->lo.open.n_ctx); }
        else if (OPT(NULL, "--temp")) { NUM(0, 100, a->sp.temp); }
        else if (OPT(NULL, "--top-k")) { INT(0, 1 << 24, a->sp.top_k); }
        else if (OPT(NULL, "--top-p")) { NUM(0, 1, a->sp.top_p); }
        else if (OPT(NULL, "--min-p")) { NUM(0, 1, a->sp.min_p); }
        else if (OPT(NULL, "--repeat-penalty")) { NUM(0.01, 100, a->sp.repeat_penalty); }
        else if (OPT(NULL, "--repeat-last-n")) { INT(0, 256, a->sp.repeat_last_n); }
        else if (OPT(NULL, "--seed")) ok = cli_u64(&c, &a->sp.seed);
        else if (o[0] == '-' && o[1]) {
            fprintf(stderr, "kgen run: unknown option '%s' (see kgen run --help)\n", o);
            return 2;
        } else if (a->model) {
            fprintf(stderr, "kgen run: more than one model given ('%s' and '%s')\n", a->model, o);
            return 2;
        } else a->model = o;
        if (!ok) return 2;
#undef OPT
#undef STR
#undef INT
#undef NUM
    }
    if (a->prompt && a->prompt_file) {
        fputs("kgen run: -p and -f exclude each other: give the prompt as text or as a file, not both\n", stderr);
        return 2;
    }
    if (a->dump && a->model && gen_same_file(a->model, a->dump)) {
        fprintf(stderr, "kgen run: --dump-logits %s: that is the model itself: refusing to overwrite it\n", a->dump);
        return 2;
    }
    if (!a->model || (!a->prompt && !a->prompt_file)) {
        fprintf(stderr, "kgen run: %s\n%s", a->model ? "no prompt (-p TEXT or -f FILE)" : "no model given", usage);
        return 2;
    }
    if (!cli_quant_spec(&c, &a->q, &a->lo.quant)) return 2;
    a->lo.requant = a->q.requant;
    return -1;
}

/* the prompt text: raw, or through the chat template. malloc'd. */
static char *prompt_text(const run_args *a, const gen_loaded *l, const char *user)
{
    if (!a->chat) return strdup(user);
    kgm_message msgs[2];
    int n = 0;
    if (a->system) msgs[n++] = (kgm_message){"system", a->system};
    msgs[n++] = (kgm_message){"user", user};
    int len = l->api->chat(l->m, msgs, n, 1, NULL, 0);
    if (len < 0) {
        kg_err(KG_ERR_UNSUPPORTED, "%s: --chat: %s", a->model, l->api->error(l->m));
        return NULL;
    }
    char *s = malloc((size_t)len + 1);
    if (s && l->api->chat(l->m, msgs, n, 1, s, (size_t)len + 1) != len) {
        free(s);
        s = NULL;
    }
    if (!s) kg_err(KG_ERR_NOMEM, "out of memory");
    return s;
}

static kg_status write_dump(const char *path, int n_vocab, const int32_t *prompt, int np, const int32_t *gen, int ng,
                            const float *logits)
{
    FILE *f = fopen(path, "wb");
    if (!f) return kg_err(KG_ERR_IO, "%s: %s", path, strerror(errno));
    int32_t hdr[3] = {n_vocab, np, ng};
    bool ok = fwrite("KGLG", 1, 4, f) == 4 && fwrite(hdr, 4, 3, f) == 3 && fwrite(prompt, 4, (size_t)np, f) == (size_t)np &&
              fwrite(gen, 4, (size_t)ng, f) == (size_t)ng &&
              fwrite(logits, 4, (size_t)ng * (size_t)n_vocab, f) == (size_t)ng * (size_t)n_vocab;
    ok = fclose(f) == 0 && ok;
    return ok ? KG_OK : kg_err(KG_ERR_IO, "%s: write failed", path);
}

static int generate(const run_args *a, gen_loaded *l)
{
    const kgm_api_v2 *api = l->api;
    kgm_info info;
    api->describe(l->m, &info);
    char *user = a->prompt_file ? cli_read_file(a->prompt_file, NULL) : strdup(a->prompt);
    char *text = user ? prompt_text(a, l, user) : NULL;
    free(user);
    if (!text) {
        fprintf(stderr, "kgen run: %s\n", kg_last_error());
        return 1;
    }
    size_t tl = strlen(text);
    int np = api->tokenize(l->m, text, tl, KGM_TOK_BOS | KGM_TOK_SPECIAL, NULL, 0);
    int32_t *toks = np > 0 ? malloc((size_t)np * sizeof *toks) : NULL;
    if (np > 0 && toks) api->tokenize(l->m, text, tl, KGM_TOK_BOS | KGM_TOK_SPECIAL, toks, np);
    free(text);
    if (np <= 0 || !toks) {
        fprintf(stderr, "kgen run: %s\n", np == 0 ? "the prompt is empty" : api->error(l->m));
        free(toks);
        return 1;
    }
    if (np >= info.n_ctx) {
        if (np >= info.n_ctx_train)
            fprintf(stderr, "kgen run: %s: the prompt is %d tokens; the model's context holds %d, and generating "
                            "needs room for at least one more: shorten the prompt\n", a->model, np, info.n_ctx_train);
        else
            fprintf(stderr, "kgen run: %s: the prompt is %d token%s and the context holds %d: generating needs room "
                            "for at least one more (-c %d or more; the model allows up to %d)\n",
                    a->model, np, np == 1 ? "" : "s", info.n_ctx, np + 1, info.n_ctx_train);
        free(toks);
        return 1;
    }
    int n_gen = a->n_gen;
    if (np + n_gen > info.n_ctx) {
        n_gen = info.n_ctx - np;
        fprintf(stderr, "kgen run: generating %d tokens, as many as fit the context of %d\n", n_gen, info.n_ctx);
    }
    int32_t *gen = malloc(((size_t)n_gen + 1) * sizeof *gen);
    float *dump = a->dump ? malloc(((size_t)n_gen + 1) * (size_t)info.n_vocab * sizeof(float)) : NULL;
    if (!gen || (a->dump && !dump)) {
        fprintf(stderr, "kgen run: out of memory\n");
        free(toks), free(gen), free(dump);
        return 1;
    }
    api->sampler_init(l->m, &a->sp);
    for (int i = 0; i < np; i++) api->sampler_accept(l->m, toks[i]);
    double t0 = gen_now_s();
    const float *logits = api->prefill(l->m, toks, np, 0);
    double t_pre = gen_now_s() - t0, t_dec = 0;
    int ng = 0, rc = 0;
    char piece[256];
    while (logits && ng < n_gen) {
        if (dump) memcpy(dump + (size_t)ng * (size_t)info.n_vocab, logits, (size_t)info.n_vocab * sizeof(float));
        int32_t t = api->sample(l->m, logits);
        if (t < 0) break;
        gen[ng++] = t;
        if (!a->ignore_eos && api->is_eog(l->m, t)) break;
        int pl = api->token_piece(l->m, t, piece, sizeof piece);
        if (pl > 0) fwrite(piece, 1, (size_t)(pl < (int)sizeof piece ? pl : (int)sizeof piece), stdout);
        fflush(stdout);
        if (ng == n_gen) break;
        double t1 = gen_now_s();
        logits = api->decode(l->m, t, np + ng - 1);
        t_dec += gen_now_s() - t1;
    }
    fputc('\n', stdout);
    fflush(stdout); /* before the stats on stderr */
    if (!logits) {
        fprintf(stderr, "kgen run: %s\n", api->error(l->m));
        rc = 1;
    }
    int n_dec = ng > 0 ? ng - 1 : 0; /* decode steps run (the last token is not run) */
    if (!a->ignore_eos && ng > 0 && api->is_eog(l->m, gen[ng - 1])) n_dec = ng - 1;
    fprintf(stderr, "kgen: prefill %d tokens in %.1f ms (%.1f tokens/s); decode %d tokens in %.1f ms (%.1f tokens/s); "
                    "%d threads\n",
            np, t_pre * 1e3, np / (t_pre > 0 ? t_pre : 1e-9), n_dec, t_dec * 1e3, n_dec / (t_dec > 0 ? t_dec : 1e-9),
            info.n_threads);
    if (!rc && a->dump && write_dump(a->dump, info.n_vocab, toks, np, gen, ng, dump)) {
        fprintf(stderr, "kgen run: %s\n", kg_last_error());
        rc = 1;
    }
    free(toks), free(gen), free(dump);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    run_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc >= 0) return rc;
    gen_loaded l;
    kg_status st = gen_load(a.model, &a.lo, &l);
    if (st) {
        fprintf(stderr, "kgen run: %s\n", kg_last_error());
        return 1;
    }
    rc = generate(&a, &l);
    gen_unload(&l);
    return rc;
}
