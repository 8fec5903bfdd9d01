/*
 * knobs.c — the code generation knobs (gen.h): one table of every knob,
 * from which parsing "name=value,...", the range checks of tuning records
 * (gen/tune_db.c), `kgen compile --help`'s list and the variants `kgen
 * tune` sweeps are all derived; and the defaults per target.
 */
#include "gen.h"
#include "internal.h"
#include "cli.h"
#include "layout.h"

#include "templates/cpu/kernel.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const char *const LAYOUT_WORDS[] = {"rows", "x16", NULL};
static const char *const ONOFF_WORDS[] = {"off", "on", NULL};
static const char *const FTILE_WORDS[] = {"f32", "bf16", NULL};

#define MODEL_KNOB(field) offsetof(gen_knobs, field)

static const gen_knob_def KNOBS[] = {
    {"layout", NULL, GEN_KNOB_ALL, MODEL_KNOB(layout), LAYOUT_WORDS, 0, 0, 0, 0, {0}, 0,
     "the products' weight layout (default: x16 on AVX2 and newer CPUs, rows elsewhere and on CUDA; a weight x16 "
     "does not fit keeps rows)"},
    {"amx", NULL, GEN_KNOB_ALL, MODEL_KNOB(amx), ONOFF_WORDS, 0, 0, 0, 0, {0}, 0,
     "prefill on AMX tiles where the CPU has them (default: on for bf16 float tiles, off for quantized ones)"},
    {"ftile", NULL, GEN_KNOB_ALL, MODEL_KNOB(ftile), FTILE_WORDS, 0, 0, 0, 0, {0}, 0,
     "under x16, F16/BF16 weights as bf16 pairs times activations rounded to bf16 (AMX-BF16, vdpbf16ps), or as "
     "stored times f32 ones (default: bf16 where the CPU has AMX, f32 elsewhere)"},
    {"prefetch", NULL, GEN_KNOB_ALL, MODEL_KNOB(prefetch), NULL, 0, 65536, 64, 0, {0}, 0,
     "decode's software prefetch distance in bytes over x16 weights (0: none; default 2048); the default of every "
     "product's `pf`"},
    {"mtile", NULL, GEN_KNOB_ALL, MODEL_KNOB(mtile), NULL, 4, 8, 2, 0, {0}, 0,
     "prefill's activation rows per tile over x16 weights, 4, 6 or 8 (default: 6 for float weights on AVX2, 4 "
     "elsewhere); the default of every prefill product's `mt`"},
    /* per kernel instance: template parameters, set by tuning records */
    {"pf", "mm", GEN_KNOB_DECODE | GEN_KNOB_NOT_ROWS, -1, NULL, 0, 65536, 64, 0, {0, 512, 1024, 2048, 4096, 8192}, 6,
     "one decode product's software prefetch distance in bytes (x16 weights; 0: none)"},
    {"mb", "mm", GEN_KNOB_PREFILL, -1, NULL, 0, 16777216, 4096, 262144, {32768, 65536, 131072, 262144, 524288, 1048576},
     6, "one prefill product's block of activation rows in bytes, kept in L2 while the thread's channels pass over it "
     "(at least 16 rows; default 262144)"},
    {"nc", "mm", GEN_KNOB_ALL, -1, NULL, 16, 32, 16, 32, {16, 32}, 2,
     "one product's chunk of output channels, its weights used for every row of a block before the next (16 or "
     "32; with q8 outputs always 32)"},
    {"mt", "mm", GEN_KNOB_PREFILL | GEN_KNOB_NOT_ROWS, -1, NULL, 4, 8, 2, 4, {4, 6, 8}, 3,
     "one prefill product's activation rows per tile (4, 6 or 8), each weight vector decoded once for all of them"},
};
enum { N_KNOBS = sizeof KNOBS / sizeof KNOBS[0] };

const gen_knob_def *gen_knob_defs(int *n)
{
    *n = N_KNOBS;
    return KNOBS;
}

