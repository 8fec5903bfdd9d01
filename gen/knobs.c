/*
 * knobs.c — the code generation knobs (gen.h, gen_knobs): parsing
 * "name=value,..." and the defaults per target.
 */
#include "gen.h"
#include "internal.h"
#include "cli.h"
#include "layout.h"

#include "templates/cpu/kernel.h"

#include <stdlib.h>
#include <string.h>

const char *gen_knobs_env(void)
{
    const char *e = getenv("KGEN_KNOBS");
    return e ? e : "";
}

kg_status gen_knobs_parse(const char *spec, gen_knobs *k)
{
    k->layout = k->amx = k->ftile = k->amx_bf16 = k->prefetch = -1;
    for (const char *p = spec ? spec : ""; *p;) {
        const char *e = strchr(p, ','), *eq = strchr(p, '=');
        const size_t len = e ? (size_t)(e - p) : strlen(p);
        char name[32], val[32];
        if (!eq || eq > p + len || eq == p || (size_t)(eq - p) >= sizeof name || len - (size_t)(eq - p) - 1 >= sizeof val)
            return kg_err(KG_ERR_ARG, "knobs '%s': expected NAME=VALUE[,NAME=VALUE...], e.g. layout=rows", spec);
        memcpy(name, p, (size_t)(eq - p));
        name[eq - p] = 0;
        memcpy(val, eq + 1, len - (size_t)(eq - p) - 1);
        val[len - (size_t)(eq - p) - 1] = 0;
        if (!strcmp(name, "layout")) {
            if (!strcmp(val, "default")) k->layout = -1;
            else if ((k->layout = gen_layout_parse(val)) < 0)
                return kg_err(KG_ERR_ARG, "knobs '%s': layout '%s': expected rows, x16 or default", spec, val);
        } else if (!strcmp(name, "amx")) {
            if (!strcmp(val, "default")) k->amx = -1;
            else if (!strcmp(val, "on") || !strcmp(val, "off")) k->amx = !strcmp(val, "on");
            else return kg_err(KG_ERR_ARG, "knobs '%s': amx '%s': expected on, off or default", spec, val);
        } else if (!strcmp(name, "ftile")) {
            if (!strcmp(val, "default")) k->ftile = -1;
            else if (!strcmp(val, "bf16") || !strcmp(val, "f32")) k->ftile = !strcmp(val, "bf16");
            else return kg_err(KG_ERR_ARG, "knobs '%s': ftile '%s': expected bf16, f32 or default", spec, val);
        } else if (!strcmp(name, "prefetch")) {
            int64_t v;
            if (!strcmp(val, "default")) k->prefetch = -1;
            else if (cli_parse_i64(val, 0, 65536, &v) && v % 64 == 0) k->prefetch = (int)v;
            else return kg_err(KG_ERR_ARG, "knobs '%s': prefetch '%s': expected bytes, a multiple of 64 up to 65536 (0: none), or default", spec, val);
        } else
            return kg_err(KG_ERR_ARG, "knobs '%s': unknown knob '%s' (known: layout, amx, ftile, prefetch)", spec, name);
        p = e ? e + 1 : p + len;
    }
    return KG_OK;
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
}
