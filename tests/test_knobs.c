/*
 * test_knobs.c — the code generation knobs (gen/knobs.c): what
 * gen_knobs_parse accepts and refuses (the message naming the knob and the
 * value), and the defaults gen_knobs_resolve picks per target.
 */
#include "gen.h"
#include "kgen.h"
#include "kt.h"
#include "templates/cpu/kernel.h"

#include <string.h>

KT_TEST(knobs_parse)
{
    gen_knobs k;
    KT_CHECK(gen_knobs_parse("", &k) == KG_OK && k.layout == -1 && k.amx == -1 && k.prefetch == -1);
    KT_CHECK(gen_knobs_parse(NULL, &k) == KG_OK && k.prefetch == -1);
    KT_CHECK(gen_knobs_parse("layout=rows,amx=on,prefetch=1024", &k) == KG_OK);
    KT_CHECK(k.layout == KGT_LAYOUT_ROWS && k.amx == 1 && k.prefetch == 1024);
    KT_CHECK(gen_knobs_parse("prefetch=0,layout=x16,amx=off,ftile=f32", &k) == KG_OK);
    KT_CHECK(k.prefetch == 0 && k.layout == KGT_LAYOUT_X16 && k.amx == 0 && k.ftile == 0);
    KT_CHECK(gen_knobs_parse("prefetch=65536,prefetch=default", &k) == KG_OK && k.prefetch == -1);
    KT_CHECK(gen_knobs_parse("mtile=8", &k) == KG_OK && k.mtile == 8 && k.prefetch == -1);
    static const struct {
        const char *spec, *says;
    } bad[] = {
        {"prefetch=100", "prefetch '100'"},     /* not a multiple of 64 */
        {"prefetch=-64", "prefetch '-64'"},     {"prefetch=65600", "prefetch '65600'"},
        {"prefetch=1e3", "prefetch '1e3'"},     {"prefetch=", "prefetch ''"},
        {"prefetch= 64", "prefetch ' 64'"},     {"layout=x32", "layout 'x32'"},
        {"amx=maybe", "amx 'maybe'"},           {"bogus=1", "unknown knob 'bogus'"},
        {"ftile=f16", "ftile 'f16'"},           {"mtile=5", "mtile '5'"},
        {"mtile=2", "mtile '2'"},               {"mtile=10", "mtile '10'"},
        {"layout", "expected NAME=VALUE"},      {"=rows", "expected NAME=VALUE"},
        {"layout=rows,,amx=on", "expected NAME=VALUE"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const kg_status st = gen_knobs_parse(bad[i].spec, &k);
        KT_CHECKF(st == KG_ERR_ARG && strstr(kg_last_error(), bad[i].says), "'%s': status %d, message '%s' (expected '%s')",
                  bad[i].spec, (int)st, st ? kg_last_error() : "", bad[i].says);
    }
}

KT_TEST(knobs_defaults)
{
    gen_knobs k;
    /* AMX: x16, decode's prefetch, bf16 pairs for float weights on AMX-BF16;
     * the int8 AMX tile off unless asked */
    gen_knobs_parse("", &k), gen_knobs_resolve(&k, GEN_ISA_AMX, false);
    KT_CHECK(k.layout == KGT_LAYOUT_X16 && k.amx == 0 && k.amx_bf16 == 1 && k.ftile == 1 && k.prefetch == 2048);
    gen_knobs_parse("amx=on,prefetch=0", &k), gen_knobs_resolve(&k, GEN_ISA_AMX, false);
    KT_CHECK(k.amx == 1 && k.amx_bf16 == 1 && k.prefetch == 0);
    gen_knobs_parse("amx=off,ftile=f32", &k), gen_knobs_resolve(&k, GEN_ISA_AMX, false);
    KT_CHECK(k.amx == 0 && k.amx_bf16 == 0 && k.ftile == 0);
    gen_knobs_parse("ftile=bf16,layout=rows", &k), gen_knobs_resolve(&k, GEN_ISA_AMX, false);
    KT_CHECK(k.ftile == 0); /* bf16 pairs are an x16 layout */
    gen_knobs_parse("amx=on", &k), gen_knobs_resolve(&k, GEN_ISA_AVX512, false);
    KT_CHECK(k.amx == 0 && k.amx_bf16 == 0 && k.ftile == 0); /* no AMX or AVX512-BF16 code below the amx level */
    /* AVX2: x16 and its prefetch, f32 float tiles; rows when asked, where
     * prefetch means nothing. The generic level: rows */
    gen_knobs_parse("", &k), gen_knobs_resolve(&k, GEN_ISA_AVX2, false);
    KT_CHECK(k.layout == KGT_LAYOUT_X16 && k.prefetch == 2048 && k.ftile == 0 && k.amx == 0);
    KT_CHECK(k.mtile == 6 && k.mtile_q == 4); /* 6-row float tiles, measured; quantized ones 4 */
    gen_knobs_parse("mtile=8", &k), gen_knobs_resolve(&k, GEN_ISA_AVX2, false);
    KT_CHECK(k.mtile == 8 && k.mtile_q == 8); /* asked for: every x16 product */
    gen_knobs_parse("", &k), gen_knobs_resolve(&k, GEN_ISA_AVX512, false);
    KT_CHECK(k.mtile == 4 && k.mtile_q == 4);
    gen_knobs_parse("layout=rows,prefetch=4096", &k), gen_knobs_resolve(&k, GEN_ISA_AVX2, false);
    KT_CHECK(k.layout == KGT_LAYOUT_ROWS && k.prefetch == 0);
    gen_knobs_parse("layout=x16,prefetch=4096", &k), gen_knobs_resolve(&k, GEN_ISA_AVX2, false);
    KT_CHECK(k.layout == KGT_LAYOUT_X16 && k.prefetch == 4096);
    gen_knobs_parse("", &k), gen_knobs_resolve(&k, GEN_ISA_GENERIC, false);
    KT_CHECK(k.layout == KGT_LAYOUT_ROWS && k.prefetch == 0);
    /* CUDA: rows, none of the CPU's choices */
    gen_knobs_parse("layout=x16,amx=on,prefetch=1024", &k), gen_knobs_resolve(&k, GEN_ISA_AMX, true);
    KT_CHECK(k.layout == KGT_LAYOUT_ROWS && k.amx == 0 && k.prefetch == 0);
}

/* the knob table's defaults of instance knobs are the templates' own
 * (KG_PARAM_DEFAULT in templates/cpu/mm.c, linked here natively), and
 * every sweep value is in range */
extern const int64_t kgt_default_mm__pf, kgt_default_mm__mb, kgt_default_mm__nc, kgt_default_mm__mt;

KT_TEST(knobs_table)
{
    static const struct {
        const char *name;
        const int64_t *def;
    } tmpl[] = {{"pf", &kgt_default_mm__pf},
                {"mb", &kgt_default_mm__mb},
                {"nc", &kgt_default_mm__nc},
                {"mt", &kgt_default_mm__mt}};
    for (size_t i = 0; i < sizeof tmpl / sizeof *tmpl; i++) {
        const gen_knob_def *d = gen_knob_find("mm", tmpl[i].name);
        KT_REQUIRE(d);
        KT_CHECKF(d->def == *tmpl[i].def, "mm.%s: the table's default %lld, the template's %lld", tmpl[i].name,
                  (long long)d->def, (long long)*tmpl[i].def);
    }
    int n;
    const gen_knob_def *defs = gen_knob_defs(&n);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < defs[i].nsweep; j++)
            KT_CHECKF(gen_knob_valid(&defs[i], defs[i].sweep[j]), "%s: sweep value %lld out of its range", defs[i].name,
                      (long long)defs[i].sweep[j]);
        if (defs[i].tmpl) KT_CHECKF(gen_knob_valid(&defs[i], defs[i].def), "%s: default out of its range", defs[i].name);
    }
    KT_CHECK(gen_knob_find(NULL, "pf") == NULL && gen_knob_find("mm", "layout") == NULL); /* the two kinds apart */
}