const gen_knob_def *gen_knob_find(const char *tmpl, const char *name)
{
    for (int i = 0; i < N_KNOBS; i++)
        if (!strcmp(KNOBS[i].name, name) && (tmpl ? KNOBS[i].tmpl && !strcmp(KNOBS[i].tmpl, tmpl) : !KNOBS[i].tmpl))
            return &KNOBS[i];
    return NULL;
}

bool gen_knob_valid(const gen_knob_def *d, int64_t v)
{
    if (d->words) {
        int n = 0;
        while (d->words[n]) n++;
        return v >= 0 && v < n;
    }
    return v >= d->lo && v <= d->hi && (d->step <= 1 || v % d->step == 0);
}

void gen_knob_range(const gen_knob_def *d, char *out, size_t cap)
{
    if (d->words) {
        size_t at = 0;
        for (int i = 0; d->words[i] && at < cap; i++)
            at += (size_t)snprintf(out + at, cap - at, "%s%s", i ? ", " : "", d->words[i]);
    } else {
        int n = snprintf(out, cap, "a number from %lld to %lld", (long long)d->lo, (long long)d->hi);
        if (d->step > 1 && n >= 0 && (size_t)n < cap)
            snprintf(out + n, cap - (size_t)n, ", a multiple of %lld", (long long)d->step);
    }
}

/* the value of `val` for d, or -2 (not one) */
static int64_t knob_value(const gen_knob_def *d, const char *val)
{
    if (d->words) {
        for (int i = 0; d->words[i]; i++)
            if (!strcmp(val, d->words[i])) return i;
        return -2;
    }
    int64_t v;
    return cli_parse_i64(val, d->lo, d->hi, &v) && gen_knob_valid(d, v) ? v : -2;
}

const char *gen_knobs_env(void)
{
    const char *e = getenv("KGEN_KNOBS");
    return e ? e : "";
}

kg_status gen_knobs_parse(const char *spec, gen_knobs *k)
{
    for (int i = 0; i < N_KNOBS; i++)
        if (!KNOBS[i].tmpl) *(int *)((char *)k + KNOBS[i].field) = -1;
    k->amx_bf16 = k->mtile_q = -1;
    for (const char *p = spec ? spec : ""; *p;) {
        const char *e = strchr(p, ','), *eq = strchr(p, '=');
        const size_t len = e ? (size_t)(e - p) : strlen(p);
        char name[32], val[32], range[128];
        if (!eq || eq > p + len || eq == p || (size_t)(eq - p) >= sizeof name || len - (size_t)(eq - p) - 1 >= sizeof val)
            return kg_err(KG_ERR_ARG, "knobs '%s': expected NAME=VALUE[,NAME=VALUE...], e.g. layout=rows", spec);
        memcpy(name, p, (size_t)(eq - p));
        name[eq - p] = 0;
        memcpy(val, eq + 1, len - (size_t)(eq - p) - 1);
        val[len - (size_t)(eq - p) - 1] = 0;
        const gen_knob_def *d = gen_knob_find(NULL, name);
        if (!d) {
            char known[128] = "";
            for (int i = 0, at = 0; i < N_KNOBS && at < (int)sizeof known; i++)
                if (!KNOBS[i].tmpl) at += snprintf(known + at, sizeof known - (size_t)at, "%s%s", at ? ", " : "", KNOBS[i].name);
            return kg_err(KG_ERR_ARG, "knobs '%s': unknown knob '%s' (known: %s)", spec, name, known);
        }
        int64_t v = strcmp(val, "default") ? knob_value(d, val) : -1;
        if (v == -2) {
            gen_knob_range(d, range, sizeof range);
            return kg_err(KG_ERR_ARG, "knobs '%s': %s '%s': expected %s, or default", spec, name, val, range);
        }
        *(int *)((char *)k + d->field) = (int)v;
        p = e ? e + 1 : p + len;
    }
    return KG_OK;
}

/* text as lines of at most `width` columns: the first after `indent`, the
 * rest after it and four more spaces */
static void wrap(FILE *f, const char *indent, int width, const char *text)
{
    for (bool first = true; *text; first = false) {
        const int room0 = width - (int)strlen(indent) - (first ? 0 : 4), room = room0 > 8 ? room0 : 8;
        const int n = (int)strlen(text);
        int cut = n;
        if (n > room) {
            for (cut = room; cut > 0 && text[cut] != ' '; cut--) {}
            if (cut == 0) cut = room;
        }
        fprintf(f, "%s%s%.*s\n", indent, first ? "" : "    ", cut, text);
        text += cut;
        while (*text == ' ') text++;
    }
}

void gen_knobs_help(FILE *f, const char *indent, int width)
{
    for (int i = 0; i < N_KNOBS; i++) {
        if (KNOBS[i].tmpl) continue;
        char range[128], line[1024];
        if (KNOBS[i].words) {
            size_t at = 0;
            for (int j = 0; KNOBS[i].words[j] && at < sizeof range; j++)
                at += (size_t)snprintf(range + at, sizeof range - at, "%s%s", j ? "|" : "", KNOBS[i].words[j]);
        } else {
            snprintf(range, sizeof range, "N");
        }
        snprintf(line, sizeof line, "%s=%s|default  %s", KNOBS[i].name, range, KNOBS[i].help);
        wrap(f, indent, width, line);
    }
}

void gen_knobs_resolve(gen_knobs *k, gen_isa isa, bool cuda)
{
    /* x16's tile has AVX-512 VNNI and AVX2 paths (the generic level's is
     * portable C); on the 2-core EPYC VM (AVX2) it beat rows on every
     * type measured: prefill 1.15-1.6x, decode 1.2-1.8x (README,
     * Performance). The CUDA templates read rows */
    if (cuda) k->layout = KGT_LAYOUT_ROWS;
    else if (k->layout < 0) k->layout = isa >= GEN_ISA_AVX2 ? KGT_LAYOUT_X16 : KGT_LAYOUT_ROWS;
    /* AMX code exists in the amx level's bitcode only. For quantized
     * (x16) weights off unless asked for: on the Sapphire Rapids VM its
     * int8 tiles ran no faster than the AVX-512 VNNI tile (README,
     * Performance: the per-32-element scales make each tile product a
     * store and 16 vector conversions). For x16b weights on by default:
     * no scales, C stays in the tile over all of K, and SmolLM2-shaped F16
     * prefill ran 2.5-3x the f32 tile's speed there */
    k->amx_bf16 = !cuda && isa >= GEN_ISA_AMX && k->amx != 0;
    k->amx = !cuda && isa >= GEN_ISA_AMX && k->amx == 1;
    /* bf16 pairs for F16/BF16 weights under x16: vdpbf16ps and AMX-BF16
     * exist in the amx level's bitcode; elsewhere the knob, if asked for,
     * runs the same arithmetic in portable C (slow). Default: bf16 where
     * the target has AMX, for the AMX-BF16 tile (README, Performance:
     * vdpbf16ps alone ran slower than the f32 tile on Sapphire Rapids) */
    if (k->ftile < 0) k->ftile = !cuda && isa >= GEN_ISA_AMX;
    k->ftile = k->ftile && k->layout == KGT_LAYOUT_X16;
    /* decode streams each weight once; the hardware prefetchers stop at
     * 4 KiB pages. 2048 bytes ahead measured best of 0/1024/2048/4096 on
     * the Sapphire Rapids VM (README, Performance) */
    if (cuda || k->layout != KGT_LAYOUT_X16) k->prefetch = 0;
    else if (k->prefetch < 0) k->prefetch = 2048;
    /* prefill's rows per x16 tile. AVX2's float tile of 6 rows x 16 lanes
     * holds 12 of the 16 ymm registers in sums: on the EPYC VM SmolLM2-
     * shaped F16 prefill ran 1.08-1.6x faster than with 4 rows (pp64 at
     * 0.82 of the FMA peak, 1 thread), 8 rows spilled (0.5x). The
     * quantized tiles stay at 4 (their integer sums double the registers a
     * row takes: Q4_0 ran 0.73-0.94x with 6 rows, 0.84-1.1x with 8). The
     * 512-bit tiles (32 registers) keep 4 until measured (README, Known
     * limits) */
    k->mtile_q = k->mtile > 0 ? k->mtile : 4;
    if (k->mtile < 0) k->mtile = !cuda && isa == GEN_ISA_AVX2 ? 6 : 4;
}
